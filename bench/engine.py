"""Engine benchmarks (not tests): print our figures beside the floor of ../shared/PERFORMANCE.md.

Measures, per database: inserting 100,000 leads through `create_many` (validation, reference and
unique checks, history) against a raw Core executemany of the same rows; a filtered, sorted list
page at N leads, first page and the 1,000th page by cursor; migrating 50 objects x 60 fields. Runs
the hand-written floor (`../shared/bench/floor.py`) on its own database in the same run.

Usage: python bench/engine.py [--backends sqlite,postgresql] [--leads 1000000] [--floor PATH|none]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

import objectplatform_crm
from objectplatform.metadata import default_layers, load_metadata
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.records.query import list_page
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("OBJECTPLATFORM_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SOURCES = ["referral", "promotion", "campaign", "telemarketing", "website", "expo", "business_card", "other"]
BATCH = 100_000


def database(backend: str, name: str, workdir: Path) -> str:
    """A fresh, empty database for one run: a SQLite file or a PostgreSQL schema."""
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'{name}.db'}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        c.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    admin.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{name}&application_name={name}"


def settle(engine: sa.Engine) -> None:
    """After a bulk load, the state autovacuum leaves: statistics, and on PostgreSQL the visibility map
    that lets a count read the index alone (VACUUM ANALYZE)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))


def cpu_seconds(engine: sa.Engine) -> float:
    """CPU seconds used so far by this process and, on PostgreSQL, by the server processes of `engine`'s
    connections (found by the application_name `database` gives them): on a machine others load, unlike the
    wall clock, it counts only the work itself (SQLite's runs in this process)."""
    used = time.process_time()
    if engine.dialect.name == "postgresql":
        used += processes_cpu(server_processes(engine, engine.url.query["application_name"]))
    return used


