"""Helpers of the import path: batches of rows, table rows built fast (column by column), one COPY or executemany
with known ids."""

from __future__ import annotations

import gc
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..fieldtypes import type_named
from ..storage.convert import field_type, to_db
from ..storage.tables import ObjectTable


def insert_many(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> list[int]:
    """Insert rows (each with the same keys, `RowMaker`'s) given their ids up front; returns the ids in the order of
    `rows`. PostgreSQL takes them by COPY, SQLite by the driver's own executemany of tuples: SQLAlchemy's
    executemany spends more building each row's parameters than the database spends inserting it.

    Ordered RETURNING is slow here (SQLite falls back to one INSERT per row; on PostgreSQL the
    sentinel-sorted statement costs psycopg more to parse than the insert itself), so the ids come
    first: PostgreSQL draws them from the id sequence; SQLite takes max(id) + 1 onwards, which is what
    it assigns itself, safe because the transaction holds the write lock since its BEGIN IMMEDIATE.
    """
    if not rows:
        return []
    return insert_columns(conn, table, {name: [row[name] for row in rows] for name in rows[0] if name != "id"},
                          len(rows))


def insert_columns(conn: sa.Connection, table: sa.Table, columns: Mapping[str, list], count: int) -> list[int]:
    """`insert_many` of `count` rows given column by column ({column: its values, in row order})."""
    if not count:
        return []
    if conn.dialect.name == "postgresql":
        draw = sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
        ids = sorted(conn.execute(draw, {"table": table.name, "n": count}).scalars())
    else:
        first = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one() + 1
        ids = list(range(first, first + count))
    names = list(columns)
    values = [ids, *_bound(conn.dialect, table, columns)]
    preparer = conn.dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(name) for name in ['id', *names])})"
    cursor = conn.connection.driver_connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            statement = f"COPY {target} FROM STDIN"
            with cursor.copy(statement) as copy:
                for row in zip(*values, strict=True):
                    copy.write_row(row)
        else:
            statement = f"INSERT INTO {target} VALUES ({', '.join('?' * (len(names) + 1))})"
            cursor.executemany(statement, zip(*values, strict=True))
    except conn.dialect.dbapi.IntegrityError as e:  # as SQLAlchemy's own execute would raise it
        raise sa.exc.IntegrityError(statement, None, e) from e
    finally:
        cursor.close()
    return ids


def _bound(dialect: sa.Dialect, table: sa.Table, columns: Mapping[str, list]) -> list[list]:
    """The rows' values column by column as the driver takes them: each column's bind processor applied, SQLite's
    date-time text made once per distinct date-time (the batch's created_at: once)."""
    out = []
    for name, column in columns.items():
        type_ = table.c[name].type
        process = type_._cached_bind_processor(dialect)
        if process is not None and isinstance(type_, sa.DateTime | sa.Date):
            converted = {value: process(value) for value in set(column)}
            column = [converted[value] for value in column]
        elif process is not None:
            column = [process(value) for value in column]
        out.append(column)
    return out


class RowMaker:
    """Record -> full table row for executemany, with each column's conversion looked up once."""

    PLAIN = frozenset({"text", "long_text", "email", "phone", "url", "integer", "number", "currency", "percent",
                       "boolean", "date", "picklist", "auto_number", "password", "formula", "rollup"})

    def __init__(self, ot: ObjectTable):
        self.blank = {c.name: None for c in ot.table.columns if c.name != "id"}
        self.plain: list[tuple[str, str]] = []
        self.converted: list[tuple[str, str, str]] = []
        self.geo: list[tuple[str, tuple[str, ...]]] = []
        for name, columns in ot.columns.items():
            if name == "id":
                continue
            kind = field_type(ot, name) if name not in ot.object.fields else ot.object.fields[name].type
            if len(columns) == 2:
                self.geo.append((name, columns))
            elif kind in self.PLAIN:
                self.plain.append((name, columns[0]))
            else:
                self.converted.append((name, columns[0], field_type(ot, name)))

    def columns(self, records: list[Mapping[str, Any]]) -> dict[str, list]:
        """The records' full table rows column by column (`insert_columns`), each conversion made column-wise."""
        out = {column: [None] * len(records) for column in self.blank}
        for name, column in self.plain:
            out[column] = [record.get(name) for record in records]
        for name, column, type_name in self.converted:
            out[column] = _converted(type_named(type_name).to_db, [record.get(name) for record in records])
        for name, (lat, lng) in self.geo:
            values = [record.get(name) for record in records]
            out[lat] = [None if value is None else float(value["lat"]) for value in values]
            out[lng] = [None if value is None else float(value["lng"]) for value in values]
        return out

    def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
        row = self.blank.copy()
        get = record.get
        for name, column in self.plain:
            row[column] = get(name)
        for name, column, type_name in self.converted:
            row[column] = to_db(type_name, get(name))
        for name, (lat, lng) in self.geo:
            value = get(name)
            if value is not None:
                row[lat], row[lng] = float(value["lat"]), float(value["lng"])
        return row


def _converted(to_db: Callable[[Any], Any], values: list) -> list:
    """A column's values converted (None stays None), each distinct value once when they are all of one hashable
    kind (ids as texts, the batch's one created_at)."""
    given = {value.__class__ for value in values} - {type(None)}
    if not given:
        return values
    if len(given) == 1 and given <= _HASHABLE:
        converted = {value: to_db(value) for value in set(values) if value is not None}
        return [None if value is None else converted[value] for value in values]
    return [None if value is None else to_db(value) for value in values]


_HASHABLE = frozenset({str, int, Decimal, date, datetime})


@contextmanager
def frozen_heap() -> Iterator[None]:
    """A bulk write with the objects that existed before it (the platform's metadata, tables and compiled statements)
    left out of the garbage collector's passes: each full pass would walk them all again, every few batches, while
    the garbage of a bulk write is its own rows. The process's objects go back to the collector after (also those a
    concurrent bulk write froze: it then runs on with the collector as usual)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def batches(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    """The rows in lists of `size` (the last one shorter)."""
    batch: list[Mapping[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class IdRuns:
    """Record ids, each with a number (the file row an import read it from), held as runs in which both go up by one:
    an import's batch is one run or a few, so this stays small however many records the import creates."""

    def __init__(self) -> None:
        self._ids = array("q")  # each run's first id, its number and its length
        self._numbers = array("q")
        self._lengths = array("q")

    def add(self, ids: Iterable[int], numbers: Iterable[int] | None = None) -> None:
        """`ids` with their `numbers` (without: each id its own number, a set of ids)."""
        ids = list(ids)
        for record_id, number in zip(ids, ids if numbers is None else numbers, strict=True):
            if self._ids and record_id - self._ids[-1] == self._lengths[-1] == number - self._numbers[-1]:
                self._lengths[-1] += 1
            else:  # a new run, kept in id order
                at = bisect_right(self._ids, record_id)
                self._ids.insert(at, record_id)
                self._numbers.insert(at, number)
                self._lengths.insert(at, 1)

    def get(self, record_id: int) -> int | None:
        """The number of `record_id`, None when it was not added."""
        at = bisect_right(self._ids, record_id) - 1
        if at >= 0 and record_id - self._ids[at] < self._lengths[at]:
            return self._numbers[at] + record_id - self._ids[at]
        return None

    def __contains__(self, record_id: object) -> bool:
        return self.get(int(record_id)) is not None
