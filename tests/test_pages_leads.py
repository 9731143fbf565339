"""The lead pages through Flask's test client, on SQLite and PostgreSQL: the pool board (pools offered,
masked fields, claim and assign with their results), my leads' tab counts, the follow-up timeline and
quick form, the return and convert dialogs with errors by part, the feed's scope and filters, and the
campaign page's import with its report."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from support import FixedClock
from test_pages import PASSWORD, login, token
from test_pages import app as app  # noqa: F401  (fixtures)
from test_pages import client as client  # noqa: F401


@pytest.fixture
def org(platform):
    """销售部 > 华北区 (manager 赵强, reps 王伟 and 刘洋) and 华东区 (manager 钱芳, rep 李娜), an admin,
    a marketing user and a shipper; 华北区线索池 (claimable, cap 1 per member, mobile and email hidden,
    admin 赵强) and 金融行业线索池 (admin-assign only, admin 钱芳)."""
    r = platform.records
    sales = r.create("department", {"name": "销售部"}, system=True)["id"]
    north = r.create("department", {"name": "华北区", "parent": sales}, system=True)["id"]
    east = r.create("department", {"name": "华东区", "parent": sales}, system=True)["id"]
    ids: dict[str, str] = {}

    def user(username, name, role, department, manager=None):
        values = {"username": username, "display_name": name, "password": PASSWORD, "roles": [role],
                  "department": department, **({"manager": ids[manager]} if manager else {})}
        ids[username] = r.create("user", values, system=True)["id"]

    user("admin", "管理员", "admin", sales)
    user("zhao", "赵强", "sales_manager", north)
    user("wang", "王伟", "sales_rep", north, "zhao")
    user("liu", "刘洋", "sales_rep", north, "zhao")
    user("qian", "钱芳", "sales_manager", east)
    user("li", "李娜", "sales_rep", east, "qian")
    user("ma", "马丽", "marketing", sales)
    user("fang", "方芳", "shipper", sales)
    ids["north_pool"] = r.create("lead_pool", {
        "name": "华北区线索池", "members": [ids["wang"], ids["liu"]], "admins": [ids["zhao"]],
        "max_held_per_member": 1, "hidden_fields": ["mobile", "email"]}, system=True)["id"]
    ids["finance_pool"] = r.create("lead_pool", {"name": "金融行业线索池", "claimable": False,
                                                 "admins": [ids["qian"]]}, system=True)["id"]
    return ids


def waiting(platform, pool: str, name: str, mobile: str, **values) -> str:
    """A lead entering `pool` unassigned (created by no one: not routed, not owned)."""
    return platform.records.create("lead", {"name": name, "mobile": mobile, "pool": pool, **values})["id"]


def held(platform, owner: str, name: str, mobile: str, **values) -> str:
    return platform.records.create("lead", {"name": name, "mobile": mobile, "owner": owner, **values},
                                   system=True)["id"]


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def flashes(page: str) -> list[str]:
    return [text_of(m) for m in re.findall(r'<p class="flash [a-z]+" role="status">(.*?)</p>', page, re.S)]


def board_rows(page: str) -> list[list[str]]:
    """The board's rows as their cells' texts (without the selection box and the buttons)."""
    found = []
    for row in re.findall(r'<tr data-id="\d+">(.*?)</tr>', page, re.S):
        cells = re.findall(r'<td[^>]*>(.*?)</td>', row, re.S)
        found.append([text_of(c) for c in cells if "<button" not in c and 'type="checkbox"' not in c])
    return found


def field_errors(page: str, name: str) -> list[str]:
    found = re.search(rf'<ul class="errors" id="e-{re.escape(name)}">(.*?)</ul>', page, re.S)
    return [text_of(e) for e in re.findall(r"<li>(.*?)</li>", found.group(1), re.S)] if found else []


def value_of(page: str, name: str) -> str | None:
    found = re.search(rf'<(?:input|textarea)[^>]*name="{re.escape(name)}"[^>]*?'
                      r'(?:value="([^"]*)"[^>]*>|>([^<]*)</textarea>)', page)
    return html.unescape(found.group(1) if found.group(1) is not None else found.group(2)) if found else None


def post(client, url: str, data: dict | None = None, **kwargs):
    return client.post(url, data={"csrf_token": token(client), **(data or {})}, **kwargs)


def follow_up(platform, user: str, obj: str, record: str, content: str, at: datetime | None = None,
              kind: str = "call") -> str:
    values = {"related_object": obj, "related_id": record, "kind": kind, "content": content,
              **({"followed_at": at} if at else {})}
    return platform.records.create("follow_up", values, user=user)["id"]


# ------------------------------------------------------------------------------------ navigation


def test_navigation_links_of_the_lead_work(client, org):
    login(client, "wang")
    side = re.search(r'<nav class="side".*?</nav>', client.get("/").text, re.S).group(0)
    assert [text_of(a) for a in re.findall(r'<li class="page page-(?:pool_board|my_leads|feed)"><a [^>]*>(.*?)</a>',
                                           side)] == ["我的线索", "线索池看板", "工作动态"]
    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "fang")  # a shipper works no leads and reads no follow-ups
    assert not re.search(r'<li class="page page-(?:pool_board|my_leads|feed)">', client.get("/").text)
    assert client.get("/pools").status_code == 404


# ------------------------------------------------------------------------------------ the pool board


def test_board_offers_the_pools_the_user_may_see_with_hidden_fields_masked(client, platform, org):
    waiting(platform, org["north_pool"], "张伟", "13800000001", email="zw@example.com", company="星河科技")
    waiting(platform, org["north_pool"], "陈静", "13800000002", company="恒信机械")
    waiting(platform, org["finance_pool"], "孙丽", "13900000001", company="华丰银行")

    login(client, "wang")
    board = client.get("/pools").text
    assert re.findall(r'data-pool="(\d+)"', board) == [org["north_pool"]]  # not the admin-assign only pool
    assert text_of(re.search(r'<span class="total">(.*?)</span>', board).group(1)) == "待领取 2 条"
    headers = [text_of(h) for h in re.findall(r'<th scope="col">(.*?)</th>', board, re.S)]
    assert headers == ["姓名", "公司名称", "手机", "线索来源", "市场活动", "意向程度", "创建时间", "操作"]
    rows = board_rows(board)
    assert [r[:3] for r in rows] == [["陈静", "恒信机械", "138****0002"], ["张伟", "星河科技", "138****0001"]]
    assert "zw@example.com" not in board and "13800000001" not in board
    assert "领取所选" in board and "分配所选" not in board  # a member claims; only admins and managers assign
    assert client.get(f"/pools?pool={org['finance_pool']}").status_code == 404
    assert "13800000001" not in client.get("/pools?q=0001").text  # a hidden value finds nothing

    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "zhao")  # the pool's admin sees the values and may assign
    board = client.get(f"/pools?pool={org['north_pool']}").text
    assert [r[:3] for r in board_rows(board)] == [["陈静", "恒信机械", "13800000002"],
                                                   ["张伟", "星河科技", "13800000001"]]
    assert "分配所选" in board

    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "admin")  # a full admin sees every pool
    board = client.get("/pools").text
    assert re.findall(r'data-pool="(\d+)"', board) == [org["north_pool"], org["finance_pool"]]
    assert "仅管理员分配" in board


def test_claiming_a_selection_shows_what_was_claimed_and_why_the_rest_failed(client, platform, org):
    first = waiting(platform, org["north_pool"], "张伟", "13800000001")
    second = waiting(platform, org["north_pool"], "陈静", "13800000002")
    login(client, "wang")
    board_url = f"/pools?pool={org['north_pool']}"
    done = post(client, "/pools/act", {"do": "claim", "ids": [first, second], "next": board_url})
    assert done.status_code == 302 and done.location == board_url
    assert flashes(client.get(board_url).text) == [
        "领取：成功 1 条，失败 1 条",
        "陈静：您已持有“华北区线索池”的 1 条销售线索，达到每人上限 1 条，请先退回或转换"]
    assert (platform.records.get("lead", first)["owner"], platform.records.get("lead", first)["status"]) == (
        org["wang"], "pending")
    assert platform.records.get("lead", second)["owner"] is None

    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "liu")  # the row's own button claims one
    post(client, "/pools/act", {"claim_one": second, "next": board_url})
    page = client.get(board_url).text
    assert flashes(page) == ["领取：成功 1 条，失败 0 条"]
    assert board_rows(page) == []
    assert platform.records.get("lead", second)["owner"] == org["liu"]
    again = post(client, "/pools/act", {"claim_one": first, "next": board_url})  # taken by 王伟 meanwhile
    assert again.status_code == 302
    assert flashes(client.get(board_url).text) == ["领取：成功 0 条，失败 1 条",
                                                   f"#{first}：找不到编号为 {first} 的销售线索"]


def test_admin_assigns_a_selection_spread_over_several_reps(client, platform, org):
    leads = [waiting(platform, org["north_pool"], name, f"1380000000{i}") for i, name in
             enumerate(["张伟", "陈静", "孙丽"], start=1)]
    login(client, "zhao")
    board_url = f"/pools?pool={org['north_pool']}"
    none = post(client, "/pools/act", {"do": "assign", "ids": leads[:1], "next": board_url})
    assert none.status_code == 302 and flashes(client.get(board_url).text) == ["请选择负责人"]
    post(client, "/pools/act", {"do": "assign", "ids": leads, "owners": [org["wang"], org["liu"]], "next": board_url})
    assert flashes(client.get(board_url).text) == ["分配：成功 3 条，失败 0 条"]
    owners = [platform.records.get("lead", i)["owner"] for i in leads]
    assert sorted(owners) == sorted([org["wang"], org["wang"], org["liu"]])  # evenly: 2 and 1
    assert {platform.records.get("lead", i)["status"] for i in leads} == {"pending"}


# ------------------------------------------------------------------------------------ my leads


def test_my_leads_tabs_count_each_status_and_the_forgotten(client, platform, org, monkeypatch):
    wang = org["wang"]
    a = held(platform, wang, "张伟", "13800000001")
    held(platform, wang, "陈静", "13800000002")
    following = held(platform, wang, "孙丽", "13800000003")
    held(platform, wang, "周杰", "13800000004", status="converted")
    held(platform, wang, "吴敏", "13800000005", status="invalid", invalid_reason="空号")
    held(platform, org["liu"], "刘洋的线索", "13800000006")
    start = datetime.now(UTC)
    follow_up(platform, wang, "lead", following, "电话沟通需求", at=start + timedelta(days=5))
    platform.clock = FixedClock(start + timedelta(days=10))

    login(client, "wang")
    page = client.get("/leads/mine").text

    def tabs(text: str) -> dict[str, str]:
        return {key: text_of(label) for key, label in
                re.findall(r'<a href="[^"]*" data-tab="(\w+)"[^>]*>(.*?)</a>', text, re.S)}

    assert tabs(page) == {"pending": "待处理 2", "following": "跟进中 1", "converted": "已转换 1", "invalid": "无效 1",
                          "all": "全部 5", "forgotten": "超过 7 天未跟进 2"}
    assert sorted(r[0] for r in board_rows(page)) == ["张伟", "陈静"]
    forgotten = client.get("/leads/mine?tab=forgotten&days=3").text
    assert tabs(forgotten)["forgotten"] == "超过 3 天未跟进 3"
    assert sorted(r[0] for r in board_rows(forgotten)) == ["孙丽", "张伟", "陈静"]
    assert sorted(r[0] for r in board_rows(client.get("/leads/mine?tab=forgotten").text)) == ["张伟", "陈静"]
    assert sorted(r[0] for r in board_rows(client.get("/leads/mine?tab=all").text)) == [
        "吴敏", "周杰", "孙丽", "张伟", "陈静"]
    assert client.get("/leads/mine?days=0").status_code == 400
    assert a in client.get("/leads/mine?tab=pending").text


# ------------------------------------------------------------------------------------ follow-ups


def test_quick_follow_up_keeps_the_input_on_errors_then_shows_in_the_timeline(client, platform, org):
    lead = held(platform, org["wang"], "张伟", "13800000001")
    login(client, "wang")
    refused = post(client, f"/o/lead/{lead}/follow_ups", {"follow_up-kind": "visit", "follow_up-content": "",
                                                           "follow_up-next_follow_up_at": "2026-12-01T10:00"})
    assert refused.status_code == 422
    assert field_errors(refused.text, "follow_up-content") == ["必填"]
    assert re.search(r'<option value="visit" selected>', refused.text)
    assert value_of(refused.text, "follow_up-next_follow_up_at") == "2026-12-01T10:00"
    assert platform.records.list("follow_up").total == 0

    done = post(client, f"/o/lead/{lead}/follow_ups", {"follow_up-kind": "visit", "follow_up-content": "上门演示产品",
                                                        "follow_up-next_follow_up_at": "2026-12-01T10:00"})
    assert done.status_code == 302 and done.location == f"/o/lead/{lead}#follow-ups"
    page = client.get(f"/o/lead/{lead}").text
    timeline = re.search(r'<section class="follow-ups".*?</section>', page, re.S).group(0)
    entries = re.findall(r'<li class="entry kind-(\w+)"[^>]*>(.*?)</li>', timeline, re.S)
    assert [(kind, text_of(re.search(r'<p class="content multiline">(.*?)</p>', body, re.S).group(1)),
             text_of(re.search(r'<p class="next">(.*?)</p>', body, re.S).group(1))) for kind, body in entries] == [
        ("visit", "上门演示产品", "下次跟进：2026-12-01 10:00")]
    assert "拜访 · 王伟 ·" in text_of(timeline)
    assert platform.records.get("lead", lead)["status"] == "following"


# ------------------------------------------------------------------------------------ dialogs


def test_return_dialog_needs_a_reason(client, platform, org):
    lead = waiting(platform, org["north_pool"], "张伟", "13800000001")
    login(client, "wang")
    post(client, "/pools/act", {"claim_one": lead, "next": "/pools"})
    record = client.get(f"/o/lead/{lead}").text
    assert f'href="/o/lead/{lead}/return" data-action="return"' in record
    dialog = client.get(f"/o/lead/{lead}/return").text
    assert "原线索池（华北区线索池）" in dialog
    refused = post(client, f"/o/lead/{lead}/return", {"reason": "  ", "pool": ""})
    assert refused.status_code == 422 and field_errors(refused.text, "reason") == ["必填"]
    done = post(client, f"/o/lead/{lead}/return", {"reason": "客户暂无需求", "pool": ""})
    assert done.status_code == 302 and done.location == "/leads/mine"
    returned = platform.records.get("lead", lead)
    assert (returned["owner"], returned["status"], returned["pool"], returned["return_reason"]) == (
        None, "unassigned", org["north_pool"], "客户暂无需求")


def test_returning_a_selection_from_the_list_returns_what_may_be_and_says_why_the_rest_failed(client, platform, org):
    """The list page's bulk return (the set-based bulk action): 王伟's two leads of 华北区线索池 go back to it, his
    lead without a pool and 刘洋's lead (not his to see) are refused, each with its reason."""
    north = org["north_pool"]
    mine = [held(platform, org["wang"], name, f"1380000000{i}", pool=north) for i, name in
            enumerate(["张伟", "陈静"], start=1)]
    no_pool = held(platform, org["wang"], "孙丽", "13800000003")
    theirs = held(platform, org["liu"], "周杰", "13800000004", pool=north)
    login(client, "wang")
    asked = post(client, "/o/lead/bulk", {"action": "return", "ids": [*mine, no_pool, theirs], "next": "/leads/mine"})
    assert asked.status_code == 200 and "已选择 4 条记录" in asked.text and 'name="reason"' in asked.text
    done = post(client, "/o/lead/bulk", {"action": "return", "__params": "1", "ids": [*mine, no_pool, theirs],
                                         "reason": "客户暂无需求", "pool": "", "next": "/leads/mine"})
    assert done.status_code == 302 and done.location == "/leads/mine"
    assert flashes(client.get("/leads/mine").text) == [
        "退回线索池：成功 2 条，失败 2 条", f"记录 {no_pool}：没有所属线索池，请选择一个",
        f"记录 {theirs}：找不到编号为 {theirs} 的销售线索"]
    assert [(r["owner"], r["status"], r["pool"], r["return_reason"]) for r in
            (platform.records.get("lead", i) for i in [*mine, no_pool, theirs])] == [
        (None, "unassigned", north, "客户暂无需求"), (None, "unassigned", north, "客户暂无需求"),
        (org["wang"], "pending", None, None), (org["liu"], "pending", north, None)]


