"""Reports in the REST API: the list, a run as JSON, the same run as CSV (UTF-8 with a BOM, for Excel) and as an
SVG chart. A run is one runtime call as the signed-in user (their data scope inside the SQL); the CSV and the
chart take the run-time filters as query parameters (`status=converted`, `created_at=this_month`,
`created_at__gte=2026-01-01`), the JSON run as `{"filters": {...}, "scene": "mine"}`, with
`"compare": {"filters": {...}}` for a second run side by side (runtime/reports/compare.py).

(How it works: docs/engine.md, "objectplatform/web/api_reports.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from objectplatform.metadata import Label, Report, plain
from objectplatform.runtime import BadRequest, Forbidden
from objectplatform.runtime.errors import Message
from objectplatform.runtime.reports import ReportResult, charts, definition, personal, run_report
from objectplatform.runtime.reports.compare import side_by_side
from objectplatform.runtime.reports.run import TOTAL

from . import api, errors
from .current import get_platform
from .errors import json_response
from .export import BOM, csv_lines, header_language, inert

bp = Blueprint("api_reports", __name__, url_prefix="/api/v1")
errors.register(bp)
bp.before_request(api.authenticate)
QUERY_PARAMETERS = frozenset({"scene", "labels", "lang"})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def report_summary(report: Report) -> dict:
    """A report as the list shows it: name, label, folder, description, base object, engine, its columns' keys,
    run-time filters and whether it is the caller's personal report."""
    return {
        "name": report.name,
        "personal": personal.is_personal(report),
        "label": api.label_json(report.label),
        "folder": report.folder,
        "description": api.label_json(report.description) if report.description else None,
        "object": report.object,
        "engine": report.engine,
        "dimensions": [d.key for d in report.dimensions],
        "measures": [m.key for m in report.measures],
        "runtime_filters": [f.field for f in report.runtime_filters],
        "period": report.period.default if report.period else None,
        "scene": report.scene,
        "chart": report.chart.as_json() if report.chart else None,
    }


SIDES = (Label("A", "A"), Label("B", "B"))


def run_as_caller(name: str, filters: Mapping[str, Any], scene: str | None,
                  compare: Mapping[str, Any] | None = None, sides: tuple[Label, Label] = SIDES) -> ReportResult:
    """The report `name` (the caller's personal one first) run as the signed-in user; with `compare`, run
    again with those filters and both runs side by side. Pages and API share it."""
    platform = get_platform()
    report = personal.find(platform, g.access, name)
    result = run_report(platform, report, access=g.access, filters=filters, scene=scene)
    if compare is None:
        return result
    other = run_report(platform, report, access=g.access, filters=compare, scene=scene)
    return side_by_side(result, other, sides)


def report_detail(report: Report) -> dict:
    """A report with its whole definition, as the builder edits it."""
    return {**report_summary(report), "definition": {"kind": "report", **plain(report.document)}}


def _query_filters() -> dict[str, str]:
    return api.query_filters(QUERY_PARAMETERS)


@bp.get("/reports")
def list_reports() -> Response:
    platform = get_platform()
    return json_response({"items": [report_summary(r) for r in personal.listed(platform, g.access)]})


@bp.post("/reports")
def create_report() -> Response:
    saved = personal.create(get_platform(), g.access, api.object_body())
    return json_response(report_detail(saved.definition), status=201)


@bp.get("/reports/<name>")
def get_report(name: str) -> Response:
    platform = get_platform()
    saved = personal.get(platform, g.access, name)  # as saved, even if a metadata change broke it: to fix it
    report = saved.definition if saved else definition(platform.metadata, name)
    g.access.require(report.object, "read")
    return json_response(report_detail(report))


@bp.put("/reports/<name>")
def replace_report(name: str) -> Response:
    saved = personal.update(get_platform(), g.access, name, api.object_body())
    return json_response(report_detail(saved.definition))


@bp.delete("/reports/<name>")
def delete_report(name: str) -> Response:
    personal.delete(get_platform(), g.access, name)
    return Response(status=204)


@bp.get("/reports/<name>/export.yaml")
def export_yaml(name: str) -> Response:
    report = personal.find(get_platform(), g.access, name)
    g.access.require(report.object, "read")
    return yaml_file(report)


def yaml_file(report: Report) -> Response:
    """The report as a file for report_templates/, for administrators (it is how a report becomes a shipped
    template: the site's metadata is theirs to change); 403 for anyone else."""
    if not g.access.is_admin:
        raise Forbidden(Message("report.yaml_admins_only", "exporting a report as YAML is for administrators"))
    response = Response(yaml_text(report), mimetype="application/yaml")
    response.headers["Content-Disposition"] = f'attachment; filename="{report.name}.yaml"'
    return response


def yaml_text(report: Report) -> str:
    """The report as a file for report_templates/, saying where it came from."""
    platform = get_platform()
    day = platform.clock.today(platform.settings.zone).isoformat()
    return personal.as_yaml(report, f"{report.label.zh} ({report.label.en}): exported by {g.access.username} "
                                    f"on {day}; copy into report_templates/ to ship it")


@bp.post("/reports/<name>/run")
def run(name: str) -> Response:
    body = api.object_body(empty={})
    unknown = sorted(set(body) - {"filters", "scene", "compare"})
    if unknown:
        raise BadRequest(Message("report.unknown_keys", "unknown key(s) {keys}: send filters, scene and compare",
                                 keys=", ".join(unknown)),
                         {key: [Message("report.unknown_key", "unknown key")] for key in unknown})
    compare = body.get("compare")
    if compare is not None and (not isinstance(compare, dict) or set(compare) - {"filters"}
                                or not isinstance(compare.get("filters") or {}, dict)):
        raise BadRequest(Message("report.bad_compare", "compare: send {{\"filters\": {{...}}}} for the second run"),
                         {"compare": [Message("report.compare_not_filters", "must be {{filters}}")]})
    result = run_as_caller(name, body.get("filters") or {}, body.get("scene"),
                           None if compare is None else compare.get("filters") or {})
    return json_response(result.as_json())


@bp.get("/reports/<name>/export.csv")
def export(name: str) -> Response:
    lang = header_language(request.args.get("labels")) or "zh"
    result = run_as_caller(name, _query_filters(), request.args.get("scene"))
    platform = get_platform()
    day = platform.clock.today(platform.settings.zone).strftime("%Y%m%d")
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
    return BOM + csv_lines([header, *body])


def _cell(result: ReportResult, key: str, value: Any, lang: str, dimension: bool) -> str:
    if dimension:
        return inert(charts.value_text(result, key, value, lang))
    if value is None:
        return ""
    return format(value, "f") if not isinstance(value, int | str) else inert(str(value))
