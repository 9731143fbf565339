"""The organisation's time zone (OBJECTPLATFORM_TIMEZONE) on both databases: rules' today() and days_since() and
report date ranges cut at its local midnight, tried half an hour before and after the midnight that ends a
month and a quarter, in the default Asia/Shanghai and in Europe/Berlin."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from report_company import build_company
from support import FixedClock

from objectplatform.metadata import Source, build_definition
from objectplatform.runtime import Settings, rules
from objectplatform.runtime.reports import run_report

BEFORE, AFTER = datetime(2026, 3, 31, 23, 30), datetime(2026, 4, 1, 0, 30)  # local times around Q1's last midnight
CREATED = {  # each lead's creation, in local time
    "L1": datetime(2026, 3, 31, 23, 0),
    "L2": datetime(2026, 4, 1, 0, 10),
    "L3": datetime(2026, 1, 1, 0, 30),
    "L4": datetime(2025, 12, 31, 23, 30),
    "L7": datetime(2026, 3, 1, 0, 0),
    "L6": datetime(2026, 2, 28, 23, 59),
}
RANGES = {  # the leads of each range, as of BEFORE and as of AFTER
    BEFORE: {"today": ["L1"], "this_month": ["L1", "L7"], "last_month": ["L6"],
             "this_quarter": ["L1", "L3", "L6", "L7"], "last_quarter": ["L4"]},
    AFTER: {"today": ["L2"], "this_month": ["L2"], "last_month": ["L1", "L7"], "this_quarter": ["L2"],
            "last_quarter": ["L1", "L3", "L6", "L7"]},
}
CONDITIONS = {  # the leads each rule condition holds for, as of BEFORE and as of AFTER
    "days_since(created_at) == 0": {BEFORE: ["L1"], AFTER: ["L2"]},
    "days_since(created_at) == 1": {BEFORE: [], AFTER: ["L1"]},
    "days_since(created_at) >= 31": {BEFORE: ["L3", "L4", "L6"], AFTER: ["L3", "L4", "L6", "L7"]},
    "created_at >= today()": {BEFORE: ["L1", "L2"], AFTER: ["L2"]},
    "created_at < today()": {BEFORE: ["L3", "L4", "L6", "L7"], AFTER: ["L1", "L3", "L4", "L6", "L7"]},
}
ZONES = ["Asia/Shanghai", "Europe/Berlin"]


def test_the_time_zone_setting():
    assert Settings.from_env({}).time_zone == "Asia/Shanghai"
    assert Settings.from_env({}).zone == ZoneInfo("Asia/Shanghai")
    assert Settings.from_env({"OBJECTPLATFORM_TIMEZONE": "Europe/Berlin"}).zone == ZoneInfo("Europe/Berlin")
    with pytest.raises(ValueError, match="OBJECTPLATFORM_TIMEZONE must be an IANA time zone"):
        Settings.from_env({"OBJECTPLATFORM_TIMEZONE": "China/Beijing"})


@pytest.fixture(params=ZONES)
def zoned(request, platform, seeded):
    """The company's platform set to a time zone, its leads created at CREATED's local times there."""
    platform.settings = dataclasses.replace(platform.settings, time_zone=request.param)
    seeded(build_company)
    lead, zone = platform.schema["lead"].table, platform.settings.zone
    with platform.engine.begin() as conn:
        for name, at in CREATED.items():
            stored = at.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
            conn.execute(sa.update(lead).where(lead.c.name == name).values(created_at=stored))
    return platform


def _local(platform, at: datetime) -> datetime:
    return at.replace(tzinfo=platform.settings.zone)


@pytest.mark.parametrize("moment", [BEFORE, AFTER])
def test_report_date_ranges_cut_at_local_midnight(zoned, moment):
    zoned.clock = FixedClock(_local(zoned, moment).astimezone(UTC))
    report = build_definition({"kind": "report", "name": "adhoc", "label": {"zh": "临时", "en": "Ad hoc"},
                               "object": "lead", "dimensions": [{"key": "name", "field": "name"}],
                               "measures": [{"key": "leads", "function": "count"}]}, Source("<test>"))
    for value, names in RANGES[moment].items():
        result = run_report(zoned, report, access=None, filters={"created_at": value})
        assert [row["name"] for row in result.rows] == names, value


@pytest.mark.parametrize("moment", [BEFORE, AFTER])
def test_rules_today_and_days_since_count_local_days(zoned, moment):
    for i, (condition, holding) in enumerate(CONDITIONS.items()):
        rule = build_definition({"kind": "rule", "name": f"probe_{i}", "label": {"zh": "探测", "en": "Probe"},
                                 "object": "lead", "trigger": {"schedule": "daily at 09:00"},
                                 "condition": condition, "actions": [{"set": {"description": "matched"}}]},
                                Source("<test>"))
        lead = zoned.schema["lead"].table
        with zoned.engine.begin() as conn:
            conn.execute(sa.update(lead).values(description=None))
        rules.run_rule(zoned, rule, _local(zoned, moment).astimezone(UTC))
        with zoned.engine.connect() as conn:
            matched = conn.execute(sa.select(lead.c.name).where(lead.c.description == "matched")
                                   .order_by(lead.c.name)).scalars().all()
        assert matched == holding[moment], condition
