"""migrate: additive changes applied in one transaction, removed fields kept, unsafe changes refused.

Each test runs on SQLite and PostgreSQL. The shipped CRM and a site layer (`migrate_layers/site`)
cover the ordinary path; small `gadget` definitions written to tmp_path cover the refusals, since a
layer that changes a field's type would already be refused by the loader. New rollups and stored
formulas are computed on orders and accounts written through the records service.
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import CRM_LAYERS, crm_metadata

from objectplatform.metadata import default_layers, load_metadata
from objectplatform.runtime.config import Settings
from objectplatform.runtime.platform import open_platform
from objectplatform.runtime.records.formulas import Formulas
from objectplatform.runtime.storage import Schema, create_engine
from objectplatform.runtime.storage.migrate import (
    AddColumn,
    ComputeField,
    ComputeLater,
    CreateIndex,
    CreateTable,
    MigrationRefused,
    RecordField,
    apply_migration,
    index_names,
    migrate,
    plan_migration,
)
from objectplatform.runtime.storage.search import TERMS
from objectplatform.runtime.storage.tables import schema_of

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "tests" / "migrate_layers" / "site"
INTERNAL = {"_op_history", "_op_autonumber", "_op_schema", "_op_migration", "_op_token",
            "_op_notification", "_op_todo", "_op_rule_run", "_op_rule_match", "_op_approval", "_op_approval_step",
            "_op_report", "_op_recycle_bin", "_op_team",  # _op_team: the shipped opportunity and visit have team fields
            "_op_import", "_op_import_batch", "_op_home_pin", "_op_template", "_op_comment", "_op_access_stamp",
            "_op_search",  # _op_search: the shipped lead, account, contact, opportunity and order declare `search:`
            "_op_summary_lead__owner__pool__status"}  # the shipped lead reports declare `summary:`
AT = datetime(2024, 5, 6, 7, 8, 9)
TYPE_CHANGE = "changing a field's type is not supported: add a new field and copy the data"


@cache
def shipped(site: Path | None = None) -> Schema:
    return Schema(load_metadata(default_layers(ROOT, [], site, CRM_LAYERS)))


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def write_gadgets(folder: Path, fields: str) -> Path:
    """A one-object metadata folder: `gadget` with the given field lines (the first is line 5)."""
    (folder / "object_defs").mkdir(parents=True)
    (folder / "object_defs" / "gadget.yaml").write_text(
        "kind: object\nname: gadget\nlabel: {zh: 小器件, en: Gadget}\nfields:\n" + fields, encoding="utf-8"
    )
    return folder


def gadgets(folder: Path, fields: str) -> Schema:
    return Schema(load_metadata([write_gadgets(folder, fields)]))


def add_gadgets(engine, schema: Schema, sizes: list[str | None]) -> None:
    rows = [{"size": s, "created_at": AT, "updated_at": AT} for s in sizes]
    with engine.begin() as conn:
        conn.execute(schema["gadget"].table.insert(), rows)


def sizes(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT size FROM gadget ORDER BY id")).scalars().all()


def columns(engine, table: str) -> dict[str, str]:
    """Column name -> its type's name and length as the database reports them."""
    with engine.connect() as conn:
        found = sa.inspect(conn).get_columns(table)
    return {c["name"]: f"{type(c['type']).__name__}({getattr(c['type'], 'length', None)})" for c in found}


