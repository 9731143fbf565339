"""The records service's hooks on both databases: which events fire, with what, inside the write's transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.records import RowError


def on_campaigns(obj):
    return obj.name == "campaign"


def test_the_events_of_create_update_and_delete(records):
    seen = []

    def note(event):
        def handler(ctx):
            seen.append((event, ctx.object, ctx.user, ctx.before and ctx.before["name"],
                         ctx.after and ctx.after["name"], ctx.after and ctx.after.get("id")))
        return handler

    events = ("before_create", "after_create", "before_update", "after_update", "after_delete")
    registry = records.platform.registry
    added = [registry.hook(event, note(event), applies=on_campaigns) for event in events]
    try:
        records.create("product", {"name": "Widget", "code": "W-1", "price": "1"})  # not a campaign
        made = records.create("campaign", {"name": "春季展会"}, user=None)
        records.update("campaign", made["id"], {"name": "春季展会 2026"}, version=1)
        records.update("campaign", made["id"], {"name": "春季展会 2026"}, version=2)  # no change: no after_update
        records.delete("campaign", made["id"])
    finally:
        for hook in added:
            registry.hooks.remove(hook)
    assert seen == [
        ("before_create", "campaign", None, None, "春季展会", None),
        ("after_create", "campaign", None, None, "春季展会", made["id"]),
        ("before_update", "campaign", None, "春季展会", "春季展会 2026", made["id"]),
        ("after_update", "campaign", None, "春季展会", "春季展会 2026", made["id"]),
        ("before_update", "campaign", None, "春季展会 2026", "春季展会 2026", made["id"]),
        ("after_delete", "campaign", None, "春季展会 2026", None, None),
    ]
    assert not any(h in registry.hooks for h in added)


def test_before_create_may_change_the_record_and_add_errors(platform, records):
    def adjust(ctx):
        if ctx.after["name"].startswith("x"):
            ctx.errors.setdefault("name", []).append("may not start with x")
        ctx.after["description"] = f"named {ctx.after['name']}"

    with platform.registry.hooked("before_create", adjust, applies=on_campaigns) as hook:
        assert hook in platform.registry.hooks
        made = records.create("campaign", {"name": "秋季"})
        with pytest.raises(ValidationFailed) as e:
            records.create("campaign", {"name": "xyz", "budget": "-"})
    assert hook not in platform.registry.hooks
    assert records.get("campaign", made["id"])["description"] == "named 秋季"
    assert e.value.fields["name"] == ["may not start with x"]
    assert set(e.value.fields) == {"name", "budget"}  # reported with the field errors, all at once
    assert records.create("campaign", {"name": "xyz"})["description"] is None  # the hook is gone


def test_a_hook_writes_in_the_same_transaction(platform, records):
    def log_and_maybe_fail(ctx):
        records.create("product", {"name": f"for {ctx.after['name']}", "code": ctx.after["name"], "price": "1"},
                       conn=ctx.conn)
        if ctx.after["name"] == "bad":
            raise RuntimeError("no")

    with platform.registry.hooked("after_create", log_and_maybe_fail, applies=on_campaigns):
        records.create("campaign", {"name": "good"})
        with pytest.raises(RuntimeError):
            records.create("campaign", {"name": "bad"})
    with platform.engine.connect() as c:
        names = c.execute(sa.select(platform.schema["product"].table.c.name)).scalars().all()
    assert names == ["for good"]
    assert [r["name"] for r in records.list("campaign").items] == ["good"]


def test_create_many_fires_one_event_per_batch(records):
    seen = []

    def before(ctx):
        for row, errors in zip(ctx.batch, ctx.batch_errors, strict=True):
            if row["name"] == "bad":
                errors["name"] = ["not this one"]

    def after(ctx):
        seen.append(sorted(r["name"] for r in ctx.batch))

    registry = records.platform.registry
    with registry.hooked("before_create_many", before, applies=on_campaigns), \
            registry.hooked("after_create_many", after, applies=on_campaigns), \
            registry.hooked("after_create", lambda ctx: seen.append("one by one"), applies=on_campaigns):
        result = records.create_many("campaign", [{"name": n} for n in ("a", "bad", "b", "c")], batch_size=2)
    assert result.errors == [RowError(1, {"name": ["not this one"]})]
    assert seen == [["a"], ["b", "c"]]


def test_an_unknown_event_is_refused(records):
    with pytest.raises(ValueError, match="unknown hook event after_save"):
        records.platform.registry.hook("after_save", lambda ctx: None)
