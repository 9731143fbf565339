"""The REST API of API.md on both databases: tokens, metadata, records, scope, roles and actions.

Every response with an error status goes through `Api.call`, which checks it has the one error
shape of API.md and keeps it in ERROR_RESPONSES (tests/test_api_errors.py checks the statuses seen).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from support import shared_site

from objectplatform.web import create_app

PASSWORD = "correct-horse-7"
SITE_LAYER = """\
kind: sales_process
name: standard
label: {zh: 标准销售流程, en: Standard process}
departments: [sales]
stages:
  - key: qualify
    label: {zh: 验证客户, en: Qualify}
    probability: 10
    tasks:
      - {key: call, label: {zh: 电话沟通, en: Call}, required: true}
  - key: propose
    label: {en: Proposal}
    probability: 60
    required_fields: [amount]
    approval: {role: sales_manager}
"""
ERROR_RESPONSES: list[tuple[str, str, int, dict]] = []
ISO_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")


def assert_error_shape(body) -> None:
    """API.md's error shape: {"error": {"code", "message", "reason"?, "params"?, "fields"?}} and nothing else."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) - {"reason", "params"} in ({"code", "message"}, {"code", "message", "fields"}), body
    if "reason" in error or "params" in error:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)+", error["reason"]) and isinstance(error["params"], dict), body
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"], body
    if "fields" in error:
        assert error["fields"] and all(
            isinstance(k, str) and isinstance(v, list) and v and all(isinstance(m, str) for m in v)
            for k, v in error["fields"].items()), body


def without_reasons(body):
    """The body with each error's reason and params left out (an error's and each bulk failure's), so these tests
    compare code, message and fields; tests/test_errors_i18n.py asserts reasons and params exactly."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return {**body, "error": {k: v for k, v in body["error"].items() if k not in ("reason", "params")}}
    if isinstance(body, dict) and isinstance(body.get("failed"), list):
        return {**body, "failed": [without_reasons(f) for f in body["failed"]]}
    return body


class Api:
    """Flask's test client speaking JSON as one of the people, recording every error response (in full)."""

    def __init__(self, client):
        self.client = client
        self.tokens: dict[str, str] = {}

    def token(self, username: str) -> str:
        if username not in self.tokens:
            status, body = self.call("POST", "/auth/token", json={"username": username, "password": PASSWORD})
            assert status == 200, body
            self.tokens[username] = body["token"]
        return self.tokens[username]

    def call(self, method: str, path: str, as_: str | None = None, json=None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if as_ is not None:
            headers["Authorization"] = f"Bearer {self.token(as_)}"
        response = self.client.open(f"/api/v1{path}", method=method, json=json, headers=headers, **kwargs)
        body = response.get_json(silent=True) if response.data else None
        if response.status_code >= 400:
            assert response.mimetype == "application/json", response.data
            assert_error_shape(body)
            ERROR_RESPONSES.append((method, path, response.status_code, body))
        return response.status_code, without_reasons(body)

    def get(self, path, as_, **kw):
        return self.call("GET", path, as_, **kw)

    def post(self, path, as_, json=None, **kw):
        return self.call("POST", path, as_, json=json, **kw)

    def patch(self, path, as_, json=None, **kw):
        return self.call("PATCH", path, as_, json=json, **kw)

    def delete(self, path, as_, **kw):
        return self.call("DELETE", path, as_, **kw)


@pytest.fixture(scope="module")
def metadata():
    return shared_site({"flows/standard.yaml": SITE_LAYER})


@pytest.fixture
def people(seeded) -> dict[str, str]:
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    """A sales department (managed by `boss`) with two reps, an admin, a finance clerk and marketing."""
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]

    def user(username: str, name: str, roles: list[str], **more) -> str:
        values = {"username": username, "display_name": name, "password": PASSWORD, "roles": roles, **more}
        return records.create("user", values, system=True)["id"]

    ids = {"admin": user("admin", "管理员", ["admin"])}
    ids["boss"] = user("boss", "赵经理", ["sales_manager"], department=sales)
    ids["rep1"] = user("rep1", "王伟", ["sales_rep"], department=sales, manager=ids["boss"])
    ids["rep2"] = user("rep2", "李娜", ["sales_rep"], department=sales, manager=ids["boss"])
    ids["finance"] = user("finance", "钱会计", ["finance"])
    ids["sales"] = sales
    return ids


