"""Sales processes and staged opportunities (the `sales_process` behavior) on SQLite and PostgreSQL:
the process picked by department, advance with exactly the missing items, probability and stage
history, the stage awaiting approval, win / lose / invalidate, closed records refusing moves, the
converted lead's opportunity, imports, the API and OpenAPI faces, a concurrent advance, and a broken
process definition reported with file and line."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from support import FixedClock, crm_metadata, migrated_platform, one_by_one, written
from test_api import PASSWORD, Api, without_reasons
from test_pages import login, token

from objectplatform.metadata import MetadataError
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.behaviors import staged
from objectplatform.runtime.errors import Conflict, ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.web import create_app

T1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 9, 15, 30, tzinfo=UTC)
T3 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
PROCESSES = "standard_sales, east_branch, government"


@pytest.fixture
def people(seeded) -> dict[str, str]:
    """销售部 above 华北区 and 华东区; a manager and a rep in 华北区, a rep in 华东区, an admin without one."""
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]
    north = records.create("department", {"name": "华北区", "parent": sales}, system=True)["id"]
    east = records.create("department", {"name": "华东区", "parent": sales}, system=True)["id"]

    def user(username: str, roles: list[str], **more) -> str:
        return records.create("user", {"username": username, "display_name": username, "password": PASSWORD,
                                       "roles": roles, **more}, system=True)["id"]

    ids = {"admin": user("admin", ["admin"])}
    ids["boss"] = user("boss", ["sales_manager"], department=north)
    ids["rep"] = user("rep", ["sales_rep"], department=north, manager=ids["boss"])
    ids["east_rep"] = user("east_rep", ["sales_rep"], department=east)
    return ids


@pytest.fixture
def account(records, people) -> str:
    return records.create("account", {"name": "华信银行", "address": "北京市西城区金融大街8号"},
                          user=people["rep"])["id"]


@pytest.fixture
def contact(records, people, account) -> str:
    return records.create("contact", {"name": "王建华", "account": account}, user=people["rep"])["id"]


@pytest.fixture
def clock(platform) -> FixedClock:
    """The platform's clock, standing at T1 until a test moves it (`clock.at = ...`)."""
    platform.clock = FixedClock(T1)
    return platform.clock


def new_opportunity(records, owner: str, account: str, **more) -> dict:
    return records.create("opportunity", {"name": "零售条线CRM项目", "account": account, "amount": "500000", **more},
                          user=owner)


def act(platform, user: str, action: str, record_id: str, params: dict | None = None) -> dict:
    return run_action(platform, access_for(platform, user), "opportunity", action, record_id, params or {})


def edit(records, record_id: str, user: str, **values) -> dict:
    current = records.get("opportunity", record_id)
    return records.update("opportunity", record_id, values, version=current["version"], user=user)


def rows(record: dict) -> list[tuple]:
    return [(h["stage"], h["entered_at"], h["left_at"], h["left_to"], h["moved_by"]) for h in record["stage_history"]]


def finish(platform, user: str, record_id: str, tasks: list[str], **fields) -> None:
    """Complete the tasks and fill the fields a stage requires."""
    for task in tasks:
        act(platform, user, "complete_task", record_id, {"task": task})
    if fields:
        edit(platform.records, record_id, user, **fields)


def to_negotiation(platform, people, record_id: str, contact: str) -> None:
    """Through intent, initiation and proposal of standard_sales up to the request to enter negotiation."""
    rep = people["rep"]
    finish(platform, rep, record_id, ["first_call"], contact=contact)
    act(platform, rep, "advance", record_id)
    finish(platform, rep, record_id, ["meet_executive"], budget="600000", expected_close_date="2026-12-31")
    act(platform, rep, "advance", record_id)
    finish(platform, rep, record_id, ["submit_proposal"], customer_address="北京市西城区金融大街8号")


# ------------------------------------------------------------------------------ the process on create


def test_the_owners_department_picks_the_process(platform, records, people, account):
    north = new_opportunity(records, people["rep"], account)  # 华北区 has none: 销售部's, one level up
    east = new_opportunity(records, people["east_rep"], account)  # 华东区's own
    nobody = new_opportunity(records, people["admin"], account)  # no department: the first process
    chosen = new_opportunity(records, people["rep"], account, sales_process="government")
    assert [(o["sales_process"], o["stage"], o["probability"], o["status"]) for o in (north, east, nobody, chosen)] == [
        ("standard_sales", "intent", Decimal("10.00"), "open"), ("east_branch", "intent", Decimal("10.00"), "open"),
        ("standard_sales", "intent", Decimal("10.00"), "open"), ("government", "needs", Decimal("10.00"), "open")]
    assert north["weighted_amount"] == Decimal("50000.00")
    assert rows(north) == [("intent", north["created_at"], None, None, people["rep"])]
    assert north["stage_history"][0]["owner"] == people["rep"]
    assert north["pending_stage"] is None and north["closed_at"] is None


def test_an_unknown_process_or_a_given_stage_is_refused(records, people, account):
    with pytest.raises(ValidationFailed) as e:
        new_opportunity(records, people["rep"], account, sales_process="retail")
    assert e.value.fields == {"sales_process": [f"no sales process 'retail'; one of: {PROCESSES}"]}
    with pytest.raises(ValidationFailed) as e:
        new_opportunity(records, people["rep"], account, stage="closing")
    assert e.value.fields == {"stage": ["is set by the system"]}
    assert records.list("opportunity").total == 0 and records.list("stage_history").total == 0


