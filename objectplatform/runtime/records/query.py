"""The list query of API.md as SQL: filters, `q` search, sort and keyset (cursor) pagination.

(How it works: docs/engine.md, "objectplatform/runtime/records/query.py".)"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from objectplatform.metadata import ObjectDef
from objectplatform.metadata.expressions import Expression, ExpressionError, parse
from objectplatform.runtime.errors import BadRequest, Message, said_object
from objectplatform.runtime.expressions_sql import to_sql

from ..fieldtypes import type_named
from ..storage.convert import field_type, from_rows, to_db
from ..storage.tables import ObjectTable, Schema, sort_keys
from .formulas import Formulas
from .masking import FieldMask

MAX_LIMIT = 500
MAX_ID = 2**63 - 1
OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "contains", "isnull")
# filter kinds (a field type's `filter_kind`) and the operators that apply to each
_ORDERED = frozenset({"text", "integer", "decimal", "date", "datetime", "reference"})
_SCALAR = _ORDERED | {"boolean"}
APPLIES = {"eq": _SCALAR, "ne": _SCALAR, "in": _SCALAR, "gt": _ORDERED, "gte": _ORDERED, "lt": _ORDERED,
            "lte": _ORDERED, "contains": frozenset({"text", "list"})}
COMPARE: dict[str, Callable[[Any, Any], ColumnElement]] = {
    "eq": lambda c, v: c == v, "ne": lambda c, v: c.is_distinct_from(v), "in": lambda c, v: c.in_(v),
    "gt": lambda c, v: c > v, "gte": lambda c, v: c >= v, "lt": lambda c, v: c < v, "lte": lambda c, v: c <= v,
}


def operators(kind: str) -> tuple[str, ...]:
    """The operators a field of filter `kind` takes, in the order of OPERATORS (isnull applies to all)."""
    return tuple(op for op in OPERATORS if op == "isnull" or kind in APPLIES[op])


NUL = Message("value.nul", "must not contain NUL characters")
NOT_A_CURSOR = Message("query.bad_cursor", "is not a cursor from this list")


class InvalidFilter(Exception):
    """A bad parameter value; its message (a Message, which str() gives back) goes under the parameter's name."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class _Field:
    """What a filter or sort refers to: a field's SQL value and the kind that decides the operators."""

    name: str
    type: str
    kind: str
    sql: ColumnElement
    nullable: bool
    stored: bool


@dataclass(frozen=True)
class _Key:
    """One ORDER BY key: a stored field's column and its direction."""

    field: _Field
    descending: bool


