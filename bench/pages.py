"""Page times (not a test): every page a demo user reaches, timed on the server, against issue 18's 300 ms budget.

Loads the demo company (`objectplatform demo`'s data) on each database, signs in to the pages as one user of each
demo role and walks the pages their menu and pages link to, in process (Flask's test client, no network): home,
then each menu entry (lists, my leads, pool board, inbox, reports, calendar, ...), then what those link to (a
record of each object, its new and edit forms, each report, a visit's day, ...), and so on to `--depth` links from
home. A URL counts once per pattern (its path with numbers as N and its query's names), so a list's fifty records
are one record page. Links to files (CSV, iCalendar, YAML exports, uploads), sign-out and language switches are
left out; a redirect is timed, not followed.

Each page is timed by the wall clock and by the CPU it costs: this process's and, on PostgreSQL, the database
server's for this process's connections (engine.cpu_seconds), so on a machine others load the CPU column is the
page's own work; a page over the budget is timed again and its faster run kept (the first run of a page also builds
per-process caches). Prints per database the slowest pages (CPU), the SQL statements each sent, every page
over the budget, and each user's slowest home, inbox, bell, list, record and report page.

Usage: python bench/pages.py [--backends sqlite,postgresql] [--depth 3] [--slowest 15] [--reuse] [--every-user]
    [--name bench_pages]

`--reuse` keeps the demo databases between runs (a SQLite file under the system's temporary folder, the PostgreSQL
schema `--name` of OBJECTPLATFORM_BENCH_PG_URL's database): loading the demo takes minutes. `--every-user` walks
the pages of each shipped demo user (a rep's home, lists and inbox differ from another rep's), not one per role,
and prints each user's slowest page.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from engine import PG_URL, cpu_seconds

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.storage.migrate import migrate
from objectplatform.web.app import create_app
from objectplatform_crm.demo import demo_users, load_demo

BUDGET = 0.300  # seconds of server time a page may take (issue 18)
NAME = "bench_pages"
LINK = re.compile(r'href="(/[^"#]*)"')
SKIPPED = re.compile(r"^/(static|api|files|logout)\b|\.(csv|ics|yaml|xlsx|png|jpe?g|svg)\b|[?&](lang|export)=")


KINDS = {  # the pages issue 18 names, by path
    "home": re.compile(r"/(\?|$)"), "inbox": re.compile(r"/todos\b"), "bell": re.compile(r"/notifications\b"),
    "lists": re.compile(r"/o/\w+/?(\?|$)"), "records": re.compile(r"/o/\w+/\d+(\?|$)"),
    "reports": re.compile(r"/reports/\w+(\?|$)"),
}


@dataclass
class Timed:
    user: str
    path: str
    status: int
    wall: float
    cpu: float
    statements: int


def kept(name: str) -> Path:
    """The folder of a kept demo database `name`: its SQLite file and each backend's instance folder."""
    return Path(tempfile.gettempdir()) / f"objectplatform-{name.replace('_', '-')}"


def database_url(backend: str, name: str = NAME) -> str:
    if backend == "sqlite":
        return f"sqlite:///{kept(name) / f'{name}.db'}"
    return f"{PG_URL}?options=-csearch_path%3D{name}&application_name={name}"


def prepared(backend: str, reuse: bool, name: str = NAME) -> Settings:
    """Settings of a migrated database holding the demo company (the SQLite file or PostgreSQL schema `name`): the one
    kept by an earlier run with `reuse`, else a new one."""
    url = database_url(backend, name)
    settings = Settings.from_env(database_url=url, instance_path=kept(name) / f"{backend}-instance")
    if reuse and _has_demo(url):
        print(f"  {backend}: the demo company of an earlier run (--reuse)")
        platform = open_platform(settings)
        try:
            migrate(platform.engine, platform.schema)  # what the code added since that run (tables, triggers)
        finally:
            platform.close()
        return settings
    kept(name).mkdir(exist_ok=True)
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{kept(name) / name}.db{suffix}").unlink(missing_ok=True)
    else:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        admin.dispose()
    platform = open_platform(settings)
    try:
        migrate(platform.engine, platform.schema)
        started = time.perf_counter()
        load_demo(platform)
        print(f"  {backend}: demo company loaded in {time.perf_counter() - started:.0f} s")
    finally:
        platform.close()
    return settings


