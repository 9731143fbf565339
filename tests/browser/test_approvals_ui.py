"""A stage approval in a real browser: a rep takes an opportunity through the stages of 标准销售流程 from its
page (completing each stage's required tasks with the checklist's buttons and its required fields with the
edit form), asks to enter 商务谈判, which needs the approval of the rep's manager; the manager approves from
the inbox; the rep sees the notification (the bell's count, the notifications page) and the opportunity in
its new stage.

As in test_ui.py, every assertion is on what a user sees; the database is only read to know ids.
"""

from __future__ import annotations

from test_ui import click_and_wait, flashes, login, path

CONTEXT = {"locale": "zh-CN", "timezone_id": "Asia/Shanghai"}


def stages(page) -> list[tuple[str, str]]:
    """The stage path: (stage key, done | current | pending | ahead) in order."""
    return page.eval_on_selector_all(
        "ol.stage-path li.stage",
        "ls => ls.map(l => [l.dataset.stage, Array.from(l.classList).find(c => c !== 'stage')])")


def complete(page, task: str) -> None:
    click_and_wait(page, page.locator(f'button[data-complete="{task}"]'))
    assert flashes(page) == ["完成任务：已完成"]


def edit(page, **values: str) -> None:
    """Fill fields of the record's edit form (a lookup by choosing its one suggestion) and save."""
    from playwright.sync_api import expect

    click_and_wait(page, page.locator(".page-head").get_by_role("link", name="编辑", exact=True))
    for name, value in values.items():
        box = page.locator(f"#f-{name}")
        box.fill(value)
        if "lookup-text" in (box.get_attribute("class") or ""):
            suggestion = page.locator(f'.field[data-name="{name}"] .lookup-results li[role=option]')
            expect(suggestion).to_have_text([value])
            suggestion.first.click()
    click_and_wait(page, page.get_by_role("button", name="保存"))
    assert flashes(page) == ["已保存"]


def advance(page) -> None:
    click_and_wait(page, page.locator('button[data-move="advance"]'))
    assert flashes(page) == ["推进到下一阶段：已完成"]