@pytest.fixture
def app(platform):
    return create_app(platform)


@pytest.fixture
def api(app, people) -> Api:
    return Api(app.test_client())


def stamp(body: dict) -> dict:
    """The body's own created_at/updated_at (checked to be ISO 8601 UTC), to compare the rest exactly."""
    for key in ("created_at", "updated_at"):
        assert ISO_DATETIME.fullmatch(body[key]), body[key]
    return {"created_at": body["created_at"], "updated_at": body["updated_at"]}


def forbidden(message: str) -> tuple[int, dict]:
    return 403, {"error": {"code": "forbidden", "message": message}}


def blank(metadata, obj: str) -> dict:
    """Every field of `obj` (but passwords) as null."""
    return {name: None for name, f in metadata.objects[obj].fields.items() if f.type != "password"}


def lead(api: Api, as_: str, **values) -> dict:
    status, body = api.post("/objects/lead/records", as_, {"name": "客户", "phone": "13800000000", **values})
    assert status == 201, body
    return body


# ------------------------------------------------------------------------------------- tokens


def test_token_issue_and_revoke(api, people):
    status, body = api.post("/auth/token", None, {"username": "rep1", "password": PASSWORD})
    assert status == 200
    assert body == {"token": body["token"], "user": {"id": people["rep1"], "username": "rep1"}}
    assert len(body["token"]) >= 40
    token = {"Authorization": f"Bearer {body['token']}"}
    assert api.call("GET", "/meta/objects", headers=token)[0] == 200
    assert api.call("DELETE", "/auth/token", headers=token) == (204, None)
    assert api.call("GET", "/meta/objects", headers=token) == (401, {"error": {
        "code": "unauthenticated", "message": "the token is unknown, expired or revoked; sign in again"}})


@pytest.mark.parametrize("credentials", [
    {"username": "rep1", "password": "wrong-password"},
    {"username": "nobody", "password": PASSWORD},
])
def test_wrong_credentials_are_401(api, credentials):
    status, body = api.post("/auth/token", None, credentials)
    assert status == 401 and body["error"]["code"] == "unauthenticated"


def test_token_needs_username_and_password(api):
    assert api.post("/auth/token", None, {"username": "rep1"}) == (400, {"error": {
        "code": "bad_request", "message": "give a username and a password",
        "fields": {"password": ["is required (text)"]}}})


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nonsense", "Basic cmVwMTp4", "bearer  "])
def test_no_or_bad_token_is_401(api, header):
    headers = {} if header is None else {"Authorization": header}
    status, body = api.call("GET", "/objects/lead/records", headers=headers)
    assert status == 401 and body["error"]["code"] == "unauthenticated"


def test_inactive_users_token_stops_working(api, platform, people):
    api.token("rep2")
    platform.records.update("user", people["rep2"], {"active": False}, version=None, system=True)
    assert api.get("/meta/objects", "rep2")[0] == 401


# ----------------------------------------------------------------------------------- metadata


def test_meta_objects_lists_what_the_caller_may_read(api, metadata):
    status, body = api.get("/meta/objects", "finance")
    assert status == 200
    readable = {"user", "department", "account", "contact", "product", "sales_order", "order_line", "payment",
                "payment_plan", "invoice", "return_order", "return_line", "refund"}
    assert [o["name"] for o in body["items"]] == [name for name in metadata.objects if name in readable]
    user = next(o for o in body["items"] if o["name"] == "user")
    assert user == {"name": "user", "label": {"zh": "用户", "en": "User"},
                    "plural_label": {"zh": "用户", "en": "Users"}, "title_field": "display_name", "actions": [{
                        "name": "deactivate", "label": {"zh": "停用并交接", "en": "Deactivate and hand over"},
                        "bulk": True, "allowed": False,
                        "params": [{"name": "handover_to", "type": "user",
                                    "label": {"zh": "交接给", "en": "Hand over to"}, "required": True,
                                    "target": "user"}]}]}
    admin = api.get("/meta/objects", "admin")[1]
    assert len(admin["items"]) == len(metadata.objects)
    assert next(o for o in admin["items"] if o["name"] == "user")["actions"][0]["allowed"] is True


