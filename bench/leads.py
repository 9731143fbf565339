"""Lead benchmarks (not tests): import of a 100,000-row CSV (validation, duplicate rules, pool routing)
and bulk assignment of 100,000 waiting leads from a pool beside the floor's one UPDATE of them on the same table, on
SQLite and PostgreSQL. The assignment also prints its CPU seconds (`cpu_seconds`: this process's and its PostgreSQL
server processes'): the work itself, whatever else the machine is doing.

Usage: python bench/leads.py [--backends sqlite,postgresql] [--rows 100000]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from engine import cpu_seconds, database, settle  # bench/engine.py (this folder is first on sys.path)

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.imports import prepare, read_path, run_import
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.migrate import migrate

SOURCES = ["referral", "promotion", "campaign", "telemarketing", "website", "expo", "business_card", "other"]


def write_csv(path: Path, rows: int) -> None:
    """Rows as marketing brings them: labels in the header, picklist labels, a campaign by name."""
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        out = csv.writer(f)
        out.writerow(["姓名", "公司名称", "手机", "邮箱", "线索来源", "市场活动"])
        for i in range(rows):
            out.writerow([f"线索{i}", f"公司{i % 5000}", f"139{i:08d}", f"l{i}@example.com", "展会", "春季展会"])


def bench(backend: str, workdir: Path, rows: int) -> dict[str, float]:
    url = database(backend, "bench_leads", workdir)
    platform = open_platform(Settings.from_env({}, database_url=url, instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    records = platform.records
    admin = records.create("user", {"username": "admin", "display_name": "管理员", "roles": ["admin"]},
                           system=True)["id"]
    reps = records.create_many("user", [{"username": f"rep{i}", "display_name": f"销售{i}", "roles": ["sales_rep"]}
                                        for i in range(6)]).created
    records.create("campaign", {"name": "春季展会", "type": "expo"}, system=True)
    pool = records.create("lead_pool", {"name": "公海线索池", "admins": [admin]}, system=True)["id"]
    out: dict[str, float] = {}

    path = workdir / "leads.csv"
    write_csv(path, rows)
    start = time.perf_counter()
    result = run_import(platform, prepare(platform.metadata.objects["lead"], read_path(path)), user=admin)
    out["import"] = time.perf_counter() - start
    assert len(result.created) == rows and not result.errors, result.errors[:3]
    start = time.perf_counter()
    again = run_import(platform, prepare(platform.metadata.objects["lead"], read_path(path)), user=admin)
    out["reimport"] = time.perf_counter() - start
    assert not again.created and len(again.errors) == rows

    ot = platform.schema["lead"]
    base = datetime(2026, 1, 1)
    waiting = [to_row(ot, {"name": f"池中线索{i}", "mobile": f"137{i:08d}", "status": "unassigned", "pool": pool})
               | {"created_at": base + timedelta(seconds=i), "updated_at": base, "version": 1} for i in range(rows)]
    with platform.engine.begin() as conn:
        conn.execute(ot.table.insert(), waiting)
        ids = [str(i) for i in conn.execute(sa.select(ot.table.c.id).where(ot.column("pool") == int(pool))).scalars()]
    settle(platform.engine)
    # the floor's one UPDATE (../shared/bench/floor.py), on this lead table and its indexes, then undone
    table, in_pool = ot.table, ot.column("pool") == int(pool)
    start, cpu = time.perf_counter(), cpu_seconds(platform.engine)
    with platform.engine.begin() as conn:
        conn.execute(table.update().where(in_pool, ot.column("status") == "unassigned")
                     .values(owner=int(reps[0]), status="pending", assigned_at=base))
    out["update"], out["update_cpu"] = time.perf_counter() - start, cpu_seconds(platform.engine) - cpu
    with platform.engine.begin() as conn:
        conn.execute(table.update().where(in_pool).values(owner=None, status="unassigned", assigned_at=None))
    settle(platform.engine)
    access = access_for(platform, admin)
    start, cpu = time.perf_counter(), cpu_seconds(platform.engine)
    assigned = pool_behavior.assign_many(platform, access, "lead", ids, owners=reps)
    out["assign"], out["assign_cpu"] = time.perf_counter() - start, cpu_seconds(platform.engine) - cpu
    assert len(assigned["succeeded"]) == rows and not assigned["failed"]
    platform.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-leads-"))
    print(f"objectplatform lead benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rows:,} rows")
    results = []
    try:
        for backend in args.backends.split(","):
            results.append((backend, bench(backend, workdir, args.rows)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    n = args.rows
    print("\n| task | database | time | rate |\n|---|---|---|---|")
    for backend, out in results:
        print(f"| import {n:,}-row CSV (labels, validation, duplicate rules, history) | {backend} | "
              f"{out['import']:.2f} s | {n / out['import']:,.0f} rows/s |")
        print(f"| import the same file again (every row a duplicate) | {backend} | {out['reimport']:.2f} s | "
              f"{n / out['reimport']:,.0f} rows/s |")
        print(f"| assign {n:,} waiting leads from a pool over 6 reps | {backend} | {out['assign']:.2f} s "
              f"(CPU {out['assign_cpu']:.2f} s) | {n / out['assign']:,.0f} leads/s |")
        print(f"| the floor's one UPDATE of them, on the same table | {backend} | {out['update']:.2f} s "
              f"(CPU {out['update_cpu']:.2f} s) | ratio {out['assign'] / out['update']:.2f}x "
              f"(CPU {out['assign_cpu'] / out['update_cpu']:.2f}x) |")


if __name__ == "__main__":
    main()
