"""The route behavior: a user's records of one day (visits) as stops at the location of the record each is about,
put in the order that travels least (runtime/routing.py), saved as the day's route, reused on another day, and
exported as an iCalendar file.

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/route.py".)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, ObjectDef

from .. import actions, ics
from ..clock import local_midnight
from ..errors import BadRequest, Message, NotFound, ValidationFailed, no_record, said_object, said_records
from ..geo import LocatedThroughLookup, point
from ..routing import Plan, Roads, Stop, plan_in_order, plan_route
from ..validation import REQUIRED
from .registry import Behavior, FieldNeed, Need, ObjectNeed

BEHAVIOR = "route"
MAX_STOPS = 200
# PostgreSQL's transaction lock (with the user's id) taken before looking for the user's saved route of a day, so
# two saves at once cannot both find none and create two; SQLite's BEGIN IMMEDIATE already serializes writers
ROUTE_LOCK = 0x726F7574


@dataclass(frozen=True)
class RouteConfig(LocatedThroughLookup):
    """`behaviors: route:` of one object: the API path naming its routes, where each record is (`location_of`, a
    lookup then the target's geolocation field), when it is planned, which states are routed, which records keep a
    fixed time (a window of ± `window_minutes`), the user's start point, how travel is estimated, and the objects
    a saved route and its stops are kept in."""

    path: str
    location_of: str
    route_object: str
    stop_object: str
    planned_field: str = "planned_at"
    states: tuple[str, ...] = ()
    fixed_field: str | None = None
    window_minutes: int = 30
    home_field: str | None = None
    road_factor: float = 1.3
    speed_kmh: float = 30
    visit_minutes: int = 30
    departs_at: str = "08:30"
    time_limit_ms: int = 300
    copied: tuple[str, ...] = ()  # fields a reused route's new records take from the old ones
    reuse: str = "reuse"

    @property
    def roads(self) -> Roads:
        return Roads(self.road_factor, self.speed_kmh)


NAME = {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"}
SCHEMA = {
    "type": "object",
    "properties": {
        "path": NAME,
        "location_of": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$"},
        "route_object": NAME, "stop_object": NAME, "fixed_field": NAME, "home_field": NAME,
        "planned_field": {**NAME, "default": "planned_at"},
        "states": {"type": "array", "items": NAME, "uniqueItems": True, "default": []},
        "copied": {"type": "array", "items": NAME, "uniqueItems": True, "default": []},
        "window_minutes": {"type": "integer", "minimum": 0, "default": 30},
        "road_factor": {"type": "number", "minimum": 1, "maximum": 5, "default": 1.3},
        "speed_kmh": {"type": "number", "exclusiveMinimum": 0, "maximum": 200, "default": 30},
        "visit_minutes": {"type": "integer", "minimum": 0, "default": 30},
        "departs_at": {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$", "default": "08:30"},
        "time_limit_ms": {"type": "integer", "minimum": 10, "maximum": 10000, "default": 300},
        "reuse": {**NAME, "default": "reuse"},
    },
    "required": ["path", "location_of", "route_object", "stop_object"],
    "additionalProperties": False,
}
ROUTE_FIELDS = (("route_date", ("date",)), ("start_location", ("geolocation",)), ("total_km", ("number",)),
                ("total_minutes", ("integer",)))
STOP_FIELDS = (("position", ("integer",)), ("km", ("number",)), ("minutes", ("integer",)),
               ("arrive_at", ("datetime",)))


def _needs(obj: ObjectDef, config: RouteConfig) -> Iterator[Need]:
    yield FieldNeed(config.lookup, ("lookup", "master_detail"), "location_of")
    lookup = obj.fields.get(config.lookup)
    if lookup is not None and lookup.to is not None:
        yield FieldNeed(config.target_field, ("geolocation",), "location_of", lookup.to)
    yield FieldNeed(config.planned_field, ("datetime",), "planned_field")
    if config.fixed_field is not None:
        yield FieldNeed(config.fixed_field, ("boolean",), "fixed_field")
    if config.home_field is not None:
        yield FieldNeed(config.home_field, ("geolocation",), "home_field", "user")
    if config.states:
        yield FieldNeed(obj.lifecycle.field if obj.lifecycle else "status", ("picklist",), "states",
                        options=config.states)
    for index, name in enumerate(config.copied):
        yield FieldNeed(name, (), ("copied", index))
    yield ObjectNeed(config.route_object, "route_object")
    for name, types in ROUTE_FIELDS:
        yield FieldNeed(name, types, "route_object", config.route_object)
    yield ObjectNeed(config.stop_object, "stop_object")
    yield FieldNeed(config.route_object, ("master_detail",), "stop_object", config.stop_object, config.route_object)
    yield FieldNeed(obj.name, ("lookup",), "stop_object", config.stop_object, obj.name)
    if lookup is not None and lookup.to is not None:
        yield FieldNeed(config.lookup, ("lookup",), "stop_object", config.stop_object, lookup.to)
    for name, types in STOP_FIELDS:
        yield FieldNeed(name, types, "stop_object", config.stop_object)


def routed(metadata, path: str) -> tuple[ObjectDef, RouteConfig]:
    """The object whose routes the API path `path` names (404: none)."""
    for obj, config in ROUTE.configured(metadata):
        if config.path == path:
            return obj, config
    raise NotFound(Message("route.unknown_path", "nothing is routed under {path}", path=path))


def day_of(value: Any, field: str = "date") -> date:
    """A route's day from a "YYYY-MM-DD" string (422 naming `field` otherwise)."""
    if value in (None, ""):
        raise ValidationFailed({field: [REQUIRED]})
    try:
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:  # not a real date (2026-02-30): the same refusal as any other text below
        pass
    raise ValidationFailed({field: [Message("route.bad_date", "must be a date (YYYY-MM-DD)")]})


def routed_object(metadata, obj: str) -> RouteConfig:
    """The route configuration of `obj` (404: it declares no route behavior)."""
    definition = metadata.objects.get(obj)
    if definition is None or not ROUTE.declared_by(definition):
        raise NotFound(Message("route.not_routed", "{object} has no day route",
                               object=obj if definition is None else said_object(definition)))
    return ROUTE.config_of(definition)


# ------------------------------------------------------------------------------------------ planning


class DayRoute:
    """The route of one user's records of one day: read them, order them, save the order."""

    def __init__(self, platform, access, obj: ObjectDef, config: RouteConfig, day: date):
        self.platform, self.access, self.obj, self.config, self.day = platform, access, obj, config, day
        self.zone = platform.settings.zone
        self.departs = datetime.combine(day, time.fromisoformat(config.departs_at), self.zone)
        self.ot = platform.schema[obj.name]

    def records(self, conn, ids: Sequence[str] | None = None) -> list[dict]:
        """The caller's routed records of the day, in planned order; with `ids`, those (404: one is not the
        caller's; 422: one is not planned that day or not in a routed state)."""
        ot, config = self.ot, self.config
        mine = ot.column("owner") == int(self.access.user_id)
        if ids is not None:
            found = {r["id"]: r for r in self._list(conn, sa.and_(mine, ot.table.c.id.in_(_ids(ids))))}
            for one in ids:
                if str(one) not in found:
                    raise NotFound(no_record(self.obj, one))
            chosen = [found[str(one)] for one in dict.fromkeys(map(str, ids))]
            wrong = [r["id"] for r in chosen if not self._on_the_day(r)]
            if wrong:
                raise ValidationFailed({"visit_ids": [Message(
                    "route.not_that_day", "{object} {ids} is not planned on {day} or not open",
                    object=said_object(self.obj, lower=True), ids=", ".join(wrong), day=self.day.isoformat())]})
            return chosen
        column = ot.column(config.planned_field)
        start, end = local_midnight(self.day, self.zone), local_midnight(self.day + timedelta(days=1), self.zone)
        where = [mine, column >= start, column < end]
        if config.states and self.obj.lifecycle:
            where.append(ot.column(self.obj.lifecycle.field).in_(config.states))
        return self._list(conn, sa.and_(*where))

    def _list(self, conn, where) -> list[dict]:
        page = self.platform.records.list(self.obj.name, where=where, sort=self.config.planned_field,
                                          limit=MAX_STOPS, count=False, conn=conn)
        return page.items

    def _on_the_day(self, record: Mapping[str, Any]) -> bool:
        planned = record.get(self.config.planned_field)
        state = record.get(self.obj.lifecycle.field) if self.obj.lifecycle else None
        return (planned is not None and _aware(planned).astimezone(self.zone).date() == self.day
                and (not self.config.states or state in self.config.states))

    def stops(self, conn, records: Sequence[Mapping[str, Any]]) -> list[Stop]:
        """A stop per record at the location of the record it is about; 422 naming those without one."""
        config = self.config
        target_obj = self.obj.fields[config.lookup].to
        target_ids = {r[config.lookup] for r in records if r.get(config.lookup) is not None}
        targets = {t["id"]: t for t in self.platform.records.list(
            target_obj, where=self.platform.schema[target_obj].table.c.id.in_(_ids(target_ids)),
            limit=MAX_STOPS, count=False, conn=conn).items} if target_ids else {}
        stops, unplaced = [], []
        for r in records:
            location = (targets.get(str(r.get(config.lookup))) or {}).get(config.target_field)
            if location is None:
                unplaced.append(r["id"])
                continue
            stops.append(Stop(r["id"], location, config.visit_minutes, self._window(r)))
        if unplaced:
            raise ValidationFailed({"visit_ids": [Message(
                "route.no_location", "{object} {ids}: the {target} has no location to route to",
                object=said_object(self.obj, lower=True), ids=", ".join(unplaced),
                target=said_object(self.platform.metadata.objects[target_obj], lower=True))]})
        return stops

    def _window(self, record: Mapping[str, Any]) -> tuple[float, float] | None:
        """A fixed-time record's arrival window, in minutes after the route departs."""
        if not self.config.fixed_field or not record.get(self.config.fixed_field):
            return None
        at = (_aware(record[self.config.planned_field]) - self.departs) / timedelta(minutes=1)
        margin = self.config.window_minutes
        return max(0.0, at - margin), max(0.0, at + margin)

    def start(self, given: Mapping[str, Any] | None) -> dict | None:
        """The start point given, else the user's home location (`home_field`), else none (the first stop)."""
        if given is not None:
            return given
        if self.config.home_field is None:
            return None
        return self.platform.records.get("user", self.access.user_id).get(self.config.home_field)

    def arrivals(self, plan: Plan) -> list[datetime]:
        return [(self.departs + timedelta(minutes=m)).astimezone(UTC) for m in plan.arrivals]

    def saved(self, conn) -> dict:
        """The day's saved route of the caller ({} when none)."""
        rt = self.platform.schema[self.config.route_object]
        found = conn.execute(sa.select(rt.table.c.id).where(
            rt.column("owner") == int(self.access.user_id), rt.column("route_date") == self.day)).scalar()
        return {} if found is None else self.platform.records.get(self.config.route_object, found, conn=conn)

    def save(self, conn, plan: Plan, start: Mapping[str, Any] | None, records: Mapping[str, Mapping]) -> dict:
        """The day's route (one per user and day: saving again replaces its stops, also when two saves of the day
        run at once: the second waits for the first and replaces what it saved)."""
        config = self.config
        rt = self.platform.schema[config.route_object]
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ROUTE_LOCK, int(self.access.user_id))))
        existing = conn.execute(sa.select(rt.table.c.id, rt.table.c.version).where(
            rt.column("owner") == int(self.access.user_id), rt.column("route_date") == self.day)).first()
        legs = {leg.to: leg for leg in plan.legs}
        lines = [{"position": n, self.obj.name: stop, config.lookup: records[stop].get(config.lookup),
                  "km": legs[stop].km if stop in legs else 0, "minutes": legs[stop].minutes if stop in legs else 0,
                  "arrive_at": at} for n, (stop, at) in enumerate(zip(plan.stops, self.arrivals(plan), strict=True), 1)]
        values = {"route_date": self.day, "start_location": start, "total_km": plan.total_km,
                  "total_minutes": plan.total_minutes, config.stop_object: lines}
        records_service = self.platform.records
        if existing is None:
            return records_service.create(config.route_object, {**values, "owner": self.access.user_id},
                                          user=self.access.user_id, conn=conn, system=True)
        return records_service.update(config.route_object, existing.id, values, version=existing.version,
                                      user=self.access.user_id, conn=conn, system=True)


