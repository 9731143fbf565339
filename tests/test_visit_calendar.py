"""Visit planning on both databases: the calendar of visits (a rep's own and co-visits, a manager's team, a user
filter), planning visits for several accounts in one request with the daily cap's warning, the accounts visited
less often than their grade requires this month, and the rule reminding their owners."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support import FixedClock, shared_site
from test_api import PASSWORD, SITE_LAYER, Api
from test_api import app as app  # noqa: F401  (fixtures)
from test_api import people as people  # noqa: F401
from test_pages import login, token
from test_visits import error

from objectplatform.runtime import rules

T0 = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # Tuesday 8 December 2026, 09:30 in Shanghai


@pytest.fixture(scope="module")
def metadata():
    return shared_site({"flows/standard.yaml": SITE_LAYER})


@pytest.fixture
def platform(platform):
    platform.clock = FixedClock(T0)
    return platform


@pytest.fixture
def api(app, people) -> Api:  # noqa: F811
    return Api(app.test_client())


def account(api: Api, name: str, as_: str = "rep1", **values) -> str:
    status, body = api.post("/objects/account/records", as_, {"name": name, **values})
    assert status == 201, body
    return body["id"]


def visit(api: Api, account_id: str, planned_at: str, as_: str = "rep1", **values) -> str:
    status, body = api.post("/objects/visit/records", as_, {"account": account_id, "planned_at": planned_at, **values})
    assert status == 201, body
    return body["id"]


@pytest.fixture
def december(api, people):
    """rep1: three visits in December (the last at 23:30 on the 31st, Shanghai), one on 30 November and one on
    1 January; rep2: two in December, rep1 co-visiting the second."""
    shop, plant = account(api, "星辰科技"), account(api, "远航制造")
    mall = account(api, "华联商场", "rep2")
    ids = {
        "nov": visit(api, shop, "2026-11-30T23:00:00+08:00"),
        "d8": visit(api, shop, "2026-12-08T10:00:00+08:00"),
        "d9": visit(api, plant, "2026-12-09T14:30:00+08:00"),
        "d31": visit(api, plant, "2026-12-31T23:30:00+08:00"),
        "jan": visit(api, shop, "2027-01-01T00:30:00+08:00"),
        "r2": visit(api, mall, "2026-12-08T15:00:00+08:00", "rep2"),
        "co": visit(api, mall, "2026-12-10T09:00:00+08:00", "rep2", co_visitors=[people["rep1"]], subject="联合拜访"),
    }
    status, body = api.post(f"/objects/visit/records/{ids['d9']}/actions/cancel", "rep1", {})
    assert status == 200, body
    return ids


def shown(api: Api, as_: str, query: str = "month=2026-12") -> list[tuple]:
    status, body = api.get(f"/objects/visit/calendar?{query}", as_)
    assert status == 200, body
    return [(e["id"], e["day"], e["time"], e["title"], e["state_label"]) for e in body["items"]]


def test_a_rep_sees_their_own_visits_and_their_co_visits_of_the_month_in_order(api, people, december):
    v = december
    assert shown(api, "rep1") == [
        (v["d8"], "2026-12-08", "10:00", "星辰科技", "计划中"),
        (v["d9"], "2026-12-09", "14:30", "远航制造", "已取消"),
        (v["co"], "2026-12-10", "09:00", "联合拜访", "计划中"),  # rep2's account is not rep1's to read: not named
        (v["d31"], "2026-12-31", "23:30", "远航制造", "计划中"),
    ]
    status, body = api.get("/objects/visit/calendar?month=2026-12&lang=en", "rep1")
    assert (body["start"], body["end"], len(body["items"])) == ("2026-12-01", "2027-01-01", 4)
    co = body["items"][2]
    assert (co["state_label"], co["owner"], co["owner_name"], co["attendees"], co["at"]) == (
        "Planned", people["rep2"], "李娜", [people["rep1"]], "2026-12-10T09:00:00+08:00")
    assert [e["id"] for e in api.get("/objects/visit/calendar?month=2026-12", "rep2")[1]["items"]] == [v["r2"], v["co"]]
    assert [e["id"] for e in api.get("/objects/visit/calendar?start=2026-11-30&end=2026-12-09", "rep1")[1][
        "items"]] == [v["nov"], v["d8"]]


def test_a_manager_sees_the_teams_visits_and_filters_them_by_person(api, people, december):
    v = december
    everyone = [e[0] for e in shown(api, "boss")]
    assert everyone == [v["d8"], v["r2"], v["d9"], v["co"], v["d31"]]
    assert [e[0] for e in shown(api, "boss", f"month=2026-12&user={people['rep1']}")] == [v["d8"], v["d9"], v["co"],
                                                                                          v["d31"]]
    assert [e[0] for e in shown(api, "boss", f"month=2026-12&user={people['rep2']}")] == [v["r2"], v["co"]]
    assert shown(api, "rep2", f"month=2026-12&user={people['rep1']}") == [
        (v["co"], "2026-12-10", "09:00", "华联商场", "计划中")]  # rep1's co-visit, on rep2's calendar too
    assert api.get("/objects/visit/calendar", "finance") == error(403, "forbidden",
                                                                  "your roles do not allow you to read visits")


def test_bad_calendar_requests_are_refused_naming_the_parameter(api, people):
    assert api.get("/objects/visit/calendar?month=2026-13", "rep1") == error(
        400, "bad_request", "bad calendar range: month", {"month": ["must be a month as YYYY-MM"]})
    assert api.get("/objects/visit/calendar?start=2026-12-01&end=2026-12-x", "rep1") == error(
        400, "bad_request", "bad calendar range: end", {"end": ["must be a date as YYYY-MM-DD"]})
    assert api.get("/objects/visit/calendar?start=2026-12-01&end=2027-03-01", "rep1") == error(
        400, "bad_request", "bad calendar range: end", {"end": ["must be 1 to 42 days after start"]})
    assert api.get("/objects/visit/calendar?user=boss", "rep1") == error(
        400, "bad_request", "user must be a user's id, not 'boss'", {"user": ["must be a user's id"]})
    assert api.get("/objects/account/calendar", "rep1") == error(404, "not_found", "Account has no calendar")


def test_planning_three_accounts_makes_three_planned_visits_at_the_chosen_time_in_one_request(api, people):
    shops = [account(api, name, grade="a", region="east") for name in ("一号店", "二号店", "三号店")]
    status, body = api.post("/objects/visit/plan", "rep1", {
        "ids": shops, "planned_at": "2026-12-11T14:00:00+08:00", "visit_type": "inspection", "subject": "巡店"})
    assert status == 201, body
    assert body["warnings"] == []
    assert [(r["account"], r["planned_at"], r["status"], r["owner"], r["visit_type"], r["subject"])
            for r in body["items"]] == [(shop, "2026-12-11T06:00:00+00:00", "planned", people["rep1"], "inspection",
                                         "巡店") for shop in shops]
    assert body["created"] == [r["id"] for r in body["items"]]
    day = api.get("/objects/visit/calendar?start=2026-12-11&end=2026-12-12", "rep1")[1]["items"]
    assert [(e["title"], e["time"]) for e in day] == [("一号店", "14:00"), ("二号店", "14:00"), ("三号店", "14:00")]


def test_planning_past_the_daily_cap_plans_all_and_warns(api, people):
    shop = account(api, "星辰科技")
    for hour in range(9, 15):
        visit(api, shop, f"2026-12-10T{hour:02}:00:00+08:00")
    others = [account(api, name) for name in ("一号店", "二号店", "三号店")]
    status, body = api.post("/objects/visit/plan?lang=en", "rep1", {"ids": others,
                                                                   "planned_at": "2026-12-10T16:00:00+08:00"})
    assert (status, len(body["created"])) == (201, 3)
    assert [(w["message"], w["params"]) for w in body["warnings"]] == [
        ("2026-12-10 will have 9 planned, more than the 8 a day", {"count": 9, "day": "2026-12-10", "limit": 8})]
    status, body = api.post("/objects/visit/plan?lang=zh", "rep1", {"ids": [shop],
                                                                   "planned_at": "2026-12-10T17:00:00+08:00"})
    assert [w["message"] for w in body["warnings"]] == ["2026-12-10 将有 10 条计划，超过每天 8 条的上限"]
    visit(api, shop, "2026-12-10T18:00:00+08:00")  # one at a time is planned beyond the cap too
    assert api.get("/objects/visit/calendar?start=2026-12-10&end=2026-12-11", "rep1")[1]["items"].__len__() == 11


def test_bad_plans_are_refused_and_nothing_is_planned(api, people):
    mine, theirs = account(api, "星辰科技"), account(api, "华联商场", "rep2")
    assert api.post("/objects/visit/plan", "rep1", {"ids": [mine, theirs], "planned_at": "2026-12-10T09:00:00+08:00"}
                    ) == error(404, "not_found", f"no account with id {theirs}")
    assert api.post("/objects/visit/plan", "rep1", {"ids": [mine, "x"], "planned_at": "2026-12-10T09:00:00+08:00"}
                    ) == error(404, "not_found", "no account with id x")
    assert api.post("/objects/visit/plan", "rep1", {"ids": [mine], "planned_at": "2026-12-32T09:00"}) == error(
        422, "validation_failed", "1 field error",
        {"planned_at": ["not a valid date and time (use ISO 8601, e.g. 2024-05-01T09:30:00+08:00)"]})
    assert api.post("/objects/visit/plan", "rep1", {"ids": []}) == error(
        422, "validation_failed", "2 field errors",
        {"ids": ["must list 1 to 200 record ids"], "planned_at": ["is required"]})
    assert api.post("/objects/visit/plan", "finance", {"ids": [mine], "planned_at": "2026-12-10T09:00:00+08:00"}
                    ) == error(403, "forbidden", "your roles do not allow you to create visits")
    assert api.post("/objects/account/plan", "rep1", {"ids": [mine]}) == error(404, "not_found",
                                                                              "Account has no calendar")
    assert api.get("/objects/visit/records", "rep1")[1]["total"] == 0


def graded(api: Api, platform, people) -> dict[str, str]:
    """rep1's A, B, C and D accounts and rep2's A account, with December's check-ins: A1 twice (one cancelled
    visit besides), C once (completed), rep2's A three times; A1 once in November."""
    ids = {"A1": account(api, "甲一", grade="a"), "B1": account(api, "乙一", grade="b"),
           "C1": account(api, "丙一", grade="c"), "D1": account(api, "丁一", grade="d"),
           "A2": account(api, "甲二", "rep2", grade="a")}

    def done(name: str, day: str, status: str = "completed", owner: str = "rep1") -> None:
        at = datetime.fromisoformat(f"{day}T10:00:00+08:00")
        platform.records.create("visit", {"account": ids[name], "planned_at": at, "check_in_at": at,
                                          "status": status, "owner": people[owner]}, system=True)

    done("A1", "2026-12-01", "checked_in")
    done("A1", "2026-12-07")
    done("A1", "2026-12-05", "cancelled")
    done("A1", "2026-11-30")
    done("C1", "2026-12-02")
    for day in ("2026-12-01", "2026-12-02", "2026-12-03"):
        done("A2", day, owner="rep2")
    return ids


