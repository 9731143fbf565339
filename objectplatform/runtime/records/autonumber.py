"""Auto numbers such as `SO-{YYYY}{MM}-{0000}`: a counter per object, field and period, gap-free.

The counter lives in `_op_autonumber` and is bumped by one `INSERT ... ON CONFLICT DO UPDATE ...
RETURNING` inside the record's transaction: a rolled-back insert rolls the counter back too, and the
counter row stays locked until commit, so concurrent inserts are numbered one after another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

_TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|0+)\}")
_DATE_PARTS = {"YYYY": "%Y", "YY": "%y", "MM": "%m", "DD": "%d"}


@dataclass(frozen=True)
class AutoNumber:
    """A parsed pattern: literal text, date parts (which also name the period) and the counter's width."""

    pattern: str

    def period(self, now: datetime) -> str:
        """The date parts of the pattern at `now`, e.g. "202611" for {YYYY}{MM}; "" when it has none."""
        return "".join(now.strftime(_DATE_PARTS[t]) for t in _TOKEN.findall(self.pattern) if t in _DATE_PARTS)

    def format(self, now: datetime, counter: int) -> str:
        def token(match: re.Match) -> str:
            part = match.group(1)
            return now.strftime(_DATE_PARTS[part]) if part in _DATE_PARTS else str(counter).zfill(len(part))

        return _TOKEN.sub(token, self.pattern)


def reserve(conn: sa.Connection, counters: sa.Table, obj: str, field: str, period: str, count: int = 1) -> int:
    """Take the next `count` numbers of the period's counter and return the last one taken."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(counters).values(object=obj, field=field, period=period, value=count)
    stmt = stmt.on_conflict_do_update(
        index_elements=[counters.c.object, counters.c.field, counters.c.period],
        set_={"value": counters.c.value + count},
    ).returning(counters.c.value)
    return conn.execute(stmt).scalar_one()
