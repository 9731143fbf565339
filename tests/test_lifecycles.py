"""Record lifecycles (issue 13): business state changes only through a declared transition by an
allowed role, on every face — the API, the pages, an import and the CLI — on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from support import FixedClock, english
from test_api import PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_pages import login, token

from objectplatform.cli import main
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.translations import message_text


@pytest.fixture
def people(platform, seeded) -> dict[str, str]:
    """销售部 (managed by boss) with reps rep and rep2, an admin, an order administrator, a finance clerk, a
    warehouse keeper and a shipper."""
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]

    def user(username: str, name: str, roles: list[str], **more) -> str:
        values = {"username": username, "display_name": name, "password": PASSWORD, "roles": roles, **more}
        return records.create("user", values, system=True)["id"]

    ids = {"admin": user("admin", "管理员", ["admin"])}
    ids["boss"] = user("boss", "赵经理", ["sales_manager"], department=sales)
    ids["rep"] = user("rep", "王伟", ["sales_rep"], department=sales, manager=ids["boss"])
    ids["rep2"] = user("rep2", "李娜", ["sales_rep"], department=sales, manager=ids["boss"])
    ids["finance"] = user("finance", "钱会计", ["finance"])
    ids["shipper"] = user("shipper", "孙发货", ["shipper"])
    ids["oadmin"] = user("oadmin", "周订单", ["order_admin"])
    ids["warehouse"] = user("warehouse", "吴仓库", ["warehouse"])
    records.update("department", sales, {"manager": ids["boss"]}, version=None, system=True)
    return ids


@pytest.fixture
def order(api, people, platform) -> dict:
    """A draft order of the rep: two 100.00 laptops, 10 % order discount (180.00)."""
    records = platform.records
    account = records.create("account", {"name": "星辰科技"}, user=people["rep"])["id"]
    product = records.create("product", {"name": "笔记本电脑", "price": "100"}, system=True)["id"]
    status, body = api.post("/objects/sales_order/records", "rep", {
        "account": account, "order_discount": 10,
        "order_line": [{"product": product, "quantity": 2, "unit_price": "100"}]})
    assert status == 201, body
    return body


def error(status: int, code: str, message: str, fields: dict | None = None) -> tuple[int, dict]:
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return status, {"error": body}


def approved(api: Api, order: dict) -> dict:
    """The order submitted by the rep and approved by the flow's three steps: the order administrator, finance
    and the warehouse."""
    status, body = api.post(f"/objects/sales_order/records/{order['id']}/actions/submit", "rep", {})
    assert status == 200, body
    for who in ("oadmin", "finance", "warehouse"):
        status, decided = api.post(f"/approvals/{body['approval']['id']}/approve", who, {"comment": "同意"})
        assert status == 200, decided
    return api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]


def approve_as_the_system(platform, order: dict) -> None:
    """The order approved without its flow (payments and invoices are made against an approved order)."""
    platform.records.update("sales_order", order["id"], {"status": "approved"}, version=None, system=True)


def transition_only(field: str, transitions: str) -> tuple[int, dict]:
    return error(422, "validation_failed", "1 field error", {field: [f"set only by the transitions {transitions}"]})


# ------------------------------------------------------------------------------ the API


def test_the_bypasses_of_the_issue_are_refused_through_the_api(api, people, platform, order):
    orders = "/objects/sales_order/records"
    assert api.patch(f"{orders}/{order['id']}", "rep", {"version": 1, "status": "approved"}) == transition_only(
        "status", "Submit for approval, Withdraw, Confirm shipment, Confirm receipt, Complete, Cancel, Amend")
    # a create may only start in an initial state
    assert api.post(orders, "rep", {"account": order["account"], "status": "approved"}) == error(
        422, "validation_failed", "1 field error", {"status": [
            "a new sales order starts as Draft; Approved is set by the system"]})
    # a value sent back as it is stored is no change
    status, same = api.patch(f"{orders}/{order['id']}", "rep", {"version": 1, "status": "draft", "remark": "加急"})
    assert (status, same["status"], same["remark"], same["version"]) == (200, "draft", "加急", 2)
    approved(api, order)  # payments and invoices are made against an approved order
    status, payment = api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": "50"})
    assert (status, payment["status"]) == (201, "pending")
    assert api.patch(f"/objects/payment/records/{payment['id']}", "rep", {"version": 1, "status": "confirmed"}) == \
        transition_only("status", "Confirm payment, Reject, Resubmit")
    assert Decimal(str(api.get(f"{orders}/{order['id']}", "rep")[1]["paid_amount"])) == 0
    status, invoice = api.post("/objects/invoice/records", "rep", {"sales_order": order["id"], "amount": "180",
                                                                  "title": "星辰科技有限公司"})
    assert api.patch(f"/objects/invoice/records/{invoice['id']}", "rep", {"version": 1, "status": "issued"}) == \
        transition_only("status", "Submit, Issue invoice, Reject")
    status, visit = api.post("/objects/visit/records", "rep", {"account": order["account"],
                                                              "planned_at": "2026-12-08T09:30:00+08:00"})
    assert api.patch(f"/objects/visit/records/{visit['id']}", "rep", {"version": 1, "status": "completed"}) == \
        transition_only("status", "Check in, Check out, Cancel")
    assert api.patch(f"/objects/payment/records/{payment['id']}", "rep",
                     {"version": 1, "confirmed_at": "2026-12-06T10:00:00+08:00"}) == transition_only(
        "confirmed_at", "Confirm payment")


def test_the_five_granted_actions_exist_and_run_as_transitions(api, people, platform, order):
    order = approved(api, order)
    assert order["status"] == "approved"
    path = f"/objects/sales_order/records/{order['id']}"
    assert api.post(f"{path}/actions/confirm_shipment", "rep", {}) == error(
        403, "forbidden", "your roles do not allow Confirm shipment on sales orders (allowed: Shipper)")
    status, body = api.post(f"{path}/actions/confirm_shipment", "shipper", {"delivery_note": "顺丰 SF1234"})
    assert status == 200, body
    shipped = body["record"]
    assert (shipped["status"], shipped["shipped_by"], shipped["delivery_note"]) == (
        "shipped", people["shipper"], "顺丰 SF1234")
    assert api.post(f"{path}/actions/confirm_shipment", "shipper", {}) == error(
        409, "conflict", f"Sales order {order['id']} is Shipped: Confirm shipment applies only to sales orders in "
                         "state Approved")
    # the shipper's to-do (created by the approval) closed with the shipment
    assert api.get("/todos", "shipper")[1]["items"] == []

    status, payment = api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": "180"})
    pay = f"/objects/payment/records/{payment['id']}/actions"
    assert api.post(f"{pay}/confirm_payment", "rep", {})[0] == 403
    assert api.post(f"{pay}/reject_payment", "finance", {}) == error(
        422, "validation_failed", "1 field error", {"reason": ["is required"]})
    status, body = api.post(f"{pay}/confirm_payment", "finance", {})
    assert (status, body["record"]["status"], body["record"]["confirmed_by"]) == (200, "confirmed",
                                                                                  people["finance"])
    assert Decimal(str(api.get(path, "rep")[1]["paid_amount"])) == Decimal("180.00")

    status, invoice = api.post("/objects/invoice/records", "rep", {"sales_order": order["id"], "amount": "180",
                                                                  "title": "星辰科技有限公司"})
    inv = f"/objects/invoice/records/{invoice['id']}/actions"
    assert api.post(f"{inv}/issue_invoice", "finance", {"tax_invoice_no": "0001"})[0] == 409  # still a draft
    assert api.post(f"{inv}/submit", "rep", {})[1]["record"]["status"] == "submitted"
    assert [t["title"] for t in api.get("/todos", "finance")[1]["items"]] == [f"开票 {invoice['invoice_no']}"]
    status, body = api.post(f"{inv}/issue_invoice", "finance", {"tax_invoice_no": "04400123"})
    assert (status, body["record"]["status"], body["record"]["tax_invoice_no"]) == (200, "issued", "04400123")
    assert api.get("/todos", "finance")[1]["items"] == []

    status, visit = api.post("/objects/visit/records", "rep", {"account": order["account"],
                                                              "planned_at": "2026-12-08T09:30:00+08:00"})
    vis = f"/objects/visit/records/{visit['id']}/actions"
    assert api.post(f"{vis}/check_out", "rep", {"lat": 31.2, "lng": 121.5})[0] == 409
    assert api.post(f"{vis}/check_in", "rep", {"lat": 95, "lng": 121.5}) == error(
        422, "validation_failed", "1 field error", {"lat": ["must be between -90 and 90"]})
    status, body = api.post(f"{vis}/check_in", "rep", {"lat": "31.230416", "lng": "121.473701", "address": "上海"})
    assert (status, body["record"]["status"], body["record"]["check_in_location"],
            body["record"]["check_in_address"]) == (200, "checked_in", {"lat": 31.230416, "lng": 121.473701}, "上海")
    assert api.post(f"{vis}/check_out", "rep", {"lat": 31.2305, "lng": 121.4738}) == error(
        422, "validation_failed", "1 field error", {"summary": ["required before Check out"]})
    visit_path = f"/objects/visit/records/{visit['id']}"
    assert api.patch(visit_path, "rep", {"version": body["record"]["version"], "summary": "确认需求"})[0] == 200
    assert api.post("/objects/customer_feedback/records", "rep", {  # 销售部's required visit action
        "visit": visit["id"], "category": "service", "satisfaction": "satisfied", "content": "满意"})[0] == 201
    status, body = api.post(f"{vis}/check_out", "rep", {"lat": 31.2305, "lng": 121.4738})
    assert (status, body["record"]["status"]) == (200, "completed")


def test_an_approved_order_is_locked_until_it_is_amended_and_approved_again(api, people, platform, order):
    order = approved(api, order)
    path = f"/objects/sales_order/records/{order['id']}"
    version = order["version"]
    assert api.patch(path, "rep", {"version": version, "order_discount": 20}) == error(
        409, "locked", f"Sales order {order['id']} is Approved: Order discount cannot be changed in this state",
        {"order_discount": ["locked while the sales order is Approved"]})
    line = order["order_line"][0]
    assert api.patch(f"/objects/order_line/records/{line['id']}", "rep", {"version": 1, "quantity": 5})[1][
        "error"]["code"] == "locked"
    refused = api.patch(path, "rep", {"version": version, "order_line": [{"id": line["id"], "quantity": 5}]})[1]
    assert refused["error"]["message"] == (f"Sales order {order['id']} is Approved: Order line cannot be "
                                           "changed in this state")
    # the state's editable fields stay editable; a stale version answers before a locked field
    status, body = api.patch(path, "rep", {"version": version, "receiver": "张三"})
    assert (status, body["receiver"]) == (200, "张三")
    assert api.patch(path, "rep", {"version": version, "order_discount": 20})[1]["error"]["code"] == "conflict"
    # administrators may edit what the state locks (audited)
    status, body = api.patch(path, "admin", {"version": body["version"], "remark": "管理员改"})
    assert status == 200
    assert api.post(f"{path}/actions/amend", "rep2", {})[0] == 404  # outside rep2's scope
    status, body = api.post(f"{path}/actions/amend", "rep", {})
    assert (status, body["record"]["status"]) == (200, "draft")
    status, body = api.patch(path, "rep", {"version": body["record"]["version"], "order_discount": 20})
    assert (status, body["order_discount"], body["total_amount"]) == (200, "20.00", "160.00") or \
        (status, Decimal(str(body["order_discount"])), Decimal(str(body["total_amount"]))) == (
            200, Decimal("20"), Decimal("160"))
    assert approved(api, body)["status"] == "approved"
    history = api.get(f"{path}/history", "rep")[1]["items"]
    assert [(h["change"], h["field"], h["old"], h["new"]) for h in history if h["change"] == "amend"] == [
        ("amend", "status", "approved", "draft")]


def test_the_record_says_what_the_caller_may_run_now(api, people, platform, order):
    path = f"/objects/sales_order/records/{order['id']}"
    assert api.get(path, "rep")[1]["_actions"] == [
        {"name": "copy", "label": {"zh": "再次下单", "en": "Order again"}},
        {"name": "submit", "label": {"zh": "提交审批", "en": "Submit for approval"}},
        {"name": "cancel", "label": {"zh": "取消订单", "en": "Cancel"}}]
    order = approved(api, order)
    assert [a["name"] for a in api.get(path, "rep")[1]["_actions"]] == ["copy", "cancel", "amend"]
    assert [a["name"] for a in api.get(path, "shipper")[1]["_actions"]] == ["confirm_shipment"]
    assert [a["name"] for a in api.get(path, "finance")[1]["_actions"]] == []


def test_the_metadata_describes_the_lifecycle(api):
    status, meta = api.get("/meta/objects/payment", "finance")
    lifecycle = meta["lifecycle"]
    assert (lifecycle["field"], lifecycle["initial"]) == ("status", ["pending"])
    assert lifecycle["states"] == [
        {"value": "pending", "label": {"zh": "待确认", "en": "Pending"}, "editable": "all", "editable_by": []},
        {"value": "confirmed", "label": {"zh": "已确认", "en": "Confirmed"}, "editable": ["remark"], "editable_by": []},
        {"value": "rejected", "label": {"zh": "已驳回", "en": "Rejected"}, "editable": "all", "editable_by": []}]
    reject = next(t for t in lifecycle["transitions"] if t["name"] == "reject_payment")
    assert {k: reject[k] for k in ("label", "from", "to", "by", "roles", "required_fields")} == {
        "label": {"zh": "驳回回款", "en": "Reject"}, "from": ["pending"], "to": "rejected", "by": None,
        "roles": ["finance"], "required_fields": []}
    assert [(p["name"], p["type"], p["required"]) for p in reject["params"]] == [("reason", "long_text", True)]


def test_the_metadata_labels_a_transition_the_yaml_leaves_unlabelled_as_its_action(api):
    """`submit` and `withdraw` (run by the approval engine) and the pool's `claim` say what their actions say, as
    refusals name them; a transition with a label of its own keeps it."""
    labels = {name: {t["name"]: t["label"] for t in api.get(f"/meta/objects/{name}", "rep")[1]["lifecycle"][
        "transitions"]} for name in ("sales_order", "lead")}
    assert (labels["sales_order"]["submit"], labels["sales_order"]["withdraw"], labels["lead"]["claim"],
            labels["sales_order"]["confirm_shipment"]) == (
        {"zh": "提交审批", "en": "Submit for approval"}, {"zh": "撤回审批", "en": "Withdraw"},
        {"zh": "领取", "en": "Claim"}, {"zh": "确认发货", "en": "Confirm shipment"})
    assert not [(obj, name) for obj, named in labels.items() for name, label in named.items()
                if label == {"zh": name, "en": name}]


def test_a_transition_is_in_the_history_with_its_parameters(api, people, platform, order):
    approved(api, order)
    status, payment = api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": "50"})
    api.post(f"/objects/payment/records/{payment['id']}/actions/reject_payment", "finance", {"reason": "金额不符"})
    history = api.get(f"/objects/payment/records/{payment['id']}/history", "rep")[1]["items"]
    assert [(h["change"], h["field"], h["old"], h["new"], h["user"]) for h in history[-3:]] == [
        ("reject_payment", "status", "pending", "rejected", people["finance"]),
        ("reject_payment", "reject_reason", None, "金额不符", people["finance"]),
        ("reject_payment", None, None, {"reason": "金额不符"}, people["finance"])]
    notes = api.get("/notifications", "rep")[1]["items"]
    assert notes[0]["title"] == f"回款 {payment['payment_no']} 被驳回：金额不符"
    status, body = api.post(f"/objects/payment/records/{payment['id']}/actions/resubmit", "rep", {})
    assert (status, body["record"]["status"]) == (200, "pending")


def test_bulk_transitions_report_each_record(api, people, platform, order):
    approved(api, order)
    ids = [api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": "10"})[1]["id"]
           for _ in range(2)]
    api.post(f"/objects/payment/records/{ids[0]}/actions/confirm_payment", "finance", {})
    status, body = api.post("/objects/payment/actions/confirm_payment", "finance", {"ids": ids})
    assert status == 200
    assert body["succeeded"] == [ids[1]]
    assert body["failed"] == [{"id": ids[0], "error": {"code": "conflict", "message": (
        f"Payment {ids[0]} is Confirmed: Confirm payment applies only to payments in state Pending")}}]


def test_a_bulk_confirmation_runs_as_many_statements_for_five_payments_as_for_two(api, people, platform, order):
    """Set-based: a bulk confirmation's statements (payments, history, the order's balances, notifications, to-dos)
    do not grow with the payments it confirms."""
    approved(api, order)
    ids = [api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": "10"})[1]["id"]
           for _ in range(8)]
    finance, counted = access_for(platform, people["finance"]), []

    def count(conn, cursor, statement, *_) -> None:  # those on the rows it reads and writes (not a connection's own)
        if re.search(r"\b(payment|sales_order|_op_(history|held_\w+|notification|todo))\b", statement) \
                and not statement.lstrip().startswith("CREATE"):  # (a connection's temporary table, made once)
            counted[-1] += 1

    sa.event.listen(platform.engine, "before_cursor_execute", count)
    try:
        for batch in (ids[:1], ids[1:3], ids[3:]):
            counted.append(0)
            done = run_action(platform, finance, "payment", "confirm_payment", batch, {})
            assert done == {"succeeded": batch, "failed": []}
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", count)
    assert counted[1] == counted[2]
    assert api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]["paid_amount"] == 80.0


def test_a_bulk_transition_moves_the_records_together_and_reports_the_others(api, people, platform, order):
    """Finance confirms payments of two orders in one call: the ones pending move (the orders' paid amounts, the
    history, the owners' notifications and finance's to-dos follow), a rejected one and an unknown id are reported
    by id, and resubmitting two payments that together pass the order's balance refuses only the second."""
    approved(api, order)
    account = platform.records.create("account", {"name": "远航贸易"}, user=people["rep2"])["id"]
    product = platform.records.list("product").items[0]["id"]
    other = api.post("/objects/sales_order/records", "rep2", {
        "account": account, "order_line": [{"product": product, "quantity": 1, "unit_price": "100"}]})[1]
    approve_as_the_system(platform, other)

    def pay(who: str, sales_order: dict, amount: str) -> dict:
        return api.post("/objects/payment/records", who, {"sales_order": sales_order["id"], "amount": amount})[1]

    first, second, third, refused = pay("rep", order, "10"), pay("rep", order, "20"), pay("rep2", other, "30"), \
        pay("rep", order, "40")
    api.post(f"/objects/payment/records/{refused['id']}/actions/reject_payment", "finance", {"reason": "金额不符"})
    ids = [first["id"], second["id"], refused["id"], third["id"], "999999"]
    assert api.post("/objects/payment/actions/confirm_payment", "rep", {"ids": ids})[0] == 403
    status, body = api.post("/objects/payment/actions/confirm_payment", "finance", {"ids": ids})
    assert (status, body["succeeded"]) == (200, [first["id"], second["id"], third["id"]])
    assert body["failed"] == [
        {"id": refused["id"], "error": {"code": "conflict", "message": (
            f"Payment {refused['id']} is Rejected: Confirm payment applies only to payments in state "
            "Pending")}},
        {"id": "999999", "error": {"code": "not_found", "message": "no payment with id 999999"}}]
    amounts = [(o["paid_amount"], o["pending_payment_amount"], o["outstanding_amount"], o["status"]) for o in (
        api.get(f"/objects/sales_order/records/{o['id']}", "admin")[1] for o in (order, other))]
    assert amounts == [(30.0, 0.0, 150.0, "approved"), (30.0, 0.0, 70.0, "approved")]
    history = api.get(f"/objects/payment/records/{second['id']}/history", "finance")[1]["items"]
    assert [(h["change"], h["field"], h["old"], h["new"], h["user"]) for h in history[-3:]] == [
        ("confirm_payment", "status", "pending", "confirmed", people["finance"]),
        ("confirm_payment", "confirmed_by", None, people["finance"], people["finance"]),
        ("confirm_payment", "confirmed_at", None, history[-1]["new"], people["finance"])]
    assert sorted(n["title"] for n in api.get("/notifications", "rep")[1]["items"] if "已确认" in n["title"]) == [
        f"回款 {first['payment_no']} 已确认", f"回款 {second['payment_no']} 已确认"]
    assert [n["title"] for n in api.get("/notifications", "rep2")[1]["items"]][:1] == [
        f"回款 {third['payment_no']} 已确认"]
    assert [t["record_id"] for t in api.get("/todos", "finance")[1]["items"] if t["object"] == "payment"] == []
    # 30 confirmed of 180: two rejected payments of 100 resubmitted together, only the first fits
    again = []
    for _ in range(2):
        again.append(pay("rep", order, "100"))
        api.post(f"/objects/payment/records/{again[-1]['id']}/actions/reject_payment", "finance", {"reason": "重复"})
    status, body = api.post("/objects/payment/actions/resubmit", "rep", {"ids": [p["id"] for p in again]})
    assert (status, body["succeeded"]) == (200, [again[0]["id"]])
    assert body["failed"] == [{"id": again[1]["id"], "error": {
        "code": "validation_failed", "message": "1 field error", "fields": {"amount": [
            f"Payments recorded of Sales order {order['order_no']} would be 230.00, above 180.00: at most 50.00 is left"
        ]}}}]
    # another rep's payment is outside the rep's scope: as if it did not exist
    status, body = api.post("/objects/payment/actions/resubmit", "rep", {"ids": [third["id"]]})
    assert (status, body) == (200, {"succeeded": [], "failed": [{"id": third["id"], "error": {
        "code": "not_found", "message": f"no payment with id {third['id']}"}}]})


