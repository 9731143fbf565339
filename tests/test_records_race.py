"""Concurrent writers on PostgreSQL: rollups, auto numbers and unique values stay right."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from objectplatform.runtime.errors import ValidationFailed


@pytest.fixture
def platform(platform):
    """conftest's platform, on PostgreSQL only."""
    if platform.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time (BEGIN IMMEDIATE): these races cannot happen there")
    return platform


@pytest.fixture
def records(platform):
    return platform.records


def wait_until_blocked(platform, timeout: float = 10.0) -> bool:
    """Whether another session of this database is (or gets, before `timeout`) waiting on a lock."""
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")
    deadline = time.monotonic() + timeout
    with platform.engine.connect() as c:
        while time.monotonic() < deadline:
            if c.execute(query).scalar_one() > 0:
                return True
            c.rollback()
            time.sleep(0.02)
    return False


def run(*targets):
    """Run the functions in threads; return what each raised (None when it did not)."""
    raised = [None] * len(targets)

    def call(i, fn):
        try:
            fn()
        except Exception as e:  # reported to the test below
            raised[i] = e

    threads = [threading.Thread(target=call, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return raised


def test_two_transactions_adding_lines_to_one_order(platform, records):
    account = records.create("account", {"name": "ACME"})["id"]
    product = records.create("product", {"name": "Widget", "price": 10})["id"]
    order = records.create("sales_order", {"account": account})["id"]
    barrier = threading.Barrier(2)
    blocked = []

    def first():
        with records.transaction() as conn:
            records.create("order_line", {"sales_order": order, "product": product, "quantity": 1,
                                          "unit_price": 10}, conn=conn)
            barrier.wait()
            blocked.append(wait_until_blocked(platform))  # the second waits on the order's row lock

    def second():
        barrier.wait()
        records.create("order_line", {"sales_order": order, "product": product, "quantity": 2, "unit_price": 10})

    assert run(first, second) == [None, None]
    assert blocked == [True]
    result = records.get("sales_order", order)
    assert (result["lines_amount"], result["total_amount"]) == (Decimal("30.00"), Decimal("30.00"))
    assert records.get("account", account)["order_total"] == Decimal("30.00")


def test_concurrent_orders_get_consecutive_numbers(records):
    account = records.create("account", {"name": "ACME"})["id"]
    barrier = threading.Barrier(20)
    numbers = []

    def create_order():
        barrier.wait()
        numbers.append(records.create("sales_order", {"account": account})["order_no"])

    assert run(*[create_order] * 20) == [None] * 20
    period = datetime.now(UTC).strftime("%Y%m")
    assert sorted(numbers) == [f"SO-{period}-{n:04d}" for n in range(1, 21)]


def test_concurrent_inserts_of_one_unique_value(platform, records):
    barrier = threading.Barrier(2)
    blocked = []

    def first():
        with records.transaction() as conn:
            records.create("product", {"name": "A", "code": "P-1", "price": 1}, conn=conn)
            barrier.wait()
            blocked.append(wait_until_blocked(platform))  # the second passed the pre-check, waits on the index

    def second():
        barrier.wait()
        records.create("product", {"name": "B", "code": "P-1", "price": 1})

    first_error, second_error = run(first, second)
    assert first_error is None and blocked == [True]
    assert isinstance(second_error, ValidationFailed)
    assert second_error.fields == {"code": ["already used by another product"]}
    assert [p["name"] for p in records.list("product").items] == ["A"]
