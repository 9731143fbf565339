"""Sign-in, API tokens and deactivation with handover, on both databases."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from support import FixedClock, one_by_one, written
from test_api import without_reasons

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.auth import Auth, auth_service
from objectplatform.runtime.errors import NotFound, Unauthenticated, ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.workqueue import work_queue

PASSWORD = "s3cret-密码"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def auth(platform):
    return auth_service(platform)


def make_user(platform, username: str, roles=("sales_rep",), **more) -> str:
    values = {"username": username, "display_name": username.title(), "password": PASSWORD, "roles": list(roles),
              **more}
    return platform.records.create("user", values, system=True)["id"]


def token_rows(platform) -> list[dict]:
    with platform.engine.connect() as c:
        return [dict(r) for r in c.execute(sa.select(platform.schema.tokens).order_by("id")).mappings()]


def naive_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_migrate_creates_the_token_table_with_a_unique_hash(platform):
    with platform.engine.connect() as c:
        inspector = sa.inspect(c)
        columns = [col["name"] for col in inspector.get_columns("_op_token")]
        indexes = {ix["name"]: (ix["column_names"], bool(ix["unique"])) for ix in inspector.get_indexes("_op_token")}
    assert columns == ["id", "token_hash", "user_id", "created_at", "expires_at", "revoked_at", "last_used_at"]
    assert indexes == {"uq__op_token__token_hash": (["token_hash"], True),
                       "ix__op_token__user_id": (["user_id"], False)}
    assert auth_service(platform) is auth_service(platform)


# ------------------------------------------------------------------------------------ passwords


def test_authenticate_returns_the_user_without_the_password(platform, auth):
    wang = make_user(platform, "wang")
    user = auth.authenticate("wang", PASSWORD)
    assert (user["id"], user["username"], user["display_name"], user["roles"]) == (wang, "wang", "Wang", ["sales_rep"])
    assert "password" not in user


def test_wrong_password_unknown_user_and_inactive_user_get_the_same_401(platform, auth):
    make_user(platform, "wang")
    make_user(platform, "gone", active=False)
    make_user(platform, "nopass", password=None)
    failures = []
    for username, password in (("wang", "wrong"), ("nobody", PASSWORD), ("gone", PASSWORD), ("nopass", ""),
                               ("", ""), ("WANG", PASSWORD)):
        with pytest.raises(Unauthenticated) as e:
            auth.authenticate(username, password)
        failures.append((e.value.status, e.value.code, e.value.message))
    assert set(failures) == {(401, "unauthenticated", "wrong username or password")}
    with pytest.raises(Unauthenticated):
        auth.issue_token("wang", "wrong")
    assert token_rows(platform) == []


# --------------------------------------------------------------------------------------- tokens


def test_a_token_is_random_stored_hashed_and_lasts_seven_days(platform, auth):
    wang = make_user(platform, "wang")
    token, user = auth.issue_token("wang", PASSWORD)
    other, _ = auth.issue_token("wang", PASSWORD)
    assert user["id"] == wang
    assert token != other and len(token) >= 43
    rows = token_rows(platform)
    assert [r["token_hash"] for r in rows] == [hashlib.sha256(t.encode()).hexdigest() for t in (token, other)]
    assert all(token not in str(r) for r in rows)
    row = rows[0]
    assert row["user_id"] == int(wang)
    assert abs(row["expires_at"] - row["created_at"] - timedelta(days=7)) < timedelta(seconds=1)
    assert abs(row["created_at"] - naive_now()) < timedelta(minutes=1)
    assert (row["revoked_at"], row["last_used_at"]) == (None, None)


def test_the_token_lifetime_is_a_parameter(platform):
    make_user(platform, "wang")
    Auth(platform, token_ttl=timedelta(hours=1)).issue_token("wang", PASSWORD)
    (row,) = token_rows(platform)
    assert abs(row["expires_at"] - row["created_at"] - timedelta(hours=1)) < timedelta(seconds=1)


def test_user_for_token_and_a_cheap_last_used(platform, auth):
    wang = make_user(platform, "wang")
    token, _ = auth.issue_token("wang", PASSWORD)
    assert auth.user_for_token(token)["id"] == wang
    first = token_rows(platform)[0]["last_used_at"]
    assert first is not None and abs(first - naive_now()) < timedelta(minutes=1)
    writes: list[str] = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE"):
            writes.append(statement)

    sa.event.listen(platform.engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            assert auth.user_for_token(token)["username"] == "wang"
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", record)
    assert writes == []  # used again within minutes: nothing written
    assert token_rows(platform)[0]["last_used_at"] == first
    for bad in ("", "x" * 43, token + "x", None):
        assert auth.user_for_token(bad) is None


def test_an_expired_token_is_refused(platform, auth):
    make_user(platform, "wang")
    token, _ = auth.issue_token("wang", PASSWORD, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert auth.user_for_token(token) is None
    fresh, _ = auth.issue_token("wang", PASSWORD)  # clears the user's expired tokens
    assert auth.user_for_token(fresh)["username"] == "wang"
    assert [r["token_hash"] for r in token_rows(platform)] == [hashlib.sha256(fresh.encode()).hexdigest()]


def test_revoke_ends_that_token_only(platform, auth):
    make_user(platform, "wang")
    token, _ = auth.issue_token("wang", PASSWORD)
    other, _ = auth.issue_token("wang", PASSWORD)
    auth.revoke(token)
    auth.revoke(token)
    auth.revoke("unknown")
    assert auth.user_for_token(token) is None
    assert auth.user_for_token(other)["username"] == "wang"
    revoked = [r["revoked_at"] is not None for r in token_rows(platform)]
    assert revoked == [True, False]


def test_a_deactivated_users_token_stops_working(platform, auth):
    wang = make_user(platform, "wang")
    token, _ = auth.issue_token("wang", PASSWORD)
    platform.records.update("user", wang, {"active": False}, version=None, system=True)
    assert auth.user_for_token(token) is None


# --------------------------------------------------------------------------- deactivate + handover


@pytest.fixture
def team(platform):
    """An admin, two reps (王 with two leads and an account, 刘 with a lead) and 李 taking over."""
    records = platform.records
    ids = {key: make_user(platform, key) for key in ("wang", "liu", "li")}
    ids["admin"] = make_user(platform, "admin", roles=["admin"])
    ids["gone"] = make_user(platform, "gone", active=False)
    ids["lead1"] = records.create("lead", {"name": "线索一", "phone": "13800000001"}, user=ids["wang"])["id"]
    ids["lead2"] = records.create("lead", {"name": "线索二", "email": "b@example.com"}, user=ids["wang"])["id"]
    ids["lead3"] = records.create("lead", {"name": "线索三", "phone": "13800000003"}, user=ids["liu"])["id"]
    ids["account"] = records.create("account", {"name": "王的客户"}, user=ids["wang"])["id"]
    lead1 = records.get("lead", ids["lead1"])
    records.update("lead", ids["lead1"], {"company": "ACME"}, version=lead1["version"], user=ids["wang"])  # v2
    return ids


def snapshot(platform) -> dict:
    with platform.engine.connect() as c:
        history = c.execute(sa.select(sa.func.count()).select_from(platform.schema.history)).scalar_one()
    records = platform.records
    rows = {obj: [(r["id"], r["owner"], r["version"]) for r in records.list(obj, limit=500).items]
            for obj in ("lead", "account", "user")}
    return {"history": history, "rows": rows, "tokens": token_rows(platform)}


def test_deactivate_hands_every_record_over_with_history(platform, auth, team):
    records = platform.records
    token, _ = auth.issue_token("wang", PASSWORD)
    before = naive_now()
    moved = auth.deactivate(team["wang"], team["li"], by=team["admin"])
    assert moved == {"account": 1, "lead": 2}
    for key, version in (("lead1", 3), ("lead2", 2)):
        lead = records.get("lead", team[key])
        assert (lead["owner"], lead["version"], lead["updated_by"]) == (team["li"], version, team["admin"])
        assert lead["updated_at"].replace(tzinfo=None) >= before
        last = records.history("lead", team[key])[-1]
        assert (last["change"], last["field"], last["old"], last["new"], last["user"]) == (
            "handover", "owner", team["wang"], team["li"], team["admin"])
    account = records.get("account", team["account"])
    assert (account["owner"], account["version"]) == (team["li"], 2)
    assert [h["change"] for h in records.history("account", team["account"])] == ["create", "handover"]
    untouched = records.get("lead", team["lead3"])
    assert (untouched["owner"], untouched["version"]) == (team["liu"], 1)
    assert "handover" not in [h["change"] for h in records.history("lead", team["lead3"])]
    wang = records.get("user", team["wang"])
    assert wang["active"] is False
    assert [(h["change"], h["field"], h["old"], h["new"], h["user"])
            for h in records.history("user", team["wang"])][-1] == ("update", "active", True, False, team["admin"])
    assert auth.user_for_token(token) is None
    assert token_rows(platform)[0]["revoked_at"] is not None
    assert access_for(platform, team["wang"]).roles == frozenset()
    li = access_for(platform, team["li"])
    visible = records.list("lead", where=li.scope("lead", platform.schema["lead"].table)).items
    assert sorted(item["name"] for item in visible) == ["线索一", "线索二"]
    with pytest.raises(Unauthenticated):
        auth.authenticate("wang", PASSWORD)


def test_deactivate_leaves_the_org_structure_as_it_is(platform, auth, team):
    records = platform.records
    dept = records.create("department", {"name": "华北区", "manager": team["wang"]}, system=True)["id"]
    records.update("user", team["liu"], {"manager": team["wang"]}, version=None, system=True)
    auth.deactivate(team["wang"], team["li"], by=team["admin"])
    assert records.get("department", dept)["manager"] == team["wang"]
    assert records.get("user", team["liu"])["manager"] == team["wang"]


@pytest.mark.parametrize(("target", "message"), [
    ("wang", "must be another user than the one deactivated"),
    ("gone", "is inactive: hand over to an active user"),
    ("999999", "no user with id 999999"),
    ("abc", "no user with id abc"),
    ("", "required"),
    (None, "required"),
])
def test_a_bad_handover_target_is_refused_and_nothing_written(platform, auth, team, target, message):
    token, _ = auth.issue_token("wang", PASSWORD)
    before = snapshot(platform)
    with pytest.raises(ValidationFailed) as e:
        auth.deactivate(team["wang"], team.get(target, target), by=team["admin"])
    assert (e.value.status, e.value.fields) == (422, {"handover_to": [message]})
    assert snapshot(platform) == before
    assert platform.records.get("user", team["wang"])["active"] is True
    assert auth.user_for_token(token)["username"] == "wang"


def test_deactivating_an_unknown_user_is_not_found(platform, auth, team):
    for user_id in ("999999", "x"):
        with pytest.raises(NotFound):
            auth.deactivate(user_id, team["li"], by=team["admin"])


# ------------------------------------------------------------------------------- bulk deactivate


@pytest.fixture
def twin(backend, tmp_path, metadata, templates):
    """A second platform on a database equal to the `platform` fixture's (a copy of the same template)."""
    with templates.copy(backend, metadata, tmp_path) as url:
        other = open_platform(Settings.from_env({}, database_url=url, instance_path=tmp_path / "twin"), metadata)
        try:
            yield other
        finally:
            other.close()


