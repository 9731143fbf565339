"""Summary tables (a report's `summary:`) on SQLite and PostgreSQL: after each kind of write (create, an update of a
grouping field, delete, restore, a transition, bulk assign and return, create_many, an import, auto-recycle, a
hand-over) the summary holds what a GROUP BY over the leads gives, and the shipped lead reports read from it give,
for a rep, a manager and an administrator, exactly what they give reading the leads; two writers at once; what falls
back to the leads; migrate's plan and its fill of existing leads."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from support import FixedClock
from test_api import make_people

from objectplatform.runtime.actions import run_action
from objectplatform.runtime.auth import auth_service
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.behaviors.recycle import recycle
from objectplatform.runtime.imports import prepare, read_bytes, run_import
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.records import recycle_bin
from objectplatform.runtime.reports import run_report
from objectplatform.runtime.reports.summary import SummaryCompiler
from objectplatform.runtime.storage.migrate import migrate, plan_migration

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
SUMMARY = "_op_summary_lead__owner__pool__status"
REPORTS = ("leads_by_status", "leads_by_owner_status")


@pytest.fixture
def people(platform, seeded) -> dict[str, str]:
    platform.clock = FixedClock(T0)
    return seeded(make_people)


@pytest.fixture
def north(platform, people) -> str:
    return platform.records.create("lead_pool", {"name": "华北区线索池", "members": [people["rep1"], people["rep2"]],
                                                 "admins": [people["boss"]], "recycle_unfollowed_days": 30},
                                  system=True)["id"]


@pytest.fixture
def served(monkeypatch) -> list[int]:
    """How many report statements were made over a summary (a run served from one makes several)."""
    calls = []
    statement = SummaryCompiler.statement

    def counted(self, *args, **kwargs):
        made = statement(self, *args, **kwargs)
        calls.append(1)
        return made

    monkeypatch.setattr(SummaryCompiler, "statement", counted)
    return calls


def summary_rows(platform) -> list[tuple]:
    """The summary's groups that count any lead: (owner, pool, status, count), empty keys as None."""
    with platform.engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT NULLIF(owner, 0), NULLIF(pool, 0), NULLIF(status, \'\'), n '
            f'FROM "{SUMMARY}" WHERE n <> 0')).all()
    return sorted((tuple(r) for r in rows), key=repr)


def lead_groups(platform) -> list[tuple]:
    """The same groups counted from the leads themselves."""
    with platform.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT owner, pool, status, count(*) FROM lead GROUP BY owner, pool, status")).all()
    return sorted((tuple(r) for r in rows), key=repr)


def same_as_the_leads(platform, people, served) -> None:
    """The summary holds the leads' groups, and each shipped lead report read from it equals the live run, for a
    rep, the manager and the administrator."""
    assert summary_rows(platform) == lead_groups(platform)
    for who in ("rep1", "boss", "admin"):
        access = access_for(platform, people[who])
        for name in REPORTS:
            report = platform.metadata.reports[name]
            before = len(served)
            summarised = run_report(platform, report, access=access)
            assert len(served) > before, f"{name} for {who} read the leads, not the summary"
            live = run_report(platform, replace(report, summary=None), access=access)
            assert (summarised.rows, summarised.totals) == (live.rows, live.totals), (name, who)


def lead(platform, user: str, name: str, **values) -> str:
    return platform.records.create("lead", {"name": name, "phone": "13800000000", **values}, user=user)["id"]


def act(platform, user: str, ids, action: str, params=None):
    return run_action(platform, access_for(platform, user), "lead", action, ids, params or {})


def by_status(platform, user: str, **filters) -> list[tuple]:
    result = run_report(platform, platform.metadata.reports["leads_by_status"], access=access_for(platform, user),
                        filters=filters)
    return [(row["status"], row["leads"]) for row in result.rows] + [("total", result.totals["leads"])]


