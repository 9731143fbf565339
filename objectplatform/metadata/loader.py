"""Loading metadata layers: every document read, validated, merged and checked; all problems at once."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ._build import Builder, Catalog, build_definition
from ._schema import check_kind, schema_errors
from ._yaml import Document, JsonPath, YamlError, documents, json_path, read_documents
from .checks import CHECKS
from .model import Metadata, ObjectDef, Source
from .problems import MetadataError, Problem, closest

__all__ = ["BASE_LAYER", "Locator", "MetadataError", "Problem", "check_definition", "default_layers", "load_metadata"]

FOLDERS = ("object_defs", "flows", "report_templates")
BASE_LAYER = Path(__file__).resolve().parents[1] / "base"  # the engine's own objects: user, department


def default_layers(
    root: Path | str, templates: Sequence[str], custom: Path | str | None = None, apps: Sequence[Path | str] = (),
    templates_path: Path | str | None = None,
) -> list[Path]:
    """The engine's base layer, then the apps' layers (`apps`, in order), then each named industry template
    (a folder under `templates_path`, by default `root`/industry_templates), then the site's own folder."""
    folder = Path(templates_path) if templates_path is not None else Path(root) / "industry_templates"
    available = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    problems = [
        Problem.at(
            display_path(folder / name),
            0,
            0,
            f"unknown industry template {name!r}",
            hint=closest(name, available),
        )
        for name in templates
        if name not in available
    ]
    if custom is not None and not Path(custom).is_dir():
        problems.append(Problem(display_path(Path(custom)), 0, 0, "custom metadata folder not found"))
    if problems:
        raise MetadataError(problems)
    return [
        BASE_LAYER,
        *(Path(app) for app in apps),
        *(folder / name for name in templates),
        *([Path(custom)] if custom is not None else []),
    ]


KEEP = 8  # the loads remembered, the most recently used ones
_loaded: dict[tuple, Metadata | list[Problem]] = {}


def load_metadata(layers: Sequence[Path | str]) -> Metadata:
    """Read, merge and check the layers in order; raises MetadataError listing every problem found.

    A Metadata never changes once loaded, so loading files of the same contents again (a command run in-process,
    the tests opening hundreds of platforms, a worker reloading unchanged metadata) gives the same Metadata object
    — and what the runtime built from it (`derived.per_metadata`) — without building and checking it again."""
    paths = [Path(layer) for layer in layers]
    files = _files(paths)
    key = (tuple(map(str, paths)), files)
    loaded = _loaded.pop(key, None) or _load(paths, files)
    _loaded[key] = loaded  # the most recent last
    if len(_loaded) > KEEP:
        del _loaded[next(iter(_loaded))]
    if isinstance(loaded, list):
        raise MetadataError(list(loaded))
    return loaded


def _load(paths: list[Path], files: tuple[tuple[int, str, bytes | None], ...]) -> Metadata | list[Problem]:
    problems: list[Problem] = []
    rejected: set[str] = set()
    docs = [doc for doc in _read(files, problems) if _usable(doc, problems, rejected)]
    builder = Builder(rejected)
    problems.extend(builder.build(docs))
    for doc in docs:
        problems.extend(CHECKS[doc.data["kind"]](doc, builder.catalog))
    if problems:
        return sorted(problems, key=lambda p: (p.file, p.line, p.col))
    catalog = builder.catalog
    return Metadata(
        MappingProxyType(dict(sorted(catalog.objects.items()))),  # by name, whichever layer defines each
        MappingProxyType(catalog.picklists),
        MappingProxyType(catalog.roles),
        MappingProxyType(catalog.flows),
        MappingProxyType(catalog.reports),
        layers=tuple(map(str, paths)),
        dashboards=MappingProxyType(catalog.dashboards),
        navigation=tuple(catalog.navigation.values()),
        report_folders=tuple(catalog.report_folders.values()),
    )


def check_definition(metadata: Metadata, data: dict[str, Any], source: Source) -> list[Problem]:
    """The load checks of one flow or report document kept outside the layers (a report a user saves in
    the database) against the loaded `metadata`: its kind's schema, then its references. Each problem
    names its JSON path; an empty list means `data` loads as it would from a file."""
    doc = Document(source.file, 0, data, data, ("",))
    problems = [problem for _, problem in schema_errors(doc)]
    if problems:
        return problems
    own = build_definition(data, source)
    catalog = Catalog(dict(metadata.objects), dict(metadata.picklists), dict(metadata.roles), dict(metadata.flows),
                      dict(metadata.reports), report_folders={f.key: f for f in metadata.report_folders})
    registry = catalog.reports if data["kind"] == "report" else catalog.flows
    registry[own.name] = replace(own, source=doc.source())  # its own name may repeat a shipped one's
    return list(CHECKS[data["kind"]](doc, catalog))