def test_the_frequency_list_names_the_accounts_below_their_grades_visits_this_month(api, people, platform):
    ids = graded(api, platform, people)
    status, body = api.get("/objects/account/frequency", "boss")
    assert status == 200, body
    assert body["period"] == {"kind": "month", "start": "2026-12-01", "end": "2027-01-01"}
    assert [(i["id"], i["title"], i["owner_name"], i["grade_label"], i["visited"], i["required"])
            for i in body["items"]] == [(ids["A1"], "甲一", "王伟", "A 重点客户", 2, 3),
                                        (ids["B1"], "乙一", "王伟", "B 普通客户", 0, 1)]
    assert body["owners"] == [{"owner": people["rep1"], "records": 2, "visited": 2, "required": 4,
                               "owner_name": "王伟"}]
    november = api.get("/objects/account/frequency?month=2026-11", "rep1")[1]["items"]
    assert [(i["title"], i["visited"], i["required"]) for i in november] == [("甲一", 1, 3), ("乙一", 0, 1),
                                                                              ("丙一", 0, 1)]
    assert api.get("/objects/account/frequency", "rep2")[1]["items"] == []
    assert api.get(f"/objects/account/frequency?owner={people['rep2']}", "boss")[1]["items"] == []
    assert api.get("/objects/account/frequency?month=12-2026", "rep1") == error(
        400, "bad_request", "bad period: month", {"month": ["must be a date as YYYY-MM-DD or a month as YYYY-MM"]})
    assert api.get("/objects/visit/frequency", "rep1") == error(404, "not_found", "Visit has no visit frequency")


