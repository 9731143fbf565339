"""What knowing the caller costs a request (not a test), with each process keeping a user's access while the access
stamp stays the same (storage/access_stamp.py), against the floor of the token's one SELECT written by hand.

On the demo company (`objectplatform demo`'s data) on each database, for the demo's sales rep and sales manager:

- signed in, kept:   `Auth.signed_in(token)` as a request after the first calls it: the token and the stamp read in
                     one statement, the user's access kept from the first;
- signed in, made:   the same with the access made afresh (the user read, `access_for`), what every request paid
                     before the stamp, and what the first request after a change to users, departments or pools pays;
- floor:             the token's SELECT by its unique index, by hand on a connection of the same engine;

each timed by the CPU it costs (this process's and, on PostgreSQL, the database server's for this process's
connections: bench/engine.py's cpu_seconds), then a lead read and a lead list through the API (Flask's test client,
no network) with their SQL statements per request.

Usage: python bench/access.py [--backends sqlite,postgresql] [--repeat 300] [--reuse]

`--reuse` keeps the demo databases between runs (a SQLite file under the system's temporary folder, the PostgreSQL
schema bench_access of OBJECTPLATFORM_BENCH_PG_URL's database): loading the demo takes a minute or two.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime

import sqlalchemy as sa
from engine import cpu_seconds  # bench/engine.py (this folder is first on sys.path)
from pages import prepared  # bench/pages.py

from objectplatform.runtime import open_platform
from objectplatform.runtime.auth import auth_service, token_hash
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.storage.engine import reading
from objectplatform.web.app import create_app

NAME = "bench_access"
PASSWORD = "demo1234"  # the demo users'
USERS = ("sunwei", "zhaojianguo")  # the demo's sales rep and sales manager
LEADS = "/api/v1/objects/lead/records"


def cpu_per_call(engine: sa.Engine, call, repeat: int) -> float:
    """The CPU seconds one `call()` costs, the median of five rounds of `repeat` calls."""
    call()
    rounds = []
    for _ in range(5):
        used = cpu_seconds(engine)
        for _ in range(repeat):
            call()
        rounds.append((cpu_seconds(engine) - used) / repeat)
    return sorted(rounds)[2]


def bench(backend: str, repeat: int, reuse: bool) -> None:
    platform = open_platform(prepared(backend, reuse, NAME))
    try:
        app = create_app(platform)
        client = app.test_client()
        auth = auth_service(platform)
        tokens = platform.schema.tokens
        statements: list[str] = []
        sa.event.listen(platform.engine, "before_cursor_execute", lambda c, cursor, sql, *rest: statements.append(sql))
        print(f"\n{backend}, demo company; {repeat} calls a round, the median of 5 rounds; load average "
              f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min), {os.cpu_count()} CPUs\n")
        print("| user | signed in, kept | signed in, made | floor: the token SELECT | kept / floor | made / kept |")
        print("|---|---|---|---|---|---|")
        requests = []
        for username in USERS:
            response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
            token = response.json["token"]
            user_id = response.json["user"]["id"]
            hashed = token_hash(token)

            def made(user_id=user_id) -> None:
                with reading(platform.engine) as conn:
                    users = platform.schema["user"].table
                    conn.execute(sa.select(users).where(users.c.id == int(user_id))).first()
                    access_for(platform, user_id, conn)

            def floor(hashed=hashed) -> None:
                with reading(platform.engine) as conn:
                    conn.execute(sa.select(tokens.c.user_id).where(tokens.c.token_hash == hashed)).first()

            kept = cpu_per_call(platform.engine, lambda token=token: auth.signed_in(token), repeat)
            fresh = kept + cpu_per_call(platform.engine, made, repeat)
            bare = cpu_per_call(platform.engine, floor, repeat)
            print(f"| {username} | {kept * 1000:.2f} ms | {fresh * 1000:.2f} ms | {bare * 1000:.2f} ms "
                  f"| {kept / bare:.1f}× | {fresh / kept:.1f}× |")
            headers = {"Authorization": f"Bearer {token}"}
            lead = client.get(f"{LEADS}?sort=-created_at&limit=1", headers=headers).json["items"][0]["id"]
            for kind, path in (("read", f"{LEADS}/{lead}"), ("list", f"{LEADS}?sort=-created_at&limit=50")):
                statements.clear()
                assert client.get(path, headers=headers).status_code == 200
                count = len(statements)
                cpu = cpu_per_call(platform.engine, lambda path=path, headers=headers: client.get(
                    path, headers=headers), max(1, repeat // 10))
                requests.append((username, kind, count, cpu))
        print("\n| user | API request | statements | CPU (app + database) |")
        print("|---|---|---|---|")
        for username, kind, count, cpu in requests:
            print(f"| {username} | lead {kind} | {count} | {cpu * 1000:.2f} ms |")
    finally:
        platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=300, help="calls per round")
    parser.add_argument("--reuse", action="store_true", help="the demo databases of an earlier run, if kept")
    args = parser.parse_args()
    print(f"objectplatform signed-in cost, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs")
    for backend in args.backends.split(","):
        bench(backend, args.repeat, args.reuse)


if __name__ == "__main__":
    main()