def list_page(
    conn: sa.Connection,
    schema: Schema,
    obj_name: str,
    *,
    filters: Mapping[str, Any] | None = None,
    q: str | None = None,
    sort: str | None = None,
    limit: int | str = 50,
    cursor: str | None = None,
    where: ColumnElement[bool] | None = None,
    now: datetime | None = None,
    count: bool = True,
    exact_up_to: int | None = None,
    mask: FieldMask | None = None,
) -> tuple[list[dict], str | None, int | None, bool]:
    """One page of records, the cursor of the next page (None on the last), the total (None unless `count`) and
    whether the total is exact: counted up to `exact_up_to` matches (None: all), beyond it estimated (count_up_to).

    Raises BadRequest naming every bad parameter (`fields` maps each one to its messages).
    """
    ot = schema[obj_name]
    now = now or datetime.now(UTC)
    filters = {name: str(value) for name, value in (filters or {}).items()}
    q = (q or "").strip()
    errors: dict[str, list[str]] = {}

    def check(param: str, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except InvalidFilter as e:
            errors.setdefault(param, []).append(str(e))
            return None

    key = (id(ot), id(where), id(mask), conn.dialect.name, str(limit), sort, q, tuple(filters.items()))
    kept = _SHAPES.get(key)
    shape = kept[3] if kept is not None and kept[0] is ot and kept[1] is where and kept[2] is mask else None
    keys = None if shape is None else shape.keys
    if shape is None:
        page_size = check("limit", lambda: _limit(limit))
        keys = check("sort", lambda: _sort_keys(ot, sort, now, mask))
        conditions = [check(param, lambda p=param, v=value: _filter(ot, p, v, conn.dialect.name, now, mask))
                      for param, value in filters.items()]
        if q:
            conditions.append(check("q", lambda: _search(ot, q, mask)))
        if where is not None:
            conditions.append(where)
        if mask is not None and mask.hidings and not errors:
            filtered = {param.rpartition("__")[0] or param for param in filters}
            pattern = f"%{escape_like(q)}%"
            guard = mask.guard(ot.table, q, filtered, searchable(ot.object),
                               lambda name: ot.column(name).ilike(pattern, escape="\\"))
            if guard is not None:
                conditions.append(guard)
        if not errors:
            shape = _Shape.of(ot, keys, conditions, page_size, _digest(obj_name, keys, filters, q))
            if all((param.rpartition("__")[0] or param) in ot.columns for param in filters):  # no formula: no `now`
                if len(_SHAPES) >= SHAPES_KEPT:
                    _SHAPES.clear()
                _SHAPES[key] = (ot, where, mask, shape)
    values = None
    if cursor and keys is not None:
        digest = shape.digest if shape is not None else _digest(obj_name, keys, filters, q)
        values = check("cursor", lambda: _decode(cursor, keys, digest))
    if errors:
        raise BadRequest(Message("request.bad_parameters", "{problems}",
                                 problems="; ".join(f"{p}: {m}" for p, msgs in errors.items() for m in msgs)), errors)

    stmt, params = shape.page(values, conn.dialect.name)
    rows = conn.execute(stmt, params).all()
    next_cursor = None
    if len(rows) > shape.page_size:
        rows = rows[:shape.page_size]
        last = rows[-1]._mapping
        next_cursor = _encode([last[k.field.sql.name] for k in keys], shape.digest)
    total, exact = None, True
    if count:
        if shape.counting is None:
            shape.counting = (sa.select(sa.literal_column("1")).select_from(ot.table).where(*shape.conditions),
                              _summed(schema, ot, shape.conditions))
        matching, summed = shape.counting
        total, exact = count_up_to(conn, matching, exact_up_to, summed)
    formulas = _formulas(ot.object)
    return [formulas.on_read(record, now) for record in from_rows(ot, rows)], next_cursor, total, exact


SHAPES_KEPT = 512  # list shapes kept (_SHAPES); beyond, all are dropped and made again


@dataclass
class _Shape:
    """What a list's parameters but its cursor make of it, kept between calls by `_SHAPES`: the sort keys, the
    conditions, the page size, the digest its cursors carry, the statement of its first page and those of the pages
    after a cursor, by which of the cursor's values are NULL (the others bound as `_after0`, `_after1`, ...), and
    what its total counts (made on first use)."""

    keys: list[_Key]
    conditions: list[ColumnElement[bool]]
    page_size: int
    digest: str
    first: sa.Select
    after: dict[tuple[bool, ...], sa.Select]
    counting: tuple[sa.Select, sa.Select | None] | None = None  # the rows to count and their summary's count

    @classmethod
    def of(cls, ot: ObjectTable, keys: list[_Key], conditions: list[ColumnElement[bool]], page_size: int,
           digest: str) -> _Shape:
        first = (
            sa.select(ot.table, *(k.field.sql for k in keys if isinstance(k.field.sql, sa.Label)))
            .where(*conditions)
            .order_by(*(k.field.sql.desc() if k.descending else k.field.sql for k in keys))
            .limit(page_size + 1)
        )
        return cls(keys, conditions, page_size, digest, first, {})

    def page(self, values: list[Any] | None, dialect: str) -> tuple[sa.Select, dict[str, Any]]:
        """The statement of the page after a cursor's `values` (None: the first page) and its parameters; built
        once per shape, so SQLAlchemy finds its compiled form without making the statement's cache key again."""
        if values is None:
            return self.first, {}
        nulls = tuple(v is None for v in values)
        stmt = self.after.get(nulls)
        if stmt is None:
            stmt = self.after[nulls] = self.first.where(_after(self.keys, nulls, dialect))
        return stmt, {f"_after{i}": v for i, v in enumerate(values) if v is not None}


# (object table, where, mask, dialect, limit, sort, q, filters) -> (the objects keyed by id, their _Shape); a list's
# statement is built once per caller and parameters (the data scope and mask are made once per caller)
_SHAPES: dict[tuple, tuple[ObjectTable, Any, Any, _Shape]] = {}


def count_up_to(conn: sa.Connection, matching: sa.Select, limit: int | None,
                summed: sa.Select | None = None) -> tuple[int, bool]:
    """The number of rows `matching` selects and whether it is exact: counted when at most `limit` (None: always);
    beyond it PostgreSQL's planner estimate (never below the rows counted), SQLite's limit + 1 (a lower bound).

    Counting stops at limit + 1 rows, so a list page never scans millions of rows for its total. `summed`, the same
    count read from a summary table (storage/summaries.py: Summary.counting), adds up a few groups instead; the
    answer is the same."""
    if summed is not None:
        counted = conn.execute(summed).scalar_one()
        if limit is None or counted <= limit:
            return counted, True
        counted = limit + 1
    elif limit is None:
        return conn.execute(sa.select(sa.func.count()).select_from(matching.subquery())).scalar_one(), True
    else:
        counted = conn.execute(sa.select(sa.func.count()).select_from(matching.limit(limit + 1).subquery())
                               ).scalar_one()
        if counted <= limit:
            return counted, True
    if conn.dialect.name == "postgresql":
        plan = conn.execute(_Explain(matching)).scalar_one()
        return max(counted, int(plan[0]["Plan"]["Plan Rows"])), False
    return counted, False


def _summed(schema: Schema, ot: ObjectTable, conditions: list[ColumnElement[bool]]) -> sa.Select | None:
    """The count of the rows `conditions` select read from the first of the object's summary tables holding every
    column they read (the data scope's owner and pool, a filter on a picklist), or None."""
    for summary in schema.summaries.get(ot.object.name, ()):
        if (summed := summary.counting(ot.table, conditions)) is not None:
            return summed
    return None


class _Explain(sa.Executable, sa.ClauseElement):
    """PostgreSQL's `EXPLAIN (FORMAT JSON)` of a statement, its parameters bound as the statement's own; compiled once
    per shape of the statement (SQLAlchemy's cache), as the statement itself is."""

    inherit_cache = True
    _traverse_internals = [("statement", InternalTraversal.dp_clauseelement)]
    _all_selected_columns = ()  # no column to find by name in a cached compilation's result: the plan is read by place

    def __init__(self, statement: sa.Select):
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler, **kw) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


