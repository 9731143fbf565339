"""The generated pages through Flask's test client, on SQLite and PostgreSQL: sign-in, lists, records,
forms with inline errors, stale edits, languages, scopes, CSRF, escaping and the metadata browser."""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import replace
from decimal import Decimal

import pytest
import sqlalchemy as sa

from objectplatform.metadata import SYSTEM_FIELDS
from objectplatform.runtime.config import ROOT
from objectplatform.translations import LANGUAGES, catalogue
from objectplatform.web import create_app

PASSWORD = "secret-pass-1"


@pytest.fixture
def users(platform, seeded):
    """An admin, two reps of the same department (each sees only their own leads) and a shipper."""
    return seeded(make_users)


def make_users(platform):
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]

    def user(username: str, name: str, roles: list[str]) -> str:
        return records.create("user", {"username": username, "display_name": name, "password": PASSWORD,
                                       "roles": roles, "department": sales}, system=True)["id"]

    return {"admin": user("admin", "管理员", ["admin"]), "wang": user("wang", "王伟", ["sales_rep"]),
            "li": user("li", "李娜", ["sales_rep"]), "fang": user("fang", "方芳", ["shipper"])}


@pytest.fixture
def app(platform):
    app = create_app(platform)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def token(client) -> str:
    """The session's CSRF token (made by the login page)."""
    client.get("/login")
    with client.session_transaction() as session:
        return session["csrf_token"]


def login(client, username: str, password: str = PASSWORD):
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token(client)})


MOBILES = itertools.count(13800138000)  # one per lead: a lead with the same mobile is a duplicate (lead.yaml)


def lead(platform, owner: str, name: str, **values) -> str:
    values.setdefault("mobile", str(next(MOBILES)))
    return platform.records.create("lead", {"name": name, **values}, user=owner)["id"]


def rows(page: str, obj: str = "lead") -> list[str]:
    """The record links of a list page's rows, in order, as their (unescaped) text."""
    return [html.unescape(text) for _id, text in
            re.findall(rf'<tr data-id="(\d+)">.*?<a href="/o/{obj}/\1">(.*?)</a>', page, re.S)]


def field_errors(page: str, name: str) -> list[str]:
    found = re.search(rf'<ul class="errors" id="e-{re.escape(name)}">(.*?)</ul>', page, re.S)
    return re.findall(r"<li>(.*?)</li>", found.group(1)) if found else []


def input_value(page: str, name: str) -> str | None:
    found = re.search(rf'<input [^>]*name="{re.escape(name)}" value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


# ------------------------------------------------------------------------------------ sign-in


def test_session_cookie_is_https_only_when_configured(platform, users):
    secure = replace(platform, settings=replace(platform.settings, secure_cookies=True))
    client = create_app(secure).test_client()
    cookie = login(client, "wang").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_login_navigation_and_logout(client, users):
    assert client.get("/o/lead").status_code == 302  # not signed in: to the login page
    refused = login(client, "wang", "wrong password")
    assert refused.status_code == 401
    assert "用户名或密码错误，或账号已停用" in refused.text
    signed_in = login(client, "wang")
    assert signed_in.status_code == 302 and signed_in.location == "/"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    home = client.get("/")
    assert "王伟" in home.text
    side = re.search(r'<nav class="side".*?</nav>', home.text, re.S).group(0)
    nav = re.findall(r'<li><a href="/o/(\w+)"', side)
    assert nav == ["lead", "follow_up", "lead_pool", "campaign", "account", "contact", "opportunity", "visit",
                   "visit_route", "customer_feedback", "competitor_info", "sales_order", "payment_plan", "payment",
                   "invoice", "return_order", "refund", "product", "price_policy", "sales_target", "user",
                   "department"]  # in the navigation's order; no child objects
    assert "元数据" not in home.text
    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "fang")  # a shipper reads orders, their lines, returns, accounts, contacts, products and people
    side = re.search(r'<nav class="side".*?</nav>', client.get("/").text, re.S).group(0)
    assert re.findall(r'<li><a href="/o/(\w+)"', side) == [
        "account", "contact", "sales_order", "return_order", "product", "user", "department"]
    out = client.post("/logout", data={"csrf_token": token(client)})
    assert out.status_code == 302 and out.location == "/login"
    assert client.get("/o/lead").status_code == 302


