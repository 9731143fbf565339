"""Index benchmark (not a test): what each of the lead table's indexes costs an insert. A raw Core executemany of
N leads (as `create_many` writes them) into the CRM's lead table with every derived index, with none (its primary key
and foreign keys only), and with each index alone; an index's cost is its time less the time with none.

Each figure is the best of `--repeat` runs, in wall-clock and in CPU seconds (this process's and, on PostgreSQL, its
server processes'): the machine is shared, and the CPU seconds count only the work itself.

Usage: python bench/indexes.py [--backends sqlite,postgresql] [--rows 100000] [--repeat 2] [--schema op_indexes_bench]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from engine import PG_URL, cpu_seconds, database, lead_inputs, raw_rows  # bench/ is first on sys.path

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.storage.migrate import migrate

SCHEMA = "op_indexes_bench"


def insert_time(platform, table: sa.Table, rows: list[dict], repeat: int) -> tuple[float, float]:
    """The best wall-clock and CPU seconds (`cpu_seconds`) of `repeat` inserts of `rows` into the emptied table, in
    one transaction each."""
    walls, cpus = [], []
    for _ in range(repeat):
        with platform.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text(f"TRUNCATE {table.name} CASCADE"))
            else:
                conn.execute(table.delete())
        cpu, start = cpu_seconds(platform.engine), time.perf_counter()
        with platform.engine.begin() as conn:
            conn.execute(table.insert(), rows)
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds(platform.engine) - cpu)
    return min(walls), min(cpus)


def bench(backend: str, workdir: Path, rows: int, repeat: int) -> dict:
    platform = open_platform(Settings.from_env({}, database_url=database(backend, SCHEMA, workdir),
                                               instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    records = platform.records
    owners = records.create_many("user", [{"username": f"rep{i}", "display_name": f"销售{i}"}
                                          for i in range(50)]).created
    pools = records.create_many("lead_pool", [{"name": f"线索池{i}"} for i in range(10)]).created
    campaigns = records.create_many("campaign", [{"name": f"活动{i}", "type": "expo"} for i in range(50)]).created
    table = platform.schema["lead"].table
    raw = raw_rows(platform, lead_inputs(rows, 1, pools, campaigns, owners), 1)
    indexes = sorted(table.indexes, key=lambda ix: ix.name)
    out = {"all": insert_time(platform, table, raw, repeat), "none": [], "each": {}}
    with platform.engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
    for i, index in enumerate(indexes):
        if i % 4 == 0:  # the floor again now and then: the machine's load drifts
            out["none"].append(insert_time(platform, table, raw, repeat))
        with platform.engine.begin() as conn:
            index.create(conn)
        out["each"][index.name] = insert_time(platform, table, raw, repeat)
        with platform.engine.begin() as conn:
            index.drop(conn)
    out["none"].append(insert_time(platform, table, raw, repeat))
    out["reasons"] = {index.name: index.info.get("reasons", ()) for index in indexes}
    platform.close()
    if backend == "postgresql":
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        admin.dispose()
    return out


def main() -> None:
    global SCHEMA
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--schema", default=SCHEMA, help="the PostgreSQL schema (and SQLite file) of the run")
    args = parser.parse_args()
    SCHEMA = args.schema
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-indexes-"))
    print(f"objectplatform index benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, raw insert of {args.rows:,} "
          f"leads, best of {args.repeat}")
    try:
        for backend in args.backends.split(","):
            out = bench(backend, workdir, args.rows, args.repeat)
            wall, cpu = (min(t[k] for t in out["none"]) for k in (0, 1))
            print(f"\n[{backend}] {len(out['each'])} indexes. Insert with all: {out['all'][0]:.2f} s "
                  f"(CPU {out['all'][1]:.2f} s); with none: {wall:.2f} s (CPU {cpu:.2f} s); all / none: "
                  f"{out['all'][0] / wall:.2f}x (CPU {out['all'][1] / cpu:.2f}x)")
            print("| index | insert with it alone | its cost (CPU) | its cost (wall) | why it exists |\n"
                  "|---|---|---|---|---|")
            for name, (w, c) in out["each"].items():
                print(f"| {name} | {w:.2f} s (CPU {c:.2f} s) | {c - cpu:+.2f} s ({(c - cpu) / cpu:+.0%}) | "
                      f"{w - wall:+.2f} s | {'; '.join(out['reasons'][name]) or '-'} |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
