"""Import benchmark (not a test): a CSV (or, with --xlsx, XLSX) import of N leads (labels, picklist labels, a campaign
by name, validation, duplicate rules, pool routing, history, live progress) beside, in the same run on the same
database, the floor's raw insert (`../shared/bench/floor.py`, its own 100,000-row executemany) and a raw Core
executemany of the same leads into the CRM's lead table (all its indexes); then `create_many` of 100,000 leads beside
that raw insert.

Each figure is the best of `--repeat` runs (the machine is shared: times are noisy, the best is the least disturbed);
the floor is run just before each import, and the import's ratio is that of its best pair. The floor's insert is also
done in this process (`floor_shaped`: its lead table, 100,000 of its rows) for its CPU seconds, which the import's
are divided by.
The peak RSS of the import is printed (this process's peak from just before the import to its end, the floor's rows
let go: the file is streamed and only a batch is held, so it stays flat as N grows), and the
CPU seconds of the import, the raw insert and create_many (this process and its PostgreSQL server processes: on a
shared machine the wall clock also counts the others' work).

Usage: python bench/imports.py [--backends sqlite,postgresql] [--rows 100000] [--repeat 2] [--profile FILE] [--xlsx]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import ctypes
import gc
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import sqlalchemy as sa
from engine import PG_URL, cpu_seconds, database, lead_inputs, raw_rows  # bench/ is first on sys.path

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.imports import prepare, read_path, run_import
from objectplatform.runtime.storage.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "op_imports_bench"
FLOOR_SCHEMA = "op_imports_bench_floor"  # the floor's own tables (it has a lead table too)
SOURCES = ["展会", "朋友推荐", "官网", "电话营销"]  # picklist labels, as people type them
INDUSTRIES = ["金融", "制造", "零售"]
REGIONS = ["华北", "华东", "华南", "华中"]


HEADER = ["姓名", "公司名称", "手机", "电话", "邮箱", "线索来源", "市场活动", "行业", "区域"]


def lead_cells(rows: int) -> Iterator[list[str]]:
    """Rows as marketing brings them: labels in the header, picklist labels, a campaign by name; every 50th
    row's landline is the row before's (a warn rule's match); industries and regions the pools route by."""
    yield HEADER
    for i in range(rows):
        phone = i - 1 if i % 50 == 49 else i
        yield [f"线索{i}", f"公司{i % 5000}", f"139{i:08d}", f"010{phone:08d}", f"l{i}@example.com",
               SOURCES[i % len(SOURCES)], "春季展会", INDUSTRIES[i % 3], REGIONS[i % 4]]


def write_file(path: Path, rows: int) -> None:
    """`lead_cells` as a UTF-8 CSV file, or an XLSX workbook (written row by row) when `path` ends in .xlsx."""
    if path.suffix == ".xlsx":
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet()
        for cells in lead_cells(rows):
            sheet.append(cells)
        book.save(path)
        return
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows(lead_cells(rows))


def fresh(backend: str, workdir: Path):
    """A migrated platform on an empty database with an admin, six reps, a marketing user (whose leads are routed),
    a campaign, and pools routing by industry and region."""
    platform = open_platform(Settings.from_env({}, database_url=database(backend, SCHEMA, workdir),
                                               instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    records = platform.records
    admin = records.create("user", {"username": "admin", "display_name": "管理员", "roles": ["admin"]},
                           system=True)["id"]
    reps = records.create_many("user", [{"username": f"rep{i}", "display_name": f"销售{i}", "roles": ["sales_rep"]}
                                        for i in range(6)]).created
    marketing = records.create("user", {"username": "mkt", "display_name": "孙市场", "roles": ["marketing"]},
                               system=True)["id"]
    records.create("campaign", {"name": "春季展会", "type": "expo"}, system=True)
    for name, routes in [("金融行业线索池", {"industry": "finance"}), ("华北区线索池", {"region": "north"}),
                         ("华北金融线索池", {"industry": "finance", "region": "north", "default_assignee": reps[0]}),
                         ("公海线索池", {})]:
        records.create("lead_pool", {"name": name, "admins": [admin], **routes}, system=True)
    return platform, marketing


def clear(platform, table: sa.Table) -> None:
    """An empty lead table (and history and search terms) for the next run: on PostgreSQL truncated, as a DELETE
    would leave every index full of dead entries that the next insert wades through."""
    history, search = platform.schema.history, platform.schema.search
    with platform.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {table.name}, {history.name}, {search.name} CASCADE"))
        else:
            conn.execute(history.delete().where(history.c.object == "lead"))
            conn.execute(search.delete().where(search.c.object == "lead"))
            conn.execute(table.delete())


def drop(backend: str, workdir: Path) -> None:
    if backend == "sqlite":
        (workdir / f"{SCHEMA}.db").unlink(missing_ok=True)
        return
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        for schema in (SCHEMA, FLOOR_SCHEMA):
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def floor_insert(backend: str, workdir: Path) -> float:
    """Seconds of the floor's raw executemany of 100,000 leads, run on this benchmark's own database."""
    url = f"sqlite:///{workdir / 'floor.db'}" if backend == "sqlite" else database(backend, FLOOR_SCHEMA, workdir)
    text = subprocess.run([sys.executable, floor_path, url, "100000"], check=True, capture_output=True,
                          text=True).stdout
    (workdir / "floor.db").unlink(missing_ok=True)
    return float(re.search(r"raw executemany insert of 100,000 leads\s+([\d.]+) s", text).group(1))


def floor_shaped(backend: str, workdir: Path) -> float:
    """The CPU seconds (`cpu_seconds`) of the floor's raw executemany of 100,000 leads (its lead table, its
    rows), done in this process on this benchmark's database: the CPU figure the import's is divided by."""
    url = f"sqlite:///{workdir / 'floor.db'}" if backend == "sqlite" else database(backend, FLOOR_SCHEMA, workdir)
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    lead = sa.Table("lead", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(100)),
                    sa.Column("company", sa.String(100)), sa.Column("phone", sa.String(30)),
                    sa.Column("email", sa.String(100)), sa.Column("source", sa.String(30), index=True),
                    sa.Column("status", sa.String(20), index=True), sa.Column("owner", sa.Integer, index=True),
                    sa.Column("pool", sa.Integer, index=True), sa.Column("campaign", sa.Integer, index=True),
                    sa.Column("converted_account", sa.Integer, index=True),
                    sa.Column("converted_opportunity", sa.Integer, index=True), sa.Column("created_at", sa.DateTime))
    metadata.create_all(engine)
    start_at = datetime(2026, 1, 1)
    rows = [{"id": i, "name": f"线索{i}", "company": f"公司{i % 50000}", "phone": f"138{i:08d}",
             "email": f"l{i}@example.com", "source": SOURCES[i % 4], "status": "unassigned", "owner": i % 50 + 1,
             "pool": i % 10 + 1, "campaign": i % 50 + 1, "converted_account": None, "converted_opportunity": None,
             "created_at": start_at + timedelta(minutes=i)} for i in range(1, 100_001)]
    cpu = cpu_seconds(engine)
    with engine.begin() as conn:
        conn.execute(lead.insert(), rows)
    used = cpu_seconds(engine) - cpu
    metadata.drop_all(engine)
    engine.dispose()
    (workdir / "floor.db").unlink(missing_ok=True)
    return used


def memory(line: str, reset: bool = False) -> float:
    """This process's resident memory in MB from /proc/self/status: `VmRSS` now, `VmHWM` its peak since the last
    `reset` (Linux resets the peak when 5 is written to /proc/self/clear_refs)."""
    if reset:  # what earlier work freed given back to the system first (glibc keeps it otherwise)
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{line}:\s+(\d+) kB", status, re.M).group(1)) / 1024


def bench(backend: str, workdir: Path, rows: int, repeat: int, profile: str | None, kind: str = "csv") -> dict:
    out: dict = {"floor": [], "floor_cpu": []}
    platform, marketing = fresh(backend, workdir)
    table = platform.schema["lead"].table
    path = workdir / f"leads.{kind}"
    write_file(path, rows)
    out["import"], out["progress"], out["cpu"] = [], 0, {"import": [], "raw": [], "create_many": []}
    out["rss"], out["rss_before"] = 0.0, 0.0
    for attempt in range(repeat):
        out["floor"].append(floor_insert(backend, workdir))  # just before: the machine's load drifts
        out["floor_cpu"].append(floor_shaped(backend, workdir))
        clear(platform, table)
        calls = []
        profiler = cProfile.Profile() if profile and attempt == repeat - 1 else None
        before = memory("VmRSS", reset=True)  # the floor's rows above are let go: the peak from here is the import's
        start, cpu = time.perf_counter(), cpu_seconds(platform.engine)
        if profiler:
            profiler.enable()
        result = run_import(platform, prepare(platform.metadata.objects["lead"], read_path(path)), user=marketing,
                            progress=lambda done, total, calls=calls: calls.append(done))
        if profiler:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{backend}")
        out["import"].append(time.perf_counter() - start)
        out["cpu"]["import"].append(cpu_seconds(platform.engine) - cpu)
        if (peak := memory("VmHWM")) > out["rss"]:
            out["rss"], out["rss_before"] = peak, before
        assert result.created == rows and not result.errors, result.errors[:3]
        assert len(result.warnings) == rows // 50, len(result.warnings)
        out["progress"] = len(calls)
    with platform.engine.connect() as conn:
        out["history"] = conn.execute(sa.select(sa.func.count()).select_from(platform.schema.history)
                                      .where(platform.schema.history.c.object == "lead")).scalar_one()
        out["pooled"] = conn.execute(sa.select(sa.func.count()).select_from(table)
                                     .where(table.c.pool.is_not(None))).scalar_one()
    assert out["pooled"] == sum(1 for i in range(rows) if i % 3 == 0 or i % 4 == 0), out["pooled"]  # routed

    # the raw insert into the lead table of the same 100,000 leads (as create_many writes them)
    with platform.engine.connect() as conn:
        ids = lambda name: [str(i) for i in conn.execute(sa.select(platform.schema[name].table.c.id)).scalars()]  # noqa: E731
        owners, pools, campaigns = ids("user"), ids("lead_pool"), ids("campaign")
    inputs = lead_inputs(100_000, 1, pools, campaigns, owners)
    raw = raw_rows(platform, inputs, 1)
    out["raw"] = []
    for _ in range(repeat):
        clear(platform, table)
        start, cpu = time.perf_counter(), cpu_seconds(platform.engine)
        with platform.engine.begin() as conn:
            conn.execute(table.insert(), raw)
        out["raw"].append(time.perf_counter() - start)
        out["cpu"]["raw"].append(cpu_seconds(platform.engine) - cpu)
    del raw

    out["create_many"] = []
    for _ in range(repeat):
        clear(platform, table)
        start, cpu = time.perf_counter(), cpu_seconds(platform.engine)
        result = platform.records.create_many("lead", inputs, batch_size=2000)
        out["create_many"].append(time.perf_counter() - start)
        out["cpu"]["create_many"].append(cpu_seconds(platform.engine) - cpu)
        assert not result.errors, result.errors[:3]
    platform.close()
    drop(backend, workdir)
    return out


floor_path = str(ROOT.parent / "shared" / "bench" / "floor.py")


def main() -> None:
    global floor_path, SCHEMA, FLOOR_SCHEMA
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--floor", default=floor_path)
    parser.add_argument("--profile", help="write the last import's cProfile stats to FILE.<backend>")
    parser.add_argument("--schema", default=SCHEMA, help="the PostgreSQL schema (and SQLite file) of the run")
    parser.add_argument("--xlsx", action="store_true", help="import an XLSX workbook (read by python-calamine), "
                        "not a CSV file")
    args = parser.parse_args()
    SCHEMA, FLOOR_SCHEMA = args.schema, f"{args.schema}_floor"
    floor_path = args.floor
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-imports-"))
    print(f"objectplatform import benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rows:,} rows, "
          f"best of {args.repeat}")
    header = "| task | database | time | rate | floor: raw insert of 100,000 | ratio |\n|---|---|---|---|---|---|"
    lines = []
    try:
        for backend in args.backends.split(","):
            kind = "xlsx" if args.xlsx else "csv"
            lines += report(backend, bench(backend, workdir, args.rows, args.repeat, args.profile, kind), args.rows,
                            kind)
            print("\n".join([header, *lines[-5:]]), flush=True)  # each database's figures as soon as they are in
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n" + "\n".join([header, *lines]))


def report(backend: str, out: dict, n: int, kind: str) -> list[str]:
    """The table rows of one database's run."""
    # the import's best ratio to the floor measured just before it
    imported, floor = min(zip(out["import"], out["floor"], strict=True), key=lambda pair: pair[0] / pair[1])
    raw, created = min(out["raw"]), min(out["create_many"])
    cpu = out["cpu"]
    # the floor inserts 100,000 rows: the ratio compares rates, so it holds at any N
    return [
        f"| import {n:,}-row {kind.upper()} (labels, validation, duplicate rules, routing, history) | {backend} | "
        f"{imported:.2f} s | {n / imported:,.0f} rows/s | {floor:.2f} s ({100_000 / floor:,.0f} rows/s) | "
        f"{(imported / n) / (floor / 100_000):.2f}x |",
        f"| raw executemany of 100,000 leads into the CRM's lead table | {backend} | {raw:.2f} s | "
        f"{100_000 / raw:,.0f} rows/s | {floor:.2f} s | {raw / floor:.2f}x |",
        f"| create_many 100,000 leads vs that raw insert | {backend} | {created:.2f} s | "
        f"{100_000 / created:,.0f} rows/s | raw {raw:.2f} s | {created / raw:.2f}x |",
        f"  [{backend}] import: {out['progress']} progress reports, {out['history']:,} history rows, "
        f"{out['pooled']:,} leads routed to a pool, peak RSS {out['rss']:.0f} MB (before the import "
        f"{out['rss_before']:.0f} MB); all runs: import "
        f"{', '.join(f'{t:.2f}' for t in out['import'])} s, raw {', '.join(f'{t:.2f}' for t in out['raw'])} s, "
        f"create_many {', '.join(f'{t:.2f}' for t in out['create_many'])} s, floor "
        f"{', '.join(f'{t:.2f}' for t in out['floor'])} s",
        f"  [{backend}] CPU seconds (this process and its PostgreSQL server processes; the wall clock of a shared "
        f"machine counts others' work too): import {min(cpu['import']):.2f} s ({n / min(cpu['import']):,.0f} rows/s), "
        f"raw {min(cpu['raw']):.2f} s, create_many {min(cpu['create_many']):.2f} s "
        f"({min(cpu['create_many']) / min(cpu['raw']):.2f}x the raw insert); the floor-shaped insert of 100,000 "
        f"leads in this process {min(out['floor_cpu']):.2f} s: import / floor by CPU "
        f"{(min(cpu['import']) / n) / (min(out['floor_cpu']) / 100_000):.2f}x",
    ]


if __name__ == "__main__":
    main()
