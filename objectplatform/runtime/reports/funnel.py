"""The sales funnel (`engine: sales_funnel`): for one sales process, the open opportunities of each stage in the
process's order: how many (`count`), their amount, the stage's probability and the weighted amount; the
totals row's weighted amount is the forecast. The stages and probabilities come from the process definition
(flows/), so a stage holding nothing still shows.

(How it works: docs/engine.md, "objectplatform/runtime/reports/funnel.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Chart, Label, Report, SalesProcess

from ..behaviors.staged import SALES_PROCESS, SalesProcessConfig
from ..errors import Message, ValidationFailed
from ..permissions import Access
from ..records.query import InvalidFilter
from ..sales_processes import process_for_owner, processes
from ..storage.engine import reading
from ..value_labels import value_labels
from .compile import Compiler, Dimension, Joins, Measure
from .filters import date_bounds
from .masking import report_mask
from .paths import resolve
from .run import Column, ReportResult, data_scope, report_conditions, scene_owners

CENTS = Decimal("0.01")
COLUMNS = (
    ("stage", Label("销售阶段", "Stage"), "text"),
    ("count", Label("商机数", "Opportunities"), "integer"),
    ("amount", Label("商机金额", "Amount"), "currency"),
    ("probability", Label("赢率(%)", "Probability (%)"), "percent"),
    ("weighted_amount", Label("预测金额", "Weighted amount"), "currency"),
    ("entered", Label("进入数", "Entered"), "integer"),
    ("conversion_rate", Label("转化率(%)", "Conversion rate (%)"), "percent"),
    ("avg_days_in_stage", Label("平均停留天数", "Average days in stage"), "number"),
    ("win_rate", Label("成交率(%)", "Win rate (%)"), "percent"),  # in the totals row only
)


def run_funnel(platform, report: Report, *, access: Access | None, filters: Mapping[str, Any] | None,
               scene: str | None, now: datetime | None) -> ReportResult:
    """The funnel of the process named by the `sales_process` filter; when none is named, of the viewer's own:
    the process their department's new records get (so a regional manager sees their team's stages)."""
    metadata, base = platform.metadata, report.object
    filters = dict(filters or {})
    period = filters.pop("period", None)
    available = processes(metadata, base)
    name = filters.pop("sales_process", None) or default_process(platform, access, base)
    process = next((p for p in available if p.name == name), None)
    if process is None:
        known = ", ".join(p.name for p in available) or Message("report.no_sales_process", "none is defined")
        raise ValidationFailed({"sales_process": [Message("report.unknown_sales_process", "unknown sales process "
                                                          "{process!r} (known: {known})", process=name, known=known)]})
    if not SALES_PROCESS.declared_by(metadata.objects[base]):
        raise ValidationFailed({"sales_process": [Message("report.no_sales_process_behavior",
                                                          "{object} does not have the sales_process behavior",
                                                          object=base)]})
    config = SALES_PROCESS.config_of(metadata.objects[base])
    f = config.fields
    filters[f.sales_process] = process.name
    own_filters = dict(filters)  # owner, department, ...: the stage history follows them through its opportunity
    filters[config.status_field] = config.open_status
    now = (now or platform.clock.now()).astimezone(platform.settings.zone)
    mask = report_mask(platform, access)
    with reading(platform.read_engine) as conn:
        where = report_conditions(platform, report, filters, scene or report.scene, access, now, conn)
        opportunities = None
        if set(own_filters) - {f.sales_process}:  # of any status: closed ones have their history too
            joins = Joins(platform.schema, base, mask)
            chosen = report_conditions(platform, report, own_filters, "all", access, now, conn)(joins)
            opportunities = sa.select(joins.root.c.id).select_from(joins.from_).where(*chosen)
        compiler = Compiler(metadata, platform.schema, conn.dialect.name, platform.settings.time_zone, base, where,
                            data_scope(access), mask)
        stage = Dimension("stage", resolve(metadata, base, f.stage))
        measures = [Measure("count", "count"), Measure("amount", "sum", resolve(metadata, base, "amount"))]
        found = {row["stage"]: row for row in conn.execute(compiler.statement([stage], measures)).mappings()}
        history, win_rate = _history(platform, config, process, period, access, scene or report.scene, now, conn,
                                     opportunities)
    rows = []
    for step in process.stages:
        row = found.get(step.key, {"count": 0, "amount": Decimal(0)})
        probability = step.probability
        amount = Decimal(row["amount"] or 0).quantize(CENTS)
        entered, moved_on, days = history.get(step.key, (0, 0, None))
        rows.append({"stage": step.key, "count": int(row["count"]), "amount": amount,
                     "probability": probability,
                     "weighted_amount": (amount * probability / 100).quantize(CENTS),
                     "entered": entered, "conversion_rate": _percent(moved_on, entered),
                     "avg_days_in_stage": None if days is None else Decimal(days).quantize(CENTS),
                     "win_rate": None})
    totals = {"count": sum(r["count"] for r in rows), "amount": sum((r["amount"] for r in rows), Decimal("0.00")),
              "probability": None,
              "weighted_amount": sum((r["weighted_amount"] for r in rows), Decimal("0.00")),
              "entered": sum(r["entered"] for r in rows), "conversion_rate": None, "avg_days_in_stage": None,
              "win_rate": win_rate}
    columns = [Column(key, label, kind) for key, label, kind in COLUMNS]
    stage_labels = value_labels(metadata, metadata.objects[base], f.stage, process.name)
    return ReportResult(report.name, report.label, columns, rows, totals, columns[:1], columns[1:],
                        report.chart or Chart("funnel", ("count",)),
                        value_labels={"stage": stage_labels})


def default_process(platform, access: Access | None, obj: str) -> str | None:
    """The name of the process a funnel shows when none is chosen: the viewer's (as their department picks it),
    the first one without a viewer."""
    chosen = process_for_owner(platform, access.user_id if access is not None else None, obj)
    return chosen.name if chosen is not None else None


def register(registry) -> None:
    registry.report_engine("sales_funnel", run_funnel)


def _percent(part: int, whole: int) -> Decimal | None:
    return None if not whole else (Decimal(part) * 100 / whole).quantize(CENTS)


def _history(platform, config: SalesProcessConfig, process: SalesProcess, period: Any, access: Access | None,
             scene: str, now: datetime, conn: sa.Connection, opportunities: sa.Select | None = None
             ) -> tuple[dict[str, tuple[int, int, Any]], Decimal | None]:
    """{stage: (entered, left to the next stage, average days in it)} for the stages entered in `period`,
    and the win rate of the stage rows closed (left to won or lost) in it; only the history of
    `opportunities` (a select of their ids) when given."""
    ot, h = platform.schema[config.history], config.history_fields
    table = ot.table
    stages = [s.key for s in process.stages]
    following = {stage: nxt for stage, nxt in zip(stages, [*stages[1:], config.won_status], strict=True)}
    where = [ot.column(h.sales_process) == process.name]
    if opportunities is not None:
        where.append(ot.column(config.parent_field).in_(opportunities))
    scope = data_scope(access)(config.history, table)
    if scope is not None:
        where.append(scope)
    owners = scene_owners(platform, scene, access, conn)
    if owners is not None:
        where.append(table.c.owner.in_(sorted(owners)) if owners else sa.false())
    entered_at, left_at, left_to, stage = (ot.column(n) for n in (h.entered_at, h.left_at, h.left_to, h.stage))
    entered_in, left_in = [], []
    if period:
        try:
            entered_in, left_in = (date_bounds(column, "datetime", period, now) for column in (entered_at, left_at))
        except InvalidFilter as e:
            raise ValidationFailed({"period": [str(e)]}) from None
    moved_on = sa.or_(*(sa.and_(stage == key, left_to == nxt) for key, nxt in following.items()))
    if conn.dialect.name == "postgresql":
        days = sa.func.extract("epoch", left_at - entered_at) / 86400
    else:
        days = sa.func.julianday(left_at) - sa.func.julianday(entered_at)
    stmt = (sa.select(stage, sa.func.count(), sa.func.count(sa.case((moved_on, 1))),
                      sa.func.avg(sa.case((left_at.is_not(None), days))))
            .where(*where, *entered_in).group_by(stage))
    history = {row[0]: (int(row[1]), int(row[2]), row[3]) for row in conn.execute(stmt)}
    won, closed = conn.execute(sa.select(sa.func.count(sa.case((left_to == config.won_status, 1))), sa.func.count())
                               .where(*where, *left_in, left_to.in_([config.won_status, config.lost_status]))).one()
    return history, _percent(int(won), int(closed))
