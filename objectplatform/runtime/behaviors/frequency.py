"""The frequency behavior: how often a record must be visited (any records of another object pointing to it, in
counted states) per month or week, by the value of one of its picklists; the records below it this period, and
the values a rule condition names to remind their owners."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, ObjectDef

from ..clock import local_midnight
from ..errors import BadRequest, Message, NotFound, said_object
from ..records.service import parse_record_id
from .calendar import within_reach
from .registry import Behavior, FieldNeed, Need, ObjectNeed

BEHAVIOR = "frequency"


@dataclass(frozen=True)
class FrequencyConfig:
    """`behaviors: frequency:` of one object: the records that count (`object`, pointing here through `via`,
    dated by `date`, in the `counted` values of `state`), the picklist deciding how many are required (`by`),
    the `period` and the number `required` per period for each of its values (values not named require none)."""

    object: str
    via: str
    date: str
    by: str
    required: Mapping[str, int]
    period: str = "month"
    state: str | None = None
    counted: tuple[str, ...] = field(default=())


NAME = {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"}
SCHEMA = {
    "type": "object",
    "properties": {
        "object": NAME, "via": NAME, "date": NAME, "by": NAME, "state": NAME,
        "period": {"enum": ["month", "week"], "default": "month"},
        "required": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "integer", "minimum": 1}},
        "counted": {"type": "array", "items": NAME, "uniqueItems": True, "default": []},
    },
    "required": ["object", "via", "date", "by", "required"],
    "dependentRequired": {"counted": ["state"]},
    "additionalProperties": False,
}


def _needs(obj: ObjectDef, config: FrequencyConfig) -> Iterator[Need]:
    yield ObjectNeed(config.object, "object")
    yield FieldNeed(config.via, ("lookup", "master_detail"), "via", config.object, obj.name)
    yield FieldNeed(config.date, ("date", "datetime"), "date", config.object)
    if config.state is not None:
        yield FieldNeed(config.state, ("picklist",), "state", config.object, options=tuple(config.counted))
    yield FieldNeed(config.by, ("picklist",), "by", options=tuple(config.required))


def period_of(day: date, period: str) -> tuple[date, date]:
    """[start, end) of the month or the week (Monday first) holding `day`."""
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    return start, (start + timedelta(days=31)).replace(day=1)


def _bounds(platform, config: FrequencyConfig, start: date, end: date) -> tuple[Any, Any]:
    kind = platform.metadata.objects[config.object].fields[config.date].type
    if kind == "datetime":
        zone = platform.settings.zone
        return local_midnight(start, zone), local_midnight(end, zone)
    return start, end


def _counted(platform, config: FrequencyConfig, start: date, end: date) -> sa.ColumnElement[bool]:
    """The counted records' condition: in the period, in a counted state."""
    ct = platform.schema[config.object]
    low, high = _bounds(platform, config, start, end)
    column = ct.column(config.date)
    where = [column >= low, column < high]
    if config.state is not None and config.counted:
        where.append(ct.column(config.state).in_(config.counted))
    return sa.and_(*where)


def _required(ot, config: FrequencyConfig) -> sa.ColumnElement:
    return sa.case({value: sa.literal(n, sa.Integer()) for value, n in config.required.items()},
                   value=ot.column(config.by), else_=sa.literal(0, sa.Integer()))


def derived_sql(platform, obj: str, now: datetime) -> dict[str, sa.ColumnElement]:
    """What a rule condition over the object may name: `frequency.visited` (the counted records of the period
    holding `now`), `frequency.required` (by the record's `by` value; 0 when it names none) and
    `frequency.days_left` (whole days from today to the period's end)."""
    ot = platform.schema[obj]
    config: FrequencyConfig = FREQUENCY.config_of(ot.object)
    today = now.astimezone(platform.settings.zone).date()
    start, end = period_of(today, config.period)
    ct = platform.schema[config.object]
    visited = (sa.select(sa.func.count()).select_from(ct.table)
               .where(ct.column(config.via) == ot.table.c.id, _counted(platform, config, start, end))
               .scalar_subquery())
    return {"frequency.visited": visited, "frequency.required": _required(ot, config),
            "frequency.days_left": sa.literal((end - today).days, sa.Integer())}


