"""Duplicate rules that warn (查重 · 提示), on SQLite and PostgreSQL: the API's create answers the matches
under `_warnings`, the create form flashes them and the record page lists them in its "疑似重复" panel,
an import creates the matching rows and reports them per row (the API job, the progress page and the
CLI), while a block rule still refuses. The shipped lead rules: same mobile blocks; same phone and same
name + company warn."""

from __future__ import annotations

import dataclasses
import html
import re

import jsonschema
import pytest
from support import english
from test_api import PASSWORD
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_imports_jobs import cli_db as cli_db  # noqa: F401
from test_imports_jobs import upload
from test_pages import login, token

from objectplatform.cli import main
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.imports import prepare, read_bytes, run_import
from objectplatform.runtime.permissions import access_for

SAME_PHONE = {"zh": "电话相同", "en": "Same phone"}
SAME_NAME_COMPANY = {"zh": "姓名和公司相同", "en": "Same name and company"}


def owner(people, username: str, title: str) -> dict:
    return {"id": people[username], "title": title}


def test_the_api_create_answers_the_warn_rules_matches(api, platform, people):
    status, first = api.post("/objects/lead/records", "rep1",
                             {"name": "张伟", "company": "星辰科技", "phone": "010-88886666"})
    assert status == 201 and "_warnings" not in first
    status, body = api.post("/objects/lead/records", "rep1", {"name": " 张伟 ", "company": "星辰科技",
                                                             "phone": "010-88886666", "email": "zw@example.cn"})
    assert status == 201
    wang = owner(people, "rep1", "王伟")
    assert body["_warnings"] == [
        {"rule": "same_phone", "label": SAME_PHONE, "count": 1,
         "message": f"possible duplicate of lead {first['id']} (王伟's): same phone",
         "matches": [{"id": first["id"], "title": "张伟", "owner": wang, "pool": None}]},
        {"rule": "same_name_company", "label": SAME_NAME_COMPANY, "count": 1,
         "message": f"possible duplicate of lead {first['id']} (王伟's): same name and company",
         "matches": [{"id": first["id"], "title": "张伟", "owner": wang, "pool": None}]},
    ]
    # the answer validates against the OpenAPI document's create response
    status, doc = api.get("/openapi.json", "rep1")
    schema = doc["paths"]["/objects/lead/records"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/lead_saved"}
    jsonschema.validate(body, {**schema, "components": doc["components"]}, cls=jsonschema.Draft202012Validator)
    # the rest of the answer is the record, as GET answers it
    record = {k: v for k, v in body.items() if k != "_warnings"}
    status, got = api.get(f"/objects/lead/records/{body['id']}", "rep1")
    assert (status, {k: v for k, v in got.items() if k != "_actions"}) == (200, record)
    assert platform.records.list("lead").total == 2

    # within the caller's scope: rep2 sees neither of rep1's leads
    status, other = api.post("/objects/lead/records", "rep2", {"name": "李雷", "phone": "010-88886666"})
    assert status == 201 and "_warnings" not in other
    # their manager sees all three; a lead waiting in a pool is named by its pool
    pool = platform.records.create("lead_pool", {"name": "华北区线索池"}, system=True)["id"]
    waiting = platform.records.create("lead", {"name": "韩梅梅", "phone": "010-88887777", "pool": pool})["id"]
    status, body = api.post("/objects/lead/records", "admin", {"name": "周杰", "phone": "010-88886666"})
    assert status == 201
    assert body["_warnings"] == [{
        "rule": "same_phone", "label": SAME_PHONE, "count": 3,
        "message": f"possible duplicate of lead {first['id']} (王伟's): same phone (and 2 more)",
        "matches": [{"id": first["id"], "title": "张伟", "owner": wang, "pool": None},
                    {"id": str(int(first["id"]) + 1), "title": "张伟", "owner": wang, "pool": None},
                    {"id": other["id"], "title": "李雷", "owner": owner(people, "rep2", "李娜"), "pool": None}]}]
    status, body = api.post("/objects/lead/records", "admin", {"name": "韩", "phone": "010-88887777"})
    assert (status, body["_warnings"][0]["message"]) == (
        201, f"possible duplicate of lead {waiting} (in 华北区线索池): same phone")
    assert body["_warnings"][0]["matches"] == [
        {"id": waiting, "title": "韩梅梅", "owner": None, "pool": {"id": pool, "title": "华北区线索池"}}]


def test_an_update_warns_for_the_rules_whose_fields_it_sets(api, people):
    status, first = api.post("/objects/lead/records", "rep1", {"name": "张伟", "phone": "010-88886666"})
    status, second = api.post("/objects/lead/records", "rep1", {"name": "李雷", "phone": "010-88880001"})
    path = f"/objects/lead/records/{second['id']}"
    status, body = api.patch(path, "rep1", {"version": 1, "company": "远景物流"})
    assert (status, body["version"], "_warnings" in body) == (200, 2, False)
    status, body = api.patch(path, "rep1", {"version": 2, "phone": "010-88886666"})
    assert (status, body["phone"], body["version"]) == (200, "010-88886666", 3)
    status, doc = api.get("/openapi.json", "rep1")
    schema = doc["paths"]["/objects/lead/records/{id}"]["patch"]["responses"]["200"]["content"]["application/json"][
        "schema"]
    jsonschema.validate(body, {**schema, "components": doc["components"]}, cls=jsonschema.Draft202012Validator)
    assert body["_warnings"] == [{
        "rule": "same_phone", "label": SAME_PHONE, "count": 1,
        "message": f"possible duplicate of lead {first['id']} (王伟's): same phone",
        "matches": [{"id": first["id"], "title": "张伟", "owner": owner(people, "rep1", "王伟"), "pool": None}]}]
    status, body = api.patch(path, "rep1", {"version": 3, "email": "ll@example.cn"})
    assert (status, "_warnings" in body) == (200, False)


def test_a_block_rule_still_blocks(api, platform, people):
    status, first = api.post("/objects/lead/records", "rep1", {"name": "张伟", "mobile": "13800138000"})
    assert status == 201 and "_warnings" not in first
    assert api.post("/objects/lead/records", "rep1", {"name": "张伟", "mobile": "13800138000"}) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error",
        "fields": {"mobile": [f"duplicate of lead {first['id']} (王伟's): same mobile"]}}})
    assert platform.records.list("lead").total == 1


