"""Derived fields as SQL: a rollup's correlated subquery, the rollups of many parents over one child in one
aggregate query, and a stored formula's value over its own row.

The records service refreshes rollups with `rollup_counts`; migrate computes new rollups (`rollup_value`) and
stored formulas on existing rows with one UPDATE each, so both paths give the values a write would give.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef
from objectplatform.metadata.expressions import ExpressionError, parse
from objectplatform.runtime.expressions_sql import to_sql

from .convert import JSON_TYPES, field_type
from .id_sets import among, ids_param
from .tables import ObjectTable, Schema

DECIMAL_TYPES = frozenset({"number", "currency", "percent"})


def rollup_value(schema: Schema, f: FieldDef, parent: sa.FromClause) -> sa.ScalarSelect:
    """The correlated subquery of rollup field `f` for each row of `parent` (the table holding `f`)."""
    spec = f.rollup
    cot = schema[spec.child]
    child = cot.table.alias(f"c_{spec.child}")
    conditions = [child.c[cot.columns[spec.via][0]] == parent.c.id]
    for name, value in spec.filter.items():
        hop, _, far = name.partition(".")
        if not far:
            conditions.append(_holds(child.c[cot.columns[name][0]], value))
            continue
        tot = schema[cot.object.fields[hop].to]  # a field of the record the child's lookup `hop` names
        target = tot.table.alias(f"f_{hop}")
        held = sa.select(target.c.id).where(_holds(target.c[tot.columns[far][0]], value))
        conditions.append(child.c[cot.columns[hop][0]].in_(held))
    if spec.function == "count":
        value = sa.func.count()
    else:
        value = getattr(sa.func, spec.function)(_measured(cot, spec.field, child))
        if spec.function == "sum":
            value = sa.func.coalesce(value, 0)
    return sa.select(value).where(*conditions).scalar_subquery()


def rollup_counts(schema: Schema, parent: ObjectTable, fields: Sequence[FieldDef]) -> sa.Select:
    """(the parent's id as `id`, then each rollup of `fields` by its name, typed as its column): the rollups of
    `parent` over ONE child object and lookup, for the parents a `_parents` list of ids names, in one aggregate query
    over their children's rows; a parent with no children is absent (its sums and counts are 0, the rest null)."""
    spec = fields[0].rollup
    cot = schema[spec.child]
    child = cot.table.alias(f"c_{spec.child}")
    via = child.c[cot.columns[spec.via][0]]
    values = []
    for f in fields:
        conditions = []
        for name, value in f.rollup.filter.items():
            hop, _, far = name.partition(".")
            if not far:
                conditions.append(_holds(child.c[cot.columns[name][0]], value))
                continue
            tot = schema[cot.object.fields[hop].to]
            target = tot.table.alias(f"f_{hop}")
            conditions.append(child.c[cot.columns[hop][0]].in_(
                sa.select(target.c.id).where(_holds(target.c[tot.columns[far][0]], value))))
        held = sa.and_(*conditions) if conditions else None
        if f.rollup.function == "count":
            value = sa.func.count() if held is None else sa.func.count(sa.case((held, 1)))
        else:
            measured = _measured(cot, f.rollup.field, child)
            value = getattr(sa.func, f.rollup.function)(measured if held is None else sa.case((held, measured)))
            if f.rollup.function == "sum":
                value = sa.func.coalesce(value, 0)
        values.append(sa.type_coerce(value, parent.column(f.name).type).label(f.name))
    return sa.select(via.label("id"), *values).where(among(via, ids_param("_parents"))).group_by(via)


def rollup_deltas(schema: Schema, fields: Sequence[FieldDef], written: Mapping[str, Any]) -> sa.Select:
    """(the parent's id as `id`, then what a write giving the children the same `written` values ({field: value})
    adds to each count and sum of `fields` by its name; counts and sums over the child's own stored fields, of ONE
    child object and lookup, which the write leaves alone): each child as it is taken out of its parent's rollups,
    as the write makes it put back in, summed per parent in one aggregate query over the children the caller's
    `where` selects. A filter on a written field is decided here; a measured field written is a parameter
    `_new_<field>`."""
    spec = fields[0].rollup
    cot = schema[spec.child]
    child = cot.table

    def column(name: str) -> sa.ColumnElement:
        return child.c[cot.columns[name][0]]

    def measured(f: FieldDef, new: bool) -> sa.ColumnElement:
        if f.rollup.function == "count":
            return sa.literal(1)
        if new and f.rollup.field in written:
            return sa.func.coalesce(sa.bindparam(f"_new_{f.rollup.field}", type_=column(f.rollup.field).type), 0)
        return sa.func.coalesce(column(f.rollup.field), 0)

    def side(f: FieldDef, new: bool) -> sa.ColumnElement:
        conditions = []
        for name, value in f.rollup.filter.items():
            if not new or name not in written:
                conditions.append(_holds(column(name), value))
            elif written[name] != value if not isinstance(value, list) else written[name] not in value:
                return sa.literal(0)
        return sa.case((sa.and_(*conditions), measured(f, new)), else_=0) if conditions else measured(f, new)

    # as the database sums them (rounded when added; on SQLite floats not made Decimals one by one)
    values = [sa.type_coerce(sa.func.sum(side(f, True) - side(f, False)), sa.types.NullType()).label(f.name)
              for f in fields]
    via = column(spec.via)
    return sa.select(via.label("id"), *values).where(via.is_not(None)).group_by(via)


def _holds(column: sa.ColumnElement, value) -> sa.ColumnElement[bool]:
    """A rollup filter's condition: the column is null, one of a list of values, or the value."""
    if value is None:
        return column.is_(None)
    return column.in_(value) if isinstance(value, list) else column == value


def _measured(ot: ObjectTable, field: str, table: sa.FromClause) -> sa.ColumnElement:
    """The child's column, or the SQL of a formula computed on read."""
    if field in ot.columns:
        return table.c[ot.columns[field][0]]
    columns = {name: table.c[cols[0]] for name, cols in ot.columns.items() if len(cols) == 1}
    return to_sql(parse(ot.object.fields[field].expression), columns)


def stored_formula_value(ot: ObjectTable, f: FieldDef, now: datetime) -> sa.ColumnElement:
    """Stored formula `f` computed from its own row, rounded half-up to its column as `Formulas` rounds it.

    Raises ExpressionError when the database cannot compute it (a function without SQL, a field
    computed on read or held as JSON).
    """
    expr = parse(f.expression)
    columns = {
        name: ot.table.c[cols[0]]
        for name, cols in ot.columns.items()
        if len(cols) == 1 and field_type(ot, name) not in JSON_TYPES | {"password"}
    }
    if unreadable := sorted(expr.names - columns.keys()):
        name = unreadable[0]
        raise ExpressionError(
            f"{name} is computed on read"
            if ot.object.fields[name].type == "formula"
            else f"{name} is not held in one plain column"
        )
    value = to_sql(expr, columns, now)
    if f.result_type in DECIMAL_TYPES:
        return sa.func.round(sa.cast(value, sa.Numeric()), 2 if f.scale is None else f.scale)
    if f.result_type == "integer":
        return sa.cast(sa.func.round(sa.cast(value, sa.Numeric())), sa.BigInteger())
    return value
