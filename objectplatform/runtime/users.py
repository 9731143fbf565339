"""Users are kept: a user is never deleted (deactivating hands their records over instead), and the last active
administrator stays one, neither deactivated nor stripped of the administrator role. A user's time zone is
their own `time_zone`, else the site's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from .errors import Conflict, Message
from .permissions import has_full_access
from .records import hooks
from .storage.convert import from_db

USER = "user"
# PostgreSQL's transaction lock taken before counting the administrators left, so two demotions at once cannot
# each count on the other; SQLite's BEGIN IMMEDIATE already serializes writers
ADMINS_LOCK = 0x75736572


def user_zone(platform, user: Mapping[str, Any]) -> ZoneInfo:
    """The zone a user's pages show times and count days in: their `time_zone`, else the site's."""
    try:
        return ZoneInfo(user["time_zone"]) if user.get("time_zone") else platform.settings.zone
    except (ZoneInfoNotFoundError, ValueError):  # a name this system's zone data no longer knows
        return platform.settings.zone


def deletable(obj: str) -> bool:
    """Whether records of `obj` may be deleted: every object's but the users'."""
    return obj != USER


def is_admin(metadata, user: Mapping[str, Any]) -> bool:
    """Whether the user record is an active administrator (`permissions.Access.is_admin` when signed in)."""
    return user.get("active") is True and has_full_access(metadata, user.get("roles") or ())


def admin_stays(conn: sa.Connection, records, leaving: Iterable[int]) -> bool:
    """Whether an active administrator other than the users `leaving` stays, counted under PostgreSQL's ADMINS_LOCK."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADMINS_LOCK)))
    users = records.schema[USER]
    others = conn.execute(sa.select(users.column("roles")).where(
        users.column("active") == sa.true(), users.table.c.id.not_in(list(leaving))))
    return any(has_full_access(records.metadata, from_db("multi_picklist", roles) or ()) for (roles,) in others)


def last_admin(username: str) -> Conflict:
    """The refusal of leaving no active administrator: `username` is the last one."""
    return Conflict(Message("user.last_admin", "{user} is the last active administrator: they can be neither "
                            "deactivated nor stripped of the administrator role; make another user an "
                            "administrator first", user=username))


def _refuse_delete(ctx: hooks.HookContext) -> None:
    """before_delete: a user is never deleted."""
    raise Conflict(Message("user.not_deletable", "a user is never deleted: deactivate {user} with the action "
                           "{action}, handing their records over to another user",
                           user=ctx.before["username"], action="deactivate"))


def _keep_last_admin(ctx: hooks.HookContext) -> None:
    """before_update: an active administrator may lose the role or be deactivated only while another stays."""
    metadata = ctx.records.metadata
    if is_admin(metadata, ctx.before) and not is_admin(metadata, ctx.after) \
            and not admin_stays(ctx.conn, ctx.records, [int(ctx.before["id"])]):
        raise last_admin(ctx.before["username"])


def register(registry) -> None:
    """Refuse every delete of a user and any change leaving no active administrator."""
    registry.hook("before_delete", _refuse_delete, applies=lambda obj: obj.name == USER)
    registry.hook("before_update", _keep_last_admin, applies=lambda obj: obj.name == USER)
