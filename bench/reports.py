"""Report benchmarks (not tests): each shipped report run by the engine beside the fastest hand-written SQL
giving the same rows, in the same process on the same database (../shared/PERFORMANCE.md: the floor is the
distinct-pairs shape, not COUNT(DISTINCT) over a fanning-out join).

Data, per database: 1,000,000 leads (5 % converted, into random accounts and opportunities), 100,000
accounts, 50,000 opportunities (open, in the stages of the standard sales process), 100,000 orders, 50
campaigns, 50 owners; written with Core inserts, then VACUUM ANALYZE / ANALYZE. Each timing is the median of
three runs after a warm-up; the engine's rows are checked equal to the hand SQL's.

Usage: python bench/reports.py [--backends sqlite,postgresql] [--leads 1000000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from engine import database, insert_rows, settle, timed

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.storage.migrate import migrate

STATUSES = ["unassigned", "pending", "following"]
STAGES = ["intent", "initiation", "proposal", "negotiation", "closing"]
BATCH = 100_000

HAND_SQL = {
    "campaign_leads_to_opportunities": """
with lc as (select campaign, count(*) leads from lead group by campaign),
ac as (select campaign, count(*) accounts from (select distinct campaign, converted_account from lead
       where converted_account is not null) x group by campaign),
oc as (select x.campaign, count(*) opps, sum(o.amount) amt from (select distinct campaign, converted_opportunity
       from lead where converted_opportunity is not null) x join opportunity o on o.id = x.converted_opportunity
       group by x.campaign)
select c.name, lc.leads, coalesce(ac.accounts, 0), coalesce(oc.opps, 0), coalesce(oc.amt, 0)
from lc left join campaign c on c.id = lc.campaign left join ac on ac.campaign is not distinct from lc.campaign
left join oc on oc.campaign is not distinct from lc.campaign order by c.name""",
    "campaign_leads_to_orders": """
with lc as (select campaign, count(*) leads from lead group by campaign),
ca as (select distinct campaign, converted_account from lead where converted_account is not null),
ac as (select campaign, count(*) accounts from ca group by campaign),
sc as (select ca.campaign, count(*) orders, sum(s.total_amount) amt, sum(s.paid_amount) paid from ca
       join sales_order s on s.account = ca.converted_account group by ca.campaign)
select c.name, lc.leads, coalesce(ac.accounts, 0), coalesce(sc.orders, 0), coalesce(sc.amt, 0),
       coalesce(sc.paid, 0)
from lc left join campaign c on c.id = lc.campaign left join ac on ac.campaign is not distinct from lc.campaign
left join sc on sc.campaign is not distinct from lc.campaign order by c.name""",
    "leads_by_owner_status": """
with g as (select owner, status, count(*) n from lead group by owner, status)
select u.display_name, g.status, g.n from g left join "user" u on u.id = g.owner
order by u.display_name, case g.status when 'unassigned' then 0 when 'pending' then 1 when 'following' then 2
when 'converted' then 3 when 'invalid' then 4 when 'voided' then 5 else 6 end""",
    "sales_funnel": """
select stage, count(*), sum(amount) from opportunity where sales_process = 'standard_sales' and status = 'open'
group by stage""",
}


def fill(platform, n_leads: int) -> None:
    """The data set of the module docstring, written with Core inserts in batches."""
    rnd = random.Random(7)
    now = datetime(2026, 1, 1)
    stamp = {"created_at": now, "updated_at": now, "version": 1}

    def insert(obj: str, rows: list[dict]) -> None:
        insert_rows(platform, obj, rows, BATCH)

    insert("user", [{"id": i, "username": f"rep{i}", "display_name": f"销售{i:02d}", "active": True, **stamp}
                    for i in range(1, 51)])
    insert("campaign", [{"id": i, "name": f"活动{i:02d}", **stamp} for i in range(1, 51)])
    insert("account", [{"id": i, "name": f"客户{i}", "owner": i % 50 + 1, **stamp} for i in range(1, 100_001)])
    insert("opportunity", [{"id": i, "name": f"商机{i}", "account": rnd.randint(1, 100_000),
                            "amount": Decimal(rnd.randint(1, 1000) * 1000), "sales_process": "standard_sales",
                            "stage": rnd.choice(STAGES), "status": "open", "owner": i % 50 + 1, **stamp}
                           for i in range(1, 50_001)])
    insert("sales_order", [{"id": i, "account": rnd.randint(1, 100_000),
                            "total_amount": Decimal(rnd.randint(1, 500) * 100),
                            "paid_amount": Decimal(rnd.randint(0, 500) * 100), "owner": i % 50 + 1, **stamp}
                           for i in range(1, 100_001)])
    done = 0
    while done < n_leads:
        rows = []
        for i in range(done + 1, min(done + BATCH, n_leads) + 1):
            converted = rnd.random() < 0.05
            rows.append({"id": i, "name": f"线索{i}", "status": "converted" if converted else rnd.choice(STATUSES),
                         "owner": rnd.randint(1, 50), "campaign": rnd.randint(1, 50),
                         "converted_account": rnd.randint(1, 100_000) if converted else None,
                         "converted_opportunity": rnd.randint(1, 50_000) if converted else None,
                         **stamp, "created_at": now + timedelta(minutes=i)})
        insert("lead", rows)
        done += len(rows)
        print(f"  filled {done:,} leads", end="\r", flush=True)
    print()
    settle(platform.engine)


def comparable(rows) -> list[tuple]:
    return [tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in rows]


def bench(backend: str, workdir: Path, n_leads: int) -> list[tuple]:
    url = database(backend, "bench_reports", workdir)
    platform = open_platform(Settings.from_env(database_url=url, instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    fill(platform, n_leads)
    results = []
    for name, sql in HAND_SQL.items():
        report = replace(definition(platform.metadata, name), summary=None)  # the records (bench/summaries.py)
        rows_only = replace(report, totals=False)
        with platform.engine.connect() as conn:
            conn.execute(sa.text(sql)).all()
            hand, hand_rows = timed(lambda s=sql, c=conn: c.execute(sa.text(s)).all(), repeat=3)
        run_report(platform, rows_only, access=None)
        engine, result = timed(lambda r=rows_only: run_report(platform, r, access=None), repeat=3)
        with_totals, _ = timed(lambda r=report: run_report(platform, r, access=None), repeat=3)
        ours = comparable(tuple(row.values()) for row in result.rows)
        theirs = comparable(hand_rows)
        if name == "sales_funnel":  # the engine lists every stage in the process's order
            ours = sorted(ours)
            theirs = sorted(theirs)
            ours = [row[:3] for row in ours]
        assert ours == theirs, (name, ours[:3], theirs[:3])
        print(f"  [{backend}] {name}: engine {engine:.3f} s (with totals {with_totals:.3f} s), "
              f"hand SQL {hand:.3f} s, {len(result.rows)} rows")
        results.append((name, backend, engine, with_totals, hand))
    platform.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--leads", type=int, default=1_000_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-"))
    print(f"objectplatform report benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.leads:,} leads")
    results = []
    try:
        for backend in args.backends.split(","):
            results += bench(backend, workdir, args.leads)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| report | database | engine (rows) | engine with totals row | hand SQL (rows) | ratio |\n"
          "|---|---|---|---|---|---|")
    for name, backend, engine, with_totals, hand in results:
        print(f"| {name} | {backend} | {engine:.3f} s | {with_totals:.3f} s | {hand:.3f} s | {engine / hand:.2f}x |")


if __name__ == "__main__":
    main()
