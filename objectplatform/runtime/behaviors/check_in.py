"""The check_in behavior: geolocated check-in and check-out on a record (a visit), measured against the location
of the record it is about, with co-visitors' own check-ins kept as rows of their own.

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/check_in.py".)"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import ObjectDef, Transition

from .. import actions, lifecycles, watermark
from ..clock import local_midnight
from ..errors import Conflict, Forbidden, Message, NotFound, ValidationFailed, said_label
from ..geo import LocatedThroughLookup, distance_m, point
from ..records.hooks import HookContext
from ..transitions import missing_fields, move
from ..validation import REQUIRED
from .registry import Behavior, FieldNeed, Need, ObjectNeed, TransitionNeed

BEHAVIOR = "check_in"


@dataclass(frozen=True)
class CheckInConfig(LocatedThroughLookup):
    """`behaviors: check_in:` of one object: where the place checked in at should be (`location_of`, a lookup
    then the target's geolocation field), the tolerance and what happens beyond it, the transitions it runs,
    the fields it writes, the co-visit rows and the follow-up feed a completed record posts to."""

    location_of: str
    enabled: bool = True
    required: bool = True
    tolerance_m: float = 500
    out_of_range: str = "flag"
    photo_required: bool = False
    max_per_day: int | None = None
    beyond_max_per_day: str = "refuse"  # or "warn": the record is planned all the same, with a warning
    not_counted: tuple[str, ...] = ()  # states a record is in that the daily cap does not count
    min_minutes: int | None = None  # a visit checked out sooner is an anomaly (异常拜访: too short)
    missed_state: str | None = None  # the state of a record never checked in by the end of its day
    max_speed_kmh: float | None = None  # a check-in reached faster from the owner's one before is an anomaly
    road_factor: float = 1.0  # the day's mileage: the great-circle distances between check-ins times this
    accuracy_field: str | None = None  # where the check-in's reported accuracy (metres) is kept
    same_spot_m: float | None = None  # check-ins of one owner and day this close together ...
    same_spot_apart_m: float = 1000  # ... for targets further apart than this are an anomaly
    check_in: str = "check_in"
    check_out: str = "check_out"
    planned_field: str = "planned_at"
    checked_in_field: str = "check_in_at"
    checked_out_field: str = "check_out_at"
    distance_field: str = "check_in_distance"
    valid_field: str = "check_in_valid"
    duration_field: str = "duration_minutes"
    photo_field: str = "photo"
    photo_original_field: str | None = None  # set: a check-in's photo is stamped (水印) and its original kept here
    summary_field: str = "summary"
    co_visitors_field: str | None = None
    co_visit_object: str | None = None
    feed_object: str | None = None
    feed_kind: str | None = None


NAME = {"type": "string", "minLength": 1}
SCHEMA = {
    "type": "object",
    "properties": {
        "location_of": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$"},
        "enabled": {"type": "boolean", "default": True}, "required": {"type": "boolean", "default": True},
        "tolerance_m": {"type": "number", "exclusiveMinimum": 0, "default": 500},
        "out_of_range": {"enum": ["flag", "refuse"], "default": "flag"},
        "photo_required": {"type": "boolean", "default": False},
        "max_per_day": {"type": "integer", "minimum": 1},
        "beyond_max_per_day": {"enum": ["refuse", "warn"], "default": "refuse"},
        "not_counted": {"type": "array", "items": NAME, "uniqueItems": True, "default": []},
        "min_minutes": {"type": "integer", "minimum": 1}, "missed_state": NAME,
        "max_speed_kmh": {"type": "number", "exclusiveMinimum": 0},
        "road_factor": {"type": "number", "minimum": 1, "maximum": 5, "default": 1},
        "same_spot_m": {"type": "number", "exclusiveMinimum": 0},
        "same_spot_apart_m": {"type": "number", "exclusiveMinimum": 0, "default": 1000},
        **{key: {**NAME, "default": default} for key, default in (
            ("check_in", "check_in"), ("check_out", "check_out"), ("planned_field", "planned_at"),
            ("checked_in_field", "check_in_at"), ("checked_out_field", "check_out_at"),
            ("distance_field", "check_in_distance"), ("valid_field", "check_in_valid"),
            ("duration_field", "duration_minutes"), ("photo_field", "photo"), ("summary_field", "summary"))},
        **{key: NAME for key in ("co_visitors_field", "co_visit_object", "feed_object", "feed_kind",
                                 "accuracy_field", "photo_original_field")},
    },
    "required": ["location_of"],
    "dependentRequired": {"feed_object": ["feed_kind"]},
    "additionalProperties": False,
}
CO_VISIT = (("user", ("user",)), ("check_in_at", ("datetime",)), ("check_in_location", ("geolocation",)),
            ("check_in_distance", ("number",)), ("check_in_valid", ("boolean",)), ("check_out_at", ("datetime",)),
            ("check_out_location", ("geolocation",)), ("evaluation", ("long_text", "text")))
FEED = (("kind", ("picklist",)), ("content", ("long_text", "text")), ("related_object", ("text",)),
        ("related_id", ("text",)), ("followed_at", ("datetime",)))


def _needs(obj: ObjectDef, config: CheckInConfig) -> Iterator[Need]:
    yield TransitionNeed(config.check_in, "check_in")
    yield TransitionNeed(config.check_out, "check_out")
    yield FieldNeed(config.lookup, ("lookup", "master_detail"), "location_of")
    lookup = obj.fields.get(config.lookup)
    if lookup is not None and lookup.to is not None:
        yield FieldNeed(config.target_field, ("geolocation",), "location_of", lookup.to)
    for key, types in (("planned_field", ("datetime",)), ("checked_in_field", ("datetime",)),
                       ("checked_out_field", ("datetime",)), ("distance_field", ("number",)),
                       ("valid_field", ("boolean",)), ("duration_field", ("integer", "number")),
                       ("summary_field", ("long_text", "text"))):
        yield FieldNeed(getattr(config, key), types, key)
    if config.not_counted and obj.lifecycle is not None:
        yield FieldNeed(obj.lifecycle.field, ("picklist",), "not_counted", options=tuple(config.not_counted))
    if config.missed_state is not None and obj.lifecycle is not None:
        yield FieldNeed(obj.lifecycle.field, ("picklist",), "missed_state", options=(config.missed_state,))
    if config.accuracy_field is not None:
        yield FieldNeed(config.accuracy_field, ("number",), "accuracy_field")
    if config.photo_required or config.photo_original_field is not None:
        yield FieldNeed(config.photo_field, ("attachment",), "photo_field")
    if config.photo_original_field is not None:
        yield FieldNeed(config.photo_original_field, ("attachment",), "photo_original_field")
    if config.co_visitors_field is not None:
        yield FieldNeed(config.co_visitors_field, ("multi_user",), "co_visitors_field")
    if config.co_visit_object is not None:
        yield ObjectNeed(config.co_visit_object, "co_visit_object")
        yield FieldNeed(obj.name, ("master_detail", "lookup"), "co_visit_object", config.co_visit_object, obj.name)
        for name, types in CO_VISIT:
            yield FieldNeed(name, types, "co_visit_object", config.co_visit_object)
    if config.feed_object is not None:
        yield ObjectNeed(config.feed_object, "feed_object")
        for name, types in FEED:
            yield FieldNeed(name, types, "feed_object", config.feed_object,
                            options=(config.feed_kind,) if name == "kind" else ())


def _transition(obj: ObjectDef, name: str) -> Transition:
    return obj.lifecycle.transitions[name]


# ------------------------------------------------------------------------------------------ actions


def _actions(metadata) -> Iterator[actions.Action]:
    """check_in and check_out of every object enabling the behavior, with their transitions' labels and params."""
    for obj, config in CHECK_IN.configured(metadata):
        if not config.enabled or obj.lifecycle is None:
            continue
        for name, handler in ((config.check_in, check_in), (config.check_out, check_out)):
            t = obj.lifecycle.transitions.get(name)
            if t is not None:
                params = tuple(actions.Param(p.name, p.type, p.label, p.required, p.to, definition=p) for p in t.params)
                yield actions.Action(obj.name, name, t.label, handler, params, bulk=False)


class Visit:
    """One check-in or check-out call on a record: the caller is its owner or one of its co-visitors."""

    def __init__(self, call: actions.ActionCall):
        self.call, self.platform, self.record = call, call.platform, call.record
        self.obj: ObjectDef = call.platform.metadata.objects[call.object]
        self.config: CheckInConfig = CHECK_IN.config_of(self.obj)
        self.user = call.access.user_id
        self.now = call.platform.clock.now()
        self.place = point(call.params["lat"], call.params["lng"])

    def role(self) -> str:
        """"owner" or "co_visitor"; 403 for anyone else (a manager reading the record does not visit)."""
        if str(self.record.get("owner")) == str(self.user):
            return "owner"
        field = self.config.co_visitors_field
        if field and str(self.user) in {str(u) for u in self.record.get(field) or ()}:
            return "co_visitor"
        raise Forbidden(Message("check_in.not_a_visitor", "only the owner and the co-visitors of {object} {id} check "
                                "in and out", object=lifecycles.said_object(self.obj, lower=True),
                                id=self.record["id"]))

    def distance(self, conn) -> float | None:
        """Metres from the place to the location of the record this one is about (None: it has none)."""
        target_id = self.record.get(self.config.lookup)
        if target_id is None:
            return None
        target_obj = self.obj.fields[self.config.lookup].to
        target = self.platform.records.get(target_obj, target_id, conn=conn)
        location = target.get(self.config.target_field)
        return None if location is None else round(distance_m(self.place, location), 1)

    def judge(self, distance: float | None) -> bool | None:
        """Whether a check-in at `distance` is valid; refuses it beyond the tolerance when so configured."""
        if distance is None:
            return None
        tolerance = self.config.tolerance_m
        target = self.platform.metadata.objects[self.obj.fields[self.config.lookup].to]
        if distance > tolerance and self.config.out_of_range == "refuse":
            message = Message("check_in.out_of_range", "you are {distance} m from the {target}, more than the "
                              "{tolerance} m allowed", distance=f"{distance:g}", tolerance=f"{tolerance:g}",
                              target=said_label(target.label.zh, target.label.en))
            raise ValidationFailed({"lat": [message], "lng": [message]}, message)
        accuracy = self.call.params.get("accuracy")
        return distance <= tolerance and (accuracy is None or float(accuracy) <= tolerance)

    def require_photo(self) -> None:
        if self.config.photo_required and not self.call.params.get("photo"):
            raise ValidationFailed({"photo": [REQUIRED]})


def check_in(call: actions.ActionCall) -> dict:
    """Check in: the owner moves the record (time, place, distance, validity); a co-visitor gets a co-visit row."""
    with call.platform.records.transaction() as conn:
        return _check_in(Visit(call), conn)


def _check_in(visit: Visit, conn) -> dict:
    role, config, obj = visit.role(), visit.config, visit.obj
    transition = _transition(obj, config.check_in)
    current = visit.platform.records.get(obj.name, visit.record["id"], conn=conn)
    if role == "owner":
        lifecycles.refuse(visit.call.access, obj, transition.name, current, visit.now)
    else:
        _refuse_state(obj, current, (*transition.sources, transition.to), transition.name)
    visit.require_photo()
    distance = visit.distance(conn)
    valid = visit.judge(distance)
    if role == "co_visitor":
        return _co_check_in(visit, conn, distance, valid)
    computed = {config.distance_field: distance, config.valid_field: valid}
    if config.accuracy_field is not None:
        accuracy = visit.call.params.get("accuracy")
        computed[config.accuracy_field] = None if accuracy is None else float(accuracy)
    if visit.call.params.get("photo"):
        computed.update(_photo(visit, conn))
    record = move(visit.platform, conn, obj, transition, current, _logged(visit.call.params), visit.user, visit.now,
                  current["version"], computed)
    return {"record": record}


def _photo(visit: Visit, conn) -> dict:
    """The check-in's photo as the record keeps it: as it came, or with `photo_original_field` a copy stamped with
    the time (the site's zone), the place (and the address given) and the user's name, the original beside it."""
    config, upload = visit.config, visit.call.params["photo"]
    if config.photo_original_field is None:
        return {config.photo_field: upload}
    user = visit.platform.records.get("user", visit.user, conn=conn)
    place = f"{visit.place['lat']:.6f}, {visit.place['lng']:.6f}"
    lines = [visit.now.astimezone(visit.platform.settings.zone).strftime("%Y-%m-%d %H:%M:%S %z"),
             f"{place} {visit.call.params.get('address') or ''}".strip(),
             user["display_name"]]
    try:
        content, content_type = watermark.stamped(base64.b64decode(upload["content_base64"]), lines)
    except watermark.NotAnImage:
        message = Message("check_in.photo_not_an_image", "the photo must be a JPEG, PNG or WebP image")
        raise ValidationFailed({"photo": [message]}, message) from None
    copy = {"filename": upload["filename"], "content_base64": base64.b64encode(content).decode(),
            "content_type": content_type}
    return {config.photo_field: copy, config.photo_original_field: upload}


def visiting(metadata, target: str) -> ObjectDef | None:
    """The first object whose check-ins are measured against records of `target` (a visit of an account)."""
    return next((obj for obj, config in CHECK_IN.configured(metadata) if config.enabled
                 and obj.fields.get(config.lookup) is not None and obj.fields[config.lookup].to == target), None)


def visit_now(platform, access, target: str, target_id: str, data: Any) -> dict:
    """An unplanned visit (临时拜访): a record of the object visiting `target`, planned now for `target_id` and
    checked in at once as the caller, in one transaction (a refused check-in leaves nothing behind)."""
    obj = visiting(platform.metadata, target)
    if obj is None:
        known = platform.metadata.objects.get(target)
        raise NotFound(Message("check_in.nothing_visits", "no object checks in at a {object}",
                               object=target if known is None else lifecycles.said_object(known, lower=True)))
    config: CheckInConfig = CHECK_IN.config_of(obj)
    access.require(obj.name, "create")
    service = actions.actions_service(platform)
    action = service.get(obj.name, config.check_in)
    access.require_action(obj.name, config.check_in, action.label)
    params = service.params(action, data)
    platform.records.get(target, target_id, where=access.scope(target, platform.schema[target].table))
    with platform.records.transaction() as conn:
        created = platform.records.within(access).create(obj.name, {
            config.lookup: target_id, config.planned_field: platform.clock.now()}, user=access.user_id, conn=conn)
        call = actions.ActionCall(platform, access, obj.name, created, params)
        return _check_in(Visit(call), conn)


def check_out(call: actions.ActionCall) -> dict:
    """Check out: the owner completes the record (time, place, duration) and posts its summary to the feed of the
    record it is about; a co-visitor closes their co-visit row (with their evaluation)."""
    visit = Visit(call)
    role, config, obj = visit.role(), visit.config, visit.obj
    transition = _transition(obj, config.check_out)
    with visit.platform.records.transaction() as conn:
        current = visit.platform.records.get(obj.name, visit.record["id"], conn=conn)
        if role == "co_visitor":
            return _co_check_out(visit, conn)
        lifecycles.refuse(call.access, obj, transition.name, current, visit.now)
        missing = missing_fields(transition, current)
        if missing:
            raise ValidationFailed(missing)
        checked_in = current.get(config.checked_in_field)
        minutes = None if checked_in is None else int((visit.now - checked_in) // timedelta(minutes=1))
        record = move(visit.platform, conn, obj, transition, current, _logged(call.params), visit.user, visit.now,
                      current["version"], {config.duration_field: minutes})
        _post_to_feed(visit, conn, record)
        return {"record": record}


def _logged(params: Mapping[str, Any]) -> dict:
    """The parameters as the history keeps them (a photo by its name, not its content)."""
    return {k: (v.get("filename") or v.get("name")) if isinstance(v, Mapping) else v for k, v in params.items()}


def _refuse_state(obj: ObjectDef, record: Mapping[str, Any], states: tuple, action: str) -> None:
    state = record.get(obj.lifecycle.field)
    if state not in states:
        raise Conflict(lifecycles.wrong_state(obj, record, action, [v for v in states if v]))


def _co_visit_select(visit: Visit, conn) -> dict | None:
    """The caller's co-visit row of this record, read in the transaction (None: none yet)."""
    config, platform = visit.config, visit.platform
    ot = platform.schema[config.co_visit_object]
    t = ot.table
    row_id = conn.execute(sa.select(t.c.id).where(ot.column(visit.obj.name) == int(visit.record["id"]),
                                                  ot.column("user") == int(visit.user))).scalar()
    return None if row_id is None else platform.records.get(config.co_visit_object, row_id, conn=conn)


def _co_check_in(visit: Visit, conn, distance: float | None, valid: bool | None) -> dict:
    config = visit.config
    if config.co_visit_object is None:
        raise Forbidden(Message("check_in.not_a_visitor", "only the owner and the co-visitors of {object} {id} check "
                                "in and out", object=lifecycles.said_object(visit.obj, lower=True),
                                id=visit.record["id"]))
    if _co_visit_select(visit, conn) is not None:
        raise Conflict(Message("check_in.co_visit_twice", "you have already checked in to {object} {id}",
                               object=lifecycles.said_object(visit.obj, lower=True), id=visit.record["id"]))
    row = visit.platform.records.create(config.co_visit_object, {
        visit.obj.name: visit.record["id"], "user": visit.user, "check_in_at": visit.now,
        "check_in_location": visit.place, "check_in_distance": distance, "check_in_valid": valid,
        "owner": visit.user}, user=visit.user, conn=conn, system=True)
    record = visit.platform.records.get(visit.obj.name, visit.record["id"], conn=conn)
    return {"record": record, config.co_visit_object: row}


def _co_check_out(visit: Visit, conn) -> dict:
    config = visit.config
    row = _co_visit_select(visit, conn) if config.co_visit_object else None
    if row is None:
        raise Conflict(Message("check_in.co_visit_not_in", "you have not checked in to {object} {id}",
                               object=lifecycles.said_object(visit.obj, lower=True), id=visit.record["id"]))
    if row.get("check_out_at") is not None:
        raise Conflict(Message("check_in.co_visit_out", "you have already checked out of {object} {id}",
                               object=lifecycles.said_object(visit.obj, lower=True), id=visit.record["id"]))
    values = {"check_out_at": visit.now, "check_out_location": visit.place}
    if visit.call.params.get("evaluation"):
        values["evaluation"] = visit.call.params["evaluation"]
    row = visit.platform.records.update(config.co_visit_object, row["id"], values, version=row["version"],
                                        user=visit.user, conn=conn, system=True)
    record = visit.platform.records.get(visit.obj.name, visit.record["id"], conn=conn)
    return {"record": record, config.co_visit_object: row}


def _post_to_feed(visit: Visit, conn, record: Mapping[str, Any]) -> None:
    """The completed record's summary (else its title) as a follow-up of the record it is about."""
    config = visit.config
    target = record.get(config.lookup)
    if config.feed_object is None or target is None:
        return
    content = record.get(config.summary_field) or record.get(visit.obj.title_field or "") or visit.obj.label.zh
    visit.platform.records.create(config.feed_object, {
        "kind": config.feed_kind, "content": content, "related_object": visit.obj.fields[config.lookup].to,
        "related_id": str(target), "followed_at": visit.now, "owner": record.get("owner")},
        user=visit.user, conn=conn, system=True)


# ------------------------------------------------------------------------------------------ hooks


def _refuse_completion_without_check_in(ctx: HookContext) -> None:
    """before_update: with `required`, the record reaches the check-out's state only checked in and out."""
    obj = ctx.records.metadata.objects[ctx.object]
    config: CheckInConfig = CHECK_IN.config_of(obj)
    done = obj.lifecycle.transitions[config.check_out].to if obj.lifecycle and config.check_out in \
        obj.lifecycle.transitions else None
    state = obj.lifecycle.field if obj.lifecycle else None
    if not config.required or done is None or ctx.after.get(state) != done or ctx.before.get(state) == done:
        return
    for name in (config.checked_in_field, config.checked_out_field):
        if ctx.after.get(name) is None:
            ctx.errors.setdefault(name, []).append(Message(
                "check_in.required", "a {object} is completed only by checking in and out",
                object=lifecycles.said_object(obj, lower=True)))


def _local_day(value: datetime, zone) -> date:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone).date()


def _planned_count(ctx: HookContext, obj: ObjectDef, config: CheckInConfig, owner: Any, day: date) -> int:
    """How many records (not in a `not_counted` state) `owner` has planned on `day`, the site's day."""
    zone = ctx.records.platform.settings.zone
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    ot = ctx.records.schema[obj.name]
    column = ot.column(config.planned_field)
    where = [ot.column("owner") == int(owner), column >= start, column < end]
    if config.not_counted and obj.lifecycle:
        state = ot.column(obj.lifecycle.field)
        where.append(sa.or_(state.is_(None), state.not_in(config.not_counted)))
    return ctx.conn.execute(sa.select(sa.func.count()).select_from(ot.table).where(*where)).scalar()


def _beyond_daily_cap(ctx: HookContext, records: list[dict], errors: list[dict]) -> None:
    """With `max_per_day`, an owner plans at most that many records (not cancelled) on one day: the records
    beyond it are refused (`beyond_max_per_day: refuse`) or kept with one warning per owner and day (`warn`)."""
    obj = ctx.records.metadata.objects[ctx.object]
    config: CheckInConfig = CHECK_IN.config_of(obj)
    if config.max_per_day is None:
        return
    zone = ctx.records.platform.settings.zone
    days: dict[tuple[str, date], list[int]] = {}
    for i, record in enumerate(records):
        planned, owner = record.get(config.planned_field), record.get("owner") or ctx.user
        state = record.get(obj.lifecycle.field) if obj.lifecycle else None
        if isinstance(planned, datetime) and owner is not None and state not in config.not_counted:
            days.setdefault((str(owner), _local_day(planned, zone)), []).append(i)
    for (owner, day), indexes in days.items():
        count = _planned_count(ctx, obj, config, owner, day)
        if count + len(indexes) <= config.max_per_day:
            continue
        if config.beyond_max_per_day == "warn":
            ctx.warnings.append(Message(
                "check_in.daily_cap_passed", "{day} will have {count} planned, more than the {limit} a day",
                count=count + len(indexes), day=day.isoformat(), limit=config.max_per_day))
            continue
        for i in indexes[max(config.max_per_day - count, 0):]:
            errors[i].setdefault(config.planned_field, []).append(Message(
                "check_in.daily_cap", "{count} {object} records are already planned on {day}; at most {limit} a day",
                count=count, object=lifecycles.said_object(obj, lower=True), day=day.isoformat(),
                limit=config.max_per_day))


CHECK_IN = Behavior(
    BEHAVIOR, SCHEMA, CheckInConfig, _needs, actions=_actions,
    hooks={"before_update": _refuse_completion_without_check_in,
           "before_create": lambda ctx: _beyond_daily_cap(ctx, [ctx.after], [ctx.errors]),
           "before_create_many": lambda ctx: _beyond_daily_cap(ctx, ctx.batch, ctx.batch_errors)},
    panels=("pages/_check_in.html",),
)


def register(registry) -> None:
    registry.behavior(CHECK_IN)
