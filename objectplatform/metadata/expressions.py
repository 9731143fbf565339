"""The safe expression language of validation rules, formulas and flow conditions.

(How it works: docs/engine.md, "objectplatform/metadata/expressions.py".)"""

from __future__ import annotations

import difflib
import functools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


class ExpressionError(Exception):
    """A syntax, name or type error at `offset` (0-based) in the text; str() appends the hint."""

    def __init__(self, message: str, offset: int = 0, hint: str | None = None):
        super().__init__(f"{message} ({hint})" if hint else message)
        self.message, self.offset, self.hint = message, offset, hint


# ---------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Literal:
    """A constant: None, bool, int, Decimal or str."""

    value: Any
    offset: int


@dataclass(frozen=True)
class ListLiteral:
    """A list `[a, b, ...]`."""

    items: tuple[Node, ...]
    offset: int


@dataclass(frozen=True)
class Name:
    """A field name, possibly dotted (`a.b` is the single name "a.b")."""

    name: str
    offset: int


@dataclass(frozen=True)
class Unary:
    """`-x` or `not x`."""

    op: str
    operand: Node
    offset: int


@dataclass(frozen=True)
class Binary:
    """`left op right`; op is one of `BINDING`'s keys and `offset` is the operator's."""

    op: str
    left: Node
    right: Node
    offset: int


@dataclass(frozen=True)
class Call:
    """A call of a registered function."""

    name: str
    args: tuple[Node, ...]
    offset: int


Node = Literal | ListLiteral | Name | Unary | Binary | Call

# how tightly each binary operator binds; `not` takes an operand of NOT_BINDING, unary minus of
# MINUS_BINDING, so `not a == b` is `not (a == b)` and `-a * b` is `(-a) * b`
BINDING = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4, "not in": 4,
           "+": 5, "-": 5, "*": 6, "/": 6}
NOT_BINDING, MINUS_BINDING = 3, 6
COMPARISONS = frozenset(op for op, bp in BINDING.items() if bp == 4)
MAX_NESTING = 100  # levels of operators, parentheses, lists and calls: the checker and evaluators recurse on them


CLOCK = frozenset({"today", "now", "days_since"})  # the functions whose value depends on when they are called


def reads_clock(expr: Expression) -> bool:
    """Whether `expr`'s value depends on when it is evaluated (it calls one of CLOCK)."""
    return any(isinstance(node, Call) and node.name in CLOCK for node in walk(expr.node))


def walk(node: Node) -> Iterator[Node]:
    """Yield `node` and every node below it, depth first."""
    yield node
    match node:
        case ListLiteral(items) | Call(_, items):
            children: Iterable[Node] = items
        case Unary(_, operand):
            children = (operand,)
        case Binary(_, left, right):
            children = (left, right)
        case _:
            children = ()
    for child in children:
        yield from walk(child)


# ---------------------------------------------------------------------------------- functions


@dataclass(frozen=True)
class Function:
    """A callable function: arity bounds, a kind rule and an implementation `impl(now, *args)`.

    `kind` maps the argument kinds to the result kind and raises ValueError (the message follows
    the function's name) on a mismatch.
    """

    name: str
    min_args: int
    max_args: int | None  # None: no upper bound
    kind: Callable[[Sequence[str]], str]
    impl: Callable[..., Any]

    def arity(self) -> str:
        """How many arguments the function takes, in words."""
        lo, hi = self.min_args, self.max_args
        if hi is None:
            return f"at least {_count(lo)}"
        if lo == hi:
            return _count(lo) if lo else "no arguments"
        return f"{lo} {'or' if hi == lo + 1 else 'to'} {hi} arguments"


FUNCTIONS: dict[str, Function] = {}


def register_function(function: Function) -> Function:
    """Add (or replace) a function; templates and the built-ins use the same call."""
    FUNCTIONS[function.name] = function
    return function


def _count(n: int) -> str:
    return f"{n} argument" + ("" if n == 1 else "s")


_DATES = frozenset({"date", "datetime"})
_ORDERED = frozenset({"number", "text", "date", "datetime", "any"})
_NUMBER, _TEXT = frozenset({"number"}), frozenset({"text"})


