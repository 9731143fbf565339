"""Foreign keys on references, on both databases: migrate gives every lookup, master_detail, user and department
column a constraint on its target's id; the database refuses a dangling id written past the engine; the engine's own
refusals, cascades and restores still decide (children deleted before their parent, restored after it); the
user<->department references can name each other; an existing database with a dangling id is refused, listing the
rows."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime

import pytest
import sqlalchemy as sa
from support import crm_metadata
from test_api import ERROR_RESPONSES, SITE_LAYER
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import people as people  # noqa: F401

from objectplatform.runtime.errors import Conflict
from objectplatform.runtime.records import recycle_bin
from objectplatform.runtime.storage.engine import create_engine, defer_foreign_keys
from objectplatform.runtime.storage.migrate import MigrationRefused, migrate
from objectplatform.runtime.storage.tables import schema_of
from objectplatform.translations import message_text

AT = datetime(2026, 12, 7, 2, 0)
NOTES = """\
kind: object
name: account_note
label: {zh: 客户备注, en: Account note}
title_field: subject
fields:
  subject: {type: text, label: {zh: 主题, en: Subject}, required: true}
  account: {type: lookup, to: account, on_delete: cascade, label: {zh: 客户, en: Account}}
"""
# every reference of the CRM with a constraint: (table, column) -> target; a follow-up's related_object/related_id
# (any object's record) and the multi_user team fields have none
FOREIGN_KEYS = {
    ("account", "parent"): "account", ("account_note", "account"): "account", ("co_visit", "user"): "user",
    ("co_visit", "visit"): "visit", ("competitor_info", "account"): "account", ("competitor_info", "visit"): "visit",
    ("customer_feedback", "account"): "account", ("customer_feedback", "visit"): "visit", ("contact", "account"):
    "account", ("department", "manager"): "user",
    ("department", "parent"): "department", ("invoice", "issued_by"): "user", ("invoice", "sales_order"):
    "sales_order", ("lead", "campaign"): "campaign", ("lead", "converted_account"): "account", ("lead",
    "converted_contact"): "contact", ("lead", "converted_opportunity"): "opportunity", ("lead", "pool"):
    "lead_pool", ("lead_pool", "default_assignee"): "user", ("opportunity", "account"): "account", ("opportunity",
    "campaign"): "campaign", ("opportunity", "contact"): "contact", ("opportunity_task", "completed_by"): "user",
    ("opportunity_task", "opportunity"): "opportunity", ("order_line", "product"): "product", ("order_line",
    "sales_order"): "sales_order", ("payment", "confirmed_by"): "user", ("payment", "installment"): "payment_plan",
    ("payment", "sales_order"): "sales_order", ("payment_plan", "sales_order"): "sales_order", ("refund",
    "confirmed_by"): "user", ("refund", "return_order"): "return_order", ("refund", "sales_order"): "sales_order",
    ("return_line", "order_line"): "order_line", ("return_line", "product"): "product", ("return_line",
    "return_order"): "return_order", ("return_order", "approved_by"): "user", ("return_order", "received_by"):
    "user", ("return_order", "sales_order"): "sales_order", ("sales_order", "account"): "account", ("sales_order",
    "contact"): "contact", ("sales_order", "opportunity"): "opportunity", ("sales_order", "received_by"): "user",
    ("sales_order", "shipped_by"): "user", ("sales_target", "department"): "department", ("sales_target", "user"):
    "user", ("stage_history", "moved_by"): "user", ("stage_history", "opportunity"): "opportunity", ("user",
    "department"): "department", ("user", "manager"): "user", ("visit", "account"): "account", ("visit", "contact"):
    "contact", ("visit", "opportunity"): "opportunity", ("visit_route_stop", "account"): "account",
    ("visit_route_stop", "visit"): "visit", ("visit_route_stop", "visit_route"): "visit_route",
    ("order_line", "price_policy"): "price_policy", ("price_policy", "account"): "account",
    ("price_policy", "product"): "product", ("user", "account"): "account",
}


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return crm_metadata(tmp_path_factory.mktemp("site"), {"flows/standard.yaml": SITE_LAYER,
                                                          "object_defs/account_note.yaml": NOTES})


def database_keys(engine: sa.Engine) -> dict[tuple[str, str], str]:
    found = sa.inspect(engine).get_multi_foreign_keys()
    return {(table, fk["constrained_columns"][0]): fk["referred_table"]
            for (_, table), fks in found.items() for fk in fks}


def insert(conn: sa.Connection, platform, obj: str, **values) -> int:
    row = {"created_at": AT, "updated_at": AT, **values}
    return conn.execute(platform.schema[obj].table.insert().values(row)).inserted_primary_key[0]


def count(platform, obj: str) -> int:
    with platform.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(platform.schema[obj].table)).scalar_one()


def test_migrate_gives_every_reference_a_foreign_key_and_nothing_else(platform):
    assert database_keys(platform.engine) == FOREIGN_KEYS
    (contact,) = sa.inspect(platform.engine).get_foreign_keys("contact")
    assert (contact["name"], contact["referred_columns"], contact["options"].get("deferrable")) == (
        "fk_contact__account", ["id"], True)


def test_the_database_refuses_a_dangling_id_written_past_the_engine(platform, people):
    acme = platform.records.create("account", {"name": "ACME"}, user=people["rep1"])["id"]
    zhang = platform.records.create("contact", {"name": "张三", "account": acme}, user=people["rep1"])["id"]
    writes = [
        lambda c: insert(c, platform, "contact", name="李四", account=424242),
        lambda c: c.execute(sa.text("UPDATE contact SET account = 424242 WHERE id = :id"), {"id": int(zhang)}),
        lambda c: c.execute(sa.text("DELETE FROM account WHERE id = :id"), {"id": int(acme)}),
        lambda c: c.execute(sa.text('UPDATE "user" SET department = 424242 WHERE id = :id'),
                            {"id": int(people["rep1"])}),
    ]
    for write in writes:
        with pytest.raises(sa.exc.IntegrityError), platform.engine.begin() as conn:
            write(conn)
    assert (count(platform, "contact"), platform.records.get("contact", zhang)["account"]) == (1, acme)


def test_a_refused_foreign_key_is_a_409_record_referenced(platform, people):
    acme = platform.records.create("account", {"name": "ACME"}, user=people["rep1"])["id"]
    platform.records.create("contact", {"name": "张三", "account": acme}, user=people["rep1"])
    with pytest.raises(Conflict) as refused, platform.records.transaction() as conn:
        conn.execute(sa.text("DELETE FROM account WHERE id = :id"), {"id": int(acme)})
    assert refused.value.reason == "record.referenced"
    if platform.engine.dialect.name == "postgresql":  # it names the constraint and the key
        assert str(refused.value.message) == (f"Account {acme} is still referenced by Contact: change or delete "
                                              "those records first")
        assert message_text(refused.value.message, "zh") == f"客户 {acme} 仍被 联系人引用：请先修改或删除这些记录"
    else:  # SQLite says only that a foreign key failed
        assert str(refused.value.message) == ("The record is still referenced by other records: change or delete "
                                              "those records first")
        assert message_text(refused.value.message, "zh") == "该 记录 仍被 其他记录引用：请先修改或删除这些记录"
    assert platform.records.get("account", acme)["name"] == "ACME"


def test_deleting_a_referenced_account_is_still_the_engines_409(api, platform, people):
    records = platform.records
    acme = records.create("account", {"name": "ACME"}, user=people["rep1"])["id"]
    for name in ("张三", "李四"):
        records.create("contact", {"name": name, "account": acme}, user=people["rep1"])
    assert api.delete(f"/objects/account/records/{acme}", "admin")[0] == 409
    _, _, status, body = ERROR_RESPONSES[-1]
    assert (status, body["error"]["reason"], body["error"]["message"]) == (
        409, "record.referenced",
        "Account ACME is still referenced by Contact (2): change or delete those records first")
    assert (count(platform, "account"), count(platform, "contact")) == (1, 2)


def test_cascade_delete_and_restore_of_an_account_and_of_an_order_with_lines(api, platform, people):
    records = platform.records
    group = records.create("account", {"name": "集团"}, user=people["rep1"])["id"]
    branch = records.create("account", {"name": "分公司", "parent": group}, user=people["rep1"])["id"]
    notes = [records.create("account_note", {"subject": s, "account": group}, user=people["rep1"])["id"]
             for s in ("年度框架协议", "拜访纪要")]
    assert api.delete(f"/objects/account/records/{group}", "admin") == (204, None)
    assert (count(platform, "account"), count(platform, "account_note")) == (1, 0)
    assert records.get("account", branch)["parent"] is None  # account.parent clears

    product = records.create("product", {"name": "服务器", "code": "SRV-1", "price": "100"})["id"]
    customer = records.create("account", {"name": "ACME"}, user=people["rep1"])["id"]
    order = records.create("sales_order", {"account": customer, "order_line": [
        {"product": product, "quantity": 3, "unit_price": "10.50"},
        {"product": product, "quantity": 1, "unit_price": "100"}]}, user=people["rep1"])
    assert api.delete(f"/objects/sales_order/records/{order['id']}", "admin") == (204, None)
    assert (count(platform, "sales_order"), count(platform, "order_line")) == (0, 0)

    for entry in recycle_bin.entries(platform):  # the order first (newest), then the group with its notes
        recycle_bin.restore(platform, entry["id"], people["admin"])
    assert [records.get("account_note", n)["subject"] for n in notes] == ["年度框架协议", "拜访纪要"]
    assert records.get("account", group)["name"] == "集团"
    restored = records.get("sales_order", order["id"])
    assert (restored["total_amount"], [line["quantity"] for line in restored["order_line"]]) == (
        order["total_amount"], [3, 1])
    assert count(platform, "order_line") == 2


def test_users_and_departments_name_each_other(platform, people):
    records = platform.records
    east = records.create("department", {"name": "华东区"}, system=True)["id"]
    chen = records.create("user", {"username": "chen", "display_name": "陈经理", "roles": ["sales_manager"],
                                   "department": east}, system=True)["id"]
    east_now = records.get("department", east)
    records.update("department", east, {"manager": chen}, version=east_now["version"], system=True)
    assert (records.get("department", east)["manager"], records.get("user", chen)["department"]) == (chen, east)

    with platform.engine.begin() as conn:  # both rows at once, each naming the other: checked at the commit
        defer_foreign_keys(conn)
        user_id = int(chen) + 100
        west = insert(conn, platform, "department", name="华西区", manager=user_id)
        insert(conn, platform, "user", id=user_id, username="li", display_name="李经理", department=west)
    assert records.get("department", str(west))["manager"] == str(user_id)
    with pytest.raises(sa.exc.IntegrityError), platform.engine.begin() as conn:
        defer_foreign_keys(conn)
        insert(conn, platform, "department", name="华南区", manager=user_id + 1)  # no such user by the commit
    with pytest.raises(Conflict) as refused:  # a department with users stays: the engine's 409
        records.delete("department", east, user=people["admin"])
    assert str(refused.value.message) == ("Department 华东区 is still referenced by User (1): change or delete those "
                                          "records first")


def strip_contact_account_key(url: str) -> None:
    """Make the database as a version without foreign keys left it: contact.account without its constraint and its
    field record without "foreign_key"."""
    if url.startswith("sqlite"):  # SQLite cannot drop a constraint: the table is rebuilt without it
        conn = sqlite3.connect(sa.make_url(url).database)
        table, *indexes = [r[0] for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'contact' AND sql IS NOT NULL ORDER BY type DESC")]
        without = re.sub(r",\s*CONSTRAINT fk_contact__account [^\n]*", "", table)
        conn.executescript(  # SQLite's way: a new table, the rows copied, the old one dropped, the new one renamed
            without.replace("CREATE TABLE contact (", "CREATE TABLE contact_new (", 1) + ";"
            + "INSERT INTO contact_new SELECT * FROM contact; DROP TABLE contact;"
            + "ALTER TABLE contact_new RENAME TO contact;"
            + "".join(f"{index};" for index in indexes))
        conn.close()
        engine = create_engine(url)
    else:
        engine = create_engine(url)
        with engine.begin() as c:
            c.exec_driver_sql("ALTER TABLE contact DROP CONSTRAINT fk_contact__account")
    with engine.begin() as c:
        spec = json.loads(c.exec_driver_sql(
            "SELECT spec FROM _op_schema WHERE object = 'contact' AND field = 'account'").scalar_one())
        del spec["foreign_key"]
        c.execute(sa.text("UPDATE _op_schema SET spec = :spec WHERE object = 'contact' AND field = 'account'"),
                  {"spec": json.dumps(spec, sort_keys=True)})
    engine.dispose()


def test_migrate_refuses_a_foreign_key_over_dangling_ids_listing_the_rows(migrated_database_url, metadata):
    strip_contact_account_key(migrated_database_url)
    engine = create_engine(migrated_database_url)
    schema = schema_of(metadata)
    with engine.begin() as c:
        acme = c.execute(schema["account"].table.insert().values(name="ACME", created_at=AT, updated_at=AT))
        acme = acme.inserted_primary_key[0]
        for name, account in [("张三", acme), ("李四", 424242), ("王五", None), ("赵六", 515151)]:
            c.execute(schema["contact"].table.insert().values(name=name, account=account, created_at=AT,
                                                              updated_at=AT))
    with pytest.raises(MigrationRefused) as refused:
        migrate(engine, schema)
    source = metadata.objects["contact"].fields["account"].source
    assert refused.value.refusals == (
        f"{source.file}:{source.line}: contact.account names account records that do not exist in 2 rows (id 2, 4): "
        "its foreign key cannot be added; point those rows at existing account records or empty the field, then "
        "migrate again",)

    with engine.begin() as c:
        c.exec_driver_sql("UPDATE contact SET account = NULL WHERE name IN ('李四', '赵六')")
    plan = migrate(engine, schema)
    if engine.dialect.name == "postgresql":
        assert plan.render().splitlines() == [
            "+ foreign key fk_contact__account on contact (account) -> account (id)", "* record 1 field definition"]
        assert database_keys(engine)[("contact", "account")] == "account"
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as c:
            c.exec_driver_sql("UPDATE contact SET account = 424242")
    else:
        assert plan.render().splitlines() == [
            "= foreign key contact.account -> account (id) not added: SQLite cannot add one to an existing column (a "
            "database created by this version has it)", "* record 1 field definition"]
        assert ("contact", "account") not in database_keys(engine)
    assert migrate(engine, schema).render() == "nothing to do"
    engine.dispose()


REFERRER = """\
kind: object_extension
object: contact
fields:
  referred_by: {type: lookup, to: contact, label: {zh: 推荐人, en: Referred by}}
