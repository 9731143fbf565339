"""Field-level security on both databases: a role's `fields: {cost: hidden, price: read}` in a site layer, through
the API (record, list, filters, sort, search, history, writes), a report, the CSV export, an import and the pages;
the most permissive of several roles wins; administrators see everything; `check` names a bad field or level."""

from __future__ import annotations

import pytest
from support import crm_metadata, english
from test_api import PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_pages import login

from objectplatform.metadata import MetadataError
from objectplatform.runtime.imports import prepare, read_bytes, run_import
from objectplatform.runtime.permissions import access_for

PRODUCT_COST = """\
kind: object_extension
object: product
fields:
  cost: {type: currency, label: {zh: 成本价, en: Cost}, min: 0}
list_view: {columns: [cost]}
"""
# a counter clerk sells products: the cost and the internal code are none of their business, the price is set
# by head office; a buyer may read the cost; a clerk who is also a buyer gets the most of both
ROLES = """\
kind: roles
roles:
  counter:
    label: {zh: 门店店员, en: Counter clerk}
    permissions:
      product: {create: true, read: true, edit: true, scope: all, fields: {cost: hidden, code: hidden, price: read}}
  buyer:
    label: {zh: 采购, en: Buyer}
    permissions:
      product: {read: true, scope: all, fields: {cost: read}}
"""
COST_REPORT = """\
kind: report
name: product_cost
label: {zh: 产品成本, en: Product cost}
object: product
dimensions: [{key: cost, field: cost, label: {zh: 成本价, en: Cost}}]
measures:
  - {key: products, function: count}
  - {key: total_cost, function: sum, field: cost}
  - {key: total_price, function: sum, field: price}
runtime_filters: [{field: cost}]
"""
READ_ONLY = "your role may read this field but not change it"
NOT_SEEN = "your role may not see or change this field"


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {
        "object_defs/product_cost.yaml": PRODUCT_COST, "object_defs/roles.yaml": ROLES,
        "report_templates/product_cost.yaml": COST_REPORT})


@pytest.fixture
def people(platform, seeded) -> dict[str, str]:
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    def user(username: str, roles: list[str]) -> str:
        values = {"username": username, "display_name": username, "password": PASSWORD, "roles": roles}
        return platform.records.create("user", values, system=True)["id"]

    return {"admin": user("admin", ["admin"]), "clerk": user("clerk", ["counter"]),
            "both": user("both", ["counter", "buyer"])}


@pytest.fixture
def products(platform, people) -> dict[str, str]:
    """Widget (price 10, cost 6), Gadget (25, 15), Gizmo (40, 6), written by the administrator."""
    made = {}
    for name, code, price, cost in (("Widget", "W-1", 10, 6), ("Gadget", "G-1", 25, 15), ("Gizmo", "Z-1", 40, 6)):
        made[name] = platform.records.create("product", {"name": name, "code": code, "price": price, "cost": cost,
                                                         "category": "hardware"}, user=people["admin"])["id"]
    return made


def product_json(id_: str, version: int, body: dict, **fields) -> dict:
    """The product as the API shows it, the system values taken from `body`."""
    system = {k: body[k] for k in ("owner", "created_by", "created_at", "updated_by", "updated_at")}
    return {"id": id_, "version": version, **system, **fields}


# -------------------------------------------------------------------------------------- reading


def test_a_hidden_field_is_absent_from_the_record_and_the_list(api, products):
    widget = products["Widget"]
    status, body = api.get(f"/objects/product/records/{widget}", "clerk")
    assert status == 200
    body.pop("_actions", None)  # what the caller may run on it (API.md, Lifecycles)
    assert body == product_json(widget, 1, body, name="Widget", category="hardware", specification=None,
                                price=10, unit=None, active=True, image=None, description=None)
    assert "cost" not in body and "code" not in body
    status, page = api.get("/objects/product/records?sort=name", "clerk")
    assert status == 200
    assert [sorted(set(r) & {"name", "price", "cost", "code"}) for r in page["items"]] == [["name", "price"]] * 3
    assert [(r["name"], r["price"]) for r in page["items"]] == [("Gadget", 25), ("Gizmo", 40), ("Widget", 10)]
    status, body = api.get(f"/objects/product/records/{widget}", "admin")
    assert (body["cost"], body["code"]) == (6, "W-1")  # full access sees every field
    # the object's metadata leaves out what the caller may not see and marks what they may only read
    fields = {f["name"]: f.get("access") for f in api.get("/meta/objects/product", "clerk")[1]["fields"]}
    assert ("cost" in fields, "code" in fields, fields["price"], fields["name"]) == (False, False, "read", None)


