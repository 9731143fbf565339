"""The product in a real browser: sign-in, the generated lead form with inline errors, list filters and
sorting, record pages, stale edits in two tabs, the language switch, data scopes by URL and escaping.

Every assertion is on what a user sees (texts, input values, URLs, statuses); the database is only read
to know the ids and times the pages are expected to show.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from urllib.parse import urlsplit

CST = timezone(timedelta(hours=8))  # the organisation's time, in which the pages show date-times
# a sales rep's navigation: home, the lead work, reports, then every object the role reads but child objects,
# in metadata order
REP_NAV_ZH = ["首页", "我的待办", "销售线索", "我的线索", "线索池看板", "工作动态", "跟进记录", "线索池", "市场活动",
              "客户", "联系人", "拜访频率", "商机", "拜访", "拜访日历", "今日路线", "拜访路线", "拜访动作",
              "客户反馈", "竞品信息", "异常拜访", "销售订单",
              "回款计划", "回款", "开票申请", "退货单", "退款", "产品", "价格政策", "销售目标", "报表", "用户",
              "部门"]  # the navigation's groups in order
REP_NAV_EN = ["Home", "My to-dos", "Leads", "My leads", "Pool board", "Team feed", "Follow-ups", "Lead pools",
              "Campaigns", "Accounts", "Contacts", "Visit frequency", "Opportunities", "Visits", "Visit calendar",
              "Day route", "Visit routes", "Visit actions", "Customer feedback", "Competitor info", "Visit anomalies",
              "Sales orders", "Payment plans", "Payments", "Invoices", "Returns",
              "Refunds", "Products", "Price policies", "Sales targets", "Reports", "Users", "Departments"]


# ------------------------------------------------------------------------------------ helpers


def login(page, site, username: str):
    """Sign in through the login form; returns the response of the page it lands on."""
    if urlsplit(page.url).path != "/login":
        page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", site.password)
    return click_and_wait(page, page.locator("section.login button[type=submit]"))


def click_and_wait(page, locator):
    """Click something that loads a new page; returns that page's response."""
    with page.expect_navigation() as navigation:
        locator.click()
    return navigation.value


def path(page) -> str:
    """The page's URL without the scheme and host."""
    parts = urlsplit(page.url)
    return parts.path + ("?" + parts.query if "?" in page.url else "")


def rows(page) -> list[list[str]]:
    """The list's rows as their cells' texts (without the selection box), in order."""
    return page.eval_on_selector_all(
        "table.records tbody tr[data-id]",
        "rows => rows.map(r => Array.from(r.querySelectorAll('td:not(.select)')).map(c => c.innerText.trim()))")


def values(page) -> dict[str, str]:
    """The record page's labelled values: {label: shown value}."""
    pairs = page.eval_on_selector_all(
        "dl.values > div", "ds => ds.map(d => [d.querySelector('dt').innerText, d.querySelector('dd').innerText])")
    return {label.strip(): value.strip() for label, value in pairs}


def field_errors(page, name: str) -> list[str]:
    """The errors shown inside the form field `name`'s own box."""
    return page.locator(f'.field[data-name="{name}"] ul.errors li').all_inner_texts()


def flashes(page) -> list[str]:
    return [t.strip() for t in page.locator("main > p.flash").all_inner_texts()]


def nav_labels(page) -> list[str]:
    return [t.strip() for t in page.locator("nav.side a").all_inner_texts()]


# ------------------------------------------------------------------------------------ sign-in


def test_login_wrong_password_then_right_one_lands_where_asked(page, site):
    response = page.goto("/o/lead")
    assert path(page) == "/login?next=/o/lead?"
    assert response.status == 200
    assert flashes(page) == ["请先登录"]
    assert page.locator("h1").inner_text() == "登录"

    page.fill("#username", "wang")
    page.fill("#password", "not the password")
    refused = click_and_wait(page, page.locator("section.login button[type=submit]"))
    assert refused.status == 401
    assert page.locator("section.login p.flash.error").inner_text() == "用户名或密码错误，或账号已停用"
    assert page.input_value("#username") == "wang"
    assert page.input_value("#password") == ""

    landed = login(page, site, "wang")
    assert landed.status == 200
    assert path(page) == "/o/lead"
    assert page.locator("header .who").inner_text() == "王伟"
    assert page.locator("h1").inner_text() == "销售线索"
    assert nav_labels(page) == REP_NAV_ZH  # no 元数据: the metadata browser is for administrators

    click_and_wait(page, page.get_by_role("button", name="退出"))
    assert path(page) == "/login"
    page.goto("/o/lead")
    assert path(page) == "/login?next=/o/lead?"


