"""Date buckets of a report dimension (day, week, month, quarter, year) as SQL text on SQLite and PostgreSQL.

A date-time is stored as naive UTC and bucketed in the site's time zone (settings.zone), so a lead created
at 20:00 UTC on 31 March counts in April, as its owner in Beijing saw it. Buckets are ISO-like text
that sorts in time order: `2026-03-05`, the Monday `2026-03-02` for a week, `2026-03`, `2026-Q1`, `2026`.
Formats are literal SQL (never bound), so the GROUP BY expression is the SELECT expression on PostgreSQL.
On SQLite a zone's wall time comes from a Python function per value (op_local_time, exact through summer time),
except from the zone's last change of offset on (settled_offset: since 1991 for Asia/Shanghai), where SQLite adds
the offset itself: eight times faster over 100,000 visits (bench/visit_reports.py).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

BUCKETS = ("day", "week", "month", "quarter", "year")
_SQLITE = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
_POSTGRES = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY", "quarter": 'YYYY-"Q"Q'}


def _literal(text: str) -> ColumnElement:
    return sa.literal_column("'" + text.replace("'", "''") + "'", sa.String)


@functools.lru_cache
def settled_offset(zone: str) -> tuple[str, int] | None:
    """(since, seconds): from `since` (a UTC midnight as stored, text) on, the zone named `zone` is `seconds` ahead
    of UTC, by its rules as far as 2100; None for a zone that still changes (summer time). Sampled daily from
    1900, once per zone and process."""
    tz = ZoneInfo(zone)
    day, last = datetime(2100, 12, 31, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC)
    offset = day.astimezone(tz).utcoffset()
    while day > last and (day - timedelta(days=1)).astimezone(tz).utcoffset() == offset:
        day -= timedelta(days=1)
    if day.year >= 2090:
        return None
    return day.strftime("%Y-%m-%d %H:%M:%S"), int(offset.total_seconds())


def bucket(column: ColumnElement, name: str, is_datetime: bool, dialect: str, zone: str) -> ColumnElement[str]:
    """The bucket of `column` (a date or naive-UTC date-time) named `name`, as sortable text; a date-time's
    in the time zone named `zone` (an IANA name)."""
    if dialect == "postgresql":
        value = sa.func.timezone(_literal(zone), sa.func.timezone(_literal("UTC"), column), type_=sa.DateTime) \
            if is_datetime else sa.cast(column, sa.DateTime)
        if name == "week":
            value = sa.func.date_trunc(_literal("week"), value)
            name = "day"
        return sa.func.to_char(value, _literal(_POSTGRES[name]), type_=sa.String)
    if not is_datetime:
        return _sqlite_bucket(column, name)
    exact = _sqlite_bucket(sa.func.op_local_time(column, _literal(zone), type_=sa.String), name)
    settled = settled_offset(zone)
    if settled is None:
        return exact
    since, seconds = settled
    return sa.case((column >= _literal(since), _sqlite_bucket(column, name, f"{seconds:+d} seconds")), else_=exact)


def _sqlite_bucket(column: ColumnElement, name: str, *shift: str) -> ColumnElement[str]:
    """The bucket of a date or date-time SQLite reads, `shift` (a modifier such as '+28800 seconds') applied."""
    modifiers = [_literal(m) for m in shift]
    if name == "week":
        return sa.func.date(column, *modifiers, _literal("weekday 0"), _literal("-6 days"), type_=sa.String)
    if name == "quarter":
        year = sa.func.strftime(_literal("%Y"), column, *modifiers, type_=sa.String)
        month = sa.cast(sa.func.strftime(_literal("%m"), column, *modifiers), sa.Integer)
        return year.concat(_literal("-Q")).concat(sa.cast((month + 2) // 3, sa.String))
    return sa.func.strftime(_literal(_SQLITE[name]), column, *modifiers, type_=sa.String)