@pytest.fixture
def client(app, people):
    client = app.test_client()
    client.post("/login", data={"username": "rep1", "password": PASSWORD, "csrf_token": token(client)})
    return client


def panel(page: str) -> list[tuple[str, str, str, str, str]]:
    """The "possible duplicates" panel's rows: (record id, link text, rule, owner, pool)."""
    section = re.search(r'<section class="related duplicates" id="duplicates">(.*?)</section>', page, re.S)
    if section is None:
        return []
    return [tuple(html.unescape(v.strip()) for v in row) for row in re.findall(
        r'<tr data-duplicate="(\d+)" data-rule="\w+">\s*<td><a href="/o/lead/\d+">(.*?)</a></td>\s*'
        r"<td>(.*?)</td>\s*<td>(.*?)</td><td>(.*?)</td>", section.group(1), re.S)]


def flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="flash \w+" role="status">(.*?)</p>', page)]


def test_the_create_form_flashes_the_warning_and_the_record_page_lists_the_matches(client, platform, people):
    records = platform.records
    first = records.create("lead", {"name": "张伟", "company": "星辰科技", "phone": "010-88886666"},
                           user=people["rep1"])["id"]
    second = records.create("lead", {"name": "张伟", "company": "星辰科技", "email": "b@example.cn"},
                            user=people["rep1"])["id"]
    records.create("lead", {"name": "张伟", "company": "星辰科技", "phone": "010-88880000"}, user=people["rep2"])
    saved = client.post("/o/lead/new", data={"csrf_token": token(client), "name": "张伟", "company": "星辰科技",
                                             "phone": "010-88886666", "source": "website"})
    assert saved.status_code == 302
    created = re.fullmatch(r"/o/lead/(\d+)", saved.location).group(1)
    page = client.get(saved.location).text
    assert flashes(page) == [
        "已创建", "可能与已有记录重复：电话相同（1 条）；姓名和公司相同（2 条）。请查看下方“疑似重复”。"]
    assert "<h2>疑似重复 <span class=\"count\">(3)</span></h2>" in page
    assert panel(page) == [(first, "张伟", "电话相同", "王伟", "—"), (first, "张伟", "姓名和公司相同", "王伟", "—"),
                           (second, "张伟", "姓名和公司相同", "王伟", "—")]
    # the panel stays on the page (no flash the second time); a record matching nothing has none
    page = client.get(f"/o/lead/{created}").text
    assert flashes(page) == [] and len(panel(page)) == 3
    alone = records.create("lead", {"name": "独一", "email": "only@example.cn"}, user=people["rep1"])["id"]
    page = client.get(f"/o/lead/{alone}").text
    assert 'id="duplicates"' not in page and panel(page) == []
    # in English
    client.get("/lang/en")
    page = client.get(f"/o/lead/{second}").text
    assert panel(page) == [(first, "张伟", "Same name and company", "王伟", "—"),
                           (created, "张伟", "Same name and company", "王伟", "—")]


