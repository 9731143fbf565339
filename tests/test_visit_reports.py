"""拜访分析 (issue 16): the visit report templates (plan completion per rep and department, coverage, validity,
effect) run by the report engine beside hand arithmetic on a small company, on both databases.

The company (the clock on 15 December 2026, 10:00 in China; times below in UTC unless said):
- 华北区 (manager 赵经理 boss): reps 王伟 (rep1) and 李娜 (rep2); 华东区 (manager 孙经理 eboss): rep 陈强 (erep).
- Accounts (owner, grade, region): A1 a 华北, A2 a 华北, A3 b 华东, A4 c none (rep1); B1 a 华北, B2 b 华东 (rep2);
  E1 b 华东 (erep).
- Visits (account, planned, status, checked in, valid, minutes):
  rep1  V1 A1 12-01 completed 12-01 02:05 valid 30 · V2 A1 12-03 completed 12-03 02:00 out of range 40 ·
        V3 A2 12-04 completed 12-04 02:00 valid 10 · V4 A3 12-05 missed · V5 A4 12-06 cancelled ·
        V6 A3 12-20 planned · V7 A2 11-28 completed 11-28 02:00 valid 20 · V8 A4 12-10 checked in 12-10 02:00 valid
  rep2  W1 B1 12-02 completed 12-02 02:00 valid 25 · W2 B2 12-02 missed ·
        W3 B1 planned and checked in 11-30 16:30/16:35 (1 December in China) completed valid 15
  erep  X1 E1 12-08 completed 12-08 03:00 valid 60
- Orders (account, created, status, amount): O1 A1 12-02 approved 10,000 · O2 A1 12-20 shipped 5,000 ·
  O3 A2 12-05 draft 2,000 · O4 A2 2027-01-10 completed 3,000 (34 days after V3) · O5 B1 12-31 received 4,000 ·
  O6 B1 11-30 16:00 approved 6,000 (before rep2's visits) · O7 E1 2027-01-07 03:00:00 approved 7,000 (30 days
  after X1 to the second: not within) · O8 E1 2027-01-07 02:59:59 approved 8,000.
- Opportunities (account, status, closed, amount): P1 A1 won 12-10 50,000 · P2 B1 won 11-29 9,000 (before the
  visits) · P3 E1 lost 12-09 1,000.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from support import FixedClock
from test_api import PASSWORD

from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.storage.engine import reading

T0 = datetime(2026, 12, 15, 2, 0, tzinfo=UTC)  # 10:00 in China
ACCOUNTS = {"A1": ("rep1", "a"), "A2": ("rep1", "a"), "A3": ("rep1", "b"), "A4": ("rep1", "c"),
            "B1": ("rep2", "a"), "B2": ("rep2", "b"), "E1": ("erep", "b")}
REGIONS = {"A1": "north", "A2": "north", "A3": "east", "B1": "north", "B2": "east", "E1": "east"}
VISITS = (  # name, account, planned (UTC), status, checked in (UTC), valid, minutes
    ("V1", "A1", "2026-12-01 02:00", "completed", "2026-12-01 02:05", True, 30),
    ("V2", "A1", "2026-12-03 02:00", "completed", "2026-12-03 02:00", False, 40),
    ("V3", "A2", "2026-12-04 02:00", "completed", "2026-12-04 02:00", True, 10),
    ("V4", "A3", "2026-12-05 02:00", "missed", None, None, None),
    ("V5", "A4", "2026-12-06 02:00", "cancelled", None, None, None),
    ("V6", "A3", "2026-12-20 02:00", "planned", None, None, None),
    ("V7", "A2", "2026-11-28 02:00", "completed", "2026-11-28 02:00", True, 20),
    ("V8", "A4", "2026-12-10 02:00", "checked_in", "2026-12-10 02:00", True, None),
    ("W1", "B1", "2026-12-02 02:00", "completed", "2026-12-02 02:00", True, 25),
    ("W2", "B2", "2026-12-02 03:00", "missed", None, None, None),
    ("W3", "B1", "2026-11-30 16:30", "completed", "2026-11-30 16:35", True, 15),
    ("X1", "E1", "2026-12-08 03:00", "completed", "2026-12-08 03:00", True, 60),
)
ORDERS = (  # name, account, created (UTC), status, amount
    ("O1", "A1", "2026-12-02 02:00:00", "approved", "10000"), ("O2", "A1", "2026-12-20 02:00:00", "shipped", "5000"),
    ("O3", "A2", "2026-12-05 02:00:00", "draft", "2000"), ("O4", "A2", "2027-01-10 02:00:00", "completed", "3000"),
    ("O5", "B1", "2026-12-31 02:00:00", "received", "4000"), ("O6", "B1", "2026-11-30 16:00:00", "approved", "6000"),
    ("O7", "E1", "2027-01-07 03:00:00", "approved", "7000"), ("O8", "E1", "2027-01-07 02:59:59", "approved", "8000"),
)
OPPORTUNITIES = (("P1", "A1", "won", "2026-12-10 02:00", "50000"), ("P2", "B1", "won", "2026-11-29 02:00", "9000"),
                 ("P3", "E1", "lost", "2026-12-09 02:00", "1000"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def company(platform) -> dict[str, str]:
    """The company of the module's docstring; returns the ids of its people, departments and records."""
    clock = platform.clock = FixedClock(T0)
    r = platform.records
    ids = {"north": r.create("department", {"name": "华北区"}, system=True)["id"],
           "east": r.create("department", {"name": "华东区"}, system=True)["id"]}

    def user(username: str, name: str, roles: list[str], **more) -> str:
        values = {"username": username, "display_name": name, "password": PASSWORD, "roles": roles, **more}
        return r.create("user", values, system=True)["id"]

    ids["boss"] = user("boss", "赵经理", ["sales_manager"], department=ids["north"])
    ids["eboss"] = user("eboss", "孙经理", ["sales_manager"], department=ids["east"])
    ids["rep1"] = user("rep1", "王伟", ["sales_rep"], department=ids["north"], manager=ids["boss"])
    ids["rep2"] = user("rep2", "李娜", ["sales_rep"], department=ids["north"], manager=ids["boss"])
    ids["erep"] = user("erep", "陈强", ["sales_rep"], department=ids["east"], manager=ids["eboss"])
    for name, (owner, grade) in ACCOUNTS.items():
        ids[name] = r.create("account", {"name": f"{name} 客户", "grade": grade, "region": REGIONS.get(name),
                                         "owner": ids[owner]}, system=True)["id"]
    for name, acc, planned, status, checked_in, valid, minutes in VISITS:
        owner = ACCOUNTS[acc][0]
        visit = r.create("visit", {"subject": name, "account": ids[acc], "planned_at": utc(planned),
                                   "owner": ids[owner]}, system=True)["id"]
        checked_out = utc(checked_in) + timedelta(minutes=minutes) if minutes is not None else None
        r.update("visit", visit, {"status": status, "check_in_at": checked_in and utc(checked_in),
                                  "check_in_valid": valid, "check_out_at": checked_out,
                                  "duration_minutes": minutes}, version=None, system=True)
        ids[name] = visit
    product = r.create("product", {"name": "云服务", "price": "1"}, system=True)["id"]
    for name, acc, created, status, amount in ORDERS:
        clock.at = utc(created)
        order = r.create("sales_order", {"account": ids[acc], "owner": ids[ACCOUNTS[acc][0]], "order_line": [
            {"product": product, "quantity": "1", "unit_price": amount}]}, system=True)["id"]
        r.update("sales_order", order, {"status": status}, version=None, system=True)
        ids[name] = order
    clock.at = T0
    for name, acc, status, closed, amount in OPPORTUNITIES:
        ids[name] = r.create("opportunity", {"name": name, "account": ids[acc], "amount": amount, "status": status,
                                             "closed_at": utc(closed), "owner": ids[ACCOUNTS[acc][0]],
                                             **({"lost_reason": "price"} if status == "lost" else {})},
                             system=True)["id"]
    return ids


