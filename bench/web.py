"""HTTP benchmark (not a test): get, list and create leads through gunicorn, against the records service in-process.

Builds a fresh database with the demo company (`objectplatform demo`'s data) plus N leads written by a
raw Core executemany in batches (as bench/engine.py fills its tables), then measures three operations
for a few seconds each:

- get one lead:     GET  /api/v1/objects/lead/records/{id}, a random lead each time;
- list 50 leads:    GET  /api/v1/objects/lead/records?owner={rep}&sort=-created_at&limit=50 (a rep's
                    newest leads: a filtered, sorted page with its total, as the API always returns it);
- create a lead:    POST /api/v1/objects/lead/records.

Over HTTP: `objectplatform serve` (gunicorn, sync workers) in a subprocess, a bearer token from
POST /api/v1/auth/token (the admin: every request also resolves the token and the user's access),
and `--clients` client processes, each sending one request at a time on a new connection (sync
workers close it). In-process: the same calls on `platform.records`, one at a time. The ratio is
the HTTP median latency over the in-process one: what the HTTP stack, Flask, token and access
checks and JSON add to each operation.

Usage: python bench/web.py [--backend sqlite|postgresql] [--leads 1000000] [--seconds 10]
                            [--workers 2] [--clients 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from engine import database, settle  # bench/engine.py (this folder is first on sys.path)
from faker import Faker

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.migrate import migrate
from objectplatform_crm.demo import load_demo

ROOT = Path(__file__).resolve().parents[1]
BATCH = 50_000
SOURCES = ["referral", "promotion", "campaign", "telemarketing", "website", "expo", "business_card", "other"]
STATUSES = ["pending", "following", "following", "converted", "invalid"]
OPERATIONS = ("get one lead", "list 50 leads (filtered, sorted)", "create a lead")


def fill_leads(platform, n: int, reps: list[str], pools: list[str], campaigns: list[str]) -> None:
    """Add `n` leads (owned by the reps, some waiting in pools) by raw executemany, BATCH rows a transaction."""
    ot = platform.schema["lead"]
    rnd = random.Random(1)
    fake = Faker("zh_CN")
    fake.seed_instance(1)
    names = [fake.name() for _ in range(2000)]
    companies = [fake.company() for _ in range(2000)]
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=n)
    done = 0
    while done < n:
        rows = []
        for i in range(done, min(done + BATCH, n)):
            waiting = rnd.random() < 0.2
            values = {
                "name": rnd.choice(names), "company": rnd.choice(companies), "mobile": f"1{rnd.randrange(3, 10)}"
                f"{rnd.randrange(10**9):09d}", "source": rnd.choice(SOURCES), "campaign": rnd.choice(campaigns),
                "status": "unassigned" if waiting else rnd.choice(STATUSES),
                "pool": rnd.choice(pools) if waiting else None, "owner": None if waiting else rnd.choice(reps),
                "region": rnd.choice(["north", "east"]),
            }
            at = start + timedelta(minutes=i)
            rows.append(to_row(ot, values) | {"created_at": at, "updated_at": at, "version": 1,
                                              "created_by": None, "updated_by": None})
        with platform.engine.begin() as conn:
            conn.execute(ot.table.insert(), rows)
        done += len(rows)
        print(f"  filled {done:,} of {n:,} leads", end="\r", flush=True)
    print()
    settle(platform.engine)


def new_lead(rnd: random.Random) -> dict:
    return {"name": f"压测线索{rnd.randrange(10**9)}", "company": "压测科技有限公司",
            "mobile": f"139{rnd.randrange(10**8):08d}", "source": "website", "status": "pending"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure(call: Callable[[], None], seconds: float) -> list[float]:
    """Latencies (s) of `call`, repeated for `seconds` after a short warm-up."""
    warm_until = time.perf_counter() + min(1.0, seconds / 5)
    while time.perf_counter() < warm_until:
        call()
    latencies = []
    until = time.perf_counter() + seconds
    while (now := time.perf_counter()) < until:
        call()
        latencies.append(time.perf_counter() - now)
    return latencies


# --- in-process -------------------------------------------------------------------------------


def in_process(platform, ids: list[str], reps: list[str], admin: str, seconds: float) -> dict[str, tuple]:
    records = platform.records
    rnd = random.Random(2)
    calls = {
        OPERATIONS[0]: lambda: records.get("lead", rnd.choice(ids)),
        OPERATIONS[1]: lambda: records.list("lead", filters={"owner": rnd.choice(reps)}, sort="-created_at",
                                            limit=50),
        OPERATIONS[2]: lambda: records.create("lead", new_lead(rnd), user=admin),
    }
    results = {}
    for name, call in calls.items():
        latencies = measure(call, seconds)
        results[name] = (len(latencies) / sum(latencies), latencies)
        print(f"  in-process {name}: {len(latencies):,} calls")
    return results


# --- HTTP -------------------------------------------------------------------------------------


def request(port: int, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def client(args: tuple) -> tuple[list[float], int]:
    """One client process: the operation's requests, one at a time, for `seconds`; (latencies, failures)."""
    port, token, operation, ids, reps, seconds, seed = args
    rnd = random.Random(seed)
    failures = 0

    def call() -> None:
        nonlocal failures
        if operation == OPERATIONS[0]:
            status, _ = request(port, "GET", f"/api/v1/objects/lead/records/{rnd.choice(ids)}", token)
            failures += status != 200
        elif operation == OPERATIONS[1]:
            path = f"/api/v1/objects/lead/records?owner={rnd.choice(reps)}&sort=-created_at&limit=50"
            status, _ = request(port, "GET", path, token)
            failures += status != 200
        else:
            status, _ = request(port, "POST", "/api/v1/objects/lead/records", token, new_lead(rnd))
            failures += status != 201

    return measure(call, seconds), failures


