"""Sales processes (kind: sales_process) as typed stages and tasks, and the process an owner's department gets.

The metadata keeps a process as validated data; this module gives the runtime (the staged behavior,
the pages, reports) one typed reading of it. A process is assigned to departments by name: an
opportunity's owner gets the process of their own department, else of the nearest department above
it (华北区 -> 销售部), else the first process defined for the object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, Metadata, Source


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
