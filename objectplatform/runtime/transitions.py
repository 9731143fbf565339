"""Lifecycle transitions as actions: who may run them, from which states, and what running one does.

(How it works: docs/engine.md, "objectplatform/runtime/transitions.py".)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, Label, Metadata, ObjectDef, Transition
from objectplatform.metadata.checks import LIFECYCLE_BY
from objectplatform.metadata.expressions import ExpressionError, parse, reads_clock

from . import actions, lifecycles
from .errors import Message, NotFound, RuntimeFailure, ValidationFailed, bulk_result, no_record, said_label
from .expressions_sql import to_sql
from .lifecycles import expression_env
from .records import hooks
from .rules import RecordRun
from .storage.id_sets import among, ids_param
from .workqueue import TEXT, work_queue


def missing_fields(transition: Transition, record: Mapping[str, Any]) -> dict[str, list[Message]]:
    """The transition's required fields `record` leaves empty, each "required before <the transition's label>"."""
    missing = [f for f in transition.required_fields if record.get(f) in (None, "", [])]
    if not missing:  # (the label is said only when needed: a bulk run checks each record)
        return {}
    label = said_label(transition.label.zh, transition.label.en)
    return {f: [Message("transition.required_field", "required before {transition}", transition=label)]
            for f in missing}


def run_transition(call: actions.ActionCall, name: str) -> dict:
    """Check and run one transition the engine runs: the state and the `set` fields in one system write
    (history names the transition and its parameters), then its actions and the to-dos it closes."""

    platform, obj = call.platform, platform_object(call)
    transition = obj.lifecycle.transitions[name]
    records = platform.records
    with records.transaction() as conn:
        current = records.get(obj.name, call.record["id"], conn=conn)
        missing = missing_fields(transition, current)
        if missing:
            raise ValidationFailed(missing)
        record = move(platform, conn, obj, transition, current, call.params, call.access.user_id,
                      platform.clock.now(), current["version"])
        return {"record": record}


def run_transition_many(platform, access, obj_name: str, name: str, ids: list[str], params: dict) -> dict | None:
    """A bulk run of one transition, set-based: the records read and locked in one query within the caller's
    scope, each checked as one run would be (it exists for them, starts from the state, meets the condition, has
    the required fields; if not it is reported by id with why), then `move_many`. None when a check only the
    write makes refused the batch as a whole (a rollup raised above its limit): the caller runs the records one by
    one, so that only the records at fault are refused."""
    obj = platform.metadata.objects[obj_name]
    transition = obj.lifecycle.transitions[name]
    records = platform.records
    scope = access.scope(obj_name, platform.schema[obj_name].table)
    refused: dict[str, RuntimeFailure] = {}
    at = platform.clock.now()
    alike = same_values(platform, obj, transition, params, access.user_id, at)
    checked = None if alike is None else [obj.lifecycle.field, *transition.required_fields]  # all a check reads
    try:
        with records.transaction() as conn:
            found = records.read_many(conn, obj_name, ids, where=scope, lock=True, fields=checked)
            now, ready = platform.local_now(), []
            for one in ids:
                try:
                    record = found.get(one)
                    if record is None:
                        raise NotFound(no_record(obj, one))
                    lifecycles.refuse(access, obj, name, record, now)
                    missing = missing_fields(transition, record)
                    if missing:
                        raise ValidationFailed(missing)
                except RuntimeFailure as e:
                    refused[one] = e
                else:
                    ready.append(record)
            refused.update(move_many(platform, conn, obj, transition, ready, params, access.user_id, at, scope,
                                     alike))
    except RuntimeFailure:
        return None
    return bulk_result(ids, refused)


def same_values(platform, obj: ObjectDef, transition: Transition, params: Mapping[str, Any],
                user: str | None, at: datetime) -> dict[str, Any] | None:
    """The values a run of `transition` at `at` writes when they are the same on every record and `update_all` may
    write them set-based (its `set` reads only the parameters, the user and the clock, there is no condition to
    evaluate and its required fields are stored ones); else None."""
    record_free = {f"params.{k}" for k in params} | {"current_user"}
    expressions = {field: parse(expression) for field, expression in transition.set.items()}
    columns = platform.schema[obj.name].columns
    if transition.condition is not None or any(e.names - record_free for e in expressions.values()) \
            or any(name not in columns for name in transition.required_fields):
        return None
    local = at.astimezone(platform.settings.zone)
    env = expression_env({}, params, user)
    values = {**{field: e.evaluate(env, local) for field, e in expressions.items()}, obj.lifecycle.field: transition.to}
    return values if platform.records.writes_alike(obj.name, values) else None


