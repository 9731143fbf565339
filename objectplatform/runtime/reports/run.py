"""Running a report for one caller: its template's filters plus the run-time ones, the scene, the caller's
data scope, then the rows and the totals row (and for a matrix, its cells), each one SQL statement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from objectplatform.metadata import Chart, Label, Metadata, Report, ReportDimension, ReportMeasure

from ..errors import BadRequest, Message, NotFound, ValidationFailed
from ..permissions import Access, Org
from ..records.query import InvalidFilter
from ..storage.engine import reading
from ..storage.tables import REFERENCE_TYPES
from ..value_labels import value_labels
from .compile import Compiler, Dimension, Joins, Key, Measure
from .filters import condition, date_range, split
from .masking import report_mask
from .paths import FieldPath, resolve
from .summary import summary_compiler

SCENES = ("all", "mine", "subordinates")
TOTAL = Label("合计", "Total")
FUNCTION_LABELS = {
    "count": Label("数量", "Count"), "count_distinct": Label("去重计数", "Distinct count"),
    "sum": Label("合计", "Sum"), "avg": Label("平均", "Average"), "min": Label("最小", "Minimum"),
    "max": Label("最大", "Maximum"),
}
AVG_PLACES = Decimal("0.01")
SYSTEM_LABELS = {  # the columns every object has, for a dimension or measure the template does not label
    "owner": Label("负责人", "Owner"), "created_by": Label("创建人", "Created by"),
    "created_at": Label("创建时间", "Created at"), "updated_by": Label("最后修改人", "Updated by"),
    "updated_at": Label("最后修改时间", "Updated at"), "version": Label("版本", "Version"),
}


@dataclass
class Column:
    """One column of a report's result: its key, label, value type and, for a dimension, its path."""

    key: str
    label: Label
    type: str
    path: FieldPath | None = None
    measure: str | None = None  # a measure's function
    of: str | None = None  # a matrix cell column: the key of the measure it shows
    column_value: Any = None  # a matrix cell column: the column dimension's value

    def as_json(self) -> dict:
        return {"key": self.key, "label": {"zh": self.label.zh, "en": self.label.en}, "type": self.type}


@dataclass
class ReportResult:
    """What a run returns, as API.md shows it: columns, rows and the totals row."""

    name: str
    label: Label
    columns: list[Column]
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None
    dimensions: list[Column] = field(default_factory=list)
    measures: list[Column] = field(default_factory=list)
    chart: Chart | None = None
    value_labels: dict[str, dict[Any, Label]] = field(default_factory=dict)  # key -> value -> its label
    all_rows: int | None = None  # how many rows the report has when `rows` holds only its first (a widget's)

    def as_json(self) -> dict:
        return {"columns": [c.as_json() for c in self.columns], "rows": self.rows, "totals": self.totals}


def definition(metadata: Metadata, name: str) -> Report:
    report = metadata.reports.get(name)
    if report is None:
        raise NotFound(Message("report.unknown", "unknown report {report}", report=name))
    return report


def available(metadata: Metadata, access: Access | None) -> list[Report]:
    """The reports whose base object the caller may read, by name."""
    return [r for _, r in sorted(metadata.reports.items())
            if access is None or access.can(r.object, "read")]


