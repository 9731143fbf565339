"""Orders benchmark (not a test), issue 15: (a) finance confirming payments through the engine, the
`confirm_payment` transition of payment.yaml, one payment at a time and as a bulk action (the action API's list
of ids, at most MAX_BULK a call); (b) the employee_performance report template beside the hand-written SQL giving
the same rows (../shared/PERFORMANCE.md: the engine quoted as a ratio to the floor, same process, same database).

Data, per database: N orders (default 100,000) of 50 reps over 10,000 accounts, 80 % approved or later, with
consistent stored balances (total, paid, returned, outstanding, invoices requested), written with Core inserts,
then VACUUM ANALYZE / ANALYZE. For (a), S + 3 x P pending payments (default S = P = 10,000) are written with Core
inserts against as many approved orders (their pending/committed amounts set to match), and a finance user confirms S of
them one by one, P in bulk calls of MAX_BULK ids (set-based: one guarded UPDATE, one history INSERT, one UPDATE of
the orders' rollups and stored formulas, the after-rollup hooks' set forms); each confirmation checks permission
and state, recomputes the order's balances and notifies the owner as for a user (written directly, the payments
have no to-dos to close). Two floors confirm P more each by hand in calls of MAX_BULK ids, a transaction each (as
the action API commits each call, and each commit writes the pages its call changed, the indexes' pages that
every call touches among them): the bare one, one UPDATE of the payments and one of their orders' balances; and
the one writing the same rows as the engine (the payments, their history, one packed row each as a bulk write
keeps it, the orders' balances with their stored formulas, the owners' notifications, the to-dos closed).
The bulk run is quoted as a ratio to each, by the wall clock and by CPU seconds (the machine is shared).
Report timings are the median of three runs after a warm-up; the engine's rows are checked equal to the hand SQL's.

Usage: python bench/orders.py [--backends sqlite,postgresql] [--orders 100000] [--payments 10000] [--single 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from engine import cpu_seconds, database, insert_rows, settle, timed

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.actions import MAX_BULK, run_action
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.storage.migrate import migrate

BATCH = 50_000
ACCOUNTS = 10_000
REPS = 50
REP = 1000  # the reps' ids start here, above the finance user the engine creates
STATUSES = ["approved"] * 3 + ["shipped"] * 2 + ["received"] * 2 + ["completed"] + ["draft", "cancelled"]
SCHEMA = "op_orders_bench"
HAND_SQL = """
with g as (select owner, account, count(*) n, sum(total_amount) total, sum(returned_amount) returned,
                  sum(paid_amount) paid, sum(outstanding_amount) outstanding, sum(requested_invoice_amount) applied
           from sales_order where status in ('approved', 'shipped', 'received', 'completed') group by owner, account)
