"""The approval engine on SQLite and PostgreSQL: an order flow configured as a site might (manager, then finance
for large orders; the shipped one is three role steps, tests/test_orders_to_cash.py) approved and rejected end
to end with its on-approve set and shipper to-do; a role step then a
manager step; any vs all; skipped steps; several flows per object and none applying; withdraw and
resubmit; the record and its lines locked while waiting; 403 for non-approvers and 409 for second
decisions; a sales-process stage approved by the direct manager; reminders as the clock moves; the
definition a record started with kept when the YAML changes; flows started on create and on a field
change; the API and its OpenAPI paths."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import yaml
from support import FixedClock, crm_metadata, one_by_one, written
from test_api import PASSWORD, Api, without_reasons
from test_sales_process import to_negotiation

from objectplatform.metadata import build_definition, plain
from objectplatform.runtime import Conflict, Forbidden, Locked, NotFound, ValidationFailed, scheduler
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.approvals import approval_reminders, approvals
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.workqueue import work_queue
from objectplatform.translations import message_text
from objectplatform.web import create_app

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
SITE_FLOWS = """\
kind: object_extension
object: invoice
lifecycle:  # a request to invoice is approved before it reaches finance
  transitions:
    submit: {from: [draft, rejected], by: approval}
---
kind: approval_flow
name: invoice_request
label: {zh: 开票申请, en: Invoice request}
object: invoice
trigger: {on: action, action: submit}
condition: "amount >= 10000"
steps:
  - {name: finance, label: {zh: 财务审核, en: Finance review}, approvers: [{role: finance}]}
  - {name: manager, label: {zh: 主管审批, en: Manager approval}, approvers: [{manager_of: submitter}]}
on_approve:
  - {set: {status: submitted}}
  - todo: {role: finance, action: issue_invoice, title: {zh: "开具发票 {invoice_no}", en: "Issue invoice {invoice_no}"}}
on_reject:
  - {set: {status: rejected}}
---
kind: approval_flow
name: small_invoice
label: {zh: 小额开票, en: Small invoice}
object: invoice
trigger: {on: action, action: submit}
condition: "amount >= 1000"
steps:
  - {name: pair, label: {zh: 双人复核, en: Two reviewers}, approvers: [{users: [fin1, fin2]}], mode: all}
---
kind: approval_flow
name: payment_check
label: {zh: 回款确认, en: Payment check}
object: payment
trigger: {on: create}
steps:
  - {name: large, label: {zh: 大额复核, en: Large amount}, approvers: [{role: admin}], condition: "amount >= 1000000"}
  - {name: department, label: {zh: 部门经理确认, en: Department manager}, approvers: [{department_manager: true}]}
on_approve: [{set: {status: confirmed}}]
---
kind: approval_flow
name: grade_change
label: {zh: 客户升级, en: Grade change}
object: account
trigger: {on: field_change, field: grade}
condition: "grade == 'a'"
steps:
  - {name: owner_manager, label: {zh: 负责人主管, en: Owner's manager}, approvers: [{manager_of: owner}]}
"""


# the order flow these tests run: the submitter's direct manager, then finance for orders of 500,000 or more
MANAGER_THEN_FINANCE = """\
kind: approval_flow
name: sales_order_approval
label: {zh: 订单审批, en: Order approval}
object: sales_order
trigger: {"on": action, action: submit}
steps:
  - name: manager
    label: {zh: 主管审批, en: Manager approval}
    approvers: [{manager_of: submitter}]
    mode: any
    remind_after_hours: 24
  - name: finance
    label: {zh: 财务审批, en: Finance approval}
    approvers: [{role: finance}]
    mode: any
    condition: "total_amount >= 500000"
    remind_after_hours: 24
on_submit:
  - {set: {status: submitted}}
on_withdraw:
  - {set: {status: draft}}
on_approve:
  - {set: {status: approved}}
  - todo: {role: shipper, action: confirm_shipment,
           title: {zh: "确认发货 {order_no}", en: "Confirm shipment {order_no}"}}
on_reject:
  - {set: {status: rejected}}
  - {notify: {submitter: true}, message: {zh: "订单 {order_no} 被驳回", en: "Order {order_no} was rejected"}}
"""


def with_flow(metadata, text: str):
    """`metadata` with the flow of the same name replaced by the one `text` defines."""
    data = yaml.safe_load(text)
    flows = {**metadata.flows, data["name"]: build_definition(data, metadata.flows[data["name"]].source)}
    return dataclasses.replace(metadata, flows=flows)


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return with_flow(crm_metadata(tmp_path_factory.mktemp("site"), {"flows/approvals.yaml": SITE_FLOWS}),
                     MANAGER_THEN_FINANCE)


@pytest.fixture
def clock(platform) -> FixedClock:
    """The platform's clock, standing at T0 until a test moves it (`clock.at = ...`)."""
    platform.clock = FixedClock(T0)
    return platform.clock


@pytest.fixture
def people(platform, clock, seeded) -> dict[str, str]:
    """销售部 managed by boss, with two reps reporting to him; two finance clerks, a shipper, an admin and
    a rep without a manager or department."""
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]

    def user(username: str, name: str, roles: list[str], **more) -> str:
        return records.create("user", {"username": username, "display_name": name, "password": PASSWORD,
                                       "roles": roles, **more}, system=True)["id"]

    ids = {"admin": user("admin", "管理员", ["admin"])}
    ids["boss"] = user("boss", "赵经理", ["sales_manager"], department=sales)
    ids["rep"] = user("rep", "王伟", ["sales_rep"], department=sales, manager=ids["boss"])
    ids["rep2"] = user("rep2", "李娜", ["sales_rep"], department=sales, manager=ids["boss"])
    ids["fin1"] = user("fin1", "钱会计", ["finance"])
    ids["fin2"] = user("fin2", "孙出纳", ["finance"])
    ids["shipper"] = user("shipper", "周发货", ["shipper"])
    ids["loner"] = user("loner", "吴独立", ["sales_rep"])
    records.update("department", sales, {"manager": ids["boss"]}, version=1, system=True)
    ids["sales"] = sales
    return ids


@pytest.fixture
def account(platform, people) -> str:
    return platform.records.create("account", {"name": "华信银行"}, user=people["rep"])["id"]


@pytest.fixture
def product(platform, people) -> str:
    return platform.records.create("product", {"name": "CRM 套件", "price": "1000"}, system=True)["id"]


def order(platform, user: str, account: str, product: str, amount: str) -> dict:
    return platform.records.create("sales_order", {"account": account, "order_line": [
        {"product": product, "quantity": 1, "unit_price": amount}]}, user=user)


def act(platform, user: str, obj: str, action: str, record_id: str, params: dict | None = None) -> dict:
    return run_action(platform, access_for(platform, user), obj, action, record_id, params or {})


def decide(platform, user: str, approval_id: str, approved: bool, comment: str | None = None) -> dict:
    return approvals(platform).decide(access_for(platform, user), approval_id, approved, comment)


def todos(platform, user: str) -> list[tuple]:
    return [(t.kind, t.title_zh, t.approval_id, t.action)
            for t in work_queue(platform).todos_for(access_for(platform, user))]


def notes(platform, user: str) -> list[str]:
    return [n.title_zh for n in work_queue(platform).notifications_for(user)[0]]


def steps(approval: dict) -> list[tuple]:
    return [(s["name"], s["status"], [(a["name"], a["decision"], a["comment"]) for a in s["approvers"]])
            for s in approval["steps"]]


def edit(platform, obj: str, record_id: str, user: str, **values) -> dict:
    current = platform.records.get(obj, record_id)
    return platform.records.update(obj, record_id, values, version=current["version"], user=user)


def approved_order(platform, user: str, account: str, product: str, amount: str) -> dict:
    """An order approved as its flow would (payments and invoices are made against an approved order)."""
    so = order(platform, user, account, product, amount)
    return platform.records.update("sales_order", so["id"], {"status": "approved"}, version=None, system=True)


def invoice(platform, user: str, account: str, product: str, amount: str) -> dict:
    so = approved_order(platform, user, account, product, "100000")
    return platform.records.create("invoice", {"sales_order": so["id"], "amount": amount, "title": "华信银行"},
                                   user=user)


def count_approvals(platform) -> int:
    import sqlalchemy as sa

    with platform.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(platform.schema.approvals)).scalar_one()


