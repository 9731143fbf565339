"""Role homes (kind: dashboard) and the menu (kind: navigation) on both databases: a small company seeded by hand,
each shipped role's home with its exact figures (KPI against the period before, lists, report widgets, to-dos),
each within the viewer's scope; pinning a report to one's own home; the menu's groups and items per role."""

from __future__ import annotations

import html
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from support import FixedClock
from test_api import PASSWORD, Api
from test_pages import token

from objectplatform.runtime import dashboards, rules
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.workqueue import work_queue
from objectplatform.web import create_app

LAST_MONTH = datetime(2026, 11, 5, 2, 0, tzinfo=UTC)  # within 1–8 November, the same days as 1–8 December
T0 = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai, Tuesday 8 December
MOBILES = iter(range(13900000000, 13900001000))


@pytest.fixture
def people(platform, seeded) -> dict[str, str]:
    """销售部 (boss manages rep1 and rep2), finance, the order approvers, marketing and an administrator."""
    platform.clock = FixedClock(LAST_MONTH)
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]

    def user(username: str, name: str, roles: list[str], **more) -> str:
        values = {"username": username, "display_name": name, "password": PASSWORD, "roles": roles, **more}
        return records.create("user", values, system=True)["id"]

    ids = {
        "admin": user("admin", "管理员", ["admin"]),
        "boss": user("boss", "赵经理", ["sales_manager"], department=sales),
    }
    ids["rep1"] = user("rep1", "王伟", ["sales_rep"], department=sales, manager=ids["boss"])
    ids["rep2"] = user("rep2", "李娜", ["sales_rep"], department=sales, manager=ids["boss"])
    for username, name, role in (
        ("finance", "钱会计", "finance"),
        ("oadmin", "周订单", "order_admin"),
        ("warehouse", "吴仓库", "warehouse"),
        ("mkt", "郑市场", "marketing"),
    ):
        ids[username] = user(username, name, [role])
    return ids


def lead(platform, owner: str, name: str, **values) -> str:
    values = {"name": name, "mobile": str(next(MOBILES)), **values}
    return platform.records.create("lead", values, user=owner, system="status" in values)["id"]


@pytest.fixture
def company(platform, people, seeded) -> dict[str, str]:
    """Leads last month (rep1 2, rep2 1) and this month (rep1 2 pending + 1 following, rep2 2); visits today and
    tomorrow; to-dos for the manager."""
    made = seeded(make_company, people)
    platform.clock.at = T0
    return made


def make_company(platform, people) -> dict[str, str]:
    for name in ("旧线索甲", "旧线索乙"):
        lead(platform, people["rep1"], name)
    lead(platform, people["rep2"], "旧线索丙")
    platform.clock.at = T0
    for name in ("新线索一", "新线索二"):
        lead(platform, people["rep1"], name)
    lead(platform, people["rep1"], "新线索三", status="following")
    for name in ("新线索四", "新线索五"):
        lead(platform, people["rep2"], name)
    records = platform.records
    star = records.create("account", {"name": "星辰科技"}, user=people["rep1"])["id"]
    moon = records.create("account", {"name": "明月商贸"}, user=people["rep2"])["id"]
    for owner, account, subject, at in (
        (people["rep1"], star, "季度回访", "2026-12-08T10:00:00+08:00"),
        (people["rep1"], star, "新品演示", "2026-12-09T10:00:00+08:00"),
        (people["rep2"], moon, "上门拜访", "2026-12-08T15:00:00+08:00"),
    ):
        records.create("visit", {"subject": subject, "account": account, "planned_at": at}, user=owner)
    queue = work_queue(platform)
    with records.transaction() as conn:
        queue.add_todo(
            conn,
            role="sales_manager",
            kind="approval",
            title={"zh": "审批商机阶段「星辰项目」", "en": "Approve the stage of 星辰项目"},
            key="test:approval",
        )
        queue.add_todo(
            conn,
            users=[people["boss"]],
            kind="task",
            title={"zh": "准备周会", "en": "Prepare the weekly"},
            key="test:task",
        )
    return {"star": star, "moon": moon}


@pytest.fixture
def app(platform):
    return create_app(platform)


@pytest.fixture
def api(app, people) -> Api:
    return Api(app.test_client())


