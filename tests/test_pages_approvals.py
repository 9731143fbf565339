"""The approval pages through Flask's test client, on SQLite and PostgreSQL: the approval panel of a record
(flow, status, steps with the current one marked, approvers with their decisions) while pending, approved
and rejected; the buttons only the right users see; refusals (reject without a comment, a non-approver, a
second decision) shown inline; approve and reject from the inbox; and the stage path of an opportunity
waiting for its manager's approval."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from support import FixedClock, crm_metadata
from test_pages import login, token

from objectplatform.web import create_app

PASSWORD = "secret-pass-1"
T1 = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)  # 09:30 in the organisation's time
T2 = datetime(2026, 11, 23, 6, 5, tzinfo=UTC)  # 14:05
T3 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 10:00 the next day
INVOICE_FLOW = """\
kind: object_extension
object: invoice
lifecycle:  # an invoice request is submitted through this approval flow
  transitions:
    submit: {from: [draft, rejected], by: approval}
---
kind: approval_flow
name: invoice_review
label: {zh: 开票审批, en: Invoice review}
object: invoice
trigger: {on: action, action: submit}
steps:
  - {name: manager, label: {zh: 主管审批, en: Manager}, approvers: [{manager_of: submitter}]}
  - {name: finance, label: {zh: 财务审批, en: Finance}, approvers: [{role: finance}], mode: any}
on_submit: [{set: {status: submitted}}]
on_withdraw: [{set: {status: draft}}]
on_reject: [{set: {status: rejected}}]
---
kind: roles  # the approval engine's withdraw, granted where it now exists
roles:
  sales_rep:
    label: {zh: 销售代表, en: Sales rep}
    permissions:
      invoice: {create: true, read: true, edit: true, delete: false, scope: own, actions: [submit, withdraw]}
  sales_manager:
    label: {zh: 销售经理, en: Sales manager}
    permissions:
      invoice: {create: true, read: true, edit: true, delete: false, scope: subordinates, actions: [submit, withdraw]}
"""


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {"flows/invoice_review.yaml": INVOICE_FLOW})


@pytest.fixture
def people(platform, seeded) -> dict[str, str]:
    """华北区 (under 销售部) with its manager boss and his reps rep and rep2; a finance user; an admin."""
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]
    north = records.create("department", {"name": "华北区", "parent": sales}, system=True)["id"]

    def user(username: str, name: str, roles: list[str], **more) -> str:
        return records.create("user", {"username": username, "display_name": name, "password": PASSWORD,
                                       "roles": roles, "department": north, **more}, system=True)["id"]

    ids = {"admin": user("admin", "管理员", ["admin"])}
    ids["boss"] = user("boss", "赵强", ["sales_manager"])
    ids["rep"] = user("rep", "王伟", ["sales_rep"], manager=ids["boss"])
    ids["rep2"] = user("rep2", "李娜", ["sales_rep"], manager=ids["boss"])
    ids["fin"] = user("fin", "孙会计", ["finance"])
    records.update("department", north, {"manager": ids["boss"]}, version=None, system=True)
    return ids


@pytest.fixture
def clock(platform) -> FixedClock:
    """The platform's clock, standing at T1 until a test moves it (`clock.at = ...`)."""
    platform.clock = FixedClock(T1)
    return platform.clock


@pytest.fixture
def invoice(platform, people) -> dict:
    records = platform.records
    account = records.create("account", {"name": "华信银行"}, user=people["rep"])["id"]
    product = records.create("product", {"name": "云服务", "price": "1200"}, system=True)["id"]
    order = records.create("sales_order", {"account": account, "order_line": [
        {"product": product, "quantity": 1, "unit_price": "1200"}]}, user=people["rep"])["id"]
    records.update("sales_order", order, {"status": "approved"}, version=None, system=True)  # invoiced once approved
    return records.create("invoice", {"sales_order": order, "amount": "1200", "title": "华信银行"},
                          user=people["rep"])


