"""Lead benchmarks (not tests): import of a 100,000-row CSV (validation, duplicate rules, pool routing)
and bulk assignment of 100,000 waiting leads from a pool beside the floor's one UPDATE of them on the same table, on
SQLite and PostgreSQL; with --tasks, the other bulk actions (claim, mark invalid, reopen and move of 100,000 leads,
return of 100,000 held leads to the pool, a hand-over, the bulk deactivate of 50 users holding them all, auto-recycle,
a set-based transition) each beside its floor, one UPDATE (the deactivate's: of the leads, then of the users); with
--one-by-one, claim, mark invalid, reopen and move run the single action on each lead in turn, and deactivate on each
user, as their bulk actions did before they were set-based. Each also prints its CPU seconds
(`cpu_seconds`: this process's and its PostgreSQL server processes'): the work itself, whatever else the machine is
doing.

Usage: python bench/leads.py [--backends sqlite,postgresql] [--rows 100000] [--tasks import,assign,return,...|all]
       [--one-by-one] [--name bench_leads]
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
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.auth import auth_service
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.behaviors.recycle import recycle
from objectplatform.runtime.imports import prepare, read_path, run_import
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.migrate import migrate

TASKS = ("import", "claim", "invalidate", "reopen", "move", "assign", "return", "handover", "deactivate", "recycle",
         "transition")
SOURCES = ["referral", "promotion", "campaign", "telemarketing", "website", "expo", "business_card", "other"]


def write_csv(path: Path, rows: int) -> None:
    """Rows as marketing brings them: labels in the header, picklist labels, a campaign by name."""
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        out = csv.writer(f)
        out.writerow(["姓名", "公司名称", "手机", "邮箱", "线索来源", "市场活动"])
        for i in range(rows):
            out.writerow([f"线索{i}", f"公司{i % 5000}", f"139{i:08d}", f"l{i}@example.com", "展会", "春季展会"])


def bench(backend: str, workdir: Path, rows: int, tasks: set[str], one_by_one: bool, name: str) -> dict[str, float]:
    url = database(backend, name, workdir)
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

    if "import" in tasks:
        path = workdir / "leads.csv"
        write_csv(path, rows)
        start = time.perf_counter()
        result = run_import(platform, prepare(platform.metadata.objects["lead"], read_path(path)), user=admin)
        out["import"] = time.perf_counter() - start
        assert result.created == rows and not result.errors, result.errors[:3]
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
    for summary in platform.schema.summaries.get("lead", ()):  # the rows above were written past the records service
        with platform.engine.begin() as conn:
            summary.fill(conn, ot.table)
    settle(platform.engine)
    pool_actions(platform, out, tasks, ids, pool, admin, reps, one_by_one)
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
    settle(platform.engine)
    col, now = ot.column, platform.clock.now()

    if "return" in tasks:  # every lead assigned to the first rep, who returns them all to the pool at once
        pool_behavior.assign_many(platform, access, "lead", ids, owner=reps[0])
        settle(platform.engine)
        floor(platform, out, "return", table.update().where(in_pool, col("owner") == int(reps[0])).values(
            owner=None, status="unassigned", assigned_at=None, return_reason="客户暂无需求"))

        def give_back() -> None:
            returned = pool_behavior.behavior_of(platform, "lead").give_back_many(
                access_for(platform, reps[0]), ids, {"reason": "客户暂无需求"})
            assert len(returned["succeeded"]) == rows and not returned["failed"], returned["failed"][:3]

        timed(platform, out, "return", give_back)
        pool_behavior.assign_many(platform, access, "lead", ids, owners=reps)  # spread over the reps again
        settle(platform.engine)
    if "handover" in tasks:  # the second rep leaves: every lead they hold goes to the third
        floor(platform, out, "handover", table.update().where(col("owner") == int(reps[1])).values(
            owner=int(reps[2]), version=table.c.version + 1, updated_at=now))
        timed(platform, out, "handover", lambda: auth_service(platform).deactivate(reps[1], reps[2], by=admin))
    if "deactivate" in tasks:  # 50 reps holding every lead leave at once: the third rep takes them all over
        leavers = records.create_many("user", [{"username": f"leaver{i}", "display_name": f"离职{i}",
                                                "roles": ["sales_rep"]} for i in range(50)]).created
        pool_behavior.assign_many(platform, access, "lead", ids, owners=leavers)
        settle(platform.engine)
        users = platform.schema["user"]
        floor(platform, out, "deactivate", table.update().where(col("owner").in_([int(u) for u in leavers])).values(
            owner=int(reps[2]), version=table.c.version + 1, updated_at=now),
            users.table.update().where(users.table.c.id.in_([int(u) for u in leavers])).values(
                {users.column("active"): False, users.table.c.version: users.table.c.version + 1}))

        def deactivate() -> None:
            params = {"handover_to": reps[2]}
            if one_by_one:
                for one in leavers:
                    run_action(platform, access, "user", "deactivate", one, params)
                return
            result = run_action(platform, access, "user", "deactivate", leavers, params)
            assert len(result["succeeded"]) == len(leavers) and not result["failed"], result["failed"][:3]

        timed(platform, out, "deactivate", deactivate)
    if "recycle" in tasks:  # every held lead was assigned 31 days ago; the pool recycles after 30 days
        with platform.engine.begin() as conn:
            conn.execute(table.update().where(col("owner").is_not(None)).values(
                assigned_at=(now - timedelta(days=31)).replace(tzinfo=None)))
        records.update("lead_pool", pool, {"recycle_unconverted_days": 30}, version=None, system=True)
        settle(platform.engine)
        floor(platform, out, "recycle", table.update().where(in_pool, col("owner").is_not(None)).values(
            owner=None, status="unassigned", assigned_at=None, return_reason="超期未转化"))

        def run_recycle() -> dict:
            with records.transaction() as conn:
                return recycle(platform, conn, "lead", reason="超期未转化", now=platform.clock.now())

        timed(platform, out, "recycle", run_recycle)
    if "transition" in tasks:  # one set-based transition of every waiting lead, as transitions.move_many writes it
        waiting_now = sa.and_(in_pool, col("status") == "unassigned")
        floor(platform, out, "transition", table.update().where(waiting_now).values(
            status="invalid", invalid_reason="重复线索"))

        def invalidate() -> tuple:
            with records.transaction() as conn:
                found = records.read_many(conn, "lead", ids, lock=True, fields=["status"])
                return records.update_all("lead", [int(i) for i in found], {"status": "invalid",
                                          "invalid_reason": "重复线索"}, conn=conn, user=admin, where=waiting_now,
                                          change="invalidate", detail={"reason": "重复线索"})

        timed(platform, out, "transition", invalidate)
    platform.close()
    return out


def pool_actions(platform, out: dict[str, float], tasks: set[str], ids: list[str], pool: str, admin: str,
                 reps: list[str], one_by_one: bool) -> None:
    """Of `tasks`, each beside its floor: the first rep, a member of the pool, claims every waiting lead, marks them
    invalid and reopens them (pending again); they return them (not timed) and the admin moves every waiting lead to
    another pool, then back (not timed). Every lead waits in the pool again at the end."""
    if not tasks & {"claim", "invalidate", "reopen", "move"}:
        return
    records, ot = platform.records, platform.schema["lead"]
    table, col, now = ot.table, ot.column, platform.clock.now().replace(tzinfo=None)
    in_pool, status = col("pool") == int(pool), col("status")
    behavior = pool_behavior.behavior_of(platform, "lead")
    records.update("lead_pool", pool, {"members": reps}, version=None, system=True)
    rep, boss = access_for(platform, reps[0]), access_for(platform, admin)  # the rep's scope: the pool's waiting leads
    other = records.create("lead_pool", {"name": "华南线索池", "admins": [admin]}, system=True)["id"]

    def run(task: str, access, params: dict) -> None:
        def go() -> None:
            if one_by_one:  # what the bulk action did before it was set-based: the single action on each id
                for one in ids:
                    run_action(platform, access, "lead", task, one, params)
                return
            result = behavior.run_many(access, task, ids, params)
            assert len(result["succeeded"]) == len(ids) and not result["failed"], result["failed"][:3]

        timed(platform, out, task, go)

    if "claim" in tasks:
        floor(platform, out, "claim", table.update().where(in_pool, status == "unassigned", col("owner").is_(None))
              .values(owner=int(reps[0]), status="pending", assigned_at=now))
        run("claim", rep, {})
    if "invalidate" in tasks:
        floor(platform, out, "invalidate", table.update().where(
            in_pool, status.in_(["unassigned", "pending", "following"])).values(status="invalid",
                                                                               invalid_reason="空号"))
        run("invalidate", rep, {"reason": "空号"})
    if "reopen" in tasks:
        floor(platform, out, "reopen", table.update().where(in_pool, status.in_(["invalid", "voided"])).values(
            status=sa.case((col("owner").is_(None), "unassigned"), else_="pending")))
        run("reopen", rep, {})
    if "move" in tasks:
        behavior.run_many(rep, "return", ids, {"reason": "客户暂无需求"})  # those the rep holds wait again
        settle(platform.engine)
        floor(platform, out, "move", table.update().where(in_pool, status == "unassigned", col("owner").is_(None))
              .values(pool=int(other), owner=None, status="unassigned", assigned_at=None))
        run("move", boss, {"pool": other})
        behavior.run_many(boss, "move", ids, {"pool": pool})
    else:
        if "invalidate" in tasks and "reopen" not in tasks:
            behavior.run_many(rep, "reopen", ids, {})
        behavior.run_many(rep, "return", ids, {"reason": "客户暂无需求"})
    settle(platform.engine)


def floor(platform, out: dict[str, float], task: str, update: sa.Update, *more: sa.Update) -> None:
    """The floor of `task`: its one UPDATE (of the leads: their count) and `more`, timed to their end, then rolled
    back."""
    start, cpu = time.perf_counter(), cpu_seconds(platform.engine)
    with platform.engine.connect() as conn:
        out[f"{task}_rows"] = conn.execute(update).rowcount
        for statement in more:
            conn.execute(statement)
        out[f"{task}_floor"], out[f"{task}_floor_cpu"] = time.perf_counter() - start, cpu_seconds(platform.engine) - cpu
        conn.rollback()
    settle(platform.engine)


def timed(platform, out: dict[str, float], task: str, run) -> None:
    start, cpu = time.perf_counter(), cpu_seconds(platform.engine)
    run()
    out[task], out[f"{task}_cpu"] = time.perf_counter() - start, cpu_seconds(platform.engine) - cpu
    settle(platform.engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tasks", default="import,assign", help=f"of {','.join(TASKS)}, or all")
    parser.add_argument("--one-by-one", action="store_true",
                        help="claim, invalidate, reopen, move and deactivate: the single action on each record in turn")
    parser.add_argument("--name", default="bench_leads",
                        help="the SQLite file's or PostgreSQL schema's name (unique to you on a shared server)")
    args = parser.parse_args()
    tasks = set(TASKS) if args.tasks == "all" else set(args.tasks.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-leads-"))
    print(f"objectplatform lead benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rows:,} rows")
    results = []
    try:
        for backend in args.backends.split(","):
            results.append((backend, bench(backend, workdir, args.rows, tasks, args.one_by_one, args.name)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    n = args.rows
    print("\n| task | database | time | rate |\n|---|---|---|---|")
    for backend, out in results:
        if "import" in out:
            print(f"| import {n:,}-row CSV (labels, validation, duplicate rules, history) | {backend} | "
                  f"{out['import']:.2f} s | {n / out['import']:,.0f} rows/s |")
            print(f"| import the same file again (every row a duplicate) | {backend} | {out['reimport']:.2f} s | "
                  f"{n / out['reimport']:,.0f} rows/s |")
        print(f"| assign {n:,} waiting leads from a pool over 6 reps | {backend} | {out['assign']:.2f} s "
              f"(CPU {out['assign_cpu']:.2f} s) | {n / out['assign']:,.0f} leads/s |")
        print(f"| the floor's one UPDATE of them, on the same table | {backend} | {out['update']:.2f} s "
              f"(CPU {out['update_cpu']:.2f} s) | ratio {out['assign'] / out['update']:.2f}x "
              f"(CPU {out['assign_cpu'] / out['update_cpu']:.2f}x) |")
    if any(task in out for _, out in results for task in BULK):
        print("\n| bulk action | database | leads | time | its floor: one UPDATE | ratio |\n|---|---|---|---|---|---|")
    for backend, out in results:
        for task, label in BULK.items():
            if task in out:
                took, cpu, floor_took, floor_cpu = (out[k] for k in (task, f"{task}_cpu", f"{task}_floor",
                                                                     f"{task}_floor_cpu"))
                print(f"| {label} | {backend} | {out[f'{task}_rows']:,.0f} | {took:.2f} s (CPU {cpu:.2f} s) | "
                      f"{floor_took:.2f} s (CPU {floor_cpu:.2f} s) | {took / floor_took:.2f}x "
                      f"(CPU {cpu / floor_cpu:.2f}x) |")


BULK = {"claim": "claim every waiting lead of the pool (a member)", "invalidate": "mark every held lead invalid",
        "reopen": "reopen every invalid lead", "move": "move every waiting lead to another pool (the admin)",
        "return": "return to the pool (the bulk action, set-based: give_back_many)",
        "handover": "hand-over of a deactivated user's leads",
        "deactivate": "deactivate 50 users holding every lead (the bulk action, set-based: deactivate_many)",
        "recycle": "auto-recycle of every held lead",
        "transition": "a set-based transition (Records.update_all): invalidate every waiting lead"}


if __name__ == "__main__":
    main()
