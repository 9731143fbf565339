"""The `objectplatform` command, run through `main()` on SQLite and PostgreSQL with exact output."""

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import CRM_LAYERS

from objectplatform.cli import main
from objectplatform.metadata import default_layers, load_metadata
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.passwords import verify_password

DEMO_COUNTS = {
    "department": 6,
    "user": 15,
    "campaign": 8,
    "lead_pool": 4,
    "product": 9,
    "account": 244,
    "contact": 491,
    "opportunity": 289,
    "stage_history": 791,
    "opportunity_task": 626,
    "lead": 2000,
    "sales_order": 66,
    "order_line": 166,
    "payment_plan": 2,
    "payment": 97,
    "invoice": 56,
    "return_order": 1,
    "return_line": 1,
    "refund": 1,
    "visit": 375,
    "customer_feedback": 186,
    "competitor_info": 2,
    "follow_up": 1991,
    "price_policy": 4,
    "sales_target": 8,
    "visit_route": 1,
    "visit_route_stop": 2,
}
DEMO_USERS = """\
demo users (username / password, role · department · manager, as the demo created them):
  admin        admin1234  系统管理员  系统管理员
  zhaojianguo  demo1234   赵建国      销售经理 · 华北区
  qianlihua    demo1234   钱丽华      销售经理 · 华东区
  sunwei       demo1234   孙伟        销售代表 · 华北区 · 经理 赵建国
  zhoumin      demo1234   周敏        销售代表 · 华北区 · 经理 赵建国
  wuqiang      demo1234   吴强        销售代表 · 华北区 · 经理 赵建国
  zhengjie     demo1234   郑洁        销售代表 · 华东区 · 经理 钱丽华
  wangfang     demo1234   王芳        销售代表 · 华东区 · 经理 钱丽华
  fenglei      demo1234   冯磊        销售代表 · 华东区 · 经理 钱丽华
  chenjing     demo1234   陈静        市场专员 · 市场部
  liuyang      demo1234   刘洋        财务 · 财务部
  hejun        demo1234   何军        发货员 · 物流部
  linxiuying   demo1234   林秀英      订单管理员 · 财务部
  majianjun    demo1234   马建军      仓库管理员 · 物流部
  youxuan      demo1234   优选采购部  经销商
"""


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Settings from the environment as a user would set them: an instance folder and a secret key of the test's
    own."""
    monkeypatch.setenv("OBJECTPLATFORM_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("OBJECTPLATFORM_SECRET_KEY", f"cli-test-{tmp_path.name}")
    for name in ("DATABASE_URL", "REDIS_URL", "TEMPLATES", "CUSTOM_METADATA"):
        monkeypatch.delenv(f"OBJECTPLATFORM_{name}", raising=False)
    return monkeypatch


@pytest.fixture
def db(env, database_url):
    """An empty database (SQLite or PostgreSQL) named by OBJECTPLATFORM_DATABASE_URL."""
    env.setenv("OBJECTPLATFORM_DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def migrated(env, migrated_database_url):
    """A database the shipped metadata is migrated into (a copy of the run's template, which
    `migrate` made), named by OBJECTPLATFORM_DATABASE_URL."""
    env.setenv("OBJECTPLATFORM_DATABASE_URL", migrated_database_url)
    return migrated_database_url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@functools.cache
def base_metadata():
    """The shipped metadata, loaded once for the tests' own reads (each command loads its own)."""
    return load_metadata(default_layers(Settings.from_env().root, [], None, CRM_LAYERS))


def open_test_platform():
    return open_platform(Settings.from_env(), base_metadata())


def records_of(obj: str, **filters) -> list[dict]:
    platform = open_test_platform()
    try:
        return platform.records.list(obj, filters=filters or None, limit=500).items
    finally:
        platform.close()


def site_layer(root: Path, name: str, text: str) -> Path:
    (root / "site" / "object_defs").mkdir(parents=True, exist_ok=True)
    (root / "site" / "object_defs" / name).write_text(text, encoding="utf-8")
    return root / "site"


# --- check ------------------------------------------------------------------------------------


def test_check_prints_the_counts_of_the_shipped_metadata(env, capsys):
    assert run(capsys, "check") == (
        0, "ok: 28 objects, 24 picklists, 9 roles, 12 flows, 24 reports (layers: base, app crm)\n", "")