def test_a_bulk_confirmation_writes_what_confirming_one_by_one_writes(api, people, platform, order):
    """Confirming in bulk is set-based (the values checked once, one UPDATE, the history in one INSERT, the order's
    balances recounted in one query): the same history rows, balances on the order, notifications and closed to-dos
    as confirming one at a time, at the same moment; a refused id is reported as one run refuses it and nothing of
    it is written."""
    approved(api, order)  # 180.00
    platform.clock = FixedClock(datetime(2026, 12, 7, 2, 30, tzinfo=UTC))

    def pay(amount: str) -> dict:
        return api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": amount})[1]

    alone, first, second, done = pay("10"), pay("20"), pay("30.50"), pay("40")
    for one in (alone, done):
        assert api.post(f"/objects/payment/records/{one['id']}/actions/confirm_payment", "finance", {})[0] == 200
    assert platform.records.writes_alike("payment", {"status": "confirmed", "confirmed_by": people["finance"]})
    kept = api.get(f"/objects/payment/records/{done['id']}", "finance")[1]
    kept_history = api.get(f"/objects/payment/records/{done['id']}/history", "finance")[1]["items"]
    status, body = api.post("/objects/payment/actions/confirm_payment", "finance",
                            {"ids": [first["id"], done["id"], second["id"]]})
    assert (status, body) == (200, {"succeeded": [first["id"], second["id"]], "failed": [{"id": done["id"], "error": {
        "code": "conflict", "message": f"Payment {done['id']} is Confirmed: Confirm payment applies only to "
                                       "payments in state Pending"}}]})

    def confirmation(payment: dict) -> list[tuple]:
        return [(h["change"], h["field"], h["old"], h["new"], h["user"], h["at"]) for h in api.get(
            f"/objects/payment/records/{payment['id']}/history", "finance")[1]["items"] if h["change"] != "create"]

    at = "2026-12-07T02:30:00+00:00"
    expected = [("confirm_payment", "status", "pending", "confirmed", people["finance"], at),
                ("confirm_payment", "confirmed_by", None, people["finance"], people["finance"], at),
                ("confirm_payment", "confirmed_at", None, at, people["finance"], at)]
    assert confirmation(alone) == confirmation(first) == confirmation(second) == expected
    records = {p["id"]: api.get(f"/objects/payment/records/{p['id']}", "finance")[1] for p in (alone, first, second)}
    assert {(r["status"], r["confirmed_by"], r["confirmed_at"], r["version"]) for r in records.values()} == {
        ("confirmed", people["finance"], "2026-12-07T02:30:00+00:00", 2)}
    assert api.get(f"/objects/payment/records/{done['id']}", "finance")[1] == kept  # the refused one: untouched
    assert api.get(f"/objects/payment/records/{done['id']}/history", "finance")[1]["items"] == kept_history
    sales_order = api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]
    assert {k: sales_order[k] for k in ("confirmed_payment_amount", "pending_payment_amount",
                                       "committed_payment_amount", "paid_amount", "outstanding_amount", "status")} == {
        "confirmed_payment_amount": 100.5, "pending_payment_amount": 0.0, "committed_payment_amount": 100.5,
        "paid_amount": 100.5, "outstanding_amount": 79.5, "status": "approved"}
    assert sorted(n["title"] for n in api.get("/notifications", "rep")[1]["items"] if "已确认" in n["title"]) == sorted(
        f"回款 {p['payment_no']} 已确认" for p in (alone, first, second, done))
    assert [t["record_id"] for t in api.get("/todos", "finance")[1]["items"] if t["object"] == "payment"] == []


