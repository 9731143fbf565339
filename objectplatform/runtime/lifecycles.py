"""Record lifecycles: what the records service holds every write to, and who may run a transition from
which state (transitions.py runs the moves).

(How it works: docs/engine.md, "objectplatform/runtime/lifecycles.py".)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, Label, Lifecycle, Metadata, ObjectDef, Transition
from objectplatform.metadata.checks import LIFECYCLE_BY
from objectplatform.metadata.expressions import parse

from .errors import (
    Conflict,
    Forbidden,
    Locked,
    Message,
    ValidationFailed,
    said_label,
    said_list,
    said_name,
    said_object,
    said_records,
)
from .fieldtypes.reference import record_id


def said_option(field: FieldDef, value: Any) -> str:
    """A picklist value as messages name it: its option's label in each face's language, the value in the API's
    params."""
    option = field.option(value) if value is not None else None
    return str(value) if option is None else said_name(value, option.label)


def state_label(obj: ObjectDef, value: Any) -> str:
    """A lifecycle state as messages name it (`said_option`)."""
    return said_option(obj.fields[obj.lifecycle.field], value)


def states_listed(obj: ObjectDef, values: Iterable[Any]) -> str:
    """Several states as a message lists them (`Submitted, Approved`), each face in its language."""
    return said_list([state_label(obj, v) for v in values])


def own_label(transition: Transition) -> Label | None:
    """The transition's label from the YAML; None when it gives none (one the approval engine or a behavior runs
    may leave it to its action; the loader then labels it by its name)."""
    return None if transition.label == Label(transition.name, transition.name) else transition.label


def transition_label(transition: Transition, action: Label | None) -> Label:
    """What a transition is called: its action's label `action` (which alone labels one the approval engine or a
    behavior runs), else its own."""
    return action or transition.label


def said_transition(obj: ObjectDef, name: str, label: Label | None = None) -> str:
    """A transition by its `transition_label`, `label` its action's."""
    transition = obj.lifecycle.transitions.get(name) if obj.lifecycle else None
    label = label if transition is None else transition_label(transition, label)
    return said_name(name, label) if label else name


def said_transitions(obj: ObjectDef, names: Iterable[str], labels: Mapping[str, Label]) -> str:
    """Several transitions by their labels, `labels` (their actions') naming those without one of their own."""
    return said_list([said_transition(obj, name, labels.get(name)) for name in names])


def said_part(metadata: Metadata, obj: ObjectDef, name: str) -> str:
    """What a state locks by its label: a field of `obj`, or a child object (its lines)."""
    part = obj.fields.get(name) or metadata.objects.get(name)
    return said_name(name, part.label) if part is not None else name


def said_roles(metadata: Metadata, names: Iterable[str]) -> str:
    """Roles by their labels (`Finance`), `none` when there are none."""
    said = [said_name(name, metadata.roles[name].label) if name in metadata.roles else name for name in names]
    return said_list(said) if said else Message("transition.no_role", "none")


def wrong_state(obj: ObjectDef, record: Mapping[str, Any], name: str, sources: Iterable[Any],
                label: Label | None = None) -> Message:
    """Why the transition (or a behavior's action) `name`, labelled `label` when it has no label of its own, does not
    start from the record's state."""
    return Message("transition.wrong_state", "{object} {id} is {state}: {transition} applies only to {records} in "
                   "state {sources}", object=said_object(obj), id=record["id"],
                   state=state_label(obj, record.get(obj.lifecycle.field)),
                   transition=said_transition(obj, name, label), records=said_records(obj),
                   sources=states_listed(obj, sources))


SET_BY_SYSTEM = Message("value.system_set", "is set by the system")
ActionLabels = Callable[[str], Mapping[str, Label]]  # an object's name -> its actions' labels by action name


