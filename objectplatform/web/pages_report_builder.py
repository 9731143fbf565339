"""The report builder (报表设计器): pick an object, dimensions (fields and lookup paths by their labels, date
buckets, an optional column dimension), measures, fixed filters (an operator in words) and a chart; Run shows
the table and chart from the report engine, and so does the preview the page fetches as the form changes;
Save keeps it as a personal report; Export YAML downloads it as a `report_templates/` file.

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
from objectplatform.runtime.errors import BadRequest, ValidationFailed
from objectplatform.runtime.reports import charts, personal, run_report
from objectplatform.runtime.reports.buckets import BUCKETS
from objectplatform.runtime.reports.filters import DATE_RANGES, split
from objectplatform.runtime.reports.paths import field_type, resolve
from objectplatform.runtime.reports.run import SCENES
from objectplatform.runtime.storage.tables import REFERENCE_TYPES
from objectplatform.runtime.value_labels import value_labels

from .api_reports import yaml_file
from .current import get_platform
from .i18n import text
from .pages_base import bp, page_display
from .pages_reports import result_table
from .pages_view import NUMERIC

FUNCTIONS = ("count", "count_distinct", "sum", "avg", "min", "max")
SYSTEM = ("owner", "created_by", "created_at", "updated_by", "updated_at")
BLANK_ROWS = 2  # empty rows offered after the filled ones
SORT_ROWS = 2  # the sort keys offered: the first breaks ties of none, the second those of the first
REFERENCE_CHOICES = 200  # a reference filter offers the referenced records by title up to this many, else takes ids
UNNAMED = {"name": "unsaved", "label": {"zh": "未保存的报表", "en": "Unsaved report"}}
# a fixed filter's operators as the builder offers them, in words; `empty` and `not_empty` are `isnull`
OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "contains", "empty", "not_empty")
PARTS = {"name": "reports.name", "label": "reports.label_zh", "description": "reports.description_zh",
         "object": "reports.object", "dimensions": "reports.dimensions", "columns": "reports.column_dimension",
         "measures": "reports.measures", "filters": "reports.filters", "runtime_filters": "reports.runtime_filters",
         "scene": "reports.scene", "sort": "reports.sort", "limit": "reports.limit", "chart": "reports.chart"}


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
            # a run (or the page's preview) needs no name yet; saving and exporting do
            unnamed = {k: v for k, v in UNNAMED.items() if not data.get(k)} if action in ("run", "preview") else {}
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
        if action == "preview":
            return render_template("pages/_report_preview.html", **_preview(result, errors))
    elif editing is not None:
        data = plain(editing.definition.document)
    else:
        chosen = request.args.get("object")
        obj = chosen if any(o.name == chosen for o in readable) else (readable[0].name if readable else "")
        data = {"object": obj, "measures": [{"key": "count", "function": "count"}]}
    obj = data.get("object") if data.get("object") in platform.metadata.objects else ""
    paths = path_choices(platform, obj, g.lang) if obj else []
    value_of, value_sets = value_choices(platform, obj, paths) if obj else ({}, {})
    functions = [(f, text(f"reports.function.{f}", g.lang)) for f in FUNCTIONS]
    buckets = [(b, text(f"reports.bucket.{b}", g.lang)) for b in BUCKETS]
    form = form_from(data)
    dimensions, measures = column_choices(form, dict(c for _, choices in paths for c in choices), dict(buckets),
                                          dict(functions))
    return render_template(
        "pages/report_builder.html", editing=editing, form=form, errors_at=_errors_at(errors),
        objects=[(o.name, o.label.get(g.lang)) for o in readable],
        paths=paths, known_paths={path for _, choices in paths for path, _ in choices},
        value_of=value_of, value_sets=value_sets, dimension_columns=dimensions, measure_columns=measures,
        directions=[("asc", text("reports.sort_asc", g.lang)), ("desc", text("reports.sort_desc", g.lang))],
        functions=functions,
        operators=[(o, text(f"reports.operator.{o}", g.lang)) for o in OPERATORS],
        ranges=[(r, text(f"reports.range.{r}", g.lang)) for r in DATE_RANGES],
        buckets=buckets,
        chart_types=[(c, text(f"reports.chart.{c}", g.lang)) for c in charts.CHARTS],
        scenes=[(s, text(f"reports.scene.{s}", g.lang)) for s in SCENES],
        title=text("reports.builder", g.lang), **_preview(result, errors))


def _preview(result, errors: Mapping[str, list[str]]) -> dict[str, Any]:
    """What the builder shows below the form (and its live preview in place of it): the problems, each named by
    the part of the form it is in, or the run's chart and table."""
    return {"errors": errors,
            "report_problems": [(_part(path), message) for path, messages in errors.items() for message in messages],
            "table": result_table(result) if result else None,
            "chart": Markup(charts.figure(result, g.lang)) if result and result.rows and result.chart else None}


