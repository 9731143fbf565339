"""The order reports of issue 15 (report_templates/), run by the report engine on both databases and checked
against hand arithmetic on a small company, within the caller's scope, with CSV and a chart.

The company (the clock on 7 December 2026, 09:00 in China): 赵经理 (boss) manages 王伟 (rep1) and 李娜 (rep2);
赵三 (zhao) has no manager.
- Accounts: 甲公司 (grade a, rep1), 乙公司 (b, rep1), 丙公司 (a, rep2), 丁公司 (b, zhao).
- Orders (account, owner, amount, order date, status): A1 甲 rep1 10,000 12-02 approved; A2 甲 rep1 5,000 09-10
  completed; A3 乙 rep1 2,000 12-05 draft; A4 丙 rep2 6,000 12-04 shipped; A5 丁 zhao 8,000 12-01 cancelled;
  A6 丙 rep2 1,000 09-25 received; A7 丁 zhao 3,000 12-03 approved. Confirmed (approved or later): A1 A2 A4 A6 A7.
- Payments (confirmed at, UTC): A1 4,000 (12-03) and 1,000 pending; A2 5,000 (09-30 15:00 = 23:00 in China: Q3);
  A4 2,500 (12-06); A6 1,000 (09-30 16:30 = 10-01 00:30 in China: Q4).
- A1's payment plan: 3,000 due 12-01 (overdue), 7,000 due 2027-01-15 (open). Invoices: A1 2,000 submitted,
  A2 5,000 issued.
- Campaigns: 春季展会 (cost 10,000; leads L1, L2 of rep1 converted into 甲, L3 of rep2 into 丙), 线上推广 (cost
  2,000; L4 of zhao converted into 丁, L5 of rep1 not converted).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from support import FixedClock
from test_api import PASSWORD
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401

from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.storage.engine import reading

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 in China
CONFIRMED = ("approved", "shipped", "received", "completed")


@pytest.fixture
def people(platform, seeded) -> dict[str, str]:
    """The company of the module's docstring; the ids of its people."""
    platform.clock = FixedClock(T0)
    return seeded(company)


def company(platform) -> dict[str, str]:
    r = platform.records

    def user(username: str, name: str, roles: list[str], **more) -> str:
        values = {"username": username, "display_name": name, "password": PASSWORD, "roles": roles, **more}
        return r.create("user", values, system=True)["id"]

    ids = {"boss": user("boss", "赵经理", ["sales_manager"]), "zhao": user("zhao", "赵三", ["sales_rep"]),
           "admin": user("admin", "管理员", ["admin"])}
    ids["rep1"] = user("rep1", "王伟", ["sales_rep"], manager=ids["boss"])
    ids["rep2"] = user("rep2", "李娜", ["sales_rep"], manager=ids["boss"])
    accounts = {name: r.create("account", {"name": name, "grade": grade, "owner": ids[owner]}, system=True)["id"]
                for name, grade, owner in (("甲公司", "a", "rep1"), ("乙公司", "b", "rep1"), ("丙公司", "a", "rep2"),
                                           ("丁公司", "b", "zhao"))}
    product = r.create("product", {"name": "云服务", "price": "1"}, system=True)["id"]
    orders = {}
    for name, account, owner, amount, day, status in (
            ("A1", "甲公司", "rep1", "10000", "2026-12-02", "approved"),
            ("A2", "甲公司", "rep1", "5000", "2026-09-10", "completed"),
            ("A3", "乙公司", "rep1", "2000", "2026-12-05", "draft"),
            ("A4", "丙公司", "rep2", "6000", "2026-12-04", "shipped"),
            ("A5", "丁公司", "zhao", "8000", "2026-12-01", "cancelled"),
            ("A6", "丙公司", "rep2", "1000", "2026-09-25", "received"),
            ("A7", "丁公司", "zhao", "3000", "2026-12-03", "approved")):
        order = r.create("sales_order", {"account": accounts[account], "owner": ids[owner], "order_date": day,
                                         "order_line": [{"product": product, "quantity": "1", "unit_price": amount}]},
                         system=True)
        r.update("sales_order", order["id"], {"status": status}, version=None, system=True)
        orders[name] = order
    for name, amount, status, at in (("A1", "4000", "confirmed", datetime(2026, 12, 3, 2)),
                                     ("A1", "1000", "pending", None),
                                     ("A2", "5000", "confirmed", datetime(2026, 9, 30, 15)),
                                     ("A4", "2500", "confirmed", datetime(2026, 12, 6, 2)),
                                     ("A6", "1000", "confirmed", datetime(2026, 9, 30, 16, 30))):
        r.create("payment", {"sales_order": orders[name]["id"], "amount": amount, "status": status,
                             "confirmed_at": at, "owner": orders[name]["owner"]}, system=True)
    for due, amount, status in (("2026-12-01", "3000", "overdue"), ("2027-01-15", "7000", "open")):
        r.create("payment_plan", {"sales_order": orders["A1"]["id"], "due_date": due, "amount": amount,
                                  "status": status, "owner": ids["rep1"]}, system=True)
    for name, amount, status in (("A1", "2000", "submitted"), ("A2", "5000", "issued")):
        r.create("invoice", {"sales_order": orders[name]["id"], "amount": amount, "status": status,
                             "owner": orders[name]["owner"]}, system=True)
    spring = r.create("campaign", {"name": "春季展会", "cost": "10000"}, system=True)["id"]
    online = r.create("campaign", {"name": "线上推广", "cost": "2000"}, system=True)["id"]
    for name, campaign, owner, account in (("L1", spring, "rep1", "甲公司"), ("L2", spring, "rep1", "甲公司"),
                                           ("L3", spring, "rep2", "丙公司"), ("L4", online, "zhao", "丁公司"),
                                           ("L5", online, "rep1", None)):
        r.create("lead", {"name": name, "mobile": f"1380000000{name[1]}", "campaign": campaign, "owner": ids[owner],
                          "status": "converted" if account else "pending",
                          "converted_account": accounts.get(account)}, system=True)
    ids.update({name: order["order_no"] for name, order in orders.items()})
    return ids


