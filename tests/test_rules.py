"""Time-based rules on SQLite and PostgreSQL as the clock moves: the shipped follow-up reminder, the pool
waiting notice and auto-recycle (warning, unfollowed and unconverted deadlines, 0 = never), the
`rules run` command, the scheduler's due logic, and a rule run by a real rq worker on Redis."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from support import FixedClock
from test_api import people as people  # noqa: F401  (fixtures)
from test_jobs import rq_setup as rq_setup  # noqa: F401
from test_jobs import rq_worker

from objectplatform import cli
from objectplatform.cli import main
from objectplatform.runtime import BadRequest, Settings, open_platform, rules, scheduler
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.jobs import JobRunner
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.workqueue import work_queue

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 in China
DAY = timedelta(days=1)
REMINDER, WAITING, RECYCLE = "lead_follow_up_reminder", "lead_pool_waiting", "lead_recycle"
CLOSE, STUCK = "opportunity_close_reminder", "opportunity_stuck_in_stage"  # flows/opportunity_rules.yaml
OVERDUE = "payment_plan_overdue"  # flows/order_rules.yaml
MISSED, FREQUENCY = "visit_missed", "visit_frequency_reminder"  # flows/visit_rules.yaml
REASON = "超期未跟进或未转换，系统自动收回线索池"
TODO = ("reminder", "跟进线索「张三」（星河科技）", "Follow up lead 张三 (星河科技)", "lead")


@pytest.fixture
def clock() -> FixedClock:
    """The platform's clock, standing at T0 until a test moves it."""
    return FixedClock(T0)


@pytest.fixture
def platform(platform, clock):
    platform.clock = clock
    return platform


def make_pool(platform, people, name: str = "华北区线索池", **values) -> str:
    values.setdefault("members", [people["rep1"], people["rep2"]])
    return platform.records.create("lead_pool", {"name": name, **values}, system=True)["id"]


MOBILES = iter(range(13900000000, 13999999999))


def held_lead(platform, people, pool: str, name: str = "张三", company: str = "星河科技", rep: str = "rep1") -> str:
    """A lead entering `pool` and claimed by `rep` at the clock's time."""
    lead = waiting_lead(platform, people, pool, name, company)
    pool_behavior.claim(platform, access_for(platform, people[rep]), "lead", lead)
    return lead


def waiting_lead(platform, people, pool: str, name: str = "李四", company: str = "云图科技") -> str:
    """A lead entering `pool` (unassigned) at the clock's time."""
    lead = platform.records.create("lead", {"name": name, "company": company, "mobile": str(next(MOBILES))},
                                   user=people["admin"])["id"]
    pool_behavior.enter_pool(platform, "lead", lead, pool, user=people["admin"])
    return lead


def follow_up(platform, people, lead: str, at: datetime, rep: str = "rep1") -> None:
    platform.records.create("follow_up", {"kind": "call", "content": "电话沟通", "related_object": "lead",
                                          "related_id": lead, "followed_at": at}, user=people[rep])


def run(platform, rule: str, at: datetime) -> dict:
    (summary,) = rules.run_rules(platform, at, [rule])
    return summary


def summary(rule: str, **counts) -> dict:
    return {"rule": rule, **dict.fromkeys(rules.SUMMARY_KEYS, 0), **counts}


def notes(platform, user: str) -> list[tuple]:
    items, _unread = work_queue(platform).notifications_for(user)
    return [(n.title_zh, n.title_en, n.object, n.record_id, n.created_at) for n in reversed(items)]


def todos(platform, user: str, include_done: bool = False) -> list[tuple]:
    items = work_queue(platform).todos_for(access_for(platform, user), include_done=include_done)
    return [(t.kind, t.title_zh, t.title_en, t.object, t.record_id, t.user_id, t.done_at) for t in reversed(items)]


# ------------------------------------------------------------------------------ follow-up reminder


