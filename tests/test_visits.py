"""Customer visits on both databases: check-in and check-out measured against the account's location (tolerance,
accuracy, the refuse policy), co-visitors' own rows, the duration and the follow-up a completed visit posts, the
daily cap where the settings refuse more, nearby accounts within the caller's scope, the rule marking a visit
missed at the end of its day, and the check-in photo stamped (水印) beside its original."""

from __future__ import annotations

import base64
import io
import math
from datetime import UTC, datetime

import pytest
from PIL import Image
from support import FixedClock, crm_metadata, migrated_platform, shared_site
from test_api import PASSWORD, SITE_LAYER, Api
from test_api import app as app  # noqa: F401  (fixtures)
from test_api import people as people  # noqa: F401
from test_pages import login, token

from objectplatform.runtime import rules
from objectplatform.web import create_app

T0 = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
SHOP = {"lat": 31.230416, "lng": 121.473701}  # 星辰科技, by People's Square
REFUSE = """\
kind: object_extension
object: visit
behaviors:
  check_in: {out_of_range: refuse, tolerance_m: 100, beyond_max_per_day: refuse}
"""


def error(status: int, code: str, message: str, fields: dict | None = None) -> tuple[int, dict]:
    return status, {"error": {"code": code, "message": message, **({"fields": fields} if fields else {})}}


def haversine(a: dict, b: dict) -> float:
    """The great-circle distance in metres, by hand (mean Earth radius 6,371 km)."""
    p1, p2 = math.radians(a["lat"]), math.radians(b["lat"])
    dlng = math.radians(b["lng"] - a["lng"])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlng / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


@pytest.fixture(scope="module")
def metadata():
    return shared_site({"flows/standard.yaml": SITE_LAYER})


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def platform(platform, clock):
    platform.clock = clock
    return platform


@pytest.fixture
def api(app, people) -> Api:  # noqa: F811
    return Api(app.test_client())


def account(api: Api, as_: str = "rep1", name: str = "星辰科技", location: dict | None = SHOP) -> str:
    status, body = api.post("/objects/account/records", as_, {"name": name, "location": location})
    assert status == 201, body
    return body["id"]


def visit(api: Api, account_id: str, as_: str = "rep1", **values) -> str:
    status, body = api.post("/objects/visit/records", as_, {
        "subject": "季度回访", "account": account_id, "planned_at": "2026-12-08T10:00:00+08:00", **values})
    assert status == 201, body
    return body["id"]


def act(api: Api, visit_id: str, action: str, as_: str = "rep1", **params):
    return api.post(f"/objects/visit/records/{visit_id}/actions/{action}", as_, params)


def test_a_check_in_within_the_tolerance_is_valid_and_its_distance_is_the_great_circle_one(api, people):
    shop = account(api)
    near, far, vague = (visit(api, shop) for _ in range(3))
    here = {"lat": 31.2320, "lng": 121.4750}
    status, body = act(api, near, "check_in", lat=here["lat"], lng=here["lng"], address="人民广场")
    record = body["record"]
    assert (status, record["status"], record["check_in_at"], record["check_in_location"], record["check_in_address"],
            record["check_in_valid"]) == (200, "checked_in", "2026-12-08T01:30:00+00:00", here, "人民广场", True)
    assert abs(record["check_in_distance"] - haversine(SHOP, here)) <= 1
    assert round(haversine(SHOP, here)) == 215
    # 1.1 km north: kept, but flagged out of range
    status, body = act(api, far, "check_in", lat=31.2403, lng=121.473701)
    assert (status, body["record"]["status"], body["record"]["check_in_valid"]) == (200, "checked_in", False)
    assert abs(body["record"]["check_in_distance"] - haversine(SHOP, {"lat": 31.2403, "lng": 121.473701})) <= 1
    # at the door but located to within 500 m only: not valid either
    status, body = act(api, vague, "check_in", lat=SHOP["lat"], lng=SHOP["lng"], accuracy=500)
    assert (status, body["record"]["check_in_distance"], body["record"]["check_in_valid"]) == (200, 0, False)


