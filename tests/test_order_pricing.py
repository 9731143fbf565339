"""Ordering (issue 15): a line's unit price defaults to the product's, the order amount may be typed on a draft
(the order discount follows it), `copy` orders again at today's prices, and an order from an opportunity carries
its account and contact."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_api import PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_orders_to_cash import act, approve
from test_orders_to_cash import people as people  # noqa: F401
from test_pages import login, token

from objectplatform.runtime.errors import ValidationFailed
from objectplatform.translations import message_text

ORDERS = "/objects/sales_order/records"


@pytest.fixture
def shop(platform, people) -> dict[str, str]:  # noqa: F811
    """The rep's customer 星辰科技 with its contact 李明, a 1,000.00 laptop and a 200.00 mouse."""
    records = platform.records
    account = records.create("account", {"name": "星辰科技"}, user=people["rep"])["id"]
    contact = records.create("contact", {"name": "李明", "account": account}, user=people["rep"])["id"]
    laptop = records.create("product", {"name": "笔记本电脑", "price": "1000"}, system=True)["id"]
    mouse = records.create("product", {"name": "鼠标", "price": "200"}, system=True)["id"]
    return {"account": account, "contact": contact, "laptop": laptop, "mouse": mouse}


def new_order(api: Api, shop: dict, *lines: tuple[str, int], **more) -> dict:
    status, body = api.post(ORDERS, "rep", {
        "account": shop["account"], "contact": shop["contact"],
        "order_line": [{"product": shop[product], "quantity": quantity} for product, quantity in lines], **more})
    assert status == 201, body
    return body


def patch(api: Api, order: dict, who: str = "rep", **values) -> tuple[int, dict]:
    return api.patch(f"{ORDERS}/{order['id']}", who, {"version": order["version"], **values})


def money(value) -> str | None:
    """A JSON number as two decimals (None as it is)."""
    return None if value is None else f"{Decimal(str(value)):.2f}"


def amounts(order: dict) -> tuple:
    return money(order["lines_amount"]), money(order["order_discount"]), money(order["total_amount"])


def prices(order: dict) -> list[tuple]:
    return [(line["product"], money(line["quantity"]), money(line["unit_price"]), money(line["discount"]),
             money(line["subtotal"])) for line in order["order_line"]]


def test_a_line_takes_the_product_price_when_its_unit_price_is_omitted(api, shop):
    order = new_order(api, shop, ("laptop", 2), ("mouse", 1))
    assert prices(order) == [(shop["laptop"], "2.00", "1000.00", "0.00", "2000.00"),  # the discount's default kept
                             (shop["mouse"], "1.00", "200.00", "0.00", "200.00")]
    assert amounts(order) == ("2200.00", "0.00", "2200.00")

    status, line = api.post("/objects/order_line/records", "rep", {
        "sales_order": order["id"], "product": shop["mouse"], "quantity": 3, "discount": 10})
    assert (status, money(line["unit_price"]), money(line["subtotal"])) == (201, "200.00", "540.00")
    status, line = api.post("/objects/order_line/records", "rep", {
        "sales_order": order["id"], "product": shop["mouse"], "quantity": 1, "unit_price": "150"})
    assert (status, money(line["unit_price"])) == (201, "150.00")  # a price given is kept
    assert money(api.get(f"{ORDERS}/{order['id']}", "rep")[1]["total_amount"]) == "2890.00"


