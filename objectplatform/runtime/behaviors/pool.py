"""The `pool` behavior: leads wait in a pool (线索池) until a member claims them or an admin assigns them.

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/pool.py".)"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, Metadata, ObjectDef

from .. import actions, lifecycles
from ..clock import local_midnight
from ..errors import Conflict, Forbidden, Message, NotFound, ValidationFailed, no_record, said_label
from ..permissions import department_chain, grants_for
from ..records import history, history_sql, hooks, masking
from ..storage import convert
from ..storage.convert import field_type, from_row, to_row
from ..storage.engine import reading
from ..storage.id_sets import positions
from .follow_ups import FOLLOW_UPS
from .registry import Behavior, FieldNeed, Need, ObjectNeed

OWNER_OR_OWNERS = Message("pool.owner_or_owners", "give either owner or owners")
VERBS = {"claim": "claimed", "assign": "assigned", "return": "returned", "move": "moved",
         "invalidate": "marked invalid", "void": "voided", "reopen": "reopened"}


@dataclass(frozen=True)
class PoolConfig:
    """`behaviors: pool:` of one object: the object of its pools, the lookup to one of them, the status field
    and the five statuses the actions write, the fields they stamp, and the fields a new record is routed by
    (each on the object and on its pools, most significant first)."""

    pool_object: str
    pool_field: str = "pool"
    status_field: str = "status"
    unassigned_status: str = "unassigned"  # waiting in a pool
    pending_status: str = "pending"  # held by an owner, not followed up yet
    following_status: str = "following"  # held and followed up
    invalid_status: str = "invalid"
    voided_status: str = "voided"
    assigned_at_field: str = "assigned_at"
    return_reason_field: str = "return_reason"
    invalid_reason_field: str = "invalid_reason"
    route_by: Sequence[str] = ("industry", "region")

    @property
    def open(self) -> tuple[str, str]:
        """The statuses of a record held by an owner."""
        return self.pending_status, self.following_status

    @property
    def live(self) -> tuple[str, str, str]:
        """The statuses of a record not converted, invalid or voided."""
        return self.unassigned_status, self.pending_status, self.following_status

    @property
    def statuses(self) -> tuple[str, ...]:
        """The statuses the actions write."""
        return (*self.live, self.invalid_status, self.voided_status)


SCHEMA = {
    "type": "object",
    "properties": {
        **{f.name: {"type": "string", "minLength": 1, **({} if f.default is MISSING else {"default": f.default})}
           for f in fields(PoolConfig) if f.name != "route_by"},
        "route_by": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True,
                     "default": list(PoolConfig.route_by)},
    },
    "required": ["pool_object"],
    "additionalProperties": False,
}
POOL_FIELDS = (  # what the pool object holds: who works it, its claim rules, what it hides, when it recycles
    ("name", ("text",)), ("admins", ("multi_user",)), ("members", ("multi_user",)),
    ("member_departments", ("multi_department",)), ("claimable", ("boolean",)), ("default_assignee", ("user",)),
    ("max_held_per_member", ("integer",)), ("daily_claim_limit", ("integer",)),
    ("reclaim_cooldown_days", ("integer",)), ("hidden_fields", ("multi_picklist",)),
    ("recycle_unfollowed_days", ("integer",)), ("recycle_unconverted_days", ("integer",)),
    ("recycle_warning_days", ("integer",)),
)
REASON_TYPES = ("text", "long_text")
ROUTE_TYPES = ("picklist", "text")  # values a record and its pools hold alike, compared for equality


def _needs(obj: ObjectDef, config: PoolConfig) -> Iterator[Need]:
    yield ObjectNeed(config.pool_object, "pool_object")
    yield FieldNeed(config.pool_field, ("lookup",), "pool_field", to=config.pool_object)
    written = obj.behaviors["pool"]

    def key(name: str) -> str | None:  # a name the configuration writes is shown there, a default at the behavior
        return name if name in written else None

    yield FieldNeed(config.status_field, ("picklist",), key("status_field"), options=config.statuses)
    yield FieldNeed(config.assigned_at_field, ("datetime",), key("assigned_at_field"))
    yield FieldNeed(config.return_reason_field, REASON_TYPES, key("return_reason_field"))
    yield FieldNeed(config.invalid_reason_field, REASON_TYPES, key("invalid_reason_field"))
    for name, types in POOL_FIELDS:
        yield FieldNeed(name, types, "pool_object", config.pool_object)
    for i, name in enumerate(config.route_by):
        place = ("route_by", i) if "route_by" in written else None
        yield FieldNeed(name, ROUTE_TYPES, place)
        mine = obj.fields.get(name)
        if mine is not None and mine.type in ROUTE_TYPES:  # the pool's field holds what the record's does
            yield FieldNeed(name, (mine.type,), place, config.pool_object)
        else:
            yield FieldNeed(name, ROUTE_TYPES, place, config.pool_object)


def records_noun(obj: ObjectDef) -> Message:
    """What the pool's messages call `obj`'s records: its plural label, else its label (in English with an s)."""
    if obj.plural_label:
        return said_label(obj.plural_label.zh, obj.plural_label.en.lower())
    return said_label(obj.label.zh, f"{obj.label.en.lower()}s")


def last_followed_field(obj: ObjectDef) -> str | None:
    """The field holding `obj`'s last follow-up time, when it declares follow_ups with one."""
    return FOLLOW_UPS.config_of(obj).last_followed_field if "follow_ups" in obj.behaviors else None


