"""The pool behavior on SQLite and PostgreSQL: claim, assign, return, move, invalidate, void, reopen,
their status transitions and 409s, who may run them, the per-member cap, the daily limit and the
re-claim cooldown as the clock moves, and bulk claims, assignments and returns through the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from support import FixedClock
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_api import without_reasons

from objectplatform.runtime.actions import run_action
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.behaviors import pool_sets
from objectplatform.runtime.errors import Conflict, Forbidden, RuntimeFailure, ValidationFailed
from objectplatform.runtime.permissions import access_for

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 10:00 in China


@pytest.fixture
def clock() -> FixedClock:
    """The platform's clock, standing at T0 until a test moves it."""
    return FixedClock(T0)


@pytest.fixture
def platform(platform, clock):
    platform.clock = clock
    return platform


def make_pool(platform, **values) -> str:
    return platform.records.create("lead_pool", {"name": "华北区线索池", **values}, system=True)["id"]


def make_lead(platform, pool: str | None, name: str = "客户", user: str | None = None) -> str:
    lead = platform.records.create("lead", {"name": name, "phone": "13800000000"}, user=user)["id"]
    if pool is not None:
        pool_behavior.enter_pool(platform, "lead", lead, pool, user=user)
    return lead


def who(platform, user_id: str):
    return access_for(platform, user_id)


def claim(platform, user_id: str, lead: str) -> dict:
    return pool_behavior.claim(platform, who(platform, user_id), "lead", lead)


def act(platform, user_id: str, lead: str | list, action: str, params=None) -> dict:
    return run_action(platform, who(platform, user_id), "lead", action, lead, params or {})


def changes(platform, lead: str, change: str) -> list[tuple]:
    return [(e["field"], e["old"], e["new"], e["user"], e["at"])
            for e in platform.records.history("lead", lead) if e["change"] == change]


def fields(record: dict) -> dict:
    return {k: record[k] for k in ("owner", "status", "pool", "assigned_at", "return_reason", "invalid_reason")}


def expect(error_type, fn, message: str):
    with pytest.raises(error_type) as caught:
        fn()
    assert caught.value.message == message


@pytest.fixture
def north(platform, people):
    return make_pool(platform, members=[people["rep1"], people["rep2"]], admins=[people["boss"]])


# ------------------------------------------------------------------------------ entering a pool


def test_a_lead_entering_a_pool_is_unassigned_or_goes_to_the_default_assignee(platform, people, clock, north):
    lead = make_lead(platform, north, user=people["admin"])
    assert fields(platform.records.get("lead", lead)) == {
        "owner": None, "status": "unassigned", "pool": north, "assigned_at": None, "return_reason": None,
        "invalid_reason": None}
    direct = make_pool(platform, name="直派池", default_assignee=people["rep2"])
    other = make_lead(platform, direct, user=people["admin"])
    assert fields(platform.records.get("lead", other)) == {
        "owner": people["rep2"], "status": "pending", "pool": direct, "assigned_at": T0, "return_reason": None,
        "invalid_reason": None}
    assert changes(platform, other, "move") == [
        ("pool", None, direct, people["admin"], T0), ("owner", people["admin"], people["rep2"], people["admin"], T0),
        ("assigned_at", None, T0.isoformat(), people["admin"], T0)]


def test_a_lead_created_or_imported_with_a_pool_enters_it(platform, people, north):
    direct = make_pool(platform, name="直派池", default_assignee=people["rep2"])
    records = platform.records
    base = {"name": "客户", "phone": "13800000000"}
    waiting = records.create("lead", {**base, "pool": north}, user=people["admin"])
    assigned = records.create("lead", {**base, "pool": direct}, user=people["admin"])
    kept = records.create("lead", {**base, "pool": north, "owner": people["rep1"]}, user=people["admin"])
    assert [(r["owner"], r["status"], r["assigned_at"] is None) for r in (waiting, assigned, kept)] == [
        (None, "unassigned", True), (people["rep2"], "pending", False), (people["rep1"], "pending", True)]
    assert assigned["assigned_at"] == assigned["created_at"]
    result = records.create_many("lead", [{**base, "pool": north}, {**base, "pool": direct}, {**base}],
                                 user=people["admin"])
    assert result.errors == []
    assert [(r["owner"], r["status"]) for r in (records.get("lead", i) for i in result.created)] == [
        (None, "unassigned"), (people["rep2"], "pending"), (people["admin"], "pending")]


# ------------------------------------------------------------------------------------- claim


def test_claim_sets_owner_status_and_history(platform, people, clock, north):
    lead = make_lead(platform, north, user=people["admin"])
    before = platform.records.get("lead", lead)["version"]
    record = claim(platform, people["rep1"], lead)
    assert fields(record) == {"owner": people["rep1"], "status": "pending", "pool": north, "assigned_at": T0,
                              "return_reason": None, "invalid_reason": None}
    assert record["version"] == before + 1
    assert record["updated_by"] == people["rep1"] and record["updated_at"] == T0
    assert changes(platform, lead, "claim") == [
        ("owner", None, people["rep1"], people["rep1"], T0),
        ("status", "unassigned", "pending", people["rep1"], T0),
        ("assigned_at", None, T0.isoformat(), people["rep1"], T0)]
    expect(Conflict, lambda: claim(platform, people["rep2"], lead),
           f"Lead {lead} is already claimed: it is Pending")


def test_claim_refusals(platform, people, clock, north):
    lead = make_lead(platform, north, user=people["admin"])
    expect(Forbidden, lambda: claim(platform, people["finance"], lead),
           "you are not a member of lead pool 华北区线索池")
    closed = make_pool(platform, name="金融行业线索池", claimable=False, members=[people["rep1"]])
    held_back = make_lead(platform, closed, user=people["admin"])
    expect(Forbidden, lambda: claim(platform, people["rep1"], held_back),
           "lead pool 金融行业线索池 is admin-assign only: members cannot claim")
    outside = make_lead(platform, None, user=people["rep1"])  # owned, status pending, no pool
    expect(Conflict, lambda: claim(platform, people["rep2"], outside),
           f"Lead {outside} is already claimed: it is Pending")
    act(platform, people["admin"], lead, "void", {"reason": "测试数据"})
    expect(Conflict, lambda: claim(platform, people["rep1"], lead), f"Lead {lead} is Voided: it cannot be claimed")
    assert platform.records.get("lead", lead)["owner"] is None


def test_member_departments_make_members(platform, people, clock):
    dept_pool = make_pool(platform, name="销售部池", member_departments=[people["sales"]])
    lead = make_lead(platform, dept_pool, user=people["admin"])
    assert claim(platform, people["rep2"], lead)["owner"] == people["rep2"]


def test_cap_on_leads_held_from_the_pool(platform, people, clock):
    capped = make_pool(platform, members=[people["rep1"]], max_held_per_member=2)
    leads = [make_lead(platform, capped, f"L{i}", user=people["admin"]) for i in range(4)]
    claim(platform, people["rep1"], leads[0])
    claim(platform, people["rep1"], leads[1])
    expect(Conflict, lambda: claim(platform, people["rep1"], leads[2]),
           "you hold 2 leads from lead pool 华北区线索池, its max_held_per_member is 2: return or convert one first")
    act(platform, people["rep1"], leads[0], "return", {"reason": "联系不上"})
    assert claim(platform, people["rep1"], leads[2])["owner"] == people["rep1"]
    act(platform, people["rep1"], leads[1], "invalidate", {"reason": "空号"})  # no longer held
    assert claim(platform, people["rep1"], leads[3])["owner"] == people["rep1"]