_FORMULAS: dict[int, tuple[ObjectDef, Formulas]] = {}


def _formulas(obj: ObjectDef) -> Formulas:
    """The object's formulas, parsed once per definition (definitions are immutable but not hashable)."""
    cached = _FORMULAS.get(id(obj))
    if cached is None or cached[0] is not obj:
        cached = _FORMULAS[id(obj)] = (obj, Formulas(obj))
    return cached[1]


@cache
def _expression(text: str) -> Expression:
    return parse(text)


# ------------------------------------------------------------------------------- fields and values


def _field(ot: ObjectTable, name: str, now: datetime) -> _Field:
    """The filterable/sortable field `name` of the object (system fields included); InvalidFilter if none."""
    f = ot.object.fields.get(name)
    if name not in ot.columns and (f is None or f.type != "formula"):
        raise InvalidFilter(Message("query.unknown_field", "unknown field '{field}'", field=name))
    type_ = type_named(field_type(ot, name))
    if not type_.readable:
        raise InvalidFilter(Message("query.unknown_field", "unknown field '{field}'", field=name))
    columns = ot.columns.get(name)
    if columns is None:  # a formula computed on read: filter and sort on its SQL translation
        try:
            sql = to_sql(_expression(f.expression), formula_columns(ot), now)
        except (ExpressionError, KeyError) as e:
            raise InvalidFilter(Message("query.formula_not_sql", "formula field '{field}' cannot be computed by the "
                                        "database ({error})", field=name, error=str(e))) from None
        return _Field(name, type_.name, type_.filter_kind_of(None), sql, True, False)
    column = ot.table.c[columns[0]]
    return _Field(name, type_.name, type_.filter_kind_of(column), column, column.nullable, True)


