"""Check-in anomalies (异常拜访) of an object with the check_in behavior: the records planned in a period that were
checked in out of range, checked out sooner than `min_minutes`, missed (`missed_state`), checked in on an
earlier day and never checked out, done without a required item of their checklist, reached faster than
`max_speed_kmh`, located less precisely than the tolerance, or checked in from one spot for targets far apart;
each with its check-in point and its target's location, for the map. And the day's mileage per owner from the
check-in sequence.

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/anomalies.py".)"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, ObjectDef

from ..clock import local_midnight
from ..errors import BadRequest, Message, NotFound, said_object
from ..geo import distance_m, point
from ..records.service import parse_record_id
from ..sales_processes import department_path
from .check_in import CHECK_IN, CheckInConfig
from .checklist import CHECKLIST, ChecklistConfig

KINDS = ("out_of_range", "too_short", "missed", "no_check_out", "missing_actions", "too_fast", "poor_accuracy",
         "same_spot")
MAX_DAYS = 93  # a quarter: the page and the API list one period at a time
LIMIT = 500


def _conditions(platform, access, obj: str, config: CheckInConfig, today: date, start: date,
                end: date) -> dict[str, sa.ColumnElement[bool]]:
    """Each kind of anomaly the settings define, as a condition on the object's table: out of range, too short
    (`min_minutes`), missed (`missed_state`), never checked out, done without a required action of its checklist,
    reached faster than `max_speed_kmh` from the owner's check-in before, located less precisely than the
    tolerance (`accuracy_field`) and checked in from the spot of another check-in for a target far apart
    (`same_spot_m`)."""
    ot = platform.schema[obj]
    definition = platform.metadata.objects[obj]
    checked_in, checked_out = ot.column(config.checked_in_field), ot.column(config.checked_out_field)
    kinds = {"out_of_range": ot.column(config.valid_field).is_(False)}
    if config.min_minutes is not None:
        kinds["too_short"] = sa.and_(checked_out.is_not(None), ot.column(config.duration_field) < config.min_minutes)
    if config.missed_state is not None and definition.lifecycle is not None:
        kinds["missed"] = ot.column(definition.lifecycle.field) == config.missed_state
    kinds["no_check_out"] = sa.and_(checked_in.is_not(None), checked_out.is_(None),
                                    checked_in < local_midnight(today, platform.settings.zone))
    if CHECKLIST.declared_by(definition) and definition.lifecycle is not None:
        kinds["missing_actions"] = _missing_actions(platform, definition)
    located = _location_field(definition, config)
    if config.max_speed_kmh is not None and located is not None:
        kinds["too_fast"] = _too_fast(platform, access, definition, config, located, start, end)
    if config.accuracy_field is not None:
        kinds["poor_accuracy"] = ot.column(config.accuracy_field) > config.tolerance_m
    if config.same_spot_m is not None and located is not None:
        kinds["same_spot"] = _same_spot(platform, access, definition, config, located, start, end)
    return kinds


def _missing_actions(platform, obj: ObjectDef) -> sa.ColumnElement[bool]:
    """Records past a transition their checklist needs its required items `before`, without a record of one of
    the required items their owner's department is offered (an item made required, or offered, afterwards)."""
    config: ChecklistConfig = CHECKLIST.config_of(obj)
    ot = platform.schema[obj.name]
    done = [obj.lifecycle.transitions[name].to for name in config.before if name in obj.lifecycle.transitions]
    required = [i for i in config.listed(obj) if i.required]
    paths = {}
    if any(item.departments for item in required):
        with platform.engine.connect() as conn:
            paths = _department_paths(conn, platform.schema)
    missing = []
    for item in required:
        it = platform.schema[item.object]
        none_filled = ~sa.exists().where(it.column(item.via) == ot.table.c.id)
        if item.departments:
            offered_to = sorted(user for user, path in paths.items() if item.offered_to(path))
            none_filled = sa.and_(ot.column(config.department_of).in_(offered_to), none_filled)
        missing.append(none_filled)
    if not done or not missing:
        return sa.false()
    return sa.and_(ot.column(obj.lifecycle.field).in_(done), sa.or_(*missing))