def run_report(platform, report: Report, *, access: Access | None, filters: Mapping[str, Any] | None = None,
               scene: str | None = None, now: datetime | None = None) -> ReportResult:
    """Run `report` as `access` (None: unrestricted, for the CLI and benchmarks) with run-time `filters`.

    Raises ValidationFailed naming every bad filter, BadRequest for a bad scene, Forbidden when the
    caller may not read the base object.
    """
    if access is not None:
        access.require(report.object, "read")
    if filters is not None and not isinstance(filters, Mapping):
        raise BadRequest(Message("report.filters_not_an_object", "filters: must be an object of field -> value"),
                         {"filters": [Message("report.not_an_object", "must be an object")]})
    if engine := platform.registry.report_engines.get(report.engine):
        return engine(platform, report, access=access, filters=filters, scene=scene, now=now)
    now = (now or platform.clock.now()).astimezone(platform.settings.zone)
    metadata, base = platform.metadata, report.object
    filters, period = run_period(report, filters or {}, now)
    dimensions = [_dimension(metadata, base, d) for d in report.dimensions]
    across = _dimension(metadata, base, report.columns) if report.columns else None
    measures = [_measure(metadata, base, m, period) for m in report.measures if m.expression is None]
    computed = [m for m in report.measures if m.expression is not None]
    mask = report_mask(platform, access)
    with reading(platform.read_engine) as conn:
        where = report_conditions(platform, report, filters, scene or report.scene, access, now, conn)
        compiler = Compiler(metadata, platform.schema, conn.dialect.name, platform.settings.time_zone, base, where,
                            data_scope(access), mask, now)
        compiler = summary_compiler(platform, report, compiler, access, [*dimensions, *([across] if across else [])],
                                    measures) or compiler
        sort = [(k.lstrip("-"), k.startswith("-")) for k in report.sort]
        limit = report.limit
        dim_columns = [_dimension_column(metadata, d, spec) for d, spec in zip(dimensions, report.dimensions,
                                                                               strict=True)]
        measure_columns = [_measure_column(metadata, m, spec) for m, spec in zip(
            measures, [m for m in report.measures if m.expression is None], strict=True)]
        want_totals = report.totals
        if across is None:
            rows = _fetch(conn, compiler.statement(dimensions, measures, sort, limit), measure_columns)
            totals = _fetch(conn, compiler.statement([], measures), measure_columns)[0] if want_totals else None
            for row in [*rows, *([totals] if totals else [])]:
                for spec in computed:
                    row[spec.key] = _computed(spec, row, now)
            if totals and (summed := [m for m in computed if m.total == "sum"]):
                every = rows if limit is None or len(rows) < limit else _fetch(
                    conn, compiler.statement(dimensions, measures), measure_columns)  # the rows a limit left out too
                for spec in summed:
                    totals[spec.key] = sum((v for r in every if (v := _computed(spec, r, now)) is not None),
                                           Decimal(0)).quantize(AVG_PLACES)
            measure_columns += [Column(m.key, m.label or Label(m.key, m.key), "number") for m in computed]
            measure_columns = [next(c for c in measure_columns if c.key == m.key) for m in report.measures]
            columns = [*dim_columns, *measure_columns]
        else:
            columns, rows, totals = _matrix(conn, compiler, dimensions, across, measures, sort, limit,
                                            dim_columns, measure_columns,
                                            _dimension_column(metadata, across, report.columns),
                                            dimension_labels(metadata, across))
    labels = {d.key: dimension_labels(metadata, d) for d in [*dimensions, *([across] if across else [])]}
    return ReportResult(report.name, report.label, columns, rows, totals, dim_columns, measure_columns,
                        report.chart, value_labels={k: v for k, v in labels.items() if v})


def dimension_labels(metadata: Metadata, d: Dimension) -> dict[Any, Label]:
    """The labels of a dimension's values (an option's, a sales process's or stage's), for the faces that show
    labels; none for a date bucket."""
    if d.bucket:
        return {}
    return value_labels(metadata, metadata.objects[d.path.object], d.path.field)


def run_period(report: Report, filters: Mapping[str, Any], now: datetime) -> tuple[dict[str, Any], Any]:
    """The run-time filters without `period`, and the date range the report's period measures count in (its
    default unless the run names one; None for a report without a period); 422 for a range that is none."""
    filters = dict(filters)
    if report.period is None:
        return filters, None
    period = filters.pop("period", None) or report.period.default
    try:
        date_range(period, now)
    except InvalidFilter as e:
        raise ValidationFailed({"period": [e.args[0]]}) from None
    return filters, period


