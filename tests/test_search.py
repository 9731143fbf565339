"""The global search on both databases: a Chinese name found by its initials, full pinyin and characters, a phone by
its prefix and an order by its number; within the caller's data scope; a renamed record found by its new name's
pinyin, imported records found, and existing rows given their terms when migrate meets a new `search:`."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from support import migrated_platform, shared_site
from test_api import PASSWORD, SITE_LAYER, Api
from test_api import api as api  # noqa: F401
from test_api import app as app  # noqa: F401  (fixtures)
from test_api import people as people  # noqa: F401
from test_pages import login

from objectplatform.runtime import Settings, open_platform, search
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.storage.migrate import migrate
from objectplatform.runtime.storage.search import terms


@pytest.fixture(scope="module")
def metadata():
    return shared_site({"flows/standard.yaml": SITE_LAYER})


def found(api: Api, q: str, as_: str = "rep1", limit: int | None = None) -> dict[str, list[tuple[str, str]]]:
    """{object: [(title, matched field)]} of a search, checking each item's link."""
    status, body = api.get(f"/search?q={q}" + (f"&limit={limit}" if limit else ""), as_)
    assert status == 200, body
    for group in body["groups"]:
        for item in group["items"]:
            assert item["url"] == f"/o/{group['object']}/{item['id']}"
    return {group["object"]: [(item["title"], item["field"]) for item in group["items"]] for group in body["groups"]}


def test_terms_are_the_value_its_words_and_a_chinese_names_pinyin_and_initials():
    assert terms("王伟") == {"王伟", "wangwei", "ww"}
    assert terms("SO-202612-0001") == {"so2026120001"}
    assert terms("Acme Trading 北京") == {"acmetrading北京", "acme", "trading", "北京", "acmetradingbeijing",
                                          "acmetradingbj"}
    assert terms(None) == set() and terms("") == set()
    # each run of Chinese characters read apart, the other runs kept as written, as pypinyin reads the whole value
    assert terms("线索12 李") == {"线索12李", "线索12", "李", "xiansuo12li", "xs12l"}
    assert terms("abc王伟-12") == {"abc王伟12", "abcwangwei12", "abcww12"}
    assert terms("重庆银行") == {"重庆银行", "chongqingyinhang", "cqyh"}  # its phrases, not character by character


def test_wang_wei_is_found_by_initials_pinyin_name_phone_and_his_order_by_its_number(api, people):
    status, lead = api.post("/objects/lead/records", "rep1", {"name": "王伟", "company": "北京华信银行",
                                                               "phone": "13912345678"})
    assert status == 201, lead
    api.post("/objects/lead/records", "rep1", {"name": "李娜", "phone": "13800000000"})
    account = api.post("/objects/account/records", "rep1", {"name": "万维科技"})[1]
    status, order = api.post("/objects/sales_order/records", "rep1", {"account": account["id"],
                                                                      "order_date": "2026-05-01"})
    assert status == 201, order
    period = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m")

    assert found(api, "ww") == {"lead": [("王伟", "name")], "account": [("万维科技", "name")]}
    assert found(api, "wangwei") == {"lead": [("王伟", "name")]}
    assert found(api, "WANG wei") == {"lead": [("王伟", "name")]}
    assert found(api, "王伟") == {"lead": [("王伟", "name")]}
    assert found(api, "1391234") == {"lead": [("王伟", "phone")]}
    assert found(api, "bjhx") == {"lead": [("王伟", "company")]}
    assert found(api, f"SO-{period}-00") == {"sales_order": [(f"SO-{period}-0001", "order_no")]}
    assert found(api, f"so{period}0001") == {"sales_order": [(f"SO-{period}-0001", "order_no")]}
    assert found(api, "13") == {"lead": [("李娜", "phone"), ("王伟", "phone")]}
    assert found(api, "13", limit=1) == {"lead": [("李娜", "phone")]}
    assert found(api, "zhang") == {}
    assert found(api, "  -  ") == {}

    status, body = api.get("/search?q=ww", "rep1")
    assert body["q"] == "ww"
    assert body["groups"][1]["items"] == [{"id": lead["id"], "title": "王伟", "field": "name",
                                           "values": {"company": "北京华信银行", "phone": "13912345678"},
                                           "url": f"/o/lead/{lead['id']}"}]
    assert [(group["object"], group["label"]) for group in body["groups"]] == [  # in the metadata's order
        ("account", {"zh": "客户", "en": "Account"}), ("lead", {"zh": "销售线索", "en": "Lead"})]
    assert api.get("/search?q=ww&limit=0", "rep1") == (400, {"error": {
        "code": "bad_request", "message": "limit must be a whole number from 1 to 50",
        "fields": {"limit": ["limit must be a whole number from 1 to 50"]}}})