def test_a_bulk_confirmation_adds_the_payments_to_their_order_without_counting_its_payments_again(
        api, people, platform, order):
    """Payments of 10.00, 20.00 and 30.50 pending on the 180.00 order, the first two confirmed in bulk: what they
    add is read from them before the write (one grouped query) and added to the order by one UPDATE, its payments
    not counted again (no query of the order's payments), no temporary table filled; the balances are those of a
    recount: 30.00 confirmed and paid, 30.50 pending, 60.50 recorded, 150.00 outstanding."""
    approved(api, order)  # 180.00
    ids = [api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": amount})[1]["id"]
           for amount in ("10", "20", "30.50")]
    statements: list[str] = []

    def capture(_conn, _cursor, statement, *_) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(platform.engine, "before_cursor_execute", capture)
    try:
        assert api.post("/objects/payment/actions/confirm_payment", "finance", {"ids": ids[:2]}) == (
            200, {"succeeded": ids[:2], "failed": []})
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", capture)
    assert len([s for s in statements if s.startswith("UPDATE sales_order")]) == 1
    assert [s for s in statements if "c_payment" in s or "_op_held_" in s] == []  # no recount, no temporary table
    sales_order = api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]
    assert {k: sales_order[k] for k in ("confirmed_payment_amount", "pending_payment_amount",
                                       "committed_payment_amount", "paid_amount", "outstanding_amount")} == {
        "confirmed_payment_amount": 30.0, "pending_payment_amount": 30.5, "committed_payment_amount": 60.5,
        "paid_amount": 30.0, "outstanding_amount": 150.0}


