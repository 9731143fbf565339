"""One time zone setting everywhere, on both databases: report buckets cut at the site zone's midnight (Asia/Shanghai
and Europe/Berlin, whose offset changes between January and March), a user's own `time_zone` for what the pages
show, schedules on the site zone's clock, auto numbers' dates and a list formula's today() just after local
midnight."""

from __future__ import annotations

import dataclasses
import html
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from report_company import build_company
from support import FixedClock, crm_metadata
from test_pages import login, token

from objectplatform.metadata import Source, build_definition
from objectplatform.runtime import scheduler
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.reports import run_report
from objectplatform.web import create_app

PASSWORD = "secret-pass-1"
EXTENSION = """\
kind: object_extension
object: lead
fields:
  age_days: {type: formula, expression: "days_since(created_at)", result_type: integer,
             label: {zh: 已创建天数, en: Days since created}}
  new_today: {type: formula, expression: "created_at >= today()", result_type: boolean,
              label: {zh: 今日新建, en: Created today}}
"""
CREATED = {  # each lead's creation, in the site zone's local time
    "L1": datetime(2026, 3, 31, 23, 30),
    "L2": datetime(2026, 4, 1, 0, 30),
    "L3": datetime(2026, 1, 1, 0, 30),
    "L4": datetime(2025, 12, 31, 23, 30),
    "L7": datetime(2026, 3, 1, 0, 0),
    "L6": datetime(2026, 2, 28, 23, 59),
}
BUCKETS = {  # by bucket: each lead's bucket, in CREATED's order
    "day": ["2026-03-31", "2026-04-01", "2026-01-01", "2025-12-31", "2026-03-01", "2026-02-28"],
    "week": ["2026-03-30", "2026-03-30", "2025-12-29", "2025-12-29", "2026-02-23", "2026-02-23"],
    "month": ["2026-03", "2026-04", "2026-01", "2025-12", "2026-03", "2026-02"],
    "quarter": ["2026-Q1", "2026-Q2", "2026-Q1", "2025-Q4", "2026-Q1", "2026-Q1"],
    "year": ["2026", "2026", "2026", "2025", "2026", "2026"],
}
REMINDER, WAITING, RECYCLE = "lead_follow_up_reminder", "lead_pool_waiting", "lead_recycle"
CLOSE, STUCK = "opportunity_close_reminder", "opportunity_stuck_in_stage"
MISSED, OVERDUE = "visit_missed", "payment_plan_overdue"  # daily at 00:05, daily at 09:00
FREQUENCY = "visit_frequency_reminder"  # daily at 09:00


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {"object_defs/lead_ext.yaml": EXTENSION})


def _zoned(platform, zone: str):
    """The platform set to site zone `zone`, the company built and its leads created at CREATED's local times."""
    platform.settings = dataclasses.replace(platform.settings, time_zone=zone)
    build_company(platform)
    lead = platform.schema["lead"].table
    with platform.engine.begin() as conn:
        for name, at in CREATED.items():
            stored = at.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC).replace(tzinfo=None)
            conn.execute(sa.update(lead).where(lead.c.name == name).values(created_at=stored))
    return platform


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin"])
def test_report_buckets_cut_at_the_site_zones_midnight(platform, zone):
    _zoned(platform, zone)
    for name, buckets in BUCKETS.items():
        report = build_definition({
            "kind": "report", "name": "adhoc", "label": {"zh": "临时", "en": "Ad hoc"}, "object": "lead",
            "dimensions": [{"key": "name", "field": "name"}, {"key": "period", "field": "created_at", "bucket": name}],
            "measures": [{"key": "leads", "function": "count"}], "sort": ["name"]}, Source("<test>"))
        result = run_report(platform, report, access=None)
        assert {row["name"]: row["period"] for row in result.rows} == dict(zip(CREATED, buckets, strict=True)), name


def test_a_list_formula_with_today_just_after_local_midnight(platform):
    _zoned(platform, "Asia/Shanghai")
    platform.clock = FixedClock(datetime(2026, 4, 1, 0, 30, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC))
    page = platform.records.list("lead", sort="name", limit=10)
    assert [(r["name"], r["age_days"], r["new_today"]) for r in page.items] == [
        ("L1", 1, False), ("L2", 0, True), ("L3", 90, False), ("L4", 91, False), ("L6", 32, False),
        ("L7", 31, False)]
    assert [r["name"] for r in platform.records.list("lead", filters={"new_today": "true"}).items] == ["L2"]
    l2 = next(r["id"] for r in page.items if r["name"] == "L2")
    assert {k: platform.records.get("lead", l2)[k] for k in ("age_days", "new_today")} == {"age_days": 0,
                                                                                         "new_today": True}


def test_auto_numbers_are_dated_by_the_site_zone(platform):
    account = platform.records.create("account", {"name": "甲公司"}, system=True)["id"]
    numbers = []
    for local in (datetime(2026, 3, 31, 23, 30), datetime(2026, 4, 1, 0, 30)):
        platform.clock = FixedClock(local.replace(tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC))
        numbers.append(platform.records.create("sales_order", {"account": account}, system=True)["order_no"])
        (bulk,) = platform.records.create_many("sales_order", [{"account": account}], system=True).created
        numbers.append(platform.records.get("sales_order", bulk)["order_no"])
    assert numbers == ["SO-202603-0001", "SO-202603-0002", "SO-202604-0001", "SO-202604-0002"]