def move_many(platform, conn, obj: ObjectDef, transition: Transition, currents: list[Mapping[str, Any]],
              params: Mapping[str, Any], user: str | None, at: datetime, scope=None,
              alike: Mapping[str, Any] | None = None) -> dict[str, RuntimeFailure]:
    """`move` of many records the caller read and locked in `conn`, set-based: one guarded UPDATE per set of equal
    values (the record still in a state the transition starts from and within `scope`), the history in one
    INSERT, the rollups refreshed together, then the transition's actions and the to-dos it closes on all the
    records moved at once. Values the same on every record (`same_values`) are written by `update_all`, checked
    once (`alike`, when the caller has them). Returns, by id, why each record not moved was refused."""
    key = f"transitions:guard:{obj.name}:{transition.name}"  # one object: the statements made with it are kept
    guard = platform.services.get(key)
    if guard is None:
        guard = platform.services[key] = platform.schema[obj.name].column(obj.lifecycle.field).in_(
            list(transition.sources))
    where = guard if scope is None else sa.and_(guard, scope)
    if alike is None:
        alike = same_values(platform, obj, transition, params, user, at)
    if alike is not None:
        moved, refused = platform.records.update_all(
            obj.name, [int(current["id"]) for current in currents], alike, conn=conn, user=user, where=where,
            change=transition.name, detail=dict(params) or None)
    else:
        local = at.astimezone(platform.settings.zone)
        expressions = {field: parse(expression) for field, expression in transition.set.items()}
        changes = []
        for current in currents:
            env = expression_env(current, params, user)
            values = {field: expression.evaluate(env, local) for field, expression in expressions.items()}
            changes.append((current, {**values, obj.lifecycle.field: transition.to}))
        moved, refused = platform.records.update_many(obj.name, changes, conn=conn, user=user, where=where,
                                                      change=transition.name, detail=dict(params) or None)
    if moved and transition.actions:
        _MovedRun(platform, conn, obj.name, moved, transition.name, user, at).perform(list(transition.actions))
    if moved and transition.close_todos:
        work_queue(platform).close_record_todos(conn, obj.name, moved, transition.close_todos, by=user, now=at)
    return refused


class _MovedRun(RecordRun):
    """A transition's actions on the records it moved: each record's keys name the transition, the record and its
    new version (as `move`'s do), and its owner is the submitter. Its notifications are written by an INSERT built
    once per transition and action, the records a parameter (`ids` None: the run that builds it)."""

    def __init__(self, platform, conn: sa.Connection, obj: str, ids: list[int] | None, name: str, user: str | None,
                 at: datetime):
        super().__init__(platform, conn, obj, 0, f"transition:{name}:", None, user, at, NO_SUFFIX)
        self.ids, self.name = ids, name

    def fresh(self) -> sa.ColumnElement[bool]:
        return among(self.table.c.id, ids_param("_moved") if self.ids is None else self.ids)

    def notify(self, spec: Mapping[str, Any], message: Mapping[str, str]) -> int:
        """`_Run.notify` by the INSERT of this transition and action, built on its first run."""
        key = f"transitions:notify:{self.obj}:{self.name}:{json.dumps([spec, message], sort_keys=True)}"
        insert = self.platform.services.get(key)
        if insert is None:
            built = _MovedRun(self.platform, self.conn, self.obj, None, self.name, self.user, self.at)
            insert = self.platform.services[key] = self.work.notify_insert(
                self.conn.dialect.name, built.notify_rows(spec, message))
        return self.work.notify_from(self.conn, insert, {**self.occasion(), "_moved": self.ids})

    def submitter_pairs(self) -> sa.Select:
        t = self.table
        return sa.select(t.c.id.label("record_id"), t.c.owner.label("user_id"))

    def key_prefix(self) -> sa.ColumnElement:
        t = self.table
        return (sa.literal(self.prefix, TEXT) + sa.cast(t.c.id, TEXT) + sa.literal(":", TEXT)
                + sa.cast(t.c.version, TEXT) + sa.literal(":", TEXT))