# ------------------------------------------------------------------------------------ the generated form


def test_create_lead_with_inline_errors_then_fixed(page, site):
    login(page, site, "wang")
    page.goto("/o/lead")
    click_and_wait(page, page.get_by_role("link", name="新建销售线索"))
    assert path(page) == "/o/lead/new"
    assert page.locator("h1").inner_text() == "新建销售线索"

    page.fill("#f-company", "苏州远景光电有限公司")
    page.fill("#f-phone", "12ab")
    page.select_option("#f-source", "expo")
    response = click_and_wait(page, page.get_by_role("button", name="保存"))

    assert response.status == 422
    assert path(page) == "/o/lead/new"
    assert page.locator("div.flash.error[role=alert] p").inner_text() == "请修正下面标出的 2 处错误"
    assert field_errors(page, "name") == ["必填"]
    assert field_errors(page, "phone") == ["电话号码格式不正确"]
    assert page.locator(".field.has-error").evaluate_all("fs => fs.map(f => f.dataset.name)") == ["name", "phone"]
    assert page.get_attribute("#f-phone", "aria-invalid") == "true"
    assert page.get_attribute("#f-phone", "aria-describedby") == "e-phone"
    # what the user typed is still there
    assert page.input_value("#f-name") == ""
    assert page.input_value("#f-phone") == "12ab"
    assert page.input_value("#f-company") == "苏州远景光电有限公司"
    assert page.input_value("#f-source") == "expo"

    page.fill("#f-name", "马超")
    page.fill("#f-phone", "0512-6552 8888")
    response = click_and_wait(page, page.get_by_role("button", name="保存"))

    assert response.status == 200
    created = re.fullmatch(r"/o/lead/(\d+)", path(page))
    assert created, path(page)
    assert flashes(page) == ["已创建"]
    assert page.locator("h1").inner_text() == "马超"
    shown = values(page)
    assert {k: shown[k] for k in ("姓名", "公司名称", "电话", "线索来源", "线索状态", "负责人")} == {
        "姓名": "马超", "公司名称": "苏州远景光电有限公司", "电话": "0512-6552 8888", "线索来源": "展会",
        "线索状态": "待处理", "负责人": "王伟"}
    stored = site.platform.records.get("lead", created.group(1))
    assert (stored["name"], stored["company"], stored["phone"], stored["source"], stored["owner"]) == (
        "马超", "苏州远景光电有限公司", "0512-6552 8888", "expo", site.users["wang"])


# ------------------------------------------------------------------------------------ lists


def test_filter_and_sort_the_list(page, site):
    from playwright.sync_api import expect  # here: without playwright, conftest skips (or fails on CI)

    login(page, site, "zhao")  # 华北区's manager: sees his own and his rep 王伟's leads, not 华东区's
    page.goto("/o/lead")
    assert page.locator("p.summary .total").inner_text() == "共 6 条"

    page.select_option("#filter-source", "referral")
    click_and_wait(page, page.get_by_role("button", name="筛选"))
    assert page.locator("p.summary .total").inner_text() == "共 4 条"
    assert page.input_value("#filter-source") == "referral"
    assert sorted(r[0] for r in rows(page)) == ["刘洋", "孙丽", "张伟", "郑浩"]

    page.fill("#filter-owner", "王")  # the owner filter searches users as one types
    suggestion = page.locator(".lookup-results li[role=option]")
    expect(suggestion).to_have_text(["王伟"])  # waits for the suggestions, then wants exactly these
    suggestion.first.click()
    assert page.input_value("#filter-owner") == "王伟"
    click_and_wait(page, page.get_by_role("button", name="筛选"))
    assert page.locator("p.summary .total").inner_text() == "共 3 条"
    assert page.input_value("#filter-owner") == "王伟"
    assert sorted(r[0] for r in rows(page)) == ["刘洋", "孙丽", "张伟"]

    click_and_wait(page, page.locator("table.records thead a", has_text="手机"))
    assert page.get_attribute("table.records thead th[aria-sort]", "aria-sort") == "ascending"
    # columns: name, company, mobile, source, campaign, status, pool, intention, last followed, owner (, created)
    assert [r[:10] for r in rows(page)] == [
        ["刘洋", "天津海岸物流有限公司", "13800000001", "朋友推荐", "", "待处理", "", "", "", "王伟"],
        ["孙丽", "保定华丰纺织有限公司", "13800000002", "朋友推荐", "", "待处理", "", "", "", "王伟"],
        ["张伟", "北京星河科技有限公司", "13800000003", "朋友推荐", "", "待处理", "", "", "", "王伟"],
    ]

    click_and_wait(page, page.locator("table.records thead a", has_text="手机"))
    assert page.get_attribute("table.records thead th[aria-sort]", "aria-sort") == "descending"
    assert [r[0] for r in rows(page)] == ["张伟", "孙丽", "刘洋"]
    assert page.locator("p.summary .total").inner_text() == "共 3 条"  # the filter is kept while sorting
    assert page.input_value("#filter-source") == "referral"


