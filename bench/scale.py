"""Scale benchmark (not a test): the CRM's list pages, list totals and shipped reports on PostgreSQL at growing
numbers of leads, each figure beside its floor (the same rows by hand-written SQL) in the same run.

A database of its own per size (`--url` + `_100k`, `_1m`, `_10m`: created when missing and kept, so the data is
generated once): the leads (and accounts = N/10, opportunities = N/20, orders = N/10) are filled up to the size
with PostgreSQL's COPY (psycopg; the leads by two processes, the lead table's derived indexes dropped first and
rebuilt after when the step more than doubles the table), then VACUUM ANALYZE. The data: 20 sales managers with
10 reps each, 10 lead pools all reps belong to, 200 campaigns; leads created at random times over five years
(so a page's rows lie anywhere in the table), owners, pools, campaigns, sources, regions and industries skewed (a
few take most), statuses as a CRM's: a quarter waiting unowned in pools, the rest pending, followed up,
converted (5 %, into accounts and opportunities), invalid, voided; every block of 500,000 leads has the same
attributes but for its own ids, mobiles and emails (`lead_lines`).

Lists go through `records.list` with the caller's data scope and field mask, as the API's list does: each case's
first page and a page after a cursor 90 % deep into its matches, `--repeat` runs each: p50 / p95 wall-clock and
the CPU per page (`cpu_seconds`: this process's and its PostgreSQL server processes', the work itself on a shared
machine). The floor is the hand-written statement of the same page. Totals: the engine's page with its total
(exact up to `exact_total_limit` matches, beyond it the planner's estimate) beside a hand `count(*)` of at most
that many + 1 rows. Reports: bench/reports.py's hand SQL, run by turns with the engine's.

Usage: python bench/scale.py [--sizes 100000,1000000,10000000] [--url postgresql+psycopg://.../bench_scale]
                              [--repeat 20] [--report-repeat 3] [--only lists,reports|none]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from engine import cpu_seconds  # bench/engine.py (bench/ is first on sys.path)
from reports import HAND_SQL, STAGES, comparable  # bench/reports.py

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.storage.migrate import migrate

URL = os.environ.get("OBJECTPLATFORM_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test").rsplit(
    "/", 1)[0] + "/bench_scale"
MANAGERS, REPS_EACH, POOLS, CAMPAIGNS = 20, 10, 10, 200
SOURCES = ["referral", "promotion", "campaign", "telemarketing", "website", "expo", "business_card", "other"]
REGIONS = ["north", "east", "south", "central", "southwest", "northwest", "northeast"]
INDUSTRIES = ["finance", "manufacturing", "retail", "internet", "education", "healthcare", "government", "energy",
              "real_estate", "logistics", "other"]
STATUSES = ["unassigned", "pending", "following", "converted", "invalid", "voided"]
STATUS_SHARE = [0.25, 0.20, 0.25, 0.05, 0.15, 0.10]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"
START = np.datetime64("2021-01-01T00:00:00")
SPAN = 5 * 365 * 86400  # seconds: five years of leads
CHUNK = 500_000
WORKERS = 2  # processes writing the leads


def skewed(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """`n` draws of 0..k-1, the first values far more often (weights 1/sqrt(rank))."""
    weights = 1 / np.sqrt(np.arange(1, k + 1))
    return rng.choice(k, size=n, p=weights / weights.sum())


# ------------------------------------------------------------------------------------------------ data


def ensure_database(url: str) -> None:
    admin_url = sa.make_url(url).set(database="postgres")
    name = sa.make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        if c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def seed(platform) -> dict:
    """Users (managers and their reps), pools and campaigns, once; their ids."""
    records, schema = platform.records, platform.schema
    with platform.engine.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(schema["user"].table)).scalar_one()
    if not have:
        admin = records.create("user", {"username": "admin", "display_name": "管理员", "roles": ["admin"]},
                               system=True)["id"]
        managers = records.create_many("user", [
            {"username": f"mgr{m:02d}", "display_name": f"经理{m:02d}", "roles": ["sales_manager"]}
            for m in range(MANAGERS)]).created
        records.create_many("user", [
            {"username": f"rep{m:02d}{r}", "display_name": f"销售{m:02d}{r}", "roles": ["sales_rep"],
             "manager": managers[m]} for m in range(MANAGERS) for r in range(REPS_EACH)])
        with platform.engine.connect() as conn:
            reps = [str(i) for i in conn.execute(sa.select(schema["user"].table.c.id).where(
                schema["user"].table.c.username.like("rep%")).order_by("id")).scalars()]
        records.create_many("lead_pool", [{"name": f"线索池{p}", "admins": [admin], "members": reps}
                                          for p in range(POOLS)])
        records.create_many("campaign", [{"name": f"活动{c:03d}", "type": "expo"} for c in range(CAMPAIGNS)])
    ids = {}
    with platform.engine.connect() as conn:
        for obj in ("lead_pool", "campaign"):
            ids[obj] = conn.execute(sa.select(schema[obj].table.c.id).order_by("id")).scalars().all()
        users = schema["user"].table
        rows = conn.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    ids["admin"] = next(i for i, u in rows if u == "admin")
    ids["managers"] = [i for i, u in rows if u.startswith("mgr")]
    ids["reps"] = [i for i, u in rows if u.startswith("rep")]
    return ids


def count(conn, table: str) -> int:
    return conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()


def copy_rows(platform, table: str, columns: list[str], lines) -> None:
    """`lines` (COPY text, one per row) into `table` through psycopg's COPY."""
    raw = platform.engine.raw_connection()
    try:
        with raw.cursor() as cur:
            # no foreign-key trigger per row (the rows refer to what exists, by construction), for this transaction
            cur.execute("SET LOCAL session_replication_role = replica")
            with cur.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
                for chunk in lines:
                    copy.write(chunk)
        raw.commit()
    finally:
        raw.close()


