"""The report builder (报表设计器): pick an object, dimensions (fields and lookup paths, date buckets, an
optional column dimension), measures, fixed filters and a chart; Run shows the table and chart from the
report engine; Save keeps it as a personal report; Export YAML downloads it as a `report_templates/` file.

(How it works: docs/engine.md, "objectplatform/web/pages_report_builder.py".)"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from markupsafe import Markup

from objectplatform.metadata import plain
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.reports import charts, personal, run_report
from objectplatform.runtime.reports.buckets import BUCKETS
from objectplatform.runtime.reports.paths import field_type
from objectplatform.runtime.reports.run import SCENES
from objectplatform.runtime.storage.tables import REFERENCE_TYPES

from .api_reports import yaml_file
from .current import get_platform
from .i18n import text
from .pages_base import bp
from .pages_reports import result_table
from .pages_view import NUMERIC

FUNCTIONS = ("count", "count_distinct", "sum", "avg", "min", "max")
SYSTEM = ("owner", "created_by", "created_at", "updated_by", "updated_at")
BLANK_ROWS = 2  # empty rows offered after the filled ones
UNNAMED = {"name": "unsaved", "label": {"zh": "未保存的报表", "en": "Unsaved report"}}


@bp.route("/reports/new", methods=["GET", "POST"])
def report_builder():
    return _builder(None)


@bp.route("/reports/<name>/edit", methods=["GET", "POST"])
def report_edit(name: str):
    return _builder(personal.editable(get_platform(), g.access, name))


@bp.post("/reports/<name>/delete")
def report_delete(name: str):
    personal.delete(get_platform(), g.access, name)
    flash(text("reports.deleted", g.lang), "success")
    return redirect(url_for("pages.reports"))


@bp.route("/reports/<name>/export.yaml")
def report_yaml(name: str):
    report = personal.find(get_platform(), g.access, name)
    g.access.require(report.object, "read")
    return yaml_file(report)


def _builder(editing: personal.PersonalReport | None):
    platform = get_platform()
    readable = [o for o in platform.metadata.objects.values() if g.access.can(o.name, "read")]
    errors: dict[str, list[str]] = {}
    result = None
    if request.method == "POST":
        data = definition_from(request.form)
        action = request.form.get("do", "run")
        try:
            # a run needs no name yet; saving and exporting do
            unnamed = {k: v for k, v in UNNAMED.items() if not data.get(k)} if action == "run" else {}
            checked = personal.check(platform, {**data, **unnamed}, g.access)
            if action == "yaml":
                return yaml_file(personal.unsaved(checked))
            if action == "save":
                saved = (personal.update(platform, g.access, editing.definition.name, checked) if editing
                         else personal.create(platform, g.access, checked))
                flash(text("reports.saved", g.lang), "success")
                return redirect(url_for("pages.report", name=saved.definition.name))
            result = run_report(platform, personal.unsaved(checked), access=g.access)
        except ValidationFailed as e:
            errors = e.fields
    elif editing is not None:
        data = plain(editing.definition.document)
    else:
        chosen = request.args.get("object")
        obj = chosen if any(o.name == chosen for o in readable) else (readable[0].name if readable else "")
        data = {"object": obj, "measures": [{"key": "count", "function": "count"}]}
    obj = data.get("object") if data.get("object") in platform.metadata.objects else ""
    return render_template(
        "pages/report_builder.html", editing=editing, form=form_from(data), errors=errors,
        errors_at=_errors_at(errors), objects=[(o.name, o.label.get(g.lang)) for o in readable],
        paths=path_choices(platform, obj, g.lang) if obj else [],
        functions=[(f, text(f"reports.function.{f}", g.lang)) for f in FUNCTIONS],
        buckets=[(b, text(f"reports.bucket.{b}", g.lang)) for b in BUCKETS],
        chart_types=[(c, text(f"reports.chart.{c}", g.lang)) for c in charts.CHARTS],
        scenes=[(s, text(f"reports.scene.{s}", g.lang)) for s in SCENES],
        table=result_table(result) if result else None,
        chart=Markup(charts.draw(result, g.lang)) if result and result.rows and result.chart else None,
        title=text("reports.builder", g.lang))


# --------------------------------------------------------------------------- form <-> definition


def definition_from(form: Mapping[str, str]) -> dict[str, Any]:
    """The builder's form as a report definition; blank rows are left out, keys made from the paths."""
    data: dict[str, Any] = {"name": form.get("name", "").strip(),
                            "label": {"zh": form.get("label_zh", "").strip(), "en": form.get("label_en", "").strip()},
                            "object": form.get("object", "")}
    data["label"] = {k: v for k, v in data["label"].items() if v}
    dimensions = [d for d in (_dimension(form, f"d{i}_") for i in _rows(form, "d")) if d]
    if dimensions:
        data["dimensions"] = dimensions
    if column := _dimension(form, "col_"):
        data["columns"] = column
    measures = [m for m in (_measure(form, i) for i in _rows(form, "m")) if m]
    if measures:
        data["measures"] = measures
    filters = {}
    for i in _rows(form, "f"):
        name = form.get(f"f{i}_name", "").strip()
        if name:
            filters[name] = _value(form.get(f"f{i}_value", ""))
    if filters:
        data["filters"] = filters
    if runtime := _list(form.get("runtime_filters", "")):
        data["runtime_filters"] = [{"field": f} for f in runtime]
    if form.get("scene"):
        data["scene"] = form["scene"]
    if sort := _list(form.get("sort", "")):
        data["sort"] = sort
    limit = form.get("limit", "").strip()
    if limit:
        data["limit"] = int(limit) if limit.isdigit() else limit
    data["totals"] = "totals" in form
    if form.get("chart_type"):
        chart: dict[str, Any] = {"type": form["chart_type"]}
        if form.get("chart_dimension", "").strip():
            chart["dimension"] = form["chart_dimension"].strip()
        chart["measures"] = _list(form.get("chart_measures", "")) or [m["key"] for m in measures[:1]]
        data["chart"] = chart
    return data


