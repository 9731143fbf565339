"""The follow_ups behavior: a follow-up record keeps the record it follows up current.

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/follow_ups.py".)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from objectplatform.metadata import Metadata, ObjectDef

from ..errors import Message, no_record
from ..records import history
from ..records.hooks import HookContext
from ..records.service import DERIVED_TYPES, parse_record_id
from ..storage.convert import from_row, to_row
from .registry import Behavior, FieldNeed, Need, ObjectNeed

BEHAVIOR = "follow_ups"
CONTRACT = (("related_object", ("text",)), ("related_id", ("text",)), ("followed_at", ("datetime",)))


@dataclass(frozen=True)
class FollowUpsConfig:
    """`behaviors: follow_ups:` of one object: the object of its follow-ups, the field keeping the last
    follow-up time (none: not kept) and the status field moved from its pending to its following status
    (on an object with the pool behavior, the pool's status field and statuses instead)."""

    follow_up_object: str
    last_followed_field: str | None = None
    status_field: str = "status"
    pending_status: str = "pending"
    following_status: str = "following"


SCHEMA = {
    "type": "object",
    "properties": {"follow_up_object": {"type": "string", "minLength": 1},
                   "last_followed_field": {"type": "string", "minLength": 1},
                   "status_field": {"type": "string", "minLength": 1, "default": "status"},
                   "pending_status": {"type": "string", "minLength": 1, "default": "pending"},
                   "following_status": {"type": "string", "minLength": 1, "default": "following"}},
    "required": ["follow_up_object"],
    "additionalProperties": False,
}


def _needs(obj: ObjectDef, config: FollowUpsConfig) -> Iterator[Need]:
    yield ObjectNeed(config.follow_up_object, "follow_up_object")
    for name, types in CONTRACT:
        yield FieldNeed(name, types, "follow_up_object", config.follow_up_object)
    if config.last_followed_field is not None:
        yield FieldNeed(config.last_followed_field, ("datetime",), "last_followed_field")


def _status_move(obj: ObjectDef) -> tuple[str, str, str]:
    """(status field, pending, following) of `obj`, which declares the behavior."""
    config = FOLLOW_UPS.config_of(obj)
    return config.status_field, config.pending_status, config.following_status


def is_follow_up(obj: ObjectDef) -> bool:
    return {name for name, _ in CONTRACT} <= obj.fields.keys()


def follow_up_object(metadata: Metadata) -> str | None:
    """The object of the follow-ups (the pages' timeline and feed): the one the first object declaring the
    behavior names; None when no object declares it."""
    return next((config.follow_up_object for _, config in FOLLOW_UPS.configured(metadata)), None)


def check_related(ctx: HookContext) -> None:
    """before_create: the related record must exist; an empty followed_at becomes now."""
    _check(ctx, [ctx.after], [ctx.errors])


def check_moved(ctx: HookContext) -> None:
    """before_update: a follow-up moved to another record must name one that exists (nothing else changes)."""
    related = ("related_object", "related_id")
    if any(ctx.after.get(name) != ctx.before.get(name) for name in related):
        _check(ctx, [ctx.after], [ctx.errors], fill=False)


def check_related_many(ctx: HookContext) -> None:
    """before_create_many: the same for a batch, one SELECT per related object."""
    _check(ctx, ctx.batch, ctx.batch_errors)


def follow(ctx: HookContext) -> None:
    """after_create: the related record's last follow-up time and status."""
    _follow(ctx, [ctx.after])


def follow_many(ctx: HookContext) -> None:
    """after_create_many: the same for a batch."""
    _follow(ctx, ctx.batch)


def _check(ctx: HookContext, rows: list[dict], errors: list[dict[str, list[str]]], fill: bool = True) -> None:
    """Errors for related records that do not exist; with `fill`, an empty followed_at becomes now."""
    metadata = ctx.records.metadata
    known = sorted(name for name in metadata.objects if name != ctx.object)
    wanted: dict[str, set[int]] = {}
    for row, row_errors in zip(rows, errors, strict=True):
        if fill and row.get("followed_at") is None:
            row["followed_at"] = ctx.now
        obj, related_id = row.get("related_object"), row.get("related_id")
        if obj is None or "related_object" in row_errors:
            continue
        if obj not in known:
            row_errors.setdefault("related_object", []).append(Message(
                "follow_up.unknown_object", "unknown object {object}; one of {known}", object=obj,
                known=", ".join(known)))
            continue
        if related_id is None or "related_id" in row_errors:
            continue
        number = parse_record_id(related_id)
        if number is not None:
            row["related_id"] = str(number)  # "007" and "7" name the same record
            wanted.setdefault(obj, set()).add(number)
    existing: dict[str, set[int]] = {}
    for obj, ids in wanted.items():
        table = ctx.records.schema[obj].table
        scope = ctx.records.reference_scope
        visible = scope(obj, table) if scope else None
        existing[obj] = set(ctx.conn.execute(
            sa.select(table.c.id).where(table.c.id.in_(ids), *([visible] if visible is not None else []))
        ).scalars())
    for row, row_errors in zip(rows, errors, strict=True):
        obj, related_id = row.get("related_object"), row.get("related_id")
        if obj in known and related_id is not None and not row_errors.get("related_object") \
                and "related_id" not in row_errors:
            number = parse_record_id(related_id)
            if number is None or number not in existing.get(obj, ()):
                row_errors.setdefault("related_id", []).append(no_record(metadata.objects[obj], related_id))


def _follow(ctx: HookContext, follow_ups: list[dict]) -> None:
    """Each related record (of objects declaring the behavior) gets its latest follow-up time."""
    objects = ctx.records.metadata.objects
    latest: dict[str, dict[int, datetime]] = {}
    for f in follow_ups:
        obj = objects.get(f["related_object"])
        if obj is None or BEHAVIOR not in obj.behaviors:
            continue
        times = latest.setdefault(obj.name, {})
        record_id = int(f["related_id"])
        if record_id not in times or f["followed_at"] > times[record_id]:
            times[record_id] = f["followed_at"]
    for name, times in latest.items():
        _touch(ctx, objects[name], times)


def _touch(ctx: HookContext, obj: ObjectDef, times: Mapping[int, datetime]) -> None:
    """One locking SELECT and one UPDATE (a parameter set per changed record) for the object's records."""
    service, conn, now = ctx.records, ctx.conn, ctx.now
    config: FollowUpsConfig = FOLLOW_UPS.config_of(obj)
    last_field = config.last_followed_field
    status_name, pending, following = _status_move(obj)
    status = obj.fields.get(status_name)
    moves_status = status is not None and bool(status.option(pending)) and bool(status.option(following))
    ot = service.schema[obj.name]
    table, formulas = ot.table, service.formulas[obj.name]
    written = [name for name in (last_field, status_name) if name in ot.columns]
    written += [name for name in sorted(formulas.stored) if name in ot.columns and name not in written]
    columns = [c for name in written for c in ot.columns[name]]
    rows = conn.execute(sa.select(table).where(table.c.id.in_(times)).order_by(table.c.id).with_for_update())
    params, pairs, entries = [], [], []
    for row in rows.mappings():
        current = from_row(ot, row)
        record = dict(current)
        followed_at = times[int(current["id"])]
        if last_field and (current.get(last_field) is None or current[last_field] < followed_at):
            record[last_field] = followed_at
        if moves_status and current.get(status_name) == pending:
            record[status_name] = following
        formulas.on_write(record, now.astimezone(service.platform.settings.zone))
        changes = history.changes(current, record, written)
        if not changes:
            continue
        values = to_row(ot, {name: record[name] for name in written})
        params.append({"record_id": int(current["id"]), **{f"new_{c}": values[c] for c in columns}})
        pairs.append((current, record))
        entries += [history.entry(obj.name, int(current["id"]), "update", name, old, new, ctx.user, now)
                    for name, (old, new) in changes.items() if obj.fields[name].type not in DERIVED_TYPES]
    if not params:
        return
    stmt = sa.update(table).where(table.c.id == sa.bindparam("record_id")).values(
        {**{c: sa.bindparam(f"new_{c}") for c in columns}, "version": table.c.version + 1,
         **to_row(ot, {"updated_by": ctx.user, "updated_at": now})})
    conn.execute(stmt, params)
    history.write(conn, service.schema.history, entries)
    service.rollups.after_change(conn, obj.name, pairs, now)


FOLLOW_UPS = Behavior(
    BEHAVIOR, SCHEMA, FollowUpsConfig, _needs,
    hooks={"before_create": check_related, "before_update": check_moved, "before_create_many": check_related_many,
           "after_create": follow, "after_create_many": follow_many},
    applies=is_follow_up,  # the hooks run on the follow-up records
    panels=("pages/_follow_ups.html", "pages/feed.html"),
    moves_in_hooks=True,  # pending -> following when a follow-up is saved
)


def register(registry) -> None:
    registry.behavior(FOLLOW_UPS)