def test_inactive_user_cannot_sign_in(client, platform, users):
    current = platform.records.get("user", users["li"])
    platform.records.update("user", users["li"], {"active": False}, version=current["version"], system=True)
    assert login(client, "li").status_code == 401


# ------------------------------------------------------------------------------------ lists


def test_list_filter_sort_search_and_scope(client, platform, users):
    wang, li = users["wang"], users["li"]
    lead(platform, wang, "Carol Zhang", source="referral", company="Zeta")
    lead(platform, wang, "Alice Wang", source="referral", company="Acme")
    lead(platform, wang, "Bob Li", source="website", company="Acme")
    lead(platform, li, "Dave Other", source="referral", company="Acme")  # another rep's: never listed
    login(client, "wang")

    page = client.get("/o/lead").text
    assert rows(page) == ["Bob Li", "Alice Wang", "Carol Zhang"]  # newest first
    assert "共 3 条" in page

    page = client.get("/o/lead?source=referral&sort=name").text
    assert rows(page) == ["Alice Wang", "Carol Zhang"]
    assert "共 2 条" in page
    assert '<option value="referral" selected>朋友推荐</option>' in page

    page = client.get("/o/lead?sort=-name").text
    assert rows(page) == ["Carol Zhang", "Bob Li", "Alice Wang"]
    assert 'aria-sort="descending"' in page

    page = client.get("/o/lead?q=acme&sort=name").text
    assert rows(page) == ["Alice Wang", "Bob Li"]

    page = client.get("/o/lead?q=acme&source=website").text
    assert rows(page) == ["Bob Li"]
    assert "朋友推荐" in client.get("/o/lead?sort=name").text  # the source column shows option labels


def test_list_filter_by_lookup_and_date(client, platform, users):
    wang = users["wang"]
    spring = platform.records.create("campaign", {"name": "春季展会"}, user=users["admin"])["id"]
    lead(platform, wang, "In Campaign", campaign=spring)
    lead(platform, wang, "No Campaign")
    login(client, "wang")
    page = client.get(f"/o/lead?campaign={spring}").text
    assert rows(page) == ["In Campaign"]
    assert input_value(page, "campaign__title") == "春季展会"
    page = client.get("/o/lead?created_at__from=2000-01-01&created_at__to=2000-12-31").text
    assert rows(page) == []
    assert "没有符合条件的记录" in page
    page = client.get("/o/lead?created_at__from=2000-01-01&created_at__to=2099-12-31&sort=name").text
    assert rows(page) == ["In Campaign", "No Campaign"]


def test_list_pages_by_cursor(client, platform, users):
    result = platform.records.create_many(
        "lead", [{"name": f"Lead {i:03d}", "mobile": f"138{i:08d}", "owner": users["wang"]} for i in range(55)],
        user=users["wang"])
    assert len(result.created) == 55
    login(client, "wang")
    first = client.get("/o/lead?sort=name").text
    assert rows(first) == [f"Lead {i:03d}" for i in range(50)]
    assert "共 55 条" in first and "第 1 页" in first
    next_url = html.unescape(re.search(r'<a href="([^"]+)" rel="next">', first).group(1))
    second = client.get(next_url).text
    assert rows(second) == [f"Lead {i:03d}" for i in range(50, 55)]
    assert "第 2 页" in second and 'rel="next"' not in second
    prev_url = html.unescape(re.search(r'<a href="([^"]+)" rel="prev">', second).group(1))
    assert rows(client.get(prev_url).text) == rows(first)


