"""Returns and refunds (issue 15): a return against a shipped order, its lines held to what was shipped less what
the order's other returns take back, approved and received back; a refund confirmed by finance, never above what
was paid; the order's returned, refunded, paid and outstanding amounts after each step, on both databases."""

from __future__ import annotations

from decimal import Decimal

from test_api import PASSWORD
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_orders_to_cash import act, approve, pay, todos, told
from test_orders_to_cash import order as order  # noqa: F401  (fixtures)
from test_orders_to_cash import people as people  # noqa: F401
from test_pages import login

MONEY = ("total_amount", "returned_amount", "refunded_amount", "paid_amount", "outstanding_amount")


def money(api, order_id: str) -> dict[str, Decimal]:
    body = api.get(f"/objects/sales_order/records/{order_id}", "rep")[1]
    return {name: Decimal(str(body[name])) for name in MONEY}


def expect(total, returned, refunded, paid, outstanding) -> dict[str, Decimal]:
    values = (total, returned, refunded, paid, outstanding)
    return {name: Decimal(value) for name, value in zip(MONEY, values, strict=True)}


def shipped(api, order: dict) -> str:
    """The order approved and shipped; the id of its one line (three laptops at 1,000.00, 10 % order discount)."""
    approve(api, order)
    act(api, "sales_order", order["id"], "confirm_shipment", "shipper", {"delivery_note": "顺丰 SF1"})
    return order["order_line"][0]["id"]


def paid(api, order: dict, amount: str) -> None:
    status, payment = pay(api, order["id"], amount)
    assert status == 201, payment
    act(api, "payment", payment["id"], "confirm_payment", "finance")


def return_of(api, order: dict, line: str, quantity, who: str = "rep") -> tuple[int, dict]:
    return api.post("/objects/return_order/records", who, {"sales_order": order["id"], "reason": "屏幕有坏点",
                                                          "return_line": [{"order_line": line, "quantity": quantity}]})


def refund_of(api, order_id: str, amount: str, **more) -> tuple[int, dict]:
    return api.post("/objects/refund/records", "rep", {"sales_order": order_id, "amount": amount, **more})


def test_a_return_and_its_refund_with_the_order_s_money_at_each_step(api, people, platform, order):
    line = shipped(api, order)
    paid(api, order, "2700")
    assert money(api, order["id"]) == expect("2700", "0", "0", "2700", "0")

    status, back = return_of(api, order, line, 1)
    assert status == 201, back
    assert (back["return_no"], back["status"], Decimal(str(back["amount"]))) == ("RT-202612-0001", "draft", 900)
    [returned_line] = back["return_line"]
    assert returned_line["product"] == order["order_line"][0]["product"]
    assert {k: Decimal(str(returned_line[k])) for k in ("unit_price", "discount", "order_discount", "amount")} == {
        "unit_price": 1000, "discount": 0, "order_discount": 10, "amount": 900}
    assert money(api, order["id"]) == expect("2700", "0", "0", "2700", "0")  # a draft return does not count

    act(api, "return_order", back["id"], "submit", "rep")
    assert todos(api, "oadmin") == ["退货审批 RT-202612-0001：900.00"]
    assert money(api, order["id"]) == expect("2700", "0", "0", "2700", "0")

    approved = act(api, "return_order", back["id"], "approve_return", "oadmin")
    assert (approved["status"], approved["approved_by"]) == ("approved", people["oadmin"])
    assert todos(api, "oadmin") == []
    assert todos(api, "shipper") == ["确认退货入库 RT-202612-0001"]
    assert told(platform, people["rep"])[-1:] == ["退货单 RT-202612-0001 已审批通过"]
    assert money(api, order["id"]) == expect("2700", "900", "0", "2700", "-900")  # 900.00 owed to the customer

    received = act(api, "return_order", back["id"], "confirm_return_receipt", "shipper", {"received_on": "2026-12-10"})
    assert (received["status"], received["received_on"], received["received_by"]) == (
        "received", "2026-12-10", people["shipper"])
    assert todos(api, "shipper") == []
    assert told(platform, people["finance"]) == ["退货单 RT-202612-0001 已入库，退货金额 900.00"]
    assert money(api, order["id"]) == expect("2700", "900", "0", "2700", "-900")

    status, refund = api.post("/objects/refund/records", "rep", {"return_order": back["id"], "amount": "900"})
    assert status == 201, refund
    assert (refund["refund_no"], refund["sales_order"], refund["status"]) == ("RF-202612-0001", order["id"], "pending")
    assert todos(api, "finance") == ["退款确认 RF-202612-0001：900.00"]
    assert money(api, order["id"]) == expect("2700", "900", "0", "2700", "-900")  # pending: not yet refunded

    assert api.post(f"/objects/refund/records/{refund['id']}/actions/confirm_refund", "rep", {}) == (403, {
        "error": {"code": "forbidden",
                  "message": "your roles do not allow Confirm refund on refunds (allowed: Finance)"}})
    confirmed = act(api, "refund", refund["id"], "confirm_refund", "finance")
    assert (confirmed["status"], confirmed["confirmed_by"]) == ("confirmed", people["finance"])
    assert todos(api, "finance") == []
    assert money(api, order["id"]) == expect("2700", "900", "900", "1800", "0")
    assert Decimal(str(api.get(f"/objects/return_order/records/{back['id']}", "rep")[1]["refunded_amount"])) == 900

    done = act(api, "sales_order", order["id"], "confirm_receipt", "rep")
    assert done["status"] == "completed"  # received and nothing outstanding once the return is counted


