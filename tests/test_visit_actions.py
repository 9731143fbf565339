"""Visit actions (拜访动作, the checklist behavior) on both databases: each action its own object filled while the visit
is checked in, offered by the visit owner's department (or one above it), required ones refused at check-out; an
action of another department, on someone else's visit or on a visit not checked in refused on every face with
nothing written; the visit page's panel, the fill form and the action views page with each action's export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from support import crm_metadata, migrated_platform
from test_api import PASSWORD, SITE_LAYER, Api
from test_api import app as app  # noqa: F401  (fixtures)
from test_api import people as people  # noqa: F401
from test_pages import login, token
from test_visits import account, act, error, visit
from test_visits import api as api  # noqa: F401  (fixtures: the visits module's site, clock and people)
from test_visits import clock as clock  # noqa: F401
from test_visits import metadata as metadata  # noqa: F401
from test_visits import platform as platform  # noqa: F401

from objectplatform.runtime.behaviors.checklist import CHECKLIST, status
from objectplatform.runtime.errors import Locked

T0 = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
HERE = {"lat": 31.2305, "lng": 121.4737}
FEEDBACK = {"category": "product", "satisfaction": "satisfied", "content": "希望增加移动端审批"}
NOT_OFFERED = ("Competitor info is not an action of 销售部, the department of the Visit's owner; its actions: "
               "Customer feedback")


@pytest.fixture
def north(platform, people):  # noqa: F811
    """华北区 below 销售部, with rep3 in it: offered 销售部's actions and its own 竞品信息."""
    records = platform.records
    region = records.create("department", {"name": "华北区", "parent": people["sales"]}, system=True)["id"]
    return records.create("user", {"username": "rep3", "display_name": "孙伟", "password": PASSWORD,
                                   "roles": ["sales_rep"], "department": region, "manager": people["boss"]},
                          system=True)["id"]


def checked_in(api: Api, as_: str = "rep1") -> str:
    mine = visit(api, account(api, as_), as_)
    assert act(api, mine, "check_in", as_, **HERE)[0] == 200
    return mine


def summarise(api: Api, visit_id: str, summary: str, as_: str = "rep1") -> None:
    version = api.get(f"/objects/visit/records/{visit_id}", as_)[1]["version"]
    assert api.patch(f"/objects/visit/records/{visit_id}", as_, {"version": version, "summary": summary})[0] == 200


def fill(api: Api, action: str, visit_id: str, as_: str = "rep1", **values):
    return api.post(f"/objects/{action}/records", as_, {"visit": visit_id, **values})


def listed(api: Api, action: str, as_: str = "admin") -> list[tuple]:
    return [(r["visit"], r["owner"]) for r in api.get(f"/objects/{action}/records", as_)[1]["items"]]


def test_the_crm_offers_feedback_to_the_sales_departments_and_competitor_info_to_north():
    config = CHECKLIST.config_of(crm_metadata().objects["visit"])
    items = config.listed(crm_metadata().objects["visit"])
    assert [(i.object, i.via, i.departments, i.required) for i in items] == [
        ("customer_feedback", "visit", ("销售部",), True), ("competitor_info", "visit", ("华北区",), False)]
    assert (config.states, config.before, config.department_of) == (("checked_in",), ("check_out",), "owner")


def test_an_action_is_filled_on_a_checked_in_visit_through_the_objects_api(api, people, platform):
    mine = checked_in(api)
    shop = api.get(f"/objects/visit/records/{mine}", "rep1")[1]["account"]
    status_code, body = fill(api, "customer_feedback", mine, **FEEDBACK, needs_follow_up=True)
    assert status_code == 201, body
    assert (body["visit"], body["account"], body["category"], body["satisfaction"], body["content"],
            body["needs_follow_up"], body["owner"]) == (
        mine, shop, "product", "satisfied", "希望增加移动端审批", True, people["rep1"])
    # the visit's checklist: what its owner's department (销售部) is offered, and how many of each are filled
    record = platform.records.get("visit", mine)
    assert status(platform, platform.metadata.objects["visit"], record) == {
        "items": [{"object": "customer_feedback", "via": "visit", "required": True, "filled": 1}],
        "open": True, "missing": []}
    # changed and removed while the visit is checked in
    path = f"/objects/customer_feedback/records/{body['id']}"
    assert api.patch(path, "rep1", {"version": body["version"], "satisfaction": "neutral"})[1]["satisfaction"] == \
        "neutral"
    assert api.delete(path, "rep1")[0] == 204
    assert listed(api, "customer_feedback") == []