def test_convert_dialog_proposes_the_mapping_shows_errors_by_part_and_converts(client, platform, org):
    wang = org["wang"]
    lead = held(platform, wang, "张伟", "13800000001", company="星河科技", phone="010-88886666",
                email="zw@example.com", title="采购经理")
    match = platform.records.create("account", {"name": "星河科技", "phone": "010-12345678"}, user=wang)["id"]
    follow_up(platform, wang, "lead", lead, "第一次电话沟通")
    login(client, "wang")
    record = client.get(f"/o/lead/{lead}").text
    assert f'href="/o/lead/{lead}/convert" data-action="convert"' in record

    dialog = client.get(f"/o/lead/{lead}/convert").text
    assert value_of(dialog, "account-name") == "星河科技"
    assert value_of(dialog, "account-phone") == "010-88886666"
    assert value_of(dialog, "contact-name") == "张伟"
    assert value_of(dialog, "contact-email") == "zw@example.com"
    assert value_of(dialog, "opportunity-name") == "星河科技"
    assert re.search(rf'name="account_choice" value="{match}"', dialog)
    assert "星河科技</strong> · 010-12345678 · 王伟" in dialog

    form = {"account_choice": "new", "account-name": "星河科技（北京）", "account-phone": "010-88886666",
            "create": ["contact", "opportunity"], "contact-name": "张伟", "contact-email": "not-an-email",
            "opportunity-name": "星河科技 CRM 项目", "opportunity-amount": ""}
    refused = post(client, f"/o/lead/{lead}/convert", form)
    assert refused.status_code == 422
    assert field_errors(refused.text, "contact-email") == ["邮箱格式不正确"]
    assert value_of(refused.text, "account-name") == "星河科技（北京）"  # what was typed is kept
    assert value_of(refused.text, "contact-email") == "not-an-email"
    assert platform.records.list("account").total == 1  # all or nothing: no account made
    assert platform.records.get("lead", lead)["status"] == "following"

    form.update({"contact-email": "zhangwei@example.com", "opportunity-amount": "120000"})
    done = post(client, f"/o/lead/{lead}/convert", form)
    assert done.status_code == 302 and done.location == f"/o/lead/{lead}"
    converted = platform.records.get("lead", lead)
    assert converted["status"] == "converted"
    account = platform.records.get("account", converted["converted_account"])
    contact = platform.records.get("contact", converted["converted_contact"])
    opportunity = platform.records.get("opportunity", converted["converted_opportunity"])
    assert (account["name"], contact["email"], contact["account"], opportunity["amount"]) == (
        "星河科技（北京）", "zhangwei@example.com", account["id"], 120000)
    page = client.get(f"/o/lead/{lead}").text
    assert flashes(page) == ["转换完成：客户 星河科技（北京）、联系人 张伟、商机 星河科技 CRM 项目"]
    assert f'<a href="/o/account/{account["id"]}">星河科技（北京）</a>' in page

    account_page = client.get(f"/o/account/{account['id']}").text  # the lead's follow-ups are seen from it
    timeline = re.search(r'<section class="follow-ups".*?</section>', account_page, re.S).group(0)
    assert "第一次电话沟通" in timeline and f'<a href="/o/lead/{lead}">张伟</a>' in timeline

    again = post(client, f"/o/lead/{lead}/convert", form)  # a lead converts once
    assert again.status_code == 409 and "当前状态为“已转换”，不能执行此操作" in again.text