def test_a_typed_total_is_kept_and_the_order_discount_follows_it(api, shop):
    order = new_order(api, shop, ("laptop", 1))
    status, typed = patch(api, order, total_amount=950)
    assert (status, amounts(typed)) == (200, ("1000.00", "5.00", "950.00"))

    order = new_order(api, shop, ("laptop", 3))
    status, typed = patch(api, order, total_amount="1000")
    assert (status, amounts(typed)) == (200, ("3000.00", "66.67", "1000.00"))  # not 999.99
    status, kept = patch(api, typed, remark="老客户")
    assert (status, amounts(kept)) == (200, ("3000.00", "66.67", "1000.00"))

    line = kept["order_line"][0]
    status, more = patch(api, api.get(f"{ORDERS}/{order['id']}", "rep")[1],
                         order_line=[{"id": line["id"], "quantity": 4}])
    assert (status, amounts(more)) == (200, ("4000.00", "66.67", "1333.20"))  # recomputed: the typed amount went

    status, typed = patch(api, more, total_amount="3600")
    assert (status, amounts(typed)) == (200, ("4000.00", "10.00", "3600.00"))
    status, discounted = patch(api, typed, order_discount=20)
    assert (status, amounts(discounted)) == (200, ("4000.00", "20.00", "3200.00"))


def test_a_typed_total_is_posted_with_the_lines(api, shop):
    order = new_order(api, shop, ("laptop", 1), ("mouse", 1), total_amount="1000")
    assert amounts(order) == ("1200.00", "16.67", "1000.00")
    assert money(order["outstanding_amount"]) == "1000.00"


def test_a_typed_total_is_never_negative_nor_above_the_lines(api, people, platform, shop):  # noqa: F811
    order = new_order(api, shop, ("laptop", 1))
    assert patch(api, order, total_amount=-1) == (422, {"error": {"code": "validation_failed",
        "message": "1 field error", "fields": {"total_amount": ["must be at least 0.00"]}}})
    status, body = patch(api, order, total_amount="1000.01")
    assert (status, body["error"]["fields"]) == (422, {"total_amount": ["1000.01 is above the Lines total 1000.00"]})
    with pytest.raises(ValidationFailed) as refused:
        platform.records.update("sales_order", order["id"], {"total_amount": "1200"}, version=order["version"],
                                user=people["rep"])
    assert message_text(refused.value.fields["total_amount"][0], "zh") == "1200.00 超过产品合计 1000.00"
    status, body = api.post(ORDERS, "rep", {"account": shop["account"], "total_amount": "2000",
                                            "order_line": [{"product": shop["laptop"], "quantity": 1}]})
    assert (status, body["error"]["fields"]) == (422, {"total_amount": ["2000.00 is above the Lines total 1000.00"]})
    assert api.get(ORDERS, "rep")[1]["total"] == 1
    assert amounts(api.get(f"{ORDERS}/{order['id']}", "rep")[1]) == ("1000.00", "0.00", "1000.00")


def test_the_total_is_locked_once_the_order_left_draft_and_a_typed_one_stays(api, shop):
    order = new_order(api, shop, ("laptop", 3))
    status, order = patch(api, order, total_amount="1000")
    approved = approve(api, order)
    status, body = patch(api, approved, total_amount=900)
    assert (status, body["error"]["code"]) == (409, "locked")
    status, payment = api.post("/objects/payment/records", "rep", {"sales_order": order["id"], "amount": "400"})
    assert status == 201, payment
    act(api, "payment", payment["id"], "confirm_payment", "finance")
    order = api.get(f"{ORDERS}/{order['id']}", "rep")[1]
    assert (*amounts(order), money(order["paid_amount"]), money(order["outstanding_amount"])) == (
        "3000.00", "66.67", "1000.00", "400.00", "600.00")


