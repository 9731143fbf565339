"""Duplicate rules (查重) on SQLite and PostgreSQL: a block rule refuses a create and an import row
matching an existing lead or an earlier row; a warn rule refuses nothing; check_duplicates lists the
matches within the caller's scope. The shipped lead rules warn; this site layer makes two of them block."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from support import crm_metadata, english
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import people as people  # noqa: F401
from test_imports_jobs import upload

from objectplatform.runtime.actions import run_action
from objectplatform.runtime.behaviors import duplicates
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.records.service import RowError

SITE = """\
kind: object_extension
object: lead
duplicate_rules:
  - {name: same_mobile, fields: [mobile], action: block, label: {zh: 手机号相同, en: Same mobile}}
  - {name: same_phone, fields: [phone], action: block, label: {zh: 电话相同, en: Same phone}}
"""


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {"object_defs/lead_rules.yaml": SITE})


def test_the_rules_as_loaded(metadata):
    shipped = crm_metadata()
    assert [(r.name, r.fields, r.action, r.label.zh) for r in shipped.objects["lead"].duplicate_rules] == [
        ("same_mobile", ("mobile",), "block", "手机号相同"),
        ("same_phone", ("phone",), "warn", "电话相同"),
        ("same_name_company", ("name", "company"), "warn", "姓名和公司相同")]
    assert [(r.name, r.action) for r in metadata.objects["lead"].duplicate_rules] == [
        ("same_mobile", "block"), ("same_phone", "block"), ("same_name_company", "warn")]
    assert str(metadata.objects["lead"].duplicate_rules[0].source).endswith("object_defs/lead_rules.yaml:4:5")


def make_pool(platform, name="华北区线索池") -> str:
    return platform.records.create("lead_pool", {"name": name}, system=True)["id"]


def refused(platform, values, user=None) -> dict:
    with pytest.raises(ValidationFailed) as e:
        platform.records.create("lead", values, user=user)
    return e.value.fields


def test_create_is_blocked_by_the_same_phone_or_mobile(platform, people):
    records = platform.records
    first = records.create("lead", {"name": "张伟", "phone": "010-88886666", "mobile": "13800138000"},
                           user=people["rep1"])["id"]
    assert refused(platform, {"name": "李雷", "phone": "010-88886666"}, people["rep2"]) == {
        "phone": [f"duplicate of lead {first} (王伟's): same phone"]}
    assert refused(platform, {"name": "李雷", "mobile": " 13800138000 "}, people["rep2"]) == {
        "mobile": [f"duplicate of lead {first} (王伟's): same mobile"]}
    assert refused(platform, {"name": "李雷", "phone": "010-88886666", "mobile": "13800138000"}) == {
        "phone": [f"duplicate of lead {first} (王伟's): same phone"],
        "mobile": [f"duplicate of lead {first} (王伟's): same mobile"]}
    other = records.create("lead", {"name": "李雷", "phone": "010-88886667", "mobile": "13800138001"})
    assert other["phone"] == "010-88886667"
    # a lead waiting in a pool: named by its pool
    pool = make_pool(platform)
    waiting = records.create("lead", {"name": "韩梅梅", "mobile": "13900000001", "pool": pool})["id"]
    assert refused(platform, {"name": "韩", "mobile": "13900000001"}) == {
        "mobile": [f"duplicate of lead {waiting} (in 华北区线索池): same mobile"]}
    pool_behavior.claim(platform, access_for(platform, people["admin"]), "lead", waiting)
    assert refused(platform, {"name": "韩", "mobile": "13900000001"}) == {
        "mobile": [f"duplicate of lead {waiting} (管理员's, in 华北区线索池): same mobile"]}


def test_a_warn_rule_does_not_block(platform, people):
    records = platform.records
    a = records.create("lead", {"name": "张伟", "company": "星辰科技", "email": "a@example.com"})["id"]
    b = records.create("lead", {"name": " 张伟 ", "company": "星辰科技", "email": "b@example.com"})["id"]
    assert int(b) == int(a) + 1


def test_the_api_create_is_a_422_on_the_rules_first_field(api, people):
    status, body = api.post("/objects/lead/records", "rep1", {"name": "张伟", "mobile": "13800138000"})
    assert status == 201
    assert api.post("/objects/lead/records", "rep2", {"name": "张", "mobile": "13800138000"}) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error",
        "fields": {"mobile": [f"duplicate of lead {body['id']} (王伟's): same mobile"]}}})


def changed(platform, lead: str, values: dict, user=None) -> dict:
    """The field errors of an update refused as a 422, after checking it wrote nothing."""
    before = platform.records.get("lead", lead)
    with pytest.raises(ValidationFailed) as e:
        platform.records.update("lead", lead, values, version=before["version"], user=user)
    assert platform.records.get("lead", lead) == before
    assert [h for h in platform.records.history("lead", lead) if h["change"] != "create"] == []
    return e.value.fields


def test_an_update_that_makes_a_duplicate_is_refused(platform, people):
    records = platform.records
    rep1, rep2 = people["rep1"], people["rep2"]
    first = records.create("lead", {"name": "张伟", "phone": "010-88886666", "mobile": "13800138000"},
                           user=rep1)["id"]
    second = records.create("lead", {"name": "李雷", "phone": "010-88886667", "mobile": "13800138001"},
                            user=rep2)["id"]
    assert changed(platform, second, {"mobile": " 13800138000 "}, rep2) == {
        "mobile": [f"duplicate of lead {first} (王伟's): same mobile"]}
    assert changed(platform, second, {"phone": "010-88886666", "mobile": "13800138000"}, rep2) == {
        "phone": [f"duplicate of lead {first} (王伟's): same phone"],
        "mobile": [f"duplicate of lead {first} (王伟's): same mobile"]}
    # its own values never match itself: a change of other fields, or the same value retyped, passes
    same = records.update("lead", first, {"name": "张伟伟", "mobile": " 13800138000 "}, version=1, user=rep1)
    assert (same["name"], same["mobile"], same["version"]) == ("张伟伟", "13800138000", 2)
    # a value no other lead has passes, and the old one is then free for the other lead
    moved = records.update("lead", first, {"mobile": "13800138009"}, version=2, user=rep1)
    assert moved["mobile"] == "13800138009"
    taken = records.update("lead", second, {"mobile": "13800138000"}, version=1, user=rep2)
    assert (taken["mobile"], taken["version"]) == ("13800138000", 2)


def test_an_update_is_refused_against_a_lead_waiting_in_a_pool(platform, people):
    pool = make_pool(platform)
    waiting = platform.records.create("lead", {"name": "韩梅梅", "mobile": "13900000001", "pool": pool})["id"]
    mine = platform.records.create("lead", {"name": "李雷", "mobile": "13900000002"}, user=people["rep1"])["id"]
    assert changed(platform, mine, {"mobile": "13900000001"}, people["rep1"]) == {
        "mobile": [f"duplicate of lead {waiting} (in 华北区线索池): same mobile"]}


def test_leads_that_already_matched_keep_being_editable(platform, people):
    """Duplicates from before a rule existed (here written past the service) are not refused for an edit of
    their other fields; a change of the rule's field to a third lead's value still is."""
    records = platform.records
    ot, at = platform.schema["lead"], datetime(2026, 11, 27, 2, 0)
    with platform.engine.begin() as conn:
        for name in ("甲", "乙"):
            conn.execute(ot.table.insert().values({ot.column("name"): name, ot.column("mobile"): "13700000000",
                                                   ot.column("status"): "pending", "version": 1,
                                                   "created_at": at, "updated_at": at}))
        a, b = (str(i) for i in conn.execute(sa.select(ot.table.c.id).order_by(ot.table.c.id)).scalars())
    third = records.create("lead", {"name": "丙", "mobile": "13700000001"})["id"]
    assert records.update("lead", b, {"company": "星辰科技"}, version=1)["company"] == "星辰科技"
    assert changed(platform, a, {"mobile": "13700000001"}) == {
        "mobile": [f"duplicate of lead {third}: same mobile"]}


def test_a_warn_rule_does_not_refuse_an_update(platform, people):
    records = platform.records
    a = records.create("lead", {"name": "张伟", "company": "星辰科技", "email": "a@example.com"})["id"]
    b = records.create("lead", {"name": "李雷", "company": "星辰科技", "email": "b@example.com"})["id"]
    updated = records.update("lead", b, {"name": " 张伟 "}, version=1)
    assert (updated["name"], updated["version"]) == ("张伟", 2)
    result = run_action(platform, access_for(platform, people["admin"]), "lead", "check_duplicates", b, {})
    assert [(m["rule"], m["action"], m["id"]) for m in result["matches"]] == [("same_name_company", "warn", a)]


def test_the_api_update_is_a_422_naming_the_rule_and_the_match(api, platform, people):
    status, first = api.post("/objects/lead/records", "rep1", {"name": "张伟", "mobile": "13800138000"})
    assert status == 201
    status, second = api.post("/objects/lead/records", "rep2", {"name": "李雷", "mobile": "13800138001"})
    assert status == 201
    path = f"/objects/lead/records/{second['id']}"
    assert api.patch(path, "rep2", {"version": 1, "mobile": "13800138000"}) == (422, {"error": {
        "code": "validation_failed", "message": "1 field error",
        "fields": {"mobile": [f"duplicate of lead {first['id']} (王伟's): same mobile"]}}})
    status, body = api.get(path, "rep2")
    assert (status, body["mobile"], body["version"]) == (200, "13800138001", 1)
    status, body = api.patch(path, "rep2", {"version": 1, "mobile": "13800138002"})
    assert (status, body["mobile"], body["version"]) == (200, "13800138002", 2)


def test_check_duplicates_lists_the_matches_within_the_callers_scope(api, platform, people):
    records = platform.records
    rep1, rep2 = people["rep1"], people["rep2"]
    pool = make_pool(platform)
    mine = records.create("lead", {"name": "张伟", "company": "Acme Ltd", "phone": "010-88880001"}, user=rep1)["id"]
    same_company = records.create("lead", {"name": "张伟", "company": " ACME LTD ", "phone": "010-88880002"},
                                  user=rep1)["id"]
    others = records.create("lead", {"name": "张伟", "company": "acme ltd", "phone": "010-88880003"}, user=rep2)["id"]
    in_pool = records.create("lead", {"name": "张伟", "company": "Acme ltd", "phone": "010-88880004",
                                      "pool": pool})["id"]
    records.create("lead", {"name": "张伟", "company": "Acme", "phone": "010-88880005"}, user=rep1)
    records.create("lead", {"name": "张伟伟", "company": "Acme Ltd", "phone": "010-88880006"}, user=rep1)

    def matches(user: str):
        status, body = api.post(f"/objects/lead/records/{mine}/actions/check_duplicates", user, {})
        assert status == 200, body
        assert body["record"]["id"] == mine
        return body["matches"]

    def match(record_id, owner=None, owner_title=None, in_pool=False):
        return {"rule": "same_name_company", "action": "warn", "id": record_id, "title": "张伟",
                "owner": owner and {"id": owner, "title": owner_title},
                "pool": {"id": pool, "title": "华北区线索池"} if in_pool else None}

    assert matches("admin") == [match(same_company, rep1, "王伟"), match(others, rep2, "李娜"),
                                match(in_pool, in_pool=True)]
    assert matches("boss") == [match(same_company, rep1, "王伟"), match(others, rep2, "李娜")]
    assert matches("rep1") == [match(same_company, rep1, "王伟")]
    status, body = api.post(f"/objects/lead/records/{mine}/actions/check_duplicates", "finance", {})
    assert (status, body["error"]["code"]) == (403, "forbidden")


def test_import_reports_duplicate_rows_and_a_rerun_creates_nothing(platform, people):
    records = platform.records
    rep1 = people["rep1"]
    existing = records.create("lead", {"name": "张伟", "mobile": "13800138000"}, user=rep1)["id"]
    rows = [
        {"name": "A", "mobile": "13900000001"},
        {"name": "B", "mobile": "13900000001"},  # the same mobile as row 0
        {"name": "C", "mobile": "13800138000"},  # the same mobile as the existing lead
        {"name": "D", "mobile": "13900000002", "email": "not-an-email"},  # refused: not a duplicate source
        {"name": "E", "mobile": "13900000002", "phone": "010-88880007"},
        {"name": "F", "phone": "010-88880007"},  # the same phone as row 4
    ]
    result = records.create_many("lead", rows, user=rep1)
    assert len(result.created) == 2
    assert [records.get("lead", i)["name"] for i in result.created] == ["A", "E"]
    assert result.errors == [
        RowError(1, {"mobile": ["duplicate of an earlier row of this import: same mobile"]}),
        RowError(2, {"mobile": [f"duplicate of lead {existing} (王伟's): same mobile"]}),
        RowError(3, {"email": ["not a valid email address"]}),
        RowError(5, {"phone": ["duplicate of an earlier row of this import: same phone"]}),
    ]
    again = records.create_many("lead", rows, user=rep1)
    a, e = result.created
    assert again.created == []
    assert again.errors == [
        RowError(0, {"mobile": [f"duplicate of lead {a} (王伟's): same mobile"]}),
        RowError(1, {"mobile": [f"duplicate of lead {a} (王伟's): same mobile"]}),
        RowError(2, {"mobile": [f"duplicate of lead {existing} (王伟's): same mobile"]}),
        RowError(3, {"email": ["not a valid email address"],
                     "mobile": [f"duplicate of lead {e} (王伟's): same mobile"]}),
        RowError(4, {"mobile": [f"duplicate of lead {e} (王伟's): same mobile"],
                     "phone": [f"duplicate of lead {e} (王伟's): same phone"]}),
        RowError(5, {"phone": [f"duplicate of lead {e} (王伟's): same phone"]}),
    ]
    assert records.list("lead", limit=50).total == 3


def test_an_api_import_names_the_rule_and_the_existing_lead_per_row(api, platform, people):
    """The import job's report (POST /objects/lead/imports, GET /jobs/{id}): each refused row by its file
    row number, with the rule and the id of the lead it duplicates; a re-run (forced: the same file) creates nothing."""
    existing = platform.records.create("lead", {"name": "张伟", "mobile": "13800138000"}, user=people["rep1"])["id"]
    data = "姓名,手机,电话\n李雷,13800138000,\n韩梅梅,13900000001,010-88880001\n韩梅,13900000001,\n".encode()

    def imported(**form) -> dict:
        status, body = upload(api, "boss", "leads.csv", data, **form)
        assert status == 202, body
        platform.jobs.wait(body["job_id"])
        status, job = api.get(f"/jobs/{body['job_id']}", "boss")
        assert (status, job["status"]) == (200, "finished")
        return job["result"]

    first = imported()
    (new,) = [r["id"] for r in platform.records.list("lead", limit=10).items if r["name"] == "韩梅梅"]
    assert english(first) == {"created": 1, "failed": 2, "all_or_nothing": False, "committed": [[2, 4]], "errors": [
        {"row": 2, "fields": {"mobile": [f"duplicate of lead {existing} (王伟's): same mobile"]}},
        {"row": 4, "fields": {"mobile": ["duplicate of an earlier row of this import: same mobile"]}}]}
    assert english(imported(force="true")) == {"created": 0, "failed": 3, "all_or_nothing": False,
                                               "committed": [[2, 4]], "errors": [
        {"row": 2, "fields": {"mobile": [f"duplicate of lead {existing} (王伟's): same mobile"]}},
        {"row": 3, "fields": {"mobile": [f"duplicate of lead {new} (赵经理's): same mobile"],
                              "phone": [f"duplicate of lead {new} (赵经理's): same phone"]}},
        {"row": 4, "fields": {"mobile": [f"duplicate of lead {new} (赵经理's): same mobile"]}}]}
    assert platform.records.list("lead", limit=10).total == 2


def test_import_matches_across_batches_and_all_or_nothing(platform, people):
    records = platform.records
    rows = [{"name": f"L{i}", "mobile": f"1390000000{i % 3}"} for i in range(5)]
    result = records.create_many("lead", rows, batch_size=2)
    assert len(result.created) == 3
    assert [(e.index, e.fields["mobile"][0].split(":")[0]) for e in result.errors] == [
        (3, f"duplicate of lead {result.created[0]}"), (4, f"duplicate of lead {result.created[1]}")]
    nothing = records.create_many("lead", [{"name": "X", "mobile": "13700000000"},
                                           {"name": "Y", "mobile": "13700000000"}], all_or_nothing=True)
    assert nothing.created == []
    assert nothing.errors == [RowError(1, {"mobile": ["duplicate of an earlier row of this import: same mobile"]})]


def test_a_batchs_probe_finds_each_keys_matches_and_leaves_the_planner_as_it_was(platform, people):
    """One SELECT for a batch's keys (on PostgreSQL kept on the rule's index for its duration): each key's matches
    oldest first, keys compared caseless, a key matching nothing left out."""
    records = platform.records
    ids = records.create_many("lead", [{"name": "王伟", "company": "Acme", "mobile": "13900000001"},
                                       {"name": "李娜", "company": "甲公司", "mobile": "13900000002"},
                                       {"name": "王伟", "company": "ACME", "mobile": "13900000003"}]).created
    rule = next(r for r in platform.metadata.objects["lead"].duplicate_rules if r.name == "same_name_company")
    with records.transaction() as conn:
        found = duplicates.Duplicates(records).find(conn, "lead", rule, [("王伟", "acme"), ("李娜", "甲公司"),
                                                                         ("张三", "乙公司")])
        if conn.dialect.name == "postgresql":
            assert conn.exec_driver_sql("SHOW enable_seqscan").scalar() == "on"
    assert {key: [m["id"] for m in matches] for key, matches in found.items()} == {
        ("王伟", "acme"): [ids[0], ids[2]], ("李娜", "甲公司"): [ids[1]]}


def test_check_duplicates_is_a_single_action_without_params(platform, people):
    records = platform.records
    a = records.create("lead", {"name": "甲", "mobile": "13800000001"})["id"]
    result = run_action(platform, access_for(platform, people["admin"]), "lead", "check_duplicates", a, {})
    assert result["matches"] == []
    with pytest.raises(ValidationFailed) as e:
        run_action(platform, access_for(platform, people["admin"]), "lead", "check_duplicates", a, {"x": 1})
    assert e.value.fields == {"x": ["unknown parameter"]}