class Locator:
    """Places the problems a check finds after loading (the runtime's) in the files the definitions came
    from: each file is read again once, which only a mistake pays for."""

    def __init__(self) -> None:
        self._documents: dict[str, list[Document]] = {}

    def problem(self, source: Source, at: JsonPath, path: JsonPath, message: str, hint: str | None = None) -> Problem:
        """A problem at `path` inside the part `at` of the document whose part `at` loaded from `source`; at
        `source` itself when its file no longer holds that part there."""
        for doc in self._read(source.file):
            if doc.source(at) == source:
                return doc.problem((*at, *path), message, hint)
        return Problem.at(source.file, source.line, source.col, message, json_path((*at, *path)), hint)

    def setting(self, obj: ObjectDef, path: JsonPath, message: str, hint: str | None = None) -> Problem:
        """A problem at `path` of the object `obj` (`behaviors.pool.pool_object`), in the last of its object
        and object_extension documents that writes the longest part of that path: the layer that set it."""
        found, depth = None, -1
        for file in (obj.source.file, *obj.extended_by):
            for doc in self._read(file):
                data = doc.data
                if not (isinstance(data, dict) and obj.name in (data.get("name"), data.get("object"))
                        and data.get("kind") in ("object", "object_extension")):
                    continue
                held = _held(data, path)
                if held >= depth:
                    found, depth = doc, held
        if found is None:
            return Problem.at(obj.source.file, obj.source.line, obj.source.col, message, json_path(path), hint)
        return found.problem(path, message, hint)

    def _read(self, file: str) -> list[Document]:
        if file not in self._documents:
            try:
                self._documents[file] = list(read_documents(Path(file), file, 0))
            except (OSError, YamlError):
                self._documents[file] = []
        return self._documents[file]


def _held(data: Any, path: JsonPath) -> int:
    """How many keys of `path`, from the start, `data` holds."""
    for held, key in enumerate(path):
        if not (isinstance(data, dict) and key in data or isinstance(data, list) and isinstance(key, int)
                and key < len(data)):
            return held
        data = data[key]
    return len(path)


def display_path(path: Path) -> str:
    """A path as problems show it: relative to the current directory when inside it, else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative.startswith("..") else relative


def _files(layers: list[Path]) -> tuple[tuple[int, str, bytes | None], ...]:
    """Every YAML file of every layer, in layer order and path order within a layer, as (layer index, the path as
    problems show it, its content); a layer that is no folder as (its index, its path, None)."""
    files = []
    for index, layer in enumerate(layers):
        if not layer.is_dir():
            files.append((index, display_path(layer), None))
        for folder in FOLDERS:
            for path in sorted(p for p in (layer / folder).rglob("*") if p.suffix in (".yaml", ".yml")):
                files.append((index, display_path(path), path.read_bytes()))
    return tuple(files)


def _read(files: tuple[tuple[int, str, bytes | None], ...], problems: list[Problem]) -> list[Document]:
    """Every document of the layers' `files`."""
    docs = []
    for index, file, content in files:
        if content is None:
            problems.append(Problem(file, 0, 0, "metadata folder not found"))
            continue
        try:
            docs.extend(documents(content, file, index))
        except YamlError as e:
            problems.append(Problem(file, e.line, e.col, e.message))
    return docs


def _usable(doc: Document, problems: list[Problem], rejected: set[str]) -> bool:
    """Whether a document can be built, after recording its kind and schema problems.

    A document with schema errors is left out and its names recorded in `rejected`, so that
    references to them do not add noise; except when all the errors are inside field definitions:
    those fields keep only their type and are recorded as `object.field`.
    """
    if kind_problems := list(check_kind(doc)):
        problems.extend(kind_problems)
        return False
    errors = list(schema_errors(doc))
    problems.extend(problem for _, problem in errors)
    data = doc.data
    if (
        errors
        and data["kind"] in ("object", "object_extension")
        and all(len(path) > 1 and path[0] == "fields" for path, _ in errors)
    ):
        for name in {path[1] for path, _ in errors}:
            spec = data["fields"][name]
            data["fields"][name] = {"label": {"en": name}}
            if isinstance(spec, dict) and isinstance(spec.get("type"), str):
                data["fields"][name]["type"] = spec["type"]
            rejected.add(f"{data.get('name') or data['object']}.{name}")
        return True
    if errors:
        rejected.update(_names(data))
    return not errors


def _names(data: dict) -> list[str]:
    """The names a document defines: an object's, a picklist's, or its roles."""
    if data["kind"] == "roles":
        return list(data["roles"]) if isinstance(data.get("roles"), dict) else []
    return (
        [data["name"]] if data["kind"] in ("object", "picklist") and isinstance(data.get("name"), str) else []
    )
