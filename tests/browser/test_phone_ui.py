"""A rep's field pages on a phone (390 px) in headless Chromium (issue 18): my leads' status tabs each on one line,
never a character a line; order entry's lines as cards of labelled inputs, nothing wider than the screen."""

from __future__ import annotations

from test_ui import login

PHONE = {"width": 390, "height": 844}


def test_my_leads_tabs_and_order_lines_fit_a_phone(browser, site, screenshot):
    context = browser.new_context(base_url=site.url, locale="zh-CN", viewport=PHONE, is_mobile=True)
    try:
        page = context.new_page()
        login(page, site, "li")
        page.goto("/leads/mine")
        tabs = page.locator("nav.status-tabs a")
        heights = [tabs.nth(i).bounding_box()["height"] for i in range(tabs.count())]
        # a tap target each, its name on one line (待处理 one character a line was 80 px tall)
        assert len(heights) == 6 and all(44 <= h < 50 for h in heights), heights
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        page.goto("/o/sales_order/new")
        page.click("button.add-line")
        card = page.locator("table.line-table tbody tr.line").first
        assert page.locator("table.line-table thead").is_hidden()
        product = card.locator('td[data-name$="product"] label')
        assert product.is_visible() and product.inner_text() == "产品"
        quantity, price = (card.locator(f'td[data-name$="-{name}"]').bounding_box()
                           for name in ("quantity", "unit_price"))
        assert price["y"] > quantity["y"] and price["x"] == quantity["x"]  # stacked, not side by side
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "order-entry")
    finally:
        context.close()


def test_a_list_s_numbers_are_right_aligned_and_its_dates_whole_yet_a_card_reads_label_then_value(
        browser, site, screenshot):
    """The opportunities' list at 1,400 px: the amount right-aligned, the expected close date on one line; at
    390 px each row is a card whose amount sits after its label, as every other value does."""
    account = site.platform.records.create("account", {"name": "北京星河科技有限公司"}, user=site.users["wang"])["id"]
    site.platform.records.create("opportunity", {"name": "一期", "account": account, "amount": 1234567,
                                                 "expected_close_date": "2026-12-08"}, user=site.users["wang"])
    context = browser.new_context(base_url=site.url, locale="zh-CN", viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        login(page, site, "wang")
        page.goto("/o/opportunity")
        amount, day = page.locator('td[data-label="商机金额"]'), page.locator('td[data-label="预计成交日期"]')
        assert (amount.inner_text(), amount.evaluate("e => getComputedStyle(e).textAlign")) == (
            "1,234,567.00", "right")
        assert (day.inner_text(), day.evaluate("e => getComputedStyle(e).whiteSpace")) == ("2026-12-08", "nowrap")
        page.set_viewport_size(PHONE)
        assert amount.evaluate("e => getComputedStyle(e).textAlign") == "left"
        label = page.locator('td[data-label="负责人"]').bounding_box()
        assert amount.bounding_box()["x"] == label["x"]  # the labels in one column down the card
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "opportunities-list")
    finally:
        context.close()
