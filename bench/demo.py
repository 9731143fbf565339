"""Demo benchmark (not a test): what loading the demo company (objectplatform_crm/demo.py `load_demo`) costs on a fresh
migrated database: CPU seconds of this process (Python, the driver and, on SQLite, the database itself), wall
seconds, and the statements sent through SQLAlchemy (a bulk insert's COPY or executemany goes to the driver's own
cursor and is not counted); with --profile, the functions it spends its CPU in.

Usage: python bench/demo.py [--backends sqlite,postgresql] [--runs 1] [--profile 30]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from engine import database  # bench/engine.py (this folder is first on sys.path)

import objectplatform_crm
from objectplatform.metadata import default_layers, load_metadata
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.config import ROOT
from objectplatform.runtime.storage.migrate import migrate
from objectplatform_crm.demo import load_demo

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=timezone(timedelta(hours=8)))  # tests/test_demo.py's


def run(backend: str, metadata, workdir: Path, n: int, profile: int) -> tuple[float, float, int]:
    """One load on a fresh database: (CPU seconds, wall seconds, statements)."""
    url = database(backend, f"bench_demo_{n}", workdir)
    platform = open_platform(Settings.from_env({}, database_url=url, instance_path=workdir / f"inst{n}"), metadata)
    migrate(platform.engine, platform.schema)
    statements = 0

    def count(*_args) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(platform.engine, "before_cursor_execute", count)
    profiler = cProfile.Profile(time.process_time) if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    load_demo(platform, now=NOW)
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    sa.event.remove(platform.engine, "before_cursor_execute", count)
    platform.close()
    if profiler is not None:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(profile)
        stats.sort_stats("tottime").print_stats(profile)
    return cpu, wall, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions of each run")
    args = parser.parse_args()
    metadata = load_metadata(default_layers(ROOT, (), None, objectplatform_crm.app.layers))
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'database':<10}  {'CPU s':>6}  {'wall s':>6}  {'statements':>10}")
        for backend in args.backends.split(","):
            for n in range(args.runs):
                cpu, wall, statements = run(backend, metadata, Path(tmp), n, args.profile)
                print(f"{backend:<10}  {cpu:>6.2f}  {wall:>6.2f}  {statements:>10,}", flush=True)


if __name__ == "__main__":
    main()