def stamps(rng: np.random.Generator, n: int) -> np.ndarray:
    return (START + rng.integers(0, SPAN, size=n).astype("timedelta64[s]")).astype(str)


def lines_of(columns: list) -> bytes:
    """COPY text of rows given column by column (lists or numpy arrays of strings)."""
    columns = [c.tolist() if isinstance(c, np.ndarray) else c for c in columns]  # numpy scalars join slowly
    return ("\n".join("\t".join(row) for row in zip(*columns, strict=True)) + "\n").encode()


def fill_simple(platform, obj: str, start: int, stop: int, make) -> None:
    """Rows start+1..stop of an object (accounts, opportunities, orders), in chunks."""
    def chunks():
        for lo in range(start, stop, CHUNK):
            hi = min(lo + CHUNK, stop)
            rng = np.random.default_rng([len(obj), lo])
            columns, values = make(rng, np.arange(lo + 1, hi + 1))
            yield lines_of(values)
    columns, _ = make(np.random.default_rng(0), np.arange(1, 2))
    copy_rows(platform, obj, columns, chunks())


def grow(platform, ids: dict, size: int) -> float:
    """Leads (and accounts, opportunities, orders in proportion) up to `size`; seconds spent (0: already there)."""
    with platform.engine.connect() as conn:
        have = count(conn, "lead")
        n_acc, n_opp, n_ord = (count(conn, t) for t in ("account", "opportunity", "sales_order"))
    if have >= size:
        return 0.0
    started = time.perf_counter()
    reps, managers, pools, campaigns = (np.array(ids[k]) for k in ("reps", "managers", "lead_pool", "campaign"))
    stamp_cols = ["created_at", "updated_at", "version"]

    def with_stamps(rng, n, values):
        at = stamps(rng, n)
        return values + [at, at, ["1"] * n]

    def accounts(rng, ids_):
        n = len(ids_)
        return ["id", "name", "owner", "region", "industry", *stamp_cols], with_stamps(rng, n, [
            ids_.astype(str), [f"客户{i}" for i in ids_], reps[skewed(rng, n, len(reps))].astype(str),
            np.array(REGIONS)[skewed(rng, n, len(REGIONS))], np.array(INDUSTRIES)[skewed(rng, n, len(INDUSTRIES))]])

    def opportunities(rng, ids_):
        n = len(ids_)
        return ["id", "name", "account", "amount", "sales_process", "stage", "status", "owner", *stamp_cols], \
            with_stamps(rng, n, [ids_.astype(str), [f"商机{i}" for i in ids_],
                                 rng.integers(1, size // 10 + 1, n).astype(str),
                                 (rng.integers(1, 1001, n) * 1000).astype(str), ["standard_sales"] * n,
                                 np.array(STAGES)[rng.integers(0, len(STAGES), n)], ["open"] * n,
                                 reps[skewed(rng, n, len(reps))].astype(str)])

    def orders(rng, ids_):
        n = len(ids_)
        return ["id", "account", "total_amount", "paid_amount", "owner", *stamp_cols], with_stamps(rng, n, [
            ids_.astype(str), rng.integers(1, size // 10 + 1, n).astype(str),
            (rng.integers(1, 501, n) * 100).astype(str), (rng.integers(0, 501, n) * 100).astype(str),
            reps[skewed(rng, n, len(reps))].astype(str)])

    for obj, have_obj, want, make in (("account", n_acc, size // 10, accounts),
                                      ("opportunity", n_opp, size // 20, opportunities),
                                      ("sales_order", n_ord, size // 10, orders)):
        if have_obj < want:
            fill_simple(platform, obj, have_obj, want, make)
    table = platform.schema["lead"].table
    rebuild = size > 2 * have
    with platform.engine.begin() as conn:
        if rebuild:
            for index in table.indexes:
                conn.execute(sa.text(f'DROP INDEX IF EXISTS "{index.name}"'))
    ranges = [(lo, min(lo + per, size)) for per in [-(-(size - have) // WORKERS // CHUNK) * CHUNK]
              for lo in range(have, size, per)]
    people = {k: list(ids[k]) for k in ("reps", "lead_pool", "campaign")}
    url = platform.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with ProcessPoolExecutor(len(ranges)) as pool:  # the Python that writes the rows is the slow part
        for done in pool.map(copy_leads, [url] * len(ranges), ranges, [size] * len(ranges), [people] * len(ranges)):
            print(f"    leads up to {done:,}", flush=True)
    if rebuild:
        with platform.engine.begin() as conn:
            conn.execute(sa.text("SET maintenance_work_mem = '1GB'"))
            for index in table.indexes:
                index.create(conn)
    with platform.engine.begin() as conn:  # ids as the engine's inserts would continue them
        for obj in ("lead", "account", "opportunity", "sales_order"):
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('\"{obj}\"', 'id'), "
                                 f"(SELECT max(id) FROM \"{obj}\"))"))
    with platform.engine.begin() as conn:  # written past the records service: the summaries it keeps filled again
        for summary in (s for summaries in platform.schema.summaries.values() for s in summaries):
            summary.fill(conn, platform.schema[summary.object].table)
    with platform.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    return time.perf_counter() - started


LEAD_COLUMNS = ["id", "mobile", "email", "name", "company", "phone", "source", "campaign", "status", "pool", "industry",
                "region", "intention", "owner", "assigned_at", "last_followed_at", "converted_at", "converted_account",
                "converted_opportunity", "created_at", "updated_at", "version"]
_BLOCKS: dict[int, tuple[list[bool], list[str]]] = {}


def lead_block(size: int, people: dict) -> tuple[list[bool], list[str]]:
    """CHUNK leads' attributes of a data set of `size` leads (the distributions of the module docstring), made
    once: whether each has an email, and the COPY text of its columns after id, mobile and email."""
    if size in _BLOCKS:
        return _BLOCKS[size]
    reps, pools, campaigns = (np.array(people[k]) for k in ("reps", "lead_pool", "campaign"))
    n, rng = CHUNK, np.random.default_rng(size)
    status = np.array(STATUSES)[rng.choice(len(STATUSES), size=n, p=STATUS_SHARE)]
    unowned = status == "unassigned"
    converted = status == "converted"
    followed = np.isin(status, ["following", "converted"])
    owner = np.where(unowned, "\\N", reps[skewed(rng, n, len(reps))].astype(str))
    in_pool = unowned | (rng.random(n) < 0.5)
    pool = np.where(in_pool, pools[skewed(rng, n, len(pools))].astype(str), "\\N")
    campaign = np.where(rng.random(n) < 0.7, campaigns[skewed(rng, n, len(campaigns))].astype(str), "\\N")
    created = START + rng.integers(0, SPAN, size=n).astype("timedelta64[s]")
    later = (created + rng.integers(3600, 30 * 86400, size=n).astype("timedelta64[s]")).astype(str)
    created = created.astype(str)
    names = [SURNAMES[a] + GIVEN[b] + GIVEN[c] for a, b, c in rng.integers(0, 20, size=(n, 3)).tolist()]
    rest = lines_of([
        names, [f"公司{k}" for k in rng.integers(0, max(size // 5, 1), n).tolist()],
        np.where(rng.random(n) < 0.4, np.char.add("010", rng.integers(10_000_000, 99_999_999, n).astype(str)),
                 "\\N"),
        np.array(SOURCES)[skewed(rng, n, len(SOURCES))], campaign, status, pool,
        np.array(INDUSTRIES)[skewed(rng, n, len(INDUSTRIES))], np.array(REGIONS)[skewed(rng, n, len(REGIONS))],
        np.array(["high", "medium", "low", "\\N"])[rng.integers(0, 4, n)], owner,
        np.where(unowned, "\\N", later), np.where(followed, later, "\\N"), np.where(converted, later, "\\N"),
        np.where(converted, rng.integers(1, size // 10 + 1, n).astype(str), "\\N"),
        np.where(converted, rng.integers(1, size // 20 + 1, n).astype(str), "\\N"),
        created, created, ["1"] * n]).decode().splitlines()
    _BLOCKS[size] = ((rng.random(n) < 0.5).tolist(), rest)
    return _BLOCKS[size]


def lead_lines(lo: int, hi: int, size: int, people: dict) -> bytes:
    """Leads lo+1..hi as COPY text: each its own id, mobile and email, the rest of a block of CHUNK leads repeated
    (writing every row anew in Python took an hour for 10,000,000 leads on the shared machine)."""
    emails, rest = lead_block(size, people)
    return "".join(f"{i}\t1{30_000_000_000 + i}\t{f'l{i}@example.com' if emails[(i - 1) % CHUNK] else chr(92) + 'N'}"
                   f"\t{rest[(i - 1) % CHUNK]}\n" for i in range(lo + 1, hi + 1)).encode()


def copy_leads(url: str, span: tuple[int, int], size: int, people: dict) -> int:
    """Leads span[0]+1..span[1] through one COPY on a connection of its own (a worker process); the last id."""
    import psycopg
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # as copy_rows
        with cur.copy(f'COPY lead ({", ".join(LEAD_COLUMNS)}) FROM STDIN') as copy:
            for lo in range(span[0], span[1], CHUNK):
                copy.write(lead_lines(lo, min(lo + CHUNK, span[1]), size, people))
    return span[1]


# ------------------------------------------------------------------------------------------------ lists


@dataclass
class Case:
    label: str
    user: str  # admin | rep | manager
    filters: dict
    hand_where: str  # the hand SQL's condition (filters and scope), :me and :pools bound
    sort: str | None = None  # None: the list view's (-created_at)


def cases(ids: dict) -> list[Case]:
    pool, campaign, owner = ids["lead_pool"][0], ids["campaign"][0], ids["reps"][0]
    scope_rep = "(owner = :me OR (owner IS NULL AND pool IN :pools))"
    return [
        Case("all leads (admin)", "admin", {}, "true"),
        Case("status = following", "admin", {"status": "following"}, "status = 'following'"),
        Case("status = following, oldest first", "admin", {"status": "following"}, "status = 'following'",
             sort="created_at"),
        Case("pool's waiting leads (pool, status = unassigned)", "admin", {"pool": pool, "status": "unassigned"},
             f"pool = {pool} AND status = 'unassigned'"),
        Case("campaign", "admin", {"campaign": campaign}, f"campaign = {campaign}"),
        Case("region = northeast (no index of its own)", "admin", {"region": "northeast"}, "region = 'northeast'"),
        Case("owner and source = expo", "admin", {"owner": owner, "source": "expo"},
             f"owner = {owner} AND source = 'expo'"),
        Case("rep: every lead they may see (own + pools)", "rep", {}, scope_rep),
        Case("rep: my pending leads", "rep", {"owner": ":me", "status": "pending"},
             "owner = :me AND status = 'pending'"),
        Case("rep: a pool's waiting leads", "rep", {"pool": pool, "status": "unassigned"},
             f"pool = {pool} AND status = 'unassigned' AND {scope_rep}"),
        Case("manager: the team's leads (subordinates)", "manager", {}, "owner IN :team"),
    ]


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def sample(engine: sa.Engine, fn, repeat: int) -> tuple[float, float, float]:
    """p50 and p95 wall-clock seconds of `repeat` calls of `fn` after a warm-up, and the CPU seconds per call
    (`cpu_seconds`: this process's and its PostgreSQL server processes'), the work itself on a busy machine."""
    fn()
    times = []
    cpu = cpu_seconds(engine)
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return (*percentiles(times), (cpu_seconds(engine) - cpu) / repeat)


def cell(t: tuple[float, float, float]) -> str:
    """p50 / p95 wall-clock ms (CPU ms per call)."""
    return f"{t[0] * 1000:.2f} / {t[1] * 1000:.2f} ms (CPU {t[2] * 1000:.2f})"


def bench_lists(platform, ids: dict, repeat: int) -> list[dict]:
    records, table = platform.records, platform.schema["lead"].table
    rep, manager = ids["reps"][0], ids["managers"][0]
    access = {"admin": access_for(platform, str(ids["admin"])), "rep": access_for(platform, str(rep)),
              "manager": access_for(platform, str(manager))}
    team = sorted(access["manager"].visible_owners["lead"])
    binds = {"me": rep, "pools": tuple(ids["lead_pool"]), "team": tuple(team)}
    limit = platform.settings.exact_total_limit
    out = []
    with platform.engine.connect() as conn:
        for case in cases(ids):
            who = access[case.user]
            filters = {k: str(rep) if v == ":me" else v for k, v in case.filters.items()}
            ascending = case.sort == "created_at"
            order = "created_at, id" if ascending else "created_at DESC, id DESC"
            hand = sa.text(f"SELECT * FROM lead WHERE {case.hand_where} ORDER BY {order} LIMIT 51").bindparams(
                *(sa.bindparam(k, expanding=True) for k in ("pools", "team") if f":{k}" in case.hand_where))
            hand_binds = {k: v for k, v in binds.items() if f":{k}" in case.hand_where}
            matching = conn.execute(sa.text(f"SELECT count(*) FROM lead WHERE {case.hand_where}").bindparams(
                *(sa.bindparam(k, expanding=True) for k in ("pools", "team") if f":{k}" in case.hand_where)),
                hand_binds).scalar_one()
            # the row 90 % deep: created_at is uniform over the five years, whatever else a lead has
            deep_at = (START + np.timedelta64(int(SPAN * (0.9 if ascending else 0.1)), "s")).item()
            at = conn.execute(sa.text(f"SELECT created_at, id FROM lead WHERE {case.hand_where} AND created_at "
                                      f"{'>=' if ascending else '<='} :at ORDER BY {order} LIMIT 1").bindparams(
                *(sa.bindparam(k, expanding=True) for k in ("pools", "team") if f":{k}" in case.hand_where)),
                hand_binds | {"at": deep_at}).first()
            # the engine's cursor after the row at that depth: a one-row page ending on it
            key = sa.tuple_(table.c.created_at, table.c.id)
            upto = key >= tuple(at) if ascending else key <= tuple(at)
            deep_cursor = records.list("lead", filters=filters, sort=case.sort, limit=1, count=False, seen_by=who,
                                       scope=who, where=upto, conn=conn).next_cursor
            after = "(created_at, id) > (:c, :i)" if ascending else "(created_at, id) < (:c, :i)"
            hand_deep = sa.text(f"SELECT * FROM lead WHERE {case.hand_where} AND {after} ORDER BY {order} "
                                "LIMIT 51").bindparams(
                *(sa.bindparam(k, expanding=True) for k in ("pools", "team") if f":{k}" in case.hand_where))

            def page(cursor=None, count=False, f=filters, s=case.sort, w=who):  # as the API's list asks for it
                return records.list("lead", filters=f, sort=s, cursor=cursor, seen_by=w, scope=w, count=count,
                                    conn=conn)

            first = sample(platform.engine, page, repeat)
            deep = sample(platform.engine, lambda c=deep_cursor: page(c), repeat)
            assert page(deep_cursor).items
            hand_first = sample(platform.engine, lambda h=hand, b=hand_binds: conn.execute(h, b).all(), repeat)
            hand_deep_t = sample(platform.engine, lambda h=hand_deep, b=hand_binds, a=at: conn.execute(
                h, b | {"c": a[0], "i": a[1]}).all(), repeat)
            counted = page(count=True)
            with_total = sample(platform.engine, lambda: page(count=True), max(3, repeat // 5))
            hand_count = sample(platform.engine, lambda w=case.hand_where, b=hand_binds: conn.execute(sa.text(
                f"SELECT count(*) FROM (SELECT 1 FROM lead WHERE {w} LIMIT {limit + 1}) x").bindparams(
                *(sa.bindparam(k, expanding=True) for k in ("pools", "team") if f":{k}" in w)), b).scalar_one(),
                max(3, repeat // 5))
            row = {"case": case.label, "matching": matching, "first": first, "deep": deep, "hand_first": hand_first,
                   "hand_deep": hand_deep_t, "total": counted.total, "exact": counted.total_is_exact,
                   "with_total": with_total, "hand_count": hand_count}
            print(f"    {case.label}: {matching:,} match; page 1 {cell(first)} (hand {cell(hand_first)}), deep "
                  f"{cell(deep)} (hand {cell(hand_deep_t)}); total {counted.total:,} exact={counted.total_is_exact} "
                  f"with it {cell(with_total)} (hand count {cell(hand_count)})", flush=True)
            out.append(row)
    return out


# ------------------------------------------------------------------------------------------------ reports


def bench_reports(platform, repeat: int) -> list[dict]:
    """Each report through the engine (rows only) and its hand SQL, run by turns (the machine's load drifts) after
    a warm-up of each: the median of `repeat` runs of each; the rows checked equal."""
    out = []
    for name, sql in HAND_SQL.items():
        report = replace(definition(platform.metadata, name), totals=False)
        hand_times, engine_times = [], []
        with platform.engine.connect() as conn:
            def hand(s=sql, c=conn):
                return c.execute(sa.text(s)).all()

            def engine(r=report):
                return run_report(platform, r, access=None)

            hand_rows, result = hand(), engine()
            for _ in range(repeat):
                for fn, times in ((hand, hand_times), (engine, engine_times)):
                    start = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - start)
        ours, theirs = comparable(tuple(r.values()) for r in result.rows), comparable(hand_rows)
        if name == "sales_funnel":  # the engine lists every stage in the process's order
            ours, theirs = sorted(r[:3] for r in ours), sorted(theirs)
        assert ours == theirs, (name, ours[:3], theirs[:3])
        engine_s, hand_s = statistics.median(engine_times), statistics.median(hand_times)
        print(f"    {name}: engine {engine_s:.3f} s, hand SQL {hand_s:.3f} s, {engine_s / hand_s:.2f}x", flush=True)
        out.append({"report": name, "engine": engine_s, "hand": hand_s})
    return out


# ------------------------------------------------------------------------------------------------ main


def label(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1000}k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--url", default=URL, help="each size has its database: this name + _100k, _1m, ...")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--report-repeat", type=int, default=3)
    parser.add_argument("--only", default="lists,reports", help="lists, reports, or none (only fill)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"objectplatform scale benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"sizes {', '.join(f'{s:,}' for s in sizes)}")
    results = []
    for size in sizes:
        url = f"{args.url}_{label(size)}?application_name=bench_scale_{label(size)}"
        ensure_database(url)
        platform = open_platform(Settings.from_env({}, database_url=url,
                                                   instance_path=Path("/tmp") / "objectplatform-bench-scale"))
        migrate(platform.engine, platform.schema)
        ids = seed(platform)
        print(f"  {size:,} leads ({sa.make_url(url).database})")
        took = grow(platform, ids, size)
        if took:
            print(f"    filled with COPY, indexes and VACUUM ANALYZE in {took:.0f} s")
        with platform.engine.connect() as conn:
            n = count(conn, "lead")
        lists = bench_lists(platform, ids, args.repeat) if "lists" in args.only else []
        reports = bench_reports(platform, args.report_repeat) if "reports" in args.only else []
        results.append((n, lists, reports))
        platform.close()

    print("\nWall-clock p50 / p95 ms of a page (CPU ms per page: this process's and its PostgreSQL server's)\n")
    print("| leads | list | matches | page 1 | hand SQL | page 90 % deep (cursor) | hand SQL | total | page with total "
          "| hand count(*) of ≤ limit + 1 |\n|---|---|---|---|---|---|---|---|---|---|")
    for n, lists, _ in results:
        for r in lists:
            total = f"{r['total']:,}" + ("" if r["exact"] else " (estimate)")
            print(f"| {n:,} | {r['case']} | {r['matching']:,} | {cell(r['first'])} | {cell(r['hand_first'])} | "
                  f"{cell(r['deep'])} | {cell(r['hand_deep'])} | {total} | {cell(r['with_total'])} | "
                  f"{cell(r['hand_count'])} |")
    print("\n| leads | report | engine | hand SQL | ratio |\n|---|---|---|---|---|")
    for n, _, reports in results:
        for r in reports:
            print(f"| {n:,} | {r['report']} | {r['engine']:.3f} s | {r['hand']:.3f} s | "
                  f"{r['engine'] / r['hand']:.2f}x |")


if __name__ == "__main__":
    main()
