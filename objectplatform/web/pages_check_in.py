"""Check-in on the pages: the record page's check-in panel (locating by the browser, typed coordinates as the
fallback), the nearby page of any object with a geolocation field, and the unplanned visit started from it.

(How it works: docs/engine.md, "objectplatform/web/pages_check_in.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for

from objectplatform.metadata import Metadata, ObjectDef
from objectplatform.runtime import BadRequest, Conflict, Forbidden, ValidationFailed, geo
from objectplatform.runtime.actions import actions_service
from objectplatform.runtime.behaviors import anomalies
from objectplatform.runtime.behaviors.check_in import CHECK_IN, CheckInConfig, visit_now, visiting
from objectplatform.runtime.behaviors.route import ROUTE

from .current import get_platform
from .i18n import error_text, text
from .pages_anomalies import check_in_map
from .pages_base import bp, object_def, page_display, scope
from .pages_records import RecordExtensions
from .pages_view import object_label


def check_in_panel(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> dict | None:
    """The "签到签退" panel: the tolerance, the check-in's distance and validity, and the check-in and check-out
    forms the caller may send now."""
    if not CHECK_IN.declared_by(obj):
        return None
    config: CheckInConfig = CHECK_IN.config_of(obj)
    if not config.enabled:
        return None
    available = {a.name: a for a in actions_service(get_platform()).available(g.access, obj.name, record)}
    co_visitor = str(g.access.user_id) in {str(u) for u in record.get(config.co_visitors_field or "") or ()}
    forms = [{"name": name, "label": available[name].label.get(g.lang), "evaluation": name == config.check_out
              and co_visitor, "url": url_for("pages.run_one", obj=obj.name, id=record["id"], name=name)}
             for name in (config.check_in, config.check_out) if name in available]
    return {"template": "pages/_check_in.html", "wide": True, "tolerance": f"{config.tolerance_m:g}",
            "refuses": config.out_of_range == "refuse", "distance": record.get(config.distance_field),
            "valid": record.get(config.valid_field), "duration": record.get(config.duration_field),
            "forms": forms, "route_url": _route_url(obj, record.get(config.planned_field)),
            "map": _map(obj, config, record), "photo": _photo(obj, config, record)}


def _photo(obj: ObjectDef, config: CheckInConfig, record: Mapping[str, Any]) -> dict | None:
    """The stamped check-in photo (shown in the page) and a link to its original, when the record has both."""
    original = config.photo_original_field
    if original is None or not record.get(config.photo_field) or not record.get(original):
        return None
    return {"url": url_for("pages.attachment", obj=obj.name, id=record["id"], field=config.photo_field, inline=1),
            "original_url": url_for("pages.attachment", obj=obj.name, id=record["id"], field=original)}


def _map(obj: ObjectDef, config: CheckInConfig, record: Mapping[str, Any]) -> dict | None:
    """The check-in beside the target's location and the tolerance circle, once checked in."""
    planned = record.get(config.planned_field)
    if not record.get(config.checked_in_field) or planned is None:
        return None
    day = (planned if planned.tzinfo else planned.replace(tzinfo=UTC)).astimezone(g.zone).date()
    found = anomalies.anomalies(get_platform(), g.access, obj.name, day, day, record=record["id"], every=True)
    target = get_platform().metadata.objects[obj.fields[config.lookup].to]
    items = [{**item, "n": 1, "title": item["title"] or ""} for item in found["items"]]
    return check_in_map(items, config.tolerance_m, object_label(target, g.lang), rows=False)


def _route_url(obj: ObjectDef, planned: datetime | None) -> str | None:
    """今日路线 of the record's day, when the object declares the route behavior."""
    if not ROUTE.declared_by(obj) or planned is None:
        return None
    day = (planned if planned.tzinfo else planned.replace(tzinfo=UTC)).astimezone(g.zone).date()
    return url_for("pages.day_route", obj=obj.name, date=day.isoformat())


@bp.route("/o/<obj>/nearby")
def nearby(obj: str):
    """附近的客户: the caller's records near the point the browser (or the user) gives, nearest first."""
    definition = object_def(obj)
    g.access.require(obj, "read")
    platform = get_platform()
    items, errors, searched = [], {}, "lat" in request.args
    geo.searched_field(definition)
    if searched:
        try:
            lat, lng, radius_m, limit = geo.nearby_query(request.args)
        except BadRequest as e:
            errors = {k: [error_text(m, g.lang) for m in v] for k, v in e.fields.items()}
        else:
            display = page_display()
            items = [{"id": r["id"], "title": display.record_title(definition, r), "distance": r["distance_m"],
                      "url": url_for("pages.record", obj=obj, id=r["id"])}
                     for r in geo.nearby(platform, obj, lat, lng, radius_m, limit, where=scope(obj))]
    visits = visiting(platform.metadata, obj)
    may_visit = visits is not None and g.access.can(visits.name, "create") and \
        g.access.can_act(visits.name, CHECK_IN.config_of(visits).check_in)
    return render_template("pages/nearby.html", obj=definition, object_label=object_label(definition, g.lang),
                           items=items, errors=errors, searched=searched, args=request.args, may_visit=may_visit,
                           radius=request.args.get("radius_m") or geo.DEFAULT_RADIUS_M)


@bp.route("/o/<obj>/<id>/visit_now", methods=["POST"])
def start_visit(obj: str, id: str):
    """临时拜访: a visit of this record, planned now and checked in at the place sent; then its page."""
    object_def(obj)
    platform = get_platform()
    data = {k: request.form[k] for k in ("lat", "lng", "accuracy", "address") if request.form.get(k)}
    try:
        result = visit_now(platform, g.access, obj, id, data)
    except (ValidationFailed, Conflict, Forbidden) as e:
        messages = [error_text(m, g.lang) for ms in e.fields.values() for m in ms] or [error_text(e.message, g.lang)]
        flash("; ".join(dict.fromkeys(messages)), "error")
        return redirect(request.form.get("next") or url_for("pages.nearby", obj=obj))
    visits = visiting(platform.metadata, obj)
    flash(text("nearby.visit_started", g.lang), "success")
    return redirect(url_for("pages.record", obj=visits.name, id=result["record"]["id"]))


def _panel_dialog(obj: ObjectDef, record: Mapping[str, Any]) -> str | None:
    """The check-in and check-out buttons lead to the panel's forms, which locate the browser first."""
    return "#check-in" if CHECK_IN.declared_by(obj) and CHECK_IN.config_of(obj).enabled else None


def extend(page: RecordExtensions, metadata: Metadata) -> None:
    """The panel, and its forms as the check-in and check-out buttons of the objects declaring the behavior."""
    page.panels.append(check_in_panel)
    for _, config in CHECK_IN.configured(metadata):
        for name in (config.check_in, config.check_out):
            page.dialogs[name] = _panel_dialog