def test_list_total_beyond_the_exact_limit_says_about(client, platform, users):
    """Beyond OBJECTPLATFORM_EXACT_TOTAL_LIMIT (54 here) the total is an estimate: 55 on both databases (SQLite's
    limit + 1; PostgreSQL's planner after ANALYZE), shown as 约 55 条 / about 55 records."""
    platform.records.create_many(
        "lead", [{"name": f"Lead {i:03d}", "mobile": f"138{i:08d}", "owner": users["wang"]} for i in range(55)],
        user=users["wang"])
    platform.settings = replace(platform.settings, exact_total_limit=54)
    if platform.engine.dialect.name == "postgresql":
        with platform.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE lead"))
    login(client, "wang")
    assert "约 55 条" in client.get("/o/lead").text
    client.get("/lang/en")
    assert "about 55 records" in client.get("/o/lead").text


def test_lookup_endpoint_is_scoped(client, platform, users):
    platform.records.create("account", {"name": "ACME 科技"}, user=users["wang"])
    platform.records.create("account", {"name": "ACME 贸易"}, user=users["li"])
    login(client, "wang")
    found = client.get("/o/account/lookup?q=acme").get_json()
    assert [item["title"] for item in found["items"]] == ["ACME 科技"]


# ------------------------------------------------------------------------------------ records


def test_record_page_sections_related_lists_and_history(client, platform, users):
    wang, li = users["wang"], users["li"]
    records = platform.records
    acme = records.create("account", {"name": "ACME 科技", "industry": "manufacturing"}, user=wang)["id"]
    records.create("contact", {"name": "赵敏", "account": acme, "mobile": "13900139000"}, user=wang)
    records.create("contact", {"name": "别人的联系人", "account": acme, "mobile": "13900139001"}, user=li)
    login(client, "wang")
    page = client.get(f"/o/account/{acme}").text
    assert "<h1>ACME 科技</h1>" in page
    assert "<dt>客户名称</dt><dd>ACME 科技</dd>" in page
    contacts = re.search(r'<section class="related" data-related="contact.account">(.*?)</section>', page, re.S)
    assert rows(contacts.group(1), "contact") == ["赵敏"]  # the other rep's contact stays hidden
    assert "(1)" in contacts.group(1)

    current = records.get("account", acme)
    records.update("account", acme, {"name": "ACME 科技有限公司"}, version=current["version"], user=wang)
    history = client.get(f"/o/account/{acme}?tab=history").text
    assert (f'<td><a href="/o/user/{wang}">王伟</a></td><td>修改</td><td>客户名称</td>'
            "<td>ACME 科技</td><td>ACME 科技有限公司</td>") in history


def test_rep_gets_404_for_another_reps_lead(client, platform, users):
    theirs = lead(platform, users["li"], "李娜的线索")
    login(client, "wang")
    for url, missing in ((f"/o/lead/{theirs}", theirs), (f"/o/lead/{theirs}/edit", theirs),
                         (f"/o/lead/{theirs}?tab=history", theirs), ("/o/lead/999999", "999999")):
        response = client.get(url)
        assert response.status_code == 404, url
        assert f"<p>找不到编号为 {missing} 的销售线索</p>\n  <p>该记录不存在，或您无权查看。</p>" in response.text
        assert "李娜的线索" not in response.text
    posted = client.post(f"/o/lead/{theirs}/edit", data={"csrf_token": token(client), "version": "1", "name": "x"})
    assert posted.status_code == 404
    assert platform.records.get("lead", theirs)["name"] == "李娜的线索"


def test_unknown_urls_get_the_404_page_and_the_api_its_json(client, users):
    login(client, "wang")
    for url in ("/nope", "/o/lead/1/nothing/here"):
        response = client.get(url)
        assert (response.status_code, response.mimetype) == (404, "text/html"), url
        assert "该记录不存在，或您无权查看。" in response.text
    api = client.get("/api/v1/nope")
    assert (api.status_code, api.get_json()["error"]["code"]) == (404, "not_found")


def test_name_with_markup_renders_as_text(client, platform, users):
    evil = "<script>alert(1)</script>"
    record_id = lead(platform, users["wang"], evil)
    login(client, "wang")
    for url in ("/o/lead", f"/o/lead/{record_id}", f"/o/lead/{record_id}/edit"):
        page = client.get(url).text
        assert "<script>alert(1)" not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