def test_convert_dialog_attaches_a_suggested_account(client, platform, org):
    wang = org["wang"]
    lead = held(platform, wang, "张伟", "13800000001", company="星河科技")
    match = platform.records.create("account", {"name": "星河科技"}, user=wang)["id"]
    login(client, "wang")
    done = post(client, f"/o/lead/{lead}/convert", {"account_choice": match, "account-name": "星河科技"})
    assert done.status_code == 302
    converted = platform.records.get("lead", lead)
    assert (converted["converted_account"], converted["converted_contact"], converted["converted_opportunity"]) == (
        match, None, None)
    assert platform.records.list("account").total == 1


# ------------------------------------------------------------------------------------ the feed


def test_feed_shows_the_follow_ups_below_the_manager_filtered_by_person_and_record(client, platform, org):
    wang_lead = held(platform, org["wang"], "张伟", "13800000001")
    liu_lead = held(platform, org["liu"], "陈静", "13800000002")
    li_lead = held(platform, org["li"], "周杰", "13800000003")
    t = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    follow_up(platform, org["wang"], "lead", wang_lead, "王伟第一次电话", at=t)
    follow_up(platform, org["liu"], "lead", liu_lead, "刘洋微信沟通", at=t + timedelta(hours=1), kind="wechat")
    follow_up(platform, org["wang"], "lead", wang_lead, "王伟上门拜访", at=t + timedelta(hours=2), kind="visit")
    follow_up(platform, org["li"], "lead", li_lead, "李娜的跟进", at=t + timedelta(hours=3))

    def contents(page: str) -> list[str]:
        return [text_of(c) for c in re.findall(r'<p class="content multiline">(.*?)</p>', page, re.S)]

    login(client, "zhao")
    feed = client.get("/feed").text
    assert contents(feed) == ["王伟上门拜访", "刘洋微信沟通", "王伟第一次电话"]  # newest first, not 华东区's
    assert f'<a href="/o/lead/{wang_lead}">张伟</a>' in feed
    assert contents(client.get(f"/feed?owner={org['wang']}").text) == ["王伟上门拜访", "王伟第一次电话"]
    assert contents(client.get(f"/feed?object=lead&record={liu_lead}").text) == ["刘洋微信沟通"]
    assert contents(client.get(f"/feed?object=lead&record={li_lead}").text) == []

    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "wang")
    assert contents(client.get("/feed").text) == ["王伟上门拜访", "王伟第一次电话"]


