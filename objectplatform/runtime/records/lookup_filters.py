"""Lookup filters: a lookup with `filter` names only a target holding those values when it is set or changed.

(How it works: docs/engine.md, "objectplatform/runtime/records/lookup_filters.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, ObjectDef

from ..errors import Message, said_label, said_list
from ..storage.convert import field_type, to_db
from . import hooks


def filtered(obj: ObjectDef) -> list[FieldDef]:
    """The lookup fields of `obj` that declare a filter."""
    return [f for f in obj.fields.values() if f.filter and f.rollup is None and f.to]


def _said_value(target: ObjectDef, name: str, value: Any) -> str:
    """A value as a message names it: a picklist option by its label (in each language), else as it is."""
    option = target.fields[name].option(value) if name in target.fields and value is not None else None
    return said_label(option.label.zh, option.label.en) if option else str(value)


def _check(ctx: hooks.HookContext, after: Mapping[str, Any], before: Mapping[str, Any] | None,
           errors: dict[str, list[str]]) -> None:
    """Add to `errors` why a filtered lookup of `after` that is new or changed names a target not holding its values."""
    definition = ctx.records.platform.metadata.objects[ctx.object]
    schema = ctx.records.schema
    for f in filtered(definition):
        value = after.get(f.name)
        if value in (None, "") or f.name in errors or (before and before.get(f.name) == value):
            continue
        tot = schema[f.to]
        target = tot.object
        names = [name for name in f.filter if name in tot.columns]
        title = tot.column(target.title_field) if target.title_field in tot.columns else tot.table.c.id
        row = ctx.conn.execute(sa.select(title, *(tot.column(n) for n in names)).where(
            tot.table.c.id == int(value))).first()
        if row is None:
            continue  # the reference check already says it names no record
        for name, have in zip(names, row[1:], strict=True):
            wanted = f.filter[name] if isinstance(f.filter[name], list) else [f.filter[name]]
            if have in [None if w is None else to_db(field_type(tot, name), w) for w in wanted]:
                continue
            errors.setdefault(f.name, []).append(Message(
                "lookup.filter", "{object} {title} is {value}: its {field} must be {wanted}",
                object=said_label(target.label.zh, target.label.en), title=str(row[0]),
                field=said_label(target.fields[name].label.zh, target.fields[name].label.en),
                value=_said_value(target, name, have),
                wanted=said_list([_said_value(target, name, w) for w in wanted])))
            break


def _check_batch(ctx: hooks.HookContext) -> None:
    for record, errors in zip(ctx.batch, ctx.batch_errors, strict=True):
        _check(ctx, record, None, errors)


def register(registry) -> None:
    """Check a filtered lookup when a record is created (one, or a batch of an import) with it or changes it."""
    def applies(obj: ObjectDef) -> bool:
        return bool(filtered(obj))

    registry.hook("before_create", lambda ctx: _check(ctx, ctx.after, None, ctx.errors), applies=applies)
    registry.hook("before_update", lambda ctx: _check(ctx, ctx.after, ctx.before, ctx.errors), applies=applies,
                  needed=lambda metadata, obj, values: any(f.name in values for f in filtered(obj)))
    registry.hook("before_create_many", _check_batch, applies=applies)
