"""Partner ordering (issue 15, 订货通): a partner user (user.account) sees and orders for their own account only, on
every face (API, pages, exports, reports), through the role's data scope by value (roles.yaml)."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from test_api import PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_orders_to_cash import approve
from test_orders_to_cash import people as people  # noqa: F401
from test_pages import login

from objectplatform.runtime.permissions import access_for

ORDERS = "/objects/sales_order/records"


@pytest.fixture
def world(api, platform, people) -> dict[str, str]:  # noqa: F811
    """The rep's customers 星辰科技 (A grade, its partner user 星辰采购) and 海河贸易; an approved order of each (a
    1,000.00 laptop line, 星辰's with a 200.00 mouse too, 5 % off for A-grade hardware), a pending 100.00 payment and
    an invoice request on each; a lead and an opportunity of the rep's."""
    records = platform.records
    rep = people["rep"]
    ids = {"mine": records.create("account", {"name": "星辰科技", "grade": "a"}, user=rep)["id"],
           "theirs": records.create("account", {"name": "海河贸易", "grade": "c"}, user=rep)["id"]}
    ids["contact"] = records.create("contact", {"name": "李明", "account": ids["mine"]}, user=rep)["id"]
    records.create("contact", {"name": "赵海", "account": ids["theirs"]}, user=rep)
    ids["laptop"] = records.create("product", {"name": "笔记本电脑", "price": "1000", "category": "hardware"},
                                   system=True)["id"]
    ids["mouse"] = records.create("product", {"name": "鼠标", "price": "200", "category": "hardware"},
                                  system=True)["id"]
    records.create("price_policy", {"name": "A级客户 硬件 95折", "grade": "a", "category": "hardware", "discount": 5},
                   system=True)
    ids["partner"] = records.create("user", {"username": "partner", "display_name": "星辰采购", "password": PASSWORD,
                                             "roles": ["partner"], "account": ids["mine"]}, system=True)["id"]
    for key, account, items in (("order", "mine", [("laptop", 1), ("mouse", 1)]), ("other", "theirs", [("laptop", 1)])):
        status, body = api.post(ORDERS, "rep", {"account": ids[account], "order_line": [
            {"product": ids[p], "quantity": q} for p, q in items]})
        assert status == 201, body
        ids[key], ids[f"{key}_line"] = body["id"], body["order_line"][0]["id"]
        approve(api, body)
        ids[f"{key}_payment"] = records.create("payment", {"sales_order": body["id"], "amount": "100",
                                                          "paid_on": "2026-12-07"}, system=True)["id"]
        ids[f"{key}_invoice"] = records.create("invoice", {"sales_order": body["id"], "amount": "100",
                                                          "title": body["id"]}, system=True)["id"]
    ids["lead"] = records.create("lead", {"name": "张三", "mobile": "13800138000"}, user=rep)["id"]
    ids["opportunity"] = records.create("opportunity", {"name": "星辰 换新", "account": ids["mine"], "amount": 5000},
                                        user=rep)["id"]
    return ids


def money(value) -> str:
    return f"{Decimal(str(value)):.2f}"


def listed(api: Api, obj: str, who: str = "partner") -> list[str]:
    status, body = api.get(f"/objects/{obj}/records", who)
    assert status == 200, body
    assert body["total"] == len(body["items"])
    return sorted(item["id"] for item in body["items"])


def test_a_partner_sees_their_account_s_records_only(api, world):
    assert listed(api, "account") == [world["mine"]]
    assert listed(api, "contact") == [world["contact"]]
    assert listed(api, "sales_order") == [world["order"]]
    assert len(listed(api, "order_line")) == 2
    assert listed(api, "payment") == [world["order_payment"]]
    assert listed(api, "invoice") == [world["order_invoice"]]
    assert len(listed(api, "product")) == 2  # every product, with its list price
    assert listed(api, "sales_order", "rep") == sorted([world["order"], world["other"]])

    status, order = api.get(f"{ORDERS}/{world['order']}", "partner")
    assert (status, order["account"], money(order["total_amount"])) == (200, world["mine"], "1140.00")
    assert "opportunity" not in order  # an internal field, hidden from partners
    for path in (f"{ORDERS}/{world['other']}", f"/objects/order_line/records/{world['other_line']}",
                 f"/objects/payment/records/{world['other_payment']}",
                 f"/objects/invoice/records/{world['other_invoice']}", f"/objects/account/records/{world['theirs']}"):
        status, body = api.get(path, "partner")
        assert (status, body["error"]["code"]) == (404, "not_found"), path
    for obj in ("lead", "opportunity", "visit", "user"):
        assert api.get(f"/objects/{obj}/records", "partner")[0] == 403, obj
    assert api.get(f"/objects/opportunity/records/{world['opportunity']}", "partner")[0] in (403, 404)