def _department_paths(conn: sa.Connection, schema) -> dict[int, list[str]]:
    """{user id: the names of their department and of each one above it, nearest first}."""
    users = schema["user"]
    rows = conn.execute(sa.select(users.table.c.id, users.column("department"))).all()
    paths = {department: department_path(conn, schema, department) for department in {d for _, d in rows}}
    return {user: paths[department] for user, department in rows}


def _too_fast(platform, access, obj: ObjectDef, config: CheckInConfig, located: str, start: date,
              end: date) -> sa.ColumnElement[bool]:
    """The check-ins of the period (the caller's records) reached from the same owner's check-in before it faster
    than `max_speed_kmh` over the great circle (or at the same moment, more than the tolerance away)."""
    flagged, before = [], {}
    for id_, owner, _, at, *place in _check_ins(platform, access, obj, config, located, start, end):
        here = point(*place)
        if owner in before:
            then, there = before[owner]
            metres, hours = distance_m(there, here), (at - then).total_seconds() / 3600
            if metres / 1000 > config.max_speed_kmh * hours and metres > config.tolerance_m:
                flagged.append(id_)
        before[owner] = (at, here)
    return platform.schema[obj.name].table.c.id.in_(flagged) if flagged else sa.false()


def _check_ins(platform, access, obj: ObjectDef, config: CheckInConfig, located: str, start: date, end: date,
               *columns: sa.ColumnElement) -> list[sa.Row]:
    """(id, owner, local day, checked in at, lat, lng, *columns) of the check-ins from `start` to `end` (local
    days, both included) of the caller's records, by owner then time."""
    ot = platform.schema[obj.name]
    t = ot.table
    zone = platform.settings.zone
    checked_in = ot.column(config.checked_in_field)
    lat, lng = (t.c[c] for c in ot.columns[located])
    where = [checked_in >= local_midnight(start, zone), checked_in < local_midnight(end + timedelta(days=1), zone),
             lat.is_not(None)]
    if (scope := access.scope(obj.name, t)) is not None:
        where.append(scope)
    stmt = sa.select(t.c.id, t.c.owner, checked_in, lat, lng, *columns).where(*where)
    with platform.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(t.c.owner, checked_in, t.c.id)).all()
    return [(id_, owner, at.replace(tzinfo=UTC).astimezone(zone).date(), at, *rest) for id_, owner, at, *rest in rows]


def _same_spot(platform, access, obj: ObjectDef, config: CheckInConfig, located: str, start: date,
               end: date) -> sa.ColumnElement[bool]:
    """The check-ins of the period (the caller's records) within `same_spot_m` of another check-in of the same
    owner on the same day whose target lies more than `same_spot_apart_m` from theirs (虚假打卡: one spot, customers
    far apart); both are flagged."""
    ot = platform.schema[obj.name]
    tt = platform.schema[obj.fields[config.lookup].to]
    target = tt.table.alias("target")
    target_lat, target_lng = (target.c[c] for c in tt.columns[config.target_field])
    located_target = (sa.select(target_lat).where(target.c.id == ot.column(config.lookup)).scalar_subquery(),
                      sa.select(target_lng).where(target.c.id == ot.column(config.lookup)).scalar_subquery())
    days: dict[tuple, list[tuple]] = {}
    for id_, owner, day, _, lat, lng, t_lat, t_lng in _check_ins(platform, access, obj, config, located, start,
                                                                  end, *located_target):
        if t_lat is not None:
            days.setdefault((owner, day), []).append((id_, point(lat, lng), point(t_lat, t_lng)))
    flagged = set()
    for check_ins in days.values():
        for i, (a, here, a_target) in enumerate(check_ins):
            for b, there, b_target in check_ins[i + 1:]:
                if distance_m(here, there) <= config.same_spot_m \
                        and distance_m(a_target, b_target) > config.same_spot_apart_m:
                    flagged |= {a, b}
    return ot.table.c.id.in_(sorted(flagged)) if flagged else sa.false()


