"""Orders to cash, after approval (issue 15): the order approved by its three role steps, shipped, received and
completed by itself once paid; its balances at each step; payments and invoices never above the order (also when
two are saved at the same moment, on PostgreSQL); finance's actions; payment plans and their overdue rule."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from support import FixedClock
from test_api import PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_pages import login, token
from test_records_race import run, wait_until_blocked

from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.rules import run_rules
from objectplatform.runtime.workqueue import work_queue
from objectplatform.translations import message_text

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 in China
BALANCES = ("total_amount", "paid_amount", "pending_payment_amount", "outstanding_amount", "invoiced_amount",
            "pending_invoice_amount", "uninvoiced_amount")


@pytest.fixture
def people(platform, seeded) -> dict[str, str]:
    """销售部 (boss manages rep), an order administrator, finance, a warehouse keeper and a shipper."""
    platform.clock = FixedClock(T0)
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]

    def user(username: str, name: str, roles: list[str], **more) -> str:
        values = {"username": username, "display_name": name, "password": PASSWORD, "roles": roles, **more}
        return records.create("user", values, system=True)["id"]

    ids = {"boss": user("boss", "赵经理", ["sales_manager"], department=sales)}
    ids["rep"] = user("rep", "王伟", ["sales_rep"], department=sales, manager=ids["boss"])
    ids["oadmin"] = user("oadmin", "周订单", ["order_admin"])
    ids["finance"] = user("finance", "钱会计", ["finance"])
    ids["warehouse"] = user("warehouse", "吴仓库", ["warehouse"])
    ids["shipper"] = user("shipper", "孙发货", ["shipper"])
    return ids


@pytest.fixture
def order(api, people, platform) -> dict:
    """A draft order of the rep: three 1,000.00 laptops, 10 % order discount (2,700.00)."""
    records = platform.records
    account = records.create("account", {"name": "星辰科技"}, user=people["rep"])["id"]
    product = records.create("product", {"name": "笔记本电脑", "price": "1000"}, system=True)["id"]
    status, body = api.post("/objects/sales_order/records", "rep", {
        "account": account, "order_discount": 10,
        "order_line": [{"product": product, "quantity": 3, "unit_price": "1000"}]})
    assert status == 201, body
    return body


def balances(api: Api, order_id: str) -> dict[str, Decimal]:
    body = api.get(f"/objects/sales_order/records/{order_id}", "rep")[1]
    return {name: Decimal(str(body[name])) for name in BALANCES}


def expect(total, paid, pending, outstanding, invoiced, pending_invoices, uninvoiced) -> dict[str, Decimal]:
    values = (total, paid, pending, outstanding, invoiced, pending_invoices, uninvoiced)
    return {name: Decimal(value) for name, value in zip(BALANCES, values, strict=True)}


def act(api: Api, obj: str, record_id: str, action: str, who: str, params: dict | None = None) -> dict:
    status, body = api.post(f"/objects/{obj}/records/{record_id}/actions/{action}", who, params or {})
    assert status == 200, body
    return body["record"]


def approve(api: Api, order: dict) -> dict:
    """Submitted by the rep and approved by the order administrator, finance and the warehouse, in order."""
    status, body = api.post(f"/objects/sales_order/records/{order['id']}/actions/submit", "rep", {})
    assert status == 200, body
    approval = body["approval"]["id"]
    for who in ("oadmin", "finance", "warehouse"):
        assert api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]["status"] == "submitted"
        status, body = api.post(f"/approvals/{approval}/approve", who, {"comment": "同意"})
        assert status == 200, body
    return api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]


def pay(api: Api, order_id: str, amount: str, **more) -> tuple[int, dict]:
    return api.post("/objects/payment/records", "rep", {"sales_order": order_id, "amount": amount, **more})


def todos(api: Api, who: str) -> list[str]:
    return [t["title"] for t in api.get("/todos", who)[1]["items"]]


def told(platform, user_id: str) -> list[str]:
    items, _unread = work_queue(platform).notifications_for(user_id)
    return sorted(n.title_zh for n in items)


def test_the_whole_cycle_with_the_balances_at_each_step(api, people, platform, order):
    no = order["order_no"]
    assert no == "SO-202612-0001"
    assert balances(api, order["id"]) == expect("2700", "0", "0", "2700", "0", "0", "2700")

    approved = approve(api, order)
    assert approved["status"] == "approved"
    assert todos(api, "shipper") == [f"确认发货 {no}：同意"]  # the last approver's comment follows
    assert told(platform, people["rep"]) == [f"订单审批 {no} 已通过：同意"]

    shipped = act(api, "sales_order", order["id"], "confirm_shipment", "shipper", {"delivery_note": "顺丰 SF1"})
    assert (shipped["status"], todos(api, "shipper")) == ("shipped", [])

    status, first = pay(api, order["id"], "1000", paid_on="2026-12-08")
    assert (status, first["status"], first["payment_no"]) == (201, "pending", "PM-202612-0001")
    assert todos(api, "finance") == ["回款确认 PM-202612-0001：1,000.00"]
    assert balances(api, order["id"]) == expect("2700", "0", "1000", "2700", "0", "0", "2700")

    assert api.post(f"/objects/payment/records/{first['id']}/actions/confirm_payment", "rep", {}) == (403, {
        "error": {"code": "forbidden",
                  "message": "your roles do not allow Confirm payment on payments (allowed: Finance)"}})
    confirmed = act(api, "payment", first["id"], "confirm_payment", "finance")
    assert (confirmed["status"], confirmed["confirmed_by"], confirmed["confirmed_at"]) == (
        "confirmed", people["finance"], "2026-12-07T01:00:00+00:00")
    assert todos(api, "finance") == []
    assert balances(api, order["id"]) == expect("2700", "1000", "0", "1700", "0", "0", "2700")

    received = act(api, "sales_order", order["id"], "confirm_receipt", "rep", {"received_on": "2026-12-09"})
    assert (received["status"], received["received_on"], received["received_by"]) == (
        "received", "2026-12-09", people["rep"])
    assert told(platform, people["finance"]) == [f"订单 {no} 客户已收货，待回款 1,700.00"]
    assert f"订单 {no} 客户已收货" in told(platform, people["rep"])

    status, last = pay(api, order["id"], "1700")
    assert status == 201
    assert balances(api, order["id"]) == expect("2700", "1000", "1700", "1700", "0", "0", "2700")
    act(api, "payment", last["id"], "confirm_payment", "finance")
    done = api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]
    assert (done["status"], Decimal(str(done["outstanding_amount"]))) == ("completed", Decimal("0.00"))
    history = api.get(f"/objects/sales_order/records/{order['id']}/history", "rep")[1]["items"]
    assert [(h["old"], h["new"], h["user"]) for h in history if h["change"] == "complete" and h["field"] == "status"
            ] == [("received", "completed", None)]


def test_a_payment_above_the_balance_is_refused_with_the_numbers(api, people, platform, order):
    approve(api, order)
    assert pay(api, order["id"], "2000")[0] == 201
    assert pay(api, order["id"], "800") == (422, {"error": {
        "code": "validation_failed", "message": "1 field error", "fields": {"amount": [
            "Payments recorded of Sales order SO-202612-0001 would be 2800.00, above 2700.00: "
            "at most 700.00 is left"]}}})
    assert api.get("/objects/payment/records", "rep")[1]["total"] == 1  # nothing written
    assert pay(api, order["id"], "700")[0] == 201
    assert balances(api, order["id"]) == expect("2700", "0", "2700", "2700", "0", "0", "2700")


def test_a_rejected_payment_frees_its_amount_and_its_resubmission_is_held_to_the_limit(api, people, platform, order):
    approve(api, order)
    first = pay(api, order["id"], "2000")[1]
    act(api, "payment", first["id"], "reject_payment", "finance", {"reason": "未到账"})
    assert todos(api, "finance") == []
    assert pay(api, order["id"], "2700")[0] == 201
    status, body = api.post(f"/objects/payment/records/{first['id']}/actions/resubmit", "rep", {})
    assert (status, body["error"]["fields"]) == (422, {"amount": [
        "Payments recorded of Sales order SO-202612-0001 would be 4700.00, above 2700.00: at most 0.00 is left"]})


def test_a_payment_on_a_draft_or_cancelled_order_is_refused(api, people, platform, order):
    refused = (422, {"error": {"code": "validation_failed", "message": "1 field error", "fields": {"sales_order": [
        "Sales order SO-202612-0001 is Draft: its Status must be Approved, Shipped, Received, Completed"]}}})
    assert pay(api, order["id"], "100") == refused
    act(api, "sales_order", order["id"], "cancel", "rep", {"reason": "客户取消"})
    status, body = pay(api, order["id"], "100")
    assert (status, body["error"]["fields"]["sales_order"]) == (422, [
        "Sales order SO-202612-0001 is Cancelled: its Status must be Approved, Shipped, Received, Completed"])
    status, body = api.post("/objects/invoice/records", "rep", {"sales_order": order["id"], "amount": "100",
                                                              "title": "星辰科技有限公司"})
    assert (status, body["error"]["fields"]["sales_order"]) == (422, [
        "Sales order SO-202612-0001 is Cancelled: its Status must be Approved, Shipped, Received, Completed"])
    assert api.get("/objects/payment/records", "rep")[1]["total"] == 0


def test_invoices_never_above_the_order_and_issued_by_finance(api, people, platform, order):
    approve(api, order)
    invoices = "/objects/invoice/records"
    status, first = api.post(invoices, "rep", {"sales_order": order["id"], "amount": "2000",
                                               "title": "星辰科技有限公司", "tax_no": "91310000MA1FL0001X"})
    assert status == 201, first
    assert balances(api, order["id"]) == expect("2700", "0", "0", "2700", "0", "2000", "700")
    assert api.post(invoices, "rep", {"sales_order": order["id"], "amount": "800", "title": "星辰科技"}) == (422, {
        "error": {"code": "validation_failed", "message": "1 field error", "fields": {"amount": [
            "Invoices requested of Sales order SO-202612-0001 would be 2800.00, above 2700.00: "
            "at most 700.00 is left"]}}})
    act(api, "invoice", first["id"], "submit", "rep")
    assert todos(api, "finance") == [f"开票 {first['invoice_no']}"]
    assert api.post(f"{invoices}/{first['id']}/actions/issue_invoice", "rep", {"tax_invoice_no": "1"})[0] == 403
    issued = act(api, "invoice", first["id"], "issue_invoice", "finance", {"tax_invoice_no": "04400123"})
    assert (issued["status"], issued["tax_invoice_no"], issued["issued_at"], issued["issued_by"]) == (
        "issued", "04400123", "2026-12-07T01:00:00+00:00", people["finance"])
    assert todos(api, "finance") == []
    assert balances(api, order["id"]) == expect("2700", "0", "0", "2700", "2000", "0", "700")
    status, second = api.post(invoices, "rep", {"sales_order": order["id"], "amount": "700", "title": "星辰科技"})
    act(api, "invoice", second["id"], "submit", "rep")
    rejected = act(api, "invoice", second["id"], "reject_invoice", "finance", {"reason": "抬头有误"})
    assert (rejected["status"], rejected["reject_reason"]) == ("rejected", "抬头有误")
    assert balances(api, order["id"]) == expect("2700", "0", "0", "2700", "2000", "0", "700")


def test_finance_confirms_a_payment_from_the_inbox_by_the_to_do_s_own_action(app, api, people, platform, order):
    """The to-do offers 确认回款 (its action), not 完成, which would close it with the payment still pending."""
    approve(api, order)
    _, payment = pay(api, order["id"], "1000", paid_on="2026-12-08")
    client = app.test_client()
    login(client, "finance", PASSWORD)
    inbox = client.get("/todos").get_data(as_text=True)
    row = re.search(r'<tr data-id="\d+">.*?</tr>', inbox, re.S).group(0)
    assert re.findall(r'<form method="post" action="([^"]+)"', row) == [
        f"/o/payment/{payment['id']}/action/confirm_payment"]
    assert re.findall(r"<button [^>]*>(.*?)</button>", row) == ["确认回款"]
    done = client.post(f"/o/payment/{payment['id']}/action/confirm_payment",
                       data={"csrf_token": token(client), "next": "/todos"})
    assert (done.status_code, done.location) == (302, "/todos")
    assert platform.records.get("payment", payment["id"])["status"] == "confirmed"
    assert todos(api, "finance") == []


def test_the_payment_form_shows_the_chosen_order_s_balances(app, api, people, platform, order):
    approve(api, order)
    pay(api, order["id"], "1000")
    client = app.test_client()
    login(client, "rep", PASSWORD)
    form = client.get("/o/payment/new").get_data(as_text=True)
    assert 'data-fields="total_amount,paid_amount,pending_payment_amount,outstanding_amount,next_due_date"' in form
    shown = client.get(f"/o/sales_order/shown/{order['id']}?fields=total_amount,pending_payment_amount,"
                       "outstanding_amount,nope").get_json()
    assert [(i["label"], i["value"]) for i in shown["items"]] == [
        ("订单金额", "2,700.00"), ("待确认回款", "1,000.00"), ("待回款金额", "2,700.00")]
    login(client, "shipper", PASSWORD)  # reads every order; an unknown one shows nothing
    assert client.get("/o/sales_order/shown/999?fields=total_amount").get_json() == {"items": []}


def test_an_invoice_request_takes_the_account_s_billing_details(api, people, platform, order):
    api.patch(f"/objects/account/records/{order['account']}", "rep", {
        "version": 1, "tax_no": "91310000MA1FL0001X", "bank_name": "招商银行上海分行", "bank_account": "6225880011",
        "address": "上海市浦东新区张江路 88 号", "phone": "021-55550000"})
    approve(api, order)
    status, invoice = api.post("/objects/invoice/records", "rep", {"sales_order": order["id"], "amount": "100"})
    assert status == 201, invoice
    assert {k: invoice[k] for k in ("title", "tax_no", "bank_name", "bank_account", "company_address",
                                    "company_phone", "mailing_address")} == {
        "title": "星辰科技", "tax_no": "91310000MA1FL0001X", "bank_name": "招商银行上海分行",
        "bank_account": "6225880011", "company_address": "上海市浦东新区张江路 88 号", "company_phone": "021-55550000",
        "mailing_address": "上海市浦东新区张江路 88 号"}
    api.patch(f"/objects/account/records/{order['account']}", "rep", {
        "version": 2, "invoice_title": "星辰科技（上海）有限公司", "mailing_address": "上海市徐汇区 1 号 财务部"})
    status, typed = api.post("/objects/invoice/records", "rep", {"sales_order": order["id"], "amount": "100",
                                                               "title": "星辰科技集团", "tax_no": ""})
    assert (typed["title"], typed["tax_no"], typed["mailing_address"]) == (
        "星辰科技集团", "91310000MA1FL0001X", "上海市徐汇区 1 号 财务部")  # what is typed is kept, the rest filled
    assert api.post("/objects/invoice/records", "rep", {"amount": "100"})[1]["error"]["fields"] == {
        "sales_order": ["is required"], "title": ["is required"]}


def test_payment_plans_sum_to_the_order_are_paid_by_matched_payments_and_go_overdue(api, people, platform, order):
    plans = "/objects/payment_plan/records"
    status, first = api.post(plans, "rep", {"sales_order": order["id"], "due_date": "2026-12-10", "amount": "1500"})
    assert (status, first["status"], first["plan_no"]) == (201, "open", "PP-202612-0001")
    status, second = api.post(plans, "rep", {"sales_order": order["id"], "due_date": "2027-01-10", "amount": "1200"})
    assert status == 201
    assert api.post(plans, "rep", {"sales_order": order["id"], "due_date": "2027-02-10", "amount": "0.01"}) == (
        422, {"error": {"code": "validation_failed", "message": "1 field error", "fields": {"amount": [
            "Planned of Sales order SO-202612-0001 would be 2700.01, above 2700.00: at most 0.00 is left"]}}})
    got = api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]
    assert (got["next_due_date"], Decimal(str(got["planned_amount"]))) == ("2026-12-10", Decimal("2700.00"))

    approve(api, order)
    status, payment = pay(api, order["id"], "1500", installment=first["id"])
    act(api, "payment", payment["id"], "confirm_payment", "finance")
    plan = api.get(f"{plans}/{first['id']}", "rep")[1]
    assert (plan["status"], Decimal(str(plan["paid_amount"]))) == ("paid", Decimal("1500.00"))
    assert api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]["next_due_date"] == "2027-01-10"

    at = datetime(2027, 1, 11, 1, 0, tzinfo=UTC)  # 09:00 in China, the day after the second is due
    (summary,) = run_rules(platform, at, ["payment_plan_overdue"])
    assert (summary["matched"], summary["updated"], summary["notified"], summary["todos"]) == (1, 1, 2, 1)
    assert api.get(f"{plans}/{second['id']}", "rep")[1]["status"] == "overdue"
    message = f"回款计划 {second['plan_no']}（SO-202612-0001）已逾期：应于 2027-01-10 回款 1,200.00"
    assert told(platform, people["boss"]) == [message]
    assert message in told(platform, people["rep"])
    assert f"催收逾期回款 {second['plan_no']}（SO-202612-0001）" in todos(api, "rep")
    (again,) = run_rules(platform, at.replace(day=12), ["payment_plan_overdue"])
    assert (again["matched"], again["notified"]) == (1, 0)  # reminded once per occasion


def test_two_payments_at_the_same_moment_exactly_one_is_accepted(platform, people):
    if platform.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time (BEGIN IMMEDIATE): this race cannot happen there")
    records = platform.records
    account = records.create("account", {"name": "星辰科技"})["id"]
    product = records.create("product", {"name": "笔记本电脑", "price": "1000"}, system=True)["id"]
    order = records.create("sales_order", {"account": account, "order_discount": 10, "order_line": [
        {"product": product, "quantity": 3, "unit_price": "1000"}]})["id"]
    records.update("sales_order", order, {"status": "approved"}, version=None, system=True)
    barrier = threading.Barrier(2)
    blocked = []

    def first():
        with records.transaction() as conn:
            records.create("payment", {"sales_order": order, "amount": "1500"}, user=people["rep"], conn=conn)
            barrier.wait()
            blocked.append(wait_until_blocked(platform))  # the second waits on the order's row lock

    def second():
        barrier.wait()
        records.create("payment", {"sales_order": order, "amount": "1500"}, user=people["rep"])

    raised = run(first, second)
    assert (raised[0], type(raised[1]).__name__, blocked) == (None, "ValidationFailed", [True])
    assert message_text(raised[1].fields["amount"][0], "zh") == (
        "销售订单 SO-202612-0001 的已登记回款将为 3000.00，超过上限 2700.00：最多还可 1200.00")
    refused = raised[1]
    assert isinstance(refused, ValidationFailed)
    assert refused.fields == {"amount": [
        "Payments recorded of Sales order SO-202612-0001 would be 3000.00, above 2700.00: at most 1200.00 is left"]}
    got = records.get("sales_order", order)
    assert (got["pending_payment_amount"], got["committed_payment_amount"]) == (Decimal("1500.00"), Decimal("1500.00"))


def test_the_order_page_offers_new_lines_only_while_its_state_lets_them_change(app, api, people, order):
    """A draft order's page offers 新建订单产品 under its products; an approved one's does not (its lines are locked:
    the link would only lead to a refusal)."""
    client = app.test_client()
    login(client, "rep", PASSWORD)
    new_line = f'/o/order_line/new?sales_order={order["id"]}'
    assert new_line in client.get(f"/o/sales_order/{order['id']}").get_data(as_text=True)
    approve(api, order)
    page = client.get(f"/o/sales_order/{order['id']}").get_data(as_text=True)
    assert new_line not in page and "笔记本电脑" in page  # the lines are still listed


def test_the_printable_order_holds_its_details_lines_and_amounts(app, api, people, order):
    """打印: the order on one page with its state, amounts and every line, printed by whom and when; the record
    page links to it; another rep's order is not found."""
    client = app.test_client()
    login(client, "rep", PASSWORD)
    assert f'/o/sales_order/{order["id"]}/print' in client.get(f"/o/sales_order/{order['id']}").get_data(as_text=True)
    page = client.get(f"/o/sales_order/{order['id']}/print").get_data(as_text=True)
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert f"销售订单 {order['order_no']} 状态：草稿" in text
    assert ("订单产品 (1) # 产品 数量 单价 折扣率 小计 1 笔记本电脑 3 1,000.00 0% 3,000.00 "
            "王伟 打印于 2026-12-07 09:00") in text
    assert "产品合计 3,000.00 整单折扣率 10% 订单金额 2,700.00" in text
    assert "商机" not in text  # an empty value is left off the paper
    assert 'onclick="window.print()"' in page
    login(client, "shipper", PASSWORD)
    assert client.get(f"/o/sales_order/{order['id']}/print").status_code == 200  # shippers read every order
