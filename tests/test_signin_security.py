"""Signing in safely (issue 19, findings 1, 4 and 6), on both databases: no session signed with a known key,
sessions that end on the server, redirects only on this site, failed sign-ins limited and audited, and the
password policy on every password a user sets."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import replace

import pytest
import sqlalchemy as sa
from test_api import PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_cli import env as env  # noqa: F401
from test_cli import migrated as migrated  # noqa: F401
from test_cli import run
from test_pages import token

from objectplatform import cli
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.passwords import verify_password
from objectplatform.web import create_app

TOO_SHORT = "must be at least 10 characters"
ONE_CHARACTER = "must not be one character repeated"
IS_USERNAME = "must not be the username"
GUESSABLE = "is too easy to guess (a common password, word or pattern): choose a longer, less predictable one"
NEW_PASSWORD = "plum-river-42"


@pytest.fixture
def client(app):  # noqa: F811
    return app.test_client()


def login(client, username: str, password: str = PASSWORD):
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token(client)})


def session_cookie(client) -> str:
    return client.get_cookie("session").value


def signed_in(client) -> bool:
    """Whether the client's session opens a page (a signed-out one is sent to the sign-in page)."""
    return client.get("/").status_code == 200


# ------------------------------------------------------------------------------------ the secret key


def test_no_fixed_key_signs_a_session():
    assert Settings.from_env({}).secret_key is None
    assert Settings.from_env({"OBJECTPLATFORM_SECRET_KEY": "k" * 40}).secret_key == "k" * 40


def test_an_app_without_a_key_signs_with_a_random_one_of_its_own(platform):
    keys = {create_app(platform).secret_key for _ in range(2)}
    assert len(keys) == 2 and "dev-only-secret-key" not in keys and all(len(k) >= 40 for k in keys)


def test_serve_refuses_to_start_without_a_secret_key(migrated, env, capsys):  # noqa: F811
    env.delenv("OBJECTPLATFORM_SECRET_KEY")
    code, out, err = run(capsys, "serve")
    assert (code, out) == (1, "")
    assert err.startswith("error: OBJECTPLATFORM_SECRET_KEY is not set: it signs the sessions of everyone who signs "
                          "in, so it must be a long random value kept secret. Make one and set it in the server's "
                          "environment, e.g.\n  export OBJECTPLATFORM_SECRET_KEY=")
    assert err.endswith("(`objectplatform demo` makes and keeps its own in the instance folder)\n")


def test_the_demo_makes_a_key_once_per_instance_and_keeps_it(migrated, env, capsys, tmp_path,  # noqa: F811
                                                             monkeypatch):
    env.delenv("OBJECTPLATFORM_SECRET_KEY")
    platform = open_platform(Settings.from_env())
    try:  # a database that holds users: the demo serves it as it is
        platform.records.create("user", {"username": "admin", "display_name": "管理员", "password": "admin1234",
                                         "roles": ["admin"]}, system=True)
    finally:
        platform.close()
    served: list[Settings] = []
    monkeypatch.setattr(cli, "_serve", lambda settings, args: served.append(settings) or 0)
    assert run(capsys, "demo")[0] == 0
    assert run(capsys, "demo")[0] == 0
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 40 and [s.secret_key for s in served] == [key, key]
    assert os.stat(tmp_path / "secret_key").st_mode & 0o777 == 0o600
    other = replace(Settings.from_env(), instance_path=tmp_path / "other")
    assert other.instance_secret_key() != key  # each instance its own
    env.setenv("OBJECTPLATFORM_SECRET_KEY", "the-operator's-own-key-0123456789")
    assert run(capsys, "demo")[0] == 0
    assert served[-1].secret_key == "the-operator's-own-key-0123456789"


# ------------------------------------------------------------------------------------ sessions


def test_a_session_cookie_from_before_sign_out_no_longer_signs_in(client, people):  # noqa: F811
    assert login(client, "rep1").status_code == 302
    stolen = session_cookie(client)
    assert signed_in(client)
    client.post("/logout", data={"csrf_token": token(client)})
    client.set_cookie("session", stolen)
    page = client.get("/")
    assert page.status_code == 302 and page.location.startswith("/login")


def test_a_new_password_ends_the_users_sessions_and_tokens(client, api, people, platform):  # noqa: F811
    login(client, "rep1")
    other = Api(client.application.test_client())
    assert other.get("/objects/lead/records", "rep1")[0] == 200
    status, body = api.patch(f"/objects/user/records/{people['rep1']}", "admin", {"version": 1,
                                                                                 "password": NEW_PASSWORD})
    assert status == 200, body
    assert client.get("/").status_code == 302
    assert other.get("/objects/lead/records", "rep1")[0] == 401
    assert login(client, "rep1", NEW_PASSWORD).status_code == 302 and signed_in(client)
    assert api.get("/objects/lead/records", "rep2")[0] == 200  # other people's sessions go on