def server_processes(engine: sa.Engine, application_name: str) -> list[int]:
    """The PostgreSQL server processes of the connections named `application_name`."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                            {"name": application_name}).scalars().all()


def processes_cpu(pids) -> float:
    """The CPU seconds (user and system) the processes `pids` have used so far; one gone meanwhile counts none."""
    tick = os.sysconf("SC_CLK_TCK")
    used = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        used += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return used


def insert_rows(platform, obj: str, rows: list[dict], batch: int) -> None:
    """`rows` into `obj`'s table in one transaction, a Core insert (executemany) of `batch` rows at a time."""
    table = platform.schema[obj].table
    with platform.engine.begin() as conn:
        for start in range(0, len(rows), batch):
            conn.execute(table.insert(), rows[start:start + batch])


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Median seconds over `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def lead_inputs(n: int, start: int, pools: list[str], campaigns: list[str], owners: list[str]) -> list[dict]:
    """Lead rows as an import brings them: strings, as in a CSV file."""
    rnd = random.Random(start)
    return [
        {
            "name": f"线索{i}",
            "company": f"公司{i % 50000}",
            "phone": f"138{i:08d}",
            "email": f"l{i}@example.com",
            "source": rnd.choice(SOURCES),
            "pool": rnd.choice(pools),
            "campaign": rnd.choice(campaigns),
            "owner": rnd.choice(owners),
        }
        for i in range(start, start + n)
    ]


def raw_rows(platform, inputs: list[dict], start: int) -> list[dict]:
    """The same leads as table rows (what create_many ends up writing), for the raw executemany."""
    ot = platform.schema["lead"]
    base = datetime(2026, 1, 1)
    rows = []
    for offset, values in enumerate(inputs):
        at = base + timedelta(minutes=start + offset)
        rows.append(to_row(ot, values | {"status": "pending"}) | {
            "created_at": at, "updated_at": at, "version": 1, "created_by": None, "updated_by": None})
    return rows


def bench_records(backend: str, workdir: Path, n_leads: int) -> dict:
    url = database(backend, "bench_engine", workdir)
    settings = Settings.from_env(database_url=url, instance_path=workdir / "instance")
    platform = open_platform(settings)
    migrate(platform.engine, platform.schema)
    records = platform.records
    owners = records.create_many(
        "user", [{"username": f"rep{i}", "display_name": f"销售{i}"} for i in range(50)]).created
    pools = records.create_many("lead_pool", [{"name": f"线索池{i}"} for i in range(10)]).created
    campaigns = records.create_many(
        "campaign", [{"name": f"活动{i}", "type": "expo"} for i in range(50)]).created
    out: dict[str, float] = {}

    inputs = lead_inputs(BATCH, 1, pools, campaigns, owners)
    rows = raw_rows(platform, inputs, 1)
    table = platform.schema["lead"].table

    def raw_insert(batch):
        with platform.engine.begin() as conn:
            conn.execute(table.insert(), batch)

    out["raw"], _ = timed(lambda: raw_insert(rows))
    with platform.engine.begin() as conn:  # create_many starts from the same empty table
        conn.execute(table.delete())
    out["create_many"], result = timed(lambda: records.create_many("lead", inputs, batch_size=2000))
    assert not result.errors, result.errors[:3]
    print(f"  [{backend}] create_many 100,000 leads: {out['create_many']:.2f} s, raw executemany {out['raw']:.2f} s")

    done = BATCH
    while done < n_leads:
        n = min(BATCH, n_leads - done)
        raw_insert(raw_rows(platform, lead_inputs(n, done + 1, pools, campaigns, owners), done + 1))
        done += n
        print(f"  [{backend}] filled {done:,} leads", end="\r", flush=True)
    print()
    settle(platform.engine)

    pool = pools[3]
    with platform.engine.connect() as conn:
        def page(cursor=None, count=False):
            return list_page(conn, platform.schema, "lead", filters={"pool": pool}, q=None, sort=None,
                             limit=50, cursor=cursor, count=count)

        out["page1"], _ = timed(page, repeat=20)
        out["page1_total"], (_, _, total, _) = timed(lambda: page(count=True), repeat=5)
        cursor = None
        for _ in range(999):
            _, cursor, _, _ = page(cursor)
        out["page1000"], (items, _, _, _) = timed(lambda: page(cursor), repeat=20)
        assert len(items) == 50
        out["pool_total"] = total
    platform.close()
    return out


def wide_layer(folder: Path, objects: int = 50, fields: int = 60) -> Path:
    """A site layer of `objects` objects with `fields` fields each, of the common types."""
    kinds = [
        "{type: text, label: {zh: 文本%d, en: Text %d}, max_length: 100}",
        "{type: integer, label: {zh: 整数%d, en: Integer %d}}",
        "{type: currency, label: {zh: 金额%d, en: Amount %d}}",
        "{type: date, label: {zh: 日期%d, en: Date %d}}",
        "{type: datetime, label: {zh: 时间%d, en: Time %d}}",
        "{type: boolean, label: {zh: 是否%d, en: Flag %d}}",
        "{type: picklist, picklist: industry, label: {zh: 行业%d, en: Industry %d}}",
        "{type: user, label: {zh: 用户%d, en: User %d}}",
        "{type: lookup, to: account, label: {zh: 客户%d, en: Account %d}}",
        "{type: long_text, label: {zh: 备注%d, en: Note %d}}",
    ]
    (folder / "object_defs").mkdir(parents=True)
    for o in range(objects):
        lines = [f"kind: object\nname: wide{o}\nlabel: {{zh: 对象{o}, en: Object {o}}}\ntitle_field: f0\nfields:"]
        lines += [f"  f{i}: {kinds[i % len(kinds)] % (i, i)}" for i in range(fields)]
        lines.append("list_view: {columns: [f0, f1], filters: [f6], sort: [-created_at]}")
        (folder / "object_defs" / f"wide{o}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def bench_migrate(backend: str, workdir: Path) -> dict:
    layer = wide_layer(workdir / f"wide_{backend}")
    metadata = load_metadata(default_layers(ROOT, [], layer, objectplatform_crm.app.layers))  # wide as a site layer
    url = database(backend, "bench_migrate", workdir)
    platform = open_platform(Settings.from_env(database_url=url, instance_path=workdir / "instance"), metadata)
    out = {}
    out["migrate"], plan = timed(lambda: migrate(platform.engine, platform.schema))
    out["migrate_again"], _ = timed(lambda: migrate(platform.engine, platform.schema))
    out["ops"] = len(plan.ops)
    platform.close()
    return out


FLOOR_LINES = {
    "raw": r"raw executemany insert of 100,000 leads\s+([\d.]+) s",
    "page1": r"list page 1 with index \(pool, created_at, id\)\s+([\d.]+) s",
    "page1000": r"list deep page by keyset with that index\s+([\d.]+) s",
}


def run_floor(floor: Path, backend: str, workdir: Path, n_leads: int) -> dict:
    url = database(backend, "bench_floor", workdir)
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'floor.db'}"
    print(f"  [{backend}] floor: {floor} ({n_leads:,} leads)")
    text = subprocess.run([sys.executable, str(floor), url, str(n_leads)], check=True, capture_output=True,
                          text=True).stdout
    print("    " + text.strip().replace("\n", "\n    "))
    return {key: float(m.group(1)) for key, pattern in FLOOR_LINES.items() if (m := re.search(pattern, text))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--floor", default=str(ROOT.parent / "shared" / "bench" / "floor.py"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-"))
    print(f"objectplatform engine benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.leads:,} leads")
    results = []
    try:
        for backend in args.backends.split(","):
            floor = run_floor(Path(args.floor), backend, workdir, args.leads) if args.floor != "none" else {}
            ours = bench_records(backend, workdir, args.leads) | bench_migrate(backend, workdir)
            results.append((backend, ours, floor))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def cell(value, unit="ms"):
        if value is None:
            return "–"
        if value == 0:  # floor.py prints whole milliseconds: 0.000 s
            return "< 0.5 ms"
        return f"{value * 1000:.2f} ms" if unit == "ms" else f"{value:.2f} s"

    print("\n| task | database | objectplatform | floor (hand SQL) | ratio |\n|---|---|---|---|---|")
    for backend, ours, floor in results:
        rows = [
            ("insert 100,000 leads: create_many (validated) vs raw executemany", ours["create_many"], ours["raw"], "s"),
            ("list page 1 (pool filter, default sort), 50 rows", ours["page1"], floor.get("page1"), "ms"),
            ("list page 1 with total count", ours["page1_total"], None, "ms"),
            ("list page 1,000 by cursor", ours["page1000"], floor.get("page1000"), "ms"),
            (f"migrate 50 objects x 60 fields ({ours['ops']} operations)", ours["migrate"], None, "s"),
            ("migrate again (nothing to do)", ours["migrate_again"], None, "s"),
        ]
        for label, value, base, unit in rows:
            ratio = f"{value / base:.1f}x" if base else ""
            print(f"| {label} | {backend} | {cell(value, unit)} | {cell(base, unit)} | {ratio} |")
        if floor.get("raw"):
            print(f"| floor.py raw executemany of 100,000 leads | {backend} | | {cell(floor['raw'], 's')} | |")


if __name__ == "__main__":
    main()