def _measure(metadata: Metadata, base: str, spec: ReportMeasure, period: Any) -> Measure:
    """A template's measure with its paths resolved: from the base object, or from the object it matches; a
    period measure keeps the records whose `period` field falls in `period`."""
    measured = spec.object or base
    path = resolve(metadata, measured, spec.field) if spec.field else None
    target = path.object if path is not None else measured  # the object of the records measured
    filters = tuple((resolve(metadata, target, text), op, value)
                    for text, op, value in ((*split(name), value) for name, value in spec.filters.items()))
    if spec.period is not None:
        filters += ((resolve(metadata, target, spec.period), "eq", period),)
    match = tuple(Key(resolve(metadata, measured, k.field), resolve(metadata, base, k.equals), k.bucket,
                      k.within_days) for k in spec.match)
    return Measure(spec.key, spec.function, path, filters, spec.object, match)


def _computed(spec: ReportMeasure, row: Mapping[str, Any], now: datetime) -> Any:
    """An expression measure's value in one row: two decimal places, None where it divides by zero."""
    value = spec.expression.evaluate(row, now)
    return None if value is None else Decimal(value).quantize(AVG_PLACES)


def _dimension(metadata: Metadata, base: str, spec: ReportDimension) -> Dimension:
    return Dimension(spec.key, resolve(metadata, base, spec.field), spec.bucket)


def _field_label(metadata: Metadata, path: FieldPath) -> Label:
    f = metadata.objects[path.object].fields.get(path.field)
    if f is not None:
        return f.label
    if path.field == "id":
        return metadata.objects[path.object].label
    return SYSTEM_LABELS.get(path.field, Label(path.field, path.field))


def _dimension_column(metadata: Metadata, d: Dimension, spec: ReportDimension) -> Column:
    kind = "text" if d.bucket or d.path.type in REFERENCE_TYPES else d.path.type
    return Column(d.key, spec.label or _field_label(metadata, d.path), kind, d.path)


def _measure_column(metadata: Metadata, m: Measure, spec: ReportMeasure) -> Column:
    if m.function in ("count", "count_distinct"):
        kind = "integer"
    elif m.function == "avg" or m.path.type == "rollup":
        kind = "number"
    else:
        kind = m.path.type
    fallback = FUNCTION_LABELS[m.function] if m.path is None else _field_label(metadata, m.path)
    return Column(m.key, spec.label or fallback, kind, m.path, measure=m.function)


def _fetch(conn: sa.Connection, stmt: sa.Select, measures: list[Column]) -> list[dict[str, Any]]:
    """The rows as {key: value}; averages to two places, every other value as the database computed it."""
    result = conn.execute(stmt)
    keys = list(result.keys())
    # all rows in one fetch, each zipped with the keys: a row's _mapping costs more than the query's own work
    rows = [dict(zip(keys, row, strict=True)) for row in result.all()]
    averages = [m.key for m in measures if m.measure == "avg"]
    for row in rows if averages else ():
        for key in averages:
            if row.get(key) is not None:
                row[key] = Decimal(row[key]).quantize(AVG_PLACES)
    return rows