def test_the_reminder_fires_on_day_7_not_day_6_and_only_once(platform, people, clock):
    pool = make_pool(platform, people)
    lead = held_lead(platform, people, pool)
    assert run(platform, REMINDER, T0 + 6 * DAY) == summary(REMINDER)
    assert run(platform, REMINDER, T0 + 7 * DAY) == summary(REMINDER, matched=1, notified=1, todos=1)
    assert run(platform, REMINDER, T0 + 7 * DAY + timedelta(hours=1)) == summary(REMINDER, matched=1)
    assert run(platform, REMINDER, T0 + 8 * DAY) == summary(REMINDER, matched=1)
    rep1 = people["rep1"]
    assert notes(platform, rep1) == [("线索「张三」（星河科技）已 7 天未跟进",
                                      "Lead 张三 (星河科技) has not been followed up for 7 days", "lead", lead,
                                      T0 + 7 * DAY)]
    assert todos(platform, rep1) == [(*TODO, lead, rep1, None)]
    assert notes(platform, people["rep2"]) == [] and todos(platform, people["rep2"]) == []


def test_the_reminders_to_do_closes_after_a_follow_up_and_a_new_silence_reminds_again(platform, people, clock):
    pool = make_pool(platform, people)
    lead = held_lead(platform, people, pool)
    run(platform, REMINDER, T0 + 7 * DAY)
    follow_up(platform, people, lead, T0 + 7 * DAY + timedelta(hours=2))
    assert platform.records.get("lead", lead)["status"] == "following"
    assert run(platform, REMINDER, T0 + 8 * DAY) == summary(REMINDER, closed=1)
    rep1 = people["rep1"]
    assert todos(platform, rep1) == []
    assert todos(platform, rep1, include_done=True) == [(*TODO, lead, rep1, T0 + 8 * DAY)]
    assert run(platform, REMINDER, T0 + 13 * DAY) == summary(REMINDER)
    assert run(platform, REMINDER, T0 + 14 * DAY) == summary(REMINDER, matched=1, notified=1, todos=1)
    assert [n[4] for n in notes(platform, rep1)] == [T0 + 7 * DAY, T0 + 14 * DAY]
    assert [t[6] for t in todos(platform, rep1, include_done=True)] == [T0 + 8 * DAY, None]


def test_a_lead_the_rule_stops_matching_for_any_reason_closes_its_to_do(platform, people, clock):
    pool = make_pool(platform, people)
    lead = held_lead(platform, people, pool)
    run(platform, REMINDER, T0 + 7 * DAY)
    pool_behavior.behavior_of(platform, "lead").give_back(access_for(platform, people["rep1"]), lead,
                                                         {"reason": "客户没有需求"})
    assert run(platform, REMINDER, T0 + 7 * DAY + timedelta(hours=1)) == summary(REMINDER, closed=1)
    assert todos(platform, people["rep1"]) == []


# ------------------------------------------------------------------------------ leads waiting in a pool


def test_pool_admins_are_each_told_once_when_a_lead_waits_more_than_3_days(platform, people, clock):
    pool = make_pool(platform, people, admins=[people["boss"], people["admin"]], members=[people["rep1"]])
    lead = waiting_lead(platform, people, pool)
    assert run(platform, WAITING, T0 + 3 * DAY) == summary(WAITING)
    assert run(platform, WAITING, T0 + 4 * DAY) == summary(WAITING, matched=1, notified=2)
    assert run(platform, WAITING, T0 + 5 * DAY) == summary(WAITING, matched=1)
    expected = [("线索「李四」在线索池「华北区线索池」中等待分配已超过 3 天",
                 "Lead 李四 has waited in the pool 华北区线索池 for more than 3 days", "lead", lead, T0 + 4 * DAY)]
    assert notes(platform, people["boss"]) == expected
    assert notes(platform, people["admin"]) == expected
    assert notes(platform, people["rep1"]) == []


# ------------------------------------------------------------------------------ auto-recycle