def test_a_bulk_confirmation_completes_the_orders_it_pays_in_full_as_confirming_one_by_one_does(
        api, people, platform, order):
    """Three received orders of 180.00: the first paid in full by two payments confirmed one at a time, the second
    by two payments confirmed in bulk, the third partly (50.00) in the same bulk call. The first two complete by
    themselves with the same balances, history and notifications (the bulk path refreshes the orders set-based: one
    UPDATE for their rollups and stored formulas, the automatic transition taken in one query); the third stays
    received with 130.00 outstanding."""
    platform.clock = FixedClock(datetime(2026, 12, 7, 2, 30, tzinfo=UTC))
    product = platform.records.list("product").items[0]["id"]

    def received(sales_order: dict) -> dict:
        platform.records.update("sales_order", sales_order["id"], {"status": "received"}, version=None, system=True)
        return sales_order

    def new_order() -> dict:
        return api.post("/objects/sales_order/records", "rep", {
            "account": order["account"], "order_discount": 10,
            "order_line": [{"product": product, "quantity": 2, "unit_price": "100"}]})[1]

    one, bulk, partly = received(order), received(new_order()), received(new_order())

    def pay(sales_order: dict, amount: str) -> dict:
        return api.post("/objects/payment/records", "rep", {"sales_order": sales_order["id"], "amount": amount})[1]

    by_one, together = [pay(one, "100"), pay(one, "80")], [pay(bulk, "100"), pay(bulk, "80"), pay(partly, "50")]
    for payment in by_one:
        assert api.post(f"/objects/payment/records/{payment['id']}/actions/confirm_payment", "finance", {})[0] == 200
    ids = [p["id"] for p in together]
    assert api.post("/objects/payment/actions/confirm_payment", "finance", {"ids": ids}) == (
        200, {"succeeded": ids, "failed": []})

    def state(sales_order: dict) -> dict:
        record = api.get(f"/objects/sales_order/records/{sales_order['id']}", "rep")[1]
        return {k: record[k] for k in ("status", "total_amount", "confirmed_payment_amount", "pending_payment_amount",
                                       "committed_payment_amount", "paid_amount", "outstanding_amount", "version")}

    assert state(one) == state(bulk) == {
        "status": "completed", "total_amount": 180.0, "confirmed_payment_amount": 180.0, "pending_payment_amount": 0.0,
        "committed_payment_amount": 180.0, "paid_amount": 180.0, "outstanding_amount": 0.0, "version": 3}
    assert state(partly) == {
        "status": "received", "total_amount": 180.0, "confirmed_payment_amount": 50.0, "pending_payment_amount": 0.0,
        "committed_payment_amount": 50.0, "paid_amount": 50.0, "outstanding_amount": 130.0, "version": 2}

    def changes(sales_order: dict) -> list[tuple]:
        return [(h["change"], h["field"], h["old"], h["new"], h["user"], h["at"]) for h in api.get(
            f"/objects/sales_order/records/{sales_order['id']}/history", "rep")[1]["items"] if h["change"] != "create"]

    at = "2026-12-07T02:30:00+00:00"
    assert changes(one) == changes(bulk) == [("update", "status", "draft", "received", None, at),
                                             ("complete", "status", "received", "completed", None, at)]
    assert changes(partly) == [("update", "status", "draft", "received", None, at)]
    assert sorted(n["title"] for n in api.get("/notifications", "rep")[1]["items"] if "已确认" in n["title"]) == sorted(
        f"回款 {p['payment_no']} 已确认" for p in (*by_one, *together))
    assert [t["record_id"] for t in api.get("/todos", "finance")[1]["items"] if t["object"] == "payment"] == []