def recorded(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT * FROM _op_schema ORDER BY object, field"))]


def migrations(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT plan FROM _op_migration ORDER BY id")).scalars().all()


def test_the_platforms_opened_on_one_metadata_share_its_tables(tmp_path):
    """Building the tables of the whole CRM costs 0.1 s: every platform (a web thread's, a job's, a test's) opened on
    the same Metadata shares one Schema, and the Records service what it makes from it."""
    metadata = crm_metadata()
    first, second = (open_platform(Settings.from_env({}, database_url=f"sqlite:///{tmp_path / 'x.db'}",
                                                     instance_path=tmp_path), metadata) for _ in range(2))
    try:
        assert first.schema is second.schema is schema_of(metadata)
        assert first.records.row_makers is second.records.row_makers
    finally:
        first.close()
        second.close()


def test_fresh_database_gets_every_object_table_and_the_list_view_indexes(engine):
    schema = shipped()
    plan = migrate(engine, schema)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert set(inspector.get_table_names()) == set(schema.objects) | INTERNAL
        with warnings.catch_warnings():  # SQLite's inspector skips (and warns about) expression indexes
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            found = inspector.get_indexes("lead")
        lead_indexes = {ix["name"]: ix["column_names"] for ix in found}
        carried = {ix["name"]: ix.get("dialect_options", {}).get("postgresql_include", []) for ix in found}
        every_lead_index = index_names(conn, inspector)["lead"]
    assert lead_indexes["ix_lead__status__created_at_desc__id_desc"] == ["status", "created_at", "id"]
    pool_state = "ix_lead__pool__status__created_at_desc__id_desc__with_owner"
    # a pool's waiting leads are counted from the index alone: it carries the owner their scope reads (PostgreSQL)
    assert carried[pool_state] == (["owner"] if engine.dialect.name == "postgresql" else [])
    assert lead_indexes[pool_state] == ["pool", "status", "created_at", "id"]
    assert every_lead_index == {ix.name for ix in schema["lead"].table.indexes}
    lines = plan.render().splitlines()
    assert lines[:5] == [
        "+ table _op_history (9 columns)",
        "+ index ix__op_history__record on _op_history (object, record_id, id)",
        "+ table _op_autonumber (4 columns)",
        "+ table _op_schema (5 columns)",
        "+ table _op_migration (3 columns)",
    ]
    assert "+ table lead (32 columns)" in lines
    assert [line for line in lines if line.startswith("+ index ix_lead__")] == [  # each with what queries by it
        "+ index ix_lead__campaign__created_at_desc__id_desc on lead (campaign, created_at DESC, id DESC) "
        "for list filter campaign; references to campaign",
        "+ index ix_lead__converted_account__not_null on lead (converted_account) where converted_account IS NOT NULL "
        "for references to account",
        "+ index ix_lead__converted_contact__not_null on lead (converted_contact) where converted_contact IS NOT NULL "
        "for references to contact",
        "+ index ix_lead__converted_opportunity__not_null on lead (converted_opportunity) "
        "where converted_opportunity IS NOT NULL for references to opportunity",
        "+ index ix_lead__created_at_desc__id_desc on lead (created_at DESC, id DESC) for list sort -created_at",
        "+ index ix_lead__lower_name__lower_company on lead (lower(name), lower(company)) "
        "for duplicate rule same_name_company",
        "+ index ix_lead__mobile on lead (mobile) for duplicate rule same_mobile; index: true",
        "+ index ix_lead__owner__created_at_desc__id_desc on lead (owner, created_at DESC, id DESC) "
        "for list filter owner; scope by owner",
        "+ index ix_lead__owner__status__created_at_desc__id_desc on lead (owner, status, created_at DESC, id DESC) "
        "for list filter status within the scope by owner",
        "+ index ix_lead__phone on lead (phone) for duplicate rule same_phone; index: true",
        "+ index ix_lead__pool__created_at_desc__id_desc on lead (pool, created_at DESC, id DESC) "
        "for list filter pool",
        "+ index ix_lead__pool__status__created_at_desc__id_desc__with_owner on lead (pool, status, created_at DESC, "
        "id DESC) carrying owner on PostgreSQL for list filter status within the scope by pool; "
        "references to lead_pool",
        "+ index ix_lead__status__created_at_desc__id_desc on lead (status, created_at DESC, id DESC) "
        "for list filter status; lifecycle state",
    ]
    assert "+ unique index uq_product__code on product (code) for unique: true" in lines
    assert ("+ index ix_opportunity__owner__status__expected_close_date__id on opportunity (owner, status, "
            "expected_close_date, id) for list filter status within the scope by owner") in lines
    assert "~ fill the search terms of lead (name, company, phone, mobile) from 0 rows" in lines
    assert "~ fill the search terms of sales_order (order_no) from 0 rows" in lines
    fields = sum(len(o.fields) for o in schema.md.objects.values())
    assert lines[-1] == f"* record {fields} field definitions"
    searched = [(row[0], row[2], row[3]) for row in recorded(engine) if row[1] == "_search"]
    terms = json.dumps(TERMS)  # how the terms were made: migrate makes them again when that changes
    assert searched == [("account", "search", f'{{"fields": ["name", "short_name", "phone"], "terms": {terms}}}'),
                        ("contact", "search", f'{{"fields": ["name", "phone", "mobile"], "terms": {terms}}}'),
                        ("lead", "search", f'{{"fields": ["name", "company", "phone", "mobile"], "terms": {terms}}}'),
                        ("opportunity", "search", f'{{"fields": ["name"], "terms": {terms}}}'),
                        ("sales_order", "search", f'{{"fields": ["order_no"], "terms": {terms}}}')]
    assert len(recorded(engine)) == fields + len(searched)
    assert migrations(engine) == [plan.render()]


def test_an_existing_database_loses_the_indexes_nothing_queries_by(engine):
    """A database migrated when every picklist had an index (and each list filter one with the sort) loses those
    of the lead's picklists that no list, rule or duplicate rule looks records up by; an index of its own stays."""
    migrate(engine, shipped())
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE INDEX ix_lead__company_size ON lead (company_size)"))
        conn.execute(sa.text("CREATE INDEX ix_lead__source__created_at_desc__id_desc "
                             "ON lead (source, created_at DESC, id DESC)"))
        conn.execute(sa.text("CREATE INDEX site_lead_wechat ON lead (wechat)"))
    plan = migrate(engine, shipped())
    assert plan.render().splitlines() == [
        "- index ix_lead__company_size on lead (nothing queries by it)",
        "- index ix_lead__source__created_at_desc__id_desc on lead (nothing queries by it)",
    ]
    assert plan.summary() == "migrated: 2 indexes dropped"
    with engine.connect() as conn:
        left = index_names(conn, sa.inspect(conn))["lead"]
    assert left == {ix.name for ix in shipped()["lead"].table.indexes} | {"site_lead_wechat"}
    assert migrate(engine, shipped()).render() == "nothing to do"


def test_the_recorded_field_names_its_columns_and_source(engine):
    migrate(engine, shipped())
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM _op_schema WHERE object = 'lead' AND field = 'name'")).one()
    assert tuple(row) == (
        "lead",
        "name",
        "text",
        '{"columns": {"name": "VARCHAR(100)"}, "required": true, "unique": false}',
        f"{shipped()['lead'].object.source.file}:61",  # lead.yaml's `name:` line
    )


def test_migrating_twice_changes_nothing_the_second_time(engine):
    migrate(engine, shipped())
    again = migrate(engine, shipped())
    assert again.ops == ()
    assert again.render() == "nothing to do"
    assert len(migrations(engine)) == 1


def test_dry_run_prints_the_plan_and_creates_nothing(engine):
    dry = migrate(engine, shipped(), dry_run=True)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    applied = migrate(engine, shipped())
    assert dry.render() == applied.render()
    assert migrations(engine) == [dry.render()]


def test_site_layer_adds_a_column_and_a_table_and_keeps_old_rows(engine):
    migrate(engine, shipped())
    lead = {"name": "王芳", "company": "星辰科技", "status": "pending", "created_at": AT, "updated_at": AT}
    with engine.begin() as conn:
        conn.execute(shipped()["lead"].table.insert(), lead)
    plan = migrate(engine, shipped(SITE))
    assert plan.render().splitlines() == [
        "+ column lead.qq VARCHAR(20)",
        "+ index ix_lead__qq on lead (qq) for index: true",
        "+ table store (12 columns)",
        "+ index ix_store__account__not_null on store (account) where account IS NOT NULL for references to account",
        "+ index ix_store__name__id on store (name, id) for list sort name",  # the grade filter: few values
        "+ index ix_store__owner__name__id on store (owner, name, id) for scope by owner",
        "+ foreign key fk_store__account on store (account) -> account (id)",
        "* record 5 field definitions",
    ]
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT id, name, company, status, qq, version FROM lead")).one()
        assert tuple(row) == (1, "王芳", "星辰科技", "pending", None, 1)
        assert conn.execute(sa.text("SELECT COUNT(*) FROM store")).scalar_one() == 0
    assert list(columns(engine, "store")) == [
        *("id", "owner", "created_by", "created_at", "updated_by", "updated_at", "version"),
        *("name", "account", "grade", "location_lat", "location_lng"),
    ]
    assert migrate(engine, shipped(SITE)).render() == "nothing to do"


def test_a_removed_field_keeps_its_column_and_data(engine, tmp_path):
    before = gadgets(
        tmp_path / "a", "  size: {type: text, label: {en: Size}}\n  color: {type: text, label: {en: Color}}\n"
    )
    migrate(engine, before)
    with engine.begin() as conn:
        conn.execute(before["gadget"].table.insert(), {"size": "M", "color": "red", "created_at": AT, "updated_at": AT})
    after = gadgets(tmp_path / "b", "  size: {type: text, label: {en: Size}}\n")
    plan = migrate(engine, after)
    assert plan.render() == "= column gadget.color kept (field removed from metadata)\n* record 1 field definition"
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.text("SELECT size, color FROM gadget")).one()) == ("M", "red")
    assert recorded(engine)[0][:3] == ("gadget", "color", "text")
    assert (
        recorded(engine)[0][3]
        == '{"columns": {"color": "VARCHAR(255)"}, "removed": true, "required": false, "unique": false}'
    )
    assert migrate(engine, after).render() == "nothing to do"
    again = migrate(engine, before)  # the field comes back: same column, same data, recorded again
    assert again.render() == "* record 1 field definition"