def login(client, username: str):
    return client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token(client)})


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def widgets(page: str) -> list[tuple[str, str]]:
    """Each widget of the home as (type, its text as a user reads it)."""
    return [
        (kind, text_of(body))
        for kind, body in re.findall(
            r'<section class="widget widget-(\w+)[^"]*" data-type="\w+">(.*?)</section>', page, re.S
        )
    ]


def home(app, username: str) -> str:
    client = app.test_client()
    login(client, username)
    page = client.get("/")
    assert page.status_code == 200
    return page.text


def access(platform, user_id: str):
    return access_for(platform, user_id)


def test_a_rep_s_home_shows_their_own_figures_only(app, platform, people, company):
    page = home(app, "rep1")
    assert re.search(r"<h1>(.*?)</h1>", page).group(1) == "销售工作台"
    shown = widgets(page)
    assert [kind for kind, _ in shown] == ["kpi", "kpi", "kpi", "todos", "table", "chart", "list", "chart"]
    assert shown[0][1] == "本月新增线索 3 ▲ 50.0% 上月同期 2"
    assert shown[1][1] == "本月订单金额 0 — 上月同期 0"
    assert shown[3][1] == "我的待办 0 没有待办事项 全部待办"
    assert shown[6][1] == "今日拜访 1 拜访主题 客户 计划拜访时间 拜访状态 季度回访 星辰科技 2026-12-08 10:00 计划中"
    rep1 = access(platform, people["rep1"])
    by_status = dashboards.run_widget(platform, dashboards.home_of(platform.metadata, rep1).widgets[7], rep1)
    assert [(r["status"], r["leads"]) for r in by_status.rows] == [("pending", 4), ("following", 1)]
    assert '<div class="report-chart"><svg' in page  # the chart, drawn by the report engine's chart code

    other = widgets(home(app, "rep2"))
    assert other[0][1] == "本月新增线索 2 ▲ 100.0% 上月同期 1"
    assert other[6][1] == "今日拜访 1 拜访主题 客户 计划拜访时间 拜访状态 上门拜访 明月商贸 2026-12-08 15:00 计划中"
    rep2 = access(platform, people["rep2"])
    by_status = dashboards.run_widget(platform, dashboards.home_of(platform.metadata, rep2).widgets[7], rep2)
    assert [(r["status"], r["leads"]) for r in by_status.rows] == [("pending", 3)]


def test_a_report_widget_s_scene_mine_counts_the_viewer_s_own_records_only(platform, people, company):
    """The rep's "my leads by status" (scene: mine) run by the manager counts none of the team's leads, which the
    same report without the scene counts: the widget's scene, not the viewer's reach, decides."""
    boss = access(platform, people["boss"])
    mine = dashboards.home_of(platform.metadata, access(platform, people["rep1"])).widgets[7]
    assert (mine.report, mine.scene) == ("leads_by_status", "mine")
    assert dashboards.run_widget(platform, mine, boss).rows == []
    team = dashboards.run_widget(platform, replace(mine, scene=None), boss)
    assert [(r["status"], r["leads"]) for r in team.rows] == [("pending", 7), ("following", 1)]


def test_a_manager_s_home_adds_up_the_team_and_lists_forgotten_leads_and_approvals(app, platform, people, company):
    page = home(app, "boss")
    shown = widgets(page)
    assert [kind for kind, _ in shown] == ["kpi", "kpi", "kpi", "todos", "list", "chart", "table", "table"]
    assert shown[0][1] == "团队本月新增线索 5 ▲ 66.7% 上月同期 3"
    assert shown[2][1] == "团队本季度回款 0 — 上季度同期 0"
    assert re.sub(r" \d\d-\d\d \d\d:\d\d", "", shown[3][1]) == "待我审批 1 审批商机阶段「星辰项目」 全部待办"
    forgotten = shown[4][1]
    assert forgotten == (
        "被遗忘的线索(7 天未跟进) 3 姓名 公司名称 线索状态 最后跟进时间 负责人 "
        + " ".join(
            f"{name} 待处理 {owner}"
            for name, owner in (("旧线索甲", "王伟"), ("旧线索乙", "王伟"), ("旧线索丙", "李娜"))
        )
    )
    assert shown[7][1] == (
        "按员工统计线索 负责人 线索状态 线索数 李娜 待处理 3 王伟 待处理 4 王伟 跟进中 1 合计 8 查看报表"
    )


