"""Actions: named operations on a record that are more than a field edit (claim, convert, deactivate, ...).

(How it works: docs/engine.md, "objectplatform/runtime/actions.py".)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError, fields

from objectplatform.metadata import FieldDef, Label, Metadata, Source

from . import lifecycles
from .auth import auth_service
from .errors import Message, NotFound, RuntimeFailure, ValidationFailed, said_name, said_object
from .fieldtypes import record_id, type_named
from .validation import REQUIRED, converter

MAX_BULK = 500


@dataclass(frozen=True)
class Param:
    """One parameter of an action, typed like a field (`to`: the target of a reference type)."""

    name: str
    type: str
    label: Label
    required: bool = False
    to: str | None = None
    definition: FieldDef | None = None  # a parameter declared in YAML keeps its whole field definition

    def field(self) -> FieldDef:
        return self.definition or FieldDef(self.name, self.type, self.label, Source("<action parameter>"),
                                           required=self.required, to=self.to)

    def json_schema(self) -> dict[str, Any] | None:
        """The value's JSON Schema for the OpenAPI document when it is not its field type's (None: it is)."""
        return None

    def validator(self, metadata: Metadata) -> fields.Field:
        """The marshmallow field validating the value: its field type's (a parameter-only type overrides it)."""
        return type_named(self.type).validator(self.field(), metadata)


@dataclass(frozen=True)
class ActionCall:
    """What a handler gets: the caller's access, the record (read within their scope) and the valid params."""

    platform: Any
    access: Any
    object: str
    record: dict
    params: dict