def test_daily_claim_limit_resets_at_midnight_china_time(platform, people, clock):
    limited = make_pool(platform, members=[people["rep1"]], daily_claim_limit=2)
    leads = [make_lead(platform, limited, f"L{i}", user=people["admin"]) for i in range(4)]
    claim(platform, people["rep1"], leads[0])
    claim(platform, people["rep1"], leads[1])
    act(platform, people["rep1"], leads[0], "return", {"reason": "不合适"})  # a return does not give a claim back
    expect(Conflict, lambda: claim(platform, people["rep1"], leads[2]),
           "you claimed 2 leads from lead pool 华北区线索池 today, its daily_claim_limit is 2")
    clock.at = datetime(2026, 11, 27, 15, 59, tzinfo=UTC)  # 23:59 in China: still today
    expect(Conflict, lambda: claim(platform, people["rep1"], leads[2]),
           "you claimed 2 leads from lead pool 华北区线索池 today, its daily_claim_limit is 2")
    clock.at = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 00:00 on the 28th in China
    assert claim(platform, people["rep1"], leads[2])["status"] == "pending"
    assert claim(platform, people["rep1"], leads[3])["status"] == "pending"


def test_reclaim_cooldown(platform, people, clock):
    cooling = make_pool(platform, members=[people["rep1"], people["rep2"]], reclaim_cooldown_days=7)
    lead = make_lead(platform, cooling, user=people["admin"])
    claim(platform, people["rep1"], lead)
    act(platform, people["rep1"], lead, "return", {"reason": "暂无需求"})
    clock.advance(days=6, hours=23)
    expect(Conflict, lambda: claim(platform, people["rep1"], lead),
           f"Lead {lead} left you less than 7 days ago (reclaim_cooldown_days 7): you may claim it back from "
           "2026-12-04 10:00")
    assert claim(platform, people["rep2"], lead)["owner"] == people["rep2"]  # others may claim it
    act(platform, people["rep2"], lead, "return", {"reason": "转给同事"})
    clock.advance(hours=1)  # 7 days after it left rep1
    assert claim(platform, people["rep1"], lead)["owner"] == people["rep1"]


def test_reclaim_cooldown_counts_a_bulk_assignment_away(platform, people, clock):
    """A lead a set-based assignment took from rep1 (its history one packed row per record) left rep1 then."""
    cooling = make_pool(platform, members=[people["rep1"], people["rep2"]], reclaim_cooldown_days=7)
    lead, other = make_lead(platform, cooling, user=people["admin"]), make_lead(platform, cooling, user=people["admin"])
    claim(platform, people["rep1"], lead)
    moved = pool_behavior.assign_many(platform, who(platform, people["admin"]), "lead", [lead, other],
                                      owner=people["rep2"])
    assert moved == {"succeeded": [lead, other], "failed": []}
    assert changes(platform, lead, "assign") == [("owner", people["rep1"], people["rep2"], people["admin"], T0)]
    act(platform, people["rep2"], lead, "return", {"reason": "转给同事"})
    clock.advance(days=6, hours=23)
    expect(Conflict, lambda: claim(platform, people["rep1"], lead),
           f"Lead {lead} left you less than 7 days ago (reclaim_cooldown_days 7): you may claim it back from "
           "2026-12-04 10:00")
    act(platform, people["rep2"], other, "return", {"reason": "转给同事"})
    assert claim(platform, people["rep1"], other)["owner"] == people["rep1"]  # it never left rep1
    clock.advance(hours=1)
    assert claim(platform, people["rep1"], lead)["owner"] == people["rep1"]


# ------------------------------------------------------------------------------ assign and move


def test_assign_by_admin_and_refusals(platform, people, clock, north):
    lead = make_lead(platform, north, user=people["admin"])
    body = act(platform, people["admin"], lead, "assign", {"owner": people["rep2"]})
    assert fields(body["record"]) == {"owner": people["rep2"], "status": "pending", "pool": north,
                                      "assigned_at": T0, "return_reason": None, "invalid_reason": None}
    assert changes(platform, lead, "assign") == [
        ("owner", None, people["rep2"], people["admin"], T0), ("status", "unassigned", "pending", people["admin"], T0),
        ("assigned_at", None, T0.isoformat(), people["admin"], T0)]
    later = clock.advance(hours=1)
    body = act(platform, people["admin"], lead, "assign", {"owner": people["rep1"]})  # re-assign keeps the status
    assert (body["record"]["owner"], body["record"]["status"], body["record"]["assigned_at"]) == (
        people["rep1"], "pending", later)
    expect(ValidationFailed, lambda: act(platform, people["admin"], lead, "assign", {}), "1 field error")
    expect(ValidationFailed, lambda: act(platform, people["admin"], lead, "assign", {"owner": "999"}), "1 field error")
    expect(Forbidden, lambda: act(platform, people["rep1"], lead, "assign", {"owner": people["rep1"]}),
           "your roles do not allow the action Assign on leads")
    act(platform, people["admin"], lead, "invalidate", {"reason": "重复"})
    expect(Conflict, lambda: act(platform, people["admin"], lead, "assign", {"owner": people["rep2"]}),
           f"Lead {lead} is Invalid: it cannot be assigned")


def test_marketing_reaches_all_leads_so_it_may_assign(platform, people, clock, north):
    marketing = platform.records.create("user", {"username": "mkt", "display_name": "市场", "password": "plum-river-42",
                                                 "roles": ["marketing"]}, system=True)["id"]
    lead = make_lead(platform, north, user=people["admin"])
    assert act(platform, marketing, lead, "assign", {"owner": people["rep1"]})["record"]["owner"] == people["rep1"]


def test_move_between_pools(platform, people, clock, north):
    south = make_pool(platform, name="华南区线索池")
    lead = make_lead(platform, north, user=people["admin"])
    body = act(platform, people["admin"], lead, "move", {"pool": south})
    assert fields(body["record"]) == {"owner": None, "status": "unassigned", "pool": south, "assigned_at": None,
                                      "return_reason": None, "invalid_reason": None}
    assert changes(platform, lead, "move")[-1] == ("pool", north, south, people["admin"], T0)
    expect(ValidationFailed, lambda: act(platform, people["admin"], lead, "move", {"pool": south}), "1 field error")
    expect(ValidationFailed, lambda: act(platform, people["admin"], lead, "move", {}), "1 field error")
    claim(platform, people["admin"], lead)
    expect(Conflict, lambda: act(platform, people["admin"], lead, "move", {"pool": north}),
           f"Lead {lead} is Pending: it cannot be moved")


# ------------------------------------------------------------------------------------- return


