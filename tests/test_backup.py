"""`objectplatform backup` and `restore` on SQLite and PostgreSQL: a demo site restored into a fresh database holds
every row of every table, its site layer and its attachments; bad input is refused with a message, nothing
written."""

import base64
import io
import json
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import crm_metadata

from objectplatform.cli import main
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.errors import BadRequest
from objectplatform.runtime.storage.dump import pg_tool
from objectplatform_crm.demo import DEMO, load_demo

SITE_FILES = {"object_defs/lead_ext.yaml": """\
kind: object_extension
object: lead
fields:
  wechat_group: {type: text, label: {zh: 微信群, en: WeChat group}, max_length: 100}
"""}
NOW = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("site")


@pytest.fixture(scope="module")
def metadata(site):
    """The shipped CRM with a site layer adding a field to leads."""
    return crm_metadata(site, SITE_FILES)


@pytest.fixture
def env(monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "TEMPLATES", "CUSTOM_METADATA", "INSTANCE_PATH", "APPS"):
        monkeypatch.delenv(f"OBJECTPLATFORM_{name}", raising=False)
    return monkeypatch


@pytest.fixture
def source(env, migrated_database_url, tmp_path, metadata, site) -> Settings:
    """A site holding a small demo company, an attachment and a site-layer field's value, named by the environment."""
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    spec = folder / "generated.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("leads_total: 2000", "leads_total: 50")
                    .replace("accounts: 120", "accounts: 4"), encoding="utf-8")
    settings = Settings.from_env({}, database_url=migrated_database_url, instance_path=tmp_path / "a",
                                 custom_metadata=site)
    platform = open_platform(settings, metadata)
    try:
        load_demo(platform, folder, now=NOW)
        records = platform.records
        lead = records.list("lead", sort="id", limit=1).items[0]
        records.update("lead", lead["id"], {"wechat_group": "华北客户群"}, version=lead["version"])
        order = records.list("sales_order", filters={"status": "received"}, sort="id", limit=1).items[0]  # owes
        records.create("payment", {"sales_order": order["id"], "amount": 1, "receipt": {
            "filename": "回单.pdf", "content_base64": base64.b64encode(b"%PDF-1.4 receipt").decode()}})
    finally:
        platform.close()
    _use(env, settings)
    return settings