def test_open_a_record_from_the_list(page, site):
    login(page, site, "wang")
    page.goto("/o/lead?sort=mobile")
    assert [r[0] for r in rows(page)] == ["刘洋", "孙丽", "张伟", "陈静", "<script>alert(1)</script>"]
    click_and_wait(page, page.locator("table.records tbody").get_by_role("link", name="陈静", exact=True))
    assert path(page) == f"/o/lead/{site.leads['陈静']}"
    assert page.locator("h1").inner_text() == "陈静"
    assert page.locator("p.crumb").inner_text() == "销售线索"
    shown = values(page)
    assert {k: shown[k] for k in ("姓名", "公司名称", "手机", "线索来源", "线索状态", "负责人", "创建人")} == {
        "姓名": "陈静", "公司名称": "石家庄恒信机械厂", "手机": "13800000005", "线索来源": "官网",
        "线索状态": "待处理", "负责人": "王伟", "创建人": "王伟"}


# ------------------------------------------------------------------------------------ stale edits


def test_stale_edit_in_a_second_tab_names_who_changed_it(context, site):
    first = context.new_page()
    login(first, site, "zhao")  # 华北区's manager, editing his rep's lead in two tabs of one session
    lead_id = site.leads["张伟"]
    second = context.new_page()
    first.goto(f"/o/lead/{lead_id}/edit")
    second.goto(f"/o/lead/{lead_id}/edit")
    assert first.locator("h1").inner_text() == "编辑销售线索：张伟"
    assert second.input_value("input[name=version]") == "1"

    first.fill("#f-title", "采购经理")
    click_and_wait(first, first.get_by_role("button", name="保存"))
    assert path(first) == f"/o/lead/{lead_id}"
    assert flashes(first) == ["已保存"]
    assert values(first)["职务"] == "采购经理"

    second.fill("#f-title", "技术总监")
    second.fill("#f-wechat", "zhangwei_bj")
    response = click_and_wait(second, second.get_by_role("button", name="保存"))
    assert response.status == 409
    saved = site.platform.records.get("lead", lead_id)
    at = saved["updated_at"].astimezone(CST).strftime("%Y-%m-%d %H:%M")
    conflict = second.locator(".flash.conflict[role=alert]")
    assert conflict.locator("strong").inner_text() == "记录已被他人修改"
    assert conflict.locator("p").first.inner_text() == (
        f"赵强 于 {at} 修改了这条记录（当前版本 2）。您的输入仍保留在下方；请重新加载后再修改。")
    assert second.input_value("#f-title") == "技术总监"  # the input is kept
    assert second.input_value("#f-wechat") == "zhangwei_bj"
    assert (saved["version"], saved["title"], saved["wechat"]) == (2, "采购经理", None)  # nothing of it saved

    reload = conflict.get_by_role("link", name="重新加载最新版本")
    assert reload.get_attribute("href") == f"/o/lead/{lead_id}/edit"
    click_and_wait(second, reload)
    assert second.input_value("#f-title") == "采购经理"
    assert second.input_value("input[name=version]") == "2"
    second.fill("#f-wechat", "zhangwei_bj")
    click_and_wait(second, second.get_by_role("button", name="保存"))
    assert path(second) == f"/o/lead/{lead_id}"
    assert (values(second)["职务"], values(second)["微信号"]) == ("采购经理", "zhangwei_bj")