def test_return_to_this_or_another_pool(platform, people, clock, north):
    lead = make_lead(platform, north, user=people["admin"])
    claim(platform, people["rep1"], lead)
    expect(Forbidden, lambda: pool_behavior.behavior_of(platform, "lead").give_back(
        who(platform, people["rep2"]), lead, {"reason": "x"}), f"only the owner of lead {lead} may return it")
    expect(ValidationFailed, lambda: act(platform, people["rep1"], lead, "return", {}), "1 field error")
    at = clock.advance(days=1)
    body = act(platform, people["rep1"], lead, "return", {"reason": "客户暂无预算"})
    assert fields(body["record"]) == {"owner": None, "status": "unassigned", "pool": north, "assigned_at": None,
                                      "return_reason": "客户暂无预算", "invalid_reason": None}
    assert changes(platform, lead, "return") == [
        ("owner", people["rep1"], None, people["rep1"], at), ("status", "pending", "unassigned", people["rep1"], at),
        ("assigned_at", T0.isoformat(), None, people["rep1"], at),
        ("return_reason", None, "客户暂无预算", people["rep1"], at)]
    direct = make_pool(platform, name="直派池", default_assignee=people["rep2"])
    waiting = make_lead(platform, north, user=people["admin"])
    claim(platform, people["rep1"], lead)
    body = act(platform, people["rep1"], lead, "return", {"reason": "转华南", "pool": direct})
    assert fields(body["record"]) == {"owner": people["rep2"], "status": "pending", "pool": direct,
                                      "assigned_at": at, "return_reason": "转华南", "invalid_reason": None}
    expect(Conflict, lambda: act(platform, people["admin"], waiting, "return", {"reason": "x"}),
           f"Lead {waiting} is Unassigned: it cannot be returned")


# --------------------------------------------------------------------- invalidate, void, reopen


def test_invalidate_void_reopen(platform, people, clock, north):
    lead = make_lead(platform, north, user=people["admin"])
    claim(platform, people["rep1"], lead)
    body = act(platform, people["rep1"], lead, "invalidate", {"reason": "空号"})
    assert fields(body["record"]) == {"owner": people["rep1"], "status": "invalid", "pool": north, "assigned_at": T0,
                                      "return_reason": None, "invalid_reason": "空号"}
    expect(Conflict, lambda: act(platform, people["rep1"], lead, "invalidate", {"reason": "again"}),
           f"Lead {lead} is Invalid: it cannot be marked invalid")
    assert act(platform, people["rep1"], lead, "reopen")["record"]["status"] == "pending"
    expect(Conflict, lambda: act(platform, people["rep1"], lead, "reopen"),
           f"Lead {lead} is Pending: it cannot be reopened")
    expect(Forbidden, lambda: act(platform, people["rep1"], lead, "void", {"reason": "x"}),
           "your roles do not allow the action Void on leads")
    body = act(platform, people["boss"], lead, "void", {"reason": "测试数据"})
    assert (body["record"]["status"], body["record"]["invalid_reason"]) == ("voided", "测试数据")
    expect(Forbidden, lambda: act(platform, people["rep1"], lead, "reopen"),
           f"Lead {lead} is Voided: only an administrator may reopen it")
    expect(Forbidden, lambda: act(platform, people["boss"], lead, "reopen"),
           f"Lead {lead} is Voided: only an administrator may reopen it")
    expect(Conflict, lambda: act(platform, people["boss"], lead, "void", {"reason": "x"}),
           f"Lead {lead} is Voided: it cannot be voided")
    for action, params in (("return", {"reason": "x"}), ("invalidate", {"reason": "x"})):
        expect(Conflict, lambda a=action, p=params: act(platform, people["admin"], lead, a, p),
               f"Lead {lead} is Voided: it cannot be {pool_behavior.VERBS[action]}")
    assert act(platform, people["admin"], lead, "reopen")["record"]["status"] == "pending"
    assert [(f, o, n) for f, o, n, _, _ in changes(platform, lead, "reopen")] == [
        ("status", "invalid", "pending"), ("status", "voided", "pending")]
    unowned = make_lead(platform, north, user=people["admin"])
    act(platform, people["admin"], unowned, "invalidate", {"reason": "重复"})
    assert act(platform, people["admin"], unowned, "reopen")["record"]["status"] == "unassigned"


def test_converted_lead_refuses_every_pool_action(platform, people, clock, north):
    lead = make_lead(platform, north, user=people["admin"])
    claim(platform, people["rep1"], lead)
    platform.records.update("lead", lead, {"status": "converted"}, version=None, system=True)
    expect(Conflict, lambda: claim(platform, people["rep2"], lead),
           f"Lead {lead} is Converted: it cannot be claimed")
    for action, params in (("assign", {"owner": people["rep2"]}), ("return", {"reason": "x"}),
                           ("move", {"pool": north}), ("invalidate", {"reason": "x"}), ("void", {"reason": "x"}),
                           ("reopen", {})):
        expect(Conflict, lambda a=action, p=params: act(platform, people["admin"], lead, a, p),
               f"Lead {lead} is Converted: it cannot be {pool_behavior.VERBS[action]}")


# ------------------------------------------------------------------------------- bulk, via API


def test_bulk_claim_through_the_api_reports_partial_failures(api, platform, people, clock):
    admins_pool = make_pool(platform, members=[people["admin"]], max_held_per_member=2)
    leads = [make_lead(platform, admins_pool, f"L{i}", user=people["admin"]) for i in range(3)]
    taken = make_lead(platform, admins_pool, "taken", user=people["admin"])
    claim(platform, people["admin"], taken)
    status, body = api.post("/objects/lead/actions/claim", "admin", {"ids": [*leads, taken]})
    assert status == 200
    assert body == {"succeeded": [leads[0]], "failed": [
        {"id": leads[1], "error": {"code": "conflict", "message":
            "you hold 2 leads from lead pool 华北区线索池, its max_held_per_member is 2: return or convert one first"}},
        {"id": leads[2], "error": {"code": "conflict", "message":
            "you hold 2 leads from lead pool 华北区线索池, its max_held_per_member is 2: return or convert one first"}},
        {"id": taken, "error": {"code": "conflict",
                                "message": f"Lead {taken} is already claimed: it is Pending"}},
    ]}
    status, body = api.post(f"/objects/lead/records/{leads[1]}/actions/claim", "admin", {})
    assert status == 409 and body["error"]["message"].startswith("you hold 2 leads")


def test_bulk_assign_one_owner_and_spread_evenly(api, platform, people, clock, north):
    leads = [make_lead(platform, north, f"L{i}", user=people["admin"]) for i in range(7)]
    act(platform, people["admin"], leads[6], "void", {"reason": "x"})
    status, body = api.post("/objects/lead/actions/assign", "admin", {"ids": leads, "owner": people["rep1"]})
    assert (status, body["succeeded"], body["failed"]) == (200, leads[:6], [
        {"id": leads[6], "error": {"code": "conflict",
                                   "message": f"Lead {leads[6]} is Voided: it cannot be assigned"}}])
    more = [make_lead(platform, north, f"M{i}", user=people["admin"]) for i in range(8)]
    owners = [people["rep2"], people["boss"], people["admin"]]
    status, body = api.post("/objects/lead/actions/assign", "admin", {"ids": more, "owners": owners})
    assert (status, body) == (200, {"succeeded": more, "failed": []})
    got = [platform.records.get("lead", m)["owner"] for m in more]
    assert got == [owners[i % 3] for i in range(8)]
    # rep1 already holds 6 and rep2 3: spreading 4 more over them gives rep2 three, then the tie goes to rep1
    last = [make_lead(platform, north, f"N{i}", user=people["admin"]) for i in range(4)]
    status, body = api.post("/objects/lead/actions/assign", "admin",
                            {"ids": last, "owners": [people["rep1"], people["rep2"]]})
    assert body == {"succeeded": last, "failed": []}
    assert [platform.records.get("lead", n)["owner"] for n in last] == [people["rep2"]] * 3 + [people["rep1"]]
    # the bulk action is set-based (assign_many): a request giving both is refused whole, nothing assigned
    status, body = api.post("/objects/lead/actions/assign", "admin", {"ids": last, "owner": people["rep1"],
                                                                       "owners": [people["rep2"]]})
    assert (status, body) == (422, {"error": {"code": "validation_failed", "message": "1 field error",
                                              "fields": {"owners": ["give either owner or owners"]}}})
    assert [platform.records.get("lead", n)["owner"] for n in last] == [people["rep2"]] * 3 + [people["rep1"]]


