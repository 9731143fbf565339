"""Compiled expressions select exactly the rows the Python evaluator accepts, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from objectplatform.metadata.expressions import ExpressionError, parse
from objectplatform.runtime.expressions_sql import column_kind, to_sql

NOW = datetime(2024, 6, 15, 12, 0)

metadata = sa.MetaData()
deals = sa.Table(
    "deals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("phone", sa.String(20)),
    sa.Column("amount", sa.Numeric(18, 2)),
    sa.Column("qty", sa.Integer),
    sa.Column("active", sa.Boolean),
    sa.Column("due", sa.Date),
    sa.Column("created", sa.DateTime),
)
ROWS = [
    dict(id=1, name="Alice", phone="138", amount=Decimal("100.00"), qty=3, active=True,
         due=date(2024, 6, 1), created=datetime(2024, 6, 15, 9, 0)),
    dict(id=2, name="bob", phone=None, amount=Decimal("0.00"), qty=0, active=False,
         due=None, created=datetime(2024, 6, 14, 23, 0)),
    dict(id=3, name="Carol", phone="", amount=None, qty=None, active=None,
         due=date(2024, 6, 15), created=datetime(2024, 5, 1, 8, 0)),
    dict(id=4, name="", phone="139", amount=Decimal("250.50"), qty=10, active=True,
         due=date(2024, 7, 1), created=None),
    dict(id=5, name=None, phone=None, amount=Decimal("-5.00"), qty=2, active=False,
         due=date(2024, 6, 5), created=datetime(2024, 6, 10, 12, 0)),
]
ALL = {1, 2, 3, 4, 5}


@pytest.fixture
def engine(database_url):
    engine = sa.create_engine(database_url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(deals.insert(), ROWS)
    yield engine
    engine.dispose()


def select_ids(engine, text):
    """The ids the compiled expression selects, after checking the Python evaluator agrees."""
    expr = parse(text)
    with engine.connect() as conn:
        ids = set(conn.scalars(sa.select(deals.c.id).where(to_sql(expr, deals.c, now=NOW, condition=True))))
    assert ids == {row["id"] for row in ROWS if expr.evaluate(row, now=NOW)}, "SQL and Python disagree"
    return ids


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("amount > 50", {1, 4}),
        ("not (amount > 50)", {2, 3, 5}),
        ("amount >= 100.00", {1, 4}),
        ("50 < amount", {1, 4}),
        ("amount == null", {3}),
        ("null != amount", {1, 2, 4, 5}),
        ("amount != 100", {2, 3, 4, 5}),
        ("phone", {1, 4}),
        ("amount", {1, 4, 5}),
        ("qty + 1", {1, 2, 4, 5}),
        ("due", {1, 3, 4, 5}),
        ("not phone", {2, 3, 5}),
        ("phone == ''", {3}),
        ("not phone and not name", {5}),
        ("name == phone", {5}),
        ("name != phone", {1, 2, 3, 4}),
        ("name in ['Alice', 'bob']", {1, 2}),
        ("name not in ['Alice', 'bob']", {3, 4, 5}),
        ("name in ['Alice', null]", {1, 5}),
        ("name in []", set()),
        ("'a' in name", {3}),
        ("'o' not in name", {1, 4, 5}),
        ("contains(lower(name), 'a')", {1, 3}),
        ("len(name) >= 5", {1, 3}),
        ("upper(name) == 'BOB'", {2}),
        ("name + '!' == 'bob!'", {2}),
        ("coalesce(amount, 0) <= 0", {2, 3, 5}),
        ("coalesce(phone, 'none') == 'none'", {2, 5}),
        ("abs(amount) == 5", {5}),
        ("-amount > 0", {5}),
        ("amount * 2 > qty * 50", {1, 4}),
        ("amount / qty > 30", {1}),
        ("qty / 4 == 0.5", {5}),
        ("qty - 1 == 1", {5}),
        ("active", {1, 4}),
        ("not active", {2, 3, 5}),
        ("active == false", {2, 5}),
        ("qty in [0, 2] and not active", {2, 5}),
        ("amount > 50 or phone == '139'", {1, 4}),
        ("due < today()", {1, 5}),
        ("due == today()", {3}),
        ("created >= today()", {1}),
        ("created < today()", {2, 3, 5}),
        ("created < now()", {1, 2, 3, 5}),
        ("days_since(due) >= 10", {1, 5}),
        ("days_since(due) > 10", {1}),
        ("days_since(due) < 1", {3, 4}),
        ("days_since(due) <= 0", {3, 4}),
        ("days_since(due) == 14", {1}),
        ("days_since(due) != 14", {2, 3, 4, 5}),
        ("days_since(due) == null", {2}),
        ("days_since(created) <= 1", {1, 2}),
        ("30 <= days_since(created)", {3}),
        ("true", ALL),
        ("false", set()),
        ("1 + 1 == 2", ALL),
        ("'x' + 'y' == 'xy'", ALL),
    ],
)
def test_selects(engine, text, ids):
    assert select_ids(engine, text) == ids


def test_value_expression(engine):
    value = to_sql(parse("coalesce(amount, 0) + qty"), deals.c).label("v")
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(deals.c.id, value).order_by(deals.c.id)).all())
    assert rows == {1: 103, 2: 0, 3: None, 4: Decimal("260.50"), 5: -3}


def test_literals_are_bound_parameters():
    sql = str(to_sql(parse("name == \"Robert'); DROP TABLE deals; --\" or amount > 7"), deals.c))
    assert "Robert" not in sql and "DROP" not in sql and "7" not in sql


def test_column_kinds():
    assert [column_kind(c.type) for c in deals.c] == [
        "number", "text", "text", "number", "number", "boolean", "date", "datetime"]
    assert column_kind(sa.JSON()) == "list"
    assert column_kind(sa.LargeBinary()) == "any"


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("amont > 1", "unknown field 'amont' (did you mean 'amount'?)", 0),
        ("name == 1", "cannot compare text with number", 5),
        ("days_since(due) > qty", "days_since() is only supported in database filters compared with a "
                                  "whole number, e.g. days_since(x) >= 30", 0),
        ("days_since(due) > 1.5", "days_since() is only supported in database filters compared with a "
                                  "whole number, e.g. days_since(x) >= 30", 0),
        ("days_since(due) + 1 > 3", "days_since() is only supported in database filters compared with a "
                                    "whole number, e.g. days_since(x) >= 30", 0),
        ("round(amount, 1) > 1", "round() is not supported in database filters", 0),
        ("due + 1 > today()", "date arithmetic is not supported in database filters", 4),
        ("name in [phone]", "a list with non-constant items is not supported in database filters", 8),
    ],
)
def test_errors(text, message, offset):
    with pytest.raises(ExpressionError) as info:
        to_sql(parse(text), deals.c, now=NOW)
    assert (str(info.value), info.value.offset) == (message, offset)