ACTIONS_FOR_REP = [("convert", False, True), ("check_duplicates", False, True), ("claim", True, True),
                   ("assign", True, False), ("return", True, True), ("move", True, False), ("invalidate", True, True),
                   ("void", True, False), ("reopen", True, True)]


def test_meta_object_lead(api):
    status, body = api.get("/meta/objects/lead", "rep1")
    assert status == 200
    fields = {f["name"]: f for f in body["fields"]}
    assert list(fields)[:8] == ["id", "version", "owner", "created_by", "created_at", "updated_by", "updated_at",
                                "name"]
    assert fields["owner"] == {"name": "owner", "type": "user", "label": {"zh": "负责人", "en": "Owner"},
                               "required": False, "read_only": False, "system": True, "target": "user"}
    assert fields["name"] == {"name": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "required": True,
                              "read_only": False, "searchable": True, "max_length": 100}
    assert fields["campaign"] == {"name": "campaign", "type": "lookup", "label": {"zh": "市场活动", "en": "Campaign"},
                                  "required": False, "read_only": False, "target": "campaign", "on_delete": "clear"}
    assert fields["converted_account"]["read_only"] is True
    assert fields["source"]["picklist"] == "lead_source"
    assert fields["source"]["options"][:2] == [
        {"value": "referral", "label": {"zh": "朋友推荐", "en": "Referral"}, "active": True, "attributes": {}},
        {"value": "promotion", "label": {"zh": "促销", "en": "Promotion"}, "active": True, "attributes": {}}]
    assert body["list_view"] == {
        "columns": ["name", "company", "mobile", "source", "campaign", "status", "pool", "intention",
                    "last_followed_at", "owner", "created_at"],
        "filters": ["status", "source", "campaign", "pool", "industry", "region", "owner"], "sort": ["-created_at"]}
    assert body["layout"][0] == {
        "name": "basic", "label": {"zh": "基本信息", "en": "Basics"}, "columns": 2,
        "fields": ["name", "company", "title", "phone", "mobile", "email", "wechat", "address"]}
    assert body["permissions"] == {"create": True, "read": True, "edit": True, "delete": False}
    assert body["validation_rules"] == [{"name": "phone_or_email", "field": "phone", "message": {
        "zh": "电话、手机和邮箱至少填写一项", "en": "Give a phone number, a mobile number or an email"}}]
    assert body["children"] == []
    # the convertible, duplicate rules' and pool behaviors' actions; a rep's role grants claim, return,
    # invalidate, reopen, convert, check_duplicates
    assert [(a["name"], a["bulk"], a["allowed"]) for a in body["actions"]] == ACTIONS_FOR_REP


def test_meta_object_user_password_is_write_only_and_sales_order_has_lines(api):
    fields = {f["name"]: f for f in api.get("/meta/objects/user", "admin")[1]["fields"]}
    assert fields["password"] == {"name": "password", "type": "password", "label": {"zh": "密码", "en": "Password"},
                                  "required": False, "read_only": False, "write_only": True,
                                  "help": {"zh": "只能设置，不会显示", "en": "Write-only; never shown"}}
    order = api.get("/meta/objects/sales_order", "admin")[1]
    assert order["children"] == [{"object": "order_line", "field": "sales_order"}]
    total = next(f for f in order["fields"] if f["name"] == "total_amount")
    assert (total["type"], total["result_type"], total["read_only"]) == ("formula", "currency", True)


def test_meta_object_unknown_or_unreadable(api):
    assert api.get("/meta/objects/nothing", "rep1") == (404, {"error": {
        "code": "not_found", "message": "unknown object nothing"}})
    assert api.get("/meta/objects/lead", "finance") == forbidden("your roles do not allow you to read leads")


