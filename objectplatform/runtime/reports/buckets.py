"""Date buckets of a report dimension (day, week, month, quarter, year) as SQL text on SQLite and PostgreSQL.

A date-time is stored as naive UTC and bucketed in the site's time zone (settings.zone), so a lead created
at 20:00 UTC on 31 March counts in April, as its owner in Beijing saw it. Buckets are ISO-like text
that sorts in time order: `2026-03-05`, the Monday `2026-03-02` for a week, `2026-03`, `2026-Q1`, `2026`.
Formats are literal SQL (never bound), so the GROUP BY expression is the SELECT expression on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

BUCKETS = ("day", "week", "month", "quarter", "year")
_SQLITE = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
_POSTGRES = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY", "quarter": 'YYYY-"Q"Q'}


def _literal(text: str) -> ColumnElement:
    return sa.literal_column("'" + text.replace("'", "''") + "'", sa.String)


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
    if is_datetime:
        column = sa.func.op_local_time(column, _literal(zone), type_=sa.String)
    if name == "week":
        return sa.func.date(column, _literal("weekday 0"), _literal("-6 days"), type_=sa.String)
    if name == "quarter":
        year = sa.func.strftime(_literal("%Y"), column, type_=sa.String)
        month = sa.cast(sa.func.strftime(_literal("%m"), column), sa.Integer)
        return year.concat(_literal("-Q")).concat(sa.cast((month + 2) // 3, sa.String))
    return sa.func.strftime(_literal(_SQLITE[name]), column, type_=sa.String)
