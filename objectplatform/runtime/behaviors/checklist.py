"""The checklist behavior: records of other objects (a visit's actions: feedback, photos, counts per product) that
are filled on a record while it is in some states, each offered to the departments named, some required before a
transition; every write of them, by any face, is held to that."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, Metadata, ObjectDef

from ..errors import Locked, Message, NotFound, said_label, said_list
from ..records.hooks import HookContext
from ..records.service import parse_record_id
from ..sales_processes import department_path
from .registry import Behavior, FieldNeed, Need, ObjectNeed, TransitionNeed

BEHAVIOR = "checklist"


@dataclass(frozen=True)
class Item:
    """One object of a checklist: its records point at the record through the lookup `via`; offered to the owners of
    `departments` (by name, or a department below one; none named: everyone); `required` before the transitions."""

    object: str
    via: str
    departments: tuple[str, ...]
    required: bool

    def offered_to(self, path: list[str]) -> bool:
        """Whether an owner whose departments (their own, then each above it) are `path` gets this item."""
        return not self.departments or any(name in self.departments for name in path)


@dataclass(frozen=True)
class ChecklistConfig:
    """`behaviors: checklist:` of one object: its `items` ({object: {via, departments, required}}), the lifecycle
    `states` in which they are filled, changed or removed, the transitions refused while a required one is missing
    (`before`) and the user field whose department chooses the items (`department_of`)."""

    items: Mapping[str, Mapping[str, Any]]
    states: tuple[str, ...]
    before: tuple[str, ...] = ()
    department_of: str = "owner"

    def __post_init__(self) -> None:
        for key in ("states", "before"):  # the YAML's lists, kept as the tuples the fields are
            object.__setattr__(self, key, tuple(getattr(self, key)))

    def listed(self, obj: ObjectDef) -> list[Item]:
        """The items in their declared order, `via` defaulting to the declaring object's name."""
        return [Item(name, spec.get("via", obj.name), tuple(spec.get("departments", ())), spec.get("required", False))
                for name, spec in self.items.items()]