def test_an_import_gets_processes_stages_and_history_rows(records, people, account):
    result = records.create_many("opportunity", [
        {"name": "甲", "account": account, "amount": "1000", "owner": people["rep"]},
        {"name": "乙", "account": account, "amount": "2000", "owner": people["east_rep"]},
        {"name": "丙", "account": account, "amount": "3000", "sales_process": "nope"},
        {"name": "丁", "account": account, "amount": "4000", "status": "won", "probability": "100"},
    ], user=people["boss"])
    assert [(e.index, e.fields) for e in result.errors] == [
        (2, {"sales_process": [f"no sales process 'nope'; one of: {PROCESSES}"]}),
        (3, {"status": ["a new opportunity starts as Open; Won is reached by Win"]})]
    made = [records.get("opportunity", i) for i in result.created]
    assert [(o["name"], o["sales_process"], o["stage"], o["probability"]) for o in made] == [
        ("甲", "standard_sales", "intent", Decimal("10.00")), ("乙", "east_branch", "intent", Decimal("10.00"))]
    assert [[(h["stage"], h["left_at"], h["owner"]) for h in o["stage_history"]] for o in made] == [
        [("intent", None, people["rep"])], [("intent", None, people["east_rep"])]]


# ---------------------------------------------------------------------------------------- advance


def test_advance_lists_exactly_the_missing_tasks_and_fields(platform, records, people, account):
    opportunity = new_opportunity(records, people["rep"], account)
    with pytest.raises(ValidationFailed) as e:
        act(platform, people["rep"], "advance", opportunity["id"])
    assert e.value.message == "stage Confirm interest is not finished: 2 missing"
    assert e.value.fields == {"tasks": ["Call about the needs is not done"],
                              "contact": ["is required to leave stage Confirm interest"]}
    act(platform, people["rep"], "complete_task", opportunity["id"], {"task": "send_brochure"})  # optional
    with pytest.raises(ValidationFailed) as e:
        act(platform, people["rep"], "advance", opportunity["id"])
    assert list(e.value.fields) == ["tasks", "contact"]
    after = records.get("opportunity", opportunity["id"])
    assert (after["stage"], after["probability"], len(after["stage_history"])) == ("intent", Decimal("10.00"), 1)


def test_advance_moves_probability_and_stage_history(platform, records, people, account, contact, clock):
    rep = people["rep"]
    opportunity = new_opportunity(records, rep, account)
    clock.at = T1
    finish(platform, rep, opportunity["id"], ["first_call"], contact=contact)
    clock.at = T2
    result = act(platform, rep, "advance", opportunity["id"])
    record = result["record"]
    assert result["stage"] == "initiation"
    assert (record["stage"], record["probability"], record["weighted_amount"]) == (
        "initiation", Decimal("40.00"), Decimal("200000.00"))
    assert rows(record) == [("intent", opportunity["created_at"], T2, "initiation", rep),
                            ("initiation", T2, None, None, rep)]
    assert [(t["stage"], t["task"], t["completed_at"], t["completed_by"]) for t in record["opportunity_task"]] == [
        ("intent", "first_call", T1, rep)]
    moves = [(e["change"], e["field"], e["old"], e["new"]) for e in records.history("opportunity", opportunity["id"])
             if e["change"] in ("advance", "complete_task")]
    assert moves == [("complete_task", None, None, {"stage": "intent", "task": "first_call"}),
                     ("advance", "stage", "intent", "initiation"), ("advance", "probability", "10.00", "40.00")]


def test_a_stage_needing_approval_waits_until_it_is_decided(platform, records, people, account, contact):
    rep = people["rep"]
    opportunity = new_opportunity(records, rep, account)
    to_negotiation(platform, people, opportunity["id"], contact)
    result = act(platform, rep, "advance", opportunity["id"])
    assert (result["pending_stage"], result["approval"]) == ("negotiation", {"manager_of": "owner"})
    record = result["record"]
    assert (record["stage"], record["pending_stage"], record["probability"]) == (
        "proposal", "negotiation", Decimal("60.00"))
    with pytest.raises(Conflict) as e:
        act(platform, rep, "advance", opportunity["id"])
    assert e.value.message == (f"Opportunity {opportunity['id']} is in stage Proposal, waiting for "
                               "approval to enter Negotiation: it cannot be advanced")
    rejected = staged.reject_stage(platform, "opportunity", opportunity["id"], user=people["boss"])["record"]
    assert (rejected["stage"], rejected["pending_stage"]) == ("proposal", None)
    act(platform, rep, "advance", opportunity["id"])  # improved and asked again
    approved = staged.approve_stage(platform, "opportunity", opportunity["id"], user=people["boss"])["record"]
    assert (approved["stage"], approved["pending_stage"], approved["probability"]) == (
        "negotiation", None, Decimal("80.00"))
    assert [(h["stage"], h["left_to"], h["moved_by"]) for h in approved["stage_history"]] == [
        ("intent", "initiation", rep), ("initiation", "proposal", rep), ("proposal", "negotiation", rep),
        ("negotiation", None, people["boss"])]
    with pytest.raises(Conflict) as e:
        staged.approve_stage(platform, "opportunity", opportunity["id"])
    assert e.value.message == (f"Opportunity {opportunity['id']} is in stage Negotiation, "
                               "with no stage awaiting approval")