def test_other_changes_to_a_user_leave_their_sessions(client, api, people):  # noqa: F811
    login(client, "rep1")
    assert api.patch(f"/objects/user/records/{people['rep1']}", "admin", {"version": 1, "title": "销售"})[0] == 200
    assert signed_in(client)


# ------------------------------------------------------------------------------------ redirects


@pytest.mark.parametrize("target", [
    "/%09/evil.com", "/%0d%0a/evil.com", "/x%0d%0aSet-Cookie:%20a=b", "//evil.com", "/%5Cevil.com", "https://evil.com/",
    "/%7F/evil.com", "%0d%0a",
])
def test_redirects_after_sign_in_and_language_switch_stay_on_this_site(client, people, target):  # noqa: F811
    switched = client.get(f"/lang/en?next={target}")
    assert (switched.status_code, switched.location) == (302, "/")
    page = client.get(f"/login?next={target}")
    assert page.status_code == 200 and 'name="next"' not in page.text
    signed = client.post(f"/login?next={target}", data={"username": "rep1", "password": PASSWORD,
                                                        "csrf_token": token(client)})
    assert (signed.status_code, signed.location) == (302, "/")


def test_a_path_on_this_site_is_kept(client, people):  # noqa: F811
    assert client.get("/lang/en?next=/o/lead%3Fq%3D%E7%8E%8B").location == "/o/lead?q=%E7%8E%8B"
    signed = client.post("/login?next=/o/lead", data={"username": "rep1", "password": PASSWORD,
                                                      "csrf_token": token(client)})
    assert signed.location == "/o/lead"


# ------------------------------------------------------------------------------------ sign-in protection


def fail(client, username: str, **kw):
    return client.post("/login", data={"username": username, "password": "wrong-password-1",
                                       "csrf_token": token(client)}, **kw)


def test_an_account_is_locked_out_after_five_failures_on_the_page_and_the_api(client, api, people):  # noqa: F811
    for _ in range(5):
        assert fail(client, "rep1").status_code == 401
    locked = login(client, "rep1")  # the right password, too late
    assert locked.status_code == 429, locked.text
    assert "登录失败次数过多，请 15 分钟后再试" in locked.text, locked.text
    assert 880 <= int(locked.headers["Retry-After"]) <= 901
    response = client.post("/api/v1/auth/token", json={"username": " REP1 ", "password": PASSWORD})
    assert (response.status_code, response.get_json()) == (429, {"error": {
        "code": "too_many_requests", "message": "too many failed sign-ins: try again in 15 minutes",
        "reason": "auth.locked_out", "params": {"minutes": 15}}})
    assert api.get("/objects/lead/records", "rep2")[0] == 200  # another account from the same address
    assert login(client, "rep2").status_code == 302


def test_the_api_document_gives_the_token_endpoint_its_429(api):  # noqa: F811
    status, doc = api.get("/openapi.json", "admin")
    assert sorted(doc["paths"]["/auth/token"]["post"]["responses"]) == ["200", "400", "401", "414", "429"]
    assert doc["components"]["responses"]["E429"]["description"].startswith("too_many_requests: ")


def test_failures_through_the_api_count_for_the_page_too(client, people):  # noqa: F811
    for _ in range(5):
        assert client.post("/api/v1/auth/token", json={"username": "rep1", "password": "nope"}).status_code == 401
    assert login(client, "rep1").status_code == 429


def test_successful_sign_ins_are_not_counted(client, people):  # noqa: F811
    for _ in range(8):
        assert login(client, "rep1").status_code == 302
    assert fail(client, "rep1").status_code == 401


def test_an_address_is_locked_out_after_twenty_failures(client, people):  # noqa: F811
    for i in range(20):
        assert fail(client, f"nobody{i}").status_code == 401
    assert login(client, "rep2").status_code == 429
    other = client.application.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert login(other, "rep2").status_code == 302


def test_on_redis_every_worker_counts_the_same_failures(platform, people, redis_url):  # noqa: F811
    username = f"rep-{uuid.uuid4().hex[:8]}"  # fresh counts in the Redis that other runs share
    address = f"198.51.100.{uuid.uuid4().int % 250}"
    platform.records.create("user", {"username": username, "display_name": "王五", "password": PASSWORD,
                                     "roles": ["sales_rep"]}, system=True)
    workers = [open_platform(replace(platform.settings, redis_url=redis_url), platform.metadata) for _ in range(2)]
    try:
        clients = [create_app(w).test_client() for w in workers]
        for c in clients:
            c.environ_base["REMOTE_ADDR"] = address
        for i in range(5):
            assert fail(clients[i % 2], username).status_code == 401
        assert login(clients[0], username).status_code == 429
        assert login(clients[1], username).status_code == 429
    finally:
        for w in workers:
            w.close()


