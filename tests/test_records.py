"""The records service on both databases: validation, writes, rollups, auto numbers, history, imports."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from support import crm_metadata

from objectplatform.runtime.errors import Conflict, NotFound, ValidationFailed
from objectplatform.runtime.records import BulkResult, RowError
from objectplatform.translations import message_text

SITE_LAYER = """\
kind: object_extension
object: lead
fields:
  external_id: {type: text, unique: true, max_length: 40, label: {zh: 外部编号, en: External id}}
"""


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    """The shipped CRM plus a site layer giving leads a unique field."""
    return crm_metadata(tmp_path_factory.mktemp("site"), {"object_defs/lead_ext.yaml": SITE_LAYER})


@pytest.fixture
def wang(records):
    return records.create("user", {"username": "wang", "display_name": "王伟"}, system=True)["id"]


@pytest.fixture
def acme(records, wang):
    return records.create("account", {"name": "ACME 科技"}, user=wang)["id"]


@pytest.fixture
def widget(records):
    return records.create("product", {"name": "Widget", "code": "W-1", "price": "10.50"})["id"]


def approved_order(records, acme, total: str) -> dict:
    """An order of one line worth `total`, approved (as its flow would): payments are made against it."""
    product = records.create("product", {"name": "Service", "price": total})["id"]
    order = records.create("sales_order", {"account": acme, "order_line": [
        {"product": product, "quantity": 1, "unit_price": total}]})
    return records.update("sales_order", order["id"], {"status": "approved"}, version=None, system=True)


def count(platform, obj: str) -> int:
    with platform.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(platform.schema[obj].table)).scalar_one()


def period() -> str:
    """This month in the site's time zone (Asia/Shanghai), as auto numbers date themselves."""
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m")


def history_rows(records, obj, id_):
    return [(h["change"], h["field"], h["old"], h["new"], h["user"]) for h in records.history(obj, id_)]


# ------------------------------------------------------------------------------ create, get, update


def test_create_sets_defaults_system_fields_and_history(records, wang):
    lead = records.create("lead", {"name": " 李娜 ", "phone": "13800000001", "source": "expo"}, user=wang)
    assert lead["name"] == "李娜"
    assert lead["status"] == "pending"  # the field's default
    assert (lead["owner"], lead["created_by"], lead["updated_by"], lead["version"]) == (wang, wang, wang, 1)
    assert lead["created_at"] == lead["updated_at"] and lead["created_at"].tzinfo is UTC
    assert records.get("lead", lead["id"]) == lead
    assert history_rows(records, "lead", lead["id"]) == [
        ("create", "name", None, "李娜", wang),
        ("create", "phone", None, "13800000001", wang),
        ("create", "source", None, "expo", wang),
        ("create", "status", None, "pending", wang),
    ]


def test_owner_can_be_given(records, wang):
    other = records.create("user", {"username": "li", "display_name": "李"}, system=True)["id"]
    lead = records.create("lead", {"name": "A", "email": "a@example.com", "owner": other}, user=wang)
    assert (lead["owner"], lead["created_by"]) == (other, wang)


@pytest.mark.parametrize("bad_id", ["999", "abc", "-1", "1.5", "", "99999999999999999999"])
def test_get_unknown_ids_are_not_found(records, bad_id):
    with pytest.raises(NotFound) as e:
        records.get("lead", bad_id)
    assert e.value.message == f"no lead with id {bad_id}"


def test_unknown_object_is_not_found(records):
    with pytest.raises(NotFound) as e:
        records.get("nothing", "1")
    assert e.value.message == "unknown object nothing"


def test_update_changes_fields_bumps_version_and_logs_real_changes(records, wang):
    lead = records.create("lead", {"name": "A", "email": "a@example.com", "company": "X"}, user=wang)
    updated = records.update("lead", lead["id"], {"company": "Y", "name": "A", "source": "expo"},
                             version=1, user=wang)
    assert (updated["company"], updated["source"], updated["version"]) == ("Y", "expo", 2)
    assert updated["created_at"] == lead["created_at"] and updated["updated_at"] > lead["updated_at"]
    assert history_rows(records, "lead", lead["id"])[-2:] == [
        ("update", "company", "X", "Y", wang),
        ("update", "source", None, "expo", wang),
    ]


def test_update_without_a_change_keeps_the_version(records, wang):
    lead = records.create("lead", {"name": "A", "email": "a@example.com"}, user=wang)
    assert records.update("lead", lead["id"], {"name": "A"}, version=1)["version"] == 1
    assert len(records.history("lead", lead["id"])) == 3


