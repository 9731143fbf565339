"""HTTP under load (not a test): a mixed workload of concurrent clients against gunicorn on loopback.

Builds a fresh database with the demo company (`objectplatform demo`'s data) plus N leads owned by its six
sales reps or waiting in its pools (a raw Core executemany in batches, as bench/engine.py fills its tables),
starts `objectplatform serve` (gunicorn, `--workers` sync workers) on it, signs in through
POST /api/v1/auth/token as the demo's reps and sales managers, and runs `--clients` client threads for
`--seconds`, each sending one request at a time on a new connection (sync workers close it) as one of them:

- 70 % read:  GET   /api/v1/objects/lead/records/{id}, a lead the client's user may see;
- 20 % list:  GET   /api/v1/objects/lead/records?sort=-created_at&limit=50, the user's newest leads, or the same
              filtered by status, or the next page by cursor; each with its total (exact up to 100,000);
- 10 % write: POST  /api/v1/objects/follow_up/records, a follow-up on one of the user's leads, or
              PATCH /api/v1/objects/lead/records/{id}, a lead's description with the version last read.

Each client reads and writes its own share of the sampled leads, so no two clients write one record and any
answer but 200/201 (a 409 as much as a 500) counts as an error. The first seconds warm up and are not counted.
Prints p50/p95/p99 per kind and overall, requests per second and errors, and the machine's load average,
since clients, server and database share its CPUs; and the CPU a request costs over the measured seconds (the
clients', gunicorn's processes', PostgreSQL's processes serving them), which other work on the machine does not
change as it changes the times.

Usage: python bench/web.py [--backend postgresql|sqlite] [--leads 1000000] [--seconds 60] [--workers 4]
                           [--clients 16] [--database bench_http] [--reuse]

PostgreSQL is OBJECTPLATFORM_BENCH_PG_URL's database (default: the tests' `test`), in the schema `--database`;
`--reuse` runs on the schema an earlier run built (a 1,000,000-lead build takes minutes).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from engine import PG_URL, database, processes_cpu, server_processes, settle  # bench/engine.py (first on sys.path)
from faker import Faker

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.migrate import migrate
from objectplatform_crm.demo import load_demo

BATCH = 50_000
SAMPLE = 20_000  # leads the clients read and write, shared out among them
SOURCES = ["referral", "promotion", "campaign", "telemarketing", "website", "expo", "business_card", "other"]
STATUSES = ["pending", "following", "following", "converted", "invalid"]
KINDS = ("read", "list", "write")
SHARES = (0.7, 0.2, 0.1)
PASSWORD = "demo1234"  # the demo users'
LEADS = "/api/v1/objects/lead/records"


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
    with platform.engine.begin() as conn:  # written past the records service: the lead summaries filled again
        for summary in platform.schema.summaries.get("lead", ()):
            summary.fill(conn, ot.table)
    settle(platform.engine)


@dataclass
class Client:
    """One client thread's user, its share of the leads and what it learnt of them."""

    username: str
    leads: list[str]
    seed: int
    token: str = ""
    versions: dict[str, int] = field(default_factory=dict)  # lead id -> version, from its own reads and writes
    cursor: str | None = None  # next_cursor of its last newest-first page
    samples: list[tuple[str, float, float, bool]] = field(default_factory=list)  # (kind, start, seconds, ok)
    errors: list[str] = field(default_factory=list)