def test_the_frequency_reminder_tells_owners_once_in_the_last_week_of_the_month(api, people, platform):
    ids = graded(api, platform, people)
    early = rules.run_rules(platform, datetime(2026, 12, 8, 1, 0, tzinfo=UTC), ["visit_frequency_reminder"])
    assert early == [{"rule": "visit_frequency_reminder", "matched": 0, "notified": 0, "todos": 0, "closed": 0,
                      "updated": 0, "recycled": 0, "warned": 0}]
    late = rules.run_rules(platform, datetime(2026, 12, 25, 1, 0, tzinfo=UTC), ["visit_frequency_reminder"])
    assert late[0] == {"rule": "visit_frequency_reminder", "matched": 2, "notified": 2, "todos": 2, "closed": 0,
                            "updated": 0, "recycled": 0, "warned": 0}
    notes = api.get("/notifications?lang=zh", "rep1")[1]["items"]
    assert sorted((n["title"], n["record_id"]) for n in notes) == [
        ("客户「乙一」（B 普通客户）本月拜访次数未达到频率要求", ids["B1"]),
        ("客户「甲一」（A 重点客户）本月拜访次数未达到频率要求", ids["A1"])]
    todos = api.get("/todos?lang=en", "rep1")[1]["items"]
    assert sorted(t["title"] for t in todos) == ["Visit account 乙一 (visited too rarely this month)",
                                                 "Visit account 甲一 (visited too rarely this month)"]
    assert api.get("/notifications", "rep2")[1]["items"] == []
    # the next day nothing new; B1 visited since: its to-do closes
    at = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)
    platform.records.create("visit", {"account": ids["B1"], "planned_at": at, "check_in_at": at,
                                      "status": "completed", "owner": people["rep1"]}, system=True)
    again = rules.run_rules(platform, datetime(2026, 12, 26, 1, 0, tzinfo=UTC), ["visit_frequency_reminder"])
    assert (again[0]["matched"], again[0]["notified"], again[0]["closed"]) == (1, 0, 1)
    assert [t["title"] for t in api.get("/todos?lang=en", "rep1")[1]["items"]] == [
        "Visit account 甲一 (visited too rarely this month)"]