select u.display_name, a.name, g.n, g.total, g.returned, g.paid, g.outstanding, g.applied
from g left join "user" u on u.id = g.owner left join account a on a.id = g.account"""


def fill(platform, n_orders: int, pending_ids: int) -> tuple[str, list[int]]:
    """The data set of the module docstring; the finance user's id and the ids of the pending payments."""
    rnd = random.Random(15)
    now = datetime(2026, 12, 1)
    stamp = {"created_at": now, "updated_at": now, "version": 1}

    def insert(obj: str, rows: list[dict]) -> None:
        insert_rows(platform, obj, rows, BATCH)

    finance = platform.records.create("user", {"username": "finance", "display_name": "钱会计", "active": True,
                                               "roles": ["finance"], "password": "bench-pass-1"}, system=True)
    insert("user", [{"id": REP + i, "username": f"rep{i}", "display_name": f"销售{i:02d}", "active": True, **stamp}
                    for i in range(REPS)])
    insert("account", [{"id": i, "name": f"客户{i:05d}", "owner": REP + i % REPS, **stamp}
                       for i in range(1, ACCOUNTS + 1)])
    orders, payments = [], []
    for i in range(1, n_orders + 1):
        account = rnd.randint(1, ACCOUNTS)
        total = Decimal(rnd.randint(1_000, 500_000)).scaleb(-2) * 100
        status = "approved" if i <= pending_ids else rnd.choice(STATUSES)
        returned = (total / 10).quantize(Decimal("0.01")) if status in ("received", "completed") and i % 7 == 0 \
            else Decimal(0)
        paid = total - returned if status == "completed" else (
            (total / 2).quantize(Decimal("0.01")) if status in ("shipped", "received") else Decimal(0))
        pending = Decimal(0)
        if i <= pending_ids:
            pending = (total / 4).quantize(Decimal("0.01"))
            payments.append({"id": i, "payment_no": f"PM-{i:07d}", "sales_order": i, "amount": pending,
                             "paid_on": date(2026, 12, 1), "status": "pending", "owner": REP + account % REPS,
                             **stamp})
        requested = paid if status != "draft" else Decimal(0)
        orders.append({"id": i, "order_no": f"SO-{i:07d}", "account": account, "owner": REP + account % REPS,
                       "order_date": date(2026, 1, 1) + timedelta(days=rnd.randrange(334)), "status": status,
                       "lines_amount": total, "order_discount": 0, "total_amount": total,
                       "returned_amount": returned, "confirmed_payment_amount": paid, "refunded_amount": 0,
                       "committed_refund_amount": 0, "paid_amount": paid, "pending_payment_amount": pending,
                       "committed_payment_amount": paid + pending, "outstanding_amount": total - returned - paid,
                       "invoiced_amount": requested, "pending_invoice_amount": 0,
                       "requested_invoice_amount": requested, "uninvoiced_amount": total - requested,
                       "planned_amount": 0, **stamp})
    insert("sales_order", orders)
    insert("payment", payments)
    settle(platform.engine)
    return finance["id"], [p["id"] for p in payments]


def confirmations(platform, finance: str, payments: list[int], single: int, n: int) -> tuple:
    """Seconds for `single` one-by-one confirm_payment calls; (wall-clock, CPU) seconds (`cpu_seconds`: this
    process's and its PostgreSQL server processes') for n more in bulk calls of MAX_BULK ids, and for the two
    floors of n more each (the module docstring)."""
    access = access_for(platform, finance)
    start = time.perf_counter()
    for payment in payments[:single]:
        run_action(platform, access, "payment", "confirm_payment", str(payment), {})
    one_by_one = time.perf_counter() - start
    rest = [str(p) for p in payments[single:single + n]]
    start, cpu = time.perf_counter(), cpu_seconds(platform.engine)
    for at in range(0, len(rest), MAX_BULK):
        run_action(platform, access, "payment", "confirm_payment", rest[at:at + MAX_BULK], {})
    bulk = (time.perf_counter() - start, cpu_seconds(platform.engine) - cpu)
    cpu = cpu_seconds(platform.engine)
    same = (hand_confirmations(platform, finance, payments[single + n:single + 2 * n], same_rows=True),
            cpu_seconds(platform.engine) - cpu)
    cpu = cpu_seconds(platform.engine)
    bare = (hand_confirmations(platform, finance, payments[single + 2 * n:single + 3 * n], same_rows=False),
            cpu_seconds(platform.engine) - cpu)
    with platform.engine.connect() as conn:
        confirmed = conn.execute(sa.text("select count(*) from payment where status = 'confirmed'")).scalar()
        paid = conn.execute(sa.text("select count(*) from sales_order o join payment p on p.sales_order = o.id "
                                    "where p.status = 'confirmed' and o.pending_payment_amount = 0 "
                                    "and o.paid_amount >= p.amount")).scalar()
        told = conn.execute(sa.text("select count(*) from _op_notification where object = 'payment'")).scalar()
        logged = conn.execute(sa.text(
            "select coalesce(sum(case when field = '*' then 0 else 1 end), 0), coalesce(sum(case when field = '*' "
            "then 1 else 0 end), 0) from _op_history where object = 'payment' and change = 'confirm_payment'")).one()
        packed = [json.loads(conn.execute(sa.text("select new_value from _op_history where object = 'payment' and "
                                                  "record_id = :id and field = '*'"), {"id": payment}).scalar())
                  for payment in (payments[single], payments[single + n])]
    assert confirmed == paid == single + 3 * n, (confirmed, paid)  # every order's balances followed its payment
    # the same rows as the engine: a field's entry each when one by one, one packed row of them each in bulk
    assert told == single + 2 * n and tuple(logged) == (3 * single, 2 * n), (told, logged)
    assert [entry[:2] for entry in packed[0]] == [entry[:2] for entry in packed[1]] and all(
        entry[2] == theirs[2] for entry, theirs in zip(*packed, strict=True) if entry[0] != "confirmed_at"), packed
    return one_by_one, bulk, same, bare