def test_check_reports_a_broken_site_layer_with_file_line_and_hint(env, capsys, tmp_path):
    env.chdir(tmp_path)
    site = site_layer(
        tmp_path,
        "lead_ext.yaml",
        "kind: object_extension\nobject: lead\nfields:\n"
        "  wechat_group: {type: tex, label: {zh: 微信群, en: WeChat group}, max_length: 100}\n"
        "  wechat_owner: {type: lookup, to: usr, label: {zh: 群主, en: Group owner}}\n",
    )
    env.setenv("OBJECTPLATFORM_CUSTOM_METADATA", str(site))
    assert run(capsys, "check") == (
        1,
        "",
        "site/object_defs/lead_ext.yaml:4:18: unknown field type 'tex' (did you mean 'text'?) "
        "(at fields.wechat_group.type)\n"
        "site/object_defs/lead_ext.yaml:5:32: unknown object 'usr' (did you mean 'user'?) "
        "(at fields.wechat_owner.to)\n"
        "2 problems in the metadata\n",
    )


def test_a_valid_site_layer_is_named_in_the_layers(env, capsys, tmp_path):
    site = site_layer(
        tmp_path,
        "lead_ext.yaml",
        "kind: object_extension\nobject: lead\nfields:\n  wechat_group: {type: text, label: {zh: 群, en: Group}}\n",
    )
    env.setenv("OBJECTPLATFORM_CUSTOM_METADATA", str(site))
    code, out, _ = run(capsys, "check")
    assert (code, out) == (
        0,
        f"ok: 28 objects, 24 picklists, 9 roles, 12 flows, 24 reports (layers: base, app crm, site {site})\n",
    )


# --- migrate ----------------------------------------------------------------------------------


def test_migrate_dry_run_prints_the_plan_and_changes_nothing_then_migrate_applies_it(db, capsys):
    code, dry, err = run(capsys, "migrate", "--dry-run")
    assert (code, err) == (0, "")
    assert sa.inspect(sa.create_engine(db)).get_table_names() == []
    lines = dry.splitlines()
    assert lines[-1] == "dry run: nothing was applied"
    assert "+ table lead (32 columns)" in lines
    assert "+ unique index uq_user__username on user (username) for unique: true" in lines
    assert lines[-2] == "* record 351 field definitions"

    code, applied, err = run(capsys, "migrate")
    assert (code, err) == (0, "")
    assert applied.splitlines() == [*lines[:-1], "applied"]
    assert "lead" in sa.inspect(sa.create_engine(db)).get_table_names()

    assert run(capsys, "migrate") == (0, "nothing to do\n", "")
    assert run(capsys, "migrate", "--dry-run") == (0, "nothing to do\n", "")


def test_migrate_adds_a_site_field_and_refuses_an_unsafe_change(migrated, env, capsys, tmp_path):
    assert run(capsys, "create-user", "lisi", "--password", "s3cret-pass-word")[0] == 0
    site = site_layer(
        tmp_path,
        "user_ext.yaml",
        "kind: object_extension\nobject: user\nfields:\n"
        "  wechat: {type: text, label: {zh: 微信, en: WeChat}, max_length: 50}\n",
    )
    env.setenv("OBJECTPLATFORM_CUSTOM_METADATA", str(site))
    assert run(capsys, "migrate") == (0, "+ column user.wechat VARCHAR(50)\n* record 1 field definition\napplied\n", "")

    (site / "object_defs" / "user_ext.yaml").write_text(
        "kind: object_extension\nobject: user\nfields:\n"
        "  wechat: {type: text, label: {zh: 微信, en: WeChat}, max_length: 50, required: true}\n",
        encoding="utf-8",
    )
    reason = (
        f"{site}/object_defs/user_ext.yaml:4: user.wechat is now required, but 1 row has no value: "
        "give the field a default (existing rows get it) or fill those rows first"
    )
    for argv in (["migrate", "--dry-run"], ["migrate"]):
        assert run(capsys, *argv) == (
            1,
            f"* record 1 field definition\n! {reason}\n",
            "migration refused: nothing was applied\n",
        )
    assert [u["username"] for u in records_of("user")] == ["lisi"]


# --- worker -----------------------------------------------------------------------------------


def test_worker_needs_a_redis_url(env, capsys):
    assert run(capsys, "worker", "--burst") == (
        1,
        "",
        "error: OBJECTPLATFORM_REDIS_URL is not set: without Redis, jobs run in-process and need no worker\n",
    )


