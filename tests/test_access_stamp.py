"""A process keeps each signed-in user's access while the access stamp stays the same (storage/access_stamp.py): a
change of department, roles, activity or pool membership, and a revoked token, take effect on the very next request
served by another app over the same database, on both databases."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.auth import auth_service
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.records.masking import field_mask
from objectplatform.runtime.storage import access_stamp
from objectplatform.runtime.storage.convert import to_db
from objectplatform.runtime.storage.migrate import migrate, plan_migration
from objectplatform.web import create_app

PASSWORD = "s3cret-密码"
LEAD = "/api/v1/objects/lead/records"


class Client:
    """One app's test client, signed in per user through its own API."""

    def __init__(self, app):
        self.client = app.test_client()
        self.tokens: dict[str, str] = {}

    def sign_in(self, username: str) -> str:
        response = self.client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.json
        self.tokens[username] = response.json["token"]
        return self.tokens[username]

    def get(self, path: str, username: str) -> int:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[username]}"}).status_code

    def names(self, username: str) -> list[str]:
        response = self.client.get(f"{LEAD}?sort=name", headers={"Authorization": f"Bearer {self.tokens[username]}"})
        assert response.status_code == 200, response.json
        return [item["name"] for item in response.json["items"]]


@pytest.fixture
def other(platform, migrated_database_url, metadata, tmp_path):
    """A second platform on the same database: another process's."""
    second = open_platform(Settings.from_env({}, database_url=migrated_database_url, instance_path=tmp_path / "b"),
                           metadata)
    try:
        yield second
    finally:
        second.close()


@pytest.fixture
def org(platform) -> dict[str, str]:
    """销售部 managed by boss, with rep; 市场部 with rep2; a claimable pool 公海 with no members and one lead waiting in
    it; rep and rep2 own a lead each."""
    records = platform.records
    ids: dict[str, str] = {}

    def user(key: str, roles: list[str], **more) -> None:
        values = {"username": key, "display_name": key, "password": PASSWORD, "roles": roles, **more}
        ids[key] = records.create("user", values, system=True)["id"]

    user("boss", ["sales_manager"])
    ids["sales"] = records.create("department", {"name": "销售部", "manager": ids["boss"]}, system=True)["id"]
    ids["market"] = records.create("department", {"name": "市场部"}, system=True)["id"]
    user("rep", ["sales_rep"], department=ids["sales"])
    user("rep2", ["sales_rep"], department=ids["market"])
    ids["pool"] = records.create("lead_pool", {"name": "公海", "claimable": True}, system=True)["id"]
    for key in ("rep", "rep2"):
        values = {"name": f"线索-{key}", "phone": "13800000000"}
        ids[f"{key}_lead"] = records.create("lead", values, user=ids[key])["id"]
    waiting = records.create("lead", {"name": "线索-公海", "phone": "13900000000", "pool": ids["pool"]}, system=True)
    assert waiting["owner"] is None
    ids["waiting"] = waiting["id"]
    return ids


@pytest.fixture
def apps(platform, other):
    """(the app that changes things, the app whose next request must see the change)."""
    return Client(create_app(platform)), Client(create_app(other))


def test_a_department_move_takes_effect_at_the_next_request(platform, org, apps):
    _, served = apps
    served.sign_in("boss")
    assert served.names("boss") == ["线索-rep"]
    assert served.get(f"{LEAD}/{org['rep_lead']}", "boss") == 200
    platform.records.update("user", org["rep"], {"department": org["market"]}, version=None, system=True)
    assert served.get(f"{LEAD}/{org['rep_lead']}", "boss") == 404
    assert served.names("boss") == []
    platform.records.update("department", org["market"], {"manager": org["boss"]}, version=None, system=True)
    assert served.names("boss") == ["线索-rep", "线索-rep2"]


