"""The global search's terms: each record of an object that declares `search:` has one row per term of those
fields in the `_op_search` side table, so that a search is a prefix range over an index, never pinyin computed
per row when someone searches.

A field's terms are its value, each of its words, and for a value holding Chinese its full pinyin and its
initials (王伟: 王伟, wangwei, ww), all in the one normal form `normal` gives a search's text too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pypinyin
import sqlalchemy as sa
from pypinyin import lazy_pinyin
from pypinyin.constants import RE_HANS

from objectplatform.metadata import ObjectDef

TERM_LENGTH = 100  # a longer term keeps its first characters: a prefix search still finds it
# How the terms are made. A record's rows are removed by its terms made again from its values, so rows made another
# way (this module changed, another pypinyin) would stay behind: migrate fills the terms again when this differs
# from what it recorded (bump the number when `terms` changes).
TERMS = f"1/pypinyin {pypinyin.__version__}"
FILL_BATCH = 2000


def search_table(sa_metadata: sa.MetaData, prefix: str) -> sa.Table:
    """One row per (record, field, term), the key and nothing else: its (object, term) order serves a prefix search,
    compared byte by byte (PostgreSQL's "C" collation, SQLite's own) so that a prefix is a range of the key. On SQLite
    the key is the table (WITHOUT ROWID). No second index by record: a record's rows are removed by their key, made
    again from its values (`term_rows`), which an import of ~8 rows per record would otherwise pay for on each row."""
    term = sa.String(TERM_LENGTH).with_variant(sa.String(TERM_LENGTH, collation="C"), "postgresql")
    return sa.Table(
        f"{prefix}search", sa_metadata,
        sa.Column("object", sa.String(64), primary_key=True),
        sa.Column("term", term, primary_key=True),
        sa.Column("record_id", sa.BigInteger(), primary_key=True),
        sa.Column("field", sa.String(64), primary_key=True),
        sqlite_with_rowid=False,
    )


def normal(text: str) -> str:
    """Lower case, letters and digits only: "SO-2026 11" and "so202611" are the same term."""
    text = text.lower()
    if text.isalnum():  # most values (a name, a phone number): nothing to drop, checked in one C call
        return text[:TERM_LENGTH]
    return "".join(ch for ch in text if ch.isalnum())[:TERM_LENGTH]


_CHINESE = re.compile("[\u3400-\u9fff]")
_HANS = RE_HANS.pattern[len("^(?:["):-len("])+$")]  # pypinyin's class of the characters it has a pinyin for
# its `simple_seg`: runs of those characters (the first group) and runs of others (the second)
_RUNS = re.compile(f"([{_HANS}]+)|([^{_HANS}]+)")


def terms(value: Any) -> set[str]:
    """The terms a search finds `value` by (none for an empty value)."""
    if value in (None, ""):
        return set()
    text = str(value)
    if text.isascii() and text.isalnum():  # a phone number, a code: one word, no Chinese (one C call each)
        return {text.lower()[:TERM_LENGTH]}
    words = text.split()
    found = {normal(text), *(normal(word) for word in words)} if len(words) > 1 else {normal(text)}
    if _CHINESE.search(text) is not None:
        found.update(_pinyin(text))
    found.discard("")
    return found


@functools.lru_cache(maxsize=65536)
def _pinyin(text: str) -> tuple[str, str]:
    """The full pinyin and the initials of `text`, remembered: names and companies repeat, and pypinyin costs
    most of a record's terms. pypinyin gives a syllable per Chinese character and keeps any other run as written;
    it reads each run of Chinese characters apart (its `simple_seg`, `_RUNS` here), so each run's pinyin is
    remembered too: "线索1", "线索2", ... ask pypinyin once."""
    full, initials = [], []
    for chinese, other in _RUNS.findall(text):
        if chinese:
            run_full, run_initials = _run_pinyin(chinese)
            full.append(run_full)
            initials.append(run_initials)
        else:  # kept as written: its own initials
            full.append(other)
            initials.append(other)
    return normal("".join(full)), normal("".join(initials))


@functools.lru_cache(maxsize=65536)
def _run_pinyin(run: str) -> tuple[str, str]:
    """The full pinyin and the initials of one run of Chinese characters: a syllable's first letter, or the
    characters pypinyin kept as written (one it has no pinyin for)."""
    syllables = lazy_pinyin(run)
    initials, at = [], 0
    for syllable in syllables:
        kept = run.startswith(syllable, at)
        initials.append(syllable if kept else syllable[:1])
        at += len(syllable) if kept else 1
    return "".join(syllables), "".join(initials)


def term_rows(obj: ObjectDef, records: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, int, str]]:
    """The `_op_search` rows (object, term, record_id, field) of `records` of `obj` (their `search:` fields)."""
    records = [(int(record["id"]), record) for record in records]
    return [(obj.name, term, record_id, name) for name in obj.search for record_id, record in records
            for term in terms(record.get(name))]


def fill(conn: sa.Connection, table: sa.Table, obj: ObjectDef, source: sa.Table) -> None:
    """The terms of every row of `source` (the object's table), in place of those the side table held: what
    migrate runs when the object's `search:` changed, or the object was just given one."""
    conn.execute(sa.delete(table).where(table.c.object == obj.name))
    if not obj.search:
        return
    columns = [source.c.id, *(source.c[name] for name in obj.search)]
    last = 0
    while rows := conn.execute(sa.select(*columns).where(source.c.id > last).order_by(source.c.id)
                               .limit(FILL_BATCH)).mappings().all():
        insert(conn, table, term_rows(obj, rows))
        last = rows[-1]["id"]


def insert(conn: sa.Connection, table: sa.Table, rows: Iterable[tuple[str, str, int, str]]) -> None:
    """`term_rows` by the driver itself (PostgreSQL: COPY): SQLAlchemy's executemany spends more building each
    row's parameters than the database spends inserting it, and an import or a fill writes several per record."""
    if not (rows := list(rows)):
        return
    preparer = conn.dialect.identifier_preparer
    target = f"{preparer.format_table(table)} (object, term, record_id, field)"
    cursor = conn.connection.driver_connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {target} VALUES (?, ?, ?, ?)", rows)
    finally:
        cursor.close()


def delete(conn: sa.Connection, table: sa.Table, rows: Iterable[tuple[str, str, int, str]]) -> None:
    """Remove `term_rows` by their key."""
    key = ("object", "term", "record_id", "field")
    if params := [dict(zip(key, row, strict=True)) for row in rows]:
        stmt = sa.delete(table).where(*(table.c[name] == sa.bindparam(name) for name in key))
        conn.execute(stmt, params)