# ------------------------------------------------------------------------------ the order flow


def test_a_large_order_is_approved_by_the_manager_then_finance(platform, people, account, product, clock):
    so = order(platform, people["rep"], account, product, "600000")
    no = so["order_no"]
    submitted = act(platform, people["rep"], "sales_order", "submit", so["id"], {"comment": "请尽快审批"})
    approval = submitted["approval"]
    assert {k: approval[k] for k in ("id", "object", "record_id", "kind", "flow", "label", "title", "status",
                                     "submitter", "submitter_name", "comment", "started_at", "ended_at",
                                     "current_step", "can_decide", "can_withdraw")} == {
        "id": "1", "object": "sales_order", "record_id": so["id"], "kind": "flow", "flow": "sales_order_approval",
        "label": {"zh": "订单审批", "en": "Order approval"},
        "title": {"zh": f"订单审批 {no}", "en": f"Order approval {no}"}, "status": "pending",
        "submitter": people["rep"], "submitter_name": "王伟", "comment": "请尽快审批",
        "started_at": T0.isoformat(), "ended_at": None, "current_step": "manager", "can_decide": False,
        "can_withdraw": True}
    assert steps(approval) == [("manager", "pending", [("赵经理", None, None)]), ("finance", "waiting", [])]
    assert todos(platform, people["boss"]) == [("approval", f"审批：订单审批 {no}（主管审批）", "1", "approve")]

    with pytest.raises(Forbidden) as e:
        decide(platform, people["fin1"], "1", True)
    assert e.value.message == (f"you are not an approver of approval 1 (Order approval {no}); the approvers of its "
                               "step Manager approval: 赵经理")

    clock.at = T0 + timedelta(hours=2)
    after_manager = decide(platform, people["boss"], "1", True, "同意")["approval"]
    assert steps(after_manager) == [("manager", "approved", [("赵经理", "approved", "同意")]),
                                    ("finance", "pending", [("钱会计", None, None), ("孙出纳", None, None)])]
    assert todos(platform, people["boss"]) == []
    assert todos(platform, people["fin2"]) == [("approval", f"审批：订单审批 {no}（财务审批）", "1", "approve")]

    clock.at = T0 + timedelta(hours=3)
    done = decide(platform, people["fin1"], "1", True)
    assert (done["approval"]["status"], done["approval"]["ended_at"], done["approval"]["current_step"]) == (
        "approved", (T0 + timedelta(hours=3)).isoformat(), None)
    assert steps(done["approval"])[1] == ("finance", "approved", [("钱会计", "approved", None), ("孙出纳", None, None)])
    assert done["record"]["status"] == "approved"
    assert todos(platform, people["fin2"]) == []
    assert todos(platform, people["shipper"]) == [("task", f"确认发货 {no}", None, "confirm_shipment")]
    assert notes(platform, people["rep"]) == [f"订单审批 {no} 已通过"]
    changes = [(h["change"], h["field"], h["old"], h["new"], h["user"])
               for h in platform.records.history("sales_order", so["id"]) if h["change"] == "approval"]
    assert sorted(changes) == [("approval", "status", "draft", "submitted", people["rep"]),
                               ("approval", "status", "submitted", "approved", people["fin1"])]

    with pytest.raises(Conflict) as e:
        decide(platform, people["fin2"], "1", True)
    assert e.value.message == f"approval 1 (Order approval {no}) is already approved"
    assert e.value.as_dict()["error"]["params"]["status"] == "approved"
    assert message_text(e.value.message, "zh") == f"“订单审批 {no}”的审批已结束（已通过）"


