"""Summary tables kept current in the transaction of every write: a change's deltas (a group's count and sums, the
old group's taken out, the new one's put in) added by one grouped upsert (INSERT ... ON CONFLICT DO UPDATE) per
summary and write, never by recounting the object's table.

Writes of records in hand (create, update, delete, restore, transitions, create_many and imports) come through
`after_change` (rollups.Rollups.after_change and after_insert_many call it: the one after-write point); a set-based
UPDATE whose new values SQL can say is preceded by `changing`, any other set-based UPDATE or DELETE runs inside
`moving`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..storage.summaries import COUNT, Summary
from ..storage.tables import Schema

Change = tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]  # (before, after); None: inserted/deleted


class Summaries:
    """The summaries each object feeds, and their deltas."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.by_object: Mapping[str, list[Summary]] = schema.summaries
        self._upserts: dict[tuple[Summary, str], sa.Insert] = {}

    def after_change(self, conn: sa.Connection, obj: str, changes: Iterable[Change]) -> None:
        """Add the changes' deltas to `obj`'s summaries: one upsert of the groups that changed per summary."""
        summaries = self.by_object.get(obj)
        if not summaries:
            return
        changes = list(changes)
        for summary in summaries:
            reads = summary.reads
            deltas: dict[tuple, list] = {}
            for before, after in changes:
                if before is not None and after is not None and all(
                        before.get(name) == after.get(name) for name in reads):
                    continue
                for record, sign in ((before, -1), (after, 1)):
                    if record is None:
                        continue
                    key = tuple(_key(record.get(k), empty) for k, empty in zip(summary.keys, summary.empty,
                                                                                 strict=True))
                    totals = deltas.setdefault(key, [0] * (1 + len(summary.sums)))
                    totals[0] += sign
                    for i, name in enumerate(summary.sums, start=1):
                        totals[i] += sign * (record.get(name) or 0)
            rows = [{**dict(zip(summary.keys, key, strict=True)), COUNT: totals[0],
                     **{summary.sum_column(f): Decimal(v) for f, v in zip(summary.sums, totals[1:], strict=True)}}
                    for key, totals in sorted(deltas.items()) if any(totals)]
            if rows:
                conn.execute(self._upsert(summary, conn.dialect.name), rows)

    @contextmanager
    def moving(self, conn: sa.Connection, obj: str, where: sa.ColumnElement[bool], fields: Iterable[str]
               ) -> Iterator[None]:
        """Around one set-based UPDATE (or DELETE) of the rows of `obj` that `where` selects and that changes
        `fields`: the rows' groups taken out of each summary reading those fields before it, and put back as they
        are after (the same rows: their ids held in a temporary table, their row locks taken first)."""
        fields = set(fields)
        summaries = [s for s in self.by_object.get(obj, ()) if s.reads & fields]
        if not summaries:
            yield
            return
        table = self.schema[obj].table
        held = sa.Table("summary_moving", sa.MetaData(), sa.Column("id", sa.BigInteger(), primary_key=True,
                                                                   autoincrement=False), prefixes=["TEMPORARY"])
        held.create(conn)
        chosen = sa.select(table.c.id).where(where)
        if conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already serializes the writers
            chosen = chosen.with_for_update()
        conn.execute(held.insert().from_select(["id"], chosen))
        among = table.c.id.in_(sa.select(held.c.id))
        for summary in summaries:
            conn.execute(self._upsert(summary, conn.dialect.name, summary.grouped(table, among, -1)))
        yield
        for summary in summaries:
            conn.execute(self._upsert(summary, conn.dialect.name, summary.grouped(table, among)))
        held.drop(conn)

    def changing(self, conn: sa.Connection, obj: str, where: sa.ColumnElement[bool], new: Mapping[str, Any]) -> None:
        """Before one set-based UPDATE giving the rows of `obj` that `where` selects the values `new` ({field: a
        SQL expression over the row, or a value as its column holds it}): each summary reading those fields gets
        the rows' moves between its groups in one upsert. The caller holds the rows (their locks taken, or
        SQLite's writer lock), so the UPDATE changes the same rows."""
        summaries = [s for s in self.by_object.get(obj, ()) if s.reads & new.keys()]
        if not summaries:
            return
        table = self.schema[obj].table
        values = {k: v if isinstance(v, sa.ColumnElement) else sa.literal(v, table.c[k].type) for k, v in new.items()
                  if k in table.c}
        for summary in summaries:
            conn.execute(self._upsert(summary, conn.dialect.name, summary.moved(table, where, values)))

    def reads(self, obj: str, fields: Iterable[str]) -> set[str]:
        """The fields (keys and sums) of `obj`'s summaries that read any of `fields`."""
        fields = set(fields)
        return {name for s in self.by_object.get(obj, ()) if s.reads & fields for name in s.reads}

    def moves(self, dialect: str, obj: str, moved: sa.FromClause, new: Mapping[str, sa.ColumnElement]
              ) -> list[sa.Insert]:
        """The upserts (for CTEs beside the UPDATE) moving the rows of `moved`, the RETURNING of a set-based UPDATE
        of `obj`'s table (each field `reads` names as it was, in the column of its name), to the groups of their
        new values `new` ({field: a column of `moved`})."""
        return [self._upsert(summary, dialect, summary.moved(moved, sa.true(), new))
                for summary in self.by_object.get(obj, ()) if summary.reads & new.keys()]

    def _upsert(self, summary: Summary, dialect: str, rows: sa.Select | None = None) -> sa.Insert:
        if rows is not None:
            return summary.upsert(dialect, rows)
        if (summary, dialect) not in self._upserts:  # built once: building costs more than running it
            self._upserts[summary, dialect] = summary.upsert(dialect)
        return self._upserts[summary, dialect]


def _key(value: Any, empty: int | str) -> Any:
    """A record's value of a grouping key as the summary holds it (a reference's id as a number)."""
    if value is None or value == "":
        return empty
    return int(value) if isinstance(empty, int) else value