def test_complete_task_unknown_or_twice(platform, records, people, account):
    opportunity = new_opportunity(records, people["rep"], account)
    with pytest.raises(ValidationFailed) as e:
        act(platform, people["rep"], "complete_task", opportunity["id"], {"task": "meet_executive"})
    assert e.value.fields == {"task": [
        "stage Confirm interest has no task 'meet_executive'; its tasks: Call about the needs, Send the brochure"]}
    first = act(platform, people["rep"], "complete_task", opportunity["id"], {"task": "first_call"})
    again = act(platform, people["rep"], "complete_task", opportunity["id"], {"task": "first_call"})
    assert (first["already_completed"], again["already_completed"]) == (False, True)
    assert again["task"] == first["task"] and again["record"]["version"] == first["record"]["version"]
    assert len(again["record"]["opportunity_task"]) == 1


def test_an_edit_cannot_move_the_process_the_status_or_the_stage(records, people, account):
    opportunity = new_opportunity(records, people["rep"], account)
    with pytest.raises(ValidationFailed) as e:
        edit(records, opportunity["id"], people["rep"], status="won", sales_process="government")
    assert e.value.fields == {"status": ["set only by the transitions Win, Lose, Mark invalid"]}
    with pytest.raises(ValidationFailed) as e:  # a value sent back as it is stored is no change
        edit(records, opportunity["id"], people["rep"], status="open", sales_process="government")
    assert e.value.fields == {"sales_process": ["is chosen when the record is created"]}
    assert edit(records, opportunity["id"], people["rep"], probability="25")["probability"] == Decimal("25.00")


# --------------------------------------------------------------------------------- win, lose, invalid


def test_win_only_from_the_last_stage(platform, records, people, account, contact, clock):
    rep = people["rep"]
    opportunity = new_opportunity(records, rep, account, sales_process="east_branch")
    with pytest.raises(Conflict) as e:
        act(platform, rep, "win", opportunity["id"])
    assert e.value.message == (f"Opportunity {opportunity['id']} is in stage Confirm interest: it can be won "
                               "only from the last stage Closing")
    clock.at = T1
    finish(platform, rep, opportunity["id"], ["first_call"], contact=contact)
    act(platform, rep, "advance", opportunity["id"])
    finish(platform, rep, opportunity["id"], ["product_demo"], budget="480000")
    act(platform, rep, "advance", opportunity["id"])
    finish(platform, rep, opportunity["id"], ["send_quote"], expected_close_date="2026-12-31")
    act(platform, rep, "advance", opportunity["id"])
    with pytest.raises(ValidationFailed) as e:
        act(platform, rep, "win", opportunity["id"])
    assert e.value.fields == {"tasks": ["Sign the contract is not done"]}
    clock.at = T2
    finish(platform, rep, opportunity["id"], ["sign_contract"])
    clock.at = T3
    won = act(platform, rep, "win", opportunity["id"])["record"]
    assert (won["status"], won["stage"], won["probability"], won["weighted_amount"], won["closed_at"]) == (
        "won", "closing", Decimal("100.00"), Decimal("500000.00"), T3)
    assert rows(won)[-1] == ("closing", T1, T3, "won", rep)
    assert records.get("account", account)["won_amount"] == Decimal("500000.00")


def test_lose_needs_a_listed_reason_and_a_comment(platform, records, people, account, clock):
    opportunity = new_opportunity(records, people["rep"], account)
    with pytest.raises(ValidationFailed) as e:
        act(platform, people["rep"], "lose", opportunity["id"], {"reason": "weather"})
    assert e.value.fields == {"reason": [
        "'weather' is not one of: price, competitor, requirement_change, no_budget, lost_contact, other"],
        "comment": ["is required"]}
    clock.at = T2
    lost = act(platform, people["rep"], "lose", opportunity["id"],
               {"reason": "competitor", "comment": "客户选择了本地厂商"})["record"]
    assert (lost["status"], lost["lost_reason"], lost["lost_comment"], lost["probability"], lost["closed_at"]) == (
        "lost", "competitor", "客户选择了本地厂商", Decimal("0.00"), T2)
    assert [(h["stage"], h["left_at"], h["left_to"], h["comment"]) for h in lost["stage_history"]] == [
        ("intent", T2, "lost", "客户选择了本地厂商")]


def test_closed_opportunities_refuse_every_move(platform, records, people, account):
    opportunity = new_opportunity(records, people["rep"], account)
    with pytest.raises(ValidationFailed) as e:
        act(platform, people["rep"], "invalidate", opportunity["id"])
    assert e.value.fields == {"comment": ["is required"]}
    invalid = act(platform, people["rep"], "invalidate", opportunity["id"], {"comment": "重复商机"})["record"]
    assert (invalid["status"], invalid["invalid_comment"], invalid["probability"]) == (
        "invalid", "重复商机", Decimal("0.00"))
    refusals = {}
    for action, params in [("advance", {}), ("complete_task", {"task": "first_call"}), ("win", {}),
                           ("lose", {"reason": "price", "comment": "x"}), ("invalidate", {"comment": "x"})]:
        with pytest.raises(Conflict) as e:
            act(platform, people["rep"], action, opportunity["id"], params)
        refusals[action] = e.value.message
    prefix = f"Opportunity {opportunity['id']} is Invalid: it cannot be"
    assert refusals == {"advance": f"{prefix} advanced", "complete_task": f"{prefix} changed",
                        "win": f"{prefix} won", "lose": f"{prefix} lost", "invalidate": f"{prefix} marked invalid"}
    assert records.get("opportunity", opportunity["id"])["version"] == invalid["version"]