class Guard:
    """The lifecycle rules of one platform's objects, for the records service."""

    def __init__(self, metadata: Metadata):
        self.metadata = metadata
        self.lifecycles: dict[str, Lifecycle] = {n: o.lifecycle for n, o in metadata.objects.items() if o.lifecycle}
        self.transition_only: dict[str, frozenset[str]] = {
            name: frozenset({*([obj.lifecycle.field] if obj.lifecycle else ()),
                             *(f.name for f in obj.fields.values() if f.system)})
            for name, obj in metadata.objects.items()
        }
        # child object -> [(parent object with a lifecycle, the child's master_detail field)]
        self.parents: dict[str, list[tuple[str, str]]] = {}
        for obj in metadata.objects.values():
            for f in obj.fields.values():
                if f.type == "master_detail" and f.to in self.lifecycles:
                    self.parents.setdefault(obj.name, []).append((f.to, f.name))

    # ------------------------------------------------------------------------------ field writes

    def refuse_transition_only(self, obj: str, names: Iterable[str], labels: ActionLabels) -> None:
        """422 on each field of `names` that only transitions (or the system) set (`labels`: the object's actions'
        labels, which name the transitions that have none)."""
        lifecycle = self.lifecycles.get(obj)
        definition = self.metadata.objects[obj]
        errors = {}
        for name in names:
            if name not in self.transition_only.get(obj, ()):
                continue
            setting = lifecycle.setting(name) if lifecycle else ()
            errors[name] = [Message("lifecycle.transition_only", "set only by the transitions {transitions}",
                                    transitions=said_transitions(definition, setting, labels(obj)))
                            if setting
                            else SET_BY_SYSTEM]
        if errors:
            raise ValidationFailed(errors)

    def refuse_new(self, obj: str, data: Mapping[str, Any], labels: ActionLabels) -> None:
        """422 on each `system` field a user gives a value when creating a record (the state field is
        held to the initial states by `refuse_start`)."""
        lifecycle = self.lifecycles.get(obj)
        self.refuse_transition_only(obj, [name for name, value in data.items() if value not in (None, "")
                                          and not (lifecycle and name == lifecycle.field)], labels)

    def refuse_start(self, obj: str, record: Mapping[str, Any], errors: dict[str, list[str]],
                     labels: ActionLabels) -> None:
        """A record a user creates starts in an initial state: the error is added to `errors`."""
        lifecycle = self.lifecycles.get(obj)
        if lifecycle is None or record.get(lifecycle.field) is None:
            return
        value = record[lifecycle.field]
        if value not in lifecycle.initial:
            definition = self.metadata.objects[obj]
            starts = states_listed(definition, lifecycle.initial)
            reached = [t.name for t in lifecycle.transitions.values() if t.to == value]
            how = Message("lifecycle.reached_by", "is reached by {transitions}",
                          transitions=said_transitions(definition, reached, labels(obj))) if reached else SET_BY_SYSTEM
            errors.setdefault(lifecycle.field, []).append(Message(
                "lifecycle.initial_state", "a new {object} starts as {initial}; {state} {how}",
                object=said_object(definition, lower=True), initial=starts, state=state_label(definition, value),
                how=how))

    def refuse_locked(self, conn: sa.Connection, access_of, obj: str, current: Mapping[str, Any],
                      names: Iterable[str], user: str | None) -> None:
        """409 `locked` when the record's state locks one of `names` (fields or child objects) and the
        user may not edit locked fields in that state."""
        lifecycle = self.lifecycles.get(obj)
        if lifecycle is None:
            return
        state = lifecycle.states.get(current.get(lifecycle.field))
        if state is None:
            return
        locked = [name for name in names if state.locks(name)]
        if not locked or self._may_edit_locked(conn, access_of, state.editable_by, user):
            return
        definition = self.metadata.objects[obj]
        label = state_label(definition, state.value)
        raise Locked(Message("lifecycle.locked", "{object} {id} is {state}: {fields} cannot be changed in this state",
                             object=said_object(definition), id=current["id"], state=label,
                             fields=said_list([said_part(self.metadata, definition, name) for name in locked])),
                     {name: [Message("lifecycle.field_locked", "locked while the {object} is {state}",
                                     object=said_object(definition, lower=True),
                                     state=label)] for name in locked})

    def refuse_locked_parent(self, conn: sa.Connection, schema, access_of, obj: str, record: Mapping[str, Any],
                             user: str | None, scope=None) -> None:
        """409 `locked` when a line is written whose parent's state locks the lines of `obj`; a parent outside the
        caller's `scope` (a condition on its table) says nothing of its state: validation calls it unknown."""
        for parent, via in self.parents.get(obj, ()):
            parent_id = record_id(record.get(via))
            if parent_id is None:  # not an id at all: validation names the field
                continue
            pot = schema[parent]
            field = self.lifecycles[parent].field
            visible = scope(parent, pot.table) if scope is not None else None
            stmt = sa.select(pot.column(field)).where(pot.table.c.id == int(parent_id))
            state = conn.execute(stmt if visible is None else stmt.where(visible)).scalar()
            if state is not None:
                self.refuse_locked(conn, access_of, parent, {"id": str(parent_id), field: state}, [obj], user)

    @staticmethod
    def _may_edit_locked(conn: sa.Connection, access_of, editable_by: tuple[str, ...], user: str | None) -> bool:
        if user is None:
            return True
        access = access_of(user, conn)
        return access.is_admin or bool(access.roles & set(editable_by))


