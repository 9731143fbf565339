"""The report pages: the reports the user may run (the shipped ones in their folders, then their own), and a
report with its run-time filters, scene, the table with its totals row, the chart drawn on the server and the CSV
export;
one runtime call per page, the same as the API's (`api_reports.run_as_caller`). The funnel takes a second
set of filters (B: another period, another department) and shows both funnels side by side, with one table
holding both. The report builder is pages_report_builder.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import Response, g, render_template, request, url_for
from markupsafe import Markup

from objectplatform.metadata import Label, ReportPeriod
from objectplatform.runtime import dashboards
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.reports import ReportResult, charts, personal
from objectplatform.runtime.reports.compare import side_by_side
from objectplatform.runtime.reports.filters import DATE_RANGES
from objectplatform.runtime.reports.funnel import default_process
from objectplatform.runtime.reports.paths import resolve
from objectplatform.runtime.reports.run import SCENES
from objectplatform.runtime.value_labels import value_labels

from .api_reports import report_csv, run_as_caller
from .current import get_platform
from .i18n import error_text, text
from .pages_base import REFERENCE_TYPES, bp, page_display

PAGE_PARAMS = frozenset({"scene"})
SIDE_B = "b."  # the funnel's second set of filters: b.period, b.owner.department, ...


MINE, OTHER = "mine", "other"  # the folders of the user's own reports and of shipped ones naming no folder


@bp.route("/reports")
def reports():
    query = request.args.get("q", "").strip()
    folders = _grouped(get_platform(), personal.listed(get_platform(), g.access), query, g.lang)
    return render_template("pages/reports.html", folders=folders, query=query,
                           found=sum(len(f["reports"]) for f in folders))


def _grouped(platform, listed: list, query: str, lang: str) -> list[dict]:
    """The reports page's folders in their declared order, each with its reports (those whose label or
    description holds `query`, in either language), then the shipped reports naming no folder, then the
    user's own ("My reports", shown even when empty so that the builder is one click away)."""
    words = query.casefold()
    by_folder: dict[str, list[dict]] = defaultdict(list)
    for r in listed:
        said = [r.label.zh, r.label.en, *((r.description.zh, r.description.en) if r.description else ())]
        if words and not any(words in text_.casefold() for text_ in said):
            continue
        key = MINE if personal.is_personal(r) else r.folder or OTHER
        by_folder[key].append({
            "name": r.name, "label": r.label.get(lang), "search": " ".join(said).casefold(),
            "description": r.description.get(lang) if r.description else "",
            "chart": r.chart.type if r.chart else "table", "personal": key == MINE})
    folders = [(f.key, f.label.get(lang)) for f in platform.metadata.report_folders]
    folders += [(OTHER, text("reports.folder.other", lang)), (MINE, text("reports.mine", lang))]
    return [{"key": key, "label": label, "reports": by_folder.get(key, [])} for key, label in folders
            if by_folder.get(key) or (key == MINE and not words)]


def _found(name: str):
    report_def = personal.find(get_platform(), g.access, name)
    g.access.require(report_def.object, "read")
    return report_def


@bp.route("/reports/<name>")
def report(name: str):
    report_def = _found(name)
    scene = request.args.get("scene") or report_def.scene
    controls, controls_b, result, runs, errors = [], [], None, None, {}
    try:
        controls, controls_b, result, runs = _run(name, report_def, request.args, scene)
    except ValidationFailed as e:
        errors = {name: [error_text(m, g.lang) for m in messages] for name, messages in e.fields.items()}
        controls, controls_b = _controls(report_def, request.args)[0], _controls_b(report_def, {})[0]
    funnels = [(r.label.get(g.lang), Markup(charts.figure(r, g.lang))) for r in runs or ()]  # ours, text escaped
    query = urlencode([(k, v) for k, v in request.args.items() if v])
    return render_template(
        "pages/report.html", report=report_def, title=report_def.label.get(g.lang), controls=controls,
        controls_b=controls_b, compare=runs is not None, funnels=funnels, personal=personal.is_personal(report_def),
        scene=scene, scenes=[(s, text(f"reports.scene.{s}", g.lang)) for s in SCENES], errors=errors,
        table=result_table(result) if result else None,
        chart=Markup(charts.figure(result, g.lang)) if result and result.rows and runs is None else None,
        export_url=url_for("pages.report_export", name=name) + (f"?{query}" if query else ""),
        pinned=name in dashboards.pinned(get_platform(), g.access))