def test_the_calendar_page_shows_the_month_week_and_day_with_labels_and_links(app, api, people, december):  # noqa: F811
    v = december
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    page = client.get("/o/visit/calendar?date=2026-12-08").get_data(as_text=True)
    assert page.count('class="entry') == 6  # the month's whole weeks: 30 November to 3 January
    assert f'href="/o/visit/{v["co"]}"' in page and "联合拜访" in page and "计划中" in page and "已取消" in page
    assert 'href="/o/visit/new?next=/o/visit/calendar?date%3D2026-12-08&amp;planned_at=2026-12-08T09:00"' in page
    week = client.get("/o/visit/calendar?view=week&date=2026-12-08").get_data(as_text=True)
    assert week.count('class="entry') == 3  # Monday 7 to Sunday 13 December
    day = client.get("/o/visit/calendar?view=day&date=2026-12-31").get_data(as_text=True)
    assert day.count('class="entry') == 1 and "23:30" in day
    assert client.get("/o/visit/calendar?date=2026-13-01").status_code == 400


def test_planning_from_the_account_list_and_the_frequency_page(app, api, people, platform):  # noqa: F811
    ids = graded(api, platform, people)
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    page = client.get("/o/account?grade=a").get_data(as_text=True)
    assert "计划拜访" in page and f'name="ids" value="{ids["A1"]}"' in page and 'name="day" value="2026-12-09"' in page
    response = client.post("/o/visit/plan", data={"csrf_token": token(client), "ids": [ids["A1"], ids["B1"]],
                                                  "day": "2026-12-09", "time": "15:30", "next": "/o/account"})
    assert response.headers["Location"] == "/o/visit/calendar?view=day&date=2026-12-09"
    day = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已计划 2 条拜访" in day and day.count('class="entry') == 2 and "甲一" in day and "15:30" in day
    planned = api.get("/objects/visit/records?planned_at__gte=2026-12-09T00:00:00%2B08:00", "rep1")[1]["items"]
    assert sorted((v["account"], v["planned_at"], v["status"]) for v in planned) == [
        (ids["A1"], "2026-12-09T07:30:00+00:00", "planned"), (ids["B1"], "2026-12-09T07:30:00+00:00", "planned")]
    response = client.post("/o/visit/plan", data={"csrf_token": token(client), "ids": [ids["A2"]],
                                                  "day": "2026-12-09", "next": "/o/account"}, follow_redirects=True)
    assert f"没有编号为 {ids['A2']} 的客户" in response.get_data(as_text=True)  # rep2's account
    page = client.get("/o/account/frequency").get_data(as_text=True)
    assert page.count("<tr data-id=") == 2 and "甲一" in page and "乙一" in page and "A 重点客户" in page
    assert "期间 2026-12-01 至 2027-01-01（不含）" in page
    client.get("/lang/en")
    page = client.get("/o/account/frequency?month=2026-11").get_data(as_text=True)
    assert page.count("<tr data-id=") == 3 and "A - Key account" in page and "Visit frequency" in page