def _takes(result: str, *params: frozenset[str]) -> Callable[[Sequence[str]], str]:
    """A kind rule: argument i must have a kind in params[i]; the result has kind `result`."""

    def rule(kinds: Sequence[str]) -> str:
        for i, (kind, allowed) in enumerate(zip(kinds, params, strict=False), 1):
            if kind != "any" and kind not in allowed:
                raise ValueError(f"argument {i} must be {' or '.join(sorted(allowed))}, got {kind}")
        return result

    return rule


def _same(ordered: bool = False) -> Callable[[Sequence[str]], str]:
    """A kind rule for coalesce/min/max: all arguments share one kind, which is the result's."""

    def rule(kinds: Sequence[str]) -> str:
        known = [k for k in dict.fromkeys(kinds) if k != "any"]
        if len(known) > 1:
            raise ValueError(f"arguments must have the same kind, got {known[0]} and {known[1]}")
        if ordered and known and known[0] not in _ORDERED:
            raise ValueError(f"needs numbers, texts or dates, got {known[0]}")
        return known[0] if known else "any"

    return rule


def membership_error(container: str, item: str) -> str | None:
    """Why `item in container` is ill-typed, or None when it is fine."""
    if container == "text" and item not in ("text", "any"):
        return f"can only search a text for a text, got {item}"
    if container not in ("text", "list", "any"):
        return f"needs a list or a text to search in, got {container}"
    return None


def _contains_kind(kinds: Sequence[str]) -> str:
    if error := membership_error(kinds[0], kinds[1]):
        raise ValueError(error)
    return "boolean"


def _null_safe(fn: Callable[[Any], Any]) -> Callable[..., Any]:
    """A one-argument implementation that maps None to None."""
    return lambda now, x: None if x is None else fn(x)


def _round(now: datetime, x: Any, places: Any = 0) -> Decimal | None:
    """Round half up to `places` decimals."""
    if x is None or places is None:
        return None
    return _decimal(x).quantize(Decimal(1).scaleb(-int(places)), ROUND_HALF_UP)


