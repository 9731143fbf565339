"""Compile expressions to SQLAlchemy Core for rules and report filters that run in the database.

A boolean expression compiles to a two-valued SQL condition (never NULL), so `not`, `and` and
`or` select exactly the records for which `Expression.evaluate` is true; every literal becomes a
bound parameter. Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from objectplatform.metadata.expressions import (
    COMPARISONS,
    Binary,
    Call,
    Expression,
    ExpressionError,
    ListLiteral,
    Literal,
    Name,
    Node,
    Unary,
)

from .clock import local_midnight

_KINDS = ((sa.Boolean, "boolean"), (sa.DateTime, "datetime"), (sa.Date, "date"), (sa.Integer, "number"),
          (sa.Numeric, "number"), (sa.String, "text"), (sa.Uuid, "text"), (sa.JSON, "list"),
          (sa.ARRAY, "list"))
_TYPES = {"boolean": sa.Boolean, "datetime": sa.DateTime, "date": sa.Date, "number": sa.Numeric,
          "text": sa.String}
_SQL_FUNCTIONS = {"lower": "lower", "upper": "upper", "coalesce": "coalesce", "len": "length", "abs": "abs"}
_OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
              ">=": operator.ge, "+": operator.add, "-": operator.sub, "*": operator.mul}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_VARIABLE = object()  # what `_Compiler.constant` returns for a node that is not a constant


class _position(FunctionElement):
    """The 1-based position of the second argument in the first, 0 when absent."""

    type = sa.Integer()
    inherit_cache = True


@compiles(_position)
def _strpos(element: _position, compiler: Any, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(_position, "sqlite")
def _instr(element: _position, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


class _quotient(FunctionElement):
    """The first argument divided by the second as the evaluator divides: never a whole-number division."""

    type = sa.Numeric()
    inherit_cache = True


@compiles(_quotient)
def _divide(element: _quotient, compiler: Any, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({a} AS NUMERIC) / {b})"


@compiles(_quotient, "sqlite")
def _divide_real(element: _quotient, compiler: Any, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({a} AS REAL) / {b})"


class days_between(FunctionElement):
    """The whole days from the date of the first argument to the date of the second (a date or date-time)."""

    type = sa.Integer()
    inherit_cache = True


@compiles(days_between)
def _date_difference(element: days_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(sa.cast(c, sa.Date()), **kw) for c in element.clauses)
    return f"({end} - {start})"


@compiles(days_between, "sqlite")
def _julian_difference(element: days_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(julianday(date({end})) - julianday(date({start})) AS INTEGER)"


class days_later(FunctionElement):
    """The date or date-time `days` whole days after the first argument (a date when `is_datetime` is false)."""

    inherit_cache = False  # `days` is no part of the cache key: compiled afresh each time

    def __init__(self, value: ColumnElement, days: int, is_datetime: bool):
        self.days, self.is_datetime = int(days), is_datetime
        self.type = sa.DateTime() if is_datetime else sa.Date()
        super().__init__(value)


@compiles(days_later)
def _interval_later(element: days_later, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return f"({value} + INTERVAL '{element.days} days')" if element.is_datetime else f"({value} + {element.days})"


@compiles(days_later, "sqlite")
def _modifier_later(element: days_later, compiler: Any, **kw: Any) -> str:
    # the stored text's shape (microseconds kept to three places: a later value of the same second sorts after)
    value = compiler.process(element.clauses, **kw)
    if element.is_datetime:
        return f"strftime('%Y-%m-%d %H:%M:%f', {value}, '+{element.days} days')"
    return f"date({value}, '+{element.days} days')"


# Values a behavior derives for each record, which rule conditions may name besides the fields (their names
# and kinds are declared in metadata/checks.BEHAVIOR_VALUES): behavior -> build(platform, obj, now), giving
# {name: SQL over the object's table}; a behavior declares it (Behavior.derived).
DerivedValues = Callable[[Any, str, datetime], Mapping[str, ColumnElement]]


def derived_values(platform, obj: str, now: datetime) -> dict[str, ColumnElement]:
    """The derived values of `obj`'s behaviors as SQL over its table, as of `now`."""
    found: dict[str, ColumnElement] = {}
    for behavior in platform.metadata.objects[obj].behaviors:
        if build := platform.registry.derived_values.get(behavior):
            found.update(build(platform, obj, now))
    return found


