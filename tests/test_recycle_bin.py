"""The recycle bin (回收站) on both databases: a delete moves the record and its lines to the bin, out of every read
path; an administrator restores it with the same id and values; a record others still name is refused unless their
reference cascades or clears; the purge removes only what is past the retention period."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from support import FixedClock, crm_metadata
from test_api import ERROR_RESPONSES, PASSWORD, SITE_LAYER
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import people as people  # noqa: F401
from test_pages import login, token

from objectplatform.runtime.errors import Conflict
from objectplatform.runtime.records import recycle_bin
from objectplatform.runtime.scheduler import tick
from objectplatform.translations import message_text

T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
NOTES = """\
kind: object
name: account_note
label: {zh: 客户备注, en: Account note}
title_field: subject
fields:
  subject: {type: text, label: {zh: 主题, en: Subject}, required: true}
  account: {type: lookup, to: account, on_delete: cascade, label: {zh: 客户, en: Account}}
"""


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {"flows/standard.yaml": SITE_LAYER,
                                                          "object_defs/account_note.yaml": NOTES})


@pytest.fixture
def clock(platform):
    platform.clock = FixedClock(T0)
    return platform.clock


def count(platform, obj: str) -> int:
    with platform.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(platform.schema[obj].table)).scalar_one()


def bin_rows(platform) -> list[tuple]:
    table = platform.schema.recycle_bin
    with platform.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.select(table.c.object, table.c.title).order_by(table.c.id))]


def full_error() -> tuple[int, dict]:
    """The last error answer as the API sent it, reason and params included."""
    return ERROR_RESPONSES[-1][2], ERROR_RESPONSES[-1][3]["error"]


def order(records, account: str, product: str, user: str) -> dict:
    return records.create("sales_order", {"account": account, "order_line": [
        {"product": product, "quantity": 3, "unit_price": "10.50"},
        {"product": product, "quantity": 1, "unit_price": "100"}]}, user=user)


# ------------------------------------------------------------------------------------ delete and restore


def test_a_deleted_lead_leaves_every_read_path_and_comes_back_the_same(api, platform, people, clock):
    records = platform.records
    kept = records.create("lead", {"name": "留下", "phone": "13800000001"}, user=people["rep1"])
    gone = records.create("lead", {"name": "删掉", "phone": "13800000002", "company": "ACME"}, user=people["rep1"])
    report = api.post("/reports/leads_by_owner_status/run", "admin", {})[1]["totals"]
    clock.advance(hours=1)
    assert api.delete(f"/objects/lead/records/{gone['id']}", "admin") == (204, None)

    assert api.get(f"/objects/lead/records/{gone['id']}", "admin")[0] == 404
    assert [r["id"] for r in api.get("/objects/lead/records", "admin")[1]["items"]] == [kept["id"]]
    assert api.get("/objects/lead/records?q=删掉", "admin")[1]["items"] == []
    after = api.post("/reports/leads_by_owner_status/run", "admin", {})[1]["totals"]
    assert (report["leads"], after["leads"]) == (2, 1)
    status, body = api.get("/recycle_bin", "admin")
    assert status == 200
    entry = body["items"][0]
    assert body["items"] == [{"id": entry["id"], "object": "lead", "record_id": gone["id"], "title": "删掉",
                              "deleted_by": people["admin"], "deleted_at": "2026-12-07T03:00:00+00:00",
                              "purge_at": "2027-01-06T03:00:00+00:00"}]

    clock.advance(days=2)
    status, restored = api.post(f"/recycle_bin/{entry['id']}/restore", "admin")
    assert status == 200
    read = api.get(f"/objects/lead/records/{gone['id']}", "admin")[1]
    assert restored == {k: v for k, v in read.items() if k != "_actions"}  # the record as a create answers it
    assert {k: restored[k] for k in ("id", "name", "phone", "company", "owner", "version", "created_at")} == {
        "id": gone["id"], "name": "删掉", "phone": "13800000002", "company": "ACME", "owner": people["rep1"],
        "version": 1, "created_at": "2026-12-07T02:00:00+00:00"}
    assert api.get("/recycle_bin", "admin")[1]["items"] == []
    history = api.get(f"/objects/lead/records/{gone['id']}/history", "admin")[1]["items"]
    assert [(e["change"], e["user"], e["at"]) for e in history[-2:]] == [
        ("delete", people["admin"], "2026-12-07T03:00:00+00:00"), ("restore", people["admin"],
                                                                   "2026-12-09T03:00:00+00:00")]
    assert api.post("/reports/leads_by_owner_status/run", "admin", {})[1]["totals"]["leads"] == 2


def test_an_order_goes_with_its_lines_and_comes_back_with_the_rollups(platform, people):
    records = platform.records
    acme = records.create("account", {"name": "ACME 科技"}, user=people["rep1"])["id"]
    widget = records.create("product", {"name": "Widget", "code": "W-1", "price": "10.50"})["id"]
    made = order(records, acme, widget, people["rep1"])
    assert records.get("account", acme)["order_total"] == Decimal("131.50")
    records.delete("sales_order", made["id"], user=people["admin"])
    assert (count(platform, "sales_order"), count(platform, "order_line")) == (0, 0)
    assert records.get("account", acme)["order_total"] == Decimal("0")
    assert bin_rows(platform) == [("sales_order", made["order_no"])]

    (entry,) = recycle_bin.entries(platform)
    obj, restored = recycle_bin.restore(platform, entry["id"], people["admin"])
    assert obj == "sales_order"
    assert restored == made | {"order_line": made["order_line"]}
    assert [line["id"] for line in restored["order_line"]] == [line["id"] for line in made["order_line"]]
    assert records.get("account", acme)["order_total"] == Decimal("131.50")
    assert records.history("order_line", made["order_line"][0]["id"])[-1]["change"] == "restore"


def test_a_restore_whose_unique_value_is_taken_is_refused_and_writes_nothing(api, platform, people):
    records = platform.records
    first = records.create("product", {"name": "Widget", "code": "W-1", "price": "10"})
    records.delete("product", first["id"], user=people["admin"])
    records.create("product", {"name": "Widget 2", "code": "W-1", "price": "12"})
    (entry,) = recycle_bin.entries(platform)
    assert api.post(f"/recycle_bin/{entry['id']}/restore", "admin")[0] == 409
    status, error = full_error()
    assert (status, error["code"], error["reason"], error["message"]) == (
        409, "conflict", "recycle_bin.unique_taken",
        "Product Widget cannot be restored: its Code W-1 is used by another record now")
    assert error["params"]["field"] == "code"
    assert count(platform, "product") == 1
    assert len(recycle_bin.entries(platform)) == 1


def test_a_restore_naming_a_record_that_is_gone_is_refused(platform, people):
    records = platform.records
    acme = records.create("account", {"name": "ACME 科技"}, user=people["rep1"])["id"]
    contact = records.create("contact", {"name": "张三", "account": acme}, user=people["rep1"])["id"]
    records.delete("contact", contact, user=people["admin"])
    records.delete("account", acme, user=people["admin"])
    contact_entry = next(e for e in recycle_bin.entries(platform) if e["object"] == "contact")
    with pytest.raises(Conflict) as refused:
        recycle_bin.restore(platform, contact_entry["id"], people["admin"])
    assert refused.value.reason == "recycle_bin.reference_gone"
    assert message_text(refused.value.message, "zh") == (
        f"联系人 张三 无法还原：客户引用的客户（{acme}）已不存在，请先还原它")
    assert count(platform, "contact") == 0
    account_entry = next(e for e in recycle_bin.entries(platform) if e["object"] == "account")
    recycle_bin.restore(platform, account_entry["id"], people["admin"])
    assert recycle_bin.restore(platform, contact_entry["id"], people["admin"])[1]["account"] == acme


# ------------------------------------------------------------------------------------ references


def test_an_account_still_referenced_is_refused_naming_what_and_how_many(api, platform, people):
    records = platform.records
    acme = records.create("account", {"name": "ACME"}, user=people["rep1"])["id"]
    for name in ("张三", "李四", "王五"):
        records.create("contact", {"name": name, "account": acme}, user=people["rep1"])
    for name in ("一期", "二期"):
        records.create("opportunity", {"name": name, "account": acme, "amount": 1000}, user=people["rep1"])
    assert api.delete(f"/objects/account/records/{acme}", "admin")[0] == 409
    status, error = full_error()
    assert (status, error["code"], error["reason"]) == (409, "conflict", "record.referenced")
    assert error["message"] == ("Account ACME is still referenced by Contact (3), Opportunity (2): change or delete "
                                "those records first")
    assert error["params"]["referrers"] == [
        {"object": "contact", "label": {"zh": "联系人", "en": "Contact"}, "count": 3},
        {"object": "opportunity", "label": {"zh": "商机", "en": "Opportunity"}, "count": 2}]
    with pytest.raises(Conflict) as refused:
        records.delete("account", acme, user=people["admin"])
    assert message_text(refused.value.message, "zh") == (
        "客户 ACME 仍被 3 个联系人、2 个商机引用：请先修改或删除这些记录")
    assert records.get("account", acme)["opportunity_count"] == 2
    assert (count(platform, "contact"), count(platform, "opportunity"), bin_rows(platform)) == (3, 2, [])


def test_clear_empties_the_reference_and_cascade_takes_the_records_along(platform, people):
    records = platform.records
    parent = records.create("account", {"name": "集团"}, user=people["rep1"])["id"]
    child = records.create("account", {"name": "分公司", "parent": parent}, user=people["rep1"])
    note = records.create("account_note", {"subject": "年度框架协议", "account": parent}, user=people["rep1"])
    records.delete("account", parent, user=people["admin"])

    cleared = records.get("account", child["id"])
    assert (cleared["parent"], cleared["version"]) == (None, 2)
    assert [(e["change"], e["field"], e["old"], e["new"]) for e in records.history("account", child["id"])][-1] == (
        "update", "parent", parent, None)
    assert count(platform, "account_note") == 0
    assert bin_rows(platform) == [("account", "集团")]

    (entry,) = recycle_bin.entries(platform)
    recycle_bin.restore(platform, entry["id"], people["admin"])
    assert records.get("account_note", note["id"])["subject"] == "年度框架协议"
    assert records.get("account", child["id"])["parent"] is None  # a cleared reference stays cleared


def test_a_restored_opportunity_opens_to_its_team_again(api, platform, people):
    records = platform.records
    acme = records.create("account", {"name": "ACME"}, user=people["rep1"])["id"]
    deal = records.create("opportunity", {"name": "一期", "account": acme, "amount": 1000, "team": [people["rep2"]]},
                          user=people["rep1"])["id"]
    assert api.get(f"/objects/opportunity/records/{deal}", "rep2")[0] == 200
    records.delete("opportunity", deal, user=people["admin"])
    assert api.get(f"/objects/opportunity/records/{deal}", "rep2")[0] == 404
    (entry,) = recycle_bin.entries(platform)
    recycle_bin.restore(platform, entry["id"], people["admin"])
    assert api.get(f"/objects/opportunity/records/{deal}", "rep2")[1]["team"] == [people["rep2"]]
    assert records.get("account", acme)["opportunity_count"] == 1


def test_users_are_still_never_deleted(platform, people):
    with pytest.raises(Conflict) as refused:
        platform.records.delete("user", people["rep1"], user=people["admin"])
    assert refused.value.reason == "user.not_deletable"
    assert bin_rows(platform) == []


# ------------------------------------------------------------------------------------ purge and access


def test_the_purge_removes_only_entries_past_the_retention_period(platform, people, clock):
    records = platform.records
    old = records.create("product", {"name": "旧产品", "code": "OLD", "price": "1"})["id"]
    new = records.create("product", {"name": "新产品", "code": "NEW", "price": "1"})["id"]
    records.delete("product", old, user=people["admin"])
    clock.advance(days=10)
    records.delete("product", new, user=people["admin"])
    clock.advance(days=20)  # the first entry is exactly 30 days old: kept until it is older
    assert recycle_bin.purge(platform) == 0
    clock.advance(seconds=1)
    tick(platform)
    assert bin_rows(platform) == [("product", "新产品")]
    clock.advance(days=10)
    assert recycle_bin.purge(platform) == 1
    assert bin_rows(platform) == []


def test_the_bin_is_for_administrators(api, platform, people):
    lead_id = platform.records.create("lead", {"name": "客户", "phone": "13800000003"}, user=people["rep1"])["id"]
    platform.records.delete("lead", lead_id, user=people["admin"])
    (entry,) = recycle_bin.entries(platform)
    assert api.get("/recycle_bin", "rep1")[0] == 403
    assert full_error()[1]["reason"] == "recycle_bin.admins_only"
    assert api.post(f"/recycle_bin/{entry['id']}/restore", "boss")[0] == 403
    assert api.post("/recycle_bin/999999/restore", "admin")[0] == 404
    assert api.post("/recycle_bin/abc/restore", "admin")[0] == 404
    assert len(recycle_bin.entries(platform)) == 1


# ------------------------------------------------------------------------------------ pages


def test_the_bin_page_lists_and_restores(app, platform, people, clock):
    app.config["TESTING"] = True
    client = app.test_client()
    login(client, "admin", PASSWORD)
    lead_id = platform.records.create("lead", {"name": "回收客户", "phone": "13800000004"}, user=people["rep1"])["id"]
    page = client.get(f"/o/lead/{lead_id}").get_data(as_text=True)
    assert "删除后移入回收站，管理员可以还原" in page
    deleted = client.post(f"/o/lead/{lead_id}/delete", data={"csrf_token": token(client)}, follow_redirects=True)
    assert "已移入回收站" in deleted.get_data(as_text=True)
    assert 'href="/admin/recycle_bin"' in deleted.get_data(as_text=True)

    page = client.get("/admin/recycle_bin").get_data(as_text=True)
    (entry,) = recycle_bin.entries(platform)
    for text in ("回收站", "销售线索", "回收客户", "管理员", "2026-12-07 10:00", "2027-01-06",
                 f"/admin/recycle_bin/{entry['id']}/restore"):
        assert text in page, text
    restored = client.post(f"/admin/recycle_bin/{entry['id']}/restore", data={"csrf_token": token(client)})
    assert restored.status_code == 302 and restored.headers["Location"] == f"/o/lead/{lead_id}"
    assert "已还原" in client.get(f"/o/lead/{lead_id}").get_data(as_text=True)
    assert "回收站是空的" in client.get("/admin/recycle_bin").get_data(as_text=True)

    login(client, "rep1", PASSWORD)
    assert client.get("/admin/recycle_bin").status_code == 403


def test_a_refused_delete_is_said_on_the_record_page(app, platform, people):
    app.config["TESTING"] = True
    client = app.test_client()
    login(client, "admin", PASSWORD)
    acme = platform.records.create("account", {"name": "ACME"}, user=people["rep1"])["id"]
    platform.records.create("contact", {"name": "张三", "account": acme}, user=people["rep1"])
    refused = client.post(f"/o/account/{acme}/delete", data={"csrf_token": token(client)})
    assert refused.status_code == 302 and refused.headers["Location"] == f"/o/account/{acme}"
    page = client.get(f"/o/account/{acme}").get_data(as_text=True)
    assert "客户 ACME 仍被 1 个联系人引用：请先修改或删除这些记录" in page
