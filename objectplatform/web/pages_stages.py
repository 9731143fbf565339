"""The sales process on an opportunity's page: the path of stages (the current one marked), the current
stage's tasks as a checklist with complete buttons, what still keeps it in the stage, the moves the
viewer may make (advance, win, lose, invalid) and the stage history with stage labels; a stage waiting
for approval says so on the path, with a link to the approval in the record's approval panel.

(How it works: docs/engine.md, "objectplatform/web/pages_stages.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import g, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.behaviors import staged
from objectplatform.runtime.sales_processes import process
from objectplatform.runtime.value_labels import value_labels

from .current import get_platform
from .i18n import text
from .pages_approvals import pending_approval_link
from .pages_base import page_display
from .pages_records import RecordExtensions
from .pages_view import field_label

MOVES = ("advance", "win", "lose", "invalidate")


def stage_panel(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> dict | None:
    """The record page's stage path, checklist, missing items, moves and stage history."""
    if staged.BEHAVIOR not in obj.behaviors:
        return None
    platform = get_platform()
    behavior = staged.behavior_of(platform, obj.name)
    config, f = behavior.config, behavior.fields
    found = process(platform.metadata, record.get(f.sales_process), obj.name)
    if found is None:
        return None
    lang = g.lang
    status = record.get(config.status_field)
    current = found.stage(record.get(f.stage))
    keys = [s.key for s in found.stages]
    at = keys.index(current.key) if current else -1
    path = [{"key": s.key, "label": s.label.get(lang), "probability": s.probability,
             "state": "done" if i < at or (i == at and status == config.won_status) else "current" if i == at else
             "pending" if s.key == record.get(f.pending_stage) else "ahead",
             "approval": bool(s.approval)} for i, s in enumerate(found.stages)]
    tasks, missing, moves = [], [], []
    is_open = behavior.is_open(record)
    if current is not None:
        done = behavior.done_tasks(record, current.key)
        display = page_display()
        task_def = platform.metadata.objects[config.tasks]
        by, when = config.task_fields.completed_by, config.task_fields.completed_at
        display.want(task_def, list(done.values()), [by])
        tasks = [{"key": t.key, "label": t.label.get(lang), "required": t.required, "done": t.key in done,
                  "by": display.html(task_def, by, done[t.key][by]) if t.key in done else "",
                  "at": display.text(task_def, when, done[t.key][when]) if t.key in done else ""}
                 for t in current.tasks]
        if is_open:
            problems = behavior.missing(record, current)
            labels = {t.key: t.label.get(lang) for t in current.tasks}
            missing = [text("stage.missing_task", lang, task=labels[t.key]) for t in current.tasks
                       if t.required and t.key not in done]
            missing += [text("stage.missing_field", lang, field=field_label(obj, name, lang))
                        for name in problems if name != "tasks"]
    if is_open and current is not None:
        last = current.key == found.last.key
        allowed = {name for name in MOVES if g.access.can_act(obj.name, name)}
        if not record.get(f.pending_stage) and not last and not missing and "advance" in allowed:
            moves.append("advance")
        if last and not missing and "win" in allowed:
            moves.append("win")
        moves += [name for name in ("lose", "invalidate") if name in allowed]
    pending = found.stage(record.get(f.pending_stage))
    return {
        "approval_link": pending_approval_link(obj.name, record["id"]) if pending else None,
        "template": "pages/_stages.html", "wide": True, "process": found.label.get(lang),
        "path": path, "status": status, "is_open": is_open,
        "status_label": page_display().text(obj, config.status_field, status),
        "stage": current.label.get(lang) if current else "", "tasks": tasks, "missing": missing,
        "pending": pending.label.get(lang) if pending else None,
        "can_complete": is_open and g.access.can_act(obj.name, "complete_task"),
        "moves": [(name, text(f"stage.{name}", lang)) for name in moves],
        "history": _history(record, found, config), "shows": [config.history],
        "action": lambda name: url_for("pages.run_one", obj=obj.name, id=record["id"], name=name),
    }


def _history(record: Mapping[str, Any], found, config: staged.SalesProcessConfig) -> list[dict]:
    """The stage history rows (of the behavior's history object) with stage labels, oldest first."""
    platform = get_platform()
    lang = g.lang
    display = page_display()
    hdef = platform.metadata.objects[config.history]
    h = config.history_fields
    rows = record.get(config.history, [])
    display.want(hdef, rows, [h.moved_by])
    moves = value_labels(platform.metadata, hdef, h.left_to, found.name)  # this process's stages, closing statuses

    def label(key: str | None) -> str:
        return moves[key].get(lang) if key in moves else key or ""

    return [{"stage": label(r[h.stage]), "entered": display.text(hdef, h.entered_at, r[h.entered_at]),
             "left": display.text(hdef, h.left_at, r[h.left_at]), "to": label(r[h.left_to]),
             "by": display.html(hdef, h.moved_by, r[h.moved_by]), "comment": r.get(h.comment) or ""}
            for r in rows]


def _tasks_dialog(obj: ObjectDef, record: Mapping[str, Any]) -> str | None:
    """complete_task in the page header leads to the checklist, where each task has its button."""
    if staged.BEHAVIOR not in obj.behaviors:
        return None
    return url_for("pages.record", obj=obj.name, id=record["id"]) + "#stage-tasks"


def extend(page: RecordExtensions) -> None:
    page.panels.append(stage_panel)
    page.dialogs["complete_task"] = _tasks_dialog