def test_meta_flows(api):
    status, body = api.get("/meta/flows", "rep1")
    assert status == 200
    assert [i["name"] for i in body["items"] if i["kind"] == "sales_process"] == [
        "standard_sales", "east_branch", "government", "standard"]  # the shipped processes, then the site's
    body["items"] = [i for i in body["items"] if i["name"] == "standard"]
    assert body == {"items": [{
        "name": "standard", "kind": "sales_process", "object": "opportunity",
        "label": {"zh": "标准销售流程", "en": "Standard process"}, "departments": ["sales"],
        "stages": [
            {"key": "qualify", "label": {"zh": "验证客户", "en": "Qualify"}, "probability": 10, "required_fields": [],
             "tasks": [{"key": "call", "label": {"zh": "电话沟通", "en": "Call"}, "required": True}],
             "approval": None},
            {"key": "propose", "label": {"zh": "Proposal", "en": "Proposal"}, "probability": 60,
             "required_fields": ["amount"], "tasks": [], "approval": {"role": "sales_manager"}},
        ]}]}
    # finance cannot read opportunities; it reads the sales orders, with their approval flow, and the payment plans
    assert [i["name"] for i in api.get("/meta/flows", "finance")[1]["items"]] == [
        "sales_order_approval", "payment_plan_overdue", "visit_frequency_reminder"]  # and the accounts' frequency


# ------------------------------------------------------------------------------------ records


def test_lead_crud(api, people, platform):
    status, created = api.post("/objects/lead/records", "rep1", {
        "name": " 李娜 ", "phone": "13800000001", "source": "expo", "email": "lina@example.com"})
    assert status == 201
    rep1 = people["rep1"]
    lead_id = created["id"]
    assert created == {
        "id": lead_id, "version": 1, "owner": rep1, "created_by": rep1, **stamp(created), "updated_by": rep1,
        "name": "李娜", "company": None, "title": None, "phone": "13800000001", "mobile": None,
        "email": "lina@example.com", "wechat": None, "source": "expo", "campaign": None, "status": "pending",
        "pool": None, "industry": None, "region": None, "intention": None, "company_size": None, "address": None,
        "description": None, "last_followed_at": None, "assigned_at": None, "converted_at": None,
        "converted_account": None, "converted_contact": None, "converted_opportunity": None,
        "invalid_reason": None, "return_reason": None,
    }
    assert list(created)[:7] == ["id", "version", "owner", "created_by", "created_at", "updated_by", "updated_at"]
    # one record's GET also says what the caller may run on it now (a pending lead of rep1's)
    assert api.get(f"/objects/lead/records/{lead_id}", "rep1") == (200, {**created, "_actions": [
        {"name": "convert", "label": {"zh": "转换", "en": "Convert"}},
        {"name": "check_duplicates", "label": {"zh": "查重", "en": "Check duplicates"}},
        {"name": "return", "label": {"zh": "退回线索池", "en": "Return to pool"}},
        {"name": "invalidate", "label": {"zh": "标记无效", "en": "Mark invalid"}}]})

    status, updated = api.patch(f"/objects/lead/records/{lead_id}", "rep1", {"version": 1, "company": "星辰科技"})
    assert status == 200
    assert updated == {**created, "version": 2, "company": "星辰科技", "updated_at": updated["updated_at"]}

    status, history = api.get(f"/objects/lead/records/{lead_id}/history", "rep1")
    assert status == 200
    assert [(h["change"], h["field"], h["old"], h["new"], h["user"]) for h in history["items"]] == [
        ("create", "name", None, "李娜", rep1),
        ("create", "phone", None, "13800000001", rep1),
        ("create", "email", None, "lina@example.com", rep1),
        ("create", "source", None, "expo", rep1),
        ("create", "status", None, "pending", rep1),
        ("update", "company", None, "星辰科技", rep1),
    ]
    assert all(ISO_DATETIME.fullmatch(h["at"]) for h in history["items"])

    assert api.delete(f"/objects/lead/records/{lead_id}", "admin") == (204, None)
    assert api.get(f"/objects/lead/records/{lead_id}", "admin") == (404, {"error": {
        "code": "not_found", "message": f"no lead with id {lead_id}"}})
    assert api.get(f"/objects/lead/records/{lead_id}/history", "admin")[1]["items"][-1]["change"] == "delete"


