"""A report (dimensions, measures, conditions) compiled into one SQL statement that never counts a record twice.

(How it works: docs/engine.md, "objectplatform/runtime/reports/compile.py".)"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from objectplatform.metadata import Metadata

from ..errors import BadRequest, Message
from ..expressions_sql import days_later
from ..storage.tables import REFERENCE_TYPES, Schema
from .buckets import bucket
from .filters import condition
from .paths import FieldPath, Hop

Scope = Callable[[str, sa.FromClause], ColumnElement[bool] | None]
# (object, its table or alias, field, the field's column) -> the column as the caller may see it
Mask = Callable[[str, sa.FromClause, str, ColumnElement], ColumnElement]


def unmasked(obj: str, table: sa.FromClause, field: str, column: ColumnElement) -> ColumnElement:
    return column


@dataclass(frozen=True)
class Dimension:
    key: str
    path: FieldPath
    bucket: str | None = None


@dataclass(frozen=True)
class Key:
    """A matched measure's key: `path` of the measured record (bucketed when `bucket`) equals `equals` of the base;
    with `within_days`, it is at or after `equals` and less than that many days later."""

    path: FieldPath
    equals: FieldPath
    bucket: str | None = None
    within_days: int | None = None


@dataclass(frozen=True)
class Measure:
    key: str
    function: str  # count | count_distinct | sum | avg | min | max
    path: FieldPath | None = None  # None: the base records themselves (or, matched, the records matched)
    filters: tuple[tuple[FieldPath, str, Any], ...] = ()  # (own field of the measured records, operator, value)
    matched: str | None = None  # measure the records of this object whose `match` keys equal the base record's
    match: tuple[Key, ...] = ()


def column_name(schema: Schema, obj: str, field: str) -> str:
    """The one column behind a field; BadRequest for a field the database does not hold as one column."""
    columns = schema[obj].columns.get(field)
    if not columns or len(columns) != 1:
        raise BadRequest(Message("report.not_one_column", "{object}.{field} is not stored in one column (computed on "
                                 "read or a location)", object=obj, field=field))
    return columns[0]


class Joins:
    """The base table (alias t0) with the lookups dimensions and filters follow, each joined once, outer."""

    def __init__(self, schema: Schema, base: str, mask: Mask = unmasked, prefix: str = "t"):
        self.schema, self.mask, self.prefix = schema, mask, prefix
        self.root = schema[base].alias(f"{prefix}0")
        self.from_: sa.FromClause = self.root
        self._aliases: dict[tuple[str, ...], sa.FromClause] = {(): self.root}

    def column(self, path: FieldPath) -> ColumnElement:
        if path.fans_out:
            raise BadRequest(Message("report.reverse_path", "{path} goes through a reverse relation: only a measure "
                                     "may", path=path.text))
        alias, prefix = self.root, ()
        for hop in path.hops:
            prefix = (*prefix, hop.field)
            if prefix not in self._aliases:
                target = self.schema[hop.target].alias(f"{self.prefix}{len(self._aliases)}")
                source = self.mask(hop.source, alias, hop.field,
                                   alias.c[column_name(self.schema, hop.source, hop.field)])
                self.from_ = self.from_.outerjoin(target, target.c.id == source)
                self._aliases[prefix] = target
            alias = self._aliases[prefix]
        return self.mask(path.object, alias, path.field, alias.c[column_name(self.schema, path.object, path.field)])


def _hashable(value: Any) -> Any:
    """A filter's value as part of a dictionary key (a custom date range is a mapping)."""
    return tuple(sorted(value.items())) if isinstance(value, Mapping) else value


