"""Calendars and visit frequency in the REST API: the records of an object with a calendar in a range of days,
planning one record for each of several others in one request, the records visited less often than required, and
the check-in anomalies (异常拜访).

(How it works: docs/engine.md, "objectplatform/web/api_calendar.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from objectplatform.runtime.behaviors import anomalies, calendar, frequency
from objectplatform.runtime.errors import message_json

from . import api, errors
from .api_work import request_language
from .current import get_platform
from .errors import json_response
from .i18n import error_text
from .pages_view import Display

bp = Blueprint("api_calendar", __name__, url_prefix="/api/v1")
errors.register(bp)
bp.before_request(api.authenticate)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def calendar_entries(display: Display, obj: str, records: list[Mapping[str, Any]]) -> list[dict]:
    """Each record as a calendar entry: when, its title and badge said in the display's language, whose it is."""
    platform = display.platform
    definition, config = calendar.calendar_object(platform.metadata, obj)
    names = [config.title, *([config.state] if config.state else []), *config.attendees]
    display.want(definition, records, names)
    display.want_ids("user", [r.get("owner") for r in records])
    out = []
    for r in records:
        at = r.get(config.date)
        local = at.astimezone(display.zone) if hasattr(at, "astimezone") and hasattr(at, "hour") else at
        state = r.get(config.state) if config.state else None
        out.append({
            "id": r["id"], "at": local.isoformat() if local is not None else None,
            "day": (local.date() if hasattr(local, "hour") else local).isoformat() if local is not None else None,
            "time": local.strftime("%H:%M") if hasattr(local, "hour") else None,
            "title": _title(display, definition, config.title, r),
            "state": state, "state_label": display.text(definition, config.state, state) if config.state else None,
            "owner": r.get("owner"), "owner_name": display.title("user", r.get("owner")) if r.get("owner") else None,
            "attendees": [str(u) for name in config.attendees for u in _users(r.get(name))],
        })
    return out


def _title(display: Display, definition, name: str, record: Mapping[str, Any]) -> str:
    """The entry's title field said as text; a reference the viewer may not read (a co-visitor's view of another
    rep's account) is not named: the record's own title stands in."""
    to = definition.fields[name].to
    if to is not None and record.get(name) is not None and not display.readable(to, record[name]):
        return display.record_title(definition, record)
    return display.text(definition, name, record.get(name))


def _users(value: Any) -> list:
    return [] if value in (None, "") else value if isinstance(value, list) else [value]


@bp.get("/objects/<obj>/calendar")
def calendar_records(obj: str) -> Response:
    """`?month=YYYY-MM` or `?start=&end=` (end excluded), `user=` (on that user's calendar), `lang=`."""
    api.object_def(obj)
    platform = get_platform()
    start, end = calendar.day_range(request.args, platform.local_now().date())
    records = calendar.entries(platform, g.access, obj, start, end, request.args.get("user"))
    display = Display(platform, g.access, request_language(), platform.settings.zone)
    return json_response({"start": start.isoformat(), "end": end.isoformat(),
                          "items": calendar_entries(display, obj, records)})


@bp.post("/objects/<obj>/plan")
def plan_records(obj: str) -> Response:
    """`{"ids": [target ids], "<date field>": ..., other fields}` -> 201 {"created", "items", "warnings"}."""
    api.object_def(obj)
    platform = get_platform()
    result = calendar.plan(platform, g.access, obj, api.object_body())
    lang = request_language()
    return json_response({
        "created": result["created"], "items": [api.record_json(platform, obj, r) for r in result["items"]],
        "warnings": [{"message": error_text(w, lang), **_reason(w)} for w in result["warnings"]]}, 201)


def _reason(message: str) -> dict:
    data = message_json(message)
    return {"reason": data["reason"], "params": data["params"]} if isinstance(data, dict) else {}


@bp.get("/objects/<obj>/frequency")
def frequency_compliance(obj: str) -> Response:
    """`?month=YYYY-MM` or `?day=YYYY-MM-DD` (its period), `owner=`: the caller's records below their frequency."""
    api.object_def(obj)
    platform = get_platform()
    definition = platform.metadata.objects[obj]
    today = platform.local_now().date()
    config = frequency.FREQUENCY.config_of(definition) if frequency.FREQUENCY.declared_by(definition) else None
    day = frequency.period_query(request.args, today, config.period if config else "month")
    found = frequency.compliance(platform, g.access, obj, day, request.args.get("owner"))
    display = Display(platform, g.access, request_language(), platform.settings.zone)
    display.want_ids("user", [r["owner"] for r in found["owners"]])
    for item in found["items"]:
        item["owner_name"] = display.title("user", item["owner"]) if item["owner"] else None
        item[f"{config.by}_label"] = display.text(definition, config.by, item[config.by])
    for row in found["owners"]:
        row["owner_name"] = display.title("user", row["owner"]) if row["owner"] else None
    return json_response(found)


@bp.get("/objects/<obj>/anomalies")
def check_in_anomalies(obj: str) -> Response:
    """`?start=&end=` (days, both included; default the last 30 days to today), `owner=`, `kind=`, `record=`: the
    caller's records with a check-in anomaly (异常拜访), with how many of each kind."""
    api.object_def(obj)
    platform = get_platform()
    start, end = anomalies.period_query(request.args, platform.local_now().date())
    found = anomalies.anomalies(platform, g.access, obj, start, end, request.args.get("owner"),
                                request.args.get("kind"), request.args.get("record"))
    display = Display(platform, g.access, request_language(), platform.settings.zone)
    display.want_ids("user", [i["owner"] for i in found["items"] if i["owner"]])
    for item in found["items"]:
        item["owner_name"] = display.title("user", item["owner"]) if item["owner"] else None
    return json_response(found)


@bp.get("/objects/<obj>/mileage")
def check_in_mileage(obj: str) -> Response:
    """`?start=&end=` (days, both included; default the last 30 days to today), `owner=`: the day's mileage per
    owner from the caller's records' check-ins (里程, for travel expenses)."""
    api.object_def(obj)
    platform = get_platform()
    start, end = anomalies.period_query(request.args, platform.local_now().date())
    found = anomalies.mileage(platform, g.access, obj, start, end, request.args.get("owner"))
    display = Display(platform, g.access, request_language(), platform.settings.zone)
    display.want_ids("user", [i["owner"] for i in found["items"] if i["owner"]])
    for item in found["items"]:
        item["owner_name"] = display.title("user", item["owner"]) if item["owner"] else None
    return json_response(found)
