"""The calendar behavior: an object's records shown by a date or date-time field on each person's calendar (its
owner's and those named in its attendee fields), and planned in one go for several records of another object."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, ObjectDef

from ..clock import local_midnight
from ..errors import BadRequest, Message, NotFound, ValidationFailed, said_object
from ..records.service import parse_record_id
from ..validation import REQUIRED
from .registry import Behavior, FieldNeed, Need

BEHAVIOR = "calendar"
MAX_DAYS = 42  # a month view's six weeks: the longest range one calendar request reads
MAX_PLANNED = 200  # records one planning request makes


@dataclass(frozen=True)
class CalendarConfig:
    """`behaviors: calendar:` of one object: the field placing a record on a day (`date`), the one naming it
    (`title`), the picklist shown as its badge (`state`), the multi-user fields whose users see it on their
    calendar beside its owner (`attendees`), and the lookup whose records are planned for in one go (`plan_for`)."""

    date: str
    title: str
    state: str | None = None
    attendees: tuple[str, ...] = ()
    plan_for: str | None = None


NAME = {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"}
SCHEMA = {
    "type": "object",
    "properties": {
        "date": NAME, "title": NAME, "state": NAME, "plan_for": NAME,
        "attendees": {"type": "array", "items": NAME, "uniqueItems": True, "default": []},
    },
    "required": ["date", "title"],
    "additionalProperties": False,
}


def _needs(obj: ObjectDef, config: CalendarConfig) -> Iterator[Need]:
    yield FieldNeed(config.date, ("date", "datetime"), "date")
    yield FieldNeed(config.title, (), "title")
    if config.state is not None:
        yield FieldNeed(config.state, ("picklist",), "state")
    for i, name in enumerate(config.attendees):
        yield FieldNeed(name, ("multi_user", "user"), ("attendees", i))
    if config.plan_for is not None:
        yield FieldNeed(config.plan_for, ("lookup",), "plan_for")


CALENDAR = Behavior(BEHAVIOR, SCHEMA, CalendarConfig, _needs, panels=("pages/calendar.html",))


def register(registry) -> None:
    registry.behavior(CALENDAR)
    registry.page("calendar", endpoint="pages.calendar_page", label=Label("日历", "calendar"),
                  of_object=lambda metadata, obj: CALENDAR.declared_by(metadata.objects[obj]))


def calendar_object(metadata, obj: str) -> tuple[ObjectDef, CalendarConfig]:
    """`obj` and its calendar; 404 when it has none."""
    definition = metadata.objects.get(obj)
    if definition is None or not CALENDAR.declared_by(definition):
        raise NotFound(Message("calendar.none", "{object} has no calendar",
                               object=obj if definition is None else said_object(definition)))
    return definition, CALENDAR.config_of(definition)


def planned_by(metadata, target: str) -> list[tuple[ObjectDef, CalendarConfig]]:
    """The objects with a calendar that plans records for records of `target` (visits for accounts)."""
    return [(obj, config) for obj, config in CALENDAR.configured(metadata)
            if config.plan_for and obj.fields[config.plan_for].to == target]


# ------------------------------------------------------------------------------------------ reading


def day_range(args: Mapping[str, str], today: date) -> tuple[date, date]:
    """[start, end) from `?month=YYYY-MM` or `?start=YYYY-MM-DD&end=YYYY-MM-DD` (end excluded; this month when
    neither is given); 400 naming each bad parameter."""
    errors: dict[str, list[str]] = {}
    if "month" in args:
        try:
            year, month = (int(p) for p in args["month"].split("-"))
            start = within_reach(date(year, month, 1))
            return start, (start + timedelta(days=31)).replace(day=1)
        except ValueError:
            raise BadRequest(Message("calendar.bad_range", "bad calendar range: {fields}", fields="month"),
                             {"month": [Message("calendar.month", "must be a month as YYYY-MM")]}) from None
    if "start" not in args and "end" not in args:
        start = today.replace(day=1)
        return start, (start + timedelta(days=31)).replace(day=1)
    days = {}
    for name in ("start", "end"):
        try:
            days[name] = within_reach(date.fromisoformat(args.get(name, "")))
        except ValueError:
            errors[name] = [Message("calendar.day", "must be a date as YYYY-MM-DD")]
    if not errors and not 0 < (days["end"] - days["start"]).days <= MAX_DAYS:
        errors["end"] = [Message("calendar.span", "must be 1 to {days} days after start", days=MAX_DAYS)]
    if errors:
        fields = ", ".join(sorted(errors))
        raise BadRequest(Message("calendar.bad_range", "bad calendar range: {fields}", fields=fields), errors)
    return days["start"], days["end"]


def within_reach(day: date) -> date:
    """`day`, when a calendar can show it with the weeks around it in any time zone (years 2 to 9998); else a
    ValueError, as for a malformed date."""
    if not date(2, 1, 1) <= day <= date(9998, 12, 31):
        raise ValueError(day)
    return day


def entries(platform, access, obj: str, start: date, end: date, user: Any = None) -> list[dict]:
    """The records of `obj` the caller may read whose date falls in [start, end) (the site's days), by date; with
    `user`, only those on that user's calendar: owned by them or naming them in an attendee field."""
    definition, config = calendar_object(platform.metadata, obj)
    access.require(obj, "read")
    ot = platform.schema[obj]
    column = ot.column(config.date)
    zone = platform.settings.zone
    if definition.fields[config.date].type == "datetime":
        where = [column >= local_midnight(start, zone), column < local_midnight(end, zone)]
    else:
        where = [column >= start, column < end]
    scope = access.scope(obj, ot.table)
    if scope is not None:
        where.append(scope)
    if user not in (None, ""):
        user_id = parse_record_id(user)
        if user_id is None:
            raise BadRequest(Message("calendar.bad_user", "user must be a user's id, not {user!r}", user=str(user)),
                             {"user": [Message("calendar.user", "must be a user's id")]})
        where.append(_on_calendar_of(ot, config, definition, user_id))
    found, cursor = [], None
    while True:
        page = platform.records.list(obj, sort=f"{config.date},id", limit=500, cursor=cursor, count=False,
                                     where=sa.and_(*where), seen_by=access)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def _on_calendar_of(ot, config: CalendarConfig, definition: ObjectDef, user_id: int) -> sa.ColumnElement[bool]:
    """Owned by the user, or naming them in an attendee field (a multi-user field holds a JSON list of ids)."""
    on = [ot.table.c.owner == user_id]
    for name in config.attendees:
        column = ot.column(name)
        if definition.fields[name].type == "multi_user":
            on.append(column.like(f'%"{user_id}"%'))
        else:
            on.append(column == user_id)
    return sa.or_(*on)


# ------------------------------------------------------------------------------------------ planning


def plan(platform, access, obj: str, data: Any) -> dict:
    """One record of `obj` for each record of its `plan_for` target named in `data["ids"]`, all with the other
    values of `data` (the date among them), owned by the caller, inserted together or not at all:
    {"created": [ids], "items": [records], "warnings": [what the hooks warned of, a daily cap passed]}."""
    definition, config = calendar_object(platform.metadata, obj)
    if config.plan_for is None:
        raise NotFound(Message("calendar.no_planning", "{object} records are not planned for others",
                               object=said_object(definition)))
    access.require(obj, "create")
    if not isinstance(data, Mapping):
        raise BadRequest(Message("request.not_an_object", "the body must be a JSON object"))
    values = {k: v for k, v in data.items() if k != "ids"}
    ids = data.get("ids")
    errors: dict[str, list[str]] = {}
    if not isinstance(ids, list) or not ids or len(ids) > MAX_PLANNED:
        errors["ids"] = [Message("calendar.ids", "must list 1 to {limit} record ids", limit=MAX_PLANNED)]
    if values.get(config.date) in (None, ""):
        errors[config.date] = [REQUIRED]
    if config.plan_for in values:
        errors[config.plan_for] = [Message("calendar.plan_for", "is given by ids")]
    if errors:
        raise ValidationFailed(errors)
    target = definition.fields[config.plan_for].to
    wanted = list(dict.fromkeys(str(i) for i in ids))
    _refuse_unseen(platform, access, target, wanted)
    rows = [{**values, config.plan_for: target_id} for target_id in wanted]
    result = platform.records.within(access).create_many(obj, rows, user=access.user_id, all_or_nothing=True)
    if result.errors:
        raise ValidationFailed(result.errors[0].fields)
    t = platform.schema[obj].table
    page = platform.records.list(obj, where=t.c.id.in_([int(i) for i in result.created]), sort="id",
                                 limit=MAX_PLANNED, count=False, seen_by=access)
    return {"created": result.created, "items": page.items, "warnings": list(dict.fromkeys(result.warnings))}


def _refuse_unseen(platform, access, target: str, ids: Sequence[str]) -> None:
    """404 naming the ids that are no record of `target` the caller may read (one query for all)."""
    t = platform.schema[target].table
    numbers = [n for n in (parse_record_id(i) for i in ids) if n is not None]
    where = [t.c.id.in_(numbers)]
    scope = access.scope(target, t)
    if scope is not None:
        where.append(scope)
    with platform.engine.connect() as conn:
        seen = {str(i) for i in conn.execute(sa.select(t.c.id).where(*where)).scalars()}
    missing = [i for i in ids if i not in seen]
    if missing:
        raise NotFound(Message("calendar.unknown_targets", "no {object} with id {ids}",
                               object=said_object(platform.metadata.objects[target], lower=True),
                               ids=", ".join(missing)))