def test_a_record_matched_by_several_terms_comes_once_and_the_next_records_are_read_after_them(api, people):
    api.post("/objects/lead/records", "rep1", {"name": "王伟", "company": "WW WWA WWB", "phone": "13900000001"})
    api.post("/objects/lead/records", "rep1", {"name": "王伟伟", "phone": "13900000002"})
    # 王伟's terms starting with ww (ww of the company and of the name, wwa, wwb, wwwwawwb) fill the first read of
    # 2 × limit rows; 王伟伟 (www) comes from the read after them
    assert found(api, "ww", limit=2) == {"lead": [("王伟", "company"), ("王伟伟", "name")]}
    assert found(api, "ww", limit=1) == {"lead": [("王伟", "company")]}


def test_a_rep_finds_only_the_records_their_scope_reaches(api, people):
    api.post("/objects/lead/records", "rep1", {"name": "王伟", "phone": "13900000001"})
    api.post("/objects/lead/records", "rep2", {"name": "王薇", "phone": "13900000002"})

    assert found(api, "ww", "rep1") == {"lead": [("王伟", "name")]}
    assert found(api, "ww", "rep2") == {"lead": [("王薇", "name")]}
    assert found(api, "139", "rep2") == {"lead": [("王薇", "phone")]}
    assert sorted(found(api, "ww", "boss")["lead"]) == [("王伟", "name"), ("王薇", "name")]


def test_a_phone_a_pool_hides_from_its_members_finds_nothing_and_shows_masked(api, platform, people):
    platform.records.create("lead_pool", {"name": "华东区线索池", "region": "east", "members": [people["rep1"]],
                                          "hidden_fields": ["phone", "mobile"]}, system=True)
    waiting = platform.records.create("lead", {"name": "王伟", "phone": "13912345678", "region": "east"}, system=True)
    assert (waiting["owner"], waiting["status"]) == (None, "unassigned")

    assert found(api, "1391234") == {}
    assert api.get("/search?q=ww", "rep1")[1]["groups"] == [{
        "object": "lead", "label": {"zh": "销售线索", "en": "Lead"},
        "items": [{"id": waiting["id"], "title": "王伟", "field": "name", "values": {"phone": "139****5678"},
                   "url": f"/o/lead/{waiting['id']}"}]}]
    assert found(api, "1391234", "admin") == {"lead": [("王伟", "phone")]}  # nothing is hidden from administrators


def test_a_renamed_lead_is_found_by_its_new_names_pinyin_not_the_old_one_nor_once_deleted_until_restored(api, people):
    status, lead = api.post("/objects/lead/records", "rep1", {"name": "王伟", "phone": "13900000001"})
    status, changed = api.patch(f"/objects/lead/records/{lead['id']}", "rep1", {"name": "陈静", "version": 1})
    assert status == 200, changed

    assert found(api, "cj") == {"lead": [("陈静", "name")]}
    assert found(api, "chenjing") == {"lead": [("陈静", "name")]}
    assert found(api, "ww") == {}
    assert found(api, "139") == {"lead": [("陈静", "phone")]}

    assert api.call("DELETE", f"/objects/lead/records/{lead['id']}", "admin")[0] == 204
    assert found(api, "cj", "admin") == {}
    (binned,) = api.get("/recycle_bin", "admin")[1]["items"]
    assert api.post(f"/recycle_bin/{binned['id']}/restore", "admin")[0] == 200
    assert found(api, "cj", "admin") == {"lead": [("陈静", "name")]}