def plan_day(platform, access, path: str, data: Any) -> dict:
    """POST {path}/route: the caller's records of `date` (or `visit_ids` of them) in the order that travels least
    from `start` (else their home location, else the first stop), with each leg and the totals; saved as the day's
    route unless `save` is false."""
    obj, config = routed(platform.metadata, path)
    access.require(obj.name, "read")
    if not isinstance(data, Mapping):
        raise BadRequest(Message("request.not_an_object", "the body must be a JSON object"))
    unknown = sorted(set(data) - {"date", "start", "visit_ids", "save"})
    if unknown:
        raise ValidationFailed({name: [Message("action.unknown_param", "unknown parameter")] for name in unknown})
    day = day_of(data.get("date"))
    start = _start(data.get("start"))
    ids = data.get("visit_ids")
    if ids is not None and (not isinstance(ids, list) or not ids):
        raise ValidationFailed({"visit_ids": [Message("value.not_id_list", "must be a list of record ids")]})
    save = data.get("save", True)
    if not isinstance(save, bool):
        raise ValidationFailed({"save": [Message("route.not_a_boolean", "must be true or false")]})
    route = DayRoute(platform, access, obj, config, day)
    with platform.records.transaction() as conn:
        records = route.records(conn, ids)
        if not records:
            raise ValidationFailed({"date": [Message("route.no_visits", "you have no {object} planned on {day} to "
                                                     "route", object=said_records(obj),
                                                     day=day.isoformat())]})
        start = route.start(start)
        plan = plan_route(start, route.stops(conn, records), config.roads, config.time_limit_ms)
        saved = route.save(conn, plan, start, {r["id"]: r for r in records}) if save else None
    return {"stops": list(plan.stops), "legs": [_leg(leg) for leg in plan.legs], "total_km": plan.total_km,
            "total_minutes": plan.total_minutes, "arrivals": route.arrivals(plan),
            "start": start, "route": None if saved is None else saved["id"]}