# ------------------------------------------------------------------------------------ forms


def test_create_lead_errors_inline_input_kept_then_saved(client, platform, users):
    login(client, "wang")
    form = client.get("/o/lead/new").text
    assert 'name="source"' in form and 'name="status"' not in form  # the lifecycle's actions move the status
    data = {"csrf_token": token(client), "name": "", "company": "ACME 科技", "phone": "12ab", "source": "website"}
    refused = client.post("/o/lead/new", data=data)
    assert refused.status_code == 422
    assert field_errors(refused.text, "name") == ["必填"]
    assert field_errors(refused.text, "phone") == ["电话号码格式不正确"]
    assert input_value(refused.text, "company") == "ACME 科技"
    assert input_value(refused.text, "phone") == "12ab"
    assert '<option value="website" selected>官网</option>' in refused.text
    assert "请修正下面标出的 2 处错误" in refused.text
    assert platform.records.list("lead").total == 0

    saved = client.post("/o/lead/new", data={**data, "name": "赵六", "phone": "010-12345678"})
    assert saved.status_code == 302
    record_id = re.fullmatch(r"/o/lead/(\d+)", saved.location).group(1)
    created = platform.records.get("lead", record_id)
    assert (created["name"], created["phone"], created["company"], created["source"], created["status"],
            created["owner"]) == ("赵六", "010-12345678", "ACME 科技", "website", "pending", users["wang"])
    page = client.get(saved.location).text
    assert "<h1>赵六</h1>" in page and "已创建" in page


def test_a_form_s_date_is_also_written_in_the_page_s_language(client, platform, users):
    """The browser's date picker orders a date as its locale does (12/08/2026 in an English Chromium on a Chinese
    page): under it the form says the day in the page's language, the value sent still ISO 8601."""
    login(client, "wang")
    account = platform.records.create("account", {"name": "星辰科技"}, user=users["wang"])["id"]
    words = r'<small class="date-in-words" data-for="f-expected_close_date" aria-live="polite">([^<]*)</small>'
    assert re.findall(words, client.get("/o/opportunity/new").text) == [""]
    data = {"csrf_token": token(client), "name": "", "account": account, "amount": "1000",
            "expected_close_date": "2026-12-08"}
    refused = client.post("/o/opportunity/new", data=data)
    assert refused.status_code == 422
    assert input_value(refused.text, "expected_close_date") == "2026-12-08"
    assert re.findall(words, refused.text) == ["2026年12月8日星期二"]
    saved = client.post("/o/opportunity/new", data={**data, "name": "一期"})
    assert saved.status_code == 302
    record_id = re.fullmatch(r"/o/opportunity/(\d+)", saved.location).group(1)
    assert str(platform.records.get("opportunity", record_id)["expected_close_date"]) == "2026-12-08"
    client.get("/lang/en")
    assert re.findall(words, client.get(f"/o/opportunity/{record_id}/edit").text) == ["Tuesday, December 8, 2026"]


def test_validation_rule_message_in_the_pages_language(client, users):
    login(client, "wang")
    refused = client.post("/o/lead/new", data={"csrf_token": token(client), "name": "无联系方式"})
    assert field_errors(refused.text, "phone") == ["电话、手机和邮箱至少填写一项"]
    client.get("/lang/en")
    refused = client.post("/o/lead/new", data={"csrf_token": token(client), "name": "No contact"})
    assert field_errors(refused.text, "phone") == ["Give a phone number, a mobile number or an email"]