def test_pool_admins_may_assign_and_move_their_pool_leads(platform, people, clock):
    """A pool admin whose role reaches only their own leads still manages the pool (the service check
    behind run_action's role check)."""
    behavior = pool_behavior.behavior_of(platform, "lead")
    own_pool = make_pool(platform, name="华东区线索池", admins=[people["rep1"]])
    other = make_pool(platform, name="华南区线索池", admins=[people["rep2"]])
    lead = make_lead(platform, own_pool, user=people["admin"])
    rep1, rep2 = who(platform, people["rep1"]), who(platform, people["rep2"])
    expect(Forbidden, lambda: behavior.assign(rep2, lead, {"owner": people["rep2"]}),
           f"only the admins of the lead pool and managers may assign lead {lead}")
    expect(Forbidden, lambda: behavior.move(rep2, lead, {"pool": other}),
           f"only the admins of the lead pool and managers may move lead {lead}")
    assert behavior.move(rep1, lead, {"pool": other})["pool"] == other
    assert behavior.assign(rep2, lead, {"owner": people["rep1"]})["owner"] == people["rep1"]


def test_set_based_assign_many_matches_the_bulk_action(platform, people, clock, north):
    leads = [make_lead(platform, north, f"L{i}", user=people["admin"]) for i in range(7)]
    act(platform, people["admin"], leads[0], "assign", {"owner": people["rep1"]})  # rep1 holds 1
    act(platform, people["admin"], leads[6], "void", {"reason": "x"})
    owners = [people["rep1"], people["rep2"], people["boss"]]
    result = pool_behavior.assign_many(platform, who(platform, people["admin"]), "lead", [*leads[1:], "999999"],
                                       owners=owners)
    assert without_reasons(result) == {"succeeded": leads[1:6], "failed": [
        {"id": leads[6], "error": {"code": "conflict",
                                   "message": f"Lead {leads[6]} is Voided: it cannot be assigned"}},
        {"id": "999999", "error": {"code": "not_found", "message": "no lead with id 999999"}}]}
    got = [platform.records.get("lead", lead)["owner"] for lead in leads[1:6]]
    assert got == [people["rep2"], people["boss"], people["rep1"], people["rep2"], people["boss"]]
    record = platform.records.get("lead", leads[1])
    assert (record["status"], record["assigned_at"], record["version"]) == ("pending", T0, 3)
    assert changes(platform, leads[1], "assign") == [
        ("owner", None, people["rep2"], people["admin"], T0),
        ("status", "unassigned", "pending", people["admin"], T0),
        ("assigned_at", None, T0.isoformat(), people["admin"], T0)]
    clock.advance(hours=2)
    again = pool_behavior.assign_many(platform, who(platform, people["admin"]), "lead", leads[:2],
                                      owner=people["boss"])
    assert again == {"succeeded": leads[:2], "failed": []}
    assert changes(platform, leads[0], "assign")[-1] == ("assigned_at", T0.isoformat(),
                                                         clock.at.isoformat(), people["admin"], clock.at)
    assert [platform.records.get("lead", lead)["status"] for lead in leads[:2]] == ["pending", "pending"]
    expect(Forbidden, lambda: pool_behavior.assign_many(platform, who(platform, people["rep1"]), "lead", leads,
                                                        owner=people["rep1"]),
           "your roles do not allow the action Assign on leads")
    expect(ValidationFailed, lambda: pool_behavior.assign_many(platform, who(platform, people["admin"]), "lead",
                                                               leads), "1 field error")
    expect(ValidationFailed, lambda: pool_behavior.assign_many(platform, who(platform, people["admin"]), "lead",
                                                               ["x1"], owner=people["rep1"]), "1 field error")


def bulk_scenario(platform, people, north, elsewhere, campaign, busy: str) -> list[str]:
    """Leads as a sales manager (boss) sees them: assignable ones, refused ones, and some out of their
    scope; `busy` already holds one lead."""
    records, admin, boss = platform.records, people["admin"], people["boss"]
    make_lead(platform, None, "已在手", user=busy)
    first = records.create("lead", {"name": "L0", "phone": "13800000000", "campaign": campaign}, user=admin)["id"]
    pool_behavior.enter_pool(platform, "lead", first, north, user=admin)
    leads = [first, make_lead(platform, None, "L1", user=boss), make_lead(platform, north, "L2", user=admin),
             make_lead(platform, None, "L3", user=admin), make_lead(platform, elsewhere, "L4", user=admin),
             make_lead(platform, north, "L5", user=admin), make_lead(platform, None, "L6", user=boss),
             make_lead(platform, north, "L7", user=admin)]
    act(platform, admin, leads[2], "void", {"reason": "空号"})
    act(platform, admin, leads[7], "invalidate", {"reason": "重复"})
    ot = platform.schema["lead"]
    with platform.engine.begin() as conn:
        conn.execute(sa.update(ot.table).where(ot.table.c.id == int(leads[6]))
                     .values({ot.column("status"): "following"}))
    return leads


