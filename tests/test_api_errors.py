"""Every error the API answers has API.md's shape and the right status; bad input is never a 500 and
writes nothing. The last test checks every error response the API tests saw (ERROR_RESPONSES)."""

from __future__ import annotations

import pytest
from test_api import ERROR_RESPONSES, assert_error_shape, lead
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401


def raw(api, method, path, as_="rep1", **kwargs):
    """A request with a hand-made body (`data`, `content_type`)."""
    headers = {"Authorization": f"Bearer {api.token(as_)}"} if as_ else {}
    return api.call(method, path, headers=headers, **kwargs)


def test_unknown_routes_and_methods(api):
    assert raw(api, "GET", "/nothing/here") == (404, {"error": {
        "code": "not_found", "message": "no such endpoint: GET /api/v1/nothing/here"}})
    assert raw(api, "GET", "/nothing", as_=None)[0] == 404
    status, body = raw(api, "PUT", "/objects/lead/records")
    assert status == 405
    assert body == {"error": {"code": "method_not_allowed",
                              "message": "PUT is not allowed on /api/v1/objects/lead/records (allowed: GET, HEAD, "
                                         "OPTIONS, POST)"}}
    response = api.client.put("/api/v1/objects/lead/records")
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_unknown_object(api):
    missing = (404, {"error": {"code": "not_found", "message": "unknown object nothing"}})
    assert raw(api, "GET", "/objects/nothing/records") == missing
    assert raw(api, "POST", "/objects/nothing/records", json={"name": "x"}) == missing
    assert raw(api, "GET", "/objects/nothing/records/1") == missing
    assert raw(api, "PATCH", "/objects/nothing/records/1", json={"version": 1}) == missing
    assert raw(api, "DELETE", "/objects/nothing/records/1") == missing
    assert raw(api, "GET", "/objects/nothing/records/1/history") == missing
    assert raw(api, "POST", "/objects/nothing/records/1/actions/claim", json={}) == missing
    assert raw(api, "POST", "/objects/nothing/actions/claim", json={"ids": ["1"]}) == missing


@pytest.mark.parametrize("record_id", ["abc", "0", "-1", "1.5", "99999999999999999999", "%E4%BD%A0"])
def test_odd_record_ids_are_404(api, record_id):
    status, body = raw(api, "GET", f"/objects/lead/records/{record_id}")
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize(("data", "content_type", "message"), [
    ("{\"name\": ", "application/json", "malformed JSON: Expecting value: line 1 column 10 (char 9)"),
    ("{\"name\": NaN}", "application/json", "malformed JSON: NaN is not JSON"),
    ("name=x", "application/x-www-form-urlencoded",
     "send JSON with Content-Type: application/json, not application/x-www-form-urlencoded"),
    ("{\"name\": \"x\"}", None, "send JSON with Content-Type: application/json, not no content type"),
    ("[1, 2]", "application/json", "the body must be a JSON object"),
    ("\"text\"", "application/json", "the body must be a JSON object"),
    ("", "application/json", "send a JSON body (Content-Type: application/json)"),
    (b"\xff\xfe{", "application/json", None),
])
def test_bad_bodies_are_400_and_write_nothing(api, data, content_type, message):
    kwargs = {"data": data} | ({"content_type": content_type} if content_type else {})
    status, body = raw(api, "POST", "/objects/lead/records", **kwargs)
    assert status == 400 and body["error"]["code"] == "bad_request"
    if message is not None:
        assert body["error"]["message"] == message
    assert raw(api, "GET", "/objects/lead/records")[1]["total"] == 0


def test_nul_characters_are_400_on_both_databases(api):
    """PostgreSQL cannot store NUL in text: refused before any query, with where it was."""
    assert raw(api, "POST", "/objects/sales_order/records", json={"remark": "ok", "order_line": [
        {"remark": "a\u0000b"}]}) == (400, {"error": {
            "code": "bad_request", "message": "order_line[0].remark: text may not contain the NUL character",
            "fields": {"order_line[0].remark": ["contains NUL (\\u0000)"]}}})
    assert raw(api, "GET", "/objects/lead/records?name=a%00b") == (400, {"error": {
        "code": "bad_request", "message": "name: text may not contain the NUL character",
        "fields": {"name": ["contains NUL (\\u0000)"]}}})
    assert raw(api, "GET", "/objects/lead/records")[1]["total"] == 0


def test_failed_patch_writes_nothing(api):
    record = lead(api, "rep1", company="Before")
    path = f"/objects/lead/records/{record['id']}"
    status, body = raw(api, "PATCH", path, json={"version": 1, "company": "After", "email": "bad"})
    assert status == 422 and body["error"]["fields"] == {"email": ["not a valid email address"]}
    assert {k: v for k, v in raw(api, "GET", path)[1].items() if k != "_actions"} == record
    assert [h["change"] for h in raw(api, "GET", f"{path}/history")[1]["items"]] == ["create"] * 4