@bp.route("/reports/<name>/export.csv")
def report_export(name: str):
    report_def = _found(name)
    result = _run(name, report_def, request.args, request.args.get("scene"))[2]
    day = get_platform().clock.today(g.zone).strftime("%Y%m%d")
    response = Response(report_csv(result, g.lang), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{day}.csv"'
    return response


def _run(name: str, report_def, args: Mapping[str, str], scene: str | None):
    """The page's run: (controls, the funnel's B controls, the result, None or the two runs compared).

    The funnel compares when any B filter is set; B's empty filters take A's, so "B: last quarter" is the
    same process and department last quarter."""
    controls, filters = _controls(report_def, args)
    controls_b, filters_b = _controls_b(report_def, args)
    if not filters_b:
        return controls, controls_b, run_as_caller(name, filters, scene), None
    one = run_as_caller(name, filters, scene)
    other = run_as_caller(name, {**filters, **filters_b}, scene)
    sides = (_side_label("A", controls), _side_label("B", controls_b))
    both = side_by_side(one, other, sides)
    one.label, other.label = sides  # each funnel's chart is titled by its side
    return controls, controls_b, both, (one, other)


def _controls_b(report_def, args: Mapping[str, str]) -> tuple[list[dict], dict[str, Any]]:
    """The funnel's second set of filters (named b.period, b.owner.department, ...); none for other reports."""
    if report_def.engine != "sales_funnel":
        return [], {}
    return _controls(report_def, _side_b(args), SIDE_B)


def _side_b(args: Mapping[str, str]) -> dict[str, str]:
    return {k[len(SIDE_B):]: v for k, v in args.items() if k.startswith(SIDE_B)}


def _side_label(side: str, controls: list[dict]) -> Label:
    """"A" or "B" with the filters that make it, as the table's headers and the funnels' captions say it."""
    parts = []
    for c in controls:
        if c.get("low") or c.get("high"):
            parts.append(f"{c['low']}–{c['high']}")
        elif c["value"]:
            parts.append(dict(c.get("options") or ()).get(c["value"]) or c.get("title") or c["value"])
    said = f"{side} ({', '.join(parts)})" if parts else side
    return Label(said, said)  # in the page's language, like the filters it names


def _controls(report_def, args: Mapping[str, str], prefix: str = "") -> tuple[list[dict], dict[str, Any]]:
    """The template's run-time filters as form controls (with their current values) and as run filters;
    `prefix` names the controls of the funnel's second set."""
    metadata, display = get_platform().metadata, page_display()
    controls, filters = [], {}
    funnel = report_def.engine == "sales_funnel"
    for spec in report_def.runtime_filters:
        name = spec.field
        path = resolve(metadata, report_def.object, name)
        f = metadata.objects[path.object].fields.get(path.field)
        if spec.label is not None:
            label = spec.label.get(g.lang)
        else:
            label = f.label.get(g.lang) if f else text(f"reports.field.{path.field}", g.lang)
        control = {"name": name, "label": label, "value": args.get(name, "")}
        if funnel and name == "sales_process" and not prefix and not control["value"]:  # the funnel's default
            control["value"] = default_process(get_platform(), g.access, report_def.object) or ""
        labels = (value_labels(metadata, metadata.objects[path.object], path.field)
                  if path.type in ("picklist", "text") else {})  # options, sales processes, stages
        if path.type in ("date", "datetime"):
            low, high = args.get(f"{name}__from", ""), args.get(f"{name}__to", "")
            control.update(widget="dates", low=low, high=high,
                           options=[(r, text(f"reports.range.{r}", g.lang)) for r in DATE_RANGES])
            if low or high:
                filters[name] = {"from": low, "to": high}
            elif control["value"]:
                filters[name] = control["value"]
        elif labels:
            control.update(widget="select", options=[(value, label.get(g.lang)) for value, label in labels.items()])
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
    elif report_def.period is not None:  # the period the measures count in (拜访覆盖率: visited in it)
        controls.append(_period_control(args, filters, report_def.period))
    for control in controls:
        control["name"] = prefix + control["name"]
    return controls, filters


def _period_control(args: Mapping[str, str], filters: dict[str, Any], period: ReportPeriod | None = None) -> dict:
    """The `period` parameter's control: the funnel's, or a report's `period` (showing its default)."""
    low, high, value = args.get("period__from", ""), args.get("period__to", ""), args.get("period", "")
    if low or high:
        filters["period"] = {"from": low, "to": high}
    elif value:
        filters["period"] = value
    elif period is not None:
        value = period.default
    label = period.label.get(g.lang) if period is not None and period.label else text("reports.period", g.lang)
    return {"name": "period", "label": label, "value": value, "widget": "dates",
            "low": low, "high": high, "options": [(r, text(f"reports.range.{r}", g.lang)) for r in DATE_RANGES]}


def result_table(result: ReportResult) -> dict:
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