def test_set_based_assign_many_answers_exactly_as_the_api_bulk_action(api, platform, people, clock, north):
    """The same leads in the same states, once through the API's bulk action (one record after another)
    and once through assign_many, to other owners in the same situation: the same successes, the same
    refusals with the same messages, the same owners, statuses and history."""
    records = platform.records
    elsewhere = make_pool(platform, name="华南区线索池")
    campaign = records.create("campaign", {"name": "春季展会", "type": "expo"}, system=True)["id"]
    x, y = (records.create("user", {"username": u, "display_name": u, "roles": ["sales_rep"]}, system=True)["id"]
            for u in ("rep3", "rep4"))
    a = bulk_scenario(platform, people, north, elsewhere, campaign, busy=people["rep2"])
    b = bulk_scenario(platform, people, north, elsewhere, campaign, busy=y)
    status, by_api = api.post("/objects/lead/actions/assign", "boss",
                              {"ids": [*a, "999999"], "owners": [people["rep1"], people["rep2"]]})
    assert status == 200
    assert by_api == {"succeeded": [a[0], a[1], a[5], a[6]], "failed": [
        {"id": a[2], "error": {"code": "conflict", "message": f"Lead {a[2]} is Voided: it cannot be assigned"}},
        {"id": a[3], "error": {"code": "not_found", "message": f"no lead with id {a[3]}"}},
        {"id": a[4], "error": {"code": "not_found", "message": f"no lead with id {a[4]}"}},
        {"id": a[7], "error": {"code": "conflict", "message": f"Lead {a[7]} is Invalid: it cannot be assigned"}},
        {"id": "999999", "error": {"code": "not_found", "message": "no lead with id 999999"}}]}
    # rep2 already held one: rep1, rep1 (the tie to the first given), rep2, rep1
    assert [(records.get("lead", i)["owner"], records.get("lead", i)["status"]) for i in by_api["succeeded"]] == [
        (people["rep1"], "pending"), (people["rep1"], "pending"), (people["rep2"], "pending"),
        (people["rep1"], "following")]

    same = pool_behavior.assign_many(platform, who(platform, people["boss"]), "lead", [*b, "999999"], owners=[x, y])
    ids = dict(zip(a, b, strict=True))
    users = {people["rep1"]: x, people["rep2"]: y}

    def person(value):
        return users.get(value, value) if isinstance(value, str) else value

    def refusal(failure: dict) -> dict:
        one, other = failure["id"], ids.get(failure["id"], failure["id"])
        message = failure["error"]["message"].replace(f"Lead {one} ", f"Lead {other} ")
        return {"id": other, "error": {**failure["error"], "message": message.replace(f"id {one}", f"id {other}")}}

    assert without_reasons(same) == {"succeeded": [ids[i] for i in by_api["succeeded"]],
                    "failed": [refusal(f) for f in by_api["failed"]]}
    for one, other in ids.items():
        before, after = records.get("lead", one), records.get("lead", other)
        assert ({k: person(v) for k, v in fields(before).items() if k != "pool"}, before["version"]) == (
            {k: v for k, v in fields(after).items() if k != "pool"}, after["version"])
        assert [tuple(person(v) for v in c) for c in changes(platform, one, "assign")] == changes(
            platform, other, "assign")
    assert changes(platform, b[0], "assign") == [("owner", None, x, people["boss"], T0),
                                                 ("status", "unassigned", "pending", people["boss"], T0),
                                                 ("assigned_at", None, T0.isoformat(), people["boss"], T0)]
    assert records.get("campaign", campaign)["lead_count"] == 2


def test_assign_many_spreads_a_batch_counting_what_the_owners_hold_outside_it(platform, people, clock, north):
    """Reassigning leads an owner holds: the batch is spread afresh (each lead counted once, for the
    owner it goes to), so rep1's two leads end one each."""
    held = [make_lead(platform, None, f"H{i}", user=people["rep1"]) for i in range(2)]
    result = pool_behavior.assign_many(platform, who(platform, people["admin"]), "lead", held,
                                       owners=[people["rep1"], people["rep2"]])
    assert result == {"succeeded": held, "failed": []}
    assert [platform.records.get("lead", i)["owner"] for i in held] == [people["rep1"], people["rep2"]]
    assert [c[:3] for c in changes(platform, held[0], "assign")] == [("assigned_at", None, T0.isoformat())]
    assert [c[:3] for c in changes(platform, held[1], "assign")] == [
        ("owner", people["rep1"], people["rep2"]), ("assigned_at", None, T0.isoformat())]


def one_by_one(platform, user_id: str, ids: list[str], params: dict, action: str = "return") -> dict:
    """A bulk action as the actions service ran it before it was set-based: the single action on each id in turn."""
    succeeded, failed = [], []
    for one in ids:
        try:
            act(platform, user_id, one, action, params)
        except RuntimeFailure as e:
            failed.append({"id": one, "error": e.as_dict()["error"]})
        else:
            succeeded.append(one)
    return {"succeeded": succeeded, "failed": failed}


def return_scenario(platform, people, suffix: str) -> tuple[dict[str, str], list[str]]:
    """Three pools of their own (华北: cooldown 7 days; 直派: rep2 its default assignee; 华南) and nine leads as the
    sales manager (boss) sees them at T0: R0 and R8 claimed by boss, R1 claimed and followed up by boss, R2 boss's
    own without a pool, R3 claimed by rep1, R4 waiting, R5 claimed and voided by boss, R6 the admin's (outside
    boss's scope), R7 in 直派 assigned to boss."""
    admin, boss, rep1, rep2 = (people[k] for k in ("admin", "boss", "rep1", "rep2"))
    pools = {"north": make_pool(platform, name=f"华北{suffix}", members=[rep1, rep2], admins=[boss],
                                reclaim_cooldown_days=7),
             "direct": make_pool(platform, name=f"直派{suffix}", admins=[boss], default_assignee=rep2),
             "south": make_pool(platform, name=f"华南{suffix}", admins=[boss])}
    north = pools["north"]
    leads = [make_lead(platform, north, "R0", user=admin), make_lead(platform, north, "R1", user=admin),
             make_lead(platform, None, "R2", user=boss), make_lead(platform, north, "R3", user=admin),
             make_lead(platform, north, "R4", user=admin), make_lead(platform, north, "R5", user=admin),
             make_lead(platform, None, "R6", user=admin), make_lead(platform, pools["direct"], "R7", user=admin),
             make_lead(platform, north, "R8", user=admin)]
    for i in (0, 1, 5, 8):
        claim(platform, boss, leads[i])
    claim(platform, rep1, leads[3])
    platform.records.create("follow_up", {"kind": "call", "content": "电话沟通", "related_object": "lead",
                                          "related_id": leads[1]}, user=boss)
    act(platform, boss, leads[5], "void", {"reason": "空号"})
    act(platform, admin, leads[7], "assign", {"owner": boss})
    return pools, leads


def returned_as_expected(leads: list[str]) -> dict:
    """The first bulk return (boss, R0 to R7 and an unknown id, each to its own pool)."""
    r = leads
    return {"succeeded": [r[0], r[1], r[7]], "failed": [
        {"id": r[2], "error": {"code": "validation_failed", "message": "1 field error",
                               "fields": {"pool": [f"Lead {r[2]} has no lead pool: choose one"]}}},
        {"id": r[3], "error": {"code": "forbidden", "message": f"only the owner of lead {r[3]} may return it"}},
        {"id": r[4], "error": {"code": "conflict", "message": f"Lead {r[4]} is Unassigned: it cannot be returned"}},
        {"id": r[5], "error": {"code": "conflict", "message": f"Lead {r[5]} is Voided: it cannot be returned"}},
        {"id": r[6], "error": {"code": "not_found", "message": f"no lead with id {r[6]}"}},
        {"id": "999999", "error": {"code": "not_found", "message": "no lead with id 999999"}}]}


def pool_groups(platform, pools: dict[str, str]) -> dict[tuple, int]:
    """The lead summary's groups of `pools` that count any lead, by (owner, pool's key in `pools`, status)."""
    key = {int(v): k for k, v in pools.items()}
    with platform.engine.connect() as conn:
        rows = conn.execute(sa.text('SELECT owner, pool, status, n FROM "_op_summary_lead__owner__pool__status" '
                                    "WHERE n <> 0")).all()
    return {(None if owner == 0 else str(owner), key[pool], status): n for owner, pool, status, n in rows
            if pool in key}


