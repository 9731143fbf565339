"""销售目标 (issue 15): monthly targets per employee and department, set by managers for their scope and read by
reps as their own, and the achievement reports (target, achieved, gap, rate) run by the report engine beside
hand arithmetic on a small company, on both databases.

The company (December 2026, the clock on 7 December, 09:00 in China):
- 华北区 (manager 赵经理 boss): reps 王伟 (rep1) and 李娜 (rep2); 华东区 (manager 孙经理 eboss): rep 陈强 (erep).
- Orders (order date, status): rep1 O1 10,000 (12-03 approved), O2 5,000 (12-05 shipped), O3 2,000 (12-06
  draft: not confirmed), O4 3,000 (11-20 completed); rep2 O5 4,000 (12-01 received), O6 1,000 (12-02
  cancelled); erep O7 8,000 (12-04 approved).
- Payments (confirmed at, UTC): O1 6,000 (12-05), O2 2,000 (11-30 16:30 = 12-01 00:30 in China: December),
  O4 3,000 (12-02), O5 1,500 pending (not confirmed).
- Targets (order, payment): rep1 2026-12 20,000 / 10,000, rep1 2026-11 3,000 / 5,000, rep2 2026-12 4,000 / 0,
  华北区 2026-12 30,000 / 15,000, 华东区 2026-12 10,000 / 5,000.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from support import FixedClock
from test_api import PASSWORD
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_pages import login

from objectplatform.runtime.reports import definition, run_report

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 in China
CONFIRMED_AT = {"O1": datetime(2026, 12, 5, 2, 0), "O2": datetime(2026, 11, 30, 16, 30),
                "O4": datetime(2026, 12, 2, 3, 0)}


@pytest.fixture
def people(platform, seeded) -> dict[str, str]:
    """The company of the module's docstring; returns the ids of its people, departments and orders."""
    platform.clock = FixedClock(T0)
    return seeded(company)


def company(platform) -> dict[str, str]:
    r = platform.records
    north = r.create("department", {"name": "华北区"}, system=True)["id"]
    east = r.create("department", {"name": "华东区"}, system=True)["id"]

    def user(username: str, name: str, roles: list[str], **more) -> str:
        values = {"username": username, "display_name": name, "password": PASSWORD, "roles": roles, **more}
        return r.create("user", values, system=True)["id"]

    ids = {"north": north, "east": east, "boss": user("boss", "赵经理", ["sales_manager"], department=north),
           "eboss": user("eboss", "孙经理", ["sales_manager"], department=east),
           "admin": user("admin", "管理员", ["admin"])}
    ids["rep1"] = user("rep1", "王伟", ["sales_rep"], department=north, manager=ids["boss"])
    ids["rep2"] = user("rep2", "李娜", ["sales_rep"], department=north, manager=ids["boss"])
    ids["erep"] = user("erep", "陈强", ["sales_rep"], department=east, manager=ids["eboss"])
    r.update("department", north, {"manager": ids["boss"]}, version=None, system=True)
    r.update("department", east, {"manager": ids["eboss"]}, version=None, system=True)
    product = r.create("product", {"name": "云服务", "price": "1"}, system=True)["id"]
    for name, owner, amount, day, status in (
            ("O1", "rep1", "10000", "2026-12-03", "approved"), ("O2", "rep1", "5000", "2026-12-05", "shipped"),
            ("O3", "rep1", "2000", "2026-12-06", "draft"), ("O4", "rep1", "3000", "2026-11-20", "completed"),
            ("O5", "rep2", "4000", "2026-12-01", "received"), ("O6", "rep2", "1000", "2026-12-02", "cancelled"),
            ("O7", "erep", "8000", "2026-12-04", "approved")):
        account = r.create("account", {"name": f"{name} 客户", "owner": ids[owner]}, system=True)["id"]
        order = r.create("sales_order", {"account": account, "owner": ids[owner], "order_date": day, "order_line": [
            {"product": product, "quantity": "1", "unit_price": amount}]}, system=True)["id"]
        r.update("sales_order", order, {"status": status}, version=None, system=True)
        ids[name] = order
    for name, amount, status in (("O1", "6000", "confirmed"), ("O2", "2000", "confirmed"),
                                 ("O4", "3000", "confirmed"), ("O5", "1500", "pending")):
        owner = "rep2" if name == "O5" else "rep1"
        r.create("payment", {"sales_order": ids[name], "amount": amount, "status": status, "owner": ids[owner],
                             "confirmed_at": CONFIRMED_AT.get(name)}, system=True)
    return ids