def test_stale_edit_says_who_changed_it_and_keeps_the_input(client, platform, users):
    record_id = lead(platform, users["wang"], "原名")
    login(client, "wang")
    form = client.get(f"/o/lead/{record_id}/edit").text
    assert input_value(form, "version") == "1" and input_value(form, "name") == "原名"
    platform.records.update("lead", record_id, {"company": "别人改的"}, version=1, user=users["admin"])
    stale = client.post(f"/o/lead/{record_id}/edit", data={
        "csrf_token": token(client), "version": "1", "name": "我的新名字", "mobile": "13800138000"})
    assert stale.status_code == 409
    assert "记录已被他人修改" in stale.text
    assert "管理员 于" in stale.text and "（当前版本 2）" in stale.text
    assert f'<a href="/o/lead/{record_id}/edit">重新加载最新版本</a>' in stale.text
    assert input_value(stale.text, "name") == "我的新名字"
    assert platform.records.get("lead", record_id)["name"] == "原名"

    fresh = client.get(f"/o/lead/{record_id}/edit").text
    assert input_value(fresh, "version") == "2" and input_value(fresh, "company") == "别人改的"
    saved = client.post(f"/o/lead/{record_id}/edit", data={
        "csrf_token": token(client), "version": "2", "name": "我的新名字", "company": "别人改的",
        "mobile": "13800138000"})
    assert saved.status_code == 302 and saved.location == f"/o/lead/{record_id}"
    assert platform.records.get("lead", record_id)["name"] == "我的新名字"


def test_sales_order_with_lines_through_the_form(client, platform, users):
    wang = users["wang"]
    records = platform.records
    acme = records.create("account", {"name": "ACME 科技"}, user=wang)["id"]
    widget = records.create("product", {"name": "Widget", "code": "W-1", "price": "10.50"})["id"]
    login(client, "wang")
    form = client.get("/o/sales_order/new").text
    assert 'name="order_line__present"' in form and 'name="order_line-__i__-quantity"' in form
    assert "&#34;subtotal&#34;" in form  # the live formula for the script
    created = client.post("/o/sales_order/new", data={
        "csrf_token": token(client), "account": acme, "account__title": "ACME 科技", "order_discount": "10",
        "order_line__present": "1",
        "order_line-0-product": widget, "order_line-0-quantity": "2", "order_line-0-unit_price": "10.50",
        "order_line-1005-product": widget, "order_line-1005-quantity": "1", "order_line-1005-unit_price": "100",
        "order_line-1005-discount": "50",
        "order_line-1006-product": "", "order_line-1006-quantity": "",  # an untouched added row: ignored
    })
    assert created.status_code == 302, created.text
    order_id = created.location.rsplit("/", 1)[1]
    order = records.get("sales_order", order_id)
    assert [(line["quantity"], line["subtotal"]) for line in order["order_line"]] == [
        (Decimal("2"), Decimal("21.00")), (Decimal("1"), Decimal("50.00"))]
    assert order["total_amount"] == Decimal("63.90")

    edit = client.get(f"/o/sales_order/{order_id}/edit").text
    first = order["order_line"][0]
    assert input_value(edit, "order_line-0-id") == first["id"]
    bad = client.post(f"/o/sales_order/{order_id}/edit", data={
        "csrf_token": token(client), "version": str(order["version"]), "account": acme, "order_line__present": "1",
        "order_line-0-id": first["id"], "order_line-0-product": widget, "order_line-0-quantity": "-1",
        "order_line-0-unit_price": "10.50"})
    assert bad.status_code == 422
    assert field_errors(bad.text, "order_line-0-quantity") == ["不能小于 0"]
    assert input_value(bad.text, "order_line-0-quantity") == "-1"
    saved = client.post(f"/o/sales_order/{order_id}/edit", data={
        "csrf_token": token(client), "version": str(order["version"]), "account": acme, "order_discount": "0",
        "order_line__present": "1", "order_line-0-id": first["id"], "order_line-0-product": widget,
        "order_line-0-quantity": "3", "order_line-0-unit_price": "10.50"})
    assert saved.status_code == 302
    order = records.get("sales_order", order_id)
    assert [line["subtotal"] for line in order["order_line"]] == [Decimal("31.50")]
    assert order["total_amount"] == Decimal("31.50")
    # numbers right-aligned (class num) in the order's lines and in the orders' list, as in report tables
    lines = re.search(r'<section class="related" data-related="order_line.sales_order">.*?</section>',
                      client.get(f"/o/sales_order/{order_id}").text, re.S).group(0)
    assert re.findall(r'<th scope="col" class="num">([^<]+)</th>', lines) == ["数量", "单价", "折扣率", "小计"]
    assert re.findall(r'<td class="num" data-label="([^"]+)">([^<]+)</td>', lines) == [
        ("数量", "3"), ("单价", "10.50"), ("小计", "31.50")]  # no discount: an empty cell
    orders = client.get("/o/sales_order").text
    assert re.findall(r'<td class="num" data-label="([^"]+)">([^<]+)</td>', orders)[:2] == [
        ("订单金额", "31.50"), ("退货金额", "0.00")]