def test_bad_check_ins_are_refused_and_nothing_is_written(api, people):
    shop = account(api)
    mine = visit(api, shop)
    assert act(api, mine, "check_in", lat=91, lng=121.47) == error(
        422, "validation_failed", "1 field error", {"lat": ["must be between -90 and 90"]})
    assert act(api, mine, "check_out", lat=31.23, lng=121.47) == error(
        409, "conflict", f"Visit {mine} is Planned: Check out applies only to visits in state Checked in")
    theirs = visit(api, account(api, "rep2", "云图科技"), "rep2")
    assert act(api, theirs, "check_in", lat=31.23, lng=121.47) == error(404, "not_found", f"no visit with id {theirs}")
    assert api.get(f"/objects/visit/records/{mine}", "rep1")[1]["status"] == "planned"
    assert act(api, mine, "check_in", lat=31.23, lng=121.47)[0] == 200
    assert act(api, mine, "check_in", lat=31.23, lng=121.47) == error(
        409, "conflict", f"Visit {mine} is Checked in: Check in applies only to visits in state Planned")
    # the manager reads the rep's visit but does not visit for them
    assert act(api, mine, "check_out", "boss", lat=31.23, lng=121.47) == error(
        403, "forbidden", f"only the owner and the co-visitors of visit {mine} check in and out")


def test_check_out_needs_the_summary_then_completes_with_the_duration_and_posts_it_to_the_accounts_feed(
        api, people, clock):
    shop = account(api)
    mine = visit(api, shop)
    act(api, mine, "check_in", lat=31.2305, lng=121.4737)
    clock.advance(minutes=47, seconds=30)
    assert act(api, mine, "check_out", lat=31.2305, lng=121.4738) == error(
        422, "validation_failed", "1 field error", {"summary": ["required before Check out"]})
    version = api.get(f"/objects/visit/records/{mine}", "rep1")[1]["version"]
    path = f"/objects/visit/records/{mine}"
    assert api.patch(path, "rep1", {"version": version, "summary": "客户同意试点"})[0] == 200
    # the sales department's required visit action (客户反馈, test_visit_actions.py) comes next
    assert act(api, mine, "check_out", lat=31.2305, lng=121.4738) == error(
        422, "validation_failed", "1 field error",
        {"customer_feedback": ["Customer feedback is required before Check out"]})
    assert api.post("/objects/customer_feedback/records", "rep1", {
        "visit": mine, "category": "product", "satisfaction": "satisfied", "content": "希望先试点一个部门"})[0] == 201
    status, body = act(api, mine, "check_out", lat=31.2305, lng=121.4738)
    record = body["record"]
    assert (status, record["status"], record["check_out_at"], record["check_out_location"],
            record["duration_minutes"]) == (200, "completed", "2026-12-08T02:17:30+00:00",
                                            {"lat": 31.2305, "lng": 121.4738}, 47)
    feed = api.get(f"/objects/follow_up/records?related_object=account&related_id={shop}", "rep1")[1]["items"]
    assert [(f["kind"], f["content"], f["followed_at"], f["owner"]) for f in feed] == [
        ("visit", "客户同意试点", "2026-12-08T02:17:30+00:00", people["rep1"])]


def test_a_co_visitor_checks_in_and_out_on_their_own_row_and_the_visit_stays_the_owners(api, people, clock):
    shop = account(api)
    ours = visit(api, shop, co_visitors=[people["rep2"]])
    assert [v["id"] for v in api.get("/objects/visit/records", "rep2")[1]["items"]] == [ours]
    status, body = act(api, ours, "check_in", "rep2", lat=31.2310, lng=121.4740)
    assert (status, body["record"]["status"], body["record"]["check_in_at"]) == (200, "planned", None)
    row = body["co_visit"]
    assert (row["visit"], row["user"], row["check_in_at"], row["check_in_location"], row["check_in_valid"]) == (
        ours, people["rep2"], "2026-12-08T01:30:00+00:00", {"lat": 31.231, "lng": 121.474}, True)
    assert abs(row["check_in_distance"] - haversine(SHOP, {"lat": 31.2310, "lng": 121.4740})) <= 1
    assert act(api, ours, "check_in", "rep2", lat=31.2310, lng=121.4740) == error(
        409, "conflict", f"you have already checked in to visit {ours}")
    clock.advance(minutes=5)
    status, body = act(api, ours, "check_in", lat=31.2305, lng=121.4737)
    assert (status, body["record"]["status"], body["record"]["check_in_at"]) == (
        200, "checked_in", "2026-12-08T01:35:00+00:00")
    clock.advance(minutes=40)
    status, body = act(api, ours, "check_out", "rep2", lat=31.2306, lng=121.4737,
                       evaluation="沟通充分，报价需更谨慎")
    row = body["co_visit"]
    assert (status, row["check_out_at"], row["evaluation"], body["record"]["status"]) == (
        200, "2026-12-08T02:15:00+00:00", "沟通充分，报价需更谨慎", "checked_in")
    assert act(api, ours, "check_out", "rep2", lat=31.2306, lng=121.4737) == error(
        409, "conflict", f"you have already checked out of visit {ours}")
    rows = api.get(f"/objects/visit/records/{ours}", "rep1")[1]["co_visit"]
    assert [(r["user"], r["check_out_at"]) for r in rows] == [(people["rep2"], "2026-12-08T02:15:00+00:00")]