@pytest.fixture
def targets(api, people) -> dict[str, str]:
    """The targets of the module's docstring, each set through the API by the employee's (department's) manager."""
    made = {}
    for key, who, values in (
            ("rep1_dec", "boss", {"user": people["rep1"], "period": "2026-12", "order_amount": 20000,
                                  "payment_amount": 10000}),
            ("rep1_nov", "boss", {"user": people["rep1"], "period": "2026-11", "order_amount": 3000,
                                  "payment_amount": 5000}),
            ("rep2_dec", "boss", {"user": people["rep2"], "period": "2026-12", "order_amount": 4000,
                                  "payment_amount": 0}),
            ("north_dec", "boss", {"department": people["north"], "period": "2026-12", "order_amount": 30000,
                                   "payment_amount": 15000}),
            ("east_dec", "eboss", {"department": people["east"], "period": "2026-12", "order_amount": 10000,
                                   "payment_amount": 5000})):
        status, body = api.post("/objects/sales_target/records", who, values)
        assert status == 201, body
        made[key] = body
    return made


def run(platform, name: str, who: str | None, people, **filters) -> tuple[dict, dict]:
    """The report's rows by their dimension values (sorted the same on both databases) and its totals."""
    from objectplatform.runtime.permissions import access_for
    from objectplatform.runtime.storage.engine import reading

    access = None
    if who is not None:
        with reading(platform.engine) as conn:
            access = access_for(platform, people[who], conn)
    result = run_report(platform, definition(platform.metadata, name), access=access, filters=filters)
    dims = [c.key for c in result.dimensions]
    rows = {tuple(row[d] for d in dims): {k: v for k, v in row.items() if k not in dims} for row in result.rows}
    return rows, result.totals


def figures(order_target, order_achieved, order_gap, order_rate, payment_target, payment_achieved, payment_gap,
            payment_rate) -> dict:
    values = locals()
    return {k: None if v is None else Decimal(v) for k, v in values.items()}


def test_a_target_belongs_to_whom_it_measures(api, people, targets):
    rep1_dec = targets["rep1_dec"]
    assert (rep1_dec["owner"], rep1_dec["period"], Decimal(str(rep1_dec["order_amount"]))) == \
        (people["rep1"], "2026-12", Decimal("20000"))
    assert targets["north_dec"]["owner"] == people["boss"]  # a department's target: its manager's
    status, body = api.get("/objects/sales_target/records?sort=period", "rep1")
    assert status == 200
    assert [(t["period"], t["user"]) for t in body["items"]] == [("2026-11", people["rep1"]),
                                                                ("2026-12", people["rep1"])]
    status, body = api.get(f"/objects/sales_target/records/{targets['rep2_dec']['id']}", "rep1")
    assert status == 404  # another rep's target is outside a rep's scope
    status, body = api.get("/objects/sales_target/records", "boss")
    assert sorted(t["period"] + (t["user"] or "d") for t in body["items"]) == sorted(
        ["2026-11" + people["rep1"], "2026-12" + people["rep1"], "2026-12" + people["rep2"], "2026-12d"])


