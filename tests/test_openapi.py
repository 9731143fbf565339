"""The OpenAPI document generated from the metadata, and schemathesis against the app: no 5xx, and
every response as the document describes it (status, content type, body schema)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_api import PASSWORD, lead
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401

from objectplatform.runtime.config import Settings
from objectplatform.runtime.platform import open_platform
from objectplatform.runtime.storage.migrate import migrate
from objectplatform.web import create_app


def document(api) -> dict:
    status, body = api.get("/openapi.json", "rep1")
    assert status == 200
    return body


def test_document_describes_records_fields_and_errors(api):
    doc = document(api)
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/api/v1"}]
    lead_schema = doc["components"]["schemas"]["lead"]
    assert lead_schema["additionalProperties"] is False
    props = lead_schema["properties"]
    assert props["id"] == {"type": "string"}
    assert props["created_at"] == {"type": "string", "format": "date-time"}
    assert props["name"] == {"type": ["string", "null"]}
    assert props["campaign"] == {"type": ["string", "null"]}
    assert props["last_followed_at"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["source"]["enum"][-2:] == ["other", None]
    assert lead_schema["required"] == list(props)
    user_props = doc["components"]["schemas"]["user"]["properties"]
    assert "password" not in user_props and user_props["roles"]["type"] == ["array", "null"]
    assert doc["components"]["schemas"]["user_input"]["properties"]["password"] == {
        "type": ["string", "null"], "minLength": 8, "writeOnly": True}
    order = doc["components"]["schemas"]["sales_order"]["properties"]
    assert order["total_amount"] == {"type": ["number", "null"]}
    assert order["order_line"] == {"type": "array", "items": {"$ref": "#/components/schemas/order_line"}}
    assert doc["components"]["schemas"]["lead_input"]["required"] == ["name"]


def test_document_lists_filters_actions_and_error_responses(api):
    doc = document(api)
    listing = doc["paths"]["/objects/lead/records"]["get"]
    filters = next(p for p in listing["parameters"] if p["name"] == "filters")
    assert (filters["in"], filters["style"], filters["explode"]) == ("query", "form", True)
    names = filters["schema"]["properties"]
    assert [n for n in names if n.split("__")[0] == "source"] == [
        "source", "source__ne", "source__in", "source__gt", "source__gte", "source__lt", "source__lte",
        "source__contains", "source__isnull"]
    assert [n for n in names if n.split("__")[0] == "created_at"] == [
        "created_at", "created_at__ne", "created_at__in", "created_at__gt", "created_at__gte", "created_at__lt",
        "created_at__lte", "created_at__isnull"]
    assert "password" not in str(doc["components"]["schemas"]["user"]) and not any(
        n.startswith("password") for n in doc["paths"]["/objects/user/records"]["get"]["parameters"][0]["schema"][
            "properties"])
    assert sorted(listing["responses"]) == ["200", "400", "401", "403"]
    assert doc["components"]["responses"]["E409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    single = doc["paths"]["/objects/user/records/{id}/actions/deactivate"]["post"]
    assert single["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object", "required": ["handover_to"], "additionalProperties": False,
        "properties": {"handover_to": {"type": "string", "description": "the id of a user"}}}
    bulk = doc["paths"]["/objects/user/actions/deactivate"]["post"]
    assert bulk["requestBody"]["content"]["application/json"]["schema"]["required"] == ["ids", "handover_to"]
    assert "/objects/lead/records/{id}/actions/deactivate" not in doc["paths"]


# ------------------------------------------------------------------------------- schemathesis

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_app(module_database_url, tmp_path_factory, metadata):
    """One platform per backend for the whole run, with people and a few records to hit."""
    path = tmp_path_factory.mktemp("fuzz_instance")
    platform = open_platform(Settings.from_env({}, database_url=module_database_url, instance_path=path), metadata)
    migrate(platform.engine, platform.schema)
    records = platform.records
    admin = records.create("user", {"username": "admin", "display_name": "管理员", "password": PASSWORD,
                                    "roles": ["admin"]}, system=True)["id"]
    records.create("user", {"username": "rep", "display_name": "代表", "password": PASSWORD,
                            "roles": ["sales_rep"]}, system=True)
    account = records.create("account", {"name": "ACME"}, user=admin)["id"]
    product = records.create("product", {"name": "W", "price": "9.90"}, user=admin)["id"]
    records.create("lead", {"name": "甲", "email": "a@example.com"}, user=admin)
    records.create("sales_order", {"account": account, "order_line": [
        {"product": product, "quantity": 2, "unit_price": "9.90"}]}, user=admin)
    yield create_app(platform)
    platform.close()


@pytest.fixture(scope="module")
def fuzz_token(fuzz_app) -> str:
    response = fuzz_app.test_client().post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
    return response.get_json()["token"]


@pytest.fixture(scope="module")
def openapi_schema(fuzz_app, fuzz_token):
    doc = fuzz_app.test_client().get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {fuzz_token}"})
    return schemathesis.openapi.from_dict(doc.get_json()).exclude(path_regex="^/auth/token$")


PARTS = 4  # the operations are fuzzed in four parts, so that the test workers share the work


def _operations(openapi_schema) -> list:
    return [result.ok() for result in openapi_schema.get_all_operations()]


def test_the_document_describes_every_operation(openapi_schema):
    # meta and jobs, eight per object (imports included), user.deactivate (single and bulk), lead.convert,
    # the seven pool actions (both), lead.check_duplicates, the work queue (two to-do and three notification calls),
    # the reports (list, run, CSV, chart), the opportunity's advance, win, lose and invalidate (both) and
    # complete_task (one record), the sales order's submit and withdraw and the opportunity's withdraw (both),
    # the approvals (get, approve, reject, and a record's approvals for the sales order and the opportunity), the
    # personal reports (create, get, replace, delete, export.yaml), the lifecycles' fifteen transitions of orders,
    # payments, payment plans, invoices and visits (both), the recycle bin (list, restore)
    assert len(_operations(openapi_schema)) == (5 + 18 * 8 + 2 + 1 + 7 * 2 + 1 + 5 + 4 + 4 * 2 + 1 + 3 * 2 + 3 + 2
                                                + 5 + 15 * 2 + 2)


# (document, operation) -> the requests Hypothesis drew for it on the first backend of a test process, sent again to
# the other backend: the same requests as Hypothesis would draw again (derandomized), drawn once, since drawing
# them costs about twice what answering them does.
DRAWN: dict[tuple[str, str], list] = {}


@pytest.mark.parametrize("part", range(PARTS))
def test_api_conforms_to_its_document(openapi_schema, fuzz_app, fuzz_token, part):
    """Each operation with a few generated requests (schemathesis' pytest loader predates pytest 9's nodes,
    so the operations are driven here with plain Hypothesis). Deleting or deactivating users comes last, in
    the last part (which runs after the others of its backend on a worker): the fuzzer may well deactivate
    the admin whose token it uses."""
    everything = _operations(openapi_schema)
    risky = [op for op in everything if op.path.startswith("/objects/user/") and op.method in ("delete", "post")]
    safe = [op for op in everything if op not in risky]
    operations = safe[part::PARTS] + (risky if part == PARTS - 1 else [])
    headers = {"Authorization": f"Bearer {fuzz_token}"}
    described = json.dumps(openapi_schema.raw_schema, sort_keys=True)
    for operation in operations:
        drawn = DRAWN.get((described, operation.label))
        try:
            if drawn is None:
                drawn = _fuzz(operation, fuzz_app, headers)
                DRAWN[(described, operation.label)] = drawn
            else:
                for case in drawn:
                    case.call_and_validate(app=fuzz_app, headers=headers, checks=CHECKS)
        except Exception as e:
            e.add_note(f"operation: {operation.label}")
            raise


def _fuzz(operation, app, headers: dict) -> list:
    """Hypothesis' requests to `operation`, each sent to `app` and its response checked; returns them."""
    drawn = []

    @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
    @settings(max_examples=12, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        drawn.append(case)
        case.call_and_validate(app=app, headers=headers, checks=CHECKS)

    run()
    return drawn


def test_rep_list_is_described_too(api):
    """A page of a rep's own leads validates against the document's list schema."""
    import jsonschema

    lead(api, "rep1")
    doc = document(api)
    page_schema = doc["paths"]["/objects/lead/records"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"]
    status, page = api.get("/objects/lead/records", "rep1")
    assert status == 200 and page["total"] == 1
    resolver_doc = {**page_schema, "components": doc["components"]}
    jsonschema.validate(page, resolver_doc, cls=jsonschema.Draft202012Validator)