def formula_columns(ot: ObjectTable) -> dict[str, sa.Column]:
    """The columns a formula may read in SQL: single-column fields that are not JSON or passwords."""
    return {
        name: ot.table.c[cols[0]]
        for name, cols in ot.columns.items()
        if len(cols) == 1 and not ot.types[name].json and ot.types[name].readable
    }


def _integer(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text) or abs(int(text)) > MAX_ID:
        raise InvalidFilter(Message("query.not_whole_number", "'{value}' is not a whole number", value=text))
    return int(text)


def _wide_integer(text: str) -> ColumnElement:
    """A whole number as a 64-bit parameter: PostgreSQL refuses one beyond a 32-bit column (`version`)."""
    return sa.literal(_integer(text), sa.BigInteger())


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value.adjusted() > 40:
        raise InvalidFilter(Message("query.not_number", "'{value}' is not a number", value=text))
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidFilter(Message("query.not_date", "'{value}' is not a date (YYYY-MM-DD)", value=text)) from None


def _datetime(text: str) -> datetime:
    """An ISO 8601 date-time as stored: naive UTC (a value without an offset is taken as UTC)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidFilter(Message("query.not_datetime", "'{value}' is not a date-time (ISO 8601)",
                                    value=text)) from None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _boolean(text: str) -> bool:
    value = {"true": True, "1": True, "false": False, "0": False}.get(text.lower())
    if value is None:
        raise InvalidFilter(Message("query.not_boolean", "'{value}' is not true or false", value=text))
    return value


def _reference(text: str) -> int:
    if not re.fullmatch(r"\d+", text) or int(text) > MAX_ID:
        raise InvalidFilter(Message("query.not_record_id", "'{value}' is not a record id", value=text))
    return int(text)


CONVERT: dict[str, Callable[[str], Any]] = {
    "text": str, "integer": _wide_integer, "decimal": _decimal, "date": _date, "datetime": _datetime,
    "boolean": _boolean, "reference": _reference,
}


# ----------------------------------------------------------------------------- filters and search


def _filter(ot: ObjectTable, param: str, raw: str, dialect: str, now: datetime,
            mask: FieldMask | None = None) -> ColumnElement[bool]:
    """One `field__op=value` query parameter as a condition."""
    if "\x00" in raw:
        raise InvalidFilter(NUL)
    name, sep, op = param.rpartition("__")
    if not sep:
        name, op = param, "eq"
    field = _field(ot, name, now)
    if mask is not None and not mask.visible(name):
        raise InvalidFilter(Message("query.hidden_filter",
                                    "cannot filter on field '{field}': it is hidden from your role", field=name))
    if op not in OPERATORS:
        raise InvalidFilter(Message("query.unknown_operator", "unknown operator '{operator}' (use one of {operators})",
                                    operator=op, operators=", ".join(OPERATORS[1:])))
    if op == "isnull":
        return field.sql.is_(None) if _boolean(raw) else field.sql.is_not(None)
    if field.kind not in APPLIES[op]:
        raise InvalidFilter(Message("query.operator_type",
                                    "operator '{operator}' does not apply to {type} field '{field}'",
                                    operator=op, type=field.type, field=name))
    if op == "contains":
        if field.kind == "list":  # JSON text: find the value's JSON string, quotes included
            token = to_db(field.type, [raw])[1:-1]
            return (sa.func.strpos if dialect == "postgresql" else sa.func.instr)(field.sql, token) > 0
    return compare(field.sql, field.kind, op, raw.split(",") if op == "in" else raw)


def compare(sql: ColumnElement, kind: str, op: str, value: str | list[str]) -> ColumnElement[bool]:
    """`sql op value` for a field of filter `kind`, the value given as text (a list of texts for `in`);
    the caller has checked that `op` applies to `kind`. Used by lists and reports alike."""
    if op == "contains":
        return sql.ilike(f"%{escape_like(value)}%", escape="\\")
    convert = CONVERT[kind]
    return COMPARE[op](sql, [convert(item) for item in value] if op == "in" else convert(value))


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def searchable(obj: ObjectDef) -> tuple[str, ...]:
    """The fields `q` searches: those marked searchable, else the title field when it is text."""
    return obj.searchable_fields or tuple(
        n for n in (obj.title_field,) if n in obj.fields and type_named(obj.fields[n].type).searchable)


def _search(ot: ObjectTable, q: str, mask: FieldMask | None = None) -> ColumnElement[bool]:
    """`q` as a case-insensitive substring of any searchable field the caller may see."""
    obj = ot.object
    if "\x00" in q:
        raise InvalidFilter(NUL)
    names = searchable(obj)
    if not names:
        raise InvalidFilter(Message("query.not_searchable", "{object} has no searchable fields",
                                    object=said_object(obj)))
    names = tuple(n for n in names if mask is None or mask.visible(n))
    if not names:
        return sa.false()
    pattern = f"%{escape_like(q)}%"
    return sa.or_(*(ot.column(name).ilike(pattern, escape="\\") for name in names))


# ------------------------------------------------------------------------------ sort and cursor


def _limit(limit: int | str) -> int:
    text = str(limit)
    if isinstance(limit, bool) or not re.fullmatch(r"\d+", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidFilter(Message("query.bad_limit", "must be a whole number from 1 to {max}", max=MAX_LIMIT))
    return int(text)


def _sort_keys(ot: ObjectTable, sort: str | None, now: datetime, mask: FieldMask | None = None) -> list[_Key]:
    """The ORDER BY keys: `sort` ("-amount,name") or the list view's, ending with id. A field hidden from
    the caller's role orders nothing: named in `sort`, it is a bad parameter; in the list view's, it is
    left out."""
    items = [item.strip() for item in (sort or "").split(",") if item.strip()]
    hidden = [item.removeprefix("-") for item in items if mask is not None and not mask.visible(item.removeprefix("-"))]
    if hidden:
        raise InvalidFilter(Message("query.hidden_sort", "cannot sort on field '{field}': it is hidden from your role",
                                    field=hidden[0]))
    if not items:
        items = [item for item in (ot.object.list_view.sort if ot.object.list_view else ("-created_at",))
                 if mask is None or mask.visible(item.removeprefix("-"))]
    first = {}  # a field named again (either way round) adds nothing to the order: its first mention decides
    for item in items:
        first.setdefault(item.removeprefix("-"), item)
    items = list(first.values())
    names = list(first)
    fields = {name: _field(ot, name, now) for name in names}
    fields.setdefault("id", _field(ot, "id", now))
    for field in fields.values():
        if not field.stored:  # no index could serve it, and its SQL value may not round-trip through a cursor
            raise InvalidFilter(Message("query.formula_sort", "cannot sort on formula field '{field}': it is computed "
                                        "on read (not stored)", field=field.name))
        if field.kind not in _SCALAR:
            raise InvalidFilter(Message("query.sort_type", "cannot sort on {type} field '{field}'", type=field.type,
                                        field=field.name))
    if mask is not None:
        fields = {name: _hidden_on_some(ot, field, mask) for name, field in fields.items()}
    keys = sort_keys(ot.object, items)
    return [_Key(fields[name], descending) for name, descending in keys]


def _hidden_on_some(ot: ObjectTable, field: _Field, mask: FieldMask) -> _Field:
    """`field` as a sort key of the caller of `mask`: NULL on the records a behavior hides it on, selected
    under its own label for the cursor (which would otherwise carry the hidden value)."""
    sql = mask.sort_column(ot.table, field.name, field.sql)
    if sql is field.sql:
        return field
    # "__" separates a filter's operator from its field: no field's column is named so
    return replace(field, sql=sql.label(f"{field.name}__sort"), nullable=True)


def _digest(obj_name: str, keys: list[_Key], filters: Mapping[str, str], q: str) -> str:
    """What a cursor is bound to: the object, the sort, the filters and the search."""
    spec = [obj_name, [[k.field.name, k.descending] for k in keys], sorted(filters.items()), q]
    return hashlib.sha256(json.dumps(spec, ensure_ascii=False).encode()).hexdigest()[:16]


def _tag(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"n": str(value)}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    return value


_UNTAG = {"n": Decimal, "t": datetime.fromisoformat, "d": date.fromisoformat}


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        ((tag, text),) = value.items()
        return _UNTAG[tag](text)
    return value


def _encode(values: list[Any], digest: str) -> str:
    """An opaque cursor: URL-safe base64 of {"k": tagged sort values, "h": digest of the query}."""
    data = json.dumps({"k": [_tag(v) for v in values], "h": digest}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()


def _decode(cursor: str, keys: list[_Key], digest: str) -> list[Any]:
    """The sort values a cursor carries; InvalidFilter when it is not one of ours or belongs to another query."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        values = [_untag(v) for v in data["k"]]
        matches = data["h"] == digest
    except (binascii.Error, ArithmeticError, ValueError, TypeError, KeyError, AttributeError):
        raise InvalidFilter(NOT_A_CURSOR) from None
    if not matches:
        raise InvalidFilter(Message("query.stale_cursor",
                                    "does not match this query (its sort, filters or search changed)"))
    if len(values) != len(keys) or not all(map(_fits, keys, values)):
        raise InvalidFilter(NOT_A_CURSOR)
    return values