def test_a_set_based_write_raising_a_limited_rollup_is_refused_as_one_record_s_write_is(api, people, platform, order):
    """Payments of 100.00 and 90.00 rejected on the 180.00 order: put back to pending together by a set-based write
    (`update_all`, whose rollup refresh is set-based), the order's committed payments would be 190.00: refused with
    the message a payment's own write gets (from nothing committed: 180.00 left), nothing of it written; one by one,
    the first fits and the second is refused the same way (80.00 left)."""
    approve_as_the_system(platform, order)
    ids = []
    for amount in ("100", "90"):
        payment = api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": amount})[1]
        api.post(f"/objects/payment/records/{payment['id']}/actions/reject_payment", "finance", {"reason": "重复"})
        ids.append(int(payment["id"]))
    records = platform.records
    with pytest.raises(ValidationFailed) as refused, records.transaction() as conn:
        records.update_all("payment", ids, {"status": "pending"}, conn=conn, user=people["rep"])
    assert [message_text(m, "en") for m in refused.value.fields["amount"]] == [
        f"Payments recorded of Sales order {order['order_no']} would be 190.00, above 180.00: at most 180.00 is left"]
    records.update("payment", ids[0], {"status": "pending"}, version=None, system=True)  # one by one: 100.00 fits
    with pytest.raises(ValidationFailed) as alone:
        records.update("payment", ids[1], {"status": "pending"}, version=None, system=True)
    assert [message_text(m, "en") for m in alone.value.fields["amount"]] == [
        f"Payments recorded of Sales order {order['order_no']} would be 190.00, above 180.00: at most 80.00 is left"]
    sales_order = records.get("sales_order", order["id"])
    assert (sales_order["committed_payment_amount"], sales_order["pending_payment_amount"]) == (
        Decimal("100.00"), Decimal("100.00"))
    assert [records.get("payment", i)["status"] for i in ids] == ["pending", "rejected"]


