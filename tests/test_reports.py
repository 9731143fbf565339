"""The report engine on both databases: the shipped templates on a hand-built company whose answers were
worked out by hand (the fan-out case included), scopes and scenes, grouping levels, date buckets, a matrix,
run-time filters and date ranges.

The company (every figure below is counted off this list):
- users: 王经理 (sales_manager), 李一 and 张二 reporting to him, 赵三 (another team), all sales reps but him;
- campaigns 春季展会 and 线上推广; accounts 甲公司 (李一's) and 乙公司 (张二's);
- opportunities O1 on 甲公司 (100,000, 李一's), O2 on 乙公司 (50,000, 张二's);
- orders of 甲公司: 1,000, 2,000 and 3,000 (the first with a confirmed payment of 600 and a pending one of
  100); of 乙公司: 500;
- leads: L1, L2 (春季展会, both converted into 甲公司 and O1: the fan-out case), L3 (春季展会, pending),
  L4 (线上推广, converted into 乙公司 and O2), L7 (线上推广, converted into 甲公司 without an opportunity),
  L6 (no campaign, pending). Owners: L1 李一, L2 李一, L3 张二, L4 张二, L7 赵三, L6 李一.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from report_company import build_company, make_user

from objectplatform.metadata import Source, build_definition
from objectplatform.runtime import BadRequest, ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.reports.run import ReportResult

NOW = datetime(2026, 5, 20, 4, 0, tzinfo=UTC)


@pytest.fixture
def company(seeded):
    return seeded(build_company)


def run(platform, name, user=None, **kwargs) -> ReportResult:
    access = access_for(platform, user) if user else None
    return run_report(platform, definition(platform.metadata, name), access=access, now=NOW, **kwargs)


def rows(result: ReportResult) -> list[tuple]:
    return [tuple(row.values()) for row in result.rows]


def test_campaign_leads_to_orders_counts_each_order_once_per_campaign(platform, company):
    result = run(platform, "campaign_leads_to_orders")
    assert [c.key for c in result.columns] == ["campaign", "leads", "accounts", "orders", "order_amount",
                                               "paid_amount"]
    # 春季展会: L1 and L2 both converted into 甲公司 (3 orders): 3 orders, 6,000 once, not 6 orders and 12,000
    assert rows(result) == [
        ("春季展会", 3, 1, 3, Decimal("6000.00"), Decimal("600.00")),
        ("线上推广", 2, 2, 4, Decimal("6500.00"), Decimal("600.00")),
        (None, 1, 0, 0, Decimal("0"), Decimal("0")),
    ]
    # totals by SQL over all leads: 2 distinct accounts and 4 orders, not the sums 3 and 7 of the rows
    assert result.totals == {"leads": 6, "accounts": 2, "orders": 4, "order_amount": Decimal("6500.00"),
                             "paid_amount": Decimal("600.00")}


def test_marketing_counts_what_every_campaign_brought(platform, company):
    """A marketing user reads no one's leads as their owner, yet the campaign reports reach the accounts,
    opportunities and orders the leads became: the same figures as the whole company's."""
    mkt = make_user(platform, "孙市场", ["marketing"])
    assert rows(run(platform, "campaign_leads_to_orders", mkt)) == [
        ("春季展会", 3, 1, 3, Decimal("6000.00"), Decimal("600.00")),
        ("线上推广", 2, 2, 4, Decimal("6500.00"), Decimal("600.00")),
        (None, 1, 0, 0, Decimal("0"), Decimal("0")),
    ]
    assert rows(run(platform, "campaign_leads_to_opportunities", mkt))[:2] == [
        ("春季展会", 3, 1, 1, Decimal("100000.00")), ("线上推广", 2, 2, 1, Decimal("50000.00"))]


def test_campaign_leads_to_opportunities(platform, company):
    result = run(platform, "campaign_leads_to_opportunities")
    assert rows(result) == [
        ("春季展会", 3, 1, 1, Decimal("100000.00")),
        ("线上推广", 2, 2, 1, Decimal("50000.00")),
        (None, 1, 0, 0, Decimal("0")),
    ]
    assert result.totals == {"leads": 6, "accounts": 2, "opportunities": 2, "opportunity_amount": Decimal("150000.00")}
    assert result.as_json()["columns"][4] == {"key": "opportunity_amount", "label": {"zh": "商机金额",
                                                                                     "en": "Opportunity amount"},
                                              "type": "currency"}