@pytest.fixture
def app(platform):
    app = create_app(platform)
    app.config["TESTING"] = True
    return app


def client_of(app, username: str):
    client = app.test_client()
    login(client, username, PASSWORD)
    return client


def panel(page: str) -> str:
    found = re.search(r'<section class="approvals" id="approvals">.*?</section>', page, re.S)
    return found.group(0) if found else ""


def articles(page: str) -> list[dict]:
    """Each approval of the panel: id, status, label, status label, meta line, steps and buttons."""
    found = []
    for approval_id, status, body in re.findall(
            r'<article class="approval \w+" id="approval-(\d+)" data-approval-id="\1" data-status="(\w+)">'
            r"(.*?)</article>",
            panel(page), re.S):
        steps = []
        for step in re.findall(r'<li class="step [^"]*".*?</ul>\s*</li>|<li class="step [^"]*".*?</div>\s*</li>',
                               body, re.S):
            head = re.search(r'<li class="step ([^"]*)" data-step="(\w+)"', step)
            steps.append({
                "step": head.group(2), "class": head.group(1), "current": 'aria-current="step"' in step,
                "label": _text(step, "name"), "status": _text(step, "step-status"),
                "approvers": [tuple(html.unescape(re.sub(r"<[^>]+>", "", part)).strip() for part in re.findall(
                    r'<span class="(?:who|decision|when)">(.*?)</span>|<q class="comment">(.*?)</q>', li)
                    for part in part if part)
                    for li in re.findall(r"<li class=\"(?:approved|rejected|undecided)\">(.*?)</li>", step, re.S)],
            })
        found.append({
            "id": approval_id, "status": status, "label": re.search(r"<h3>(.*?)</h3>", body).group(1),
            "status_label": _text(body, f"approval-status {status}"), "meta": _text(body, "meta"),
            "steps": steps, "decide": 'class="approval-decide"' in body,
            "withdraw": 'data-approval="withdraw"' in body,
            "error": _text(body, "flash error approval-error", "p"),
        })
    return found


def _text(fragment: str, css: str, tag: str = "span") -> str:
    found = re.search(rf'<{tag} class="{css}"[^>]*>(.*?)</{tag}>', fragment, re.S)
    return html.unescape(re.sub(r"\s+", " ", found.group(1))).strip() if found else ""


def flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="flash \w+" role="status">(.*?)</p>', page, re.S)]


def post(client, url: str, **data):
    return client.post(url, data={"csrf_token": token(client), **data})


def submit(app, username: str, invoice_id: str, comment: str = ""):
    return post(client_of(app, username), f"/o/invoice/{invoice_id}/approvals/submit", comment=comment)


def decide(client, approval_id: str, decision: str, comment: str = "", **more):
    return post(client, f"/approvals/{approval_id}/decide", decision=decision, comment=comment, **more)


# ------------------------------------------------------------------------------------ the panel