@pytest.mark.parametrize(("lang", "expected"), [
    ("zh", "按员工统计线索 负责人 线索状态 线索数 李娜 待处理 3 王伟 待处理 4 合计 8 显示前 2 行，共 3 行 · 查看报表"),
    ("en", "Leads by owner and status Owner Status Leads 李娜 Pending 3 王伟 Pending 4 Total 8 Showing 2 of 3 · "
           "Open the report"),
], ids=["zh", "en"])
def test_a_table_widget_showing_its_first_rows_says_how_many_the_report_has(
        app, platform, people, company, monkeypatch, lang, expected):
    boss = access(platform, people["boss"])
    home_page = dashboards.home_of(platform.metadata, boss)
    by_owner = replace(home_page.widgets[7], limit=2)
    result = dashboards.run_widget(platform, by_owner, boss)
    assert [(r["owner"], r["status"], r["leads"]) for r in result.rows] == [
        ("李娜", "pending", 3), ("王伟", "pending", 4)]
    assert (result.all_rows, result.totals["leads"]) == (3, 8)  # the totals row counts every row, shown or not
    assert dashboards.run_widget(platform, replace(by_owner, limit=3), boss).all_rows is None  # all shown
    widgets_now = (*home_page.widgets[:7], by_owner)
    monkeypatch.setattr(platform, "metadata", replace(platform.metadata, dashboards={
        **platform.metadata.dashboards, home_page.name: replace(home_page, widgets=widgets_now)}))
    client = app.test_client()
    login(client, "boss")
    if lang == "en":
        client.get("/lang/en")
    assert widgets(client.get("/").text)[7][1] == expected


def test_a_kpi_compares_with_the_period_before_exactly(platform, people, company):
    boss = access(platform, people["boss"])
    kpi = dashboards.run_widget(platform, dashboards.home_of(platform.metadata, boss).widgets[0], boss)
    assert (kpi.value, kpi.previous, str(kpi.change)) == (5, 3, "66.7")
    platform.clock.at = datetime(2027, 1, 11, 2, 0, tzinfo=UTC)  # 1–11 January against 1–11 December: 0 and 5
    kpi = dashboards.run_widget(platform, dashboards.home_of(platform.metadata, boss).widgets[0], boss)
    assert (kpi.value, kpi.previous, str(kpi.change)) == (0, 5, "-100.0")
    platform.clock.at = datetime(2027, 1, 7, 2, 0, tzinfo=UTC)  # 1–7 December holds none of the 5 (made on the 8th)
    kpi = dashboards.run_widget(platform, dashboards.home_of(platform.metadata, boss).widgets[0], boss)
    assert (kpi.value, kpi.previous, kpi.change) == (0, 0, None)


def test_a_kpi_compares_a_month_under_way_with_the_same_days_of_the_month_before(platform, people, company):
    """On 8 December, a lead made on 20 November is not in the comparison: 1–8 December against 1–8 November."""
    platform.clock.at = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    lead(platform, people["rep1"], "月底线索")
    platform.clock.at = T0
    rep1 = access(platform, people["rep1"])
    kpi = dashboards.run_widget(platform, dashboards.home_of(platform.metadata, rep1).widgets[0], rep1)
    assert (kpi.value, kpi.previous, str(kpi.change)) == (3, 2, "50.0")
    platform.clock.at = datetime(2026, 12, 31, 2, 0, tzinfo=UTC)  # 1–31 December against all of November's 30 days
    kpi = dashboards.run_widget(platform, dashboards.home_of(platform.metadata, rep1).widgets[0], rep1)
    assert (kpi.value, kpi.previous, str(kpi.change)) == (3, 3, "0.0")