class PoolBehavior:
    """The pool behavior of one object as configured in its YAML."""

    def __init__(self, platform, obj: str):
        definition = platform.metadata.objects[obj]
        config: PoolConfig = POOL.config_of(definition)
        self.platform = platform
        self.obj = obj
        self.config = config
        self.pool_object = config.pool_object
        self.pool_field = config.pool_field
        self.status = config.status_field
        self.records = records_noun(definition)
        pool_label = platform.metadata.objects[config.pool_object].label
        self.pool_label = said_label(pool_label.zh, pool_label.en.lower())
        self.pool_named = lifecycles.said_object(platform.metadata.objects[config.pool_object], lower=True)
        self.last_followed = last_followed_field(definition)
        self.ot = platform.schema[obj]
        self.pot = platform.schema[self.pool_object]
        self.table = self.ot.table
        self.definition = definition
        self.said = lifecycles.said_object(definition)

    # ---------------------------------------------------------------------------------- reads

    def col(self, name: str) -> sa.Column:
        return self.ot.column(name)

    def read(self, conn: sa.Connection, record_id: Any) -> dict:
        row = conn.execute(sa.select(self.table).where(self.table.c.id == int(record_id))).mappings().first()
        if row is None:
            raise NotFound(no_record(self.definition, record_id))
        return from_row(self.ot, row)

    def pool(self, conn: sa.Connection, pool_id: Any, lock: bool = False) -> dict:
        stmt = sa.select(self.pot.table).where(self.pot.table.c.id == int(pool_id))
        row = conn.execute(stmt.with_for_update() if lock else stmt).mappings().first()
        if row is None:
            raise ValidationFailed({"pool": [no_record(self.pot.object, pool_id)]})
        return from_row(self.pot, row)

    def state(self, record: dict) -> Message:
        return Message("pool.state", "{object} {id} is {status}", object=self.said,
                       id=record["id"], status=lifecycles.said_option(self.definition.fields[self.status],
                                                                      record.get(self.status)))

    def managers_only(self, verb: str, record_id: Any) -> Message:
        return Message("pool.managers_only", "only the admins of the {pool_label} and managers may {verb} {object} "
                       "{id}", pool_label=self.pool_label, verb=verb,
                       object=lifecycles.said_object(self.definition, lower=True), id=record_id)

    def owner_only(self, record_id: Any) -> Message:
        return Message("pool.owner_only", "only the owner of {object} {id} may return it",
                       object=lifecycles.said_object(self.definition, lower=True), id=record_id)

    def choose_pool(self, record_id: Any) -> Message:
        return Message("pool.choose_pool", "{object} {id} has no {pool_label}: choose one", object=self.said,
                       id=record_id, pool_label=self.pool_label)

    def refuse(self, record: dict, action: str) -> Conflict:
        status = record.get(self.status)
        if action == "claim" and record.get("owner") is not None and status in self.config.open:
            return Conflict(Message("pool.already_claimed", "{object} {id} is already claimed: it is {status}",
                                    object=self.said, id=record["id"],
                                    status=lifecycles.said_option(self.definition.fields[self.status], status)))
        return Conflict(Message("pool.cannot", "{state}: it cannot be {verb}", state=self.state(record),
                                verb=VERBS[action]))

    def is_member(self, conn: sa.Connection, pool: dict, user_id: str) -> bool:
        if user_id in (pool.get("members") or []) or user_id in (pool.get("admins") or []):
            return True
        departments = set(pool.get("member_departments") or [])
        if not departments:
            return False
        users = self.platform.schema["user"]
        dept = conn.execute(sa.select(users.column("department")).where(users.table.c.id == int(user_id))).scalar()
        return bool(departments & department_chain(conn, self.platform.schema, dept))  # theirs or one above

    def may_manage(self, access, pool: dict | None) -> bool:
        """Pool admins, and users whose role reaches subordinates' or all records (managers, admins)."""
        if access.is_admin or access.grants.get(self.obj) and access.grants[self.obj].scopes & {"subordinates", "all"}:
            return True
        return pool is not None and access.user_id in (pool.get("admins") or [])

    def active_user(self, conn: sa.Connection, user_id: Any, param: str) -> str:
        users = self.platform.schema["user"]
        active = conn.execute(sa.select(users.column("active")).where(users.table.c.id == int(user_id))).first()
        if active is None or not active[0]:
            raise ValidationFailed({param: [Message("pool.no_active_user", "no active user with id {id}", id=user_id)]})
        return str(user_id)

    # ---------------------------------------------------------------------------------- write

    def write(self, conn: sa.Connection, action: str, current: dict, values: dict, user: str, at: datetime,
              where: Iterable[sa.ColumnElement[bool]]) -> dict:
        """The one conditional UPDATE (`where` repeats the state decided on), its history and rollups."""
        stmt = (sa.update(self.table)
                .where(self.table.c.id == int(current["id"]), *where)
                .values({**to_row(self.ot, {**values, "updated_by": user, "updated_at": at}),
                         "version": self.table.c.version + 1}))
        if conn.execute(stmt).rowcount == 0:
            raise self.refuse(self.read(conn, current["id"]), action)
        changed = {k: v for k, v in values.items() if current.get(k) != v}
        history.write(conn, self.platform.schema.history, [
            history.entry(self.obj, int(current["id"]), action, name, current.get(name), value, user, at)
            for name, value in changed.items()])
        after = self.read(conn, current["id"])
        self.platform.records.rollups.after_change(conn, self.obj, [(current, after)], at)
        return after

    def entering(self, conn: sa.Connection, pool: dict, at: datetime) -> dict:
        """The fields of a record entering `pool`: unassigned, or straight to its default assignee."""
        c, assignee = self.config, pool.get("default_assignee")
        if assignee:
            return {self.pool_field: pool["id"], "owner": assignee, self.status: c.pending_status,
                    c.assigned_at_field: at}
        return {self.pool_field: pool["id"], "owner": None, self.status: c.unassigned_status, c.assigned_at_field: None}

    # -------------------------------------------------------------------------------- actions

    def claim(self, access, record_id: Any) -> dict:
        me = access.user_id
        with self.platform.records.transaction() as conn:
            current = self.read(conn, record_id)
            c = self.config
            if current[self.status] != c.unassigned_status or current.get("owner") is not None:
                raise self.refuse(current, "claim")
            if current.get(self.pool_field) is None:
                raise Conflict(Message("pool.not_in_pool", "{object} {id} is not in a {pool_label}: it cannot be "
                                       "claimed", object=self.said, id=record_id, pool_label=self.pool_label))
            pool = self.pool(conn, current[self.pool_field], lock=True)  # serializes claims from this pool
            if not self.is_member(conn, pool, me) and not access.is_admin:
                raise Forbidden(Message("pool.not_member", "you are not a member of {pool_object} {pool}",
                                        pool_object=self.pool_named, pool=pool["name"]))
            if not pool.get("claimable"):
                raise Forbidden(Message("pool.admin_assign_only", "{pool_object} {pool} is admin-assign only: members "
                                        "cannot claim", pool_object=self.pool_named, pool=pool["name"]))
            at = self.platform.clock.now()
            self.check_limits(conn, pool, current, me, at)
            return self.write(conn, "claim", current,
                              {"owner": me, self.status: c.pending_status, c.assigned_at_field: at}, me, at,
                              [self.col("owner").is_(None), self.col(self.status) == c.unassigned_status])

    def check_limits(self, conn: sa.Connection, pool: dict, current: dict, me: str, at: datetime) -> None:
        name, t, h = pool["name"], self.table, self.platform.schema.history
        cap = pool.get("max_held_per_member") or 0
        if cap:
            held = conn.execute(sa.select(sa.func.count()).select_from(t).where(
                self.col(self.pool_field) == int(pool["id"]), self.col("owner") == int(me),
                self.col(self.status).in_(self.config.open))).scalar_one()
            if held >= cap:
                raise Conflict(Message("pool.max_held", "you hold {held} {records} from {pool_object} {pool}, its "
                                       "max_held_per_member is {cap}: return or convert one first", held=held,
                                       records=self.records,
                                       pool_object=self.pool_named, pool=name, cap=cap))
        limit = pool.get("daily_claim_limit") or 0
        if limit:
            zone = self.platform.settings.zone
            claimed = conn.execute(sa.select(sa.func.count()).select_from(h.join(t, t.c.id == h.c.record_id)).where(
                h.c.object == self.obj, h.c.change == "claim", h.c.field == "owner", h.c.user_id == int(me),
                h.c.at >= local_midnight(at.astimezone(zone).date(), zone),
                self.col(self.pool_field) == int(pool["id"]))).scalar_one()
            if claimed >= limit:
                raise Conflict(Message("pool.daily_limit", "you claimed {claimed} {records} from {pool_object} {pool} "
                                       "today, its daily_claim_limit is {limit}", claimed=claimed, records=self.records,
                                       pool_object=self.pool_named, pool=name, limit=limit))
        days = pool.get("reclaim_cooldown_days") or 0
        if days:
            left = conn.execute(sa.select(sa.func.max(h.c.at)).where(
                h.c.object == self.obj, h.c.record_id == int(current["id"]), history.left(h, "owner", me))).scalar()
            if left is not None and left.replace(tzinfo=UTC) > at - timedelta(days=days):
                until = (left.replace(tzinfo=UTC) + timedelta(days=days)).astimezone(self.platform.settings.zone)
                raise Conflict(Message("pool.cooldown", "{object} {id} left you less than {days} days ago "
                                       "(reclaim_cooldown_days {days}): you may claim it back from {until}",
                                       object=self.said, id=current["id"], days=days,
                                       until=until.strftime("%Y-%m-%d %H:%M")))

    def assign(self, access, record_id: Any, params: dict) -> dict:
        with self.platform.records.transaction() as conn:
            current = self.read(conn, record_id)
            pool = self.pool(conn, current[self.pool_field]) if current.get(self.pool_field) else None
            if not self.may_manage(access, pool):
                raise Forbidden(self.managers_only("assign", record_id))
            c = self.config
            if current[self.status] not in c.live:
                raise self.refuse(current, "assign")
            if params.get("owner") and params.get("owners"):
                raise ValidationFailed({"owners": [OWNER_OR_OWNERS]})
            if params.get("owner"):
                owner = self.active_user(conn, params["owner"], "owner")
            elif params.get("owners"):
                owner = self.least_loaded(conn, [self.active_user(conn, u, "owners") for u in params["owners"]])
            else:
                raise ValidationFailed({"owner": [Message("value.missing", "required")]})
            at = self.platform.clock.now()
            status = c.pending_status if current[self.status] == c.unassigned_status else current[self.status]
            return self.write(conn, "assign", current, {"owner": owner, self.status: status, c.assigned_at_field: at},
                              access.user_id, at, [self.col(self.status) == current[self.status],
                                                   self.col("version") == current["version"]])

    def least_loaded(self, conn: sa.Connection, owners: list[str]) -> str:
        """Of `owners`, the one holding the fewest open records (pending or following); ties: the first given.

        Assigning a batch one lead after another this way spreads it evenly (round robin from an even
        start) and evens out what the owners already held."""
        owners = list(dict.fromkeys(owners))
        held = dict(conn.execute(sa.select(self.col("owner"), sa.func.count()).where(
            self.col("owner").in_([int(o) for o in owners]), self.col(self.status).in_(self.config.open),
        ).group_by(self.col("owner"))).all())
        return min(owners, key=lambda o: (held.get(int(o), 0), owners.index(o)))

    def assign_many(self, access, ids: Iterable[Any], owner: Any = None, owners: Iterable[Any] = ()) -> dict:
        """Assign many records set-based, in one transaction, with no Python loop over them.

        The records that may be assigned (in the caller's data scope, in a pool they manage, live) are
        ranked in the order given (`choose`), and rank r goes to the r-th owner `spread` names, so `owners`
        are filled least-loaded first as assigning one after another would (counting what each holds
        outside this batch). Then the history, the summaries and ONE UPDATE write them (`write_chosen`),
        and each refused id is reported as the single action refuses it.
        {"succeeded": [ids, in the order given], "failed": [{"id", "error"}]}"""
        owners = list(owners or ())
        if bool(owner) == bool(owners):
            raise ValidationFailed({"owners": [OWNER_OR_OWNERS]})
        wanted = _record_ids(ids)
        t, col, me, at = self.table, self.col, access.user_id, self.platform.clock.now()
        status, c = col(self.status), self.config
        with self.platform.records.transaction() as conn:
            targets = [self.active_user(conn, owner, "owner")] if owner else list(dict.fromkeys(
                self.active_user(conn, u, "owners") for u in owners))
            batch = positions(conn.dialect.name, wanted)
            visible, managed = self.visible(access), self.managed(conn, access)
            written = ["owner", self.status, c.assigned_at_field]
            chosen = self.choose(conn, batch.join(t, t.c.id == batch.c.id), batch.c.pos,
                                 sa.and_(visible, managed, status.in_(c.live)), written)
            held = dict.fromkeys(targets, 0)
            if len(targets) > 1:
                held.update((str(o), n) for o, n in conn.execute(
                    sa.select(col("owner"), sa.func.count()).where(
                        col("owner").in_([int(o) for o in targets]), status.in_(c.open),
                        t.c.id.not_in(sa.select(chosen.c.id)),
                    ).group_by(col("owner"))).all())
            self.write_chosen(conn, "assign", chosen, {
                "owner": spread(targets, held, chosen.c.rank),
                self.status: sa.case((status == c.unassigned_status, c.pending_status), else_=status),
                c.assigned_at_field: at}, me, at)
            succeeded, refused = self.outcome(conn, batch, batch.outerjoin(t, t.c.id == batch.c.id), chosen,
                                              [visible, managed, status])
        failed = []
        for record_id, found, in_scope, may, was in refused:
            if found is None or not in_scope:
                error = NotFound(no_record(self.definition, record_id))
            elif not may:
                error = Forbidden(self.managers_only("assign", record_id))
            else:
                error = self.refuse({"id": record_id, self.status: was}, "assign")
            failed.append({"id": record_id, "error": error.as_dict()["error"]})
        return {"succeeded": succeeded, "failed": failed}

    def give_back_many(self, access, ids: Iterable[Any], params: dict) -> dict:
        """Return many records set-based, in one transaction, as `give_back` returns each one after another: those
        the caller holds (in their data scope, pending or following, theirs) go to the pool given, else each to
        its own, unassigned or to that pool's default assignee, with the reason. On PostgreSQL the pools are
        locked first, then the records (`choose`), as a single return takes them; the history, the summaries and
        ONE UPDATE write them (`write_chosen`), and each refused id is reported as `give_back` refuses it.
        {"succeeded": [ids, in the order given], "failed": [{"id", "error"}]}"""
        wanted = _record_ids(ids)
        t, pools, col, me, at = self.table, self.pot.table, self.col, access.user_id, self.platform.clock.now()
        status, owner, c, given = col(self.status), col("owner"), self.config, params.get("pool")
        target = sa.literal(int(given), col(self.pool_field).type) if given else col(self.pool_field)
        with self.platform.records.transaction() as conn:
            batch = positions(conn.dialect.name, wanted)
            if conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already serializes the writers
                conn.execute(sa.select(pools.c.id).where(pools.c.id.in_(
                    sa.select(target).select_from(batch.join(t, t.c.id == batch.c.id)))
                ).order_by(pools.c.id).with_for_update())
            visible = self.visible(access)
            written = [*([self.pool_field] if given else []), "owner", self.status, c.assigned_at_field,
                       c.return_reason_field]
            chosen = self.choose(conn, batch.join(t, t.c.id == batch.c.id).join(pools, pools.c.id == target),
                                 batch.c.pos, sa.and_(visible, status.in_(c.open), owner == int(me)), written,
                                 [self.pot.column("default_assignee").label("assignee")])
            waiting = chosen.c.assignee.is_(None)  # the pool has no default assignee: the record waits in it
            stamp = to_row(self.ot, {c.assigned_at_field: at})[c.assigned_at_field]
            self.write_chosen(conn, "return", chosen, {  # the fields `entering` gives, in its order, and the reason
                **({self.pool_field: str(given)} if given else {}), "owner": chosen.c.assignee,
                self.status: sa.case((waiting, c.unassigned_status), else_=c.pending_status),
                c.assigned_at_field: sa.case((waiting, sa.null()),
                                             else_=sa.literal(stamp, col(c.assigned_at_field).type)),
                c.return_reason_field: params["reason"]}, me, at)
            succeeded, refused = self.outcome(conn, batch, batch.outerjoin(t, t.c.id == batch.c.id), chosen,
                                              [visible, status, owner, target])
        failed = []
        for record_id, found, in_scope, was, holder, pool_id in refused:
            if found is None or not in_scope:
                error = NotFound(no_record(self.definition, record_id))
            elif was not in c.open:
                error = self.refuse({"id": record_id, self.status: was}, "return")
            elif holder is None or str(holder) != me:
                error = Forbidden(self.owner_only(record_id))
            elif pool_id is None:
                error = ValidationFailed({"pool": [self.choose_pool(record_id)]})
            else:  # no such pool
                error = ValidationFailed({"pool": [no_record(self.pot.object, str(pool_id))]})
            failed.append({"id": record_id, "error": error.as_dict()["error"]})
        return {"succeeded": succeeded, "failed": failed}

    def visible(self, access) -> sa.ColumnElement[bool]:
        """The condition on the records in `access`'s data scope."""
        scope = access.scope(self.obj, self.table)
        return sa.true() if scope is None else scope

    def managed(self, conn: sa.Connection, access) -> sa.ColumnElement[bool]:
        """The condition on the records `access` may assign or move as `may_manage` decides (pools are few)."""
        if self.may_manage(access, None):
            return sa.true()
        pools = [i for i, admins in conn.execute(sa.select(self.pot.table.c.id, self.pot.column("admins")))
                 if access.user_id in (convert.from_db("multi_user", admins) or [])]
        return self.col(self.pool_field).in_(pools) if pools else sa.false()

    def choose(self, conn: sa.Connection, source: sa.FromClause, pos: sa.ColumnElement, where: sa.ColumnElement[bool],
               written: Sequence[str], extra: Sequence[sa.ColumnElement] = ()) -> sa.Table:
        """The records of a set-based action, from `source` (the ids given joined to the object's table) under
        `where`, into a temporary table (locked as chosen on PostgreSQL): ranked by `pos` (the order given), with
        the old values `_kept` of the fields `written` and the `extra` labelled columns. The caller drops it
        (`outcome`), a rollback does too."""
        kept = self._kept(conn.dialect.name, written)
        chosen = sa.Table(
            "pool_chosen", sa.MetaData(), sa.Column("rank", sa.BigInteger(), nullable=False),
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                      autoincrement=False),  # SQLite's rowid: the records are found by it, no index
            *(sa.Column(f"was__{name}", self.col(name).type) for name in kept),
            *(sa.Column(e.name, e.type) for e in extra), prefixes=["TEMPORARY"])
        chosen.create(conn)
        columns = [*(f"was__{name}" for name in kept), *(e.name for e in extra)]
        rows = sa.select(pos.label("pos"), self.table.c.id, *(self.col(name).label(f"was__{name}") for name in kept),
                         *extra).select_from(source).where(where)
        if conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already serializes the writers
            rows = rows.with_for_update(of=self.table)
        rows = rows.subquery("choosable")
        conn.execute(chosen.insert().from_select(["rank", "id", *columns], sa.select(
            sa.func.row_number().over(order_by=rows.c.pos), rows.c.id, *(rows.c[name] for name in columns))))
        return chosen

    def outcome(self, conn: sa.Connection, batch: sa.Subquery, source: sa.FromClause, chosen: sa.Table,
                checks: Sequence[sa.ColumnElement]) -> tuple[list[str], list[tuple]]:
        """After a set-based action: the ids `chosen` holds in the order given, and for each other id of `batch`
        in the order given (id, the record's id or None, the `checks` over `source`: `batch` outer-joined to the
        records); `chosen` is dropped."""
        succeeded = [str(i) for i in conn.execute(sa.select(chosen.c.id).order_by(chosen.c.rank)).scalars()]
        refused = [(str(record_id), *rest) for record_id, *rest in conn.execute(
            sa.select(batch.c.id, self.table.c.id, *checks).select_from(source)
            .where(batch.c.id.not_in(sa.select(chosen.c.id))).order_by(batch.c.pos))]
        chosen.drop(conn)
        return succeeded, refused

    def _kept(self, dialect: str, written: Iterable[str]) -> list[str]:
        """The fields whose old values PostgreSQL's one-statement write keeps from the locked rows: those it
        writes and those the summaries it moves read (SQLite reads them from the rows before the UPDATE)."""
        if dialect != "postgresql":
            return []
        written = set(written)
        return sorted(self.platform.records.rollups.summaries.reads(self.obj, written) | written)

    def write_chosen(self, conn: sa.Connection, change: str, chosen: sa.Table, values: Mapping[str, Any],
                     me: str | None, at: datetime) -> None:
        """The history (one packed row per record, under `change`), the summaries, the one UPDATE ... FROM `chosen`
        and the rollups of a set-based action giving the records of `chosen` `values` ({field: a value, or a SQL
        expression over the row and `chosen`}; the history lists them in this order): on PostgreSQL one
        statement (the UPDATE's RETURNING, with each row as it was, feeds the history and summary upserts as
        CTEs), on SQLite the history and summaries first, read from the rows about to change."""
        t, col, h = self.table, self.col, self.platform.schema.history
        rollups = self.platform.records.rollups
        fed = rollups.fed_by(conn, self.obj, t.c.id.in_(sa.select(chosen.c.id)),
                             {name: None if isinstance(v, sa.ColumnElement) else v for name, v in values.items()})
        stored = {**values, **to_row(self.ot, {name: v for name, v in values.items()  # as the columns hold them
                                               if not isinstance(v, sa.ColumnElement)})}
        types = {name: field_type(self.ot, name) for name in values}
        update = sa.update(t).values({**{col(name): value for name, value in stored.items()},
                                      **to_row(self.ot, {"updated_by": me, "updated_at": at}),
                                      t.c.version: t.c.version + 1})
        if conn.dialect.name != "postgresql":
            # the rows of `chosen` looked up from it by id: with the join alone SQLite scans the whole table
            of_chosen = sa.and_(t.c.id.in_(sa.select(chosen.c.id)), t.c.id == chosen.c.id)
            history_sql.write_set(conn, h, self.obj, t, of_chosen, {
                name: (col(name), types[name], value) for name, value in values.items()}, change, me, at)
            rollups.summaries.changing(conn, self.obj, of_chosen, stored)
            conn.execute(update.where(of_chosen))
        else:
            moved = update.where(t.c.id == chosen.c.id).returning(  # `chosen` holds each locked row as it was
                t.c.id, *(chosen.c[f"was__{name}"].label(name) for name in self._kept(conn.dialect.name, values)),
                *(t.c[name].label(f"new__{name}") for name in values)).cte("moved")
            new = {name: moved.c[f"new__{name}"] for name in values}
            logged, logged_values = history_sql.set_history(conn.dialect.name, h, self.obj, moved, sa.true(), {
                name: (moved.c[name], types[name], new[name]) for name in values}, change, me, at)
            upserts = rollups.summaries.moves(conn.dialect.name, self.obj, moved, new)
            conn.execute(sa.select(sa.func.count()).select_from(moved).add_cte(
                logged.cte("logged"), *(u.cte(f"summary_{i}") for i, u in enumerate(upserts))), logged_values)
        rollups.refresh_fed(conn, fed, at)

    def give_back(self, access, record_id: Any, params: dict) -> dict:
        me = access.user_id
        with self.platform.records.transaction() as conn:
            current = self.read(conn, record_id)
            if current[self.status] not in self.config.open:
                raise self.refuse(current, "return")
            if current.get("owner") != me:
                raise Forbidden(self.owner_only(record_id))
            target = params.get("pool") or current.get(self.pool_field)
            if target is None:
                raise ValidationFailed({"pool": [self.choose_pool(record_id)]})
            pool = self.pool(conn, target, lock=True)
            at = self.platform.clock.now()
            values = {**self.entering(conn, pool, at), self.config.return_reason_field: params["reason"]}
            return self.write(conn, "return", current, values, me, at,
                              [self.col("owner") == int(me), self.col(self.status) == current[self.status]])

    def move(self, access, record_id: Any, params: dict) -> dict:
        with self.platform.records.transaction() as conn:
            current = self.read(conn, record_id)
            source = self.pool(conn, current[self.pool_field]) if current.get(self.pool_field) else None
            if not self.may_manage(access, source):
                raise Forbidden(self.managers_only("move", record_id))
            if current[self.status] != self.config.unassigned_status:
                raise self.refuse(current, "move")
            target = self.pool(conn, params["pool"], lock=True)
            if source is not None and target["id"] == source["id"]:
                raise ValidationFailed({"pool": [Message("pool.already_in", "{object} {id} is already in {pool}",
                                                         object=self.said, id=record_id, pool=target["name"])]})
            at = self.platform.clock.now()
            return self.write(conn, "move", current, self.entering(conn, target, at), access.user_id, at,
                              [self.col("owner").is_(None), self.col(self.status) == self.config.unassigned_status])

    def close(self, access, record_id: Any, params: dict, action: str) -> dict:
        """Invalidate (a live record) or void (a live or invalid one), with the reason."""
        c = self.config
        allowed = c.live if action == "invalidate" else (*c.live, c.invalid_status)
        status = c.invalid_status if action == "invalidate" else c.voided_status
        with self.platform.records.transaction() as conn:
            current = self.read(conn, record_id)
            if current[self.status] not in allowed:
                raise self.refuse(current, action)
            at = self.platform.clock.now()
            return self.write(conn, action, current, {self.status: status, c.invalid_reason_field: params["reason"]},
                              access.user_id, at, [self.col(self.status) == current[self.status]])

    def reopen(self, access, record_id: Any) -> dict:
        with self.platform.records.transaction() as conn:
            current = self.read(conn, record_id)
            c = self.config
            if current[self.status] not in (c.invalid_status, c.voided_status):
                raise self.refuse(current, "reopen")
            if current[self.status] == c.voided_status and not access.is_admin:
                raise Forbidden(Message("pool.reopen_admin_only", "{state}: only an administrator may reopen it",
                                        state=self.state(current)))
            if current.get("owner") is None:
                status = c.unassigned_status
            elif self.last_followed and current.get(self.last_followed):
                status = c.following_status
            else:
                status = c.pending_status
            at = self.platform.clock.now()
            return self.write(conn, "reopen", current, {self.status: status}, access.user_id, at,
                              [self.col(self.status) == current[self.status]])