def leaving_scenario(platform) -> dict[str, str]:
    """Two admins, 李 taking over, reps holding leads, an account and a to-do, 赵 already inactive still holding a
    lead, a new hire owned by 王 and one owned by 刘, and a signed-in 刘: the same ids on every equal database."""
    platform.clock = FixedClock(T0)
    records = platform.records
    ids = {key: make_user(platform, key, roles=["admin"]) for key in ("admin", "admin2")}
    ids.update({key: make_user(platform, key) for key in ("li", "wang", "liu", "zhao")})
    ids["hire1"] = make_user(platform, "hire1", owner=ids["wang"])
    ids["hire2"] = make_user(platform, "hire2", owner=ids["liu"])
    for n, key in enumerate(("wang", "wang", "liu", "zhao", "admin2")):
        ids[f"lead{n}"] = records.create("lead", {"name": f"线索{n}", "phone": f"1380000000{n}"}, user=ids[key])["id"]
    ids["account"] = records.create("account", {"name": "王的客户"}, user=ids["wang"])["id"]
    with platform.engine.begin() as conn:
        work_queue(platform).add_todo(conn, users=[ids["wang"]], kind="task", title="回访客户", object="lead",
                                      record_id=ids["lead0"], key="follow-up")
    records.update("user", ids["zhao"], {"active": False}, version=None, system=True)
    auth_service(platform).issue_token("liu", PASSWORD)
    platform.clock.advance(hours=1)
    return ids


