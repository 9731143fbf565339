"""Summary tables: an object's record counts and sums grouped by a few of its fields, for the reports that declare
`summary:` (the writes keep them current: records/summaries.py; report runs read them: reports/summary.py).

One table per (object, grouping keys), shared by every report it can serve. Its keys are the reports' dimensions
and filter fields, the fields the data scope reads (the owner; the pool field of the pool behavior, whose waiting
records a pool's members see) and the keys a report adds; a key column is NOT NULL (an empty key is stored as 0 or
'', read back as NULL) so that the unique index the upserts conflict on holds for empty keys too."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import elements
from sqlalchemy.sql.visitors import replacement_traverse

from objectplatform.metadata import Metadata, ObjectDef

PREFIX = "_op_summary_"
COUNT = "n"  # the column counting a group's records
# what a condition a summary answers may be made of besides the columns: values, comparisons, AND, OR, NOT (no
# function, no subquery, no other table), so that it holds alike for every record of a group
PLAIN = (elements.BindParameter, elements.BinaryExpression, elements.BooleanClauseList, elements.ClauseList,
         elements.ExpressionClauseList, elements.Grouping, elements.UnaryExpression, elements.Tuple, elements.Null,
         elements.True_, elements.False_, elements.AsBoolean, elements.Cast, elements.TypeCoerce)


@dataclass(frozen=True, eq=False)
class Summary:
    """One summary table of `object`'s records: their count and the sums of `sums` per `keys`."""

    object: str
    table: sa.Table
    keys: tuple[str, ...]  # fields; each held in the column of the same name as in the object's table
    empty: tuple[int | str, ...]  # per key, what stands for an empty value (0 for a reference, '' for a picklist)
    sums: tuple[str, ...]  # summed number fields
    reports: tuple[str, ...]  # the reports it serves

    def sum_column(self, field: str) -> str:
        return sum_column(field)

    @property
    def reads(self) -> frozenset[str]:
        """The fields whose change moves a record between groups or changes a sum."""
        return frozenset((*self.keys, *self.sums))

    def grouped(self, source: sa.FromClause, where: sa.ColumnElement[bool] | None, sign: int = 1) -> sa.Select:
        """The count and sums of `source`'s rows (the object's table, or an alias of it) per group, times
        `sign`, ordered by group (upserts take the summary's rows in one order: no deadlock between two)."""
        keys = [sa.func.coalesce(source.c[k], empty) for k, empty in zip(self.keys, self.empty, strict=True)]
        sums = [sa.func.coalesce(sa.func.sum(source.c[f]), 0) for f in self.sums]
        stmt = sa.select(*keys, sa.func.count() * sign, *(s * sign for s in sums)).select_from(source)
        if where is not None:
            stmt = stmt.where(where)
        return stmt.group_by(*keys).order_by(*keys)

    def moved(self, source: sa.FromClause, where: sa.ColumnElement[bool], new: Mapping[str, sa.ColumnElement]
              ) -> sa.Select:
        """What the rows of `source` (the object's table before the UPDATE, or its RETURNING with the old values)
        that `where` selects change per group when they take the values `new` ({field: a SQL expression over the
        row}): their count and sums out of the groups they are in, into the groups they go to, in one grouped
        select; the groups that do not change left out."""
        def row(values: Mapping[str, sa.ColumnElement], sign: int) -> sa.Select:
            keys = [sa.func.coalesce(values.get(k, source.c[k]), empty).label(k)
                    for k, empty in zip(self.keys, self.empty, strict=True)]
            sums = [(sa.func.coalesce(values.get(f, source.c[f]), 0) * sign).label(self.sum_column(f))
                    for f in self.sums]
            return sa.select(*keys, sa.literal(sign).label(COUNT), *sums).where(where)

        both = sa.union_all(row({}, -1), row(new, 1)).subquery("deltas")
        keys = [both.c[k] for k in self.keys]
        totals = [sa.func.sum(both.c[c]) for c in self.columns[len(self.keys):]]
        return (sa.select(*keys, *totals).group_by(*keys).having(sa.or_(*(t != 0 for t in totals)))
                .order_by(*keys))

    def fill(self, conn: sa.Connection, source: sa.Table) -> None:
        """Fill the summary afresh from every record of `source`, the object's table: one INSERT ... SELECT ...
        GROUP BY (migrate's; and a bulk load written past the records service calls it after)."""
        conn.execute(self.table.delete())
        conn.execute(self.table.insert().from_select(self.columns, self.grouped(source, None)))

    @cached_property
    def columns(self) -> list[str]:
        return [*self.keys, COUNT, *(self.sum_column(f) for f in self.sums)]

    def upsert(self, dialect: str, rows: sa.Select | None = None) -> sa.Insert:
        """INSERT ... ON CONFLICT (the keys) DO UPDATE adding to the group's count and sums: of `rows` (a
        `grouped` select), or of the parameters it is executed with."""
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(self.table)
        if rows is not None:
            insert = insert.from_select(self.columns, rows)
        added = [COUNT, *(self.sum_column(f) for f in self.sums)]
        return insert.on_conflict_do_update(
            index_elements=[self.table.c[k] for k in self.keys],
            set_={c: self.table.c[c] + insert.excluded[c] for c in added})

    @cached_property
    def view(self) -> sa.Subquery:
        """The summary as a report reads it: each key NULL where it is empty, like the object's column (made once:
        a subquery builds a proxy of each column the first time one is read)."""
        t = self.table
        keys = [sa.func.nullif(t.c[k], empty).label(k) for k, empty in zip(self.keys, self.empty, strict=True)]
        return sa.select(*keys, *(t.c[c] for c in self.columns[len(self.keys):])).subquery("s")

    def counting(self, source: sa.Table, conditions: Sequence[sa.ColumnElement[bool]]) -> sa.Select | None:
        """How many rows of `source` (the object's table) `conditions` select, read from the summary: the conditions
        on its view, each column of `source` replaced by the key of its name. None when one reads another column or
        is more than comparisons of columns and values joined by AND, OR and NOT (a function, a subquery)."""

        def plain(element: sa.ClauseElement) -> bool:
            if isinstance(element, elements.ColumnClause):
                return element.table is source and element.name in self.keys
            return isinstance(element, PLAIN) and all(plain(child) for child in element.get_children())

        if not all(plain(c) for c in conditions):
            return None
        view = self.view

        def on_view(element: sa.ClauseElement) -> sa.ClauseElement | None:
            return view.c[element.name] if isinstance(element, elements.ColumnClause) else None

        return sa.select(sa.cast(sa.func.coalesce(sa.func.sum(view.c[COUNT]), 0), sa.BigInteger())).where(
            *(replacement_traverse(c, {}, on_view) for c in conditions))

    def describe(self) -> str:
        """How migrate's plan shows it: "count, sum amount of lead by owner, pool, status (for leads_by_status)"."""
        measures = ", ".join(["count", *(f"sum {f}" for f in self.sums)])
        return f"{measures} of {self.object} by {', '.join(self.keys)} (for {', '.join(self.reports)})"


