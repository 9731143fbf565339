"""Nearby benchmark (not a test): 附近的客户 at 100,000 accounts spread over a 100 km square around Shanghai,
through the API (token, scope, records read in full, JSON), for a rep (own scope, 5,000 accounts) and an
administrator (all), on SQLite and PostgreSQL.

Usage: python bench/nearby.py [--backends sqlite,postgresql] [--rows 100000] [--radius 3000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from engine import database, settle  # bench/engine.py (this folder is first on sys.path)

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.migrate import migrate
from objectplatform.web import create_app

PASSWORD = "bench-password-1"
CENTRE = (31.2304, 121.4737)
SPAN = 0.45  # degrees each side: about 100 km north to south


def bench(backend: str, workdir: Path, rows: int, radius: int, repeat: int = 50) -> dict[str, float]:
    url = database(backend, "bench_nearby", workdir)
    platform = open_platform(Settings.from_env({}, database_url=url, instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    records = platform.records
    records.create("user", {"username": "admin", "display_name": "管理员", "roles": ["admin"], "password": PASSWORD},
                   system=True)
    reps = [records.create("user", {"username": f"rep{i}", "display_name": f"销售{i}", "roles": ["sales_rep"],
                                    "password": PASSWORD}, system=True)["id"] for i in range(20)]
    rng = random.Random(16)
    ot = platform.schema["account"]
    now = datetime(2026, 12, 1)
    accounts = [to_row(ot, {"name": f"门店{i}", "owner": reps[i % len(reps)],
                            "location": {"lat": CENTRE[0] + rng.uniform(-SPAN, SPAN),
                                         "lng": CENTRE[1] + rng.uniform(-SPAN, SPAN)}})
                | {"created_at": now, "updated_at": now, "version": 1} for i in range(rows)]
    with platform.engine.begin() as conn:
        for start in range(0, rows, 10_000):
            conn.execute(ot.table.insert(), accounts[start:start + 10_000])
    settle(platform.engine)
    client = create_app(platform).test_client()
    out: dict[str, float] = {}
    for who in ("rep0", "admin"):
        token = client.post("/api/v1/auth/token", json={"username": who, "password": PASSWORD}).get_json()["token"]
        points = [(CENTRE[0] + rng.uniform(-0.3, 0.3), CENTRE[1] + rng.uniform(-0.3, 0.3)) for _ in range(repeat)]
        times, found = [], []
        for lat, lng in points:
            start = time.perf_counter()
            response = client.get(f"/api/v1/objects/account/nearby?lat={lat}&lng={lng}&radius_m={radius}&limit=20",
                                  headers={"Authorization": f"Bearer {token}"})
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.get_json()
            found.append(len(response.get_json()["items"]))
        out[f"{who}_median"], out[f"{who}_p90"] = statistics.median(times), sorted(times)[int(repeat * 0.9)]
        out[f"{who}_found"] = statistics.mean(found)
    platform.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--radius", type=int, default=3000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-nearby-"))
    print(f"objectplatform nearby benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rows:,} accounts, "
          f"radius {args.radius:,} m, 20 nearest, 50 points each")
    results = []
    try:
        for backend in args.backends.split(","):
            results.append((backend, bench(backend, workdir, args.rows, args.radius)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| caller | database | median | 90th percentile | accounts listed (mean) |\n|---|---|---|---|---|")
    for backend, out in results:
        for who, label in (("rep0", "a rep (own scope)"), ("admin", "an administrator (all)")):
            print(f"| {label} | {backend} | {out[f'{who}_median'] * 1000:.1f} ms | {out[f'{who}_p90'] * 1000:.1f} ms | "
                  f"{out[f'{who}_found']:.1f} |")


if __name__ == "__main__":
    main()