def test_a_required_field_of_an_action_is_a_422_naming_it(api):
    mine = checked_in(api)
    assert fill(api, "customer_feedback", mine, category="price") == error(
        422, "validation_failed", "2 field errors", {"satisfaction": ["is required"], "content": ["is required"]})
    assert listed(api, "customer_feedback") == []


def test_an_action_of_another_department_is_refused_naming_the_owners_actions(api, people, north):
    mine = checked_in(api)
    assert fill(api, "competitor_info", mine, competitor="销售易") == error(
        422, "validation_failed", "1 field error", {"visit": [NOT_OFFERED]})
    assert listed(api, "competitor_info") == []
    # a rep of 华北区 (below 销售部) is offered both
    theirs = checked_in(api, "rep3")
    status_code, body = fill(api, "competitor_info", theirs, "rep3", competitor="销售易", price="1200000",
                             threat="high")
    assert (status_code, body["competitor"], body["price"], body["threat"]) == (201, "销售易", 1200000.0, "high")
    assert fill(api, "customer_feedback", theirs, "rep3", **FEEDBACK)[0] == 201
    assert listed(api, "competitor_info") == [(theirs, north)]
    # moving an action to a visit whose owner is not offered it is refused the same way
    path = f"/objects/competitor_info/records/{body['id']}"
    assert api.patch(path, "boss", {"version": body["version"], "visit": mine}) == error(
        422, "validation_failed", "1 field error", {"visit": [NOT_OFFERED]})


def test_an_action_on_someone_elses_visit_names_no_such_visit_like_every_reference_out_of_scope(api, people):
    theirs = checked_in(api, "rep2")
    assert fill(api, "customer_feedback", theirs, "rep1", **FEEDBACK) == error(
        422, "validation_failed", "1 field error", {"visit": [f"no visit with id {theirs}"]})
    assert fill(api, "customer_feedback", "999999", "rep1", **FEEDBACK) == error(
        422, "validation_failed", "1 field error", {"visit": ["no visit with id 999999"]})
    assert listed(api, "customer_feedback") == []
    # their manager reads the visit, so fills it for them
    assert fill(api, "customer_feedback", theirs, "boss", **FEEDBACK)[0] == 201
    assert listed(api, "customer_feedback") == [(theirs, people["boss"])]


def test_the_visits_state_locks_its_actions_before_check_in_and_after_check_out(api, people):
    planned = visit(api, account(api))
    assert fill(api, "customer_feedback", planned, **FEEDBACK) == error(
        409, "locked", f"Visit {planned} is Planned: its Customer feedback is filled only while it is Checked in")
    mine = checked_in(api)
    feedback = fill(api, "customer_feedback", mine, **FEEDBACK)[1]
    summarise(api, mine, "客户同意试点")
    assert act(api, mine, "check_out", **HERE)[1]["record"]["status"] == "completed"
    message = f"Visit {mine} is Completed: its Customer feedback is filled only while it is Checked in"
    assert fill(api, "customer_feedback", mine, **FEEDBACK) == error(409, "locked", message)
    path = f"/objects/customer_feedback/records/{feedback['id']}"
    assert api.patch(path, "rep1", {"version": feedback["version"], "content": "改了"}) == error(409, "locked", message)
    assert api.delete(path, "rep1") == error(409, "locked", message)
    assert [(r["id"], r["content"]) for r in api.get("/objects/customer_feedback/records", "rep1")[1]["items"]] == [
        (feedback["id"], "希望增加移动端审批")]
    # an administrator deleting the completed visit takes its actions to the recycle bin with it
    assert api.delete(f"/objects/visit/records/{mine}", "admin")[0] == 204
    assert listed(api, "customer_feedback") == []


