"""The FMCG edition's store visit on a phone (390 px) in headless Chromium, the browser's geolocation granted: a rep
of 华北区 (under 销售部) checks in at a store, is refused check-out while 巡店拍照 and 产品盘点 are missing, takes
the shelf photo (a file uploaded) and counts two SKUs as lines of the count's form, then checks out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect
from support import CRM_LAYERS
from test_ui import click_and_wait, login

from objectplatform.metadata import default_layers, load_metadata
from objectplatform.runtime.config import ROOT

STORE = {"latitude": 39.9110, "longitude": 116.3740}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cf"
                    "c0000003010100c9fe92ef0000000049454e44ae426082")


@pytest.fixture(scope="module")
def metadata():
    """The CRM with the FMCG edition enabled."""
    return load_metadata(default_layers(ROOT, ["fmcg"], None, CRM_LAYERS))


def test_a_rep_fills_the_store_visit_s_actions_and_checks_out_on_a_phone(browser, site, tmp_path):
    records = site.platform.records
    wang = site.users["wang"]
    water, tea = (records.create("product", {"name": name, "price": "3", "case_size": 24, "safety_stock": 48,
                                             "target_stock": 96}, system=True)["id"] for name in ("矿泉水", "柠檬茶"))
    store = records.create("account", {"name": "物美超市（西单店）", "store_channel": "modern_trade",
                                       "store_grade": "a", "location": {"lat": STORE["latitude"],
                                                                        "lng": STORE["longitude"]}}, user=wang)["id"]
    visit = records.create("visit", {"subject": "例行巡店", "account": store, "summary": "主货架补齐",
                                     "planned_at": datetime.now(UTC)},
                           user=wang)["id"]
    photo = tmp_path / "货架.png"
    photo.write_bytes(PNG)
    context = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai",
                                  viewport={"width": 390, "height": 844}, geolocation=STORE,
                                  permissions=["geolocation"])
    try:
        page = context.new_page()
        login(page, site, "wang")
        page.goto(f"/o/visit/{visit}")
        click_and_wait(page, page.locator('#check-in button[data-action="check_in"]'))
        panel = page.locator("#checklist")
        assert [page.locator(f"#checklist li[data-item={name}]").count() for name in (
            "shelf_photo", "stock_count", "display_check", "promotion_report", "competitor_info",
            "customer_feedback")] == [1, 1, 1, 1, 1, 1]
        assert "完成前还需填写：巡店拍照、产品盘点" in panel.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
        click_and_wait(page, page.locator('#check-in button[data-action="check_out"]'))
        refused = page.locator('[data-action-error="check_out"]').inner_text()
        assert "巡店拍照" in refused and "产品盘点" in refused

        click_and_wait(page, page.locator('[data-fill="shelf_photo"]'))
        assert page.locator("h1").inner_text() == "填写巡店拍照 · 例行巡店"
        page.select_option("select[name=position]", "main_shelf")
        page.set_input_files("input[name=photo]", str(photo))
        click_and_wait(page, page.locator("form.record-form button[type=submit]"))
        assert page.url.endswith(f"/o/visit/{visit}#checklist")

        click_and_wait(page, page.locator('[data-fill="stock_count"]'))
        assert page.locator("h1").inner_text() == "填写产品盘点 · 例行巡店"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for name, shelf, room in (("矿泉水", 20, 10), ("柠檬茶", 0, 12)):  # a line per SKU, the product searched
            page.locator("button.add-line").click()
            row = page.locator("fieldset.lines tbody tr.line").last
            row.locator(".lookup-text").fill(name)
            suggestion = row.locator(".lookup-results li[role=option]")
            expect(suggestion).to_have_text([name])
            suggestion.first.click()
            row.locator("input[name$=-on_shelf]").fill(str(shelf))
            row.locator("input[name$=-store_room]").fill(str(room))
        click_and_wait(page, page.locator("form.record-form button[type=submit]"))
        assert page.url.endswith(f"/o/visit/{visit}#checklist")
        assert [page.locator(f"#checklist li[data-item={name}]").get_attribute("data-filled")
                for name in ("shelf_photo", "stock_count")] == ["1", "1"]

        click_and_wait(page, page.locator('#check-in button[data-action="check_out"]'))
        assert page.locator(".state-path [aria-current=step]").inner_text() == "已完成"
        (count,) = records.list("stock_count").items
        lines = records.get("stock_count", count["id"])["stock_count_line"]
        assert [(line["product"], line["on_hand"], line["suggested_cases"]) for line in lines] == [
            (water, 30, 3), (tea, 12, 4)]
        assert records.list("shelf_photo").items[0]["photo"]["name"] == "货架.png"
    finally:
        context.close()