FREQUENCY = Behavior(BEHAVIOR, SCHEMA, FrequencyConfig, _needs, derived=derived_sql, panels=("pages/frequency.html",))


def register(registry) -> None:
    registry.behavior(FREQUENCY)
    registry.page("frequency", endpoint="pages.frequency_page", label=Label("拜访频率", "visit frequency"),
                  shown=lambda metadata, access: any(access.can(config.object, "read")  # the records counted
                                                     for _, config in FREQUENCY.configured(metadata)),
                  of_object=lambda metadata, obj: FREQUENCY.declared_by(metadata.objects[obj]))


def period_query(args: Mapping[str, str], today: date, period: str) -> date:
    """The day whose period is asked for: `?day=YYYY-MM-DD`, `?month=YYYY-MM` (monthly) or today; 400 when bad."""
    try:
        if "day" in args:
            return within_reach(date.fromisoformat(args["day"]))
        if "month" in args and period == "month":
            year, month = (int(p) for p in args["month"].split("-"))
            return within_reach(date(year, month, 1))
    except ValueError:
        key = "day" if "day" in args else "month"
        raise BadRequest(Message("frequency.bad_period", "bad period: {field}", field=key),
                         {key: [Message("frequency.period", "must be a date as YYYY-MM-DD or a month as YYYY-MM")]}
                         ) from None
    return today


def compliance(platform, access, obj: str, day: date, owner: Any = None) -> dict:
    """The caller's records of `obj` visited less often than required in the period holding `day`, each with its
    `visited` and `required` counts, fewest visits first within each owner, and per owner their numbers: the
    counts come from one grouped query joined to the records, never a loop over them."""
    definition = platform.metadata.objects.get(obj)
    if definition is None or not FREQUENCY.declared_by(definition):
        raise NotFound(Message("frequency.none", "{object} has no visit frequency",
                               object=obj if definition is None else said_object(definition)))
    access.require(obj, "read")
    config: FrequencyConfig = FREQUENCY.config_of(definition)
    start, end = period_of(day, config.period)
    ot, ct = platform.schema[obj], platform.schema[config.object]
    via = ct.column(config.via)
    counts = (sa.select(via.label("target"), sa.func.count().label("visited")).select_from(ct.table)
              .where(_counted(platform, config, start, end)).group_by(via).subquery())
    t = ot.table
    visited, required = sa.func.coalesce(counts.c.visited, 0), _required(ot, config)
    where = [ot.column(config.by).in_(list(config.required)), visited < required]
    scope = access.scope(obj, t)
    if scope is not None:
        where.append(scope)
    if owner not in (None, ""):
        owner_id = parse_record_id(owner)
        if owner_id is None:
            message = Message("frequency.bad_owner", "owner must be a user's id, not {owner!r}", owner=str(owner))
            raise BadRequest(message, {"owner": [Message("frequency.owner_id", "must be a user's id")]})
        where.append(t.c.owner == owner_id)
    title = [ot.column(definition.title_field).label("title")] \
        if definition.title_field in ot.columns and len(ot.columns[definition.title_field]) == 1 else []
    below = (sa.select(t.c.id, t.c.owner, ot.column(config.by).label("by"), *title, visited.label("visited"),
                       required.label("required"))
             .select_from(t.outerjoin(counts, counts.c.target == t.c.id)).where(*where).subquery())
    with platform.engine.connect() as conn:
        rows = conn.execute(sa.select(below).order_by(below.c.owner, below.c.visited - below.c.required,
                                                      below.c.id)).mappings().all()
        owners = conn.execute(
            sa.select(below.c.owner, sa.func.count().label("records"), sa.func.sum(below.c.visited).label("visited"),
                      sa.func.sum(below.c.required).label("required"))
            .group_by(below.c.owner).order_by(below.c.owner)).mappings().all()
    return {
        "period": {"kind": config.period, "start": start.isoformat(), "end": end.isoformat()},
        "by": config.by,
        "items": [{"id": str(r["id"]), "title": r.get("title"), "owner": _id(r["owner"]), config.by: r["by"],
                   "visited": int(r["visited"]), "required": int(r["required"])} for r in rows],
        "owners": [{"owner": _id(r["owner"]), "records": int(r["records"]), "visited": int(r["visited"]),
                    "required": int(r["required"])} for r in owners],
    }


def _id(value: Any) -> str | None:
    return None if value is None else str(value)