HISTORY = """
insert into _op_history (object, record_id, change, field, new_value, user_id, at)
select 'payment', id, 'confirm_payment', '*',
       '[["status","pending","confirmed"],["confirmed_by",null,"' || :finance || '"],["confirmed_at",null,' || :iso
       || ']]', :finance, :now
from payment where id in :ids and status = 'pending'"""
NOTIFY = """
insert into _op_notification (user_id, title_zh, title_en, object, record_id, dedupe_key, created_at)
select owner, '回款 ' || payment_no || ' 已确认', 'Payment ' || payment_no || ' was confirmed', 'payment', id,
       'transition:confirm_payment:' || id || '-' || version, :now
from payment where id in :ids"""
CLOSE = """
update _op_todo set done_at = :now where object = 'payment' and record_id in :ids and action = 'confirm_payment'
and done_at is null"""


def hand_confirmations(platform, finance: str, payments: list[int], same_rows: bool) -> float:
    """Seconds for a floor: the same payments confirmed by hand in calls of MAX_BULK ids, a transaction each, the
    bare one (the payments and their orders' balances) or the one writing the same rows as the engine (the module
    docstring)."""
    confirm = sa.text("update payment set status = 'confirmed', confirmed_by = :finance, confirmed_at = :now, "
                      "updated_by = :finance, updated_at = :now, version = version + 1 "
                      "where id in :ids and status = 'pending'")
    balances = sa.text(
        "update sales_order set confirmed_payment_amount = confirmed_payment_amount + p.amount, "
        "pending_payment_amount = pending_payment_amount - p.amount, paid_amount = paid_amount + p.amount, "
        "outstanding_amount = outstanding_amount - p.amount "
        "from (select sales_order, sum(amount) amount from payment where id in :ids group by sales_order) p "
        "where sales_order.id = p.sales_order")
    statements = [HISTORY, confirm, balances, NOTIFY, CLOSE] if same_rows else [confirm, balances]
    now = datetime.now(UTC).replace(tzinfo=None)
    values = {"finance": int(finance), "now": now, "iso": f'"{now.isoformat()}+00:00"'}
    statements = [(sa.text(s) if isinstance(s, str) else s).bindparams(sa.bindparam("ids", expanding=True))
                  for s in statements]
    start = time.perf_counter()
    for at in range(0, len(payments), MAX_BULK):  # a transaction per call, as the action API commits each
        ids = {"ids": payments[at:at + MAX_BULK]}
        with platform.engine.begin() as conn:
            for statement in statements:
                conn.execute(statement, {k: v for k, v in (values | ids).items() if k in statement._bindparams})
    return time.perf_counter() - start


def normal(row) -> tuple:
    """A row with its amounts as 2-place decimals (SQLite's sums come back as floats or strings)."""
    return tuple(Decimal(str(v)).quantize(Decimal("0.01")) if isinstance(v, (float, Decimal)) else v for v in row)