def behavior_of(platform, obj: str) -> PoolBehavior:
    """The pool behavior of `obj` on this platform (built on first use)."""
    key = f"pool:{obj}"
    if key not in platform.services:
        platform.services[key] = PoolBehavior(platform, obj)
    return platform.services[key]


def spread(owners: list[str], held: Mapping[str, int], rank: sa.ColumnElement[int]) -> sa.ColumnElement:
    """The owner (an id) of the `rank`-th record (from 1) of a batch spread over `owners` holding `held`:
    each next record to the least loaded, ties to the first given, as assigning one after another does.

    Sorted by load, the first j owners take turns (in the order given) until they reach the load of
    the (j+1)-th; the rank ranges of these rounds are few (one per owner), so the owner is a CASE on
    the rank, computed by the database for every record at once."""
    order = sorted(range(len(owners)), key=lambda i: (held[owners[i]], i))
    loads = [held[owners[i]] for i in order]
    rounds, first = [], 1
    for j in range(1, len(owners) + 1):
        size = (loads[j] - loads[j - 1]) * j if j < len(owners) else None
        if size == 0:
            continue
        rounds.append((first, size, [int(owners[i]) for i in sorted(order[:j])]))
        first += size or 0

    def turn(start: int, members: list[int]) -> sa.ColumnElement:
        if len(members) == 1:
            return sa.literal(members[0], sa.BigInteger())
        step = (rank - start) % len(members)
        return sa.case(*[(step == i, m) for i, m in enumerate(members[:-1])], else_=members[-1])

    *bounded, (start, _, members) = rounds
    last = turn(start, members)
    if not bounded:
        return last
    return sa.case(*[(rank < s + size, turn(s, m)) for s, size, m in bounded], else_=last)