Handler = Callable[[ActionCall], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Action:
    """A named action of an object; its handler returns the action-specific result (beside the record)."""

    object: str
    name: str
    label: Label
    handler: Handler
    params: tuple[Param, ...] = ()
    bulk: bool = True  # may also run on many records at once
    # whether it applies to a record now (platform, record) -> bool, for the actions a page offers
    applies: Callable[[Any, Mapping[str, Any]], bool] | None = None
    # a bulk run set-based (platform, access, object, ids, params) -> the bulk result, or None: run one by one
    run_many: Callable[[Any, Any, str, list[str], dict], dict | None] | None = None


Provider = Callable[[Metadata], Iterable[Action]]  # the actions that follow from a platform's metadata


class Actions:
    """The actions of one platform's objects, with their parameter validators built once, on an action's first run
    (building all of them costs 80 ms, and a platform runs few of its actions)."""

    def __init__(self, platform):
        self.platform = platform
        self.by_object: dict[str, dict[str, Action]] = platform.registry.actions_of(platform.metadata)
        self._converters: dict[tuple[str, str], dict[str, Callable[[Any], Any]]] = {}

    def _converters_of(self, action: Action) -> dict[str, Callable[[Any], Any]]:
        key = (action.object, action.name)
        if key not in self._converters:
            self._converters[key] = {p.name: converter(p.validator(self.platform.metadata)) for p in action.params}
        return self._converters[key]

    def for_object(self, obj: str) -> list[Action]:
        return list(self.by_object.get(obj, {}).values())

    def labels(self, obj: str) -> dict[str, Label]:
        """`obj`'s actions' labels by name: they name the transitions that have no label of their own."""
        return {name: action.label for name, action in self.by_object.get(obj, {}).items()}

    def get(self, obj: str, name: str) -> Action:
        if obj not in self.by_object:
            raise NotFound(Message("object.unknown", "unknown object {object}", object=obj))
        action = self.by_object[obj].get(name)
        if action is None:
            raise NotFound(Message("action.unknown", "{object} has no action {action}",
                                   object=said_object(self.platform.metadata.objects[obj]), action=name))
        return action

    def params(self, action: Action, data: Any, skip: frozenset[str] = frozenset()) -> dict:
        """The action's parameters from `data`, converted; ValidationFailed naming every bad one."""
        if not isinstance(data, Mapping):
            raise ValidationFailed({"__all__": [Message("action.params_not_an_object",
                                                         "must be an object of parameters")]})
        converters = self._converters_of(action)
        values, errors = {}, {}
        for name, value in data.items():
            if name in skip:
                continue
            if name not in converters:
                errors[name] = [Message("action.unknown_param", "unknown parameter")]
                continue
            if isinstance(value, str):
                value = value.strip()
            if value is None or value == "":
                values[name] = None
                continue
            try:
                values[name] = converters[name](value)
            except ValidationError as e:
                errors[name] = list(e.messages)
        for p in action.params:
            if p.required and values.get(p.name) is None and p.name not in errors:
                errors[p.name] = [REQUIRED]
        if errors:
            raise ValidationFailed(errors)
        return values

    def run(self, access, obj: str, name: str, target: str | list, data: Any) -> dict:
        """One record (`target` an id): {"record", ...result}; many (`target` a list of ids, a bulk
        action): {"succeeded": [ids], "failed": [{"id", "error"}]}, each record on its own."""
        action = self.get(obj, name)
        bulk = isinstance(target, list)
        definition = self.platform.metadata.objects[obj]
        if bulk and not action.bulk:
            raise NotFound(Message("action.unknown_bulk", "{object} has no bulk action {action}",
                                   object=said_object(definition), action=said_name(name, action.label)))
        if lifecycles.runs(definition, name):
            if not lifecycles.may_run(access, definition, name):
                lifecycles.refuse_role(self.platform.metadata, definition, name)
        else:
            access.require_action(obj, name, action.label)
        if not bulk:
            return self._run_one(access, action, target, self.params(action, data))
        params = self.params(action, data, skip=frozenset({"ids"}))
        ids = _ids(target)
        if action.run_many is not None:
            result = action.run_many(self.platform, access, obj, ids, params)
            if result is not None:
                return result
        succeeded, failed = [], []
        for one in ids:
            try:
                self._run_one(access, action, one, params)
            except RuntimeFailure as e:
                failed.append({"id": one, "error": e.as_dict()["error"]})
            else:
                succeeded.append(one)
        return {"succeeded": succeeded, "failed": failed}

    def allowed(self, access, obj: str, name: str) -> bool:
        """Whether the user's roles let them run `name` on `obj` (a transition: its roles or a grant)."""
        definition = self.platform.metadata.objects[obj]
        if lifecycles.runs(definition, name):
            return lifecycles.may_run(access, definition, name)
        return access.can_act(obj, name)

    def available(self, access, obj: str, record: Mapping[str, Any]) -> list[Action]:
        """The actions `access` may run on `record` now: granted to the user's roles and, for a lifecycle
        transition, starting from the record's state (with its condition holding)."""
        definition = self.platform.metadata.objects[obj]
        found = []
        for action in self.for_object(obj):
            if (self.allowed(access, obj, action.name)
                    and lifecycles.applies(definition, action.name, record, access.user_id, self.platform.local_now())
                    and (action.applies is None or action.applies(self.platform, record))):
                found.append(action)
        return found

    def _run_one(self, access, action: Action, record_id: Any, params: dict) -> dict:
        records = self.platform.records
        obj = action.object
        record = records.get(obj, record_id, where=access.scope(obj, self.platform.schema[obj].table))
        definition = self.platform.metadata.objects[obj]
        if lifecycles.governs(definition, action.name):
            lifecycles.refuse(access, definition, action.name, record, self.platform.local_now(), action.label)
        result = dict(action.handler(ActionCall(self.platform, access, obj, record, params)) or {})
        try:
            result.setdefault("record", records.get(obj, record["id"]))
        except NotFound:  # the action removed it
            result.setdefault("record", None)
        return {"record": result.pop("record"), **result}


def _ids(target: list) -> list[str]:
    """The ids of a bulk call as strings, each once; ValidationFailed when they are not ids."""
    if not target:
        raise ValidationFailed({"ids": [Message("action.no_ids", "give at least one id")]})
    if len(target) > MAX_BULK:
        raise ValidationFailed({"ids": [Message("action.too_many_ids", "give at most {limit} ids", limit=MAX_BULK)]})
    ids = [record_id(item) for item in target]
    wrong = [Message("action.not_an_id", "{item!r} is not a record id", item=item)
             for item, found in zip(target, ids, strict=True) if found is None]
    if wrong:
        raise ValidationFailed({"ids": wrong})
    return list(dict.fromkeys(ids))


def actions_service(platform) -> Actions:
    """The platform's actions (built on first use)."""
    if "actions" not in platform.services:
        platform.services["actions"] = Actions(platform)
    return platform.services["actions"]


def run_action(platform, access, obj: str, action: str, target: str | list, params: Any) -> dict:
    """Run `action` of `obj` as `access` on one record (an id) or, as a bulk action, on a list of ids."""
    return actions_service(platform).run(access, obj, action, target, params)


# ------------------------------------------------------------------------------------ built-ins


def _deactivate_user(call: ActionCall) -> dict:
    """Deactivate the user and hand every record they own to `handover_to`."""
    moved = auth_service(call.platform).deactivate(call.record["id"], call.params["handover_to"],
                                                    by=call.access.user_id)
    return {"handed_over": moved}


def _deactivate_users(platform, access, obj: str, ids: list[str], params: dict) -> dict | None:
    """The bulk deactivate set-based (`Auth.deactivate_many`), within the caller's data scope."""
    return auth_service(platform).deactivate_many(ids, params["handover_to"], by=access.user_id,
                                                  where=access.scope(obj, platform.schema[obj].table))


# importing records from a file: a role grants it per object beside create (web/import_jobs.py checks it)
IMPORT = "import"


def register(registry) -> None:
    """The engine's own actions: deactivating a user, and the import permission."""
    registry.action("user", "deactivate", _deactivate_user, label=Label("停用并交接", "Deactivate and hand over"),
                    params=[Param("handover_to", "user", Label("交接给", "Hand over to"), required=True, to="user")],
                    run_many=_deactivate_users)
    registry.permission(IMPORT, label=Label("导入", "Import"))