_PYTHON_TYPES = {"text": str, "integer": int, "reference": int, "decimal": Decimal, "date": date,
                 "datetime": datetime, "boolean": bool}


def _fits(key: _Key, value: Any) -> bool:
    """Whether a cursor value can stand for the key (so a forged cursor is a bad request, not a crash)."""
    if value is None:
        return key.field.nullable
    kind = key.field.kind
    if isinstance(value, bool) != (kind == "boolean") or isinstance(value, datetime) != (kind == "datetime"):
        return False
    return isinstance(value, _PYTHON_TYPES[kind])


def _after(keys: list[_Key], nulls: tuple[bool, ...], dialect: str) -> ColumnElement[bool]:
    """Rows strictly after a cursor's values in ORDER BY order, NULLs placed where the database itself sorts them;
    `nulls` tells which values are NULL, the others are parameters `_after0`, `_after1`, ... (by place).

    A row-value comparison `(a, id) < (:a, :id)` when it is exact (one direction, and no NULL that
    could sort after the cursor), since PostgreSQL and SQLite both turn it into an index range;
    otherwise the OR of "equal on the first i keys and after on key i".
    """

    def nulls_first(key: _Key) -> bool:
        return (dialect == "sqlite") != key.descending  # SQLite: NULL is smallest; PostgreSQL: largest

    binds = [None if null else sa.bindparam(f"_after{i}", type_=k.field.sql.type)
             for i, (k, null) in enumerate(zip(keys, nulls, strict=True))]
    exact = len({k.descending for k in keys}) == 1 and all(
        not k.field.nullable or (b is not None and nulls_first(k)) for k, b in zip(keys, binds, strict=True)
    )
    if exact:
        row, bound = sa.tuple_(*(k.field.sql for k in keys)), sa.tuple_(*binds)
        return row < bound if keys[0].descending else row > bound
    terms, equal = [], []
    for key, bind in zip(keys, binds, strict=True):
        sql = key.field.sql
        if bind is None:
            beyond = sql.is_not(None) if nulls_first(key) else None
        else:
            beyond = sql < bind if key.descending else sql > bind
            if key.field.nullable and not nulls_first(key):
                beyond = sa.or_(beyond, sql.is_(None))
        if beyond is not None:
            terms.append(sa.and_(*equal, beyond))
        equal.append(sql.is_(None) if bind is None else sql == bind)
    return sa.or_(*terms) if terms else sa.false()
