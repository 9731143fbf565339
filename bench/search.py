"""Search benchmark (not a test): the global search through the API (token, data scope, JSON) and the search service
alone, at 100,000 leads with Chinese names, companies and mobiles, for a rep (own scope, 5,000 leads) and an
administrator (all), by initials, full pinyin, characters and a phone prefix, on SQLite and PostgreSQL. Also times
migrate's fill of the terms of the existing rows (what adding `search:` to an object costs).

Usage: python bench/search.py [--backends sqlite,postgresql] [--rows 100000]
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
from urllib.parse import quote

from engine import database, settle  # bench/engine.py (this folder is first on sys.path)
from pypinyin import Style, lazy_pinyin

from objectplatform.runtime import Settings, open_platform, search
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.storage import search as terms
from objectplatform.runtime.storage.convert import to_row
from objectplatform.runtime.storage.migrate import migrate
from objectplatform.web import create_app

PASSWORD = "bench-password-1"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞建国志文斌宇浩凯晨欣怡婷雪梅琳晶颖佳俊"
COMPANIES = ["北京华信银行", "上海浦江证券", "北京中科智远", "上海东昊精密", "上海优选零售", "广州南粤物流",
             "深圳星辰科技", "杭州西湖软件", "成都天府食品", "武汉长江机电", "南京金陵医药", "苏州园林建材"]
QUERIES_PER_KIND = 20


def bench(backend: str, workdir: Path, rows: int) -> dict:
    url = database(backend, "bench_search", workdir)
    platform = open_platform(Settings.from_env({}, database_url=url, instance_path=workdir / "instance"))
    migrate(platform.engine, platform.schema)
    records = platform.records
    admin = records.create("user", {"username": "admin", "display_name": "管理员", "roles": ["admin"],
                                    "password": PASSWORD}, system=True)["id"]
    reps = [records.create("user", {"username": f"rep{i}", "display_name": f"销售{i}", "roles": ["sales_rep"],
                                    "password": PASSWORD}, system=True)["id"] for i in range(20)]
    rng = random.Random(18)
    ot = platform.schema["lead"]
    now = datetime(2026, 12, 1)
    names = [rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))) for _ in range(rows)]
    mobiles = [f"13{rng.randrange(10**9):09d}" for _ in range(rows)]
    leads = [to_row(ot, {"name": names[i], "company": rng.choice(COMPANIES), "mobile": mobiles[i],
                         "status": "following", "owner": reps[i % len(reps)]})
             | {"created_at": now, "updated_at": now, "version": 1} for i in range(rows)]
    with platform.engine.begin() as conn:
        for start in range(0, rows, 10_000):
            conn.execute(ot.table.insert(), leads[start:start + 10_000])
    start = time.perf_counter()
    with platform.engine.begin() as conn:  # what migrate's FillSearch runs for the existing rows
        terms.fill(conn, platform.schema.search, ot.object, ot.table)
    out: dict = {"fill": time.perf_counter() - start}
    settle(platform.engine)
    queries = {
        "initials": ["".join(lazy_pinyin(n, style=Style.FIRST_LETTER)) for n in rng.sample(names, QUERIES_PER_KIND)],
        "full pinyin": ["".join(lazy_pinyin(n)) for n in rng.sample(names, QUERIES_PER_KIND)],
        "characters": rng.sample(names, QUERIES_PER_KIND),
        "phone prefix": [m[:7] for m in rng.sample(mobiles, QUERIES_PER_KIND)],
    }
    client = create_app(platform).test_client()
    for who, user_id in (("rep0", reps[0]), ("admin", admin)):
        token = client.post("/api/v1/auth/token", json={"username": who, "password": PASSWORD}).get_json()["token"]
        access = access_for(platform, user_id)
        for kind, texts in queries.items():
            times, alone, found = [], [], []
            for q in texts:
                begin = time.perf_counter()
                response = client.get(f"/api/v1/search?q={quote(q)}", headers={"Authorization": f"Bearer {token}"})
                times.append(time.perf_counter() - begin)
                assert response.status_code == 200, response.get_json()
                found.append(sum(len(g["items"]) for g in response.get_json()["groups"]))
                begin = time.perf_counter()
                search.search(platform, access, q)
                alone.append(time.perf_counter() - begin)
            out[who, kind] = (statistics.median(times), sorted(times)[int(len(times) * 0.9)], statistics.median(alone),
                              statistics.mean(found))
    platform.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="objectplatform-bench-search-"))
    print(f"objectplatform search benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rows:,} leads, "
          f"{QUERIES_PER_KIND} searches of each kind, 10 records per object at most")
    results = []
    try:
        for backend in args.backends.split(","):
            results.append((backend, bench(backend, workdir, args.rows)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for backend, out in results:
        print(f"{backend}: migrate's fill of the terms of {args.rows:,} leads: {out['fill']:.1f} s")
    print("\n| caller | search by | database | API median | API 90th percentile | search alone (median) | "
          "records listed (mean) |\n|---|---|---|---|---|---|---|")
    for backend, out in results:
        for who, label in (("rep0", "a rep (own scope)"), ("admin", "an administrator (all)")):
            for kind in ("initials", "full pinyin", "characters", "phone prefix"):
                median, p90, alone, found = out[who, kind]
                print(f"| {label} | {kind} | {backend} | {median * 1000:.1f} ms | {p90 * 1000:.1f} ms | "
                      f"{alone * 1000:.1f} ms | {found:.1f} |")


if __name__ == "__main__":
    main()