def test_a_partner_orders_for_their_account_and_the_order_is_approved_as_any(api, platform, world):
    status, body = api.post(ORDERS, "partner", {"account": world["theirs"],
                                                "order_line": [{"product": world["laptop"], "quantity": 1}]})
    assert (status, body["error"]["fields"]) == (422, {"account": [f"no account with id {world['theirs']}"]})
    status, order = api.post(ORDERS, "partner", {"account": world["mine"], "contact": world["contact"],
                                                 "order_line": [{"product": world["laptop"], "quantity": 2}]})
    assert status == 201, order
    line = order["order_line"][0]
    assert (money(line["discount"]), money(order["total_amount"])) == ("5.00", "1900.00")
    assert order["owner"] == world["partner"]  # every record carries its owner (API.md), the partner's own here
    assert api.get(f"{ORDERS}/{order['id']}", "rep")[1]["owner"] == world["partner"]
    assert len(listed(api, "sales_order")) == 2

    status, body = api.post("/objects/order_line/records", "partner", {
        "sales_order": world["other"], "product": world["mouse"], "quantity": 1})
    assert (status, body["error"]["fields"]) == (422, {"sales_order": [f"no sales order with id {world['other']}"]})
    status, body = api.patch(f"/objects/order_line/records/{line['id']}", "partner",
                             {"version": line["version"], "discount": 20})
    assert status == 422 and "A级客户 硬件 95折" in body["error"]["fields"]["discount"][0]
    assert api.post("/objects/payment/records", "partner", {"sales_order": order["id"], "amount": "10"})[0] == 403

    status, body = api.post(f"{ORDERS}/{order['id']}/actions/submit", "partner", {})
    assert (status, body["record"]["status"]) == (200, "submitted")
    approval = body["approval"]["id"]
    for who in ("oadmin", "finance", "warehouse"):
        assert api.post(f"/approvals/{approval}/approve", who, {"comment": "同意"})[0] == 200
    assert api.get(f"{ORDERS}/{order['id']}", "partner")[1]["status"] == "approved"


def test_the_account_s_rep_and_their_manager_see_what_the_partner_orders(app, api, platform, people, world):  # noqa: F811
    """The partner's order is the partner user's: the rep who owns the account and the rep's manager see it and its
    lines through the account's owner (roles.yaml), another rep does not; the partner's page names no user."""
    platform.records.create("user", {"username": "rep3", "display_name": "孙丽", "password": PASSWORD,
                                     "roles": ["sales_rep"]}, system=True)
    status, order = api.post(ORDERS, "partner", {"account": world["mine"],
                                                 "order_line": [{"product": world["mouse"], "quantity": 3}]})
    assert status == 201, order
    assert listed(api, "sales_order", "rep") == sorted([world["order"], world["other"], order["id"]])
    assert listed(api, "sales_order", "boss") == sorted([world["order"], world["other"], order["id"]])
    assert listed(api, "sales_order", "rep3") == []
    line = order["order_line"][0]["id"]
    assert api.get(f"/objects/order_line/records/{line}", "rep")[0] == 200
    assert api.get(f"/objects/order_line/records/{line}", "rep3")[0] == 404
    status, seen = api.get(f"{ORDERS}/{order['id']}", "rep")
    assert (status, seen["owner"], money(seen["total_amount"])) == (200, world["partner"], "570.00")

    client = app.test_client()
    login(client, "partner", PASSWORD)
    page = client.get(f"/o/sales_order/{world['order']}").get_data(as_text=True)
    assert f"#{people['rep']}" not in page  # the owner, a user the partner may not read: a dash, not an id
    # the approval panel names no user either: the submitter and each approver a dash, each step by its label
    panel = page.split('<section class="approvals" id="approvals">', 1)[1].split("</section>", 1)[0]
    people_named = [platform.records.get("user", people[who])["display_name"] for who in people if who in (
        "rep", "boss", "oadmin", "finance", "warehouse")]
    assert [name for name in people_named if name in panel] == []
    assert re.findall(r'<span class="meta">(.*?)</span>', panel) == [
        "— 提交于 2026-12-07 09:00 · 结束于 2026-12-07 09:00"]
    assert re.findall(r'<span class="who">(.*?)</span>', panel) == ["—", "—", "—"]


