"""The follow_ups behavior on both databases: a follow-up keeps its lead's status and last follow-up time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import lead as api_lead
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401

from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.records import RowError

MARCH_1 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 2026-03-01 09:00 in China
MARCH_5 = datetime(2026, 3, 5, 6, 30, tzinfo=UTC)


@pytest.fixture
def wang(records):
    return records.create("user", {"username": "wang", "display_name": "王伟"}, system=True)["id"]


@pytest.fixture
def lead(records, wang):
    return records.create("lead", {"name": "李雷", "company": "韩梅梅贸易", "mobile": "13800000001"}, user=wang)


def follow_up(records, user, related_object, related_id, followed_at=None, **more):
    values = {"kind": "call", "content": "电话沟通需求", "related_object": related_object,
              "related_id": related_id, **more}
    if followed_at is not None:
        values["followed_at"] = followed_at
    return records.create("follow_up", values, user=user)


def updates(records, obj, id):
    """The record's update entries as (field, old, new)."""
    return [(e["field"], e["old"], e["new"]) for e in records.history(obj, id) if e["change"] == "update"]


def count(platform, obj):
    with platform.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(platform.schema[obj].table)).scalar_one()


def test_the_first_follow_up_moves_a_pending_lead_to_following(records, wang, lead):
    assert (lead["status"], lead["last_followed_at"], lead["version"]) == ("pending", None, 1)
    made = follow_up(records, wang, "lead", lead["id"], "2026-03-01T09:00:00+08:00")
    assert (made["related_object"], made["related_id"], made["followed_at"]) == ("lead", lead["id"], MARCH_1)
    after = records.get("lead", lead["id"])
    assert (after["status"], after["last_followed_at"], after["version"], after["updated_by"]) == (
        "following", MARCH_1, 2, wang)
    assert updates(records, "lead", lead["id"]) == [
        ("last_followed_at", None, "2026-03-01T01:00:00+00:00"), ("status", "pending", "following")]


def test_a_later_follow_up_moves_the_time_and_an_older_one_does_not(records, wang, lead):
    follow_up(records, wang, "lead", lead["id"], "2026-03-01T09:00:00+08:00")
    follow_up(records, wang, "lead", lead["id"], "2026-03-05T06:30:00Z")
    after = records.get("lead", lead["id"])
    assert (after["status"], after["last_followed_at"], after["version"]) == ("following", MARCH_5, 3)
    follow_up(records, wang, "lead", lead["id"], "2026-03-03T00:00:00Z")  # entered late, happened earlier
    after = records.get("lead", lead["id"])
    assert (after["status"], after["last_followed_at"], after["version"]) == ("following", MARCH_5, 3)
    assert updates(records, "lead", lead["id"]) == [
        ("last_followed_at", None, "2026-03-01T01:00:00+00:00"), ("status", "pending", "following"),
        ("last_followed_at", "2026-03-01T01:00:00+00:00", "2026-03-05T06:30:00+00:00")]


def test_an_older_follow_up_still_moves_a_pending_lead(records, wang, lead):
    """A lead returned and claimed again is pending with an earlier follow-up time: the status moves, the time stays."""
    follow_up(records, wang, "lead", lead["id"], "2026-03-05T06:30:00Z")
    records.update("lead", lead["id"], {"status": "pending"}, version=None, system=True)
    follow_up(records, wang, "lead", lead["id"], "2026-03-01T01:00:00+00:00")
    after = records.get("lead", lead["id"])
    assert (after["status"], after["last_followed_at"], after["version"]) == ("following", MARCH_5, 4)


def test_an_empty_followed_at_is_the_time_of_saving(records, wang, lead):
    made = follow_up(records, wang, "lead", lead["id"])
    assert made["followed_at"] == made["created_at"]
    after = records.get("lead", lead["id"])
    assert (after["status"], after["last_followed_at"]) == ("following", made["created_at"])