def test_sales_order_with_inline_lines(api, people):
    rep1 = people["rep1"]
    account = api.post("/objects/account/records", "rep1", {"name": "ACME 科技"})[1]["id"]
    product = api.post("/objects/product/records", "admin", {"name": "Widget", "price": "10.50"})[1]["id"]
    status, order = api.post("/objects/sales_order/records", "rep1", {
        "account": account, "order_date": "2026-05-01", "order_discount": "5",
        "order_line": [{"product": product, "quantity": 2, "unit_price": "10.50", "discount": 10},
                       {"product": product, "quantity": "1", "unit_price": 99.99}]})
    assert status == 201, order
    period = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m")  # the site zone's month
    lines = order["order_line"]
    line_ids = [line["id"] for line in lines]
    common = {"version": 1, "owner": rep1, "created_by": rep1, "updated_by": rep1, "sales_order": order["id"],
              "product": product, "remark": None, "returned_quantity": 0,  # none returned yet
              "price_policy": None}  # no price policy for the product
    assert lines == [
        {"id": line_ids[0], **common, **stamp(lines[0]), "quantity": 2, "unit_price": 10.5, "discount": 10,
         "subtotal": 18.9},
        {"id": line_ids[1], **common, **stamp(lines[1]), "quantity": 1, "unit_price": 99.99, "discount": 0,
         "subtotal": 99.99},
    ]
    assert {k: order[k] for k in ("order_no", "account", "order_date", "status", "lines_amount", "order_discount",
                                  "total_amount", "paid_amount", "invoiced_amount", "version")} == {
        "order_no": f"SO-{period}-0001", "account": account, "order_date": "2026-05-01", "status": "draft",
        "lines_amount": 118.89, "order_discount": 5, "total_amount": 112.95, "paid_amount": 0, "invoiced_amount": 0,
        "version": 1}

    status, changed = api.patch(f"/objects/sales_order/records/{order['id']}", "rep1", {
        "version": order["version"], "order_line": [{"id": line_ids[1], "quantity": 3}]})
    assert status == 200, changed
    assert [(line["id"], line["quantity"], line["subtotal"]) for line in changed["order_line"]] == [
        (line_ids[1], 3, 299.97)]
    assert (changed["lines_amount"], changed["total_amount"]) == (299.97, 284.97)


def test_decimals_are_exact_json_numbers(api, app):
    product = api.post("/objects/product/records", "admin", {"name": "Big", "price": "10.10"})[1]
    raw = app.test_client().get(f"/api/v1/objects/product/records/{product['id']}",
                                headers={"Authorization": f"Bearer {api.token('admin')}"}).get_data(as_text=True)
    assert '"price":10.10' in raw  # the stored decimal's digits, not a float's 10.1


def test_user_records_never_show_a_password(api, people):
    status, user = api.get(f"/objects/user/records/{people['rep1']}", "admin")
    assert status == 200 and "password" not in user
    assert user["username"] == "rep1" and user["roles"] == ["sales_rep"]
    status, created = api.post("/objects/user/records", "admin", {
        "username": "new", "display_name": "新人", "password": "a-long-password"})
    assert status == 201 and "password" not in created
    users = api.get("/objects/user/records?limit=500", "admin")[1]["items"]
    assert users and all("password" not in u for u in users)
    assert api.get("/objects/user/records?password__isnull=false", "admin")[1]["error"]["fields"] == {
        "password__isnull": ["unknown field 'password'"]}


def test_list_filters_sort_and_cursor(api):
    for name, source in (("甲", "expo"), ("乙", "website"), ("丙", "expo"), ("丁", "expo")):
        lead(api, "rep1", name=name, source=source)
    status, page = api.get("/objects/lead/records?source=expo&sort=name&limit=2", "rep1")
    assert status == 200
    assert [r["name"] for r in page["items"]] == ["丁", "丙"] and page["total"] == 3
    assert page["next_cursor"]
    status, rest = api.get(f"/objects/lead/records?source=expo&sort=name&limit=2&cursor={page['next_cursor']}",
                           "rep1")
    assert ([r["name"] for r in rest["items"]], rest["next_cursor"], rest["total"]) == (["甲"], None, 3)
    names = api.get("/objects/lead/records?source__in=website,expo&sort=-name&q=乙", "rep1")[1]
    assert [r["name"] for r in names["items"]] == ["乙"]


