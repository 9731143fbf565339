"""Orders to cash in a real browser at 1,400 px (issue 15): a rep orders a laptop for an A-grade customer (the
line takes the product's price and the price policy's 5 % as its defaults) and submits the order; the order
administrator, finance and the warehouse approve it from their to-dos (the steps of flows/order_approval.yaml);
the shipper confirms the shipment; the rep confirms the customer's receipt; finance confirms the rep's payment
and issues the invoice the rep asked for. After each step the order page shows its status (in Chinese) and its
balances, and each role is offered only the actions roles.yaml and the lifecycle give it.

As in test_ui.py, every assertion is on what a user sees; the database is only read to know ids, and the
payment and the invoice request are recorded through the engine as the rep (their forms are tested elsewhere).
"""

from __future__ import annotations

from playwright.sync_api import expect
from test_ui import click_and_wait, flashes, login, values

from objectplatform.runtime.actions import run_action
from objectplatform.runtime.permissions import access_for

CONTEXT = {"locale": "zh-CN", "timezone_id": "Asia/Shanghai", "viewport": {"width": 1400, "height": 900}}


def offered(page) -> list[str]:
    """The actions the record page's head offers (their data-action names), in order."""
    return page.eval_on_selector_all(".page-head [data-action]", "as => as.map(a => a.dataset.action)")


def state(page) -> str:
    return page.locator(".state-path [aria-current=step]").inner_text()


def signed_in(browser, site, username: str):
    context = browser.new_context(base_url=site.url, **CONTEXT)
    page = context.new_page()
    login(page, site, username)
    return context, page


def approve_from_todos(browser, site, username: str, order_no: str) -> None:
    context, page = signed_in(browser, site, username)
    page.goto("/todos")
    row = page.locator("table.todos tbody tr").filter(has_text=order_no)
    expect(row).to_have_count(1)
    click_and_wait(page, row.get_by_role("button", name="同意"))
    assert flashes(page) == [f"已同意：订单审批 {order_no}"]
    context.close()