def test_a_set_based_write_after_a_refused_one_refreshes_the_order(api, people, platform, order):
    """The refused set-based write rolls back all it wrote on the connection; the next set-based write on it (100.00
    and 50.00 back to pending on the 180.00 order) refreshes the order."""
    approve_as_the_system(platform, order)
    ids = []
    for amount in ("100", "90", "50"):
        payment = api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": amount})[1]
        api.post(f"/objects/payment/records/{payment['id']}/actions/reject_payment", "finance", {"reason": "重复"})
        ids.append(int(payment["id"]))
    records = platform.records
    with pytest.raises(ValidationFailed), records.transaction() as conn:
        records.update_all("payment", ids[:2], {"status": "pending"}, conn=conn, user=people["rep"])
    with records.transaction() as conn:
        moved, refused = records.update_all("payment", [ids[0], ids[2]], {"status": "pending"}, conn=conn,
                                            user=people["rep"])
    assert (moved, refused) == ([ids[0], ids[2]], {})
    sales_order = records.get("sales_order", order["id"])
    assert (sales_order["committed_payment_amount"], sales_order["pending_payment_amount"]) == (
        Decimal("150.00"), Decimal("150.00"))
    assert [records.get("payment", i)["status"] for i in ids] == ["pending", "rejected", "pending"]


