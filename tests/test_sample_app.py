"""The helpdesk sample app (tests/apps/helpdesk) without the CRM, on both databases: tickets wait in queues and
are claimed and assigned with the pool behavior, move through their lifecycle and convert into tasks, and
the app's own action and page plug in through the app API, all with no engine change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import FixedClock
from test_api import PASSWORD, Api
from test_pages import login

from objectplatform.cli import main
from objectplatform.metadata import BASE_LAYER, MetadataError, default_layers, load_metadata
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.apps import app_layers, find_apps
from objectplatform.runtime.config import ROOT
from objectplatform.runtime.errors import Conflict
from objectplatform.runtime.permissions import access_for
from objectplatform.translations import message_text
from objectplatform.web import create_app

HELPDESK = "apps.helpdesk:app"  # tests/ is on sys.path
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
NOW = "2026-11-27T02:00:00+00:00"  # T0 as the API writes it


@pytest.fixture(scope="module")
def metadata():
    return load_metadata(default_layers(ROOT, (), None, app_layers(find_apps([HELPDESK]))))


@pytest.fixture
def platform(migrated_database_url, tmp_path, metadata):
    settings = Settings.from_env({}, database_url=migrated_database_url, instance_path=tmp_path, apps=(HELPDESK,))
    platform = open_platform(settings, metadata)
    platform.clock = FixedClock(T0)
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture
def people(platform) -> dict[str, str]:
    """Two agents, a supervisor, and the 一线支持 queue (daily claim limit 3) the agents are members of."""
    records = platform.records

    def user(username: str, roles: list[str]) -> str:
        values = {"username": username, "display_name": username, "password": PASSWORD, "roles": roles}
        return records.create("user", values, system=True)["id"]

    ids = {"agent1": user("agent1", ["agent"]), "agent2": user("agent2", ["agent"]), "sup": user("sup", ["supervisor"])}
    ids["queue"] = records.create("ticket_queue", {"name": "一线支持", "daily_claim_limit": 3,
                                                   "members": [ids["agent1"], ids["agent2"]], "admins": [ids["sup"]]},
                                  system=True)["id"]
    return ids


@pytest.fixture
def api(platform, people) -> Api:
    return Api(create_app(platform).test_client())


def ticket(platform, people, subject: str, **values) -> dict:
    """A ticket the supervisor files into the queue."""
    return platform.records.create("ticket", {"subject": subject, "queue": people["queue"], **values},
                                   user=people["sup"])


def act(platform, user: str, record: str, action: str, params=None) -> dict:
    return run_action(platform, access_for(platform, user), "ticket", action, record, params or {})


def test_the_app_loads_alone_through_the_app_api(metadata):
    assert [app.name for app in find_apps([HELPDESK])] == ["helpdesk"]
    assert sorted(metadata.objects) == ["department", "task", "ticket", "ticket_queue", "user"]
    assert list(metadata.objects["ticket"].behaviors) == ["pool", "convertible"]
    with pytest.raises(MetadataError) as caught:
        find_apps(["helpdesk"])
    assert [str(p) for p in caught.value.problems] == ["OBJECTPLATFORM_APPS: unknown app 'helpdesk' (installed: crm)"]


def test_the_app_s_users_and_departments_are_the_engine_s_own(metadata, monkeypatch, tmp_path, capsys):
    for name in ("user", "department"):
        assert Path(metadata.objects[name].source.file).resolve() == BASE_LAYER / "object_defs" / f"{name}.yaml"
    monkeypatch.setenv("OBJECTPLATFORM_APPS", HELPDESK)
    monkeypatch.setenv("OBJECTPLATFORM_INSTANCE_PATH", str(tmp_path))
    for name in ("DATABASE_URL", "REDIS_URL", "TEMPLATES", "CUSTOM_METADATA"):
        monkeypatch.delenv(f"OBJECTPLATFORM_{name}", raising=False)
    assert main(["check"]) == 0
    assert capsys.readouterr() == (
        "ok: 5 objects, 3 picklists, 3 roles, 0 flows, 0 reports (layers: base, app helpdesk)\n", "")


def test_a_filed_ticket_waits_in_its_queue_and_members_claim_up_to_the_daily_limit(api, platform, people):
    tickets = [ticket(platform, people, f"打印机故障 {n}") for n in range(5)]
    assert [(t["status"], t["owner"], t["queue"]) for t in tickets] == [("waiting", None, people["queue"])] * 5
    for t in tickets[:3]:
        claimed = act(platform, people["agent1"], t["id"], "claim")["record"]
        assert (claimed["status"], claimed["owner"], claimed["claimed_at"]) == ("claimed", people["agent1"], T0)
    limit = "you claimed 3 tickets from ticket queue 一线支持 today, its daily_claim_limit is 3"
    with pytest.raises(Conflict) as caught:
        act(platform, people["agent1"], tickets[3]["id"], "claim")
    assert caught.value.message == limit
    assert message_text(caught.value.message, "zh") == "您今天已从“一线支持”领取 3 条工单，达到每日上限 3 条"
    status, body = api.post(f"/objects/ticket/records/{tickets[4]['id']}/actions/claim", "agent1", {})
    assert (status, body["error"]["message"]) == (409, limit)
    assert [platform.records.get("ticket", t["id"])["status"] for t in tickets[3:]] == ["waiting", "waiting"]
    claimed = act(platform, people["agent2"], tickets[3]["id"], "claim")["record"]  # the limit is each member's
    assert (claimed["status"], claimed["owner"]) == ("claimed", people["agent2"])
    with pytest.raises(Conflict) as caught:
        act(platform, people["agent2"], tickets[3]["id"], "claim")
    assert caught.value.message == f"Ticket {tickets[3]['id']} is already claimed: it is Claimed"


def test_the_queue_board_names_the_queue_in_its_own_words(platform, people):
    client = create_app(platform).test_client()
    login(client, "agent1", PASSWORD)
    assert "<h1>工单队列看板</h1>" in client.get("/pools").text


def test_the_queue_s_own_status_and_field_names_serve_return_assign_invalidate_and_reopen(platform, people):
    t = ticket(platform, people, "网络中断")
    act(platform, people["agent1"], t["id"], "claim")
    back = act(platform, people["agent1"], t["id"], "return", {"reason": "不是我的领域"})["record"]
    assert (back["status"], back["owner"], back["claimed_at"], back["return_note"]) == (
        "waiting", None, None, "不是我的领域")
    with pytest.raises(Conflict) as caught:
        act(platform, people["agent1"], t["id"], "return", {"reason": "again"})
    assert caught.value.message == f"Ticket {t['id']} is Waiting: it cannot be returned"
    assigned = act(platform, people["sup"], t["id"], "assign", {"owner": people["agent2"]})["record"]
    assert (assigned["status"], assigned["owner"], assigned["claimed_at"]) == ("claimed", people["agent2"], T0)
    rejected = act(platform, people["sup"], t["id"], "invalidate", {"reason": "重复工单"})["record"]
    assert (rejected["status"], rejected["close_reason"]) == ("rejected", "重复工单")
    with pytest.raises(Conflict) as caught:
        act(platform, people["agent2"], t["id"], "convert", {"task": {}})
    assert caught.value.message == f"Ticket {t['id']} is Invalid: it cannot be converted"
    assert act(platform, people["sup"], t["id"], "reopen")["record"]["status"] == "claimed"


def test_a_ticket_moves_through_its_lifecycle(platform, people):
    t = ticket(platform, people, "无法登录")
    assert (t["created_at"], t["updated_at"]) == (T0, T0)  # the platform's clock, not the wall's
    act(platform, people["agent1"], t["id"], "claim")
    assert act(platform, people["agent1"], t["id"], "start")["record"]["status"] == "working"
    platform.clock.advance(hours=2)
    resolved = act(platform, people["agent1"], t["id"], "resolve", {"resolution": "重置了密码"})["record"]
    assert (resolved["status"], resolved["resolution"]) == ("resolved", "重置了密码")
    assert (resolved["resolved_at"], resolved["updated_at"]) == (datetime(2026, 11, 27, 4, 0, tzinfo=UTC),) * 2
    with pytest.raises(Conflict):
        act(platform, people["agent1"], t["id"], "start")
    assert [(e["field"], e["old"], e["new"]) for e in platform.records.history("ticket", t["id"])
            if e["change"] == "resolve" and e["field"] == "status"] == [("status", "working", "resolved")]


def test_through_the_api_a_supervisor_assigns_the_agent_escalates_and_converts_into_a_task(api, platform, people):
    t = ticket(platform, people, "服务器迁移", description="周末迁移到新机房", customer_email="it@example.cn")
    path = f"/objects/ticket/records/{t['id']}"
    status, body = api.post(f"{path}/actions/assign", "sup", {"owner": people["agent2"]})
    assert (status, body["record"]["status"], body["record"]["owner"]) == (200, "claimed", people["agent2"])
    status, body = api.post(f"{path}/actions/escalate", "agent2", {})
    assert (status, body["record"]["priority"]) == (200, "urgent")
    status, body = api.post(f"{path}/actions/convert", "agent2", {"task": {}})
    assert status == 200, body
    task = body["task"]
    assert {k: task[k] for k in ("title", "notes", "priority", "owner", "done")} == {
        "title": "服务器迁移", "notes": "周末迁移到新机房", "priority": "urgent", "owner": people["agent2"],
        "done": False}
    status, body = api.get(path, "agent2")
    assert (body["status"], body["converted_task"], body["converted_at"]) == ("converted", task["id"], NOW)
    status, body = api.post(f"{path}/actions/convert", "agent2", {"task": {}})
    converted = f"Ticket {t['id']} is Converted to a task: it cannot be converted"
    assert (status, body["error"]["message"]) == (409, converted)


def test_the_app_s_page_is_served_beside_the_engine_s(api, platform, people):
    response = api.client.get("/helpdesk/states")
    assert (response.status_code, response.get_json()) == (200, [
        ["waiting", "Waiting"], ["claimed", "Claimed"], ["working", "In progress"], ["resolved", "Resolved"],
        ["converted", "Converted to a task"], ["rejected", "Invalid"], ["cancelled", "Voided"]])
