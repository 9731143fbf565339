"""Lead pool rules on SQLite and PostgreSQL: new leads routed to a pool by industry and region (one
record and imports, set-based), and the pool's hidden fields masked for non-owners in the API (get,
list, export, actions), the pages (record page, list cells, related lists, page export), and out of reach
of sorts, duplicate messages, history, the edit form, writes and reports (issue 19, finding 5)."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa
from test_api import PASSWORD
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_pages import login, token

from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.records.masking import masked_value
from objectplatform.runtime.reports import personal, run_report

CONTACT = {"phone": "13812345678", "mobile": "13987654321", "email": "li@example.cn", "wechat": "wx_li",
           "address": "北京市朝阳区建国路1号"}
HIDDEN = ["phone", "mobile", "email", "wechat", "address"]
MASKED = {"phone": "138****5678", "mobile": "139****4321", "email": None, "wechat": None, "address": None}


def make_pool(platform, name: str, **values) -> str:
    return platform.records.create("lead_pool", {"name": name, **values}, system=True)["id"]


@pytest.fixture
def mkt(platform, people) -> str:
    """A marketing user (enters leads, does not work them: their leads are routed)."""
    return platform.records.create("user", {"username": "mkt", "display_name": "孙市场", "password": PASSWORD,
                                            "roles": ["marketing"]}, system=True)["id"]


@pytest.fixture
def pools(platform, people) -> dict[str, str]:
    ids = {"finance": make_pool(platform, "金融行业线索池", industry="finance")}
    ids["north"] = make_pool(platform, "华北区线索池", region="north")
    ids["finance_north"] = make_pool(platform, "华北金融线索池", industry="finance", region="north",
                                     default_assignee=people["rep2"])
    ids["finance_2"] = make_pool(platform, "金融行业二池", industry="finance")
    ids["plain"] = make_pool(platform, "普通线索池")
    return ids


def placed(record: dict) -> tuple:
    return record["pool"], record["owner"], record["status"], record["assigned_at"] == record["created_at"]


# ----------------------------------------------------------------------------------------- routing


def test_route_ranks_both_then_industry_then_region_lowest_id_first():
    pools = [{"id": "7", "industry": "finance", "region": None}, {"id": "3", "region": "north", "industry": None},
             {"id": "5", "industry": "finance", "region": "north"}, {"id": "4", "industry": "finance"},
             {"id": "2", "industry": None, "region": None}]

    def route(industry, region):
        return pool_behavior.route(pools, {"industry": industry, "region": region})

    assert route("finance", "north")["id"] == "5"
    assert route("finance", "east")["id"] == "4"
    assert route("retail", "north")["id"] == "3"
    assert route(None, "north")["id"] == "3"
    assert route("retail", "east") is None
    assert route(None, None) is None


def test_route_by_other_fields_ranks_more_set_fields_first_then_those_named_first():
    pools = [{"id": "1", "product": "crm", "tier": None, "channel": "web"},
             {"id": "2", "product": None, "tier": "gold", "channel": "web"},
             {"id": "3", "product": "crm", "tier": "gold", "channel": None}, {"id": "4", "channel": "web"}]
    record = {"product": "crm", "tier": "gold", "channel": "web"}
    assert pool_behavior.route(pools, record)["id"] == "3"  # product and tier come before product and channel
    assert pool_behavior.route(pools, {**record, "tier": "silver"})["id"] == "1"
    assert pool_behavior.route(pools, {**record, "product": "erp"})["id"] == "2"
    assert pool_behavior.route(pools, {"product": "erp", "tier": "silver", "channel": "web"})["id"] == "4"
    assert pool_behavior.route(pools, {}) is None


def test_a_lead_marketing_creates_without_a_pool_is_routed(platform, people, pools, mkt):
    def create(**values) -> dict:
        return platform.records.create("lead", {"name": "客户", "phone": "13800000000", **values}, user=mkt)

    assert placed(create(industry="finance", region="east")) == (pools["finance"], None, "unassigned", False)
    assert placed(create(industry="finance", region="north")) == (pools["finance_north"], people["rep2"],
                                                                 "pending", True)
    assert placed(create(industry="retail", region="north")) == (pools["north"], None, "unassigned", False)
    assert placed(create(region="north")) == (pools["north"], None, "unassigned", False)
    assert placed(create(industry="retail", region="south")) == (None, mkt, "pending", False)
    assert placed(create()) == (None, mkt, "pending", False)
    routed = create(industry="finance")
    assert [(e["change"], e["field"], e["new"]) for e in platform.records.history("lead", routed["id"])
            if e["field"] in ("pool", "owner", "status")] == [("create", "status", "unassigned"),
                                                              ("create", "pool", pools["finance"])]


def test_an_explicit_owner_or_pool_or_a_rep_is_not_routed(platform, people, pools, mkt):
    base = {"name": "客户", "phone": "13800000000", "industry": "finance", "region": "north"}
    records = platform.records
    owned = records.create("lead", {**base, "owner": people["rep1"]}, user=mkt)
    chosen = records.create("lead", {**base, "pool": pools["plain"]}, user=mkt)
    own = records.create("lead", base, user=people["rep1"])
    managed = records.create("lead", base, user=people["boss"])
    admin = records.create("lead", base, user=people["admin"])
    system = records.create("lead", base)
    assert [placed(r) for r in (owned, chosen, own, managed, admin, system)] == [
        (None, people["rep1"], "pending", False), (pools["plain"], None, "unassigned", False),
        (None, people["rep1"], "pending", False), (None, people["boss"], "pending", False),
        (None, people["admin"], "pending", False), (pools["finance_north"], people["rep2"], "pending", True)]


def test_an_import_is_routed_reading_the_pools_once_per_batch(platform, people, pools, mkt):
    rows = [{"name": f"客户{i}", "phone": f"1380000000{i}", **values} for i, values in enumerate([
        {"industry": "finance", "region": "east"}, {"industry": "finance", "region": "north"},
        {"industry": "retail", "region": "north"}, {"industry": "retail", "region": "south"},
        {"industry": "finance", "owner": people["rep1"]}, {"region": "north", "pool": pools["plain"]},
        {"name": "", "industry": "finance"}])]
    pool_table = platform.schema["lead_pool"].table.name
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        if f"FROM {pool_table}" in statement or f'FROM "{pool_table}"' in statement:
            seen.append(statement)

    sa.event.listen(platform.engine, "before_cursor_execute", count)
    try:
        result = platform.records.create_many("lead", rows, user=mkt)
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", count)
    assert [e.index for e in result.errors] == [6]
    assert [placed(platform.records.get("lead", i)) for i in result.created] == [
        (pools["finance"], None, "unassigned", False), (pools["finance_north"], people["rep2"], "pending", True),
        (pools["north"], None, "unassigned", False), (None, mkt, "pending", False),
        (None, people["rep1"], "pending", False), (pools["plain"], None, "unassigned", False)]
    # the lookup check of the given pool, the routing pools, the pools' default assignees: once each
    assert len(seen) == 3


# ------------------------------------------------------------------------------------ hidden fields


@pytest.fixture
def waiting(platform, people, mkt) -> dict[str, str]:
    """A pool hiding the contact fields (members rep1 and rep2, admin boss) and a lead routed into it."""
    hiding = make_pool(platform, "华东区线索池", region="east", members=[people["rep1"], people["rep2"]],
                       admins=[people["boss"]], hidden_fields=HIDDEN)
    lead = platform.records.create("lead", {"name": "李雷", "company": "星辰科技", "region": "east", **CONTACT},
                                   user=mkt)
    assert placed(lead) == (hiding, None, "unassigned", False)
    return {"pool": hiding, "lead": lead["id"]}


def contact(record: dict) -> dict:
    return {name: record[name] for name in HIDDEN}


def test_masked_value_keeps_three_and_four_characters_of_a_phone_and_nothing_else():
    assert masked_value("phone", "13812345678") == "138****5678"
    assert masked_value("phone", "010-6552 8888") == "010****8888"
    assert masked_value("phone", "12345678") == "123****5678"
    assert masked_value("phone", "1234567") == "****"
    assert masked_value("phone", None) is None
    assert masked_value("email", "li@example.cn") is None
    assert masked_value("text", "wx_li") is None


def test_members_get_and_list_a_waiting_lead_masked(api, platform, people, waiting, mkt):
    lead = waiting["lead"]
    status, body = api.get(f"/objects/lead/records/{lead}", "rep1")
    assert status == 200
    assert contact(body) == MASKED
    assert (body["name"], body["company"], body["region"], body["owner"]) == ("李雷", "星辰科技", "east", None)
    status, page = api.get("/objects/lead/records", "rep2")
    assert status == 200
    assert [(r["id"], contact(r)) for r in page["items"]] == [(lead, MASKED)]
    assert contact(api.get(f"/objects/lead/records/{lead}", "mkt")[1]) == MASKED  # marketing is no owner
    # the records service's mask reads the pools once and passes other records as they are
    mask = platform.records.mask("lead", access_for(platform, people["rep1"]))
    stored = platform.records.get("lead", lead)
    assert contact(mask(stored)) == MASKED and contact(stored) == CONTACT
    assert mask({**stored, "owner": people["rep1"]}) == {**stored, "owner": people["rep1"]}


def test_admins_and_pool_admins_see_a_waiting_lead_whole(api, waiting):
    lead = waiting["lead"]
    for user in ("admin", "boss"):
        status, body = api.get(f"/objects/lead/records/{lead}", user)
        assert (status, contact(body)) == (200, CONTACT)
    status, page = api.get("/objects/lead/records", "boss")
    assert [contact(r) for r in page["items"]] == [CONTACT]


def test_the_owner_sees_the_lead_whole_once_claimed(api, people, waiting):
    lead = waiting["lead"]
    status, body = api.post(f"/objects/lead/records/{lead}/actions/claim", "rep1", {})
    assert status == 200
    assert (body["record"]["owner"], body["record"]["status"], contact(body["record"])) == (
        people["rep1"], "pending", CONTACT)
    assert contact(api.get(f"/objects/lead/records/{lead}", "rep1")[1]) == CONTACT
    assert api.get(f"/objects/lead/records/{lead}", "rep2")[0] == 404  # no longer waiting: out of their scope
    status, body = api.post(f"/objects/lead/records/{lead}/actions/return", "rep1", {"reason": "联系不上"})
    assert (status, body["record"]["status"], contact(body["record"])) == (200, "unassigned", MASKED)
    assert contact(api.get(f"/objects/lead/records/{lead}", "rep2")[1]) == MASKED


def export(api, path: str, as_: str) -> bytes:
    response = api.client.get(f"/api/v1/objects/{path}", headers={"Authorization": f"Bearer {api.token(as_)}"})
    assert response.status_code == 200, response.data
    return response.data


def csv_bytes(*lines: str) -> bytes:
    return ("\ufeff" + "".join(f"{line}\r\n" for line in lines)).encode("utf-8")


def test_exports_mask_a_waiting_lead_for_members(api, waiting):
    lead = waiting["lead"]
    path = "lead/records/export.csv?fields=name,phone,mobile,email,wechat,address"
    assert export(api, path, "rep1") == csv_bytes(
        "id,name,phone,mobile,email,wechat,address", f"{lead},李雷,138****5678,139****4321,,,")
    assert export(api, path, "admin") == csv_bytes(
        "id,name,phone,mobile,email,wechat,address",
        f"{lead},李雷,13812345678,13987654321,li@example.cn,wx_li,北京市朝阳区建国路1号")


def test_pages_show_the_mask_to_members_and_the_values_to_the_owner(app, platform, people, waiting, mkt):
    lead = waiting["lead"]
    campaign = platform.records.create("campaign", {"name": "春季展会"}, user=mkt)["id"]
    platform.records.update("lead", lead, {"campaign": campaign}, version=None, system=True)
    member = app.test_client()
    assert login(member, "rep1", PASSWORD).status_code == 302
    pages = {"record": member.get(f"/o/lead/{lead}").get_data(as_text=True),
             "list": member.get("/o/lead").get_data(as_text=True),
             "export": member.get("/o/lead/export.csv?fields=name,mobile,email").get_data(as_text=True)}
    for name, page in pages.items():
        assert "139****4321" in page, name
        for value in CONTACT.values():
            assert value not in page, (name, value)
    assert pages["export"] == f"\ufeffid,name,mobile,email\r\n{lead},李雷,139****4321,\r\n"
    assert "138****5678" in pages["record"]
    marketing = app.test_client()
    assert login(marketing, "mkt", PASSWORD).status_code == 302
    related = marketing.get(f"/o/campaign/{campaign}").get_data(as_text=True)
    assert "139****4321" in related and "13987654321" not in related
    assert pool_behavior.claim(platform, access_for(platform, people["rep1"]), "lead", lead)["owner"] == people["rep1"]
    page = member.get(f"/o/lead/{lead}").get_data(as_text=True)
    assert "13812345678" in page and "139****4321" not in page and "li@example.cn" in page


def test_search_and_filters_do_not_find_a_waiting_lead_by_a_hidden_value(api, app, platform, people, waiting):
    lead = waiting["lead"]
    header = "id,name,phone"
    found = f"{lead},李雷,138****5678"
    searches = {"q=13812345678": False, "q=li%40example": False, "q=%E6%9D%8E%E9%9B%B7": True,  # 李雷
                "q=%E6%98%9F%E8%BE%B0": True, "phone=13812345678": False, "email__contains=example": False,
                "region=east": True, "q=138&region=east": False}
    for query, visible in searches.items():
        body = export(api, f"lead/records/export.csv?fields=name,phone&{query}", "rep1")
        assert body == (csv_bytes(header, found) if visible else csv_bytes(header)), query
        status, page = api.get(f"/objects/lead/records?{query}", "rep1")
        assert (status, [r["id"] for r in page["items"]]) == (200, [lead] if visible else []), query
    full = f"{lead},李雷,13812345678"
    assert export(api, "lead/records/export.csv?fields=name,phone&q=13812345678", "boss") == csv_bytes(header, full)
    member = app.test_client()
    assert login(member, "rep1", PASSWORD).status_code == 302
    assert f'data-id="{lead}"' not in member.get("/o/lead?q=13812345678").get_data(as_text=True)
    assert f'data-id="{lead}"' in member.get("/o/lead?q=%E6%9D%8E%E9%9B%B7").get_data(as_text=True)
    assert member.get("/o/lead/lookup?q=13987654321").get_json() == {"items": []}
    assert member.get("/o/lead/lookup?q=%E6%9D%8E").get_json() == {"items": [{"id": lead, "title": "李雷"}]}
    pool_behavior.claim(platform, access_for(platform, people["rep1"]), "lead", lead)
    assert f'data-id="{lead}"' in member.get("/o/lead?q=13812345678").get_data(as_text=True)
    assert export(api, "lead/records/export.csv?fields=name,phone&phone=13812345678", "rep1") == csv_bytes(header, full)


def walk(api, query: str, as_: str) -> tuple[list[str], str]:
    """The ids of a list walked one record a page, and the text of every cursor it was given."""
    ids, cursors, cursor = [], "", None
    while True:
        status, page = api.get(f"/objects/lead/records?{query}&limit=1" + (f"&cursor={cursor}" if cursor else ""),
                               as_)
        assert status == 200, page
        ids += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, cursors
        cursors += base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def test_sorting_by_a_hidden_field_does_not_place_a_waiting_lead_by_its_value(api, platform, people, waiting):
    lead = waiting["lead"]
    probes = [platform.records.create("lead", {"name": f"探针{i}", "mobile": mobile}, user=people["rep1"])["id"]
              for i, mobile in enumerate(["13900000000", "13999999999"])]
    orders = {}
    for hidden in ("13987654321", "13800000000", "13990000000"):
        platform.records.update("lead", lead, {"mobile": hidden}, version=None, system=True)
        for sort in ("mobile", "-mobile"):
            ids, cursors = walk(api, f"sort={sort}", "rep1")
            assert sorted(ids) == sorted([lead, *probes]) and hidden not in cursors, (hidden, sort)
            orders.setdefault(sort, set()).add(tuple(ids))
    # wherever the hidden number lies, the waiting lead comes in the same place (NULL's, both ends of the probes)
    assert [len(found) for found in orders.values()] == [1, 1]
    assert [ids.index(lead) for (ids,) in orders.values()] in ([0, 2], [2, 0])
    boss = walk(api, "sort=mobile", "boss")[0]  # the pool's admin sees the number: it orders the lead for him
    assert boss == [probes[0], lead, probes[1]]


def test_a_duplicate_of_a_waiting_lead_is_not_named_to_whom_its_value_is_hidden(api, platform, people, waiting):
    lead, rep1 = waiting["lead"], people["rep1"]
    anonymous = "duplicate of a lead in 华东区线索池: same mobile"
    status, body = api.post("/objects/lead/records", "rep1", {"name": "探针", "mobile": CONTACT["mobile"]})
    assert (status, body["error"]["fields"]) == (422, {"mobile": [anonymous]})
    imported = platform.records.within(access_for(platform, rep1)).create_many(
        "lead", [{"name": "探针", "mobile": CONTACT["mobile"]}], user=rep1)
    assert [(e.index, e.fields) for e in imported.errors] == [(0, {"mobile": [anonymous]})]
    status, body = api.post("/objects/lead/records", "admin", {"name": "探针", "mobile": CONTACT["mobile"]})
    assert (status, body["error"]["fields"]) == (
        422, {"mobile": [f"duplicate of lead {lead} (in 华东区线索池): same mobile"]})
    # a warn rule: counted, said to be in the pool, not named, not listed
    status, body = api.post("/objects/lead/records", "rep1", {"name": "探针", "phone": CONTACT["phone"]})
    assert status == 201
    assert [(w["count"], w["message"], w["matches"]) for w in body["_warnings"]] == [
        (1, "possible duplicate of a lead in 华东区线索池: same phone", [])]
    probe = body["id"]
    status, body = api.post(f"/objects/lead/records/{probe}/actions/check_duplicates", "rep1", {})
    assert (status, body["matches"]) == (200, [])
    status, body = api.post(f"/objects/lead/records/{probe}/actions/check_duplicates", "boss", {})
    assert (status, [m["id"] for m in body["matches"]]) == (200, [lead])
    # nor the other way round: the waiting lead's check does not compare the values hidden on it
    status, body = api.post(f"/objects/lead/records/{lead}/actions/check_duplicates", "rep1", {})
    assert (status, body["matches"]) == (200, [])
    status, body = api.post(f"/objects/lead/records/{lead}/actions/check_duplicates", "boss", {})
    assert (status, [m["id"] for m in body["matches"]]) == (200, [probe])


def test_the_edit_form_has_no_input_for_a_field_hidden_on_the_lead(app, platform, people, waiting, mkt):
    lead = waiting["lead"]
    marketing = app.test_client()  # may edit every lead, and is no owner of a waiting one
    assert login(marketing, "mkt", PASSWORD).status_code == 302
    form = marketing.get(f"/o/lead/{lead}/edit").get_data(as_text=True)
    assert 'name="company"' in form
    for name in HIDDEN:
        assert f'name="{name}"' not in form, name
    for value in [*CONTACT.values(), *(v for v in MASKED.values() if v)]:
        assert value not in form, value
    # a post carrying the masks (as a form that showed them would) changes the other fields only
    saved = marketing.post(f"/o/lead/{lead}/edit", data={
        "csrf_token": token(marketing), "version": "1", "name": "李雷", "company": "星辰集团", **MASKED})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    stored = platform.records.get("lead", lead)
    assert (stored["company"], contact(stored)) == ("星辰集团", CONTACT)
    admin = app.test_client()
    assert login(admin, "admin", PASSWORD).status_code == 302
    assert 'name="mobile"' in admin.get(f"/o/lead/{lead}/edit").get_data(as_text=True)


def test_history_masks_a_hidden_field_while_the_lead_waits_and_once_deleted(api, platform, people, waiting, mkt):
    lead = waiting["lead"]
    platform.records.update("lead", lead, {"mobile": "13911112222"}, version=None, system=True)

    def mobiles(user: str) -> list[tuple]:
        status, body = api.get(f"/objects/lead/records/{lead}/history", user)
        assert status == 200, body
        return [(e["change"], e["old"], e["new"]) for e in body["items"] if e["field"] == "mobile"]

    masked = [("create", None, "139****4321"), ("update", "139****4321", "139****2222")]
    assert mobiles("rep1") == masked and mobiles("mkt") == masked
    assert mobiles("admin") == [("create", None, CONTACT["mobile"]), ("update", CONTACT["mobile"], "13911112222")]
    platform.records.delete("lead", lead, user=people["admin"])
    assert mobiles("mkt") == masked  # marketing reads every lead's history, a deleted one's too
    status, body = api.get(f"/objects/lead/records/{lead}/history", "mkt")
    assert [e["old"]["mobile"] for e in body["items"] if e["change"] == "delete"] == ["139****2222"]


BY_MOBILE = {"name": "by_mobile", "label": {"zh": "按手机", "en": "By mobile"}, "object": "lead",
             "dimensions": [{"key": "mobile", "field": "mobile"}], "measures": [{"key": "leads", "function": "count"}]}


def test_a_report_by_a_hidden_field_groups_and_orders_a_waiting_lead_by_its_mask(platform, people, waiting):
    lead, rep1 = waiting["lead"], access_for(platform, people["rep1"])
    for i, mobile in enumerate(["13900000000", "13999999999"]):
        platform.records.create("lead", {"name": f"探针{i}", "mobile": mobile}, user=people["rep1"])
    report = personal.unsaved(personal.check(platform, BY_MOBILE))
    for hidden in ("13950004321", "13987654321"):
        platform.records.update("lead", lead, {"mobile": hidden}, version=None, system=True)
        rows = [tuple(r.values()) for r in run_report(platform, report, access=rep1).rows]
        assert rows == [("139****4321", 1), ("13900000000", 1), ("13999999999", 1)], hidden
        probed = run_report(platform, report, access=rep1, filters={"mobile__gte": "13960000000"})
        assert [tuple(r.values()) for r in probed.rows] == [("13999999999", 1)], hidden
    rows = run_report(platform, report, access=access_for(platform, people["admin"])).rows
    assert [tuple(r.values()) for r in rows] == [("13900000000", 1), ("13987654321", 1), ("13999999999", 1)]


def test_a_field_hidden_on_a_waiting_lead_may_be_given_back_masked_but_not_written(api, platform, people, waiting,
                                                                                    mkt):
    lead = waiting["lead"]
    path = f"/objects/lead/records/{lead}"
    hidden = ["is hidden from you on this record and may not be changed"]
    for mobile in (CONTACT["mobile"], "13900000000"):  # the stored value and another: the answer does not tell
        assert api.patch(path, "mkt", {"mobile": mobile, "version": 1}) == (422, {"error": {
            "code": "validation_failed", "message": "1 field error", "fields": {"mobile": hidden}}})
    status, shown = api.get(path, "mkt")
    sent_back = {k: v for k, v in shown.items() if not k.startswith("_") and k not in (
        "id", "owner", "created_at", "updated_at", "created_by", "updated_by")}
    status, body = api.patch(path, "mkt", {**sent_back, "company": "星辰集团"})  # the whole record, masks and all
    assert (status, body["company"], contact(body)) == (200, "星辰集团", MASKED), body
    assert contact(platform.records.get("lead", lead)) == CONTACT
    claimed = pool_behavior.claim(platform, access_for(platform, people["rep1"]), "lead", lead)
    status, body = api.patch(path, "rep1", {"mobile": "13900000000", "version": claimed["version"]})
    assert (status, body["mobile"]) == (200, "13900000000")