def test_pending_panel_and_who_sees_which_buttons(app, platform, people, invoice, clock):
    url = f"/o/invoice/{invoice['id']}"
    rep = client_of(app, "rep")
    before = panel(rep.get(url).text)
    assert '<p class="empty">尚未提交审批</p>' in before and 'data-approval="submit"' in before
    clock.at = T1
    submitted = post(rep, f"{url}/approvals/submit", comment="客户催票")
    assert (submitted.status_code, submitted.location) == (302, f"{url}#approvals")
    page = rep.get(url).text
    assert flashes(page) == ["已提交审批：开票审批"]
    [approval] = articles(page)
    assert {k: approval[k] for k in ("status", "label", "status_label", "meta")} == {
        "status": "pending", "label": "开票审批", "status_label": "审批中", "meta": "王伟 提交于 2026-11-23 09:30"}
    assert "提交说明：客户催票" in page
    assert approval["steps"] == [
        {"step": "manager", "class": "pending current", "current": True, "label": "主管审批", "status": "待审批",
         "approvers": [("赵强", "未审批")]},
        {"step": "finance", "class": "waiting", "current": False, "label": "财务审批", "status": "未开始",
         "approvers": []}]
    # the submitter may withdraw, not decide, and not submit again while it waits
    assert (approval["decide"], approval["withdraw"]) == (False, True)
    assert 'data-approval="submit"' not in panel(page)

    boss = articles(client_of(app, "boss").get(url).text)[0]
    assert (boss["decide"], boss["withdraw"]) == (True, False)
    fin = articles(client_of(app, "fin").get(url).text)[0]  # finance reads every invoice; not their step yet
    assert (fin["decide"], fin["withdraw"]) == (False, False)
    assert client_of(app, "rep2").get(url).status_code == 404  # another rep's invoice: not in their scope
    admin = articles(client_of(app, "admin").get(url).text)[0]
    assert (admin["decide"], admin["withdraw"]) == (False, True)

    # the header's submit and withdraw lead to the panel, where they take a comment
    assert f'<a class="button" href="{url}#approvals" data-action="withdraw">撤回审批</a>' in page

    rep.get("/lang/en")
    english = rep.get(url).text
    approval = articles(english)[0]
    assert (approval["label"], approval["status_label"], approval["meta"]) == (
        "Invoice review", "Pending", "Submitted by 王伟 at 2026-11-23 09:30")
    assert [(s["label"], s["status"]) for s in approval["steps"]] == [
        ("Manager", "Waiting for approval"), ("Finance", "Not started")]


def test_reject_needs_a_comment_shown_inline_then_the_rejected_panel(app, platform, people, invoice, clock):
    url = f"/o/invoice/{invoice['id']}"
    clock.at = T1
    submit(app, "rep", invoice["id"])
    boss = client_of(app, "boss")
    approval_id = articles(boss.get(url).text)[0]["id"]
    forged = boss.post(f"/approvals/{approval_id}/decide", data={"decision": "approve"})  # no CSRF token
    assert forged.status_code == 400 and "表单已过期或来源不明" in forged.text
    assert decide(boss, "999999", "approve").status_code == 404
    refused = decide(boss, approval_id, "reject", "  ", next=url)
    assert refused.status_code == 422
    shown = articles(refused.text)[0]
    assert (shown["status"], shown["error"], shown["decide"]) == ("pending", "驳回时必须填写审批意见", True)
    assert len(re.findall(r'class="flash error approval-error"', refused.text)) == 1

    clock.at = T2
    rejected = decide(boss, approval_id, "reject", "抬头与合同不一致", next=url)
    assert (rejected.status_code, rejected.location) == (302, url)
    page = boss.get(url).text
    assert flashes(page) == [f"已驳回：开票审批 {invoice['invoice_no']}"]
    [approval] = articles(page)
    assert {k: approval[k] for k in ("status", "status_label", "meta", "decide", "withdraw")} == {
        "status": "rejected", "status_label": "已驳回", "decide": False, "withdraw": False,
        "meta": "王伟 提交于 2026-11-23 09:30 · 结束于 2026-11-23 14:05"}
    assert [(s["step"], s["class"], s["status"], s["approvers"]) for s in approval["steps"]] == [
        ("manager", "rejected", "已驳回", [("赵强", "驳回", "2026-11-23 14:05", "抬头与合同不一致")]),
        ("finance", "not_reached", "未到达", [])]
    rep_page = client_of(app, "rep").get(url).text  # fixed, the rep may submit again
    assert 'data-approval="submit"' in panel(rep_page) and articles(rep_page)[0]["withdraw"] is False