def test_a_role_change_takes_effect_at_the_next_request(platform, org, apps):
    _, served = apps
    served.sign_in("rep2")
    assert served.names("rep2") == ["线索-rep2"]
    platform.records.update("user", org["rep2"], {"roles": ["marketing"]}, version=None, system=True)
    assert served.names("rep2") == ["线索-rep", "线索-rep2", "线索-公海"]
    assert served.get(f"{LEAD}/{org['rep_lead']}", "rep2") == 200
    platform.records.update("user", org["rep2"], {"roles": ["finance"]}, version=None, system=True)
    assert served.get(LEAD, "rep2") == 403


def test_deactivation_takes_effect_at_the_next_request(platform, org, apps):
    _, served = apps
    served.sign_in("rep")
    assert served.get(f"{LEAD}/{org['rep_lead']}", "rep") == 200
    assert auth_service(platform).deactivate(org["rep"], org["rep2"], by=None) == {"lead": 1}
    assert served.get(f"{LEAD}/{org['rep_lead']}", "rep") == 401


def test_pool_membership_takes_effect_at_the_next_request(platform, org, apps):
    _, served = apps
    served.sign_in("rep")
    assert served.get(f"{LEAD}/{org['waiting']}", "rep") == 404
    platform.records.update("lead_pool", org["pool"], {"members": [org["rep"]]}, version=None, system=True)
    assert served.get(f"{LEAD}/{org['waiting']}", "rep") == 200
    assert served.names("rep") == ["线索-rep", "线索-公海"]
    platform.records.update("lead_pool", org["pool"], {"members": [], "member_departments": [org["sales"]]},
                            version=None, system=True)
    assert served.names("rep") == ["线索-rep", "线索-公海"]
    platform.records.update("lead_pool", org["pool"], {"claimable": False}, version=None, system=True)
    assert served.get(f"{LEAD}/{org['waiting']}", "rep") == 404


def test_a_revoked_token_and_a_sign_out_take_effect_at_the_next_request(platform, org, apps):
    changing, served = apps
    token = served.sign_in("rep")
    changing.tokens["rep"] = token
    assert served.get(LEAD, "rep") == 200
    assert changing.client.delete("/api/v1/auth/token", headers={"Authorization": f"Bearer {token}"}).status_code \
        == 204
    assert served.get(LEAD, "rep") == 401
    served.sign_in("rep")
    assert served.get(LEAD, "rep") == 200
    platform.records.update("user", org["rep"], {"password": "another-密码"}, version=None, system=True)
    assert served.get(LEAD, "rep") == 401


def test_a_page_sessions_next_page_sees_the_change_too(platform, other, org):
    """The pages resolve their session's token the same way: a department move, then a deactivation."""
    served = create_app(other).test_client()
    served.get("/login")
    with served.session_transaction() as session:
        csrf = session["csrf_token"]
    signed_in = served.post("/login", data={"username": "boss", "password": PASSWORD, "csrf_token": csrf})
    assert signed_in.status_code == 302
    assert served.get(f"/o/lead/{org['rep_lead']}").status_code == 200
    platform.records.update("user", org["rep"], {"department": org["market"]}, version=None, system=True)
    assert served.get(f"/o/lead/{org['rep_lead']}").status_code == 404
    platform.records.update("user", org["boss"], {"active": False}, version=None, system=True)
    refused = served.get(f"/o/lead/{org['rep_lead']}")
    assert (refused.status_code, refused.location.split("?")[0]) == (302, "/login")


def test_a_write_that_bypasses_the_engine_takes_effect_too(platform, org, apps):
    """A hand-written statement (a script, the database's console) passes through the triggers as well."""
    _, served = apps
    served.sign_in("rep2")
    assert served.names("rep2") == ["线索-rep2"]
    users = platform.schema["user"]
    with platform.engine.begin() as conn:
        conn.execute(users.table.update().where(users.table.c.id == int(org["rep2"]))
                     .values({users.column("roles").name: to_db("multi_picklist", ["marketing"])}))
    assert served.names("rep2") == ["线索-rep", "线索-rep2", "线索-公海"]
    with platform.engine.begin() as conn:
        conn.execute(users.table.update().where(users.table.c.id == int(org["rep2"]))
                     .values({users.column("active").name: False}))
    assert served.get(LEAD, "rep2") == 401