IMPORT = ("姓名,公司名称,电话,手机\n"
          "李雷,远景物流,010-88886666,\n"       # row 2: the same phone as the existing lead
          "韩梅梅,北京华信银行,010-88880001,\n"  # row 3: new
          "韩梅梅,北京华信银行,,13900000001\n"   # row 4: the same name and company as row 3
          "周杰,远景物流,,13800138000\n")        # row 5: the same mobile as the existing lead: refused


def test_an_import_creates_and_reports_the_rows_a_warn_rule_matches(api, app, platform, people):
    existing = platform.records.create("lead", {"name": "张伟", "phone": "010-88886666", "mobile": "13800138000"},
                                       user=people["rep1"])["id"]
    status, body = upload(api, "boss", "leads.csv", IMPORT.encode())
    assert status == 202, body
    platform.jobs.wait(body["job_id"])
    status, job = api.get(f"/jobs/{body['job_id']}", "boss")
    assert (status, job["status"]) == (200, "finished")
    leads = {r["name"]: r["id"] for r in platform.records.list("lead", limit=50).items}
    assert sorted(leads) == ["张伟", "李雷", "韩梅梅"]
    created = sorted(r["id"] for r in platform.records.list("lead", limit=50).items if r["id"] != existing)
    assert len(created) == 3
    lilei, hmm3, hmm4 = created
    wang = owner(people, "rep1", "王伟")
    assert english(job["result"]) == {
        "created": 3, "failed": 1, "all_or_nothing": False, "committed": [[2, 5]],
        "errors": [{"row": 5, "fields": {"mobile": [f"duplicate of lead {existing} (王伟's): same mobile"]}}],
        "warned": 2,
        "warnings": [
            {"row": 2, "id": lilei, "warnings": [{
                "rule": "same_phone", "label": SAME_PHONE, "count": 1,
                "message": f"possible duplicate of lead {existing} (王伟's): same phone",
                "matches": [{"id": existing, "title": "张伟", "owner": wang, "pool": None}]}]},
            {"row": 4, "id": hmm4, "warnings": [{
                "rule": "same_name_company", "label": SAME_NAME_COMPANY, "count": 1,
                "message": f"possible duplicate of row 3 of this import (lead {hmm3}): same name and company",
                "matches": [{"id": hmm3, "title": "韩梅梅", "owner": owner(people, "boss", "赵经理"), "pool": None,
                             "row": 3}]}]},
        ],
    }
    assert platform.records.get("lead", hmm4)["mobile"] == "13900000001"

    # the progress page's report, for the same user signed in (a manager: the rows are theirs)
    client = app.test_client()
    login(client, "boss", PASSWORD)
    page = client.get(f"/imports/{body['job_id']}?obj=lead").text
    assert "成功导入 3 条，失败 1 条" in page and "其中 2 条疑似重复（已导入，请核对）" in page
    table = re.search(r'<table class="records row-warnings">(.*?)</table>', page, re.S).group(1)
    rows = [(row, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cells)).strip())
            for row, cells in re.findall(r'<tr data-row="(\d+)">(.*?)</tr>', table, re.S)]
    assert rows == [("2", f"2 #{lilei} 电话相同：张伟 (王伟)"),
                    ("4", f"4 #{hmm4} 姓名和公司相同：韩梅梅 (本文件第 3 行)")]
    assert f'<a href="/o/lead/{existing}">张伟</a>' in table

    # all or nothing: a refused row keeps every row out, and no warning is reported
    data = "姓名,电话,手机\n吴昊,010-88886666,\n周杰,,13800138000\n".encode()
    status, body = upload(api, "boss", "leads.csv", data, all_or_nothing="true")
    platform.jobs.wait(body["job_id"])
    status, job = api.get(f"/jobs/{body['job_id']}", "boss")
    assert english(job["result"]) == {"created": 0, "failed": 1, "all_or_nothing": True, "committed": [], "errors": [
        {"row": 3, "fields": {"mobile": [f"duplicate of lead {existing} (王伟's): same mobile"]}}]}
    assert platform.records.list("lead", limit=50).total == 4