def test_approved_through_both_steps_the_second_from_the_inbox(app, platform, people, invoice, clock):
    url = f"/o/invoice/{invoice['id']}"
    clock.at = T1
    submit(app, "rep", invoice["id"])
    boss = client_of(app, "boss")
    approval_id = articles(boss.get(url).text)[0]["id"]
    clock.at = T2
    assert decide(boss, approval_id, "approve", next=url).status_code == 302
    assert flashes(boss.get(url).text) == [f"已同意：开票审批 {invoice['invoice_no']}"]

    fin = client_of(app, "fin")
    inbox = fin.get("/todos").text
    [row] = re.findall(r'<tr data-id="(\d+)">(.*?)</tr>', inbox, re.S)
    todo_id, cells = row
    assert f'<a href="{url}">审批：开票审批 {invoice["invoice_no"]}（财务审批）</a>' in cells
    assert f'action="/approvals/{approval_id}/decide"' in cells
    assert f'<a href="{url}#approval-{approval_id}">查看</a>' in cells
    assert re.findall(r'<p class="todo-submitted">(.*?)</p>', cells) == ["王伟 提交于 2026-11-23 09:30"]  # who asked
    # what it is about, from the invoice's list columns: the order, the title, the type and the amount
    assert re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", cells) == [
        ("销售订单", "SO-202612-0001"), ("发票抬头", "华信银行"), ("发票类型", "增值税普通发票"),
        ("开票金额", "1,200.00")]
    assert "pages.finish_todo" not in cells and f"/todos/{todo_id}/done" not in cells  # deciding closes it
    clock.at = T3
    decided = decide(fin, approval_id, "approve", "已核对", next="/todos", todo=todo_id)
    assert (decided.status_code, decided.location) == (302, "/todos")
    inbox = fin.get("/todos").text
    assert flashes(inbox) == [f"已同意：开票审批 {invoice['invoice_no']}"]
    assert re.findall(r'<tr data-id="(\d+)">', inbox) == [] and "没有待办事项" in inbox

    page = client_of(app, "rep").get(url).text
    [approval] = articles(page)
    assert {k: approval[k] for k in ("status", "status_label", "meta", "decide", "withdraw")} == {
        "status": "approved", "status_label": "已通过",
        "meta": "王伟 提交于 2026-11-23 09:30 · 结束于 2026-11-24 10:00", "decide": False, "withdraw": False}
    assert [(s["step"], s["class"], s["status"], s["approvers"]) for s in approval["steps"]] == [
        ("manager", "approved", "已同意", [("赵强", "同意", "2026-11-23 14:05")]),
        ("finance", "approved", "已同意", [("孙会计", "同意", "2026-11-24 10:00", "已核对")])]


def test_a_non_approver_and_a_second_decision_are_refused_inline(app, platform, people, invoice, clock):
    url = f"/o/invoice/{invoice['id']}"
    clock.at = T1
    submit(app, "rep", invoice["id"])
    fin = client_of(app, "fin")
    approval_id = articles(fin.get(url).text)[0]["id"]
    refused = decide(fin, approval_id, "approve", "提前同意", next=url)
    assert refused.status_code == 403
    shown = articles(refused.text)[0]
    assert shown["error"] == (f"无权操作：您不是“开票审批 {invoice['invoice_no']}”当前步骤“主管审批”的审批人"
                              "（审批人：赵强）")
    boss = client_of(app, "boss")
    stale = boss.get(url).text  # the boss opens the page twice, decides in one ...
    assert articles(stale)[0]["decide"] is True
    clock.at = T2
    decide(boss, approval_id, "approve", next=url)
    again = decide(boss, approval_id, "approve", next=url)  # ... and clicks again in the other
    assert again.status_code == 409
    assert articles(again.text)[0]["error"] == "无法操作：您已审批过步骤“主管审批”，不能重复审批"
    # from a stale inbox: the to-do is gone, the refusal shows above the list
    stale_inbox = decide(boss, approval_id, "approve", next="/todos", todo="1")
    assert stale_inbox.status_code == 409
    assert re.findall(r'<p class="flash error approval-error" role="alert">(.*?)</p>', stale_inbox.text) == [
        "无法操作：您已审批过步骤“主管审批”，不能重复审批"]