def run(platform, name: str, who: str | None, company, lang_label: bool = False, **filters) -> tuple[dict, dict]:
    """The report's rows by their dimension values and its totals, as `who` (None: unrestricted)."""
    access = None
    if who is not None:
        with reading(platform.engine) as conn:
            access = access_for(platform, company[who], conn)
    result = run_report(platform, definition(platform.metadata, name), access=access, filters=filters)
    dims = [c.key for c in result.dimensions]
    rows = {tuple(row[d] for d in dims): {k: v for k, v in row.items() if k not in dims} for row in result.rows}
    return rows, result.totals


def numbers(**values) -> dict:
    return {k: None if v is None else (v if isinstance(v, int) else Decimal(v)) for k, v in values.items()}


def completion(planned, completed, missed, rate, accounts_planned, accounts_visited) -> dict:
    return numbers(planned=planned, completed=completed, missed=missed, completion_rate=rate,
                   accounts_planned=accounts_planned, accounts_visited=accounts_visited)


def test_plan_completion_per_rep_and_month(platform, company):
    rows, totals = run(platform, "visit_plan_completion", None, company)
    assert rows == {
        ("王伟", "2026-11"): completion(1, 1, 0, "100.00", 1, 1),
        ("王伟", "2026-12"): completion(6, 3, 1, "50.00", 4, 2),  # V5 cancelled is not planned
        ("李娜", "2026-12"): completion(3, 2, 1, "66.67", 2, 1),  # W3 planned 1 December in China
        ("陈强", "2026-12"): completion(1, 1, 0, "100.00", 1, 1),
    }
    assert totals == completion(11, 7, 2, "63.64", 7, 4)


