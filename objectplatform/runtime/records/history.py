"""The audit history: who changed which field of which record when, from what to what.

Values are kept as JSON text: decimals as strings (exact), dates and date-times in ISO 8601,
references as id strings; a password's value is never written, only that it changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from . import masking

PACKED = "*"  # the `field` of a row packing one record's entries of a set-based write: [[field, old, new], ...]


def jsonable(value: Any) -> Any:
    """A record-form value as plain JSON data."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def history_text(value: Any) -> str | None:
    """A value as the history stores it: JSON text, or None."""
    return None if value is None else json.dumps(jsonable(value), ensure_ascii=False)


def entry(obj: str, record_id: int, change: str, field: str | None, old: Any, new: Any,
          user: str | None, at: datetime) -> dict:
    """One history row, ready for an (executemany) INSERT."""
    return {"object": obj, "record_id": int(record_id), "change": change, "field": field,
            "old_value": history_text(old), "new_value": history_text(new),
            "user_id": None if user is None else int(user), "at": at.replace(tzinfo=None)}


def write(conn: sa.Connection, history: sa.Table, entries: list[dict]) -> None:
    if entries:
        conn.execute(history.insert(), entries)


def write_created(conn: sa.Connection, history: sa.Table, obj: str, table: sa.Table, ids: list[int],
                  user: str | None, at: datetime) -> None:
    """One "create" entry per record of a bulk insert, copied from the table by one INSERT ... SELECT."""
    if not ids:
        return
    contiguous = ids[-1] - ids[0] == len(ids) - 1  # sorted and consecutive: an id range
    rows = sa.select(
        sa.literal(obj, history.c.object.type), table.c.id, sa.literal("create", history.c.change.type),
        sa.literal(None if user is None else int(user), history.c.user_id.type),
        sa.literal(at.replace(tzinfo=None), history.c.at.type),
    ).where(table.c.id.between(ids[0], ids[-1]) if contiguous else table.c.id.in_(ids)).order_by(table.c.id)
    conn.execute(history.insert().from_select(["object", "record_id", "change", "user_id", "at"], rows))


def read(conn: sa.Connection, history: sa.Table, obj: str, record_id: int) -> list[dict]:
    """The record's entries, oldest first: {"change", "field", "old", "new", "user", "at"}; the entry of a
    field holding several values (a team's users, options) also says which were "added" and "removed"."""
    rows = conn.execute(
        sa.select(history).where(history.c.object == obj, history.c.record_id == record_id).order_by(history.c.id)
    ).mappings()
    entries = []
    for r in rows:
        if r["field"] == PACKED:
            changed = json.loads(r["new_value"])
        else:
            changed = [(r["field"], None if r["old_value"] is None else json.loads(r["old_value"]),
                        None if r["new_value"] is None else json.loads(r["new_value"]))]
        for field, old, new in changed:
            entry = {"change": r["change"], "field": field, "old": old, "new": new,
                     "user": None if r["user_id"] is None else str(r["user_id"]), "at": r["at"].replace(tzinfo=UTC)}
            if field is not None and (isinstance(old, list) or isinstance(new, list)):
                entry.update(added=[v for v in new or [] if v not in (old or [])],
                             removed=[v for v in old or [] if v not in (new or [])])
            entries.append(entry)
    return entries


def left(history: sa.Table, field: str, old: Any) -> sa.ColumnElement[bool]:
    """The entries (single or packed) of a change of `field` from the value `old` (the JSON text of a packed
    row's entry starts with its field and old value, and a JSON string cannot hold that text unescaped)."""
    pattern = json.dumps([field, jsonable(old)], ensure_ascii=False, separators=(",", ":"))[:-1] + ","
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.or_(sa.and_(history.c.field == field, history.c.old_value == history_text(old)),
                  sa.and_(history.c.field == PACKED, history.c.new_value.like(f"%{escaped}%", escape="\\")))


def masked(entries: list[dict], mask, current: Mapping[str, Any] | None) -> list[dict]:
    """`entries` as the caller of `mask` (records/masking.FieldMask) may see them: a field their roles hide
    has no entries, a field hidden on the record now (`current`; a deleted record: as its deletion's entry
    keeps it) shows masked values, and the record a deletion's entry keeps is masked as the record would be."""
    if current is None:
        current = next((e["old"] for e in reversed(entries)
                        if e["change"] == "delete" and e["field"] is None and isinstance(e["old"], Mapping)), None)
    hidden_now = mask.hidden if current is None else mask.hidden_on(current)
    shown = []
    for entry in entries:
        name = entry["field"]
        if name in mask.hidden:
            continue
        if name in hidden_now:
            kind = mask.obj.fields[name].type
            entry = {**entry, "old": masking.masked_value(kind, entry["old"]),
                     "new": masking.masked_value(kind, entry["new"])}
            entry.pop("added", None)
            entry.pop("removed", None)
        elif name is None and isinstance(entry["old"], Mapping):  # a deletion keeps the whole record
            entry = {**entry, "old": mask(entry["old"])}
        shown.append(entry)
    return shown


def changes(before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str]) -> dict[str, tuple]:
    """{field: (old, new)} for the fields whose value really differs."""
    return {f: (before.get(f), after.get(f)) for f in fields if before.get(f) != after.get(f)}
