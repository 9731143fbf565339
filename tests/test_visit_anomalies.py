"""异常拜访 (issue 16) on both databases: the visits checked in out of range, checked out within 15 minutes, missed,
checked in on an earlier day and never checked out, completed without a required action, or checked in after
travelling faster than 120 km/h from the rep's check-in before, located less precisely than the 300 m, or checked
in within 50 m of another check-in of the day for an account more than 1 km away (同地多签), listed through the API
and the managers' page within the caller's scope, with the offline check-in map (the points on a plane, the
tolerance circle) drawn by hand figures; and the day's mileage per rep (里程) from the check-in sequence.

The day (the clock on 8 December 2026, 09:30 in China), rep1's visits at 星辰科技 (tolerance 300 m):
- short: checked in 215 m away, checked out 10 minutes later (too short);
- far: checked in 1,099 m north, checked out 30 minutes later (out of range);
- fine: checked in 215 m away, checked out 20 minutes later (no anomaly);
- missed: planned 7 December at 15:00, never checked in (the visit_missed rule marks it at midnight);
- open: planned and checked in 7 December at 10:00, never checked out;
rep2's visit at 云图科技, checked in 1,099 m north (out of range: only rep2 and the manager see it).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from test_api import PASSWORD
from test_api import app as app  # noqa: F401  (fixtures)
from test_api import people as people  # noqa: F401
from test_pages import login
from test_visits import SHOP, account, act, haversine, visit
from test_visits import api as api  # noqa: F401
from test_visits import clock as clock  # noqa: F401
from test_visits import metadata as metadata  # noqa: F401
from test_visits import platform as platform  # noqa: F401

from objectplatform.runtime import rules
from objectplatform.runtime.geo import Plane

NEAR = {"lat": 31.2320, "lng": 121.4750}  # 215 m from the shop
FAR = {"lat": 31.2403, "lng": 121.473701}  # 1,099 m north


def complete(api, visit_id: str, clock, minutes: int, where: dict, as_: str = "rep1") -> None:  # noqa: F811
    assert act(api, visit_id, "check_in", as_, **where)[0] == 200
    clock.advance(minutes=minutes)
    version = api.get(f"/objects/visit/records/{visit_id}", as_)[1]["version"]
    assert api.patch(f"/objects/visit/records/{visit_id}", as_, {"version": version, "summary": "回访"})[0] == 200
    assert api.post("/objects/customer_feedback/records", as_, {  # the sales department's required visit action
        "visit": visit_id, "category": "product", "satisfaction": "satisfied", "content": "回访"})[0] == 201
    assert act(api, visit_id, "check_out", as_, **where)[0] == 200


@pytest.fixture
def day(api, people, platform, clock):  # noqa: F811
    """The visits of the module's docstring; returns their ids."""
    shop = account(api)
    ids = {"shop": shop}
    clock.at = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 on 7 December
    ids["missed"] = visit(api, shop, planned_at="2026-12-07T15:00:00+08:00")
    ids["open"] = visit(api, shop, planned_at="2026-12-07T10:00:00+08:00")
    assert act(api, ids["open"], "check_in", **NEAR)[0] == 200
    rules.run_rules(platform, datetime(2026, 12, 7, 16, 1, tzinfo=UTC), ["visit_missed"])
    clock.at = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)
    for name, minutes, where in (("short", 10, NEAR), ("far", 30, FAR), ("fine", 20, NEAR)):
        ids[name] = visit(api, shop)
        complete(api, ids[name], clock, minutes, where)
    ids["theirs"] = visit(api, account(api, "rep2", "云图科技"), "rep2")
    assert act(api, ids["theirs"], "check_in", "rep2", **FAR)[0] == 200
    return ids


def listed(body: dict, ids: dict) -> list[tuple[str, list[str]]]:
    names = {v: k for k, v in ids.items()}
    return [(names[i["id"]], i["kinds"]) for i in body["items"]]