"""


def test_a_reference_field_added_then_removed_gets_then_loses_its_foreign_key(migrated_database_url, metadata,
                                                                              tmp_path):
    grown = crm_metadata(tmp_path, {"flows/standard.yaml": SITE_LAYER, "object_defs/account_note.yaml": NOTES,
                                    "object_defs/contact_referrer.yaml": REFERRER})
    engine = create_engine(migrated_database_url)
    plan = migrate(engine, schema_of(grown))
    assert plan.render().splitlines() == [
        "+ column contact.referred_by BIGINT",
        "+ index ix_contact__referred_by__not_null on contact (referred_by) where referred_by IS NOT NULL "
        "for references to contact",
        "+ foreign key fk_contact__referred_by on contact (referred_by) -> contact (id)",
        "* record 1 field definition",
    ]
    assert database_keys(engine)[("contact", "referred_by")] == "contact"
    contacts = schema_of(grown)["contact"].table
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as c:
        c.execute(contacts.insert().values(name="张三", referred_by=424242, created_at=AT, updated_at=AT))
    assert migrate(engine, schema_of(grown)).render() == "nothing to do"
    with engine.begin() as c:
        zhang = c.execute(contacts.insert().values(name="张三", created_at=AT, updated_at=AT)).inserted_primary_key[0]
        c.execute(contacts.insert().values(name="李四", referred_by=zhang, created_at=AT, updated_at=AT))

    plan = migrate(engine, schema_of(metadata))  # the field is removed; its column stays with its data
    postgresql = engine.dialect.name == "postgresql"
    assert plan.render().splitlines() == [
        "- index ix_contact__referred_by__not_null on contact (nothing queries by it)",
        "= column contact.referred_by kept (field removed from metadata)",
        *(["- foreign key fk_contact__referred_by on contact (field removed from metadata)"] if postgresql else []),
        "* record 1 field definition",
    ]
    assert (("contact", "referred_by") in database_keys(engine)) is not postgresql  # SQLite cannot drop it
    engine.dispose()


def test_a_reference_whose_target_changes_gets_a_new_foreign_key_or_is_refused_on_sqlite(migrated_database_url,
                                                                                         tmp_path):
    retargeted = crm_metadata(tmp_path, {"flows/standard.yaml": SITE_LAYER, "object_defs/account_note.yaml":
                                         NOTES.replace("to: account, on_delete: cascade", "to: contact")})
    engine = create_engine(migrated_database_url)
    if engine.dialect.name == "postgresql":
        assert migrate(engine, schema_of(retargeted)).render().splitlines() == [
            "- foreign key fk_account_note__account on account_note (now referencing contact)",
            "+ foreign key fk_account_note__account on account_note (account) -> contact (id)",
            "* record 1 field definition",
        ]
        assert database_keys(engine)[("account_note", "account")] == "contact"
    else:
        with pytest.raises(MigrationRefused) as refused:
            migrate(engine, schema_of(retargeted))
        source = retargeted.objects["account_note"].fields["account"].source
        assert refused.value.refusals == (
            f"{source.file}:{source.line}: account_note.account referenced account, now contact: SQLite cannot change "
            "a column's foreign key: add a new field and copy the data",)
    engine.dispose()
