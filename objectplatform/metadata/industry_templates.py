"""Industry templates (editions): each folder's manifest, `template.yaml`, read and held to its requirements
(the platform version, the apps, the editions it depends on or conflicts with) before its layer loads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from ._schema import MANIFEST_KIND, NAME, schema_errors
from ._yaml import Document, YamlError, read_documents
from .loader import FOLDERS, display_path
from .model import Label
from .problems import MetadataError, Problem, closest

MANIFEST = "template.yaml"


@dataclass(frozen=True)
class Manifest:
    """What an edition says of itself. `requires`: a version range of the platform ("" for any), `apps`: the apps
    (OBJECTPLATFORM_APPS names) whose objects it builds on."""

    name: str
    label: Label
    version: str
    description: Label
    requires: str
    apps: tuple[str, ...]
    depends: tuple[str, ...]
    conflicts: tuple[str, ...]
    document: Document  # where each of its settings is written, for the problems that name one

    def problem(self, *path: str | int, message: str, hint: str | None = None) -> Problem:
        return self.document.problem(path, message, hint)


@dataclass(frozen=True)
class Adds:
    """What an edition's own documents add: objects it defines, fields it defines or adds, reports, flows."""

    objects: int
    fields: int
    reports: int
    flows: int


def template_name(name: str) -> bool:
    """Whether `name` may name an edition: a metadata name (lowercase letters, digits and _, from a letter)."""
    return NAME.fullmatch(name) is not None


def available_templates(folder: Path) -> list[str]:
    """The editions in `folder` (the industry templates' folder): its subfolders, by name."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the edition in `folder`; MetadataError with every problem of it, at file:line."""
    path = folder / MANIFEST
    file = display_path(path)
    if not path.is_file():
        raise MetadataError([Problem(file, 0, 0, f"industry template {folder.name!r} has no manifest {MANIFEST} "
                                                 "(`objectplatform templates new` writes one)")])
    try:
        docs = list(read_documents(path, file, 0))
    except YamlError as e:
        raise MetadataError([Problem(file, e.line, e.col, e.message)]) from None
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        raise MetadataError([Problem(file, 1, 1, f"a manifest is one mapping that starts with kind: {MANIFEST_KIND}")])
    doc = docs[0]
    if doc.data.get("kind") != MANIFEST_KIND:
        raise MetadataError([doc.problem(("kind",), f"a manifest starts with kind: {MANIFEST_KIND}")])
    problems = [problem for _, problem in schema_errors(doc)]
    data = doc.data
    if not problems and data["name"] != folder.name:
        problems.append(doc.problem(("name",), f"the manifest names {data['name']!r} but its folder is "
                                               f"{folder.name!r}: they must be the same"))
    requires = data.get("requires", {})
    if not problems and "objectplatform" in requires:
        try:
            SpecifierSet(requires["objectplatform"])
        except InvalidSpecifier:
            problems.append(doc.problem(("requires", "objectplatform"), "not a version range: write it like "
                                                                        "'>=0.1,<1'"))
    if problems:
        raise MetadataError(problems)
    return Manifest(
        data["name"], Label.of(data["label"]), data["version"], Label.of(data.get("description")),
        requires.get("objectplatform", ""), tuple(requires.get("apps", ())), tuple(data.get("depends", ())),
        tuple(data.get("conflicts", ())), doc,
    )


def template_order(folder: Path, names: Sequence[str], platform_version: str, apps: Sequence[str]) -> list[str]:
    """The editions `names` in the order their layers load (an edition after those it depends on, otherwise as
    named), once each manifest is read and its requirements met; MetadataError lists every problem, at the
    manifest's file:line."""
    names = list(dict.fromkeys(names))
    available = available_templates(folder)
    problems: list[Problem] = []
    manifests: dict[str, Manifest] = {}
    for name in names:
        if name not in available:
            problems.append(Problem.at(display_path(folder / name), 0, 0, f"unknown industry template {name!r}",
                                       hint=closest(name, available)))
            continue
        try:
            manifests[name] = read_manifest(folder / name)
        except MetadataError as e:
            problems.extend(e.problems)
    for manifest in manifests.values():
        problems.extend(_unmet(manifest, names, available, platform_version, apps))
    if problems:
        raise MetadataError(problems)
    return _dependencies_first(manifests, names)


def _unmet(manifest: Manifest, enabled: list[str], available: list[str], platform_version: str,
           apps: Sequence[str]) -> list[Problem]:
    """The requirements of `manifest` the site does not meet."""
    problems = []
    if manifest.requires and Version(platform_version) not in SpecifierSet(manifest.requires):
        problems.append(manifest.problem("requires", "objectplatform", message=(
            f"industry template {manifest.name!r} requires objectplatform {manifest.requires}; this is "
            f"{platform_version}")))
    for i, app in enumerate(manifest.apps):
        if app not in apps:
            problems.append(manifest.problem("requires", "apps", i, message=(
                f"industry template {manifest.name!r} builds on the app {app!r}, which is not enabled "
                f"(OBJECTPLATFORM_APPS: {', '.join(apps) or 'none'})")))
    for i, other in enumerate(manifest.depends):
        if other not in available:
            problems.append(manifest.problem("depends", i, message=f"unknown industry template {other!r}",
                                             hint=closest(other, available)))
        elif other not in enabled:
            problems.append(manifest.problem("depends", i, message=(
                f"industry template {manifest.name!r} depends on {other!r}, which is not enabled: "
                f"`objectplatform templates enable {other}` first")))
    for i, other in enumerate(manifest.conflicts):
        if other in enabled:
            problems.append(manifest.problem("conflicts", i, message=(
                f"industry template {manifest.name!r} conflicts with {other!r}, which is enabled: "
                "a site runs one of them")))
    return problems


def _dependencies_first(manifests: dict[str, Manifest], names: list[str]) -> list[str]:
    """`names` with each edition after the editions it depends on; a cycle is a problem at its first link."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            manifest = manifests[visiting[-1]]
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise MetadataError([manifest.problem("depends", manifest.depends.index(name),
                                                  message=f"industry templates depend on each other: {cycle}")])
        visiting.append(name)
        for other in manifests[name].depends:
            visit(other)
        visiting.pop()
        order.append(name)

    for name in names:
        visit(name)
    return order


def template_adds(folder: Path) -> Adds:
    """Count what the documents of the edition in `folder` add (a document that does not read is not counted:
    `check` reports it)."""
    objects = fields = reports = flows = 0
    for sub in FOLDERS:
        for path in sorted(p for p in (folder / sub).rglob("*") if p.suffix in (".yaml", ".yml")):
            try:
                docs = [doc.data for doc in read_documents(path, str(path), 0)]
            except YamlError:
                continue
            for data in docs:
                kind = data.get("kind") if isinstance(data, dict) else None
                objects += kind == "object"
                if kind in ("object", "object_extension") and isinstance(data.get("fields"), dict):
                    fields += len(data["fields"])
                reports += kind == "report"
                flows += kind in ("approval_flow", "sales_process", "rule")
    return Adds(objects, fields, reports, flows)
