"""Formula fields evaluated in Python, in dependency order: stored ones on write, the others on read.

A numeric result is rounded half-up to the column's scale here, so SQLite (which keeps floats) and
PostgreSQL hold the same value; a formula that cannot be evaluated (e.g. a type clash) is None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, ObjectDef
from objectplatform.metadata.expressions import Expression, ExpressionError, parse, reads_clock

from ..expressions_sql import to_sql

_DECIMAL_TYPES = frozenset({"number", "currency", "percent"})


class Formulas:
    """An object's formula fields, ordered so that a formula comes after the formulas it reads."""

    def __init__(self, obj: ObjectDef):
        parsed = {f.name: (f, parse(f.expression)) for f in obj.fields.values() if f.type == "formula"}
        self.order: list[tuple[FieldDef, Expression]] = []
        done: set[str] = set()

        def visit(name: str, path: frozenset[str]) -> None:
            if name in done or name in path:
                return
            f, expr = parsed[name]
            for dep in expr.names & parsed.keys():
                visit(dep, path | {name})
            done.add(name)
            self.order.append((f, expr))

        for name in parsed:
            visit(name, frozenset())
        self.stored = frozenset(f.name for f, _ in self.order if f.stored)
        self.on_read_order = [(f, expr) for f, expr in self.order if not f.stored]  # computed on read, in order
        self.clocked = any(reads_clock(expr) for _, expr in self.order)  # a value depends on when it is computed

    def on_write(self, record: dict, now: datetime, before: Mapping[str, Any] | None = None) -> dict:
        """Every formula evaluated into `record` (the stored ones are what gets written), but a typed override
        kept (see `kept`); `before` is the stored record (None: a new one); returns `record`."""
        for f, expr in self.order:
            if f.typed_override is None or not kept(f, expr, record, before):
                record[f.name] = _evaluate(f, expr, record, now)
        return record

    def sql(self, columns: Mapping[str, sa.ColumnElement], new: Mapping[str, sa.ColumnElement],
            now: datetime, only: Iterable[str] | None = None) -> dict[str, sa.ColumnElement]:
        """The stored formulas as SQL over a row whose fields `new` ({name: SQL of its new value}) change and whose
        other fields are `columns` ({name: column}), as `on_write` computes them for a write of `new` alone (a typed
        override kept while what its formula reads is unchanged, numbers rounded half-up to the column's scale);
        given `only`, those formulas alone, the others read as stored. Raises ExpressionError naming a formula the
        database cannot compute (then `on_write` does)."""
        env = {**columns, **new}
        out: dict[str, sa.ColumnElement] = {}
        for f, expr in self.order:
            if f.name not in columns:
                raise ExpressionError(f"formula {f.name} is not a column", 0)
            if only is not None and f.name not in only:
                continue
            try:
                value = _rounded(f, to_sql(expr, env, now), columns[f.name].type)
                if f.typed_override is not None:
                    old = columns[f.name]
                    same = [env[n].is_not_distinct_from(columns[n]) for n in sorted(expr.names)
                            if env[n] is not columns[n]]
                    value = sa.case((sa.and_(old.is_not(None), *same), old), else_=value)
            except (ExpressionError, KeyError) as e:
                raise ExpressionError(f"formula {f.name}: {e}", 0) from e
            env[f.name] = value
            if f.stored:
                out[f.name] = value
        return out

    def on_read(self, record: dict, now: datetime) -> dict:
        """The formulas computed on read, added to a record read from its row; returns it."""
        for f, expr in self.on_read_order:
            record[f.name] = _evaluate(f, expr, record, now)
        return record


def kept(f: FieldDef, expr: Expression, record: Mapping[str, Any], before: Mapping[str, Any] | None) -> bool:
    """Whether a typed override's value in `record` stays: typed in this write, or typed before and none of the
    fields its formula reads changed since."""
    if before is None:
        return record.get(f.name) is not None
    if record.get(f.name) != before.get(f.name):
        return True
    return before.get(f.name) is not None and all(record.get(n) == before.get(n) for n in expr.names)


def _rounded(f: FieldDef, value: sa.ColumnElement, type_: sa.types.TypeEngine) -> sa.ColumnElement:
    """A formula's SQL value as `_evaluate` rounds it (half away from zero, as ROUND_HALF_UP), typed as its column."""
    if f.result_type in _DECIMAL_TYPES:
        value = sa.func.round(sa.cast(value, sa.Numeric()), 2 if f.scale is None else f.scale)
    elif f.result_type == "integer":
        value = sa.func.round(sa.cast(value, sa.Numeric()))
    return sa.type_coerce(value, type_)


def _evaluate(f: FieldDef, expr: Expression, record: dict, now: datetime) -> Any:
    try:
        value = expr.evaluate(record, now)
    except ExpressionError:
        return None
    if value is None or isinstance(value, bool):
        return value
    if f.result_type in _DECIMAL_TYPES and isinstance(value, int | float | Decimal):
        scale = 2 if f.scale is None else f.scale
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if f.result_type == "integer" and isinstance(value, int | float | Decimal):
        return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return value
