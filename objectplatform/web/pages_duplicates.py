"""Duplicate rules (查重) on the pages: the record page's "possible duplicates" panel, and the notice
flashed when the create form saves a record that a `warn` rule finds a duplicate of.

(How it works: docs/engine.md, "objectplatform/web/pages_duplicates.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import flash, g, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.behaviors import duplicates
from objectplatform.runtime.behaviors.pool import POOL

from .current import get_platform
from .i18n import text
from .pages_records import RecordExtensions
from .pages_view import object_label

CHECK = "check_duplicates"


def duplicates_panel(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> dict | None:
    """The "possible duplicates / 疑似重复" panel: one row per match, the rule it matches by first."""
    if not obj.duplicate_rules or not g.access.can_act(obj.name, CHECK):
        return None
    matches = duplicates.Duplicates(get_platform().records).check(g.access, obj.name, record)
    if not matches:
        return None
    labels = {rule.name: rule.label.get(g.lang) for rule in obj.duplicate_rules}
    rows = [{"rule": m["rule"], "label": labels[m["rule"]], "action": m["action"], "id": m["id"],
             "title": m["title"], "url": url_for("pages.record", obj=obj.name, id=m["id"]),
             "owner": m["owner"]["title"] if m["owner"] else None,
             "pool": m["pool"]["title"] if m.get("pool") else None} for m in matches]
    pool_def = get_platform().metadata.objects[POOL.config_of(obj).pool_object] if POOL.declared_by(obj) else None
    return {"template": "pages/_duplicates.html", "wide": True, "rows": rows,
            "pool_label": object_label(pool_def, g.lang) if pool_def else None}


def created_notice(obj: ObjectDef, record: Mapping[str, Any]) -> None:
    """After the create form saved `record`: a notice naming the warn rules it matches, with the count."""
    if not obj.duplicate_rules:
        return
    warnings = duplicates.record_warnings(get_platform(), g.access, obj.name, record)
    if warnings:
        rules = text("duplicates.separator", g.lang).join(
            text("duplicates.rule_count", g.lang, rule=w["label"][g.lang], count=w["count"]) for w in warnings)
        flash(text("duplicates.created", g.lang, rules=rules), "info")


def extend(page: RecordExtensions) -> None:
    page.panels.append(duplicates_panel)
    page.after_create.append(created_notice)