def locked_for(access, obj: ObjectDef, record: Mapping[str, Any], name: str) -> bool:
    """Whether the record's state locks `name` (a field or a child object) for the caller of `access`, as
    `Guard.refuse_locked` would refuse a write of it: the pages leave out what would only be refused."""
    state = obj.lifecycle.states.get(record.get(obj.lifecycle.field)) if obj.lifecycle else None
    if state is None or not state.locks(name):
        return False
    return not (access.is_admin or access.roles & set(state.editable_by))


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


def applies(obj: ObjectDef, name: str, record: Mapping[str, Any], user: str | None, at: datetime) -> bool:
    """Whether the action `name` applies to the record at time `at`: a transition starts from its state and its
    condition holds (an action that is no transition always applies)."""
    transition = _transition(obj, name)
    if transition is None:
        return True
    if record.get(obj.lifecycle.field) not in transition.sources:
        return False
    return transition.condition is None or bool(parse(transition.condition).evaluate(
        expression_env(record, {}, user), at))


def refuse_role(metadata: Metadata, obj: ObjectDef, name: str) -> None:
    """403 naming the roles that may run the transition."""
    raise Forbidden(Message("transition.role", "your roles do not allow {transition} on {object} (allowed: {roles})",
                            transition=said_transition(obj, name), object=said_records(obj),
                            roles=said_roles(metadata, obj.lifecycle.transitions[name].roles)))


def refuse(access, obj: ObjectDef, name: str, record: Mapping[str, Any], at: datetime,
           label: Label | None = None) -> None:
    """409 when the transition does not start from the record's state or its condition does not hold at `at`
    (`label`: its action's, said when the transition has none)."""
    transition = obj.lifecycle.transitions[name]
    state = record.get(obj.lifecycle.field)
    if state not in transition.sources:
        raise Conflict(wrong_state(obj, record, name, transition.sources, label))
    if not applies(obj, name, record, access.user_id, at):
        raise Conflict(Message("transition.condition", "{transition} does not apply to {object} {id}: {why}",
                               transition=said_transition(obj, name, label), object=said_object(obj, lower=True),
                               id=record["id"], why=condition_unmet(obj, transition),
                               condition=transition.condition))


def condition_unmet(obj: ObjectDef, transition: Transition) -> str:
    """Why a transition's condition refuses a record: the message the YAML gives it, else the fields it reads."""
    if transition.message is not None:
        return said_label(transition.message.zh, transition.message.en)
    read = dict.fromkeys(name.split(".")[0] for name in sorted(parse(transition.condition).names))
    fields = [said_name(name, obj.fields[name].label) for name in read if name in obj.fields]
    if not fields:
        return Message("transition.condition_unmet", "its condition does not hold")
    return Message("transition.condition_fields", "its condition on {fields} does not hold", fields=said_list(fields))


def expression_env(record: Mapping[str, Any], params: Mapping[str, Any], user: str | None) -> dict[str, Any]:
    """What a transition's condition and `set` see: the record, its parameters as `params.NAME`, current_user."""
    return {**record, **{f"params.{k}": v for k, v in params.items()}, "current_user": user}