def test_check_out_is_refused_while_a_required_action_is_missing_and_a_department_without_one_needs_none(
        api, people, platform):
    mine = checked_in(api)
    version = api.get(f"/objects/visit/records/{mine}", "rep1")[1]["version"]
    assert api.patch(f"/objects/visit/records/{mine}", "rep1", {"version": version, "summary": "初次拜访"})[0] == 200
    assert act(api, mine, "check_out", **HERE) == error(
        422, "validation_failed", "1 field error",
        {"customer_feedback": ["Customer feedback is required before Check out"]})
    record = api.get(f"/objects/visit/records/{mine}", "rep1")[1]
    assert (record["status"], record["check_out_at"]) == ("checked_in", None)
    assert fill(api, "customer_feedback", mine, **FEEDBACK)[0] == 201
    assert act(api, mine, "check_out", **HERE)[1]["record"]["status"] == "completed"
    # a rep in no department is offered no action: nothing is required of their visits
    loner = platform.records.create("user", {"username": "rep9", "display_name": "周敏", "password": PASSWORD,
                                             "roles": ["sales_rep"]}, system=True)["id"]
    theirs = checked_in(api, "rep9")
    assert status(platform, platform.metadata.objects["visit"], platform.records.get("visit", theirs)) == {
        "items": [], "open": True, "missing": []}
    version = api.get(f"/objects/visit/records/{theirs}", "rep9")[1]["version"]
    api.patch(f"/objects/visit/records/{theirs}", "rep9", {"version": version, "summary": "顺路拜访"})
    body = act(api, theirs, "check_out", "rep9", **HERE)[1]["record"]
    assert (body["status"], body["owner"]) == ("completed", loner)


def test_an_import_of_actions_is_held_to_the_same_guards_row_by_row(api, people, platform):
    mine, planned = checked_in(api), visit(api, account(api))
    result = platform.records.create_many("customer_feedback", [
        {"visit": mine, **FEEDBACK}, {"visit": planned, **FEEDBACK}, {"visit": mine}],
        user=people["rep1"])
    assert [(e.index, {k: [str(m) for m in v] for k, v in e.fields.items()}) for e in result.errors] == [
        (1, {"visit": [f"Visit {planned} is Planned: its Customer feedback is filled only while it is Checked in"]}),
        (2, {"category": ["is required"], "satisfaction": ["is required"], "content": ["is required"]})]
    assert [r["visit"] for r in api.get("/objects/customer_feedback/records", "rep1")[1]["items"]] == [mine]


