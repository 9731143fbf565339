"""Sales processes (kind: sales_process, typed by the metadata) by object, and the process an owner's department gets.

A process is assigned to departments by name: an opportunity's owner gets the process of their own
department, else of the nearest department above it (华北区 -> 销售部), else the first process defined
for the object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Metadata, Stage, Task
from objectplatform.metadata import SalesProcess as Process

__all__ = ["Process", "Stage", "Task", "department_path", "pick", "process", "process_for_owner", "processes"]


def processes(metadata: Metadata, obj: str | None = None) -> list[Process]:
    """The sales processes of `obj` (of every object when None), in the order the metadata defines them."""
    return [d for d in metadata.flows.values() if d.kind == "sales_process" and obj in (None, d.object)]


def process(metadata: Metadata, name: str | None, obj: str | None = None) -> Process | None:
    return next((p for p in processes(metadata, obj) if p.name == name), None)


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


def process_for_owner(platform, owner: Any, obj: str) -> Process | None:
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
