"""Opportunity benchmark (not a test): a bulk win of 100,000 opportunities in their process's last stage, set-based
(`StagedBehavior.close_many`: the checks in SQL, one UPDATE with the weighted amount computed by the database, the
history and the stage history in one statement each, the accounts' won amounts recounted together), beside the
floor's one UPDATE of them on the same table, on SQLite and PostgreSQL; and, for comparison, the same win one record
after another (the path a bulk win took before) on the first `--one-by-one` of them. Each also prints its CPU seconds
(`cpu_seconds`: this process's and its PostgreSQL server processes').

Usage: python bench/opportunities.py [--backends sqlite,postgresql] [--rows 100000] [--one-by-one 1000]
[--name bench_opportunities]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from engine import database, settle  # bench/engine.py (this folder is first on sys.path)
from leads import floor, timed

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.behaviors.staged import behavior_of
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.migrate import migrate

ACCOUNTS = 1_000
ENTERED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def load(platform, owner: str, rows: int) -> list[str]:
    """`rows` open opportunities of standard_sales in its last stage (closing), its task signed, each with its open
    stage history row, spread over the accounts; past the records service, then the summaries filled."""
    schema, at = platform.schema, ENTERED.replace(tzinfo=None)
    account, opportunity = schema["account"], schema["opportunity"]
    stamps = {"owner": int(owner), "created_by": int(owner), "updated_by": int(owner), "created_at": at,
              "updated_at": at, "version": 1}
    with platform.engine.begin() as conn:
        conn.execute(account.table.insert(), [to_row(account, {"name": f"客户{i}"}) | stamps for i in range(ACCOUNTS)])
        accounts = conn.execute(sa.select(account.table.c.id).order_by(account.table.c.id)).scalars().all()
        conn.execute(opportunity.table.insert(), [to_row(opportunity, {
            "name": f"商机{i}", "account": str(accounts[i % ACCOUNTS]), "amount": Decimal(10_000 + i),
            "sales_process": "standard_sales", "stage": "closing", "probability": Decimal(90),
            "weighted_amount": Decimal(10_000 + i) * Decimal("0.9"), "status": "open"}) | stamps
            for i in range(rows)])
        ids = conn.execute(sa.select(opportunity.table.c.id).order_by(opportunity.table.c.id)).scalars().all()
        for child, row in (("stage_history", {"sales_process": "standard_sales", "stage": "closing",
                                              "entered_at": ENTERED, "moved_by": owner}),
                           ("opportunity_task", {"sales_process": "standard_sales", "stage": "closing",
                                                 "task": "sign_contract", "completed_at": ENTERED,
                                                 "completed_by": owner})):
            cot = schema[child]
            conn.execute(cot.table.insert(), [to_row(cot, {**row, "opportunity": str(i)}) | stamps for i in ids])
    for obj in ("opportunity", "stage_history", "opportunity_task"):
        for summary in schema.summaries.get(obj, ()):
            with platform.engine.begin() as conn:
                summary.fill(conn, schema[obj].table)
    settle(platform.engine)
    return [str(i) for i in ids]


def bench(backend: str, workdir: Path, rows: int, one_by_one: int, name: str) -> dict[str, float]:
    url = database(backend, name, workdir)
    platform = open_platform(Settings.from_env({}, database_url=url, instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    admin = platform.records.create("user", {"username": "admin", "display_name": "管理员", "roles": ["admin"]},
                                    system=True)["id"]
    ids = load(platform, admin, rows)
    access, out = access_for(platform, admin), {}
    ot = platform.schema["opportunity"]
    col, now = ot.column, platform.clock.now()
    floor(platform, out, "win", ot.table.update().where(col("status") == "open").values({
        col("status"): "won", col("probability"): 100, col("weighted_amount"): col("amount"),
        col("pending_stage"): None, col("closed_at"): now.replace(tzinfo=None)}))
    before = ids[:one_by_one]

    def win_one_by_one() -> None:
        for one in before:
            run_action(platform, access, "opportunity", "win", one, {})

    timed(platform, out, "one_by_one", win_one_by_one)

    def win_many() -> None:
        won = behavior_of(platform, "opportunity").close_many(access, ids[one_by_one:], "win", {})
        assert won is not None and len(won["succeeded"]) == rows - one_by_one and not won["failed"], won and \
            won["failed"][:3]

    timed(platform, out, "win", win_many)
    with platform.engine.connect() as conn:
        won = conn.execute(sa.select(sa.func.count()).where(col("status") == "won")).scalar()
    assert won == rows, won
    out["bulk_rows"] = rows - one_by_one
    platform.close()
    if backend == "postgresql":
        admin_engine = sa.create_engine(url.split("?")[0], isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin_engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--one-by-one", type=int, default=1_000)
    parser.add_argument("--name", default="bench_opportunities",
                        help="the SQLite file's or PostgreSQL schema's name (unique to you on a shared server)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-opportunities-"))
    print(f"objectplatform opportunity benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rows:,} opportunities")
    results = []
    try:
        for backend in args.backends.split(","):
            results.append((backend, bench(backend, workdir, args.rows, args.one_by_one, args.name)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| bulk win | database | opportunities | time | its floor: one UPDATE of all | ratio (per opportunity) |\n"
          "|---|---|---|---|---|---|")
    for backend, out in results:
        floor_took, floor_cpu, everyone = out["win_floor"], out["win_floor_cpu"], out["win_rows"]
        for task, label, n in (("win", "set-based (close_many)", out["bulk_rows"]),
                               ("one_by_one", "one record after another (before)", args.one_by_one)):
            took, cpu = out[task], out[f"{task}_cpu"]
            share, share_cpu = floor_took * n / everyone, floor_cpu * n / everyone
            print(f"| {label} | {backend} | {n:,} | {took:.2f} s (CPU {cpu:.2f} s) | {floor_took:.2f} s "
                  f"(CPU {floor_cpu:.2f} s) | {took / share:.2f}x (CPU {cpu / share_cpu:.2f}x) |")


if __name__ == "__main__":
    main()