def _part(path: str) -> str:
    """A problem's JSON path as the form names its part: `measures[1].function` -> "Measures 2"."""
    match = re.match(r"([a-z_]+)(?:\[(\d+)\])?(?:\.(.+))?", path or "")
    if not match or match.group(1) not in PARTS:
        return path or "—"
    name, index, rest = match.groups()
    said = text(PARTS[name], g.lang)
    if index is not None:
        return f"{said} {int(index) + 1}"
    return f"{said}: {split(rest)[0]}" if name == "filters" and rest else said


# --------------------------------------------------------------------------- form <-> definition


def definition_from(form: Mapping[str, str]) -> dict[str, Any]:
    """The builder's form as a report definition; blank rows are left out, keys made from the paths."""
    data: dict[str, Any] = {"name": form.get("name", "").strip(),
                            "label": {"zh": form.get("label_zh", "").strip(), "en": form.get("label_en", "").strip()},
                            "object": form.get("object", "")}
    data["label"] = {k: v for k, v in data["label"].items() if v}
    description = {k: form.get(f"description_{k}", "").strip() for k in ("zh", "en")}
    if any(description.values()):
        data["description"] = {k: v for k, v in description.items() if v}
    dimensions = [d for d in (_dimension(form, f"d{i}_") for i in _rows(form, "d")) if d]
    if dimensions:
        data["dimensions"] = dimensions
    if column := _dimension(form, "col_"):
        data["columns"] = column
    measures = [m for m in (_measure(form, i) for i in _rows(form, "m")) if m]
    if measures:
        data["measures"] = measures
    filters = dict(f for f in (_filter(form, i) for i in _rows(form, "f")) if f)
    if filters:
        data["filters"] = filters
    runtime = [form.get(f"r{i}_field", "").strip() for i in _rows(form, "r")]
    if any(runtime):
        data["runtime_filters"] = [{"field": f} for f in runtime if f]
    if form.get("scene"):
        data["scene"] = form["scene"]
    sort = [("-" if form.get(f"s{i}_dir") == "desc" else "") + key
            for i in _rows(form, "s") if (key := form.get(f"s{i}_key", "").strip())]
    if sort:
        data["sort"] = sort
    limit = form.get("limit", "").strip()
    if limit:
        data["limit"] = int(limit) if limit.isdigit() else limit
    data["totals"] = "totals" in form
    if form.get("chart_type"):
        chart: dict[str, Any] = {"type": form["chart_type"]}
        if form.get("chart_dimension", "").strip():
            chart["dimension"] = form["chart_dimension"].strip()
        chart["measures"] = _all(form, "chart_measures") or [m["key"] for m in measures[:1]]
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


def _filter(form: Mapping[str, str], i: int) -> tuple[str, Any] | None:
    """A fixed filter row (field, operator in words, value) as the template's `path__op: value`; the values chosen
    by label (several for "one of") are their stored codes, joined by commas as one would type them."""
    path, op = form.get(f"f{i}_field", "").strip(), form.get(f"f{i}_op", "eq")
    if not path:
        return None
    if op in ("empty", "not_empty"):
        return f"{path}__isnull", op == "empty"
    values = [v for v in _all(form, f"f{i}_value", split_commas=False) if v.strip()]
    value = ",".join(v.strip() for v in values) if len(values) > 1 else (values[0] if values else "")
    return (path if op == "eq" else f"{path}__{op}"), _value(value)