def _use(env, settings: Settings) -> None:
    """Name the site of `settings` in the environment the command reads."""
    env.setenv("OBJECTPLATFORM_DATABASE_URL", settings.database_url)
    env.setenv("OBJECTPLATFORM_INSTANCE_PATH", str(settings.instance_path))
    if settings.custom_metadata:
        env.setenv("OBJECTPLATFORM_CUSTOM_METADATA", str(settings.custom_metadata))
    else:
        env.delenv("OBJECTPLATFORM_CUSTOM_METADATA", raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


STAMP = "_op_access_stamp"


def every_row(url: str) -> dict[str, list[tuple]]:
    """Every table of the database at `url` with its rows, sorted, as the driver reads them."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            quote = c.dialect.identifier_preparer.quote
            return {name: sorted((tuple(row) for row in c.exec_driver_sql(f"SELECT * FROM {quote(name)}")), key=repr)
                    for name in sa.inspect(c).get_table_names()}
    finally:
        engine.dispose()


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_backup_restored_into_a_fresh_database_holds_every_row_layer_and_attachment(
        source, env, backend, tmp_path, capsys, metadata, templates):
    before = every_row(source.database_url)
    rows = sum(len(r) for r in before.values())
    archive = tmp_path / "site.tar.gz"
    code, out, err = run(capsys, "backup", str(archive))
    assert (code, err) == (0, "")
    url = sa.make_url(source.database_url).render_as_string(hide_password=True)
    assert out == (f"backed up {url} ({backend}: {len(before)} tables, {rows} rows)\n"
                   f"  site metadata layer: {source.custom_metadata}\n"
                   f"  attachments: 1 file ({source.instance_path / 'attachments'})\n"
                   f"to {archive} ({archive.stat().st_size / 1e6:.1f} MB)\n")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        names = set(tar.getnames())
    assert {k: v for k, v in manifest.items() if k != "created_at"} == {
        "format": "objectplatform-backup", "format_version": 1, "backend": backend, "objectplatform_version": "0.1.0",
        "apps": ["crm"], "templates": [], "site_layer": str(source.custom_metadata), "attachments": 1,
        "tables": {name: len(r) for name, r in sorted(before.items())}}
    assert {"manifest.json", "metadata/object_defs/lead_ext.yaml", "secret_key"} - names == {"secret_key"}
    assert archive.stat().st_mode & 0o777 == 0o600

    with templates.blank(backend, tmp_path) as target_url:
        target = Settings.from_env({}, database_url=target_url, instance_path=tmp_path / "b",
                                   custom_metadata=tmp_path / "b-site")
        _use(env, target)
        code, out, err = run(capsys, "restore", str(archive))
        assert (code, err) == (0, "")
        shown = sa.make_url(target_url).render_as_string(hide_password=True)
        assert out == (f"restored the backup of {manifest['created_at']} (objectplatform 0.1.0, {backend})\n"
                       f"  database: {len(before)} tables, {rows} rows into {shown}\n"
                       f"  site metadata layer: into {tmp_path / 'b-site'}\n"
                       f"  attachments: 1 file into {tmp_path / 'b' / 'attachments'}\n"
                       "next: `objectplatform check`, then `objectplatform migrate` (brings the database in line "
                       "with this version's metadata)\n")
        after = every_row(target_url)
        assert sorted(after) == sorted(before) and "_op_history" in after and len(before["_op_history"]) > 100
        for name in before:  # the access stamp one past the restored one (storage/access_stamp.py)
            assert after[name] == ([(1, before[name][0][1] + 1)] if name == STAMP else before[name]), name
        assert files_in(tmp_path / "b-site") == files_in(source.custom_metadata)
        assert files_in(tmp_path / "b" / "attachments") == files_in(source.instance_path / "attachments")

        assert run(capsys, "check")[:2] == (0, "ok: 28 objects, 24 picklists, 9 roles, 12 flows, 24 reports "
                                               f"(layers: base, app crm, site {tmp_path / 'b-site'})\n")
        assert run(capsys, "migrate") == (0, "nothing to do\n", "")
        platform = open_platform(target, metadata)
        try:
            last = max(int(row[0]) for row in before["lead"])  # ids go on where the backed-up site's stopped
            created = platform.records.create("lead", {"name": "新线索", "email": "new@example.com"})
            assert created["id"] == str(last + 1)
            wechat = platform.records.list("lead", filters={"wechat_group": "华北客户群"}).items
            assert [lead["wechat_group"] for lead in wechat] == ["华北客户群"]
        finally:
            platform.close()


def test_restore_refuses_a_database_that_holds_tables_unless_forced(source, backend, tmp_path, capsys):
    archive = tmp_path / "site.tar.gz"
    assert run(capsys, "backup", str(archive))[0] == 0
    before = every_row(source.database_url)
    platform = open_platform(source)
    try:
        platform.records.create("lead", {"name": "备份之后", "email": "after@example.com"})
    finally:
        platform.close()
    changed = every_row(source.database_url)
    tables, rows = len(changed), sum(len(r) for r in changed.values())

    assert run(capsys, "restore", str(archive)) == (
        1, "", f"error: the database holds {tables} tables ({rows} rows): restore into an empty database, or add "
               "--force to replace its contents\n")
    assert every_row(source.database_url) == changed
    assert run(capsys, "--lang", "zh", "restore", str(archive))[2] == (
        f"error: 数据库中已有 {tables} 张表（{rows} 行）：请恢复到空数据库，或加 --force 替换其内容\n")

    code, out, err = run(capsys, "restore", "--force", str(archive))
    assert (code, err) == (0, "")
    aside = [p for p in (tmp_path / "a").iterdir() if p.name.startswith("attachments.before-restore-")]
    assert f"  moved aside: {aside[0]}\n" in out and f"  moved aside: {source.custom_metadata}." in out
    assert files_in(aside[0]) == files_in(source.instance_path / "attachments")
    restored = every_row(source.database_url)
    assert restored.pop(STAMP) == [(1, changed[STAMP][0][1] + 1)]  # past the one it replaced
    assert restored == {name: rows for name, rows in before.items() if name != STAMP}


def test_restore_refuses_what_is_not_a_backup_of_this_kind_and_writes_nothing(env, backend, tmp_path, capsys,
                                                                                 templates):
    with templates.blank(backend, tmp_path) as url:
        _use(env, Settings.from_env({}, database_url=url, instance_path=tmp_path / "b"))
        missing = tmp_path / "nothing.tar.gz"
        assert run(capsys, "restore", str(missing)) == (1, "", f"error: there is no backup file at {missing}\n")
        text = tmp_path / "notes.txt"
        text.write_text("not an archive")
        assert run(capsys, "restore", str(text)) == (
            1, "", f"error: {text} is not an objectplatform backup (a .tar.gz that `objectplatform backup` wrote) or "
                   "it is damaged\n")
        other = "postgresql" if backend == "sqlite" else "sqlite"
        forged = _archive(tmp_path / "other.tar.gz", {"format": "objectplatform-backup", "format_version": 1,
                                                      "backend": other, "apps": ["crm"], "templates": []})
        assert run(capsys, "restore", str(forged)) == (
            1, "", f"error: the backup holds a {other} database and OBJECTPLATFORM_DATABASE_URL names a {backend} "
                   f"one: restore it into a {other} database\n")
        newer = _archive(tmp_path / "newer.tar.gz", {"format": "objectplatform-backup", "format_version": 2})
        assert run(capsys, "restore", str(newer)) == (
            1, "", f"error: {newer} is a backup of format 2; this version restores format 1\n")
        layered = _archive(tmp_path / "layered.tar.gz", {
            "format": "objectplatform-backup", "format_version": 1, "backend": backend, "apps": ["crm"],
            "templates": [], "site_layer": "/srv/crm-site"})
        assert run(capsys, "restore", str(layered)) == (
            1, "", "error: the backup holds the site's metadata layer (from /srv/crm-site): set "
                   "OBJECTPLATFORM_CUSTOM_METADATA to the folder to restore it into\n")
        templated = _archive(tmp_path / "templated.tar.gz", {
            "format": "objectplatform-backup", "format_version": 1, "backend": backend, "apps": ["crm"],
            "templates": ["education"], "site_layer": None})
        assert run(capsys, "restore", str(templated)) == (
            1, "", "error: the backup was made with apps crm and templates education: set OBJECTPLATFORM_APPS and "
                   "OBJECTPLATFORM_TEMPLATES to match\n")
        assert every_row(url) == {} and not (tmp_path / "b").exists()


@pytest.fixture
def small_site(env, migrated_database_url, tmp_path) -> Settings:
    """A site holding one lead (no demo company: what this test backs up does not matter), named by the
    environment."""
    settings = Settings.from_env({}, database_url=migrated_database_url, instance_path=tmp_path / "a")
    platform = open_platform(settings)
    try:
        platform.records.create("lead", {"name": "备份测试", "email": "backup@example.com"})
    finally:
        platform.close()
    _use(env, settings)
    return settings


def test_backup_refuses_to_overwrite_a_file_restore_a_damaged_one_and_names_a_missing_pg_tool(small_site, tmp_path,
                                                                                              capsys):
    archive = tmp_path / "kept.tar.gz"
    archive.write_bytes(b"an older backup")
    assert run(capsys, "backup", str(archive)) == (1, "", f"error: {archive} already exists: name a new file\n")
    assert archive.read_bytes() == b"an older backup"
    whole = tmp_path / "whole.tar.gz"
    assert run(capsys, "backup", str(whole))[0] == 0
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert run(capsys, "restore", "--force", str(cut)) == (
        1, "", f"error: {cut} is not an objectplatform backup (a .tar.gz that `objectplatform backup` wrote) or it is "
               "damaged\n")
    with pytest.raises(BadRequest) as refused:
        pg_tool("pg_nosuchtool")
    assert str(refused.value) == ("pg_nosuchtool is not installed: install the PostgreSQL client programs (e.g. apt "
                                  "install postgresql-client) of the server's major version or newer, or put them "
                                  "on PATH")


def _archive(path: Path, manifest: dict) -> Path:
    """A .tar.gz holding only `manifest` as its manifest.json."""
    body = json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return path