def bench(backend: str, workdir: Path, n_orders: int, n_payments: int, n_single: int) -> tuple:
    url = database(backend, SCHEMA, workdir)
    platform = open_platform(Settings.from_env(database_url=url, instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    finance, payments = fill(platform, n_orders, n_single + 3 * n_payments if n_payments else 0)
    single, bulk, same, bare = confirmations(platform, finance, payments, n_single, n_payments) if n_payments \
        else (0.0, (0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    if n_payments:
        each = f"({single / n_single * 1000:.2f} ms each)" if n_single else ""
        print(f"  [{backend}] confirm_payment: one by one x {n_single:,} {single:.2f} s {each}; bulk x {n_payments:,} "
              f"{bulk[0]:.2f} s, CPU {bulk[1]:.2f} s; hand SQL writing the same rows {same[0]:.3f} s, CPU "
              f"{same[1]:.3f} s: bulk / same rows {bulk[0] / same[0]:.2f}x (CPU {bulk[1] / same[1]:.2f}x); bare hand "
              f"SQL (payments and balances only) {bare[0]:.3f} s, CPU {bare[1]:.3f} s: bulk / bare "
              f"{bulk[0] / bare[0]:.1f}x (CPU {bulk[1] / bare[1]:.1f}x)")
    report = definition(platform.metadata, "employee_performance")
    rows_only = replace(report, totals=False)
    with platform.engine.connect() as conn:
        conn.execute(sa.text(HAND_SQL)).all()
        hand, hand_rows = timed(lambda c=conn: c.execute(sa.text(HAND_SQL)).all(), repeat=3)
    run_report(platform, rows_only, access=None)
    engine, result = timed(lambda: run_report(platform, rows_only, access=None), repeat=3)
    keys = ["owner", "account", "orders", "total_amount", "returned_amount", "paid_amount", "outstanding_amount",
            "invoice_applied"]
    ours = sorted(normal(tuple(row[k] for k in keys)) for row in result.rows)
    theirs = sorted(normal(tuple(row)) for row in hand_rows)
    assert ours == theirs, (ours[:3], theirs[:3])
    print(f"  [{backend}] employee_performance at {n_orders:,} orders: engine {engine:.3f} s, hand SQL "
          f"{hand:.3f} s, {len(result.rows):,} rows")
    platform.close()
    return backend, single, bulk, same, bare, engine, hand, len(result.rows)


def drop_schema() -> None:
    from engine import PG_URL

    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=None, help="payments confirmed one by one (default: --payments)")
    args = parser.parse_args()
    args.single = args.payments if args.single is None else args.single
    assert args.single + 3 * args.payments <= args.orders, "each pending payment has an order of its own"
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-"))
    print(f"objectplatform orders benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.orders:,} orders, "
          f"{args.payments:,} confirmations each way")
    results = []
    try:
        for backend in args.backends.split(","):
            results.append(bench(backend, workdir, args.orders, args.payments, args.single))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if "postgresql" in args.backends:
            drop_schema()
    print("\n| database | confirm one by one (per payment) | confirm in bulk (per payment) | by hand, same rows | "
          "bulk / same rows (CPU) | by hand, bare | bulk / bare (CPU) | employee_performance engine | hand SQL | "
          "ratio |\n|---|---|---|---|---|---|---|---|---|---|")
    for backend, single, bulk, same, bare, engine, hand, _ in results:
        one = f"{single:.1f} s ({single * 1000 / args.single:.2f} ms)" if args.single and args.payments else "not run"
        many, by_hand, ratio, bare_hand, bare_ratio = (
            f"{bulk[0]:.2f} s ({bulk[0] * 1000 / args.payments:.3f} ms)", f"{same[0]:.3f} s",
            f"{bulk[0] / same[0]:.2f}x ({bulk[1] / same[1]:.2f}x)", f"{bare[0]:.3f} s",
            f"{bulk[0] / bare[0]:.1f}x ({bulk[1] / bare[1]:.1f}x)") if args.payments else ("not run",) * 5
        print(f"| {backend} | {one} | {many} | {by_hand} | {ratio} | {bare_hand} | {bare_ratio} | {engine:.3f} s | "
              f"{hand:.3f} s | {engine / hand:.2f}x |")


if __name__ == "__main__":
    main()