def claim(platform, access, obj: str, record_id: Any) -> dict:
    """`access` claims the record from its pool (also callable outside run_action: tests, jobs)."""
    return behavior_of(platform, obj).claim(access, record_id)


def _record_ids(ids: Iterable[Any]) -> list[str]:
    """The ids of a set-based action as texts, each once, in the order given; ValidationFailed naming any that is
    not a record id."""
    wanted = list(dict.fromkeys(str(i) for i in ids))
    wrong = [Message("action.not_an_id", "{item!r} is not a record id", item=i) for i in wanted
             if not (i.isascii() and i.isdigit())]
    if wrong:
        raise ValidationFailed({"ids": wrong})
    return wanted


def assign_many(platform, access, obj: str, ids: Iterable[Any], *, owner: Any = None,
                owners: Iterable[Any] = ()) -> dict:
    """Set-based bulk assignment (see `PoolBehavior.assign_many`); the caller's role must grant assign."""
    access.require_action(obj, "assign", actions.actions_service(platform).get(obj, "assign").label)
    return behavior_of(platform, obj).assign_many(access, ids, owner, owners)


def enter_pool(platform, obj: str, record_id: Any, pool_id: Any, *, user: str | None = None) -> dict:
    """Put a live record into a pool (whatever it held): unassigned, or pending with the pool's default
    assignee. One conditional write, history under "move"."""
    behavior = behavior_of(platform, obj)
    with platform.records.transaction() as conn:
        current = behavior.read(conn, record_id)
        if current[behavior.status] not in behavior.config.live:
            raise behavior.refuse(current, "move")
        at = platform.clock.now()
        pool = behavior.pool(conn, pool_id, lock=True)
        return behavior.write(conn, "move", current, behavior.entering(conn, pool, at), user, at,
                              [behavior.col(behavior.status) == current[behavior.status]])


