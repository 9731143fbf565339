"""History rows of a set-based UPDATE, written before it by INSERT ... SELECT: no Python loop over the rows.

The old value of each changed field is turned into the same JSON text `history.entry` writes
(references and text as JSON strings, datetimes in ISO 8601 with +00:00, numbers as strings),
by the database itself; only rows whose value really changes get an entry, and a record's entries of one
set-based write share one packed row.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..fieldtypes import type_named
from ..storage.convert import JSON_TYPES, to_db
from ..storage.id_sets import among, ids_param
from ..storage.tables import REFERENCE_TYPES
from .history import PACKED, history_text, jsonable

TEXT = sa.String()


def _quoted(dialect: str, value: sa.ColumnElement) -> sa.ColumnElement:
    """A text value as a JSON string literal."""
    if dialect == "postgresql":
        return sa.cast(sa.func.to_json(sa.cast(value, sa.Text())), sa.Text())
    return sa.func.json_quote(sa.cast(value, sa.Text()), type_=TEXT)


def _iso_datetime(dialect: str, column: sa.ColumnElement) -> sa.ColumnElement:
    """A naive UTC datetime column as Python's `isoformat()` of the aware value (microseconds when not 0)."""
    if dialect == "postgresql":
        seconds = sa.func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS', type_=TEXT)
        micro = sa.func.to_char(column, "US", type_=TEXT)
    else:  # SQLAlchemy stores "YYYY-MM-DD HH:MM:SS.ffffff" on SQLite
        seconds = sa.func.replace(sa.func.substr(column, 1, 19), " ", "T", type_=TEXT)
        micro = sa.func.substr(column, 21, 6, type_=TEXT)
    fraction = sa.case((sa.func.coalesce(micro, "").in_(["", "000000"]), ""), else_=sa.literal(".", TEXT) + micro)
    return sa.literal('"', TEXT) + seconds + fraction + sa.literal('+00:00"', TEXT)


def json_of(dialect: str, column: sa.ColumnElement, field_type: str) -> sa.ColumnElement:
    """The history JSON text of a column's value (NULL for NULL); of a table's column, made once (an expression is
    immutable: every statement may share it)."""
    if isinstance(column, sa.Column) and isinstance(column.table, sa.Table):
        return _table_json(dialect, column, field_type)
    return _json(dialect, column, field_type)


def _json(dialect: str, column: sa.ColumnElement, field_type: str) -> sa.ColumnElement:
    if field_type in JSON_TYPES:
        value = sa.cast(column, sa.Text())
    elif field_type in REFERENCE_TYPES or field_type in ("lookup",):
        value = sa.literal('"', TEXT) + sa.cast(column, TEXT) + sa.literal('"', TEXT)
    elif field_type == "datetime":
        value = _iso_datetime(dialect, column)
    elif field_type == "boolean":
        value = sa.case((column.is_(True), "true"), else_="false")
    elif type_named(field_type).filter_kind == "integer":  # integer, rating: a JSON number
        value = sa.cast(column, TEXT)
    else:  # text, picklist, date, numbers (as strings, like Decimal's jsonable)
        kind = column.type
        if dialect == "sqlite" and isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Integer) and kind.scale:
            column = sa.func.printf(f"%.{kind.scale}f", column)  # SQLite keeps 90.00 as 90: the places read back
        value = _quoted(dialect, column)
    return sa.case((column.is_(None), sa.null()), else_=value)


_table_json = functools.lru_cache(maxsize=4096)(_json)


def write_set(conn: sa.Connection, history: sa.Table, obj: str, table: sa.Table, where: sa.ColumnElement | None,
              changes: Mapping[str, tuple[sa.Column, str, Any]], change: str, user: str | None, at: datetime,
              detail: Mapping[str, Any] | None = None, ids: list[int] | None = None) -> None:
    """The history of one set-based UPDATE giving the rows `where` selects (given `ids`, those of them among `ids`)
    the values of `changes` ({field: (column, field type, new value)}, in the object's field order; a new value
    may be a SQL expression over the row), in ONE INSERT ... SELECT of one packed row per record
    (`history.PACKED`, read back as the entries `Records.update` writes): an entry per field whose value differs,
    then one keeping `detail`. Given `ids` and constant new values, the INSERT is built once per shape of
    `changes` and `where` object, the ids and values bound."""
    dialect = conn.dialect.name
    if ids is None or any(isinstance(new, sa.ColumnElement) for _, _, new in changes.values()):
        if ids is not None:
            where = among(table.c.id, ids) if where is None else sa.and_(among(table.c.id, ids), where)
        written = set_history(dialect, history, obj, table, where, changes, change, user, at, detail)
    else:
        shape = tuple((name, column, field_type, new is None) for name, (column, field_type, new) in changes.items())
        key = (dialect, history, obj, table, shape, bool(detail), id(where))
        cached = _inserts.get(key)
        if cached is None or cached[0] is not where:  # (an id reused by another object: made again)
            chosen = among(table.c.id, ids_param("_history_ids"))
            cached = _inserts[key] = (where, set_history(
                dialect, history, obj, table, chosen if where is None else sa.and_(chosen, where), changes, change,
                user, at, detail))
            while len(_inserts) > 256:
                del _inserts[next(iter(_inserts))]
        written = cached[1]
        if written is not None:
            written = (written[0], {**_values(changes, change, obj, user, at, detail), "_history_ids": ids})
    if written is not None:
        conn.execute(*written)


_inserts: dict[tuple, tuple[Any, tuple[sa.Insert, dict[str, Any]] | None]] = {}  # write_set's, by shape and where