# ------------------------------------------------------------------------------------ languages


def test_english_switch_shows_english_labels(client, platform, users):
    lead(platform, users["wang"], "Alice", source="referral")
    login(client, "wang")
    page = client.get("/o/lead").text
    assert "<h1>销售线索</h1>" in page and "姓名" in page and "朋友推荐" in page
    switched = client.get("/lang/en?next=/o/lead")
    assert switched.status_code == 302 and switched.location == "/o/lead"
    page = client.get("/o/lead").text
    assert "<h1>Leads</h1>" in page
    assert ">Name</a>" in page and ">Company</a>" in page and "Referral" in page and "1 records" in page
    assert "朋友推荐" not in page and "姓名" not in page
    assert '<html lang="en">' in page
    client.get("/lang/zh?next=/o/lead")
    assert "<h1>销售线索</h1>" in client.get("/o/lead").text
    assert client.get("/lang/en?next=https://evil.example/").location == "/"


CATALOGUE = {key: {lang: catalogue(lang)[key] for lang in LANGUAGES if key in catalogue(lang)}
             for lang in LANGUAGES for key in catalogue(lang)}


def test_catalogue_has_every_text_in_both_languages():
    for key, texts in CATALOGUE.items():
        assert set(texts) == set(LANGUAGES), key
        assert all(texts[lang].strip() for lang in LANGUAGES), key


def test_every_text_the_pages_use_is_in_the_catalogue():
    """Templates say `_('key')`, views `text("key", ...)`; system field labels are `field.<name>`."""
    web = ROOT / "objectplatform" / "web"
    used = set()
    for template in (web / "templates").rglob("*.html"):
        used |= set(re.findall(r"_\('([\w.]*\w)'", template.read_text(encoding="utf-8")))
    for module in web.glob("*.py"):
        used |= set(re.findall(r'text\(\s*"([\w.]+)"', module.read_text(encoding="utf-8")))
    used |= {f"field.{name}" for name in SYSTEM_FIELDS} | {f"error.{status}" for status in (400, 403, 404)}
    assert len(used) > 100
    assert sorted(used - set(CATALOGUE)) == []


# ------------------------------------------------------------------------------------ security


def test_post_without_or_with_a_wrong_csrf_token_is_refused(client, platform, users):
    login(client, "wang")
    data = {"name": "伪造", "mobile": "13800138000"}
    for extra in ({}, {"csrf_token": "forged"}):
        refused = client.post("/o/lead/new", data={**data, **extra})
        assert refused.status_code == 400
        assert "表单已过期或来源不明" in refused.text
    assert platform.records.list("lead").total == 0
    assert client.post("/login", data={"username": "wang", "password": PASSWORD}).status_code == 400
    assert client.post("/o/lead/new", data={**data, "csrf_token": token(client)}).status_code == 302


def test_metadata_browser_shows_sources_to_admins_only(client, platform, users):
    login(client, "wang")
    assert client.get("/admin/metadata").status_code == 403
    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "admin")
    page = client.get("/admin/metadata").text
    lead_def = platform.metadata.objects["lead"]
    name = lead_def.fields["name"]
    assert name.source.file == "objectplatform_crm/object_defs/lead.yaml"
    assert f'<td class="source">objectplatform_crm/object_defs/lead.yaml:{name.source.line}</td>' in page
    assert f"objectplatform_crm/object_defs/lead.yaml:{lead_def.source.line}" in page
    source_picklist = platform.metadata.picklists["lead_source"]
    assert f'<td class="source">{source_picklist.source.file}:{source_picklist.source.line}</td>' in page
    assert "<code>referral</code> 朋友推荐" in page
    assert "元数据" in client.get("/").text