def _rows(form: Mapping[str, str], prefix: str) -> range:
    count = next(i for i in itertools.count() if not any(k.startswith(f"{prefix}{i}_") for k in form))
    return range(count)


def _key(text_: str) -> str:
    """A column key made from a path: `converted_opportunity.amount` -> `converted_opportunity_amount`."""
    return re.sub(r"[^a-z0-9_]+", "_", text_.lower()).strip("_")


def _dimension(form: Mapping[str, str], prefix: str) -> dict[str, Any] | None:
    field = form.get(f"{prefix}field", "").strip()
    if not field:
        return None
    bucket = form.get(f"{prefix}bucket", "")
    key = form.get(f"{prefix}key", "").strip() or _key(field + (f"_{bucket}" if bucket else ""))
    return {"key": key, "field": field, **({"bucket": bucket} if bucket else {})}


def _measure(form: Mapping[str, str], i: int) -> dict[str, Any] | None:
    function, field = form.get(f"m{i}_function", ""), form.get(f"m{i}_field", "").strip()
    if not function:
        return None
    key = form.get(f"m{i}_key", "").strip() or (_key(f"{function}_{field}") if field else function)
    measure: dict[str, Any] = {"key": key, "function": function, **({"field": field} if field else {})}
    label = form.get(f"m{i}_label", "").strip()
    if label:
        measure["label"] = {"zh": label, "en": label}
    return measure


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _value(raw: str) -> Any:
    """A filter value as typed: text, or JSON for a custom range ({"from": ..., "to": ...}) or a list."""
    raw = raw.strip()
    if raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def form_from(data: Mapping[str, Any]) -> dict[str, Any]:
    """A definition as the builder's rows of inputs, with blank rows to add more."""
    label = data.get("label") or {}
    blank_dimension = {"field": "", "bucket": "", "key": ""}
    dimensions = [{**blank_dimension, **d} for d in data.get("dimensions", ()) if isinstance(d, Mapping)]
    measures = [{"function": m.get("function", ""), "field": m.get("field", ""), "key": m.get("key", ""),
                 "label": (m.get("label") or {}).get(g.lang, "")}
                for m in data.get("measures", ()) if isinstance(m, Mapping)]
    filters = [(name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
               for name, value in (data.get("filters") or {}).items()]
    chart = data.get("chart") or {}
    column = data.get("columns")
    return {
        "name": data.get("name", ""), "label_zh": label.get("zh", ""), "label_en": label.get("en", ""),
        "object": data.get("object", ""),
        "dimensions": dimensions + [blank_dimension] * BLANK_ROWS,
        "column": {**blank_dimension, **column} if isinstance(column, Mapping) else blank_dimension,
        "measures": measures + [{"function": "", "field": "", "key": "", "label": ""}] * BLANK_ROWS,
        "filters": filters + [("", "")] * BLANK_ROWS,
        "runtime_filters": ", ".join(f.get("field", "") for f in data.get("runtime_filters", ())
                                     if isinstance(f, Mapping)),
        "scene": data.get("scene", "all"), "sort": ", ".join(map(str, data.get("sort", ()))),
        "limit": data.get("limit", ""), "totals": data.get("totals", True),
        "chart_type": chart.get("type", ""), "chart_dimension": chart.get("dimension", ""),
        "chart_measures": ", ".join(map(str, chart.get("measures", ()))),
    }


def _errors_at(errors: Mapping[str, list[str]]):
    """The messages whose JSON path is `prefix` or inside it (`measures[1]` holds `measures[1].field`)."""

    def at(*prefixes: str) -> list[str]:
        return [message for path, messages in errors.items() for message in messages
                if any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in prefixes)]

    return at


def path_choices(platform, obj_name: str, lang: str) -> list[tuple[str, str]]:
    """Paths to offer for `obj_name`: its fields, its lookups' fields, the records pointing at it and their
    numbers (one hop each way; longer paths can be typed)."""
    metadata, schema = platform.metadata, platform.schema
    obj = metadata.objects[obj_name]

    def stored(owner: str, name: str) -> bool:
        return len(schema[owner].columns.get(name) or ()) == 1 and (
            name not in metadata.objects[owner].fields or metadata.objects[owner].fields[name].type != "password")

    def label(owner: str, name: str) -> str:
        f = metadata.objects[owner].fields.get(name)
        return f.label.get(lang) if f else text(f"reports.field.{name}", lang)

    choices = []
    for name in [*obj.fields, *SYSTEM]:
        if not stored(obj_name, name):
            continue
        choices.append((name, label(obj_name, name)))
        f = obj.fields.get(name)
        target = f.to if f is not None else "user"
        if field_type(f, name) in REFERENCE_TYPES and target in metadata.objects:
            for other in metadata.objects[target].fields:
                if stored(target, other):
                    choices.append((f"{name}.{other}", f"{label(obj_name, name)} · {label(target, other)}"))
    for child in metadata.objects.values():
        for via in child.fields.values():
            if via.type in ("lookup", "master_detail") and via.to == obj_name:
                reverse = f"{child.name}({via.name})"
                choices.append((reverse, f"{child.label.get(lang)} ({via.label.get(lang)})"))
                choices += [(f"{reverse}.{n}", f"{child.label.get(lang)} ({via.label.get(lang)}) · {f.label.get(lang)}")
                            for n, f in child.fields.items() if field_type(f, n) in NUMERIC and stored(child.name, n)]
    return choices