def test_a_reps_anomalies_latest_first_with_their_kinds_and_counts(api, day):
    status, body = api.get("/objects/visit/anomalies?start=2026-12-01&end=2026-12-08", "rep1")
    assert status == 200
    # planned latest first (the three of 8 December at 10:00, the latest id first), then 7 December 15:00, 10:00
    assert listed(body, day) == [("far", ["out_of_range"]), ("short", ["too_short"]), ("missed", ["missed"]),
                                 ("open", ["no_check_out"])]
    assert (body["period"], body["tolerance_m"], body["min_minutes"], body["max_speed_kmh"], body["total"],
            body["counts"]) == ({"start": "2026-12-01", "end": "2026-12-08"}, 300, 15, 120, 4, {
                "out_of_range": 1, "too_short": 1, "missed": 1, "no_check_out": 1, "missing_actions": 0,
                "too_fast": 0, "poor_accuracy": 0, "same_spot": 0})
    # without a period: the last 30 days to today (the clock stands on 8 December)
    assert api.get("/objects/visit/anomalies", "rep1")[1]["period"] == {"start": "2026-11-09", "end": "2026-12-08"}
    far = body["items"][0]
    assert (far["check_in"], far["target_location"], far["duration_minutes"], far["owner_name"],
            far["check_in_at"]) == (FAR, SHOP, 30, "王伟", "2026-12-08T01:40:00+00:00")
    assert round(far["distance_m"]) == 1099
    status, body = api.get("/objects/visit/anomalies?start=2026-12-01&end=2026-12-08&kind=too_short", "rep1")
    assert listed(body, day) == [("short", ["too_short"])]
    assert body["total"] == 1


def test_the_manager_sees_the_teams_and_today_has_none_not_checked_out_yet(api, day, people):
    status, body = api.get("/objects/visit/anomalies?start=2026-12-08&end=2026-12-08", "boss")
    assert listed(body, day) == [("theirs", ["out_of_range"]), ("far", ["out_of_range"]),
                                 ("short", ["too_short"])]  # rep2's check-in today may still be checked out
    status, body = api.get(f"/objects/visit/anomalies?start=2026-12-08&end=2026-12-08&owner={people['rep2']}",
                           "boss")
    assert listed(body, day) == [("theirs", ["out_of_range"])]
    assert api.get("/objects/visit/anomalies?start=2026-12-08&end=2026-12-08", "rep2")[1]["total"] == 1


def test_a_check_in_reached_faster_than_the_settings_allow(api, day, clock):  # noqa: F811
    # 远郊门店 is 0.268° of latitude (29,800 m) north of where rep1 checked in to the fine visit at 10:10 (China);
    # checking in there at 10:15 is 357.6 km/h, above the 120 allowed
    suburb = {"lat": 31.5, "lng": 121.475}
    assert round(haversine(NEAR, suburb)) == 29800
    far_away = visit(api, account(api, name="远郊门店", location=suburb))
    clock.at = datetime(2026, 12, 8, 2, 15, tzinfo=UTC)
    assert act(api, far_away, "check_in", **suburb)[0] == 200
    status, body = api.get("/objects/visit/anomalies?start=2026-12-08&end=2026-12-08", "rep1")
    assert listed(body, {**day, "far_away": far_away}) == [("far_away", ["too_fast"]), ("far", ["out_of_range"]),
                                                           ("short", ["too_short"])]
    assert body["counts"]["too_fast"] == 1 and body["items"][0]["distance_m"] == 0  # at the door, valid
    # the next check-in, at the same place a minute later, is measured from far_away's: 0 m, not too fast
    clock.at = datetime(2026, 12, 8, 2, 16, tzinfo=UTC)
    next_door = visit(api, account(api, name="远郊二店", location=suburb))
    assert act(api, next_door, "check_in", **suburb)[0] == 200
    body = api.get("/objects/visit/anomalies?start=2026-12-08&end=2026-12-08&kind=too_fast", "rep1")[1]
    assert [i["id"] for i in body["items"]] == [far_away]


