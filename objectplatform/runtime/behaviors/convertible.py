"""The `convertible` behavior (线索转换): turn a record (a lead) into an account, a contact and an opportunity.

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/convertible.py".)"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from marshmallow import fields as ma_fields

from objectplatform.metadata import FieldDef, Label, Metadata, ObjectDef, Source

from .. import lifecycles
from ..actions import Action, ActionCall, Param
from ..errors import Conflict, Message, NotFound, ValidationFailed, no_record
from ..records.history import jsonable
from .registry import Behavior, FieldNeed, Need, ObjectNeed

BEHAVIOR = "convertible"
MAX_MATCHES = 10
VALUES = "record_values"  # a parameter-only type: a JSON object of field values of a record to create
REFERENCE_TYPES = frozenset({"lookup", "master_detail"})


class RecordValues(ma_fields.Field):
    """A JSON object of field values (from a form or the CLI also as its JSON text); checked later by the
    target object's own validation, which names each field."""

    default_error_messages = {"invalid": Message("value.not_an_object", "must be an object of field values")}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise self.make_error("invalid") from None
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise self.make_error("invalid")
        return dict(value)


class ValuesParam(Param):
    """A parameter holding the field values of a record to create, validated with `RecordValues`; the
    OpenAPI document describes it as an object, the generic action form as a long text of that JSON."""

    def field(self) -> FieldDef:
        return FieldDef(self.name, "long_text", self.label, Source("<action parameter>"), required=self.required)

    def json_schema(self) -> dict[str, Any]:
        return {"type": ["object", "null"], "additionalProperties": True,
                "description": f"field values of the {self.name} to create"}

    def validator(self, metadata: Metadata) -> ma_fields.Field:
        return RecordValues()


# ------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class ConvertibleConfig:
    """`behaviors: convertible:` of one object, as written (see the module docstring)."""

    targets: Mapping[str, Mapping[str, str] | None]
    status_field: str
    converted_value: str
    links: Mapping[str, str] = field(default_factory=dict)
    closed_values: Sequence[str] = ("invalid", "voided")
    converted_at_field: str = "converted_at"
    stage_field: str = "stage"
    matches: Mapping[str, Sequence[str]] = field(default_factory=dict)
    proposed: Sequence[str] | None = None  # the optional targets the convert dialog proposes (default: all)


