"""Defaults matched from other records (`default_match`): a new record's empty field takes the value of the most
specific record of another object that matches it (a line's discount from a price policy).

(How it works: docs/engine.md, "objectplatform/runtime/records/matched_defaults.py".)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, ObjectDef
from objectplatform.metadata.expressions import parse

from ..errors import Message, said_label
from ..expressions_sql import to_sql
from ..storage.convert import from_row
from . import hooks
from .query import formula_columns

EMPTY = (None, "", [])


def matched(obj: ObjectDef) -> list[FieldDef]:
    """The fields of `obj` that declare `default_match`."""
    return [f for f in obj.fields.values() if f.default_match is not None]


def best_match(records, conn: sa.Connection, obj: ObjectDef, f: FieldDef, record: dict,
               master: tuple[str, dict] | None = None) -> dict | None:
    """The record of the match's object giving `f` its default for `record` (see `best_matches`)."""
    return best_matches(records, conn, obj, f, [record], master)[0]


def best_matches(records, conn: sa.Connection, obj: ObjectDef, f: FieldDef, batch: list[dict],
                 master: tuple[str, dict] | None = None) -> list[dict | None]:
    """Per record of `batch`, the record of the match's object giving `f` its default: among those its `where`
    admits today, the newest one found by the first `match` entry whose paths all give a value and that finds any;
    None when none does. Set-based: each path followed once for the batch, one query for every entry (the rows any
    entry finds, newest first)."""
    spec = f.default_match
    ot = records.schema[spec.object]
    table = ot.table
    now = records.platform.local_now()
    admitted = [] if spec.where is None else [to_sql(parse(spec.where), formula_columns(ot), now, condition=True)]
    followed: dict[str, list] = {}  # the entries share their paths (the customer, its grade): each is read once
    wanted: list[tuple[list[str], dict[int, tuple]]] = []  # per entry: its fields, and each record's values of them
    for entry in spec.match:
        theirs = list(entry)
        for path in entry.values():
            if path not in followed:
                followed[path] = records.follow_many(conn, obj, batch, path, master)
        wanted.append((theirs, {i: tuple(_stored(ot.object.fields[name], followed[entry[name]][i]) for name in theirs)
                                for i in range(len(batch))
                                if not any(followed[entry[name]][i] in EMPTY for name in theirs)}))
    keys = [sa.tuple_(*(ot.column(name) for name in theirs)).in_(sorted(set(values.values())))
            for theirs, values in wanted if values]
    found: list[dict | None] = [None] * len(batch)
    if not keys:
        return found
    rows = [records.formulas[spec.object].on_read(from_row(ot, row), now) for row in conn.execute(
        sa.select(table).where(*admitted, sa.or_(*keys)).order_by(table.c.id.desc())).mappings()]
    for theirs, values in wanted:
        newest: dict[tuple, dict] = {}
        for record in rows:
            newest.setdefault(tuple(_stored(ot.object.fields[name], record[name]) for name in theirs), record)
        for i, given in values.items():
            if found[i] is None:
                found[i] = newest.get(given)
    return found


def _stored(f: FieldDef, value: Any) -> Any:
    """A path's value as the match's column holds it (a reference is an integer id)."""
    return int(value) if f.to and value is not None else value


def _may_override(records, obj: ObjectDef, f: FieldDef) -> bool:
    """Whether the caller may give another value than the matched one: the system and a caller whose roles grant
    the match's `override` (or a match without one)."""
    caller = getattr(records, "caller", None)
    override = f.default_match.override
    return caller is None or override is None or caller.is_admin or caller.can_act(obj.name, override)


def _locked(records, f: FieldDef, found: dict, value: Any) -> Message:
    """Why the caller may not give `value`: the field comes from the matched record, named with its value."""
    source = records.platform.metadata.objects[f.default_match.object]
    title = found.get(source.title_field) if source.title_field else found["id"]
    return Message("default_match.locked", "{field} comes from the {object} “{title}” ({matched}); your roles may "
                   "not change it to {value}", field=said_label(f.label.zh, f.label.en),
                   object=said_label(source.label.zh, source.label.en.lower()), title=title,
                   matched=_shown(f, found.get(f.default_match.value)), value=_shown(f, value))


def _shown(f: FieldDef, value: Any) -> str:
    """A number with two decimals (and % for a percent), anything else as text."""
    if not isinstance(value, (int, float, Decimal)):
        return str(value)
    return f"{Decimal(str(value)):.2f}{'%' if f.type == 'percent' else ''}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        return Decimal(str(a)) == Decimal(str(b))
    return a == b


def _fill(ctx: hooks.HookContext) -> None:
    """Each matched field of a new record (see `_fill_records`)."""
    _fill_records(ctx, [ctx.after], [ctx.errors], [ctx.given or {}], ctx.master)


def _fill_batch(ctx: hooks.HookContext) -> None:
    """Each matched field of the records of an import's batch, as of a record created alone (see `_fill_records`)."""
    _fill_records(ctx, ctx.batch, ctx.batch_errors, ctx.batch_given, None)


def _fill_records(ctx: hooks.HookContext, batch: list[dict], batch_errors: list[dict], batch_given: list,
                  master: tuple[str, dict] | None) -> None:
    """Each matched field of new records: the matched value where none was given, else the given one held to
    it unless the caller may override."""
    obj = ctx.records.platform.metadata.objects[ctx.object]
    for f in matched(obj):
        todo = [i for i, (errors, given) in enumerate(zip(batch_errors, batch_given, strict=True))
                if f.name not in errors or given.get(f.name) in EMPTY]
        found = best_matches(ctx.records, ctx.conn, obj, f, [batch[i] for i in todo], master)
        for i, match in zip(todo, found, strict=True):
            record, errors = batch[i], batch_errors[i]
            if match is not None and batch_given[i].get(f.name) in EMPTY:
                record[f.name] = match.get(f.default_match.value)
                errors.pop(f.name, None)
            _keep(ctx.records, errors, obj, f, record, match, record.get(f.name))


def _hold(ctx: hooks.HookContext) -> None:
    """A change of a matched field is held to the record's match unless the caller may override it; the change
    an allowed caller makes away from the match leaves `record` empty, one back to it names it again."""
    obj = ctx.records.platform.metadata.objects[ctx.object]
    given = ctx.given or {}
    for f in matched(obj):
        value = ctx.after.get(f.name)
        if f.name not in given or f.name in ctx.errors or _same(value, ctx.before.get(f.name)):
            continue
        found = best_match(ctx.records, ctx.conn, obj, f, ctx.after, ctx.master)
        _keep(ctx.records, ctx.errors, obj, f, ctx.after, found, value)


def _keep(records, errors: dict, obj: ObjectDef, f: FieldDef, record: dict, found: dict | None, value: Any) -> None:
    """`value` of `f` against the match `found`: refused (in `errors`) unless it is the match's or the caller may
    override; `record` names the match only while the field holds its value."""
    spec = f.default_match
    holds = found is not None and _same(value, found.get(spec.value))
    if found is not None and not holds and not _may_override(records, obj, f):
        errors.setdefault(f.name, []).append(_locked(records, f, found, value))
    if spec.record is not None:
        record[spec.record] = found["id"] if holds else None


def register(registry) -> None:
    """Match the defaults of a new record (one, or each row of an import's batch) before it is validated, and hold a
    change to the match."""
    def applies(obj: ObjectDef) -> bool:
        return bool(matched(obj))

    registry.hook("before_create", _fill, applies=applies)
    registry.hook("before_create_many", _fill_batch, applies=applies)
    registry.hook("before_update", _hold, applies=applies)
