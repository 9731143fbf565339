"""Lead conversion (the `convertible` behavior) on SQLite and PostgreSQL: through run_action and the API,
with the YAML mapping, caller overrides, an existing account, all or nothing, and the 409s."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from support import crm_metadata, migrated_platform
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401

from objectplatform.runtime.actions import actions_service, run_action
from objectplatform.runtime.behaviors.convertible import matches
from objectplatform.runtime.errors import Conflict, NotFound, ValidationFailed
from objectplatform.runtime.permissions import access_for

SYSTEM = {"id", "version", "owner", "created_by", "created_at", "updated_by", "updated_at"}


def filled(record: dict) -> dict:
    """The record's non-empty fields, without the system ones (compared exactly)."""
    return {k: v for k, v in record.items() if k not in SYSTEM and v is not None and v != []}


@pytest.fixture
def campaign(platform) -> str:
    return platform.records.create("campaign", {"name": "2026 上海展会", "type": "expo"}, system=True)["id"]


@pytest.fixture
def make_lead(platform, people, campaign):
    def make(owner: str = "rep1", **more) -> dict:
        values = {"name": "张伟", "company": "星辰科技", "title": "技术总监", "phone": "010-88886666",
                  "mobile": "13800138000", "email": "zhangwei@xingchen.cn", "wechat": "zw_xc", "source": "expo",
                  "campaign": campaign, "industry": "internet", "region": "north", "company_size": "s21_100",
                  "address": "北京市海淀区中关村大街1号", "description": "展会上交换名片", "intention": "high",
                  **more}
        # a lead in a later state is made as the pool's actions leave it (system), not by a user
        return platform.records.create("lead", values, user=people[owner], system="status" in more)
    return make


def count(platform, obj: str) -> int:
    return platform.records.list(obj, limit=1).total


def test_convert_with_the_mapping_through_run_action(platform, people, make_lead, campaign):
    lead = make_lead()
    rep1 = access_for(platform, people["rep1"])
    before = datetime.now(UTC)
    result = run_action(platform, rep1, "lead", "convert", lead["id"],
                        {"account": {}, "contact": {}, "opportunity": {"amount": "50000"}})
    after = datetime.now(UTC)
    assert set(result) == {"record", "account", "contact", "opportunity"}
    account, contact, opportunity = result["account"], result["contact"], result["opportunity"]
    assert filled(account) == {
        "name": "星辰科技", "phone": "010-88886666", "industry": "internet", "region": "north", "size": "s21_100",
        "source": "expo", "address": "北京市海淀区中关村大街1号", "description": "展会上交换名片",
        "opportunity_count": 1, "won_amount": Decimal("0.00"), "order_total": Decimal("0.00")}
    assert filled(contact) == {
        "name": "张伟", "account": account["id"], "title": "技术总监", "phone": "010-88886666",
        "mobile": "13800138000", "email": "zhangwei@xingchen.cn", "wechat": "zw_xc",
        "address": "北京市海淀区中关村大街1号", "is_primary": False, "is_decision_maker": False}
    stages = opportunity.pop("stage_history")  # the sales_process behavior enters the first stage
    assert filled(opportunity) == {
        "name": "星辰科技", "account": account["id"], "contact": contact["id"], "amount": Decimal("50000.00"),
        "status": "open", "source": "expo", "campaign": campaign, "sales_process": "standard_sales",
        "stage": "intent", "probability": Decimal("10.00"), "weighted_amount": Decimal("5000.00")}
    assert [(h["stage"], h["left_at"], h["moved_by"]) for h in stages] == [("intent", None, people["rep1"])]
    for record in (account, contact, opportunity):
        assert (record["owner"], record["created_by"]) == (people["rep1"], people["rep1"])
    converted = result["record"]
    assert converted["status"] == "converted"
    assert (converted["converted_account"], converted["converted_contact"], converted["converted_opportunity"]) == (
        account["id"], contact["id"], opportunity["id"])
    assert before <= converted["converted_at"] <= after
    assert converted["version"] == lead["version"] + 1
    assert converted["updated_by"] == people["rep1"]
    assert platform.records.get("lead", lead["id"]) == converted
    assert platform.records.get("campaign", campaign)["converted_lead_count"] == 1