def request(port: int, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def read(port: int, client: Client, rnd: random.Random) -> tuple[int, bytes, int]:
    lead = rnd.choice(client.leads)
    status, data = request(port, "GET", f"{LEADS}/{lead}", client.token)
    if status == 200:
        client.versions[lead] = json.loads(data)["version"]
    return status, data, 200


def list_page(port: int, client: Client, rnd: random.Random) -> tuple[int, bytes, int]:
    choice = rnd.random()
    if choice < 0.25 and client.cursor:
        path = f"{LEADS}?sort=-created_at&limit=50&cursor={client.cursor}"
    elif choice < 0.5:
        path = f"{LEADS}?status={rnd.choice(['pending', 'following'])}&sort=-created_at&limit=50"
    else:
        path = f"{LEADS}?sort=-created_at&limit=50"
    status, data = request(port, "GET", path, client.token)
    if status == 200 and "status=" not in path:
        client.cursor = json.loads(data)["next_cursor"]
    return status, data, 200


def write(port: int, client: Client, rnd: random.Random) -> tuple[int, bytes, int]:
    if client.versions and rnd.random() < 0.5:
        lead = rnd.choice(list(client.versions))
        body = {"description": f"压测备注 {rnd.randrange(10**9)}", "version": client.versions[lead]}
        status, data = request(port, "PATCH", f"{LEADS}/{lead}", client.token, body)
        if status == 200:
            client.versions[lead] = json.loads(data)["version"]
        return status, data, 200
    lead = rnd.choice(client.leads)
    client.versions.pop(lead, None)  # a lead's first follow-up moves it to following: a new version
    body = {"kind": rnd.choice(["call", "visit", "wechat"]), "content": f"压测跟进 {rnd.randrange(10**9)}",
            "related_object": "lead", "related_id": lead}
    status, data = request(port, "POST", "/api/v1/objects/follow_up/records", client.token, body)
    return status, data, 201


CALLS = {"read": read, "list": list_page, "write": write}


def run_client(port: int, client: Client, until: float) -> None:
    rnd = random.Random(client.seed)
    while (started := time.perf_counter()) < until:
        kind = rnd.choices(KINDS, SHARES)[0]
        try:
            status, data, expected = CALLS[kind](port, client, rnd)
            ok = status == expected
            if not ok:
                client.errors.append(f"{kind}: {status} {data[:200]!r}")
        except OSError as e:
            ok = False
            client.errors.append(f"{kind}: {e!r}")
        client.samples.append((kind, started, time.perf_counter() - started, ok))


@dataclass(frozen=True)
class Usage:
    """CPU seconds used so far by the clients (this process), the server (gunicorn's master and workers) and the
    database (PostgreSQL's processes of the server's connections; SQLite's work is the server's)."""

    clients: float
    server: float
    database: float

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.clients - other.clients, self.server - other.server, self.database - other.database)


def usage(process: subprocess.Popen, url: str) -> Usage:
    """What the clients, `process` (gunicorn) with its workers and the database serving them have used so far."""
    workers = [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _parent(d) == process.pid]
    database = 0.0
    if url.startswith("postgresql"):
        engine = sa.create_engine(PG_URL)
        try:
            database = processes_cpu(server_processes(engine, sa.engine.make_url(url).query["application_name"]))
        finally:
            engine.dispose()
    return Usage(time.process_time(), processes_cpu([process.pid, *workers]), database)


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def start_server(env: dict, workers: int) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "objectplatform.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600  # a loaded machine starts the workers slowly
    while True:
        if process.poll() is not None:
            raise SystemExit("the server stopped; run `objectplatform serve` by hand to see why")
        try:
            request(port, "GET", "/login")
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                process.terminate()
                raise SystemExit("the server did not answer within ten minutes") from None
            time.sleep(0.2)


