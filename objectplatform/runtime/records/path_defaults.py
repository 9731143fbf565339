"""Defaults read through lookups (`default_from`): a new record's empty field takes the value its path reaches.

(How it works: docs/engine.md, "objectplatform/runtime/records/path_defaults.py".)"""

from __future__ import annotations

from objectplatform.metadata import FieldDef, ObjectDef

from ..validation import REQUIRED
from . import hooks


def defaulted(obj: ObjectDef) -> list[FieldDef]:
    """The fields of `obj` that declare `default_from`."""
    return [f for f in obj.fields.values() if f.default_from]


def _fill(ctx: hooks.HookContext, record: dict, errors: dict[str, list[str]]) -> None:
    """Fill each empty defaulted field of `record` from the first of its paths giving a value."""
    definition = ctx.records.platform.metadata.objects[ctx.object]
    for f in defaulted(definition):
        if record.get(f.name) not in (None, "", []) or [m for m in errors.get(f.name, ()) if m != REQUIRED]:
            continue
        value = next((v for path in f.default_from
                      if (v := ctx.records.follow(ctx.conn, definition, record, path)) not in (None, "", [])), None)
        if value is not None:
            record[f.name] = value
            errors.pop(f.name, None)


def _fill_batch(ctx: hooks.HookContext) -> None:
    for record, errors in zip(ctx.batch, ctx.batch_errors, strict=True):
        _fill(ctx, record, errors)


def register(registry) -> None:
    """Fill defaulted fields before a create (one, or each row of an import) is validated against its rules."""
    def applies(obj: ObjectDef) -> bool:
        return bool(defaulted(obj))

    registry.hook("before_create", lambda ctx: _fill(ctx, ctx.after, ctx.errors), applies=applies)
    registry.hook("before_create_many", _fill_batch, applies=applies)