def test_the_summary_follows_every_kind_of_write(platform, people, north, served):
    rep1, rep2, boss, admin = (people[k] for k in ("rep1", "rep2", "boss", "admin"))
    records = platform.records
    assert summary_rows(platform) == []
    a = lead(platform, admin, "张三", source="website", pool=north)  # create: into the pool, unassigned
    b = lead(platform, rep1, "李四", source="expo")
    c = lead(platform, rep2, "王五", source="website")
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep1) == [("unassigned", 1), ("pending", 1), ("total", 2)]  # the pool's lead too
    assert by_status(platform, boss) == [("unassigned", 1), ("pending", 2), ("total", 3)]
    assert by_status(platform, rep1, source="website") == [("unassigned", 1), ("total", 1)]
    pool_behavior.claim(platform, access_for(platform, rep1), "lead", a)  # a transition
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep1, source="website") == [("pending", 1), ("total", 1)]

    current = records.get("lead", b)  # an update of a grouping field
    records.update("lead", b, {"source": "website"}, version=current["version"], user=rep1)
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep1, source="website") == [("pending", 2), ("total", 2)]

    act(platform, rep1, a, "return", {"reason": "联系不上"})  # transitions: back into the pool
    act(platform, rep2, c, "invalidate", {"reason": "空号"})
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep1) == [("unassigned", 1), ("pending", 1), ("total", 2)]  # the pool's lead too
    assert by_status(platform, boss) == [("unassigned", 1), ("pending", 1), ("invalid", 1), ("total", 3)]

    records.delete("lead", b, user=admin)  # delete, then restore
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep1) == [("unassigned", 1), ("total", 1)]
    entry = next(e for e in recycle_bin.entries(platform) if e["record_id"] == b)
    recycle_bin.restore(platform, entry["id"], admin)
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep1) == [("unassigned", 1), ("pending", 1), ("total", 2)]

    created = records.create_many("lead", [{"name": f"批量{i}", "phone": "13900000000", "source": "expo",
                                            "pool": north} for i in range(5)], user=boss)  # create_many
    assert created.errors == []
    same_as_the_leads(platform, people, served)
    csv = "name,phone,source\n导入甲,13700000001,referral\n导入乙,13700000002,referral\n"  # an import
    prepared = prepare(platform.metadata.objects["lead"], read_bytes("lead.csv", csv.encode()))
    assert run_import(platform, prepared, user=rep2, caller=access_for(platform, rep2)).errors == []
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep2) == [("unassigned", 6), ("pending", 2), ("invalid", 1), ("total", 9)]

    waiting = [lid for lid in created.created]
    result = pool_behavior.assign_many(platform, access_for(platform, boss), "lead", waiting[:4],
                                       owners=[rep1, rep2])  # bulk assign, set-based
    assert len(result["succeeded"]) == 4
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep1) == [("unassigned", 2), ("pending", 4), ("total", 6)]  # the least loaded

    mine = [i for i in result["succeeded"] if records.get("lead", i)["owner"] == rep1]
    assert len(mine) == 3
    returned = act(platform, rep1, [*mine, c], "return", {"reason": "暂无需求"})  # bulk return, set-based
    assert (returned["succeeded"], [f["id"] for f in returned["failed"]]) == (mine, [c])  # c: rep2's, not seen
    same_as_the_leads(platform, people, served)
    assert by_status(platform, rep1) == [("unassigned", 5), ("pending", 1), ("total", 6)]

    platform.clock = FixedClock(datetime(2027, 3, 1, 2, 0, tzinfo=UTC))  # auto-recycle: one UPDATE of many
    with platform.records.transaction() as conn:
        recycle(platform, conn, "lead", reason="超期未跟进", now=platform.clock.now())
    same_as_the_leads(platform, people, served)

    auth_service(platform).deactivate(rep2, rep1, by=admin)  # a hand-over moves every lead rep2 owned
    same_as_the_leads(platform, people, served)


def test_a_run_the_summary_cannot_answer_reads_the_leads(platform, people, served):
    rep1 = people["rep1"]
    lead(platform, rep1, "张三", source="website")
    report = platform.metadata.reports["leads_by_status"]
    run_report(platform, report, access=access_for(platform, rep1), filters={"created_at": "this_month"})
    run_report(platform, report, access=access_for(platform, rep1), filters={"source": "website"})
    assert served == []  # created_at and source are not keys of the summary
    assert by_status(platform, rep1, source="website") == [("pending", 1), ("total", 1)]
    assert by_status(platform, rep1, source="expo") == [("total", 0)]
    run_report(platform, replace(report, summary=None), access=access_for(platform, rep1))
    assert served == []


def test_two_writers_at_once_both_count(platform, people):
    """Two transactions creating leads in the same groups at the same time: the upserts add up, none is lost."""
    rep1 = people["rep1"]
    errors = []

    def write(n: int) -> None:
        try:
            for i in range(n):
                lead(platform, rep1, f"并发{i}", source="website")
        except Exception as e:  # noqa: BLE001 (reported by the assertion below)
            errors.append(e)

    threads = [threading.Thread(target=write, args=(15,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert summary_rows(platform) == [(int(rep1), None, "pending", 30)]


def test_migrate_makes_the_summary_and_fills_it_from_the_leads(platform, people):
    rep1 = people["rep1"]
    for name in ("甲", "乙", "丙"):
        lead(platform, rep1, name)
    with platform.engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE "{SUMMARY}"'))
    plan = plan_migration(platform.engine, platform.schema)
    assert plan.render().splitlines()[:3] == [
        f"+ table {SUMMARY} (4 columns)",
        f"+ unique index uq_{SUMMARY} on {SUMMARY} (owner, pool, status)",
        f"~ fill summary {SUMMARY} (count of lead by owner, pool, status (for leads_by_owner_status, "
        "leads_by_status)) from 3 rows",
    ]
    migrate(platform.engine, platform.schema)
    assert summary_rows(platform) == [(int(rep1), None, "pending", 3)]
    assert plan_migration(platform.engine, platform.schema).render() == "nothing to do"