NAME = {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"}
NAMES = {"type": "array", "items": NAME, "uniqueItems": True}
SCHEMA = {
    "type": "object",
    "properties": {
        "items": {"type": "object", "minProperties": 1, "propertyNames": NAME, "additionalProperties": {
            "type": "object",
            "properties": {
                "via": NAME,
                "departments": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
                "required": {"type": "boolean", "default": False},
            },
            "additionalProperties": False,
        }},
        "states": {**NAMES, "minItems": 1},
        "before": {**NAMES, "default": []},
        "department_of": {**NAME, "default": "owner"},
    },
    "required": ["items", "states"],
    "additionalProperties": False,
}


def _needs(obj: ObjectDef, config: ChecklistConfig) -> Iterator[Need]:
    for item in config.listed(obj):
        yield ObjectNeed(item.object, ("items", item.object))
        # a lookup, not a master_detail: an item is its own record, never a line posted inside its record's write
        yield FieldNeed(item.via, ("lookup",), ("items", item.object), item.object, obj.name)
    state = obj.lifecycle.field if obj.lifecycle is not None else "status"
    yield FieldNeed(state, ("picklist",), "states", options=tuple(config.states))
    for name in config.before:
        yield TransitionNeed(name, "before")
    if config.department_of != "owner":  # every record has its owner
        yield FieldNeed(config.department_of, ("user",), "department_of")
    yield FieldNeed("department", ("department",), None, "user")


def _checklists(metadata: Metadata, item: str) -> Iterator[tuple[ObjectDef, ChecklistConfig, Item]]:
    """Each checklist naming `item`: the object declaring it, its configuration and the item."""
    for obj, config in CHECKLIST.configured(metadata):
        for one in config.listed(obj):
            if one.object == item:
                yield obj, config, one


# ------------------------------------------------------------------------------------------ reading


def owner_departments(conn: sa.Connection, schema, record: Mapping[str, Any], config: ChecklistConfig) -> list[str]:
    """The names of the department of the record's `department_of` user and of each one above it, nearest first."""
    user = parse_record_id(record.get(config.department_of))
    if user is None:
        return []
    users = schema["user"]
    department = conn.execute(sa.select(users.column("department")).where(users.table.c.id == user)).scalar()
    return department_path(conn, schema, department)


def offered(platform, conn: sa.Connection, obj: ObjectDef, record: Mapping[str, Any]) -> list[Item]:
    """The items of `obj`'s checklist offered on `record` (by its owner's department), in their declared order."""
    config: ChecklistConfig = CHECKLIST.config_of(obj)
    path = owner_departments(conn, platform.schema, record, config)
    return [item for item in config.listed(obj) if item.offered_to(path)]


def filled_counts(conn: sa.Connection, schema, items: list[Item], record_id: Any) -> dict[str, int]:
    """{item object: how many of its records point at the record}, one count per item."""
    counts = {}
    for item in items:
        it = schema[item.object]
        counts[item.object] = conn.execute(sa.select(sa.func.count()).select_from(it.table)
                                           .where(it.column(item.via) == int(record_id))).scalar()
    return counts


def status(platform, obj: ObjectDef, record: Mapping[str, Any]) -> dict:
    """The record's checklist: its offered items, each with `required` and `filled` (its records' count), whether
    the items may be filled now (`open`: the record is in one of `states`) and the `missing` required ones."""
    config: ChecklistConfig = CHECKLIST.config_of(obj)
    with platform.engine.connect() as conn:
        items = offered(platform, conn, obj, record)
        counts = filled_counts(conn, platform.schema, items, record["id"])
    state = record.get(obj.lifecycle.field) if obj.lifecycle else None
    listed_items = [{"object": i.object, "via": i.via, "required": i.required, "filled": counts[i.object]}
                    for i in items]
    return {"items": listed_items, "open": state in config.states,
            "missing": [i["object"] for i in listed_items if i["required"] and not i["filled"]]}


# ------------------------------------------------------------------------------------------ hooks


def _label(metadata: Metadata, name: str) -> Message:
    label = metadata.objects[name].label
    return said_label(label.zh, label.en)


def _state(obj: ObjectDef, value: Any) -> str:
    """A lifecycle state as each face says it (its option's label), the value when it has none."""
    option = obj.fields[obj.lifecycle.field].option(value) if value is not None else None
    return said_label(option.label.zh, option.label.en) if option else str(value)


def _parent(ctx: HookContext, parent: ObjectDef, value: Any, scoped: bool) -> dict | None:
    """The record an item's `via` names, read in the write's transaction; in the caller's data scope when
    `scoped` (else NotFound: "no <object> with id N")."""
    record_id = parse_record_id(value)
    if record_id is None:
        return None
    scope = ctx.records.reference_scope if scoped else None
    where = scope(parent.name, ctx.records.schema[parent.name].table) if scope is not None else None
    return ctx.records.get(parent.name, record_id, where=where, conn=ctx.conn)


def _refuse_state(ctx: HookContext, parent: ObjectDef, config: ChecklistConfig, record: Mapping[str, Any]) -> None:
    """409 `locked` unless the record is in one of the states its items are filled in."""
    state = record.get(parent.lifecycle.field) if parent.lifecycle else None
    if state in config.states:
        return
    metadata = ctx.records.metadata
    raise Locked(Message(
        "checklist.locked", "{parent} {id} is {state}: its {item} is filled only while it is {states}",
        parent=_label(metadata, parent.name), id=record["id"], item=_label(metadata, ctx.object),
        state=_state(parent, state), states=said_list([_state(parent, s) for s in config.states])))


def _department_error(ctx: HookContext, parent: ObjectDef, config: ChecklistConfig, item: Item,
                      record: Mapping[str, Any]) -> Message | None:
    """Why `item` is not one of the record's (its owner's department is not offered it), or None."""
    path = owner_departments(ctx.conn, ctx.records.schema, record, config)
    if item.offered_to(path):
        return None
    metadata = ctx.records.metadata
    mine = [one.object for one in config.listed(parent) if one.offered_to(path)]
    return Message("checklist.not_offered", "{item} is not an action of {department}, the department of the "
                   "{parent}'s owner; its actions: {offered}", item=_label(metadata, item.object),
                   department=path[0] if path else "-", parent=_label(metadata, parent.name),
                   offered=said_list([_label(metadata, i) for i in mine]) if mine else "-")


def _guard_item(ctx: HookContext, values: Mapping[str, Any], before: Mapping[str, Any] | None,
                errors: dict[str, list[str]]) -> None:
    """A user's write of an item record: its record in their scope (else "no <object> with id N" on `via`, 422, as
    any reference out of scope), in a state the items are filled in (else 409 `locked`, also for the record it
    leaves), offered to its owner's department (else 422 on `via`)."""
    for parent, config, item in _checklists(ctx.records.metadata, ctx.object):
        if before is not None and (left := _parent(ctx, parent, before.get(item.via), scoped=False)) is not None:
            _refuse_state(ctx, parent, config, left)
        if item.via in errors or (before is not None and str(before.get(item.via)) == str(values.get(item.via))):
            continue
        try:
            record = _parent(ctx, parent, values.get(item.via), scoped=True)
        except NotFound as e:
            errors.setdefault(item.via, []).append(e.message)
            continue
        if record is None:
            continue
        _refuse_state(ctx, parent, config, record)
        error = _department_error(ctx, parent, config, item, record)
        if error is not None:
            errors.setdefault(item.via, []).append(error)


def _before_create(ctx: HookContext) -> None:
    if not ctx.system:
        _guard_item(ctx, ctx.after, None, ctx.errors)


def _before_update(ctx: HookContext) -> None:
    if not ctx.system:
        _guard_item(ctx, ctx.after, ctx.before, ctx.errors)
    if CHECKLIST.declared_by(ctx.records.metadata.objects[ctx.object]):
        _refuse_incomplete(ctx)


def _before_delete(ctx: HookContext) -> None:
    for parent, config, item in _checklists(ctx.records.metadata, ctx.object):
        record = _parent(ctx, parent, ctx.before.get(item.via), scoped=False)
        if record is not None:
            _refuse_state(ctx, parent, config, record)


def _before_create_many(ctx: HookContext) -> None:
    """An import's rows: each one's errors say what a single write would refuse, on its `via` field."""
    if ctx.system:
        return
    for row, errors in zip(ctx.batch, ctx.batch_errors, strict=True):
        try:
            _guard_item(ctx, row, None, errors)
        except (NotFound, Locked) as e:
            via = next(item.via for _, _, item in _checklists(ctx.records.metadata, ctx.object))
            errors.setdefault(via, []).append(e.message)


def _refuse_incomplete(ctx: HookContext) -> None:
    """A record reaching the state of a `before` transition needs a record of each required item it is offered."""
    obj = ctx.records.metadata.objects[ctx.object]
    config: ChecklistConfig = CHECKLIST.config_of(obj)
    if obj.lifecycle is None:
        return
    field = obj.lifecycle.field
    targets = {obj.lifecycle.transitions[t].to: t for t in config.before if t in obj.lifecycle.transitions}
    reached = ctx.after.get(field)
    if reached not in targets or ctx.before.get(field) == reached:
        return
    items = [i for i in offered(ctx.records.platform, ctx.conn, obj, ctx.after) if i.required]
    counts = filled_counts(ctx.conn, ctx.records.schema, items, ctx.before["id"])
    transition = obj.lifecycle.transitions[targets[reached]].label
    for item in items:
        if not counts[item.object]:
            ctx.errors.setdefault(item.object, []).append(Message(
                "checklist.required", "{item} is required before {transition}",
                item=_label(ctx.records.metadata, item.object), transition=said_label(transition.zh, transition.en)))


def _applies(obj: ObjectDef) -> bool:
    """Every object: a write of any may be an item's (which objects are is read from the metadata when it runs)."""
    return True


def _hook(handler):
    """`handler`, run only on a write of an object some checklist names or declares."""

    def run(ctx: HookContext) -> None:
        metadata = ctx.records.metadata
        if CHECKLIST.declared_by(metadata.objects[ctx.object]) or any(_checklists(metadata, ctx.object)):
            handler(ctx)

    return run


CHECKLIST = Behavior(
    BEHAVIOR, SCHEMA, ChecklistConfig, _needs,
    hooks={"before_create": _hook(_before_create), "before_update": _hook(_before_update),
           "before_delete": _hook(_before_delete), "before_create_many": _hook(_before_create_many)},
    applies=_applies,
    panels=("pages/_checklist.html",),
    needed=lambda metadata, obj, values: CHECKLIST.declared_by(obj) or any(_checklists(metadata, obj.name)),
)


def register(registry) -> None:
    registry.behavior(CHECKLIST)
    registry.page("checklist", endpoint="pages.checklist_page", label=Label("动作视图", "action views"),
                  shown=lambda metadata, access: any(access.can(item.object, "read")
                                                     for obj, config in CHECKLIST.configured(metadata)
                                                     for item in config.listed(obj)),
                  of_object=lambda metadata, obj: CHECKLIST.declared_by(metadata.objects[obj]))