def test_an_order_goes_from_the_rep_through_approval_shipping_and_receipt_to_finance(browser, site):
    records = site.platform.records
    wang = site.users["wang"]
    for username, name, role in (("zhou", "周订单", "order_admin"), ("qianhui", "钱会计", "finance"),
                                 ("wu", "吴仓库", "warehouse"), ("sun", "孙发货", "shipper")):
        site.users[username] = records.create("user", {
            "username": username, "display_name": name, "password": site.password, "roles": [role],
            "active": True}, system=True)["id"]
    records.create("account", {"name": "星辰科技", "grade": "a"}, user=wang)
    records.create("product", {"name": "笔记本电脑", "price": "1000", "category": "hardware"}, system=True)
    records.create("price_policy", {"name": "A级客户 硬件 95折", "grade": "a", "category": "hardware",
                                    "discount": 5}, system=True)

    # the rep orders three laptops, leaving price and discount to their defaults, and submits the order
    rep, page = signed_in(browser, site, "wang")
    page.goto("/o/sales_order/new")
    box = page.locator("#f-account")
    box.fill("星辰")
    page.locator('.field[data-name="account"] .lookup-results li[role=option]').first.click()
    page.get_by_role("button", name="添加一行").click()
    line = page.locator("fieldset.lines tbody tr.line").first
    line.locator("input.lookup-text").fill("笔记本")
    line.locator(".lookup-results li[role=option]").first.click()
    line.locator('input[data-field="quantity"]').fill("3")
    click_and_wait(page, page.get_by_role("button", name="保存"))
    assert flashes(page) == ["已创建"]
    order = records.list("sales_order").items[0]
    order_no, url = order["order_no"], f"/o/sales_order/{order['id']}"
    assert page.url.endswith(url)
    assert state(page) == "草稿"
    shown = values(page)
    assert (shown["产品合计"], shown["订单金额"]) == ("2,850.00", "2,850.00")
    lines = page.locator('section[data-related="order_line.sales_order"] tbody tr')
    assert lines.locator("td").all_inner_texts() == ["笔记本电脑", "3", "1,000.00", "5%", "2,850.00"]
    assert offered(page) == ["copy", "submit", "cancel"]  # no shipping, no completing a draft
    click_and_wait(page, page.locator('button[data-approval="submit"]'))
    assert state(page) == "待审批"
    assert offered(page) == ["copy", "withdraw"]
    assert page.locator("form.approval-decide").count() == 0  # the rep cannot approve the order
    rep.close()

    for username in ("zhou", "qianhui", "wu"):
        approve_from_todos(browser, site, username, order_no)

    # the rep sees it approved, but may not ship it
    rep, page = signed_in(browser, site, "wang")
    page.goto(url)
    assert state(page) == "已审批"
    assert "confirm_shipment" not in offered(page)
    rep.close()

    # the shipper ships it from the order page, naming the delivery note
    shipper, page = signed_in(browser, site, "sun")
    page.goto(url)
    assert offered(page) == ["confirm_shipment"]
    page.locator('summary[data-action="confirm_shipment"]').click()
    page.locator('details[data-dialog="confirm_shipment"] input[name="delivery_note"]').fill("SF1234567890")
    click_and_wait(page, page.locator('details[data-dialog="confirm_shipment"] button[type=submit]'))
    assert state(page) == "已发货"
    assert values(page)["物流单号"] == "SF1234567890"
    shipper.close()

    # the rep confirms the customer's receipt
    rep, page = signed_in(browser, site, "wang")
    page.goto(url)
    assert "confirm_receipt" in offered(page)
    page.locator('summary[data-action="confirm_receipt"]').click()
    click_and_wait(page, page.locator('details[data-dialog="confirm_receipt"] button[type=submit]'))
    assert state(page) == "已收货"
    shown = values(page)
    assert (shown["已回款金额"], shown["待回款金额"]) == ("0.00", "2,850.00")
    rep.close()

    # the rep records a payment and asks for an invoice; only finance may confirm and issue them
    payment = records.create("payment", {"sales_order": order["id"], "amount": "2850"}, user=wang)
    invoice = records.create("invoice", {"sales_order": order["id"], "amount": "2850"}, user=wang)
    run_action(site.platform, access_for(site.platform, wang), "invoice", "submit", invoice["id"], {})
    rep, page = signed_in(browser, site, "wang")
    page.goto(f"/o/payment/{payment['id']}")
    assert "confirm_payment" not in offered(page)
    rep.close()

    finance, page = signed_in(browser, site, "qianhui")
    page.goto(f"/o/payment/{payment['id']}")
    assert values(page)["回款状态"] == "待确认"
    assert offered(page) == ["confirm_payment", "reject_payment"]
    click_and_wait(page, page.locator('.page-head [data-action="confirm_payment"]'))
    shown = values(page)
    assert (shown["回款状态"], shown["确认人"]) == ("已确认", "钱会计")
    page.goto(f"/o/invoice/{invoice['id']}")
    assert values(page)["开票状态"] == "待开票"
    assert offered(page) == ["issue_invoice", "reject_invoice"]
    page.locator('summary[data-action="issue_invoice"]').click()
    page.locator('details[data-dialog="issue_invoice"] input[name="tax_invoice_no"]').fill("04400123")
    click_and_wait(page, page.locator('details[data-dialog="issue_invoice"] button[type=submit]'))
    shown = values(page)
    assert (shown["开票状态"], shown["发票号码"]) == ("已开票", "04400123")
    page.goto(url)
    assert state(page) == "已完成"  # received and paid in full: completed by itself
    shown = values(page)
    assert (shown["订单金额"], shown["已回款金额"], shown["待回款金额"]) == ("2,850.00", "2,850.00", "0.00")
    assert offered(page) == []
    finance.close()