def test_reject_from_the_inbox_without_a_comment_is_refused_in_its_row(app, platform, people, invoice, clock):
    clock.at = T1
    submit(app, "rep", invoice["id"])
    boss = client_of(app, "boss")
    [(todo_id, _cells)] = re.findall(r'<tr data-id="(\d+)">(.*?)</tr>', boss.get("/todos").text, re.S)
    approval_id = articles(boss.get(f"/o/invoice/{invoice['id']}").text)[0]["id"]
    refused = decide(boss, approval_id, "reject", "", next="/todos", todo=todo_id)
    assert refused.status_code == 422
    [(row_id, cells)] = re.findall(r'<tr data-id="(\d+)">(.*?)</tr>', refused.text, re.S)
    assert row_id == todo_id
    assert re.findall(r'<p class="flash error approval-error" role="alert">(.*?)</p>', cells) == [
        "驳回时必须填写审批意见"]
    clock.at = T2
    rejected = decide(boss, approval_id, "reject", "请补充合同编号", next="/todos", todo=todo_id)
    assert (rejected.status_code, rejected.location) == (302, "/todos")
    inbox = boss.get("/todos").text
    assert flashes(inbox) == [f"已驳回：开票审批 {invoice['invoice_no']}"]
    assert re.findall(r'<tr data-id="(\d+)">', inbox) == []


def test_the_stage_path_links_to_the_waiting_stage_approval(app, platform, people):
    """An opportunity asking to enter 商务谈判 (standard_sales: approval manager_of owner) shows 待审批 on
    that stage, linking to the approval in the panel; the manager decides there."""
    from test_sales_process import new_opportunity, to_negotiation

    records = platform.records
    rep = people["rep"]
    account = records.create("account", {"name": "华信银行", "address": "北京市西城区金融大街8号"}, user=rep)["id"]
    contact = records.create("contact", {"name": "王建华", "account": account}, user=rep)["id"]
    opportunity = new_opportunity(records, rep, account)
    to_negotiation(platform, people, opportunity["id"], contact)
    url = f"/o/opportunity/{opportunity['id']}"
    rep_client = client_of(app, "rep")
    assert panel(rep_client.get(url).text) == ""  # no flow to submit to, no approval yet: no panel
    assert post(rep_client, f"{url}/action/advance").status_code == 302
    withdrawn = post(rep_client, f"{url}/approvals/withdraw", comment="报价还要再核")  # taken back ...
    assert (withdrawn.status_code, withdrawn.location) == (302, f"{url}#approvals")
    page = rep_client.get(url).text
    path = re.search(r'<ol class="stage-path">.*?</ol>', page, re.S).group(0)
    assert re.findall(r'class="stage (\w+)"', path) == ["done", "done", "current", "ahead", "ahead"]
    assert [(a["status_label"], a["withdraw"]) for a in articles(page)] == [("已撤回", False)]
    assert post(rep_client, f"{url}/action/advance").status_code == 302  # ... and asked again
    page = rep_client.get(url).text
    approval, _withdrawn = articles(page)
    path = re.search(r'<ol class="stage-path">.*?</ol>', page, re.S).group(0)
    assert re.findall(r'class="stage (\w+)"', path) == ["done", "done", "current", "pending", "ahead"]
    negotiation = re.search(r'data-stage="negotiation".*?</li>', path, re.S).group(0)
    assert f'<a class="tag pending-approval" href="#approval-{approval["id"]}">待审批</a>' in negotiation
    assert f'<a href="#approval-{approval["id"]}">查看审批</a>' in page
    assert (approval["label"], approval["status_label"]) == ("阶段审批：商务谈判", "审批中")
    assert [(s["label"], s["status"], s["approvers"]) for s in approval["steps"]] == [
        ("进入阶段 商务谈判", "待审批", [("赵强", "未审批")])]
    assert (approval["decide"], approval["withdraw"]) == (False, True)  # the rep may take the request back

    boss = client_of(app, "boss")
    assert articles(boss.get(url).text)[0]["decide"] is True
    assert decide(boss, approval["id"], "approve", "同意进入谈判", next=url).status_code == 302
    page = boss.get(url).text
    path = re.search(r'<ol class="stage-path">.*?</ol>', page, re.S).group(0)
    assert re.findall(r'class="stage (\w+)"', path) == ["done", "done", "done", "current", "ahead"]
    assert "待审批" not in path
    assert articles(page)[0]["steps"][0]["approvers"][0][:2] == ("赵强", "同意")