def test_imported_leads_are_found(api, platform, people):
    csv = "姓名,公司名称,Mobile,线索来源\n张敏,北京中科智远,13800000003,website\n刘洋,上海优选零售,13800000005,expo\n"
    status, body = api.call("POST", "/objects/lead/imports", "boss", content_type="multipart/form-data",
                            data={"file": (io.BytesIO(csv.encode()), "leads.csv")})
    assert status == 202, body
    api.client.application.extensions["objectplatform"].jobs.wait(body["job_id"])

    assert found(api, "zm", "boss") == {"lead": [("张敏", "name")]}
    assert found(api, "liuyang", "boss") == {"lead": [("刘洋", "name")]}
    assert found(api, "13800000005", "boss") == {"lead": [("刘洋", "mobile")]}
    assert found(api, "zm", "rep1") == {}  # the boss's leads


def test_leads_created_in_bulk_are_found_by_name_pinyin_initials_and_phone(api, platform, people):
    rows = [{"name": f"线索{i}", "company": "abc王伟", "mobile": f"1390000000{i}"} for i in range(1, 4)]
    result = platform.records.create_many("lead", rows, user=people["boss"], batch_size=2)
    assert len(result.created) == 3 and not result.errors

    assert found(api, "xiansuo2", "boss") == {"lead": [("线索2", "name")]}
    assert found(api, "xs3", "boss") == {"lead": [("线索3", "name")]}
    assert found(api, "13900000001", "boss") == {"lead": [("线索1", "mobile")]}
    assert found(api, "abcww", "boss") == {"lead": [("线索1", "company"), ("线索2", "company"), ("线索3", "company")]}


def test_the_search_page_groups_what_it_finds_and_says_when_nothing_matches(app, api, people):  # noqa: F811
    api.post("/objects/lead/records", "rep1", {"name": "王伟", "phone": "13900000001"})
    client = app.test_client()
    assert login(client, "rep1", PASSWORD).status_code == 302
    page = client.get("/search?q=ww").get_data(as_text=True)
    assert "<h2>销售线索 <span class=\"count\">1</span></h2>" in page
    assert ">王伟</a>" in page and '<span class="values">13900000001</span>' in page
    assert "匹配：" not in page  # the title matched
    assert '<span class="matched">匹配：电话</span>' in client.get("/search?q=139").get_data(as_text=True)
    assert 'name="q" value="ww"' in page
    assert "没有找到与“zz”匹配的记录。" in client.get("/search?q=zz").get_data(as_text=True)
    assert "输入姓名（或其拼音、拼音首字母）、电话或编号开始搜索。" in client.get("/search").get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)
    assert 'class="top-search" role="search"' in home


CAMPAIGN_SEARCH = """\
kind: object_extension
object: campaign
search: [name]
"""


def test_migrate_gives_existing_rows_their_terms_when_an_object_is_given_a_search(tmp_path, database_url):
    with migrated_platform(database_url, tmp_path / "one", shared_site({"flows/standard.yaml": SITE_LAYER})) as one:
        for name in ("春季展会", "秋季展会"):
            one.records.create("campaign", {"name": name}, system=True)
        admin = one.records.create("user", {"username": "root", "display_name": "root", "roles": ["admin"]},
                                   system=True)["id"]
    searched = shared_site({"flows/standard.yaml": SITE_LAYER, "object_defs/campaign_search.yaml": CAMPAIGN_SEARCH})
    platform = open_platform(Settings.from_env({}, database_url=database_url, instance_path=tmp_path / "two"),
                             searched)
    try:
        assert migrate(platform.engine, platform.schema).render() == \
            "~ fill the search terms of campaign (name) from 2 rows"
        assert migrate(platform.engine, platform.schema).render() == "nothing to do"
        groups = search.search(platform, access_for(platform, admin), "qjzh")
        assert [(g["object"], [i["title"] for i in g["items"]]) for g in groups] == [("campaign", ["秋季展会"])]
    finally:
        platform.close()