def test_bulk_return_is_set_based_and_answers_exactly_as_one_record_after_another(api, platform, people, clock):
    """The same leads in the same states, once returned one record after another (each its own single action) and
    once by the API's bulk action (set-based, `give_back_many`): the same successes and refusals, owners, pools,
    statuses, versions, history entries (packed, one row per lead), summary counts and re-claim cooldown."""
    admin, boss, rep1, rep2 = (people[k] for k in ("admin", "boss", "rep1", "rep2"))
    pools_a, a = return_scenario(platform, people, "A")
    pools_b, b = return_scenario(platform, people, "B")
    t1 = clock.advance(days=1)
    first = {"reason": "客户暂无需求"}
    assert without_reasons(one_by_one(platform, boss, [*a[:8], "999999"], first)) == returned_as_expected(a)
    status, body = api.post("/objects/lead/actions/return", "boss", {"ids": [*b[:8], "999999"], **first})
    assert (status, without_reasons(body)) == (200, returned_as_expected(b))
    t2 = clock.advance(hours=1)  # to another pool: R2 (none of its own), R8, and R0 returned already
    one = one_by_one(platform, boss, [a[2], a[8], a[0]], {"reason": "转华南", "pool": pools_a["south"]})
    status, many = api.post("/objects/lead/actions/return", "boss",
                            {"ids": [b[2], b[8], b[0]], "reason": "转华南", "pool": pools_b["south"]})
    for leads, result in ((a, one), (b, many)):
        assert without_reasons(result) == {"succeeded": [leads[2], leads[8]], "failed": [
            {"id": leads[0], "error": {"code": "conflict",
                                       "message": f"Lead {leads[0]} is Unassigned: it cannot be returned"}}]}

    def state(leads: list[str], pools: dict[str, str]) -> list[tuple]:
        names = {v: k for k, v in pools.items()}
        return [(r["owner"], names.get(r["pool"], r["pool"]), r["status"], r["assigned_at"], r["return_reason"],
                 r["version"]) for r in (platform.records.get("lead", i) for i in leads)]

    expected = [(None, "north", "unassigned", None, "客户暂无需求", 4),
                (None, "north", "unassigned", None, "客户暂无需求", 5),
                (None, "south", "unassigned", None, "转华南", 2), (rep1, "north", "pending", T0, None, 3),
                (None, "north", "unassigned", None, None, 2), (boss, "north", "voided", T0, None, 4),
                (admin, None, "pending", None, None, 1), (rep2, "direct", "pending", t1, "客户暂无需求", 4),
                (None, "south", "unassigned", None, "转华南", 4)]
    assert state(a, pools_a) == expected
    assert state(b, pools_b) == expected

    def returns(lead: str, pools: dict[str, str]) -> list[tuple]:
        names = {v: k for k, v in pools.items()}
        return [(f, names.get(old, old), names.get(new, new), *rest) if f == "pool" else (f, old, new, *rest)
                for f, old, new, *rest in changes(platform, lead, "return")]

    for one, other in zip(a, b, strict=True):
        assert returns(one, pools_a) == returns(other, pools_b)
    assert returns(b[0], pools_b) == [("owner", boss, None, boss, t1), ("status", "pending", "unassigned", boss, t1),
                                      ("assigned_at", T0.isoformat(), None, boss, t1),
                                      ("return_reason", None, "客户暂无需求", boss, t1)]
    assert returns(b[1], pools_b)[1] == ("status", "following", "unassigned", boss, t1)
    assert returns(b[7], pools_b) == [("owner", boss, rep2, boss, t1), ("assigned_at", T0.isoformat(), t1.isoformat(),
                                                                       boss, t1),
                                      ("return_reason", None, "客户暂无需求", boss, t1)]
    assert returns(b[2], pools_b) == [("pool", None, "south", boss, t2), ("owner", boss, None, boss, t2),
                                      ("status", "pending", "unassigned", boss, t2),
                                      ("return_reason", None, "转华南", boss, t2)]  # assigned_at stayed empty
    assert returns(b[8], pools_b) == [("pool", "north", "south", boss, t2), ("owner", boss, None, boss, t2),
                                      ("status", "pending", "unassigned", boss, t2),
                                      ("assigned_at", T0.isoformat(), None, boss, t2),
                                      ("return_reason", None, "转华南", boss, t2)]
    h = platform.schema.history
    with platform.engine.connect() as conn:  # set-based: one packed row per lead returned, field by field one by one
        rows = dict(conn.execute(sa.select(h.c.record_id, sa.func.count()).where(
            h.c.object == "lead", h.c.change == "return", h.c.field == "*").group_by(h.c.record_id)).all())
    assert rows == {int(b[i]): 1 for i in (0, 1, 2, 7, 8)}

    counts = {(None, "north", "unassigned"): 3, (rep1, "north", "pending"): 1, (boss, "north", "voided"): 1,
              (None, "south", "unassigned"): 2, (rep2, "direct", "pending"): 1}
    assert pool_groups(platform, pools_a) == counts
    assert pool_groups(platform, pools_b) == counts

    clock.advance(days=6, hours=22)  # the cooldown: boss may claim R0 and R1 back 7 days after they left them
    for lead in (a[0], a[1], b[0], b[1]):
        expect(Conflict, lambda lead=lead: claim(platform, boss, lead),
               f"Lead {lead} left you less than 7 days ago (reclaim_cooldown_days 7): you may claim it back from "
               "2026-12-05 10:00")
    assert [claim(platform, rep1, lead)["owner"] for lead in (a[1], b[1])] == [rep1, rep1]  # it never left rep1
    clock.advance(hours=1)
    assert [claim(platform, boss, lead)["owner"] for lead in (a[0], b[0])] == [boss, boss]


SETUP = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # two days before T0, 10:00 in China
IN_POOL = {"N0": "north", "N1": "north", "N2": "north", "N3": "north", "H": "north", "F": "north", "F2": "north",
           "C": "north", "C2": "north", "I": "north", "V": "north", "U": "north", "D1": "daily", "D2": "daily",
           "D3": "daily", "D4": "daily", "K": "closed", "E": "east", "G": None}


def pool_scenario(platform, people, clock, s: str) -> tuple[dict[str, str], dict[str, str]]:
    """Five pools of their own (their names ending in `s`) and twenty leads as they stand at T0, set up two days
    before: N0-N3 waiting in 华北 (max 4 held per member and 4 claims a day, cooldown 7 days, boss its admin); H
    held by rep1 there, F held and followed up; C and C2 claimed and returned by rep1 (cooling); I invalidated and
    F2 followed up then invalidated by rep1; V claimed by rep1 and voided by boss; U waiting, invalidated by the
    admin; D1-D4 waiting in 日限 (2 claims a day); K waiting in 封闭 (admin-assign only, boss its admin); E waiting
    in 华东 (rep1 its admin); G the admin's own without a pool; P waiting without a pool or owner."""
    admin, boss, rep1, rep2 = (people[k] for k in ("admin", "boss", "rep1", "rep2"))
    clock.at = SETUP
    pools = {"north": make_pool(platform, name=f"华北{s}", members=[rep1, rep2], admins=[boss]),
             "daily": make_pool(platform, name=f"日限{s}", members=[rep1], daily_claim_limit=2),
             "closed": make_pool(platform, name=f"封闭{s}", claimable=False, members=[rep1], admins=[boss]),
             "south": make_pool(platform, name=f"华南{s}", admins=[boss], default_assignee=rep2),
             "east": make_pool(platform, name=f"华东{s}", admins=[rep1])}
    leads = {name: make_lead(platform, pools[pool] if pool else None, name, user=admin)
             for name, pool in IN_POOL.items()}
    leads["P"] = platform.records.create("lead", {"name": "P", "phone": "13800000000", "status": "unassigned"},
                                         system=True)["id"]
    for name in ("H", "F", "F2", "C", "C2", "I", "V"):
        claim(platform, rep1, leads[name])
    for name in ("F", "F2"):
        platform.records.create("follow_up", {"kind": "call", "content": "电话沟通", "related_object": "lead",
                                              "related_id": leads[name]}, user=rep1)
    for name in ("C", "C2"):
        act(platform, rep1, leads[name], "return", {"reason": "暂无需求"})
    for name in ("I", "F2"):
        act(platform, rep1, leads[name], "invalidate", {"reason": "空号"})
    act(platform, boss, leads["V"], "void", {"reason": "测试数据"})
    act(platform, admin, leads["U"], "invalidate", {"reason": "重复"})
    platform.records.update("lead_pool", pools["north"], {"max_held_per_member": 4, "daily_claim_limit": 4,
                                                          "reclaim_cooldown_days": 7}, version=None, system=True)
    clock.at = T0
    return pools, leads


