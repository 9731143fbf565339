"""A rep's visit on a phone (390 px) in headless Chromium, the browser's geolocation granted: check in from the
visit page, see the actions 华北区 is offered, try to check out without the required 客户反馈 (refused, naming
it), fill it in its form (an inline error first), then check out."""

from __future__ import annotations

from datetime import UTC, datetime

from test_ui import click_and_wait, login

SHOP = {"latitude": 39.9155, "longitude": 116.3565}


def test_a_rep_checks_in_fills_the_required_action_and_checks_out_on_a_phone(browser, site):
    records = site.platform.records
    wang = site.users["wang"]
    shop = records.create("account", {"name": "华信银行", "location": {"lat": SHOP["latitude"],
                                                                    "lng": SHOP["longitude"]}}, user=wang)["id"]
    visit = records.create("visit", {"subject": "项目启动会", "account": shop, "summary": "确认实施范围",
                                     "planned_at": datetime.now(UTC)}, user=wang)["id"]
    context = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai",
                                  viewport={"width": 390, "height": 844}, geolocation=SHOP,
                                  permissions=["geolocation"])
    try:
        page = context.new_page()
        login(page, site, "wang")
        page.goto(f"/o/visit/{visit}")
        assert page.locator("#checklist").count() == 1
        assert "动作只在已签到时填写" in page.locator("#checklist").inner_text()
        click_and_wait(page, page.locator('#check-in button[data-action="check_in"]'))
        panel = page.locator("#checklist")
        assert [page.locator(f"#checklist li[data-item={name}]").count()
                for name in ("customer_feedback", "competitor_info")] == [1, 1]
        assert "完成前还需填写：客户反馈" in panel.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
        click_and_wait(page, page.locator('#check-in button[data-action="check_out"]'))
        assert "签退前必须填写客户反馈" in page.locator('[data-action-error="check_out"]').inner_text()
        click_and_wait(page, page.locator('[data-fill="customer_feedback"]'))
        assert page.locator("h1").inner_text() == "填写客户反馈 · 项目启动会"
        page.select_option("select[name=category]", "product")
        click_and_wait(page, page.locator("form.record-form button[type=submit]"))
        assert "请修正下面标出的 2 处错误" in page.locator(".flash.error").inner_text()
        page.select_option("select[name=satisfaction]", "satisfied")
        page.fill("textarea[name=content]", "希望增加移动端审批")
        click_and_wait(page, page.locator("form.record-form button[type=submit]"))
        assert page.url.endswith(f"/o/visit/{visit}#checklist")
        assert page.locator("#checklist li[data-item=customer_feedback]").get_attribute("data-filled") == "1"
        click_and_wait(page, page.locator('#check-in button[data-action="check_out"]'))
        assert page.locator(".state-path [aria-current=step]").inner_text() == "已完成"
        assert page.locator("#checklist [data-fill]").count() == 0
        feedback = records.list("customer_feedback").items
        assert [(f["visit"], f["owner"], f["content"]) for f in feedback] == [(visit, wang, "希望增加移动端审批")]
    finally:
        context.close()
