"""Browser tests: the real app served over HTTP in a background thread, driven by headless Chromium.

Each test gets a fresh migrated database (SQLite and, when configured, PostgreSQL, through
`migrated_database_url` of tests/conftest.py) seeded with a small sales organisation, the app behind werkzeug's
server on a free 127.0.0.1 port, and a new browser context; the Chromium process is shared by the
session. The browser is Debian's headless shell (`/usr/bin/chromium-headless-shell`, installed by `.ci/run`: the
same Blink as `chromium` without the full browser's user interface, a third less CPU per journey), else Debian's
Chromium (`/usr/bin/chromium`), driven by
Playwright's Python package: `playwright install` is never needed. With OBJECTPLATFORM_REQUIRE_SERVICES=1
(CI) a missing browser fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import crm_metadata
from werkzeug.serving import WSGIRequestHandler, make_server

from objectplatform.runtime.config import Settings
from objectplatform.runtime.platform import Platform, open_platform
from objectplatform.web import create_app

CHROMIUM = (os.environ.get("OBJECTPLATFORM_CHROMIUM") or shutil.which("chromium-headless-shell")
            or shutil.which("chromium") or "/usr/bin/chromium-headless-shell")
REQUIRE_SERVICES = os.environ.get("OBJECTPLATFORM_REQUIRE_SERVICES") == "1"
PASSWORD = "browser-pass-1"
TIMEOUT_MS = 10_000
# where the journeys' screenshots go, one folder per test, for reviewers to look at (build/ is not tracked)
SCREENSHOTS = Path(os.environ.get("OBJECTPLATFORM_SCREENSHOTS") or Path(__file__).parents[2] / "build" / "screenshots")
WIDTHS = (1400, 390)


def _unavailable(reason: str):
    """A missing browser fails on CI and skips elsewhere."""
    if REQUIRE_SERVICES:
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


# ------------------------------------------------------------------------------------ the browser


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (`apt-get install chromium-headless-shell`; .ci/run does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (`pip install -e '.[dev]'`)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def dialogs() -> list[str]:
    """Every JavaScript dialog (alert, confirm, prompt) that opened in the test's pages."""
    return []


@pytest.fixture
def context(browser, site, dialogs):
    """A fresh browser context (own cookies, so its own session) on the test's site. Any dialog that
    opens in one of its pages is recorded, dismissed and fails the test."""
    ctx = browser.new_context(base_url=site.url, locale="zh-CN", timezone_id="Asia/Shanghai")
    ctx.set_default_timeout(TIMEOUT_MS)

    def watch(page):
        def on_dialog(dialog):
            dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

    ctx.on("page", watch)
    yield ctx
    ctx.close()
    assert dialogs == [], f"a JavaScript dialog opened: {dialogs}"


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def screenshot(request):
    """`screenshot(page, name)`: the page as it is now, whole, at 1400 px and at 390 px (then at its own size again),
    as build/screenshots/<test>/<nn>-<name>-<width>.png (OBJECTPLATFORM_SCREENSHOTS names another folder)."""
    folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
    shutil.rmtree(folder, ignore_errors=True)
    taken = []

    def shoot(page, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        taken.append(name)
        size = page.viewport_size or {"width": 1400, "height": 900}
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": size["height"]})
            page.screenshot(path=folder / f"{len(taken):02d}-{name}-{width}.png", full_page=True)
        page.set_viewport_size(size)

    return shoot


# ------------------------------------------------------------------------------------ the site


@pytest.fixture(scope="session")
def metadata():
    """The shipped CRM (base layer), loaded once."""
    return crm_metadata()


@dataclass
class Site:
    url: str
    platform: Platform
    users: dict[str, str]  # username -> user id
    departments: dict[str, str]  # name -> department id
    leads: dict[str, str]  # lead name -> lead id
    password: str = PASSWORD  # every seeded user's


def seed(platform: Platform) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """An admin and two regional teams under 销售部 (华北区: manager 赵强, rep 王伟; 华东区: manager
    钱芳, rep 李娜), with a few leads each rep (and 赵强) owns; 王伟's include one named like a script."""
    records = platform.records
    departments: dict[str, str] = {}
    departments["销售部"] = records.create("department", {"name": "销售部"}, system=True)["id"]
    for name in ("华北区", "华东区"):
        departments[name] = records.create("department", {"name": name, "parent": departments["销售部"]},
                                           system=True)["id"]

    users: dict[str, str] = {}

    def user(username: str, display_name: str, role: str, department: str, manager: str | None = None) -> None:
        values = {"username": username, "display_name": display_name, "password": PASSWORD, "roles": [role],
                  "active": True, "department": departments[department]}
        if manager:
            values["manager"] = users[manager]
        users[username] = records.create("user", values, system=True)["id"]

    user("admin", "系统管理员", "admin", "销售部")
    user("zhao", "赵强", "sales_manager", "华北区")
    user("wang", "王伟", "sales_rep", "华北区", manager="zhao")
    user("qian", "钱芳", "sales_manager", "华东区")
    user("li", "李娜", "sales_rep", "华东区", manager="qian")
    for department, manager in (("华北区", "zhao"), ("华东区", "qian")):
        records.update("department", departments[department], {"manager": users[manager]}, version=None,
                       system=True)

    leads: dict[str, str] = {}
    for owner, name, company, mobile, source in (
        ("wang", "张伟", "北京星河科技有限公司", "13800000003", "referral"),
        ("wang", "刘洋", "天津海岸物流有限公司", "13800000001", "referral"),
        ("wang", "陈静", "石家庄恒信机械厂", "13800000005", "website"),
        ("wang", "孙丽", "保定华丰纺织有限公司", "13800000002", "referral"),
        ("wang", "<script>alert(1)</script>", "<b>粗体公司</b>", "13800000009", "other"),
        ("zhao", "郑浩", "唐山钢联贸易有限公司", "13700000001", "referral"),
        ("li", "周杰", "上海东方贸易有限公司", "13900000001", "referral"),
        ("li", "吴敏", "杭州西湖电子有限公司", "13900000002", "expo"),
    ):
        leads[name] = records.create("lead", {"name": name, "company": company, "mobile": mobile,
                                              "source": source}, user=users[owner])["id"]
    return users, departments, leads


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per request would drown the test output
        pass


@pytest.fixture
def site(migrated_database_url, backend, seeds, tmp_path, metadata) -> Iterator[Site]:
    """The app on a fresh seeded database (the seed's rows made once per backend, copied after: tests/conftest.py
    Seeds), served on a free port of 127.0.0.1 by a background thread."""
    settings = Settings.from_env({}, database_url=migrated_database_url, instance_path=tmp_path,
                                 secret_key="browser-tests-secret")
    platform = open_platform(settings, metadata)
    users, departments, leads = seeds(platform, backend, ((seed, ()),))
    server = make_server("127.0.0.1", 0, create_app(platform), threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="browser-test-server", daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", platform, users, departments, leads)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        platform.close()