def test_the_callers_values_override_the_mapping(platform, people, make_lead):
    lead = make_lead()
    rep1 = access_for(platform, people["rep1"])
    result = run_action(platform, rep1, "lead", "convert", lead["id"], {
        "account": {"name": "北京星辰科技有限公司", "grade": "a", "industry": "finance"},
        "contact": {"title": "CTO", "is_decision_maker": True, "email": None},
        "opportunity": {"name": "星辰科技 CRM 项目", "amount": "120000.50", "expected_close_date": "2026-12-31",
                        "source": "referral"}})
    assert filled(result["account"]) == {
        "name": "北京星辰科技有限公司", "phone": "010-88886666", "industry": "finance", "region": "north",
        "grade": "a", "size": "s21_100", "source": "expo", "address": "北京市海淀区中关村大街1号",
        "description": "展会上交换名片", "opportunity_count": 1, "won_amount": Decimal("0.00"),
        "order_total": Decimal("0.00")}
    contact = result["contact"]
    assert (contact["title"], contact["is_decision_maker"], contact["email"], contact["name"]) == (
        "CTO", True, None, "张伟")
    opportunity = result["opportunity"]
    assert (opportunity["name"], opportunity["amount"], opportunity["expected_close_date"].isoformat(),
            opportunity["source"]) == ("星辰科技 CRM 项目", Decimal("120000.50"), "2026-12-31", "referral")


def test_the_owner_is_always_the_converting_user(platform, people, make_lead):
    lead = make_lead()
    rep1 = access_for(platform, people["rep1"])
    result = run_action(platform, rep1, "lead", "convert", lead["id"], {"account": {"owner": people["rep2"]}})
    assert result["account"]["owner"] == people["rep1"]


def test_history_has_one_conversion_entry_set(platform, people, make_lead):
    lead = make_lead()
    rep1 = access_for(platform, people["rep1"])
    result = run_action(platform, rep1, "lead", "convert", lead["id"], {"account": {}, "contact": None})
    entries = [e for e in platform.records.history("lead", lead["id"]) if e["change"] == "update"]
    assert [(e["field"], e["old"], e["new"], e["user"]) for e in entries] == [
        ("status", "pending", "converted", people["rep1"]),
        ("converted_at", None, result["record"]["converted_at"].isoformat(), people["rep1"]),
        ("converted_account", None, result["account"]["id"], people["rep1"]),
    ]
    assert len({e["at"] for e in entries}) == 1


def test_a_failing_contact_rolls_back_the_account(platform, people, make_lead):
    lead = make_lead()
    rep1 = access_for(platform, people["rep1"])
    with pytest.raises(ValidationFailed) as e:
        run_action(platform, rep1, "lead", "convert", lead["id"],
                   {"account": {}, "contact": {"email": "not-an-email"}, "opportunity": {"amount": "1"}})
    assert e.value.fields == {"contact.email": ["not a valid email address"]}
    assert (count(platform, "account"), count(platform, "contact"), count(platform, "opportunity")) == (0, 0, 0)
    assert platform.records.get("lead", lead["id"]) == lead
    with pytest.raises(ValidationFailed) as e:
        run_action(platform, rep1, "lead", "convert", lead["id"], {"account": {}, "opportunity": {}})
    assert e.value.fields == {"opportunity.amount": ["is required"]}
    assert count(platform, "account") == 0
    with pytest.raises(ValidationFailed) as e:
        run_action(platform, rep1, "lead", "convert", lead["id"], {"account": {"name": None}})
    assert e.value.fields == {"account.name": ["is required"]}