def test_the_visit_page_lists_its_actions_and_fills_one_with_inline_errors(app, api, people):  # noqa: F811
    mine = checked_in(api)
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    page = client.get(f"/o/visit/{mine}").get_data(as_text=True)
    assert 'id="checklist"' in page and "拜访动作" in page and "切换动作视图" in page
    assert 'data-item="customer_feedback" data-filled="0"' in page and 'data-item="competitor_info"' not in page
    assert "新建客户反馈" in page and "新建竞品信息" not in page  # 销售部 is not offered 竞品信息
    assert "完成前还需填写：客户反馈" in page and "必填" in page and "已填 0 条" in page
    form = f"/o/visit/{mine}/checklist/customer_feedback"
    assert f'href="{form}" data-fill="customer_feedback"' in page
    page = client.get(form).get_data(as_text=True)
    assert "填写客户反馈 · 季度回访" in page and 'name="content"' in page and 'name="visit"' not in page
    response = client.post(form, data={"csrf_token": token(client), "category": "price", "content": ""})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "请修正下面标出的 2 处错误" in page
    response = client.post(form, data={"csrf_token": token(client), **FEEDBACK})
    assert (response.status_code, response.headers["Location"]) == (302, f"/o/visit/{mine}#checklist")
    page = client.get(f"/o/visit/{mine}").get_data(as_text=True)
    assert 'data-item="customer_feedback" data-filled="1"' in page and "完成前还需填写" not in page
    # the action of another department: its form refuses it at the top, nothing written
    response = client.post(f"/o/visit/{mine}/checklist/competitor_info", data={
        "csrf_token": token(client), "competitor": "销售易"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "竞品信息不是销售部（拜访负责人所在部门）的动作；可填写的动作：客户反馈" in page
    assert listed(api, "competitor_info") == []
    # in English
    client.get("/lang/en")
    english = client.get(f"/o/visit/{mine}").get_data(as_text=True)
    assert "Visit actions" in english and "1 filled" in english and "Switch action view" in english


def test_a_completed_visit_shows_its_actions_without_a_fill_button(app, api, people):  # noqa: F811
    mine = checked_in(api)
    fill(api, "customer_feedback", mine, **FEEDBACK)
    version = api.get(f"/objects/visit/records/{mine}", "rep1")[1]["version"]
    api.patch(f"/objects/visit/records/{mine}", "rep1", {"version": version, "summary": "完成"})
    act(api, mine, "check_out", **HERE)
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    page = client.get(f"/o/visit/{mine}").get_data(as_text=True)
    assert 'data-item="customer_feedback" data-filled="1"' in page and "data-fill=" not in page
    assert "动作只在已签到时填写" in page
    assert "新建客户反馈" not in page and "新建竞品信息" not in page  # the related lists offer none either
    response = client.post("/o/customer_feedback/new", data={"csrf_token": token(client), "visit": mine, **FEEDBACK})
    assert response.status_code == 409
    assert f"拜访 {mine} 为已完成：客户反馈只能在已签到时填写或修改" in response.get_data(as_text=True)
    response = client.post(f"/o/visit/{mine}/checklist/customer_feedback", data={"csrf_token": token(client),
                                                                                  **FEEDBACK}, follow_redirects=True)
    assert f"拜访 {mine} 为已完成：客户反馈只能在已签到时填写或修改" in response.get_data(as_text=True)
    assert len(api.get("/objects/customer_feedback/records", "rep1")[1]["items"]) == 1


def test_the_action_views_page_switches_between_each_actions_list_and_export(app, api, people, north):  # noqa: F811
    mine, theirs = checked_in(api), checked_in(api, "rep3")
    fill(api, "customer_feedback", mine, **FEEDBACK)
    fill(api, "customer_feedback", theirs, "rep3", category="service", satisfaction="neutral", content="响应慢")
    fill(api, "competitor_info", theirs, "rep3", competitor="纷享销客")
    client = app.test_client()
    login(client, "boss", PASSWORD)
    page = client.get("/o/visit/checklist").get_data(as_text=True)
    assert "拜访动作" in page and 'data-item="customer_feedback"' in page and 'data-item="competitor_info"' in page
    rows = page.split('data-item="')[1:]
    assert ">2</td>" in rows[0] and ">1</td>" in rows[1] and "华北区" in rows[1] and "销售部" in rows[0]
    assert "没有这个部门" not in page
    assert 'href="/o/customer_feedback/export.csv?labels=zh"' in page
    exported = client.get("/o/customer_feedback/export.csv?labels=zh").get_data(as_text=True)
    table = list(csv.reader(io.StringIO(exported.lstrip("\ufeff"))))
    assert table[0][:6] == ["编号", "拜访", "客户", "反馈类别", "满意度", "反馈内容"]
    assert sorted((r[3], r[4], r[5]) for r in table[1:]) == [("产品功能", "满意", "希望增加移动端审批"),
                                                              ("服务", "一般", "响应慢")]
    # a rep sees their own only
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    rows = client.get("/o/visit/checklist").get_data(as_text=True).split('data-item="')[1:]
    assert ">1</td>" in rows[0] and ">0</td>" in rows[1]



def test_the_action_views_page_marks_a_department_name_no_department_has(app, api, people):  # noqa: F811
    """Departments are records, not metadata: `check` cannot know them, so the page says which names match none."""
    client = app.test_client()
    login(client, "boss", PASSWORD)
    page = client.get("/o/visit/checklist").get_data(as_text=True)
    rows = page.split('data-item="')[1:]
    assert "销售部" in rows[0] and "没有这个部门" not in rows[0]
    assert '<span class="unknown-department" data-unknown="华北区">华北区（没有这个部门）</span>' in rows[1]


STORE_ACTIONS = {"object_defs/store_actions.yaml": """\
kind: object
name: shelf_check
label: {zh: 巡店拍照, en: Shelf check}
fields:
  visit: {type: lookup, to: visit, on_delete: cascade, label: {zh: 拜访, en: Visit}, required: true}
  photo: {type: attachment, label: {zh: 货架照片, en: Shelf photo}, required: true}
---
kind: object
name: stock_count
label: {zh: 产品盘点, en: Stock count}
fields:
  visit: {type: lookup, to: visit, on_delete: cascade, label: {zh: 拜访, en: Visit}, required: true}
  lines_counted: {type: rollup, function: sum, child: stock_count_line, via: stock_count, field: quantity,
                  label: {zh: 盘点数量合计, en: Counted in all}}
---
kind: object
name: stock_count_line
label: {zh: 盘点明细, en: Stock count line}
fields:
  stock_count: {type: master_detail, to: stock_count, label: {zh: 产品盘点, en: Stock count}, required: true}
  product: {type: lookup, to: product, label: {zh: 产品, en: Product}, required: true}
  quantity: {type: integer, label: {zh: 数量, en: Quantity}, required: true, min: 0}
---
kind: object_extension
object: visit
behaviors:
  checklist:
    items:
      customer_feedback: {departments: [销售部], required: true}
      shelf_check: {departments: [销售部], required: true}
      stock_count: {departments: [销售部]}
"""}


@pytest.fixture
def store(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("store"), {"flows/standard.yaml": SITE_LAYER, **STORE_ACTIONS})


def test_an_edition_adds_photo_and_counts_per_product_actions_with_lines(platform, people, store, tmp_path):
    """What an industry edition (FMCG's 巡店拍照 and 产品盘点) declares: a required photo, and counts per product as
    the lines of a master_detail child, filled in one write and guarded like the CRM's actions."""
    assert [i.object for i in CHECKLIST.config_of(store.objects["visit"]).listed(store.objects["visit"])] == [
        "customer_feedback", "shelf_check", "stock_count"]
    with migrated_platform(str(platform.engine.url.render_as_string(hide_password=False)), tmp_path / "s",
                           store) as shop:
        shop.clock = platform.clock
        records = shop.records
        sales = records.create("department", {"name": "销售部"}, system=True)["id"]
        rep = records.create("user", {"username": "rep", "display_name": "王伟", "password": PASSWORD,
                                      "roles": ["sales_rep"], "department": sales}, system=True)["id"]
        tea, water = (records.create("product", {"name": name, "price": "5"}, system=True)["id"]
                      for name in ("绿茶", "矿泉水"))
        place = records.create("account", {"name": "便利店", "location": HERE}, user=rep)["id"]
        mine = records.create("visit", {"subject": "巡店", "account": place, "planned_at": T0}, user=rep)["id"]
        planned = records.create("visit", {"subject": "下周巡店", "account": place, "planned_at": T0}, user=rep)["id"]
        records.update("visit", mine, {"status": "checked_in", "check_in_at": T0}, version=1, system=True)
        counted = records.create("stock_count", {"visit": mine, "stock_count_line": [
            {"product": tea, "quantity": 24}, {"product": water, "quantity": 36}]}, user=rep)
        assert (counted["lines_counted"], [(line["product"], line["quantity"])
                                           for line in counted["stock_count_line"]]) == (60, [(tea, 24), (water, 36)])
        with pytest.raises(Locked) as refused:
            records.create("stock_count", {"visit": planned, "stock_count_line": [{"product": tea, "quantity": 1}]},
                           user=rep)
        assert str(refused.value) == (
            f"Visit {planned} is Planned: its Stock count is filled only while it is Checked in")
        photo = {"filename": "货架.jpg", "content_base64": "/9j/4AAQ", "content_type": "image/jpeg"}
        assert records.create("shelf_check", {"visit": mine, "photo": photo}, user=rep)["photo"]["name"] == "货架.jpg"
        current = records.get("visit", mine)
        assert status(shop, shop.metadata.objects["visit"], current) == {
            "items": [{"object": "customer_feedback", "via": "visit", "required": True, "filled": 0},
                      {"object": "shelf_check", "via": "visit", "required": True, "filled": 1},
                      {"object": "stock_count", "via": "visit", "required": False, "filled": 1}],
            "open": True, "missing": ["customer_feedback"]}