def set_history(dialect: str, history: sa.Table, obj: str, source: sa.FromClause, where: sa.ColumnElement,
                changes: Mapping[str, tuple[sa.ColumnElement, str, Any]], change: str, user: str | None,
                at: datetime, detail: Mapping[str, Any] | None = None) -> tuple[sa.Insert, dict[str, Any]] | None:
    """`write_set`'s INSERT, from `source` (the object's table, or the RETURNING of its UPDATE with the old and
    new values as columns), and the values of its parameters to execute it with: None when there is nothing to
    write. Its columns are built once per shape of `changes` over a table's columns (`_packed`)."""
    if not changes and not detail:
        return None
    shape = tuple((name, column, field_type, new if isinstance(new, sa.ColumnElement) else new is None)
                  for name, (column, field_type, new) in changes.items())
    cached = all(isinstance(column, sa.Column) and isinstance(column.table, sa.Table)
                 and not isinstance(new, sa.ColumnElement) for _, column, _, new in shape)
    packed, differing = (_cached_packed if cached else _packed)(dialect, shape, bool(detail))
    values = _values(changes, change, obj, user, at, detail)
    insert = history.insert().from_select(
        ["object", "record_id", "change", "field", "new_value", "user_id", "at"],
        sa.select(sa.bindparam("_history_object", type_=history.c.object.type), source.c.id,
                  sa.bindparam("_history_change", type_=history.c.change.type),
                  sa.literal(PACKED, history.c.field.type), packed,
                  sa.bindparam("_history_user", type_=history.c.user_id.type),
                  sa.bindparam("_history_at", type_=history.c.at.type))
        .where(where, *([] if differing is None else [differing])))  # a record's entries are one row: any order
    return insert, values


def _values(changes: Mapping[str, tuple[sa.ColumnElement, str, Any]], change: str, obj: str, user: str | None,
            at: datetime, detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters of `set_history`'s INSERT."""
    values = {"_history_object": obj, "_history_change": change, "_history_user": None if user is None else int(user),
              "_history_at": at.replace(tzinfo=None)}
    for i, (_, field_type, new) in enumerate(changes.values()):
        if new is not None and not isinstance(new, sa.ColumnElement):
            values[f"_history_new_{i}"], values[f"_history_json_{i}"] = to_db(field_type, new), history_text(new)
    if detail:
        values["_history_detail"] = f",[null,null,{history_text(detail)}]"
    return values


def _packed(dialect: str, shape: tuple, detail: bool) -> tuple[sa.ColumnElement, sa.ColumnElement | None]:
    """The packed entries of a record as SQL, its new values as parameters (`_history_new_<i>` as stored,
    `_history_json_<i>` as history text, `_history_detail`), from `shape`: (field, column, field type, the new
    value's SQL expression, or whether it is None) each; and the condition that some field differs (None with a
    `detail`, whose entry is always written)."""
    parts, differing = [], []
    for i, (name, column, field_type, new) in enumerate(shape):
        if isinstance(new, sa.ColumnElement):
            differs, new_json = column.is_distinct_from(new), json_of(dialect, new, field_type)
        elif new:  # the new value is None
            differs, new_json = column.is_not(None), sa.literal("null", TEXT)
        else:
            differs = sa.or_(column.is_(None), column != sa.bindparam(f"_history_new_{i}", type_=column.type))
            new_json = sa.bindparam(f"_history_json_{i}", type_=TEXT)
        entry = (sa.literal(f",[{json.dumps(name)},", TEXT) + sa.func.coalesce(json_of(dialect, column, field_type),
                                                                                "null")
                 + sa.literal(",", TEXT) + sa.func.coalesce(new_json, "null") + sa.literal("]", TEXT))
        parts.append(sa.case((differs, entry), else_=""))
        differing.append(differs)
    if detail:
        parts.append(sa.bindparam("_history_detail", type_=TEXT))
    packed = sa.literal("[", TEXT) + sa.func.substr(_joined(parts), 2) + sa.literal("]", TEXT)
    return packed, None if detail else sa.or_(*differing)


_cached_packed = functools.lru_cache(maxsize=256)(_packed)


def _joined(parts: list[sa.ColumnElement]) -> sa.ColumnElement:
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + part
    return joined


def write_changes(conn: sa.Connection, history: sa.Table, obj: str, table: sa.Table, where: sa.ColumnElement,
                  changes: Mapping[str, tuple[sa.Column, str, Any]], change: str, user: str | None,
                  at: datetime) -> None:
    """One INSERT ... SELECT per field of `changes` ({field: (column, field type, new value)}) for the rows
    `where` selects whose value differs from the new one."""
    dialect = conn.dialect.name
    for name, (column, field_type, new) in changes.items():
        new_json = None if new is None else json.dumps(jsonable(new), ensure_ascii=False)
        differs = column.is_not(None) if new is None else sa.or_(column.is_(None), column != to_db(field_type, new))
        rows = sa.select(
            sa.literal(obj, history.c.object.type), table.c.id, sa.literal(change, history.c.change.type),
            sa.literal(name, history.c.field.type), json_of(dialect, column, field_type),
            sa.literal(new_json, history.c.new_value.type),
            sa.literal(None if user is None else int(user), history.c.user_id.type),
            sa.literal(at.replace(tzinfo=None), history.c.at.type),
        ).where(where, differs).order_by(table.c.id)
        conn.execute(history.insert().from_select(
            ["object", "record_id", "change", "field", "old_value", "new_value", "user_id", "at"], rows))