def test_a_small_order_skips_the_finance_step(platform, people, account, product):
    so = order(platform, people["rep"], account, product, "1000")
    approval_id = act(platform, people["rep"], "sales_order", "submit", so["id"])["approval"]["id"]
    done = decide(platform, people["boss"], approval_id, True)
    assert done["approval"]["status"] == "approved"
    assert steps(done["approval"]) == [("manager", "approved", [("赵经理", "approved", None)]),
                                       ("finance", "skipped", [])]
    assert todos(platform, people["fin1"]) == []


def test_a_rejected_order_goes_back_with_the_comment_and_is_resubmitted(platform, people, account, product, clock):
    so = order(platform, people["rep"], account, product, "2000")
    no = so["order_no"]
    act(platform, people["rep"], "sales_order", "submit", so["id"])
    with pytest.raises(ValidationFailed) as e:
        decide(platform, people["boss"], "1", False, "  ")
    assert e.value.fields == {"comment": ["a rejection needs a comment"]}
    rejected = decide(platform, people["boss"], "1", False, "单价太低，请重新报价")
    assert (rejected["approval"]["status"], rejected["record"]["status"]) == ("rejected", "rejected")
    assert steps(rejected["approval"]) == [("manager", "rejected", [("赵经理", "rejected", "单价太低，请重新报价")]),
                                           ("finance", "not_reached", [])]
    # the flow notifies the submitter itself: its message, with the comment, and nothing else
    assert notes(platform, people["rep"]) == [f"订单 {no} 被驳回：单价太低，请重新报价"]
    assert todos(platform, people["boss"]) == []

    fixed = edit(platform, "sales_order", so["id"], people["rep"], remark="按新价格重新提交")
    again = act(platform, people["rep"], "sales_order", "submit", fixed["id"])["approval"]
    assert (again["id"], again["status"], again["current_step"]) == ("2", "pending", "manager")
    listed = approvals(platform).for_record(access_for(platform, people["rep"]), "sales_order", so["id"])
    assert [(a["id"], a["status"]) for a in listed] == [("2", "pending"), ("1", "rejected")]
    with pytest.raises(Conflict) as e:
        act(platform, people["rep"], "sales_order", "submit", so["id"])
    assert e.value.message == (f"Sales order {so['id']} is Submitted: Submit for approval applies only to sales "
                               "orders in state Draft, Rejected")


def test_an_empty_approver_set_is_refused_and_nothing_is_written(platform, people, product):
    account = platform.records.create("account", {"name": "独立客户"}, user=people["loner"])["id"]
    so = order(platform, people["loner"], account, product, "1000")
    with pytest.raises(ValidationFailed) as e:
        act(platform, people["loner"], "sales_order", "submit", so["id"])
    assert e.value.fields == {"approvers": [
        "step Manager approval of Order approval has no approver: the submitter 吴独立 has no active manager"]}
    assert count_approvals(platform) == 0


# ------------------------------------------------------------------------------ steps, modes, several flows


def test_a_role_step_then_a_manager_step(platform, people, account, product):
    request = invoice(platform, people["rep"], account, product, "20000")
    no = request["invoice_no"]
    approval = act(platform, people["rep"], "invoice", "submit", request["id"])["approval"]
    assert (approval["flow"], approval["current_step"]) == ("invoice_request", "finance")
    assert todos(platform, people["fin1"]) == [("approval", f"审批：开票申请 {no}（财务审核）", "1", "approve")]
    decide(platform, people["fin2"], "1", True, "票面信息无误")
    assert todos(platform, people["fin1"]) == []
    with pytest.raises(Conflict) as e:  # mode any: the other clerk's decision decided the step
        decide(platform, people["fin1"], "1", True)
    assert e.value.message == ("step Finance review of approval 1 was already decided; it waits for step "
                               "Manager approval now")
    params = e.value.as_dict()["error"]["params"]
    assert (params["step"], params["next"]) == ("finance", "manager")
    assert message_text(e.value.message, "zh") == "步骤“财务审核”已审批完毕，现在等待“主管审批”"
    with pytest.raises(Conflict) as e:
        decide(platform, people["fin2"], "1", True)
    assert e.value.message == "you already approved step Finance review of approval 1"
    assert e.value.as_dict()["error"]["params"] == {"decision": "approved", "step": "finance", "id": 1}
    done = decide(platform, people["boss"], "1", True)
    assert steps(done["approval"]) == [
        ("finance", "approved", [("钱会计", None, None), ("孙出纳", "approved", "票面信息无误")]),
        ("manager", "approved", [("赵经理", "approved", None)])]
    assert done["record"]["status"] == "submitted"
    assert todos(platform, people["fin1"]) == [("task", f"开具发票 {no}", None, "issue_invoice")]
    assert notes(platform, people["rep"]) == [f"开票申请 {no} 已通过"]


