"""Backups of a site: its database, its own metadata layer and its attachments in one .tar.gz with a manifest."""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
import tarfile
import tempfile
import zlib
from datetime import UTC, datetime
from importlib.metadata import version
from io import BytesIO
from pathlib import Path

from .attachment_store import AttachmentStore, FolderStore, attachment_store
from .config import Settings
from .errors import BadRequest, Conflict, Message, NotFound, RuntimeFailure
from .storage.dump import DUMP_FILES, backend_of, database_counts, dump_database, load_database, pg_tool

FORMAT = "objectplatform-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LAYER = "metadata"  # the archive's folder of the site's layer (OBJECTPLATFORM_CUSTOM_METADATA)
ATTACHMENTS = "attachments"  # the archive's folder of the instance's attachments
UNREADABLE = (tarfile.TarError, OSError, EOFError, zlib.error, ValueError, KeyError, TypeError)


def create_backup(settings: Settings, path: Path) -> dict:
    """Write the backup of the configured site to the new file `path` (whole or not at all); return its manifest."""
    if path.exists():
        raise Conflict(Message("backup.exists", "{path} already exists: name a new file", path=str(path)))
    if not path.parent.is_dir():
        raise NotFound(Message("backup.no_folder", "there is no folder {folder}", folder=str(path.parent)))
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise BadRequest(Message("backup.not_writable", "this user may not write into {folder}",
                                 folder=str(path.parent)))
    backend = backend_of(settings.database_url)
    layer = settings.custom_metadata
    store = attachment_store(settings)
    with tempfile.TemporaryDirectory(prefix=".objectplatform-backup-", dir=path.parent) as work:
        dump = Path(work) / DUMP_FILES[backend]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "backend": backend,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "objectplatform_version": version("objectplatform"),
            "apps": list(settings.apps),
            "templates": list(settings.templates),
            "site_layer": str(layer) if layer else None,
            "attachments": sum(1 for _ in store.keys()),
            "tables": dump_database(settings.database_url, dump),
        }
        partial = Path(work) / "backup.tar.gz"
        with tarfile.open(partial, "w:gz") as tar:
            _add_file(tar, MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2).encode())
            tar.add(dump, arcname=dump.name)
            if layer:
                tar.add(layer, arcname=LAYER)
            for key in store.keys():
                with store.open(key) as content:
                    _add_file(tar, f"{ATTACHMENTS}/{key}", content.read())
        partial.chmod(0o600)  # it holds every record and password hash: readable by its owner only
        os.replace(partial, path)
    return manifest