def test_a_bulk_transition_runs_record_by_record_when_a_hook_needs_each_record(api, people, platform, order):
    """A hook that does not say it may be skipped by a set-based write makes the bulk confirmation run it on each
    record (the engine's own write path), with the same outcome."""
    approve_as_the_system(platform, order)
    ids = [api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": a})[1]["id"]
           for a in ("10", "20")]
    seen = []
    with platform.registry.hooked("after_update", lambda ctx: seen.append((ctx.after["id"], ctx.after["status"])),
                                  applies=lambda obj: obj.name == "payment"):
        assert not platform.records.writes_alike("payment", {"status": "confirmed"})
        status, body = api.post("/objects/payment/actions/confirm_payment", "finance", {"ids": [*ids, "999999"]})
    assert (status, body) == (200, {"succeeded": ids, "failed": [{"id": "999999", "error": {
        "code": "not_found", "message": "no payment with id 999999"}}]})
    assert seen == [(ids[0], "confirmed"), (ids[1], "confirmed")]
    sales_order = api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]
    assert (sales_order["paid_amount"], sales_order["outstanding_amount"]) == (30.0, 150.0)


# ------------------------------------------------------------------------------ an import


def test_an_import_row_cannot_start_in_a_later_state(api, people, platform, order):
    approve_as_the_system(platform, order)
    csv = f"sales_order,amount,status\n{order['id']},10,pending\n{order['id']},20,confirmed\n".encode()
    status, body = api.call("POST", "/objects/payment/imports", "admin",
                            data={"file": (io.BytesIO(csv), "payments.csv")}, content_type="multipart/form-data")
    assert status == 202, body
    platform.jobs.wait(body["job_id"])
    job = api.get(f"/jobs/{body['job_id']}", "admin")[1]
    assert english(job["result"])["errors"] == [{"row": 3, "fields": {"status": [
        "a new payment starts as Pending; Confirmed is reached by Confirm payment"]}}]
    assert [p["status"] for p in platform.records.list("payment").items] == ["pending"]


# ------------------------------------------------------------------------------ the pages


def test_the_record_page_offers_what_applies_and_shows_refusals_beside_it(app, people, platform, order):
    client = app.test_client()
    login(client, "finance", PASSWORD)
    approve_as_the_system(platform, order)
    payment = platform.records.create("payment", {"sales_order": order["id"], "amount": "50"}, user=people["rep"])
    page = client.get(f"/o/payment/{payment['id']}").get_data(as_text=True)
    assert 'data-action="confirm_payment"' in page and 'data-dialog="reject_payment"' in page
    assert 'data-state="pending" aria-current="step"' in page
    # a transition with parameters is a form on the page; its refusal comes back there, the dialog open
    refused = client.post(f"/o/payment/{payment['id']}/action/reject_payment",
                          data={"csrf_token": token(client), "__params": "1", "reason": ""})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert 'data-dialog="reject_payment" open' in page and "必填" in page
    dialog = re.search(r'<details class="action-dialog" data-dialog="reject_payment" open>.*?</details>', page, re.S)
    assert re.findall(r'<ul class="errors" id="e-reason"><li>(.*?)</li>', dialog.group(0)) == ["必填"]  # in the dialog
    done = client.post(f"/o/payment/{payment['id']}/action/confirm_payment", data={"csrf_token": token(client)})
    assert done.status_code == 302
    page = client.get(f"/o/payment/{payment['id']}").get_data(as_text=True)
    assert 'data-state="confirmed" aria-current="step"' in page and 'data-action="confirm_payment"' not in page
    again = client.post(f"/o/payment/{payment['id']}/action/confirm_payment", data={"csrf_token": token(client)})
    assert again.status_code == 409
    assert 'data-action="confirm_payment"' not in again.get_data(as_text=True)  # no longer offered...
    assert "待确认" in again.get_data(as_text=True)  # ...but the refusal names the state it needs
    assert re.findall(r'data-action-error="confirm_payment">(.*?)</p>', again.get_data(as_text=True)) == [
        "确认回款：回款 1 当前为“已确认”：确认回款只适用于状态为“待确认”的回款"]  # labels, never codes
    client.get("/lang/en?next=/")
    again = client.post(f"/o/payment/{payment['id']}/action/confirm_payment", data={"csrf_token": token(client)})
    assert re.findall(r'data-action-error="confirm_payment">(.*?)</p>', again.get_data(as_text=True)) == [
        "Confirm payment: Payment 1 is Confirmed: Confirm payment applies only to payments in state Pending"]


