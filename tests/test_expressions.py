"""The expression language: parsing, type checking and evaluation."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from objectplatform.metadata.expressions import (
    FUNCTIONS,
    Binary,
    Call,
    ExpressionError,
    Function,
    ListLiteral,
    Literal,
    Name,
    Unary,
    column,
    parse,
    register_function,
)

NOW = datetime(2024, 6, 15, 12, 30)
CHAINED = "comparisons cannot be chained; join them with 'and'"
ENV = {
    "name": "text", "phone": "text", "email": "text", "amount": "number", "qty": "number",
    "active": "boolean", "due": "date", "created_at": "datetime", "tags": "list", "location": "geo",
    "formula": "any", "account.name": "text",
}


def ev(text, **values):
    return parse(text).evaluate(values, now=NOW)


def error(fn, *args):
    with pytest.raises(ExpressionError) as info:
        fn(*args)
    return str(info.value), info.value.offset


def check_error(text):
    return error(parse(text).check, ENV)


# ------------------------------------------------------------------------------------ parsing


def test_a_text_is_parsed_once_and_its_expression_shared():
    first = parse("amount > 100 and status == 'open'")
    assert parse("amount > 100 and status == 'open'") is first
    assert parse("amount > 100 and status != 'open'") is not first
    with pytest.raises(ExpressionError) as caught:  # a failure is raised each time, never kept
        parse("amount >")
    with pytest.raises(ExpressionError) as again:
        parse("amount >")
    assert str(caught.value) == str(again.value) == "unexpected end of expression"


def test_ast_and_names():
    expr = parse("not phone and amount >= 1.5 * -qty or account.name in ['a', \"b\"]")
    assert expr.node == Binary(
        "or",
        Binary(
            "and",
            Unary("not", Name("phone", 4), 0),
            Binary(
                ">=",
                Name("amount", 14),
                Binary("*", Literal(Decimal("1.5"), 24), Unary("-", Name("qty", 31), 30), 28),
                21,
            ),
            10,
        ),
        Binary("in", Name("account.name", 38), ListLiteral((Literal("a", 55), Literal("b", 60)), 54), 51),
        35,
    )
    assert expr.names == frozenset({"phone", "amount", "qty", "account.name"})
    assert expr.text.startswith("not phone")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 / 4", Decimal("1.5")),
        ("-2 * 3", -6),
        ("- -2", 2),
        ("1 + 1 == 2 and 2 < 3", True),
        ("false and false or true", True),
        ("false and (false or true)", False),
        ("not false and false", False),
        ("not 1 == 2", True),
        ("not not 'x'", True),
        ("-1 + 2 * -3", -7),
        ("'a' + 'b' == 'ab' or 1 / 0 > 1", True),
    ],
)
def test_precedence(text, value):
    assert ev(text) == value and type(ev(text)) is type(value)


def test_literals():
    assert ev("42") == 42 and isinstance(ev("42"), int)
    assert ev("3.25") == Decimal("3.25") and isinstance(ev("3.25"), Decimal)
    assert ev(r"""'it\'s' + "\"q\"" + '\\' + '\n\t\r'""") == "it's\"q\"\\\n\t\r"
    assert ev("'a\\nb'") == "a\nb"
    assert (ev("true"), ev("false"), ev("null")) == (True, False, None)
    assert ev("[1, 'a', null, [2]]") == [1, "a", None, [2]]
    assert ev("[]") == []
    assert ev("  1\n+\t2  ") == 3


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("(a + b))", "unexpected ')' at column 8", 7),
        ("a +", "unexpected end of expression", 3),
        ("", "unexpected end of expression", 0),
        ("(a", "unexpected end of expression (expected ')')", 2),
        ("[1 2]", "unexpected '2' at column 4 (expected ',' or ']')", 3),
        ("f(1", "unknown function 'f'", 0),
        ("len(1", "unexpected end of expression (expected ',' or ')')", 5),
        ("a == b == c", f"unexpected '==' at column 8 ({CHAINED})", 7),
        ("a < b > c", f"unexpected '>' at column 7 ({CHAINED})", 6),
        ("a in [1] in x", f"unexpected 'in' at column 10 ({CHAINED})", 9),
        ("a = 1", "unexpected '=' at column 3 (use '==' to compare)", 2),
        ("!a", "unexpected '!' at column 1 (use 'not')", 0),
        ("a && b", "unexpected '&' at column 3 (use 'and')", 2),
        ("a || b", "unexpected '|' at column 3 (use 'or')", 2),
        ("a not b", "unexpected 'not' at column 3", 2),
        ("a 'x'", "unexpected 'x' at column 3", 2),
        ("'abc", "unterminated string starting at column 1", 0),
        ("'abc\\", "unterminated string starting at column 1", 0),
        ("'a\\qb'", "unknown escape '\\q' at column 3", 2),
        ("1.", "unexpected '.' at column 2", 1),
        ("a\n  + )", "unexpected ')' at column 5", 6),
        ("a ; b", "unexpected ';' at column 3", 2),
        ("todya()", "unknown function 'todya' (did you mean 'today'?)", 0),
        ("1 + lenn(x)", "unknown function 'lenn' (did you mean 'len'?)", 4),
        ("today(1)", "today() takes no arguments, got 1", 0),
        ("days_since()", "days_since() takes 1 argument, got 0", 0),
        ("round(1, 2, 3)", "round() takes 1 or 2 arguments, got 3", 0),
        ("contains('a')", "contains() takes 2 arguments, got 1", 0),
        ("coalesce()", "coalesce() takes at least 1 argument, got 0", 0),
    ],
)
def test_syntax_errors(text, message, offset):
    assert error(parse, text) == (message, offset)


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("__import__('os')", "names may not start with '__': '__import__'", 0),
        ("name.__class__", "names may not start with '__': 'name.__class__'", 0),
        ("name.upper()", "unknown function 'name.upper' (did you mean 'upper'?)", 0),
        ("name[0]", "unexpected '[' at column 5", 4),
        ("tags[0:1]", "unexpected ':' at column 7", 6),
        ("(name)(1)", "unexpected '(' at column 7", 6),
        ("lambda: 1", "unexpected ':' at column 7", 6),
        ("name if true else phone", "unexpected 'if' at column 6", 5),
        ("1 ** 2", "unexpected '*' at column 4", 3),
        ("{'a': 1}", "unexpected '{' at column 1", 0),
    ],
)
def test_python_is_not_accepted(text, message, offset):
    assert error(parse, text) == (message, offset)


def test_error_attributes():
    with pytest.raises(ExpressionError) as info:
        parse("phnoe == 1").check(ENV)
    assert (info.value.message, info.value.offset, info.value.hint) == (
        "unknown field 'phnoe'", 0, "did you mean 'phone'?")
    assert error(parse, 3) == ("an expression must be text, got int", 0)
    assert column("a\nbc + )", 7) == 6


# ------------------------------------------------------------------------------ type checking


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("name", "text"),
        ("account.name + '!'", "text"),
        ("amount * 2 + qty / 3", "number"),
        ("-amount", "number"),
        ("not name", "boolean"),
        ("name and amount", "boolean"),
        ("due - due", "number"),
        ("created_at - due", "number"),
        ("due + 3", "date"),
        ("3 + due", "date"),
        ("due - 3", "date"),
        ("created_at + 1", "datetime"),
        ("due < created_at", "boolean"),
        ("due == today()", "boolean"),
        ("created_at > now()", "boolean"),
        ("'vip' in tags", "boolean"),
        ("'x' not in name", "boolean"),
        ("amount in [1, 2.5]", "boolean"),
        ("formula + 1", "any"),
        ("formula * 2", "number"),
        ("formula + 'x'", "text"),
        ("formula == 1 and formula == 'x'", "boolean"),
        ("null", "any"),
        ("amount == null", "boolean"),
        ("[1, 'a']", "list"),
        ("location == null", "boolean"),
        ("days_since(created_at)", "number"),
        ("len(tags) + len(name)", "number"),
        ("coalesce(amount, null, 0)", "number"),
        ("coalesce(null)", "any"),
        ("lower(name)", "text"),
        ("round(amount, 2)", "number"),
        ("abs(amount)", "number"),
        ("min(due, today())", "date"),
        ("max(name, 'x')", "text"),
        ("contains(name, 'x')", "boolean"),
        ("contains(tags, 1)", "boolean"),
    ],
)
def test_kinds(text, kind):
    assert parse(text).check(ENV) == kind


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("phnoe", "unknown field 'phnoe' (did you mean 'phone'?)", 0),
        ("amount > 1 and xyzzy", "unknown field 'xyzzy'", 15),
        ("account.nme == 'a'", "unknown field 'account.nme' (did you mean 'account.name'?)", 0),
        ("amount == 'x'", "cannot compare number with text", 7),
        ("due != 1", "cannot compare date with number", 4),
        ("active < active", "'<' needs numbers, texts or dates, got boolean and boolean", 7),
        ("tags >= tags", "'>=' needs numbers, texts or dates, got list and list", 5),
        ("due + 'x'", "'+' needs numbers or texts, got date and text", 4),
        ("due + due", "'+' needs numbers or texts, got date and date", 4),
        ("name - 'x'", "'-' needs numbers or dates, got text and text", 5),
        ("3 - due", "'-' needs numbers or dates, got number and date", 2),
        ("name * 3", "'*' needs numbers, got text and number", 5),
        ("amount / active", "'/' needs numbers, got number and boolean", 7),
        ("-name", "'-' needs a number, got text", 0),
        ("1 in amount", "'in' needs a list or a text to search in, got number", 2),
        ("1 not in name", "'not in' can only search a text for a text, got number", 2),
        ("amount in [1, 'x']", "cannot compare number with text", 14),
        ("days_since(name)", "days_since() argument 1 must be date or datetime, got text", 0),
        ("len(amount)", "len() argument 1 must be list or text, got number", 0),
        ("lower(amount)", "lower() argument 1 must be text, got number", 0),
        ("round(amount, 'x')", "round() argument 2 must be number, got text", 0),
        ("coalesce(amount, name)", "coalesce() arguments must have the same kind, got number and text", 0),
        ("min(active, true)", "min() needs numbers, texts or dates, got boolean", 0),
        ("max(due, created_at)", "max() arguments must have the same kind, got date and datetime", 0),
        ("contains(amount, 1)", "contains() needs a list or a text to search in, got number", 0),
        ("1 + contains(name, 1)", "contains() can only search a text for a text, got number", 4),
    ],
)
def test_type_errors(text, message, offset):
    assert check_error(text) == (message, offset)


# --------------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("text", "values", "result"),
    [
        ("a == b", {"a": 1, "b": Decimal("1.00")}, True),
        ("a == b", {"a": 0.1, "b": Decimal("0.1")}, True),
        ("a != b", {"a": "x", "b": "y"}, True),
        ("a < b", {"a": 1, "b": 2}, True),
        ("a <= b", {"a": 2, "b": 2}, True),
        ("a > b", {"a": "b", "b": "a"}, True),
        ("a >= b", {"a": date(2024, 1, 1), "b": date(2024, 1, 2)}, False),
        ("a == b", {"a": datetime(2024, 6, 15, 9), "b": date(2024, 6, 15)}, True),
        ("a < b", {"a": datetime(2024, 6, 14, 23), "b": date(2024, 6, 15)}, True),
        ("a + b", {"a": 1, "b": 2}, 3),
        ("a + b", {"a": 0.1, "b": Decimal("0.2")}, Decimal("0.3")),
        ("a + b", {"a": "ab", "b": "cd"}, "abcd"),
        ("a - b", {"a": Decimal("1.5"), "b": 2}, Decimal("-0.5")),
        ("a * b", {"a": Decimal("1.5"), "b": 0.5}, Decimal("0.75")),
        ("a / b", {"a": 1, "b": 4}, Decimal("0.25")),
        ("a / b", {"a": 1.0, "b": 3}, Decimal(1) / Decimal(3)),
        ("a / b", {"a": 1, "b": 0}, None),
        ("a / b", {"a": 1, "b": Decimal("0.00")}, None),
        ("a / b", {"a": 0, "b": 0.0}, None),
        ("a + 2", {"a": date(2024, 2, 28)}, date(2024, 3, 1)),
        ("2 + a", {"a": date(2024, 2, 28)}, date(2024, 3, 1)),
        ("a - 1", {"a": date(2024, 3, 1)}, date(2024, 2, 29)),
        ("a + 0.5", {"a": datetime(2024, 1, 1)}, datetime(2024, 1, 1, 12)),
        ("a - b", {"a": date(2024, 3, 1), "b": date(2024, 2, 1)}, 29),
        ("a - b", {"a": datetime(2024, 1, 2, 12), "b": datetime(2024, 1, 1)}, Decimal("1.5")),
        ("a - b", {"a": datetime(2024, 1, 2, 23), "b": date(2024, 1, 1)}, 1),
        ("-a", {"a": Decimal("2.5")}, Decimal("-2.5")),
        ("a in [1, 2]", {"a": Decimal("2.0")}, True),
        ("a in ['x', 'y']", {"a": "z"}, False),
        ("a not in ['x', 'y']", {"a": "z"}, True),
        ("'vip' in a", {"a": ["new", "vip"]}, True),
        ("'vip' not in a", {"a": ["new"]}, True),
        ("'ell' in a", {"a": "Hello"}, True),
        ("'ELL' in a", {"a": "Hello"}, False),
        ("a in 'Hello'", {"a": "lo"}, True),
    ],
)
def test_operators(text, values, result):
    value = parse(text).evaluate(values, now=NOW)
    assert value == result and type(value) is type(result)


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("a == null", True),
        ("a != null", False),
        ("a == 1", False),
        ("a != 1", True),
        ("a == b", True),
        ("a < 1", False),
        ("a <= 1", False),
        ("a > 1", False),
        ("a >= 1", False),
        ("1 > a", False),
        ("not (a > 1)", True),
        ("a + 1", None),
        ("1 - a", None),
        ("a * 2", None),
        ("a / 2", None),
        ("2 / a", None),
        ("-a", None),
        ("a + 'x'", None),
        ("a + 1 == null", True),
        ("a in [1, 2]", False),
        ("a in [1, null]", True),
        ("a not in [1, 2]", True),
        ("'x' in a", False),
        ("'x' not in a", True),
        ("a in 'abc'", False),
        ("a", None),
        ("not a", True),
        ("a or b", False),
        ("days_since(a)", None),
        ("len(a)", None),
        ("lower(a)", None),
        ("upper(a)", None),
        ("round(a, 2)", None),
        ("round(1, a)", None),
        ("abs(a)", None),
        ("coalesce(a, b)", None),
        ("min(a, b)", None),
        ("max(a, b)", None),
        ("contains(a, 'x')", False),
    ],
)
def test_null_semantics(text, result):
    value = parse(text).evaluate({"b": None}, now=NOW)
    assert value == result and type(value) is type(result)


@pytest.mark.parametrize(
    ("value", "truthy"),
    [(None, False), ("", False), ([], False), (0, False), (Decimal("0.00"), False), (0.0, False),
     (False, False), ("x", True), (["a"], True), (1, True), (Decimal("0.01"), True), (-1, True),
     (True, True), (date(2024, 1, 1), True)],
)
def test_truthiness(value, truthy):
    assert ev("not a", a=value) is (not truthy)
    assert ev("a and true", a=value) is truthy
    assert ev("a or false", a=value) is truthy


def test_and_or_short_circuit_and_return_booleans():
    assert ev("a and b", a="x", b=[1]) is True
    assert ev("a or b", a="", b=0) is False
    assert ev("a and 1 / 0 == 1") is False
    assert ev("a or b", a=0, b="y") is True


def test_not_phone_and_not_email():
    rule = parse("not phone and not email")
    assert rule.evaluate({}) is True
    assert rule.evaluate({"phone": "", "email": None}) is True
    assert rule.evaluate({"phone": "138"}) is False
    assert rule.evaluate({"email": "a@b.c"}) is False


@pytest.mark.parametrize(
    ("text", "values", "result"),
    [
        ("today()", {}, date(2024, 6, 15)),
        ("now()", {}, NOW),
        ("days_since(a)", {"a": date(2024, 6, 1)}, 14),
        ("days_since(a)", {"a": datetime(2024, 6, 14, 23, 59)}, 1),
        ("days_since(a)", {"a": date(2024, 6, 20)}, -5),
        ("len(a)", {"a": "你好"}, 2),
        ("len(a)", {"a": ["x", "y", "z"]}, 3),
        ("coalesce(a, b, 3)", {"b": ""}, ""),
        ("coalesce(a, b, 3)", {}, 3),
        ("lower(a)", {"a": "AbC"}, "abc"),
        ("upper(a)", {"a": "AbC"}, "ABC"),
        ("round(a, 1)", {"a": Decimal("2.25")}, Decimal("2.3")),
        ("round(a)", {"a": Decimal("2.5")}, Decimal("3")),
        ("round(a, 2)", {"a": 1.005}, Decimal("1.01")),
        ("round(a, 0)", {"a": -7}, Decimal("-7")),
        ("abs(a)", {"a": Decimal("-2.5")}, Decimal("2.5")),
        ("abs(a)", {"a": -3}, 3),
        ("min(a, 2, 3)", {"a": 5}, 2),
        ("max(a, b)", {"a": None, "b": Decimal("1.5")}, Decimal("1.5")),
        ("max(a, b)", {"a": "pear", "b": "apple"}, "pear"),
        ("min(a, today())", {"a": date(2024, 1, 1)}, date(2024, 1, 1)),
        ("contains(a, 'ell')", {"a": "Hello"}, True),
        ("contains(a, 'x')", {"a": "Hello"}, False),
        ("contains(a, 'x')", {"a": ["x"]}, True),
    ],
)
def test_functions(text, values, result):
    value = parse(text).evaluate(values, now=NOW)
    assert value == result and type(value) is type(result)


def test_now_defaults_to_the_clock():
    assert parse("today()").evaluate({}) == date.today()
    assert abs((parse("now()").evaluate({}) - datetime.now()).total_seconds()) < 5


@pytest.mark.parametrize(
    ("text", "values", "message", "offset"),
    [
        ("a < b", {"a": 1, "b": "x"}, "cannot apply '<' to number and text", 2),
        ("a * b", {"a": "x", "b": 10**9}, "cannot apply '*' to text and number", 2),
        ("a in b", {"a": 1, "b": 5}, "cannot apply 'in' to number and number", 2),
        ("-a", {"a": "x"}, "cannot apply '-' to text", 0),
        ("lower(a)", {"a": 1}, "cannot apply lower() to number", 0),
        ("a + 1", {"a": date.max}, "cannot apply '+' to date and number", 2),
    ],
)
def test_evaluation_errors_without_check(text, values, message, offset):
    assert error(parse(text).evaluate, values) == (message, offset)


def test_register_function():
    register_function(Function("double", 1, 1, lambda kinds: "number", lambda now, x: 2 * x))
    try:
        expr = parse("double(amount) > 3")
        assert expr.check(ENV) == "boolean"
        assert expr.evaluate({"amount": 2}) is True
    finally:
        del FUNCTIONS["double"]
    assert error(parse, "double(1)") == ("unknown function 'double'", 0)


def test_ast_is_immutable():
    expr = parse("a + 1")
    with pytest.raises(AttributeError):
        expr.node.op = "-"
    with pytest.raises(AttributeError):
        expr.text = "b"
    assert parse("today()").node == Call("today", (), 0)