def test_a_visit_completed_without_an_action_its_owner_now_owes(api, day, people, platform, clock):  # noqa: F811
    # 孙磊 belongs to no department when he completes a visit: 客户反馈 (销售部's, required) is not his to fill;
    # once he joins 销售部 the visit is done without a required action
    records = platform.records
    rep3 = records.create("user", {"username": "rep3", "display_name": "孙磊", "password": PASSWORD,
                                   "roles": ["sales_rep"], "manager": people["boss"]}, system=True)["id"]
    theirs = visit(api, account(api, "rep3", "海川贸易"), "rep3")
    assert act(api, theirs, "check_in", "rep3", **NEAR)[0] == 200
    clock.advance(minutes=20)
    version = api.get(f"/objects/visit/records/{theirs}", "rep3")[1]["version"]
    assert api.patch(f"/objects/visit/records/{theirs}", "rep3", {"version": version, "summary": "初访"})[0] == 200
    assert act(api, theirs, "check_out", "rep3", **NEAR)[0] == 200
    query = "/objects/visit/anomalies?start=2026-12-08&end=2026-12-08&kind=missing_actions"
    assert api.get(query, "boss")[1]["total"] == 0
    records.update("user", rep3, {"department": people["sales"]}, version=None, system=True)
    body = api.get(query, "boss")[1]
    assert [(i["id"], i["kinds"], i["owner_name"]) for i in body["items"]] == [(theirs, ["missing_actions"], "孙磊")]
    # rep1's completed visits have their 客户反馈
    assert api.get(query, "rep1")[1]["total"] == 0


def test_bad_periods_and_kinds_are_refused(api, day):
    assert api.get("/objects/visit/anomalies?start=2026-12-09&end=2026-12-08", "rep1") == (400, {"error": {
        "code": "bad_request", "message": "bad period: end",
        "fields": {"end": ["must be on or after start and within 93 days of it"]}}})
    assert api.get("/objects/visit/anomalies?start=12/01", "rep1")[1]["error"]["fields"] == {
        "start": ["must be a date as YYYY-MM-DD"]}
    assert api.get("/objects/visit/anomalies?kind=late", "rep1")[1]["error"]["fields"] == {
        "kind": ["unknown kind 'late'"]}
    assert api.get("/objects/account/anomalies", "rep1") == (404, {"error": {
        "code": "not_found", "message": "Account has no check-in"}})


def test_the_plane_fits_the_points_and_measures_metres_by_hand():
    # two points 1,000 m apart north-south (1 km = 1000 / 6371000 rad of latitude): 372 px of the 420 px box
    # without its 24 px margins, so the 300 m tolerance is 111.6 px and the points sit 186 px above and below
    # the centre (210)
    dlat = 1000 / 6_371_000 * 180 / 3.141592653589793
    plane = Plane([{"lat": 31.0, "lng": 121.0}, {"lat": 31.0 + dlat, "lng": 121.0}], 640, 420)
    assert (plane.length(300), plane.xy({"lat": 31.0, "lng": 121.0}), plane.xy({"lat": 31.0 + dlat, "lng": 121.0}),
            plane.scale_bar(160)) == (111.6, (320.0, 396.0), (320.0, 24.0), (200, 74.4))


def test_the_managers_page_lists_them_with_the_map(app, api, day, people):  # noqa: F811
    client = app.test_client()
    login(client, "boss", PASSWORD)
    page = client.get("/o/visit/anomalies?start=2026-12-07&end=2026-12-08").get_data(as_text=True)
    assert page.count('<tr id="anomaly-') == 5
    assert page.count('<circle class="check-in out"') == 2 and page.count('<circle class="tolerance"') == 5
    assert "异常拜访" in page and "超出范围" in page and "未签退" in page and "时长过短" in page
    # on a phone each row is a card (table.records.cards): the visit's title on top, each value after its label
    assert '<table class="records cards anomalies">' in page
    row = re.search(r'<tr id="anomaly-\d+".*?</tr>', page, re.S).group(0)
    assert re.findall(r'<td([^>]*)>', row) == [
        ' class="numbers n" data-label="#"', ' class="title"', ' data-label="客户"', ' data-label="负责人"',
        ' data-label="计划拜访时间"', ' data-label="签到时间"', ' class="numbers" data-label="签到距离（米）"',
        ' class="numbers" data-label="拜访时长（分钟）"', ' data-label="异常"', ' class="row-actions"']
    one = client.get(f"/o/visit/anomalies?start=2026-12-07&end=2026-12-08&record={day['far']}&lang=en")
    html = one.get_data(as_text=True)
    assert html.count('<tr id="anomaly-') == 1 and html.count('<circle class="tolerance"') == 1
    # the frame holds the check-in 0.009884° (1,099.05 m on the plane) north of the shop and the 300 m circle
    # around the shop: 1,399.05 m on 372 px (420 less the margins), so 300 m is 79.8 px
    assert 'r="79.8"' in html
    assert '<a href="/o/visit/anomalies" aria-current="page">异常拜访</a>' in page  # in the menu's 拜访 group
    assert '<a href="/o/visit/anomalies">异常拜访</a>' in client.get("/").get_data(as_text=True)