def test_a_type_change_is_refused_and_nothing_is_applied(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}}\n")
    migrate(engine, before)
    add_gadgets(engine, before, ["M", "L"])
    state = (columns(engine, "gadget"), recorded(engine), migrations(engine))
    after = gadgets(
        tmp_path / "b", "  size: {type: integer, label: {en: Size}}\n  weight: {type: integer, label: {en: Weight}}\n"
    )
    refusal = f"{tmp_path}/b/object_defs/gadget.yaml:5: gadget.size was text, now integer: {TYPE_CHANGE}"
    with pytest.raises(MigrationRefused) as refused:
        migrate(engine, after)
    assert str(refused.value) == refusal
    assert refused.value.refusals == (refusal,)
    assert (
        plan_migration(engine, after).render()
        == f"+ column gadget.weight BIGINT\n* record 1 field definition\n! {refusal}"
    )
    assert (columns(engine, "gadget"), recorded(engine), migrations(engine)) == state
    assert sizes(engine) == ["M", "L"]
    with pytest.raises(MigrationRefused):
        apply_migration(engine, after, plan_migration(engine, after))
    assert columns(engine, "gadget") == state[0]


def test_making_a_field_with_empty_rows_required_without_a_default_is_refused(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}}\n")
    migrate(engine, before)
    add_gadgets(engine, before, ["M", None, None])
    after = gadgets(tmp_path / "b", "  size: {type: text, label: {en: Size}, required: true}\n")
    with pytest.raises(MigrationRefused) as refused:
        migrate(engine, after)
    assert str(refused.value) == (
        f"{tmp_path}/b/object_defs/gadget.yaml:5: gadget.size is now required, but 2 rows have no value: "
        "give the field a default (existing rows get it) or fill those rows first"
    )
    assert recorded(engine)[0][3] == '{"columns": {"size": "VARCHAR(255)"}, "required": false, "unique": false}'