def test_migrate_drops_the_search_tables_former_index_by_record_and_a_renamed_record_keeps_one_set_of_terms(
        tmp_path, database_url):
    import sqlalchemy as sa

    with migrated_platform(database_url, tmp_path / "one", shared_site({"flows/standard.yaml": SITE_LAYER})) as one:
        with one.engine.begin() as conn:  # as a database migrated before the index went has it
            conn.execute(sa.text("CREATE INDEX ix__op_search__object__record_id ON _op_search (object, record_id)"))
        assert migrate(one.engine, one.schema).render() == \
            "- index ix__op_search__object__record_id on _op_search (nothing queries by it)"
        assert migrate(one.engine, one.schema).render() == "nothing to do"
        lead = one.records.create("lead", {"name": "王伟", "company": "星辰科技", "phone": "010-6666"}, system=True)
        one.records.update("lead", lead["id"], {"name": "李娜"}, version=1, system=True)
        t = one.schema.search
        with one.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.field, t.c.term).where(t.c.object == "lead")
                                .order_by(t.c.field, t.c.term)).all()
        assert [tuple(row) for row in rows] == [
            ("company", "xckj"), ("company", "xingchenkeji"), ("company", "星辰科技"),
            ("name", "lina"), ("name", "ln"), ("name", "李娜"), ("phone", "0106666")]


def test_terms_made_another_way_are_made_again_by_migrate(tmp_path, database_url):
    """A record's terms are removed by its terms made again from its values: rows made by another pypinyin (or an
    earlier `terms`) would stay behind, so migrate makes every searched object's terms again when they were made
    another way, and a renamed record is then found by its new name only."""
    import sqlalchemy as sa

    from objectplatform.runtime.storage.search import TERMS

    with migrated_platform(database_url, tmp_path / "one", shared_site({"flows/standard.yaml": SITE_LAYER})) as one:
        lead = one.records.create("lead", {"name": "王伟", "phone": "010-6666"}, system=True)
        applied, t = one.schema.applied, one.schema.search
        with one.engine.begin() as conn:  # as pypinyin 0.54 left them: one stale term of a way no longer made
            conn.execute(applied.update().where(applied.c.field == "_search").values(
                spec=sa.func.replace(applied.c.spec, TERMS, "1/pypinyin 0.54.0")))
            conn.execute(t.insert().values(object="lead", term="wang wei", record_id=int(lead["id"]), field="name"))
        plan = migrate(one.engine, one.schema).render()
        assert plan.splitlines() == [
            "~ fill the search terms of account (name, short_name, phone) from 0 rows",
            "~ fill the search terms of contact (name, phone, mobile) from 0 rows",
            "~ fill the search terms of lead (name, company, phone, mobile) from 1 row",
            "~ fill the search terms of opportunity (name) from 0 rows",
            "~ fill the search terms of sales_order (order_no) from 0 rows"]
        assert migrate(one.engine, one.schema).render() == "nothing to do"
        one.records.update("lead", lead["id"], {"name": "李娜"}, version=1, system=True)
        with one.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.field, t.c.term).where(t.c.object == "lead")
                                .order_by(t.c.field, t.c.term)).all()
        assert [tuple(row) for row in rows] == [("name", "lina"), ("name", "ln"), ("name", "李娜"),
                                                ("phone", "0106666")]