def test_feed_pages_by_cursor(client, platform, org, monkeypatch):
    from objectplatform.web import pages_follow_ups

    monkeypatch.setattr(pages_follow_ups, "FEED_SIZE", 2)
    lead = held(platform, org["wang"], "张伟", "13800000001")
    t = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    for i in range(3):
        follow_up(platform, org["wang"], "lead", lead, f"第{i + 1}次", at=t + timedelta(hours=i))
    login(client, "zhao")
    first = client.get("/feed").text
    assert re.findall(r'<p class="content multiline">(.*?)</p>', first) == ["第3次", "第2次"]
    next_url = html.unescape(re.search(r'<a href="([^"]+)" rel="next">', first).group(1))
    assert re.findall(r'<p class="content multiline">(.*?)</p>', client.get(next_url).text) == ["第1次"]


# ------------------------------------------------------------------------------------ campaign import


def test_campaign_page_imports_leads_into_the_campaign_with_a_row_report(client, platform, org):
    campaign = platform.records.create("campaign", {"name": "2026 春季展会"}, user=org["ma"])["id"]
    held(platform, org["wang"], "已有线索", "13800000009")
    login(client, "ma")
    page = client.get(f"/o/campaign/{campaign}").text
    assert "导入销售线索" in page
    csv = "姓名,公司名称,手机\n张伟,星河科技,13800000001\n,无名公司,13800000002\n陈静,恒信机械,13800000009\n"
    started = post(client, f"/o/campaign/{campaign}/import/lead/campaign",
                   {"file": (io.BytesIO(csv.encode()), "leads.csv")}, content_type="multipart/form-data")
    assert started.status_code == 302
    location = started.location
    job_id = re.search(r"/imports/([^?]+)\?", location).group(1)
    platform.jobs.wait(job_id)
    status = client.get(f"/jobs/{job_id}").get_json()
    assert (status["status"], status["progress"], status["result"]["created"], status["result"]["failed"]) == (
        "finished", {"done": 3, "total": 3}, 1, 2)

    report = client.get(location).text
    assert text_of(re.search(r'<p class="result">(.*?)</p>', report, re.S).group(1)) == "成功导入 1 条，失败 2 条"
    rows = {row: text_of(cell) for row, cell in
            re.findall(r'<tr data-row="(\d+)"><td>\d+</td><td>(.*?)</td></tr>', report, re.S)}
    assert rows["3"] == "姓名：必填"
    assert rows["4"].startswith("手机：与销售线索 ")
    imported = platform.records.list("lead", filters={"campaign": campaign}).items
    assert [(r["name"], r["company"]) for r in imported] == [("张伟", "星河科技")]
    assert 'data-related="lead.campaign"' in client.get(f"/o/campaign/{campaign}").text

    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "wang")  # another user's job is unknown to them
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert "导入销售线索" not in client.get(f"/o/campaign/{campaign}").text  # reps do not import


def test_campaign_import_without_a_file_says_so_on_the_page(client, platform, org):
    campaign = platform.records.create("campaign", {"name": "2026 春季展会"}, user=org["ma"])["id"]
    login(client, "ma")
    refused = post(client, f"/o/campaign/{campaign}/import/lead/campaign", {}, content_type="multipart/form-data")
    assert refused.status_code == 400
    assert "请选择要导入的文件" in refused.text
    bad = post(client, f"/o/campaign/{campaign}/import/lead/campaign",
               {"file": (io.BytesIO(b"x"), "leads.txt")}, content_type="multipart/form-data")
    assert bad.status_code == 400 and "不支持的文件类型，请导入 .csv、.xlsx 或 .vcf 文件" in bad.text