def test_plan_completion_within_a_period_and_the_callers_scope(platform, company):
    rows, totals = run(platform, "visit_plan_completion", "boss", company, planned_at="this_month")
    assert rows == {("王伟", "2026-12"): completion(6, 3, 1, "50.00", 4, 2),
                    ("李娜", "2026-12"): completion(3, 2, 1, "66.67", 2, 1)}
    assert totals == completion(9, 5, 2, "55.56", 6, 3)
    rows, totals = run(platform, "visit_plan_completion", "rep2", company)
    assert rows == {("李娜", "2026-12"): completion(3, 2, 1, "66.67", 2, 1)}


def test_plan_completion_per_department(platform, company):
    rows, totals = run(platform, "visit_plan_completion_department", None, company)
    assert rows == {
        ("华北区", "2026-11"): completion(1, 1, 0, "100.00", 1, 1),
        ("华北区", "2026-12"): completion(9, 5, 2, "55.56", 6, 3),
        ("华东区", "2026-12"): completion(1, 1, 0, "100.00", 1, 1),
    }
    assert totals == completion(11, 7, 2, "63.64", 7, 4)


def coverage(accounts, visited, rate, visits) -> dict:
    return numbers(accounts=accounts, visited=visited, coverage=rate, visits=visits)


def test_coverage_this_month_by_owner_and_grade(platform, company):
    rows, totals = run(platform, "visit_coverage", None, company)
    assert rows == {
        ("王伟", "a"): coverage(2, 2, "100.00", 3),  # A1 twice, A2 once (its November visit not counted)
        ("王伟", "b"): coverage(1, 0, "0.00", 0),  # A3's visit missed
        ("王伟", "c"): coverage(1, 0, "0.00", 0),  # A4 checked in, not completed
        ("李娜", "a"): coverage(1, 1, "100.00", 2),  # W3 checked in 1 December in China
        ("李娜", "b"): coverage(1, 0, "0.00", 0),
        ("陈强", "b"): coverage(1, 1, "100.00", 1),
    }
    assert totals == coverage(7, 4, "57.14", 6)
    rows, totals = run(platform, "visit_coverage", None, company, grade="a")
    assert totals == coverage(3, 3, "100.00", 5)


def test_coverage_moves_with_the_month(platform, company):
    platform.clock = FixedClock(datetime(2026, 11, 30, 3, 0, tzinfo=UTC))  # November in China
    rows, totals = run(platform, "visit_coverage", None, company)
    assert rows[("王伟", "a")] == coverage(2, 1, "50.00", 1)  # A2's V7
    assert rows[("李娜", "a")] == coverage(1, 0, "0.00", 0)  # W3 is December's
    assert totals == coverage(7, 1, "14.29", 1)


def test_coverage_in_a_chosen_period(platform, company):
    # last month (November in China): A2's V7 only; W3 was checked in 1 December in China
    rows, totals = run(platform, "visit_coverage", None, company, period="last_month")
    assert rows[("王伟", "a")] == coverage(2, 1, "50.00", 1)
    assert totals == coverage(7, 1, "14.29", 1)
    # 1 and 2 December (both days included, in China): V1 at A1, W1 and W3 at B1; V2 on the 3rd is not counted
    rows, totals = run(platform, "visit_coverage", None, company, period={"from": "2026-12-01", "to": "2026-12-02"})
    assert rows == {
        ("王伟", "a"): coverage(2, 1, "50.00", 1),
        ("王伟", "b"): coverage(1, 0, "0.00", 0),
        ("王伟", "c"): coverage(1, 0, "0.00", 0),
        ("李娜", "a"): coverage(1, 1, "100.00", 2),
        ("李娜", "b"): coverage(1, 0, "0.00", 0),
        ("陈强", "b"): coverage(1, 0, "0.00", 0),
    }
    assert totals == coverage(7, 2, "28.57", 3)
    with pytest.raises(ValidationFailed) as refused:
        run(platform, "visit_coverage", None, company, period="next_month")
    assert [str(m) for m in refused.value.fields["period"]] == [
        "'next_month' is not a date range: send one of today, this_week, this_month, last_month, this_quarter, "
        'last_quarter, this_year, last_year or {"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}']