def test_failed_sign_ins_are_audited(client, people, platform, caplog):  # noqa: F811
    with caplog.at_level(logging.WARNING, logger="objectplatform.auth"):
        fail(client, "rep1", environ_base={"REMOTE_ADDR": "192.0.2.7"})
        client.post("/api/v1/auth/token", json={"username": "ghost", "password": "nope"})
    assert [r.getMessage() for r in caplog.records] == ["failed sign-in as 'rep1' from 192.0.2.7",
                                                        "failed sign-in as 'ghost' from 127.0.0.1"]
    history = platform.schema.history
    with platform.engine.connect() as c:
        rows = c.execute(sa.select(history.c.record_id, history.c.change, history.c.new_value, history.c.user_id)
                         .where(history.c.object == "user", history.c.change != "create")).all()
    assert rows == [(int(people["rep1"]), "sign_in_failed", '{"address": "192.0.2.7"}', None)]
    login(client, "admin")
    page = client.get(f"/o/user/{people['rep1']}?tab=history")
    assert page.status_code == 200 and "登录失败" in page.text


# ------------------------------------------------------------------------------------ password policy


@pytest.mark.parametrize(("password", "message"), [
    ("12345678", TOO_SHORT), ("password", TOO_SHORT), (" " * 8, TOO_SHORT), ("admin1234", TOO_SHORT),
    (" " * 12, ONE_CHARACTER), ("a" * 16, ONE_CHARACTER), ("Zhang-Wei-2026", IS_USERNAME),
    ("password1234", GUESSABLE), ("qwertyuiop", GUESSABLE), ("1234567890", GUESSABLE), ("zhangwei2026!", GUESSABLE),
])
def test_a_weak_password_is_a_field_error_naming_it(api, password, message):  # noqa: F811
    status, body = api.post("/objects/user/records", "admin", {"username": "zhang-wei-2026", "display_name": "张伟",
                                                               "password": password})
    assert (status, body["error"]["fields"]) == (422, {"password": [message]})


def test_a_strong_password_is_taken(api, platform):  # noqa: F811
    status, body = api.post("/objects/user/records", "admin", {"username": "zhangwei", "display_name": "张伟",
                                                               "password": NEW_PASSWORD})
    assert status == 201, body
    assert platform.records.get("user", body["id"])["username"] == "zhangwei"


def test_a_new_password_is_held_to_the_policy_against_the_stored_username(api, people, platform):  # noqa: F811
    path = f"/objects/user/records/{people['rep1']}"
    assert api.patch(path, "admin", {"version": 1, "password": "Rep1"})[1]["error"]["fields"] == {
        "password": ["must be between 8 and 1024 characters"]}  # the field's own check comes first
    assert api.patch(path, "admin", {"version": 1, "password": "rep1rep1rep1"})[1]["error"]["fields"] == {
        "password": [GUESSABLE]}
    with pytest.raises(ValidationFailed) as e:
        platform.records.update("user", people["rep1"], {"password": "1234567890"}, version=1)
    assert e.value.fields == {"password": [GUESSABLE]}


def test_the_pages_say_the_policy_in_the_visitors_language(client, people):  # noqa: F811
    login(client, "admin")
    form = client.post("/o/user/new", data={"username": "zhangwei", "display_name": "张伟", "password": "12345678",
                                            "csrf_token": token(client)})
    assert form.status_code == 422 and "至少需要 10 个字符" in form.text


def test_create_user_on_the_command_line_is_held_to_the_policy(migrated, capsys):  # noqa: F811
    assert run(capsys, "create-user", "lisi", "--password", "12345678") == (
        1, "", "error: 1 field error\n  password: must be at least 10 characters\n")
    assert run(capsys, "--lang", "zh", "create-user", "lisi", "--password", "lisi123456")[2].endswith(
        "  password: 太容易被猜到（常见密码、单词或规律），请换一个更长、更难猜的密码\n")
    assert run(capsys, "create-user", "lisi", "--password", NEW_PASSWORD)[0] == 0


def test_the_systems_own_writes_keep_the_demos_documented_passwords(platform):
    created = platform.records.create("user", {"username": "admin", "display_name": "管理员", "password": "admin1234"},
                                      system=True)
    with platform.engine.connect() as c:
        stored = c.execute(sa.select(platform.schema["user"].column("password"))
                           .where(platform.schema["user"].table.c.id == int(created["id"]))).scalar_one()
    assert verify_password("admin1234", stored)


def test_with_redis_unreachable_each_worker_counts_on_its_own(platform, people):  # noqa: F811
    down = open_platform(replace(platform.settings, redis_url="redis://127.0.0.1:9/0"), platform.metadata)
    try:
        client = create_app(down).test_client()
        assert login(client, "rep2").status_code == 302
        for _ in range(5):
            assert fail(client, "rep1").status_code == 401
        assert login(client, "rep1").status_code == 429
    finally:
        down.close()
