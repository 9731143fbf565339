"""Concurrent pool actions on PostgreSQL, each thread on its own connection: one claimer wins a lead, a
member's cap and daily limit hold however their claims interleave (single or bulk), and two bulk returns return each
lead once."""

from __future__ import annotations

import threading

import pytest

from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.errors import Conflict
from objectplatform.runtime.permissions import access_for

PASSWORD = "correct-horse-7"


@pytest.fixture
def platform(platform):
    """conftest's platform, on PostgreSQL only."""
    if platform.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time (BEGIN IMMEDIATE): these races cannot happen there")
    return platform


def users(platform, count: int) -> list[str]:
    return [platform.records.create("user", {"username": f"rep{i}", "display_name": f"销售{i}", "password": PASSWORD,
                                             "roles": ["sales_rep"]}, system=True)["id"] for i in range(count)]


def leads(platform, pool: str, count: int) -> list[str]:
    made = []
    for i in range(count):
        lead = platform.records.create("lead", {"name": f"客户{i}", "phone": "13800000000"})["id"]
        pool_behavior.enter_pool(platform, "lead", lead, pool)
        made.append(lead)
    return made


def race(calls) -> list[object]:
    """Run the calls in threads released together; each result is what it returned or raised."""
    results: list[object] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i, fn):
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as e:  # reported to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def claimer(platform, access, lead):
    return lambda: pool_behavior.claim(platform, access, "lead", lead)


def test_twenty_claimers_one_winner(platform):
    people = users(platform, 20)
    pool = platform.records.create("lead_pool", {"name": "华北区线索池", "members": people}, system=True)["id"]
    (lead,) = leads(platform, pool, 1)
    accesses = [access_for(platform, p) for p in people]
    results = race([claimer(platform, a, lead) for a in accesses])
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert (len(won), len(lost)) == (1, 19), results
    winner = won[0]["owner"]
    assert winner in people and won[0]["status"] == "pending"
    assert {e.message for e in lost} == {f"Lead {lead} is already claimed: it is Pending"}
    record = platform.records.get("lead", lead)
    assert (record["owner"], record["status"]) == (winner, "pending")
    claims = [(e["field"], e["new"]) for e in platform.records.history("lead", lead) if e["change"] == "claim"]
    assert claims[:2] == [("owner", winner), ("status", "pending")] and len(claims) == 3


def test_member_at_cap_minus_one_claiming_five_at_once_gets_one(platform):
    (rep,) = users(platform, 1)
    pool = platform.records.create("lead_pool", {"name": "华北区线索池", "members": [rep], "max_held_per_member": 3},
                                   system=True)["id"]
    held, free = leads(platform, pool, 2), leads(platform, pool, 5)
    access = access_for(platform, rep)
    for lead in held:
        pool_behavior.claim(platform, access, "lead", lead)
    results = race([claimer(platform, access, lead) for lead in free])
    assert sum(isinstance(r, dict) for r in results) == 1, results
    assert [r.message for r in results if isinstance(r, Conflict)] == [
        "you hold 3 leads from lead pool 华北区线索池, its max_held_per_member is 3: return or convert one first"] * 4
    owned = [platform.records.get("lead", lead)["owner"] for lead in free]
    assert owned.count(rep) == 1 and owned.count(None) == 4


def test_daily_limit_under_concurrent_claims(platform):
    (rep,) = users(platform, 1)
    pool = platform.records.create("lead_pool", {"name": "华北区线索池", "members": [rep], "daily_claim_limit": 3},
                                   system=True)["id"]
    first, free = leads(platform, pool, 2), leads(platform, pool, 6)
    access = access_for(platform, rep)
    for lead in first:
        pool_behavior.claim(platform, access, "lead", lead)
    results = race([claimer(platform, access, lead) for lead in free])
    assert sum(isinstance(r, dict) for r in results) == 1, results
    assert [r.message for r in results if isinstance(r, Conflict)] == [
        "you claimed 3 leads from lead pool 华北区线索池 today, its daily_claim_limit is 3"] * 5


def test_two_bulk_returns_of_the_same_leads_at_once_return_each_once(platform):
    """Two set-based bulk returns of the same ten held leads, at once: each lead is returned by one of them (its
    history has one return) and refused by the other as no longer held."""
    (rep,) = users(platform, 1)
    pool = platform.records.create("lead_pool", {"name": "华北区线索池", "members": [rep]}, system=True)["id"]
    held = leads(platform, pool, 10)
    access = access_for(platform, rep)
    for lead in held:
        pool_behavior.claim(platform, access, "lead", lead)
    behavior = pool_behavior.behavior_of(platform, "lead")
    results = race([lambda: behavior.give_back_many(access, held, {"reason": "客户暂无需求"})] * 2)
    assert all(isinstance(r, dict) for r in results), results
    returned = [lead for r in results for lead in r["succeeded"]]
    assert sorted(returned, key=int) == held
    refused = [(f["id"], f["error"]["message"]) for r in results for f in r["failed"]]
    assert sorted(refused, key=lambda f: int(f[0])) == [
        (lead, f"Lead {lead} is Unassigned: it cannot be returned") for lead in held]
    assert {(r["owner"], r["status"]) for r in (platform.records.get("lead", lead) for lead in held)} == {
        (None, "unassigned")}
    for lead in held:
        assert [(e["field"], e["new"]) for e in platform.records.history("lead", lead) if e["change"] == "return"
                ] == [("owner", None), ("status", "unassigned"), ("assigned_at", None),
                      ("return_reason", "客户暂无需求")]


def test_two_bulk_claims_by_one_member_at_once_hold_the_cap(platform):
    """Two set-based bulk claims by one member of six leads each, at once, from a pool holding 4 per member: the pool
    is locked first, so together they claim 4 leads, and each other lead is refused with the cap's message."""
    (rep,) = users(platform, 1)
    pool = platform.records.create("lead_pool", {"name": "华北区线索池", "members": [rep], "max_held_per_member": 4},
                                   system=True)["id"]
    waiting = leads(platform, pool, 12)
    behavior = pool_behavior.behavior_of(platform, "lead")
    access = access_for(platform, rep)
    results = race([lambda: behavior.claim_many(access, waiting[:6]), lambda: behavior.claim_many(access, waiting[6:])])
    assert all(isinstance(r, dict) for r in results), results
    claimed = sorted((lead for r in results for lead in r["succeeded"]), key=int)
    assert len(claimed) == 4 and claimed in (waiting[:4], waiting[6:10])
    assert [f["error"]["message"] for r in results for f in r["failed"]] == [
        "you hold 4 leads from lead pool 华北区线索池, its max_held_per_member is 4: return or convert one first"] * 8
    assert [platform.records.get("lead", lead)["owner"] for lead in claimed] == [rep] * 4
