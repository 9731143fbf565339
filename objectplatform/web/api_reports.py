"""Reports in the REST API: the list, a run as JSON, the same run as CSV (UTF-8 with a BOM, for Excel) and as an
SVG chart. A run is one runtime call as the signed-in user (their data scope inside the SQL); the CSV and the
chart take the run-time filters as query parameters (`status=converted`, `created_at=this_month`,
`created_at__gte=2026-01-01`), the JSON run as `{"filters": {...}, "scene": "mine"}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from objectplatform.metadata import Definition
from objectplatform.runtime import BadRequest
from objectplatform.runtime.reports import ReportResult, available, charts, definition, run_report
from objectplatform.runtime.reports.run import TOTAL

from . import api, errors
from .app import get_platform
from .errors import json_response
from .export import BOM, _inert, _lines, header_language
from .pages_view import ORG_TIME

bp = Blueprint("api_reports", __name__, url_prefix="/api/v1")
errors.register(bp)
bp.before_request(api._authenticate)
QUERY_PARAMETERS = frozenset({"scene", "labels", "lang"})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def report_summary(report: Definition) -> dict:
    """A report as the list shows it: name, label, base object, engine, its columns' keys and run-time filters."""
    data = report.data
    return {
        "name": report.name,
        "label": api._label(report.label),
        "object": report.object,
        "engine": data.get("engine", "grouping"),
        "dimensions": [d["key"] for d in data.get("dimensions", ())],
        "measures": [m["key"] for m in data.get("measures", ())],
        "runtime_filters": [f["field"] for f in data.get("runtime_filters", ())],
        "scene": data.get("scene", "all"),
        "chart": data.get("chart"),
    }


def run_as_caller(name: str, filters: Mapping[str, Any], scene: str | None) -> ReportResult:
    """The report `name` run as the signed-in user; pages and API share it."""
    platform = get_platform()
    return run_report(platform, definition(platform.metadata, name), access=g.access, filters=filters, scene=scene)


def _query_filters() -> dict[str, str]:
    return api._filters(QUERY_PARAMETERS)


@bp.get("/reports")
def list_reports() -> Response:
    platform = get_platform()
    return json_response({"items": [report_summary(r) for r in available(platform.metadata, g.access)]})


@bp.post("/reports/<name>/run")
def run(name: str) -> Response:
    body = api._object_body(empty={})
    unknown = sorted(set(body) - {"filters", "scene"})
    if unknown:
        raise BadRequest(f"unknown key(s) {', '.join(unknown)}: send filters and scene",
                         {key: ["unknown key"] for key in unknown})
    return json_response(run_as_caller(name, body.get("filters") or {}, body.get("scene")).as_json())


@bp.get("/reports/<name>/export.csv")
def export(name: str) -> Response:
    lang = header_language(request.args.get("labels")) or "zh"
    result = run_as_caller(name, _query_filters(), request.args.get("scene"))
    day = datetime.now(ORG_TIME).strftime("%Y%m%d")
    response = Response(report_csv(result, lang), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{day}.csv"'
    return response


@bp.get("/reports/<name>/chart.svg")
def chart(name: str) -> Response:
    lang = header_language(request.args.get("lang")) or "zh"
    result = run_as_caller(name, _query_filters(), request.args.get("scene"))
    return Response(charts.draw(result, lang), mimetype="image/svg+xml")


def report_csv(result: ReportResult, lang: str) -> str:
    """The result as CSV text: a header of labels, the rows, then the totals row; a BOM so Excel reads UTF-8."""
    header = [c.label.get(lang) for c in result.columns]
    dims = {c.key for c in result.dimensions}
    body = [[_cell(result, c.key, row.get(c.key), lang, c.key in dims) for c in result.columns]
            for row in result.rows]
    if result.totals is not None:
        first = result.columns[0].key
        body.append([TOTAL.get(lang) if c.key == first and c.key in dims else
                     _cell(result, c.key, result.totals.get(c.key), lang, False) for c in result.columns])
    return BOM + _lines([header, *body])


def _cell(result: ReportResult, key: str, value: Any, lang: str, dimension: bool) -> str:
    if dimension:
        return _inert(charts.value_text(result, key, value, lang))
    if value is None:
        return ""
    return format(value, "f") if not isinstance(value, int | str) else _inert(str(value))