def column_kind(type_: sa.types.TypeEngine) -> str:
    """The expression kind of a column type (a TypeDecorator by the type it wraps)."""
    type_ = getattr(type_, "impl_instance", type_)
    return next((kind for cls, kind in _KINDS if isinstance(type_, cls)), "any")


def to_sql(
    expr: Expression,
    columns: Mapping[str, ColumnElement],
    now: datetime | None = None,
    *,
    condition: bool = False,
) -> ColumnElement:
    """Compile `expr` with field names bound to `columns`, as of `now` (in the organisation's zone: today() is
    its date there, and days_since() counts that zone's days).

    A boolean expression, or any expression when `condition` is true (as filters want: '', 0 and
    NULL are false), compiles to a two-valued condition; anything else to its value.
    """
    kinds = expr.kinds({name: column_kind(column.type) for name, column in columns.items()})
    compiler = _Compiler(columns, kinds, now or datetime.now())
    if condition or kinds[expr.node] == "boolean":
        return compiler.condition(expr.node)
    return compiler.value(expr.node)


def _unsupported(what: str, node: Node) -> ExpressionError:
    return ExpressionError(f"{what} is not supported in database filters", node.offset)


def _days_since_error(node: Node) -> ExpressionError:
    return ExpressionError("days_since() is only supported in database filters compared with a whole number, "
                           "e.g. days_since(x) >= 30", node.offset)


def _is_condition(node: Node) -> bool:
    """Whether `node` compiles to a two-valued condition by itself."""
    if isinstance(node, Unary | Binary):
        return node.op in COMPARISONS or node.op in ("and", "or", "not")
    return isinstance(node, Call) and node.name == "contains"


