"""Personal reports (我的报表): a `kind: report` definition a user builds in the report builder and saves for
themselves, stored in the database in the structure of a report template and run by the same engine.

(How it works: docs/engine.md, "objectplatform/runtime/reports/personal.py".)"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from objectplatform.metadata import Metadata, Report, Source, build_definition, check_definition, plain

from ..errors import BadRequest, Forbidden, Message, NotFound, ValidationFailed
from ..permissions import Access
from ..records.query import InvalidFilter
from ..storage.engine import reading
from .compile import Joins, column_name
from .filters import condition, split
from .paths import resolve
from .run import available, definition

SOURCE = "<personal report>"
# the order keys take in a saved definition and in its YAML, as the shipped templates write them
ORDER = ("kind", "name", "label", "object", "engine", "dimensions", "columns", "measures", "filters",
         "runtime_filters", "scene", "sort", "limit", "totals", "chart", "home")
RESERVED = frozenset({"new"})  # /reports/new is the builder
REQUIRED = re.compile(r"'([a-z_]+)' is a required property")


@dataclass(frozen=True)
class PersonalReport:
    """A saved report: its row id, owner, the definition the engine runs, and when it was saved."""

    id: str
    owner: str
    definition: Report
    created_at: datetime
    updated_at: datetime


def is_personal(report: Report) -> bool:
    return report.source.file == SOURCE


# ------------------------------------------------------------------------------------------ checking


def check(platform, data: Any, access: Access | None = None) -> dict[str, Any]:
    """The definition `data` (a report template's structure; `kind` may be left out) in its saved form.

    Raises ValidationFailed naming each problem under its JSON path, Forbidden when `access` may not read
    the report's object.
    """
    if not isinstance(data, Mapping):
        raise BadRequest(Message("report.definition_not_an_object",
                                 "a report definition is an object: name, label, object, dimensions, measures, ..."))
    data = {"kind": "report", **data}
    problems = _load_problems(platform.metadata, data)
    if not problems:
        problems = _storage_problems(platform, data)
    if problems:
        (path, messages), count = next(iter(problems.items())), sum(map(len, problems.values()))
        raise ValidationFailed(problems, Message("report.definition_problem", "{path}: {problem}", path=path,
                                                 problem=messages[0]) if len(problems) == 1
                               else Message("report.definition_problems", "{count} problems in the report definition",
                                            count=count))
    if access is not None:
        access.require(data["object"], "read")
    return {key: data[key] for key in sorted(data, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))}


def _load_problems(metadata: Metadata, data: dict[str, Any]) -> dict[str, list[str]]:
    """The metadata loader's schema and report checks on `data`, by JSON path (the whole definition: "")."""
    if data["kind"] != "report":  # the loader checks flows too: a personal definition is a report
        return {"kind": [Message("report.kind_not_report", "must be 'report'")]}
    problems: dict[str, list[str]] = {}
    for problem in check_definition(metadata, data, Source(SOURCE)):
        path, missing = problem.path, REQUIRED.fullmatch(problem.message)
        if missing:  # a missing key is shown where it belongs
            path = f"{path}.{missing.group(1)}".lstrip(".")
        problems.setdefault(path, []).append(problem.message)
    return problems


def _storage_problems(platform, data: dict[str, Any]) -> dict[str, list[str]]:
    """What the load checks cannot know: each column is one stored column; each fixed filter's value fits."""
    schema, base, problems = platform.schema, data["object"], {}
    dimensions = [(f"dimensions[{i}]", d) for i, d in enumerate(data.get("dimensions", ()))]
    dimensions += [("columns", data["columns"])] if "columns" in data else []
    for at, d in dimensions:
        try:
            Joins(schema, base).column(resolve(platform.metadata, base, d["field"]))
        except BadRequest as e:
            problems.setdefault(f"{at}.field", []).append(e.message)
    for i, m in enumerate(data.get("measures", ())):
        if "field" in m:
            try:
                path = resolve(platform.metadata, base, m["field"])
                column_name(schema, path.object, path.field)
            except BadRequest as e:
                problems.setdefault(f"measures[{i}].field", []).append(e.message)
    moment = platform.local_now()
    for name, value in data.get("filters", {}).items():
        text, op = split(name)
        try:
            path = resolve(platform.metadata, base, text)
            condition(Joins(schema, base).column(path), path.type, op, value, moment)
        except (BadRequest, InvalidFilter) as e:
            problems.setdefault(f"filters.{name}", []).append(e.message if isinstance(e, BadRequest) else str(e))
    return problems


def unsaved(checked: Mapping[str, Any]) -> Report:
    """A checked definition as the engine runs it before it is saved (the builder's Run)."""
    return build_definition(checked, Source(SOURCE))


# ------------------------------------------------------------------------------------------- storing


def mine(platform, access: Access) -> list[PersonalReport]:
    """The caller's personal reports whose object they may still read, by name."""
    table = platform.schema.reports
    with reading(platform.engine) as conn:
        rows = conn.execute(sa.select(table).where(table.c.owner == int(access.user_id))
                            .order_by(table.c.name)).mappings().all()
    found = [_from_row(row) for row in rows]
    return [r for r in found if access.can(r.definition.object, "read")]


def get(platform, access: Access, name: str) -> PersonalReport | None:
    """The caller's personal report named `name`, if they have one."""
    table = platform.schema.reports
    with reading(platform.engine) as conn:
        row = conn.execute(sa.select(table).where(table.c.owner == int(access.user_id), table.c.name == name)
                           ).mappings().first()
    return _from_row(row) if row else None


def find(platform, access: Access | None, name: str) -> Report:
    """The report `name` for the caller: their personal report of that name, else the shipped one. A personal
    report is checked again, so one a metadata change broke says what no longer resolves (ValidationFailed)."""
    if access is not None:
        personal = get(platform, access, name)
        if personal is not None:
            check(platform, plain(personal.definition.document))
            return personal.definition
    return definition(platform.metadata, name)


def listed(platform, access: Access | None) -> list[Report]:
    """The reports the caller may run: the shipped ones (unless a personal one of theirs has the name), then
    their personal ones, each group by name."""
    shipped = available(platform.metadata, access)
    if access is None:
        return shipped
    own = [r.definition for r in mine(platform, access)]
    names = {r.name for r in own}
    return [r for r in shipped if r.name not in names] + own


def create(platform, access: Access, data: Any) -> PersonalReport:
    """Save `data` as a new personal report of the caller; ValidationFailed when a name is taken."""
    checked = check(platform, data, access)
    table, at = platform.schema.reports, _stamp(platform)
    with platform.engine.begin() as conn:
        _name_free(platform, conn, access, checked["name"])
        id_ = conn.execute(table.insert().values(owner=int(access.user_id), **_columns(checked), created_at=at,
                                                 updated_at=at)).inserted_primary_key[0]
    return PersonalReport(str(id_), access.user_id, build_definition(checked, Source(SOURCE, int(id_))), at, at)


def update(platform, access: Access, name: str, data: Any) -> PersonalReport:
    """Replace the caller's personal report `name` by `data` (its name may change)."""
    current = editable(platform, access, name)
    data = {"name": name, **data} if isinstance(data, Mapping) else data
    checked = check(platform, data, access)
    table, at = platform.schema.reports, _stamp(platform)
    with platform.engine.begin() as conn:
        if checked["name"] != name:
            _name_free(platform, conn, access, checked["name"])
        conn.execute(table.update().where(table.c.id == int(current.id)).values(**_columns(checked), updated_at=at))
    return PersonalReport(current.id, current.owner, build_definition(checked, current.definition.source),
                          current.created_at, at)


def delete(platform, access: Access, name: str) -> None:
    current = editable(platform, access, name)
    table = platform.schema.reports
    with platform.engine.begin() as conn:
        conn.execute(table.delete().where(table.c.id == int(current.id)))


def editable(platform, access: Access, name: str) -> PersonalReport:
    """The caller's personal report `name`; Forbidden for a shipped report, NotFound for anything else."""
    current = get(platform, access, name)
    if current is not None:
        return current
    if name in platform.metadata.reports and access.can(platform.metadata.reports[name].object, "read"):
        raise Forbidden(Message("report.shipped", "{report} is a shipped report: it changes in report_templates/, not "
                                "here", report=name))
    raise NotFound(Message("report.unknown", "unknown report {report}", report=name))


def _name_free(platform, conn: sa.Connection, access: Access, name: str) -> None:
    if name in RESERVED:
        raise ValidationFailed({"name": [Message("report.name_reserved", "{name!r} is reserved for the report pages: "
                                                "choose another name", name=name)]})
    if name in platform.metadata.reports:
        raise ValidationFailed({"name": [Message("report.name_shipped", "a shipped report is named {name!r}: choose "
                                                "another name", name=name)]})
    table = platform.schema.reports
    taken = conn.execute(sa.select(table.c.id).where(table.c.owner == int(access.user_id), table.c.name == name)
                         ).first()
    if taken:
        raise ValidationFailed({"name": [Message("report.name_taken", "you already have a report named {name!r}",
                                                name=name)]})


def _columns(checked: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": checked["name"], "label": json.dumps(checked["label"], ensure_ascii=False),
            "definition": json.dumps(checked, ensure_ascii=False)}


def _from_row(row: Mapping[str, Any]) -> PersonalReport:
    data = json.loads(row["definition"])
    return PersonalReport(str(row["id"]), str(row["owner"]), build_definition(data, Source(SOURCE, int(row["id"]))),
                          row["created_at"], row["updated_at"])


def _stamp(platform) -> datetime:
    """The platform's time as the reports table stores it (UTC, naive)."""
    return platform.clock.now().astimezone(UTC).replace(tzinfo=None)


# ------------------------------------------------------------------------------------------- exporting


def as_yaml(report: Report, note: str | None = None) -> str:
    """The definition as a `report_templates/` file: block style at the top, one flow mapping per dimension,
    measure and filter, Chinese as it is; `note` becomes a comment on top."""
    out = CommentedMap()
    data = {"kind": "report", **plain(report.document)}
    for key in sorted(data, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER)):
        out[key] = _flow(data[key], top=key)
    if note:
        out.yaml_set_start_comment(note)
    yaml = YAML(typ="rt")
    yaml.width = 200
    yaml.allow_unicode = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(out, buffer)
    return buffer.getvalue()


def _flow(value: Any, top: str | None = None) -> Any:
    """Mappings and short lists in flow style ({key: x, field: y}); the top-level lists stay block lists."""
    if isinstance(value, Mapping):
        made = CommentedMap((k, _flow(v)) for k, v in value.items())
        made.fa.set_flow_style()
        return made
    if isinstance(value, list):
        made = CommentedSeq(_flow(v) for v in value)
        if top not in ("dimensions", "measures", "runtime_filters"):
            made.fa.set_flow_style()
        return made
    return value