# ------------------------------------------------------------------------------------ actions


def test_admin_deactivates_a_user_through_the_action_form(client, platform, users):
    theirs = lead(platform, users["li"], "李娜的线索")
    login(client, "admin")
    page = client.get(f"/o/user/{users['li']}").text
    assert 'data-action="deactivate"' in page
    asked = client.post(f"/o/user/{users['li']}/action/deactivate", data={"csrf_token": token(client)})
    assert asked.status_code == 200 and 'name="handover_to"' in asked.text
    missing = client.post(f"/o/user/{users['li']}/action/deactivate",
                          data={"csrf_token": token(client), "__params": "1", "handover_to": ""})
    assert missing.status_code == 422 and field_errors(missing.text, "handover_to") == ["必填"]
    done = client.post(f"/o/user/{users['li']}/action/deactivate",
                       data={"csrf_token": token(client), "__params": "1", "handover_to": users["wang"]})
    assert done.status_code == 302 and done.location == f"/o/user/{users['li']}"
    assert platform.records.get("lead", theirs)["owner"] == users["wang"]
    assert platform.records.get("user", users["li"])["active"] is False


def test_bulk_action_from_the_list(client, platform, users):
    theirs = lead(platform, users["li"], "李娜的线索")
    login(client, "admin")
    page = client.get("/o/user?sort=username").text
    # no action chosen until the user picks one (the first of the list ran when the button was pressed at once)
    assert re.search(r'<select id="bulk-action" name="action" required>\s*<option value="" selected disabled>选择操作…'
                     r'</option>\s*<option value="deactivate">停用并交接</option>', page)
    assert 'class="select-all"' in page and f'name="ids" value="{users["li"]}"' in page
    nothing = client.post("/o/user/bulk", data={"csrf_token": token(client), "action": "deactivate"})
    assert nothing.status_code == 302 and "请先选择记录" in client.get("/o/user").text
    unchosen = client.post("/o/user/bulk", data={"csrf_token": token(client), "action": "", "ids": [users["li"]],
                                                 "next": "/o/user?sort=username"})
    assert unchosen.status_code == 302 and unchosen.location == "/o/user?sort=username"
    assert "请先选择要执行的操作" in client.get(unchosen.location).text
    assert platform.records.get("user", users["li"])["active"] is True
    asked = client.post("/o/user/bulk", data={"csrf_token": token(client), "action": "deactivate",
                                              "ids": [users["li"], users["wang"]], "next": "/o/user?sort=username"})
    assert asked.status_code == 200
    assert "已选择 2 条记录" in asked.text and 'name="handover_to"' in asked.text
    done = client.post("/o/user/bulk", data={
        "csrf_token": token(client), "action": "deactivate", "__params": "1", "ids": [users["li"], users["wang"]],
        "handover_to": users["wang"], "next": "/o/user?sort=username"})
    assert done.status_code == 302 and done.location == "/o/user?sort=username"
    page = client.get(done.location).text
    assert "停用并交接：成功 1 条，失败 1 条" in page
    assert f"记录 {users['wang']}：不能交接给被停用的用户本人" in page
    assert platform.records.get("lead", theirs)["owner"] == users["wang"]
    assert platform.records.get("user", users["wang"])["active"] is True