def gone(name: str) -> tuple:
    return (name, "not_found", f"no lead with id {name}", {})


def cannot(name: str, state: str, verb: str) -> tuple:
    return (name, "conflict", f"Lead {name} is {state}: it cannot be {verb}", {})


MAX_HELD = "you hold 4 leads from lead pool 华北{s}, its max_held_per_member is 4: return or convert one first"
BATCHES = {  # per action: the batches run in turn, (user, action, ids, params, successes, failures, states after)
    "claim": [
        ("rep1", "claim", ["N0", "C", "N1", "H", "N2", "C2", "I", "D1", "D2", "D3", "G", "999999"], {},
         ["N0", "N1", "D1", "D2"],
         [("C", "conflict", "Lead C left you less than 7 days ago (reclaim_cooldown_days 7): you may claim it back "
           "from 2026-12-02 10:00", {}),
          ("H", "conflict", "Lead H is already claimed: it is Pending", {}), ("N2", "conflict", MAX_HELD, {}),
          ("C2", "conflict", MAX_HELD, {}), cannot("I", "Invalid", "claimed"),
          ("D3", "conflict", "you claimed 2 leads from lead pool 日限{s} today, its daily_claim_limit is 2", {}),
          gone("G"), gone("999999")],
         {"N0": ("rep1", "north", "pending"), "D2": ("rep1", "daily", "pending")}),
        ("admin", "claim", ["K", "P", "N3", "U"], {}, [],  # N3 left the admin, who created it, as it entered 华北
         [("K", "forbidden", "lead pool 封闭{s} is admin-assign only: members cannot claim", {}),
          ("P", "conflict", "Lead P is not in a lead pool: it cannot be claimed", {}),
          ("N3", "conflict", "Lead N3 left you less than 7 days ago (reclaim_cooldown_days 7): you may claim it back "
           "from 2026-12-02 10:00", {}), cannot("U", "Invalid", "claimed")], {}),
        ("rep2", "claim", ["N3"], {}, ["N3"], [], {"N3": ("rep2", "north", "pending")}),
    ],
    "move": [
        ("boss", "move", ["N2", "H", "V", "G", "999999", "K"], {"pool": "south"}, ["N2", "K"],
         [cannot("H", "Pending", "moved"), cannot("V", "Voided", "moved"), gone("G"), gone("999999")],
         {"N2": ("rep2", "south", "pending"), "K": ("rep2", "south", "pending")}),
        ("boss", "move", ["N1", "N3"], {"pool": "north"}, [],
         [("N1", "validation_failed", "1 field error", {"pool": ["Lead N1 is already in 华北{s}"]}),
          ("N3", "validation_failed", "1 field error", {"pool": ["Lead N3 is already in 华北{s}"]})], {}),
        ("boss", "move", ["N3", "P"], {"pool": "east"}, ["N3"], [gone("P")], {"N3": (None, "east", "unassigned")}),
    ],
    "invalidate": [
        ("rep1", "invalidate", ["H", "F", "I", "N0", "G", "999999"], {"reason": "空号"}, ["H", "F", "N0"],
         [cannot("I", "Invalid", "marked invalid"), gone("G"), gone("999999")],
         {"H": ("rep1", "north", "invalid"), "N0": (None, "north", "invalid")}),
    ],
    "void": [
        ("boss", "void", ["H", "N0", "I", "V", "G"], {"reason": "测试数据"}, ["H", "N0", "I"],
         [cannot("V", "Voided", "voided"), gone("G")], {"I": ("rep1", "north", "voided")}),
    ],
    "reopen": [
        ("rep1", "reopen", ["I", "V", "H", "F2"], {}, ["I", "F2"],
         [("V", "forbidden", "Lead V is Voided: only an administrator may reopen it", {}),
          cannot("H", "Pending", "reopened")],
         {"I": ("rep1", "north", "pending"), "F2": ("rep1", "north", "following")}),
        ("admin", "reopen", ["V", "U", "N0"], {}, ["V", "U"], [cannot("N0", "Unassigned", "reopened")],
         {"V": ("rep1", "north", "pending"), "U": (None, "north", "unassigned")}),
    ],
}
MENTION = re.compile(r"((?:[Ll]ead|id) )(\d+)")


def named(result: dict, leads: dict[str, str], s: str) -> tuple[list, list]:
    """A bulk result with each lead's id, in ids and messages, replaced by its name in the scenario, and the
    scenario's pool names ending in {s}."""
    names = {v: k for k, v in leads.items()}

    def said(text: str) -> str:
        text = MENTION.sub(lambda m: m.group(1) + names.get(m.group(2), m.group(2)), text)
        return re.sub(f"(?<=[\u4e00-\u9fff]){s}", "{s}", text)  # a pool's name

    return ([names.get(i, i) for i in result["succeeded"]],
            [(names.get(f["id"], f["id"]), f["error"]["code"], said(f["error"]["message"]),
              {k: [said(m) for m in v] for k, v in f["error"].get("fields", {}).items()}) for f in result["failed"]])


def scenario_state(platform, people, leads: dict[str, str], pools: dict[str, str]) -> dict[str, tuple]:
    """Each lead's fields the pool actions write, its version and its whole history, in the scenario's names."""
    users = {v: k for k, v in people.items()}
    pool_names = {v: k for k, v in pools.items()}

    def value(field: str, v):
        return pool_names.get(v, v) if field == "pool" else users.get(v, v) if field == "owner" else v

    found = {}
    for name, lead in leads.items():
        r = platform.records.get("lead", lead)
        found[name] = ({k: value(k, v) for k, v in fields(r).items()}, r["version"], r["updated_at"],
                       [(e["change"], e["field"], value(e["field"], e["old"]), value(e["field"], e["new"]),
                         users.get(e["user"], e["user"]), e["at"]) for e in platform.records.history("lead", lead)])
    return found