def _matrix(conn, compiler: Compiler, dimensions, across: Dimension, measures, sort, limit, dim_columns,
            measure_columns, across_column: Column, across_labels: Mapping[Any, Label]):
    """A matrix: one column per value of `across` and measure (headed by the value's label), then each row's
    totals; the totals row holds each column's totals and the grand totals. Four statements: cells, row
    totals, column totals, grand."""
    row_keys = [d.key for d in dimensions]
    by_row = _fetch(conn, compiler.statement(dimensions, measures, sort, limit), measure_columns)
    by_column = _fetch(conn, compiler.statement([across], measures), measure_columns)
    cells = _fetch(conn, compiler.statement([*dimensions, across], measures), measure_columns)
    grand = _fetch(conn, compiler.statement([], measures), measure_columns)[0]
    values = [r[across.key] for r in by_column]
    columns = list(dim_columns)
    for value in values:
        for m in measure_columns:
            shown = "" if value is None else str(value)
            named = across_labels.get(value) or Label(shown, shown)
            columns.append(Column(f"{m.key}__{shown}",
                                  Label(f"{named.zh} · {m.label.zh}", f"{named.en} · {m.label.en}"),
                                  m.type, m.path, m.measure, m.key, value))
    columns += [Column(m.key, Label(f"{TOTAL.zh} · {m.label.zh}", f"{TOTAL.en} · {m.label.en}"), m.type, m.path,
                       m.measure) for m in measure_columns]
    index = {tuple(c[k] for k in row_keys) + (c[across.key],): c for c in cells}
    rows, totals = [], {}
    for r in by_row:
        row = {k: r[k] for k in row_keys}
        for c in columns[len(dim_columns):]:
            if c.of is None:
                row[c.key] = r[c.key]
            else:
                cell = index.get(tuple(r[k] for k in row_keys) + (c.column_value,))
                row[c.key] = _empty(c) if cell is None else cell[c.of]
        rows.append(row)
    for c in columns[len(dim_columns):]:
        if c.of is None:
            totals[c.key] = grand[c.key]
        else:
            totals[c.key] = next(r for r in by_column if r[across.key] == c.column_value)[c.of]
    return columns, rows, totals


def _empty(column: Column) -> Any:
    return 0 if column.measure in ("count", "count_distinct", "sum") else None


def data_scope(access: Access | None):
    """The caller's data scope as (object, table) -> condition; none for an unrestricted run."""
    if access is None:
        return lambda obj, table: None
    return access.scope


def report_conditions(platform, report: Report, runtime: Mapping[str, Any], scene: str, access: Access | None,
                now: datetime, conn: sa.Connection):
    """The template's fixed filters, the run-time filters and the scene, as a function of the base joins.

    Every run-time filter is checked first, against a throwaway set of joins: ValidationFailed lists each
    bad one under its own name, so nothing runs with a filter ignored.
    """
    metadata, base = platform.metadata, report.object
    if scene not in SCENES:
        raise BadRequest(Message("report.bad_scene", "scene: must be one of {scenes}", scenes=", ".join(SCENES)),
                         {"scene": [Message("report.unknown_scene", "unknown scene {scene!r}", scene=scene)]})
    parsed: list[tuple[str, FieldPath, str, Any]] = []
    errors: dict[str, list[str]] = {}
    for items in (report.filters, runtime):
        for name, value in items.items():
            text, op = split(name)
            try:
                path = resolve(metadata, base, text)
                condition(Joins(platform.schema, base).column(path), path.type, op, value, now)
            except (BadRequest, InvalidFilter) as e:
                errors.setdefault(name, []).append(e.message if isinstance(e, BadRequest) else str(e))
                continue
            parsed.append((name, path, op, value))
    if errors:
        problems = "; ".join(f"{n}: {m}" for n, msgs in errors.items() for m in msgs)
        raise ValidationFailed(errors, Message("request.bad_parameters", "{problems}", problems=problems))
    owners = scene_owners(platform, scene, access, conn)

    def where(joins: Joins) -> list[ColumnElement[bool]]:
        conditions = [condition(joins.column(path), path.type, op, value, now) for _, path, op, value in parsed]
        if owners is not None:
            conditions.append(joins.root.c.owner.in_(sorted(owners)) if owners else sa.false())
        return conditions

    return where


def scene_owners(platform, scene: str, access: Access | None, conn: sa.Connection) -> frozenset[int] | None:
    """The owners a scene keeps: mine = me, subordinates = everyone below me (not me); None for all."""
    if scene == "all" or access is None:
        return None
    me = int(access.user_id)
    if scene == "mine":
        return frozenset({me})
    return Org.read(conn, platform.schema).subordinates(me) - {me}
