"""Users are kept, on both databases: no path deletes a user (409 pointing to the deactivate action, and the page
offers no delete button), and the last active administrator can be neither deactivated nor stripped of the admin
role, through the API, the records service and the deactivate action."""

from __future__ import annotations

import threading
import time

import pytest
from test_api import ERROR_RESPONSES, PASSWORD, lead
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_pages import login, token

from objectplatform.runtime.errors import Conflict

NOT_DELETABLE = {"code": "conflict", "reason": "user.not_deletable", "message": (
    "a user is never deleted: deactivate {user} with the action deactivate, handing their records over to another "
    "user")}


def last_admin(username: str) -> tuple[int, dict]:
    return 409, {"error": {"code": "conflict", "reason": "user.last_admin", "params": {"user": username}, "message": (
        f"{username} is the last active administrator: they can be neither deactivated nor stripped of the "
        "administrator role; make another user an administrator first")}}


def call(api, method: str, path: str, as_: str, json=None) -> tuple[int, dict | None]:
    """The API's answer, an error with its reason and params (Api.call leaves them out of what it returns)."""
    status, body = api.call(method, path, as_, json=json)
    return status, ERROR_RESPONSES[-1][3] if status >= 400 else body


def user_record(api, user_id: str) -> dict:
    status, body = api.get(f"/objects/user/records/{user_id}", "admin")
    assert status == 200, body
    return body


# ------------------------------------------------------------------------------------ never deleted


@pytest.mark.parametrize("who", ["rep1", "admin"])
def test_the_api_never_deletes_a_user(api, people, who):
    owned = lead(api, "rep1")
    before = user_record(api, people[who])
    status, body = call(api, "DELETE", f"/objects/user/records/{people[who]}", "admin")
    expected = NOT_DELETABLE["message"].format(user=who)
    assert (status, body) == (409, {"error": {**NOT_DELETABLE, "message": expected,
                                              "params": {"user": who, "action": "deactivate"}}})
    assert user_record(api, people[who]) == before
    assert api.get(f"/objects/lead/records/{owned['id']}", "rep1")[1]["owner"] == people["rep1"]
    assert api.get("/meta/objects", who)[0] == 200  # still signs in


def test_the_records_service_never_deletes_a_user(platform, people):
    with pytest.raises(Conflict) as refused:
        platform.records.delete("user", people["rep2"], user=people["admin"])
    assert (refused.value.reason, refused.value.params) == ("user.not_deletable",
                                                            {"user": "rep2", "action": "deactivate"})
    assert platform.records.get("user", people["rep2"])["username"] == "rep2"
    history = platform.records.history("user", people["rep2"])
    assert [entry["change"] for entry in history if entry["change"] == "delete"] == []


def test_the_record_page_offers_no_delete_on_a_user_and_refuses_one(app, platform, people):
    client = app.test_client()
    app.config["TESTING"] = True
    login(client, "admin", PASSWORD)
    lead_id = platform.records.create("lead", {"name": "客户", "phone": "13800000000"}, user=people["admin"])["id"]
    assert f"/o/lead/{lead_id}/delete" in client.get(f"/o/lead/{lead_id}").get_data(as_text=True)
    page = client.get(f"/o/user/{people['rep1']}")
    assert page.status_code == 200 and f"/o/user/{people['rep1']}/delete" not in page.get_data(as_text=True)
    refused = client.post(f"/o/user/{people['rep1']}/delete", data={"csrf_token": token(client)})
    assert refused.status_code == 302 and refused.headers["Location"] == f"/o/user/{people['rep1']}"
    assert "用户不能删除：请用操作“停用并交接”（deactivate）停用 rep1，并把其记录交接给其他用户" in client.get(
        refused.headers["Location"]).get_data(as_text=True)
    assert platform.records.get("user", people["rep1"])["username"] == "rep1"


# ------------------------------------------------------------------------------- the last admin stays


def test_the_last_admin_keeps_the_role_and_stays_active(api, people):
    path = f"/objects/user/records/{people['admin']}"
    version = user_record(api, people["admin"])["version"]
    assert call(api, "PATCH", path, "admin", {"version": version, "roles": ["sales_manager"]}) == last_admin("admin")
    assert call(api, "PATCH", path, "admin", {"version": version, "roles": []}) == last_admin("admin")
    assert call(api, "PATCH", path, "admin", {"version": version, "active": False}) == last_admin("admin")
    assert call(api, "POST", f"{path}/actions/deactivate", "admin",
                {"handover_to": people["rep1"]}) == last_admin("admin")
    kept = user_record(api, people["admin"])
    assert (kept["version"], kept["roles"], kept["active"]) == (version, ["admin"], True)
    # a change keeping the admin role is no demotion
    status, body = api.patch(path, "admin", {"version": version, "roles": ["admin", "finance"]})
    assert status == 200 and body["roles"] == ["admin", "finance"]


def test_an_admin_may_step_down_while_another_active_one_stays(api, people, platform):
    platform.records.create("user", {"username": "old_admin", "display_name": "前管理员", "roles": ["admin"],
                                     "active": False}, system=True)
    path = f"/objects/user/records/{people['admin']}"
    rep2 = f"/objects/user/records/{people['rep2']}"
    # an inactive administrator does not count
    assert call(api, "PATCH", path, "admin", {"version": 1, "active": False}) == last_admin("admin")
    assert api.patch(rep2, "admin", {"version": 1, "roles": ["admin"]})[0] == 200
    status, body = api.patch(path, "admin", {"version": 1, "roles": ["sales_manager"]})
    assert status == 200 and body["roles"] == ["sales_manager"]
    assert call(api, "POST", f"{rep2}/actions/deactivate", "rep2", {"handover_to": people["rep1"]}) == last_admin(
        "rep2")
    assert user_record(api, people["rep2"])["active"] is True


def test_the_records_service_keeps_the_last_admin(platform, people):
    with pytest.raises(Conflict) as refused:
        platform.records.update("user", people["admin"], {"active": False}, version=None, system=True)
    assert (refused.value.reason, refused.value.params) == ("user.last_admin", {"user": "admin"})
    assert platform.records.get("user", people["admin"])["active"] is True
    platform.records.update("user", people["rep1"], {"active": False}, version=None, system=True)
    assert platform.records.get("user", people["rep1"])["active"] is False


def test_two_admins_stepping_down_at_once_leave_one(platform, people):
    """Each demotion counts the others only once the other one is settled (SQLite: its write lock;
    PostgreSQL: a transaction lock), so of two admins demoting each other at the same time one stays."""
    records = platform.records
    second = records.create("user", {"username": "admin2", "display_name": "管理员二", "roles": ["admin"]},
                            system=True)["id"]
    outcome: list[str] = []

    def demote_second() -> None:
        try:
            records.update("user", second, {"roles": ["finance"]}, version=None, system=True)
            outcome.append("demoted")
        except Conflict as e:
            outcome.append(e.reason)

    with platform.engine.begin() as conn:
        records.update("user", people["admin"], {"active": False}, version=None, system=True, conn=conn)
        other = threading.Thread(target=demote_second)
        other.start()
        time.sleep(0.5)  # the other demotion is waiting for this one now
    other.join(30)
    assert outcome == ["user.last_admin"]
    assert records.get("user", second)["roles"] == ["admin"]
    assert records.get("user", people["admin"])["active"] is False