def test_a_form_cannot_move_the_state_or_change_what_it_locks(app, people, platform, order):
    client = app.test_client()
    login(client, "rep", PASSWORD)
    approve_as_the_system(platform, order)
    payment = platform.records.create("payment", {"sales_order": order["id"], "amount": "50"}, user=people["rep"])
    form = client.get(f"/o/payment/{payment['id']}/edit").get_data(as_text=True)
    assert 'name="status"' not in form and 'name="confirmed_at"' not in form and 'name="amount"' in form
    posted = client.post(f"/o/payment/{payment['id']}/edit", data={
        "csrf_token": token(client), "version": "1", "sales_order": order["id"], "amount": "50",
        "status": "confirmed"})
    assert posted.status_code == 302  # the status is no input of the form: nothing but the amount is read
    assert platform.records.get("payment", payment["id"])["status"] == "pending"
    platform.records.update("payment", payment["id"], {"status": "confirmed"}, version=None, system=True)
    form = client.get(f"/o/payment/{payment['id']}/edit").get_data(as_text=True)
    assert 'name="amount"' not in form and 'name="remark"' in form  # confirmed: only the remark stays editable
    posted = client.post(f"/o/payment/{payment['id']}/edit", data={
        "csrf_token": token(client), "version": "2", "amount": "99"})
    assert posted.status_code == 302 and platform.records.get("payment", payment["id"])["amount"] == Decimal("50")


# ------------------------------------------------------------------------------ the CLI


def test_the_cli_runs_transitions_with_the_users_roles(migrated_database_url, tmp_path, monkeypatch, capsys):
    from support import migrated_platform

    monkeypatch.setenv("OBJECTPLATFORM_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("OBJECTPLATFORM_INSTANCE_PATH", str(tmp_path))
    with migrated_platform(migrated_database_url, tmp_path) as platform:
        records = platform.records
        rep = records.create("user", {"username": "rep", "display_name": "王伟", "password": PASSWORD,
                                      "roles": ["sales_rep"]}, system=True)["id"]
        records.create("user", {"username": "finance", "display_name": "钱会计", "password": PASSWORD,
                                "roles": ["finance"]}, system=True)
        account = records.create("account", {"name": "星辰科技"}, user=rep)["id"]
        product = records.create("product", {"name": "笔记本电脑", "price": "100"}, system=True)["id"]
        order = records.create("sales_order", {"account": account, "order_line": [
            {"product": product, "quantity": 1, "unit_price": "100"}]}, user=rep)["id"]
        records.update("sales_order", order, {"status": "approved"}, version=None, system=True)
        payment = records.create("payment", {"sales_order": order, "amount": "50"}, user=rep)["id"]
    capsys.readouterr()
    assert main(["action", "payment", "confirm_payment", payment, "--as", "rep"]) == 1
    assert "your roles do not allow Confirm payment on payments (allowed: Finance)" in capsys.readouterr().err
    assert main(["action", "payment", "confirm_payment", payment, "--as", "finance"]) == 0
    assert json.loads(capsys.readouterr().out)["record"]["status"] == "confirmed"
    csv = tmp_path / "payments.csv"
    csv.write_text(f"sales_order,amount,status\n{order},5,confirmed\n", encoding="utf-8")
    assert main(["import", "payment", str(csv), "--as", "finance"]) == 1
    assert "a new payment starts as Pending" in capsys.readouterr().out
    assert main(["edit", "payment", payment, "--as", "rep", "--set", "status=pending"]) == 1
    assert "status: set only by the transitions Confirm payment, Reject, Resubmit" in capsys.readouterr().err
    assert main(["edit", "payment", payment, "--as", "rep", "--set", "remark=已到账"]) == 0
    payment_record = json.loads(capsys.readouterr().out)
    assert (payment_record["status"], payment_record["remark"]) == ("confirmed", "已到账")
    assert main(["edit", "payment", payment, "--as", "rep", "--set", "amount=60"]) == 1
    assert f"error: Payment {payment} is Confirmed: Amount cannot be changed in this state" in \
        capsys.readouterr().err


def test_a_received_order_paid_in_full_completes_by_itself(api, people, platform, order):
    order = approved(api, order)
    path = f"/objects/sales_order/records/{order['id']}"
    api.post(f"{path}/actions/confirm_shipment", "shipper", {})
    payments = [api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": amount})[1]["id"]
                for amount in ("100", "80")]
    api.post(f"/objects/payment/records/{payments[0]}/actions/confirm_payment", "finance", {})
    api.post(f"/objects/payment/records/{payments[1]}/actions/confirm_payment", "finance", {})
    assert api.get(path, "rep")[1]["status"] == "shipped"  # paid in full, not yet received
    api.post(f"{path}/actions/confirm_receipt", "shipper", {})
    status, body = api.get(path, "rep")
    assert (body["status"], Decimal(str(body["paid_amount"]))) == ("completed", Decimal("180.00"))
    history = api.get(f"{path}/history", "rep")[1]["items"]
    assert [(h["change"], h["old"], h["new"], h["user"]) for h in history if h["change"] == "complete"] == [
        ("complete", "received", "completed", None)]


def test_an_automatic_transition_is_checked_at_load(tmp_path):
    from support import crm_metadata

    from objectplatform.metadata import MetadataError

    with pytest.raises(MetadataError) as e:
        crm_metadata(tmp_path, {"object_defs/payment_auto.yaml": """\
kind: object_extension
object: payment
lifecycle:
  transitions:
    auto_confirm:
      label: {en: Auto}
      from: [pending]
      to: confirmed
      by: pool
      when: "amount +"
      params: {note: {type: text, label: {en: Note}, required: true}}
"""})
    messages = [p.message for p in e.value.problems]
    assert "'auto_confirm' runs by itself when its condition holds: drop `by`" in messages
    assert "nobody gives the parameters of the automatic transition 'auto_confirm': 'note' cannot be required" in \
        messages