def test_list_total_beyond_the_exact_limit(api, platform):
    """With OBJECTPLATFORM_EXACT_TOTAL_LIMIT at 2: rep1's 3 leads are counted up to 2, then estimated (PostgreSQL's
    planner, after ANALYZE: 3; SQLite: the limit + 1, 3 as well); ?total=exact counts them."""
    platform.settings = replace(platform.settings, exact_total_limit=2)
    for name in ("甲", "乙", "丙"):
        lead(api, "rep1", name=name, source="expo" if name != "丙" else "website")
    if platform.engine.dialect.name == "postgresql":
        with platform.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE lead"))
    status, page = api.get("/objects/lead/records?limit=1", "rep1")
    assert (status, len(page["items"]), page["total"], page["total_is_exact"]) == (200, 1, 3, False)
    status, page = api.get("/objects/lead/records?source=expo", "rep1")
    assert (status, page["total"], page["total_is_exact"]) == (200, 2, True)
    status, page = api.get("/objects/lead/records?limit=1&total=exact", "rep1")
    assert (status, page["total"], page["total_is_exact"]) == (200, 3, True)
    assert api.get("/objects/lead/records?total=estimate", "rep1") == (400, {"error": {
        "code": "bad_request", "message": "total: must be exact (count every matching record)",
        "fields": {"total": ["must be exact (count every matching record)"]}}})


def test_list_bad_parameters_are_400(api):
    assert api.get("/objects/lead/records?colour=red", "rep1") == (400, {"error": {
        "code": "bad_request", "message": "colour: unknown field 'colour'",
        "fields": {"colour": ["unknown field 'colour'"]}}})
    status, body = api.get("/objects/lead/records?sort=name;DROP TABLE lead", "rep1")
    assert (status, body["error"]["code"], list(body["error"]["fields"])) == (400, "bad_request", ["sort"])
    assert api.get("/objects/lead/records?limit=0&limit=2", "rep1") == (400, {"error": {
        "code": "bad_request", "message": "limit: given more than once",
        "fields": {"limit": ["given more than once"]}}})
    status, body = api.get("/objects/lead/records?limit=9999&cursor=xyz", "rep1")
    assert status == 400 and set(body["error"]["fields"]) == {"limit", "cursor"}


def test_stale_version_is_409(api):
    record = lead(api, "rep1")
    path = f"/objects/lead/records/{record['id']}"
    assert api.patch(path, "rep1", {"version": 1, "company": "A"})[0] == 200
    status, body = api.patch(path, "rep1", {"version": 1, "company": "B"})
    assert status == 409 and body["error"]["code"] == "conflict"
    assert body["error"]["message"].startswith(f"Lead {record['id']} was changed by 王伟 at ")
    assert api.get(path, "rep1")[1]["company"] == "A"


def test_validation_lists_every_field_error(api):
    status, body = api.post("/objects/lead/records", "rep1", {
        "email": "not-an-email", "source": "tv", "campaign": "abc", "colour": "red", "converted_at": "2024-01-01"})
    assert status == 422
    assert body == {"error": {"code": "validation_failed", "message": "6 field errors", "fields": {
        "name": ["is required"],
        "email": ["not a valid email address"],
        "source": ["'tv' is not one of: referral, promotion, campaign, telemarketing, website, expo, business_card, "
                   "other"],
        "campaign": ["must be a record id (a positive whole number)"],
        "colour": ["unknown field"],
        "converted_at": ["is read-only"],
    }}}
    assert api.get("/objects/lead/records", "rep1")[1]["total"] == 0


def test_patch_without_version_is_422(api):
    record = lead(api, "rep1")
    assert api.patch(f"/objects/lead/records/{record['id']}", "rep1", {"company": "X"}) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error", "fields": {"version": ["required"]}}})


# --------------------------------------------------------------------------- scope and roles