def run(platform, people, name: str, who: str | None = None, **filters) -> tuple[dict, dict]:
    """The report's rows by their dimension values (the same on both databases, whatever the collation) and its
    totals, each row's values in the template's order of measures."""
    access = None
    if who is not None:
        with reading(platform.engine) as conn:
            access = access_for(platform, people[who], conn)
    result = run_report(platform, definition(platform.metadata, name), access=access, filters=filters)
    dims = [c.key for c in result.dimensions]
    keys = [c.key for c in result.measures]
    rows = {tuple(row[d] for d in dims): tuple(_plain(row[k]) for k in keys) for row in result.rows}
    return rows, tuple(_plain(result.totals[k]) for k in keys)


def _plain(value):
    return value if value is None or isinstance(value, date | int) else Decimal(value).normalize()


def d(*values) -> tuple:
    return tuple(None if v is None else v if isinstance(v, date | int) else Decimal(v) for v in values)


def test_order_payment_status(platform, people):
    rows, totals = run(platform, people, "order_payment_status")
    # total, paid, pending, outstanding, next due date, overdue installments, overdue amount
    assert rows == {
        (people["A1"], "甲公司", "王伟"): d("10000", "4000", "1000", "6000", date(2026, 12, 1), 1, "3000"),
        (people["A2"], "甲公司", "王伟"): d("5000", "5000", "0", "0", None, 0, "0"),
        (people["A4"], "丙公司", "李娜"): d("6000", "2500", "0", "3500", None, 0, "0"),
        (people["A6"], "丙公司", "李娜"): d("1000", "1000", "0", "0", None, 0, "0"),
        (people["A7"], "丁公司", "赵三"): d("3000", "0", "0", "3000", None, 0, "0"),
    }
    assert totals == d("25000", "12500", "1000", "12500", date(2026, 12, 1), 1, "3000")
    rows, totals = run(platform, people, "order_payment_status", "rep2")
    assert sorted(rows) == [(people["A4"], "丙公司", "李娜"), (people["A6"], "丙公司", "李娜")]
    assert totals == d("7000", "3500", "0", "3500", None, 0, "0")


def test_employee_performance(platform, people):
    rows, totals = run(platform, people, "employee_performance")
    # orders, amount, returned, paid, outstanding, invoices applied for (A1's submitted 2,000 + A2's issued 5,000)
    assert rows == {
        ("王伟", "甲公司"): d(2, "15000", "0", "9000", "6000", "7000"),
        ("李娜", "丙公司"): d(2, "7000", "0", "3500", "3500", "0"),
        ("赵三", "丁公司"): d(1, "3000", "0", "0", "3000", "0"),
    }
    assert totals == d(5, "25000", "0", "12500", "12500", "7000")
    rows, totals = run(platform, people, "employee_performance", "boss")  # his reports, not 赵三
    assert sorted(rows) == sorted([("王伟", "甲公司"), ("李娜", "丙公司")])
    assert totals == d(4, "22000", "0", "12500", "9500", "7000")
    rows, totals = run(platform, people, "employee_performance", None, order_date="this_month")
    assert rows == {("王伟", "甲公司"): d(1, "10000", "0", "4000", "6000", "2000"),
                    ("李娜", "丙公司"): d(1, "6000", "0", "2500", "3500", "0"),
                    ("赵三", "丁公司"): d(1, "3000", "0", "0", "3000", "0")}