def test_mode_all_needs_every_approver_and_one_reject_ends_it(platform, people, account, product):
    first = invoice(platform, people["rep"], account, product, "5000")
    approval = act(platform, people["rep"], "invoice", "submit", first["id"])["approval"]
    assert (approval["flow"], steps(approval)) == ("small_invoice", [
        ("pair", "pending", [("钱会计", None, None), ("孙出纳", None, None)])])
    one = decide(platform, people["fin1"], approval["id"], True)["approval"]
    assert (one["status"], steps(one)) == ("pending", [("pair", "pending", [("钱会计", "approved", None),
                                                                           ("孙出纳", None, None)])])
    assert (len(todos(platform, people["fin1"])), len(todos(platform, people["fin2"]))) == (0, 1)
    with pytest.raises(Conflict) as e:
        decide(platform, people["fin1"], approval["id"], True)
    assert e.value.message == f"you already approved step Two reviewers of approval {approval['id']}"
    assert decide(platform, people["fin2"], approval["id"], True)["approval"]["status"] == "approved"

    second = invoice(platform, people["rep"], account, product, "6000")
    other = act(platform, people["rep"], "invoice", "submit", second["id"])["approval"]
    rejected = decide(platform, people["fin2"], other["id"], False, "抬头有误")["approval"]
    assert (rejected["status"], steps(rejected)) == ("rejected", [
        ("pair", "rejected", [("钱会计", None, None), ("孙出纳", "rejected", "抬头有误")])])
    assert todos(platform, people["fin1"]) == []
    assert notes(platform, people["rep"])[0] == f"小额开票 {second['invoice_no']} 已驳回：抬头有误"


def test_no_flow_whose_condition_holds_is_a_422_naming_them(platform, people, account, product):
    request = invoice(platform, people["rep"], account, product, "500")
    with pytest.raises(ValidationFailed) as e:
        act(platform, people["rep"], "invoice", "submit", request["id"])
    assert e.value.fields == {"__all__": [
        f"no approval flow of invoice applies to invoice {request['id']}; their entry conditions: "
        "invoice_request: amount >= 10000; small_invoice: amount >= 1000"]}


# ------------------------------------------------------------------------------ withdraw, locking


def test_withdraw_by_the_submitter_then_resubmit(platform, people, account, product):
    so = order(platform, people["rep"], account, product, "3000")
    act(platform, people["rep"], "sales_order", "submit", so["id"])
    with pytest.raises(Forbidden) as e:
        act(platform, people["boss"], "sales_order", "withdraw", so["id"])
    assert e.value.message == "only the submitter 王伟 or an administrator can withdraw approval 1"
    assert platform.records.get("sales_order", so["id"])["status"] == "submitted"  # the flow's on_submit
    withdrawn_order = act(platform, people["rep"], "sales_order", "withdraw", so["id"], {"comment": "数量要改"})
    withdrawn = withdrawn_order["approval"]
    assert withdrawn_order["record"]["status"] == "draft"  # on_withdraw
    assert (withdrawn["status"], withdrawn["end_comment"], steps(withdrawn)) == (
        "withdrawn", "数量要改", [("manager", "withdrawn", [("赵经理", None, None)]), ("finance", "not_reached", [])])
    assert todos(platform, people["boss"]) == []
    with pytest.raises(Conflict) as e:
        act(platform, people["rep"], "sales_order", "withdraw", so["id"])
    assert e.value.message == (f"Sales order {so['id']} is Draft: Withdraw applies only to sales orders in state "
                               "Submitted")
    with pytest.raises(Conflict):
        decide(platform, people["boss"], "1", True)
    assert act(platform, people["rep"], "sales_order", "submit", so["id"])["approval"]["status"] == "pending"
    assert act(platform, people["admin"], "sales_order", "withdraw", so["id"])["approval"]["status"] == "withdrawn"


def test_a_waiting_record_and_its_lines_are_locked_except_for_admins(platform, people, account, product):
    so = order(platform, people["rep"], account, product, "3000")
    act(platform, people["rep"], "sales_order", "submit", so["id"])
    locked = (f"Sales order {so['id']} is waiting for approval 1 (Order approval {so['order_no']}): neither it nor its "
              "lines can be changed until the approval is decided or withdrawn")
    lines_locked = f"Sales order {so['id']} is Submitted: Order line cannot be changed in this state"
    line = so["order_line"][0]
    with pytest.raises(Locked) as e:
        edit(platform, "sales_order", so["id"], people["rep"], remark="改一下")
    assert e.value.message == locked
    with pytest.raises(Locked) as e:  # the submitted state locks the lines as well
        edit(platform, "order_line", line["id"], people["rep"], quantity=2)
    assert e.value.message == lines_locked
    with pytest.raises(Locked) as e:
        platform.records.create("order_line", {"sales_order": so["id"], "product": product, "quantity": 1,
                                               "unit_price": "10"}, user=people["rep"])
    assert e.value.message == lines_locked
    with pytest.raises(Locked) as e:
        platform.records.delete("sales_order", so["id"], user=people["rep"])
    assert e.value.message == locked
    assert edit(platform, "sales_order", so["id"], people["admin"], remark="管理员备注")["remark"] == "管理员备注"
    assert platform.records.get("sales_order", so["id"])["order_line"][0]["quantity"] == line["quantity"]


def test_only_the_record_s_readers_and_the_approvers_see_an_approval(platform, people, account, product):
    so = order(platform, people["rep"], account, product, "3000")
    act(platform, people["rep"], "sales_order", "submit", so["id"])
    service = approvals(platform)
    assert service.get(access_for(platform, people["boss"]), "1")["can_decide"] is True
    assert service.get(access_for(platform, people["rep"]), "1")["can_decide"] is False
    with pytest.raises(NotFound):
        service.get(access_for(platform, people["rep2"]), "1")
    with pytest.raises(NotFound):
        decide(platform, people["rep2"], "1", True)
    with pytest.raises(NotFound):
        service.get(access_for(platform, people["rep"]), "x1")
    assert service.pending_for_record("sales_order", so["id"])["id"] == "1"