def _all(form: Mapping[str, str], name: str, split_commas: bool = True) -> list[str]:
    """Every value the form posts under `name` (a multiple select's), each split at commas unless told not to."""
    posted = form.getlist(name) if hasattr(form, "getlist") else [form.get(name, "")]
    if not split_commas:
        return posted
    return [part.strip() for value in posted for part in value.split(",") if part.strip()]


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
    label, description = data.get("label") or {}, data.get("description") or {}
    blank_dimension = {"field": "", "bucket": "", "key": ""}
    dimensions = [{**blank_dimension, **d} for d in data.get("dimensions", ()) if isinstance(d, Mapping)]
    measures = [{"function": m.get("function", ""), "field": m.get("field", ""), "key": m.get("key", ""),
                 "label": (m.get("label") or {}).get(g.lang, "")}
                for m in data.get("measures", ()) if isinstance(m, Mapping)]
    filters = [_filter_row(name, value) for name, value in (data.get("filters") or {}).items()]
    blank_filter = {"field": "", "op": "eq", "value": "", "chosen": []}
    sort = [{"key": str(k).lstrip("-"), "dir": "desc" if str(k).startswith("-") else "asc"}
            for k in data.get("sort", ()) if str(k).strip("-")]
    chart = data.get("chart") or {}
    column = data.get("columns")
    return {
        "name": data.get("name", ""), "label_zh": label.get("zh", ""), "label_en": label.get("en", ""),
        "description_zh": description.get("zh", ""), "description_en": description.get("en", ""),
        "object": data.get("object", ""),
        "dimensions": dimensions + [blank_dimension] * BLANK_ROWS,
        "column": {**blank_dimension, **column} if isinstance(column, Mapping) else blank_dimension,
        "measures": measures + [{"function": "", "field": "", "key": "", "label": ""}] * BLANK_ROWS,
        "filters": filters + [blank_filter] * BLANK_ROWS,
        "runtime_filters": [f.get("field", "") for f in data.get("runtime_filters", ()) if isinstance(f, Mapping)]
        + [""] * BLANK_ROWS,
        "scene": data.get("scene", "all"),
        "sort": (sort + [{"key": "", "dir": "asc"}] * SORT_ROWS)[:max(SORT_ROWS, len(sort))],
        "limit": data.get("limit", ""), "totals": data.get("totals", True),
        "chart_type": chart.get("type", ""), "chart_dimension": chart.get("dimension", ""),
        "chart_measures": [str(m) for m in chart.get("measures", ())],
    }


def _filter_row(name: str, value: Any) -> dict[str, str]:
    """A template's `path__op: value` as the builder's row: field, operator in words, value as typed."""
    path, op = split(name)
    if op == "isnull":
        return {"field": path, "op": "empty" if str(value).lower() in ("true", "1") else "not_empty", "value": "",
                "chosen": []}
    typed = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    chosen = [str(v) for v in value] if isinstance(value, list) else [v.strip() for v in str(value).split(",")] \
        if op == "in" else [str(value)]
    return {"field": path, "op": op, "value": typed, "chosen": [c for c in chosen if c]}


def _errors_at(errors: Mapping[str, list[str]]):
    """The messages whose JSON path is `prefix` or inside it (`measures[1]` holds `measures[1].field`)."""

    def at(*prefixes: str) -> list[str]:
        return [message for path, messages in errors.items() for message in messages
                if any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in prefixes)]

    return at


