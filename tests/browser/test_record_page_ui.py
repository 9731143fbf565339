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