def start_server(env: dict, workers: int) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "objectplatform.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise SystemExit("the server stopped; run `objectplatform serve` by hand to see why")
        try:
            request(port, "GET", "/login")
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("the server did not answer within two minutes") from None
            time.sleep(0.2)


def over_http(env: dict, ids: list[str], reps: list[str], args) -> dict[str, tuple]:
    process, port = start_server(env, args.workers)
    try:
        status, data = request(port, "POST", "/api/v1/auth/token", body={"username": "admin", "password": "admin1234"})
        if status != 200:
            raise SystemExit(f"POST /api/v1/auth/token answered {status}: {data[:200]!r}")
        token = json.loads(data)["token"]
        results = {}
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            for name in OPERATIONS:
                started = time.perf_counter()
                parts = pool.map(client, [(port, token, name, ids, reps, args.seconds, 100 + c)
                                          for c in range(args.clients)])
                elapsed = time.perf_counter() - started - min(1.0, args.seconds / 5)
                latencies = [x for part, _ in parts for x in part]
                failures = sum(f for _, f in parts)
                if failures:
                    raise SystemExit(f"{name}: {failures} requests failed")
                results[name] = (len(latencies) / elapsed, latencies)
                print(f"  HTTP {name}: {len(latencies):,} requests")
        return results
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads added to the demo company's 2,000")
    parser.add_argument("--seconds", type=float, default=10, help="measuring time per operation and side")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP client processes")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-http-"))
    url = database(args.backend, "bench_http", workdir)
    print(f"objectplatform HTTP benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.backend}, "
          f"demo company + {args.leads:,} leads, {os.cpu_count()} CPUs")
    try:
        settings = Settings.from_env(database_url=url, instance_path=workdir / "instance")
        platform = open_platform(settings)
        migrate(platform.engine, platform.schema)
        started = time.perf_counter()
        load_demo(platform)
        print(f"  demo company loaded in {time.perf_counter() - started:.1f} s")
        users = {u["username"]: u for u in platform.records.list("user", limit=100).items}
        reps = [u["id"] for u in users.values() if u["roles"] == ["sales_rep"]]
        pools = [p["id"] for p in platform.records.list("lead_pool", limit=100).items]
        campaigns = [c["id"] for c in platform.records.list("campaign", limit=100).items]
        started = time.perf_counter()
        fill_leads(platform, args.leads, reps, pools, campaigns)
        print(f"  {args.leads:,} leads written in {time.perf_counter() - started:.1f} s")
        table = platform.schema["lead"].table
        with platform.engine.connect() as conn:
            top = conn.execute(sa.select(sa.func.max(table.c.id))).scalar()
        ids = [str(i) for i in random.Random(3).sample(range(1, top + 1), min(top, 10_000))]
        ours = in_process(platform, ids, reps, users["admin"]["id"], args.seconds)
        platform.close()
        env = {k: v for k, v in os.environ.items() if k != "OBJECTPLATFORM_REDIS_URL"}
        env |= {"OBJECTPLATFORM_DATABASE_URL": url, "OBJECTPLATFORM_INSTANCE_PATH": str(workdir / "instance"),
                "OBJECTPLATFORM_SECRET_KEY": secrets.token_urlsafe(32)}  # `serve` refuses to start without one
        theirs = over_http(env, ids, reps, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def ms(value: float) -> str:
        return f"{value * 1000:.2f} ms"

    print(f"\n{args.backend}, {args.leads:,} leads + the demo company; HTTP: gunicorn {args.workers} sync workers, "
          f"{args.clients} clients; in-process: one caller\n")
    print("| operation | HTTP req/s | HTTP p50 | HTTP p95 | in-process ops/s | in-process p50 | in-process p95 "
          "| HTTP / in-process (p50) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in OPERATIONS:
        h_rate, h = theirs[name]
        i_rate, i = ours[name]
        ratio = statistics.median(h) / statistics.median(i)
        print(f"| {name} | {h_rate:.0f} | {ms(statistics.median(h))} | {ms(percentile(h, 95))} | {i_rate:.0f} "
              f"| {ms(statistics.median(i))} | {ms(percentile(i, 95))} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
