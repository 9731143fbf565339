"""The sales funnel on both databases: the mission's example forecast, stage order, scope and the process filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from objectplatform.runtime import ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, run_report


def add_opportunities(platform, count: int, stage: str, owner: str, *, process="standard_sales", status="open",
                      amount="500000"):
    """`count` opportunities written as the sales process leaves them (the stage is read-only in the forms)."""
    table = platform.schema["opportunity"].table
    now = datetime(2026, 5, 1)
    rows = [{"name": f"{stage}-{i}", "amount": Decimal(amount), "sales_process": process, "stage": stage,
             "status": status, "owner": int(owner), "created_at": now, "updated_at": now, "version": 1}
            for i in range(count)]
    with platform.engine.begin() as conn:
        conn.execute(table.insert(), rows)


def funnel(platform, user=None, **kwargs):
    access = access_for(platform, user) if user else None
    return run_report(platform, definition(platform.metadata, "sales_funnel"), access=access, **kwargs)


def test_the_mission_example_forecasts_26_850_000(platform):
    boss = platform.records.create("user", {"username": "wang", "display_name": "王经理", "roles": ["sales_manager"]},
                                   system=True)["id"]
    rep = platform.records.create("user", {"username": "li", "display_name": "李一", "roles": ["sales_rep"],
                                           "manager": boss}, system=True)["id"]
    for stage, count in [("intent", 65), ("initiation", 34), ("proposal", 27), ("negotiation", 15), ("closing", 6)]:
        add_opportunities(platform, count, stage, rep)
    add_opportunities(platform, 4, "closing", rep, status="won")  # closed: not in the funnel
    add_opportunities(platform, 3, "demo", rep, process="east_branch")  # another process
    result = funnel(platform, boss)
    assert [c.key for c in result.columns] == ["stage", "count", "amount", "probability", "weighted_amount",
                                               "entered", "conversion_rate", "avg_days_in_stage"]
    assert [tuple(r.values())[:5] for r in result.rows] == [
        ("intent", 65, Decimal("32500000.00"), Decimal("10"), Decimal("3250000.00")),
        ("initiation", 34, Decimal("17000000.00"), Decimal("40"), Decimal("6800000.00")),
        ("proposal", 27, Decimal("13500000.00"), Decimal("60"), Decimal("8100000.00")),
        ("negotiation", 15, Decimal("7500000.00"), Decimal("80"), Decimal("6000000.00")),
        ("closing", 6, Decimal("3000000.00"), Decimal("90"), Decimal("2700000.00")),
    ]
    assert result.totals == {"count": 147, "amount": Decimal("73500000.00"), "probability": None,
                             "weighted_amount": Decimal("26850000.00"), "entered": 0, "conversion_rate": None,
                             "avg_days_in_stage": None, "win_rate": None}
    assert result.value_labels["stage"]["intent"].zh == "确认客户意向"
    # a rep outside the manager's team sees none of it; the other process is its own funnel
    other = platform.records.create("user", {"username": "zhao", "display_name": "赵三", "roles": ["sales_rep"]},
                                    system=True)["id"]
    assert funnel(platform, other).totals["count"] == 0
    east = funnel(platform, filters={"sales_process": "east_branch"})
    assert [(r["stage"], r["count"]) for r in east.rows] == [("intent", 0), ("demo", 3), ("negotiation", 0),
                                                             ("closing", 0)]


def test_an_unknown_process_names_the_known_ones(platform):
    with pytest.raises(ValidationFailed) as failure:
        funnel(platform, filters={"sales_process": "retail"})
    assert failure.value.fields == {
        "sales_process": ["unknown sales process 'retail' (known: standard_sales, east_branch, government)"]}


def test_conversion_days_in_stage_and_win_rate_from_a_scripted_stage_history(platform):
    rep = platform.records.create("user", {"username": "li", "display_name": "李一", "roles": ["sales_rep"]},
                                  system=True)["id"]
    add_opportunities(platform, 1, "intent", rep)
    table = platform.schema["stage_history"].table
    day = timedelta(days=1)
    q2 = datetime(2026, 4, 10, 2, 0)  # UTC; in the second quarter in Beijing as well

    def row(stage, entered, days=None, left_to=None):
        left = entered + days * day if days is not None else None
        return {"opportunity": 1, "sales_process": "standard_sales", "stage": stage, "entered_at": entered,
                "left_at": left, "left_to": left_to, "owner": int(rep), "created_at": entered,
                "updated_at": entered, "version": 1}

    rows = [
        row("intent", q2, 2, "initiation"), row("intent", q2, 4, "initiation"), row("intent", q2, 3, "lost"),
        row("intent", q2),  # still there
        row("initiation", q2 + 2 * day, 10, "proposal"), row("initiation", q2 + 4 * day),
        row("proposal", q2 + 12 * day, 5, "won"),  # won straight from the proposal: not on to negotiation
        row("closing", q2 + 20 * day, 1, "won"),
        row("intent", datetime(2026, 2, 1), 1, "initiation"),  # the first quarter: outside the period
    ]
    with platform.engine.begin() as conn:
        conn.execute(table.insert(), rows)
    result = funnel(platform, rep, filters={"period": "this_quarter"}, now=datetime(2026, 5, 20, tzinfo=UTC))
    assert [(r["stage"], r["entered"], r["conversion_rate"], r["avg_days_in_stage"]) for r in result.rows] == [
        ("intent", 4, Decimal("50.00"), Decimal("3.00")),
        ("initiation", 2, Decimal("50.00"), Decimal("10.00")),
        ("proposal", 1, Decimal("0.00"), Decimal("5.00")),
        ("negotiation", 0, None, None),
        ("closing", 1, Decimal("100.00"), Decimal("1.00")),
    ]
    assert result.totals["win_rate"] == Decimal("66.67")  # won 2 (proposal, closing), lost 1
    everything = funnel(platform, rep)
    assert everything.rows[0]["entered"] == 5 and everything.rows[0]["conversion_rate"] == Decimal("60.00")