def test_a_return_of_more_than_shipped_is_refused_with_the_numbers_and_nothing_written(api, people, platform, order):
    line = shipped(api, order)
    assert return_of(api, order, line, 4) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error", "fields": {"quantity": [
            "Returned quantity of Order line 笔记本电脑 would be 4.00, above 3.00: at most 3.00 is left"]}}})
    assert api.get("/objects/return_order/records", "rep")[1]["total"] == 0  # nothing written
    assert api.get("/objects/return_line/records", "rep")[1]["total"] == 0

    status, first = return_of(api, order, line, 2)
    assert status == 201, first
    status, body = return_of(api, order, line, 2)  # the first, a draft still, takes 2 of the 3 back
    assert (status, body["error"]["fields"]) == (422, {"quantity": [
        "Returned quantity of Order line 笔记本电脑 would be 4.00, above 3.00: at most 1.00 is left"]})
    act(api, "return_order", first["id"], "submit", "rep")
    act(api, "return_order", first["id"], "reject_return", "oadmin", {"reason": "已过退货期"})
    assert money(api, order["id"]) == expect("2700", "0", "0", "0", "2700")
    status, second = return_of(api, order, line, 3)  # a rejected return gives its quantity back
    assert (status, Decimal(str(second.get("amount")))) == (201, Decimal("2700"))
    act(api, "return_order", second["id"], "cancel", "rep")
    assert Decimal(str(api.get(f"/objects/order_line/records/{line}", "rep")[1]["returned_quantity"])) == 0


def test_a_return_on_an_order_not_shipped_is_refused(api, people, platform, order):
    line = order["order_line"][0]["id"]
    status, body = return_of(api, order, line, 1)
    assert (status, body["error"]["fields"]) == (422, {"sales_order": [
        "Sales order SO-202612-0001 is Draft: its Status must be Shipped, Received, Completed"]})
    approve(api, order)
    status, body = return_of(api, order, line, 1)
    assert (status, body["error"]["fields"]) == (422, {"sales_order": [
        "Sales order SO-202612-0001 is Approved: its Status must be Shipped, Received, Completed"]})
    assert api.get("/objects/return_order/records", "rep")[1]["total"] == 0


def test_an_approved_return_lowers_what_may_still_be_paid_and_completes_a_received_order(api, people, platform, order):
    line = shipped(api, order)
    act(api, "sales_order", order["id"], "confirm_receipt", "rep", {"received_on": "2026-12-09"})
    paid(api, order, "1800")
    assert money(api, order["id"]) == expect("2700", "0", "0", "1800", "900")
    status, back = return_of(api, order, line, 1)
    act(api, "return_order", back["id"], "submit", "rep")
    assert api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]["status"] == "received"
    act(api, "return_order", back["id"], "approve_return", "boss")  # the rep's manager may approve it too
    assert money(api, order["id"]) == expect("2700", "900", "0", "1800", "0")
    assert api.get(f"/objects/sales_order/records/{order['id']}", "rep")[1]["status"] == "completed"
    status, body = pay(api, order["id"], "0.01")
    assert (status, body["error"]["fields"]) == (422, {"amount": [
        "Payments recorded of Sales order SO-202612-0001 would be 1800.01, above 1800.00: at most 0.00 is left"]})