# ------------------------------------------------------------------------------ stage approval


def test_a_stage_is_entered_once_the_direct_manager_approves(platform, people, account, clock):
    records, rep = platform.records, people["rep"]
    contact = records.create("contact", {"name": "王建华", "account": account}, user=rep)["id"]
    opportunity = records.create("opportunity", {"name": "零售条线CRM项目", "account": account, "amount": "500000"},
                                 user=rep)
    to_negotiation(platform, people, opportunity["id"], contact)
    asked = act(platform, rep, "opportunity", "advance", opportunity["id"])
    assert (asked["pending_stage"], asked["approval_id"], asked["record"]["pending_stage"]) == (
        "negotiation", "1", "negotiation")
    approval = approvals(platform).get(access_for(platform, rep), "1")
    assert (approval["kind"], approval["flow"], approval["stage"], approval["title"]["zh"]) == (
        "stage", "standard_sales", "negotiation", "零售条线CRM项目 进入阶段 商务谈判")
    assert steps(approval) == [("negotiation", "pending", [("赵经理", None, None)])]
    assert todos(platform, people["boss"]) == [
        ("approval", "审批：零售条线CRM项目 进入阶段 商务谈判", "1", "approve")]
    with pytest.raises(Conflict):
        edit(platform, "opportunity", opportunity["id"], rep, competitors="某友商")
    with pytest.raises(Forbidden) as e:  # an administrator reads everything but decides only as an approver
        decide(platform, people["admin"], "1", True)
    assert e.value.message == ("you are not an approver of approval 1 (零售条线CRM项目 entering the stage "
                               "Negotiation); the approvers of its step Enter the stage Negotiation: 赵经理")

    clock.at = T0 + timedelta(days=1)
    rejected = decide(platform, people["boss"], "1", False, "报价依据不足")
    assert (rejected["record"]["stage"], rejected["record"]["pending_stage"]) == ("proposal", None)
    assert steps(rejected["approval"]) == [("negotiation", "rejected", [("赵经理", "rejected", "报价依据不足")])]
    assert notes(platform, rep) == ["零售条线CRM项目 进入阶段 商务谈判 已驳回：报价依据不足"]

    edit(platform, "opportunity", opportunity["id"], rep, competitors="某友商")  # improved
    again = act(platform, rep, "opportunity", "advance", opportunity["id"])
    clock.at = T0 + timedelta(days=2)
    entered = decide(platform, people["boss"], again["approval_id"], True)["record"]
    assert (entered["stage"], entered["pending_stage"], entered["probability"]) == (
        "negotiation", None, Decimal("80.00"))
    assert [(h["stage"], h["left_to"], h["moved_by"]) for h in entered["stage_history"]][-2:] == [
        ("proposal", "negotiation", rep), ("negotiation", None, people["boss"])]
    assert entered["stage_history"][-1]["entered_at"] == T0 + timedelta(days=2)


def test_a_stage_approval_is_withdrawn_by_the_rep_or_ends_with_a_lost_deal(platform, people, account):
    records, rep = platform.records, people["rep"]
    contact = records.create("contact", {"name": "王建华", "account": account}, user=rep)["id"]
    opportunity = records.create("opportunity", {"name": "零售条线CRM项目", "account": account, "amount": "500000"},
                                 user=rep)
    to_negotiation(platform, people, opportunity["id"], contact)
    act(platform, rep, "opportunity", "advance", opportunity["id"])
    withdrawn = act(platform, rep, "opportunity", "withdraw", opportunity["id"], {"comment": "再准备一下"})
    assert (withdrawn["record"]["stage"], withdrawn["record"]["pending_stage"], withdrawn["approval"]["status"]) == (
        "proposal", None, "withdrawn")
    assert todos(platform, people["boss"]) == []
    act(platform, rep, "opportunity", "advance", opportunity["id"])
    act(platform, rep, "opportunity", "lose", opportunity["id"], {"reason": "price", "comment": "客户选了友商"})
    [latest, _] = approvals(platform).for_record(access_for(platform, rep), "opportunity", opportunity["id"])
    assert (latest["status"], latest["ended_by"]) == ("withdrawn", rep)
    assert todos(platform, people["boss"]) == []


def test_an_administrator_deleting_a_waiting_record_ends_its_approval(platform, people, account, product):
    so = order(platform, people["rep"], account, product, "3000")
    act(platform, people["rep"], "sales_order", "submit", so["id"])
    platform.records.delete("sales_order", so["id"], user=people["admin"])
    assert approvals(platform).pending_for_record("sales_order", so["id"]) is None
    assert todos(platform, people["boss"]) == []


# ------------------------------------------------------------------------------ reminders, definitions


def test_reminders_come_once_when_a_step_waits_too_long(platform, people, account, product, clock):
    so = order(platform, people["rep"], account, product, "600000")
    act(platform, people["rep"], "sales_order", "submit", so["id"])
    reminder = f"请尽快审批：订单审批 {so['order_no']}"
    assert approval_reminders(platform, T0 + timedelta(hours=23, minutes=59)) == 0
    assert approval_reminders(platform, T0 + timedelta(hours=24)) == 1
    assert approval_reminders(platform, T0 + timedelta(hours=30)) == 0
    assert notes(platform, people["boss"]) == [reminder]
    clock.at = T0 + timedelta(hours=25)
    decide(platform, people["boss"], "1", True)
    clock.at = T0 + timedelta(hours=49)
    scheduler.tick(platform, clock.at)  # the scheduler's tick runs them
    assert (notes(platform, people["fin1"]), notes(platform, people["fin2"])) == ([reminder], [reminder])