def test_a_rep_cannot_reach_another_reps_lead(api, people):
    theirs = lead(api, "rep2", name="别人的")
    mine = lead(api, "rep1", name="我的")
    path = f"/objects/lead/records/{theirs['id']}"
    missing = (404, {"error": {"code": "not_found", "message": f"no lead with id {theirs['id']}"}})
    assert api.get(path, "rep1") == missing
    assert api.patch(path, "rep1", {"version": 1, "name": "抢走"}) == missing
    assert api.get(f"{path}/history", "rep1") == missing
    assert [r["name"] for r in api.get("/objects/lead/records", "rep1")[1]["items"]] == ["我的"]
    assert api.get("/objects/lead/records?q=别人", "rep1")[1] == {"items": [], "next_cursor": None, "total": 0,
                                                              "total_is_exact": True}
    # the manager sees both reps' leads; the lead itself is unchanged
    assert {r["name"] for r in api.get("/objects/lead/records", "boss")[1]["items"]} == {"我的", "别人的"}
    assert api.get(path, "rep2")[1]["name"] == "别人的"
    assert mine["owner"] == people["rep1"]


def test_a_reference_to_a_record_outside_the_scope_is_refused_as_unknown(api, people):
    """Linking to another rep's account would reveal it exists and attach data to it: same error as no account."""
    theirs = api.post("/objects/account/records", "rep2", {"name": "别人的客户"})[1]["id"]
    mine = api.post("/objects/account/records", "rep1", {"name": "我的客户"})[1]["id"]
    refused = (422, {"error": {"code": "validation_failed", "message": "1 field error",
                               "fields": {"account": [f"no account with id {theirs}"]}}})
    assert api.post("/objects/contact/records", "rep1", {"name": "张三", "account": theirs}) == refused
    status, contact = api.post("/objects/contact/records", "rep1", {"name": "张三", "account": mine})
    assert (status, contact["account"]) == (201, mine)
    assert api.patch(f"/objects/contact/records/{contact['id']}", "rep1",
                     {"version": contact["version"], "account": theirs}) == refused
    status, linked = api.post("/objects/contact/records", "boss", {"name": "李四", "account": theirs})
    assert (status, linked["account"]) == (201, theirs)  # the manager sees both reps' accounts


def test_delete_outside_scope_is_404(api, platform, people):
    """Reps may not delete leads at all (403); a role that may delete still gets 404 outside its scope."""
    theirs = lead(api, "rep2")
    assert api.delete(f"/objects/lead/records/{theirs['id']}", "rep1") == forbidden(
        "your roles do not allow you to delete leads")
    account = api.post("/objects/account/records", "rep2", {"name": "Theirs"})[1]["id"]
    product = api.post("/objects/product/records", "admin", {"name": "W", "price": 1})[1]["id"]
    order = api.post("/objects/sales_order/records", "rep2", {
        "account": account, "order_line": [{"product": product, "quantity": 1, "unit_price": 1}]})[1]
    line = order["order_line"][0]["id"]
    assert api.delete(f"/objects/order_line/records/{line}", "rep1") == (404, {"error": {
        "code": "not_found", "message": f"no order line with id {line}"}})
    assert api.delete(f"/objects/order_line/records/{line}", "rep2") == (204, None)


def test_finance_may_not_create_a_lead(api):
    assert api.post("/objects/lead/records", "finance", {"name": "X", "phone": "13800000000"}) == forbidden(
        "your roles do not allow you to create leads")
    assert api.get("/objects/lead/records", "finance") == forbidden("your roles do not allow you to read leads")
    assert api.get("/objects/lead/records", "admin")[1]["total"] == 0


# ------------------------------------------------------------------------------------ actions


def test_deactivate_user_hands_records_over(api, people, platform):
    first, second = lead(api, "rep1", name="一"), lead(api, "rep1", name="二")
    status, body = api.post(f"/objects/user/records/{people['rep1']}/actions/deactivate", "admin",
                            {"handover_to": people["rep2"]})
    assert status == 200, body
    assert body["record"]["active"] is False and body["record"]["id"] == people["rep1"]
    assert body["handed_over"] == {"lead": 2}
    for record in (first, second):
        moved = api.get(f"/objects/lead/records/{record['id']}", "rep2")[1]
        assert (moved["owner"], moved["version"]) == (people["rep2"], 2)
        last = api.get(f"/objects/lead/records/{record['id']}/history", "rep2")[1]["items"][-1]
        assert (last["change"], last["field"], last["old"], last["new"], last["user"]) == (
            "handover", "owner", people["rep1"], people["rep2"], people["admin"])
    assert api.post("/auth/token", None, {"username": "rep1", "password": PASSWORD})[0] == 401