def test_copy_orders_again_at_todays_prices(api, people, platform, shop):  # noqa: F811
    order = new_order(api, shop, ("laptop", 2), ("mouse", 5), receiver="李明", shipping_address="深圳市南山区")
    status, order = patch(api, order, order_line=[
        {"id": line["id"], "discount": 10 if line["product"] == shop["mouse"] else 0} for line in order["order_line"]])
    status, order = patch(api, order, order_discount=5)
    assert amounts(order) == ("2900.00", "5.00", "2755.00")
    approved = approve(api, order)
    shipped = act(api, "sales_order", order["id"], "confirm_shipment", "shipper")
    assert (approved["status"], shipped["status"]) == ("approved", "shipped")
    platform.records.update("product", shop["laptop"], {"price": "1100"}, version=None, system=True)

    shown = api.get(f"{ORDERS}/{order['id']}", "boss")[1]["_actions"]
    assert shown == [{"name": "copy", "label": {"zh": "再次下单", "en": "Order again"}},
                     {"name": "confirm_receipt", "label": {"zh": "确认收货", "en": "Confirm receipt"}}]
    status, body = api.post(f"{ORDERS}/{order['id']}/actions/copy", "boss", {})
    assert status == 200, body
    copy = body["record"]
    assert copy["id"] != order["id"] and copy["order_no"] != order["order_no"]
    assert (copy["status"], copy["owner"], copy["account"], copy["contact"], copy["receiver"],
            copy["shipping_address"]) == (
        "draft", people["boss"], shop["account"], shop["contact"], "李明", "深圳市南山区")
    assert prices(copy) == [(shop["laptop"], "2.00", "1100.00", "0.00", "2200.00"),
                            (shop["mouse"], "5.00", "200.00", "10.00", "900.00")]
    assert amounts(copy) == ("3100.00", "5.00", "2945.00")
    assert api.get(f"{ORDERS}/{copy['id']}", "boss")[1]["status"] == "draft"
    assert api.get(f"{ORDERS}/{order['id']}", "rep")[1]["status"] == "shipped"  # the order copied is as it was


def test_copy_drops_a_typed_total_and_stays_within_scope(api, people, platform, shop):  # noqa: F811
    order = new_order(api, shop, ("laptop", 3))
    status, order = patch(api, order, total_amount="1000")
    assert amounts(order) == ("3000.00", "66.67", "1000.00")
    copy = act(api, "sales_order", order["id"], "copy", "rep")
    assert (copy["owner"], amounts(copy)) == (people["rep"], ("3000.00", "66.67", "999.90"))

    platform.records.create("user", {"username": "rep2", "display_name": "李娜", "password": PASSWORD,
                                     "roles": ["sales_rep"]}, system=True)
    before = api.get(ORDERS, "rep")[1]["total"]
    status, body = api.post(f"{ORDERS}/{order['id']}/actions/copy", "rep2", {})
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert api.get(ORDERS, "rep")[1]["total"] == before == 2


def test_an_order_from_an_opportunity_carries_its_account_and_contact(api, people, platform, shop):  # noqa: F811
    opportunity = platform.records.create("opportunity", {
        "name": "星辰科技电脑采购", "account": shop["account"], "contact": shop["contact"], "amount": "5000"},
        user=people["rep"])["id"]
    status, order = api.post(ORDERS, "rep", {"opportunity": opportunity,
                                             "order_line": [{"product": shop["laptop"], "quantity": 5}]})
    assert status == 201, order
    assert (order["opportunity"], order["account"], order["contact"], money(order["total_amount"])) == (
        opportunity, shop["account"], shop["contact"], "5000.00")


def test_the_order_form_takes_the_product_price_and_the_order_page_offers_order_again(app, shop):
    client = app.test_client()
    login(client, "rep", PASSWORD)
    created = client.post("/o/sales_order/new", data={
        "csrf_token": token(client), "account": shop["account"], "account__title": "星辰科技",
        "order_line__present": "1",
        "order_line-0-product": shop["laptop"], "order_line-0-quantity": "2", "order_line-0-unit_price": "",
        "order_line-1-product": shop["mouse"], "order_line-1-quantity": "1", "order_line-1-unit_price": "180"})
    assert created.status_code == 302, created.text
    order_id = created.location.rsplit("/", 1)[1]
    page = client.get(created.location).text
    assert "再次下单" in page
    order = client.get(f"/api/v1/objects/sales_order/records/{order_id}",
                       headers={"Authorization": "Bearer " + Api(client).token("rep")}).get_json()
    assert [money(line["unit_price"]) for line in order["order_line"]] == ["1000.00", "180.00"]
    assert amounts(order) == ("2180.00", "0.00", "2180.00")