# ------------------------------------------------------------------------- records entering a pool


def _works_leads(records, conn: sa.Connection, obj: str, user: str | None) -> bool:
    """Whether the creator's roles grant the claim action on `obj` (their new records are not routed)."""
    if user is None or not str(user).isdigit():
        return False
    users = records.schema["user"]
    row = conn.execute(sa.select(users.column("roles"), users.column("active"))
                       .where(users.table.c.id == int(user))).first()
    if row is None or not row[1]:
        return False
    roles = convert.from_db("multi_picklist", row[0]) or ()
    grant = grants_for(records.metadata, roles).get(obj)
    return grant is not None and "claim" in grant.actions


def route(pools: Iterable[Mapping], values: Mapping[str, Any]) -> Mapping | None:
    """The pool a new record holding `values` of the routing fields (most significant first) is routed to (see
    the module docstring), or None."""
    ranked = []
    for p in pools:
        rule = [i for i, name in enumerate(values) if p.get(name)]  # the routing fields the pool sets
        if rule and all(p[name] == value for name, value in values.items() if p.get(name)):
            ranked.append(((-len(rule), rule), int(p["id"]), p))
    return min(ranked, key=lambda t: t[:2])[2] if ranked else None


def _initial(config: PoolConfig) -> tuple[str | None, ...]:
    """The statuses a new record enters a pool from: none, pending or unassigned."""
    return None, config.pending_status, config.unassigned_status