def test_stale_version_is_a_conflict(records, wang):
    lead = records.create("lead", {"name": "A", "email": "a@example.com"}, user=wang)
    changed = records.update("lead", lead["id"], {"company": "Y"}, version=1, user=wang)
    with pytest.raises(Conflict) as e:
        records.update("lead", lead["id"], {"company": "Z"}, version=1)
    at = changed["updated_at"].isoformat(timespec="seconds")
    assert e.value.message == (f"Lead {lead['id']} was changed by 王伟 at {at}; reload it "
                               "(your version 1, current 2)")
    assert e.value.as_dict()["error"]["params"] == {"object": "lead", "id": lead["id"], "by": wang, "at": at,
                                                     "version": 1, "current": 2}
    assert message_text(e.value.message, "zh") == (
        f"销售线索 {lead['id']} 已被 王伟 于 {at} 修改，请重新加载（您的版本 1，当前版本 2）")
    assert records.get("lead", lead["id"])["company"] == "Y"


def test_version_is_required_unless_system(records, wang):
    lead = records.create("lead", {"name": "A", "email": "a@example.com"}, user=wang)
    with pytest.raises(ValidationFailed) as e:
        records.update("lead", lead["id"], {"company": "Y"}, version=None)
    assert e.value.fields == {"version": ["required"]}
    assert records.update("lead", lead["id"], {"last_followed_at": "2026-03-01T08:00:00+08:00"}, version=None,
                          system=True)["last_followed_at"] == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def test_update_of_a_missing_record_is_not_found(records):
    with pytest.raises(NotFound) as e:
        records.update("lead", "77", {"company": "Y"}, version=1)
    assert e.value.message == "no lead with id 77"


def test_update_validates_merged_record(records, wang):
    lead = records.create("lead", {"name": "A", "email": "a@example.com"}, user=wang)
    with pytest.raises(ValidationFailed) as e:
        records.update("lead", lead["id"], {"email": "", "campaign": "5"}, version=1)
    assert e.value.fields == {"campaign": ["no campaign with id 5"],
                              "phone": ["Give a phone number, a mobile number or an email"]}
    assert records.get("lead", lead["id"])["version"] == 1


def test_delete_logs_and_removes(records, wang):
    lead = records.create("lead", {"name": "A", "email": "a@example.com"}, user=wang)
    records.delete("lead", lead["id"], user=wang)
    with pytest.raises(NotFound):
        records.get("lead", lead["id"])
    change, field, old, new, user = history_rows(records, "lead", lead["id"])[-1]
    assert (change, field, new, user) == ("delete", None, None, wang)
    assert (old["name"], old["email"], old["version"]) == ("A", "a@example.com", 1)
    with pytest.raises(NotFound) as e:
        records.delete("lead", lead["id"])
    assert e.value.message == f"no lead with id {lead['id']}"


# ---------------------------------------------------------------------------------- validation


def test_every_error_comes_back_at_once_and_nothing_is_written(platform, records, wang):
    records.create("lead", {"name": "A", "email": "a@example.com", "external_id": "EXT-1"}, user=wang)
    with pytest.raises(ValidationFailed) as e:
        records.create("lead", {
            "name": "x" * 101, "email": "not-an-email", "source": "radio", "wechat_id": "w",
            "campaign": "42", "pool": 7, "external_id": "EXT-1", "converted_at": "2026-01-01T00:00:00Z",
            "order_no": "SO-1",
        }, user=wang)
    assert e.value.fields == {
        "name": ["must be at most 100 characters"],
        "email": ["not a valid email address"],
        "source": ["'radio' is not one of: referral, promotion, campaign, telemarketing, website, expo, "
                   "business_card, other"],
        "wechat_id": ["unknown field (did you mean 'wechat'?)"],
        "converted_at": ["is read-only"],
        "order_no": ["unknown field"],
        "campaign": ["no campaign with id 42"],
        "pool": ["no lead pool with id 7"],
        "external_id": ["already used by another lead"],
    }
    assert count(platform, "lead") == 1


def test_rules_are_checked_with_the_field_errors(records):
    with pytest.raises(ValidationFailed) as e:
        records.create("campaign", {"name": "", "start_date": "2026-05-10", "end_date": "2026-05-01",
                                    "budget": "-1"})
    assert e.value.fields == {
        "name": ["is required"],
        "budget": ["must be at least 0"],
        "end_date": ["The end date cannot be before the start date"],
    }