def _add_file(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(content), int(datetime.now(UTC).timestamp())
    tar.addfile(info, BytesIO(content))


def read_manifest(path: Path) -> dict:
    """The manifest of the backup at `path`, checked to be one this version can restore."""
    if not path.is_file():
        raise NotFound(Message("backup.missing", "there is no backup file at {path}", path=str(path)))
    try:
        with tarfile.open(path, "r:gz") as tar:
            manifest = json.load(tar.extractfile(MANIFEST))
    except UNREADABLE:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _not_a_backup(path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BadRequest(Message("backup.format_version", "{path} is a backup of format {found}; this version "
                                 "restores format {supported}", path=str(path),
                                 found=manifest.get("format_version"), supported=FORMAT_VERSION))
    return manifest


def restore_backup(settings: Settings, path: Path, force: bool = False) -> dict:
    """Restore the backup at `path` into the configured database, site layer and attachment store after checking
    that it fits them (nothing is written otherwise); with `force`, over a database that holds tables, the folders
    holding files moved aside (a bucket keeps its files: the restored ones have their own keys). Return what was
    restored."""
    manifest = read_manifest(path)
    store = attachment_store(settings)
    targets = _check_fits(settings, manifest, store, force)
    moved = []
    with tempfile.TemporaryDirectory(prefix=".objectplatform-restore-") as work:
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(work, filter="data")
        except UNREADABLE:
            raise _not_a_backup(path) from None
        load_database(settings.database_url, Path(work) / DUMP_FILES[manifest["backend"]])
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for target in targets.values():
            if _file_count(target):
                aside = target.with_name(f"{target.name}.before-restore-{stamp}")
                target.rename(aside)
                moved.append(aside)
        if LAYER in targets and (Path(work) / LAYER).is_dir():
            shutil.copytree(Path(work) / LAYER, targets[LAYER], dirs_exist_ok=True)
        _put_files(store, Path(work) / ATTACHMENTS)
    counts = database_counts(settings.database_url)
    if differ := sorted(t for t, n in manifest["tables"].items() if counts.get(t) != n):
        raise RuntimeFailure(Message("backup.counts_differ", "the restored database does not hold the rows the "
                                     "backup counted, in {tables}", tables=", ".join(differ)))
    return {"manifest": manifest, "tables": len(counts), "rows": sum(counts.values()),
            "layer": targets.get(LAYER), "attachments": sum(1 for _ in store.keys()), "moved": moved}


def _put_files(store: AttachmentStore, folder: Path) -> None:
    """The backup's attachments, extracted into `folder`, put into the store under their keys."""
    for source in sorted(folder.rglob("*")) if folder.is_dir() else ():
        if source.is_file():
            key = source.relative_to(folder).as_posix()
            store.put(key, source.read_bytes(), mimetypes.guess_type(source.name)[0] or "application/octet-stream")


def _check_fits(settings: Settings, manifest: dict, store: AttachmentStore, force: bool) -> dict[str, Path]:
    """The folders to move aside before restoring, by archive folder (the site layer; the attachments' folder when
    the store is one), once the backup is known to fit the configured site."""
    backend = backend_of(settings.database_url)
    if backend != manifest["backend"]:
        raise Conflict(Message("backup.backend_differs", "the backup holds a {found} database and "
                               "OBJECTPLATFORM_DATABASE_URL names a {target} one: restore it into a {found} database",
                               found=manifest["backend"], target=backend))
    if [list(settings.apps), list(settings.templates)] != [manifest["apps"], manifest["templates"]]:
        raise Conflict(Message("backup.site_differs", "the backup was made with apps {apps} and templates "
                               "{templates}: set OBJECTPLATFORM_APPS and OBJECTPLATFORM_TEMPLATES to match",
                               apps=", ".join(manifest["apps"]) or "(none)",
                               templates=", ".join(manifest["templates"]) or "(none)"))
    targets = {ATTACHMENTS: store.folder} if isinstance(store, FolderStore) else {}
    if manifest["site_layer"]:
        if not settings.custom_metadata:
            raise BadRequest(Message("backup.layer_unset", "the backup holds the site's metadata layer (from "
                                     "{folder}): set OBJECTPLATFORM_CUSTOM_METADATA to the folder to restore it into",
                                     folder=manifest["site_layer"]))
        targets[LAYER] = settings.custom_metadata
    if backend == "postgresql":
        pg_tool("pg_restore")
    if force:
        return targets
    if counts := database_counts(settings.database_url):
        raise Conflict(Message("backup.not_empty", "the database holds {tables} tables ({rows} rows): restore into "
                               "an empty database, or add --force to replace its contents",
                               tables=len(counts), rows=sum(counts.values())))
    held = [str(target) for target in targets.values() if _file_count(target)]
    if not isinstance(store, FolderStore) and next(store.keys(), None) is not None:
        held.append(store.where)
    if held:
        raise Conflict(Message("backup.folder_not_empty", "{folder} holds files: restore into an empty folder, "
                               "or add --force to move it aside", folder=held[0]))
    return targets


def _not_a_backup(path: Path) -> BadRequest:
    return BadRequest(Message("backup.not_a_backup", "{path} is not an objectplatform backup (a .tar.gz that "
                              "`objectplatform backup` wrote) or it is damaged", path=str(path)))


def _file_count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