def test_worker_burst_runs_on_redis(env, capsys, redis_url):
    env.setenv("OBJECTPLATFORM_REDIS_URL", redis_url)
    assert run(capsys, "worker", "--burst")[:2] == (0, f"worker listening on {redis_url}\n")


# --- create-user ------------------------------------------------------------------------------


def test_create_user_with_roles_department_and_manager(migrated, capsys):
    platform = open_test_platform()
    north = platform.records.create("department", {"name": "华北区"})
    platform.records.create("department", {"name": "华东区"})
    platform.close()
    code, out, err = run(capsys, "create-user", "zhao", "--password", "boss-pass-word", "--role", "sales_manager")
    (boss,) = records_of("user", username="zhao")
    assert (code, out, err) == (0, f"created user zhao (id {boss['id']}): roles sales_manager\n", "")
    code, out, err = run(
        capsys,
        "create-user",
        "lisi",
        "--password",
        "s3cret-pass-word",
        "--role",
        "sales_rep",
        "--role",
        "marketing",
        "--department",
        "华北区",
        "--manager",
        "zhao",
        "--display-name",
        "李四",
    )
    assert (code, err) == (0, "")
    (user,) = records_of("user", username="lisi")
    assert out == f"created user lisi (id {user['id']}): roles sales_rep, marketing; department 华北区; manager zhao\n"
    assert (user["display_name"], user["roles"], user["department"], user["manager"], user["active"]) == (
        "李四",
        ["sales_rep", "marketing"],
        north["id"],
        boss["id"],
        True,
    )
    assert "password" not in user or user["password"] is None
    engine = sa.create_engine(migrated)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select password from \"user\" where username = 'lisi'")).scalar_one()
    engine.dispose()
    assert stored.startswith("scrypt$") and verify_password("s3cret-pass-word", stored)
    assert not verify_password("wrong", stored)


def test_create_user_errors_name_the_known_values(migrated, capsys):
    platform = open_test_platform()
    platform.records.create("department", {"name": "销售部"})
    platform.records.create("department", {"name": "市场部"})
    platform.close()
    assert run(capsys, "create-user", "lisi", "--password", "pw-123456-ok", "--role", "sales_repp") == (
        1,
        "",
        "error: unknown role 'sales_repp' (did you mean 'sales_rep'?); "
        "roles: admin, sales_manager, sales_rep, marketing, finance, shipper, order_admin, warehouse, partner\n",
    )
    assert run(capsys, "create-user", "lisi", "--password", "pw-123456-ok", "--department", "销售") == (
        1,
        "",
        "error: unknown department '销售' (did you mean '销售部'?); departments: 市场部, 销售部\n",
    )
    assert run(capsys, "create-user", "lisi", "--password", "pw-123456-ok", "--manager", "nobody") == (
        1,
        "",
        "error: unknown user 'nobody'\n",
    )
    assert run(capsys, "create-user", "lisi", "--password", "pw-123456-ok")[0] == 0
    code, out, err = run(capsys, "create-user", "lisi", "--password", "pw-123456-ok")
    assert (code, out) == (1, "")
    assert err.startswith("error: 1 field error\n  username: ")
    assert len(records_of("user")) == 1


# --- action -----------------------------------------------------------------------------------


def test_action_runs_through_the_registry_with_the_users_roles(migrated, capsys):
    for username, role in (("boss", "admin"), ("wang", "sales_rep"), ("li", "sales_rep")):
        assert run(capsys, "create-user", username, "--password", "pass-word-1", "--role", role)[0] == 0
    ids = {u["username"]: u["id"] for u in records_of("user")}
    platform = open_test_platform()
    lead = platform.records.create("lead", {"name": "张三", "email": "z@example.com"}, user=ids["wang"])
    platform.close()

    code, out, err = run(capsys, "action", "user", "deactivate", ids["wang"], "--as", "li",
                         "--param", f"handover_to={ids['li']}")
    assert (code, out, err) == (1, "", "error: your roles do not allow the action Deactivate and hand over on users\n")
    code, out, err = run(capsys, "action", "user", "deactivate", ids["wang"], "--as", "boss")
    assert (code, out, err) == (1, "", "error: 1 field error\n  handover_to: is required\n")
    code, out, err = run(capsys, "action", "user", "deactivate", ids["wang"], "--as", "boss",
                         "--param", f"handover_to={ids['li']}")
    result = json.loads(out)
    assert (code, err, result["handed_over"], result["record"]["active"]) == (0, "", {"lead": 1}, False)
    (moved,) = records_of("lead", name="张三")
    assert (moved["id"], moved["owner"], moved["version"]) == (lead["id"], ids["li"], 2)
    code, out, err = run(capsys, "action", "user", "deactivate", ids["wang"], "--as", "boss", "--param", "oops")
    assert (code, err) == (1, "error: --param 'oops': write it as NAME=VALUE\n")