def test_references_to_missing_users_and_departments(records, wang):
    with pytest.raises(ValidationFailed) as e:
        records.create("lead_pool", {"name": "华东", "admins": [wang, "98"], "member_departments": "5,6",
                                     "default_assignee": 99})
    assert e.value.fields == {
        "admins": ["no user with id 98"],
        "member_departments": ["no department with id 5", "no department with id 6"],
        "default_assignee": ["no user with id 99"],
    }


def test_unique_clash_on_create_and_update(records):
    first = records.create("product", {"name": "A", "code": "P-1", "price": 1})
    second = records.create("product", {"name": "B", "code": "P-2", "price": 1})
    with pytest.raises(ValidationFailed) as e:
        records.create("product", {"name": "C", "code": "P-1", "price": 1})
    assert e.value.fields == {"code": ["already used by another product"]}
    with pytest.raises(ValidationFailed) as e:
        records.update("product", second["id"], {"code": "P-1"}, version=1)
    assert e.value.fields == {"code": ["already used by another product"]}
    assert records.update("product", first["id"], {"code": "P-1", "price": 2}, version=1)["price"] == Decimal("2")


# -------------------------------------------------------------------------------- auto numbers


def test_auto_numbers_count_up_gap_free(records, acme):
    first = records.create("sales_order", {"account": acme})
    assert first["order_no"] == f"SO-{period()}-0001"
    with pytest.raises(RuntimeError), records.transaction() as conn:
        rolled_back = records.create("sales_order", {"account": acme}, conn=conn)
        assert rolled_back["order_no"] == f"SO-{period()}-0002"
        raise RuntimeError("the caller's transaction fails")
    with pytest.raises(ValidationFailed):
        records.create("sales_order", {"account": "404"})
    assert records.create("sales_order", {"account": acme})["order_no"] == f"SO-{period()}-0002"
    payable = approved_order(records, acme, "1")
    assert records.create("payment", {"sales_order": payable["id"], "amount": 1})["payment_no"] == f"PM-{period()}-0001"


# ------------------------------------------------------------------------- lines and rollups


def order_with_lines(records, acme, widget, user=None):
    return records.create("sales_order", {
        "account": acme, "order_discount": "10",
        "order_line": [
            {"product": widget, "quantity": 3, "unit_price": "10.50", "discount": 10},
            {"product": widget, "quantity": 1, "unit_price": 100},
        ]}, user=user)


def test_order_with_inline_lines_rolls_up(records, acme, widget, wang):
    order = order_with_lines(records, acme, widget, user=wang)
    assert [(line["sales_order"], line["subtotal"]) for line in order["order_line"]] == [
        (order["id"], Decimal("28.35")), (order["id"], Decimal("100.00"))]
    assert order["lines_amount"] == Decimal("128.35")
    assert order["total_amount"] == Decimal("115.52")  # 128.35 less 10%, rounded half up
    assert (order["paid_amount"], order["invoiced_amount"], order["version"]) == (0, 0, 1)
    assert records.get("account", acme)["order_total"] == Decimal("115.52")
    assert ("create", "sales_order", None, order["id"], wang) in history_rows(
        records, "order_line", order["order_line"][1]["id"])


def test_inline_line_errors_name_the_line(platform, records, acme, widget):
    with pytest.raises(ValidationFailed) as e:
        records.create("sales_order", {"account": acme, "order_discount": 120, "order_line": [
            {"product": widget, "quantity": 1, "unit_price": 5},
            {"product": "31", "quantity": "many", "unit_price": 5, "color": "red"},
        ]})
    assert e.value.fields == {
        "order_discount": ["must be between 0 and 100"],
        "order_line[1].quantity": ["must be a number"],
        "order_line[1].color": ["unknown field"],
        "order_line[1].product": ["no product with id 31"],
    }
    assert (count(platform, "sales_order"), count(platform, "order_line")) == (0, 0)


def test_totals_follow_line_and_discount_changes(records, acme, widget):
    order = order_with_lines(records, acme, widget)
    first, second = order["order_line"]
    records.update("order_line", first["id"], {"quantity": 2}, version=1)
    assert records.get("sales_order", order["id"])["lines_amount"] == Decimal("118.90")
    updated = records.update("sales_order", order["id"], {"order_discount": 0}, version=1)
    assert (updated["lines_amount"], updated["total_amount"], updated["version"]) == (
        Decimal("118.90"), Decimal("118.90"), 2)
    assert records.get("account", acme)["order_total"] == Decimal("118.90")
    # an inline list replaces the lines: kept and changed, new, and missing ones deleted
    updated = records.update("sales_order", order["id"], {"order_line": [
        {"id": second["id"], "quantity": 2},
        {"product": widget, "quantity": 4, "unit_price": "2.50"},
    ]}, version=2)
    assert [(line["id"] == second["id"], line["subtotal"]) for line in updated["order_line"]] == [
        (True, Decimal("200.00")), (False, Decimal("10.00"))]
    assert (updated["lines_amount"], updated["total_amount"], updated["version"]) == (
        Decimal("210.00"), Decimal("210.00"), 2)  # a rollup refresh does not bump the version
    assert records.get("account", acme)["order_total"] == Decimal("210.00")
    with pytest.raises(NotFound):
        records.get("order_line", first["id"])