def _leg(leg) -> dict:
    return {"from": leg.from_, "to": leg.to, "km": leg.km, "minutes": leg.minutes}


def _start(value: Any) -> dict | None:
    if value is None:
        return None
    lat, lng = (value.get(k) if isinstance(value, Mapping) else None for k in ("lat", "lng"))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lng)) \
            or not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise ValidationFailed({"start": [Message("route.bad_start", "must be a point: lat from -90 to 90, lng "
                                                  "from -180 to 180")]})
    return point(lat, lng)


def _ids(ids) -> list[int]:
    return [int(i) for i in ids if str(i).isdigit()]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def saved_route(platform, access, path: str, day: date) -> dict:
    """The caller's saved route of `day` with its stops ({} when none)."""
    obj, config = routed(platform.metadata, path)
    with platform.records.transaction() as conn:
        return DayRoute(platform, access, obj, config, day).saved(conn)


# ------------------------------------------------------------------------------------------ calendar


def day_calendar(platform, access, path: str, value: Any) -> str:
    """GET {path}/plan.ics: the caller's records of the day as iCalendar events, in the day's saved route order
    (else planned order), each at its planned time for the visit's minutes, named and placed by its target."""
    obj, config = routed(platform.metadata, path)
    access.require(obj.name, "read")
    day = day_of(value)
    route = DayRoute(platform, access, obj, config, day)
    target_obj = platform.metadata.objects[obj.fields[config.lookup].to]
    with platform.records.transaction() as conn:
        records = route.records(conn)
        order = {line[obj.name]: line["position"] for line in route.saved(conn).get(config.stop_object, [])}
        records.sort(key=lambda r: order.get(r["id"], len(order) + 1))
        ids = _ids({r[config.lookup] for r in records if r.get(config.lookup) is not None})
        targets = {t["id"]: t for t in platform.records.list(
            target_obj.name, where=platform.schema[target_obj.name].table.c.id.in_(ids), limit=MAX_STOPS,
            count=False, conn=conn).items} if ids else {}
    events = []
    for r in records:
        target = targets.get(str(r.get(config.lookup))) or {}
        name = str(target.get(target_obj.title_field or "") or "")
        title = str(r.get(obj.title_field or "") or "")
        where = target.get(config.target_field)
        start = _aware(r[config.planned_field])
        events.append(ics.Event(
            f"{obj.name}-{r['id']}@objectplatform", start, start + timedelta(minutes=config.visit_minutes),
            " · ".join(filter(None, (name, title))) or f"{obj.name} {r['id']}",
            location=name and where and f"{name} ({where['lat']:.6f}, {where['lng']:.6f})" or name or None,
            geo=(where["lat"], where["lng"]) if where else None))
    return ics.calendar(events, platform.clock.now())