def test_schedules_run_on_the_site_zones_clock(platform):
    platform.settings = dataclasses.replace(platform.settings, time_zone="Europe/London")

    def due(at: datetime) -> list[str]:
        return [r.name for r in scheduler.due_rules(platform, at)]

    summer = datetime(2026, 7, 1, 7, 30, tzinfo=UTC)  # 08:30 in London (BST, UTC+1), 15:30 in Shanghai
    assert scheduler.tick(platform, summer) == [REMINDER, WAITING, RECYCLE, CLOSE, STUCK, OVERDUE, MISSED, FREQUENCY]
    assert due(datetime(2026, 7, 1, 7, 59, tzinfo=UTC)) == []
    assert due(datetime(2026, 7, 1, 8, 0, tzinfo=UTC)) == [REMINDER, RECYCLE, CLOSE, STUCK, OVERDUE,
                                                           FREQUENCY]  # 09:00 London
    platform.settings = dataclasses.replace(platform.settings, time_zone="Asia/Shanghai")
    assert due(datetime(2026, 7, 1, 8, 0, tzinfo=UTC)) == [RECYCLE]  # 16:00 in Shanghai: only the hourly one


@pytest.mark.parametrize(("schedule", "at", "zone", "start"), [
    ("daily at 09:00", datetime(2026, 7, 1, 1, 30), "Asia/Shanghai", datetime(2026, 7, 1, 1, 0)),
    ("daily at 09:00", datetime(2026, 7, 1, 1, 30), "Europe/London", datetime(2026, 6, 30, 8, 0)),
    ("daily at 09:00", datetime(2026, 3, 28, 9, 30), "Europe/London", datetime(2026, 3, 28, 9, 0)),  # GMT
    ("daily at 09:00", datetime(2026, 3, 29, 10, 0), "Europe/London", datetime(2026, 3, 29, 8, 0)),  # BST from today
    ("daily", datetime(2026, 3, 31, 16, 30), "Asia/Shanghai", datetime(2026, 3, 31, 16, 0)),
    ("every 1h", datetime(2026, 7, 1, 4, 10), "Asia/Kolkata", datetime(2026, 7, 1, 3, 30)),  # UTC+05:30
])
def test_slots_start_on_the_zones_clock(schedule, at, zone, start):
    assert scheduler.slot_start(schedule, at.replace(tzinfo=UTC), ZoneInfo(zone)) == start.replace(tzinfo=UTC)


@pytest.fixture
def viewers(platform):
    """Two administrators: one in London, one with no zone of their own (the site's, Asia/Shanghai)."""
    records = platform.records
    london = records.create("user", {"username": "alice", "display_name": "Alice", "password": PASSWORD,
                                     "roles": ["admin"], "time_zone": "Europe/London"}, system=True)
    records.create("user", {"username": "wang", "display_name": "王伟", "password": PASSWORD, "roles": ["admin"]},
                   system=True)
    return london


def _visit(platform) -> dict:
    account = platform.records.create("account", {"name": "甲公司"}, system=True)["id"]
    return platform.records.create("visit", {"account": account, "planned_at": "2026-07-01T02:00:00Z"},
                                   system=True)


def _shown(page: str, label: str) -> str:
    """The value shown after `label` on a record page."""
    match = re.search(rf"{re.escape(label)}</dt>\s*<dd[^>]*>(.*?)</dd>", page, re.S)
    assert match, label
    return html.unescape(match.group(1)).strip()


def test_each_user_sees_and_types_times_in_their_own_zone(platform, viewers):
    visit = _visit(platform)["id"]
    for username, planned, typed in [("alice", "2026-07-01 03:00", "2026-07-01T03:00"),
                                     ("wang", "2026-07-01 10:00", "2026-07-01T10:00")]:
        client = create_app(platform).test_client()
        login(client, username)
        page = client.get(f"/o/visit/{visit}").get_data(as_text=True)
        assert _shown(page, "计划拜访时间") == planned, username
        form = client.get(f"/o/visit/{visit}/edit").get_data(as_text=True)
        assert re.search(r'name="planned_at"[^>]*value="([^"]*)"', form).group(1) == typed, username
    client = create_app(platform).test_client()
    login(client, "alice")
    account = platform.records.get("visit", visit)["account"]
    saved = client.post(f"/o/visit/{visit}/edit", data={"csrf_token": token(client), "version": "1",
                                                        "account": account, "planned_at": "2026-07-01T09:00"})
    assert saved.status_code == 302
    assert platform.records.get("visit", visit)["planned_at"] == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)  # BST


def test_a_time_zone_is_an_iana_name(platform, viewers):
    records = platform.records
    assert records.get("user", viewers["id"])["time_zone"] == "Europe/London"
    with pytest.raises(ValidationFailed) as e:
        records.update("user", viewers["id"], {"time_zone": "China/Beijing"}, version=None, system=True)
    assert e.value.fields == {"time_zone": ["not a time zone (an IANA name, e.g. Asia/Shanghai)"]}
    assert records.get("user", viewers["id"])["time_zone"] == "Europe/London"
    assert records.update("user", viewers["id"], {"time_zone": ""}, version=None, system=True)["time_zone"] is None