class _Compiler:
    """Turns checked AST nodes into SQL, given each node's kind."""

    def __init__(self, columns: Mapping[str, ColumnElement], kinds: Mapping[Node, str], now: datetime):
        self.columns, self.kinds, self.now = columns, kinds, now

    def constant(self, node: Node) -> Any:
        """The Python value of a literal or of today()/now(), else `_VARIABLE`."""
        match node:
            case Literal(value):
                return value
            case Call("today" | "now", ()):
                return self.now.date() if node.name == "today" else self.stored_now()
        return _VARIABLE

    def stored_now(self) -> datetime:
        """now() as date-times are stored: naive UTC."""
        return self.now.astimezone(UTC).replace(tzinfo=None) if self.now.tzinfo else self.now

    def value(self, node: Node) -> ColumnElement:
        """The SQL value of `node` (NULL where the evaluator gives None)."""
        match node:
            case Literal(None):
                return sa.null()
            case Literal(value):
                return sa.literal(value)
            case Name(name):
                return self.columns[name]
            case Unary("-", operand):
                return -self.value(operand)
            case Unary("not", operand):
                return sa.not_(self.condition(operand))
            case Binary("and", left, right):
                return sa.and_(self.condition(left), self.condition(right))
            case Binary("or", left, right):
                return sa.or_(self.condition(left), self.condition(right))
            case Binary("in" | "not in", left, right):
                found = self.membership(right, left)
                return found if node.op == "in" else sa.not_(found)
            case Binary(op, left, right) if op in COMPARISONS:
                return self.compare(op, left, right)
            case Binary(op, left, right):
                return self.arithmetic(node, op, left, right)
            case Call("today" | "now"):
                return sa.literal(self.constant(node), _TYPES[self.kinds[node]]())
            case Call("contains", (whole, part)):
                return self.membership(whole, part)
            case Call("days_since"):
                raise _days_since_error(node)
            case Call(name, args) if name in _SQL_FUNCTIONS:
                type_ = _TYPES.get(self.kinds[node], sa.types.NullType)()
                return getattr(sa.func, _SQL_FUNCTIONS[name])(*map(self.value, args), type_=type_)
            case Call(name):
                raise _unsupported(f"{name}()", node)
        raise _unsupported("a list", node)

    def condition(self, node: Node) -> ColumnElement:
        """The two-valued truth of `node`: None, '', 0 and false are false."""
        if isinstance(node, Literal):
            return sa.true() if node.value else sa.false()
        if _is_condition(node):
            return self.value(node)
        sql, kind = self.value(node), self.kinds[node]
        if kind == "boolean":
            return sql.is_(True)
        if kind == "list":
            raise _unsupported("the truth of a list", node)
        empty = {"number": 0, "text": ""}.get(kind)
        return sql.is_not(None) if empty is None else sa.and_(sql.is_not(None), sql != empty)

    def operand(self, node: Node, other: Node) -> Any:
        """A comparison operand: a Python constant or SQL, a datetime reduced to its date against a date."""
        value = self.constant(node)
        if self.kinds[node] == "datetime" and self.kinds[other] == "date":
            return value.date() if value is not _VARIABLE else sa.func.date(self.value(node), type_=sa.Date())
        return value if value is not _VARIABLE else self.value(node)

    def compare(self, op: str, left: Node, right: Node) -> ColumnElement:
        """A two-valued comparison; `days_since(x) OP N` becomes a comparison of x's date."""
        if isinstance(right, Call) and right.name == "days_since":
            op, left, right = _MIRROR[op], right, left
        if isinstance(left, Call) and left.name == "days_since":
            days = self.constant(right)
            if days is not None and not (isinstance(days, int | Decimal) and not isinstance(days, bool)
                                         and days == int(days)):
                raise _days_since_error(left)
            (arg,) = left.args
            sql = self.value(arg)
            if days is None:
                return self.compare_sql(op, sql, None)
            day = self.now.date() - timedelta(days=int(days))
            if self.kinds[arg] == "datetime":
                return self.compare_day(_MIRROR[op], sql, day)
            return self.compare_sql(_MIRROR[op], sql, day)
        if self.kinds[right] == "datetime" and self.kinds[left] == "date":
            op, left, right = _MIRROR[op], right, left
        day = self.constant(right)
        if self.kinds[left] == "datetime" and self.kinds[right] == "date" and isinstance(day, date) \
                and self.constant(left) is _VARIABLE:
            return self.compare_day(op, self.value(left), day)
        return self.compare_sql(op, self.operand(left, right), self.operand(right, left))

    def compare_day(self, op: str, sql: ColumnElement, day: date) -> ColumnElement:
        """`sql op day` for a stored date-time `sql`, by its date in the zone of `now`: bounds at the zone's
        midnights, computed here, so the database needs no time zone of its own."""
        if op in ("==", "!="):
            within = sa.and_(self.compare_day(">=", sql, day), self.compare_day("<=", sql, day))
            return within if op == "==" else sa.not_(within)
        bound, first = {"<": ("<", day), "<=": ("<", day + timedelta(days=1)), ">": (">=", day + timedelta(days=1)),
                        ">=": (">=", day)}[op]
        return self.compare_sql(bound, sql, local_midnight(first, self.now.tzinfo))

    def compare_sql(self, op: str, a: Any, b: Any) -> ColumnElement:
        """`a op b` with the evaluator's null semantics; each side is SQL or a Python constant."""
        if not isinstance(a, ColumnElement):
            if not isinstance(b, ColumnElement):
                a = sa.literal(a) if a is not None else sa.null()
            else:
                op, a, b = _MIRROR[op], b, a
        if op in ("==", "!="):
            if b is None:
                return a.is_(None) if op == "==" else a.is_not(None)
            if op == "!=":
                return a.is_distinct_from(b)
            if isinstance(b, ColumnElement):
                return a.is_not_distinct_from(b)
            return sa.and_(a == b, a.is_not(None))
        if b is None:
            return sa.false()
        guards = [a.is_not(None)] + ([b.is_not(None)] if isinstance(b, ColumnElement) else [])
        return sa.and_(_OPERATORS[op](a, b), *guards)

    def membership(self, container: Node, item: Node) -> ColumnElement:
        """Two-valued `item in container` for a list of constants or a text."""
        sql = self.value(item)
        if isinstance(container, ListLiteral):
            values = [self.constant(element) for element in container.items]
            if _VARIABLE in values:
                raise _unsupported("a list with non-constant items", container)
            found = sa.and_(sql.in_([v for v in values if v is not None]), sql.is_not(None))
            return sa.or_(found, sql.is_(None)) if None in values else found
        if self.kinds[container] != "text":
            raise _unsupported(f"searching a {self.kinds[container]} value", container)
        whole = self.value(container)
        return sa.and_(_position(whole, sql) > 0, whole.is_not(None), sql.is_not(None))

    def arithmetic(self, node: Binary, op: str, left: Node, right: Node) -> ColumnElement:
        """+ - * / on numbers (and + on texts); division by zero gives NULL."""
        if {self.kinds[left], self.kinds[right]} & {"date", "datetime"}:
            raise _unsupported("date arithmetic", node)
        a, b = self.value(left), self.value(right)
        if op == "/":
            return _quotient(a, sa.func.nullif(b, 0, type_=b.type))
        return _OPERATORS[op](a, b)