def test_a_co_visit_row_is_written_by_check_in_and_out_only(api, people):
    """No one writes a co-visitor's check-in, its distance or its validity by hand: not inline under the visit, not
    as a record of its own (an administrator included); the actions above are the only way."""
    shop = account(api)
    ours = visit(api, shop, co_visitors=[people["rep2"]])
    version = api.get(f"/objects/visit/records/{ours}", "rep1")[1]["version"]
    forged = {"user": people["rep2"], "check_in_at": "2026-12-08T10:00:00+08:00", "check_in_distance": 0,
              "check_in_valid": True}
    status, body = api.patch(f"/objects/visit/records/{ours}", "rep1", {"version": version, "co_visit": [forged]})
    assert (status, body["error"]["message"]) == (403, "your roles do not allow you to edit co-visits")
    status, body = api.patch(f"/objects/visit/records/{ours}", "admin", {"version": version, "co_visit": [forged]})
    assert (status, body["error"]["code"]) == (422, "validation_failed"), body
    assert sorted(body["error"]["fields"]) == [f"co_visit[0].{name}" for name in sorted(forged)]
    status, body = api.post("/objects/co_visit/records", "admin", {"visit": ours, **forged})
    assert (status, body["error"]["code"]) == (422, "validation_failed"), body
    assert sorted(body["error"]["fields"]) == sorted(forged)
    assert api.get(f"/objects/visit/records/{ours}", "rep1")[1]["co_visit"] == []


def test_nearby_accounts_come_nearest_first_within_the_radius_and_the_callers_scope(api, people):
    points = {"A": (31.2310, 121.4740), "B": (31.2350, 121.4800), "C": (31.2500, 121.5000),
              "D": (31.3500, 121.6000)}
    ids = {name: account(api, name=f"门店{name}", location={"lat": lat, "lng": lng})
           for name, (lat, lng) in points.items()}
    account(api, "rep2", "别人的门店", {"lat": 31.2305, "lng": 121.4738})
    account(api, name="无定位门店", location=None)
    status, body = api.get(f"/objects/account/nearby?lat={SHOP['lat']}&lng={SHOP['lng']}&radius_m=4000", "rep1")
    assert status == 200
    expected = sorted((haversine(SHOP, {"lat": lat, "lng": lng}), name) for name, (lat, lng) in points.items())
    expected = [(ids[name], round(d, 1)) for d, name in expected if d <= 4000]
    assert [(a["id"], a["distance_m"]) for a in body["items"]] == expected
    assert [a["name"] for a in body["items"]] == ["门店A", "门店B", "门店C"]
    assert api.get(f"/objects/account/nearby?lat={SHOP['lat']}&lng={SHOP['lng']}&limit=1", "rep1")[1]["items"][0][
        "id"] == ids["A"]
    assert api.get(f"/objects/account/nearby?lat={SHOP['lat']}&lng={SHOP['lng']}", "boss")[1]["items"][0][
        "name"] == "别人的门店"  # the manager's scope holds both reps' accounts
    assert api.get("/objects/account/nearby?lat=91&lng=121", "rep1") == error(
        400, "bad_request", "bad nearby search: lat", {"lat": ["must be a number from -90 to 90"]})
    assert api.get("/objects/account/nearby?lng=121&radius_m=x", "rep1") == error(
        400, "bad_request", "bad nearby search: lat, radius_m",
        {"lat": ["is required"], "radius_m": ["must be a number from 1 to 200000"]})
    assert api.get("/objects/product/nearby?lat=31&lng=121", "rep1") == error(
        404, "not_found", "Product has no geolocation field to search near")