def test_a_new_required_field_without_a_default_is_refused_over_existing_rows(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}}\n")
    migrate(engine, before)
    add_gadgets(engine, before, ["M"])
    after = gadgets(
        tmp_path / "b",
        "  size: {type: text, label: {en: Size}}\n  code: {type: text, label: {en: Code}, required: true}\n",
    )
    with pytest.raises(MigrationRefused) as refused:
        migrate(engine, after)
    assert str(refused.value).startswith(
        f"{tmp_path}/b/object_defs/gadget.yaml:6: gadget.code is now required, but 1 row has no value"
    )
    assert "code" not in columns(engine, "gadget")


def test_required_with_a_default_fills_the_empty_rows(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}}\n")
    migrate(engine, before)
    add_gadgets(engine, before, ["L", None, None])
    after = gadgets(tmp_path / "b", "  size: {type: text, label: {en: Size}, required: true, default: M}\n")
    plan = migrate(engine, after)
    assert plan.render() == '~ fill gadget.size = "M" where empty (2 rows)\n* record 1 field definition'
    assert sizes(engine) == ["L", "M", "M"]
    assert migrate(engine, after).render() == "nothing to do"


def test_a_new_field_with_a_default_gives_it_to_existing_rows(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}}\n")
    migrate(engine, before)
    add_gadgets(engine, before, ["S", "M"])
    after = gadgets(
        tmp_path / "b",
        "  size: {type: text, label: {en: Size}}\n"
        "  discount: {type: percent, label: {en: Discount}, default: 5}\n"
        "  active: {type: boolean, label: {en: Active}, default: true}\n",
    )
    plan = migrate(engine, after)
    assert plan.render().splitlines() == [
        "+ column gadget.discount NUMERIC(18, 2)",
        "~ fill gadget.discount = 5 where empty (2 rows)",
        "+ column gadget.active BOOLEAN",
        "~ fill gadget.active = true where empty (2 rows)",
        "* record 2 field definitions",
    ]
    table = after["gadget"].table
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.size, table.c.discount, table.c.active).order_by(table.c.id)).all()
    assert [tuple(r) for r in rows] == [("S", Decimal("5.00"), True), ("M", Decimal("5.00"), True)]