def test_action_errors(api, people):
    path = f"/objects/user/records/{people['rep1']}/actions"
    assert api.post(f"{path}/deactivate", "boss", {"handover_to": people["rep2"]}) == forbidden(
        "your roles do not allow the action Deactivate and hand over on users")
    assert api.post(f"{path}/explode", "admin", {}) == (404, {"error": {
        "code": "not_found", "message": "User has no action explode"}})
    assert api.post(f"{path}/deactivate", "admin", {"handover_to": "x", "extra": 1}) == (422, {"error": {
        "code": "validation_failed", "message": "2 field errors", "fields": {
            "handover_to": ["must be a record id (a positive whole number)"], "extra": ["unknown parameter"]}}})
    assert api.post(f"{path}/deactivate", "admin") == (422, {"error": {
        "code": "validation_failed", "message": "1 field error", "fields": {"handover_to": ["is required"]}}})
    assert api.post("/objects/user/records/999999/actions/deactivate", "admin", {"handover_to": people["rep2"]}) == (
        404, {"error": {"code": "not_found", "message": "no user with id 999999"}})
    assert api.get(f"/objects/user/records/{people['rep1']}", "admin")[1]["active"] is True


def test_bulk_action_partial_failure(api, people):
    lead(api, "rep1")
    status, body = api.post("/objects/user/actions/deactivate", "admin", {
        "ids": [people["rep1"], people["rep2"], "999999"], "handover_to": people["rep2"]})
    assert status == 200, body
    assert body["succeeded"] == [people["rep1"]]
    assert [f["id"] for f in body["failed"]] == [people["rep2"], "999999"]
    assert body["failed"][0]["error"] == {"code": "validation_failed", "message": "1 field error", "fields": {
        "handover_to": ["must be another user than the one deactivated"]}}
    assert body["failed"][1]["error"] == {"code": "not_found", "message": "no user with id 999999"}
    users = {u["username"]: u["active"] for u in api.get("/objects/user/records?limit=500", "admin")[1]["items"]}
    assert (users["rep1"], users["rep2"]) == (False, True)


def test_bulk_action_request_errors(api, people):
    assert api.post("/objects/user/actions/deactivate", "admin", {"handover_to": people["rep2"]}) == (400, {"error": {
        "code": "bad_request", "message": 'give the records as "ids": [...]',
        "fields": {"ids": ["must be a list of record ids"]}}})
    assert api.post("/objects/user/actions/deactivate", "admin", {"ids": [], "handover_to": people["rep2"]}) == (
        422, {"error": {"code": "validation_failed", "message": "1 field error",
                        "fields": {"ids": ["give at least one id"]}}})
    assert api.post("/objects/lead/actions/deactivate", "admin", {"ids": ["1"]}) == (404, {"error": {
        "code": "not_found", "message": "Lead has no action deactivate"}})


def test_json_body_is_exact(app, api):
    """The body is UTF-8 JSON, not ASCII-escaped."""
    response = app.test_client().get("/api/v1/meta/objects/lead",
                                     headers={"Authorization": f"Bearer {api.token('rep1')}"})
    assert response.mimetype == "application/json"
    assert "销售线索" in response.get_data(as_text=True)
    assert json.loads(response.data)["name"] == "lead"


def test_no_endpoint_but_token_issue_answers_without_a_token(app, people):
    """Every route under /api/v1, with every method it takes, is a 401 without a token (nothing leaks, even
    what exists); only POST /auth/token answers, and it wants credentials."""
    client = app.test_client()
    samples = {"obj": "lead", "record_id": "1", "action": "claim"}
    checked = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", samples.get(name, "1"))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, json={})
            checked.append((method, rule.rule, response.status_code))
    open_ones = [(m, r, s) for m, r, s in checked if s != 401]
    assert open_ones == [("POST", "/api/v1/auth/token", 400)]
    assert len(checked) >= 12