def test_leads_by_owner_status_differs_exactly_by_scope(platform, company):
    every = run(platform, "leads_by_owner_status")
    assert rows(every) == [("张二", "pending", 1), ("张二", "converted", 1), ("李一", "pending", 1),
                           ("李一", "converted", 2), ("赵三", "converted", 1)]
    assert every.totals == {"leads": 6}
    manager = run(platform, "leads_by_owner_status", company["boss"])  # subordinates: 李一 and 张二, not 赵三
    assert rows(manager) == rows(every)[:4]
    assert manager.totals == {"leads": 5}
    rep = run(platform, "leads_by_owner_status", company["li"])
    assert rows(rep) == [("李一", "pending", 1), ("李一", "converted", 2)]
    assert rep.totals == {"leads": 3}


def test_scope_applies_to_every_object_a_measure_reads(platform, company):
    # 张二 sees his leads L3 and L4; of the orders only 乙公司's (his), so 1 order of 500 for 线上推广
    result = run(platform, "campaign_leads_to_orders", company["zhang"])
    assert rows(result) == [("春季展会", 1, 0, 0, Decimal("0"), Decimal("0")),
                            ("线上推广", 1, 1, 1, Decimal("500.00"), Decimal("0"))]
    assert result.totals == {"leads": 2, "accounts": 1, "orders": 1, "order_amount": Decimal("500.00"),
                             "paid_amount": Decimal("0")}


def test_scenes_mine_and_subordinates(platform, company):
    mine = run(platform, "leads_by_owner_status", company["boss"], scene="mine")
    assert rows(mine) == [] and mine.totals == {"leads": 0}
    below = run(platform, "leads_by_owner_status", company["boss"], scene="subordinates")
    assert below.totals == {"leads": 5}
    with pytest.raises(BadRequest, match="scene"):
        run(platform, "leads_by_owner_status", company["boss"], scene="others")


def test_run_time_filters_and_unknown_ones(platform, company):
    result = run(platform, "leads_by_owner_status", filters={"status": "converted", "owner__in": [company["li"]]})
    assert rows(result) == [("李一", "converted", 2)]
    with pytest.raises(ValidationFailed) as failure:
        run(platform, "leads_by_owner_status", filters={"colour": "red", "created_at__gte": "yesterday"})
    assert failure.value.fields == {"colour": ["unknown field 'colour' of lead"],
                                    "created_at__gte": ["'yesterday' is not a date-time (ISO 8601)"]}


def _set_created(platform, when: dict[str, datetime]):
    lead = platform.schema["lead"].table
    with platform.engine.begin() as conn:
        for name, at in when.items():
            conn.execute(sa.update(lead).where(lead.c.name == name).values(created_at=at))


def _adhoc(platform, data, obj="lead"):
    """A report definition made in the test, as a template would give it."""
    return build_definition({"kind": "report", "name": "adhoc", "label": {"zh": "临时", "en": "Ad hoc"}, "object": obj,
                             **data}, Source("<test>"))


