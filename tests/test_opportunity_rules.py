"""The opportunity reminders of flows/opportunity_rules.yaml on SQLite and PostgreSQL as the clock moves: each
opportunity's own process sets the thresholds (close_reminder_days 7 / 5 / 14; avg_cycle_days over the number
of stages 18 / 15 / 45 days), who is told, once per occasion, the close reminder's to-do closing by itself,
and a misspelled process value in a rule condition reported at load with file and line."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from support import FixedClock, crm_metadata
from test_rules import run, summary
from test_sales_process import account as account  # noqa: F401  (fixtures)
from test_sales_process import act, edit
from test_sales_process import contact as contact  # noqa: F401
from test_sales_process import people as people  # noqa: F401

from objectplatform.metadata import MetadataError
from objectplatform.runtime.behaviors import staged
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.workqueue import work_queue

CLOSE, STUCK = "opportunity_close_reminder", "opportunity_stuck_in_stage"
T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in China
DAY = timedelta(days=1)
CLOSE_DATE = date(2026, 12, 31)
AT_CLOSE = datetime(2026, 12, 31, 1, 0, tzinfo=UTC)


def notes(platform, user: str) -> list[tuple]:
    items, _unread = work_queue(platform).notifications_for(user)
    return [(n.title_zh, n.title_en, n.record_id, n.created_at) for n in reversed(items)]


def todos(platform, user: str, include_done: bool = False) -> list[tuple]:
    items = work_queue(platform).todos_for(access_for(platform, user), include_done=include_done)
    return [(t.kind, t.title_zh, t.title_en, t.record_id, t.done_at) for t in reversed(items)]


def opportunity(platform, owner: str, account: str, name: str, **more) -> str:
    return platform.records.create("opportunity", {"name": name, "account": account, "amount": "300000", **more},
                                   user=owner)["id"]


def entered(platform, record_id: str, stage: str, at: datetime, user: str) -> None:
    """The opportunity has been in `stage` since `at` (its stage history says so)."""
    with platform.records.transaction() as conn:
        staged.replace_stage_history(platform.records, conn, "opportunity", record_id,
                                     [{"stage": stage, "entered_at": at, "moved_by": user}], user, at)


# ------------------------------------------------------------------------------ close date approaching


def test_each_process_reminds_its_own_days_before_the_close_date_once(platform, people, account):
    rep, east_rep = people["rep"], people["east_rep"]
    standard = opportunity(platform, rep, account, "华信银行CRM", expected_close_date=CLOSE_DATE.isoformat())
    east = opportunity(platform, east_rep, account, "华东门店系统", expected_close_date=CLOSE_DATE.isoformat())
    government = opportunity(platform, rep, account, "税务局平台", sales_process="government",
                             expected_close_date=CLOSE_DATE.isoformat())
    opportunity(platform, rep, account, "没有日期的商机")  # no expected close date: never reminded

    assert run(platform, CLOSE, AT_CLOSE - 15 * DAY) == summary(CLOSE)
    assert run(platform, CLOSE, AT_CLOSE - 14 * DAY) == summary(CLOSE, matched=1, notified=1, todos=1)
    assert run(platform, CLOSE, AT_CLOSE - 8 * DAY) == summary(CLOSE, matched=1)
    assert run(platform, CLOSE, AT_CLOSE - 7 * DAY) == summary(CLOSE, matched=2, notified=1, todos=1)
    assert run(platform, CLOSE, AT_CLOSE - 6 * DAY) == summary(CLOSE, matched=2)
    assert run(platform, CLOSE, AT_CLOSE - 5 * DAY) == summary(CLOSE, matched=3, notified=1, todos=1)
    assert run(platform, CLOSE, AT_CLOSE - 5 * DAY) == summary(CLOSE, matched=3)
    assert run(platform, CLOSE, AT_CLOSE + 3 * DAY) == summary(CLOSE, matched=3)  # past the date: still open

    assert notes(platform, rep) == [
        ("商机「税务局平台」预计 2026-12-31 成交，请尽快推进",
         "Opportunity 税务局平台 is expected to close on 2026-12-31: move it forward", government, AT_CLOSE - 14 * DAY),
        ("商机「华信银行CRM」预计 2026-12-31 成交，请尽快推进",
         "Opportunity 华信银行CRM is expected to close on 2026-12-31: move it forward", standard, AT_CLOSE - 7 * DAY)]
    assert notes(platform, east_rep) == [
        ("商机「华东门店系统」预计 2026-12-31 成交，请尽快推进",
         "Opportunity 华东门店系统 is expected to close on 2026-12-31: move it forward", east, AT_CLOSE - 5 * DAY)]
    assert todos(platform, rep) == [
        ("reminder", "推进商机「税务局平台」（预计 2026-12-31 成交）",
         "Close opportunity 税务局平台 (expected on 2026-12-31)", government, None),
        ("reminder", "推进商机「华信银行CRM」（预计 2026-12-31 成交）",
         "Close opportunity 华信银行CRM (expected on 2026-12-31)", standard, None)]
    assert notes(platform, people["boss"]) == [] and todos(platform, people["boss"]) == []


def test_the_close_to_do_closes_when_the_deal_closes_or_the_date_moves_out(platform, people, account):
    platform.clock = FixedClock(AT_CLOSE - 6 * DAY)
    rep = people["rep"]
    lost = opportunity(platform, rep, account, "华信银行CRM", expected_close_date=CLOSE_DATE.isoformat())
    moved = opportunity(platform, rep, account, "零售条线项目", expected_close_date=CLOSE_DATE.isoformat())
    assert run(platform, CLOSE, AT_CLOSE - 7 * DAY) == summary(CLOSE, matched=2, notified=2, todos=2)

    act(platform, rep, "lose", lost, {"reason": "price", "comment": "客户选择了更便宜的方案"})
    edit(platform.records, moved, rep, expected_close_date="2027-01-31")
    at = AT_CLOSE - 6 * DAY
    assert run(platform, CLOSE, at) == summary(CLOSE, closed=2)
    assert todos(platform, rep) == []
    assert [(t[3], t[4]) for t in todos(platform, rep, include_done=True)] == [(lost, at), (moved, at)]

    # the moved one approaches again: a new occasion, reminded again with the new date
    again = datetime(2027, 1, 24, 1, 0, tzinfo=UTC)
    assert run(platform, CLOSE, again) == summary(CLOSE, matched=1, notified=1, todos=1)
    assert todos(platform, rep) == [("reminder", "推进商机「零售条线项目」（预计 2027-01-31 成交）",
                                     "Close opportunity 零售条线项目 (expected on 2027-01-31)", moved, None)]
    assert [n[3] for n in notes(platform, rep)] == [AT_CLOSE - 7 * DAY, AT_CLOSE - 7 * DAY, again]


# ------------------------------------------------------------------------------ stuck in a stage


def test_a_stage_held_longer_than_its_share_of_the_cycle_tells_the_owner_and_manager_once(
        platform, people, account, contact, monkeypatch):
    rep, boss, east_rep = people["rep"], people["boss"], people["east_rep"]
    standard = opportunity(platform, rep, account, "华信银行CRM")  # 90 days / 5 stages: 18 days a stage
    east = opportunity(platform, east_rep, account, "华东门店系统")  # 60 / 4: 15
    government = opportunity(platform, rep, account, "税务局平台", sales_process="government")  # 180 / 4: 45
    for record_id, owner in ((standard, rep), (east, east_rep), (government, rep)):
        entered(platform, record_id, "intent" if record_id != government else "needs", T0, owner)

    assert run(platform, STUCK, T0 + 15 * DAY) == summary(STUCK)
    assert run(platform, STUCK, T0 + 16 * DAY) == summary(STUCK, matched=1, notified=1)  # east_rep has no manager
    assert run(platform, STUCK, T0 + 18 * DAY) == summary(STUCK, matched=1)
    assert run(platform, STUCK, T0 + 19 * DAY) == summary(STUCK, matched=2, notified=2)  # rep and boss
    assert run(platform, STUCK, T0 + 20 * DAY) == summary(STUCK, matched=2)
    assert run(platform, STUCK, T0 + 46 * DAY) == summary(STUCK, matched=3, notified=2)

    stuck = ("商机「华信银行CRM」在当前阶段停留过久，请推进",
             "Opportunity 华信银行CRM has stayed too long in its stage: move it forward", standard, T0 + 19 * DAY)
    assert notes(platform, rep) == [stuck, ("商机「税务局平台」在当前阶段停留过久，请推进",
                                            "Opportunity 税务局平台 has stayed too long in its stage: move it forward",
                                            government, T0 + 46 * DAY)]
    assert notes(platform, boss) == [
        ("rep 的商机「华信银行CRM」在当前阶段停留过久",
         "rep's opportunity 华信银行CRM has stayed too long in its stage", standard, T0 + 19 * DAY),
        ("rep 的商机「税务局平台」在当前阶段停留过久", "rep's opportunity 税务局平台 has stayed too long in its stage",
         government, T0 + 46 * DAY)]
    assert [n[2:] for n in notes(platform, east_rep)] == [(east, T0 + 16 * DAY)]
    assert todos(platform, rep) == [] and todos(platform, boss) == []


def test_a_new_stage_starts_a_new_count(platform, people, account, contact):
    rep, boss = people["rep"], people["boss"]
    standard = opportunity(platform, rep, account, "华信银行CRM")
    entered(platform, standard, "intent", T0, rep)
    assert run(platform, STUCK, T0 + 19 * DAY) == summary(STUCK, matched=1, notified=2)

    moved = T0 + 20 * DAY
    platform.clock = FixedClock(moved)
    act(platform, rep, "complete_task", standard, {"task": "first_call"})
    edit(platform.records, standard, rep, contact=contact)
    assert act(platform, rep, "advance", standard)["record"]["stage"] == "initiation"
    assert run(platform, STUCK, moved + DAY) == summary(STUCK)
    assert run(platform, STUCK, moved + 18 * DAY) == summary(STUCK)
    assert run(platform, STUCK, moved + 19 * DAY) == summary(STUCK, matched=1, notified=2)
    assert [n[3] for n in notes(platform, boss)] == [T0 + 19 * DAY, moved + 19 * DAY]

    act(platform, rep, "invalidate", standard, {"comment": "客户取消项目"})
    assert run(platform, STUCK, moved + 30 * DAY) == summary(STUCK)


# ------------------------------------------------------------------------------ checked at load


def test_a_misspelled_process_value_is_reported_with_file_and_line(tmp_path):
    site = tmp_path / "site"
    (site / "flows").mkdir(parents=True)
    (site / "flows" / "rules.yaml").write_text(
        "kind: rule\nname: close_soon\nlabel: {zh: 提醒, en: Reminder}\nobject: opportunity\n"
        "trigger: {schedule: daily}\n"
        "condition: days_to_close <= process.close_reminder_day\n"
        "actions:\n  - notify: {field: owner}\n    message: {zh: 提醒, en: Reminder}\n", encoding="utf-8")
    with pytest.raises(MetadataError) as raised:
        crm_metadata(site)
    assert [str(p) for p in raised.value.problems] == [
        f"{site / 'flows' / 'rules.yaml'}:6:29: unknown value 'process.close_reminder_day' "
        "(did you mean 'process.close_reminder_days'?) (at condition)"]