def _routing(records, conn: sa.Connection, obj: str, user: str | None, batch: list[dict], config: PoolConfig,
             pot) -> None:
    """Set the pool of the batch's records that are routed (one read of the routing pools per batch)."""
    pool_field, keys = config.pool_field, list(config.route_by)
    waiting = [r for r in batch if not r.get(pool_field) and r.get("owner") in (None, user)
               and r.get(config.status_field) in _initial(config) and any(r.get(k) for k in keys)]
    if not waiting or _works_leads(records, conn, obj, user):
        return
    columns = [pot.column(k) for k in keys]
    pools = [dict(zip(["id", *keys], row, strict=True)) for row in conn.execute(
        sa.select(pot.table.c.id, *columns).where(sa.or_(*(c.is_not(None) for c in columns))))]
    if not pools:
        return
    chosen: dict[tuple, Mapping | None] = {}  # a batch's records share a few combinations of the routing fields
    for record in waiting:
        values = {k: record.get(k) for k in keys}
        try:
            key = tuple(values.values())
            found = chosen[key] if key in chosen else chosen.setdefault(key, route(pools, values))
        except TypeError:  # a value that cannot be hashed
            found = route(pools, values)
        if found is not None:
            record[pool_field] = str(found["id"])


def _entering_on_create(records, conn: sa.Connection, obj: str, user: str | None, at: datetime,
                        batch: list[dict]) -> None:
    """A record created with a pool and no owner of its own (none, or only its creator by default) and
    an initial status enters the pool: unassigned, or pending with the pool's default assignee. A
    record without a pool is routed to one first when a routing rule matches it."""
    config: PoolConfig = POOL.config_of(records.metadata.objects[obj])
    pool_field, pot = config.pool_field, records.schema[config.pool_object]
    _routing(records, conn, obj, user, batch, config, pot)
    entering = [r for r in batch if r.get(pool_field) and r.get("owner") in (None, user)
                and r.get(config.status_field) in _initial(config)]
    if not entering:
        return
    wanted = sorted({int(r[pool_field]) for r in entering})
    assignees = {str(i): a for i, a in conn.execute(
        sa.select(pot.table.c.id, pot.column("default_assignee")).where(pot.table.c.id.in_(wanted))).all()}
    for record in entering:
        pool_id = str(record[pool_field])
        if pool_id not in assignees:
            continue  # no such pool: the lookup check reports it
        if assignees[pool_id] is not None:
            record.update({"owner": str(assignees[pool_id]), config.status_field: config.pending_status,
                           config.assigned_at_field: at})
        else:
            record.update({"owner": None, config.status_field: config.unassigned_status,
                           config.assigned_at_field: None})


