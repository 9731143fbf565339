"""今日路线 (the day route page) of an object declaring the route behavior: pick a day, see the caller's records of it
in the order that travels least with each leg and the total, save it as the day's route, download the day as .ics.

(How it works: docs/engine.md, "objectplatform/web/pages_routes.py".)"""

from __future__ import annotations

from datetime import datetime

from flask import Response, flash, g, redirect, render_template, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime import ValidationFailed
from objectplatform.runtime.behaviors.route import (
    RouteConfig,
    day_calendar,
    day_of,
    plan_day,
    routed_object,
    saved_route,
)

from .current import get_platform
from .i18n import error_text, text
from .pages_base import bp, object_def, page_display
from .pages_view import object_label


def _routed(obj: str) -> tuple[ObjectDef, RouteConfig]:
    definition = object_def(obj)
    return definition, routed_object(get_platform().metadata, obj)


@bp.route("/o/<obj>/route", methods=["GET", "POST"])
def day_route(obj: str):
    """GET: the day's records in the order that travels least (a preview); POST: the same, saved."""
    definition, config = _routed(obj)
    platform = get_platform()
    raw = request.values.get("date") or platform.clock.now().astimezone(g.zone).date().isoformat()
    body = {"date": raw, "save": request.method == "POST"}
    plan, errors, saved = None, [], None
    try:
        plan = plan_day(platform, g.access, config.path, body)
    except ValidationFailed as e:
        errors = [error_text(m, g.lang) for ms in e.fields.values() for m in ms]
    if request.method == "POST" and plan is not None:
        flash(text("route.saved", g.lang), "success")
        return redirect(url_for("pages.day_route", obj=obj, date=raw))
    if not errors:
        saved = saved_route(platform, g.access, config.path, day_of(raw))
    return render_template("pages/day_route.html", obj=definition, object_label=object_label(definition, g.lang),
                           day=raw, errors=errors, stops=_stops(definition, config, plan) if plan else [],
                           plan=plan, saved=saved, same=bool(saved) and plan is not None and [
                               s[definition.name] for s in saved.get(config.stop_object, [])] == plan["stops"],
                           route_object=config.route_object)


def _stops(definition, config: RouteConfig, plan: dict) -> list[dict]:
    """Each stop of `plan` as the page shows it: its record's title, the target's, the planned and arrival times
    and the leg reaching it."""
    platform, display = get_platform(), page_display()
    records = {r["id"]: r for r in platform.records.list(
        definition.name, where=platform.schema[definition.name].table.c.id.in_([int(i) for i in plan["stops"]]),
        limit=len(plan["stops"]), count=False).items}
    legs = {leg["to"]: leg for leg in plan["legs"]}
    target = definition.fields[config.lookup].to
    display.want(definition, records.values(), [config.lookup])
    out = []
    for n, (stop, arrive) in enumerate(zip(plan["stops"], plan["arrivals"], strict=True), 1):
        record = records[stop]
        out.append({"n": n, "id": stop, "url": url_for("pages.record", obj=definition.name, id=stop),
                    "title": display.record_title(definition, record),
                    "target": display.title(target, record.get(config.lookup)),
                    "planned": _hm(record.get(config.planned_field)), "arrive": _hm(arrive),
                    "fixed": bool(config.fixed_field and record.get(config.fixed_field)), "leg": legs.get(stop)})
    return out


def _hm(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(g.zone).strftime("%H:%M")


@bp.route("/o/<obj>/route.ics")
def day_route_calendar(obj: str):
    """The day's plan as an iCalendar file (the same as GET /api/v1/{path}/plan.ics)."""
    _, config = _routed(obj)
    raw = request.args.get("date", "")
    body = day_calendar(get_platform(), g.access, config.path, raw)
    return Response(body, mimetype="text/calendar",
                    headers={"Content-Disposition": f'attachment; filename="{config.path}-{raw}.ics"'})
