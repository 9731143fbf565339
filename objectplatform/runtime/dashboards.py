"""Role homes (`kind: dashboard`): which dashboard is a user's home, each widget run for the viewer through the
report engine, the records' list query or the work queue (within the viewer's scope), and the reports a user
pins to their own home.

(How it works: docs/engine.md, "objectplatform/runtime/dashboards.py".)"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Dashboard, Metadata, Widget

from .errors import Conflict, Message
from .expressions_sql import to_sql
from .permissions import Access
from .records.query import formula_columns
from .reports import personal
from .reports.filters import date_range
from .reports.run import ReportResult, run_report
from .storage.engine import reading
from .workqueue import work_queue

PREVIOUS = {"this_month": "last_month", "this_quarter": "last_quarter", "this_year": "last_year"}
PERCENT_PLACES = Decimal("0.1")
MAX_PINS = 12


def home_of(metadata: Metadata, access: Access) -> Dashboard | None:
    """The home of the user's first role (in the order the roles are declared) that a dashboard names."""
    for role in metadata.roles:
        if role in access.roles:
            for dashboard in metadata.dashboards.values():
                if role in dashboard.roles:
                    return dashboard
    return None


def can_see(widget: Widget, metadata: Metadata, access: Access) -> bool:
    """Whether the viewer may read what the widget shows (a widget over another role's object is left out)."""
    if widget.report is not None:
        report = metadata.reports.get(widget.report)
        return report is not None and access.can(report.object, "read")
    if widget.object is not None:
        return access.can(widget.object, "read")
    return True


# ------------------------------------------------------------------------------------------ widgets


@dataclass
class Kpi:
    """A measure over a period and the period before it; `change` in percent (None without a period, or when
    the period before is zero)."""

    value: Any
    type: str
    previous: Any = None
    change: Decimal | None = None


@dataclass
class Listing:
    """The first records of a list widget and how many there are in all."""

    object: str
    items: list[dict]
    total: int
    total_is_exact: bool


@dataclass
class Todos:
    """The rules' groups of to-dos (each one line), the first other to-dos, and how many are open in all."""

    groups: list
    items: list
    total: int


def run_widget(platform, widget: Widget, access: Access) -> Kpi | ReportResult | Listing | Todos:
    """The widget's figures for `access`: one report run (two for a KPI with a period), one list query, or the
    to-dos; each within the viewer's data scope."""
    return WIDGETS[widget.type](platform, widget, access)


def _kpi(platform, widget: Widget, access: Access) -> Kpi:
    """The report with only the measure wanted: without a period, one run over all rows; with one, a run over the
    period so far and one over as many days of the period before (month to date against the same days of last
    month), so that a month under way is not compared with a whole one."""
    report = platform.metadata.reports[widget.report]
    measure = next(m for m in report.measures if m.key == widget.measure)
    shape = replace(
        report, dimensions=(), columns=None, measures=(measure,), sort=(), limit=None, totals=False, chart=None
    )

    def total(within: dict | None = None) -> tuple[Any, str]:
        filters = {**widget.filters, **({widget.date_field: within} if within else {})}
        result = run_report(platform, shape, access=access, filters=filters, scene=widget.scene)
        return result.rows[0][measure.key] or 0, result.measures[0].type

    if widget.period is None:
        return Kpi(*total())
    now = platform.local_now()
    today = now.date()
    current, _ = date_range(widget.period, now)
    start, end = date_range(PREVIOUS[widget.period], now)
    same_days = min(start + (today - current), end - timedelta(days=1))
    value, kind = total({"from": current.isoformat(), "to": today.isoformat()})
    previous, _ = total({"from": start.isoformat(), "to": same_days.isoformat()})
    change = None
    if previous:
        change = (Decimal(value - previous) * 100 / Decimal(previous)).quantize(PERCENT_PLACES)
    return Kpi(value, kind, previous, change)


def _report(platform, widget: Widget, access: Access) -> ReportResult:
    """The report's result; a table shows its first `limit` rows (a grouping report's), `all_rows` saying how many
    there are in all, so that the widget can say it shows fewer than its totals row adds up."""
    report = platform.metadata.reports[widget.report]
    result = run_report(platform, report, access=access, filters=dict(widget.filters), scene=widget.scene)
    if widget.type == "table" and widget.limit and report.engine == "grouping" and len(result.rows) > widget.limit:
        result = replace(result, rows=result.rows[:widget.limit], all_rows=len(result.rows))
    return result


def _list(platform, widget: Widget, access: Access) -> Listing:
    """The records of the widget's object that meet its condition (and are the viewer's own for `scene: mine`),
    within the viewer's scope, sorted as it says: one query, and one count."""
    obj = widget.object
    ot = platform.schema[obj]
    where = [c for c in (access.scope(obj, ot.table),) if c is not None]
    if widget.condition is not None:
        where.append(to_sql(widget.condition, formula_columns(ot), platform.local_now(), condition=True))
    if widget.scene == "mine":
        where.append(ot.table.c.owner == int(access.user_id))
    with reading(platform.read_engine) as conn:
        page = platform.records.list(
            obj,
            where=sa.and_(*where) if where else None,
            sort=",".join(widget.sort) or None,
            limit=widget.limit,
            seen_by=access,
            conn=conn,
        )
    return Listing(obj, page.items, page.total or 0, page.total_is_exact)


def _todos(platform, widget: Widget, access: Access) -> Todos:
    """A rule's many reminders as one line (workqueue.todo_groups), then the other to-dos up to `limit` lines."""
    queue = work_queue(platform)
    groups = queue.todo_groups(access, kinds=widget.kinds)
    limit = None if widget.limit is None else max(widget.limit - len(groups), 0)
    return Todos(
        groups,
        queue.todos_for(access, limit=limit, kinds=widget.kinds, except_rules=[g.rule for g in groups]),
        queue.open_todo_count(access, kinds=widget.kinds),
    )


# the widget types and how each runs; checks.WIDGET_OPTIONS lists the options each takes
WIDGETS = {"kpi": _kpi, "chart": _report, "table": _report, "list": _list, "todos": _todos}


# ------------------------------------------------------------------------------------------ pins


def pinned(platform, access: Access) -> list[str]:
    """The names of the reports the user pinned to their home, in the order pinned."""
    table = platform.schema.home_pins
    with reading(platform.engine) as conn:
        return list(
            conn.execute(
                sa.select(table.c.report).where(table.c.user_id == int(access.user_id)).order_by(table.c.id)
            ).scalars()
        )


def pin(platform, access: Access, name: str) -> None:
    """Pin a report the user may run (a shipped one or their own) to their home; pinned twice is pinned once."""
    report = personal.find(platform, access, name)
    access.require(report.object, "read")
    table = platform.schema.home_pins
    with platform.records.transaction() as conn:
        mine = table.c.user_id == int(access.user_id)
        if conn.execute(sa.select(table.c.id).where(mine, table.c.report == name)).first() is not None:
            return
        if conn.execute(sa.select(sa.func.count()).select_from(table).where(mine)).scalar_one() >= MAX_PINS:
            raise Conflict(Message("home.too_many_pins", "a home holds at most {limit} pinned reports", limit=MAX_PINS))
        conn.execute(
            sa.insert(table).values(
                user_id=int(access.user_id),
                report=name,
                created_at=platform.clock.now().astimezone(UTC).replace(tzinfo=None),
            )
        )


def unpin(platform, access: Access, name: str) -> None:
    table = platform.schema.home_pins
    with platform.records.transaction() as conn:
        conn.execute(sa.delete(table).where(table.c.user_id == int(access.user_id), table.c.report == name))