def mileage(platform, access, obj: str, start: date, end: date, owner: Any = None) -> dict:
    """The day's mileage per owner (for travel expenses): the great-circle distances between an owner's consecutive
    check-ins of each local day from `start` to `end` of the caller's records (only `owner`'s), in km, and times
    the settings' `road_factor`; by owner then day."""
    definition = platform.metadata.objects.get(obj)
    if definition is None or not CHECK_IN.declared_by(definition):
        raise NotFound(Message("anomalies.none", "{object} has no check-in",
                               object=obj if definition is None else said_object(definition)))
    access.require(obj, "read")
    config: CheckInConfig = CHECK_IN.config_of(definition)
    located = _location_field(definition, config)
    wanted = None
    if owner not in (None, ""):
        wanted = parse_record_id(owner)
        if wanted is None:
            raise BadRequest(Message("anomalies.bad_id", "{field} must be an id, not {value!r}", field="owner",
                                     value=str(owner)), {"owner": [Message("anomalies.id", "must be an id")]})
    days: dict[tuple, list[dict]] = {}
    rows = [] if located is None else _check_ins(platform, access, definition, config, located, start, end)
    for _, by, day, _, lat, lng in rows:
        if wanted is None or by == wanted:
            days.setdefault((by, day), []).append(point(lat, lng))
    items = []
    for (by, day), places in days.items():
        metres = sum(distance_m(a, b) for a, b in itertools.pairwise(places))
        items.append({"owner": None if by is None else str(by), "day": day.isoformat(), "check_ins": len(places),
                      "km": round(metres / 1000, 2), "road_km": round(metres * config.road_factor / 1000, 2)})
    return {"period": {"start": start.isoformat(), "end": end.isoformat()}, "road_factor": config.road_factor,
            "items": items, "km": round(sum(i["km"] for i in items), 2),
            "road_km": round(sum(i["road_km"] for i in items), 2)}


DEFAULT_DAYS = 30


def period_query(args, today: date) -> tuple[date, date]:
    """(first, last) days from `?start=` and `?end=` (YYYY-MM-DD, both included; default the last DEFAULT_DAYS days
    to today: on the first of a month "this month" would be one day); 400 naming a bad one, a last day before the
    first or a period longer than a quarter."""
    errors: dict[str, list[Message]] = {}
    days = {}
    for key, default in (("start", today - timedelta(days=DEFAULT_DAYS - 1)), ("end", today)):
        raw = args.get(key) or ""
        try:
            days[key] = date.fromisoformat(raw) if raw else default
        except ValueError:
            errors[key] = [Message("anomalies.date", "must be a date as YYYY-MM-DD")]
    if not errors and not timedelta(0) <= days["end"] - days["start"] < timedelta(days=MAX_DAYS):
        errors["end"] = [Message("anomalies.range", "must be on or after start and within {days} days of it",
                                 days=MAX_DAYS)]
    if errors:
        raise BadRequest(Message("anomalies.bad_period", "bad period: {fields}", fields=", ".join(sorted(errors))),
                         errors)
    return days["start"], days["end"]


