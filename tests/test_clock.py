"""The platform's clock: the one "now" of the runtime; a test fixes the time by giving the platform a clock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from support import FixedClock

from objectplatform.runtime import scheduler
from objectplatform.runtime.clock import Clock

T0 = datetime(2026, 11, 27, 1, 5, tzinfo=UTC)  # 09:05 in China


def test_the_clock_tells_utc_now():
    before = datetime.now(UTC)
    at = Clock().now()
    assert before <= at <= datetime.now(UTC) and at.utcoffset().total_seconds() == 0


def test_today_is_the_date_in_a_zone():
    shanghai, london = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/London")
    assert FixedClock(datetime(2026, 11, 27, 15, 59, tzinfo=UTC)).today(shanghai) == date(2026, 11, 27)
    assert FixedClock(datetime(2026, 11, 27, 16, 0, tzinfo=UTC)).today(shanghai) == date(2026, 11, 28)  # 00:00
    assert FixedClock(datetime(2026, 11, 27, 16, 0, tzinfo=UTC)).today(london) == date(2026, 11, 27)


def test_a_fixed_clock_stands_until_moved():
    clock = FixedClock(T0)
    assert (clock.now(), clock.now()) == (T0, T0)
    assert clock.advance(hours=1, minutes=30) == datetime(2026, 11, 27, 2, 35, tzinfo=UTC) == clock.now()


def test_the_scheduler_ticks_on_the_platforms_clock(platform):
    assert type(platform.clock) is Clock
    platform.clock = FixedClock(T0)
    started = scheduler.tick(platform)
    assert started == ["lead_follow_up_reminder", "lead_pool_waiting", "lead_recycle", "opportunity_close_reminder",
                       "opportunity_stuck_in_stage", "payment_plan_overdue", "visit_missed",
                       "visit_frequency_reminder"]
    assert scheduler.last_runs(platform) == dict.fromkeys(started, T0)
    assert scheduler.tick(platform) == []  # the same moment again: nothing is due