def test_a_planned_visit_nobody_checked_in_to_is_missed_after_its_day_ends(api, people, platform):
    shop = account(api)
    late = visit(api, shop, planned_at="2026-12-08T21:00:00+08:00")
    done = visit(api, shop)
    act(api, done, "check_in", lat=31.2305, lng=121.4737)
    tomorrow = visit(api, shop, planned_at="2026-12-09T09:00:00+08:00")
    rules.run_rules(platform, datetime(2026, 12, 8, 15, 59, tzinfo=UTC), ["visit_missed"])  # 23:59 in Shanghai
    assert api.get(f"/objects/visit/records/{late}", "rep1")[1]["status"] == "planned"
    rules.run_rules(platform, datetime(2026, 12, 8, 16, 1, tzinfo=UTC), ["visit_missed"])  # 00:01 the next day
    statuses = [api.get(f"/objects/visit/records/{v}", "rep1")[1]["status"] for v in (late, done, tomorrow)]
    assert statuses == ["missed", "checked_in", "planned"]


@pytest.fixture
def refusing(tmp_path, backend, templates):
    """A platform whose visits refuse check-ins beyond 100 m."""
    metadata = crm_metadata(tmp_path / "site", {"flows/standard.yaml": SITE_LAYER, "object_defs/refuse.yaml": REFUSE})
    with templates.blank(backend, tmp_path) as url, migrated_platform(url, tmp_path, metadata) as platform:
        platform.clock = FixedClock(T0)
        yield platform, Api(create_app(platform).test_client())


def test_the_refuse_policy_refuses_a_check_in_beyond_the_tolerance_naming_both(refusing):
    platform, api = refusing
    rep = platform.records.create("user", {"username": "rep1", "display_name": "王伟", "password": PASSWORD,
                                           "roles": ["sales_rep"]}, system=True)["id"]
    shop = account(api)
    mine = visit(api, shop)
    message = "you are 215.1 m from the Account, more than the 100 m allowed"
    assert act(api, mine, "check_in", lat=31.2320, lng=121.4750) == error(
        422, "validation_failed", message, {"lat": [message], "lng": [message]})
    status, body = act(api, mine, "check_in", lat=31.2305, lng=121.4737)
    assert (status, body["record"]["check_in_valid"], body["record"]["owner"]) == (200, True, rep)


def test_the_phone_pages_check_in_from_the_visit_page_and_start_a_visit_from_nearby_accounts(app, api, people):  # noqa: F811
    shop = account(api)
    mine = visit(api, shop)
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    page = client.get(f"/o/visit/{mine}").get_data(as_text=True)
    assert 'id="check-in"' in page and 'data-form="check_in"' in page and 'data-form="check_out"' not in page
    assert "请在距客户 300 米内签到（允差范围）；超出范围的签到会被标记为无效。" in page
    assert 'href="#check-in" data-action="check_in"' in page  # the header's button leads to the locating form
    response = client.post(f"/o/visit/{mine}/action/check_in", data={
        "csrf_token": token(client), "__params": "1", "lat": "31.2320", "lng": "121.4750", "accuracy": ""})
    assert response.status_code == 302
    page = client.get(f"/o/visit/{mine}").get_data(as_text=True)
    assert "距客户位置 215.1 米" in page and "<strong>有效</strong>" in page and 'data-form="check_out"' in page
    # nearby accounts, nearest first; 临时拜访 creates a visit checked in at the searched point
    far = account(api, name="远处门店", location={"lat": 31.2400, "lng": 121.4900})
    page = client.get(f"/o/account/nearby?lat={SHOP['lat']}&lng={SHOP['lng']}&radius_m=5000").get_data(as_text=True)
    assert page.index("星辰科技") < page.index("远处门店") and "附近的客户" in page and "临时拜访" in page
    assert 'data-distance="0.0"' in page
    response = client.post(f"/o/account/{far}/visit_now", data={
        "csrf_token": token(client), "lat": "31.2400", "lng": "121.4900"})
    assert response.status_code == 302
    new = response.headers["Location"].rsplit("/", 1)[1]
    record = api.get(f"/objects/visit/records/{new}", "rep1")[1]
    assert (record["account"], record["status"], record["check_in_distance"], record["check_in_valid"],
            record["planned_at"]) == (far, "checked_in", 0, True, "2026-12-08T01:30:00+00:00")
    assert client.get("/o/product/nearby").status_code == 404


