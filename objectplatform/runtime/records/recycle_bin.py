"""The recycle bin (回收站): a delete moves the record, its master_detail children and what cascades to one entry,
which an administrator restores until the purge removes it after the retention period.

(How it works: docs/engine.md, "objectplatform/runtime/records/recycle_bin.py".)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, Metadata, ObjectDef

from ..derived import per_metadata
from ..errors import Conflict, Message, NotFound, said_label, said_list
from ..storage.convert import from_db, from_row, to_db
from ..storage.engine import defer_foreign_keys
from ..storage.tables import ObjectTable
from . import history, hooks

SINGLE_REFERENCES = frozenset({"lookup", "department", "user"})  # followed on delete (master_detail: children)
RESTORED_REFERENCES = SINGLE_REFERENCES | {"master_detail"}  # must name a record again on restore
Node = dict  # {"object", "row": {column: JSON value}, "children": [Node]}
Found = tuple[str, FieldDef, set[int]]  # (referencing object, its field, the ids of its records naming the deleted)


@per_metadata
def referrers(metadata: Metadata) -> dict[str, list[tuple[str, FieldDef]]]:
    """For each object, the (object, field) of every single reference to it other than a master_detail."""
    found: dict[str, list[tuple[str, FieldDef]]] = {}
    for obj in metadata.objects.values():
        for f in obj.fields.values():
            if f.type in SINGLE_REFERENCES and f.to:
                found.setdefault(f.to, []).append((obj.name, f))
    return found


def title_of(obj: ObjectDef, record: Mapping[str, Any]) -> str:
    """The record's display name: its title field, else its id."""
    value = record.get(obj.title_field) if obj.title_field in obj.fields else None
    return str(value) if value not in (None, "") else str(record["id"])


def _label(obj: ObjectDef) -> Message:
    return said_label(obj.label.zh, obj.label.en)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node["children"]:
        yield from _walk(child)


def _tree(records, conn: sa.Connection, obj: str, row: Mapping[str, Any]) -> Node:
    """The row as JSON and, recursively, the rows of its master_detail children."""
    children = []
    for child, via in records.children.get(obj, ()):
        cot = records.schema[child]
        stmt = sa.select(cot.table).where(cot.column(via) == row["id"]).order_by(cot.table.c.id)
        children.extend(_tree(records, conn, child, r) for r in conn.execute(stmt).mappings())
    return {"object": obj, "row": {k: history.jsonable(v) for k, v in row.items()}, "children": children}


# ------------------------------------------------------------------------------------------ delete


def discard(records, conn: sa.Connection, ot: ObjectTable, record: Mapping[str, Any], user: str | None,
            now: datetime) -> None:
    """Move `record` (read with its lines, locked) to the bin with its children and what cascades from it, or refuse
    with a 409 while records whose reference refuses still name it."""
    nodes = _remove(records, conn, ot, record, user, now, {})
    conn.execute(records.schema.recycle_bin.insert().values(
        object=ot.object.name, record_id=int(record["id"]), title=title_of(ot.object, record),
        snapshot=json.dumps(nodes, ensure_ascii=False), deleted_by=None if user is None else int(user),
        deleted_at=to_db("datetime", now)))


def _remove(records, conn: sa.Connection, ot: ObjectTable, record: Mapping[str, Any], user: str | None,
            now: datetime, removing: dict[str, set[int]]) -> list[Node]:
    """Remove the record and its children, clear and cascade the references to them; their nodes."""
    tree = _tree(records, conn, ot.object.name, conn.execute(ot.by_id, {"_id": int(record["id"])}).mappings().one())
    for node in _walk(tree):
        removing.setdefault(node["object"], set()).add(int(node["row"]["id"]))
    found = _references(records, conn, tree, removing)
    refused = [item for item in found if (item[1].on_delete or "refuse") == "refuse"]
    if refused:
        raise Conflict(_referenced(records.metadata, ot.object, record, refused))
    for obj, f, ids in found:
        if f.on_delete == "clear":
            _clear(records, conn, records.schema[obj], f, ids, user, now)
    nodes = [tree]
    for obj, f, ids in found:
        if f.on_delete != "cascade":
            continue
        cot = records.schema[obj]
        for record_id in sorted(ids - removing.get(obj, set())):
            nodes.extend(_remove(records, conn, cot, records.get(obj, record_id, conn=conn), user, now, removing))
    records.remove_rows(conn, ot, record, user, now)
    return nodes