def test_account_or_existing_account_exactly_one(platform, people, make_lead):
    lead = make_lead()
    rep1 = access_for(platform, people["rep1"])
    with pytest.raises(ValidationFailed) as e:
        run_action(platform, rep1, "lead", "convert", lead["id"], {"contact": {}})
    assert e.value.fields == {"account": ["give account (its fields) or existing_account"]}
    with pytest.raises(ValidationFailed) as e:
        run_action(platform, rep1, "lead", "convert", lead["id"], {"account": {}, "existing_account": "1"})
    assert e.value.fields == {"account": ["give either account (its fields) or existing_account, not both"]}
    with pytest.raises(ValidationFailed) as e:
        run_action(platform, rep1, "lead", "convert", lead["id"], {"account": "[1, 2]"})
    assert e.value.fields == {"account": ["must be an object of field values"]}
    with pytest.raises(ValidationFailed) as e:
        run_action(platform, rep1, "lead", "convert", lead["id"], {"account": {}, "bogus": 1})
    assert e.value.fields == {"bogus": ["unknown parameter"]}


def test_closed_leads_cannot_convert(platform, people, make_lead):
    rep1 = access_for(platform, people["rep1"])
    for status, label, mobile in (("invalid", "Invalid", "13800138001"), ("voided", "Voided", "13800138002")):
        lead = make_lead(status=status, mobile=mobile)  # one mobile per lead: same mobile is a duplicate
        with pytest.raises(Conflict) as e:
            run_action(platform, rep1, "lead", "convert", lead["id"], {"account": {}})
        assert e.value.message == f"Lead {lead['id']} is {label}: it cannot be converted"
    assert count(platform, "account") == 0


def test_account_matches_by_name_or_phone_within_scope(platform, people, make_lead):
    records = platform.records
    same_name = records.create("account", {"name": "星辰科技"}, user=people["rep1"])["id"]
    same_phone = records.create("account", {"name": "Acme", "phone": "13800138000"}, user=people["rep1"])["id"]
    records.create("account", {"name": "星辰科技集团"}, user=people["rep1"])
    records.create("account", {"name": "星辰科技", "phone": "010-88886666"}, user=people["rep2"])
    lead = make_lead()
    rep1, boss = access_for(platform, people["rep1"]), access_for(platform, people["boss"])
    assert [m["id"] for m in matches(platform, rep1, "lead", lead)] == [same_phone, same_name]
    assert matches(platform, rep1, "lead", lead)[1] == {"id": same_name, "name": "星辰科技", "phone": None,
                                                         "owner": people["rep1"]}
    assert len(matches(platform, boss, "lead", lead)) == 3
    preview = run_action(platform, rep1, "lead", "convert", lead["id"], {"preview": True})
    assert preview["matches"] == matches(platform, rep1, "lead", lead)
    assert preview["defaults"]["contact"] == {
        "name": "张伟", "title": "技术总监", "phone": "010-88886666", "mobile": "13800138000",
        "email": "zhangwei@xingchen.cn", "wechat": "zw_xc", "address": "北京市海淀区中关村大街1号"}
    assert preview["defaults"]["opportunity"] == {"name": "星辰科技", "source": "expo", "campaign": lead["campaign"]}
    assert preview["record"] == lead
    assert count(platform, "account") == 4


def test_the_follow_ups_are_found_from_the_account(platform, people, make_lead):
    lead = make_lead()
    follow_up = platform.records.create("follow_up", {"kind": "call", "content": "电话沟通需求",
                                                      "related_object": "lead", "related_id": lead["id"]},
                                        user=people["rep1"])
    rep1 = access_for(platform, people["rep1"])
    account = run_action(platform, rep1, "lead", "convert", lead["id"], {"account": {}})["account"]
    leads = platform.records.list("lead", filters={"converted_account": account["id"]}).items
    found = [f["id"] for lead in leads
             for f in platform.records.list("follow_up", filters={"related_object": "lead",
                                                                  "related_id": lead["id"]}).items]
    assert found == [follow_up["id"]]


# ------------------------------------------------------------------------------------------ API


def convert(api, lead_id: str, as_: str, body: dict):
    return api.post(f"/objects/lead/records/{lead_id}/actions/convert", as_, body)


