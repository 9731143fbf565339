"""The list page of every object (columns, filters, search, sort, cursor pages, bulk actions) and the
JSON behind search-as-you-type lookups; both read through records.list within the user's scope."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import partial
from urllib.parse import urlencode

from flask import g, jsonify, render_template, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.behaviors.calendar import planned_by
from objectplatform.runtime.errors import BadRequest, NotFound

from .current import get_platform
from .export import csv_response, header_language
from .export import list_columns as columns_of
from .i18n import text
from .pages_base import REFERENCE_TYPES, available_actions, bp, cursor_pager, object_def, page_display, scope, url_with
from .pages_view import Display, cell_class, field_label, field_type, object_label, target

PAGE_SIZE = 50
LIST_PARAMS = frozenset({"q", "sort", "cursor", "trail", "page"})
EXPORT_PARAMS = frozenset({"fields", "labels"})
TEXT_TYPES = frozenset({"text", "long_text", "email", "phone", "url", "auto_number"})


def _filter_controls(obj: ObjectDef, args: Mapping[str, str]) -> tuple[list[dict], dict[str, str]]:
    """The list view's filters as controls (with their current values) and as records.list filters."""
    display = page_display()
    controls, filters = [], {}
    mask = get_platform().records.mask(obj.name, g.access)
    for name in obj.list_view.filters if obj.list_view else ():
        if not mask.visible(name):
            continue
        kind = field_type(obj, name)
        control = {"name": name, "label": field_label(obj, name, g.lang), "kind": kind}
        if kind in ("date", "datetime"):
            low, high = args.get(f"{name}__from", ""), args.get(f"{name}__to", "")
            control.update(widget="dates", low=low, high=high)
            if low:
                filters[f"{name}__gte"] = _day_start(low, kind)
            if high:
                filters[f"{name}__lt" if kind == "datetime" else f"{name}__lte"] = _day_start(high, kind, next_day=True)
        elif kind in ("picklist", "text") and display.labels(obj, name):  # options, sales processes, stages
            control.update(widget="select", value=args.get(name, ""),
                           options=[(value, label.get(g.lang)) for value, label in display.labels(obj, name).items()])
        elif kind == "boolean":
            control.update(widget="select", value=args.get(name, ""),
                           options=[("true", text("value.yes", g.lang)), ("false", text("value.no", g.lang))])
        elif kind in REFERENCE_TYPES:
            value = args.get(name, "")
            if value:
                display.want(obj, [{name: value}], [name])
            control.update(widget="lookup", value=value, target=target(obj, name),
                           title=display.title(target(obj, name), value) if value else "")
        else:  # text-like fields match a part; numbers and the rest their whole value
            key = f"{name}__contains" if kind in TEXT_TYPES else name
            control.update(widget="text", key=key, value=args.get(key, ""))
            if args.get(key):
                filters[key] = args[key]
            controls.append(control)
            continue
        if control.get("value"):
            filters[name] = control["value"]
        controls.append(control)
    shown = {c["name"] for c in controls}
    for key, value in args.items():  # other field filters given in the URL (a related list's "view all")
        name, _, op = key.partition("__")
        if key in LIST_PARAMS or not value or name in shown or op == "title":
            continue
        if op in ("from", "to") and field_type(obj, name) in ("date", "datetime"):
            kind = field_type(obj, name)
            bound = "gte" if op == "from" else "lt" if kind == "datetime" else "lte"
            filters[f"{name}__{bound}"] = _day_start(value, kind, next_day=op == "to")
        elif key not in filters:
            filters[key] = value
    return controls, filters


def _day_start(day: str, kind: str, next_day: bool = False) -> str:
    """A date typed in a filter as the filter value: for a date-time field, that day's start (or the
    next day's) in the viewer's time zone."""
    if kind == "date":
        return day
    try:
        start = datetime.combine(date.fromisoformat(day) + timedelta(days=1 if next_day else 0),
                                 datetime.min.time(), g.zone)
    except ValueError:
        return day  # the list reports it as a bad date
    return start.isoformat()


def _sortable(obj: ObjectDef, name: str) -> bool:
    ot = get_platform().schema[obj.name]
    kind = field_type(obj, name)
    return (len(ot.columns.get(name, ())) == 1 and kind not in ("multi_picklist", "multi_user", "multi_department",
                                                                  "attachment", "geolocation", "password"))


