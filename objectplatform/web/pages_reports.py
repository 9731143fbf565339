"""The report pages: the reports the user may run, and a report with its run-time filters, scene, the table
with its totals row, the chart drawn on the server and the CSV export; one runtime call per page, the same
as the API's (`api_reports.run_as_caller`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import Response, g, render_template, request, url_for
from markupsafe import Markup

from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.reports import ReportResult, available, charts, definition
from objectplatform.runtime.reports.filters import DATE_RANGES
from objectplatform.runtime.reports.funnel import processes
from objectplatform.runtime.reports.paths import resolve
from objectplatform.runtime.reports.run import SCENES

from .api_reports import report_csv, run_as_caller
from .app import get_platform
from .i18n import text
from .pages_base import REFERENCE_TYPES, bp, page_display
from .pages_view import ORG_TIME

PAGE_PARAMS = frozenset({"scene"})


@bp.route("/reports")
def reports():
    platform = get_platform()
    items = [(r.name, r.label.get(g.lang)) for r in available(platform.metadata, g.access)]
    return render_template("pages/reports.html", items=items)


@bp.route("/reports/<name>")
def report(name: str):
    report_def = definition(get_platform().metadata, name)
    g.access.require(report_def.object, "read")
    controls, filters = _controls(report_def, request.args)
    scene = request.args.get("scene") or report_def.data.get("scene", "all")
    result, errors = None, {}
    try:
        result = run_as_caller(name, filters, scene)
    except ValidationFailed as e:
        errors = e.fields
    query = urlencode([(k, v) for k, v in request.args.items() if v])
    return render_template(
        "pages/report.html", report=report_def, title=report_def.label.get(g.lang), controls=controls,
        scene=scene, scenes=[(s, text(f"reports.scene.{s}", g.lang)) for s in SCENES], errors=errors,
        table=_table(result) if result else None,
        chart=Markup(charts.draw(result, g.lang)) if result and result.rows else None,  # ours, text escaped
        export_url=url_for("pages.report_export", name=name) + (f"?{query}" if query else ""))


@bp.route("/reports/<name>/export.csv")
def report_export(name: str):
    report_def = definition(get_platform().metadata, name)
    _, filters = _controls(report_def, request.args)
    result = run_as_caller(name, filters, request.args.get("scene"))
    day = datetime.now(ORG_TIME).strftime("%Y%m%d")
    response = Response(report_csv(result, g.lang), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{day}.csv"'
    return response


def _controls(report_def, args: Mapping[str, str]) -> tuple[list[dict], dict[str, Any]]:
    """The template's run-time filters as form controls (with their current values) and as run filters."""
    metadata, display = get_platform().metadata, page_display()
    controls, filters = [], {}
    funnel = report_def.data.get("engine") == "sales_funnel"
    for spec in report_def.data.get("runtime_filters", ()):
        name = spec["field"]
        path = resolve(metadata, report_def.object, name)
        f = metadata.objects[path.object].fields.get(path.field)
        label = spec.get("label", {}).get(g.lang) if spec.get("label") else None
        if label is None:
            label = f.label.get(g.lang) if f else text(f"reports.field.{path.field}", g.lang)
        control = {"name": name, "label": label, "value": args.get(name, "")}
        if path.type in ("date", "datetime"):
            low, high = args.get(f"{name}__from", ""), args.get(f"{name}__to", "")
            control.update(widget="dates", low=low, high=high,
                           options=[(r, text(f"reports.range.{r}", g.lang)) for r in DATE_RANGES])
            if low or high:
                filters[name] = {"from": low, "to": high}
            elif control["value"]:
                filters[name] = control["value"]
        elif path.type == "picklist" and f is not None:
            control.update(widget="select", options=[(o.value, o.label.get(g.lang)) for o in f.options])
        elif funnel and name == "sales_process":
            control.update(widget="select", options=[(p.name, p.label.get(g.lang) if p.label else p.name)
                                                     for p in processes(metadata, report_def.object)])
        elif path.type in REFERENCE_TYPES and path.field != "id":
            value = control["value"]
            title = ""
            if value:
                owner = metadata.objects[path.object]
                display.want(owner, [{path.field: value}], [path.field])
                title = display.title(path.target, value)
            control.update(widget="lookup", target=path.target, title=title)
        else:
            control.update(widget="text")
        if control["value"] and name not in filters and control["widget"] != "dates":
            filters[name] = control["value"]
        controls.append(control)
    if funnel:  # the stage history's period: conversion rates, days in stage, win rate
        controls.append(_period_control(args, filters))
    return controls, filters


def _period_control(args: Mapping[str, str], filters: dict[str, Any]) -> dict:
    low, high, value = args.get("period__from", ""), args.get("period__to", ""), args.get("period", "")
    if low or high:
        filters["period"] = {"from": low, "to": high}
    elif value:
        filters["period"] = value
    return {"name": "period", "label": text("reports.period", g.lang), "value": value, "widget": "dates",
            "low": low, "high": high, "options": [(r, text(f"reports.range.{r}", g.lang)) for r in DATE_RANGES]}


def _table(result: ReportResult) -> dict:
    """The result as the page shows it: headers, rows and the totals row as display text."""
    dims = {c.key for c in result.dimensions}

    def cell(key: str, value: Any) -> str:
        if key in dims:
            return charts.value_text(result, key, value, g.lang)
        if value is None:
            return ""
        if isinstance(value, Decimal):
            return f"{value:,.2f}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    headers = [(c.key, c.label.get(g.lang), c.key not in dims) for c in result.columns]
    rows = [[cell(c.key, row.get(c.key)) for c in result.columns] for row in result.rows]
    totals = None
    if result.totals is not None:
        totals = ["" if c.key in dims else cell(c.key, result.totals.get(c.key)) for c in result.columns]
        totals[0] = totals[0] or text("reports.total", g.lang)
    return {"headers": headers, "rows": rows, "totals": totals}