def test_the_owner_is_warned_k_days_before_and_the_lead_recycled_at_n_days(platform, people, clock):
    pool = make_pool(platform, people, recycle_unfollowed_days=5, recycle_warning_days=2)
    lead = held_lead(platform, people, pool)
    kept = held_lead(platform, people, pool, name="王五", company="华信银行")
    follow_up(platform, people, kept, T0 + DAY)
    minute = timedelta(minutes=1)
    assert run(platform, RECYCLE, T0 + 3 * DAY - minute) == summary(RECYCLE)
    assert run(platform, RECYCLE, T0 + 3 * DAY) == summary(RECYCLE, matched=1, warned=1)
    assert run(platform, RECYCLE, T0 + 3 * DAY + timedelta(hours=1)) == summary(RECYCLE)
    assert run(platform, RECYCLE, T0 + 5 * DAY - minute) == summary(RECYCLE)
    assert run(platform, RECYCLE, T0 + 5 * DAY) == summary(RECYCLE, matched=1, recycled=1)
    record = platform.records.get("lead", lead)
    assert {k: record[k] for k in ("owner", "status", "pool", "assigned_at", "return_reason")} == {
        "owner": None, "status": "unassigned", "pool": pool, "assigned_at": None, "return_reason": REASON}
    assert [(e["field"], e["old"], e["new"], e["user"], e["at"]) for e in platform.records.history("lead", lead)
            if e["change"] == "recycle"] == [
        ("owner", people["rep1"], None, None, T0 + 5 * DAY),
        ("status", "pending", "unassigned", None, T0 + 5 * DAY),
        ("assigned_at", T0.isoformat(), None, None, T0 + 5 * DAY),
        ("return_reason", None, REASON, None, T0 + 5 * DAY)]
    assert notes(platform, people["rep1"]) == [
        ("线索「张三」将在 2 天后收回到线索池「华北区线索池」，请尽快跟进",
         "Lead 张三 goes back to the pool 华北区线索池 in 2 days: follow it up soon", "lead", lead, T0 + 3 * DAY),
        (f"线索「张三」已收回到线索池「华北区线索池」：{REASON}",
         f"Lead 张三 went back to the pool 华北区线索池: {REASON}", "lead", lead, T0 + 5 * DAY)]
    assert platform.records.get("lead", kept)["owner"] == people["rep1"]
    assert run(platform, RECYCLE, T0 + 30 * DAY) == summary(RECYCLE)


def test_a_followed_lead_is_recycled_when_not_converted_within_m_days(platform, people, clock):
    pool = make_pool(platform, people, recycle_unconverted_days=10)
    lead = held_lead(platform, people, pool)
    follow_up(platform, people, lead, T0 + DAY)
    assert run(platform, RECYCLE, T0 + 10 * DAY - timedelta(seconds=1)) == summary(RECYCLE)
    assert run(platform, RECYCLE, T0 + 10 * DAY) == summary(RECYCLE, matched=1, recycled=1)
    record = platform.records.get("lead", lead)
    assert (record["owner"], record["status"], record["return_reason"]) == (None, "unassigned", REASON)
    assert [t for t, *_ in notes(platform, people["rep1"])] == [f"线索「张三」已收回到线索池「华北区线索池」：{REASON}"]


def test_zero_or_empty_recycle_settings_never_recycle(platform, people, clock):
    never = make_pool(platform, people, recycle_unfollowed_days=0, recycle_unconverted_days=0, recycle_warning_days=3)
    unset = make_pool(platform, people, name="华东区线索池")
    leads = [held_lead(platform, people, never), held_lead(platform, people, unset, name="赵六")]
    assert run(platform, RECYCLE, T0 + 365 * DAY) == summary(RECYCLE)
    assert [platform.records.get("lead", i)["owner"] for i in leads] == [people["rep1"]] * 2


# ------------------------------------------------------------------------------ the command


