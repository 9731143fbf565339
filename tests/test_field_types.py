"""Field types as one definition each: the `rating` type (1..max stars) goes through every layer on both
databases (records service, API, form, page, OpenAPI, filters, CSV export) from its one module, and its
options are checked at load."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from support import CRM_LAYERS, crm_metadata
from test_api import PASSWORD, SITE_LAYER, Api
from test_api import app as app  # noqa: F401  (fixtures)
from test_api import people as people  # noqa: F401
from test_pages import login

from objectplatform.metadata import FIELD_TYPES, MetadataError, default_layers, load_metadata
from objectplatform.runtime.config import ROOT
from objectplatform.runtime.fieldtypes import BUILT_IN, type_named

SATISFACTION = """\
kind: object_extension
object: account
fields:
  satisfaction: {type: rating, label: {zh: 满意度, en: Satisfaction}}
  loyalty:      {type: rating, max: 3, label: {zh: 忠诚度, en: Loyalty}}
"""


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {
        "flows/standard.yaml": SITE_LAYER, "object_defs/satisfaction.yaml": SATISFACTION})


@pytest.fixture
def api(app, people) -> Api:  # noqa: F811
    return Api(app.test_client())


def test_every_built_in_type_is_registered_with_the_metadata_layer():
    assert [t.name for t in BUILT_IN] == [
        "text", "long_text", "email", "phone", "url", "time_zone", "password", "integer", "number", "currency",
        "percent", "rating", "boolean", "picklist", "multi_picklist", "date", "datetime", "lookup", "master_detail",
        "user", "department", "multi_user", "multi_department", "geolocation", "attachment", "auto_number",
        "formula", "rollup"]
    assert all(FIELD_TYPES[t.name] is t for t in BUILT_IN)


def test_a_rating_takes_max_5_unless_given(metadata):
    fields = metadata.objects["account"].fields
    assert (fields["satisfaction"].max, fields["loyalty"].max) == (5, 3)


def test_a_rating_is_a_small_integer_column_created_and_filtered_through_the_records_service(platform, people):
    records = platform.records
    made = records.create("account", {"name": "星辰科技", "satisfaction": "4", "loyalty": 3}, user=people["rep1"])
    assert (made["satisfaction"], made["loyalty"]) == (4, 3)
    assert records.get("account", made["id"])["satisfaction"] == 4
    records.create("account", {"name": "远航贸易", "satisfaction": 2}, user=people["rep1"])
    column = platform.schema["account"].table.c.satisfaction
    assert isinstance(column.type, sa.SmallInteger)
    page = records.list("account", filters={"satisfaction__gte": "3"})
    assert [(r["name"], r["satisfaction"]) for r in page.items] == [("星辰科技", 4)]
    page = records.list("account", filters={"satisfaction__in": "1,2"})
    assert [r["name"] for r in page.items] == ["远航贸易"]


def test_a_rating_through_the_api_and_a_bad_value_is_a_422_naming_the_field(api):
    status, body = api.post("/objects/account/records", "rep1", {"name": "星辰科技", "satisfaction": 5})
    assert (status, body["satisfaction"], body["loyalty"]) == (201, 5, None)
    status, body = api.get("/objects/account/records?satisfaction=5", "rep1")
    assert (status, [r["name"] for r in body["items"]]) == (200, ["星辰科技"])
    for value, message in ((6, "must be between 1 and 5"), (0, "must be between 1 and 5"),
                           ("four", "must be a whole number"), (2.5, "must be a whole number")):
        status, body = api.post("/objects/account/records", "rep1", {"name": "远航贸易", "satisfaction": value})
        assert (status, body["error"]["fields"]) == (422, {"satisfaction": [message]}), value
    status, body = api.post("/objects/account/records", "rep1", {"name": "远航贸易", "loyalty": 4})
    assert (status, body["error"]["fields"]) == (422, {"loyalty": ["must be between 1 and 3"]})


def test_the_openapi_document_describes_a_rating_as_an_integer_from_1_to_max(api):
    status, doc = api.get("/openapi.json", "rep1")
    assert status == 200
    schemas = doc["components"]["schemas"]
    assert schemas["account"]["properties"]["satisfaction"] == {"type": ["integer", "null"], "minimum": 1,
                                                               "maximum": 5}
    assert schemas["account_input"]["properties"]["loyalty"]["anyOf"] == [  # optional: "" or null is no rating
        {"type": "integer", "minimum": 1, "maximum": 3},
        {"type": "string", "pattern": r"^\s*$", "description": "empty (or blank): no value"}, {"type": "null"}]
    listing = doc["paths"]["/objects/account/records"]["get"]
    filters = next(p for p in listing["parameters"] if p["name"] == "filters")["schema"]["properties"]
    assert sorted(k for k in filters if k.startswith("satisfaction")) == [
        "satisfaction", "satisfaction__gt", "satisfaction__gte", "satisfaction__in", "satisfaction__isnull",
        "satisfaction__lt", "satisfaction__lte", "satisfaction__ne"]


def test_the_form_offers_stars_and_the_record_page_shows_them(app, people, platform):  # noqa: F811
    client = app.test_client()
    login(client, "rep1", PASSWORD)
    page = client.get("/o/account/new").get_data(as_text=True)
    select = re.search(r'<select id="f-loyalty".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', select) == [
        ("1", "★☆☆ 1"), ("2", "★★☆ 2"), ("3", "★★★ 3")]
    made = platform.records.create("account", {"name": "星辰科技", "satisfaction": 4}, user=people["rep1"])
    shown = client.get(f"/o/account/{made['id']}").get_data(as_text=True)
    assert "★★★★☆" in shown
    edit = client.get(f"/o/account/{made['id']}/edit").get_data(as_text=True)
    select = re.search(r'<select id="f-satisfaction".*?</select>', edit, re.S).group(0)
    assert re.findall(r'<option value="(\d)" selected>', select) == ["4"]


def test_a_rating_exports_as_its_number(api, platform, people):
    made = platform.records.create("account", {"name": "星辰科技", "satisfaction": 4}, user=people["rep1"])
    response = api.client.get("/api/v1/objects/account/records/export.csv?fields=name,satisfaction,loyalty",
                              headers={"Authorization": f"Bearer {api.token('rep1')}"})
    assert response.status_code == 200
    assert response.data.decode("utf-8") == f"\ufeffid,name,satisfaction,loyalty\r\n{made['id']},星辰科技,4,\r\n"


def test_display_and_export_of_a_rating_come_from_its_type(metadata):
    rating = type_named("rating")
    loyalty = metadata.objects["account"].fields["loyalty"]
    assert [rating.display(loyalty, n) for n in (1, 3)] == ["★☆☆", "★★★"]
    assert rating.export(4) == "4"


@pytest.mark.parametrize(("max_", "message"), [
    ("11", "max of a rating must be a whole number from 1 to 10, not 11"),
    ("0", "max of a rating must be a whole number from 1 to 10, not 0"),
    ("2.5", "max of a rating must be a whole number from 1 to 10, not 2.5"),
])
def test_a_rating_max_outside_1_to_10_is_a_problem_at_its_line(tmp_path, max_, message):
    site = tmp_path / "site"
    (site / "object_defs").mkdir(parents=True)
    (site / "object_defs" / "x.yaml").write_text(SATISFACTION.replace("max: 3", f"max: {max_}"), encoding="utf-8")
    with pytest.raises(MetadataError) as caught:
        load_metadata(default_layers(ROOT, (), site, CRM_LAYERS))
    assert [(p.line, p.message, p.path) for p in caught.value.problems] == [
        (5, message, "fields.loyalty.max")]
