"""Helpers of the import path: batches of rows, table rows built fast, one executemany with known ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from ..storage.convert import field_type, to_db
from ..storage.tables import ObjectTable


def insert_many(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> list[int]:
    """One executemany INSERT of rows given their ids up front; returns the ids in the order of `rows`.

    Ordered RETURNING is slow here (SQLite falls back to one INSERT per row; on PostgreSQL the
    sentinel-sorted statement costs psycopg more to parse than the insert itself), so the ids come
    first: PostgreSQL draws them from the id sequence; SQLite takes max(id) + 1 onwards, which is what
    it assigns itself, safe because the transaction holds the write lock since its BEGIN IMMEDIATE.
    """
    if conn.dialect.name == "postgresql":
        draw = sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
        ids = sorted(conn.execute(draw, {"table": table.name, "n": len(rows)}).scalars())
    else:
        first = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one() + 1
        ids = list(range(first, first + len(rows)))
    conn.execute(table.insert(), [{**row, "id": id_} for row, id_ in zip(rows, ids, strict=True)])
    return ids


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