# ------------------------------------------------------------------------------------ other paths


def test_a_converted_leads_opportunity_enters_the_first_stage(platform, records, people):
    lead = records.create("lead", {"name": "张伟", "company": "星辰科技", "phone": "010-88886666"},
                          user=people["east_rep"])
    result = run_action(
        platform, access_for(platform, people["east_rep"]), "lead", "convert", lead["id"],
        {"account": {}, "contact": {}, "opportunity": {"amount": "80000"}})
    opportunity = result["opportunity"]
    assert (opportunity["sales_process"], opportunity["stage"], opportunity["probability"]) == (
        "east_branch", "intent", Decimal("10.00"))
    assert rows(opportunity) == [("intent", opportunity["created_at"], None, None, people["east_rep"])]


def test_stage_rows_are_read_within_the_owners_scope(platform, records, people, account):
    new_opportunity(records, people["rep"], account)
    new_opportunity(records, people["east_rep"], account)
    table = platform.schema["stage_history"].table
    seen = {user: records.list("stage_history", where=access_for(platform, people[user]).scope("stage_history", table),
                               sort="id").items for user in ("rep", "east_rep", "boss")}
    assert {user: [h["owner"] for h in items] for user, items in seen.items()} == {
        "rep": [people["rep"]], "east_rep": [people["east_rep"]], "boss": [people["rep"]]}