def test_accounts_keep_their_last_follow_up_time_and_objects_without_the_behavior_do_not_change(
        platform, records, wang):
    account = records.create("account", {"name": "ACME 科技"}, user=wang)
    follow_up(records, wang, "account", account["id"], "2026-03-01T01:00:00+00:00")
    after = records.get("account", account["id"])
    assert (after["last_followed_at"], after["version"]) == (MARCH_1, 2)
    assert updates(records, "account", account["id"]) == [("last_followed_at", None, "2026-03-01T01:00:00+00:00")]
    assert "follow_ups" not in platform.metadata.objects["product"].behaviors
    product = records.create("product", {"name": "Widget", "code": "W-1", "price": "10.50"})
    made = follow_up(records, wang, "product", product["id"], "2026-03-01T01:00:00+00:00")
    assert made["related_id"] == product["id"]
    assert records.get("product", product["id"])["version"] == 1


def test_a_missing_related_record_is_an_error_on_related_id(platform, records, wang, lead):
    with pytest.raises(ValidationFailed) as e:
        follow_up(records, wang, "lead", "999999")
    assert e.value.fields == {"related_id": ["no lead with id 999999"]}
    with pytest.raises(ValidationFailed) as e:
        follow_up(records, wang, "lead", "abc", content="")
    assert e.value.fields == {"content": ["is required"], "related_id": ["no lead with id abc"]}
    assert count(platform, "follow_up") == 0
    assert records.get("lead", lead["id"])["version"] == 1


def test_an_unknown_related_object_is_an_error_naming_the_known_ones(platform, records, wang):
    known = sorted(set(platform.metadata.objects) - {"follow_up"})
    assert {"account", "contact", "lead", "opportunity"} <= set(known)
    with pytest.raises(ValidationFailed) as e:
        follow_up(records, wang, "leed", "1")
    assert e.value.fields == {"related_object": [f"unknown object leed; one of {', '.join(known)}"]}
    assert count(platform, "follow_up") == 0


def test_a_related_id_is_kept_in_its_plain_form(records, wang, lead):
    made = follow_up(records, wang, "lead", f"00{lead['id']}", "2026-03-01T01:00:00+00:00")
    assert made["related_id"] == lead["id"]
    assert records.get("lead", lead["id"])["status"] == "following"


def test_a_failure_after_the_lead_changed_rolls_back_both(platform, records, wang, lead):
    def fail(ctx):
        raise RuntimeError("the disk is full")

    with platform.registry.hooked("after_create", fail, applies=lambda obj: obj.name == "follow_up"), \
            pytest.raises(RuntimeError, match="the disk is full"):
        follow_up(records, wang, "lead", lead["id"], "2026-03-01T01:00:00+00:00")
    assert count(platform, "follow_up") == 0
    after = records.get("lead", lead["id"])
    assert (after["status"], after["last_followed_at"], after["version"]) == ("pending", None, 1)
    assert updates(records, "lead", lead["id"]) == []


def test_one_transaction_for_the_follow_up_and_the_caller(platform, records, wang, lead):
    """A caller's transaction that fails after the follow-up takes the lead's change back too."""
    with pytest.raises(LookupError), records.transaction() as conn:
        records.create("follow_up", {"kind": "visit", "content": "上门拜访", "related_object": "lead",
                                     "related_id": lead["id"]}, user=wang, conn=conn)
        assert records.get("lead", lead["id"], conn=conn)["status"] == "following"
        raise LookupError("the caller's next step failed")
    assert records.get("lead", lead["id"])["status"] == "pending"


def test_deleting_a_follow_up_leaves_the_lead_as_it_is(records, wang, lead):
    made = follow_up(records, wang, "lead", lead["id"], "2026-03-01T01:00:00+00:00")
    records.delete("follow_up", made["id"], user=wang)
    after = records.get("lead", lead["id"])
    assert (after["status"], after["last_followed_at"], after["version"]) == ("following", MARCH_1, 2)


