"""Price policies (issue 15, 价格政策): an order line added without a discount takes the most specific valid policy's
(customer + product > customer + category > grade + product > grade + category), keeps which one it took, and only
roles granted override_discount may give another discount."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from test_api import PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_orders_to_cash import people as people  # noqa: F401
from test_pages import login

from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.translations import message_text

ORDERS = "/objects/sales_order/records"
LINES = "/objects/order_line/records"
POLICIES = "/objects/price_policy/records"


@pytest.fixture
def shop(platform, people) -> dict[str, str]:  # noqa: F811
    """The rep's A-grade customer 星辰科技 and C-grade 海河贸易, a 1,000.00 laptop (hardware), a 200.00 mouse
    (hardware) and a 300.00 installation (service); the policy 「A级客户 硬件 95折」."""
    records = platform.records
    shop = {
        "account": records.create("account", {"name": "星辰科技", "grade": "a"}, user=people["rep"])["id"],
        "other": records.create("account", {"name": "海河贸易", "grade": "c"}, user=people["rep"])["id"],
        "laptop": records.create("product", {"name": "笔记本电脑", "price": "1000", "category": "hardware"},
                                 system=True)["id"],
        "mouse": records.create("product", {"name": "鼠标", "price": "200", "category": "hardware"}, system=True)["id"],
        "install": records.create("product", {"name": "上门安装", "price": "300", "category": "service"},
                                  system=True)["id"],
    }
    shop["a_hardware"] = policy(platform, "A级客户 硬件 95折", 5, grade="a", category="hardware")
    return shop


def policy(platform, name: str, discount, **applies) -> str:
    return platform.records.create("price_policy", {"name": name, "discount": discount, **applies}, system=True)["id"]


def money(value) -> str | None:
    return None if value is None else f"{Decimal(str(value)):.2f}"


def lines(order: dict) -> list[tuple]:
    return [(money(line["unit_price"]), money(line["discount"]), money(line["subtotal"]), line["price_policy"])
            for line in order["order_line"]]


def new_order(api: Api, who: str, account: str, *items: dict) -> tuple[int, dict]:
    return api.post(ORDERS, who, {"account": account, "order_line": list(items)})


def test_a_line_without_a_discount_takes_the_grade_policy_of_its_category(api, shop):
    status, order = new_order(api, "rep", shop["account"], {"product": shop["laptop"], "quantity": 1},
                              {"product": shop["mouse"], "quantity": 2}, {"product": shop["install"], "quantity": 1})
    assert status == 201, order
    assert lines(order) == [("1000.00", "5.00", "950.00", shop["a_hardware"]),
                            ("200.00", "5.00", "380.00", shop["a_hardware"]),
                            ("300.00", "0.00", "300.00", None)]  # no policy for services: the field's default
    assert (money(order["lines_amount"]), money(order["total_amount"])) == ("1630.00", "1630.00")

    status, other = new_order(api, "rep", shop["other"], {"product": shop["laptop"], "quantity": 1})
    assert lines(other) == [("1000.00", "0.00", "1000.00", None)]  # a C-grade customer: no policy

    status, line = api.post(LINES, "rep", {"sales_order": order["id"], "product": shop["laptop"], "quantity": 1})
    assert (status, money(line["discount"]), money(line["subtotal"]), line["price_policy"]) == (
        201, "5.00", "950.00", shop["a_hardware"])  # a line added on its own too
    assert money(api.get(f"{ORDERS}/{order['id']}", "rep")[1]["total_amount"]) == "2580.00"


def test_the_most_specific_valid_policy_wins(api, platform, shop):
    grade_product = policy(platform, "A级客户 笔记本 94折", 6, grade="a", product=shop["laptop"])
    item = {"product": shop["laptop"], "quantity": 1}
    assert lines(new_order(api, "rep", shop["account"], item)[1]) == [("1000.00", "6.00", "940.00", grade_product)]
    account_category = policy(platform, "星辰 硬件 92折", 8, account=shop["account"], category="hardware")
    assert lines(new_order(api, "rep", shop["account"], item)[1]) == [("1000.00", "8.00", "920.00", account_category)]
    account_product = policy(platform, "星辰 笔记本 9折", 10, account=shop["account"], product=shop["laptop"])
    assert lines(new_order(api, "rep", shop["account"], item)[1]) == [("1000.00", "10.00", "900.00", account_product)]

    # an inactive policy, one not yet valid and one past its end are not taken (today is 2026-12-07)
    platform.records.update("price_policy", account_product, {"active": False}, version=None, system=True)
    policy(platform, "星辰 笔记本 85折（明年）", 15, account=shop["account"], product=shop["laptop"],
           valid_from="2027-01-01")
    policy(platform, "星辰 笔记本 8折（已过期）", 20, account=shop["account"], product=shop["laptop"],
           valid_to="2026-12-06")
    last_day = policy(platform, "星辰 笔记本 88折（今天截止）", 12, account=shop["account"], product=shop["laptop"],
                      valid_from="2026-12-01", valid_to="2026-12-07")
    assert lines(new_order(api, "rep", shop["account"], item)[1]) == [("1000.00", "12.00", "880.00", last_day)]


def test_only_roles_allowed_may_give_another_discount(api, platform, people, shop):  # noqa: F811
    item = {"product": shop["laptop"], "quantity": 1, "discount": 20}
    status, body = new_order(api, "rep", shop["account"], item)
    assert (status, body["error"]["fields"]) == (422, {"order_line[0].discount": [
        "Discount comes from the price policy “A级客户 硬件 95折” (5.00%); your roles may not change it to 20.00%"]})
    assert api.get(ORDERS, "rep")[1]["total"] == 0
    with pytest.raises(ValidationFailed) as refused:
        platform.records.within(access_for(platform, people["rep"])).create(
            "order_line", {"sales_order": new_order(api, "rep", shop["account"])[1]["id"], "product": shop["laptop"],
                           "quantity": 1, "discount": 20}, user=people["rep"])
    assert message_text(refused.value.fields["discount"][0], "zh") == (
        "折扣率取自价格政策「A级客户 硬件 95折」（5.00%），你的角色不能改为 20.00%")

    status, same = new_order(api, "rep", shop["account"], {**item, "discount": "5"})
    assert (status, lines(same)) == (201, [("1000.00", "5.00", "950.00", shop["a_hardware"])])  # the policy's own

    status, order = new_order(api, "boss", shop["account"], item)  # a sales manager may: the line names no policy
    assert (status, lines(order)) == (201, [("1000.00", "20.00", "800.00", None)])

    line = same["order_line"][0]
    status, body = api.patch(f"{LINES}/{line['id']}", "rep", {"version": line["version"], "discount": 8})
    assert (status, body["error"]["fields"]) == (422, {"discount": [
        "Discount comes from the price policy “A级客户 硬件 95折” (5.00%); your roles may not change it to 8.00%"]})
    status, changed = api.patch(f"{LINES}/{line['id']}", "rep", {"version": line["version"], "quantity": 2})
    assert (status, money(changed["subtotal"])) == (200, "1900.00")  # the rest of the line stays the rep's
    status, changed = api.patch(f"{LINES}/{line['id']}", "boss", {"version": changed["version"], "discount": 8})
    assert (status, money(changed["discount"]), money(changed["subtotal"]), changed["price_policy"]) == (
        200, "8.00", "1840.00", None)
    status, back = api.patch(f"{LINES}/{line['id']}", "rep", {"version": changed["version"], "discount": 5})
    assert (status, money(back["subtotal"]), back["price_policy"]) == (200, "1900.00", shop["a_hardware"])


def test_a_line_without_a_policy_is_the_reps_to_discount(api, shop):
    status, order = new_order(api, "rep", shop["account"], {"product": shop["install"], "quantity": 1,
                                                              "discount": 10})
    assert (status, lines(order)) == (201, [("300.00", "10.00", "270.00", None)])


def test_policies_are_kept_by_order_administrators_and_sales_managers(api, shop):
    body = {"name": "B级客户 9折", "grade": "b", "category": "hardware", "discount": 10}
    assert api.post(POLICIES, "rep", body)[0] == 403
    assert api.post(POLICIES, "oadmin", body)[0] == 201
    assert api.post(POLICIES, "boss", {**body, "grade": "c"})[0] == 201
    status, refused = api.post(POLICIES, "oadmin", {"name": "两头都填", "grade": "a", "account": shop["account"],
                                                    "discount": 3, "valid_from": "2026-12-31",
                                                    "valid_to": "2026-12-01"})
    assert (status, refused["error"]["fields"]) == (422, {
        "grade": ["Give either a customer grade or a customer"],
        "category": ["Give either a product category or a product"],
        "valid_to": ["The end date cannot be before the start date"]})
    assert api.get(POLICIES, "rep")[1]["total"] == 3  # reps read them


def test_copy_takes_todays_policy(api, platform, shop):
    status, order = new_order(api, "rep", shop["account"], {"product": shop["laptop"], "quantity": 1})
    better = policy(platform, "A级客户 硬件 93折", 7, grade="a", category="hardware")
    status, body = api.post(f"{ORDERS}/{order['id']}/actions/copy", "rep", {})
    assert status == 200, body
    assert lines(body["record"]) == [("1000.00", "7.00", "930.00", better)]


def test_the_line_editor_names_the_policy(app, api, shop):
    status, order = new_order(api, "rep", shop["account"], {"product": shop["laptop"], "quantity": 1})
    client = app.test_client()
    login(client, "rep", PASSWORD)
    page = client.get(f"/o/sales_order/{order['id']}/edit")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<small class="matched-note">价格政策: A级客户 硬件 95折</small>' in html
    # the new line's discount starts empty (a shown 0 would be sent as typed and refused)
    template = html.split('<template class="line-template">')[1].split("</template>")[0]
    assert re.search(r'<input[^>]*name="order_line-__i__-discount"[^>]*value=""', template)
    assert re.search(r'<input[^>]*name="order_line-0-discount"[^>]*value="5.00"', html)


def test_an_import_prices_its_lines_as_the_form_does(api, platform, people, shop):  # noqa: F811
    """Order lines imported from a file take the policies a line added on the form takes, one query per match
    entry for the whole batch; a discount given is held to the policy for a role that may not override it."""
    platform.records.create("user", {"username": "admin", "display_name": "管理员", "password": PASSWORD,
                                     "roles": ["admin"]}, system=True)
    order = new_order(api, "rep", shop["account"])[1]
    other = new_order(api, "rep", shop["other"])[1]
    csv = (f"sales_order,product,quantity,discount\n{order['id']},{shop['laptop']},2,\n"
           f"{order['id']},{shop['install']},1,\n{other['id']},{shop['laptop']},1,\n"
           f"{order['id']},{shop['mouse']},1,20\n").encode()
    status, body = api.call("POST", "/objects/order_line/imports", "admin",
                            data={"file": (io.BytesIO(csv), "lines.csv")}, content_type="multipart/form-data")
    assert status == 202, body
    platform.jobs.wait(body["job_id"])
    assert api.get(f"/jobs/{body['job_id']}", "admin")[1]["result"]["errors"] == []
    order = api.get(f"{ORDERS}/{order['id']}", "rep")[1]
    assert lines(order) == [("1000.00", "5.00", "1900.00", shop["a_hardware"]),
                            ("300.00", "0.00", "300.00", None),  # no policy for services
                            ("200.00", "20.00", "160.00", None)]  # an administrator may give another discount
    assert money(order["total_amount"]) == "2360.00"
    assert lines(api.get(f"{ORDERS}/{other['id']}", "rep")[1]) == [("1000.00", "0.00", "1000.00", None)]

    result = platform.records.within(access_for(platform, people["rep"])).create_many("order_line", [
        {"sales_order": order["id"], "product": shop["mouse"], "quantity": "1"},
        {"sales_order": order["id"], "product": shop["mouse"], "quantity": "1", "discount": "20"},
        {"sales_order": order["id"], "product": shop["mouse"], "quantity": "1", "discount": "5"}], user=people["rep"])
    assert [(e.index, message_text(e.fields["discount"][0], "en")) for e in result.errors] == [(1, (
        "Discount comes from the price policy “A级客户 硬件 95折” (5.00%); your roles may not change it to 20.00%"))]
    assert lines(api.get(f"{ORDERS}/{order['id']}", "rep")[1])[3:] == [
        ("200.00", "5.00", "190.00", shop["a_hardware"]), ("200.00", "5.00", "190.00", shop["a_hardware"])]
