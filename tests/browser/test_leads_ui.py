"""The lead work in a real browser: a rep claims a lead from the pool board (its mobile masked until
then), follows it up from the lead page, converts it through the convert dialog; the manager then
sees the follow-up in the feed. And a campaign's page imports leads with a progress bar and a row report.

As in test_ui.py, every assertion is on what a user sees; the database is only read to check what
the pages wrote.
"""

from __future__ import annotations

import re

from test_ui import click_and_wait, flashes, login, path, values


def board_rows(page) -> list[list[str]]:
    """The board's rows as their cells' texts (without the selection box and the buttons)."""
    return page.eval_on_selector_all(
        "table.records tbody tr[data-id]",
        "rows => rows.map(r => Array.from(r.querySelectorAll('td:not(.select):not(.row-actions)'))"
        ".map(c => c.innerText.trim()))")


def test_rep_claims_follows_up_and_converts_then_the_manager_sees_it_in_the_feed(browser, site, screenshot):
    from playwright.sync_api import expect

    records = site.platform.records
    pool = records.create("lead_pool", {"name": "华北区线索池", "members": [site.users["wang"]],
                                        "admins": [site.users["zhao"]], "hidden_fields": ["mobile"]},
                          system=True)["id"]
    lead = records.create("lead", {"name": "马超", "company": "苏州远景光电有限公司", "mobile": "13600000001",
                                   "title": "采购经理", "pool": pool})["id"]

    rep = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = rep.new_page()
    login(page, site, "wang")
    click_and_wait(page, page.locator("nav.side").get_by_role("link", name="线索池看板"))
    assert path(page) == "/pools"
    assert page.locator(".pool-picker a[aria-current=page]").inner_text() == "华北区线索池"
    assert page.locator("p.summary .total").inner_text() == "待领取 1 条"
    assert board_rows(page)[0][:3] == ["马超", "苏州远景光电有限公司", "136****0001"]  # masked while it waits
    screenshot(page, "pool-board")

    click_and_wait(page, page.get_by_role("button", name="领取 马超"))
    assert flashes(page) == ["领取：成功 1 条，失败 0 条"]
    assert page.locator("table.records tbody td.empty").inner_text() == "线索池中没有待领取的线索"

    click_and_wait(page, page.locator("nav.side").get_by_role("link", name="我的线索"))
    pending = page.locator('.status-tabs a[data-tab="pending"]').inner_text()
    assert pending == "待处理 6"  # the five seeded ones and this one
    screenshot(page, "my-leads")
    click_and_wait(page, page.locator("table.records tbody").get_by_role("link", name="马超"))
    assert path(page) == f"/o/lead/{lead}"
    assert values(page)["手机"] == "13600000001"  # its owner sees it

    page.select_option("#f-follow_up-kind", "call")
    click_and_wait(page, page.get_by_role("button", name="添加跟进"))  # no content: the error is inline
    assert page.locator('.quick-follow-up .field[data-name="follow_up-content"] ul.errors li').all_inner_texts() == [
        "必填"]
    assert page.input_value("#f-follow_up-kind") == "call"
    page.fill("#f-follow_up-content", "电话沟通，客户计划下月采购")
    page.fill("#f-follow_up-next_follow_up_at", "2026-12-01T10:00")
    click_and_wait(page, page.get_by_role("button", name="添加跟进"))
    assert flashes(page) == ["已添加跟进记录"]
    entry = page.locator("section.follow-ups li.entry").first
    assert entry.locator(".content").inner_text() == "电话沟通，客户计划下月采购"
    assert entry.locator(".next").inner_text() == "下次跟进：2026-12-01 10:00"
    assert values(page)["线索状态"] == "跟进中"
    screenshot(page, "lead-with-follow-up")

    click_and_wait(page, page.get_by_role("link", name="转换", exact=True))
    assert path(page) == f"/o/lead/{lead}/convert"
    assert page.locator("h1").inner_text() == "线索转换"
    assert page.input_value("#f-account-name") == "苏州远景光电有限公司"
    assert page.input_value("#f-contact-name") == "马超"
    assert page.input_value("#f-contact-title") == "采购经理"
    page.check('input[name=create][value=opportunity]')
    page.fill("#f-opportunity-name", "远景光电 CRM 项目")
    response = click_and_wait(page, page.get_by_role("button", name="转换", exact=True))  # no amount yet
    assert response.status == 422
    assert page.locator('.part[data-part="opportunity"] .field[data-name="opportunity-amount"] ul.errors li'
                        ).all_inner_texts() == ["必填"]
    assert page.input_value("#f-opportunity-name") == "远景光电 CRM 项目"
    page.fill("#f-opportunity-amount", "80000")
    click_and_wait(page, page.get_by_role("button", name="转换", exact=True))
    assert path(page) == f"/o/lead/{lead}"
    assert flashes(page) == ["转换完成：客户 苏州远景光电有限公司、联系人 马超、商机 远景光电 CRM 项目"]
    shown = values(page)
    assert (shown["线索状态"], shown["转换的客户"], shown["转换的联系人"], shown["转换的商机"]) == (
        "已转换", "苏州远景光电有限公司", "马超", "远景光电 CRM 项目")
    converted = records.get("lead", lead)
    click_and_wait(page, page.locator("dl.values").get_by_role("link", name="苏州远景光电有限公司"))
    assert path(page) == f"/o/account/{converted['converted_account']}"
    expect(page.locator("section.follow-ups li.entry .content")).to_have_text(["电话沟通，客户计划下月采购"])
    rep.close()

    manager = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = manager.new_page()
    login(page, site, "zhao")
    click_and_wait(page, page.locator("nav.side").get_by_role("link", name="工作动态"))
    assert path(page) == "/feed"
    entry = page.locator("ol.timeline li.entry").first
    assert entry.locator(".content").inner_text() == "电话沟通，客户计划下月采购"
    assert entry.locator(".kind").inner_text() == "电话"
    assert entry.locator(".who").inner_text() == "王伟"
    click_and_wait(page, entry.get_by_role("link", name="马超"))
    assert path(page) == f"/o/lead/{lead}"
    manager.close()