@pytest.mark.parametrize("action", list(BATCHES))
def test_bulk_pool_actions_are_set_based_and_answer_exactly_as_one_record_after_another(api, platform, people, clock,
                                                                                        action):
    """The same leads in the same states, once run one record after another (each its own single action) and once
    by the API's bulk action (set-based, `PoolBehavior.run_many`): the same successes and refusals with the same
    messages, the same fields, versions, history entries and summary counts."""
    pools_a, a = pool_scenario(platform, people, clock, "A")
    pools_b, b = pool_scenario(platform, people, clock, "B")
    for user, name, given, params, succeeded, failed, after in BATCHES[action]:
        one = one_by_one(platform, people[user], [a.get(i, i) for i in given],
                         {k: pools_a[v] if k == "pool" else v for k, v in params.items()}, name)
        status, many = api.post(f"/objects/lead/actions/{name}", user, {
            "ids": [b.get(i, i) for i in given], **{k: pools_b[v] if k == "pool" else v for k, v in params.items()}})
        assert status == 200
        assert named(without_reasons(one), a, "A") == (succeeded, failed)
        assert named(without_reasons(many), b, "B") == (succeeded, failed)
        state = scenario_state(platform, people, b, pools_b)
        assert {lead: (state[lead][0]["owner"], state[lead][0]["pool"], state[lead][0]["status"])
                for lead in after} == after
    assert scenario_state(platform, people, a, pools_a) == scenario_state(platform, people, b, pools_b)
    assert pool_groups(platform, pools_a) == pool_groups(platform, pools_b)
    h = platform.schema.history
    with platform.engine.connect() as conn:  # set-based: one packed row per lead written
        packed = conn.execute(sa.select(sa.func.count()).where(
            h.c.object == "lead", h.c.record_id.in_([int(i) for i in b.values()]), h.c.at == T0.replace(tzinfo=None),
            h.c.field != "*")).scalar_one()
    assert packed == 0


def test_a_set_based_claim_counts_toward_the_limits_and_cooldown_of_later_claims(api, platform, people, clock):
    """After a bulk claim (its history one packed row per lead), single claims count its claims: the daily limit and
    the number held are reached, and a lead it claimed and that was returned cools down."""
    pools, leads = pool_scenario(platform, people, clock, "")
    status, body = api.post("/objects/lead/actions/claim", "rep1", {"ids": [leads[n] for n in ("D1", "D2", "N0")]})
    assert body == {"succeeded": [leads["D1"], leads["D2"], leads["N0"]], "failed": []}
    expect(Conflict, lambda: claim(platform, people["rep1"], leads["D4"]),
           "you claimed 2 leads from lead pool 日限 today, its daily_claim_limit is 2")
    act(platform, people["rep1"], leads["N0"], "return", {"reason": "暂无需求"})
    expect(Conflict, lambda: claim(platform, people["rep1"], leads["N0"]),
           f"Lead {leads['N0']} left you less than 7 days ago (reclaim_cooldown_days 7): you may claim it back from "
           "2026-12-04 10:00")
    status, body = api.post("/objects/lead/actions/claim", "rep1", {"ids": [leads[n] for n in ("N1", "N2", "N3")]})
    assert without_reasons(body) == {"succeeded": [leads["N1"], leads["N2"]], "failed": [
        {"id": leads["N3"], "error": {"code": "conflict", "message": MAX_HELD.format(s="")}}]}
    clock.advance(days=1)  # a new day: 日限 allows claims again, 华北 still counts the four leads rep1 holds
    expect(Conflict, lambda: claim(platform, people["rep1"], leads["N3"]), MAX_HELD.format(s=""))
    assert claim(platform, people["rep1"], leads["D4"])["owner"] == people["rep1"]


def test_bulk_move_refuses_the_leads_of_pools_the_caller_does_not_manage_as_moving_each_does(platform, people, clock):
    """rep1 administers 华东 only: set-based, E moves and N3 (in 华北, seen as a member) is refused as `move` refuses
    it."""
    pools, leads = pool_scenario(platform, people, clock, "")
    behavior, rep1 = pool_behavior.behavior_of(platform, "lead"), who(platform, people["rep1"])
    expect(Forbidden, lambda: behavior.move(rep1, leads["N2"], {"pool": pools["east"]}),
           f"only the admins of the lead pool and managers may move lead {leads['N2']}")
    result = behavior.run_many(rep1, "move", [leads["E"], leads["N3"]], {"pool": pools["north"]})
    assert without_reasons(result) == {"succeeded": [leads["E"]], "failed": [
        {"id": leads["N3"], "error": {"code": "forbidden",
                                      "message": f"only the admins of the lead pool and managers may move lead "
                                                 f"{leads['N3']}"}}]}
    assert fields(platform.records.get("lead", leads["E"]))["pool"] == pools["north"]


def test_spread_fills_the_least_loaded_first_then_takes_turns():
    """The owner of each rank, computed by the database from the rounds `spread` derives."""
    engine = sa.create_engine("sqlite://")
    rank = sa.column("rank", sa.BigInteger())

    def owners(held: dict, n: int) -> list[int]:
        expression = pool_sets.spread(list(held), held, rank)
        ranks = sa.union_all(*[sa.select(sa.literal(r).label("rank")) for r in range(1, n + 1)]).subquery()
        with engine.connect() as conn:
            return list(conn.execute(sa.select(expression).select_from(ranks).order_by(ranks.c.rank)).scalars())

    assert owners({"1": 0}, 3) == [1, 1, 1]
    assert owners({"1": 0, "2": 0, "3": 0}, 7) == [1, 2, 3, 1, 2, 3, 1]
    assert owners({"1": 6, "2": 3}, 4) == [2, 2, 2, 1]
    assert owners({"1": 1, "2": 0, "3": 0}, 5) == [2, 3, 1, 2, 3]
    assert owners({"1": 5, "2": 2, "3": 0, "4": 2}, 12) == [3, 3, 2, 3, 4, 2, 3, 4, 2, 3, 4, 1]


def test_members_see_and_claim_the_waiting_leads_of_their_pools_through_the_api(api, platform, people, clock):
    """A rep's scope is their own leads, plus the unowned leads waiting in the claimable pools they are a
    member of (named, or through a department); a pool's admins see its waiting leads even when only they
    may assign; nobody else sees them."""
    by_name = make_pool(platform, name="金融行业线索池", members=[people["rep1"]])
    by_department = make_pool(platform, name="华北区线索池", member_departments=[people["sales"]])
    closed = make_pool(platform, name="大客户线索池", claimable=False, members=[people["rep1"]],
                       admins=[people["rep2"]])
    finance = make_lead(platform, by_name, "金融客户", user=people["admin"])
    north = make_lead(platform, by_department, "华北客户", user=people["admin"])
    big = make_lead(platform, closed, "大客户", user=people["admin"])

    def names(as_: str) -> list[str]:
        return sorted(r["name"] for r in api.get("/objects/lead/records", as_)[1]["items"])

    assert names("rep1") == ["华北客户", "金融客户"]
    assert names("rep2") == ["华北客户", "大客户"]  # a department member, and the closed pool's admin
    assert api.get(f"/objects/lead/records/{big}", "rep1")[0] == 404
    status, body = api.post(f"/objects/lead/records/{finance}/actions/claim", "rep1", {})
    assert (status, body["record"]["owner"], body["record"]["status"]) == (200, people["rep1"], "pending")
    assert api.get(f"/objects/lead/records/{finance}", "rep2")[0] == 404  # claimed: rep1's own now
    status, body = api.post(f"/objects/lead/records/{north}/actions/claim", "rep2", {})
    assert (status, body["record"]["owner"]) == (200, people["rep2"])
    assert names("rep1") == ["金融客户"]