def _iso_date(text: str) -> date | None:
    """The date a `YYYY-MM-DD` text names; None for any other text (`2026-13-01`, `2026-1-01`)."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _extreme(pick: Callable[..., Any], values: Sequence[Any]) -> Any:
    """min or max of the values that are not None (None when all are)."""
    present = [v for v in values if v is not None]
    return pick(present) if present else None


for _function in (
    Function("today", 0, 0, _takes("date"), lambda now: now.date()),
    Function("now", 0, 0, _takes("datetime"), lambda now: now),
    Function("days_since", 1, 1, _takes("number", _DATES),
             lambda now, x: None if x is None else (now.date() - _as_date(_on_clock(x, now))).days),
    Function("len", 1, 1, _takes("number", frozenset({"text", "list"})), _null_safe(len)),
    Function("coalesce", 1, None, _same(), lambda now, *args: next((a for a in args if a is not None), None)),
    Function("lower", 1, 1, _takes("text", _TEXT), _null_safe(str.lower)),
    Function("upper", 1, 1, _takes("text", _TEXT), _null_safe(str.upper)),
    Function("round", 1, 2, _takes("number", _NUMBER, _NUMBER), _round),
    Function("abs", 1, 1, _takes("number", _NUMBER), _null_safe(abs)),
    Function("min", 1, None, _same(ordered=True), lambda now, *args: _extreme(min, args)),
    Function("max", 1, None, _same(ordered=True), lambda now, *args: _extreme(max, args)),
    Function("contains", 2, 2, _contains_kind, lambda now, whole, part: _contains(whole, part)),
    Function("text", 1, 1, _takes("text", frozenset({"text", "number", "date", "datetime", "boolean"})),
             _null_safe(str)),
    Function("date", 1, 1, _takes("date", _TEXT), _null_safe(_iso_date)),
    Function("geo", 2, 2, _takes("geo", _NUMBER, _NUMBER),
             lambda now, lat, lng: None if lat is None or lng is None else {"lat": float(lat), "lng": float(lng)}),
):
    register_function(_function)


# ------------------------------------------------------------------------------------- parser

_SPACE = re.compile(r"\s*")
_TOKEN = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<op>==|!=|<=|>=|[-<>+*/()\[\],])"
    r"|(?P<string>['\"])"
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_CONSTANTS = {"true": True, "false": False, "null": None}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_CHAR_HINTS = {"=": "use '==' to compare", "!": "use 'not'", "&": "use 'and'", "|": "use 'or'"}


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, end, or the keyword / operator itself
    value: Any
    offset: int
    end: int


def column(text: str, offset: int) -> int:
    """The 1-based column of `offset` within its line."""
    return offset - text.rfind("\n", 0, offset)


def _tokenize(text: str) -> list[_Token]:
    """Split `text` into tokens, ending with an "end" token."""
    tokens, pos = [], 0
    while True:
        pos = _SPACE.match(text, pos).end()
        if pos == len(text):
            tokens.append(_Token("end", None, pos, pos))
            return tokens
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            message = f"unexpected '{char}' at column {column(text, pos)}"
            raise ExpressionError(message, pos, _CHAR_HINTS.get(char))
        kind, raw = match.lastgroup, match.group()
        if kind == "string":
            value, end = _scan_string(text, pos)
            tokens.append(_Token("string", value, pos, end))
        elif kind == "number":
            tokens.append(_Token("number", Decimal(raw) if "." in raw else int(raw), pos, match.end()))
        elif kind == "name" and raw in _KEYWORDS or kind == "op":
            tokens.append(_Token(raw, None, pos, match.end()))
        else:
            if any(part.startswith("__") for part in raw.split(".")):
                raise ExpressionError(f"names may not start with '__': '{raw}'", pos)
            tokens.append(_Token("name", raw, pos, match.end()))
        pos = tokens[-1].end


def _scan_string(text: str, start: int) -> tuple[str, int]:
    """The value of the string literal opening at `start`, and the offset just past it."""
    quote, chars, i = text[start], [], start + 1
    while i < len(text):
        if text[i] == quote:
            return "".join(chars), i + 1
        if text[i] == "\\":
            escape = text[i + 1 : i + 2]
            if not escape:
                break
            if escape not in _ESCAPES:
                raise ExpressionError(f"unknown escape '\\{escape}' at column {column(text, i)}", i)
            chars.append(_ESCAPES[escape])
            i += 2
        else:
            chars.append(text[i])
            i += 1
    raise ExpressionError(f"unterminated string starting at column {column(text, start)}", start)


class _Parser:
    """A Pratt parser over the token list."""

    def __init__(self, text: str):
        self.text, self.tokens, self.pos, self.nesting = text, _tokenize(text), 0, 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> _Token:
        token = self.peek()
        self.pos += token.kind != "end"
        return token

    def unexpected(self, token: _Token, hint: str | None = None) -> ExpressionError:
        """The error for a token that cannot appear where it is."""
        if token.kind == "end":
            return ExpressionError("unexpected end of expression", token.offset, hint)
        source = self.text[token.offset : token.end]
        shown = source if token.kind == "string" else f"'{source}'"
        message = f"unexpected {shown} at column {column(self.text, token.offset)}"
        return ExpressionError(message, token.offset, hint)

    def infix(self) -> tuple[str | None, int]:
        """The binary operator at the current token and how many tokens it spans."""
        token = self.peek()
        if token.kind == "not" and self.peek(1).kind == "in":
            return "not in", 2
        return (token.kind, 1) if token.kind in BINDING else (None, 0)

    def expression(self, min_binding: int = 0) -> Node:
        """Parse operators that bind tighter than `min_binding`."""
        self.nest(self.peek())
        left = self.prefix()
        chain = 0  # `a + b + c` nests to the left: each operator is one level more
        while True:
            op, width = self.infix()
            if op is None or BINDING[op] <= min_binding:
                self.nesting -= 1 + chain
                return left
            offset = self.peek().offset
            self.nest(self.peek())
            chain += 1
            self.pos += width
            left = Binary(op, left, self.expression(BINDING[op]), offset)
            if op in COMPARISONS and self.infix()[0] in COMPARISONS:
                raise self.unexpected(self.peek(), "comparisons cannot be chained; join them with 'and'")

    def nest(self, token: _Token) -> None:
        """One level deeper at `token`; past MAX_NESTING levels the expression is refused."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExpressionError(f"expression nested too deeply (more than {MAX_NESTING} levels of operators, "
                                  f"parentheses and calls) at column {column(self.text, token.offset)}", token.offset)

    def prefix(self) -> Node:
        """Parse a literal, name, call, parenthesised expression or prefix operator."""
        token = self.next()
        match token.kind:
            case "number" | "string":
                return Literal(token.value, token.offset)
            case "true" | "false" | "null":
                return Literal(_CONSTANTS[token.kind], token.offset)
            case "name":
                return self.call(token) if self.peek().kind == "(" else Name(token.value, token.offset)
            case "(":
                node = self.expression()
                if (close := self.next()).kind != ")":
                    raise self.unexpected(close, "expected ')'")
                return node
            case "[":
                return ListLiteral(self.items("]"), token.offset)
            case "-":
                return Unary("-", self.expression(MINUS_BINDING), token.offset)
            case "not":
                return Unary("not", self.expression(NOT_BINDING), token.offset)
        raise self.unexpected(token)

    def items(self, close: str) -> tuple[Node, ...]:
        """Comma-separated expressions up to and including the `close` token."""
        items = []
        while self.peek().kind != close:
            items.append(self.expression())
            if self.peek().kind != close and (token := self.next()).kind != ",":
                raise self.unexpected(token, f"expected ',' or '{close}'")
        self.next()
        return tuple(items)

    def call(self, name: _Token) -> Call:
        """A function call; the function must be registered and get an acceptable number of arguments."""
        function = FUNCTIONS.get(name.value)
        if function is None:
            hint = _suggest(name.value, FUNCTIONS)
            raise ExpressionError(f"unknown function '{name.value}'", name.offset, hint)
        self.next()
        args = self.items(")")
        if len(args) < function.min_args or function.max_args is not None and len(args) > function.max_args:
            raise ExpressionError(f"{function.name}() takes {function.arity()}, got {len(args)}", name.offset)
        return Call(function.name, args, name.offset)