def test_campaign_page_imports_leads_with_a_progress_bar_and_a_row_report(page, site):
    records = site.platform.records
    departments = site.departments
    records.create("user", {"username": "ma", "display_name": "马丽", "password": site.password,
                            "roles": ["marketing"], "department": departments["销售部"]}, system=True)
    campaign = records.create("campaign", {"name": "2026 春季展会"}, system=True)["id"]
    login(page, site, "ma")
    page.goto(f"/o/campaign/{campaign}")
    assert page.locator("section.import-panel h2").inner_text() == "导入销售线索"
    csv = "姓名,公司名称,手机\n何静,南京云帆科技,13500000001\n,无名公司,13500000002\n黄磊,合肥天成电子,13500000003\n"
    page.set_input_files("section.import-panel input[type=file]",
                         files=[{"name": "展会线索.csv", "mimeType": "text/csv", "buffer": csv.encode()}])
    click_and_wait(page, page.get_by_role("button", name="开始导入"))
    assert re.fullmatch(r"/imports/import-\d+-[0-9a-f]{32}\?obj=lead&next=.*", path(page))
    assert page.locator("h1").inner_text() == "导入销售线索"
    page.wait_for_selector(".import-report")  # the job runs in a thread; the page reloads once it has finished
    progress = page.locator("section.import-progress progress")
    assert (progress.get_attribute("value"), progress.get_attribute("max")) == ("3", "3")
    assert page.locator(".progress-text").inner_text() == "3 / 3 行 · 已完成"
    assert page.locator(".import-report p.result").inner_text() == "成功导入 2 条，失败 1 条"
    assert page.eval_on_selector_all(
        "table.row-errors tbody tr", "rs => rs.map(r => Array.from(r.cells).map(c => c.innerText.trim()))") == [
        ["3", "姓名：必填"]]
    click_and_wait(page, page.get_by_role("link", name="返回"))
    assert path(page) == f"/o/campaign/{campaign}"
    related = page.locator('section.related[data-related="lead.campaign"] tbody tr a')
    assert sorted(related.all_inner_texts()) == ["何静", "黄磊"]