def _references(records, conn: sa.Connection, tree: Node, removing: Mapping[str, set[int]]) -> list[Found]:
    """The references to the tree's records from records that are not being removed, one SELECT per field."""
    targets: dict[str, set[int]] = {}
    for node in _walk(tree):
        targets.setdefault(node["object"], set()).add(int(node["row"]["id"]))
    found = []
    for target, ids in targets.items():
        for obj, f in referrers(records.metadata).get(target, ()):
            rot = records.schema[obj]
            stmt = sa.select(rot.table.c.id).where(rot.column(f.name).in_(sorted(ids)))
            naming = set(conn.execute(stmt).scalars()) - removing.get(obj, set())
            if naming:
                found.append((obj, f, naming))
    return found


_REFERENCED = "{label} {title} is still referenced by {references}: change or delete those records first"


def _referenced(metadata: Metadata, obj: ObjectDef, record: Mapping[str, Any], refused: list[Found]) -> Message:
    """409 record.referenced: which objects' records still name the record, how many of each."""
    by_object: dict[str, set[int]] = {}
    for name, _f, ids in refused:
        by_object.setdefault(name, set()).update(ids)
    counts = [Message("record.reference_count", "{object} ({count})", object=_label(metadata.objects[name]),
                      count=len(ids)) for name, ids in by_object.items()]
    referrers_ = [{"object": name, "label": {"zh": metadata.objects[name].label.zh,
                                             "en": metadata.objects[name].label.en}, "count": len(ids)}
                  for name, ids in by_object.items()]
    return Message("record.referenced", _REFERENCED, label=_label(obj), object=obj.name, id=str(record["id"]),
                   title=title_of(obj, record), references=said_list(counts), referrers=referrers_)


_PG_KEY = re.compile(r"=\((\d+)\)")


def foreign_key_conflict(records, error: sa.exc.IntegrityError) -> Conflict | None:
    """A foreign key the database refused (storage/tables.py: the guard behind the checks above, so an engine mistake
    or a concurrent delete) as a 409 record.referenced; None for any other integrity error. PostgreSQL names the
    constraint and the key; SQLite says only that a foreign key failed."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) != "23503" and "FOREIGN KEY constraint failed" not in str(orig):
        return None
    diag = getattr(orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    found = next(((ot.object, fk) for ot in records.schema.objects.values() for fk in ot.table.foreign_key_constraints
                  if fk.name == constraint), None) if constraint else None
    key = _PG_KEY.search(getattr(diag, "message_detail", None) or "")
    if found is None or key is None:
        return Conflict(Message("record.referenced", _REFERENCED, label=said_label("该", "The"), object="", id="",
                                title=said_label("记录", "record"), references=said_label("其他记录", "other records"),
                                referrers=[]))
    referencing, fk = found
    target = records.metadata.objects[fk.elements[0].column.table.name]
    return Conflict(Message("record.referenced", _REFERENCED, label=_label(target), object=target.name,
                            id=key[1], title=key[1], references=_label(referencing),
                            referrers=[{"object": referencing.name, "label": {"zh": referencing.label.zh,
                                                                              "en": referencing.label.en}}]))


def _clear(records, conn: sa.Connection, ot: ObjectTable, f: FieldDef, ids: set[int], user: str | None,
           now: datetime) -> None:
    """Empty the field on the records `ids` (`on_delete: clear`), with a history entry each."""
    table, column = ot.table, ot.column(f.name)
    old = dict(conn.execute(sa.select(table.c.id, column).where(table.c.id.in_(sorted(ids)))).all())
    with records.rollups.summaries.moving(conn, ot.object.name, table.c.id.in_(sorted(ids)), {f.name}):
        conn.execute(sa.update(table).where(table.c.id.in_(sorted(ids))).values({
            column: None, table.c.version: table.c.version + 1, table.c.updated_at: to_db("datetime", now),
            table.c.updated_by: None if user is None else int(user)}))
    history.write(conn, records.schema.history, [
        history.entry(ot.object.name, record_id, "update", f.name, str(value), None, user, now)
        for record_id, value in sorted(old.items())])


# ----------------------------------------------------------------------------------------- the bin


def entries(platform) -> list[dict]:
    """The bin's entries, newest first, each with when the purge removes it."""
    table = platform.schema.recycle_bin
    keep = timedelta(days=platform.settings.recycle_bin_days)
    with platform.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.object, table.c.record_id, table.c.title,
                                      table.c.deleted_by, table.c.deleted_at)
                            .order_by(table.c.deleted_at.desc(), table.c.id.desc())).mappings().all()
    return [{"id": str(r["id"]), "object": r["object"], "record_id": str(r["record_id"]), "title": r["title"],
             "deleted_by": None if r["deleted_by"] is None else str(r["deleted_by"]),
             "deleted_at": from_db("datetime", r["deleted_at"]),
             "purge_at": from_db("datetime", r["deleted_at"]) + keep} for r in rows]