def _suggest(name: str, known: Iterable[str]) -> str | None:
    """A "did you mean" hint for a misspelt name."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def parse(text: str) -> Expression:
    """Parse `text`; raises ExpressionError at the first syntax error. A text is parsed once per process: the
    same immutable Expression is returned again for it (a record write evaluates the same rules every time)."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, got {type(text).__name__}")
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Expression:
    parser = _Parser(text)
    node = parser.expression()
    if (token := parser.peek()).kind != "end":
        raise parser.unexpected(token)
    return Expression(text, node, frozenset(n.name for n in walk(node) if isinstance(n, Name)))


# ------------------------------------------------------------------------------- type checker

_ARITHMETIC = {  # (operator, left kind, right kind) -> result kind
    ("+", "number", "number"): "number", ("+", "text", "text"): "text",
    ("+", "date", "number"): "date", ("+", "number", "date"): "date",
    ("+", "datetime", "number"): "datetime", ("+", "number", "datetime"): "datetime",
    ("-", "number", "number"): "number",
    ("-", "date", "number"): "date", ("-", "datetime", "number"): "datetime",
    ("-", "date", "date"): "number", ("-", "datetime", "datetime"): "number",
    ("-", "date", "datetime"): "number", ("-", "datetime", "date"): "number",
    ("*", "number", "number"): "number", ("/", "number", "number"): "number",
}
_OPERANDS = {"+": "numbers or texts", "-": "numbers or dates", "*": "numbers", "/": "numbers"}


def comparable(a: str, b: str) -> bool:
    """Whether values of kinds a and b may be compared (a date compares with a datetime by its date)."""
    return a == b or "any" in (a, b) or a in _DATES and b in _DATES


def _binary_kind(op: str, a: str, b: str) -> str:
    """The kind of `a op b`; raises ValueError when the kinds do not fit the operator."""
    if op in ("in", "not in"):
        if error := membership_error(b, a):
            raise ValueError(f"'{op}' {error}")
        return "boolean"
    if op in COMPARISONS:
        if not comparable(a, b):
            raise ValueError(f"cannot compare {a} with {b}")
        if op not in ("==", "!=") and not (a in _ORDERED and b in _ORDERED):
            raise ValueError(f"'{op}' needs numbers, texts or dates, got {a} and {b}")
        return "boolean"
    results = {kind for (o, left, right), kind in _ARITHMETIC.items() if o == op and a in (left, "any")
               and b in (right, "any")}
    if not results:
        raise ValueError(f"'{op}' needs {_OPERANDS[op]}, got {a} and {b}")
    return results.pop() if len(results) == 1 else "any"


