"""Sales processes (kind: sales_process) as typed stages and tasks, and the process an owner's department gets.

The metadata keeps a process as validated data; this module gives the runtime (the staged behavior,
the pages, reports) one typed reading of it. A process is assigned to departments by name: an
opportunity's owner gets the process of their own department, else of the nearest department above
it (华北区 -> 销售部), else the first process defined for the object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, Metadata, Source

from .expressions_sql import days_between, register_derived_values


@dataclass(frozen=True)
class Task:
    key: str
    label: Label
    required: bool = False


@dataclass(frozen=True)
class Stage:
    key: str
    label: Label
    probability: Decimal
    tasks: tuple[Task, ...] = ()
    required_fields: tuple[str, ...] = ()
    approval: Mapping[str, Any] | None = None  # the approver spec entering this stage needs, or None

    def task(self, key: str) -> Task | None:
        return next((t for t in self.tasks if t.key == key), None)

    def title(self) -> str:
        """How messages name the stage: its Chinese label and key, e.g. "引导立项 (initiation)"."""
        return f"{self.label.zh} ({self.key})"


@dataclass(frozen=True)
class Process:
    name: str
    label: Label
    object: str
    stages: tuple[Stage, ...]
    source: Source
    departments: tuple[str, ...] = ()
    avg_cycle_days: int | None = None
    close_reminder_days: int | None = None

    def stage(self, key: str | None) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)

    def after(self, key: str) -> Stage | None:
        """The stage following `key` (None after the last one)."""
        keys = [s.key for s in self.stages]
        i = keys.index(key)
        return self.stages[i + 1] if i + 1 < len(self.stages) else None

    @property
    def first(self) -> Stage:
        return self.stages[0]

    @property
    def last(self) -> Stage:
        return self.stages[-1]


def processes(metadata: Metadata, obj: str = "opportunity") -> list[Process]:
    """The sales processes of `obj`, in the order the metadata defines them."""
    return [_process(d.name, d.data, d.object or obj, d.source) for d in metadata.flows.values()
            if d.kind == "sales_process" and (d.object or "opportunity") == obj]


def process(metadata: Metadata, name: str | None, obj: str = "opportunity") -> Process | None:
    return next((p for p in processes(metadata, obj) if p.name == name), None)


def _process(name: str, data: Mapping[str, Any], obj: str, source: Source) -> Process:
    stages = tuple(
        Stage(s["key"], _label(s["label"]), Decimal(str(s["probability"])),
              tuple(Task(t["key"], _label(t["label"]), bool(t.get("required"))) for t in s.get("tasks", ())),
              tuple(s.get("required_fields", ())), s.get("approval") or None)
        for s in data["stages"])
    return Process(name, _label(data["label"]), obj, stages, source, tuple(data.get("departments", ())),
                   data.get("avg_cycle_days"), data.get("close_reminder_days"))


def _label(value: Mapping[str, str]) -> Label:
    """A zh/en label as the loader builds it (the public metadata keeps flows as data)."""
    zh, en = value.get("zh", ""), value.get("en", "")
    return Label(zh or en, en or zh)


def department_path(conn: sa.Connection, schema, department: Any) -> list[str]:
    """The names of `department` and of every department above it, nearest first (one query)."""
    if department is None or "department" not in schema.objects:
        return []
    dt = schema["department"]
    rows = conn.execute(sa.select(dt.table.c.id, dt.column("parent"), dt.column("name"))).all()
    parents = {i: p for i, p, _ in rows}
    names = {i: n for i, _, n in rows}
    path: list[str] = []
    seen: set[int] = set()
    current = int(department)
    while current is not None and current in names and current not in seen:
        seen.add(current)
        path.append(names[current])
        current = parents.get(current)
    return path


def pick(candidates: Sequence[Process], departments: Sequence[str]) -> Process | None:
    """The process of the nearest of `departments` (names, nearest first) that one is assigned to; else
    the first process; None when there is none."""
    for name in departments:
        for p in candidates:
            if name in p.departments:
                return p
    return candidates[0] if candidates else None


def process_for_owner(platform, owner: Any, obj: str = "opportunity") -> Process | None:
    """The process a new record of `obj` owned by `owner` (a user id) gets when none is chosen: as `pick` says
    for the owner's department (the form's default)."""
    schema = platform.schema
    with platform.engine.connect() as conn:
        department = None
        if owner is not None and "user" in schema.objects:
            users = schema["user"]
            department = conn.execute(sa.select(users.column("department"))
                                      .where(users.table.c.id == int(owner))).scalar()
        return pick(processes(platform.metadata, obj), department_path(conn, schema, department))


def derived_sql(platform, obj: str, now: datetime) -> dict[str, sa.ColumnElement]:
    """What a rule condition over a staged object may name besides its fields, as SQL as of `now`: the
    record's process settings (`process.avg_cycle_days`, `process.close_reminder_days`, empty when the
    process sets none; `process.stage_count`), `days_in_stage` (whole days since the current stage was
    entered, from the open stage_history row) and `days_to_close` (whole days from today until
    `expected_close_date`, negative once it passed)."""
    ot = platform.schema[obj]
    chosen = ot.column("sales_process")
    defined = processes(platform.metadata, obj)

    def setting(value_of) -> sa.ColumnElement:
        values = {p.name: value_of(p) for p in defined if value_of(p) is not None}
        if not values:
            return sa.cast(sa.null(), sa.Numeric())
        return sa.case({name: sa.literal(Decimal(v), sa.Numeric()) for name, v in values.items()},
                       value=chosen, else_=sa.cast(sa.null(), sa.Numeric()))

    today = sa.literal(now.date(), sa.Date())
    history = platform.schema["stage_history"]
    entered = (sa.select(sa.func.max(history.column("entered_at")))
               .where(history.column("opportunity") == ot.table.c.id, history.column("left_at").is_(None))
               .scalar_subquery())
    values = {
        "process.avg_cycle_days": setting(lambda p: p.avg_cycle_days),
        "process.close_reminder_days": setting(lambda p: p.close_reminder_days),
        "process.stage_count": setting(lambda p: len(p.stages)),
        "days_in_stage": days_between(entered, today),
    }
    if "expected_close_date" in ot.columns:
        values["days_to_close"] = days_between(today, ot.column("expected_close_date"))
    return values


register_derived_values("sales_process", derived_sql)