def test_api_convert_with_existing_account(api, platform, people, make_lead):
    account = platform.records.create("account", {"name": "星辰科技", "grade": "b"}, user=people["rep1"])
    lead = make_lead()
    status, body = convert(api, lead["id"], "rep1", {"existing_account": account["id"], "contact": {},
                                                      "opportunity": None})
    assert status == 200, body
    assert set(body) == {"record", "account", "contact", "opportunity"}
    assert body["account"]["id"] == account["id"] and body["account"]["version"] == account["version"]
    assert body["opportunity"] is None
    assert body["contact"]["account"] == account["id"] and body["contact"]["name"] == "张伟"
    assert body["record"]["status"] == "converted"
    assert (body["record"]["converted_account"], body["record"]["converted_contact"],
            body["record"]["converted_opportunity"]) == (account["id"], body["contact"]["id"], None)
    assert count(platform, "account") == 1
    assert platform.records.get("account", account["id"]) == account


def test_api_convert_account_only_then_a_second_convert_is_409(api, platform, people, make_lead):
    lead = make_lead()
    status, body = convert(api, lead["id"], "rep1", {"account": {"name": "星辰"}})
    assert status == 200, body
    assert (body["account"]["name"], body["contact"], body["opportunity"]) == ("星辰", None, None)
    assert (body["record"]["converted_account"], body["record"]["converted_contact"]) == (body["account"]["id"], None)
    assert convert(api, lead["id"], "rep1", {"account": {}}) == (409, {"error": {
        "code": "conflict", "message": f"Lead {lead['id']} is Converted: it cannot be converted"}})
    assert count(platform, "account") == 1
    status, history = api.get(f"/objects/lead/records/{lead['id']}/history", "rep1")
    assert status == 200
    assert [(e["field"], e["new"]) for e in history["items"] if e["change"] == "update"] == [
        ("status", "converted"), ("converted_at", body["record"]["converted_at"]),
        ("converted_account", body["account"]["id"])]


def test_api_atomicity_names_the_part(api, platform, make_lead):
    lead = make_lead()
    status, body = convert(api, lead["id"], "rep1", {"account": {}, "contact": {"email": "not-an-email"}})
    assert (status, body) == (422, {"error": {"code": "validation_failed", "message": "1 field error",
                                              "fields": {"contact.email": ["not a valid email address"]}}})
    assert count(platform, "account") == 0
    assert platform.records.get("lead", lead["id"])["status"] == "pending"


def test_api_another_rep_cannot_convert_and_scope_guards_existing_account(api, platform, people, make_lead):
    lead = make_lead()
    assert convert(api, lead["id"], "rep2", {"account": {}}) == (404, {"error": {
        "code": "not_found", "message": f"no lead with id {lead['id']}"}})
    theirs = platform.records.create("account", {"name": "李娜的客户"}, user=people["rep2"])["id"]
    assert convert(api, lead["id"], "rep1", {"existing_account": theirs}) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error",
        "fields": {"existing_account": [f"no account with id {theirs}"]}}})
    assert platform.records.get("lead", lead["id"])["status"] == "pending"
    status, body = convert(api, lead["id"], "boss", {"existing_account": theirs})
    assert status == 200 and body["account"]["id"] == theirs  # the manager sees both reps' accounts
    assert convert(api, lead["id"], "finance", {"account": {}})[0] == 403


def test_convert_is_single_only(api, make_lead):
    lead = make_lead()
    status, body = api.post("/objects/lead/actions/convert", "rep1", {"ids": [lead["id"]], "account": {}})
    assert status == 404 and body["error"]["message"] == "Lead has no bulk action Convert"


def test_run_action_scope_for_service_callers(platform, people, make_lead):
    lead = make_lead()
    with pytest.raises(NotFound):
        run_action(platform, access_for(platform, people["rep2"]), "lead", "convert", lead["id"], {"account": {}})