class _Checker:
    """Infers the kind of every node against an environment of field kinds."""

    def __init__(self, env: Mapping[str, str]):
        self.env, self.kinds = env, {}

    def visit(self, node: Node) -> str:
        self.kinds[node] = kind = self._kind(node)
        return kind

    def _kind(self, node: Node) -> str:
        match node:
            case Literal(value):
                return "any" if value is None else kind_of(value)
            case ListLiteral(items):
                for item in items:
                    self.visit(item)
                return "list"
            case Name(name, offset):
                if name not in self.env:
                    raise ExpressionError(f"unknown field '{name}'", offset, _suggest(name, self.env))
                return self.env[name]
            case Unary("not", operand):
                self.visit(operand)
                return "boolean"
            case Unary(op, operand, offset):
                if (kind := self.visit(operand)) not in ("number", "any"):
                    raise ExpressionError(f"'{op}' needs a number, got {kind}", offset)
                return "number"
            case Binary("and" | "or", left, right):
                self.visit(left)
                self.visit(right)
                return "boolean"
            case Binary(op, left, right, offset):
                a, b = self.visit(left), self.visit(right)
                if op in ("in", "not in") and isinstance(right, ListLiteral):
                    for item in right.items:
                        if not comparable(a, self.kinds[item]):
                            raise ExpressionError(f"cannot compare {a} with {self.kinds[item]}", item.offset)
                try:
                    return _binary_kind(op, a, b)
                except ValueError as e:
                    raise ExpressionError(str(e), offset) from None
            case Call(name, args, offset):
                kinds = [self.visit(arg) for arg in args]
                try:
                    return FUNCTIONS[name].kind(kinds)
                except ValueError as e:
                    raise ExpressionError(f"{name}() {e}", offset) from None
        raise AssertionError(node)


# ---------------------------------------------------------------------------------- evaluator


def kind_of(value: Any) -> str:
    """The kind of a Python value ("null" for None)."""
    if value is None:
        return "null"
    for types, kind in ((bool, "boolean"), ((int, float, Decimal), "number"), (str, "text"),
                        (datetime, "datetime"), (date, "date"), ((list, tuple), "list")):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _decimal(value: Any) -> Decimal:
    """A number as a Decimal (floats through str, so 0.1 stays 0.1)."""
    return value if isinstance(value, Decimal) else Decimal(str(value) if isinstance(value, float) else value)


def _as_date(value: Any) -> Any:
    return value.date() if isinstance(value, datetime) else value


def _on_clock(value: Any, now: datetime) -> Any:
    """An aware date-time on the clock of `now` (so its date is that zone's day, as today() is); else `value`."""
    if isinstance(value, datetime) and value.tzinfo is not None and now.tzinfo is not None:
        return value.astimezone(now.tzinfo)
    return value


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    """Make two values comparable: a float meets a Decimal as a Decimal, a datetime meets a date as a date."""
    if isinstance(a, float) and isinstance(b, Decimal) or isinstance(a, Decimal) and isinstance(b, float):
        return _decimal(a), _decimal(b)
    if isinstance(a, date) and isinstance(b, date) and isinstance(a, datetime) != isinstance(b, datetime):
        return _as_date(a), _as_date(b)
    return a, b


def _equal(a: Any, b: Any) -> bool:
    return operator.eq(*_pair(a, b))


