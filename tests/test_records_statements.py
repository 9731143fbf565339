"""The records service builds its per-object statements once and reuses them (issue 20): the same statement
object serves every call, and gives the same answers as one built per call did, on both databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from objectplatform.runtime.errors import NotFound, ValidationFailed


def test_a_record_is_read_by_the_one_statement_of_its_object(platform, records):
    lead = platform.schema["lead"]
    statement = lead.by_id
    made = records.create("lead", {"name": "王一", "company": "甲公司", "email": "l1@example.com"})
    assert records.get("lead", made["id"])["name"] == "王一"
    assert lead.by_id is statement
    table = lead.table
    assert records.get("lead", made["id"], where=table.c.company == "甲公司")["id"] == made["id"]
    with pytest.raises(NotFound):
        records.get("lead", made["id"], where=table.c.company == "乙公司")  # the condition still applies


def test_references_are_checked_by_one_statement_built_once_for_their_targets(platform, records):
    """A lead naming a campaign and an owner: both looked up in one query, the same statement object every time."""
    wang = records.create("user", {"username": "wang", "display_name": "王伟"}, system=True)["id"]
    spring = records.create("campaign", {"name": "春季展会"})
    autumn = records.create("campaign", {"name": "秋季展会"})
    statements: list[str] = []

    def capture(_conn, _cursor, statement, *_) -> None:
        statements.append(statement)

    sa.event.listen(platform.engine, "before_cursor_execute", capture)
    try:
        records.create("lead", {"name": "王一", "campaign": spring["id"], "owner": wang, "email": "l2@example.com"})
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", capture)
    lookups = [s.replace('"', '') for s in statements if " AS target, " in s]  # PostgreSQL quotes "user"
    assert len(lookups) == 1 and "FROM campaign" in lookups[0] and "FROM user" in lookups[0]
    statement = records.references_among[("campaign", "user")]
    with pytest.raises(ValidationFailed) as e:
        records.create("lead", {"name": "王二", "campaign": str(int(autumn["id"]) + 100), "owner": wang,
                                "email": "l3@example.com"})
    assert e.value.fields == {"campaign": [f"no campaign with id {int(autumn['id']) + 100}"]}
    with pytest.raises(ValidationFailed) as e:
        records.create("lead", {"name": "王二", "campaign": autumn["id"], "owner": str(int(wang) + 100),
                                "email": "l3@example.com"})
    assert e.value.fields == {"owner": [f"no user with id {int(wang) + 100}"]}
    scoped = records.within(lambda obj, t: t.c.id == int(spring["id"]) if obj == "campaign" else None)
    scoped.create("lead", {"name": "王三", "campaign": spring["id"], "email": "l4@example.com"})
    with pytest.raises(ValidationFailed) as e:  # outside the scope: as if it did not exist
        scoped.create("lead", {"name": "王四", "campaign": autumn["id"], "email": "l5@example.com"})
    assert e.value.fields == {"campaign": [f"no campaign with id {autumn['id']}"]}
    assert records.references_among[("campaign", "user")] is statement
    assert records.create("lead", {"name": "王五", "campaign": autumn["id"], "owner": wang,
                                   "email": "l6@example.com"})["campaign"] == autumn["id"]


def test_rollups_are_refreshed_by_statements_built_on_their_first_use(platform, records):
    rollups = records.rollups
    (group,) = [g for g in rollups.by_child["lead"] if g.parent == "campaign"]
    spring = records.create("campaign", {"name": "春季展会"})
    autumn = records.create("campaign", {"name": "秋季展会"})
    first = records.create("lead", {"name": "王一", "campaign": spring["id"], "email": "l6@example.com"})
    statements = rollups._statements(group, rollups._watched(group))
    records.create("lead", {"name": "王二", "campaign": spring["id"], "email": "l7@example.com"})
    records.update("lead", first["id"], {"campaign": autumn["id"]}, version=first["version"])
    third = records.create("lead", {"name": "王三", "campaign": autumn["id"], "email": "l8@example.com"})
    records.delete("lead", third["id"])
    assert rollups._statements(group, rollups._watched(group)) is statements
    assert records.get("campaign", spring["id"])["lead_count"] == 1
    assert records.get("campaign", autumn["id"])["lead_count"] == 1


def test_a_change_moving_no_lead_in_or_out_of_a_campaigns_counts_leaves_the_campaign_alone(platform, records):
    """A lead's first follow-up moves it from pending to following: the campaign's converted leads (a filter on the
    status) count it neither before nor after, so the campaign is neither locked nor recounted. A lead moved to
    another campaign is taken out of the counts of the one and put in the other's, without counting their leads."""
    wang = records.create("user", {"username": "wang", "display_name": "王伟"}, system=True)["id"]
    spring = records.create("campaign", {"name": "春季展会"})["id"]
    autumn = records.create("campaign", {"name": "秋季展会"})["id"]
    lead = records.create("lead", {"name": "王一", "campaign": spring, "owner": wang, "email": "l9@example.com"},
                          user=wang)
    records.create("lead", {"name": "王二", "campaign": spring, "owner": wang, "email": "l10@example.com"}, user=wang)
    statements: list[str] = []

    def capture(_conn, _cursor, statement, *_) -> None:
        statements.append(statement)

    sa.event.listen(platform.engine, "before_cursor_execute", capture)
    try:
        records.create("follow_up", {"kind": "call", "content": "电话沟通", "related_object": "lead",
                                     "related_id": lead["id"]}, user=wang)
        lead = records.get("lead", lead["id"])
        assert lead["status"] == "following"
        assert [s for s in statements if "FROM campaign" in s or "UPDATE campaign" in s] == []
        statements.clear()
        records.update("lead", lead["id"], {"campaign": autumn}, version=lead["version"], user=wang)
        assert [s for s in statements if "FROM lead AS c_lead" in s] == []
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", capture)
    counts = {c: records.get("campaign", c) for c in (spring, autumn)}
    assert {c: (r["lead_count"], r["converted_lead_count"]) for c, r in counts.items()} == {spring: (1, 0),
                                                                                           autumn: (1, 0)}
