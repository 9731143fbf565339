"""The sales funnel on both databases: the mission's example forecast, stage order, scope and the process filter,
the win rate in its table and CSV, and two funnels side by side (the page's B filters, the API's compare)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from report_company import make_user

from objectplatform.runtime import ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, run_report
from objectplatform.web import create_app


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
                                               "entered", "conversion_rate", "avg_days_in_stage", "win_rate"]
    assert {r["win_rate"] for r in result.rows} == {None}  # the win rate is the totals row's
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


# ------------------------------------------------------------------------------------------ side by side

PASSWORD = "correct-horse-7"
Q2 = datetime(2026, 4, 10, 2, 0)  # UTC, in the second quarter in Beijing too


@pytest.fixture
def two_reps(platform):
    """王经理 with 李一 (3 open opportunities in the first stage, 1 in the proposal; in Q2 two entered the first
    stage, one moved on after 2 days, one was won from the last stage after 1 day) and 张二 (2 in the first
    stage; his one history row, lost after 3 days, is from Q1)."""
    boss = make_user(platform, "王经理", ["sales_manager"], password=PASSWORD)
    li = make_user(platform, "李一", ["sales_rep"], manager=boss, password=PASSWORD)
    zhang = make_user(platform, "张二", ["sales_rep"], manager=boss, password=PASSWORD)
    add_opportunities(platform, 3, "intent", li, amount="100000")
    add_opportunities(platform, 1, "proposal", li, amount="100000")
    add_opportunities(platform, 2, "intent", zhang, amount="100000")
    day = timedelta(days=1)

    table = platform.schema["opportunity"].table
    with platform.engine.connect() as conn:
        first = {who: conn.execute(sa.select(sa.func.min(table.c.id)).where(table.c.owner == int(who))).scalar()
                 for who in (li, zhang)}

    def row(owner, stage, entered, days=None, left_to=None):
        return {"opportunity": first[owner], "sales_process": "standard_sales", "stage": stage, "entered_at": entered,
                "left_at": entered + days * day if days else None, "left_to": left_to, "owner": int(owner),
                "created_at": entered, "updated_at": entered, "version": 1}

    with platform.engine.begin() as conn:
        conn.execute(platform.schema["stage_history"].table.insert(), [
            row(li, "intent", Q2, 2, "initiation"), row(li, "intent", Q2), row(li, "closing", Q2 + 10 * day, 1, "won"),
            row(zhang, "intent", datetime(2026, 2, 1), 3, "lost")])
    return {"boss": boss, "li": li, "zhang": zhang}


def signed_in(platform, username: str):
    client = create_app(platform).test_client()
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["csrf_token"]
    client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf})
    return client


def test_two_funnels_side_by_side_on_the_page_and_in_its_csv(platform, two_reps):
    client = signed_in(platform, "王经理")
    query = (f"owner={two_reps['li']}&period__from=2026-04-01&period__to=2026-06-30&b.owner={two_reps['zhang']}")
    page = client.get(f"/reports/sales_funnel?{query}").get_data(as_text=True)
    assert '<details class="compare" open>' in page
    side_a = "A (标准销售流程, 李一, 2026-04-01–2026-06-30)"  # the process the page chose, the viewer's own
    assert f'<figure class="report-chart"><figcaption>{side_a}</figcaption><svg' in page
    assert '<figure class="report-chart"><figcaption>B (张二)</figcaption><svg' in page
    assert f'<th scope="col" data-key="count__a" class="num">{side_a} · 商机数</th>' \
           '<th scope="col" data-key="count__b" class="num">B (张二) · 商机数</th>' in page
    assert '<th scope="col" data-key="win_rate__b" class="num">B (张二) · 成交率(%)</th>' in page
    csv = client.get(f"/reports/sales_funnel/export.csv?{query}").data.decode("utf-8").splitlines()
    # B takes A's period: 张二's Q1 row is not in it, so nothing entered and no win rate for B
    assert csv[1:] == [
        "确认客户意向,3,2,300000.00,200000.00,10,10,30000.00,20000.00,2,0,50.00,,2.00,,,",
        "引导立项,0,0,0.00,0.00,40,40,0.00,0.00,0,0,,,,,,",
        "方案制作,1,0,100000.00,0.00,60,60,60000.00,0.00,0,0,,,,,,",
        "商务谈判,0,0,0.00,0.00,80,80,0.00,0.00,0,0,,,,,,",
        "赢单,0,0,0.00,0.00,90,90,0.00,0.00,1,0,100.00,,1.00,,,",
        "合计,4,2,400000.00,200000.00,,,90000.00,20000.00,3,0,,,,,100.00,",
    ]
    single = client.get("/reports/sales_funnel/export.csv?period__from=2026-01-01&period__to=2026-03-31")
    assert single.data.decode("utf-8").splitlines()[0] == (
        "\ufeff销售阶段,商机数,商机金额,赢率(%),预测金额,进入数,转化率(%),平均停留天数,成交率(%)")
    assert single.data.decode("utf-8").splitlines()[-1] == "合计,6,600000.00,,110000.00,1,,,0.00"
    shown = client.get("/reports/sales_funnel?period__from=2026-01-01&period__to=2026-03-31").get_data(as_text=True)
    assert '<th scope="col" data-key="win_rate" class="num">成交率(%)</th>' in shown
    assert shown.count('<figure class="report-chart">') == 1 and '<details class="compare">' in shown


def test_the_api_runs_a_comparison_with_the_second_filters_whole(platform, two_reps):
    client = create_app(platform).test_client()
    token = client.post("/api/v1/auth/token", json={"username": "王经理", "password": PASSWORD}).get_json()["token"]
    response = client.post("/api/v1/reports/sales_funnel/run", headers={"Authorization": f"Bearer {token}"},
                           json={"filters": {"owner": two_reps["li"], "period": {"from": "2026-04-01"}},
                                 "compare": {"filters": {"owner": two_reps["zhang"]}}})
    assert response.status_code == 200
    body = response.get_json()
    assert [c["key"] for c in body["columns"]][:5] == ["stage", "count__a", "count__b", "amount__a", "amount__b"]
    assert body["columns"][1]["label"] == {"zh": "A · 商机数", "en": "A · Opportunities"}
    assert [(r["stage"], r["count__a"], r["count__b"]) for r in body["rows"]][:3] == [
        ("intent", 3, 2), ("initiation", 0, 0), ("proposal", 1, 0)]
    # B's filters are its own: no period, so all of 张二's history (one row, lost): entered 1, win rate 0
    assert (body["totals"]["entered__a"], body["totals"]["entered__b"]) == (3, 1)
    assert (body["totals"]["win_rate__a"], body["totals"]["win_rate__b"]) == (100, 0)
    bad = client.post("/api/v1/reports/sales_funnel/run", headers={"Authorization": f"Bearer {token}"},
                      json={"compare": {"period": "this_month"}})
    assert bad.status_code == 400 and bad.get_json()["error"]["fields"] == {"compare": ["must be {filters}"]}


def test_without_a_process_chosen_the_funnel_shows_the_viewer_s_own(platform):
    """华东区's manager, whose department's process is east_branch, sees its stages and her team's opportunities
    without choosing it; the page preselects it; a viewer of no department sees the first process; choosing
    another process still shows that one."""
    east = platform.records.create("department", {"name": "华东区"}, system=True)["id"]
    boss = make_user(platform, "钱经理", ["sales_manager"], department=east, password=PASSWORD)
    rep = make_user(platform, "郑一", ["sales_rep"], department=east, manager=boss)
    add_opportunities(platform, 2, "demo", rep, process="east_branch", amount="100000")
    add_opportunities(platform, 1, "tender", rep, process="government", amount="100000")
    shown = funnel(platform, boss)
    assert [(r["stage"], r["count"]) for r in shown.rows] == [("intent", 0), ("demo", 2), ("negotiation", 0),
                                                             ("closing", 0)]
    assert shown.totals["weighted_amount"] == Decimal("80000.00")
    assert [r["stage"] for r in funnel(platform).rows] == ["intent", "initiation", "proposal", "negotiation",
                                                           "closing"]
    chosen = funnel(platform, boss, filters={"sales_process": "government"})
    assert sum(r["count"] for r in chosen.rows) == 1
    page = signed_in(platform, "钱经理").get("/reports/sales_funnel").get_data(as_text=True)
    assert '<option value="east_branch" selected>华东分公司销售流程</option>' in page