def test_a_unique_field_over_duplicate_values_is_refused(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}}\n")
    migrate(engine, before)
    add_gadgets(engine, before, ["M", "L", "M", "S", "L", "M", None, None])
    after = gadgets(tmp_path / "b", "  size: {type: text, label: {en: Size}, unique: true}\n")
    with pytest.raises(MigrationRefused) as refused:
        migrate(engine, after)
    assert str(refused.value) == (
        f"{tmp_path}/b/object_defs/gadget.yaml:5: gadget.size is now unique, but 2 values are shared by "
        "several rows (e.g. 'M' in 3 rows): make the values distinct first"
    )
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE gadget SET size = id WHERE size IS NOT NULL"))
    assert migrate(engine, after).render() == (
        "+ unique index uq_gadget__size on gadget (size) for unique: true\n* record 1 field definition"
    )


def test_a_field_no_longer_unique_loses_its_unique_index(engine, tmp_path):
    migrate(engine, gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}, unique: true}\n"))
    after = gadgets(tmp_path / "b", "  size: {type: text, label: {en: Size}}\n")
    assert migrate(engine, after).render() == (
        "- unique index uq_gadget__size on gadget (no longer unique)\n* record 1 field definition"
    )
    add_gadgets(engine, after, ["M", "M"])
    assert sizes(engine) == ["M", "M"]
    assert migrate(engine, after).render() == "nothing to do"


def test_a_longer_text_widens_its_column_and_a_shorter_one_is_refused(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}, max_length: 50}\n")
    migrate(engine, before)
    add_gadgets(engine, before, ["M"])
    wider = gadgets(tmp_path / "b", "  size: {type: text, label: {en: Size}, max_length: 100}\n")
    assert migrate(engine, wider).render() == (
        "~ column gadget.size VARCHAR(50) -> VARCHAR(100)\n* record 1 field definition"
    )
    expected = "VARCHAR(100)" if engine.dialect.name == "postgresql" else "VARCHAR(50)"  # SQLite: record only
    assert columns(engine, "gadget")["size"] == expected
    narrower = gadgets(tmp_path / "c", "  size: {type: text, label: {en: Size}, max_length: 80}\n")
    with pytest.raises(MigrationRefused) as refused:
        migrate(engine, narrower)
    assert str(refused.value) == (
        f"{tmp_path}/c/object_defs/gadget.yaml:5: gadget.size: column size would shrink from VARCHAR(100) to "
        "VARCHAR(80): existing values may not fit; keep the length or add a new field and copy the data"
    )
    assert sizes(engine) == ["M"]