def test_inline_line_of_another_order_is_refused(records, acme, widget):
    order = order_with_lines(records, acme, widget)
    other = order_with_lines(records, acme, widget)
    with pytest.raises(ValidationFailed) as e:
        records.update("sales_order", order["id"], {"order_line": [{"id": other["order_line"][0]["id"]}]},
                       version=1)
    assert e.value.fields == {"order_line[0].id": [f"no order line with id {other['order_line'][0]['id']} "
                                                   "in this sales order"]}


def test_moving_a_line_refreshes_both_orders(records, acme, widget):
    order = order_with_lines(records, acme, widget)
    other = records.create("sales_order", {"account": acme})
    records.update("order_line", order["order_line"][1]["id"], {"sales_order": other["id"]}, version=1)
    assert records.get("sales_order", order["id"])["lines_amount"] == Decimal("28.35")
    assert records.get("sales_order", other["id"])["total_amount"] == Decimal("100.00")
    assert records.get("account", acme)["order_total"] == Decimal("125.52")  # 25.52 + 100.00


def test_delete_order_deletes_lines_and_refreshes_account(platform, records, acme, widget, wang):
    order = order_with_lines(records, acme, widget)
    records.delete("sales_order", order["id"], user=wang)
    assert count(platform, "order_line") == 0
    assert records.get("account", acme)["order_total"] == Decimal("0")
    assert history_rows(records, "order_line", order["order_line"][0]["id"])[-1][:2] == ("delete", None)


def test_deleting_a_line_refreshes_the_order(records, acme, widget):
    order = order_with_lines(records, acme, widget)
    records.delete("order_line", order["order_line"][0]["id"])
    assert records.get("sales_order", order["id"])["lines_amount"] == Decimal("100.00")


def test_paid_amount_counts_confirmed_payments_only(records, acme):
    order = approved_order(records, acme, "2000")
    pending = records.create("payment", {"sales_order": order["id"], "amount": "300"})
    # confirmed as the confirm_payment transition writes it (test_lifecycles runs the transition)
    records.create("payment", {"sales_order": order["id"], "amount": "1000.50", "status": "confirmed"}, system=True)
    assert records.get("sales_order", order["id"])["paid_amount"] == Decimal("1000.50")
    records.update("payment", pending["id"], {"status": "confirmed"}, version=1, system=True)
    assert records.get("sales_order", order["id"])["paid_amount"] == Decimal("1300.50")
    records.delete("payment", pending["id"])
    assert records.get("sales_order", order["id"])["paid_amount"] == Decimal("1000.50")


def test_counts_and_sums_over_lookups(records, acme):
    records.create("opportunity", {"name": "A", "account": acme, "amount": 1000, "probability": 30})
    won = records.create("opportunity", {"name": "B", "account": acme, "amount": 5000, "status": "won"}, system=True)
    assert won["weighted_amount"] is None  # amount * unknown probability
    account = records.get("account", acme)
    assert (account["opportunity_count"], account["won_amount"]) == (2, Decimal("5000.00"))


# ------------------------------------------------------------------------------ attachments


def test_attachment_upload_is_saved_under_the_instance(platform, records, acme):
    order = approved_order(records, acme, "1")
    payment = records.create("payment", {"sales_order": order["id"], "amount": 1, "receipt": {
        "filename": "../回单.pdf", "content_base64": base64.b64encode(b"%PDF-1.4 receipt").decode()}})
    receipt = payment["receipt"]
    assert (receipt["name"], receipt["size"], receipt["content_type"]) == ("回单.pdf", 16, "application/pdf")
    assert receipt["path"].startswith("payment/") and receipt["path"].endswith("/回单.pdf")
    assert (platform.settings.attachments_path / receipt["path"]).read_bytes() == b"%PDF-1.4 receipt"


# -------------------------------------------------------------------------------- list, history