# ------------------------------------------------------------------------------------------ reuse


def _actions(metadata) -> Iterator[actions.Action]:
    """`reuse` on the route object of every object declaring the behavior."""
    for _obj, config in ROUTE.configured(metadata):
        if config.route_object in metadata.objects:
            yield actions.Action(config.route_object, config.reuse, Label("重用拜访路线", "Reuse on another day"),
                                 reuse, (actions.Param("date", "date", Label("拜访日期", "Date"), required=True),),
                                 bulk=False)


def reuse(call: actions.ActionCall) -> dict:
    """重用拜访路线: new records for the same targets in the same order on `date` (each planned at its stop's
    arrival time, taking the `copied` fields of the old record), saved as that day's route."""
    platform, access = call.platform, call.access
    obj, config = next((o, c) for o, c in ROUTE.configured(platform.metadata) if c.route_object == call.object)
    access.require(obj.name, "create")
    day = call.params["date"]
    route = DayRoute(platform, access, obj, config, day)
    lines = sorted(call.record.get(config.stop_object) or [], key=lambda line: line["position"])
    with platform.records.transaction() as conn:
        created = {}
        for line in lines:
            old = _old(platform, obj, line.get(obj.name), conn)
            at = _aware(line["arrive_at"]).astimezone(route.zone).time()
            values = {name: old[name] for name in config.copied if old.get(name) not in (None, "", [])}
            values.update({config.lookup: line[config.lookup],
                           config.planned_field: datetime.combine(day, at, route.zone).astimezone(UTC)})
            record = platform.records.within(access).create(obj.name, values, user=access.user_id, conn=conn)
            created[record["id"]] = record
        start = call.record.get("start_location")
        plan = plan_in_order(start, route.stops(conn, list(created.values())), config.roads)
        saved = route.save(conn, plan, start, created)
    return {"record": saved, obj.name: list(created)}


def _old(platform, obj: ObjectDef, record_id: Any, conn) -> dict:
    """The record a stop was made for ({} when it is gone)."""
    if record_id is None:
        return {}
    try:
        return platform.records.get(obj.name, record_id, conn=conn)
    except NotFound:
        return {}


ROUTE = Behavior(BEHAVIOR, SCHEMA, RouteConfig, _needs, actions=_actions)


def register(registry) -> None:
    registry.behavior(ROUTE)
    registry.page("route", endpoint="pages.day_route", label=Label("今日路线", "day route"),
                  of_object=lambda metadata, obj: ROUTE.declared_by(metadata.objects[obj]))