def test_concurrent_converts_one_wins(platform, people, make_lead):
    lead = make_lead()
    accesses = [access_for(platform, people[who]) for who in ("rep1", "boss", "admin", "rep1")]
    barrier = threading.Barrier(len(accesses))
    outcomes: list[str] = []

    def attempt(access) -> None:
        barrier.wait()
        try:
            run_action(platform, access, "lead", "convert", lead["id"], {"account": {}, "contact": {}})
        except Conflict as e:
            outcomes.append(e.message)
        else:
            outcomes.append("converted")

    threads = [threading.Thread(target=attempt, args=(a,)) for a in accesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [f"Lead {lead['id']} is Converted: it cannot be converted"] * 3 + ["converted"]
    assert (count(platform, "account"), count(platform, "contact")) == (1, 1)


PROSPECT_LAYER = {
    "object_defs/prospect.yaml": """\
kind: object
name: prospect
label: {zh: 潜在客户, en: Prospect}
title_field: name
behaviors:
  convertible:
    targets:
      customer: {title: firm}
      deal: {name: firm}
    status_field: state
    converted_value: done
    links: {customer: customer, deal: deal}
fields:
  name:     {type: text, label: {zh: 姓名, en: Name}, required: true}
  firm:     {type: text, label: {zh: 公司, en: Firm}}
  state:    {type: picklist, picklist: prospect_state, label: {zh: 状态, en: State}, default: open}
  customer: {type: lookup, to: customer, label: {zh: 客户, en: Customer}, read_only: true}
  deal:     {type: lookup, to: deal, label: {zh: 交易, en: Deal}, read_only: true}
---
kind: object
name: customer
label: {zh: 客户, en: Customer}
title_field: title
fields:
  title: {type: text, label: {zh: 名称, en: Title}, required: true}
  phone: {type: phone, label: {zh: 电话, en: Phone}}
---
kind: object
name: deal
label: {zh: 交易, en: Deal}
title_field: name
fields:
  name:     {type: text, label: {zh: 名称, en: Name}, required: true}
  customer: {type: lookup, to: customer, label: {zh: 客户, en: Customer}, required: true}
  stage:    {type: picklist, picklist: deal_stage, label: {zh: 阶段, en: Stage}}
---
kind: picklist
name: prospect_state
label: {zh: 状态, en: State}
options:
  - {value: open, label: {zh: 开放, en: Open}}
  - {value: done, label: {zh: 完成, en: Done}}
  - {value: invalid, label: {zh: 无效, en: Invalid}}
---
kind: picklist
name: deal_stage
label: {zh: 阶段, en: Stage}
options:
  - {value: first_contact, label: {zh: 初步接洽, en: First contact}, active: false}
  - {value: qualify, label: {zh: 验证, en: Qualify}}
  - {value: propose, label: {zh: 方案, en: Proposal}}
""",
}


def test_any_object_declaring_the_behavior_converts_and_a_stage_picklist_starts_at_its_first_stage(
        database_url, tmp_path):
    site_metadata = crm_metadata(tmp_path / "site", PROSPECT_LAYER)
    with migrated_platform(database_url, tmp_path / "instance", site_metadata) as p:
        admin = p.records.create("user", {"username": "root", "display_name": "Root", "password": "correct-horse-7",
                                          "roles": ["admin"]}, system=True)["id"]
        prospect = p.records.create("prospect", {"name": "Ann", "firm": "Acme"}, user=admin)
        access = access_for(p, admin)
        actions = {a.name: a for a in actions_service(p).for_object("prospect")}
        assert [(x.name, x.type) for x in actions["convert"].params] == [
            ("customer", "record_values"), ("existing_customer", "lookup"), ("deal", "record_values"),
            ("preview", "boolean")]
        result = run_action(p, access, "prospect", "convert", prospect["id"], {"customer": {}, "deal": {}})
        assert filled(result["customer"]) == {"title": "Acme"}
        assert filled(result["deal"]) == {"name": "Acme", "customer": result["customer"]["id"], "stage": "qualify"}
        assert (result["record"]["state"], result["record"]["customer"], result["record"]["deal"]) == (
            "done", result["customer"]["id"], result["deal"]["id"])
        invalid = p.records.create("prospect", {"name": "Bo", "state": "invalid"}, user=admin)
        with pytest.raises(Conflict) as e:
            run_action(p, access, "prospect", "convert", invalid["id"], {"customer": {"title": "X"}})
        assert e.value.message == f"Prospect {invalid['id']} is Invalid: it cannot be converted"