def test_an_import_of_follow_ups_updates_each_lead_once_with_its_latest_time(platform, records, wang):
    leads = [records.create("lead", {"name": f"线索{i}", "mobile": f"1380000000{i}"}, user=wang)["id"]
             for i in range(3)]
    a, b, c = leads
    records.update("lead", b, {"status": "following", "last_followed_at": "2026-03-09T00:00:00Z"},
                   version=None, system=True)
    def row(content, related_id, followed_at=None, related_object="lead"):
        values = {"kind": "call", "content": content, "related_object": related_object, "related_id": related_id}
        return values | ({"followed_at": followed_at} if followed_at else {})

    rows = [row("一", a, "2026-03-01T01:00:00Z"), row("二", a, "2026-03-05T06:30:00Z"),
            row("三", a, "2026-03-02T00:00:00Z"), row("四", b, "2026-03-05T06:30:00Z"),
            row("五", "999999"), row("六", a, related_object="nope")]
    lead_table = platform.schema["lead"].table.name
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE") and lead_table in statement.split("SET")[0]:
            statements.append(statement)

    sa.event.listen(platform.engine, "before_cursor_execute", seen)
    try:
        result = records.create_many("follow_up", rows, user=wang)
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", seen)
    assert len(result.created) == 4
    known = sorted(set(platform.metadata.objects) - {"follow_up"})
    assert result.errors == [RowError(4, {"related_id": ["no lead with id 999999"]}),
                             RowError(5, {"related_object": [f"unknown object nope; one of {', '.join(known)}"]})]
    assert len(statements) == 1  # one UPDATE for every lead of the batch
    got = {id: records.get("lead", id) for id in leads}
    assert (got[a]["status"], got[a]["last_followed_at"], got[a]["version"]) == ("following", MARCH_5, 2)
    assert updates(records, "lead", a) == [
        ("last_followed_at", None, "2026-03-05T06:30:00+00:00"), ("status", "pending", "following")]
    later = datetime(2026, 3, 9, tzinfo=UTC)
    assert (got[b]["status"], got[b]["last_followed_at"], got[b]["version"]) == ("following", later, 2)
    assert (got[c]["status"], got[c]["last_followed_at"], got[c]["version"]) == ("pending", None, 1)
    imported = records.list("follow_up", filters={"related_id": a}, sort="followed_at").items
    assert [f["content"] for f in imported] == ["一", "三", "二"]


def test_an_all_or_nothing_import_with_a_bad_row_changes_no_lead(platform, records, wang, lead):
    rows = [{"kind": "call", "content": "一", "related_object": "lead", "related_id": lead["id"]},
            {"kind": "call", "content": "二", "related_object": "lead", "related_id": "999999"}]
    result = records.create_many("follow_up", rows, user=wang, all_or_nothing=True)
    assert (result.created, result.errors) == ([], [RowError(1, {"related_id": ["no lead with id 999999"]})])
    assert count(platform, "follow_up") == 0
    assert records.get("lead", lead["id"])["version"] == 1


def test_moving_a_follow_up_checks_the_new_record_and_changes_no_lead(records, wang, lead):
    made = follow_up(records, wang, "lead", lead["id"], "2026-03-01T01:00:00+00:00")
    other = records.create("lead", {"name": "韩梅梅", "mobile": "13900000002"}, user=wang)
    with pytest.raises(ValidationFailed) as e:
        records.update("follow_up", made["id"], {"related_id": "999999"}, version=1, user=wang)
    assert e.value.fields == {"related_id": ["no lead with id 999999"]}
    moved = records.update("follow_up", made["id"], {"related_id": other["id"], "content": "改为韩梅梅"},
                           version=1, user=wang)
    assert (moved["related_id"], moved["followed_at"]) == (other["id"], MARCH_1)
    assert (records.get("lead", other["id"])["status"], records.get("lead", lead["id"])["version"]) == ("pending", 2)


def test_through_the_api_a_rep_follows_up_only_leads_in_their_scope(api, people):
    mine, theirs = api_lead(api, "rep1", name="我的"), api_lead(api, "rep2", name="别人的")
    body = {"kind": "call", "content": "电话沟通", "related_object": "lead", "followed_at": "2026-03-01T09:00:00+08:00"}
    status, made = api.post("/objects/follow_up/records", "rep1", body | {"related_id": mine["id"]})
    assert (status, made["related_id"], made["followed_at"]) == (201, mine["id"], "2026-03-01T01:00:00+00:00")
    status, got = api.get(f"/objects/lead/records/{mine['id']}", "rep1")
    assert (got["status"], got["last_followed_at"], got["version"]) == ("following", "2026-03-01T01:00:00+00:00", 2)
    assert api.post("/objects/follow_up/records", "rep1", body | {"related_id": theirs["id"]}) == (
        422, {"error": {"code": "validation_failed", "message": "1 field error",
                        "fields": {"related_id": [f"no lead with id {theirs['id']}"]}}})
    assert api.get(f"/objects/lead/records/{theirs['id']}", "rep2")[1]["version"] == 1