def test_date_buckets_in_org_time_and_date_ranges(platform, company):
    # 2026-03-31 20:00 UTC is 1 April 04:00 in Beijing: it counts in April and in the second quarter
    _set_created(platform, {"L1": datetime(2026, 3, 31, 20, 0), "L2": datetime(2026, 4, 2, 1, 0),
                            "L3": datetime(2026, 1, 5, 3, 0), "L4": datetime(2026, 5, 4, 3, 0),
                            "L7": datetime(2025, 12, 31, 16, 30), "L6": datetime(2026, 5, 10, 3, 0)})
    expected = {
        "day": [("2026-01-01", 1), ("2026-01-05", 1), ("2026-04-01", 1), ("2026-04-02", 1), ("2026-05-04", 1),
                ("2026-05-10", 1)],
        "week": [("2025-12-29", 1), ("2026-01-05", 1), ("2026-03-30", 2), ("2026-05-04", 2)],
        "month": [("2026-01", 2), ("2026-04", 2), ("2026-05", 2)],
        "quarter": [("2026-Q1", 2), ("2026-Q2", 4)],
        "year": [("2026", 6)],
    }
    for name, want in expected.items():
        report = _adhoc(platform, {"dimensions": [{"key": "period", "field": "created_at", "bucket": name}],
                                   "measures": [{"key": "leads", "function": "count"}]})
        assert rows(run_report(platform, report, access=None, now=NOW)) == want, name
    report = _adhoc(platform, {"dimensions": [{"key": "month", "field": "created_at", "bucket": "month"}],
                               "measures": [{"key": "leads", "function": "count"}]})
    # NOW is 20 May 2026: this month is May, last month April, last quarter Jan-Mar (org time)
    for value, want in [("this_month", [("2026-05", 2)]), ("last_month", [("2026-04", 2)]),
                        ("last_quarter", [("2026-01", 2)]), ("this_year", [("2026-01", 2), ("2026-04", 2),
                                                                           ("2026-05", 2)]),
                        ({"from": "2026-04-01", "to": "2026-04-01"}, [("2026-04", 1)])]:
        result = run_report(platform, report, access=None, now=NOW, filters={"created_at": value})
        assert rows(result) == want, value


def test_multi_level_grouping_through_lookups_and_a_matrix(platform, company):
    report = _adhoc(platform, {
        "dimensions": [{"key": "campaign", "field": "campaign.name"}, {"key": "owner", "field": "owner"},
                       {"key": "status", "field": "status"}],
        "measures": [{"key": "leads", "function": "count"},
                     {"key": "amount", "function": "sum", "field": "converted_opportunity.amount"},
                     {"key": "biggest", "function": "max", "field": "converted_opportunity.amount"}],
        "sort": ["-leads"]})
    result = run_report(platform, report, access=None, now=NOW)
    assert rows(result) == [
        ("春季展会", "李一", "converted", 2, Decimal("100000.00"), Decimal("100000.00")),
        ("春季展会", "张二", "pending", 1, Decimal("0"), None),
        ("线上推广", "张二", "converted", 1, Decimal("50000.00"), Decimal("50000.00")),
        ("线上推广", "赵三", "converted", 1, Decimal("0"), None),
        (None, "李一", "pending", 1, Decimal("0"), None),
    ]
    matrix = _adhoc(platform, {
        "dimensions": [{"key": "owner", "field": "owner"}],
        "columns": {"key": "status", "field": "status"},
        "measures": [{"key": "leads", "function": "count"},
                     {"key": "accounts", "function": "count_distinct", "field": "converted_account"}]})
    result = run_report(platform, matrix, access=None, now=NOW)
    assert [c.key for c in result.columns] == ["owner", "leads__pending", "accounts__pending", "leads__converted",
                                               "accounts__converted", "leads", "accounts"]
    assert rows(result) == [("张二", 1, 0, 1, 1, 2, 1), ("李一", 1, 0, 2, 1, 3, 1), ("赵三", 0, 0, 1, 1, 1, 1)]
    assert result.totals == {"leads__pending": 2, "accounts__pending": 0, "leads__converted": 4,
                             "accounts__converted": 2, "leads": 6, "accounts": 2}


def test_reverse_relations_from_the_base_each_child_once(platform, company):
    report = _adhoc(platform, {
        "dimensions": [{"key": "owner", "field": "owner"}],
        "measures": [{"key": "orders", "function": "count", "field": "sales_order(account)"},
                     {"key": "amount", "function": "sum", "field": "sales_order(account).total_amount"},
                     {"key": "statuses", "function": "count_distinct", "field": "sales_order(account).status"},
                     {"key": "average", "function": "avg", "field": "sales_order(account).total_amount"},
                     {"key": "smallest", "function": "min", "field": "sales_order(account).total_amount"}]},
        obj="account")
    result = run_report(platform, report, access=None, now=NOW)
    assert rows(result) == [("张二", 1, Decimal("500.00"), 1, Decimal("500.00"), Decimal("500.00")),
                            ("李一", 3, Decimal("6000.00"), 2, Decimal("2000.00"), Decimal("1000.00"))]  # 2: approved
    assert result.totals == {"orders": 4, "amount": Decimal("6500.00"), "statuses": 2,
                             "average": Decimal("1625.00"), "smallest": Decimal("500.00")}