def test_a_rule_s_many_reminders_are_one_line_of_the_home_and_of_the_inbox(app, platform, people, company):
    """rep1's five leads of 5 November not followed up: the reminder rule's five to-dos are one line linking to the
    inbox showing only them; rep2's one reminder stays a line of its own."""
    platform.clock.at = LAST_MONTH
    for name in ("旧线索丁", "旧线索戊", "旧线索己"):
        lead(platform, people["rep1"], name, company="星辰科技")
    platform.clock.at = T0
    rules.run_rules(platform, T0, ["lead_follow_up_reminder"])
    rep1 = access(platform, people["rep1"])
    todos = dashboards.run_widget(platform, dashboards.home_of(platform.metadata, rep1).widgets[3], rep1)
    assert [(g.rule, g.object, g.count) for g in todos.groups] == [("lead_follow_up_reminder", "lead", 5)]
    assert (todos.items, todos.total) == ([], 5)
    page = home(app, "rep1")
    assert re.sub(r" \d\d-\d\d \d\d:\d\d", "", widgets(page)[3][1]) == "我的待办 5 线索跟进提醒：5 条待办 全部待办"
    assert '<a href="/todos?rule=lead_follow_up_reminder">线索跟进提醒：5 条待办</a>' in page
    assert re.sub(r" \d\d-\d\d \d\d:\d\d", "", widgets(home(app, "rep2"))[3][1]) == (
        "我的待办 1 跟进线索「旧线索丙」（） 全部待办")

    client = app.test_client()
    login(client, "rep1")
    inbox = client.get("/todos").text
    assert "共 5 项" in inbox
    assert re.findall(r'<tr class="todo-group">\s*<td><a href="([^"]+)">([^<]+)</a>', inbox) == [
        ("/todos?rule=lead_follow_up_reminder", "线索跟进提醒：5 条待办")]
    only = client.get("/todos?rule=lead_follow_up_reminder").text
    assert "仅显示「线索跟进提醒」的待办" in only
    assert sorted(re.findall(r"跟进线索「(\w+)」（星辰科技）", only)) == ["旧线索丁", "旧线索己", "旧线索戊"]
    assert len(re.findall(r'<tr data-id="\d+">', only)) == 5


def test_a_rule_s_many_notifications_are_one_line_of_the_bell_s_page(app, platform, people, company):
    """rep1's five follow-up reminders are one unread line of /notifications linking to them, the bell still
    counting each; marking them read there marks only them, and the line is gone."""
    platform.clock.at = LAST_MONTH
    for name in ("旧线索丁", "旧线索戊", "旧线索己"):
        lead(platform, people["rep1"], name, company="星辰科技")
    platform.clock.at = T0
    rules.run_rules(platform, T0, ["lead_follow_up_reminder"])
    groups = work_queue(platform).notification_groups(people["rep1"])
    assert [(g.rule, g.object, g.count) for g in groups] == [("lead_follow_up_reminder", "lead", 5)]
    assert work_queue(platform).notification_groups(people["rep2"]) == []  # one reminder stays a line of its own

    client = app.test_client()
    login(client, "rep1")
    line = r'<li class="unread notification-group">\s*<span class="when">[^<]+</span>\s*<a href="([^"]+)">([^<]+)</a>'
    bell = client.get("/notifications").text
    assert re.findall(line, bell) == [("/notifications?rule=lead_follow_up_reminder", "线索跟进提醒：5 条")]
    assert re.findall(r'<span class="count">([^<]+)</span>', bell) == ["5", "5 条未读"]  # the bell, the page
    assert "已 7 天未跟进" not in bell
    only = client.get("/notifications?rule=lead_follow_up_reminder").text
    assert "仅显示「线索跟进提醒」的消息" in only
    assert sorted(re.findall(r"线索「(\w+)」（星辰科技）已 7 天未跟进", only)) == ["旧线索丁", "旧线索己", "旧线索戊"]
    assert len(re.findall(r'<li class="unread" data-id="\d+">', only)) == 5
    client.get("/lang/en")
    assert re.findall(line, client.get("/notifications").text) == [
        ("/notifications?rule=lead_follow_up_reminder", "Lead follow-up reminder: 5 notifications")]

    done = client.post("/notifications/read", data={"csrf_token": token(client), "rule": "lead_follow_up_reminder"})
    assert done.headers["Location"] == "/notifications?rule=lead_follow_up_reminder"
    assert work_queue(platform).unread_count(people["rep1"]) == 0
    assert work_queue(platform).unread_count(people["rep2"]) == 1
    bell = client.get("/notifications").text
    assert re.findall(line, bell) == []
    assert len(re.findall(r'<li class="read" data-id="\d+">', bell)) == 5