def test_coverage_by_region_and_grade_in_the_callers_scope(platform, company):
    rows, totals = run(platform, "visit_coverage_region", None, company)
    assert rows == {
        ("north", "a"): coverage(3, 3, "100.00", 5),  # A1 (V1, V2), A2 (V3), B1 (W1, W3)
        ("east", "b"): coverage(3, 1, "33.33", 1),  # E1 (X1); A3's visit missed, B2's too
        (None, "c"): coverage(1, 0, "0.00", 0),  # A4 checked in, not completed
    }
    assert totals == coverage(7, 4, "57.14", 6)
    rows, totals = run(platform, "visit_coverage_region", "boss", company, period="last_month")
    assert rows == {("north", "a"): coverage(3, 1, "33.33", 1), ("east", "b"): coverage(2, 0, "0.00", 0),
                    (None, "c"): coverage(1, 0, "0.00", 0)}  # the manager's team: E1 is 陈强's, in 华东区
    assert totals == coverage(6, 1, "16.67", 1)


def validity(checked_in, valid, out_of_range, valid_rate, long_enough, effective, effective_rate, avg) -> dict:
    return numbers(checked_in=checked_in, valid=valid, out_of_range=out_of_range, valid_rate=valid_rate,
                   long_enough=long_enough, effective=effective, effective_rate=effective_rate, avg_duration=avg)


def test_validity_per_rep_and_month(platform, company):
    rows, totals = run(platform, "visit_validity", None, company)
    assert rows == {
        ("王伟", "2026-11"): validity(1, 1, 0, "100.00", 1, 1, "100.00", "20.00"),
        # V1 valid 30, V2 out of range 40, V3 valid 10, V8 valid without a duration yet
        ("王伟", "2026-12"): validity(4, 3, 1, "75.00", 2, 1, "25.00", "26.67"),
        ("李娜", "2026-12"): validity(2, 2, 0, "100.00", 2, 2, "100.00", "20.00"),  # W3's 15 minutes count
        ("陈强", "2026-12"): validity(1, 1, 0, "100.00", 1, 1, "100.00", "60.00"),
    }
    assert totals == validity(8, 7, 1, "87.50", 6, 5, "62.50", "28.57")


def effect(visits, accounts, orders, order_amount, won, won_amount) -> dict:
    return numbers(visits=visits, accounts=accounts, orders=orders, order_amount=order_amount, won=won,
                   won_amount=won_amount)


def test_effect_counts_what_followed_within_30_days(platform, company):
    rows, totals = run(platform, "visit_effect", None, company)
    assert rows == {
        ("王伟",): effect(4, 2, 2, "15000", 1, "50000"),  # O1 and O2 once each though both follow V1; O3 a draft
        ("李娜",): effect(2, 1, 1, "4000", 0, "0"),  # O5; O6 and P2 came before the visits
        ("陈强",): effect(1, 1, 1, "8000", 0, "0"),  # O8 a second within the 30 days, O7 on the 30th day's second
    }
    assert totals == effect(7, 4, 4, "27000", 1, "50000")
    rows, totals = run(platform, "visit_effect", None, company, check_in_at="last_month")
    assert rows == {("王伟",): effect(1, 1, 0, "0", 0, "0")}  # V7: O3 a draft, O4 34 days later


def test_effect_within_the_callers_scope(platform, company):
    rows, totals = run(platform, "visit_effect", "eboss", company)
    assert rows == {("陈强",): effect(1, 1, 1, "8000", 0, "0")}


def test_labels_in_both_languages(platform, company):
    result = run_report(platform, definition(platform.metadata, "visit_plan_completion"), access=None)
    assert [(c.label.zh, c.label.en) for c in result.columns] == [
        ("员工", "Rep"), ("月份", "Month"), ("计划拜访", "Planned"), ("已完成", "Completed"), ("已错过", "Missed"),
        ("完成率(%)", "Completion (%)"), ("计划客户数", "Customers planned"), ("已拜访客户数", "Customers visited")]
    labels = {name: (definition(platform.metadata, name).label.zh, definition(platform.metadata, name).label.en)
              for name in ("visit_coverage", "visit_validity", "visit_effect", "visit_plan_completion_department")}
    assert labels == {"visit_coverage": ("拜访覆盖率", "Visit coverage"),
                      "visit_validity": ("有效拜访率", "Visit validity"),
                      "visit_effect": ("拜访效果(30天内成交)", "Visit effect (30 days)"),
                      "visit_plan_completion_department": ("拜访计划完成率(部门)",
                                                           "Visit plan completion by department")}
