"""Report filters as SQL conditions: the list API's `path__op` operators over field paths, plus date ranges
(`this_month`, `last_quarter`, ..., or `{"from": "2026-01-01", "to": "2026-03-31"}`, both days included)
counted in the organisation's time zone: `now` comes in that zone (`platform.settings.zone`), and a range cuts
at its local midnights."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..clock import local_midnight
from ..errors import Message
from ..fieldtypes import type_named
from ..records.query import APPLIES, CONVERT, OPERATORS, InvalidFilter, compare

DATE_RANGES = ("today", "this_week", "this_month", "last_month", "this_quarter", "last_quarter", "this_year",
               "last_year")


def split(name: str) -> tuple[str, str]:
    """`path__op` -> (path, op); a bare path compares for equality."""
    path, sep, op = name.rpartition("__")
    return (path, op) if sep and op in OPERATORS else (name, "eq")


def condition(column: ColumnElement, type_name: str, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    """The condition `column op value` for a field of `type_name`; InvalidFilter names what is wrong."""
    kind = type_named(type_name).filter_kind
    if kind in ("date", "datetime") and op == "eq" and (isinstance(value, Mapping) or value in DATE_RANGES):
        return sa.and_(*date_bounds(column, kind, value, now))
    if op == "isnull":
        return column.is_(None) if CONVERT["boolean"](_text(value)) else column.is_not(None)
    if kind not in APPLIES.get(op, ()):
        raise InvalidFilter(Message("report.operator_type", "operator '{operator}' does not apply to a {type} field",
                                    operator=op, type=type_name))
    if op == "in":
        return compare(column, kind, op, [_text(item) for item in (
            value if isinstance(value, list | tuple) else _text(value).split(","))])
    return compare(column, kind, op, _text(value))


def date_bounds(column: ColumnElement, kind: str, value: Any, now: datetime) -> list[ColumnElement[bool]]:
    """`column` (a "date" or "datetime" one) within the date range `value`, as of `now` in the organisation's
    zone; an open end adds no bound."""
    bounds = []
    for day, method in zip(date_range(value, now), ("__ge__", "__lt__"), strict=True):
        if day not in (date.min, date.max):
            bounds.append(getattr(column, method)(local_midnight(day, now.tzinfo) if kind == "datetime" else day))
    return bounds



def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | dict) or value is None:
        raise InvalidFilter(Message("report.not_a_single_value", "{value!r} is not a single value", value=value))
    return str(value)


def date_range(value: Any, now: datetime) -> tuple[date, date]:
    """[first day, day after the last) of a named range or a {from, to} range, the named ones as of the date of
    `now` (a date-time in the organisation's zone)."""
    if isinstance(value, Mapping):
        unknown = set(value) - {"from", "to"}
        if unknown or not value:
            raise InvalidFilter(Message("report.bad_custom_range",
                                        'a custom range is {{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}}'))
        start = CONVERT["date"](_text(value["from"])) if value.get("from") else date.min
        end = CONVERT["date"](_text(value["to"])) + timedelta(days=1) if value.get("to") else date.max
        if start >= end:
            raise InvalidFilter(Message("report.range_reversed", "the range ends before it starts"))
        return start, end
    if value not in DATE_RANGES:
        raise InvalidFilter(Message("report.unknown_range", "{value!r} is not a date range: send one of {ranges} or "
                                    '{{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}}', value=value,
                                    ranges=", ".join(DATE_RANGES)))
    today = now.date()
    quarter = (today.month - 1) // 3 * 3 + 1
    starts = {
        "today": (today, today + timedelta(days=1)),
        "this_week": (today - timedelta(days=today.weekday()), today + timedelta(days=7 - today.weekday())),
        "this_month": (today.replace(day=1), _add_months(today.replace(day=1), 1)),
        "last_month": (_add_months(today.replace(day=1), -1), today.replace(day=1)),
        "this_quarter": (today.replace(month=quarter, day=1), _add_months(today.replace(month=quarter, day=1), 3)),
        "last_quarter": (_add_months(today.replace(month=quarter, day=1), -3), today.replace(month=quarter, day=1)),
        "this_year": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
        "last_year": (date(today.year - 1, 1, 1), date(today.year, 1, 1)),
    }
    return starts[value]


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