def restore(platform, entry_id: Any, user: str | None) -> tuple[str, dict]:
    """Put the entry's records back with their ids and values (or refuse with a 409, writing nothing); the restored
    record's object and the record."""
    records = platform.records
    table = records.schema.recycle_bin
    wanted = str(entry_id)
    with records.transaction() as conn:
        entry = None if not (wanted.isascii() and wanted.isdigit()) else conn.execute(
            sa.select(table).where(table.c.id == int(wanted)).with_for_update()).mappings().first()
        if entry is None:
            raise NotFound(Message("recycle_bin.not_found", "no recycle bin entry with id {id}", id=wanted))
        now = platform.clock.now()
        rows = [(records.schema[n["object"]], _row(records.schema[n["object"]], n["row"]))
                for top in json.loads(entry["snapshot"]) for n in _walk(top) if n["object"] in records.schema.objects]
        _refuse_restore(records, conn, rows)
        defer_foreign_keys(conn)  # parents come before their children, but a child may name a record cascaded later
        for ot, row in rows:
            conn.execute(ot.table.insert(), row)
        history.write(conn, records.schema.history, [
            history.entry(ot.object.name, row["id"], "restore", None, None, None, user, now) for ot, row in rows])
        for ot, row in rows:
            record = from_row(ot, row)
            records.rollups.after_change(conn, ot.object.name, [(None, record)], now)
            records.platform.registry.run_hooks("after_restore", ot.object, hooks.HookContext(
                records, conn, ot.object.name, user, now, after=record))
        conn.execute(table.delete().where(table.c.id == entry["id"]))
        return entry["object"], records.get(entry["object"], entry["record_id"], conn=conn)


def _row(ot: ObjectTable, kept: Mapping[str, Any]) -> dict[str, Any]:
    """A kept row's JSON values back as the table's column values (columns no longer in the table left out)."""
    row = {}
    for name, value in kept.items():
        if name not in ot.table.c:
            continue
        kind = ot.table.c[name].type
        if value is not None and isinstance(kind, sa.DateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(kind, sa.Date):
            value = date.fromisoformat(value)
        elif value is not None and isinstance(kind, sa.Numeric):
            value = float(value) if isinstance(kind, sa.Float) else Decimal(str(value))
        row[name] = value
    return row


def _refuse_restore(records, conn: sa.Connection, rows: list[tuple[ObjectTable, dict]]) -> None:
    """409 when a restored id is in use again, a unique value is taken, or a reference names a record that is gone."""
    back = {(ot.object.name, row["id"]) for ot, row in rows}
    for ot, row in rows:
        obj, table = ot.object, ot.table
        record = from_row(ot, row)
        said = {"label": _label(obj), "object": obj.name, "id": str(row["id"]), "title": title_of(obj, record)}
        if conn.execute(sa.select(table.c.id).where(table.c.id == row["id"])).first() is not None:
            raise Conflict(Message("recycle_bin.id_taken", "{label} {title} cannot be restored: its id {id} is "
                                   "used by another record", **said))
        for f in obj.fields.values():
            value = record.get(f.name)
            if value is None or f.name not in ot.columns:
                continue
            field_said = {**said, "field": f.name, "field_label": said_label(f.label.zh, f.label.en)}
            column = ot.column(f.name) if len(ot.columns[f.name]) == 1 else None
            if f.unique and column is not None and conn.execute(
                    sa.select(table.c.id).where(column == row[column.name], table.c.id != row["id"])).first():
                raise Conflict(Message("recycle_bin.unique_taken", "{label} {title} cannot be restored: its "
                                       "{field_label} {value} is used by another record now", value=str(value),
                                       **field_said))
            if f.type in RESTORED_REFERENCES and f.to in records.schema.objects and (f.to, int(value)) not in back:
                tot = records.schema[f.to]
                if conn.execute(sa.select(tot.table.c.id).where(tot.table.c.id == int(value))).first() is None:
                    raise Conflict(Message("recycle_bin.reference_gone", "{label} {title} cannot be restored: its "
                                           "{field_label} names {target} {value}, which is gone (restore it first)",
                                           target=_label(records.metadata.objects[f.to]), value=str(value),
                                           **field_said))


def purge(platform, at: datetime | None = None) -> int:
    """Remove the entries deleted longer ago than the retention period (as of `at`, default now); how many."""
    at = at or platform.clock.now()
    table = platform.schema.recycle_bin
    cutoff = to_db("datetime", at - timedelta(days=platform.settings.recycle_bin_days))
    with platform.records.transaction() as conn:
        return conn.execute(table.delete().where(table.c.deleted_at < cutoff)).rowcount
