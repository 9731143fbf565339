"""Summary-table benchmark (not a test): the home widgets over the leads read from the summary table (a report's
`summary:`) against the same report reading the leads, and what keeping the summary current costs the writes.

Data, per database and size (100,000 and 1,000,000 leads by default): 50 reps under 5 managers (10 each), 10
pools (two per team), leads 80 % owned by a rep (pending, following, converted, invalid; from one of the team's
pools) and 20 % waiting unowned in any pool,
written with COPY / executemany; then the summary filled as `migrate` fills it (one INSERT ... SELECT ... GROUP
BY, timed) and VACUUM ANALYZE / ANALYZE. Widgets: 我的线索(按状态) for a rep (own leads and their pools' waiting
ones), 按员工统计线索 for a manager (their 10 reps), 按状态统计线索 for the administrator (every lead); the median of
5 runs after a warm-up, the summary's rows checked equal to the live run's. Writes: create_many of 5,000 leads
(batches of 1,000) and 200 single creates, with the summary kept and with its upkeep switched off, alternated
(with, without, with, without) and the median taken.

Usage: python bench/summaries.py [--backends sqlite,postgresql] [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from engine import database, settle, timed

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.records.bulk import insert_columns
from objectplatform.runtime.reports import run_report
from objectplatform.runtime.storage.migrate import migrate

SOURCES = ["referral", "promotion", "campaign", "telemarketing", "website", "expo", "business_card", "other"]
OWNED = ["pending", "following", "converted", "invalid"]
BATCH = 100_000
WIDGETS = (("rep", "leads_by_status", "我的线索(按状态), a rep"),
           ("manager", "leads_by_owner_status", "按员工统计线索, a manager"),
           ("admin", "leads_by_status", "按状态统计线索, the administrator"))


def people(platform) -> dict[str, list[str]]:
    records = platform.records
    admin = records.create("user", {"username": "admin", "display_name": "管理员", "roles": ["admin"]},
                           system=True)["id"]
    managers = records.create_many("user", [{"username": f"boss{i}", "display_name": f"经理{i}",
                                             "roles": ["sales_manager"]} for i in range(5)], system=True).created
    reps = records.create_many("user", [{"username": f"rep{i}", "display_name": f"销售{i:02d}", "roles": ["sales_rep"],
                                         "manager": managers[i // 10]} for i in range(50)], system=True).created
    pools = records.create_many("lead_pool", [{"name": f"线索池{i}", "members": reps[(i % 5) * 10:(i % 5) * 10 + 10]}
                                              for i in range(10)], system=True).created
    return {"admin": [admin], "managers": managers, "reps": reps, "pools": pools}


def fill_leads(platform, n: int, reps: list[str], pools: list[str]) -> None:
    """`n` leads by COPY (PostgreSQL) or executemany (SQLite), around the records service (the summary is filled
    after, as migrate fills it); an owned lead came from one of its rep's team's two pools."""
    rnd = random.Random(11)
    team_pools = {int(rep): [int(pools[i // 10]), int(pools[i // 10 + 5])] for i, rep in enumerate(reps)}
    table = platform.schema["lead"].table
    at = datetime(2026, 1, 1)
    done = 0
    while done < n:
        count = min(BATCH, n - done)
        owners = [int(rnd.choice(reps)) if rnd.random() < 0.8 else None for _ in range(count)]
        columns = {
            "name": [f"线索{done + i}" for i in range(count)],
            "phone": [f"138{done + i:08d}" for i in range(count)],
            "source": [rnd.choice(SOURCES) for _ in range(count)],
            "status": [rnd.choice(OWNED) if o else "unassigned" for o in owners],
            "owner": owners,
            "pool": [rnd.choice(team_pools[o]) if o else int(rnd.choice(pools)) for o in owners],
            "created_at": [at] * count, "updated_at": [at] * count, "version": [1] * count,
        }
        with platform.engine.begin() as conn:
            insert_columns(conn, table, columns, count)
        done += count
        print(f"  filled {done:,} leads", end="\r", flush=True)
    print()


def fill_summary(platform) -> float:
    """The summary filled again as migrate's plan fills it; seconds taken."""
    (summary,) = platform.schema.summaries["lead"]
    start = time.perf_counter()
    with platform.engine.begin() as conn:
        summary.fill(conn, platform.schema["lead"].table)
    return time.perf_counter() - start


