"""The OpenAPI document generated from the metadata (test_schemathesis.py holds the app to it)."""

from __future__ import annotations

from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import lead
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401


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
    empty = {"type": "string", "pattern": r"^\s*$", "description": "empty (or blank): no value"}
    assert doc["components"]["schemas"]["user_input"]["properties"]["password"] == {"anyOf": [
        {"type": "string", "minLength": 8, "writeOnly": True}, empty, {"type": "null"}]}  # "" or null: not set
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
    assert sorted(listing["responses"]) == ["200", "400", "401", "403", "414"]
    assert doc["components"]["responses"]["E409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    single = doc["paths"]["/objects/user/records/{id}/actions/deactivate"]["post"]
    assert single["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object", "required": ["handover_to"], "additionalProperties": False,
        "properties": {"handover_to": {"type": ["string", "integer"], "pattern": "^[1-9][0-9]{0,17}$", "minimum": 1,
                                       "maximum": 2**63 - 1, "description": "the id of a user"}}}
    bulk = doc["paths"]["/objects/user/actions/deactivate"]["post"]
    assert bulk["requestBody"]["content"]["application/json"]["schema"]["required"] == ["ids", "handover_to"]
    assert "/objects/lead/records/{id}/actions/deactivate" not in doc["paths"]


def test_the_document_describes_every_operation(api):
    # sign-in and sign-out, meta and jobs (resume included), eight per object (imports included), user.deactivate
    # (single and bulk), lead.convert, the seven pool actions (both), lead.check_duplicates, the work queue (two
    # to-do and three notification calls), the reports (list, run, CSV, chart), the opportunity's advance, win,
    # lose and invalidate (both) and complete_task (one record), the sales order's submit and withdraw and the
    # opportunity's withdraw (both), the approvals (get, approve, reject, and a record's approvals for the sales
    # order and the opportunity), the personal reports (create, get, replace, delete, export.yaml), the
    # lifecycles' twenty transitions of orders, payments, payment plans, invoices, returns, refunds and the visit's
    # cancel (both),
    # the visit's check_in and check_out (one record), the recycle bin (list, restore), nearby searches of the five
    # objects with a geolocation (account, visit, co_visit, visit_route, user), the sales order's copy (one record),
    # the visit's calendar and planning, the account's visit frequency, the visits' day route and .ics plan, the visit
    # route's reuse (one record), the visits' check-in anomalies and mileage, the comments (list, add) of the five
    # objects with a thread (lead, account, contact, opportunity, follow-up), the global search
    doc = document(api)
    operations = [(path, method) for path, item in doc["paths"].items() for method in item if method != "parameters"]
    assert len(operations) == (2 + 6 + 28 * 8 + 2 + 1 + 7 * 2 + 1 + 5 + 4 + 4 * 2 + 1 + 3 * 2 + 3 + 2 + 5 + 20 * 2
                               + 2 + 2 + 5 + 1 + 2 + 1 + 2 + 1 + 2 + 5 * 2 + 1)
    assert all("414" in doc["paths"][path][method]["responses"] for path, method in operations)
    assert doc["components"]["responses"]["E414"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert doc["paths"]["/auth/token"]["post"]["responses"]["429"] == {"$ref": "#/components/responses/E429"}


def test_filter_values_are_typed_and_never_empty_where_the_server_refuses_it(api):
    """What records/query.py reads for each kind of field: the document allows exactly that."""
    import re

    names = document(api)["paths"]["/objects/sales_order/records"]["get"]["parameters"][0]["schema"]["properties"]

    def allowed(name: str, value: str) -> bool:
        schema = names[name]
        return "pattern" not in schema or re.search(schema["pattern"], value) is not None

    assert names["order_no"] == {"type": "string"} and allowed("order_no", "")
    assert [allowed("total_amount__gte", v) for v in ("", "12.50", "-3", "1e5", "abc")] == [
        False, True, True, False, False]
    assert [allowed("account", v) for v in ("", "12", "-1", "x")] == [False, True, False, False]
    assert [allowed("account__in", v) for v in ("1,2", "1,", "")] == [True, False, False]
    assert [allowed("created_at__lt", v) for v in ("2026-12-01", "2026-12-01T08:30:00+08:00", "2026-12-01T08:30Z",
                                                    "", "yesterday", "0000-01-01")] == [
        True, True, True, False, False, False]
    assert [allowed("status__isnull", v) for v in ("true", "False", "1", "", "yes")] == [True, True, True, False, False]
    campaign = document(api)["paths"]["/objects/campaign/records"]["get"]["parameters"][0]["schema"]["properties"]
    assert campaign["converted_lead_count__gt"] == {"type": "string", "pattern": "^([+-]?[0-9]{1,18})$"}  # a count


def test_sort_and_export_fields_name_real_fields(api):
    doc = document(api)
    listing = {p["name"]: p for p in doc["paths"]["/objects/lead/records"]["get"]["parameters"]}
    sort = listing["sort"]
    assert (sort["style"], sort["explode"], sort["schema"]["minItems"]) == ("form", False, 1)
    assert {"name", "-name", "created_at", "-created_at", "id"} <= set(sort["schema"]["items"]["enum"])
    export = {p["name"]: p for p in doc["paths"]["/objects/lead/records/export.csv"]["get"]["parameters"]}
    assert export["fields"]["schema"]["items"]["enum"][:3] == ["id", "version", "owner"]
    user_export = {p["name"]: p for p in doc["paths"]["/objects/user/records/export.csv"]["get"]["parameters"]}
    assert "password" not in user_export["fields"]["schema"]["items"]["enum"]
    order_lines = doc["paths"]["/objects/order_line/records"]["get"]["parameters"]
    assert "q" in listing and "q" not in [p["name"] for p in order_lines]  # order_line has no searchable field


def test_ids_are_answered_as_text_and_taken_as_text_or_number(api):
    doc = document(api)
    schemas = doc["components"]["schemas"]
    assert schemas["contact"]["properties"]["account"] == {"type": ["string", "null"]}
    assert schemas["contact_input"]["properties"]["account"]["type"] == ["string", "integer"]  # required
    campaign = schemas["lead_input"]["properties"]["campaign"]["anyOf"]  # optional: also "" or null, no campaign
    assert [part["type"] for part in campaign] == [["string", "integer"], "string", "null"]
    assert campaign[1]["pattern"] == r"^\s*$"
    bulk = doc["paths"]["/objects/lead/actions/claim"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert bulk["properties"]["ids"]["items"] == {"type": ["string", "integer"], "pattern": "^[1-9][0-9]{0,17}$",
                                                  "minimum": 1, "maximum": 2**63 - 1}


def test_imports_name_the_file_types_the_server_reads(api):
    body = document(api)["paths"]["/objects/lead/imports"]["post"]["requestBody"]["content"]["multipart/form-data"]
    encoding = body["encoding"]["file"]
    assert encoding["contentType"] == ("text/csv, application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, "
                                       "text/vcard")
    assert encoding["headers"]["Content-Disposition"]["schema"]["pattern"] == 'filename="[^"]*([.]csv|[.]xlsx|[.]vcf)"'


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