def move(platform, conn, obj: ObjectDef, transition: Transition, current: Mapping[str, Any],
         params: Mapping[str, Any], user: str | None, at: datetime, version: int | None,
         computed: Mapping[str, Any] | None = None) -> dict:
    """The move itself, in the caller's transaction: the state, `set` and the values a behavior `computed` in
    one system write (its history names the transition and keeps `params`), then the transition's actions and
    the to-dos it closes."""
    env = expression_env(current, params, user)
    local = at.astimezone(platform.settings.zone)  # today() is the site's date
    values = {field: parse(expression).evaluate(env, local) for field, expression in transition.set.items()}
    values.update(computed or {})
    values[obj.lifecycle.field] = transition.to
    record = platform.records.update(obj.name, current["id"], values, version=version, user=user, conn=conn,
                                     system=True, change=transition.name, detail=dict(params) or None)
    if transition.actions:
        prefix = f"transition:{transition.name}:{record['id']}:{record['version']}:"
        RecordRun(platform, conn, obj.name, record["id"], prefix, record.get("owner"), user, at,
                  NO_SUFFIX).perform(list(transition.actions))
    if transition.close_todos:
        work_queue(platform).close_record_todos(conn, obj.name, [record["id"]], transition.close_todos, by=user,
                                                now=at)
    return record


def run_automatic(platform, conn, obj: ObjectDef, record: Mapping[str, Any], at: datetime) -> None:
    """Run, as the system, the first automatic transition (`when`) that starts from the record's state and
    whose condition holds; the write it makes comes back here, so automatic moves chain."""
    state, local = record.get(obj.lifecycle.field), at.astimezone(platform.settings.zone)
    for transition in obj.lifecycle.transitions.values():
        if transition.when is not None and state in transition.sources and transition.by is None \
                and parse(transition.when).evaluate(expression_env(record, {}, None), local):
            current = platform.records.get(obj.name, record["id"], conn=conn)
            move(platform, conn, obj, transition, current, {}, None, at, None)
            return


def run_automatic_many(ctx: hooks.RowsContext) -> None:
    """`run_automatic` on the records a set-based rollup refresh changed: each automatic transition in turn takes,
    in one query, those in a state it starts from whose condition holds and that no earlier one took, and moves
    them together (`move_many`); a record it cannot move is refused as `move` refuses it."""
    platform, conn = ctx.records.platform, ctx.conn
    obj = platform.metadata.objects[ctx.object]
    local = ctx.now.astimezone(platform.settings.zone)
    taken, moves = set(), []
    for transition in obj.lifecycle.transitions.values():
        if transition.when is None or transition.by is not None:
            continue
        when = parse(transition.when)
        query, taking = _automatic_queries(platform, obj, transition, ctx.columns, local)
        if taking is not None:
            ids = conn.execute(taking, {"_changed": ctx.ids}).scalars().all()
        else:  # the condition is evaluated here on each record in a state it starts from
            found = platform.records.read_many(
                conn, obj.name, [str(i) for i in conn.execute(query, {"_changed": ctx.ids}).scalars()])
            ids = [int(i) for i, record in found.items() if when.evaluate(expression_env(record, {}, None), local)]
        ids = [i for i in ids if i not in taken]
        if ids:
            taken.update(ids)
            moves.append((transition, ids))
    for transition, ids in moves:
        found = platform.records.read_many(conn, obj.name, [str(i) for i in ids], lock=True)
        refused = move_many(platform, conn, obj, transition, [found[str(i)] for i in ids], {}, None, ctx.now)
        if refused:
            raise next(iter(refused.values()))


def _automatic_queries(platform, obj: ObjectDef, transition: Transition, columns: Mapping[str, sa.Column],
                       local: datetime) -> tuple[sa.Select, sa.Select | None]:
    """The ids of the records among a `_changed` list in a state the automatic `transition` starts from, and of
    those whose `when` holds as well (None: its condition has no SQL); built once unless `when` reads the clock."""
    key = f"transitions:automatic:{obj.name}:{transition.name}"
    cached = platform.services.get(key)
    if cached is not None:
        return cached
    ot = platform.schema[obj.name]
    query = sa.select(ot.table.c.id).where(among(ot.table.c.id, ids_param("_changed")), ot.column(
        obj.lifecycle.field).in_(list(transition.sources))).order_by(ot.table.c.id)
    when = parse(transition.when)
    try:
        found = (query, query.where(to_sql(when, columns, local, condition=True)))
    except ExpressionError:
        found = (query, None)
    if not reads_clock(when):
        platform.services[key] = found
    return found