@dataclass
class Compiler:
    """Compiles reports over one base object for one caller: `where` gives the filter and scene conditions
    on the base joins, `scope` the caller's data scope on any object's table (None: every row)."""

    metadata: Metadata
    schema: Schema
    dialect: str
    time_zone: str  # the IANA name date-time buckets cut days in
    base: str
    where: Callable[[Joins], list[ColumnElement[bool]]]
    scope: Scope
    mask: Mask = unmasked
    now: datetime | None = None  # the date ranges of measures' filters count from it (in the site's zone)
    _walked: dict = field(default_factory=dict, init=False, repr=False)  # hops -> pairs, per statement

    def statement(self, dimensions: Sequence[Dimension], measures: Sequence[Measure],
                  sort: Sequence[tuple[str, bool]] = (), limit: int | None = None) -> sa.Select:
        """One row per group: the dimension keys (references as their titles), then the measure keys."""
        dims = [f"d{i}" for i in range(len(dimensions))]
        self._walked = {}
        measures = [self._as_records(m) for m in measures]
        branches: dict[tuple[Hop, ...], list[int]] = {}
        selects = [self._base_branch(dimensions, measures)]
        for i, m in enumerate(measures):
            if m.matched:
                selects.append(self._matched_branch(dimensions, measures, i))
            elif m.function == "count_distinct":
                selects.append(self._distinct_branch(dimensions, measures, i))
            elif m.path is not None and m.path.hops:
                kept = tuple((path, op, _hashable(value)) for path, op, value in m.filters)
                branches.setdefault((m.path.hops, kept), []).append(i)
        for (hops, _), indexes in branches.items():
            selects.append(self._hop_branch(dimensions, measures, hops, indexes))
        if len(selects) == 1:  # one branch, already one row per group: grouping it again would cost a second pass
            return self.present(selects[0].subquery("g"), dimensions, measures, sort, limit)
        union = sa.union_all(*selects).subquery("u")
        folded = (
            sa.select(*(union.c[d] for d in dims),
                      *(sa.func.max(union.c[f"m{i}"]).label(f"m{i}") for i in range(len(measures))))
            .group_by(*(union.c[d] for d in dims))
            .subquery("g")
        )
        return self.present(folded, dimensions, measures, sort, limit)

    @staticmethod
    def _as_records(m: Measure) -> Measure:
        """A distinct count of references is a count of the distinct records they name, so it shares their
        branch: `count_distinct converted_account` walks to the accounts like the accounts' orders do. Not with
        filters: those keep the records holding the references (the accounts of completed visits)."""
        path = m.path
        if (m.function != "count_distinct" or m.matched or m.filters or path is None
                or path.type not in REFERENCE_TYPES):
            return m
        if path.field != "id":
            path = replace(path, hops=(*path.hops, Hop(path.object, path.field, path.target, False)),
                           object=path.target, field="id")
        return Measure(m.key, "count", path, m.filters)

    # --------------------------------------------------------------------------------- branches

    def _rows(self, dimensions: Sequence[Dimension], extra: Callable[[Joins], dict[str, ColumnElement]]) -> sa.Select:
        """The base records in scope and matching the filters: their dimension values d0.. and `extra`."""
        joins = Joins(self.schema, self.base, self.mask)
        values = [self._dimension(joins, d).label(f"d{i}") for i, d in enumerate(dimensions)]
        more = [column.label(name) for name, column in extra(joins).items()]
        conditions = self.where(joins)
        scope = self.scope(self.base, joins.root)
        if not values and not more:  # the totals of base measures that read no column
            more = [sa.literal_column("1").label("one")]
        return (sa.select(*values, *more).select_from(joins.from_)
                .where(*conditions, *([scope] if scope is not None else [])))

    def _dimension(self, joins: Joins, d: Dimension) -> ColumnElement:
        column = joins.column(d.path)
        if d.bucket:
            return bucket(column, d.bucket, d.path.type == "datetime", self.dialect, self.time_zone)
        return column

    def _shape(self, dimensions: Sequence[Dimension], measures: Sequence[Measure], pairs: sa.Subquery,
               values: dict[int, ColumnElement], source: sa.FromClause | None = None) -> sa.Select:
        """A branch's select from `pairs` (or `source`, pairs joined further): the group columns, then every
        measure (NULL where another branch computes it)."""
        groups = [pairs.c[f"d{i}"] for i in range(len(dimensions))]
        columns = [
            (values[i] if i in values else sa.cast(sa.null(), self._type(m))).label(f"m{i}")
            for i, m in enumerate(measures)
        ]
        return sa.select(*groups, *columns).select_from(pairs if source is None else source).group_by(*groups)

    def _base_branch(self, dimensions: Sequence[Dimension], measures: Sequence[Measure]) -> sa.Select:
        """Measures over the base object's own fields; it also yields every group."""
        own = {i: m for i, m in enumerate(measures)
               if not m.matched and m.function != "count_distinct" and (m.path is None or not m.path.hops)}

        def value(j: Joins, m: Measure) -> ColumnElement:
            column = j.column(m.path) if m.path is not None else sa.literal_column("1")
            return sa.case((sa.and_(*self._kept(m, self.base, j.root)), column)) if m.filters else column

        rows = self._rows(dimensions, lambda j: {
            f"v{i}": value(j, m) for i, m in own.items() if m.path is not None or m.filters}).subquery("b")
        values = {i: self._aggregate(m, rows.c[f"v{i}"] if m.path is not None or m.filters else None)
                  for i, m in own.items()}
        return self._shape(dimensions, measures, rows, values)

    def _matched_branch(self, dimensions: Sequence[Dimension], measures: Sequence[Measure], i: int) -> sa.Select:
        """A matched measure: the distinct (group, record) pairs of the base records and the `matched` object's
        records (in the caller's scope and kept by the filters) whose keys equal theirs, then aggregated."""
        m = measures[i]
        dims = [f"d{n}" for n in range(len(dimensions))]
        base = self._rows(dimensions, lambda j: {f"e{n}": j.column(key.equals)
                                                 for n, key in enumerate(m.match)}).subquery("e")
        other = Joins(self.schema, m.matched, self.mask, prefix="x")
        on = []
        for n, key in enumerate(m.match):
            column = other.column(key.path)
            if key.within_days:
                start = base.c[f"e{n}"]
                on += [column >= start, column < days_later(start, key.within_days, key.path.type == "datetime")]
                continue
            if key.bucket:
                column = bucket(column, key.bucket, key.path.type == "datetime", self.dialect, self.time_zone)
            on.append(column == base.c[f"e{n}"])
        scope = self.scope(m.matched, other.root)
        value = other.column(m.path) if m.path is not None else other.root.c.id
        pairs = (sa.select(*(base.c[d] for d in dims), other.root.c.id.label("k"), value.label("v")).distinct()
                 .select_from(base.join(other.from_, sa.and_(*on)))
                 .where(*self._kept(m, m.matched, other.root), *([scope] if scope is not None else []))
                 .subquery("p"))
        value = sa.func.count(sa.distinct(pairs.c.v)) if m.function == "count_distinct" else \
            self._aggregate(m, pairs.c.v)
        return self._shape(dimensions, measures, pairs, {i: value})

    def _kept(self, m: Measure, obj: str, table: sa.FromClause) -> list[ColumnElement[bool]]:
        """The conditions of a measure's filters on `table`, an alias of the measured object `obj`'s table."""
        return [condition(self._read(obj, table, path.field), path.type, op, value, self.now)
                for path, op, value in m.filters]

    def _distinct_branch(self, dimensions: Sequence[Dimension], measures: Sequence[Measure], i: int) -> sa.Select:
        """count_distinct: the distinct (group, value) pairs, counted per group."""
        path = measures[i].path
        dims = [f"d{n}" for n in range(len(dimensions))]
        if not path.hops:
            def value(j: Joins) -> ColumnElement:
                kept = self._kept(measures[i], self.base, j.root)
                return sa.case((sa.and_(*kept), j.column(path))) if kept else j.column(path)

            pairs = self._rows(dimensions, lambda j: {"v": value(j)})
            pairs = pairs.where(pairs.selected_columns.v.is_not(None)).distinct().subquery("p")
        else:
            reached, obj, applied = self._walk(dimensions, path.hops)
            table, on = self._measured(obj, reached, applied)
            on = sa.and_(on, *self._kept(measures[i], obj, table))
            value = self._read(obj, table, path.field)
            pairs = (sa.select(*(reached.c[d] for d in dims), value.label("v")).distinct()
                     .select_from(reached.join(table, on)).where(value.is_not(None)).subquery("p"))
        return self._shape(dimensions, measures, pairs, {i: sa.func.count()})

    def _hop_branch(self, dimensions: Sequence[Dimension], measures: Sequence[Measure], hops: tuple[Hop, ...],
                    indexes: list[int]) -> sa.Select:
        """Measures over the records one path of hops reaches: distinct (group, record) pairs, then aggregated.
        A path ending in a reverse hop aggregates the children as it joins them (their parent pairs are
        distinct, so each child comes once), unless another branch needs those (group, child) pairs too."""
        last = hops[-1]
        kept = measures[indexes[0]].filters  # the measures of a branch share their filters
        if last.reverse and hops not in self._walked:
            parents, obj, applied = self._walk(dimensions, hops[:-1])
            if applied or self.scope(obj, self.schema[obj].table) is None:
                child = self.schema[last.target].alias("m")
                on = self._read(last.target, child, last.field) == parents.c.k
                scope = self.scope(last.target, child)
                values = {i: self._aggregate(measures[i], self._read(last.target, child, measures[i].path.field))
                          for i in indexes}
                on = sa.and_(on, *self._kept(measures[indexes[0]], last.target, child))
                joined = parents.join(child, on if scope is None else sa.and_(on, scope))
                return self._shape(dimensions, measures, parents, values, joined)
        reached, obj, applied = self._walk(dimensions, hops)
        only_ids = all(measures[i].path.field == "id" for i in indexes) and not kept
        if only_ids and (applied or self.scope(obj, self.schema[obj].table) is None):
            values = {i: self._aggregate(measures[i], reached.c.k) for i in indexes}
            return self._shape(dimensions, measures, reached, values)
        table, on = self._measured(obj, reached, applied)
        on = sa.and_(on, *self._kept(measures[indexes[0]], obj, table))
        values = {i: self._aggregate(measures[i], self._read(obj, table, measures[i].path.field)) for i in indexes}
        return self._shape(dimensions, measures, reached, values, reached.join(table, on))

    def _measured(self, obj: str, reached: sa.FromClause, applied: bool) -> tuple[sa.FromClause, ColumnElement]:
        """The measured object's table joined to the pairs (restricted to the scope unless already)."""
        table = self.schema[obj].alias("m")
        on = table.c.id == reached.c.k
        scope = None if applied else self.scope(obj, table)
        return table, on if scope is None else sa.and_(on, scope)

    def _walk(self, dimensions: Sequence[Dimension], hops: tuple[Hop, ...]) -> tuple[sa.CTE, str, bool]:
        """Distinct (group, k) pairs, k the id of each record the hops reach; with the object reached and
        whether its scope is applied already. Each prefix of hops is built once per statement, as a CTE that
        every branch sharing it reads (PostgreSQL and SQLite materialise one read twice)."""
        if hops in self._walked:
            return self._walked[hops]
        dims = [f"d{n}" for n in range(len(dimensions))]
        name = f"r{len(self._walked)}"
        if not hops:
            reached = self._rows(dimensions, lambda j: {"k": j.root.c.id}).cte(name)
            result = (reached, self.base, True)
        elif len(hops) == 1 and not hops[0].reverse:  # a lookup of the base: its column, no join
            pairs = self._rows(dimensions, lambda j: {"k": self._read(self.base, j.root, hops[0].field)})
            result = (pairs.where(pairs.selected_columns.k.is_not(None)).distinct().cte(name), hops[0].target, False)
        else:
            reached, obj, applied = self._walk(dimensions, hops[:-1])
            name = f"r{len(self._walked)}"
            hop = hops[-1]
            groups = [reached.c[d] for d in dims]
            source = reached
            if not applied and self.scope(obj, self.schema[obj].table) is not None:
                owner = self.schema[obj].alias(f"s{name}")
                source = source.join(owner, sa.and_(owner.c.id == reached.c.k, self.scope(obj, owner)))
            if hop.reverse:
                child = self.schema[hop.target].alias(f"h{name}")
                on = self._read(hop.target, child, hop.field) == reached.c.k
                scope = self.scope(hop.target, child)
                stmt = sa.select(*groups, child.c.id.label("k")).select_from(
                    source.join(child, on if scope is None else sa.and_(on, scope)))
            else:
                parent = self.schema[obj].alias(f"h{name}")
                value = self._read(obj, parent, hop.field)
                stmt = (sa.select(*groups, value.label("k")).distinct()
                        .select_from(source.join(parent, parent.c.id == reached.c.k)).where(value.is_not(None)))
            result = (stmt.cte(name), hop.target, hop.reverse)
        self._walked[hops] = result
        return result

    # ----------------------------------------------------------------------------- values

    def _read(self, obj: str, table: sa.FromClause, field: str) -> ColumnElement:
        """The column of `field` in `table` (an alias of `obj`'s table) as the caller may see it."""
        return self.mask(obj, table, field, table.c[column_name(self.schema, obj, field)])

    def _aggregate(self, m: Measure, column: ColumnElement | None) -> ColumnElement:
        if m.function == "count":
            return sa.func.count() if column is None else sa.func.count(column)
        if m.function == "avg":
            return sa.func.avg(column, type_=sa.Numeric(24, 4))
        return getattr(sa.func, m.function)(column, type_=self._type(m))

    def _type(self, m: Measure) -> sa.types.TypeEngine:
        if m.function in ("count", "count_distinct"):
            return sa.BigInteger()
        if m.function == "avg":
            return sa.Numeric(24, 4)
        column = self.schema[m.path.object].table.c[column_name(self.schema, m.path.object, m.path.field)]
        if m.function == "sum" and isinstance(column.type, sa.Integer):
            return sa.Numeric(38, 0)
        return column.type

    # ---------------------------------------------------------------------------- presenting

    def present(self, folded: sa.Subquery, dimensions: Sequence[Dimension], measures: Sequence[Measure],
                 sort: Sequence[tuple[str, bool]], limit: int | None) -> sa.Select:
        """Titles for reference dimensions, zeros for empty counts and sums, the order and the limit."""
        from_: sa.FromClause = folded
        shown: dict[str, ColumnElement] = {}
        order_by: dict[str, ColumnElement] = {}
        for i, d in enumerate(dimensions):
            value = folded.c[f"d{i}"]
            if d.path.target and not d.bucket:
                target = self.metadata.objects[d.path.target]
                title = target.title_field if target.title_field in self.schema[target.name].columns else "id"
                alias = self.schema[target.name].alias(f"title{i}")
                from_ = from_.outerjoin(alias, alias.c.id == value)
                value = self._read(target.name, alias, title)
            shown[d.key] = value
            order_by[d.key] = self._picklist_order(d, value)
        for i, m in enumerate(measures):
            value = folded.c[f"m{i}"]
            if m.function in ("count", "count_distinct", "sum"):
                value = sa.func.coalesce(value, sa.cast(0, self._type(m)), type_=self._type(m))
            shown[m.key] = value
            order_by[m.key] = value
        keys = [*sort, *((d.key, False) for d in dimensions if d.key not in dict(sort))]
        stmt = sa.select(*(value.label(key) for key, value in shown.items())).select_from(from_)
        stmt = stmt.order_by(*(order_by[k].desc().nulls_last() if desc else order_by[k].asc().nulls_last()
                               for k, desc in keys))
        return stmt.limit(limit) if limit else stmt

    def _picklist_order(self, d: Dimension, value: ColumnElement) -> ColumnElement:
        """A picklist dimension sorts in the picklist's order, not alphabetically."""
        if d.path.type != "picklist" or d.bucket:
            return value
        field = self.metadata.objects[d.path.object].fields[d.path.field]
        options = sorted(field.options, key=lambda o: o.order)
        if not options:
            return value
        return sa.case({o.value: n for n, o in enumerate(options)}, value=value, else_=len(options))