def _entering_one(ctx: hooks.HookContext) -> None:
    _entering_on_create(ctx.records, ctx.conn, ctx.object, ctx.user, ctx.now, [ctx.after])


def _entering_many(ctx: hooks.HookContext) -> None:
    _entering_on_create(ctx.records, ctx.conn, ctx.object, ctx.user, ctx.now, ctx.batch)


# ---------------------------------------------------------------------------------- hidden fields


def pool_hidings(platform, access, obj) -> list[masking.Hiding]:
    """The fields of `obj`'s waiting records hidden from `access`: one hiding per set of hidden fields, over
    the pools hiding them from the user (every pool but those they administer); the pools are read here."""
    if "pool" not in obj.behaviors:
        return []
    config: PoolConfig = POOL.config_of(obj)
    pool_field = config.pool_field
    pot = platform.schema[config.pool_object]
    with reading(platform.engine) as conn:
        rows = conn.execute(sa.select(pot.table.c.id, pot.column("hidden_fields"), pot.column("admins"))).all()
    pools_hiding: dict[frozenset[str], list[int]] = {}
    for pool_id, hidden_json, admins_json in rows:
        hidden = frozenset(n for n in convert.from_db("multi_picklist", hidden_json) or [] if n in obj.fields)
        if hidden and str(access.user_id) not in (convert.from_db("multi_user", admins_json) or []):
            pools_hiding.setdefault(hidden, []).append(pool_id)
    column = platform.schema[obj.name].columns[pool_field][0]
    return [_waiting(fields, pool_ids, pool_field, column) for fields, pool_ids in pools_hiding.items()]


