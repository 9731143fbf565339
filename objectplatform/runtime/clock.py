"""The platform's clock: every "now" of the runtime is `platform.clock.now()`, so a test fixes the time by
giving the platform a clock of its own (a subclass of `Clock` answering `now()`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo


class Clock:
    """Tells the time: `now()` an aware UTC datetime, `today(zone)` the date in a time zone."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self, zone: tzinfo) -> date:
        return self.now().astimezone(zone).date()


def local_midnight(day: date, zone: tzinfo | None) -> datetime:
    """The start of `day` in `zone` as a date-time is stored: naive UTC."""
    return datetime.combine(day, time(), zone).astimezone(UTC).replace(tzinfo=None)