def test_a_failing_operation_rolls_back_the_whole_migration(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  size: {type: text, label: {en: Size}}\n")
    migrate(engine, before)
    state = (columns(engine, "gadget"), recorded(engine), migrations(engine))
    folder = write_gadgets(
        tmp_path / "b", "  size: {type: text, label: {en: Size}}\n  color: {type: text, label: {en: Color}}\n"
    )
    (folder / "object_defs" / "widget.yaml").write_text(
        "kind: object\nname: widget\nlabel: {en: Widget}\nfields:\n  name: {type: text, label: {en: Name}}\n"
    )
    after = Schema(load_metadata([folder]))
    plan = plan_migration(engine, after)
    assert [type(op) for op in plan.ops[:3]] == [AddColumn, RecordField, CreateTable]
    with engine.begin() as conn:  # someone else creates the table between plan and apply
        conn.execute(sa.text("CREATE TABLE widget (x INTEGER)"))
    with pytest.raises(sa.exc.DBAPIError):
        apply_migration(engine, after, plan)
    assert (columns(engine, "gadget"), recorded(engine), migrations(engine)) == state


# ------------------------------------------------------------------------- derived fields on existing rows

ORDER_FIGURES = """\
kind: object_extension
object: account
fields:
  order_count:    {type: rollup, function: count, child: sales_order, label: {en: Orders}}
  approved_total: {type: rollup, function: sum, child: sales_order, field: total_amount,
                   filter: {status: [approved, shipped]}, label: {en: Approved total}}
  open_total:     {type: rollup, function: sum, child: sales_order, field: open_amount, label: {en: Open total}}
  average_order:  {type: formula, expression: "order_total / order_count", result_type: currency, stored: true,
                   label: {en: Average order}}
---
kind: object_extension
object: sales_order
fields:
  open_amount: {type: formula, expression: "total_amount - paid_amount", result_type: currency, stored: true,
                label: {en: Open amount}}
"""


def add_orders(database_url: str, instance: Path) -> None:
    """Three accounts written with the shipped CRM: ACME with three orders (one part paid), Beta one, Gamma none."""
    platform = open_platform(Settings.from_env({}, database_url=database_url, instance_path=instance), shipped().md)
    migrate(platform.engine, platform.schema)
    records = platform.records
    widget = records.create("product", {"name": "Widget", "code": "W-1", "price": "10"})["id"]
    acme, beta, _ = (records.create("account", {"name": name})["id"] for name in ("ACME", "Beta", "Gamma"))

    def order(account: str, status: str, lines: list[tuple[int, int]], discount: int = 0) -> str:
        items = [{"product": widget, "quantity": q, "unit_price": p} for q, p in lines]
        values = {"account": account, "status": status, "order_discount": discount, "order_line": items}
        return records.create("sales_order", values, system=True)["id"]  # in its state, as the system seeds it

    first = order(acme, "approved", [(2, 50)])  # 100.00
    order(acme, "draft", [(1, 30)])  # 30.00
    order(acme, "shipped", [])  # 0
    order(beta, "approved", [(3, 10)], discount=10)  # 27.00
    records.create("payment", {"sales_order": first, "amount": 40, "status": "confirmed"}, system=True)
    platform.close()


def test_new_rollups_and_stored_formulas_are_computed_on_existing_rows(database_url, tmp_path):
    add_orders(database_url, tmp_path / "instance")
    (tmp_path / "site" / "object_defs").mkdir(parents=True)
    (tmp_path / "site" / "object_defs" / "figures.yaml").write_text(ORDER_FIGURES, encoding="utf-8")
    schema = shipped(tmp_path / "site")
    engine = create_engine(database_url)
    plan = migrate(engine, schema)
    assert plan.render().splitlines() == [
        "+ column account.order_count BIGINT",
        "+ column account.approved_total NUMERIC(20, 2)",
        "+ column account.open_total NUMERIC(20, 2)",
        "+ column account.average_order NUMERIC(18, 2)",
        "+ column sales_order.open_amount NUMERIC(18, 2)",
        "~ compute account.order_count (rollup count of sales_order) for 3 rows",
        '~ compute account.approved_total (rollup sum of sales_order.total_amount where status in ["approved", '
        '"shipped"]) for 3 rows',
        "~ compute sales_order.open_amount (stored formula) for 4 rows",
        "~ compute account.open_total (rollup sum of sales_order.open_amount) for 3 rows",
        "~ compute account.average_order (stored formula) for 3 rows",
        "* record 5 field definitions",
    ]
    assert plan.summary() == "migrated: 5 columns, 5 derived fields computed, 5 field definitions"
    account, order = schema["account"].table, schema["sales_order"].table
    figures = [
        account.c[n] for n in ("name", "order_total", "order_count", "approved_total", "open_total", "average_order")
    ]
    with engine.connect() as conn:
        accounts = [tuple(r) for r in conn.execute(sa.select(*figures).order_by(account.c.id))]
        orders = conn.execute(sa.select(order.c.open_amount).order_by(order.c.id)).scalars().all()
    assert accounts == [
        ("ACME", Decimal("130.00"), 3, Decimal("100.00"), Decimal("90.00"), Decimal("43.33")),
        ("Beta", Decimal("27.00"), 1, Decimal("27.00"), Decimal("27.00"), Decimal("27.00")),
        ("Gamma", Decimal("0.00"), 0, Decimal("0.00"), Decimal("0.00"), None),
    ]
    assert orders == [Decimal("60.00"), Decimal("30.00"), Decimal("0.00"), Decimal("27.00")]
    assert migrations(engine)[-1] == plan.render()
    assert migrate(engine, schema).render() == "nothing to do"
    engine.dispose()


def test_a_formula_the_database_cannot_compute_is_left_for_the_next_change(engine, tmp_path):
    before = gadgets(tmp_path / "a", "  weight: {type: number, label: {en: Weight}}\n")
    migrate(engine, before)
    with engine.begin() as conn:
        conn.execute(
            before["gadget"].table.insert(),
            [{"weight": w, "created_at": AT, "updated_at": AT} for w in (Decimal("5"), Decimal("12.5"))],
        )
    after = gadgets(
        tmp_path / "b",
        "  weight: {type: number, label: {en: Weight}}\n"
        "  rounded: {type: formula, expression: 'round(weight)', result_type: integer, stored: true, label: {en: R}}\n"
        "  doubled: {type: formula, expression: 'rounded * 2', result_type: integer, stored: true, label: {en: D}}\n"
        "  half: {type: formula, expression: 'weight / 2', result_type: integer, stored: true, label: {en: H}}\n"
        "  third: {type: formula, expression: 'weight / 3', result_type: number, stored: true, label: {en: T}}\n"
        "  heavy: {type: formula, expression: 'weight > 10', result_type: boolean, stored: true, label: {en: Y}}\n",
    )
    plan = migrate(engine, after)
    later = "is computed for existing rows on their next change"
    assert plan.render().splitlines() == [
        "+ column gadget.rounded BIGINT",
        "+ column gadget.doubled BIGINT",
        "+ column gadget.half BIGINT",
        "+ column gadget.third NUMERIC(18, 2)",
        "+ column gadget.heavy BOOLEAN",
        f"= gadget.rounded (stored formula) {later}: round() is not supported in database filters",
        f"= gadget.doubled (stored formula) {later}: it reads gadget.rounded, which this migration cannot compute",
        "~ compute gadget.half (stored formula) for 2 rows",
        "~ compute gadget.third (stored formula) for 2 rows",
        "~ compute gadget.heavy (stored formula) for 2 rows",
        "* record 5 field definitions",
    ]
    assert [type(op) for op in plan.ops[-5:]] == [ComputeLater, ComputeLater, ComputeField, ComputeField, ComputeField]
    table = after["gadget"].table
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.rounded, table.c.doubled, table.c.half, table.c.third, table.c.heavy).order_by(table.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [  # rounded half up
        (None, None, 3, Decimal("1.67"), False),
        (None, None, 6, Decimal("4.17"), True),
    ]
    written = [Formulas(after["gadget"].object).on_write({"weight": w}, AT) for w in (Decimal("5"), Decimal("12.5"))]
    assert [(r["rounded"], r["doubled"], r["half"], r["third"], r["heavy"]) for r in written] == [
        (5, 10, *rows[0][2:]),
        (13, 26, *rows[1][2:]),
    ]
    assert migrate(engine, after).render() == "nothing to do"


def gadgets_with_parts(folder: Path, fields: str, part_fields: str) -> Schema:
    """`gadget` with the given fields, and its `part`s (master_detail `gadget`, `weight`, then `part_fields`)."""
    write_gadgets(folder, fields)
    (folder / "object_defs" / "part.yaml").write_text(
        "kind: object\nname: part\nlabel: {en: Part}\nfields:\n"
        "  gadget: {type: master_detail, to: gadget, label: {en: Gadget}}\n"
        "  weight: {type: number, label: {en: Weight}}\n" + part_fields,
        encoding="utf-8",
    )
    return Schema(load_metadata([folder]))


def test_a_rollup_over_a_formula_left_for_later_waits_for_its_children(engine, tmp_path):
    size = "  size: {type: text, label: {en: Size}}\n"
    before = gadgets_with_parts(tmp_path / "a", size, "")
    migrate(engine, before)
    add_gadgets(engine, before, ["M"])
    with engine.begin() as conn:
        parts = [{"gadget": 1, "weight": w, "created_at": AT, "updated_at": AT} for w in (Decimal("1.5"), Decimal(2))]
        conn.execute(before["part"].table.insert(), parts)
    after = gadgets_with_parts(
        tmp_path / "b",
        size + "  part_count: {type: rollup, function: count, child: part, label: {en: Parts}}\n"
        "  part_weight: {type: rollup, function: sum, child: part, field: rounded, label: {en: Weight}}\n",
        "  rounded: {type: formula, expression: 'round(weight)', result_type: integer, stored: true, label: {en: R}}\n",
    )
    plan = migrate(engine, after)
    assert plan.render().splitlines() == [
        "+ column gadget.part_count BIGINT",
        "+ column gadget.part_weight NUMERIC(20, 2)",
        "+ column part.rounded BIGINT",
        "~ compute gadget.part_count (rollup count of part) for 1 row",
        "= part.rounded (stored formula) is computed for existing rows on their next change: "
        "round() is not supported in database filters",
        "= gadget.part_weight (rollup sum of part.rounded) is computed for existing rows on the next change of "
        "their part records: it reads part.rounded, which this migration cannot compute",
        "* record 3 field definitions",
    ]
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.text("SELECT part_count, part_weight FROM gadget")).one()) == (2, None)