# ------------------------------------------------------------------------------------ languages


def test_switch_to_english_and_back(page, site):
    login(page, site, "wang")
    lead_path = f"/o/lead/{site.leads['陈静']}"
    page.goto(lead_path)
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.locator("p.crumb").inner_text() == "销售线索"
    zh = values(page)
    assert (zh["姓名"], zh["线索来源"], zh["线索状态"]) == ("陈静", "官网", "待处理")
    assert page.get_by_role("link", name="编辑").count() == 1

    click_and_wait(page, page.locator("a.lang-switch"))
    assert path(page) == lead_path
    assert page.get_attribute("html", "lang") == "en"
    assert page.locator("p.crumb").inner_text() == "Lead"
    en = values(page)
    assert (en["Name"], en["Source"], en["Status"], en["Owner"]) == ("陈静", "Website", "Pending", "王伟")
    assert "姓名" not in en
    assert page.locator("a.lang-switch").inner_text() == "中文"
    assert page.get_by_role("link", name="Edit").count() == 1
    assert nav_labels(page) == REP_NAV_EN

    page.goto("/o/lead")  # the choice stays with the session
    assert page.locator("h1").inner_text() == "Leads"
    assert page.locator("p.summary .total").inner_text() == "5 records"

    click_and_wait(page, page.locator("a.lang-switch"))
    assert path(page) == "/o/lead"
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "销售线索"
    assert page.locator("a.lang-switch").inner_text() == "English"
    assert nav_labels(page) == REP_NAV_ZH


# ------------------------------------------------------------------------------------ scopes and escaping


def test_rep_opening_another_teams_lead_by_url_gets_the_404_page(page, site):
    login(page, site, "li")  # 华东区's rep
    own = page.goto(f"/o/lead/{site.leads['周杰']}")
    assert own.status == 200 and page.locator("h1").inner_text() == "周杰"

    for url in (f"/o/lead/{site.leads['张伟']}", f"/o/lead/{site.leads['张伟']}/edit",
                f"/o/lead/{site.leads['张伟']}?tab=history"):
        response = page.goto(url)
        assert response.status == 404, url
        assert page.locator("h1").inner_text() == "404 · 找不到页面或记录"
        assert page.locator("section.error-page p").all_inner_texts()[:2] == [
            f"找不到编号为 {site.leads['张伟']} 的销售线索", "该记录不存在，或您无权查看。"]
        assert "张伟" not in page.content() and "北京星河" not in page.content()
    seen = re.sub(r"编号为 \d+ ", "编号为 N ", page.locator("main").inner_html())
    missing = page.goto("/o/lead/999999")  # a lead that exists and one that does not look the same
    assert missing.status == 404
    assert re.sub(r"编号为 \d+ ", "编号为 N ", page.locator("main").inner_html()) == seen

    page.goto("/o/lead")
    assert sorted(r[0] for r in rows(page)) == ["吴敏", "周杰"]


def test_script_in_a_lead_name_is_shown_as_text(page, site, dialogs):
    name = "<script>alert(1)</script>"
    login(page, site, "wang")
    page.goto("/o/lead?sort=-mobile")
    first = rows(page)[0]
    assert first[:2] == [name, "<b>粗体公司</b>"]
    link = page.locator("table.records tbody tr[data-id] a").first
    assert link.inner_html() == "&lt;script&gt;alert(1)&lt;/script&gt;"

    click_and_wait(page, page.locator("table.records tbody").get_by_role("link", name=name, exact=True))
    assert path(page) == f"/o/lead/{site.leads[name]}"
    assert page.locator("h1").inner_text() == name
    assert page.title() == f"{name} · 销售线索 · 对象平台 CRM"
    assert values(page)["公司名称"] == "<b>粗体公司</b>"
    assert page.locator("main script, main b").count() == 0  # no element made from the values

    page.goto(f"/o/lead/{site.leads[name]}/edit")  # typed back into a form with an error: still text
    page.fill("#f-name", '"><img src=x onerror=alert(2)>')
    page.fill("#f-mobile", "bad")
    assert click_and_wait(page, page.get_by_role("button", name="保存")).status == 422
    assert page.input_value("#f-name") == '"><img src=x onerror=alert(2)>'
    assert page.locator("main img").count() == 0
    assert dialogs == []
