"""The home page: the signed-in user's role dashboard (runtime/dashboards.py), one runtime call per widget, then
the reports they pinned; pinning and unpinning a report. A user whose roles have no dashboard gets the tiles
of the objects they may read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from markupsafe import Markup

from objectplatform.metadata import Widget
from objectplatform.runtime import dashboards
from objectplatform.runtime.errors import NotFound, ValidationFailed
from objectplatform.runtime.reports import charts

from .api_reports import run_as_caller
from .current import get_platform
from .i18n import N_, text
from .pages_base import bp, local_path, page_display
from .pages_reports import result_table
from .pages_view import NUMERIC, field_label, field_type, local_time

PERIODS = {
    "this_month": N_("home.previous_month"),
    "this_quarter": N_("home.previous_quarter"),
    "this_year": N_("home.previous_year"),
}


@bp.route("/")
def home():
    platform = get_platform()
    dashboard = dashboards.home_of(platform.metadata, g.access)
    widgets = []
    if dashboard is not None:
        widgets = [_widget(w) for w in dashboard.widgets if dashboards.can_see(w, platform.metadata, g.access)]
    pins = [view for name in dashboards.pinned(platform, g.access) if (view := _pinned(name)) is not None]
    return render_template(
        "pages/home.html",
        dashboard=dashboard,
        widgets=widgets,
        pins=pins,
        title=dashboard.label.get(g.lang) if dashboard else text("nav.home", g.lang),
    )


def _widget(widget: Widget) -> dict:
    """What the template draws for one widget, computed by its one runtime call."""
    result = dashboards.run_widget(get_platform(), widget, g.access)
    view: dict[str, Any] = {"type": widget.type, "title": widget.title.get(g.lang), "span": widget.span}
    if widget.type == "kpi":
        view.update(value=_amount(result.value), previous=None, change=None)
        if widget.period is not None:
            view["previous"] = text(PERIODS[widget.period], g.lang, value=_amount(result.previous))
            view["change"] = None if result.change is None else (result.change >= 0, f"{abs(result.change)}%")
        view["link"] = url_for("pages.report", name=widget.report)
    elif widget.type in ("chart", "table"):
        view.update(_report_view(result, widget.type), link=url_for("pages.report", name=widget.report))
    elif widget.type == "todos":
        view.update(
            total=result.total,
            link=url_for("pages.todos"),
            rows=[
                {
                    "title": text("todos.group", g.lang, label=group.label.get(g.lang), count=group.count),
                    "when": _when(group.newest),
                    "link": url_for("pages.todos", rule=group.rule),
                }
                for group in result.groups
            ]
            + [
                {
                    "title": t.title_en if g.lang == "en" else t.title_zh,
                    "when": _when(t.created_at),
                    "link": url_for("pages.record", obj=t.object, id=t.record_id)
                    if t.object and t.record_id and g.access.can(t.object, "read")
                    else None,
                }
                for t in result.items
            ],
        )
    else:
        view.update(_listing(widget, result))
    return view


def _report_view(result, kind: str) -> dict:
    """A chart, a table (saying how many of its rows it shows when not all), no rows, or, for a table of one row
    without totals (my target this month), that row as figures: its dimensions' values as a caption over a grid of
    each measure's label and value, which fits a widget at any width where a table of many columns would not."""
    if kind == "chart" and result.rows:
        return {"chart": Markup(charts.figure(result, g.lang))}  # ours: every text in it is escaped
    table = result_table(result)
    if not table["rows"]:
        return {"empty": True}  # no row: the message alone, not the headers of a table wider than the widget
    if len(table["rows"]) != 1 or table["totals"]:
        if result.all_rows is None:
            return {"table": table}
        # the first rows only, under a totals row of them all: say so, or the figures seem not to add up
        return {"table": table, "showing": text("home.showing_rows", g.lang, shown=f"{len(table['rows']):,}",
                                                total=f"{result.all_rows:,}")}
    cells = list(zip(table["headers"], table["rows"][0], strict=True))
    return {"figures": {
        "caption": " · ".join(value for (_, _, numeric), value in cells if not numeric and value),
        "items": [(key, label, value) for (key, label, numeric), value in cells if numeric],
    }}


def _listing(widget: Widget, result: dashboards.Listing) -> dict:
    obj = get_platform().metadata.objects[result.object]
    mask = get_platform().records.mask(obj.name, g.access)
    columns = [name for name in widget.columns if mask.visible(name)]
    display = page_display()
    display.want(obj, result.items, columns)
    rows = [
        {
            "link": url_for("pages.record", obj=obj.name, id=r["id"]),
            "cells": [
                display.text(obj, columns[0], r.get(columns[0])) or display.record_title(obj, r),
                *(display.html(obj, name, r.get(name)) for name in columns[1:]),
            ],
        }
        for r in result.items
    ]
    return {
        "headers": [field_label(obj, name, g.lang) for name in columns],
        "numeric": [field_type(obj, name) in NUMERIC for name in columns],
        "rows": rows,
        "total": result.total if result.total_is_exact else text("list.about", g.lang, total=result.total),
        "link": url_for("pages.list_records", obj=obj.name),
    }


def _pinned(name: str) -> dict | None:
    """A pinned report as a chart (when it draws one) or a table; None when it is gone or no longer runs."""
    try:
        result = run_as_caller(name, {}, None)
    except (NotFound, ValidationFailed):
        return None
    return {
        "name": name,
        "title": result.label.get(g.lang),
        "link": url_for("pages.report", name=name),
        **_report_view(result, "chart" if result.chart else "table"),
    }


def _amount(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _when(moment) -> str:
    return local_time(moment, g.zone).strftime("%m-%d %H:%M")


@bp.route("/reports/<name>/pin", methods=["POST"])
def pin_report(name: str):
    dashboards.pin(get_platform(), g.access, name)
    flash(text("home.pinned", g.lang), "success")
    return redirect(local_path(request.form.get("next")) or url_for("pages.home"))


@bp.route("/reports/<name>/unpin", methods=["POST"])
def unpin_report(name: str):
    dashboards.unpin(get_platform(), g.access, name)
    flash(text("home.unpinned", g.lang), "success")
    return redirect(local_path(request.form.get("next")) or url_for("pages.home"))