def _has_demo(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(sa.inspect(conn).has_table("user")
                        and conn.execute(sa.text('SELECT count(*) FROM "user"')).scalar_one() > 1)
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def demo_accounts(platform, every_user: bool = False) -> list[tuple[str, str, str]]:
    """(username, password, roles) of each active demo user, or of the first of each set of roles."""
    passwords = {u.username: u.password for u in demo_users()}
    found: dict[object, tuple[str, str, str]] = {}
    for user in platform.records.list("user", limit=500, count=False, sort="id").items:
        roles = tuple(sorted(user["roles"] or ()))
        key = user["username"] if every_user else roles
        if user["active"] and user["username"] in passwords and key not in found:
            found[key] = (user["username"], passwords[user["username"]], ",".join(roles))
    return list(found.values())


def pattern(path: str) -> str:
    """A URL as the page it shows: numbers as N, the query by its parameters' names."""
    route, _, query = path.partition("?")
    names = sorted({part.partition("=")[0] for part in query.split("&") if part})
    return re.sub(r"\d+", "N", route) + ("?" + "&".join(names) if names else "")


def walk(platform, app, username: str, password: str, depth: int) -> list[Timed]:
    """Sign in as the user and time every page (one per pattern) within `depth` links from home."""
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["csrf_token"]
    signed = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf})
    if signed.status_code != 302:
        raise SystemExit(f"{username} could not sign in: {signed.status_code}")
    sent = [0]

    def count(*_args):
        sent[0] += 1

    sa.event.listen(platform.engine, "before_cursor_execute", count)
    timed: list[Timed] = []
    queue, seen = deque([("/", 0)]), {pattern("/")}
    try:
        while queue:
            path, level = queue.popleft()
            page = time_page(platform, client, username, path, sent)
            if page.wall > BUDGET or page.cpu > BUDGET:
                again = time_page(platform, client, username, path, sent)
                page = min(page, again, key=lambda t: t.cpu)
            timed.append(page)
            if level == depth or page.status != 200:
                continue
            response = client.get(path)
            if not response.mimetype.startswith("text/html"):
                continue
            for link in LINK.findall(response.get_data(as_text=True)):
                link = link.replace("&amp;", "&")
                if not SKIPPED.search(link) and pattern(link) not in seen:
                    seen.add(pattern(link))
                    queue.append((link, level + 1))
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", count)
    return timed


def time_page(platform, client, username: str, path: str, sent: list[int]) -> Timed:
    sent[0] = 0
    cpu, wall = cpu_seconds(platform.engine), time.perf_counter()
    response = client.get(path)
    wall, cpu = time.perf_counter() - wall, cpu_seconds(platform.engine) - cpu
    return Timed(username, path, response.status_code, wall, cpu, sent[0])


def bench(backend: str, depth: int, slowest: int, reuse: bool, every_user: bool = False, name: str = NAME) -> None:
    settings = prepared(backend, reuse, name)
    platform = open_platform(settings)
    try:
        app = create_app(platform)
        pages: list[Timed] = []
        for username, password, roles in demo_accounts(platform, every_user):
            started = time.perf_counter()
            walked = walk(platform, app, username, password, depth)
            pages += walked
            worst = max(walked, key=lambda p: p.cpu)
            print(f"  {backend}: {username} ({roles}): {len(walked)} pages in {time.perf_counter() - started:.0f} s, "
                  f"slowest {worst.cpu * 1000:.0f} ms CPU ({worst.path})", flush=True)
    finally:
        platform.close()
    failed = [p for p in pages if p.status >= 500]
    over = [p for p in pages if p.cpu > BUDGET]
    print(f"\n{backend}: {len(pages)} pages, {len(over)} over {BUDGET * 1000:.0f} ms of CPU, {len(failed)} failed; "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min), {os.cpu_count()} CPUs\n")
    print("| user | page | status | CPU (app + database) | wall | statements |")
    print("|---|---|---|---|---|---|")
    for page in sorted(pages, key=lambda p: -p.cpu)[:max(slowest, len(over))]:
        print(f"| {page.user} | {page.path} | {page.status} | {page.cpu * 1000:.0f} ms | {page.wall * 1000:.0f} ms "
              f"| {page.statements} |")
    for page in failed:
        print(f"  failed: {page.user} {page.path} {page.status}")
    print(f"\n{backend}: each user's slowest page of each kind, ms of CPU (app + database)\n")
    print("| user | " + " | ".join(KINDS) + " |")
    print("|---" * (len(KINDS) + 1) + "|")
    for user in dict.fromkeys(p.user for p in pages):
        worst = {kind: max((p.cpu for p in pages if p.user == user and KINDS[kind].match(p.path)), default=None)
                 for kind in KINDS}
        print(f"| {user} | " + " | ".join("-" if t is None else f"{t * 1000:.0f}" for t in worst.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--depth", type=int, default=3, help="links from home")
    parser.add_argument("--slowest", type=int, default=15, help="pages listed per database")
    parser.add_argument("--reuse", action="store_true", help="the demo databases of an earlier run, if kept")
    parser.add_argument("--every-user", action="store_true", help="each demo user, not one per role")
    parser.add_argument("--name", default=NAME, help="the kept databases' name (SQLite file, PostgreSQL schema)")
    args = parser.parse_args()
    print(f"objectplatform page times, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
          f"budget {BUDGET * 1000:.0f} ms")
    for backend in args.backends.split(","):
        bench(backend, args.depth, args.slowest, args.reuse, args.every_user, args.name)


if __name__ == "__main__":
    main()