def test_the_most_permissive_of_several_roles_wins(api, products):
    status, body = api.get(f"/objects/product/records/{products['Widget']}", "both")
    assert (status, body["cost"], body["code"], body["price"]) == (200, 6, "W-1", 10)  # buyer reads both
    assert api.patch(f"/objects/product/records/{products['Widget']}", "both", {"cost": 7, "version": 1}) == (
        422, {"error": {"code": "validation_failed", "message": "1 field error", "fields": {"cost": [READ_ONLY]}}})
    status, body = api.patch(f"/objects/product/records/{products['Widget']}", "both", {"price": 12, "version": 1})
    assert (status, body["price"], body["version"]) == (200, 12, 2)  # the buyer leaves the price to the clerk role


def test_filtering_or_sorting_on_a_hidden_field_is_a_bad_request(api, products):
    for query, param, message in (
        ("cost=6", "cost", "cannot filter on field 'cost': it is hidden from your role"),
        ("cost__gte=1", "cost__gte", "cannot filter on field 'cost': it is hidden from your role"),
        ("sort=-cost", "sort", "cannot sort on field 'cost': it is hidden from your role"),
    ):
        assert api.get(f"/objects/product/records?{query}", "clerk") == (400, {"error": {
            "code": "bad_request", "message": f"{param}: {message}", "fields": {param: [message]}}}), query
    status, page = api.get("/objects/product/records?cost=6&sort=-cost", "admin")
    assert [r["name"] for r in page["items"]] == ["Gizmo", "Widget"]  # both cost 6: the later id first


def test_search_does_not_match_a_hidden_field(api, products):
    def found(q: str, as_: str) -> list[str]:
        status, page = api.get(f"/objects/product/records?q={q}&sort=name", as_)
        assert status == 200, page
        return [r["name"] for r in page["items"]]

    assert found("W-1", "admin") == ["Widget"]  # the code is searchable
    assert found("W-1", "clerk") == []
    assert found("Gi", "clerk") == ["Gizmo"]


def test_history_leaves_out_the_entries_of_a_hidden_field(api, platform, people, products):
    widget = products["Widget"]
    platform.records.update("product", widget, {"cost": 7, "unit": "个"}, version=1, user=people["admin"])
    status, body = api.get(f"/objects/product/records/{widget}/history", "clerk")
    assert status == 200
    assert [(e["change"], e["field"], e["old"], e["new"]) for e in body["items"]] == [
        ("create", "name", None, "Widget"), ("create", "category", None, "hardware"),
        ("create", "price", None, "10.00"), ("create", "active", None, True), ("update", "unit", None, "个")]
    admin = [(e["field"], e["new"]) for e in api.get(f"/objects/product/records/{widget}/history", "admin")[1]["items"]]
    assert ("code", "W-1") in admin and ("cost", "7.00") in admin


# -------------------------------------------------------------------------------------- writing


def test_writing_a_read_only_field_is_a_422_unless_the_value_is_unchanged(api, products):
    path = f"/objects/product/records/{products['Widget']}"
    assert api.patch(path, "clerk", {"price": 11, "version": 1}) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error", "fields": {"price": [READ_ONLY]}}})
    status, body = api.patch(path, "clerk", {"price": "10.00", "unit": "个", "version": 1})  # price sent back as is
    assert (status, body["price"], body["unit"], body["version"]) == (200, 10, "个", 2)
    assert api.post("/objects/product/records", "clerk", {"name": "Doohickey", "price": 5}) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error", "fields": {"price": [READ_ONLY]}}})


def test_a_hidden_field_may_not_be_written_whatever_the_value(api, products):
    path = f"/objects/product/records/{products['Widget']}"
    for cost in (6, 99):  # the stored value and another: the answer does not tell which one it is
        assert api.patch(path, "clerk", {"cost": cost, "version": 1}) == (422, {"error": {
            "code": "validation_failed", "message": "1 field error", "fields": {"cost": [NOT_SEEN]}}})
    assert api.get(path, "admin")[1]["cost"] == 6


def test_an_import_refuses_the_rows_writing_a_read_only_field(platform, people):
    csv = "name,price,unit\nDoohickey,5,个\nThingamajig,,盒\n".encode()
    prepared = prepare(platform.metadata.objects["product"], read_bytes("products.csv", csv))
    result = run_import(platform, prepared, user=people["clerk"], caller=access_for(platform, people["clerk"]))
    assert english(result.json())["errors"] == [{"row": 2, "fields": {"price": [READ_ONLY]}},
                                       {"row": 3, "fields": {"price": ["is required"]}}]