def test_a_running_approval_keeps_the_definition_it_started_with(platform, people, account, product):
    so = order(platform, people["rep"], account, product, "600000")
    act(platform, people["rep"], "sales_order", "submit", so["id"])
    flows = dict(platform.metadata.flows)
    old = plain(flows["sales_order_approval"].document)
    new_data = {**old, "steps": old["steps"][:1], "on_approve": [{"set": {"status": "completed"}}]}
    flows["sales_order_approval"] = build_definition(new_data, flows["sales_order_approval"].source)
    platform.metadata = dataclasses.replace(platform.metadata, flows=flows)

    decide(platform, people["boss"], "1", True)
    done = decide(platform, people["fin1"], "1", True)  # the finance step the YAML no longer has
    assert (done["approval"]["status"], done["record"]["status"]) == ("approved", "approved")

    later = order(platform, people["rep"], account, product, "600000")
    second = act(platform, people["rep"], "sales_order", "submit", later["id"])["approval"]
    assert [s["name"] for s in second["steps"]] == ["manager"]
    assert decide(platform, people["boss"], second["id"], True)["record"]["status"] == "completed"


# ------------------------------------------------------------------------------ other triggers


def test_a_flow_starts_on_create_and_skips_its_false_step(platform, people, account, product):
    so = approved_order(platform, people["rep"], account, product, "3000")
    payment = platform.records.create("payment", {"sales_order": so["id"], "amount": "3000"}, user=people["rep"])
    [approval] = approvals(platform).for_record(access_for(platform, people["rep"]), "payment", payment["id"])
    assert (approval["flow"], approval["current_step"], approval["submitter"]) == (
        "payment_check", "department", people["rep"])
    assert steps(approval) == [("large", "skipped", []), ("department", "pending", [("赵经理", None, None)])]
    assert decide(platform, people["boss"], approval["id"], True)["record"]["status"] == "confirmed"


def test_a_flow_starts_when_its_field_changes(platform, people, account):
    edit(platform, "account", account, people["rep"], grade="b")  # the entry condition does not hold
    assert approvals(platform).pending_for_record("account", account) is None
    edit(platform, "account", account, people["rep"], grade="a")
    pending = approvals(platform).pending_for_record("account", account)
    assert (pending["flow"], steps(pending)) == ("grade_change", [
        ("owner_manager", "pending", [("赵经理", None, None)])])


# ------------------------------------------------------------------------------ the API


@pytest.fixture
def api(platform, people) -> Api:
    return Api(create_app(platform).test_client())


def test_the_api_submits_lists_and_decides(api, platform, people, account, product):
    so = order(platform, people["rep"], account, product, "600000")
    status, body = api.post(f"/objects/sales_order/records/{so['id']}/actions/submit", "rep", {"comment": "加急"})
    assert (status, body["approval"]["status"], body["record"]["id"]) == (200, "pending", so["id"])
    status, body = api.get("/todos", "boss")
    assert [(t["kind"], t["approval_id"], t["action"]) for t in body["items"]] == [("approval", "1", "approve")]
    assert api.post("/approvals/1/approve", "fin1", {}) == (403, {"error": {"code": "forbidden", "message": (
        f"you are not an approver of approval 1 (Order approval {so['order_no']}); the approvers of its step Manager "
        "approval: 赵经理")}})
    status, body = api.post("/approvals/1/reject", "boss", {})
    assert (status, body["error"]["fields"]) == (422, {"comment": ["a rejection needs a comment"]})
    assert api.post("/approvals/1/approve", "boss", {"comment": 5})[0] == 422
    status, body = api.post("/approvals/1/approve", "boss", {"comment": "同意"})
    assert (status, body["approval"]["current_step"], body["record"]["status"]) == (200, "finance", "submitted")
    assert api.post("/approvals/1/approve", "boss", {"comment": "再点一次"})[0] == 409
    status, body = api.post("/approvals/1/reject", "fin2", {"comment": "信用额度不足"})
    assert (status, body["approval"]["status"], body["record"]["status"]) == (200, "rejected", "rejected")
    status, body = api.get(f"/objects/sales_order/records/{so['id']}/approvals", "rep")
    assert status == 200
    assert [steps(a) for a in body["items"]] == [[
        ("manager", "approved", [("赵经理", "approved", "同意")]),
        ("finance", "rejected", [("钱会计", None, None), ("孙出纳", "rejected", "信用额度不足")])]]
    assert api.get("/approvals/1", "rep")[1]["id"] == "1"
    assert api.get("/approvals/1", "rep2")[0] == 404
    assert api.get(f"/objects/sales_order/records/{so['id']}/approvals", "rep2")[0] == 404
    assert api.get("/objects/nothing/records/1/approvals", "rep")[0] == 404


def test_the_openapi_document_lists_the_approval_paths(api):
    doc = api.get("/openapi.json", "admin")[1]
    assert {p for p in doc["paths"] if "approval" in p} == {
        "/approvals/{id}", "/approvals/{id}/approve", "/approvals/{id}/reject",
        "/objects/sales_order/records/{id}/approvals", "/objects/opportunity/records/{id}/approvals",
        "/objects/invoice/records/{id}/approvals", "/objects/payment/records/{id}/approvals",
        "/objects/account/records/{id}/approvals"}
    assert "/objects/sales_order/records/{id}/actions/submit" in doc["paths"]
    assert "/objects/opportunity/records/{id}/actions/withdraw" in doc["paths"]
    assert json.dumps(doc["paths"]["/approvals/{id}/reject"]["post"]["requestBody"]["content"]) == json.dumps(
        {"application/json": {"schema": {"type": "object", "additionalProperties": False, "required": ["comment"],
                                         "properties": {"comment": {"type": "string", "minLength": 1}}}}})