@pytest.fixture
def cli_platform(migrated_database_url, tmp_path, monkeypatch, clock):
    """A platform on the database the commands open, all of them on the test's clock."""
    monkeypatch.setenv("OBJECTPLATFORM_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("OBJECTPLATFORM_INSTANCE_PATH", str(tmp_path / f"instance-{uuid.uuid4().hex[:6]}"))

    def on_the_clock(settings: Settings):
        opened = open_platform(settings)
        opened.clock = clock
        return opened

    monkeypatch.setattr(cli, "open_platform", on_the_clock)
    platform = on_the_clock(Settings.from_env())
    yield platform
    platform.close()


def test_rules_run_prints_each_rules_summary(cli_platform, capsys):
    platform = cli_platform
    records = platform.records
    rep = records.create("user", {"username": "rep1", "display_name": "王伟", "password": "correct-horse-7",
                                  "roles": ["sales_rep"]}, system=True)["id"]
    pool = make_pool(platform, {"rep1": rep, "rep2": rep}, recycle_unfollowed_days=5)
    lead = records.create("lead", {"name": "张三", "mobile": "13900000001", "pool": pool}, system=True)["id"]
    pool_behavior.claim(platform, access_for(platform, rep), "lead", lead)
    capsys.readouterr()
    assert main(["rules", "run", "--now", "2026-12-04T09:00"]) == 0
    assert capsys.readouterr().out == (
        "rules as of 2026-12-04 09:00 Asia/Shanghai (2026-12-04T01:00:00Z)\n"
        "lead_follow_up_reminder: matched 1, notified 1, to-dos 1, closed 0, updated 0, recycled 0, warned 0\n"
        "lead_pool_waiting: matched 0, notified 0, to-dos 0, closed 0, updated 0, recycled 0, warned 0\n"
        "lead_recycle: matched 1, notified 0, to-dos 0, closed 0, updated 0, recycled 1, warned 0\n"
        "opportunity_close_reminder: matched 0, notified 0, to-dos 0, closed 0, updated 0, recycled 0, warned 0\n"
        "opportunity_stuck_in_stage: matched 0, notified 0, to-dos 0, closed 0, updated 0, recycled 0, warned 0\n"
        "payment_plan_overdue: matched 0, notified 0, to-dos 0, closed 0, updated 0, recycled 0, warned 0\n"
        "visit_missed: matched 0, notified 0, to-dos 0, closed 0, updated 0, recycled 0, warned 0\n"
        "visit_frequency_reminder: matched 0, notified 0, to-dos 0, closed 0, updated 0, recycled 0, warned 0\n"
        "approval reminders: 0\n")
    assert main(["rules", "run", "--now", "2026-12-04T09:30:00+08:00", "--rule", "lead_pool_waiting"]) == 0
    assert capsys.readouterr().out == (
        "rules as of 2026-12-04 09:30 Asia/Shanghai (2026-12-04T01:30:00Z)\n"
        "lead_pool_waiting: matched 0, notified 0, to-dos 0, closed 0, updated 0, recycled 0, warned 0\n")
    assert main(["rules", "run", "--rule", "lead_recycel"]) == 1
    assert capsys.readouterr().err == (
        "error: unknown rule 'lead_recycel'; scheduled rules: lead_follow_up_reminder, lead_pool_waiting, "
        "lead_recycle, opportunity_close_reminder, opportunity_stuck_in_stage, payment_plan_overdue, visit_missed, "
        "visit_frequency_reminder\n")
    assert main(["rules", "run", "--now", "next tuesday"]) == 1
    assert capsys.readouterr().err == (
        "error: --now 'next tuesday' is not an ISO 8601 date-time (e.g. 2026-12-04T09:00)\n")
    assert [s["rule"] for s in map(json.loads, _summaries(platform))] == [
        "lead_follow_up_reminder", "lead_pool_waiting", "lead_recycle", CLOSE, STUCK, OVERDUE, MISSED, FREQUENCY,
        "lead_pool_waiting"]


def _summaries(platform) -> list[str]:
    runs = platform.schema.rule_runs
    with platform.engine.connect() as conn:
        return list(conn.execute(sa.select(runs.c.summary).order_by(runs.c.id)).scalars())


def test_unknown_rules_are_refused_before_anything_runs(platform):
    with pytest.raises(BadRequest) as caught:
        rules.run_rules(platform, T0, ["lead_recycle", "nope"])
    assert caught.value.message == ("unknown rule 'nope'; scheduled rules: lead_follow_up_reminder, "
                                    "lead_pool_waiting, lead_recycle, opportunity_close_reminder, "
                                    "opportunity_stuck_in_stage, payment_plan_overdue, visit_missed, "
                                    "visit_frequency_reminder")
    assert scheduler.last_runs(platform) == {}


# ------------------------------------------------------------------------------ the scheduler


def china(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour - 8, minute, tzinfo=UTC) if hour >= 8 else \
        datetime(2026, 11, day - 1, hour + 16, minute, tzinfo=UTC)


SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_slots_follow_china_time():
    at = china(27, 9, 10)
    assert scheduler.slot_start("daily at 09:00", at, SHANGHAI) == china(27, 9)
    assert scheduler.slot_start("daily at 09:30", at, SHANGHAI) == china(26, 9, 30)
    assert scheduler.slot_start("daily", at, SHANGHAI) == china(27, 0)
    assert scheduler.slot_start("every 1h", at, SHANGHAI) == china(27, 9)
    assert scheduler.slot_start("hourly", at, SHANGHAI) == china(27, 9)
    assert scheduler.slot_start("every 15m", at, SHANGHAI) == china(27, 9)
    assert scheduler.slot_start("every 2d", at, SHANGHAI) in (china(26, 0), china(27, 0))


def test_due_rules_by_schedule_and_last_run(platform):
    def due(at: datetime) -> list[str]:
        return [r.name for r in scheduler.due_rules(platform, at)]

    assert due(china(27, 8, 30)) == [REMINDER, WAITING, RECYCLE, CLOSE, STUCK, OVERDUE, MISSED, FREQUENCY]  # never run
    assert scheduler.tick(platform, china(27, 8, 30)) == [REMINDER, WAITING, RECYCLE, CLOSE, STUCK, OVERDUE, MISSED,
                                                          FREQUENCY]
    assert due(china(27, 8, 59)) == []
    assert due(china(27, 9)) == [REMINDER, RECYCLE, CLOSE, STUCK, OVERDUE, FREQUENCY]
    assert scheduler.tick(platform, china(27, 9)) == [REMINDER, RECYCLE, CLOSE, STUCK, OVERDUE, FREQUENCY]
    assert due(china(27, 9, 29)) == []
    assert due(china(27, 9, 30)) == [WAITING]
    rules.run_rules(platform, china(27, 9, 30), [WAITING])
    assert due(china(27, 9, 59)) == []
    assert due(china(27, 10)) == [RECYCLE]
    assert due(china(28, 9)) == [REMINDER, RECYCLE, CLOSE, STUCK, OVERDUE, MISSED, FREQUENCY]
    assert scheduler.last_runs(platform) == {REMINDER: china(27, 9), WAITING: china(27, 9, 30), RECYCLE: china(27, 9),
                                             CLOSE: china(27, 9), STUCK: china(27, 9),
                                             OVERDUE: china(27, 9), MISSED: china(27, 8, 30), FREQUENCY: china(27, 9)}
    assert [json.loads(s) for s in _summaries(platform)][-2:] == [summary(FREQUENCY), summary(WAITING)]
    rules.run_rules(platform, china(30, 9), [REMINDER])  # a try-out dated later holds nothing back
    assert due(china(28, 9)) == [REMINDER, RECYCLE, CLOSE, STUCK, OVERDUE, MISSED, FREQUENCY]


def test_scheduler_once_from_the_command(cli_platform, capsys, clock):
    clock.at = china(27, 9, 5)
    assert main(["scheduler", "--once"]) == 0
    assert capsys.readouterr().out == ("started: lead_follow_up_reminder, lead_pool_waiting, lead_recycle, "
                                       "opportunity_close_reminder, opportunity_stuck_in_stage, payment_plan_overdue, "
                                       "visit_missed, visit_frequency_reminder\n")
    assert main(["scheduler", "--once"]) == 0
    assert capsys.readouterr().out == "no rule is due\n"


# ------------------------------------------------------------------------------ on Redis with rq


def test_schedulers_sharing_the_sites_redis_tick_once_a_minute(migrated_database_url, tmp_path, rq_setup):  # noqa: F811
    """Two processes' schedulers (two platforms on one database and one queue): the minute's tick is the first one's;
    the other skips it, even were the database to say the rules are due (as when both read it before either wrote)."""
    url, queue = rq_setup
    from support import migrated_platform

    with migrated_platform(migrated_database_url, tmp_path) as one, \
            migrated_platform(migrated_database_url, tmp_path) as other:
        one.jobs, other.jobs = JobRunner(url, queue), JobRunner(url, queue)
        at = china(27, 9, 5)
        assert scheduler.tick(one, at) == [REMINDER, WAITING, RECYCLE, CLOSE, STUCK, OVERDUE, MISSED, FREQUENCY]
        with one.engine.begin() as conn:  # as if `other` had read the runs before `one` wrote them
            conn.execute(one.schema.rule_runs.delete())
        assert scheduler.tick(other, at + timedelta(seconds=40)) == []  # the same minute: `one`'s
        assert scheduler.tick(other, at + timedelta(minutes=1)) == [REMINDER, WAITING, RECYCLE, CLOSE, STUCK, OVERDUE,
                                                                    MISSED, FREQUENCY]
        assert scheduler.tick(one, at + timedelta(minutes=1, seconds=30)) == []


def test_a_real_rq_worker_runs_the_scheduled_rule(migrated_database_url, tmp_path, rq_setup, clock):  # noqa: F811
    url, queue = rq_setup
    database_url = migrated_database_url
    from support import migrated_platform

    with migrated_platform(database_url, tmp_path) as platform:
        platform.jobs, platform.clock = JobRunner(url, queue), clock
        rep = platform.records.create("user", {"username": "rep9", "display_name": "王伟", "password": "plum-river-42",
                                               "roles": ["sales_rep"]}, system=True)["id"]
        pool = make_pool(platform, {"rep1": rep, "rep2": rep}, recycle_unfollowed_days=5)
        lead = platform.records.create("lead", {"name": "张三", "mobile": "13900000001", "pool": pool},
                                       system=True)["id"]
        pool_behavior.claim(platform, access_for(platform, rep), "lead", lead)
        at = T0 + 5 * DAY
        assert scheduler.tick(platform, at) == [REMINDER, WAITING, RECYCLE, CLOSE, STUCK, OVERDUE, MISSED, FREQUENCY]
        assert platform.records.get("lead", lead)["owner"] == rep  # queued, not run yet
        assert [json.loads(s) for s in _summaries(platform)] == [
            {"rule": REMINDER, "queued": True}, {"rule": WAITING, "queued": True}, {"rule": RECYCLE, "queued": True},
            {"rule": CLOSE, "queued": True}, {"rule": STUCK, "queued": True}, {"rule": OVERDUE, "queued": True},
            {"rule": MISSED, "queued": True}, {"rule": FREQUENCY, "queued": True}]
        os.environ["OBJECTPLATFORM_DATABASE_URL"] = database_url
        try:
            with rq_worker(url, queue, burst=True) as proc:
                assert proc.wait(timeout=60) == 0
        finally:
            del os.environ["OBJECTPLATFORM_DATABASE_URL"]
        assert [json.loads(s) for s in _summaries(platform)] == [
            summary(REMINDER), summary(WAITING), summary(RECYCLE, matched=1, recycled=1), summary(CLOSE),
            summary(STUCK), summary(OVERDUE), summary(MISSED), summary(FREQUENCY)]
        record = platform.records.get("lead", lead)
        assert (record["owner"], record["status"]) == (None, "unassigned")
        assert [t for t, *_ in notes(platform, rep)] == [f"线索「张三」已收回到线索池「华北区线索池」：{REASON}"]