def test_json_media_types_with_charset_and_suffix_are_accepted(api):
    status, _ = raw(api, "POST", "/objects/lead/records", data='{"name": "A", "phone": "13800000000"}',
                    content_type="application/json; charset=utf-8")
    assert status == 201
    status, _ = raw(api, "POST", "/objects/lead/records", data='{"name": "B", "phone": "13800000000"}',
                    content_type="application/merge-patch+json")
    assert status == 201


def test_unexpected_failure_is_a_500_in_the_error_shape(api, platform, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(platform.records, "list", broken)
    assert raw(api, "GET", "/objects/lead/records") == (500, {"error": {
        "code": "internal_error", "message": "the server failed to answer this request; it has been logged"}})


def test_401_names_the_scheme(api):
    response = api.client.get("/api/v1/meta/objects")
    assert (response.status_code, response.headers["WWW-Authenticate"]) == (401, "Bearer")


def test_every_error_response_has_the_shape(api, platform, monkeypatch):
    """Each status at least once here, then every error response of this run (this module's and, when they
    ran first, those of the other API test modules): each was checked as it came, and is again."""
    assert raw(api, "GET", "/objects/lead/records?colour=red")[0] == 400
    assert raw(api, "GET", "/objects/lead/records", as_=None)[0] == 401
    assert raw(api, "POST", "/objects/lead/records", as_="finance", json={"name": "x"})[0] == 403
    record = lead(api, "rep1")
    path = f"/objects/lead/records/{record['id']}"
    assert raw(api, "GET", path, as_="rep2")[0] == 404
    assert raw(api, "PUT", path)[0] == 405
    assert raw(api, "PATCH", path, json={"version": 7, "name": "y"})[0] == 409
    assert raw(api, "POST", "/objects/lead/records", json={})[0] == 422
    monkeypatch.setattr(platform.records, "get", None)
    assert raw(api, "GET", path)[0] == 500
    for _method, _path, status, body in ERROR_RESPONSES:
        assert_error_shape(body)
        assert 400 <= status < 600
    assert {status for _method, _path, status, _body in ERROR_RESPONSES} >= {400, 401, 403, 404, 405, 409, 422, 500}


def test_a_too_long_url_is_a_414_in_the_error_shape(api):
    """The limit is errors.MAX_URL_BYTES of path and query, checked before the token; the document lists 414 on
    every operation (test_openapi.py)."""
    path = "/objects/lead/records?name__in="
    fits = path + "x" * (8000 - len("/api/v1" + path) + 1)  # "?" is not part of the query string
    assert raw(api, "GET", fits) == (200, {"items": [], "next_cursor": None, "total": 0, "total_is_exact": True})
    too_long = (414, {"error": {"code": "bad_request", "message": "the URL is longer than 8000 bytes: send fewer or "
                                                                  "shorter filters"}})
    assert raw(api, "GET", fits + "x") == too_long
    assert raw(api, "GET", fits + "x", as_=None) == too_long
    assert raw(api, "POST", "/objects/lead/records?" + "q=" + "x" * 8000, json={"name": "x"}) == too_long
    assert raw(api, "GET", "/objects/lead/records")[1]["total"] == 0
    response = api.client.get("/api/v1/objects/lead/records?q=" + "é" * 4000)
    assert response.status_code == 414 and response.get_json()["error"]["reason"] == "request.url_too_long"
    assert response.get_json()["error"]["params"] == {"limit": 8000}


def test_bulk_ids_that_cannot_be_ids_are_422(api, people):
    """A bulk action takes ids as text or numbers (the document says so); zero, a negative or an id beyond the
    largest one is refused before any record is touched."""
    for wrong in ("0", 0, -3, 2**63, "9223372036854775808", "1.5", True):
        status, body = raw(api, "POST", "/objects/user/actions/deactivate", as_="admin",
                           json={"ids": [people["rep1"], wrong], "handover_to": people["rep2"]})
        assert (status, body["error"]["fields"]) == (422, {"ids": [f"{wrong!r} is not a record id"]})
    users = {u["username"]: u["active"] for u in raw(api, "GET", "/objects/user/records?limit=500", as_="admin")[1][
        "items"]}
    assert users["rep1"] is True
    status, body = raw(api, "POST", "/objects/user/actions/deactivate", as_="admin",
                       json={"ids": [int(people["rep1"])], "handover_to": int(people["rep2"])})
    assert (status, body) == (200, {"succeeded": [people["rep1"]], "failed": []})


def test_a_line_naming_a_parent_beyond_the_largest_id_is_a_field_error(api):
    """A line whose parent (a record with a lifecycle) is named by an id no database column holds: the parent's lock
    check skips it and validation names the field (it was a 500 when the id was read from the table)."""
    for wrong in (2**64, "18446744073709551616"):
        status, body = raw(api, "POST", "/objects/stage_history/records", as_="admin",
                           json={"opportunity": wrong, "stage": "x"})
        assert (status, body["error"]["code"], list(body["error"]["fields"])[:1]) == (422, "validation_failed",
                                                                                     ["opportunity"])
    assert raw(api, "GET", "/objects/stage_history/records", as_="admin")[1]["total"] == 0
