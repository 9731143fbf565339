"""The sales process picker on SQLite and PostgreSQL: the new opportunity form offers the processes by label
(in the page's language) with the user's department's chosen, a choice or the default is what the record
gets, the edit form shows the record's own; the API takes `sales_process` and refuses an unknown one with a
422 naming the known ones."""

from __future__ import annotations

import re

import pytest
from test_api import PASSWORD, Api
from test_pages import login, token
from test_sales_process import PROCESSES
from test_sales_process import account as account  # noqa: F401  (fixtures)
from test_sales_process import people as people  # noqa: F401

from objectplatform.web import create_app

ZH = [("", "请选择"), ("standard_sales", "标准销售流程"), ("east_branch", "华东分公司销售流程"),
      ("government", "政府部门销售流程")]


@pytest.fixture
def client(platform):
    return create_app(platform).test_client()


def picker(page: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The sales_process select of a form page: its (value, label) options and the selected values."""
    select = re.search(r'<select id="f-sales_process" name="sales_process".*?</select>', page, re.S).group(0)
    options = re.findall(r'<option value="(\w*)"\s*(selected)?\s*>(.*?)</option>', select)
    return [(value, label) for value, _, label in options], [value for value, chosen, _ in options if chosen]


def test_the_new_form_offers_the_processes_with_the_users_departments_chosen(client, people):
    login(client, "east_rep", PASSWORD)
    assert picker(client.get("/o/opportunity/new").text) == (ZH, ["east_branch"])
    login(client, "rep", PASSWORD)  # 华北区 has no process: 销售部's, one level up
    assert picker(client.get("/o/opportunity/new").text) == (ZH, ["standard_sales"])
    assert picker(client.get("/o/opportunity/new?sales_process=government").text) == (ZH, ["government"])
    client.get("/lang/en")
    assert picker(client.get("/o/opportunity/new").text) == (
        [("", "Choose"), ("standard_sales", "Standard sales process"), ("east_branch", "East branch sales process"),
         ("government", "Government sales process")], ["standard_sales"])


def test_the_chosen_process_or_the_default_is_what_the_record_gets(platform, client, people, account):
    login(client, "rep", PASSWORD)
    form = {"name": "税务局平台", "account": account, "amount": "900000"}
    chosen = client.post("/o/opportunity/new",
                         data={**form, "sales_process": "government", "csrf_token": token(client)})
    assert chosen.status_code == 302
    default = client.post("/o/opportunity/new", data={**form, "sales_process": "", "csrf_token": token(client)})
    assert default.status_code == 302
    made = [platform.records.get("opportunity", r.headers["Location"].rsplit("/", 1)[1]) for r in (chosen, default)]
    assert [(o["sales_process"], o["stage"], o["owner"]) for o in made] == [
        ("government", "needs", people["rep"]), ("standard_sales", "intent", people["rep"])]
    assert picker(client.get(f"/o/opportunity/{made[0]['id']}/edit").text) == (ZH, ["government"])


def test_a_posted_unknown_process_is_shown_next_to_the_picker(client, people, account):
    login(client, "rep", PASSWORD)
    page = client.post("/o/opportunity/new", data={"name": "税务局平台", "account": account, "amount": "900000",
                                                   "sales_process": "retail", "csrf_token": token(client)})
    assert page.status_code == 422
    assert picker(page.text) == (ZH, [])
    assert re.findall(r'<ul class="errors" id="e-sales_process"><li>(.*?)</li>', page.text) == [
        "没有销售流程“retail”，请从列表中选择"]


def test_the_api_takes_a_process_and_refuses_an_unknown_one(client, people, account):
    api = Api(client)
    body = {"name": "税务局平台", "account": account, "amount": 900000}
    status, made = api.post("/objects/opportunity/records", "rep", {**body, "sales_process": "government"})
    assert (status, made["sales_process"], made["stage"]) == (201, "government", "needs")
    assert api.post("/objects/opportunity/records", "rep", {**body, "sales_process": "retail"}) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error",
        "fields": {"sales_process": [f"no sales process 'retail'; one of: {PROCESSES}"]}}})