def test_customer_transactions_this_month(platform, people):
    rows, totals = run(platform, people, "customer_transactions")
    # December's confirmed orders: A1, A4, A7 (A2 and A6 are September's, A3 a draft, A5 cancelled)
    assert rows == {("a", "甲公司"): d(1, "10000", "4000", "6000"), ("a", "丙公司"): d(1, "6000", "2500", "3500"),
                    ("b", "丁公司"): d(1, "3000", "0", "3000")}
    assert totals == d(3, "19000", "6500", "12500")
    platform.clock = FixedClock(datetime(2026, 9, 30, 4, 0, tzinfo=UTC))  # in September: A2 and A6
    rows, totals = run(platform, people, "customer_transactions")
    assert rows == {("a", "甲公司"): d(1, "5000", "5000", "0"), ("a", "丙公司"): d(1, "1000", "1000", "0")}


def test_payments_by_month_and_quarter(platform, people):
    rows, totals = run(platform, people, "payments_by_month")
    # in China's time: A2's payment on 30 September, A6's on 1 October; A1's pending one not at all
    assert rows == {("2026-09",): d(1, "5000"), ("2026-10",): d(1, "1000"), ("2026-12",): d(2, "6500")}
    assert totals == d(4, "12500")
    rows, totals = run(platform, people, "payments_by_quarter")
    assert rows == {("2026-Q3",): d(1, "5000"), ("2026-Q4",): d(3, "7500")}
    rows, totals = run(platform, people, "payments_by_quarter", "rep1")
    assert rows == {("2026-Q3",): d(1, "5000"), ("2026-Q4",): d(1, "4000")}


def test_campaign_return(platform, people):
    rows, totals = run(platform, people, "campaign_return")
    # cost, leads, accounts, confirmed orders, paid, orders / cost, paid / cost; 甲's A1 + A2 and 丙's A4 + A6
    # once each for 春季展会 however many of its leads became 甲; 丁's cancelled A5 not at all
    assert rows == {("春季展会",): d("10000", 3, 2, "22000", "12500", "2.2", "1.25"),
                    ("线上推广",): d("2000", 2, 1, "3000", "0", "1.5", "0")}
    assert totals == d("12000", 5, 3, "25000", "12500", "2.08", "1.04")
    rows, totals = run(platform, people, "campaign_return", "rep1")  # rep1's leads and orders only
    assert rows == {("春季展会",): d("10000", 2, 1, "15000", "9000", "1.5", "0.9"),
                    ("线上推广",): d("2000", 1, 0, "0", "0", "0", "0")}


@pytest.mark.parametrize("name", ["order_payment_status", "employee_performance", "customer_transactions",
                                  "payments_by_month", "payments_by_quarter", "campaign_return",
                                  "target_achievement_employee", "target_achievement_department"])
def test_each_report_has_a_csv_and_a_chart(api, people, name):
    response = api.client.get(f"/api/v1/reports/{name}/export.csv?labels=zh",
                              headers={"Authorization": f"Bearer {api.token('admin')}"})
    assert response.status_code == 200, response.data
    table = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    status, body = api.post(f"/reports/{name}/run", "admin", {})
    assert status == 200, body
    assert table[0] == [c["label"]["zh"] for c in body["columns"]]
    assert len(table) == len(body["rows"]) + 2  # the header, the rows, the totals
    chart = api.client.get(f"/api/v1/reports/{name}/chart.svg?lang=zh",
                           headers={"Authorization": f"Bearer {api.token('admin')}"})
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    assert chart.data.decode().startswith('<svg xmlns="http://www.w3.org/2000/svg"')


def test_the_campaign_csv_in_figures(api, people):
    response = api.client.get("/api/v1/reports/campaign_return/export.csv?labels=zh",
                              headers={"Authorization": f"Bearer {api.token('admin')}"})
    table = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert table[0] == ["市场活动", "实际成本", "线索数", "转换客户数", "已确认订单金额", "已回款金额",
                        "投入产出比(订单)", "投入产出比(回款)"]
    assert sorted(table[1:3]) == sorted([["春季展会", "10000.00", "3", "2", "22000.00", "12500.00", "2.20", "1.25"],
                                         ["线上推广", "2000.00", "2", "1", "3000.00", "0.00", "1.50", "0.00"]])
