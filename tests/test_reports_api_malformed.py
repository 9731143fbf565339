"""Malformed report bodies through the REST API on both databases: a wrong JSON type at any key of a valid body
(a report definition, a run, a funnel run with its comparison) is a 400 or 422 in the API's error shape, never a
5xx. The company is tests/report_company.py's."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from report_company import build_company

from objectplatform.web import create_app

PASSWORD = "correct-horse-7"
WRONG_TYPES = ({}, [], 0.5, "x", None, True)
DEFINITION = {
    "kind": "report",
    "name": "my_campaigns",
    "label": {"zh": "我的市场活动线索", "en": "My campaign leads"},
    "object": "lead",
    "dimensions": [{"key": "campaign", "field": "campaign.name"},
                   {"key": "month", "field": "created_at", "bucket": "month"}],
    "columns": {"key": "status", "field": "status"},
    "measures": [{"key": "leads", "function": "count", "label": {"zh": "线索数", "en": "Leads"}},
                 {"key": "amount", "function": "sum", "field": "converted_opportunity.amount"}],
    "filters": {"status__in": ["pending", "converted"]},
    "runtime_filters": [{"field": "created_at"}],
    "scene": "all",
    "sort": ["-leads"],
    "limit": 10,
    "totals": True,
    "chart": {"type": "bar", "dimension": "campaign", "measures": ["leads"]},
}
RUN = {"filters": {"status__in": ["pending", "converted"], "created_at": {"from": "2026-01-01", "to": "2026-12-31"}},
       "scene": "all", "compare": {"filters": {"status": "converted", "created_at": "this_year"}}}
FUNNEL_RUN = {"filters": {"sales_process": "standard_sales", "period": "this_year"}, "scene": "mine",
              "compare": {"filters": {"sales_process": "standard_sales", "period": {"from": "2026-01-01"}}}}


@pytest.fixture
def client(platform, seeded):
    seeded(build_company, PASSWORD)
    return create_app(platform).test_client()


@pytest.fixture
def headers(client) -> dict:
    response = client.post("/api/v1/auth/token", json={"username": "王经理", "password": PASSWORD})
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def mutations(body: Any) -> Iterator[tuple[tuple, Any]]:
    """`body` with the value at each of its paths (every key and list item, at any depth) replaced in turn by
    each wrong JSON type, as (path, mutated body)."""
    for path in paths(body):
        for wrong in WRONG_TYPES:
            mutated = copy.deepcopy(body)
            inner = mutated
            for key in path[:-1]:
                inner = inner[key]
            inner[path[-1]] = wrong
            yield (*path, wrong), mutated


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield (*prefix, key)
        yield from paths(inner, (*prefix, key))


def assert_client_error(response, where) -> None:
    assert response.status_code in (400, 422), (where, response.status_code, response.get_data(as_text=True))
    error = response.get_json()["error"]
    assert error["code"] in ("bad_request", "validation_failed") and error["reason"], (where, error)


def test_the_valid_bodies_are_accepted(client, headers):
    created = client.post("/api/v1/reports", headers=headers, json=DEFINITION)
    assert created.status_code == 201, created.get_json()
    assert client.put("/api/v1/reports/my_campaigns", headers=headers, json=DEFINITION).status_code == 200
    assert client.post("/api/v1/reports/my_campaigns/run", headers=headers, json=RUN).status_code == 200
    assert client.post("/api/v1/reports/leads_by_owner_status/run", headers=headers, json=RUN).status_code == 200
    assert client.post("/api/v1/reports/sales_funnel/run", headers=headers, json=FUNNEL_RUN).status_code == 200


def assert_not_a_server_error(response, where) -> None:
    """Accepted, or refused as the client's fault in the error shape with a reason."""
    assert response.status_code < 500, (where, response.status_code, response.get_data(as_text=True))
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert error["code"] in ("bad_request", "validation_failed") and error["reason"], (where, error)


def test_a_wrong_type_anywhere_in_a_definition_is_never_a_server_error(client, headers):
    for where, body in mutations(DEFINITION):
        response = client.post("/api/v1/reports", headers=headers, json=body)
        assert_not_a_server_error(response, where)
        if response.status_code == 201:
            client.delete(f"/api/v1/reports/{response.get_json()['name']}", headers=headers)
    assert client.post("/api/v1/reports", headers=headers, json=DEFINITION).status_code == 201
    for where, body in mutations(DEFINITION):
        response = client.put("/api/v1/reports/my_campaigns", headers=headers, json=body)
        assert_not_a_server_error(response, where)
        if response.status_code == 200 and response.get_json()["name"] != "my_campaigns":
            client.put(f"/api/v1/reports/{response.get_json()['name']}", headers=headers, json=DEFINITION)