def test_a_checked_in_visits_page_maps_its_check_in_beside_the_account(app, api, day):  # noqa: F811
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    page = client.get(f"/o/visit/{day['fine']}").get_data(as_text=True)
    # 215 m from the shop, inside the 300 m circle: the frame spans the circle, 600 m on 372 px: 300 m is 186 px
    assert page.count('<circle class="tolerance"') == 1 and 'r="186.0"' in page
    assert page.count('<circle class="check-in"') == 1 and '<circle class="check-in out"' not in page
    assert "允差范围 300 米" in page
    planned = client.get(f"/o/visit/{visit(api, day['shop'])}").get_data(as_text=True)
    assert 'class="check-in-map"' not in planned  # nothing to draw before the check-in


def test_a_check_in_located_less_precisely_than_the_tolerance(api, day):
    # the browser's accuracy is kept on the visit; 500 m is worse than the 300 m tolerance, 20 m is not
    vague, sharp = visit(api, day["shop"]), visit(api, day["shop"])
    status, body = act(api, vague, "check_in", **SHOP, accuracy=500)
    assert (status, body["record"]["check_in_accuracy"], body["record"]["check_in_valid"]) == (200, 500, False)
    status, body = act(api, sharp, "check_in", **SHOP, accuracy=20)
    assert (status, body["record"]["check_in_accuracy"], body["record"]["check_in_valid"]) == (200, 20, True)
    body = api.get("/objects/visit/anomalies?start=2026-12-08&end=2026-12-08", "rep1")[1]
    assert listed(body, {**day, "vague": vague}) == [("vague", ["out_of_range", "poor_accuracy"]),
                                                     ("far", ["out_of_range"]), ("short", ["too_short"])]
    assert body["counts"]["poor_accuracy"] == 1


def test_check_ins_from_one_spot_for_accounts_far_apart(api, day, clock):  # noqa: F811
    # 东店 and 北店 are 0.01° of latitude (1,112 m) apart, 南店 0.0045° (500 m) north of 东店; in the afternoon rep1
    # checks in to all three from 东店's door or 30 m north of it: 东店 and 北店 (within 50 m, accounts more than
    # 1 km apart) are the same spot; 南店 is 500 m from 东店 and 612 m from 北店: not far enough apart
    east, north, south = {"lat": 31.3, "lng": 121.5}, {"lat": 31.31, "lng": 121.5}, {"lat": 31.3045, "lng": 121.5}
    assert (round(haversine(east, north)), round(haversine(east, south)), round(haversine(north, south))) == (
        1112, 500, 612)
    ids = {name: visit(api, account(api, name=name, location=where))
           for name, where in (("东店", east), ("北店", north), ("南店", south))}
    beside = {"lat": 31.30027, "lng": 121.5}
    assert round(haversine(east, beside)) == 30
    for minutes, (name, where) in enumerate((("东店", east), ("北店", beside), ("南店", east))):
        clock.at = datetime(2026, 12, 8, 6, 10 * minutes, tzinfo=UTC)
        assert act(api, ids[name], "check_in", **where)[0] == 200
    body = api.get("/objects/visit/anomalies?start=2026-12-08&end=2026-12-08&kind=same_spot", "rep1")[1]
    assert listed(body, ids) == [("北店", ["out_of_range", "same_spot"]), ("东店", ["same_spot"])]
    assert (body["counts"]["same_spot"], body["same_spot_m"], body["same_spot_apart_m"]) == (2, 50, 1000)
    # on another day the same two check-ins are no pair
    assert api.get("/objects/visit/anomalies?start=2026-12-07&end=2026-12-07&kind=same_spot", "rep1")[1][
        "total"] == 0


