"""Each seeded role's home in Chromium, in Chinese and in English: the widgets of its dashboard (kind: dashboard in
objectplatform_crm/report_templates/dashboards.yaml) in their order, each titled in the language chosen, no page
wider than the screen at 390 px; a screenshot of each home at both widths under build/screenshots/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_ui import login

from objectplatform.runtime.rules import run_rules

HOMES = {
    "wang": (["本月新增线索", "本月订单金额", "本月回款", "我的待办", "本月目标", "我的销售漏斗", "今日拜访",
              "我的线索(按状态)"],
             ["New leads this month", "Orders this month", "Payments this month", "My to-dos",
              "My target this month", "My pipeline", "Today's visits", "My leads by status"]),
    "zhao": (["团队本月新增线索", "团队本月订单金额", "团队本季度回款", "待我审批", "被遗忘的线索(7 天未跟进)",
              "团队销售漏斗", "团队目标完成情况", "按员工统计线索"],
             ["Team's new leads this month", "Team's orders this month", "Team's payments this quarter",
              "Approvals waiting", "Forgotten leads (no follow-up in 7 days)", "Team funnel", "Team targets",
              "Leads by owner and status"]),
    "admin": (["本月新增线索", "本月订单金额", "本月回款", "我的待办", "销售漏斗", "订单金额按月", "按状态统计线索",
               "按员工统计线索"],
              ["New leads this month", "Orders this month", "Payments this month", "My to-dos", "Sales funnel",
               "Orders by month", "Leads by status", "Leads by owner and status"]),
}


@pytest.mark.parametrize("username", list(HOMES))
def test_each_roles_home_shows_its_dashboard_in_both_languages(browser, site, screenshot, username):
    context = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        page = context.new_page()
        login(page, site, username)
        titles = page.locator("section.widget:not(.pinned) .widget-head h2")
        chinese, english = HOMES[username]
        assert titles.all_inner_texts() == chinese
        assert cut_widgets(page) == []
        screenshot(page, f"home-{username}-zh")
        page.goto("/lang/en?next=/")
        assert titles.all_inner_texts() == english
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
        assert cut_widgets(page) == []  # a wide report table's rows become cards
        # each chart drawn compact on the phone, its words at least 10 px (the wide drawing shrank them to 5)
        charts = page.evaluate("""[...document.querySelectorAll('section.widget .report-chart svg')]
            .filter(svg => svg.getBoundingClientRect().width > 0)
            .map(svg => [svg.getAttribute('class'),
                         svg.getBoundingClientRect().width / svg.viewBox.baseVal.width
                         * svg.getAttribute('font-size')])""")
        assert charts and all(kind == "chart-compact" and size >= 10 for kind, size in charts), charts
        # no word cut short on the phone: a funnel's stages stand whole over their bars ("Confirm interest · 9")
        cut = page.evaluate("""[...document.querySelectorAll('section.widget .report-chart svg.chart-compact text')]
            .map(t => t.textContent).filter(t => t.includes('…'))""")
        assert cut == []
        page.set_viewport_size({"width": 1400, "height": 900})
        screenshot(page, f"home-{username}-en")
    finally:
        context.close()


def cut_widgets(page) -> list[str]:
    """The titles of the widgets whose table or figures are wider than their box (they would scroll sideways)."""
    return page.evaluate("""[...document.querySelectorAll('section.widget .table-wrap, section.widget .figures')]
        .filter(e => e.scrollWidth > e.clientWidth + 1)
        .map(e => e.closest('section').querySelector('h2').innerText)""")


def test_a_rep_s_many_reminders_are_one_line_and_a_regional_manager_sees_her_process_s_funnel(
        browser, site, screenshot):
    """A week on, 王伟's five leads not followed up give five reminders: his home shows one line, which opens the
    inbox showing just them, at both widths; 钱芳 (华东区) sees the funnel of her department's process."""
    run_rules(site.platform, datetime.now(UTC) + timedelta(days=8), ["lead_follow_up_reminder"])
    context = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        page = context.new_page()
        login(page, site, "wang")
        todos = page.locator("section.widget-todos .todo-items li a")
        assert todos.all_inner_texts() == ["线索跟进提醒：5 条待办"]
        todos.first.click()
        page.wait_for_url("**/todos?rule=lead_follow_up_reminder")
        assert page.locator("p.todo-filter").inner_text() == "仅显示「线索跟进提醒」的待办 · 全部待办"
        assert page.locator("table.todos tbody tr").count() == 5
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "todos-of-a-rule-wang-zh")
        page.goto("/lang/en?next=/")
        assert todos.all_inner_texts() == ["Lead follow-up reminder: 5 to-dos"]
        context.clear_cookies()
        login(page, site, "qian")
        stages = page.evaluate("""[...document.querySelectorAll('section.widget-chart .report-chart svg text')]
            .map(t => t.textContent)""")
        assert [s for s in ("确认客户意向", "产品演示", "引导立项") if any(s in t for t in stages)] == [
            "确认客户意向", "产品演示"]
    finally:
        context.close()


def test_an_empty_funnel_stage_shows_its_name_its_0_and_a_faint_bar_at_both_widths(browser, site, screenshot):
    """赵强's team has one deal, at the first stage: each later stage of his home's funnel still reads whole, with its
    0 and a faint dashed bar at least 24 px wide, at 1400 px (name and count beside the bars) and at 390 px (over
    them)."""
    records = site.platform.records
    account = records.create("account", {"name": "北京星河科技有限公司"}, user=site.users["wang"])["id"]
    records.create("opportunity", {"name": "一期", "account": account, "amount": 1000}, user=site.users["wang"])
    context = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        page = context.new_page()
        login(page, site, "zhao")
        stages = """[...document.querySelectorAll('section.widget-chart')]
            .filter(s => s.querySelector('h2').innerText === '团队销售漏斗')
            .flatMap(s => [...s.querySelectorAll('.report-chart svg')])
            .filter(svg => svg.getBoundingClientRect().width > 0)
            .flatMap(svg => [...svg.querySelectorAll('rect')])
            .map(r => [r.querySelector('title').textContent, Math.round(r.getBoundingClientRect().width),
                       r.getAttribute('fill'), r.getAttribute('stroke-dasharray')])"""
        for width in (1400, 390):
            page.set_viewport_size({"width": width, "height": 900})
            drawn = page.evaluate(stages)
            assert drawn[0][0] == "确认客户意向: 1" and drawn[0][2] != "#f1f5f9", drawn
            empty = drawn[1:]
            assert [name for name, *_ in empty] == ["引导立项: 0", "方案制作: 0", "商务谈判: 0", "赢单: 0"], drawn
            assert all(px >= 24 and fill == "#f1f5f9" and dash == "4 3" for _, px, fill, dash in empty), drawn
        texts = page.evaluate("""[...document.querySelectorAll('section.widget-chart svg.chart-compact text')]
            .map(t => t.textContent)""")
        assert "引导立项 · 0" in texts, texts
        screenshot(page, "funnel-with-empty-stages-zhao-zh")
    finally:
        context.close()