def test_attachment_upload_and_scoped_download(client, platform, users):
    import io

    login(client, "admin")
    form = client.get("/o/product/new").text
    assert 'enctype="multipart/form-data"' in form and '<input type="checkbox" id="f-active"' in form
    created = client.post("/o/product/new", content_type="multipart/form-data", data={
        "csrf_token": token(client), "name": "Widget", "code": "W-1", "price": "1,5", "active": "true",
        "image": (io.BytesIO(b"\x89PNG fake"), "widget.png", "image/png")})
    assert created.status_code == 422
    assert field_errors(created.text, "price") == ["必须是数字"]
    created = client.post("/o/product/new", content_type="multipart/form-data", data={
        "csrf_token": token(client), "name": "Widget", "code": "W-1", "price": "1234.5", "active": "true",
        "image": (io.BytesIO(b"\x89PNG fake"), "widget.png", "image/png")})
    assert created.status_code == 302
    product_id = created.location.rsplit("/", 1)[1]
    page = client.get(created.location).text
    assert f'<a href="/o/product/{product_id}/file/image">widget.png</a>' in page
    assert "<dt>标准价格</dt><dd>1,234.50</dd>" in page and "<dt>上架</dt><dd>是</dd>" in page
    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "wang")
    download = client.get(f"/o/product/{product_id}/file/image")
    assert download.status_code == 200 and download.data == b"\x89PNG fake"
    assert download.mimetype == "image/png" and "widget.png" in download.headers["Content-Disposition"]
    missing = client.get(f"/o/product/{product_id}/file/name")
    assert missing.status_code == 404
    assert re.search(r'<section class="error-page">.*?<p>(.*?)</p>', missing.text, re.S).group(1) == (
        f"产品 {product_id} 的“产品名称”中没有文件")


def test_bad_list_parameters_are_a_400_page(client, users):
    login(client, "wang")
    for query in ("sort=nope", "name__gt=1&sort=password", "owner=1%20OR%201=1", "cursor=garbage"):
        response = client.get(f"/o/lead?{query}")
        assert response.status_code == 400, query
        assert "请求无效" in response.text
    assert client.get("/o/nothing").status_code == 404


def test_record_page_puts_state_actions_timeline_and_comments_before_the_fields(client, platform, users):
    """The header holds the title, the state and only the actions the rep may run now; the timeline and the comments
    come before the field sections, a section whose fields are all empty is one folded line that opens on click."""
    theirs = lead(platform, users["wang"], "张三", company="星辰科技")
    login(client, "wang")
    page = client.get(f"/o/lead/{theirs}").text
    parts = re.findall(r'<(?:section|details|header|ol) class="([\w -]+)"', page.split("<main", 1)[1])
    assert parts == ["page-head record-head", "action-dialog", "state-path", "follow-ups", "comments",
                     "record-section", "record-section empty-section", "record-section", "record-section empty-section",
                     "record-section"]
    head = re.search(r'<header class="page-head record-head">.*?</header>', page, re.S).group(0)
    assert '<h1>张三</h1>\n      <span class="state-badge" data-state="pending">待处理</span>' in head
    assert re.findall(r'data-action="(\w+)"', head) == ["convert", "check_duplicates", "return", "invalidate"]
    folded = re.findall(r'<details class="record-section empty-section" data-section="\d+">\s*<summary>(.*?)</summary>',
                        page, re.S)
    assert folded == ['<h2>线索信息</h2> <span class="count">未填写</span>',
                      '<h2>转换信息</h2> <span class="count">未填写</span>']
    assert "<dt>公司名称</dt><dd>星辰科技</dd>" in page  # its section holds a value: open

    def path(page: str) -> list[tuple[str, str]]:
        return re.findall(r'<li class="state ([\w -]+)" data-state="\w+" ?(?:aria-current="step")?>(.*?)</li>', page)

    # the side outcomes (lead.yaml's `side: true` states: invalid, voided) are not steps of the path...
    assert path(page) == [("other", "未分配"), ("current", "待处理"), ("other", "跟进中"), ("other", "已转换")]
    platform.records.update("lead", theirs, {"status": "invalid", "invalid_reason": "空号"}, version=None, system=True)
    page = client.get(f"/o/lead/{theirs}").text
    head = re.search(r'<header class="page-head record-head">.*?</header>', page, re.S).group(0)
    assert '<span class="state-badge" data-state="invalid">无效</span>' in head
    # ...but the one the lead is in is shown, set apart after them
    assert path(page) == [("other", "未分配"), ("other", "待处理"), ("other", "跟进中"), ("other", "已转换"),
                          ("current off-path", "无效")]
    assert "convert" not in re.findall(r'data-action="(\w+)"', head)  # nothing to convert any more