def test_bad_targets_are_refused_and_nothing_is_written(api, people, targets):
    def post(who, values):
        return api.post("/objects/sales_target/records", who, {"period": "2026-12", "order_amount": 1, **values})

    status, body = post("boss", {"user": people["rep1"], "department": people["north"], "period": "2027-01"})
    assert (status, body["error"]["fields"]) == (422, {"user": ["Give either an employee or a department (not both)"]})
    status, body = post("boss", {"period": "2027-01"})
    assert (status, body["error"]["fields"]) == (422, {"user": ["Give either an employee or a department (not both)"]})
    for period in ("2026-13", "2026-1", "26-12-1"):
        status, body = post("boss", {"user": people["rep1"], "period": period})
        assert (status, body["error"]["fields"]) == (422, {"period": ["The month is YYYY-MM, e.g. 2026-12"]}), period
    status, body = post("boss", {"user": people["rep1"]})  # rep1 has a December target already
    assert (status, body["error"]["fields"]) == (422, {"target_key": ["already used by another sales target"]})
    status, body = post("boss", {"department": people["north"]})
    assert (status, body["error"]["fields"]) == (422, {"target_key": ["already used by another sales target"]})
    status, body = post("rep1", {"user": people["rep2"], "period": "2027-01"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = post("boss", {"user": people["erep"], "period": "2027-01"})  # not one of boss's reports
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "user " + people["erep"] in body["error"]["message"]
    status, body = post("boss", {"department": people["east"], "period": "2027-01"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = api.get("/objects/sales_target/records", "admin")
    assert body["total"] == 5
    # the same month for another employee, and another month, are fine; an administrator sets any target
    assert post("boss", {"user": people["rep2"], "period": "2026-11"})[0] == 201
    assert post("admin", {"user": people["erep"], "period": "2026-12"})[0] == 201


def test_target_achievement_by_employee(platform, people, targets):
    rows, totals = run(platform, "target_achievement_employee", None, people)
    assert rows == {
        ("王伟", "2026-11"): figures("3000", "3000", "0", "100", "5000", "0", "5000", "0"),
        ("王伟", "2026-12"): figures("20000", "15000", "5000", "75", "10000", "11000", "0", "110"),
        ("李娜", "2026-12"): figures("4000", "4000", "0", "100", "0", "0", "0", None),
    }
    # each order and payment once: O1, O2, O4, O5 = 22,000; 6,000 + 2,000 + 3,000 = 11,000; still to go: each
    # row's added up (王伟's 5,000 of payments in November, his 1,000 over in December not offsetting it)
    assert totals == figures("27000", "22000", "5000", "81.48", "15000", "11000", "5000", "73.33")
    rows, totals = run(platform, "target_achievement_employee", None, people, period="2026-12")
    assert sorted(rows) == [("李娜", "2026-12"), ("王伟", "2026-12")]
    assert totals == figures("24000", "19000", "5000", "79.17", "10000", "11000", "0", "110")


def test_the_team_s_still_to_go_adds_up_each_rep_s_though_the_team_is_ahead(app, platform, people, targets):
    """李娜's December payment target of 500 not met: the team (王伟 11,000 of 10,000) is ahead, 104.76%, yet 500 is
    still to go, in the report's totals row; the manager's 团队目标完成情况 widget (every month) adds 王伟's 5,000 of
    November."""
    platform.records.update("sales_target", targets["rep2_dec"]["id"], {"payment_amount": 500}, version=None,
                            system=True)
    rows, totals = run(platform, "target_achievement_employee", None, people, period="2026-12")
    assert rows == {
        ("王伟", "2026-12"): figures("20000", "15000", "5000", "75", "10000", "11000", "0", "110"),
        ("李娜", "2026-12"): figures("4000", "4000", "0", "100", "500", "0", "500", "0"),
    }
    assert totals == figures("24000", "19000", "5000", "79.17", "10500", "11000", "500", "104.76")
    client = app.test_client()
    login(client, "boss", PASSWORD)
    page = client.get("/").data.decode()
    widget = page.split("<h2>团队目标完成情况</h2>")[1].split("</section>")[0]
    total = re.search(r'<tr class="totals">(.*?)</tr>', widget, re.S).group(1)
    assert re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", total) == [
        "合计", "", "27,000.00", "22,000.00", "5,000.00", "81.48", "15,500.00", "11,000.00", "5,500.00", "70.97"]


def test_target_achievement_by_department(platform, people, targets):
    rows, totals = run(platform, "target_achievement_department", None, people)
    assert rows == {
        ("华北区", "2026-12"): figures("30000", "19000", "11000", "63.33", "15000", "11000", "4000", "73.33"),
        ("华东区", "2026-12"): figures("10000", "8000", "2000", "80", "5000", "0", "5000", "0"),
    }
    assert totals == figures("40000", "27000", "13000", "67.5", "20000", "11000", "9000", "55")


def test_target_achievement_by_quarter(platform, people, targets):
    rows, totals = run(platform, "target_achievement_employee_quarter", None, people)
    assert rows == {
        ("王伟", "2026-Q4"): figures("23000", "18000", "5000", "78.26", "15000", "11000", "4000", "73.33"),
        ("李娜", "2026-Q4"): figures("4000", "4000", "0", "100", "0", "0", "0", None),
    }
    rows, totals = run(platform, "target_achievement_department_quarter", None, people)
    assert rows == {
        ("华北区", "2026-Q4"): figures("30000", "19000", "11000", "63.33", "15000", "11000", "4000", "73.33"),
        ("华东区", "2026-Q4"): figures("10000", "8000", "2000", "80", "5000", "0", "5000", "0"),
    }


def test_achievement_within_the_callers_scope(platform, people, targets):
    rows, totals = run(platform, "target_achievement_employee", "rep1", people)
    assert sorted(rows) == [("王伟", "2026-11"), ("王伟", "2026-12")]
    assert totals == figures("23000", "18000", "5000", "78.26", "15000", "11000", "5000", "73.33")
    rows, _ = run(platform, "target_achievement_employee", "rep2", people)
    assert rows == {("李娜", "2026-12"): figures("4000", "4000", "0", "100", "0", "0", "0", None)}
    rows, _ = run(platform, "target_achievement_department", "boss", people)
    assert list(rows) == [("华北区", "2026-12")]
    rows, _ = run(platform, "target_achievement_department", "eboss", people)
    assert rows == {("华东区", "2026-12"): figures("10000", "8000", "2000", "80", "5000", "0", "5000", "0")}


def test_achievement_through_the_api_with_csv(api, people, targets):
    status, body = api.post("/reports/target_achievement_employee/run", "rep1", {"filters": {"period": "2026-12"}})
    assert status == 200, body
    assert [c["key"] for c in body["columns"]] == [
        "user", "period", "order_target", "order_achieved", "order_gap", "order_rate", "payment_target",
        "payment_achieved", "payment_gap", "payment_rate"]
    assert [(r["user"], Decimal(str(r["order_achieved"])), Decimal(str(r["order_rate"]))) for r in body["rows"]] == \
        [("王伟", Decimal("15000"), Decimal("75"))]


def test_a_rep_sees_this_months_target_on_the_home_page(app, people, targets):
    """本月目标 is a widget of the rep's home dashboard, 团队目标完成情况 of the manager's
    (report_templates/dashboards.yaml)."""
    def widget(page: str) -> str:
        return page.split("<h2>本月目标</h2>")[1].split("</section>")[0]

    for who, name, row in (
            ("rep1", "王伟", ["20,000.00", "15,000.00", "5,000.00", "75.00",
                              "10,000.00", "11,000.00", "0.00", "110.00"]),
            ("rep2", "李娜", ["4,000.00", "4,000.00", "0.00", "100.00", "0.00", "0.00", "0.00", "—"])):
        client = app.test_client()
        login(client, who, PASSWORD)
        figures = widget(client.get("/").data.decode())  # one row: a caption and a tile per measure, no table
        assert '<a href="/reports/my_target_this_month">' in figures and "<table" not in figures
        assert re.findall(r'<p class="figures-caption">([^<]*)</p>', figures) == [name]
        assert re.findall(r"<dt>([^<]*)</dt>", figures) == ["订单目标", "已完成订单", "订单还差", "订单完成率(%)",
                                                           "回款目标", "已完成回款", "回款还差", "回款完成率(%)"]
        assert re.findall(r"<dd>([^<]*)</dd>", figures) == row
    client = app.test_client()
    login(client, "eboss", PASSWORD)  # a manager: his team's targets
    page = client.get("/").data.decode()
    team = page.split("<h2>团队目标完成情况</h2>")[1].split("</section>")[0]
    assert '<a href="/reports/target_achievement_employee">' in team