def test_exports_and_reports_hold_the_partner_to_their_account(api, platform, world):
    bearer = {"Authorization": f"Bearer {api.token('partner')}"}
    response = api.client.get(f"/api/v1{ORDERS}/export.csv", headers=bearer)
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    order_no = api.get(f"{ORDERS}/{world['order']}", "rep")[1]["order_no"]
    assert (response.status_code, len(rows), order_no in rows[1]) == (200, 2, True)  # the header and 星辰's order

    status, report = api.post("/reports/outstanding_by_account/run", "partner", {})
    assert status == 200, report
    assert [(row["account"], money(row["outstanding"])) for row in report["rows"]] == [
        ("星辰科技", "1140.00")]
    status, report = api.post("/reports/outstanding_by_account/run", "rep", {})
    assert len(report["rows"]) == 2


def test_a_partner_without_an_account_sees_no_order(api, platform, world):
    platform.records.update("user", world["partner"], {"account": None}, version=None, system=True)
    assert listed(api, "sales_order") == []
    assert listed(api, "account") == []
    assert access_for(platform, world["partner"]).can("sales_order", "read")


def test_the_partner_s_pages(app, api, world):
    client = app.test_client()
    login(client, "partner", PASSWORD)
    home = client.get("/").get_data(as_text=True)
    assert "我的订单" in home and "可订产品" in home
    nav = home.split("<nav", 1)[1].split("</nav>", 1)[0]
    assert "销售订单" in nav and "产品" in nav
    for hidden in ("线索", "商机", "拜访"):
        assert hidden not in nav, hidden
    listing = client.get("/o/sales_order").get_data(as_text=True)
    order_no = api.get(f"{ORDERS}/{world['order']}", "rep")[1]["order_no"]
    other_no = api.get(f"{ORDERS}/{world['other']}", "rep")[1]["order_no"]
    assert order_no in listing and other_no not in listing
    assert client.get(f"/o/sales_order/{world['other']}").status_code == 404
    assert client.get(f"/o/sales_order/{world['order']}").status_code == 200
    assert client.get(f"/o/lead/{world['lead']}").status_code in (403, 404)
    csv_text = client.get("/o/sales_order/export.csv").get_data(as_text=True)
    assert order_no in csv_text and other_no not in csv_text


def test_a_partner_reads_the_approvals_of_their_order_without_the_approvers(api, platform, people, world):  # noqa: F811
    """The approvals API names no internal user to a partner (the pages show them a dash): no approver's id or name,
    no one's but the partner's own; the rep reads the same approval with every name."""
    status, order = api.post(ORDERS, "partner", {"account": world["mine"],
                                                 "order_line": [{"product": world["laptop"], "quantity": 1}]})
    assert status == 201, order
    approval = api.post(f"{ORDERS}/{order['id']}/actions/submit", "partner", {"comment": "请尽快"})[1]["approval"]
    api.post(f"/approvals/{approval['id']}/approve", "oadmin", {"comment": "同意"})
    status, body = api.get(f"{ORDERS}/{order['id']}/approvals", "partner")
    assert status == 200, body

    def people_in(item: dict) -> list:
        return [(item["submitter"], item["submitter_name"], item["ended_by"])] + [
            (step["name"], [(a["user"], a["name"], a["decision"], a["comment"]) for a in step["approvers"]])
            for step in item["steps"]]

    partner = (world["partner"], "星辰采购", None)
    assert people_in(body["items"][0]) == [partner, ("order_admin", [(None, None, "approved", "同意")]),
                                           ("finance", [(None, None, None, None)]), ("warehouse", [])]
    assert people_in(api.get(f"/approvals/{approval['id']}", "partner")[1]) == people_in(body["items"][0])
    assert people_in(api.get(f"{ORDERS}/{order['id']}/approvals", "rep")[1]["items"][0]) == [
        partner, ("order_admin", [(people["oadmin"], "周订单", "approved", "同意")]),
        ("finance", [(people["finance"], "钱会计", None, None)]), ("warehouse", [])]
