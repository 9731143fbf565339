"""Approvers deciding at the same moment on PostgreSQL: exactly one decision wins, the other is a 409; and of
two submits of one record at once, one starts the approval."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from test_approvals import account as account  # noqa: F401  (fixtures)
from test_approvals import act, approvals, decide, order
from test_approvals import clock as clock  # noqa: F401
from test_approvals import metadata as metadata  # noqa: F401
from test_approvals import people as people  # noqa: F401
from test_approvals import product as product  # noqa: F401
from test_records_race import run

from objectplatform.runtime import Conflict
from objectplatform.runtime.permissions import access_for


@pytest.fixture
def platform(platform):
    """conftest's platform, on PostgreSQL only."""
    if platform.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time (BEGIN IMMEDIATE): these races cannot happen there")
    return platform


def waiting_sessions(platform, count: int, timeout: float = 10.0) -> bool:
    """Whether `count` other sessions of this database wait on a lock (before `timeout`)."""
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")
    deadline = time.monotonic() + timeout
    with platform.engine.connect() as c:
        while time.monotonic() < deadline:
            if c.execute(query).scalar_one() >= count:
                return True
            c.rollback()
            time.sleep(0.02)
    return False


def held(platform, approval_id: str, release: threading.Event, holding: threading.Event):
    """A transaction holding the approval's row lock until `release` is set: both deciders read the step and
    then wait on their conditional UPDATE, so they really decide at the same moment."""

    def hold():
        table = platform.schema.approvals
        with platform.engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.id == int(approval_id)).values(step=table.c.step))
            holding.set()
            release.wait(30)

    return hold


def test_two_approvers_of_a_mode_any_step_at_once(platform, people, account, product):
    so = order(platform, people["rep"], account, product, "600000")
    act(platform, people["rep"], "sales_order", "submit", so["id"])
    decide(platform, people["boss"], "1", True)  # now the finance step: fin1 or fin2, mode any
    release, holding = threading.Event(), threading.Event()
    results: dict[str, dict] = {}

    def clerk(name: str):
        def go():
            holding.wait(30)
            results[name] = decide(platform, people[name], "1", True, f"{name} 同意")

        return go

    def releaser():
        holding.wait(30)
        blocked = waiting_sessions(platform, 2)
        release.set()  # both clerks wait on the lock, having read the step: let them go
        assert blocked

    raised = run(held(platform, "1", release, holding), clerk("fin1"), clerk("fin2"), releaser)
    assert raised[0] is None and raised[3] is None
    outcomes = sorted(type(e).__name__ if e else "ok" for e in raised[1:3])
    assert outcomes == ["Conflict", "ok"]
    loser = next(e for e in raised[1:3] if e is not None)
    assert isinstance(loser, Conflict)
    assert loser.message == f"approval 1 (Order approval {so['order_no']}) is already approved"
    [winner] = results
    approval = approvals(platform).pending_for_record("sales_order", so["id"])
    assert approval is None
    record = platform.records.get("sales_order", so["id"])
    assert record["status"] == "approved"
    finance = approvals(platform).get(access_for(platform, people["rep"]), "1")["steps"][1]
    decided = [(a["name"], a["decision"], a["comment"]) for a in finance["approvers"] if a["decision"]]
    assert decided == [({"fin1": "钱会计", "fin2": "孙出纳"}[winner], "approved", f"{winner} 同意")]


def test_two_submits_of_one_record_at_once(platform, people, account, product):
    so = order(platform, people["rep"], account, product, "1000")
    barrier = threading.Barrier(2)

    def submit():
        barrier.wait()
        act(platform, people["rep"], "sales_order", "submit", so["id"])

    raised = run(submit, submit)
    assert sorted(type(e).__name__ if e else "ok" for e in raised) == ["Conflict", "ok"]
    with platform.engine.connect() as conn:
        table = platform.schema.approvals
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 1