def test_a_rule_s_120_to_dos_and_notifications_are_paged_50_at_a_time_every_one_reached(app, platform, people):
    """120 follow-up reminders for rep1 (three at each minute, so ties fall back on the id): the inbox and the bell's
    page of the rule say 120 and show them 50, 50 and 20 a page, newest first, each once, with links to the next,
    previous and first pages; one ticked done on the second page leads back to it; the unfiltered inbox's first
    page holds the rule's one line and says 119 too."""
    queue = work_queue(platform)
    with platform.records.transaction() as conn:
        for i in range(120):
            at = T0 - timedelta(minutes=i // 3)
            title = {"zh": f"提醒 {i:03d}", "en": f"Reminder {i:03d}"}
            queue.add_todo(conn, users=[people["rep1"]], kind="reminder", title=title,
                           key=f"rule:lead_follow_up_reminder:{i}", now=at)
            queue.notify(conn, [people["rep1"]], title, key=f"rule:lead_follow_up_reminder:{i}", now=at)
    client = app.test_client()
    login(client, "rep1")
    newest_first = sorted((f"提醒 {i:03d}" for i in range(120)), key=lambda t: (int(t[3:]) // 3, -int(t[3:])))
    for path, row, count in (("/todos?rule=lead_follow_up_reminder", r'<tr data-id="\d+">\s*<td>(提醒 \d+)',
                              "共 120 项"),
                             ("/notifications?rule=lead_follow_up_reminder",
                              r'<li class="unread" data-id="\d+">\s*<span class="when">[^<]+</span>\s*<span>(提醒 \d+)',
                              "共 120 条")):
        seen, pages, url = [], [], path
        while url:
            page = client.get(url).text
            assert count in page
            seen += re.findall(row, page)
            links = dict((name, html.unescape(href)) for href, name in re.findall(
                r'<a href="([^"]+)"(?: rel="\w+")?>(第一页|上一页|下一页)</a>', page))
            pages.append((len(re.findall(row, page)), re.findall(r"第 (\d) 页", page), sorted(links)))
            url = links.get("下一页")
        assert seen == newest_first, path
        assert pages == [(50, ["1", "1"], ["下一页"]), (50, ["2", "2"], ["上一页", "下一页", "第一页"]),
                         (20, ["3", "3"], ["上一页", "第一页"])], path
        back = client.get(links["上一页"]).text
        assert re.findall(row, back) == newest_first[50:100]
    # a to-do ticked done on the rule's second page leads back to that page, one fewer
    first = client.get("/todos?rule=lead_follow_up_reminder").text
    second = html.unescape(re.search(r'<a href="([^"]+)" rel="next">', first).group(1))
    assert html.unescape(re.search(r'name="next" value="([^"]+)"', client.get(second).text).group(1)) == second
    todo_id = re.search(r'<tr data-id="(\d+)">', client.get(second).text).group(1)
    done = client.post(f"/todos/{todo_id}/done", data={"csrf_token": token(client), "next": second})
    assert done.headers["Location"] == second
    assert "共 119 项" in client.get(second).text
    inbox = client.get("/todos").text
    assert "共 119 项" in inbox and "下一页" not in inbox
    assert re.findall(r'<tr class="todo-group">\s*<td><a href="([^"]+)">([^<]+)</a>', inbox) == [
        ("/todos?rule=lead_follow_up_reminder", "线索跟进提醒：119 条待办")]


def test_finance_sees_payments_to_confirm_the_outstanding_and_invoices_to_issue(api, app, platform, people, company):
    records = platform.records
    product = records.create("product", {"name": "笔记本电脑", "price": "1000"}, system=True)["id"]
    status, order = api.post(
        "/objects/sales_order/records",
        "rep1",
        {
            "account": company["star"],
            "order_discount": 10,
            "order_date": "2026-12-05",
            "order_line": [{"product": product, "quantity": 3, "unit_price": "1000"}],
        },
    )
    assert status == 201, order
    status, body = api.post(f"/objects/sales_order/records/{order['id']}/actions/submit", "rep1", {})
    assert status == 200, body
    for who in ("oadmin", "finance", "warehouse"):
        assert api.post(f"/approvals/{body['approval']['id']}/approve", who, {"comment": "同意"})[0] == 200
    paid = []
    for amount, day in (("500", "2026-11-20"), ("1000", "2026-12-06"), ("300", "2026-12-07")):
        status, payment = api.post(
            "/objects/payment/records", "rep1", {"sales_order": order["id"], "amount": amount, "paid_on": day}
        )
        assert status == 201, payment
        paid.append(payment)
    for payment in paid[:2]:
        status, body = api.post(f"/objects/payment/records/{payment['id']}/actions/confirm_payment", "finance", {})
        assert status == 200, body
    status, invoice = api.post(
        "/objects/invoice/records", "rep1", {"sales_order": order["id"], "amount": "1500", "title": "星辰科技有限公司"}
    )
    assert status == 201, invoice
    status, body = api.post(f"/objects/invoice/records/{invoice['id']}/actions/submit", "rep1", {})
    assert status == 200, body

    page = home(app, "finance")
    shown = widgets(page)
    assert [kind for kind, _ in shown] == ["kpi", "kpi", "todos", "list", "list", "table"]
    assert shown[0][1] == "本月回款 1,500.00 — 上月同期 0"  # by the month finance confirmed them (both today)
    assert shown[1][1] == "待回款总额 1,200.00"
    assert shown[3][1] == (
        f"待确认回款 1 回款编号 销售订单 回款金额 回款日期 负责人 {paid[2]['payment_no']} "
        f"{order['order_no']} 300.00 2026-12-07 王伟"
    )
    assert shown[4][1] == f"待开票申请 1 申请编号 发票抬头 开票金额 {invoice['invoice_no']} 星辰科技有限公司 1,500.00"
    # amounts right-aligned like a report's: the header and the cell of each number column
    to_confirm = re.search(r'data-type="list">(.*?)</section>', page, re.S).group(1)
    assert re.findall(r'<th scope="col"( class="num")?>(.*?)</th>', to_confirm) == [
        ("", "回款编号"), ("", "销售订单"), (' class="num"', "回款金额"), ("", "回款日期"), ("", "负责人")]
    assert '<td class="num">300.00</td>' in to_confirm
    assert shown[5][1] == "应收账款(按客户) 客户 订单数 待回款金额 星辰科技 1 1,200.00 合计 1 1,200.00 查看报表"
    rep_orders = widgets(home(app, "rep1"))[1][1]
    assert rep_orders == "本月订单金额 2,700.00 — 上月同期 0"
    assert widgets(home(app, "rep2"))[1][1] == "本月订单金额 0 — 上月同期 0"  # rep1's order is not rep2's


def test_the_other_shipped_roles_have_their_homes(app, people, company):
    assert [text.split(" ")[0] for _, text in widgets(home(app, "admin"))] == [
        "本月新增线索",
        "本月订单金额",
        "本月回款",
        "我的待办",
        "销售漏斗",
        "订单金额按月",
        "按状态统计线索",
        "按员工统计线索",
    ]
    assert widgets(home(app, "admin"))[0][1] == "本月新增线索 5 ▲ 66.7% 上月同期 3"
    assert [kind for kind, _ in widgets(home(app, "oadmin"))] == ["todos", "list"]
    assert widgets(home(app, "oadmin"))[1][1] == "待发货订单 0 暂无记录"
    assert [kind for kind, _ in widgets(home(app, "mkt"))] == ["kpi", "todos", "table"]
    assert widgets(home(app, "mkt"))[0][1] == "本月新增线索 5 ▲ 66.7% 上月同期 3"


def test_a_user_pins_a_report_to_their_own_home_and_unpins_it(app, platform, people, company):
    client = app.test_client()
    login(client, "rep1")
    report = client.get("/reports/leads_by_owner_status").text
    assert "钉到首页" in report and "从首页取下" not in report
    pinned = client.post(
        "/reports/leads_by_owner_status/pin",
        data={"csrf_token": token(client), "next": "/reports/leads_by_owner_status"},
    )
    assert (pinned.status_code, pinned.location) == (302, "/reports/leads_by_owner_status")
    assert "从首页取下" in client.get("/reports/leads_by_owner_status").text
    client.post("/reports/leads_by_owner_status/pin", data={"csrf_token": token(client)})  # twice is once
    page = client.get("/").text
    assert re.findall(r'<section class="widget span-\d pinned" data-report="(\w+)">', page) == ["leads_by_owner_status"]
    assert "我钉住的报表" in page
    assert dashboards.pinned(platform, access(platform, people["rep1"])) == ["leads_by_owner_status"]
    assert dashboards.pinned(platform, access(platform, people["rep2"])) == []
    assert "我钉住的报表" not in home(app, "rep2")
    client.post("/reports/leads_by_owner_status/unpin", data={"csrf_token": token(client)})
    assert "我钉住的报表" not in client.get("/").text
    assert client.post("/reports/no_such_report/pin", data={"csrf_token": token(client)}).status_code == 404
    finance = app.test_client()
    login(finance, "finance")  # finance reads no leads
    assert finance.post("/reports/leads_by_status/pin", data={"csrf_token": token(finance)}).status_code == 403


def menu(page: str) -> list[tuple[str, list[str]]]:
    side = re.search(r'<nav class="side".*?</nav>', page, re.S).group(0)
    groups = re.findall(r'<p class="menu-group" id="menu-\w+">(.*?)</p>\s*<ul [^>]*>(.*?)</ul>', side, re.S)
    return [(label, [text_of(a) for a in re.findall(r"<a [^>]*>(.*?)</a>", items)]) for label, items in groups]


def test_the_menu_follows_the_declared_groups_with_each_role_s_items(app, people):
    assert menu(home(app, "rep1")) == [
        ("线索", ["销售线索", "我的线索", "线索池看板", "工作动态", "跟进记录", "线索池", "市场活动"]),
        ("客户", ["客户", "联系人", "拜访频率"]),
        ("商机", ["商机"]),
        ("拜访", ["拜访", "拜访日历", "今日路线", "拜访路线", "拜访动作", "客户反馈", "竞品信息", "异常拜访"]),
        ("订单与回款", ["销售订单", "回款计划", "回款", "开票申请", "退货单", "退款", "产品", "价格政策", "销售目标"]),
        ("报表", ["报表"]),
        ("设置", ["用户", "部门"]),
    ]
    assert menu(home(app, "finance")) == [
        ("客户", ["客户", "联系人"]),
        ("订单与回款", ["销售订单", "回款计划", "回款", "开票申请", "退货单", "退款", "产品"]),
        ("报表", ["报表"]),
        ("设置", ["用户", "部门"]),
    ]
    assert menu(home(app, "mkt")) == [
        ("线索", ["销售线索", "我的线索", "线索池看板", "工作动态", "跟进记录", "线索池", "市场活动"]),
        ("客户", ["客户"]),
        ("商机", ["商机"]),
        ("订单与回款", ["销售订单", "产品"]),
        ("报表", ["报表"]),
        ("设置", ["用户", "部门"]),
    ]
    admin = menu(home(app, "admin"))
    assert [label for label, _ in admin] == ["线索", "客户", "商机", "拜访", "订单与回款", "报表", "设置"]
    assert admin[-1] == ("设置", ["用户", "部门", "元数据", "回收站"])
    client = app.test_client()
    login(client, "rep1")
    client.get("/lang/en")
    assert [label for label, _ in menu(client.get("/").text)] == [
        "Leads",
        "Accounts",
        "Opportunities",
        "Visits",
        "Orders and payments",
        "Reports",
        "Settings",
    ]
    phone = client.get("/").text
    assert '<details class="menu" open>' in phone and "<summary>" in phone  # a phone folds it (app.js)


def test_the_home_page_s_server_time(app, people, company, backend):
    """Printed, not asserted: the machines are shared."""
    client = app.test_client()
    for username in ("rep1", "boss", "finance", "admin"):
        login(client, username)
        client.get("/")
        started = time.perf_counter()
        for _ in range(5):
            assert client.get("/").status_code == 200
        print(f"home of {username} on {backend}: {(time.perf_counter() - started) / 5 * 1000:.1f} ms")