def _entering(obj: ObjectDef) -> bool:
    return obj.lifecycle is not None and any(state.on_enter for state in obj.lifecycle.states.values())


def _entered(ctx: hooks.HookContext) -> None:
    """Run the `on_enter` actions of the state a record was created in or moved to, on that record."""
    platform = ctx.records.platform
    lifecycle = platform.metadata.objects[ctx.object].lifecycle
    value = ctx.after.get(lifecycle.field)
    state = lifecycle.states.get(value)
    if state is None or not state.on_enter or (ctx.before is not None and ctx.before.get(lifecycle.field) == value):
        return
    record_id, version = ctx.after["id"], ctx.after.get("version")
    RecordRun(platform, ctx.conn, ctx.object, record_id, f"enter:{value}:{record_id}:{version}:",
              ctx.after.get("created_by"), ctx.user, ctx.now, NO_SUFFIX).perform(list(state.on_enter))


def _enters(metadata: Metadata, obj: ObjectDef, values: Mapping[str, Any]) -> bool:
    """Whether writing `values` moves a record into a state with `on_enter` actions."""
    state = obj.lifecycle.states.get(values.get(obj.lifecycle.field))
    return state is not None and bool(state.on_enter)


def _automatic(obj: ObjectDef) -> bool:
    return obj.lifecycle is not None and any(t.when for t in obj.lifecycle.transitions.values())


def _after_write(ctx: hooks.HookContext) -> None:
    platform = ctx.records.platform
    run_automatic(platform, ctx.conn, platform.metadata.objects[ctx.object], ctx.after, ctx.now)


def _after_create_many(ctx: hooks.HookContext) -> None:
    """Imported records take the automatic transitions a created one would."""
    platform = ctx.records.platform
    for record in ctx.batch:
        run_automatic(platform, ctx.conn, platform.metadata.objects[ctx.object], record, ctx.now)


NO_SUFFIX = Label("", "")


def platform_object(call: actions.ActionCall) -> ObjectDef:
    return call.platform.metadata.objects[call.object]


def _param(f: FieldDef) -> actions.Param:
    return actions.Param(f.name, f.type, f.label, f.required, f.to, definition=f)


def transition_actions(metadata: Metadata) -> list[actions.Action]:
    """Every transition the engine runs (no `by`), as an action of its object."""
    found = []
    for obj in metadata.objects.values():
        for t in (obj.lifecycle.transitions.values() if obj.lifecycle else ()):
            if t.by is None:
                found.append(actions.Action(obj.name, t.name, t.label, _runner(t.name), tuple(map(_param, t.params)),
                                            run_many=_many_runner(t.name)))
    return found


def _runner(name: str):
    return lambda call: run_transition(call, name)


def _many_runner(name: str):
    return lambda platform, access, obj, ids, params: run_transition_many(platform, access, obj, name, ids, params)


def governed_by_approval(obj: ObjectDef, name: str) -> bool:
    """Whether `name` is a transition the approval engine runs (its from-states are checked first)."""
    transition = obj.lifecycle.transitions.get(name) if obj.lifecycle else None
    return transition is not None and transition.by == LIFECYCLE_BY


def _automatic_reads(obj: ObjectDef) -> set[str]:
    """What `run_automatic` reads of a record: its state and the fields the automatic transitions' `when` name."""
    return {obj.lifecycle.field, *(name for t in obj.lifecycle.transitions.values() if t.when
                                   for name in parse(t.when).names)}


def register(registry) -> None:
    """Lifecycles: each transition the engine runs as an action, the automatic ones after every write, the
    states' `on_enter` actions when a record enters them."""
    for event in ("after_create", "after_update"):
        registry.hook(event, _after_write, applies=_automatic)
    registry.hook("after_rollup", _after_write, applies=_automatic, reads=_automatic_reads, many=run_automatic_many)
    registry.hook("after_create_many", _after_create_many, applies=_automatic)
    registry.hook("after_create", _entered, applies=_entering)
    registry.hook("after_update", _entered, applies=_entering, needed=_enters)
    registry.action_provider(transition_actions)