def test_bulk_deactivate_is_set_based_and_answers_as_one_user_after_another(platform, twin):
    """The same batch deactivated once user after user (each its own single action) and once by the bulk action
    (set-based: `Auth.deactivate_many`) on two equal databases: the same successes and refusals (an unknown id, the
    hand-over target itself, the caller as the last admin once the other admin is gone; an inactive user's records
    still handed over), and the same users, records, history, to-dos and tokens."""
    a, b = leaving_scenario(platform), leaving_scenario(twin)
    assert a == b
    batch = [a[k] for k in ("wang", "hire1", "li", "zhao", "hire2", "liu", "admin2", "admin")] + ["999999"]
    params = {"handover_to": a["li"]}
    expected = {"succeeded": [a[k] for k in ("wang", "hire1", "zhao", "hire2", "liu", "admin2")], "failed": [
        {"id": a["li"], "error": {"code": "validation_failed", "message": "1 field error",
                                  "fields": {"handover_to": ["must be another user than the one deactivated"]}}},
        {"id": a["admin"], "error": {"code": "conflict", "message": (
            "admin is the last active administrator: they can be neither deactivated nor stripped of the "
            "administrator role; make another user an administrator first")}},
        {"id": "999999", "error": {"code": "not_found", "message": "no user with id 999999"}}]}
    assert without_reasons(one_by_one(platform, a["admin"], "user", "deactivate", batch, params)) == expected
    assert without_reasons(run_action(twin, access_for(twin, a["admin"]), "user", "deactivate", batch,
                                      params)) == expected

    users = [k for k in a if not k.startswith(("lead", "account"))]
    for one in (platform, twin):
        records = one.records
        assert {k: (records.get("user", a[k])["active"], records.get("user", a[k])["owner"]) for k in users} == {
            "admin": (True, None), "admin2": (False, None), "li": (True, None), "wang": (False, None),
            "liu": (False, None), "zhao": (False, None), "hire1": (False, a["li"]), "hire2": (False, a["li"])}
        assert [records.get("lead", a[f"lead{n}"])["owner"] for n in range(5)] == [a["li"]] * 5
        assert [(h["change"], h["field"], h["old"], h["new"]) for h in records.history("user", a["hire1"])][-2:] == [
            ("handover", "owner", a["wang"], a["li"]), ("update", "active", True, False)]
        assert [(h["change"], h["field"], h["old"], h["new"]) for h in records.history("user", a["hire2"])][-2:] == [
            ("update", "active", True, False), ("handover", "owner", a["liu"], a["li"])]
    for key, obj in [*((k, "user") for k in users), *((f"lead{n}", "lead") for n in range(5)),
                     ("account", "account")]:
        assert written(twin, obj, a[key]) == written(platform, obj, a[key]), key
    tokens = [[{k: v for k, v in row.items() if k != "token_hash"} for row in token_rows(one)]
              for one in (platform, twin)]
    assert tokens[1] == tokens[0] and tokens[0][0]["revoked_at"] is not None
