"""The calendar pages: the month, week and day of any object with a calendar (拜访日历; on a phone the month is an
agenda), planning records for the records selected in a list (拜访计划), and the records visited less often than
their frequency requires (拜访频率).

(How it works: docs/engine.md, "objectplatform/web/pages_calendar.py".)"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import flash, g, redirect, render_template, request, url_for

from objectplatform.runtime import BadRequest, NotFound, ValidationFailed
from objectplatform.runtime.behaviors import calendar, frequency
from objectplatform.runtime.errors import Message, said_object

from .api_calendar import calendar_entries
from .current import get_platform
from .i18n import error_text, text
from .pages_base import bp, local_path, object_def, page_display
from .pages_view import field_label, object_label

VIEWS = ("month", "week", "day")


def _shown_range(view: str, day: date) -> tuple[date, date]:
    """The days a view shows: the month's whole weeks (Monday first), the week holding `day`, or `day`."""
    if view == "day":
        return day, day + timedelta(days=1)
    if view == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    first = day.replace(day=1)
    last = (first + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    return first - timedelta(days=first.weekday()), last + timedelta(days=7 - last.weekday())


def _step(view: str, day: date, forward: bool) -> date:
    if view == "day":
        return day + timedelta(days=1 if forward else -1)
    if view == "week":
        return day + timedelta(days=7 if forward else -7)
    first = day.replace(day=1)
    return (first + timedelta(days=31)).replace(day=1) if forward else (first - timedelta(days=1)).replace(day=1)


def _people(obj: str) -> list[tuple[str, str]]:
    """The users whose calendars the caller may look at (those owning records of `obj` in their scope), by name;
    empty when that is only themselves."""
    platform = get_platform()
    owners = g.access.visible_owners.get(obj, frozenset())
    if owners is not None and len(owners) <= 1:
        return []
    ut = platform.schema["user"]
    active = sa.or_(ut.column("active").is_(None), ut.column("active").is_(True))
    stmt = sa.select(ut.table.c.id).where(active)
    if owners is not None:
        stmt = stmt.where(ut.table.c.id.in_(sorted(owners)))
    with platform.engine.connect() as conn:
        ids = [str(i) for i in conn.execute(stmt).scalars()]
    display = page_display()
    display.want_ids("user", ids)
    return sorted(((i, display.title("user", i)) for i in ids), key=lambda p: p[1])


@bp.route("/o/<obj>/calendar")
def calendar_page(obj: str):
    """拜访日历: `view` month / week / day around `date` (today), `user` one person's calendar."""
    definition = object_def(obj)
    platform = get_platform()
    _, config = calendar.calendar_object(platform.metadata, obj)
    view = request.args.get("view") if request.args.get("view") in VIEWS else "month"
    try:
        day = calendar.within_reach(date.fromisoformat(request.args["date"])) if request.args.get("date") \
            else platform.local_now().date()
    except ValueError:
        raise BadRequest(Message("calendar.bad_range", "bad calendar range: {fields}", fields="date")) from None
    user = request.args.get("user") or None
    start, end = _shown_range(view, day)
    records = calendar.entries(platform, g.access, obj, start, end, user)
    entries = calendar_entries(page_display(), obj, records)
    by_day: dict[str, list[dict]] = {}
    for entry in entries:
        entry["url"] = url_for("pages.record", obj=obj, id=entry["id"])
        by_day.setdefault(entry["day"], []).append(entry)
    days = [start + timedelta(days=n) for n in range((end - start).days)]
    can_create = g.access.can(obj, "create")
    here = request.full_path.rstrip("?")
    cells = [{"date": d, "iso": d.isoformat(), "entries": by_day.get(d.isoformat(), []),
              "outside": view == "month" and d.month != day.month, "today": d == platform.local_now().date(),
              "new": url_for("pages.create", obj=obj, next=here, **{config.date: _new_value(definition, config, d)})
              if can_create else None} for d in days]

    def link(**changes) -> str:
        args = {"view": view, "date": day.isoformat(), "user": user, **changes}
        return url_for("pages.calendar_page", obj=obj, **{k: v for k, v in args.items() if v})

    return render_template(
        "pages/calendar.html", obj=definition, object_label=object_label(definition, g.lang), view=view, day=day,
        cells=cells, weeks=[cells[i:i + 7] for i in range(0, len(cells), 7)], count=len(entries),
        people=_people(obj), user=user, links={"prev": link(date=_step(view, day, False).isoformat()),
                                               "next": link(date=_step(view, day, True).isoformat()),
                                               "today": link(date=None), **{v: link(view=v) for v in VIEWS}},
        weekdays=text("calendar.weekdays", g.lang).split(","),
        state_field=config.state, title_label=field_label(definition, config.title, g.lang))


def _new_value(definition, config: calendar.CalendarConfig, d: date) -> str:
    """A new record's date on a day: 09:00 that day for a date-time field."""
    return f"{d.isoformat()}T09:00" if definition.fields[config.date].type == "datetime" else d.isoformat()


@bp.route("/o/<obj>/plan", methods=["POST"])
def plan_page(obj: str):
    """拜访计划: a record of `obj` for each record selected in its target's list, on the day and at the time
    chosen; then that day on the calendar, with the daily cap's warning when one was passed."""
    object_def(obj, "create")
    platform = get_platform()
    definition, config = calendar.calendar_object(platform.metadata, obj)
    back = local_path(request.form.get("next")) or url_for("pages.calendar_page", obj=obj)
    day, at = request.form.get("day", "").strip(), request.form.get("time", "").strip() or "09:00"
    value = f"{day}T{at}" if definition.fields[config.date].type == "datetime" else day
    data = {"ids": request.form.getlist("ids"), config.date: _local_value(value) if day else None}
    try:
        result = calendar.plan(platform, g.access, obj, data)
    except (ValidationFailed, NotFound) as e:
        messages = [f"{field_label(definition, k, g.lang) if k in definition.fields else k}: {error_text(m, g.lang)}"
                    for k, ms in e.fields.items() for m in ms] or [error_text(e.message, g.lang)]
        flash("; ".join(messages), "error")
        return redirect(back)
    flash(text("plan.done", g.lang, count=len(result["created"]), object=definition.label.get(g.lang)), "success")
    for warning in result["warnings"]:
        flash(error_text(warning, g.lang), "warning")
    return redirect(url_for("pages.calendar_page", obj=obj, view="day", date=day))


def _local_value(value: str) -> str:
    """A date and time typed on the page as an ISO value in the viewer's time zone."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=g.zone).isoformat()
    except ValueError:
        return value  # the records service names it as a bad date


@bp.route("/o/<obj>/frequency")
def frequency_page(obj: str):
    """拜访频率: the caller's records visited less often than required this period (`month`, `day`), per owner."""
    definition = object_def(obj)
    platform = get_platform()
    if not frequency.FREQUENCY.declared_by(definition):
        raise NotFound(Message("frequency.none", "{object} has no visit frequency", object=said_object(definition)))
    config = frequency.FREQUENCY.config_of(definition)
    day = frequency.period_query(request.args, platform.local_now().date(), config.period)
    owner = request.args.get("owner") or None
    found = frequency.compliance(platform, g.access, obj, day, owner)
    display = page_display()
    display.want_ids("user", [r["owner"] for r in found["owners"]])
    items = [{**item, "url": url_for("pages.record", obj=obj, id=item["id"]),
              "title": item["title"] or display.record_title(definition, {"id": item["id"]}),
              "owner_name": display.title("user", item["owner"]) if item["owner"] else "",
              "by_label": display.text(definition, config.by, item[config.by])} for item in found["items"]]
    owners = [{**row, "owner_name": display.title("user", row["owner"]) if row["owner"] else "",
               "link": url_for("pages.frequency_page", obj=obj, owner=row["owner"], day=day.isoformat())}
              for row in found["owners"]]
    start = date.fromisoformat(found["period"]["start"])
    planner = calendar.planned_by(platform.metadata, obj)
    return render_template(
        "pages/frequency.html", obj=definition, object_label=object_label(definition, g.lang, plural=True),
        single_label=object_label(definition, g.lang),
        items=items, owners=owners, period=found["period"], owner=owner, month=start.strftime("%Y-%m"),
        by_label=field_label(definition, config.by, g.lang),
        required={display.text(definition, config.by, v): n for v, n in config.required.items()},
        plan=planner[0][0].name if planner and g.access.can(planner[0][0].name, "create") else None,
        kind=config.period)