def _contains(container: Any, item: Any) -> bool:
    """Membership in a list, or substring in a text; nothing is in None."""
    if container is None:
        return False
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple | set | frozenset):
        return any(_equal(item, element) for element in container)
    raise TypeError(container)


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_NUMERIC = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _arithmetic(op: str, a: Any, b: Any) -> Any:
    """`a op b` for + - * /; None when either side is None or on division by zero."""
    if a is None or b is None:
        return None
    if _is_number(a) and _is_number(b):
        if op == "/":
            return None if b == 0 else _decimal(a) / _decimal(b)
        return _NUMERIC[op](*_pair(a, b))
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if op in "+-" and isinstance(a, date) and _is_number(b):
        return a + timedelta(days=float(b) if op == "+" else -float(b))
    if op == "+" and _is_number(a) and isinstance(b, date):
        return b + timedelta(days=float(a))
    if op == "-" and isinstance(a, date) and isinstance(b, date):
        a, b = _pair(a, b)
        if isinstance(a, datetime):
            return Decimal(str((a - b).total_seconds())) / 86400
        return (a - b).days
    raise TypeError(op)


def _binary(op: str, a: Any, b: Any) -> Any:
    """The value of `a op b` for every operator but `and` and `or`."""
    if op in ("in", "not in"):
        return _contains(b, a) == (op == "in")
    if op in ("==", "!="):
        return _equal(a, b) == (op == "==")
    if op in _ORDER:
        return a is not None and b is not None and _ORDER[op](*_pair(a, b))
    return _arithmetic(op, a, b)


def _negate(value: Any) -> Any:
    if value is None:
        return None
    if not _is_number(value):
        raise TypeError(value)
    return -value


def _apply(what: str, fn: Callable[..., Any], args: list[Any], offset: int) -> Any:
    """Call `fn(*args)`, turning a type or arithmetic failure into an ExpressionError."""
    try:
        return fn(*args)
    except (TypeError, ArithmeticError):
        kinds = " and ".join(kind_of(a) for a in args)
        raise ExpressionError(f"cannot apply {what} to {kinds}", offset) from None


Evaluator = Callable[[Mapping[str, Any], datetime], Any]


def _compile(node: Node) -> Evaluator:
    """`node` as nested closures computing its value given field values and the time: the tree is walked once, not
    once per record (a rule over an import's 100,000 rows)."""
    match node:
        case Literal(constant):
            return lambda values, now: constant
        case ListLiteral(items):
            parts = [_compile(item) for item in items]
            return lambda values, now: [part(values, now) for part in parts]
        case Name(name):
            return lambda values, now: values.get(name)
        case Unary("not", operand):
            inner = _compile(operand)
            return lambda values, now: not inner(values, now)
        case Unary(op, operand, offset):
            inner = _compile(operand)
            return lambda values, now: _apply(f"'{op}'", _negate, [inner(values, now)], offset)
        case Binary("and", left, right):
            first, second = _compile(left), _compile(right)
            return lambda values, now: bool(first(values, now)) and bool(second(values, now))
        case Binary("or", left, right):
            first, second = _compile(left), _compile(right)
            return lambda values, now: bool(first(values, now)) or bool(second(values, now))
        case Binary(op, left, right, offset):
            first, second = _compile(left), _compile(right)
            return lambda values, now: _apply(f"'{op}'", lambda a, b: _binary(op, a, b),
                                              [_on_clock(first(values, now), now), _on_clock(second(values, now), now)],
                                              offset)
        case Call(name, args, offset):
            parts = [_compile(arg) for arg in args]
            return lambda values, now: _apply(f"{name}()", lambda *a: FUNCTIONS[name].impl(now, *a),
                                              [part(values, now) for part in parts], offset)
    raise AssertionError(node)


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, its AST and the field names it reads."""

    text: str
    node: Node
    names: frozenset[str]

    def kinds(self, env: Mapping[str, str]) -> dict[Node, str]:
        """The kind of every node given the kinds of the fields; raises ExpressionError on a misfit."""
        checker = _Checker(env)
        checker.visit(self.node)
        return checker.kinds

    def check(self, env: Mapping[str, str]) -> str:
        """The kind of the result given the kinds of the fields; raises ExpressionError on a misfit."""
        return self.kinds(env)[self.node]

    def evaluate(self, values: Mapping[str, Any], now: datetime | None = None) -> Any:
        """The value given field values (a missing field is None); `now` defaults to the current time."""
        return self._evaluator(values, now or datetime.now())

    @functools.cached_property
    def _evaluator(self) -> Evaluator:
        return _compile(self.node)
