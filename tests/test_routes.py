"""Day routes (规划拜访路线) on both databases: a rep's planned visits of a day in the order that travels least from
their home point (points on a line, so the order and every leg can be checked by hand), fixed times kept as
windows, preview and save, reuse on another day (重用拜访路线), the .ics export and the refusals."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from support import FixedClock, shared_site
from test_api import PASSWORD, SITE_LAYER, Api
from test_api import app as app  # noqa: F401  (fixtures)
from test_api import people as people  # noqa: F401
from test_approvals_race import waiting_sessions
from test_pages import login, token
from test_records_race import run
from test_visits import error, haversine

from objectplatform.runtime.behaviors.route import plan_day
from objectplatform.runtime.permissions import access_for

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 09:00 the day before, in Shanghai
HOME = {"lat": 31.2, "lng": 121.40}
EAST = [{"lat": 31.2, "lng": round(121.40 + 0.01 * k, 2)} for k in range(1, 5)]  # 1, 2, 3, 4 steps east of home


def km(a: dict, b: dict) -> float:
    """A leg: 1.3 × the great-circle distance (the visit's road_factor), in km to 2 decimals."""
    return round(haversine(a, b) * 1.3 / 1000, 2)


def minutes(km_: float) -> int:
    return round(km_ / 30 * 60)  # 30 km/h


STEP = km(HOME, EAST[0])  # every step east is as long: the points share a latitude


@pytest.fixture(scope="module")
def metadata():
    return shared_site({"flows/standard.yaml": SITE_LAYER})


@pytest.fixture
def platform(platform):
    platform.clock = FixedClock(T0)
    return platform


@pytest.fixture
def api(app, people, platform) -> Api:  # noqa: F811
    platform.records.update("user", people["rep1"], {"home_location": HOME}, version=None, system=True)
    return Api(app.test_client())


def account(api: Api, name: str, location: dict | None, as_: str = "rep1") -> str:
    status, body = api.post("/objects/account/records", as_, {"name": name, "location": location})
    assert status == 201, body
    return body["id"]


def visit(api: Api, account_id: str, planned_at: str, as_: str = "rep1", **values) -> str:
    status, body = api.post("/objects/visit/records", as_, {
        "subject": "季度回访", "account": account_id, "planned_at": planned_at, **values})
    assert status == 201, body
    return body["id"]


@pytest.fixture
def day(api):
    """Four visits of rep1 on 8 December planned in scrambled order at the four points east of home (far first)."""
    shops = [account(api, f"门店{k}", point) for k, point in enumerate(EAST, 1)]
    times = ["09:00", "10:00", "11:00", "12:00"]
    visits = [visit(api, shop, f"2026-12-08T{t}:00+08:00") for shop, t in zip(reversed(shops), times, strict=True)]
    return shops, list(reversed(visits))  # visits[k] is at EAST[k]


def test_the_route_goes_from_home_to_the_nearest_stop_onwards_with_each_leg_and_the_totals(api, day):
    _, visits = day
    status, body = api.post("/visits/route", "rep1", {"date": "2026-12-08", "save": False})
    assert status == 200, body
    assert body["stops"] == visits
    assert body["legs"] == [{"from": None, "to": visits[0], "km": STEP, "minutes": minutes(STEP)}] + [
        {"from": a, "to": b, "km": STEP, "minutes": minutes(STEP)} for a, b in zip(visits, visits[1:], strict=False)]
    assert (body["total_km"], body["total_minutes"], body["route"]) == (round(4 * STEP, 2), 4 * minutes(STEP), None)
    assert STEP == 1.24 and minutes(STEP) == 2
    assert body["arrivals"][0] == "2026-12-08T00:32:00+00:00"  # 08:30 plus 1.24 km at 30 km/h (2.5 min), in UTC
    assert api.get("/objects/visit_route/records", "rep1")[1]["total"] == 0  # a preview saves nothing


def test_a_start_point_given_replaces_home_and_without_either_the_route_starts_at_a_stop(api, people, day, platform):
    _, visits = day
    far = {"lat": 31.2, "lng": 121.46}  # two steps beyond the farthest stop: the route comes back west
    body = api.post("/visits/route", "rep1", {"date": "2026-12-08", "start": far, "save": False})[1]
    assert body["stops"] == visits[::-1]
    assert body["legs"][0] == {"from": None, "to": visits[3], "km": km(far, EAST[3]), "minutes": 5}
    platform.records.update("user", people["rep1"], {"home_location": None}, version=None, system=True)
    body = api.post("/visits/route", "rep1", {"date": "2026-12-08", "save": False})[1]
    assert body["stops"] in (visits, visits[::-1])  # either end of the line
    assert (len(body["legs"]), body["total_km"]) == (3, round(3 * STEP, 2))


def test_a_fixed_time_visit_is_reached_within_its_window(api, day):
    """Reached second (after the nearest stop, 08:32 + 30 minutes there) it would be 09:10, after 09:05."""
    shops, visits = day
    status, body = api.patch(f"/objects/visit/records/{visits[3]}", "rep1", {
        "planned_at": "2026-12-08T08:35:00+08:00", "fixed_time": True, "version": 1})
    assert status == 200, body
    body = api.post("/visits/route", "rep1", {"date": "2026-12-08", "save": False})[1]
    assert body["stops"] == [visits[3], visits[2], visits[1], visits[0]]
    assert body["arrivals"][0] == "2026-12-08T00:40:00+00:00"  # 08:40, within 08:35 ± 30 minutes
    assert body["legs"][0] == {"from": None, "to": visits[3], "km": km(HOME, EAST[3]), "minutes": 10}
    assert body["total_km"] == round(km(HOME, EAST[3]) + 3 * STEP, 2)


def test_saving_keeps_one_route_a_day_with_its_stops_in_order(api, day):
    shops, visits = day
    status, body = api.post("/visits/route", "rep1", {"date": "2026-12-08"})
    assert status == 200, body
    route = api.get(f"/objects/visit_route/records/{body['route']}", "rep1")[1]
    assert (route["route_date"], route["start_location"], route["total_km"], route["total_minutes"]) == (
        "2026-12-08", HOME, round(4 * STEP, 2), 8)
    stops = route["visit_route_stop"]
    assert [(s["position"], s["visit"], s["account"], s["km"], s["minutes"]) for s in stops] == [
        (k + 1, visits[k], shops[k], STEP, 2) for k in range(4)]
    again = api.post("/visits/route", "rep1", {"date": "2026-12-08", "visit_ids": [visits[1], visits[0]]})[1]
    assert again["route"] == body["route"] and again["stops"] == [visits[0], visits[1]]
    listed = api.get("/objects/visit_route/records", "rep1")[1]
    assert listed["total"] == 1
    route = api.get(f"/objects/visit_route/records/{body['route']}", "rep1")[1]
    assert [s["visit"] for s in route["visit_route_stop"]] == [visits[0], visits[1]]
    assert route["total_km"] == round(2 * STEP, 2)


def test_two_saves_of_a_day_at_once_keep_one_route(api, day, people, platform):  # noqa: F811
    """Two saves of rep1's day at the same moment (two threads, two connections): one route, both answered with
    it. On PostgreSQL a third transaction holds inserts into the routes' table back until both saves wait, so
    both have looked for the day's route before either could write one; SQLite serializes the writers."""
    shops, visits = day
    access = access_for(platform, people["rep1"])
    answers = []

    def save():
        answers.append(plan_day(platform, access, "visits", {"date": "2026-12-08"}))

    routes = platform.schema["visit_route"].table
    if platform.engine.dialect.name == "postgresql":
        holding, release = threading.Event(), threading.Event()

        def hold():
            with platform.engine.begin() as conn:
                conn.execute(sa.text(f'LOCK TABLE "{routes.name}" IN SHARE MODE'))
                holding.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(10)
        savers = [threading.Thread(target=save) for _ in range(2)]
        for t in savers:
            t.start()
        assert waiting_sessions(platform, 2)  # one on the table, the other on the first save
        release.set()
        holder.join(30)
        for t in savers:
            t.join(60)
    else:
        assert run(save, save) == [None, None]
    assert len(answers) == 2 and answers[0]["route"] == answers[1]["route"]
    listed = api.get("/objects/visit_route/records", "rep1")[1]
    assert [r["id"] for r in listed["items"]] == [answers[0]["route"]]
    route = api.get(f"/objects/visit_route/records/{answers[0]['route']}", "rep1")[1]
    assert [s["visit"] for s in route["visit_route_stop"]] == visits  # its four stops once, not twice


def test_reusing_a_route_plans_the_same_accounts_in_the_same_order_on_another_day(api, day):
    shops, visits = day
    route = api.post("/visits/route", "rep1", {"date": "2026-12-08"})[1]["route"]
    status, body = api.post(f"/objects/visit_route/records/{route}/actions/reuse", "rep1", {"date": "2026-12-15"})
    assert status == 200, body
    new = body["visit"]
    assert len(new) == 4 and not set(new) & set(visits)
    made = [api.get(f"/objects/visit/records/{v}", "rep1")[1] for v in new]
    assert [(v["account"], v["status"], v["subject"]) for v in made] == [(s, "planned", "季度回访") for s in shops]
    assert [v["planned_at"][:16] for v in made] == ["2026-12-15T00:32", "2026-12-15T01:05", "2026-12-15T01:37",
                                                    "2026-12-15T02:10"]
    saved = body["record"]
    assert (saved["route_date"], saved["total_km"]) == ("2026-12-15", round(4 * STEP, 2))
    assert [s["visit"] for s in saved["visit_route_stop"]] == new
    replanned = api.post("/visits/route", "rep1", {"date": "2026-12-15", "save": False})[1]
    assert replanned["stops"] == new


def test_the_day_plan_exports_as_an_ics_calendar_one_event_per_visit(app, api, day):  # noqa: F811
    shops, visits = day
    api.post("/visits/route", "rep1", {"date": "2026-12-08"})
    response = api.client.get("/api/v1/visits/plan.ics?date=2026-12-08",
                              headers={"Authorization": f"Bearer {api.token('rep1')}"})
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    assert response.headers["Content-Disposition"] == 'attachment; filename="visits-2026-12-08.ics"'
    text = response.get_data(as_text=True)
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") and text.endswith("END:VCALENDAR\r\n")
    events = text.split("BEGIN:VEVENT\r\n")[1:]
    assert len(events) == 4
    assert events[0].split("\r\n")[:6] == [
        f"UID:visit-{visits[0]}@objectplatform", "DTSTAMP:20261207T010000Z", "DTSTART:20261208T040000Z",
        "DTEND:20261208T043000Z", "SUMMARY:门店1 · 季度回访", "LOCATION:门店1 (31.200000\\, 121.410000)"]
    assert "GEO:31.200000;121.410000\r\n" in events[0]
    assert [e.split("\r\n")[4] for e in events] == [f"SUMMARY:门店{k} · 季度回访" for k in range(1, 5)]


def test_bad_route_requests_are_refused_and_nothing_is_saved(api, day):
    shops, visits = day
    assert api.post("/visits/route", "rep1", {"date": "2026-12-09"}) == error(
        422, "validation_failed", "1 field error",
        {"date": ["you have no visits planned on 2026-12-09 to route"]})
    assert api.post("/visits/route", "rep1", {"date": "8.12.2026"}) == error(
        422, "validation_failed", "1 field error", {"date": ["must be a date (YYYY-MM-DD)"]})
    assert api.post("/visits/route", "rep1", {"date": "2026-02-30"}) == error(
        422, "validation_failed", "1 field error", {"date": ["must be a date (YYYY-MM-DD)"]})
    assert api.post("/visits/route", "rep1", {}) == error(
        422, "validation_failed", "1 field error", {"date": ["is required"]})
    theirs = visit(api, account(api, "别人的客户", EAST[0], as_="rep2"), "2026-12-08T10:00:00+08:00", as_="rep2")
    assert api.post("/visits/route", "rep1", {"date": "2026-12-08", "visit_ids": [visits[0], theirs]}) == error(
        404, "not_found", f"no visit with id {theirs}")
    assert api.post("/visits/route", "rep1", {"date": "2026-12-08", "start": {"lat": 91, "lng": 0}}) == error(
        422, "validation_failed", "1 field error",
        {"start": ["must be a point: lat from -90 to 90, lng from -180 to 180"]})
    nowhere = visit(api, account(api, "无定位", None), "2026-12-08T15:00:00+08:00")
    assert api.post("/visits/route", "rep1", {"date": "2026-12-08"}) == error(
        422, "validation_failed", "1 field error",
        {"visit_ids": [f"visit {nowhere}: the account has no location to route to"]})
    assert api.post("/nothing/route", "rep1", {"date": "2026-12-08"}) == error(
        404, "not_found", "nothing is routed under nothing")
    assert api.get("/objects/visit_route/records", "rep1")[1]["total"] == 0


def test_the_day_route_page_orders_and_saves_at_phone_width(app, api, day):  # noqa: F811
    shops, visits = day
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    page = client.get("/o/visit/route?date=2026-12-08")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "今日路线" in html and 'name="viewport"' in html
    positions = [html.index(f'data-stop="{v}"') for v in visits]
    assert positions == sorted(positions)
    assert html.count("1.24 公里 · 2 分钟") == 4 and "共 4 站 · 4.96 公里 · 路上 8 分钟" in html
    assert "预计 08:32 到达 · 计划 12:00" in html and "data-saved" not in html
    saved = client.post("/o/visit/route", data={"csrf_token": token(client), "date": "2026-12-08"},
                        follow_redirects=True).get_data(as_text=True)
    assert "当天路线已保存" in saved and 'data-saved="same"' in saved
    assert api.get("/objects/visit_route/records", "rep1")[1]["total"] == 1
    assert 'href="/o/visit/route" data-day-route' in client.get("/o/visit").get_data(as_text=True)
    panel = client.get(f"/o/visit/{visits[0]}").get_data(as_text=True)
    assert 'href="/o/visit/route?date=2026-12-08" data-day-route' in panel
    ics = client.get("/o/visit/route.ics?date=2026-12-08")
    assert ics.mimetype == "text/calendar" and ics.get_data(as_text=True).count("BEGIN:VEVENT") == 4