# ---------------------------------------------------------------------------------- other faces


def test_a_report_groups_and_adds_up_the_masked_value(api, products):
    status, body = api.post("/reports/product_cost/run", "admin", {})
    assert status == 200
    assert body["rows"] == [{"cost": 6, "products": 2, "total_cost": 12, "total_price": 50},
                            {"cost": 15, "products": 1, "total_cost": 15, "total_price": 25}]
    assert body["totals"] == {"products": 3, "total_cost": 27, "total_price": 75}
    status, body = api.post("/reports/product_cost/run", "clerk", {})
    assert status == 200
    assert body["rows"] == [{"cost": None, "products": 3, "total_cost": 0, "total_price": 75}]
    assert body["totals"] == {"products": 3, "total_cost": 0, "total_price": 75}
    status, body = api.post("/reports/product_cost/run", "clerk", {"filters": {"cost__gte": 1}})
    assert (status, body["rows"], body["totals"]) == (200, [], {"products": 0, "total_cost": 0, "total_price": 0})


def export(api: Api, query: str, as_: str) -> tuple[int, bytes]:
    response = api.client.get(f"/api/v1/objects/product/records/export.csv?{query}",
                              headers={"Authorization": f"Bearer {api.token(as_)}"})
    return response.status_code, response.data


def test_the_csv_export_has_no_column_for_a_hidden_field(api, products):
    ids = products
    status, data = export(api, "sort=name", "clerk")
    assert status == 200
    assert data.decode("utf-8") == (
        "\ufeffid,name,category,specification,price,unit,active\r\n"
        f"{ids['Gadget']},Gadget,hardware,,25.00,,true\r\n"
        f"{ids['Gizmo']},Gizmo,hardware,,40.00,,true\r\n"
        f"{ids['Widget']},Widget,hardware,,10.00,,true\r\n")
    status, data = export(api, "fields=name,cost&sort=name", "admin")
    assert data.decode("utf-8").splitlines()[1] == f"{ids['Gadget']},Gadget,15.00"
    status, data = export(api, "fields=name,cost", "clerk")
    assert status == 400 and b"hidden from your role: cost" in data


def test_pages_show_no_hidden_field_and_no_input_for_a_read_only_one(app, products):
    clerk = app.test_client()
    assert login(clerk, "clerk", PASSWORD).status_code == 302
    widget = products["Widget"]
    pages = {"list": clerk.get("/o/product").get_data(as_text=True),
             "record": clerk.get(f"/o/product/{widget}").get_data(as_text=True),
             "form": clerk.get(f"/o/product/{widget}/edit").get_data(as_text=True)}
    for name, page in pages.items():
        assert "成本价" not in page and "W-1" not in page, name
    assert "标准价格" in pages["list"] and "标准价格" in pages["record"]
    assert 'name="price"' not in pages["form"] and 'name="unit"' in pages["form"]
    assert 'name="cost"' not in pages["form"] and 'name="code"' not in pages["form"]


# ------------------------------------------------------------------------------------- checking


@pytest.mark.parametrize(("fields", "message"), [
    ("{prise: hidden}", "8:50: unknown field 'prise' of 'product' (did you mean 'price'?) "
                        "(at roles.viewer.permissions.product.fields.prise)"),
    ("{owner: read}", "8:50: 'owner' is a system field: field-level security applies to the fields 'product' "
                      "declares (at roles.viewer.permissions.product.fields.owner)"),
    ("{price: hiden}", "8:50: 'hiden' is not one of ['hidden', 'read', 'edit'] (did you mean 'hidden'?) "
                       "(at roles.viewer.permissions.product.fields.price)"),
])
def test_check_names_an_unknown_field_or_level_with_its_line(tmp_path, fields, message):
    roles = ("kind: roles\nroles:\n  viewer:\n    label: {en: Viewer}\n    permissions:\n"
             "      lead: {read: true}\n"
             "      # the clerk's view of products\n"
             f"      product: {{read: true, scope: all, fields: {fields}}}\n")
    with pytest.raises(MetadataError) as caught:
        crm_metadata(tmp_path, {"object_defs/roles.yaml": roles})
    assert str(caught.value) == f"{tmp_path / 'object_defs' / 'roles.yaml'}:{message}"
