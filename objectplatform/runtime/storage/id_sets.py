"""A column among a set of record ids, the set bound as ONE parameter (not an IN list re-rendered each execution).

(How it works: docs/engine.md, "objectplatform/runtime/storage/id_sets.py".)"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class IdList(sa.types.TypeDecorator):
    """A list of whole-number ids bound as one text value: a bigint array's literal on PostgreSQL (the statement
    casts it; psycopg would dump a list element by element), JSON elsewhere."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        """On PostgreSQL no type: bound as text, the array is a value the planner sees and hashes (cast from
        varchar it would be computed per execution and tested element by element on each row it filters)."""
        if dialect.name == "postgresql":
            return sa.types.NullType()
        return super().load_dialect_impl(dialect)

    def process_bind_param(self, value: Iterable[Any] | None, dialect: sa.Dialect) -> Any:
        ids = ",".join(map(str, map(int, value or ())))
        return f"{{{ids}}}" if dialect.name == "postgresql" else f"[{ids}]"


class _Among(ColumnElement[bool]):
    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a condition already: SQLite gets no "= 1" after it
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),
                           ("ids", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement, ids: sa.BindParameter):
        self.column, self.ids = column, ids


def among(column: ColumnElement, ids: Iterable[Any] | sa.BindParameter) -> ColumnElement[bool]:
    """`column` holding one of `ids` (whole numbers, or texts of them), the ids bound as one parameter; or one of
    those a statement built once is given as `ids_param`'s parameter."""
    return _Among(column, ids if isinstance(ids, sa.BindParameter) else sa.bindparam(None, list(ids), type_=IdList()))


def ids_param(name: str) -> sa.BindParameter:
    """A parameter `name` taking a list of ids, for `among` in a statement built once."""
    return sa.bindparam(name, type_=IdList())


@compiles(_Among)
def _among(element: _Among, compiler, **kw) -> str:
    ids = compiler.process(element.ids, **kw)
    return f"{compiler.process(element.column, **kw)} IN (SELECT value FROM json_each({ids}))"


@compiles(_Among, "postgresql")
def _among_pg(element: _Among, compiler, **kw) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY(CAST({compiler.process(element.ids, **kw)} AS BIGINT[]))"


def json_rows(dialect: str, data: ColumnElement, columns: Mapping[str, sa.types.TypeEngine]) -> sa.Select:
    """The rows of `data`, a JSON list of arrays (a literal or a parameter), as a SELECT of one column per array
    position, named and typed by `columns` in order: taken apart by json_array_elements on PostgreSQL (each value
    cast to its type), json_each elsewhere. Many rows reach the database as ONE value."""
    if dialect == "postgresql":
        items = sa.func.json_array_elements(sa.cast(data, sa.JSON())).table_valued("value").render_derived()
        return sa.select(*(sa.cast(items.c.value.op("->>")(sa.literal_column(str(n))), type_).label(name)
                           for n, (name, type_) in enumerate(columns.items())))
    items = sa.func.json_each(data).table_valued("value")
    return sa.select(*(sa.func.json_extract(items.c.value, f"$[{n}]").label(name) for n, name in enumerate(columns)))


def positions(dialect: str, ids: Iterable[int]) -> sa.Subquery:
    """(pos, id) of each of `ids` in the order given, as a subquery the database unpacks from ONE JSON parameter (a
    bulk write's 100,000 ids are one parameter, not 100,000: SQLite takes at most 250,000 per statement, PostgreSQL
    65,535)."""
    data = json.dumps([int(i) for i in ids])
    if dialect == "postgresql":
        items = sa.func.json_array_elements_text(sa.cast(sa.literal(data), sa.JSON())).table_valued(
            "value", with_ordinality="pos").render_derived()
        return sa.select(items.c.pos, sa.cast(items.c.value, sa.BigInteger()).label("id")).subquery("wanted")
    items = sa.func.json_each(sa.literal(data)).table_valued("key", "value")
    return sa.select(items.c.key.label("pos"), items.c.value.label("id")).subquery("wanted")
