"""The work queue on SQLite and PostgreSQL: notifications and to-dos with their dedupe keys, a to-do for a
role seen by its holders, the API (each caller sees only their own, titles in their language), the
inbox and notification pages with the bell, and a site rule's set, role to-do and notify actions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from support import FixedClock, crm_metadata
from test_api import PASSWORD
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import people as people  # noqa: F401
from test_pages import login, token

from objectplatform.metadata import Label
from objectplatform.runtime import Conflict, NotFound, rules
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.workqueue import fill, fill_label, work_queue

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
SITE_RULE = """\
kind: rule
name: stale_waiting_leads
label: {zh: 清理积压线索, en: Stale waiting leads}
object: lead
trigger: {schedule: daily at 02:00}
condition: status == "unassigned" and days_since(updated_at) >= 30
actions:
  - set: {status: invalid, invalid_reason: 超过 30 天无人认领}
  - notify: {roles: [sales_manager], users: [finance], submitter: true}
    message: {zh: "线索「{name}」（{source}）已自动标记为无效", en: "Lead {name} ({source}) was marked invalid"}
  - todo: {role: sales_manager, action: reopen, title: {zh: "复核线索「{name}」", en: "Review lead {name}"}}
"""


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {"flows/stale.yaml": SITE_RULE})


def notify(platform, users, title, key: str, **where) -> int:
    with platform.records.transaction() as conn:
        return work_queue(platform).notify(conn, users, title, key=key, now=T0, **where)


def add_todo(platform, key: str, title, **spec) -> list[str]:
    with platform.records.transaction() as conn:
        return work_queue(platform).add_todo(conn, kind=spec.pop("kind", "task"), title=title, key=key, now=T0,
                                             **spec)


# ------------------------------------------------------------------------------ the service


def test_placeholders_are_filled_from_the_record_and_unknown_ones_left():
    assert fill("线索 {name}（{company}）{nope} {}", {"name": "张三", "company": None}) == "线索 张三（）{nope} {}"
    assert fill_label({"zh": "跟进 {name}"}, {"name": "张三"}) == Label("跟进 张三", "跟进 张三")
    assert fill_label("Call {name}", {"name": "Ann"}) == Label("Call Ann", "Call Ann")


def test_a_notification_key_is_written_once_per_user(platform, people):
    title = Label("合同已审批", "Contract approved")
    assert notify(platform, [people["rep1"], people["rep2"]], title, "approved:7", object="lead", record_id="7") == 2
    assert notify(platform, [people["rep1"], people["rep2"], people["boss"]], title, "approved:7") == 1
    items, unread = work_queue(platform).notifications_for(people["rep1"])
    assert unread == 1
    assert [(n.title_zh, n.title_en, n.object, n.record_id, n.created_at, n.read_at) for n in items] == [
        ("合同已审批", "Contract approved", "lead", "7", T0, None)]


def test_a_fan_out_to_many_users_is_one_batch(platform):
    assert notify(platform, range(1, 702), "系统维护通知", "maintenance:1") == 701
    assert notify(platform, range(1, 702), "系统维护通知", "maintenance:1") == 0
    assert work_queue(platform).unread_count(650) == 1


def test_a_to_do_for_a_role_is_seen_by_its_holders_and_done_once(platform, people):
    (todo_id,) = add_todo(platform, "ship:12", Label("确认发货 SO-12", "Confirm shipment SO-12"), role="sales_rep",
                          object="lead", record_id="12", action="confirm_shipment")
    assert add_todo(platform, "ship:12", "again", role="sales_rep") == []
    service = work_queue(platform)

    def titles(user: str) -> list[str]:
        return [t.title_zh for t in service.todos_for(access_for(platform, people[user]))]

    assert titles("rep1") == titles("rep2") == ["确认发货 SO-12"]
    assert titles("boss") == titles("finance") == []
    done = service.done(access_for(platform, people["rep2"]), todo_id, now=T0 + timedelta(hours=1))
    assert (done.id, done.done_at, done.role, done.action) == (todo_id, T0 + timedelta(hours=1), "sales_rep",
                                                             "confirm_shipment")
    assert titles("rep1") == titles("rep2") == []
    with pytest.raises(Conflict) as caught:
        service.done(access_for(platform, people["rep1"]), todo_id)
    assert caught.value.message == f"to-do {todo_id} is already done"
    assert add_todo(platform, "ship:12", "again", role="sales_rep") != []  # closed: the key may open again


def test_close_todos_by_key_prefix_and_newest_first(platform, people):
    rep1 = people["rep1"]
    first = add_todo(platform, "approval:1:step1", "审批一", users=[rep1], kind="approval", approval_id=1)
    second = add_todo(platform, "approval:2:step1", "审批二", users=[rep1], kind="approval", approval_id=2)
    access = access_for(platform, rep1)
    items = work_queue(platform).todos_for(access)
    assert [(t.id, t.kind, t.approval_id) for t in items] == [(second[0], "approval", "2"), (first[0], "approval", "1")]
    with platform.records.transaction() as conn:
        assert work_queue(platform).close_todos(conn, key_prefix="approval:1:", now=T0) == 1
    assert [t.title_zh for t in work_queue(platform).todos_for(access)] == ["审批二"]
    with pytest.raises(NotFound):
        work_queue(platform).done(access_for(platform, people["rep2"]), second[0])


# ------------------------------------------------------------------------------ the API


@pytest.fixture
def queue(platform, people) -> dict:
    """A to-do for rep1, one for rep2, one for the sales_rep role; two notifications for rep1, one for rep2."""
    ids = {
        "rep1": add_todo(platform, "t:1", Label("给张三回电话", "Call Zhang San back"), users=[people["rep1"]],
                         object="lead", record_id="5")[0],
        "rep2": add_todo(platform, "t:2", Label("给李四回电话", "Call Li Si back"), users=[people["rep2"]])[0],
        "role": add_todo(platform, "t:3", Label("确认发货", "Confirm shipment"), role="sales_rep")[0],
    }
    notify(platform, [people["rep1"]], Label("线索已分配给您", "A lead was assigned to you"), "n:1",
           object="lead", record_id="5")
    notify(platform, [people["rep1"], people["rep2"]], Label("系统维护", "Maintenance"), "n:2")
    return ids


def test_todos_through_the_api_are_the_callers_own_and_their_roles(api, queue, people):
    status, body = api.get("/todos", "rep1")
    assert status == 200
    assert [(t["id"], t["title"], t["title_en"], t["user"], t["role"]) for t in body["items"]] == [
        (queue["role"], "确认发货", "Confirm shipment", None, "sales_rep"),
        (queue["rep1"], "给张三回电话", "Call Zhang San back", people["rep1"], None)]
    assert body["items"][1] == {
        "id": queue["rep1"], "kind": "task", "title": "给张三回电话", "title_zh": "给张三回电话",
        "title_en": "Call Zhang San back", "object": "lead", "record_id": "5", "created_at": T0.isoformat(),
        "action": None, "approval_id": None, "user": people["rep1"], "role": None, "done": False, "done_at": None}
    assert [t["title"] for t in api.get("/todos?lang=en", "rep1")[1]["items"]] == ["Confirm shipment",
                                                                                  "Call Zhang San back"]
    english = api.get("/todos", "rep1", headers={"Accept-Language": "en-US,en;q=0.9"})[1]
    assert [t["title"] for t in english["items"]] == ["Confirm shipment", "Call Zhang San back"]
    assert [t["title"] for t in api.get("/todos", "boss")[1]["items"]] == []
    assert api.post(f"/todos/{queue['rep1']}/done", "rep2") == (404, {"error": {
        "code": "not_found", "message": f"no to-do with id {queue['rep1']}"}})
    status, done = api.post(f"/todos/{queue['rep1']}/done?lang=en", "rep1")
    assert status == 200 and (done["done"], done["title"]) == (True, "Call Zhang San back")
    assert api.post(f"/todos/{queue['rep1']}/done", "rep1") == (409, {"error": {
        "code": "conflict", "message": f"to-do {queue['rep1']} is already done"}})
    assert [t["id"] for t in api.get("/todos", "rep1")[1]["items"]] == [queue["role"]]
    assert api.get("/todos?lang=fr", "rep1") == (400, {"error": {
        "code": "bad_request", "message": "lang must be zh or en, not 'fr'", "fields": {"lang": ["must be zh or en"]}}})
    assert api.post("/todos/abc/done", "rep1")[0] == 404
    assert api.call("GET", "/todos")[0] == 401


def test_notifications_through_the_api(api, queue, people):
    status, body = api.get("/notifications", "rep1")
    assert status == 200 and body["unread"] == 2
    assert [(n["title"], n["title_en"], n["read"]) for n in body["items"]] == [
        ("系统维护", "Maintenance", False), ("线索已分配给您", "A lead was assigned to you", False)]
    first = body["items"][1]
    assert first == {"id": first["id"], "title": "线索已分配给您", "title_zh": "线索已分配给您",
                     "title_en": "A lead was assigned to you", "object": "lead", "record_id": "5",
                     "created_at": T0.isoformat(), "read": False, "read_at": None}
    theirs = api.get("/notifications", "rep2")[1]["items"][0]["id"]
    assert api.post(f"/notifications/{theirs}/read", "rep1") == (404, {"error": {
        "code": "not_found", "message": f"no notification with id {theirs}"}})
    assert api.post(f"/notifications/{first['id']}/read", "rep1") == (200, {"marked": 1, "unread": 1})
    assert api.post(f"/notifications/{first['id']}/read", "rep1") == (200, {"marked": 0, "unread": 1})
    unread = api.get("/notifications?unread=true&lang=en", "rep1")[1]
    assert ([n["title"] for n in unread["items"]], unread["unread"]) == (["Maintenance"], 1)
    assert api.post("/notifications/read", "rep1") == (200, {"marked": 1, "unread": 0})
    assert api.get("/notifications", "rep2")[1]["unread"] == 1
    assert api.get("/notifications?unread=maybe", "rep1")[0] == 400


# ------------------------------------------------------------------------------ the pages


def test_the_bell_inbox_and_notification_pages(app, platform, queue, people):
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    home = client.get("/").get_data(as_text=True)
    assert re.search(r'<a class="bell has-unread" href="/notifications"\s+title="消息通知，2 条未读"', home)
    assert '<span class="count">2</span>' in home
    assert re.search(r'<h2>我的待办</h2>\s*<span class="count">2</span>', home)  # the rep's home (kind: dashboard)
    inbox = client.get("/todos").get_data(as_text=True)
    assert re.findall(r'<tr data-id="(\d+)">', inbox) == [queue["role"], queue["rep1"]]
    assert '<a href="/o/lead/5">给张三回电话</a>' in inbox and "角色：销售代表" in inbox
    done = client.post(f"/todos/{queue['rep1']}/done", data={"csrf_token": token(client)})
    assert done.status_code == 302 and done.headers["Location"] == "/todos"
    inbox = client.get("/todos").get_data(as_text=True)
    assert "待办已完成" in inbox and re.findall(r'<tr data-id="(\d+)">', inbox) == [queue["role"]]
    refused = client.post(f"/todos/{queue['rep2']}/done", data={"csrf_token": token(client)})
    assert refused.status_code == 404
    page = client.get("/notifications").get_data(as_text=True)
    assert re.findall(r'<li class="(unread|read)" data-id="\d+">', page) == ["unread", "unread"]
    assert '<a href="/o/lead/5">线索已分配给您</a>' in page
    client.post("/notifications/read", data={"csrf_token": token(client)})
    page = client.get("/notifications").get_data(as_text=True)
    assert re.findall(r'<li class="(unread|read)" data-id="\d+">', page) == ["read", "read"]
    assert '<a class="bell" href="/notifications"' in page and '<span class="count">0</span>' in page
    client.get("/lang/en")
    assert "Nothing to do" not in client.get("/todos").get_data(as_text=True)
    assert "Confirm shipment" in client.get("/todos").get_data(as_text=True)


# ------------------------------------------------------------------------------ a site rule's actions


def test_a_rules_set_notify_and_role_to_do_are_set_based(platform, people):
    platform.clock = FixedClock(T0)
    records = platform.records
    pool = records.create("lead_pool", {"name": "华北区线索池"}, system=True)["id"]
    marketing = records.create("user", {"username": "mkt", "display_name": "市场", "password": PASSWORD,
                                        "roles": ["marketing"]}, system=True)["id"]
    leads = []
    for name, mobile in (("张三", "13900000001"), ("李四", "13900000002")):
        lead = records.create("lead", {"name": name, "mobile": mobile, "source": "expo"}, user=marketing)["id"]
        pool_behavior.enter_pool(platform, "lead", lead, pool, user=marketing)
        leads.append(lead)
    run = rules.run_rules(platform, T0 + timedelta(days=30), ["stale_waiting_leads"])
    assert run == [{"rule": "stale_waiting_leads", "matched": 2, "notified": 6, "todos": 2, "closed": 0,
                    "updated": 2, "recycled": 0, "warned": 0}]
    assert [(r["status"], r["invalid_reason"], r["version"]) for r in map(lambda i: records.get("lead", i), leads)] \
        == [("invalid", "超过 30 天无人认领", 3)] * 2
    assert [(e["change"], e["field"], e["old"], e["new"], e["user"]) for e in records.history("lead", leads[0])
            if e["change"] == "rule"] == [("rule", "status", "unassigned", "invalid", None),
                                          ("rule", "invalid_reason", None, "超过 30 天无人认领", None)]
    for user in ("boss", "finance"):
        items, _ = work_queue(platform).notifications_for(people[user])
        assert sorted((n.title_zh, n.title_en) for n in items) == [
            ("线索「张三」（展会）已自动标记为无效", "Lead 张三 (Trade show) was marked invalid"),
            ("线索「李四」（展会）已自动标记为无效", "Lead 李四 (Trade show) was marked invalid")]
    assert work_queue(platform).unread_count(marketing) == 2  # the submitter (created_by)
    assert work_queue(platform).unread_count(people["rep1"]) == 0
    boss_todos = work_queue(platform).todos_for(access_for(platform, people["boss"]))
    assert sorted((t.title_zh, t.role, t.action, t.kind) for t in boss_todos) == [
        ("复核线索「张三」", "sales_manager", "reopen", "task"),
        ("复核线索「李四」", "sales_manager", "reopen", "task")]
    again = rules.run_rules(platform, T0 + timedelta(days=30, hours=1), ["stale_waiting_leads"])
    assert again == [{"rule": "stale_waiting_leads", "matched": 0, "notified": 0, "todos": 0, "closed": 2,
                      "updated": 0, "recycled": 0, "warned": 0}]
