"""Visit report benchmark (not a test): the plan-completion report (visit_plan_completion: per rep and month,
planned, completed, missed, customers planned and visited) run by the engine beside the fastest hand-written SQL
giving the same rows, in the same process on the same database (../shared/PERFORMANCE.md: the floor
pre-aggregates the distinct (group, account) pairs rather than COUNT(DISTINCT) over the rows).

Data, per database: N visits (default 1,000,000) over 100,000 accounts of 50 reps, planned through 2026 (60 %
completed, 15 % planned, 10 % missed, 10 % cancelled, 5 % checked in); written with Core inserts, then VACUUM
ANALYZE / ANALYZE. Each timing is the median of three runs after a warm-up; the engine's rows (but the computed
rate) are checked equal to the hand SQL's. The hand SQL shifts to China time by a fixed +8 hours (the zone has
no summer time); the engine converts by the zone's rules.

Usage: python bench/visit_reports.py [--backends sqlite,postgresql] [--visits 1000000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from engine import database, insert_rows, settle, timed

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.storage.migrate import migrate

BATCH = 100_000
ACCOUNTS = 100_000
REPS = 50
STATUSES = ["completed"] * 12 + ["planned"] * 3 + ["missed"] * 2 + ["cancelled"] * 2 + ["checked_in"]
MONTH = {"sqlite": "strftime('%Y-%m', planned_at, '+8 hours')",
         "postgresql": "to_char(planned_at + interval '8 hours', 'YYYY-MM')"}
HAND_SQL = """
with v as (select owner, {month} m, account, status from visit
           where status in ('planned', 'checked_in', 'completed', 'missed')),
g as (select owner, m, count(*) planned, sum(case when status = 'completed' then 1 else 0 end) completed,
      sum(case when status = 'missed' then 1 else 0 end) missed from v group by owner, m),
ap as (select owner, m, count(*) n from (select distinct owner, m, account from v) x group by owner, m),
av as (select owner, m, count(*) n from (select distinct owner, m, account from v where status = 'completed') x
       group by owner, m)
select u.display_name, g.m, g.planned, g.completed, g.missed, coalesce(ap.n, 0), coalesce(av.n, 0)
from g left join "user" u on u.id = g.owner
left join ap on ap.owner = g.owner and ap.m = g.m left join av on av.owner = g.owner and av.m = g.m
order by u.display_name, g.m"""


def fill(platform, n_visits: int) -> None:
    """The data set of the module docstring, written with Core inserts in batches."""
    rnd = random.Random(16)
    now = datetime(2026, 1, 1)
    stamp = {"created_at": now, "updated_at": now, "version": 1}

    def insert(obj: str, rows: list[dict]) -> None:
        insert_rows(platform, obj, rows, BATCH)

    insert("user", [{"id": i, "username": f"rep{i}", "display_name": f"销售{i:02d}", "active": True, **stamp}
                    for i in range(1, REPS + 1)])
    insert("account", [{"id": i, "name": f"客户{i}", "owner": i % REPS + 1, **stamp}
                       for i in range(1, ACCOUNTS + 1)])
    year = 365 * 24 * 60
    done = 0
    while done < n_visits:
        rows = []
        for i in range(done + 1, min(done + BATCH, n_visits) + 1):
            account = rnd.randint(1, ACCOUNTS)
            planned = now + timedelta(minutes=rnd.randrange(year)) - timedelta(hours=8)
            status = rnd.choice(STATUSES)
            checked_in = planned + timedelta(minutes=rnd.randint(-20, 20)) if status in (
                "completed", "checked_in") else None
            rows.append({"id": i, "subject": f"拜访{i}", "account": account, "owner": account % REPS + 1,
                         "planned_at": planned, "status": status, "check_in_at": checked_in,
                         "check_in_valid": checked_in is not None and rnd.random() < 0.9,
                         "duration_minutes": rnd.randint(5, 90) if status == "completed" else None, **stamp})
        insert("visit", rows)
        done += len(rows)
        print(f"  filled {done:,} visits", end="\r", flush=True)
    print()
    settle(platform.engine)


def bench(backend: str, workdir: Path, n_visits: int) -> tuple:
    url = database(backend, "bench_visit_reports", workdir)
    platform = open_platform(Settings.from_env(database_url=url, instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    fill(platform, n_visits)
    report = definition(platform.metadata, "visit_plan_completion")
    rows_only = replace(report, totals=False)
    sql = HAND_SQL.format(month=MONTH[backend])
    with platform.engine.connect() as conn:
        conn.execute(sa.text(sql)).all()
        hand, hand_rows = timed(lambda c=conn: c.execute(sa.text(sql)).all(), repeat=3)
    run_report(platform, rows_only, access=None)
    engine, result = timed(lambda: run_report(platform, rows_only, access=None), repeat=3)
    with_totals, _ = timed(lambda: run_report(platform, report, access=None), repeat=3)
    keys = ["owner", "month", "planned", "completed", "missed", "accounts_planned", "accounts_visited"]
    ours = [tuple(row[k] for k in keys) for row in result.rows]
    assert ours == [tuple(row) for row in hand_rows], (ours[:3], hand_rows[:3])
    print(f"  [{backend}] visit_plan_completion at {n_visits:,} visits: engine {engine:.3f} s (with totals "
          f"{with_totals:.3f} s), hand SQL {hand:.3f} s, {len(result.rows)} rows")
    platform.close()
    return backend, engine, with_totals, hand, len(result.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--visits", type=int, default=1_000_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-"))
    print(f"objectplatform visit report benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.visits:,} visits")
    results = []
    try:
        for backend in args.backends.split(","):
            results.append(bench(backend, workdir, args.visits))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| visits | database | engine (rows) | engine with totals row | hand SQL (rows) | ratio |\n"
          "|---|---|---|---|---|---|")
    for backend, engine, with_totals, hand, _ in results:
        print(f"| {args.visits:,} | {backend} | {engine:.3f} s | {with_totals:.3f} s | {hand:.3f} s | "
              f"{engine / hand:.2f}x |")


if __name__ == "__main__":
    main()
