"""Formulas the user may type over (`typed_override`): the typed value is held to its bounds and sets the fields
it derives; records/formulas.py keeps it until a field the formula reads changes.

(How it works: docs/engine.md, "objectplatform/runtime/records/typed_overrides.py".)"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from objectplatform.metadata import FieldDef, ObjectDef
from objectplatform.metadata.expressions import ExpressionError, parse

from ..errors import Message, said_label
from . import hooks


def overridable(obj: ObjectDef) -> list[FieldDef]:
    """The formulas of `obj` that declare `typed_override`."""
    return [f for f in obj.fields.values() if f.typed_override is not None]


def _value(expression: str, record: dict, ctx: hooks.HookContext) -> Any:
    try:
        return parse(expression).evaluate(record, ctx.now)
    except ExpressionError:
        return None


def _bound_error(obj: ObjectDef, expression: str, value: Decimal, limit: Decimal, above: bool) -> Message:
    """Why `value` is past its bound: named by the field the bound is, if it is one, with both numbers."""
    bound = obj.fields.get(expression.strip())
    if bound is None:
        return (Message("value.at_most", "must be at most {max}", max=f"{limit:.2f}") if above
                else Message("value.at_least", "must be at least {min}", min=f"{limit:.2f}"))
    params = {"value": f"{value:.2f}", "limit": f"{limit:.2f}", "bound": said_label(bound.label.zh, bound.label.en)}
    if above:
        return Message("typed_override.above", "{value} is above the {bound} {limit}", **params)
    return Message("typed_override.below", "{value} is below the {bound} {limit}", **params)


def _derive(ctx: hooks.HookContext, obj: ObjectDef, record: dict, f: FieldDef, errors: dict) -> None:
    """Check the typed value of `f` against its bounds, then set the fields it derives (rounded to their scale)."""
    value = Decimal(record[f.name])
    for key, above in (("min", False), ("max", True)):
        expression = getattr(f.typed_override, key)
        limit = None if expression is None else _value(expression, record, ctx)
        if limit is not None and (value > Decimal(limit) if above else value < Decimal(limit)):
            errors.setdefault(f.name, []).append(_bound_error(obj, expression, value, Decimal(limit), above))
            return
    for name, expression in f.typed_override.derive.items():
        derived = _value(expression, record, ctx)
        if derived is not None:
            scale = obj.fields[name].scale
            record[name] = Decimal(str(derived)).quantize(Decimal(1).scaleb(-(2 if scale is None else scale)),
                                                          rounding=ROUND_HALF_UP)


def _typed(ctx: hooks.HookContext, record: dict, errors: dict, before: dict | None) -> None:
    """For each formula typed over in this write (and valid so far), its bounds and derived fields."""
    obj = ctx.records.platform.metadata.objects[ctx.object]
    for f in overridable(obj):
        value = record.get(f.name)
        if value is None or f.name in errors or (before is not None and value == before.get(f.name)):
            continue
        _derive(ctx, obj, record, f, errors)


def _typed_batch(ctx: hooks.HookContext) -> None:
    for record, errors in zip(ctx.batch, ctx.batch_errors, strict=True):
        _typed(ctx, record, errors, None)


def register(registry) -> None:
    """Hold typed overrides to their bounds and derive their fields before a create (one, or each row of an import)
    or an update is validated."""
    def applies(obj: ObjectDef) -> bool:
        return bool(overridable(obj))

    registry.hook("before_create", lambda ctx: _typed(ctx, ctx.after, ctx.errors, None), applies=applies)
    registry.hook("before_create_many", _typed_batch, applies=applies)
    registry.hook("before_update", lambda ctx: _typed(ctx, ctx.after, ctx.errors, ctx.before), applies=applies)