def test_the_days_mileage_per_rep_from_the_check_in_sequence(api, day, people, clock):  # noqa: F811
    # 8 December, rep1 checked in near the shop, 931.1 m north of it (far), then near it again: 1,862.3 m, 1.86 km,
    # by road (× 1.3) 2.42 km; 7 December one check-in (open): 0 km. rep2 one check-in: 0 km
    assert round(2 * haversine(NEAR, FAR), 1) == 1862.3
    status, body = api.get("/objects/visit/mileage?start=2026-12-01&end=2026-12-08", "rep1")
    assert status == 200
    assert body == {"period": {"start": "2026-12-01", "end": "2026-12-08"}, "road_factor": 1.3, "km": 1.86,
                    "road_km": 2.42, "items": [
                        {"owner": people["rep1"], "owner_name": "王伟", "day": "2026-12-07", "check_ins": 1,
                         "km": 0, "road_km": 0},
                        {"owner": people["rep1"], "owner_name": "王伟", "day": "2026-12-08", "check_ins": 3,
                         "km": 1.86, "road_km": 2.42}]}
    # 9 December: 0.01° then 0.02° of latitude north along a meridian, 1,111.95 m + 2,223.9 m = 3.34 km (4.34 by
    # road); the manager sees both reps, rep2 only their own
    clock.at = datetime(2026, 12, 9, 1, 0, tzinfo=UTC)
    for n, lat in enumerate((31.20, 31.21, 31.23)):
        place = {"lat": lat, "lng": 121.4}
        mine = visit(api, account(api, name=f"路线{n}", location=place), planned_at="2026-12-09T10:00:00+08:00")
        clock.advance(minutes=30)
        assert act(api, mine, "check_in", **place)[0] == 200
    body = api.get("/objects/visit/mileage?start=2026-12-08&end=2026-12-09", "boss")[1]
    assert [(i["owner_name"], i["day"], i["check_ins"], i["km"], i["road_km"]) for i in body["items"]] == [
        ("王伟", "2026-12-08", 3, 1.86, 2.42), ("王伟", "2026-12-09", 3, 3.34, 4.34),
        ("李娜", "2026-12-08", 1, 0, 0)]
    assert (body["km"], body["road_km"]) == (5.2, 6.76)
    body = api.get(f"/objects/visit/mileage?start=2026-12-09&end=2026-12-09&owner={people['rep1']}", "boss")[1]
    assert [(i["day"], i["km"]) for i in body["items"]] == [("2026-12-09", 3.34)]
    assert [i["owner_name"] for i in api.get("/objects/visit/mileage?start=2026-12-08&end=2026-12-09", "rep2")[1][
        "items"]] == ["李娜"]
    assert api.get("/objects/visit/mileage?start=2026-12-09&end=2026-12-01", "rep1")[0] == 400
    assert api.get("/objects/account/mileage", "rep1")[0] == 404


def test_the_managers_page_shows_the_mileage_per_rep_and_day(app, api, day, people):  # noqa: F811
    client = app.test_client()
    login(client, "boss", PASSWORD)
    page = client.get("/o/visit/anomalies?start=2026-12-07&end=2026-12-08").get_data(as_text=True)
    mileage = page[page.index('<table class="records mileage">'):]
    assert "里程" in page and "道路里程（公里，× 1.3）" in mileage
    assert "<tr><td>王伟</td><td>2026-12-08</td><td class=\"numbers\">3</td>\n      <td class=\"numbers\">1.86</td>" \
        "<td class=\"numbers\">2.42</td></tr>" in mileage
    assert "同一天在 50 米内为相距超过 1000 米的客户签到为同地多签" in page
    client.get("/lang/en")
    english = client.get("/o/visit/anomalies?start=2026-12-07&end=2026-12-08").get_data(as_text=True)
    assert "Mileage" in english and "By road (km, × 1.3)" in english