def test_list_delegates_to_the_query(records, wang):
    for name in ("A", "B", "C"):
        records.create("lead", {"name": name, "email": f"{name}@example.com"}, user=wang)
    page = records.list("lead", sort="name", limit=2)
    assert ([lead["name"] for lead in page.items], page.total) == (["A", "B"], 3)
    assert [lead["name"] for lead in records.list("lead", sort="name", cursor=page.next_cursor).items] == ["C"]
    assert records.list("lead", sort="name", limit=2, count=False).total is None


def test_reads_do_not_wait_for_a_writer(platform, records, wang):
    """On SQLite a writer holds the write lock for its whole transaction; readers must not queue behind it."""
    with records.transaction() as conn:
        created = records.create("lead", {"name": "A", "email": "a@example.com"}, user=wang, conn=conn)
        assert records.get("user", wang)["username"] == "wang"  # a second connection, while the writer is open
        assert records.list("lead").total == 0  # the uncommitted lead is not visible to it
    assert records.get("lead", created["id"])["name"] == "A"


def test_operations_share_a_caller_transaction(platform, records, wang):
    with pytest.raises(RuntimeError), records.transaction() as conn:
        records.create("lead", {"name": "A", "email": "a@example.com"}, user=wang, conn=conn)
        assert records.list("lead", conn=conn).total == 1
        raise RuntimeError("rolled back")
    assert count(platform, "lead") == 0


# ------------------------------------------------------------------------------------ imports


def test_create_many_reports_bad_rows_and_keeps_good_ones(platform, records, wang):
    campaign = records.create("campaign", {"name": "展会"})["id"]
    rows = [
        {"name": "A", "email": "a@example.com", "campaign": campaign, "external_id": "E1"},
        {"name": "", "email": "b@example.com"},
        {"name": "C", "phone": "13800000003", "campaign": "999"},
        {"name": "D", "email": "d@example.com", "external_id": "E1"},
        {"name": "E"},
        {"name": "F", "email": "f@example.com", "campaign": campaign, "status": "converted"},
        {"name": "G", "mobile": "13800000007", "size": "big"},
    ]
    seen = []
    result = records.create_many("lead", rows, user=wang, batch_size=3, total=len(rows),
                                 progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert len(result.created) == 1
    assert result.errors == [
        RowError(1, {"name": ["is required"]}),
        RowError(2, {"campaign": ["no campaign with id 999"]}),
        RowError(3, {"external_id": ["already used by another lead"]}),
        RowError(4, {"phone": ["Give a phone number, a mobile number or an email"]}),
        RowError(5, {"status": ["a new lead starts as Unassigned, Pending; Converted is reached by "
                                "Convert"]}),
        RowError(6, {"size": ["unknown field"]}),
    ]
    leads = [records.get("lead", id_) for id_ in result.created]
    assert [(lead["name"], lead["status"], lead["owner"]) for lead in leads] == [("A", "pending", wang)]
    campaign_record = records.get("campaign", campaign)
    assert (campaign_record["lead_count"], campaign_record["converted_lead_count"]) == (1, 0)
    assert history_rows(records, "lead", result.created[0]) == [("create", None, None, None, wang)]


def test_create_many_duplicates_within_an_import(records):
    result = records.create_many("product", [
        {"name": "A", "code": "X", "price": 1}, {"name": "B", "code": "X", "price": 1},
        {"name": "C", "code": "Y", "price": 1}], batch_size=10)
    assert (len(result.created), result.errors) == (2, [RowError(1, {"code": ["already used by another product"]})])


def test_create_many_all_or_nothing(platform, records, acme):
    rows = [{"account": acme, "order_discount": 5}] * 4 + [{"account": acme, "order_discount": 500}]
    result = records.create_many("sales_order", rows, all_or_nothing=True, batch_size=2)
    assert result == BulkResult([], [RowError(4, {"order_discount": ["must be between 0 and 100"]})])
    assert count(platform, "sales_order") == 0
    result = records.create_many("sales_order", rows[:4], all_or_nothing=True, batch_size=3)
    assert (len(result.created), result.errors) == (4, [])
    numbers = [records.get("sales_order", id_)["order_no"] for id_ in result.created]
    assert numbers == [f"SO-{period()}-{n:04d}" for n in (1, 2, 3, 4)]  # the rolled-back import left no gap


def test_create_many_lines_roll_up_into_orders_and_accounts(records, acme, widget):
    order = records.create("sales_order", {"account": acme, "order_discount": 50})
    result = records.create_many("order_line", [
        {"sales_order": order["id"], "product": widget, "quantity": n, "unit_price": 10} for n in (1, 2, 3)])
    assert len(result.created) == 3
    assert records.get("sales_order", order["id"])["total_amount"] == Decimal("30.00")
    assert records.get("account", acme)["order_total"] == Decimal("30.00")