def _waiting(fields: frozenset[str], pool_ids: list[int], pool_field: str, column: str) -> masking.Hiding:
    """`fields` hidden on the records waiting (no owner) in the pools `pool_ids`."""
    ids = frozenset(str(i) for i in pool_ids)
    return masking.Hiding(
        fields,
        lambda record: record.get("owner") is None and str(record.get(pool_field)) in ids,
        lambda table: sa.and_(table.c.owner.is_(None), table.c[column].in_(sorted(pool_ids))),
    )


# ------------------------------------------------------------------------------ registration

_ACTIONS = {
    "claim": (Label("领取", "Claim"), ()),
    "assign": (Label("分配", "Assign"), ("owner", "owners")),
    "return": (Label("退回线索池", "Return to pool"), ("reason", "pool")),
    "move": (Label("转移线索池", "Move to pool"), ("pool",)),
    "invalidate": (Label("标记无效", "Mark invalid"), ("reason",)),
    "void": (Label("作废", "Void"), ("reason",)),
    "reopen": (Label("重新打开", "Reopen"), ()),
}


def _handler(obj: str, name: str):
    def run(call: actions.ActionCall) -> dict:
        behavior = behavior_of(call.platform, obj)
        record_id = call.record["id"]
        if name == "claim":
            record = behavior.claim(call.access, record_id)
        elif name == "assign":
            record = behavior.assign(call.access, record_id, call.params)
        elif name == "return":
            record = behavior.give_back(call.access, record_id, call.params)
        elif name == "move":
            record = behavior.move(call.access, record_id, call.params)
        elif name in ("invalidate", "void"):
            record = behavior.close(call.access, record_id, call.params, name)
        else:
            record = behavior.reopen(call.access, record_id)
        return {"record": call.platform.records.get(obj, record["id"])}

    return run


def _assign_many(platform, access, obj: str, ids: list[str], params: dict) -> dict:
    """The bulk assign action set-based (`PoolBehavior.assign_many`: the same successes and refusals as one record
    after another)."""
    return behavior_of(platform, obj).assign_many(access, ids, params.get("owner"), params.get("owners") or ())


def _give_back_many(platform, access, obj: str, ids: list[str], params: dict) -> dict:
    """The bulk return action set-based (`PoolBehavior.give_back_many`: the same successes and refusals as one
    record after another)."""
    return behavior_of(platform, obj).give_back_many(access, ids, params)


_RUN_MANY = {"assign": _assign_many, "return": _give_back_many}  # the bulk actions run set-based


def pool_actions(metadata: Metadata) -> list[actions.Action]:
    found = []
    for obj, config in POOL.configured(metadata):
        pool_object = config.pool_object
        params = {
            "owner": actions.Param("owner", "user", Label("负责人", "Owner"), to="user"),
            "owners": actions.Param("owners", "multi_user", Label("平均分配给", "Spread over"), to="user"),
            "reason": actions.Param("reason", "text", Label("原因", "Reason"), required=True),
            "pool": actions.Param("pool", "lookup", Label("线索池", "Lead pool"), to=pool_object),
        }
        for name, (label, names) in _ACTIONS.items():
            ps = [params[n] for n in names]
            if name == "move":
                ps = [actions.Param("pool", "lookup", Label("线索池", "Lead pool"), required=True, to=pool_object)]
            found.append(actions.Action(obj.name, name, label, _handler(obj.name, name), tuple(ps), True,
                                        run_many=_RUN_MANY.get(name)))
    return found


POOL = Behavior(
    "pool", SCHEMA, PoolConfig, _needs, pool_actions,
    hooks={"before_create": _entering_one, "before_create_many": _entering_many},
    panels=("pages/pool_board.html", "pages/my_leads.html", "pages/return.html"),
)


def register(registry) -> None:
    registry.behavior(POOL)
    registry.hiding(pool_hidings)