def test_where_the_settings_refuse_it_a_rep_plans_at_most_eight_visits_a_day(refusing):
    platform, api = refusing
    platform.records.create("user", {"username": "rep1", "display_name": "王伟", "password": PASSWORD,
                                     "roles": ["sales_rep"]}, system=True)
    shop = account(api)
    for hour in range(8, 16):
        visit(api, shop, planned_at=f"2026-12-09T{hour:02}:00:00+08:00")
    assert api.post("/objects/visit/records", "rep1", {"account": shop, "planned_at": "2026-12-09T23:30:00+08:00"}) \
        == error(422, "validation_failed", "1 field error", {"planned_at": [
            "8 visit records are already planned on 2026-12-09; at most 8 a day"]})
    visit(api, shop, planned_at="2026-12-10T00:30:00+08:00")  # the next day in Shanghai
    status, body = api.post("/objects/visit/plan", "rep1", {"ids": [shop], "planned_at": "2026-12-09T18:00:00+08:00"})
    assert (status, body) == error(422, "validation_failed", "1 field error", {"planned_at": [
        "8 visit records are already planned on 2026-12-09; at most 8 a day"]})
    assert api.get("/objects/visit/records?planned_at__gte=2026-12-09T00:00:00%2B08:00", "rep1")[1]["total"] == 9


def test_an_unplanned_visit_refused_out_of_range_leaves_nothing_behind(refusing):
    platform, api = refusing
    platform.records.create("user", {"username": "rep1", "display_name": "王伟", "password": PASSWORD,
                                     "roles": ["sales_rep"]}, system=True)
    shop = account(api)
    client = create_app(platform).test_client()
    login(client, "rep1", PASSWORD)
    response = client.post(f"/o/account/{shop}/visit_now", data={
        "csrf_token": token(client), "lat": "31.2320", "lng": "121.4750"}, follow_redirects=True)
    assert "您距离客户 215.1 米，超出允差范围 100 米，不能签到" in response.get_data(as_text=True)
    assert api.get("/objects/visit/records", "rep1")[1]["total"] == 0


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def test_a_check_in_photo_is_stamped_with_time_place_and_person_and_the_original_kept(app, api, people):
    mine = visit(api, account(api))
    taken = png(320, 240, (200, 220, 240))
    photo = {"filename": "门头.png", "content_base64": base64.b64encode(taken).decode(), "content_type": "image/png"}
    status, body = act(api, mine, "check_in", lat=31.2305, lng=121.4737, address="人民广场", photo=photo)
    record = body["record"]
    assert (status, record["photo"]["name"], record["photo_original"]["name"], record["photo_original"]["size"],
            record["photo"]["content_type"]) == (200, "门头.png", "门头.png", len(taken), "image/png")
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    original = client.get(f"/o/visit/{mine}/file/photo_original")
    assert original.data == taken and original.headers["Content-Disposition"].startswith("attachment")
    shown = client.get(f"/o/visit/{mine}/file/photo?inline=1")
    assert shown.headers["Content-Disposition"].startswith("inline") and shown.mimetype == "image/png"
    stamped = Image.open(io.BytesIO(shown.data)).convert("RGB")
    assert shown.data != taken and stamped.size == (320, 240)
    # the top is as taken; the bottom left corner under the dark band (black at 140/255 over the photo)
    assert stamped.getpixel((0, 0)) == (200, 220, 240)
    assert stamped.getpixel((0, 239)) == (90, 99, 108)
    # white text is drawn on the band: pixels brighter than the band
    band = [stamped.getpixel((x, y)) for x in range(320) for y in range(200, 240)]
    assert max(band) > (200, 200, 200)
    page = client.get(f"/o/visit/{mine}").get_data(as_text=True)
    assert f'<img src="/o/visit/{mine}/file/photo?inline=1" alt="现场照片（已加时间、位置和签到人水印）"' in page
    assert f'<a href="/o/visit/{mine}/file/photo_original">查看原图</a>' in page
    # the stamped photo is the check-in's: the rep cannot swap it for an unstamped one afterwards
    status, body = api.patch(f"/objects/visit/records/{mine}", "rep1", {"version": record["version"], "photo": photo})
    assert (status, body["error"]["code"], list(body["error"]["fields"])) == (409, "locked", ["photo"]), body


def test_a_check_in_photo_that_is_no_image_is_refused_and_nothing_written(api, people):
    mine = visit(api, account(api))
    photo = {"filename": "门头.jpg", "content_base64": "/9j/4AAQSkZJRg==", "content_type": "image/jpeg"}
    assert act(api, mine, "check_in", lat=31.2305, lng=121.4737, photo=photo) == error(
        422, "validation_failed", "the photo must be a JPEG, PNG or WebP image",
        {"photo": ["the photo must be a JPEG, PNG or WebP image"]})
    record = api.get(f"/objects/visit/records/{mine}", "rep1")[1]
    assert (record["status"], record["photo"], record["photo_original"]) == ("planned", None, None)