def test_rep_advances_manager_approves_from_the_inbox_rep_is_notified(browser, site, screenshot):
    from playwright.sync_api import expect

    records = site.platform.records
    wang = site.users["wang"]
    account = records.create("account", {"name": "华信银行"}, user=wang)["id"]
    records.create("contact", {"name": "王建华", "account": account}, user=wang)
    opportunity = records.create("opportunity", {"name": "零售条线CRM项目", "account": account, "amount": "500000"},
                                 user=wang)["id"]
    url = f"/o/opportunity/{opportunity}"

    rep = browser.new_context(base_url=site.url, **CONTEXT)
    page = rep.new_page()
    login(page, site, "wang")
    page.goto(url)
    assert page.locator("section.stages h2").inner_text() == "销售流程：标准销售流程"
    assert stages(page) == [["intent", "current"], ["initiation", "ahead"], ["proposal", "ahead"],
                            ["negotiation", "ahead"], ["closing", "ahead"]]
    assert page.locator('li[data-stage="negotiation"] .tag').inner_text() == "需审批"
    assert page.locator(".stage-missing li").all_inner_texts() == ["完成任务“电话沟通需求”", "填写“联系人”"]
    assert page.locator("button[data-move]").all_inner_texts() == ["输单", "标记无效"]  # no advance yet

    complete(page, "first_call")
    edit(page, contact="王建华")
    assert page.locator(".stage-ready").inner_text() == "本阶段的必做事项已完成"
    advance(page)
    assert stages(page)[:2] == [["intent", "done"], ["initiation", "current"]]

    complete(page, "meet_executive")
    edit(page, budget="600000", expected_close_date="2026-12-31")
    advance(page)
    complete(page, "submit_proposal")
    edit(page, customer_address="北京市西城区金融大街8号")
    advance(page)  # into 商务谈判: it waits for 赵强, 王伟's manager
    assert stages(page) == [["intent", "done"], ["initiation", "done"], ["proposal", "current"],
                            ["negotiation", "pending"], ["closing", "ahead"]]
    waiting = page.locator('li[data-stage="negotiation"] a.pending-approval')
    assert waiting.inner_text() == "待审批"
    assert page.locator("p.stage-pending").inner_text() == "等待审批后进入“商务谈判” 查看审批"
    assert page.locator("button[data-move]").all_inner_texts() == ["输单", "标记无效"]
    approval = page.locator("section.approvals article.approval").first
    anchor = approval.get_attribute("id")
    assert waiting.get_attribute("href") == f"#{anchor}"
    waiting.click()
    expect(approval).to_be_in_viewport()
    assert approval.locator("h3").inner_text() == "阶段审批：商务谈判"
    assert approval.locator(".approval-status").inner_text() == "审批中"
    step = approval.locator("li.step.current")
    assert step.locator(".name").inner_text() == "进入阶段 商务谈判"
    assert [step.locator(f".approvers li {c}").all_inner_texts() for c in (".who", ".decision")] == [
        ["赵强"], ["未审批"]]
    assert approval.locator("form.approval-decide").count() == 0  # the rep cannot decide it
    screenshot(page, "opportunity-waiting-for-approval")
    assert page.locator("a.bell .count").inner_text() == "0"
    rep.close()

    manager = browser.new_context(base_url=site.url, **CONTEXT)
    page = manager.new_page()
    login(page, site, "zhao")
    assert page.locator("section.widget-todos .count").inner_text() == "1"  # 待我审批 on the manager's home
    click_and_wait(page, page.locator("nav.side").get_by_role("link", name="我的待办"))
    assert path(page) == "/todos"
    row = page.locator("table.todos tbody tr")
    expect(row).to_have_count(1)
    title = row.locator("td").first.get_by_role("link").first
    assert title.inner_text() == "审批：零售条线CRM项目 进入阶段 商务谈判"
    context = row.locator(".todo-context")  # what the approval is about, from the opportunity's list columns
    assert list(zip(context.locator("dt").all_inner_texts(), context.locator("dd").all_inner_texts(), strict=True)) == [
        ("客户", "华信银行"), ("商机金额", "500,000.00"), ("销售阶段", "方案制作"), ("赢率", "60%")]
    assert row.locator("td").nth(1).inner_text() == "审批"
    assert row.get_by_role("link", name="查看").get_attribute("href") == f"{url}#{anchor}"
    screenshot(page, "manager-inbox")
    row.get_by_role("textbox", name="审批意见").fill("同意，注意报价底线")
    click_and_wait(page, row.get_by_role("button", name="同意"))
    assert flashes(page) == ["已同意：零售条线CRM项目 进入阶段 商务谈判"]
    expect(page.locator("table.todos tbody tr")).to_have_count(0)
    assert page.locator("p.empty").inner_text() == "没有待办事项"
    manager.close()

    rep = browser.new_context(base_url=site.url, **CONTEXT)
    page = rep.new_page()
    login(page, site, "wang")
    bell = page.locator("a.bell")
    assert bell.locator(".count").inner_text() == "1"
    assert bell.get_attribute("title") == "消息通知，1 条未读"
    click_and_wait(page, bell)
    assert path(page) == "/notifications"
    entry = page.locator("ul.notifications li.unread")
    expect(entry).to_have_count(1)
    message = "零售条线CRM项目 进入阶段 商务谈判 已通过：同意，注意报价底线"
    assert entry.locator("a").inner_text() == message
    click_and_wait(page, entry.get_by_role("link", name=message))
    assert path(page) == url
    assert stages(page) == [["intent", "done"], ["initiation", "done"], ["proposal", "done"],
                            ["negotiation", "current"], ["closing", "ahead"]]
    assert page.locator("ol.stage-path .pending-approval").count() == 0
    assert page.locator(".stage-missing li").all_inner_texts() == [
        "完成任务“提交报价”", "完成任务“合同评审”", "填写“竞争对手”"]
    approval = page.locator("section.approvals article.approval").first
    assert approval.locator(".approval-status").inner_text() == "已通过"
    decided = approval.locator("li.step .approvers li")
    assert [decided.locator(c).inner_text() for c in (".who", ".decision", ".comment")] == [
        "赵强", "同意", "同意，注意报价底线"]
    history = page.eval_on_selector_all(
        "table.stage-history tbody tr",
        "rs => rs.map(r => [r.cells[0].innerText, r.cells[3].innerText, r.cells[4].innerText])")
    assert history == [["确认客户意向", "引导立项", "王伟"], ["引导立项", "方案制作", "王伟"],
                       ["方案制作", "商务谈判", "王伟"], ["商务谈判", "", "赵强"]]
    rep.close()

