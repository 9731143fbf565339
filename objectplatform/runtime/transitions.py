"""Lifecycle transitions as actions: who may run them, from which states, and what running one does.

A transition the engine runs (no `by`) is an action of its object: its roles (or a role's grant of the
action) decide who runs it, it starts only from its `from` states and when its condition holds, it
needs its required fields, then moves the state and writes its `set` fields in one system write (the
history names the transition and keeps its parameters), runs its actions (notify, to-do) and closes
the record's to-dos it names. A transition the approval engine runs (`by: approval`) is checked for its
states the same way before the engine submits or withdraws.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from objectplatform.metadata import FieldDef, Label, Metadata, ObjectDef, Transition
from objectplatform.metadata.checks import LIFECYCLE_BY
from objectplatform.metadata.expressions import parse

from . import actions
from .errors import Conflict, Forbidden, Message, ValidationFailed
from .lifecycles import listed, state_label
from .records import hooks


def _transition(obj: ObjectDef, name: str) -> Transition | None:
    return obj.lifecycle.transitions.get(name) if obj.lifecycle else None


def runs(obj: ObjectDef, name: str) -> bool:
    """Whether `name` is a transition the engine runs (its roles decide who may run it)."""
    transition = _transition(obj, name)
    return transition is not None and transition.by is None


def governs(obj: ObjectDef, name: str) -> bool:
    """Whether the action `name` must start from its transition's states: a transition the engine or the
    approval engine runs (a behavior's own action checks the state itself)."""
    transition = _transition(obj, name)
    return transition is not None and transition.by in (None, LIFECYCLE_BY)


def may_run(access, obj: ObjectDef, name: str) -> bool:
    """Whether the user's roles let them run the transition `name` (its own roles or a role's grant)."""
    transition = obj.lifecycle.transitions[name]
    return access.is_admin or bool(access.roles & set(transition.roles)) or access.can_act(obj.name, name)


def applies(obj: ObjectDef, name: str, record: Mapping[str, Any], user: str | None,
            at: datetime | None = None) -> bool:
    """Whether the action `name` applies to the record: a transition starts from its state and its
    condition holds (an action that is no transition always applies)."""
    transition = _transition(obj, name)
    if transition is None:
        return True
    if record.get(obj.lifecycle.field) not in transition.sources:
        return False
    return transition.condition is None or bool(parse(transition.condition).evaluate(
        _env(record, {}, user), at or datetime.now(UTC)))


def refuse_role(obj: ObjectDef, name: str) -> None:
    """403 naming the roles that may run the transition."""
    roles = listed(obj.lifecycle.transitions[name].roles) or "none"
    raise Forbidden(Message("transition.role", "your roles do not allow {transition} on {object} (allowed: {roles})",
                            transition=name, object=obj.name, roles=roles))


def refuse(access, obj: ObjectDef, name: str, record: Mapping[str, Any]) -> None:
    """409 when the transition does not start from the record's state or its condition does not hold."""
    transition = obj.lifecycle.transitions[name]
    state = record.get(obj.lifecycle.field)
    if state not in transition.sources:
        starts = listed(state_label(obj, v) for v in transition.sources)
        raise Conflict(Message("transition.wrong_state", "{object} {id} is {state}: {transition} applies only to "
                               "a {object} that is {sources}", object=obj.name, id=record["id"],
                               state=state_label(obj, state), transition=name, sources=starts))
    if not applies(obj, name, record, access.user_id):
        raise Conflict(Message("transition.condition", "{transition} does not apply to {object} {id}: {condition}",
                               transition=name, object=obj.name, id=record["id"], condition=transition.condition))


def _env(record: Mapping[str, Any], params: Mapping[str, Any], user: str | None) -> dict[str, Any]:
    return {**record, **{f"params.{k}": v for k, v in params.items()}, "current_user": user}


def run_transition(call: actions.ActionCall, name: str) -> dict:
    """Check and run one transition the engine runs: the state and the `set` fields in one system write
    (history names the transition and its parameters), then its actions and the to-dos it closes."""

    platform, obj = call.platform, platform_object(call)
    transition = obj.lifecycle.transitions[name]
    records = platform.records
    with records.transaction() as conn:
        current = records.get(obj.name, call.record["id"], conn=conn)
        missing = {f: [Message("transition.required_field", "required before {transition}", transition=name)]
                   for f in transition.required_fields
                   if current.get(f) in (None, "", [])}
        if missing:
            raise ValidationFailed(missing)
        record = move(platform, conn, obj, transition, current, call.params, call.access.user_id,
                      datetime.now(UTC), current["version"])
        return {"record": record}


def move(platform, conn, obj: ObjectDef, transition: Transition, current: Mapping[str, Any],
         params: Mapping[str, Any], user: str | None, at: datetime, version: int | None) -> dict:
    """The move itself, in the caller's transaction: the state and `set` in one system write (its history
    names the transition and keeps `params`), then the transition's actions and the to-dos it closes."""
    from .rules import RecordRun
    from .workqueue import work_queue

    env = _env(current, params, user)
    values = {field: parse(expression).evaluate(env, at) for field, expression in transition.set.items()}
    values[obj.lifecycle.field] = transition.to
    record = platform.records.update(obj.name, current["id"], values, version=version, user=user, conn=conn,
                                     system=True, change=transition.name, detail=dict(params) or None)
    if transition.actions:
        prefix = f"transition:{transition.name}:{record['id']}:{record['version']}:"
        RecordRun(platform, conn, obj.name, record["id"], prefix, record.get("owner"), user, at,
                  NO_SUFFIX).perform(list(transition.actions))
    if transition.close_todos:
        work_queue(platform).close_record_todos(conn, obj.name, record["id"], transition.close_todos, by=user,
                                                now=at)
    return record


def run_automatic(platform, conn, obj: ObjectDef, record: Mapping[str, Any], at: datetime) -> None:
    """Run, as the system, the first automatic transition (`when`) that starts from the record's state and
    whose condition holds; the write it makes comes back here, so automatic moves chain."""
    state = record.get(obj.lifecycle.field)
    for transition in obj.lifecycle.transitions.values():
        if transition.when is not None and state in transition.sources and transition.by is None \
                and parse(transition.when).evaluate(_env(record, {}, None), at):
            current = platform.records.get(obj.name, record["id"], conn=conn)
            move(platform, conn, obj, transition, current, {}, None, at, None)
            return


def _automatic(obj: ObjectDef) -> bool:
    return obj.lifecycle is not None and any(t.when for t in obj.lifecycle.transitions.values())


def _after_write(ctx: hooks.HookContext) -> None:
    platform = ctx.records.platform
    run_automatic(platform, ctx.conn, platform.metadata.objects[ctx.object], ctx.after, ctx.now)


hooks.register_hook("after_create", _after_write, applies=_automatic)
hooks.register_hook("after_update", _after_write, applies=_automatic)
hooks.register_hook("after_rollup", _after_write, applies=_automatic)


NO_SUFFIX = Label("", "")


def platform_object(call: actions.ActionCall) -> ObjectDef:
    return call.platform.metadata.objects[call.object]


def _param(f: FieldDef) -> actions.Param:
    return actions.Param(f.name, f.type, f.label, f.required, f.to, definition=f)


@actions.action_provider
def transition_actions(metadata: Metadata) -> list[actions.Action]:
    """Every transition the engine runs (no `by`), as an action of its object."""
    found = []
    for obj in metadata.objects.values():
        for t in (obj.lifecycle.transitions.values() if obj.lifecycle else ()):
            if t.by is None:
                found.append(actions.Action(obj.name, t.name, t.label, _runner(t.name), tuple(map(_param, t.params))))
    return found


def _runner(name: str):
    return lambda call: run_transition(call, name)


def governed_by_approval(obj: ObjectDef, name: str) -> bool:
    """Whether `name` is a transition the approval engine runs (its from-states are checked first)."""
    transition = obj.lifecycle.transitions.get(name) if obj.lifecycle else None
    return transition is not None and transition.by == LIFECYCLE_BY