def anomalies(platform, access, obj: str, start: date, end: date, owner: Any = None, kind: str | None = None,
              record: str | None = None, every: bool = False) -> dict:
    """The caller's records of `obj` planned from `start` to `end` (local days, both included) showing an anomaly
    (or only `kind`; only `record`; `every`: with or without one), latest first, at most 500, with how many of
    each kind, in one query joined to the targets' locations (the target's only where the caller may read it)."""
    definition = platform.metadata.objects.get(obj)
    if definition is None or not CHECK_IN.declared_by(definition):
        raise NotFound(Message("anomalies.none", "{object} has no check-in",
                               object=obj if definition is None else said_object(definition)))
    access.require(obj, "read")
    config: CheckInConfig = CHECK_IN.config_of(definition)
    today = platform.local_now().date()
    kinds = _conditions(platform, access, obj, config, today, start, end)
    if kind not in (None, "") and kind not in kinds:
        raise BadRequest(Message("anomalies.bad_kind", "kind must be one of {kinds}", kinds=", ".join(kinds)),
                         {"kind": [Message("anomalies.unknown_kind", "unknown kind {kind!r}", kind=kind)]})
    ot = platform.schema[obj]
    t = ot.table
    zone = platform.settings.zone
    planned = ot.column(config.planned_field)
    where = [planned >= local_midnight(start, zone), planned < local_midnight(end + timedelta(days=1), zone),
             *([] if every else [kinds[kind] if kind else sa.or_(*kinds.values())])]
    for name, value in (("owner", owner), ("record", record)):
        if value in (None, ""):
            continue
        number = parse_record_id(value)
        if number is None:
            raise BadRequest(Message("anomalies.bad_id", "{field} must be an id, not {value!r}", field=name,
                                     value=str(value)), {name: [Message("anomalies.id", "must be an id")]})
        where.append((t.c.owner if name == "owner" else t.c.id) == number)
    scope = access.scope(obj, t)
    if scope is not None:
        where.append(scope)
    target_obj = definition.fields[config.lookup].to
    tt = platform.schema[target_obj]
    target = tt.table.alias("target")
    on = target.c.id == ot.column(config.lookup)
    if (target_scope := access.scope(target_obj, target)) is not None:
        on = sa.and_(on, target_scope)
    located = _location_field(definition, config)
    check_in_lat, check_in_lng = (t.c[c] for c in ot.columns[located]) if located else (sa.null(), sa.null())
    target_lat, target_lng = (target.c[c] for c in tt.columns[config.target_field])
    target_definition = platform.metadata.objects[target_obj]
    title = ot.column(definition.title_field) if definition.title_field in ot.columns else t.c.id
    target_title = target.c[tt.columns[target_definition.title_field][0]] \
        if target_definition.title_field in tt.columns else target.c.id
    flags = [sa.case((condition, 1), else_=0).label(name) for name, condition in kinds.items()]
    stmt = (sa.select(t.c.id, t.c.owner, title.label("title"), planned.label("planned"),
                      ot.column(config.checked_in_field).label("checked_in"),
                      ot.column(config.checked_out_field).label("checked_out"),
                      ot.column(config.distance_field).label("distance"),
                      ot.column(config.duration_field).label("minutes"), check_in_lat.label("lat"),
                      check_in_lng.label("lng"), ot.column(config.lookup).label("target"),
                      target_title.label("target_title"), target_lat.label("target_lat"),
                      target_lng.label("target_lng"), *flags)
            .select_from(t.outerjoin(target, on)).where(*where))
    listed = stmt.subquery()
    with platform.engine.connect() as conn:
        rows = conn.execute(sa.select(listed).order_by(listed.c.planned.desc(), listed.c.id.desc())
                            .limit(LIMIT)).mappings().all()
        totals = conn.execute(sa.select(sa.func.count(), *(sa.func.coalesce(sa.func.sum(listed.c[name]), 0)
                                                           for name in kinds)).select_from(listed)).one()
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "tolerance_m": config.tolerance_m, "min_minutes": config.min_minutes, "max_speed_kmh": config.max_speed_kmh,
        "same_spot_m": config.same_spot_m, "same_spot_apart_m": config.same_spot_apart_m, "kinds": list(kinds),
        "total": int(totals[0]),
        "counts": {name: int(n) for name, n in zip(kinds, totals[1:], strict=True)},
        "items": [_item(row, kinds) for row in rows],
    }


def _location_field(definition, config: CheckInConfig) -> str | None:
    """Where the check-in keeps its point: the first geolocation field its transition sets (None: nowhere)."""
    transition = definition.lifecycle.transitions[config.check_in]
    return next((name for name in transition.set if definition.fields.get(name) is not None
                 and definition.fields[name].type == "geolocation"), None)


def _stamp(value: datetime | None) -> str | None:
    """A stored (naive UTC) date-time as ISO text with its offset."""
    return None if value is None else value.replace(tzinfo=UTC).isoformat()


def _item(row, kinds) -> dict:
    return {
        "id": str(row["id"]), "title": row["title"], "owner": None if row["owner"] is None else str(row["owner"]),
        "planned_at": _stamp(row["planned"]), "check_in_at": _stamp(row["checked_in"]),
        "check_out_at": _stamp(row["checked_out"]),
        "distance_m": None if row["distance"] is None else float(row["distance"]),
        "duration_minutes": row["minutes"], "kinds": [name for name in kinds if row[name]],
        "check_in": None if row["lat"] is None else point(row["lat"], row["lng"]),
        "target": None if row["target"] is None else str(row["target"]), "target_title": row["target_title"],
        "target_location": None if row["target_lat"] is None else point(row["target_lat"], row["target_lng"]),
    }


def register(registry) -> None:
    registry.page("anomalies", endpoint="pages.anomalies_page", label=Label("异常拜访", "visit anomalies"),
                  shown=lambda metadata, access: any(access.can(obj.name, "read")
                                                     for obj, _ in CHECK_IN.configured(metadata)),
                  of_object=lambda metadata, obj: CHECK_IN.declared_by(metadata.objects[obj]))