def test_a_known_users_next_request_reads_only_the_token(other, org, apps):
    _, served = apps
    served.sign_in("boss")
    statements: list[str] = []
    sa.event.listen(other.engine, "before_cursor_execute", lambda c, cursor, sql, *rest: statements.append(sql))
    assert served.get(f"{LEAD}/{org['rep_lead']}", "boss") == 200
    assert {"user", "department", "lead_pool"} <= tables_read(statements)  # the first: the access made
    statements.clear()
    assert served.get(f"{LEAD}/{org['rep_lead']}", "boss") == 200
    auth = [s for s in statements if "_op_token" in s or "_op_access_stamp" in s]
    assert len(auth) == 1 and "_op_access_stamp" in auth[0]
    assert not {"user", "department", "lead_pool"} & tables_read(statements)


def test_migrate_makes_a_trigger_on_each_table_an_access_is_made_of(platform):
    with platform.engine.connect() as conn:
        assert access_stamp.stamped_tables(conn) == {"user", "department", "lead_pool"}
    assert platform.schema.stamped == ("user", "department", "lead_pool")
    assert plan_migration(platform.engine, platform.schema).render() == "nothing to do"


def test_migrate_gives_a_database_migrated_before_the_stamp_its_table_and_triggers(platform):
    with platform.engine.begin() as conn:
        for table in platform.schema.stamped:
            if conn.dialect.name == "sqlite":
                for event in access_stamp.SQLITE_EVENTS:
                    conn.exec_driver_sql(f'DROP TRIGGER "{access_stamp.sqlite_trigger(table, event)}"')
            else:
                conn.exec_driver_sql(f'DROP TRIGGER {access_stamp.TRIGGER} ON "{table}"')
        conn.exec_driver_sql("DROP TABLE _op_access_stamp")
    assert migrate(platform.engine, platform.schema).render() == (
        "+ table _op_access_stamp (2 columns)\n"
        "+ trigger user: its writes bump the access stamp\n"
        "+ trigger department: its writes bump the access stamp\n"
        "+ trigger lead_pool: its writes bump the access stamp")
    with platform.engine.connect() as conn:
        assert access_stamp.stamped_tables(conn) == {"user", "department", "lead_pool"}
        assert access_stamp.read(conn, platform.schema.access_stamp) == 0
    platform.records.create("department", {"name": "新部门"}, system=True)
    with platform.engine.connect() as conn:
        assert access_stamp.read(conn, platform.schema.access_stamp) == 1


def test_one_write_to_a_stamped_table_bumps_the_stamp_once_and_other_writes_not_at_all(platform, org):
    stamp = platform.schema.access_stamp
    department = platform.schema["department"].table
    with platform.engine.connect() as conn:
        before = access_stamp.read(conn, stamp)
    with platform.engine.begin() as conn:
        conn.execute(department.update().where(department.c.id == int(org["market"])).values(updated_by=None))
    platform.records.create("lead", {"name": "线索-新", "phone": "13700000000"}, user=org["rep"])
    with platform.engine.connect() as conn:
        assert access_stamp.read(conn, stamp) == before + 1


def test_an_access_reads_only_stamped_tables(platform, org):
    """The guard: were an access ever made of another table, a change to it could be missed by a process."""
    statements: list[str] = []
    sa.event.listen(platform.engine, "before_cursor_execute", lambda c, cursor, sql, *rest: statements.append(sql))
    for key in ("boss", "rep", "rep2"):
        access = access_for(platform, org[key])
        for obj in platform.metadata.objects:
            field_mask(platform, access, obj)
    assert tables_read(statements) == set(platform.schema.stamped) == {"user", "department", "lead_pool"}


def tables_read(statements: list[str]) -> set[str]:
    return {m for s in statements for m in re.findall(r'(?:FROM|JOIN)\s+"?(\w+)"?', s)}
