"""The behavior registry (runtime/behaviors/registry.py): each behavior is one declaration, the CRM's
configurations read as typed values, and the declared panels are templates the pages have."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest
from support import crm_registry, shipped_crm

from objectplatform.metadata import Label
from objectplatform.runtime.behaviors.convertible import CONVERTIBLE, ConvertibleConfig
from objectplatform.runtime.behaviors.follow_ups import FOLLOW_UPS, FollowUpsConfig, follow_up_object
from objectplatform.runtime.behaviors.pool import POOL, PoolConfig
from objectplatform.runtime.behaviors.registry import Behavior, check_behaviors
from objectplatform.runtime.behaviors.staged import SALES_PROCESS, RecordFields, SalesProcessConfig, TaskFields
from objectplatform.runtime.config import ROOT

TEMPLATES = ROOT / "objectplatform" / "web" / "templates"


def test_the_registered_behaviors_and_what_each_declares():
    assert {name: (sorted(b.hooks), b.panels, b.moves_in_hooks, b.actions is not None)
            for name, b in sorted(crm_registry().behaviors.items())} == {
        "calendar": ([], ("pages/calendar.html",), False, False),
        "check_in": (["before_create", "before_create_many", "before_update"], ("pages/_check_in.html",), False, True),
        "comments": ([], ("pages/_comments.html",), False, False),
        "checklist": (["before_create", "before_create_many", "before_delete", "before_update"],
                      ("pages/_checklist.html",), False, False),
        "convertible": ([], ("pages/convert.html",), False, True),
        "frequency": ([], ("pages/frequency.html",), False, False),
        "follow_ups": (["after_create", "after_create_many", "before_create", "before_create_many",
                        "before_update"], ("pages/_follow_ups.html", "pages/feed.html"), True, False),
        "pool": (["before_create", "before_create_many"],
                 ("pages/pool_board.html", "pages/my_leads.html", "pages/return.html"), False, True),
        "route": ([], (), False, True),
        "sales_process": (["after_create", "after_create_many", "before_create", "before_create_many",
                           "before_update"], ("pages/_stages.html",), False, True),
    }


def test_every_declared_panel_is_a_template_of_the_pages():
    assert [p for b in crm_registry().behaviors.values() for p in b.panels if not (TEMPLATES / p).is_file()] == []


def test_the_crm_configurations_are_typed_with_their_defaults():
    objects = shipped_crm().objects
    assert POOL.config_of(objects["lead"]) == PoolConfig("lead_pool", "pool")
    assert FOLLOW_UPS.config_of(objects["account"]) == FollowUpsConfig("follow_up", "last_followed_at", "status")
    assert SALES_PROCESS.config_of(objects["opportunity"]) == SalesProcessConfig(
        "stage_history", "opportunity_task", "opportunity")
    convertible = CONVERTIBLE.config_of(objects["lead"])
    assert isinstance(convertible, ConvertibleConfig)
    assert (convertible.converted_at_field, convertible.closed_values, dict(convertible.matches)) == (
        "converted_at", ("invalid", "voided"), {"name": ["company"], "phone": ["phone", "mobile"]})
    assert follow_up_object(shipped_crm()) == "follow_up"


def test_each_schema_default_is_the_typed_configurations():
    for behavior in crm_registry().behaviors.values():
        for f in fields(behavior.config):
            prop = behavior.schema["properties"][f.name]
            if "properties" in prop:  # a group of names (sales_process's fields, history_fields, task_fields)
                assert {k: v["default"] for k, v in prop["properties"].items()} == \
                    {g.name: g.default for g in fields(f.default)}, (behavior.name, f.name)
            elif f.default is not MISSING and f.default is not None:
                default = list(f.default) if isinstance(f.default, tuple) else f.default
                assert prop["default"] == default, (behavior.name, f.name)


def test_a_group_of_names_as_written_becomes_typed():
    config = SalesProcessConfig("steps", "checks", "deal", fields={"stage": "phase"}, task_fields={"task": "item"})
    assert (config.fields, config.task_fields) == (RecordFields(stage="phase"), TaskFields(task="item"))
    assert (config.fields.sales_process, config.closed_statuses) == ("sales_process", ("won", "lost", "invalid"))


def test_the_shipped_crm_uses_its_behaviors_as_declared():
    assert check_behaviors(shipped_crm(), crm_registry().behaviors) == []


def test_a_behavior_is_registered_once_and_its_schema_must_be_valid():
    registry = crm_registry()
    with pytest.raises(ValueError, match="behavior 'pool' is already registered"):
        registry.behavior(Behavior("pool", {"type": "object"}, dict))
    with pytest.raises(Exception, match="'objekt' is not valid"):
        registry.behavior(Behavior("broken", {"type": "objekt"}, dict))
    assert "broken" not in registry.behaviors


def test_each_platform_has_its_own_registry():
    """What one platform's registry gets (a test's hook, an app's action) no other platform sees."""
    first, second = crm_registry(), crm_registry()
    first.action("lead", "ping", lambda call: None, label=Label("试", "Ping"))
    assert "ping" in first.actions_of(shipped_crm())["lead"]
    assert "ping" not in second.actions_of(shipped_crm())["lead"]


def test_a_behaviors_actions_reach_the_objects_declaring_it():
    registered = crm_registry().actions_of(shipped_crm())
    assert sorted(registered["lead"]) == ["assign", "check_duplicates", "claim", "convert", "invalidate", "move",
                                          "reopen", "return", "void"]
    assert registered["lead"]["claim"].label == Label("领取", "Claim")


def test_every_extension_point_is_documented():
    from objectplatform.runtime import extension_points

    docs = (ROOT / "docs" / "metadata.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Extension points"):docs.index("## Writing a behavior")]
    assert [name for name in extension_points.__all__ if f"`{name}`" not in section] == []