# ------------------------------------------------------------------------------ bulk withdraw


def withdraw_scenario(platform, people, product) -> dict[str, str]:
    """Orders and opportunities in the states a bulk withdraw by rep meets, by name: two orders rep submitted, a
    draft, one rep2 submitted on rep's account (rep sees it), one of rep2's own account (rep does not); two
    opportunities waiting for the approval to enter Negotiation and one waiting for none."""
    records, rep, rep2 = platform.records, people["rep"], people["rep2"]
    account = records.create("account", {"name": "华信银行"}, user=rep)["id"]
    theirs = records.create("account", {"name": "华东物流"}, user=rep2)["id"]
    o = {"ok1": order(platform, rep, account, product, "3000")["id"],
         "draft": order(platform, rep, account, product, "5000")["id"],
         "by_other": records.create("sales_order", {"account": account, "owner": rep2, "order_line": [
             {"product": product, "quantity": 1, "unit_price": "7000"}]}, system=True)["id"],
         "other": order(platform, rep2, theirs, product, "9000")["id"],
         "ok2": order(platform, rep, account, product, "600000")["id"]}
    for name, who in (("ok1", rep), ("by_other", rep2), ("other", rep2), ("ok2", rep)):
        o[f"{name}_approval"] = act(platform, who, "sales_order", "submit", o[name], {"comment": "请审批"})[
            "approval"]["id"]
    for name in ("deal1", "deal2", "deal3"):
        o[name] = records.create("opportunity", {
            "name": "零售条线CRM项目", "account": account, "amount": "500000", "sales_process": "standard_sales",
            "stage": "proposal", "customer_address": "北京市西城区金融大街8号"}, user=rep, system=True)["id"]
        act(platform, rep, "opportunity", "complete_task", o[name], {"task": "submit_proposal"})
    for name in ("deal1", "deal2"):
        act(platform, rep, "opportunity", "advance", o[name])
    return o


def test_bulk_withdraw_is_set_based_and_answers_as_one_record_after_another(platform, people, product, clock):
    """The same orders and opportunities, once withdrawn one record after another (each its own single action) and
    once by the API's bulk action (set-based, `withdraw_many`): the same successes and refusals (state, another
    submitter's, scope, nothing waiting, unknown id), records (an order back to draft by the flow's on_withdraw, an
    opportunity out of its pending stage), history, approvals, to-dos and notifications."""
    a = withdraw_scenario(platform, people, product)
    b = withdraw_scenario(platform, people, product)
    api = Api(create_app(platform).test_client())
    clock.advance(hours=2)
    orders = ["ok1", "draft", "by_other", "other", "ok2"]

    def expected(o: dict[str, str]) -> dict:
        return {"succeeded": [o["ok1"], o["ok2"]], "failed": [
            {"id": o["draft"], "error": {"code": "conflict", "message": f"Sales order {o['draft']} is Draft: "
                                         "Withdraw applies only to sales orders in state Submitted"}},
            {"id": o["by_other"], "error": {"code": "forbidden", "message": "only the submitter 李娜 or an "
                                            f"administrator can withdraw approval {o['by_other_approval']}"}},
            {"id": o["other"], "error": {"code": "not_found", "message": f"no sales order with id {o['other']}"}},
            {"id": "999999", "error": {"code": "not_found", "message": "no sales order with id 999999"}}]}

    comment = {"comment": "数量要改"}
    one = one_by_one(platform, people["rep"], "sales_order", "withdraw", [*(a[k] for k in orders), "999999"],
                     comment)
    assert without_reasons(one) == expected(a)
    status, many = api.post("/objects/sales_order/actions/withdraw", "rep",
                            {"ids": [*(b[k] for k in orders), "999999"], **comment})
    assert (status, without_reasons(many)) == (200, expected(b))

    deals = ["deal1", "deal3", "deal2"]

    def expected_deals(o: dict[str, str]) -> dict:
        return {"succeeded": [o["deal1"], o["deal2"]], "failed": [{"id": o["deal3"], "error": {
            "code": "conflict", "message": f"Opportunity {o['deal3']} has no approval waiting to be withdrawn"}}]}

    one = one_by_one(platform, people["rep"], "opportunity", "withdraw", [a[k] for k in deals], {})
    assert without_reasons(one) == expected_deals(a)
    many = approvals(platform).withdraw_many(access_for(platform, people["rep"]), "opportunity", [b[k] for k in deals])
    assert without_reasons(many) == expected_deals(b)  # (not None: set-based)

    for name in [*orders, *deals]:
        obj = "opportunity" if name.startswith("deal") else "sales_order"
        one, many = (written(platform, obj, o[name], ("account", "sales_order", "opportunity")) for o in (a, b))
        assert one == many, name
    withdrawn = written(platform, "sales_order", b["ok2"], ("account",))
    assert withdrawn["record"]["status"] == "draft"
    assert [(x["status"], x["ended_by"], x["end_comment"]) for x in withdrawn["approvals"]] == [
        ("withdrawn", int(people["rep"]), "数量要改")]
    assert [(t["user_id"], t["done_at"], t["done_by"]) for t in withdrawn["todos"]] == [
        (int(people["boss"]), clock.at.replace(tzinfo=None), int(people["rep"]))]
    assert [(h["change"], h["field"], h["old"], h["new"]) for h in withdrawn["history"][-1:]] == [
        ("approval", "status", "submitted", "draft")]
    deal = written(platform, "opportunity", b["deal2"], ("account",))
    assert (deal["record"]["stage"], deal["record"]["pending_stage"]) == ("proposal", None)
    assert [(h["change"], h["field"], h["old"], h["new"]) for h in deal["history"][-1:]] == [
        ("withdraw_stage", "pending_stage", "negotiation", None)]
    assert [x["status"] for x in deal["approvals"]] == ["withdrawn"]
    assert sorted(int(t[2]) for t in todos(platform, people["boss"])) == sorted(  # those still waiting
        int(o[f"{name}_approval"]) for o in (a, b) for name in ("by_other", "other"))