def test_a_warning_names_the_row_an_earlier_batch_of_the_import_created(platform, people):
    """An import keeps no list of the records it created, only their ids by file row a batch at a time: with one row
    a batch, row 4 still names row 3, created by the batch before."""
    existing = platform.records.create("lead", {"name": "张伟", "phone": "010-88886666", "mobile": "13800138000"},
                                       user=people["rep1"])["id"]
    platform.settings = dataclasses.replace(platform.settings, import_batch_size=1)
    prepared = prepare(platform.metadata.objects["lead"], read_bytes("leads.csv", IMPORT.encode()))
    result = run_import(platform, prepared, user=people["boss"], caller=access_for(platform, people["boss"]))
    created = sorted(r["id"] for r in platform.records.list("lead", limit=50).items if r["id"] != existing)
    lilei, hmm3, hmm4 = created
    out = english(result.json())
    assert (out["created"], out["failed"], out["committed"]) == (3, 1, [[2, 2], [3, 3], [4, 4], [5, 5]])
    assert [(w["row"], w["id"], [(m["message"], [match.get("row") for match in m["matches"]]) for m in w["warnings"]])
            for w in out["warnings"]] == [
        (2, lilei, [(f"possible duplicate of lead {existing} (王伟's): same phone", [None])]),
        (4, hmm4, [(f"possible duplicate of row 3 of this import (lead {hmm3}): same name and company", [3])]),
    ]


def test_the_cli_import_prints_the_rows_that_may_be_duplicates(cli_db, tmp_path, capsys):
    platform = open_platform(Settings.from_env())
    try:
        existing = platform.records.create("lead", {"name": "张伟", "phone": "010-88886666",
                                                    "mobile": "13800138000"})["id"]
    finally:
        platform.close()
    path = tmp_path / "leads.csv"
    path.write_text(IMPORT, encoding="utf-8")
    capsys.readouterr()
    assert main(["import", "lead", str(path)]) == 1
    out, _ = capsys.readouterr()
    first = int(existing)
    assert out == (
        "imported 3, failed 1\n"
        f"row 5: mobile: duplicate of lead {existing}: same mobile\n"
        "possible duplicates (imported) 2\n"
        f"row 2 (lead {first + 1}): possible duplicate of lead {existing}: same phone\n"
        f"row 4 (lead {first + 3}): possible duplicate of row 3 of this import (lead {first + 2}): "
        "same name and company\n"
    )


def test_a_lead_waiting_in_a_pool_that_the_rep_may_claim_from(api, platform, people):
    """The rep's scope admits the pool's waiting leads; the warning names the pool, not an owner."""
    pool = platform.records.create("lead_pool", {"name": "华北区线索池", "members": [people["rep1"]]},
                                   system=True)["id"]
    waiting = platform.records.create("lead", {"name": "韩梅梅", "company": "远景物流", "pool": pool,
                                               "email": "h@example.cn"})["id"]
    status, body = api.post("/objects/lead/records", "rep1",
                            {"name": "韩梅梅", "company": "远景物流", "email": "h2@example.cn"})
    assert status == 201
    assert body["_warnings"] == [{
        "rule": "same_name_company", "label": SAME_NAME_COMPANY, "count": 1,
        "message": f"possible duplicate of lead {waiting} (in 华北区线索池): same name and company",
        "matches": [{"id": waiting, "title": "韩梅梅", "owner": None, "pool": {"id": pool, "title": "华北区线索池"}}]}]
    pool_behavior.claim(platform, access_for(platform, people["rep1"]), "lead", waiting)
    status, body = api.post("/objects/lead/records", "rep1",
                            {"name": "韩梅梅", "company": "远景物流", "email": "h3@example.cn"})
    wang = owner(people, "rep1", "王伟")
    assert body["_warnings"][0]["message"] == (
        f"possible duplicate of lead {waiting} (王伟's, in 华北区线索池): same name and company (and 1 more)")
    assert [(m["id"], m["owner"], m["pool"]) for m in body["_warnings"][0]["matches"]] == [
        (waiting, wang, {"id": pool, "title": "华北区线索池"}), (str(int(waiting) + 1), wang, None)]