NAMES = {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}}
SCHEMA = {
    "type": "object",
    "properties": {
        "targets": {"type": "object", "minProperties": 1, "additionalProperties": {"anyOf": [{"type": "null"}, NAMES]}},
        "status_field": {"type": "string", "minLength": 1},
        "converted_value": {"type": "string", "minLength": 1},
        "links": NAMES,
        "closed_values": {"type": "array", "items": {"type": "string"}, "default": ["invalid", "voided"]},
        "converted_at_field": {"type": "string", "minLength": 1, "default": "converted_at"},
        "stage_field": {"type": "string", "minLength": 1, "default": "stage"},
        "matches": {"type": "object", "additionalProperties": {
            "type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}},
        "proposed": {"type": "array", "items": {"type": "string", "minLength": 1}},
    },
    "required": ["targets", "status_field", "converted_value"],
    "additionalProperties": False,
}


def _needs(obj: ObjectDef, config: ConvertibleConfig) -> Iterator[Need]:
    yield FieldNeed(config.status_field, ("picklist",), "status_field", options=(config.converted_value,))
    for target, mapping in config.targets.items():
        yield ObjectNeed(target, ("targets", target))
        for target_field, source in (mapping or {}).items():
            yield FieldNeed(target_field, (), ("targets", target, target_field), target)
            yield FieldNeed(source, (), ("targets", target, target_field))
    for target, link in config.links.items():
        yield FieldNeed(link, ("lookup",), ("links", target), to=target)
    main = next(iter(config.targets))
    for target_field, sources in config.matches.items():
        yield FieldNeed(target_field, (), ("matches", target_field), main)
        for i, source in enumerate(sources):
            yield FieldNeed(source, (), ("matches", target_field, i))


class Config:
    """One object's `convertible` settings, resolved against the metadata."""

    def __init__(self, metadata: Metadata, obj: str, typed: ConvertibleConfig):
        self.object = obj
        self.definition = metadata.objects[obj]
        self.targets: dict[str, dict[str, str]] = {t: dict(m or {}) for t, m in typed.targets.items()}
        self.main = next(iter(self.targets))
        self.status_field = typed.status_field
        self.converted_value = typed.converted_value
        self.links: dict[str, str] = dict(typed.links)
        self.converted_at = typed.converted_at_field
        self.matches: dict[str, tuple[str, ...]] = {f: tuple(s) for f, s in typed.matches.items()}
        self.proposed = frozenset(typed.targets if typed.proposed is None else typed.proposed)
        status = metadata.objects[obj].fields[self.status_field]
        options = {o.value for o in status.options}
        self.status_def = status
        self.closed = frozenset(v for v in typed.closed_values if v in options) | {self.converted_value}
        self.stage_field = typed.stage_field


def config(metadata: Metadata, obj: str) -> Config:
    return Config(metadata, obj, CONVERTIBLE.config_of(metadata.objects[obj]))


def _convert_actions(metadata: Metadata) -> Iterable[Action]:
    for name, o in metadata.objects.items():
        if BEHAVIOR not in o.behaviors:
            continue
        c = config(metadata, name)
        main = _label(metadata, c.main)
        params = [ValuesParam(c.main, VALUES, main),
                  Param(f"existing_{c.main}", "lookup", Label("已有" + main.zh, "Existing " + main.en.lower()),
                        to=c.main)]
        params += [ValuesParam(t, VALUES, _label(metadata, t)) for t in list(c.targets)[1:]]
        params.append(Param("preview", "boolean", Label("仅预览", "Preview only")))
        yield Action(name, "convert", Label("转换", "Convert"), _convert, tuple(params), bulk=False)


def _label(metadata: Metadata, obj: str) -> Label:
    return metadata.objects[obj].label


# ------------------------------------------------------------------------------------------ action


def _convert(call: ActionCall) -> dict:
    c = config(call.platform.metadata, call.object)
    if call.params.get("preview"):
        _check_status(c, call.record)
        return {"defaults": {t: mapped_values(call.platform, c, t, call.record) for t in c.targets},
                "matches": matches(call.platform, call.access, call.object, call.record)}
    return convert(call.platform, call.access, call.object, call.record, call.params)


def _check_status(c: Config, record: Mapping[str, Any]) -> None:
    """Conflict naming the current status (as the pool's actions do) unless the record may convert."""
    status = record.get(c.status_field)
    if status in c.closed:
        raise Conflict(Message("convert.closed", "{object} {id} is {status}: it cannot be converted",
                               object=lifecycles.said_object(c.definition), id=record["id"],
                               status=lifecycles.said_option(c.status_def, status)))


def mapped_values(platform, c: Config, target: str, record: Mapping[str, Any]) -> dict:
    """The values the mapping takes from `record` for a new `target` record (empty ones left out)."""
    values = {}
    for name, source in c.targets[target].items():
        value = record.get(source)
        if value is not None and value != "" and value != []:
            values[name] = jsonable(value)
    return values


def convert(platform, access, obj: str, record: Mapping[str, Any], params: Mapping[str, Any]) -> dict:
    """Create (or attach) the targets and mark `record` converted, all in one transaction."""
    c = config(platform.metadata, obj)
    main, others = c.main, list(c.targets)[1:]
    given, existing = params.get(main), params.get(f"existing_{main}")
    if (given is None) == (existing is None):
        message = (Message("convert.both_given", "give either {target} (its fields) or existing_{target}, not both",
                           target=main) if given is not None
                   else Message("convert.none_given", "give {target} (its fields) or existing_{target}", target=main))
        raise ValidationFailed({main: [message]})
    for target in c.targets:
        if params.get(target) is not None:
            access.require(target, "create")
    records = platform.records
    scoped = records.within(access)  # the caller's data scope and field levels hold for what it creates
    user = access.user_id
    lead_table = platform.schema[obj]
    with records.transaction() as conn:
        locked = conn.execute(
            sa.select(lead_table.table.c.version, lead_table.column(c.status_field))
            .where(lead_table.table.c.id == int(record["id"])).with_for_update()
        ).first()
        if locked is None:
            raise NotFound(no_record(lead_table.object, record["id"]))
        _check_status(c, {"id": record["id"], c.status_field: locked[1]})
        current = records.get(obj, record["id"], conn=conn)
        created: dict[str, dict | None] = {}
        if existing is not None:
            account_table = platform.schema[main].table
            try:
                created[main] = records.get(main, existing, where=access.scope(main, account_table), conn=conn)
            except NotFound:
                missing = no_record(platform.metadata.objects[main], existing)
                raise ValidationFailed({f"existing_{main}": [missing]}) from None
        else:
            created[main] = _create(platform, scoped, c, main, current, given, created, user, conn)
        for target in others:
            wanted = params.get(target)
            created[target] = None if wanted is None else _create(platform, scoped, c, target, current, wanted,
                                                                   created, user, conn)
        changes: dict[str, Any] = {c.status_field: c.converted_value}
        if c.converted_at in platform.metadata.objects[obj].fields:
            changes[c.converted_at] = platform.clock.now()
        for target, link in c.links.items():
            if created.get(target) is not None:
                changes[link] = created[target]["id"]
        records.update(obj, record["id"], changes, version=locked[0], user=user, conn=conn, system=True)
        # read again: a record made later changed the rollups of one made before (an account's opportunities)
        return {t: None if created.get(t) is None else records.get(t, created[t]["id"], conn=conn)
                for t in c.targets}


def _create(platform, scoped, c: Config, target: str, source: Mapping[str, Any], given: Mapping[str, Any],
            created: Mapping[str, dict | None], user: str, conn) -> dict:
    """One target record: the mapped values, the links to the records made before it, the first stage,
    then what the caller gave; owned by the converting user. Errors are prefixed with the target. A
    target with the sales_process behavior (the opportunity) gets its process and first stage from
    that behavior's create hook; another one's `stage_field` picklist starts at its first active option."""
    target_def = platform.metadata.objects[target]
    values = mapped_values(platform, c, target, source)
    for f in target_def.fields.values():
        if f.type in REFERENCE_TYPES and f.to in created and created[f.to] is not None and f.name not in given:
            values.setdefault(f.name, created[f.to]["id"])
    stage = target_def.fields.get(c.stage_field)
    if stage is not None and "sales_process" not in target_def.behaviors and stage.type == "picklist":
        active = [o.value for o in stage.options if o.active]
        if active:
            values.setdefault(c.stage_field, active[0])
    values.update(given)
    values["owner"] = user
    try:
        return scoped.create(target, values, user=user, conn=conn)
    except ValidationFailed as e:
        raise ValidationFailed({f"{target}.{name}": messages for name, messages in e.fields.items()}) from None


# ------------------------------------------------------------------------------------------ matches


def matches(platform, access, obj: str, record: Mapping[str, Any]) -> list[dict]:
    """The main targets in the caller's scope that may already be `record` (at most ten, by title): those
    whose field equals one of the record's fields the `matches` setting lists for it (a lead's company
    the account's name, its phone or mobile the account's phone). What the convert dialog offers to
    attach to instead of a new one: {"id", each matched field, "owner"}."""
    c = config(platform.metadata, obj)
    ot = platform.schema[c.main]
    conditions = []
    for target_field, sources in c.matches.items():
        values = [v.strip() if isinstance(v, str) else v for v in (record.get(s) for s in sources)]
        values = list(dict.fromkeys(v for v in values if v))
        if values:
            conditions.append(ot.column(target_field).in_(values))
    if not conditions:
        return []
    scope = access.scope(c.main, ot.table)
    where = sa.or_(*conditions) if scope is None else sa.and_(scope, sa.or_(*conditions))
    page = platform.records.list(c.main, where=where, sort=ot.object.title_field, limit=MAX_MATCHES, count=False)
    return [{"id": r["id"], **{f: r.get(f) for f in c.matches}, "owner": r["owner"]} for r in page.items]


CONVERTIBLE = Behavior(BEHAVIOR, SCHEMA, ConvertibleConfig, _needs, _convert_actions, panels=("pages/convert.html",))


def register(registry) -> None:
    registry.behavior(CONVERTIBLE)