@pytest.fixture(scope="module")
def fifty_objects(tmp_path_factory) -> Schema:
    """50 objects of 60 fields each (every sixth a picklist, each with a list view): the bench's size."""
    kinds = [
        "{type: text, label: {en: F}, max_length: 80}",
        "{type: integer, label: {en: F}}",
        "{type: currency, label: {en: F}}",
        "{type: date, label: {en: F}}",
        "{type: boolean, label: {en: F}, default: false}",
        "{type: picklist, label: {en: F}, options: [{value: a, label: {en: A}}, {value: b, label: {en: B}}]}",
    ]
    layer = tmp_path_factory.mktemp("fifty")
    (layer / "object_defs").mkdir()
    for n in range(50):
        lines = [f"kind: object\nname: thing{n}\nlabel: {{en: Thing {n}}}\nfields:"]
        lines += [f"  f{i}: {kinds[i % len(kinds)]}" for i in range(59)]
        lines.append(f"  parent: {{type: lookup, to: thing{max(n - 1, 0)}, label: {{en: Parent}}}}")
        lines.append("list_view: {columns: [f0, f1], filters: [f5, parent], sort: [-f3]}")
        (layer / "object_defs" / f"thing{n}.yaml").write_text("\n".join(lines) + "\n")
    return Schema(load_metadata([layer]))