def test_the_api_runs_the_actions_and_documents_their_parameters(platform, records, people, account):
    api = Api(create_app(platform).test_client())
    opportunity = new_opportunity(records, people["rep"], account)
    path = f"/objects/opportunity/records/{opportunity['id']}/actions"
    assert api.post(f"{path}/advance", "rep", {}) == (422, {"error": {
        "code": "validation_failed", "message": "stage Confirm interest is not finished: 2 missing",
        "fields": {"tasks": ["Call about the needs is not done"],
                   "contact": ["is required to leave stage Confirm interest"]}}})
    status, body = api.post(f"{path}/complete_task", "rep", {"task": "first_call"})
    assert (status, body["task"]["task"], body["already_completed"]) == (200, "first_call", False)
    assert api.post(f"{path}/win", "rep", {}) == (409, {"error": {"code": "conflict", "message": (
        f"Opportunity {opportunity['id']} is in stage Confirm interest: it can be won only from the last "
        "stage Closing")}})
    assert api.post(f"{path}/advance", "east_rep", {})[0] == 404  # not theirs
    _, doc = api.get("/openapi.json", "rep")
    lose = doc["paths"]["/objects/opportunity/records/{id}/actions/lose"]["post"]
    schema = lose["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["reason", "comment"]
    assert schema["properties"]["reason"]["enum"][:2] == ["price", "competitor"]
    task = doc["paths"]["/objects/opportunity/records/{id}/actions/complete_task"]["post"]
    assert task["requestBody"]["content"]["application/json"]["schema"]["required"] == ["task"]
    assert "/objects/opportunity/actions/complete_task" not in doc["paths"]  # one record at a time


def test_the_opportunity_page_shows_the_path_the_checklist_and_what_is_missing(platform, records, people, account,
                                                                             contact):
    opportunity = new_opportunity(records, people["rep"], account)
    client = create_app(platform).test_client()
    login(client, "rep", PASSWORD)
    url = f"/o/opportunity/{opportunity['id']}"
    page = client.get(url).text
    path = re.search(r'<ol class="stage-path">.*?</ol>', page, re.S).group(0)
    assert re.findall(r'data-stage="(\w+)"', path) == ["intent", "initiation", "proposal", "negotiation", "closing"]
    assert re.findall(r'class="stage (\w+)"', path) == ["current", "ahead", "ahead", "ahead", "ahead"]
    negotiation = re.search(r'data-stage="negotiation".*?</li>', path, re.S).group(0)
    assert re.findall(r'<span class="\w+">(.*?)</span>', negotiation) == ["商务谈判", "80%", "需审批"]
    assert re.findall(r'data-complete="(\w+)"', page) == ["first_call", "send_brochure"]
    missing = re.search(r'<div class="stage-missing">.*?</div>', page, re.S).group(0)
    assert re.findall(r"<li>(.*?)</li>", missing) == ["完成任务“电话沟通需求”", "填写“联系人”"]
    assert re.findall(r'data-move="(\w+)"', page) == ["lose", "invalidate"]  # advance once nothing is missing
    done = client.post(f"{url}/action/complete_task",
                       data={"csrf_token": token(client), "__params": "1", "task": "first_call"})
    assert done.status_code == 302
    edit(records, opportunity["id"], people["rep"], contact=contact)
    page = client.get(url).text
    assert re.findall(r'data-complete="(\w+)"', page) == ["send_brochure"]
    assert "本阶段的必做事项已完成" in page and 'class="stage-missing"' not in page
    assert re.findall(r'data-move="(\w+)"', page) == ["advance", "lose", "invalidate"]
    assert client.post(f"{url}/action/advance", data={"csrf_token": token(client)}).status_code == 302
    page = client.get(url).text
    path = re.search(r'<ol class="stage-path">.*?</ol>', page, re.S).group(0)
    assert re.findall(r'class="stage (\w+)"', path) == ["done", "current", "ahead", "ahead", "ahead"]
    history = re.search(r'<table class="records cards stage-history">.*?</table>', page, re.S).group(0)
    assert [re.findall(r"<td[^>]*>(.*?)</td>", row)[3] for row in re.findall(r'<tr><td class="title">.*?</tr>',
                                                                               history, re.S)] == ["引导立项", ""]
    assert 'data-related="stage_history.' not in page  # the panel's history, not a second list of it below


def test_concurrent_advances_one_wins(platform, records, people, account, contact):
    if platform.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time (BEGIN IMMEDIATE): the race cannot happen there")
    rep = people["rep"]
    opportunity = new_opportunity(records, rep, account)
    finish(platform, rep, opportunity["id"], ["first_call"], contact=contact)
    barrier = threading.Barrier(4)
    results: list[object] = [None] * 4

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = act(platform, rep, "advance", opportunity["id"])
        except Exception as e:  # reported to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(isinstance(r, dict) for r in results) == 1, results
    with pytest.raises(ValidationFailed) as late:
        act(platform, rep, "advance", opportunity["id"])
    assert late.value.message == "stage Project initiation is not finished: 3 missing"
    # a loser that read before the winner's write is refused by the write's guard; one that read after its commit
    # (a loaded machine delays threads) is refused as a late advance is
    assert {r.message for r in results if not isinstance(r, dict)} <= {
        f"Opportunity {opportunity['id']} is in stage Project initiation: it cannot be advanced",
        late.value.message}, results
    record = records.get("opportunity", opportunity["id"])
    assert [(h["stage"], h["left_to"]) for h in record["stage_history"]] == [
        ("intent", "initiation"), ("initiation", None)]


# --------------------------------------------------------------------------------------- metadata


BROKEN = """\
kind: sales_process
name: retail
label: {zh: 零售流程}
departments: [销售部]
stages:
  - {key: intent, label: {zh: 意向}, probability: 10, required_fields: [adress]}
  - key: deal
    label: {zh: 成交}
    probability: 90
    tasks: [{key: sign, label: {zh: 签约}}, {key: sign, label: {zh: 再签}}]
    approval: {role: boss}
---
kind: sales_process
name: too_sure
label: {zh: 过于乐观}
stages:
  - {key: intent, label: {zh: 意向}, probability: 120}
"""


def test_a_broken_process_is_reported_with_file_and_line(tmp_path):
    with pytest.raises(MetadataError) as e:
        crm_metadata(tmp_path, {"flows/retail.yaml": BROKEN})
    assert [str(p).removeprefix(f"{tmp_path}/") for p in e.value.problems] == [
        "flows/retail.yaml:6:71: unknown field 'adress' of 'opportunity' (at stages[0].required_fields[0])",
        "flows/retail.yaml:10:44: task 'sign' is listed twice (at stages[1].tasks[1].key)",
        "flows/retail.yaml:11:16: unknown role 'boss' (at stages[1].approval.role)",
        "flows/retail.yaml:17:36: 120 is greater than the maximum of 100 (at stages[0].probability)"]


# ------------------------------------------------------------------------------------ bulk closing


def closing_scenario(platform, people) -> dict[str, str]:
    """An account's opportunities in the states a bulk close meets, by name: two ready to be won (east_branch's last
    stage, its task done), one whose task is not done, one in standard_sales' first stage, one lost, one waiting for
    the approval to enter Negotiation, and one of 华东区's rep (outside rep's scope)."""
    records, rep = platform.records, people["rep"]
    account = records.create("account", {"name": "华信银行"}, user=rep)["id"]

    def opportunity(amount: str, process: str = "east_branch", stage: str | None = None, **more) -> str:
        return records.create("opportunity", {"name": "零售条线CRM项目", "account": account, "amount": amount,
                                              "sales_process": process, "stage": stage, **more},
                              user=rep, system=True)["id"]  # (a stage given: the system's import)

    o = {"account": account, "ready": opportunity("300000", stage="closing"),
         "unsigned": opportunity("200000", stage="closing"), "early": opportunity("100000", "standard_sales"),
         "lost": opportunity("50000", "standard_sales"), "ready2": opportunity("123456.78", stage="closing"),
         "pending": opportunity("80000", "standard_sales", "proposal", customer_address="北京市西城区金融大街8号")}
    o["east"] = records.create("opportunity", {"name": "华东项目", "account": account, "amount": "70000",
                                               "owner": people["east_rep"]}, system=True)["id"]
    for name in ("ready", "ready2"):
        act(platform, rep, "complete_task", o[name], {"task": "sign_contract"})
    act(platform, rep, "lose", o["lost"], {"reason": "price", "comment": "价格过高"})
    act(platform, rep, "complete_task", o["pending"], {"task": "submit_proposal"})
    act(platform, rep, "advance", o["pending"])
    return o


def closing_state(platform, o: dict[str, str]) -> dict:
    """What closing the opportunities of `o` left (`written`, with their stage history rows and the history of
    each), and the account's rollups."""
    state, s = {}, platform.schema["stage_history"]
    for name, one in o.items():
        if name != "account":
            with platform.engine.connect() as conn:
                rows = conn.execute(sa.select(s.table.c.id).where(s.column("opportunity") == int(one))
                                    .order_by(s.table.c.id)).scalars().all()
            state[name] = {**written(platform, "opportunity", one, ("account", "contact", "opportunity")),
                           "stage_rows": [written(platform, "stage_history", row, ("opportunity",))["history"]
                                          for row in rows]}
    account = platform.records.get("account", o["account"])
    state["account"] = (account["opportunity_count"], account["won_amount"])
    return state


def test_bulk_win_lose_and_invalidate_are_set_based_and_answer_as_one_record_after_another(platform, people):
    """The same opportunities, once closed one record after another (each its own single action) and once by the
    API's bulk actions (set-based, `close_many`): the same successes and refusals (state, scope, unknown id, a task
    not done), records, history, stage history rows, the waiting stage approval withdrawn with its to-do, and the
    account's won amount."""
    platform.clock = clock = FixedClock(T1)
    api, rep = Api(create_app(platform).test_client()), people["rep"]
    a, b = closing_scenario(platform, people), closing_scenario(platform, people)
    clock.at = T2

    def expected_win(o: dict[str, str]) -> dict:
        return {"succeeded": [o["ready"], o["ready2"]], "failed": [
            {"id": o["unsigned"], "error": {"code": "validation_failed", "message": "stage Closing is not finished: "
                                            "1 missing", "fields": {"tasks": ["Sign the contract is not done"]}}},
            {"id": o["early"], "error": {"code": "conflict", "message": f"Opportunity {o['early']} is in stage "
                                         "Confirm interest: it can be won only from the last stage Closing"}},
            {"id": o["lost"], "error": {"code": "conflict",
                                        "message": f"Opportunity {o['lost']} is Lost: it cannot be won"}},
            {"id": o["pending"], "error": {"code": "conflict", "message": f"Opportunity {o['pending']} is in stage "
                                           "Proposal, waiting for approval to enter Negotiation: it can be won only "
                                           "from the last stage Closing"}},
            {"id": o["east"], "error": {"code": "not_found", "message": f"no opportunity with id {o['east']}"}},
            {"id": "999999", "error": {"code": "not_found", "message": "no opportunity with id 999999"}}]}

    batch = ["ready", "unsigned", "early", "lost", "pending", "east", "ready2"]
    assert without_reasons(one_by_one(platform, rep, "opportunity", "win", [*(a[k] for k in batch), "999999"], {})) \
        == expected_win(a)
    status, body = api.post("/objects/opportunity/actions/win", "rep", {"ids": [*(b[k] for k in batch), "999999"]})
    assert (status, without_reasons(body)) == (200, expected_win(b))

    later = clock.advance(hours=1)
    lose = {"reason": "competitor", "comment": "客户选择了本地厂商"}
    batch = ["early", "pending", "ready", "east"]
    assert without_reasons(one_by_one(platform, rep, "opportunity", "lose", [a[k] for k in batch], lose)) == {
        "succeeded": [a["early"], a["pending"]], "failed": [
            {"id": a["ready"], "error": {"code": "conflict", "message": f"Opportunity {a['ready']} is Won: it "
                                         "cannot be lost"}},
            {"id": a["east"], "error": {"code": "not_found", "message": f"no opportunity with id {a['east']}"}}]}
    status, body = api.post("/objects/opportunity/actions/lose", "rep", {"ids": [b[k] for k in batch], **lose})
    assert (status, without_reasons(body)) == (200, {"succeeded": [b["early"], b["pending"]], "failed": [
        {"id": b["ready"], "error": {"code": "conflict", "message": f"Opportunity {b['ready']} is Won: it "
                                     "cannot be lost"}},
        {"id": b["east"], "error": {"code": "not_found", "message": f"no opportunity with id {b['east']}"}}]})
    invalidate = {"comment": "重复商机"}
    invalidated = one_by_one(platform, rep, "opportunity", "invalidate", [a["unsigned"], a["lost"]], invalidate)
    assert without_reasons(invalidated) == {
        "succeeded": [a["unsigned"]], "failed": [{"id": a["lost"], "error": {
            "code": "conflict", "message": f"Opportunity {a['lost']} is Lost: it cannot be marked invalid"}}]}
    status, body = api.post("/objects/opportunity/actions/invalidate", "rep",
                            {"ids": [b["unsigned"], b["lost"]], **invalidate})
    assert (status, without_reasons(body)) == (200, {"succeeded": [b["unsigned"]], "failed": [{"id": b["lost"],
        "error": {"code": "conflict", "message": f"Opportunity {b['lost']} is Lost: it cannot be marked invalid"}}]})

    one, many = closing_state(platform, a), closing_state(platform, b)
    for name in one:
        assert one[name] == many[name], name
    won = one["ready2"]
    assert {k: won["record"][k] for k in ("status", "probability", "weighted_amount", "closed_at", "pending_stage")} \
        == {"status": "won", "probability": Decimal("100.00"), "weighted_amount": Decimal("123456.78"),
            "closed_at": T2, "pending_stage": None}
    assert [(h["field"], h["old"], h["new"]) for h in won["history"] if h["change"] == "win"] == [
        ("probability", "90.00", "100.00"), ("status", "open", "won"), ("closed_at", None, T2.isoformat())]
    assert [(h["field"], h["old"], h["new"]) for h in won["stage_rows"][-1] if h["change"] == "update"] == [
        ("left_at", None, T2.isoformat()), ("left_to", None, "won")]
    assert one["account"] == (7, Decimal("423456.78"))
    h = platform.schema.history
    with platform.engine.connect() as conn:  # set-based: a packed row per opportunity closed (one by one: per field)
        packed = dict(conn.execute(sa.select(h.c.record_id, sa.func.count()).where(
            h.c.object == "opportunity", h.c.change.in_(["win", "lose", "invalidate"]), h.c.field == "*")
            .group_by(h.c.record_id)).all())
    assert packed == {int(b[name]): 1 for name in ("ready", "ready2", "early", "pending", "unsigned")}
    withdrawn = one["pending"]
    assert [(x["kind"], x["status"], x["ended_by"], x["ended_at"]) for x in withdrawn["approvals"]] == [
        ("stage", "withdrawn", int(rep), later.replace(tzinfo=None))]
    assert [(t["user_id"], t["done_at"], t["done_by"]) for t in withdrawn["todos"]] == [
        (int(people["boss"]), later.replace(tzinfo=None), int(rep))]


QUICK = """\
kind: sales_process
name: quick
label: {zh: 快速流程, en: Quick sale}
stages:
  - key: deal
    label: {zh: 成交, en: Deal}
    probability: 80
    required_fields: [expected_close_date, next_step]
"""


def test_bulk_closes_check_required_fields_and_the_process_as_one_record_after_another(database_url, tmp_path):
    """A process whose last stage requires fields: the bulk win (set-based, its checks in SQL) wins the opportunity
    that filled them and refuses, as the single win does, one without the date, one whose next step is stored empty
    and one with neither; a bulk lose refuses one whose process is no longer defined, as the single lose does."""
    metadata = crm_metadata(tmp_path / "site", {"flows/quick.yaml": QUICK})
    with migrated_platform(database_url, tmp_path / "instance", metadata) as platform:
        rep = make_people(platform)["rep"]
        account = platform.records.create("account", {"name": "华信银行"}, user=rep)["id"]
        ot = platform.schema["opportunity"]

        def scenario() -> dict[str, str]:
            def opportunity(**more) -> str:
                return platform.records.create("opportunity", {"name": "零售条线CRM项目", "account": account,
                                                               "amount": "1000", "sales_process": "quick", **more},
                                               user=rep)["id"]

            o = {"filled": opportunity(expected_close_date="2026-12-31", next_step="签约"),
                 "no_date": opportunity(next_step="签约"),
                 "empty": opportunity(expected_close_date="2026-12-31", next_step="签约"), "neither": opportunity()}
            with platform.engine.begin() as conn:  # as an import may store it
                conn.execute(ot.table.update().where(ot.table.c.id == int(o["empty"])).values(
                    {ot.column("next_step"): ""}))
            return o

        def expected(o: dict[str, str]) -> dict:
            required = ["is required to leave stage Deal"]
            return {"succeeded": [o["filled"]], "failed": [
                {"id": o["no_date"], "error": {"code": "validation_failed", "message": "stage Deal is not finished: "
                                               "1 missing", "fields": {"expected_close_date": required}}},
                {"id": o["empty"], "error": {"code": "validation_failed", "message": "stage Deal is not finished: "
                                             "1 missing", "fields": {"next_step": required}}},
                {"id": o["neither"], "error": {"code": "validation_failed", "message": "stage Deal is not finished: "
                                               "2 missing", "fields": {"expected_close_date": required,
                                                                       "next_step": required}}}]}

        a, b = scenario(), scenario()
        assert without_reasons(one_by_one(platform, rep, "opportunity", "win", list(a.values()), {})) == expected(a)
        bulk = staged.behavior_of(platform, "opportunity").close_many(access_for(platform, rep), list(b.values()),
                                                                      "win", {})
        assert without_reasons(bulk) == expected(b)
        assert [platform.records.get("opportunity", o[k])["status"] for o in (a, b) for k in o] == [
            "won", "open", "open", "open"] * 2

        with platform.engine.begin() as conn:  # a process removed from the metadata
            conn.execute(ot.table.update().where(ot.table.c.id.in_([int(a["empty"]), int(b["empty"])])).values(
                {ot.column("sales_process"): "retired"}))
        lose = {"reason": "price", "comment": "价格过高"}
        for o, closed in ((a, one_by_one(platform, rep, "opportunity", "lose", [a["no_date"], a["empty"]], lose)),
                          (b, staged.behavior_of(platform, "opportunity").close_many(
                              access_for(platform, rep), [b["no_date"], b["empty"]], "lose", lose))):
            assert without_reasons(closed) == {"succeeded": [o["no_date"]], "failed": [{"id": o["empty"], "error": {
                "code": "conflict", "message": f"Opportunity {o['empty']} follows the sales process 'retired', "
                                               "which is not defined"}}]}


def advance_scenario(platform, people) -> dict[str, str]:
    """An account's opportunities in the states a bulk advance meets, by name: two in standard_sales' first stage
    and one in east_branch's, each finished; one in Proposal, finished (Negotiation needs the manager's approval);
    one in the first stage with its task and contact missing; one in the last stage; one waiting for an approval;
    one lost; and one of 华东区's rep (outside rep's scope)."""
    records, rep = platform.records, people["rep"]
    account = records.create("account", {"name": "华信银行"}, user=rep)["id"]
    contact = records.create("contact", {"name": "王建华", "account": account}, user=rep)["id"]

    def opportunity(process: str, stage: str | None = None, **more) -> str:
        return records.create("opportunity", {"name": "零售条线CRM项目", "account": account, "amount": "100000",
                                              "sales_process": process, "stage": stage, **more},
                              user=rep, system=True)["id"]

    o = {"account": account, "ready1": opportunity("standard_sales", contact=contact),
         "east": opportunity("east_branch", contact=contact), "ready2": opportunity("standard_sales", contact=contact),
         "approving": opportunity("standard_sales", "proposal", customer_address="北京市西城区金融大街8号"),
         "missing": opportunity("standard_sales"), "last": opportunity("east_branch", "closing"),
         "pending": opportunity("standard_sales", "proposal", customer_address="北京市西城区金融大街8号"),
         "lost": opportunity("standard_sales")}
    o["theirs"] = records.create("opportunity", {"name": "华东项目", "account": account, "amount": "70000",
                                                 "owner": people["east_rep"]}, system=True)["id"]
    for name in ("ready1", "east", "ready2"):
        act(platform, rep, "complete_task", o[name], {"task": "first_call"})
    for name in ("approving", "pending"):
        act(platform, rep, "complete_task", o[name], {"task": "submit_proposal"})
    act(platform, rep, "advance", o["pending"])
    act(platform, rep, "lose", o["lost"], {"reason": "price", "comment": "价格过高"})
    return o


def test_bulk_advance_is_set_based_and_answers_as_one_record_after_another(platform, people):
    """The same opportunities, once advanced one record after another and once by the API's bulk action (those
    entering a stage without approval set-based, per stage they leave; the one whose next stage needs approval on its
    own): the same successes and refusals (a task and a required field missing, the last stage, waiting, closed,
    scope, unknown id), records, history, stage history rows, the approval started with its to-do."""
    platform.clock = clock = FixedClock(T1)
    api, rep = Api(create_app(platform).test_client()), people["rep"]
    a, b = advance_scenario(platform, people), advance_scenario(platform, people)
    clock.at = T2
    batch = ["ready1", "east", "missing", "approving", "last", "pending", "lost", "theirs", "ready2"]

    def expected(o: dict[str, str]) -> dict:
        return {"succeeded": [o["ready1"], o["east"], o["approving"], o["ready2"]], "failed": [
            {"id": o["missing"], "error": {
                "code": "validation_failed", "message": "stage Confirm interest is not finished: 2 missing",
                "fields": {"tasks": ["Call about the needs is not done"],
                           "contact": ["is required to leave stage Confirm interest"]}}},
            {"id": o["last"], "error": {"code": "conflict", "message": f"Opportunity {o['last']} is in stage "
                                        "Closing, the last stage of East branch sales process: win it instead of "
                                        "advancing"}},
            {"id": o["pending"], "error": {"code": "conflict", "message": f"Opportunity {o['pending']} is in stage "
                                           "Proposal, waiting for approval to enter Negotiation: it cannot be "
                                           "advanced"}},
            {"id": o["lost"], "error": {"code": "conflict",
                                        "message": f"Opportunity {o['lost']} is Lost: it cannot be advanced"}},
            {"id": o["theirs"], "error": {"code": "not_found", "message": f"no opportunity with id {o['theirs']}"}},
            {"id": "999999", "error": {"code": "not_found", "message": "no opportunity with id 999999"}}]}

    one = one_by_one(platform, rep, "opportunity", "advance", [*(a[k] for k in batch), "999999"], {})
    assert without_reasons(one) == expected(a)
    status, many = api.post("/objects/opportunity/actions/advance", "rep", {"ids": [*(b[k] for k in batch), "999999"]})
    assert (status, without_reasons(many)) == (200, expected(b))

    one, many = closing_state(platform, a), closing_state(platform, b)
    for name in one:
        assert one[name] == many[name], name
    moved = one["ready2"]
    assert (moved["record"]["stage"], moved["record"]["probability"], moved["record"]["weighted_amount"]) == (
        "initiation", Decimal("40.00"), Decimal("40000.00"))
    assert [(h["field"], h["old"], h["new"]) for h in moved["history"] if h["change"] == "advance"] == [
        ("stage", "intent", "initiation"), ("probability", "10.00", "40.00")]
    assert [(h["field"], h["old"], h["new"]) for h in moved["stage_rows"][0] if h["change"] == "update"] == [
        ("left_at", None, T2.isoformat()), ("left_to", None, "initiation")]
    assert len(moved["stage_rows"]) == 2
    assert one["east"]["record"]["stage"] == "demo"
    waiting = one["approving"]
    assert (waiting["record"]["stage"], waiting["record"]["pending_stage"]) == ("proposal", "negotiation")
    assert [(x["kind"], x["status"]) for x in waiting["approvals"]] == [("stage", "pending")]
    h = platform.schema.history
    with platform.engine.connect() as conn:  # set-based: a packed row per opportunity moved (one by one: per field)
        packed = conn.execute(sa.select(h.c.record_id).where(
            h.c.object == "opportunity", h.c.change == "advance", h.c.field == "*").order_by(h.c.record_id)).all()
    assert [str(i) for i, in packed] == [b["ready1"], b["east"], b["ready2"]]