def clients_of(platform, count: int, first_lead: int) -> list[Client]:
    """`count` clients, signed in as the demo's reps and sales managers in turn; each gets its own share of a
    sample of the bench's leads, among those its user may see (a rep's own, a manager's department's)."""
    users = platform.records.list("user", limit=100, count=False).items
    reps = {u["id"]: u for u in users if u["roles"] == ["sales_rep"]}
    managers = [u for u in users if u["roles"] == ["sales_manager"]]
    people = [*reps.values(), *managers]
    clients = [Client(people[i % len(people)]["username"], [], 100 + i) for i in range(count)]
    sees = {u["id"]: {u["id"]} for u in reps.values()} | {
        m["id"]: {r for r, u in reps.items() if u["department"] == m["department"]} for m in managers}
    by_name = {u["username"]: u["id"] for u in people}
    table = platform.schema["lead"].table
    with platform.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).where(table.c.id >= first_lead)).scalar_one()
        step = max(1, total // SAMPLE)
        sample = conn.execute(sa.select(table.c.id, table.c.owner).where(
            table.c.id >= first_lead, table.c.id % step == 0, table.c.owner.in_([int(r) for r in reps]))).all()
    turn: dict[str, int] = defaultdict(int)
    for lead, owner in sample:
        able = [c for c in clients if str(owner) in sees[by_name[c.username]]]
        able[turn[str(owner)] % len(able)].leads.append(str(lead))
        turn[str(owner)] += 1
    return clients


def built(args) -> str | None:
    """The URL of the PostgreSQL schema `args.database` when an earlier run left it with `args.leads` leads besides the
    demo company's (2,000), else None."""
    if args.backend != "postgresql":
        return None
    url = f"{PG_URL}?options=-csearch_path%3D{args.database}&application_name={args.database}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not conn.execute(sa.text("SELECT to_regclass('lead')")).scalar_one():
                return None
            leads = conn.execute(sa.text("SELECT count(*) FROM lead")).scalar_one()
    finally:
        engine.dispose()
    return url if args.leads < leads <= args.leads + 10_000 else None


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(clients: list[Client], warm_until: float, until: float, used: Usage, args) -> None:
    samples = [s for c in clients for s in c.samples if s[1] >= warm_until]
    seconds = until - warm_until
    errors = [e for c in clients for e in c.errors]

    def ms(value: float) -> str:
        return f"{value * 1000:.1f} ms"

    print(f"\n{args.backend}, {args.leads:,} leads + the demo company; gunicorn {args.workers} sync workers, "
          f"{args.clients} client threads, {seconds:.0f} s measured after {args.seconds - seconds:.0f} s warm-up; "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min), {os.cpu_count()} CPUs\n")
    print("| kind | share | requests | req/s | errors | p50 | p95 | p99 | max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in (*KINDS, "all"):
        part = [s for s in samples if kind in (s[0], "all")]
        if not part:
            continue
        times = [s[2] for s in part]
        failed = sum(not s[3] for s in part)
        print(f"| {kind} | {len(part) / len(samples):.0%} | {len(part):,} | {len(part) / seconds:.0f} | {failed} "
              f"| {ms(percentile(times, 50))} | {ms(percentile(times, 95))} | {ms(percentile(times, 99))} "
              f"| {ms(max(times))} |")
    per = 1000 / max(1, len(samples))
    print(f"\nCPU a request over the measured seconds: {(used.clients + used.server + used.database) * per:.1f} ms "
          f"(clients {used.clients * per:.1f} ms, server {used.server * per:.1f} ms, database "
          f"{used.database * per:.1f} ms)")
    if errors:
        print(f"\n{len(errors)} errors in all (warm-up included); the first:")
        for error in errors[:5]:
            print(f"  {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads added to the demo company's")
    parser.add_argument("--seconds", type=float, default=60, help="how long the clients run, warm-up included")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--database", default="bench_http", help="the PostgreSQL schema (or SQLite file) to build")
    parser.add_argument("--reuse", action="store_true",
                        help="run on the PostgreSQL schema an earlier run built with as many leads, if there is one")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-http-"))
    kept = args.reuse and built(args)
    url = kept or database(args.backend, args.database, workdir)
    print(f"objectplatform HTTP benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.backend}, "
          f"demo company + {args.leads:,} leads, {os.cpu_count()} CPUs")
    try:
        settings = Settings.from_env(database_url=url, instance_path=workdir / "instance")
        platform = open_platform(settings)
        lead_ids = platform.schema["lead"].table.c.id
        if kept:
            migrate(platform.engine, platform.schema)  # what the code added since that run (tables, triggers)
            print("  the database of an earlier run with as many leads (--reuse)")
        else:
            migrate(platform.engine, platform.schema)
            started = time.perf_counter()
            load_demo(platform)
            print(f"  demo company loaded in {time.perf_counter() - started:.1f} s")
            reps = [u["id"] for u in platform.records.list("user", limit=100, count=False).items
                    if u["roles"] == ["sales_rep"]]
            pools = [p["id"] for p in platform.records.list("lead_pool", limit=100, count=False).items]
            campaigns = [c["id"] for c in platform.records.list("campaign", limit=100, count=False).items]
            started = time.perf_counter()
            fill_leads(platform, args.leads, reps, pools, campaigns)
            print(f"  {args.leads:,} leads written in {time.perf_counter() - started:.1f} s")
        with platform.engine.connect() as conn:  # the bench's leads are the newest; its writes add none
            first_lead = conn.execute(sa.select(sa.func.max(lead_ids))).scalar_one() - args.leads + 1
        clients = clients_of(platform, args.clients, first_lead)
        platform.close()
        env = {k: v for k, v in os.environ.items() if k != "OBJECTPLATFORM_REDIS_URL"}
        env |= {"OBJECTPLATFORM_DATABASE_URL": url, "OBJECTPLATFORM_INSTANCE_PATH": str(workdir / "instance"),
                "OBJECTPLATFORM_SECRET_KEY": secrets.token_urlsafe(32)}  # `serve` refuses to start without one
        process, port = start_server(env, args.workers)
        try:
            for client in clients:
                status, data = request(port, "POST", "/api/v1/auth/token",
                                       body={"username": client.username, "password": PASSWORD})
                if status != 200:
                    raise SystemExit(f"POST /api/v1/auth/token answered {status}: {data[:200]!r}")
                client.token = json.loads(data)["token"]
            start = time.perf_counter()
            warm_until, until = start + min(5.0, args.seconds / 6), start + args.seconds
            threads = [threading.Thread(target=run_client, args=(port, c, until)) for c in clients]
            for thread in threads:
                thread.start()
            time.sleep(max(0.0, warm_until - time.perf_counter()))
            before = usage(process, url)
            for thread in threads:
                thread.join()
            used = usage(process, url) - before
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(clients, warm_until, until, used, args)


if __name__ == "__main__":
    main()
