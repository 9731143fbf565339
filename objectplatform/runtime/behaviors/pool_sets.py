"""The pool behavior's bulk actions set-based: each writes a batch in one transaction, with no Python loop over its
records, and answers exactly as the single action run on one record after another would (a mixin of PoolBehavior).

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/pool.py".)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, Forbidden, Message, NotFound, RuntimeFailure, ValidationFailed, no_record
from ..records import history, history_sql
from ..storage import convert
from ..storage.convert import field_type, from_row, to_row
from ..storage.id_sets import positions

OWNER_OR_OWNERS = Message("pool.owner_or_owners", "give either owner or owners")


def record_ids(ids: Iterable[Any]) -> list[str]:
    """The ids of a set-based action as texts (as the database gives them back), each once, in the order given;
    ValidationFailed naming any that is not a record id."""
    given = list(dict.fromkeys(str(i) for i in ids))
    wrong = [Message("action.not_an_id", "{item!r} is not a record id", item=i) for i in given
             if not (i.isascii() and i.isdigit())]
    if wrong:
        raise ValidationFailed({"ids": wrong})
    return list(dict.fromkeys(str(int(i)) for i in given))


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


class SetBased:
    """The bulk actions of PoolBehavior set-based: the records that pass the single action's checks are `choose`n
    (ranked in the order given), written by `write_chosen` (the history, the summaries, ONE UPDATE, the rollups),
    and each other id is refused by `answer` with the error the single action gives it."""

    def run_many(self, access, action: str, ids: Iterable[Any], params: dict) -> dict:
        """The bulk `action` on `ids` set-based: {"succeeded": [ids, in the order given], "failed": [{"id",
        "error"}]}."""
        if action == "claim":
            return self.claim_many(access, ids)
        if action == "assign":
            return self.assign_many(access, ids, params.get("owner"), params.get("owners") or ())
        if action == "return":
            return self.give_back_many(access, ids, params)
        if action == "move":
            return self.move_many(access, ids, params)
        if action in ("invalidate", "void"):
            return self.close_many(access, ids, params, action)
        return self.reopen_many(access, ids)

    def claim_many(self, access, ids: Iterable[Any]) -> dict:
        """Claim many records set-based, as `claim` claims each one after another: those waiting (unassigned, no
        owner) in the caller's data scope, in a claimable pool they are a member of, not back within the pool's
        reclaim cooldown, go to the caller, pending; of each pool with a max_held_per_member or daily_claim_limit,
        the first (in the order given) up to what its limits leave, and every later one of it is refused with the
        limit's message (counting the claims before it). On PostgreSQL the pools are locked first, then the
        records, as a single claim takes them."""
        wanted = record_ids(ids)
        t, pools, col, me, at = self.table, self.pot.table, self.col, access.user_id, self.platform.clock.now()
        status, owner, in_pool, c = col(self.status), col("owner"), col(self.pool_field), self.config
        with self.platform.records.transaction() as conn:
            batch = positions(conn.dialect.name, wanted)
            source = batch.join(t, t.c.id == batch.c.id)
            read = sa.select(pools).where(pools.c.id.in_(sa.select(in_pool).select_from(source))).order_by(pools.c.id)
            if conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already serializes the writers
                read = read.with_for_update()
            found = {p["id"]: p for p in (from_row(self.pot, row) for row in conn.execute(read).mappings())}
            member = {i: access.is_admin or self.is_member(conn, p, me) for i, p in found.items()}
            open_to_me = {i: p for i, p in found.items() if member[i] and p.get("claimable")}
            counts = {i: self.counts(conn, p, me, at) for i, p in open_to_me.items()}
            room = {i: n for i, p in open_to_me.items() if (n := self.room(p, *counts[i])) is not None}
            cooling = self.cooling(me, at, open_to_me)
            visible = self.visible(access)
            place = sa.type_coerce(batch.c.pos, sa.BigInteger())  # SQLite's json_each gives it no type
            chosen = self.choose(conn, source, batch.c.pos, sa.and_(
                visible, status == c.unassigned_status, owner.is_(None),
                in_pool.in_(sorted(int(i) for i in open_to_me)), sa.not_(cooling),
            ), ["owner", self.status, c.assigned_at_field], [in_pool.label("pool_id"), place.label("place")])
            taken = self.keep_first(conn, chosen, room) if room else {}
            self.write_chosen(conn, "claim", chosen, {"owner": me, self.status: c.pending_status,
                                                      c.assigned_at_field: at}, me, at)
            succeeded, refused = self.outcome(conn, wanted, batch, chosen,
                                              [visible, status, owner, in_pool, batch.c.pos, cooling])
            left = self.left_at(conn, me, [r[0] for r in refused if r[-1]])

        def why(record_id: str, was: str, holder: Any, pool_id: Any, pos: int, cools: bool) -> RuntimeFailure:
            record = {"id": record_id, self.status: was, "owner": holder}
            if was != c.unassigned_status or holder is not None:
                return self.refuse(record, "claim")
            if pool_id is None:
                return Conflict(self.not_in_pool(record_id))
            pool = found.get(str(pool_id))
            if pool is None:
                return ValidationFailed({"pool": [no_record(self.pot.object, str(pool_id))]})
            if not member[pool["id"]]:
                return Forbidden(self.not_member(pool))
            if not pool.get("claimable"):
                return Forbidden(self.admin_assign_only(pool))
            n, last = taken.get(pool["id"], (0, None))
            reached = pool["id"] in room and n == room[pool["id"]] and (last is None or pos > last)
            if cools and not reached:
                return self.cooldown(record_id, pool["reclaim_cooldown_days"], left[record_id])
            held, claimed = counts[pool["id"]]
            return self.over_limit(pool, held + n, claimed + n) or self.refuse(record, "claim")

        return self.answer(succeeded, refused, why)

    def assign_many(self, access, ids: Iterable[Any], owner: Any = None, owners: Iterable[Any] = ()) -> dict:
        """Assign many records set-based, in one transaction, with no Python loop over them.

        The records that may be assigned (in the caller's data scope, in a pool they manage, live) are
        ranked in the order given (`choose`), and rank r goes to the r-th owner `spread` names, so `owners`
        are filled least-loaded first as assigning one after another would (counting what each holds
        outside this batch). Then the history, the summaries and ONE UPDATE write them (`write_chosen`),
        and each refused id is reported as the single action refuses it."""
        owners = list(owners or ())
        if bool(owner) == bool(owners):
            raise ValidationFailed({"owners": [OWNER_OR_OWNERS]})
        wanted = record_ids(ids)
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
            succeeded, refused = self.outcome(conn, wanted, batch, chosen,
                                              [visible, managed, status])

        def why(record_id: str, may: bool, was: str) -> RuntimeFailure:
            if not may:
                return Forbidden(self.managers_only("assign", record_id))
            return self.refuse({"id": record_id, self.status: was}, "assign")

        return self.answer(succeeded, refused, why)

    def give_back_many(self, access, ids: Iterable[Any], params: dict) -> dict:
        """Return many records set-based, as `give_back` returns each one after another: those the caller holds
        (in their data scope, pending or following, theirs) go to the pool given, else each to its own, unassigned
        or to that pool's default assignee, with the reason. On PostgreSQL the pools are locked first, then the
        records (`choose`), as a single return takes them."""
        wanted = record_ids(ids)
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
            succeeded, refused = self.outcome(conn, wanted, batch, chosen,
                                              [visible, status, owner, target])

        def why(record_id: str, was: str, holder: Any, pool_id: Any) -> RuntimeFailure:
            if was not in c.open:
                return self.refuse({"id": record_id, self.status: was}, "return")
            if holder is None or str(holder) != me:
                return Forbidden(self.owner_only(record_id))
            if pool_id is None:
                return ValidationFailed({"pool": [self.choose_pool(record_id)]})
            return ValidationFailed({"pool": [no_record(self.pot.object, str(pool_id))]})  # no such pool

        return self.answer(succeeded, refused, why)

    def move_many(self, access, ids: Iterable[Any], params: dict) -> dict:
        """Move many records set-based to the pool given, as `move` moves each one after another: those waiting
        (unassigned, no owner) in the caller's data scope, in a pool they manage, another than the one given,
        enter it (`entering`: unassigned, or to its default assignee). The pool given is locked first on
        PostgreSQL, then the records."""
        wanted = record_ids(ids)
        t, pools, col, me, at = self.table, self.pot.table, self.col, access.user_id, self.platform.clock.now()
        status, owner, in_pool, c = col(self.status), col("owner"), col(self.pool_field), self.config
        with self.platform.records.transaction() as conn:
            exists = conn.execute(sa.select(pools.c.id).where(pools.c.id == int(params["pool"]))).first()
            target = self.pool(conn, params["pool"], lock=True) if exists else None
            batch = positions(conn.dialect.name, wanted)
            visible, managed = self.visible(access), self.managed(conn, access)
            values = self.entering(conn, target, at) if target else {}
            elsewhere = sa.or_(in_pool.is_(None), in_pool != int(target["id"])) if target else sa.false()
            chosen = self.choose(conn, batch.join(t, t.c.id == batch.c.id), batch.c.pos, sa.and_(
                visible, managed, status == c.unassigned_status, owner.is_(None), elsewhere), list(values))
            if values:
                self.write_chosen(conn, "move", chosen, values, me, at)
            succeeded, refused = self.outcome(conn, wanted, batch, chosen,
                                              [visible, managed, status, in_pool])

        def why(record_id: str, may: bool, was: str, pool_id: Any) -> RuntimeFailure:
            if not may:
                return Forbidden(self.managers_only("move", record_id))
            if was != c.unassigned_status:
                return self.refuse({"id": record_id, self.status: was}, "move")
            if target is None:
                return ValidationFailed({"pool": [no_record(self.pot.object, params["pool"])]})
            if pool_id is not None and str(pool_id) == target["id"]:
                return ValidationFailed({"pool": [self.already_in(record_id, target)]})
            return self.refuse({"id": record_id, self.status: was}, "move")  # it has an owner

        return self.answer(succeeded, refused, why)

    def close_many(self, access, ids: Iterable[Any], params: dict, action: str) -> dict:
        """Invalidate (live records) or void (live or invalid ones) many records set-based, with the reason, as
        `close` closes each one after another."""
        c = self.config
        allowed = c.live if action == "invalidate" else (*c.live, c.invalid_status)
        values = {self.status: c.invalid_status if action == "invalidate" else c.voided_status,
                  c.invalid_reason_field: params["reason"]}
        status = self.col(self.status)
        return self.write_many(access, ids, action, status.in_(allowed), values, [status],
                               lambda record_id, was: self.refuse({"id": record_id, self.status: was}, action))

    def reopen_many(self, access, ids: Iterable[Any]) -> dict:
        """Reopen many invalid or voided records set-based, as `reopen` reopens each one after another: back to
        unassigned without an owner, else following when followed up, else pending; a voided one only by an
        administrator."""
        c, col = self.config, self.col
        status, closed = col(self.status), (c.invalid_status, c.voided_status)
        followed = [(col(self.last_followed).is_not(None), c.following_status)] if self.last_followed else []
        values = {self.status: sa.case((col("owner").is_(None), c.unassigned_status), *followed,
                                       else_=c.pending_status)}
        may = status.in_(closed) if access.is_admin else status == c.invalid_status

        def why(record_id: str, was: str) -> RuntimeFailure:
            if was not in closed:
                return self.refuse({"id": record_id, self.status: was}, "reopen")
            return Forbidden(self.reopen_admin_only({"id": record_id, self.status: was}))

        return self.write_many(access, ids, "reopen", may, values, [status], why)

    def write_many(self, access, ids: Iterable[Any], change: str, where: sa.ColumnElement[bool],
                   values: Mapping[str, Any], checks: Sequence[sa.ColumnElement],
                   why: Callable[..., RuntimeFailure]) -> dict:
        """A set-based action giving the records of `ids` in the caller's data scope and `where` the `values` (see
        `write_chosen`), each other id refused as `answer` says, `why` given the `checks` over it."""
        wanted = record_ids(ids)
        t, me, at = self.table, access.user_id, self.platform.clock.now()
        with self.platform.records.transaction() as conn:
            batch = positions(conn.dialect.name, wanted)
            visible = self.visible(access)
            chosen = self.choose(conn, batch.join(t, t.c.id == batch.c.id), batch.c.pos, sa.and_(visible, where),
                                 list(values))
            self.write_chosen(conn, change, chosen, values, me, at)
            succeeded, refused = self.outcome(conn, wanted, batch, chosen,
                                              [visible, *checks])
        return self.answer(succeeded, refused, why)

    def answer(self, succeeded: list[str], refused: list[tuple], why: Callable[..., RuntimeFailure]) -> dict:
        """The result of a set-based action from its `outcome`: an id neither found nor in the caller's data scope
        is not found, any other refused one gets `why(id, *its other checks)`, the error the single action gives.
        {"succeeded": [ids, in the order given], "failed": [{"id", "error"}]}"""
        failed = []
        for record_id, found, in_scope, *checks in refused:
            error = (NotFound(no_record(self.definition, record_id)) if found is None or not in_scope
                     else why(record_id, *checks))
            failed.append({"id": record_id, "error": error.as_dict()["error"]})
        return {"succeeded": succeeded, "failed": failed}

    # ---------------------------------------------------------------------------------- claims

    def cooling(self, me: str, at: datetime, pools: Mapping[str, dict]) -> sa.ColumnElement[bool]:
        """The condition on the records that left `me` less than their pool's reclaim_cooldown_days before `at`
        (of `pools`, by id)."""
        h, in_pool = self.platform.schema.history, self.col(self.pool_field)
        since = [sa.and_(in_pool == int(i), h.c.at > (at - timedelta(days=p["reclaim_cooldown_days"]))
                         .astimezone(UTC).replace(tzinfo=None))
                 for i, p in pools.items() if p.get("reclaim_cooldown_days")]
        if not since:
            return sa.false()
        return sa.exists().where(h.c.object == self.obj, h.c.record_id == self.table.c.id,
                                 history.left(h, "owner", me), sa.or_(*since))

    def left_at(self, conn: sa.Connection, me: str, ids: list[str]) -> dict[str, datetime]:
        """When each of the records `ids` last left `me`."""
        if not ids:
            return {}
        h = self.platform.schema.history
        return {str(i): at for i, at in conn.execute(sa.select(h.c.record_id, sa.func.max(h.c.at)).where(
            h.c.object == self.obj, h.c.record_id.in_([int(i) for i in ids]), history.left(h, "owner", me),
        ).group_by(h.c.record_id))}

    @staticmethod
    def keep_first(conn: sa.Connection, chosen: sa.Table, room: Mapping[str, int]) -> dict[str, tuple[int, int]]:
        """Leave in `chosen` (with its `pool_id` and `place`, the position given) only the first `room[pool]`
        records, in the order given, of each pool of `room`; then each pool's (records chosen, last place)."""
        nth = sa.func.row_number().over(partition_by=chosen.c.pool_id, order_by=chosen.c.rank).label("nth")
        ranked = sa.select(chosen.c.id, chosen.c.pool_id, nth).subquery("ranked")
        beyond = sa.select(ranked.c.id).where(sa.or_(*(sa.and_(ranked.c.pool_id == int(i), ranked.c.nth > n)
                                                       for i, n in room.items())))
        conn.execute(chosen.delete().where(chosen.c.id.in_(beyond)))
        return {str(i): (n, last) for i, n, last in conn.execute(sa.select(
            chosen.c.pool_id, sa.func.count(), sa.func.max(chosen.c.place)).group_by(chosen.c.pool_id))}

    # ----------------------------------------------------------------------------- the mechanism

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

    def outcome(self, conn: sa.Connection, wanted: list[str], batch: sa.Subquery, chosen: sa.Table,
                checks: Sequence[sa.ColumnElement]) -> tuple[list[str], list[tuple]]:
        """After a set-based action on `wanted` (`batch`): the ids `chosen` holds in the order given (those not
        refused: a batch's few refusals are read back, not its many successes), and for each other id in the order
        given (id, the record's id or None, the `checks` over `batch` outer-joined to the records); `chosen` is
        dropped."""
        refused = [(str(record_id), *rest) for record_id, *rest in conn.execute(
            sa.select(batch.c.id, self.table.c.id, *checks)
            .select_from(batch.outerjoin(self.table, self.table.c.id == batch.c.id))
            .where(batch.c.id.not_in(sa.select(chosen.c.id))).order_by(batch.c.pos))]
        chosen.drop(conn)
        gone = {r[0] for r in refused}
        return [i for i in wanted if i not in gone], refused

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