@bp.route("/o/<obj>")
def list_records(obj: str):
    definition = object_def(obj)
    args = request.args
    controls, filters = _filter_controls(definition, args)
    q = args.get("q", "").strip()
    sort = args.get("sort", "").strip() or None
    cursor = args.get("cursor") or None
    platform = get_platform()
    page = platform.records.list(obj, filters=filters, q=q or None, sort=sort, cursor=cursor,
                                 limit=PAGE_SIZE, seen_by=g.access, scope=g.access)
    items = page.items
    mask = platform.records.mask(obj, g.access)
    columns = [name for name in columns_of(definition) if mask.visible(name)]
    display = page_display()
    display.want(definition, items, columns)
    current = sort or ",".join(definition.list_view.sort if definition.list_view else ("-created_at",))
    headers = []
    for name in columns:
        sortable = _sortable(definition, name)
        direction = "asc" if current == name else "desc" if current == f"-{name}" else None
        link = url_with(sort=f"-{name}" if direction == "asc" else name, cursor=None, trail=None, page=None) \
            if sortable else None
        headers.append({"name": name, "label": field_label(definition, name, g.lang), "link": link,
                        "direction": direction, "class": cell_class(field_type(definition, name))})
    rows = []
    for r in items:
        title = display.record_title(definition, r)
        first = display.text(definition, columns[0], r.get(columns[0])) or title  # the link to the record
        rows.append({"id": r["id"], "title": title,
                     "cells": [first, *(display.html(definition, name, r.get(name)) for name in columns[1:])]})
    return render_template(
        "pages/list.html", obj=definition, object_label=object_label(definition, g.lang, plural=True),
        single_label=object_label(definition, g.lang), headers=headers, rows=rows, controls=controls, q=q,
        pager=cursor_pager(page.next_cursor, page.total, page.total_is_exact),
        bulk_actions=[(a.name, a.label.get(g.lang)) for a in available_actions(obj, bulk=True)],
        can_create=g.access.can(obj, "create"), list_url=request.full_path.rstrip("?"),
        export_url=_export_url(obj), plan=_planning(obj),
        searchable=bool(definition.searchable_fields or definition.title_field in definition.fields),
    )


def _planning(obj: str) -> dict | None:
    """拜访计划: the object whose records the caller may plan for the selected ones (visits for accounts), if any."""
    for planner, config in planned_by(get_platform().metadata, obj):
        if g.access.can(planner.name, "create"):
            kind = planner.fields[config.date].type
            return {"object": planner.name, "label": object_label(planner, g.lang), "with_time": kind == "datetime",
                    "day": (get_platform().local_now().date() + timedelta(days=1)).isoformat()}
    return None


def _export_url(obj: str) -> str:
    """The export of what the list shows: its filters, search and sort, headed in the page's language."""
    kept = {k: v for k, v in request.args.items() if k not in ("cursor", "trail", "page", "labels")}
    return url_for("pages.export_records", obj=obj) + "?" + urlencode({**kept, "labels": g.lang})


@bp.route("/o/<obj>/export.csv")
def export_records(obj: str):
    """The list's records under the page's filters, search and sort as CSV (see export.py), referenced
    records by their titles, stored keys by their labels; `labels` (the link gives the page's language)
    names the columns and is the language of the values."""
    definition = object_def(obj)
    args = request.args
    _controls, filters = _filter_controls(definition, {k: v for k, v in args.items() if k not in EXPORT_PARAMS})
    platform = get_platform()
    lang = header_language(args.get("labels")) or g.lang
    return csv_response(platform, definition, filters=filters, q=args.get("q", "").strip() or None,
                        sort=args.get("sort", "").strip() or None, where=scope(obj), fields=args.get("fields"),
                        labels=args.get("labels"), titles=partial(Display, platform, g.access, lang, g.zone))


@bp.route("/o/<obj>/shown/<record_id>")
def shown(obj: str, record_id: str):
    """Fields of one record of `obj` in the user's scope, as a form shows a chosen lookup's target (the `show` of
    the lookup, `?fields=`): {"items": [{"name", "label", "value"}]}; an unreadable record: no items."""
    definition = object_def(obj)
    names = [n for n in request.args.get("fields", "").split(",") if n in definition.fields]
    try:
        record = get_platform().records.get(obj, record_id, where=scope(obj), seen_by=g.access)
    except (BadRequest, NotFound):
        return jsonify(items=[])
    display = page_display()
    return jsonify(items=[{"name": n, "label": field_label(definition, n, g.lang),
                           "value": display.text(definition, n, record.get(n))} for n in names if n in record])


@bp.route("/o/<obj>/lookup")
def lookup(obj: str):
    """Records of `obj` matching `q` in the user's scope, for search-as-you-type inputs: [{id, title}]."""
    definition = object_def(obj)
    q = request.args.get("q", "").strip()
    try:
        platform = get_platform()
        page = platform.records.list(obj, q=q or None, limit=20, where=scope(obj), seen_by=g.access, count=False)
    except BadRequest:
        return jsonify(items=[])
    display = page_display()
    return jsonify(items=[{"id": r["id"], "title": display.record_title(definition, r)} for r in page.items])