def test_while_pending_the_edit_form_is_refused_and_only_the_submitter_withdraws(app, platform, people, invoice,
                                                                                 clock):
    url = f"/o/invoice/{invoice['id']}"
    clock.at = T1
    submit(app, "rep", invoice["id"])
    rep = client_of(app, "rep")
    current = platform.records.get("invoice", invoice["id"])
    edited = post(rep, f"{url}/edit", version=str(current["version"]), sales_order=current["sales_order"],
                  amount="1500", title="华信银行", invoice_type="vat_normal", status="draft")
    assert edited.status_code == 409
    assert re.findall(r'<p class="flash error refused" role="alert">(.*?)</p>', edited.text) == [
        f"“开票审批 {invoice['invoice_no']}”审批中，记录已锁定；请撤回审批或等待审批结果"]
    assert platform.records.get("invoice", invoice["id"])["amount"] == current["amount"]

    boss = client_of(app, "boss")  # the manager sees the invoice and holds withdraw, but did not submit it
    refused = post(boss, f"{url}/approvals/withdraw")
    assert refused.status_code == 403
    assert re.findall(r'<p class="flash error approval-error" role="alert">(.*?)</p>', refused.text) == [
        "无权操作：只有提交人 王伟 或管理员可以撤回审批"]
    clock.at = T2
    withdrawn = post(rep, f"{url}/approvals/withdraw", comment="金额要改")
    assert (withdrawn.status_code, withdrawn.location) == (302, f"{url}#approvals")
    page = rep.get(url).text
    assert flashes(page) == ["已撤回审批：开票审批"]
    assert '<p class="approval-note withdrawn">撤回说明：金额要改</p>' in page
    [approval] = articles(page)
    assert (approval["status"], approval["status_label"], approval["withdraw"]) == ("withdrawn", "已撤回", False)
    assert [(s["status"], s["approvers"]) for s in approval["steps"]] == [
        ("已撤回", [("赵强", "未审批")]), ("未到达", [])]
    assert 'data-approval="submit"' in panel(page)  # and it may be submitted again
    again = post(rep, f"{url}/approvals/withdraw")
    assert again.status_code == 409
    assert re.findall(r'<p class="flash error approval-error" role="alert">(.*?)</p>', again.text) == [
        "无法操作：没有审批中的申请可以撤回"]


def test_a_submit_no_step_can_be_routed_is_refused_inline(app, platform, people, invoice):
    """The administrator has no manager: the flow's first step (manager_of submitter) finds no approver."""
    admin = client_of(app, "admin")
    url = f"/o/invoice/{invoice['id']}"
    refused = post(admin, f"{url}/approvals/submit", comment="代提交")
    assert refused.status_code == 422
    assert re.findall(r'<p class="flash error approval-error" role="alert">(.*?)</p>', refused.text) == [
        "无法提交：“开票审批”的步骤“主管审批”找不到审批人"]
    assert 'value="代提交"' in panel(refused.text)  # the comment is kept
    assert articles(refused.text) == [] and '<p class="empty">尚未提交审批</p>' in panel(refused.text)


def test_an_order_approved_without_a_flow_of_record_offers_no_submit(app, platform, people, invoice):
    """Submit runs from a draft or a rejected order: an approved one (here set by the system, as the demo does)
    shows no approvals panel, neither a submit form, which would only be refused, nor "not submitted yet"."""
    order = f"/o/sales_order/{invoice['sales_order']}"
    page = client_of(app, "rep").get(order).text
    assert "已审批" in page and panel(page) == ""
    assert "尚未提交审批" not in page and 'data-approval="submit"' not in page