def test_fifty_objects_of_sixty_fields_migrate_in_one_plan(engine, fifty_objects):
    plan = migrate(engine, fifty_objects)
    assert sum(isinstance(op, CreateTable) for op in plan.ops) == 69
    assert sum(isinstance(op, CreateIndex) for op in plan.ops) == 169  # 3 each: sort, parent, owner; the comments'
    assert plan.render().splitlines()[-1] == "* record 3000 field definitions"
    assert plan.summary() == "migrated: 69 tables, 169 indexes, 50 foreign keys, 3000 field definitions"
    again = migrate(engine, fifty_objects)
    assert (again.render(), again.summary()) == ("nothing to do", "nothing to do")


def test_a_placeholder_or_a_rollup_becoming_derived_is_computed_again_and_anything_typed_is_kept(engine, tmp_path):
    """A number field holding only 0 (a placeholder), or a rollup, may become a rollup or a stored formula: its values
    are computed again over the existing rows; a number someone typed is never overwritten."""
    before = gadgets_with_parts(
        tmp_path / "a",
        "  size: {type: text, label: {en: Size}}\n  held: {type: number, label: {en: Held}, default: 0}\n"
        "  total: {type: rollup, function: sum, child: part, field: weight, label: {en: Total}}\n",
        "")
    migrate(engine, before)
    add_gadgets(engine, before, ["M"])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE gadget SET held = 0"))
        parts = [{"gadget": 1, "weight": w, "created_at": AT, "updated_at": AT} for w in (Decimal("1.5"), Decimal(2))]
        conn.execute(before["part"].table.insert(), parts)
        conn.execute(sa.text("UPDATE gadget SET total = 3.5"))
    after = gadgets_with_parts(
        tmp_path / "b",
        "  size: {type: text, label: {en: Size}}\n"
        "  held: {type: rollup, function: sum, child: part, field: weight, label: {en: Held}}\n"
        "  total: {type: formula, expression: 'held * 2', result_type: number, stored: true, label: {en: Total}}\n",
        "")
    plan = migrate(engine, after)
    assert plan.render().splitlines() == [
        "~ column gadget.held NUMERIC(18, 2) -> NUMERIC(20, 2)",
        "~ column gadget.total NUMERIC(20, 2) -> NUMERIC(18, 2)",
        "~ compute gadget.held (rollup sum of part.weight) for 1 row",
        "~ compute gadget.total (stored formula) for 1 row",
        "* record 2 field definitions",
    ]
    with engine.connect() as conn:
        held, total = conn.execute(sa.text("SELECT held, total FROM gadget")).one()
    assert (Decimal(str(held)), Decimal(str(total))) == (Decimal("3.5"), Decimal("7"))

    typed = gadgets_with_parts(tmp_path / "c", "  size: {type: text, label: {en: Size}}\n"
                               "  kept: {type: number, label: {en: Kept}}\n", "")
    migrate(engine, typed)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE gadget SET kept = 4"))
    derived = gadgets_with_parts(tmp_path / "d", "  size: {type: text, label: {en: Size}}\n"
                                 "  kept: {type: rollup, function: count, child: part, label: {en: Kept}}\n", "")
    with pytest.raises(MigrationRefused) as refused:
        migrate(engine, derived)
    assert refused.value.refusals == (
        f"{tmp_path}/d/object_defs/gadget.yaml:6: gadget.kept was number, now rollup: {TYPE_CHANGE}",)