# --- import -----------------------------------------------------------------------------------

LEADS_CSV = (
    "\ufeff姓名,公司名称,Mobile,email,线索来源,市场活动,owner\n"
    "王伟,北京华信银行,13800000001,,展会,2026春季展会,zhao\n"
    "李娜,上海浦江证券,,not-an-email,expo,2026春季展会,\n"
    "张敏,北京中科智远,13800000003,zhangmin@example.cn,website,官网推广,\n"
    ",上海东昊精密,13800000004,,flyer,,\n"
    "刘洋,上海优选零售,13800000005,,referral,,\n"
)

REPORT = (
    "imported {imported}, failed 2\n"
    "row 3: email: not a valid email address\n"
    "row 5: source: 'flyer' is not one of: referral, promotion, campaign, telemarketing, website, expo, "
    "business_card, other; name: is required\n"
)


@pytest.fixture
def leads_csv(migrated, tmp_path, capsys):
    """Five leads (rows 2-6 of the file) of which rows 3 and 5 are invalid; two campaigns and a user exist."""
    platform = open_test_platform()
    expo = platform.records.create("campaign", {"name": "2026春季展会", "type": "expo"})
    web = platform.records.create("campaign", {"name": "官网推广", "type": "online"})
    platform.close()
    assert main(["create-user", "zhao", "--password", "pw-123456-ok", "--display-name", "赵建国"]) == 0
    assert main(["create-user", "chen", "--password", "pw-123456-ok"]) == 0
    capsys.readouterr()
    path = tmp_path / "leads.csv"
    path.write_text(LEADS_CSV, encoding="utf-8")
    return path, expo["id"], web["id"]


def test_import_keeps_the_valid_rows_and_reports_the_others_by_file_row(leads_csv, capsys):
    path, expo, web = leads_csv
    code, out, err = run(capsys, "import", "lead", str(path), "--as", "chen")
    assert (code, err) == (1, "\r[" + "#" * 30 + "] 5/5 rows\n")
    assert out == REPORT.format(imported=3)
    leads = sorted(records_of("lead"), key=lambda r: r["mobile"])
    (zhao,) = records_of("user", username="zhao")
    (chen,) = records_of("user", username="chen")
    assert [(r["name"], r["company"], r["source"], r["campaign"], r["owner"], r["created_by"]) for r in leads] == [
        ("王伟", "北京华信银行", "expo", expo, zhao["id"], chen["id"]),
        ("张敏", "北京中科智远", "website", web, chen["id"], chen["id"]),
        ("刘洋", "上海优选零售", "referral", None, chen["id"], chen["id"]),
    ]
    campaigns = {c["name"]: c["lead_count"] for c in records_of("campaign")}
    assert campaigns == {"2026春季展会": 1, "官网推广": 1}


def test_import_all_or_nothing_imports_nothing_when_a_row_fails(leads_csv, capsys):
    path, _, _ = leads_csv
    code, out, _ = run(capsys, "import", "lead", str(path), "--all-or-nothing")
    assert (code, out) == (1, REPORT.format(imported=0).replace("\n", "\nnothing was imported (--all-or-nothing)\n", 1))
    assert records_of("lead") == []