def submit_scenario(platform, people, product) -> dict[str, str]:
    """Orders and invoices in the states a bulk submit by rep meets, by name: two draft orders, one rejected, one
    submitted already, one of rep2's account (rep does not see it); invoices of 20,000 (the invoice request: the
    manager), 5,000 (the small invoice: both finance clerks) and 500 (no flow applies)."""
    records, rep, rep2 = platform.records, people["rep"], people["rep2"]
    account = records.create("account", {"name": "华信银行"}, user=rep)["id"]
    theirs = records.create("account", {"name": "华东物流"}, user=rep2)["id"]
    o = {name: order(platform, rep, account, product, amount)["id"]
         for name, amount in (("new1", "3000"), ("rejected", "4000"), ("waiting", "5000"), ("new2", "600000"))}
    o["other"] = order(platform, rep2, theirs, product, "9000")["id"]
    for name in ("rejected", "waiting"):
        act(platform, rep, "sales_order", "submit", o[name])
    decide(platform, people["boss"], approvals(platform).pending_for_record("sales_order", o["rejected"])["id"],
           False, "价格不对")
    so = approved_order(platform, rep, account, product, "100000")["id"]
    for name, amount in (("big", "20000"), ("small", "5000"), ("tiny", "500")):
        o[name] = records.create("invoice", {"sales_order": so, "amount": amount, "title": "华信银行"}, user=rep)["id"]
    return o


def test_bulk_submit_is_set_based_and_answers_as_one_record_after_another(platform, people, product, clock):
    """The same orders and invoices, once submitted one record after another (each its own single action) and once
    by the API's bulk action (set-based, `submit_many`): the same successes and refusals (state, scope, no flow
    applies, unknown id), records (the flow's on_submit), history, approvals with their flow, title and step,
    approvers, to-dos and notifications."""
    a, b = submit_scenario(platform, people, product), submit_scenario(platform, people, product)
    api = Api(create_app(platform).test_client())
    clock.advance(hours=1)
    orders, invoices, comment = ["new1", "waiting", "rejected", "other", "new2"], ["big", "tiny", "small"], {
        "comment": "请审批"}

    def expected(o: dict[str, str]) -> dict:
        return {"succeeded": [o["new1"], o["rejected"], o["new2"]], "failed": [
            {"id": o["waiting"], "error": {"code": "conflict", "message": f"Sales order {o['waiting']} is Submitted: "
                                           "Submit for approval applies only to sales orders in state Draft, "
                                           "Rejected"}},
            {"id": o["other"], "error": {"code": "not_found", "message": f"no sales order with id {o['other']}"}},
            {"id": "999999", "error": {"code": "not_found", "message": "no sales order with id 999999"}}]}

    def expected_invoices(o: dict[str, str]) -> dict:
        return {"succeeded": [o["big"], o["small"]], "failed": [{"id": o["tiny"], "error": {
            "code": "validation_failed", "message": "no approval flow of invoice applies", "fields": {"__all__": [
                f"no approval flow of invoice applies to invoice {o['tiny']}; their entry conditions: "
                "invoice_request: amount >= 10000; small_invoice: amount >= 1000"]}}}]}

    one = one_by_one(platform, people["rep"], "sales_order", "submit", [*(a[k] for k in orders), "999999"], comment)
    assert without_reasons(one) == expected(a)
    status, many = api.post("/objects/sales_order/actions/submit", "rep",
                            {"ids": [*(b[k] for k in orders), "999999"], **comment})
    assert (status, without_reasons(many)) == (200, expected(b))
    one = one_by_one(platform, people["rep"], "invoice", "submit", [a[k] for k in invoices], {})
    assert without_reasons(one) == expected_invoices(a)
    many = approvals(platform).submit_many(access_for(platform, people["rep"]), "invoice", [b[k] for k in invoices])
    assert without_reasons(many) == expected_invoices(b)  # (not None: set-based)

    for name in [*orders, *invoices]:
        obj = "sales_order" if name in orders else "invoice"
        one, many = (written(platform, obj, o[name], ("account", "sales_order")) for o in (a, b))
        assert one == many, name
    submitted = written(platform, "sales_order", b["new2"], ("account", "sales_order"))
    assert submitted["record"]["status"] == "submitted"
    assert [(x["flow"], x["status"], x["step"], x["comment"], x["title_en"]) for x in submitted["approvals"]] == [
        ("sales_order_approval", "pending", 0, "请审批", "Order approval {title}")]
    assert [(t["user_id"], t["title_en"], t["done_at"]) for t in submitted["todos"]] == [
        (int(people["boss"]), "Approve: Order approval {title} (Manager approval)", None)]
    small = written(platform, "invoice", b["small"], ("account", "sales_order"))
    assert [(x["step"], x["name"], x["approver"]) for x in small["approval_steps"]] == [
        (0, "pair", int(people["fin1"])), (0, "pair", int(people["fin2"]))]
    assert sorted(t["user_id"] for t in small["todos"]) == [int(people["fin1"]), int(people["fin2"])]