@pytest.mark.parametrize("report", ["leads_by_owner_status", "my_campaigns"])
def test_a_wrong_type_anywhere_in_a_run_is_never_a_server_error(client, headers, report):
    assert client.post("/api/v1/reports", headers=headers, json=DEFINITION).status_code == 201
    for where, body in mutations(RUN):
        assert_not_a_server_error(client.post(f"/api/v1/reports/{report}/run", headers=headers, json=body), where)


def test_a_wrong_type_anywhere_in_a_funnel_run_is_never_a_server_error(client, headers):
    for where, body in mutations(FUNNEL_RUN):
        assert_not_a_server_error(client.post("/api/v1/reports/sales_funnel/run", headers=headers, json=body), where)


def test_a_body_of_the_wrong_type_is_a_bad_request(client, headers):
    for body in WRONG_TYPES[1:]:
        for path in ("/api/v1/reports", "/api/v1/reports/sales_funnel/run"):
            response = client.post(path, headers=headers, json=body)
            if body is None and path.endswith("/run"):  # no body: run with no filters
                assert response.status_code == 200
            else:
                assert response.status_code == 400, (path, body)
                assert response.get_json()["error"]["code"] == "bad_request"


def test_a_definition_of_another_kind_is_refused(client, headers):
    for kind in ({}, [], "flow", "sales_process"):
        response = client.post("/api/v1/reports", headers=headers, json={**DEFINITION, "kind": kind})
        assert response.status_code == 422, kind
        assert response.get_json() == {"error": {
            "code": "validation_failed", "message": "kind: must be 'report'", "reason": "report.definition_problem",
            "params": {"path": "kind", "problem": "must be 'report'"}, "fields": {"kind": ["must be 'report'"]}}}


def test_the_compared_filters_must_be_an_object(client, headers):
    for filters in (0.5, "x", True, ["status"]):
        response = client.post("/api/v1/reports/sales_funnel/run", headers=headers,
                               json={"compare": {"filters": filters}})
        assert response.status_code == 400, filters
        assert response.get_json()["error"] == {
            "code": "bad_request", "message": 'compare: send {"filters": {...}} for the second run',
            "reason": "report.bad_compare", "params": {}, "fields": {"compare": ["must be {filters}"]}}
    for filters in ({}, None, []):
        assert client.post("/api/v1/reports/sales_funnel/run", headers=headers,
                           json={"compare": {"filters": filters}}).status_code == 200


def test_the_run_filters_must_be_an_object(client, headers):
    for report in ("sales_funnel", "leads_by_owner_status"):
        response = client.post(f"/api/v1/reports/{report}/run", headers=headers, json={"filters": 0.5})
        assert response.status_code == 400
        assert response.get_json()["error"] == {
            "code": "bad_request", "message": "filters: must be an object of field -> value",
            "reason": "report.filters_not_an_object", "params": {}, "fields": {"filters": ["must be an object"]}}


def test_a_funnel_period_is_a_named_range_or_from_to(client, headers):
    ranges = ("today, this_week, this_month, last_month, this_quarter, last_quarter, this_year, last_year")
    for period, shown in ((0.5, "0.5"), (True, "True"), ("last_decade", "'last_decade'"), ([1], "[1]")):
        response = client.post("/api/v1/reports/sales_funnel/run", headers=headers,
                               json={"filters": {"period": period}})
        assert response.status_code == 422, period
        error = response.get_json()["error"]
        assert error["fields"] == {"period": [f'{shown} is not a date range: send one of {ranges} or '
                                              '{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}']}
    for open_ended in ({"to": "2026-03-31"}, {"from": "2026-01-01"}, {"from": None, "to": "2026-03-31"}):
        response = client.post("/api/v1/reports/sales_funnel/run", headers=headers,
                               json={"filters": {"period": open_ended}})
        assert response.status_code == 200, (open_ended, response.get_json())


def test_odd_query_parameters_of_the_csv_and_the_chart_are_never_a_server_error(client, headers):
    queries = ("period=x", "period__from=x", "period__from=2026-01-01", "period__to=2026-01-01", "scene=x",
               "status__in=", "created_at=x", "created_at__gte=x", "created_at=this_year", "owner=x",
               "sales_process=x", "labels=x", "lang=x", "filters=x")
    for report in ("sales_funnel", "leads_by_owner_status"):
        for ending in ("export.csv", "chart.svg"):
            for query in queries:
                response = client.get(f"/api/v1/reports/{report}/{ending}?{query}", headers=headers)
                assert_not_a_server_error(response, (report, ending, query))
