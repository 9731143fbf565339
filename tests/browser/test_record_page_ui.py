"""The record page in a real browser (issue 18): what matters first (the title with its state, the actions that
apply now, the timeline and comments before the field sections, empty sections folded), a transition's dialog in
the page with proper inputs, and its refusal shown in the dialog; shot at 1,400 px and 390 px."""

from __future__ import annotations

from test_ui import click_and_wait, login


def test_a_lead_page_invalidated_through_its_dialog_after_a_refusal(page, site, screenshot):
    lead = site.leads["张伟"]
    login(page, site, "wang")
    page.goto(f"/o/lead/{lead}")
    assert page.locator(".record-head .state-badge").inner_text() == "待处理"
    timeline, fields = page.locator("#follow-ups"), page.locator(".record-section").first
    assert timeline.bounding_box()["x"] > fields.bounding_box()["x"]  # wide: the timeline beside the fields
    page.set_viewport_size({"width": 390, "height": 844})
    assert timeline.bounding_box()["y"] < fields.bounding_box()["y"]  # a phone: above them
    page.set_viewport_size({"width": 1400, "height": 900})
    folded = page.locator("details.empty-section").first
    assert folded.get_attribute("open") is None
    folded.locator("summary").click()
    assert folded.get_attribute("open") == ""
    screenshot(page, "lead")

    page.locator('summary[data-action="invalidate"]').click()
    dialog = page.locator('details[data-dialog="invalidate"] form')
    assert dialog.is_visible()
    assert dialog.locator("input[name=reason]").count() == 1  # the reason, in the page
    click_and_wait(page, dialog.locator("button[type=submit]"))  # no reason: refused, the dialog open again
    dialog = page.locator('details[data-dialog="invalidate"][open] form')
    assert dialog.locator(".errors li").first.inner_text() == "必填"
    screenshot(page, "refused-in-dialog")

    dialog.locator("input[name=reason]").fill("号码为空号")
    click_and_wait(page, dialog.locator("button[type=submit]"))
    assert page.locator(".record-head .state-badge").inner_text() == "无效"
    assert page.locator('[data-action="invalidate"]').count() == 0  # no longer applies


def test_a_date_picked_in_an_english_chromium_is_said_in_the_page_s_language(browser, site, screenshot):
    """Chromium in English orders the picker's date 12/08/2026 even on a Chinese page: the words under it say
    2026年12月8日星期二 as soon as the date is picked, and Tuesday, December 8, 2026 once the page is in English; the
    opportunity saved holds 2026-12-08."""
    account = site.platform.records.create("account", {"name": "北京星河科技有限公司"}, user=site.users["wang"])["id"]
    context = browser.new_context(base_url=site.url, locale="en-US", timezone_id="Asia/Shanghai")
    try:
        page = context.new_page()
        login(page, site, "wang")
        page.goto(f"/o/opportunity/new?account={account}")
        words = page.locator('.date-in-words[data-for="f-expected_close_date"]')
        assert words.inner_text() == ""
        page.fill("#f-expected_close_date", "2026-12-08")
        assert words.inner_text() == "2026年12月8日星期二"
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "date-in-words-zh")
        page.goto("/lang/en?next=/o/opportunity/new")
        page.fill("#f-expected_close_date", "2027-01-01")
        assert words.inner_text() == "Friday, January 1, 2027"
    finally:
        context.close()
