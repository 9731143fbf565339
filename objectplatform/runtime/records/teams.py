"""Record teams (相关团队): a multi_user field declared `team: read` or `team: edit` lets its users read (or
edit) the record beside the owner's data scope (permissions.Access.scope).

(How it works: docs/engine.md, "objectplatform/runtime/records/teams.py".)"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import ObjectDef

from . import hooks


def team_fields(obj: ObjectDef) -> list[str]:
    return [f.name for f in obj.fields.values() if f.team]


def _has_team(obj: ObjectDef) -> bool:
    return bool(team_fields(obj))


def _members(record: Mapping[str, Any], name: str) -> set[int]:
    return {int(user) for user in record.get(name) or ()}


def _rows(obj: str, record_id: Any, name: str, users: Iterable[int]) -> list[dict]:
    return [{"object": obj, "record_id": int(record_id), "field": name, "user_id": user} for user in sorted(users)]


def _insert(ctx: hooks.HookContext, rows: list[dict]) -> None:
    if rows:
        ctx.conn.execute(ctx.records.schema.teams.insert(), rows)


def _created(ctx: hooks.HookContext, records: list[Mapping[str, Any]]) -> None:
    obj = ctx.records.metadata.objects[ctx.object]
    _insert(ctx, [row for record in records for name in team_fields(obj)
                  for row in _rows(ctx.object, record["id"], name, _members(record, name))])


def _updated(ctx: hooks.HookContext) -> None:
    """The members a change added get a row, those it removed lose theirs."""
    team = ctx.records.schema.teams
    record_id = int(ctx.after["id"])
    for name in team_fields(ctx.records.metadata.objects[ctx.object]):
        before, after = _members(ctx.before, name), _members(ctx.after, name)
        if before - after:
            ctx.conn.execute(sa.delete(team).where(team.c.object == ctx.object, team.c.record_id == record_id,
                                                   team.c.field == name, team.c.user_id.in_(sorted(before - after))))
        _insert(ctx, _rows(ctx.object, record_id, name, after - before))


def _deleted(ctx: hooks.HookContext) -> None:
    team = ctx.records.schema.teams
    ctx.conn.execute(sa.delete(team).where(team.c.object == ctx.object, team.c.record_id == int(ctx.before["id"])))


def register(registry) -> None:
    """Keep the team table in step with every object that has team fields."""
    registry.hook("after_create", lambda ctx: _created(ctx, [ctx.after]), applies=_has_team)
    registry.hook("after_restore", lambda ctx: _created(ctx, [ctx.after]), applies=_has_team)
    registry.hook("after_create_many", lambda ctx: _created(ctx, ctx.batch), applies=_has_team)
    registry.hook("after_update", _updated, applies=_has_team,
                  needed=lambda metadata, obj, values: any(name in values for name in team_fields(obj)))
    registry.hook("after_delete", _deleted, applies=_has_team)