def test_a_refund_never_above_what_was_paid_and_decided_by_finance_only(api, people, platform, order):
    shipped(api, order)
    paid(api, order, "1000")
    assert pay(api, order["id"], "500")[0] == 201  # pending: not paid yet
    assert refund_of(api, order["id"], "1000.01") == (422, {"error": {
        "code": "validation_failed", "message": "1 field error", "fields": {"amount": [
            "Refunds recorded of Sales order SO-202612-0001 would be 1000.01, above 1000.00: "
            "at most 1000.00 is left"]}}})
    assert api.get("/objects/refund/records", "finance")[1]["total"] == 0
    status, first = refund_of(api, order["id"], "600", refunded_on="2026-12-08", method="bank_transfer")
    assert status == 201, first
    status, body = refund_of(api, order["id"], "400.01")  # the pending refund counts
    assert (status, body["error"]["fields"]) == (422, {"amount": [
        "Refunds recorded of Sales order SO-202612-0001 would be 1000.01, above 1000.00: at most 400.00 is left"]})

    status, body = api.post(f"/objects/refund/records/{first['id']}/actions/reject_refund", "rep", {"reason": "x"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    rejected = act(api, "refund", first["id"], "reject_refund", "finance", {"reason": "账户信息有误"})
    assert (rejected["status"], rejected["reject_reason"]) == ("rejected", "账户信息有误")
    assert told(platform, people["rep"])[-1:] == [f"退款 {first['refund_no']} 被驳回：账户信息有误"]
    assert money(api, order["id"]) == expect("2700", "0", "0", "1000", "1700")

    status, second = refund_of(api, order["id"], "1000")  # the rejected one frees its amount
    assert status == 201, second
    act(api, "refund", second["id"], "confirm_refund", "finance")
    assert money(api, order["id"]) == expect("2700", "0", "1000", "0", "2700")
    status, body = api.post(f"/objects/refund/records/{second['id']}/actions/confirm_refund", "finance", {})
    assert (status, body["error"]["code"]) == (409, "conflict")  # confirmed already


def test_a_stale_version_and_a_locked_field_are_refused(api, people, platform, order):
    line = shipped(api, order)
    status, back = return_of(api, order, line, 1)
    path = f"/objects/return_order/records/{back['id']}"
    assert api.patch(path, "rep", {"version": back["version"], "reason": "包装破损"})[0] == 200
    status, body = api.patch(path, "rep", {"version": back["version"], "reason": "外观划伤"})
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert api.get(path, "rep")[1]["reason"] == "包装破损"
    submitted = act(api, "return_order", back["id"], "submit", "rep")
    status, body = api.patch(path, "rep", {"version": submitted["version"], "return_line": [
        {"id": submitted["return_line"][0]["id"], "quantity": 2}]})
    assert (status, body["error"]["code"]) == (409, "locked")
    status, body = api.post(f"{path}/actions/approve_return", "rep", {})
    assert (status, body["error"]["code"]) == (403, "forbidden")


def test_the_order_page_lists_its_returns_and_refunds(app, api, people, platform, order):
    line = shipped(api, order)
    paid(api, order, "900")
    status, back = return_of(api, order, line, 1)
    act(api, "return_order", back["id"], "submit", "rep")
    act(api, "return_order", back["id"], "approve_return", "oadmin")
    assert refund_of(api, order["id"], "900", return_order=back["id"])[0] == 201
    client = app.test_client()
    login(client, "rep", PASSWORD)
    page = client.get(f"/o/sales_order/{order['id']}").get_data(as_text=True)
    assert "退货单" in page and "RT-202612-0001" in page
    assert "退款" in page and "RF-202612-0001" in page
    assert "退货金额" in page and "900.00" in page


def test_a_return_takes_back_only_lines_of_its_own_order(api, people, platform, order):
    line = shipped(api, order)
    status, other = api.post("/objects/sales_order/records", "rep", {
        "account": order["account"], "order_line": [{"product": order["order_line"][0]["product"], "quantity": 5}]})
    assert status == 201, other
    shipped(api, other)
    wrong = (422, {"error": {"code": "validation_failed", "message": "1 field error", "fields": {
        "return_line[0].order_line": ["Only a line of the order this return is for can be returned"]}}})
    assert return_of(api, order, other["order_line"][0]["id"], 1) == wrong
    status, back = return_of(api, order, line, 1)
    assert status == 201, back
    status, body = api.post("/objects/return_line/records", "rep", {
        "return_order": back["id"], "order_line": other["order_line"][0]["id"], "quantity": 1})
    assert (status, body["error"]["fields"]) == (422, {
        "order_line": ["Only a line of the order this return is for can be returned"]})
    status, body = api.patch(f"/objects/return_order/records/{back['id']}", "rep", {
        "version": back["version"], "sales_order": other["id"]})
    assert (status, body["error"]["code"]) == (409, "locked")
    assert money(api, other["id"])["returned_amount"] == 0
    assert api.get("/objects/return_line/records", "rep")[1]["total"] == 1