def scope_fields(obj: ObjectDef) -> list[str]:
    """The fields of `obj` the data scope reads by value (permissions.Access.scope): the owner, and the pool field
    of the pool behavior (its waiting, unowned records are seen by the pool's members)."""
    pool = obj.behaviors.get("pool")
    return ["owner", *([pool.get("pool_field", "pool")] if pool else [])]


def summaries_of(metadata: Metadata, sa_metadata: sa.MetaData, columns_of) -> dict[str, list[Summary]]:
    """{object: its summaries} for the reports declaring `summary:`; `columns_of(object)` gives the object's table
    (whose key and summed columns the summary copies)."""
    wanted: dict[tuple[str, tuple[str, ...]], tuple[list[str], list[str]]] = {}  # (object, keys) -> (sums, reports)
    for report in sorted(metadata.reports.values(), key=lambda r: r.name):
        if report.summary is None:
            continue
        keys = [*scope_fields(metadata.objects[report.object]), *(d.field for d in report.dimensions),
                *([report.columns.field] if report.columns else []),
                *(name.partition("__")[0] for name in report.filters), *report.summary.keys]
        sums, reports = wanted.setdefault((report.object, tuple(sorted(set(keys)))), ([], []))
        sums.extend(m.field for m in report.measures if m.function == "sum" and m.field not in sums)
        reports.append(report.name)
    found: dict[str, list[Summary]] = {}
    for (obj, keys), (sums, reports) in wanted.items():
        source = columns_of(obj)
        picklists = {name for name, f in metadata.objects[obj].fields.items() if f.type == "picklist"}
        empty = tuple("" if k in picklists else 0 for k in keys)
        name = table_name(obj, keys)
        table = sa.Table(
            name, sa_metadata,
            *(sa.Column(k, source.c[k].type, nullable=False) for k in keys),
            sa.Column(COUNT, sa.BigInteger(), nullable=False),
            *(sa.Column(sum_column(f), _sum_type(source.c[f].type), nullable=False) for f in sums),
            sa.Index(f"uq_{name[:55]}", *keys, unique=True),
        )
        found.setdefault(obj, []).append(Summary(obj, table, keys, empty, tuple(sums), tuple(reports)))
    return found


def sum_column(field: str) -> str:
    """The column of a summary holding the sum of `field`."""
    return f"sum__{field}"


def table_name(obj: str, keys: tuple[str, ...]) -> str:
    """`_op_summary_lead__owner__pool__status`, shortened with a digest past PostgreSQL's 63 characters."""
    name = f"{PREFIX}{obj}__{'__'.join(keys)}"
    if len(name) <= 55:
        return name
    return f"{name[:44]}_{hashlib.sha1(name.encode()).hexdigest()[:10]}"


def _sum_type(type_: sa.types.TypeEngine) -> sa.types.TypeEngine:
    """A sum's column: wide enough for every record's value added up."""
    return sa.Numeric(38, 0) if isinstance(type_, sa.Integer) else sa.Numeric(38, getattr(type_, "scale", None) or 4)
