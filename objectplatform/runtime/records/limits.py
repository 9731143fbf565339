"""Rollups that are never above a limit (`never_above`): a child's write raising one past it is refused.

(How it works: docs/engine.md, "objectplatform/runtime/records/limits.py".)"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, ObjectDef
from objectplatform.metadata.expressions import ExpressionError, parse

from ..errors import Message, NotFound, ValidationFailed, said_label
from ..expressions_sql import to_sql
from ..storage.id_sets import among
from . import hooks


def limited(obj: ObjectDef) -> list[FieldDef]:
    """The rollup fields of `obj` that declare `never_above`."""
    return [f for f in obj.fields.values() if f.rollup is not None and f.rollup.never_above]


def _amount(value) -> str:
    """A sum as the message shows it: two decimals, no grouping (a JSON client reads it back exactly)."""
    return f"{Decimal(value or 0):.2f}"


def refuse_above(ctx: hooks.HookContext) -> None:
    """422 on the child's measured field when its write raised a limited rollup of the parent above its limit.

    The rollup refresh that fires this hook holds the parent's row lock and recounted the children after
    taking it, so two writers adding at the same moment see each other: the second is refused."""
    definition = ctx.records.platform.metadata.objects[ctx.object]
    for f in limited(definition):
        old, new = Decimal(ctx.before.get(f.name) or 0), Decimal(ctx.after.get(f.name) or 0)
        if new <= old:
            continue
        limit = parse(f.rollup.never_above).evaluate(ctx.after, ctx.now)
        limit = Decimal(limit or 0)
        if new <= limit:
            continue
        raise _above(ctx, definition, f, old, new, limit, ctx.after)


def refuse_above_many(ctx: hooks.RowsContext) -> None:
    """`refuse_above` on the records a set-based refresh changed: one query per limited field written finds those
    it raised above their limit; the first of them (by id, then field) is refused as `refuse_above` refuses it."""
    definition = ctx.records.platform.metadata.objects[ctx.object]
    table, before = ctx.table, ctx.before
    columns = ctx.columns
    first: tuple[int, int, FieldDef] | None = None
    for n, f in enumerate(limited(definition)):
        if f.name not in ctx.written or f.name not in columns or columns[f.name].name not in before.c:
            continue
        column = columns[f.name].name
        raised = ctx.conn.execute(sa.select(before.c.id).where(
            sa.func.coalesce(before.c[f"new_{column}"], 0) > sa.func.coalesce(before.c[column], 0))).scalars().all()
        if not raised:
            continue
        try:
            above = sa.func.coalesce(columns[f.name], 0) > sa.func.coalesce(
                to_sql(parse(f.rollup.never_above), columns, ctx.now), 0)
        except ExpressionError:  # the limit is computed here for each record raised
            found = ctx.records.read_many(ctx.conn, ctx.object, [str(i) for i in raised])
            ids = sorted(int(i) for i, record in found.items() if Decimal(record.get(f.name) or 0) > Decimal(
                parse(f.rollup.never_above).evaluate(record, ctx.now) or 0))
        else:  # min(), not ORDER BY ... LIMIT 1: SQLite would scan `table` in id order
            ids = [i for i in ctx.conn.execute(sa.select(sa.func.min(table.c.id)).where(
                among(table.c.id, raised), above)).scalars() if i is not None]
        if ids and (first is None or (ids[0], n) < first[:2]):
            first = (ids[0], n, f)
    if first is None:
        return
    record_id, _, f = first
    record = ctx.records.get(ctx.object, record_id, conn=ctx.conn)
    old = ctx.conn.execute(sa.select(before.c[columns[f.name].name]).where(before.c.id == record_id)).scalar()
    limit = Decimal(parse(f.rollup.never_above).evaluate(record, ctx.now) or 0)
    raise _above(ctx, definition, f, Decimal(old or 0), Decimal(record.get(f.name) or 0), limit, record)


def _above(ctx, definition: ObjectDef, f: FieldDef, old: Decimal, new: Decimal, limit: Decimal,
           record) -> ValidationFailed:
    """The refusal of a write raising `f` of `record` from `old` to `new`, above `limit`."""
    return ValidationFailed({f.rollup.field or "__all__": [Message(
            "rollup.never_above", "{field} of {object} {title} would be {value}, above {limit}: at most {left} is left",
            field=said_label(f.label.zh, f.label.en), object=said_label(definition.label.zh, definition.label.en),
            title=_title(ctx, definition, record), value=_amount(new), limit=_amount(limit),
            left=_amount(max(limit - old, Decimal(0))))]})


def _title(ctx: hooks.HookContext, definition: ObjectDef, record) -> str:
    """The record's title; a title that is a lookup (an order line's product) says the record it names."""
    value = record.get(definition.title_field)
    f = definition.fields.get(definition.title_field)
    if value and f is not None and f.type == "lookup":
        target = ctx.records.platform.metadata.objects[f.to]
        try:
            return _title(ctx, target, ctx.records.get(target.name, value, conn=ctx.conn))
        except NotFound:  # the title's record is gone (or out of reach): named by its id below, as before
            pass
    return str(value or record.get("id"))


def _reads(obj: ObjectDef) -> set[str]:
    """What `refuse_above` reads of a parent: its limited rollups, the fields their limits name and its title."""
    return {obj.title_field, *(name for f in limited(obj) for name in (f.name, *parse(f.rollup.never_above).names))}


def register(registry) -> None:
    """Check every parent whose limited rollups a child's write changed."""
    registry.hook("after_rollup", refuse_above, applies=lambda obj: bool(limited(obj)), reads=_reads,
                  many=refuse_above_many)
