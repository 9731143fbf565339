"""The report pages in a real browser: a manager opens a report from the navigation, sees the table with its
totals row and the chart, narrows it with a run-time filter, and gets the CSV link for what is shown."""

from __future__ import annotations

from test_ui import click_and_wait, login, path


def table(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "table.report tbody tr, table.report tfoot tr",
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(c => c.innerText.trim()))")


def test_manager_runs_leads_by_owner_and_status_and_filters_it(page, site, screenshot):
    login(page, site, "zhao")
    click_and_wait(page, page.locator("nav.side").get_by_role("link", name="报表"))
    assert path(page) == "/reports"
    screenshot(page, "reports-home")
    click_and_wait(page, page.get_by_role("link", name="按员工统计线索转换情况"))
    assert path(page) == "/reports/leads_by_owner_status"
    # 赵强 sees his own lead and his rep 王伟's five, not 钱芳's team
    assert table(page) == [["王伟", "待处理", "5"], ["赵强", "待处理", "1"], ["合计", "", "6"]]
    assert page.locator("figure.report-chart svg.chart-wide").is_visible()
    screenshot(page, "report-with-chart")
    page.select_option("#filter-source", "referral")
    click_and_wait(page, page.get_by_role("button", name="查询"))
    assert table(page) == [["王伟", "待处理", "3"], ["赵强", "待处理", "1"], ["合计", "", "4"]]
    assert page.get_attribute("a[download]", "href") == \
        "/reports/leads_by_owner_status/export.csv?scene=all&source=referral"


def test_a_manager_builds_runs_and_saves_a_report(page, site, screenshot):
    login(page, site, "zhao")
    page.goto("/reports")
    click_and_wait(page, page.get_by_role("link", name="新建报表"))
    assert path(page) == "/reports/new"
    with page.expect_navigation():  # choosing the object reloads the builder for it (no button needed)
        page.select_option("#b-pick-object", "lead")
    assert path(page) == "/reports/new?object=lead"
    # a field is found by typing part of its label, and chosen from the matches
    page.get_by_role("combobox", name="分组（维度） 1").fill("负责")
    page.get_by_role("option", name="销售线索 › 负责人", exact=True).click()
    assert page.input_value("select[name=d0_field]") == "owner"
    page.get_by_role("combobox", name="分组（维度） 2").fill("线索 状态")
    page.get_by_role("option", name="销售线索 › 线索状态", exact=True).click()
    page.select_option("select[name=m0_function]", "count")
    page.fill("input[name=m0_label]", "线索数")
    page.select_option("#b-chart-type", "stacked_bar")
    # the preview follows the form without a click
    page.locator("#report-preview figure.report-chart svg.chart-wide").wait_for()
    assert table(page) == [["王伟", "待处理", "5"], ["赵强", "待处理", "1"], ["合计", "", "6"]]
    screenshot(page, "builder-preview")
    click_and_wait(page, page.get_by_role("button", name="查询"))  # the same run as a page
    assert table(page) == [["王伟", "待处理", "5"], ["赵强", "待处理", "1"], ["合计", "", "6"]]
    assert page.locator("figure.report-chart svg.chart-wide").is_visible()
    page.fill("#b-name", "my_team_leads")
    page.fill("#b-label-zh", "我团队的线索")
    click_and_wait(page, page.get_by_role("button", name="保存为我的报表"))
    assert path(page) == "/reports/my_team_leads"
    assert table(page) == [["王伟", "待处理", "5"], ["赵强", "待处理", "1"], ["合计", "", "6"]]
    page.goto("/reports")
    assert page.locator("section[data-folder=mine] a[data-report=my_team_leads]").inner_text() == "我团队的线索"
    # the filter box hides the reports and folders that do not match as one types
    page.fill("#report-q", "回款统计")
    assert page.eval_on_selector_all("section.report-folder:not([hidden]) li:not([hidden]) .title",
                                     "items => items.map(i => i.innerText)") == ["回款统计(按月)", "回款统计(按季度)"]


def test_a_ten_column_report_fits_a_desktop_its_long_headers_over_two_lines(page, site, screenshot):
    """Target achievement by employee has ten columns: at 1,400 px, in English, its table fits its frame (no
    sideways scroll), a long header such as "Payments achieved (%)" going over two lines, the figures each on one
    line."""
    for period in ("2026-11", "2026-12"):
        site.platform.records.create("sales_target", {"user": site.users["wang"], "period": period,
                                                      "order_amount": 8000000, "payment_amount": 5000000}, system=True)
    login(page, site, "zhao")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto("/lang/en?next=/reports/target_achievement_employee")
    assert [row[:3] for row in table(page)] == [["王伟", "2026-11", "8,000,000.00"],
                                                ["王伟", "2026-12", "8,000,000.00"], ["Total", "", "16,000,000.00"]]
    frame = page.locator(".table-wrap:has(table.report)").first
    assert frame.evaluate("e => e.scrollWidth <= e.clientWidth"), frame.evaluate("e => [e.scrollWidth, e.clientWidth]")
    headers = page.locator("table.report thead th")
    assert headers.count() == 10
    assert page.locator("table.report td").first.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
    screenshot(page, "target-achievement-employee")