def test_import_of_valid_rows_exits_0(leads_csv, capsys, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("name,mobile\n周杰,13900000001\n吴昊,13900000002\n", encoding="utf-8")
    assert run(capsys, "import", "lead", str(good))[:2] == (0, "imported 2, failed 0\n")
    assert sorted(r["name"] for r in records_of("lead")) == ["吴昊", "周杰"]


def test_import_refuses_unknown_columns_and_objects(migrated, capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,compnay\n周杰,云图\n", encoding="utf-8")
    code, out, err = run(capsys, "import", "lead", str(bad))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {bad}: unknown column 'compnay' (did you mean 'company'?) (the fields of lead: ")
    assert run(capsys, "import", "leed", str(bad)) == (1, "", "error: unknown object 'leed' (did you mean 'lead'?)\n")
    assert records_of("lead") == []


# --- serve, demo -----------------------------------------------------------------------------


def counts() -> dict[str, int]:
    platform = open_test_platform()
    try:
        return {name: platform.records.list(name, limit=1).total for name in DEMO_COUNTS}
    finally:
        platform.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, body: dict | None = None) -> tuple[int, str, str]:
    """(status, content type, body text) of a GET, or of a JSON POST when `body` is given."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        # generous: a gunicorn worker answering its first request on a loaded 2-core machine may take long
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


@contextmanager
def server(tmp_path: Path, *argv: str):
    """`objectplatform ARGV` in a subprocess, yielded once it answers HTTP; stopped with SIGTERM afterwards.

    Yields the base URL and a function returning (exit status, stdout) once the server has stopped.
    """
    port = free_port()
    out, err = tmp_path / "server.out", tmp_path / "server.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "objectplatform.cli", *argv, "--port", str(port), "--workers", "1"],
            stdout=stdout, stderr=stderr, env=os.environ.copy(),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the server stopped: {out.read_text()}{err.read_text()}"
            try:
                http(base + "/login")
                break
            except (ConnectionError, urllib.error.URLError):
                assert time.monotonic() < deadline, f"no answer on {base}: {err.read_text()}"
                time.sleep(0.2)
        yield base, port, lambda: (process.wait(timeout=30), out.read_text())
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_serve_refuses_a_database_that_needs_migrating(db, capsys):
    shown = sa.engine.make_url(db).render_as_string(hide_password=True)
    assert run(capsys, "serve") == (
        1, "", f"error: the database at {shown} is not in line with the metadata: run `objectplatform migrate` "
        "first (`objectplatform migrate --dry-run` shows what it would change)\n")


def test_serve_serves_the_configured_database_as_it_is(migrated, tmp_path):
    with server(tmp_path, "serve") as (base, port, stopped):
        status, content_type, body = http(base + "/api/v1/auth/token", {"username": "admin", "password": "admin1234"})
        assert (status, content_type, json.loads(body)) == (
            401, "application/json", {"error": {"code": "unauthenticated", "message": "wrong username or password",
                                                "reason": "auth.wrong_credentials", "params": {}}})
        status, content_type, page = http(base + "/login")
        assert (status, content_type) == (200, "text/html; charset=utf-8")
        assert '<form method="post"' in page
    assert stopped() == (0, f"serving http://127.0.0.1:{port}/ with 1 worker and the rule scheduler (Ctrl+C stops)\n")
    assert counts() == dict.fromkeys(DEMO_COUNTS, 0)


@pytest.mark.parametrize("backend", ["sqlite"])  # as `make run` does; test_demo loads it on PostgreSQL too
def test_demo_migrates_loads_the_demo_company_once_and_serves_it(db, capsys, tmp_path):
    code, out, err = run(capsys, "demo", "--no-serve")
    assert (code, err) == (0, "")
    assert re.fullmatch(r"migrated: \d+ tables, \d+ indexes, \d+ foreign keys, 5 searches filled, "
                        r"1 summary filled, 3 access triggers, \d+ field definitions", out.split("\n")[1])
    assert counts() == DEMO_COUNTS
    labels = {name: obj.label.zh for name, obj in base_metadata().objects.items()}
    loaded = re.fullmatch(r"(?s).*\nloaded the demo company in \d+\.\d s:\n(.*)", out.split(DEMO_USERS)[0])
    assert loaded[1] == "".join(f"  {labels[name]} {name}: {n}\n" for name, n in DEMO_COUNTS.items())
    assert out.endswith(DEMO_USERS)

    code, out, err = run(capsys, "demo", "--no-serve")
    assert (code, err) == (0, "")
    again = "nothing to do\nthe database already holds users: demo data not loaded\n"
    assert out.split("\n", 1)[1] == again + DEMO_USERS
    assert counts() == DEMO_COUNTS

    with server(tmp_path, "demo") as (base, port, stopped):
        status, _, body = http(base + "/api/v1/auth/token", {"username": "zhaojianguo", "password": "demo1234"})
        assert (status, json.loads(body)["user"]["username"]) == (200, "zhaojianguo")
    code, out = stopped()
    assert code == 0
    serving = f"serving http://127.0.0.1:{port}/ with 1 worker and the rule scheduler (Ctrl+C stops)\n"
    assert out.endswith(DEMO_USERS + serving)
    assert counts() == DEMO_COUNTS