def path_choices(platform, obj_name: str, lang: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The fields to offer for `obj_name`, by label in groups: its own fields, each lookup's fields, and the
    numbers of the records pointing at it (one hop each way; a longer path an edited report holds is kept).
    Each choice says where its field is: "销售线索 › 线索状态", "市场活动 › 活动名称"."""
    metadata, schema = platform.metadata, platform.schema
    obj = metadata.objects[obj_name]

    def stored(owner: str, name: str) -> bool:
        return len(schema[owner].columns.get(name) or ()) == 1 and (
            name not in metadata.objects[owner].fields or metadata.objects[owner].fields[name].type != "password")

    def label(owner: str, name: str) -> str:
        f = metadata.objects[owner].fields.get(name)
        return f.label.get(lang) if f else text(f"reports.field.{name}", lang)

    def fields_of(owner: str, prefix: str, said: str, names) -> list[tuple[str, str]]:
        return [(f"{prefix}{n}", f"{said} › {label(owner, n)}") for n in names if stored(owner, n)]

    own_label = obj.label.get(lang)
    groups = [(own_label, fields_of(obj_name, "", own_label, [*obj.fields, *SYSTEM]))]
    for name in [*obj.fields, *SYSTEM]:
        f = obj.fields.get(name)
        target = f.to if f is not None else "user"
        if stored(obj_name, name) and field_type(f, name) in REFERENCE_TYPES and target in metadata.objects:
            said = label(obj_name, name)
            targets = metadata.objects[target].fields
            groups.append((f"{own_label} › {said}", fields_of(target, f"{name}.", said, targets)))
    for child in metadata.objects.values():
        for via in child.fields.values():
            if via.type in ("lookup", "master_detail") and via.to == obj_name:
                reverse, said = f"{child.name}({via.name})", f"{child.label.get(lang)} ({via.label.get(lang)})"
                numbers = [n for n, f in child.fields.items() if field_type(f, n) in NUMERIC]
                groups.append((said, [(reverse, f"{said} › {text('reports.records', lang)}"),
                                      *fields_of(child.name, f"{reverse}.", said, numbers)]))
    return groups


def value_choices(platform, obj_name: str, paths) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """The values a filter on each offered path is chosen from by label, stored as codes: {path: its set} and
    {set: [(stored value, label)]}. A picklist's options, a sales process's, stage's or task's keys (one set per
    field), and the records a reference points at by title when the viewer may read at most REFERENCE_CHOICES of
    them (one set per object); any other path's value is typed."""
    metadata, display = platform.metadata, page_display()
    value_of: dict[str, str] = {}
    sets: dict[str, list[tuple[str, str]] | None] = {}
    for _, choices in paths:
        for path, _label in choices:
            try:
                found = resolve(metadata, obj_name, path)
            except BadRequest:
                continue
            if found.fans_out:
                continue
            if found.type in REFERENCE_TYPES and found.target in metadata.objects:
                name = found.target
                if name not in sets:
                    sets[name] = _records_by_title(display, name)
            else:
                name = f"{found.object}.{found.field}"
                if name not in sets:
                    labels = value_labels(metadata, metadata.objects[found.object], found.field)
                    sets[name] = [(value, label.get(g.lang)) for value, label in labels.items()] or None
            if sets[name]:
                value_of[path] = name
    return value_of, {name: values for name, values in sets.items() if values}


def _records_by_title(display, obj_name: str) -> list[tuple[str, str]] | None:
    """(id, title) of the records of `obj_name` the viewer may read, by title; None when they may read none or more
    than REFERENCE_CHOICES."""
    titles = display.titles_to_choose(obj_name, REFERENCE_CHOICES + 1)
    if not titles or len(titles) > REFERENCE_CHOICES:
        return None
    return sorted(titles.items(), key=lambda pair: pair[1])


def column_choices(form: Mapping[str, Any], path_labels: Mapping[str, str], buckets: Mapping[str, str],
                   functions: Mapping[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The report's columns as the sort and chart settings offer them, (key, label): its dimensions (the column
    dimension last) and its measures, keyed as definition_from keys them (the page's script does the same as the
    rows change)."""
    dimensions = []
    for d in [*form["dimensions"], form["column"]]:
        if d["field"]:
            key = d["key"] or _key(d["field"] + (f"_{d['bucket']}" if d["bucket"] else ""))
            said = path_labels.get(d["field"], d["field"])
            dimensions.append((key, f"{said} ({buckets[d['bucket']]})" if d["bucket"] in buckets else said))
    measures = []
    for m in form["measures"]:
        if m["function"]:
            key = m["key"] or (_key(f"{m['function']}_{m['field']}") if m["field"] else m["function"])
            said = functions.get(m["function"], m["function"])
            measures.append((key, m["label"] or (f"{said} · {path_labels.get(m['field'], m['field'])}" if m["field"]
                                                  else said)))
    return dimensions, measures