def widgets(platform, who: dict[str, list[str]]) -> list[tuple[str, float, float]]:
    """(widget, seconds reading the summary, seconds reading the leads) per widget, the rows checked equal."""
    viewers = {"rep": who["reps"][0], "manager": who["managers"][0], "admin": who["admin"][0]}
    out = []
    for role, name, label in WIDGETS:
        access = access_for(platform, viewers[role])
        report = platform.metadata.reports[name]
        live = replace(report, summary=None)
        run_report(platform, report, access=access), run_report(platform, live, access=access)  # warm-up
        summarised, a = timed(lambda r=report, acc=access: run_report(platform, r, access=acc), repeat=5)
        scanned, b = timed(lambda r=live, acc=access: run_report(platform, r, access=acc), repeat=5)
        assert (a.rows, a.totals) == (b.rows, b.totals), label
        out.append((label, summarised, scanned))
    return out


def writes(platform, who: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    """{write: (seconds with the summary kept, without)}: each measured twice, alternating, median taken."""
    records = platform.records
    summaries = records.rollups.summaries
    kept = summaries.by_object
    rep, pool = who["reps"][1], who["pools"][1]
    serial = iter(range(10**9))

    def many() -> None:
        rows = [{"name": f"新线索{next(serial)}", "phone": "13900000000", "source": "website"} for _ in range(5000)]
        assert not records.create_many("lead", rows, user=rep, batch_size=1000).errors

    def singles() -> None:
        for _ in range(200):
            records.create("lead", {"name": f"单条{next(serial)}", "phone": "13900000000", "source": "expo",
                                    "pool": pool}, user=rep)

    out = {}
    for label, write in (("create_many of 5,000 leads", many), ("200 single creates", singles)):
        times: dict[bool, list[float]] = {True: [], False: []}
        for keep in (True, False, True, False):
            summaries.by_object = kept if keep else {}
            start = time.perf_counter()
            write()
            times[keep].append(time.perf_counter() - start)
        summaries.by_object = kept
        out[label] = (statistics.median(times[True]), statistics.median(times[False]))
    return out


def check_current(platform) -> None:
    """After the writes (those without upkeep filled in again), the summary equals a count of the leads."""
    fill_summary(platform)
    with platform.engine.connect() as conn:
        (summary,) = platform.schema.summaries["lead"]
        total = conn.execute(sa.select(sa.func.sum(summary.table.c.n))).scalar_one()
        assert total == conn.execute(sa.text("SELECT count(*) FROM lead")).scalar_one()


def bench(backend: str, size: int, workdir: Path) -> dict:
    url = database(backend, f"bench_summary_{size}", workdir)
    platform = open_platform(Settings.from_env(database_url=url, instance_path=workdir / "instance"))
    try:
        migrate(platform.engine, platform.schema)
        who = people(platform)
        fill_leads(platform, size, who["reps"], who["pools"])
        fill = fill_summary(platform)
        settle(platform.engine)
        result = {"fill": fill, "widgets": widgets(platform, who), "writes": writes(platform, who)}
        check_current(platform)
        return result
    finally:
        platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-"))
    print(f"objectplatform summary-table benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    results = []
    try:
        for backend in args.backends.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                print(f"[{backend}] {size:,} leads")
                results.append((backend, size, bench(backend, size, workdir)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| widget | database | leads | from the summary | reading the leads | ratio |\n|---|---|---|---|---|---|")
    for backend, size, out in results:
        for label, summarised, scanned in out["widgets"]:
            print(f"| {label} | {backend} | {size:,} | {summarised * 1000:.2f} ms | {scanned * 1000:.1f} ms | "
                  f"{scanned / summarised:.0f}x faster |")
    print("\n| write | database | leads | summary kept | no summary | ratio |\n|---|---|---|---|---|---|")
    for backend, size, out in results:
        print(f"| migrate's fill of the summary | {backend} | {size:,} | {out['fill']:.2f} s | | |")
        for label, (kept, without) in out["writes"].items():
            print(f"| {label} | {backend} | {size:,} | {kept:.3f} s | {without:.3f} s | {kept / without:.2f}x |")


if __name__ == "__main__":
    main()
