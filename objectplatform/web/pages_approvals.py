"""Approvals in the pages: the panel on a record under approval and the decisions from the inbox.

(How it works: docs/engine.md, "objectplatform/web/pages_approvals.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import flash, g, redirect, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.actions import actions_service, run_action
from objectplatform.runtime.approvals import approvals
from objectplatform.runtime.errors import BadRequest, Conflict, Forbidden, Message, ValidationFailed

from .current import get_platform
from .i18n import error_text, text
from .pages_base import bp, local_path, object_def, scope
from .pages_records import RecordExtensions, record_page
from .pages_view import local_time
from .pages_work import todos_page

SUBMIT, WITHDRAW = "submit", "withdraw"
DECISIONS = {"approve": True, "reject": False}
DONE = {"approve": "approval.approved", "reject": "approval.rejected", SUBMIT: "approval.submitted",
        WITHDRAW: "approval.withdrawn"}
REFUSALS = (Forbidden, Conflict, ValidationFailed)


def _label(label: Mapping[str, str] | None) -> str:
    label = label or {}
    return label.get(g.lang) or label.get("zh") or label.get("en") or ""


def _when(moment: str | None) -> str:
    return local_time(datetime.fromisoformat(moment), g.zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def _actions(obj: str) -> tuple[bool, set[str]]:
    """Whether the object has a flow to submit to, and which of submit and withdraw the viewer may run."""
    names = {a.name for a in actions_service(get_platform()).for_object(obj)} & {SUBMIT, WITHDRAW}
    return SUBMIT in names, {name for name in names if g.access.can_act(obj, name)}


def refusal(e: ValidationFailed | Forbidden | Conflict, deciding: str | None = None) -> str:
    """A refused approval operation as one sentence in the page's language."""
    if isinstance(e, ValidationFailed):
        if deciding == "reject" and "comment" in e.fields:
            return text("approval.comment_required", g.lang)
        message = "; ".join(error_text(m, g.lang) for ms in e.fields.values() for m in ms)
        return text("approval.refused.422", g.lang, message=message or error_text(e.message, g.lang))
    return text(f"approval.refused.{e.status}", g.lang, message=error_text(e.message, g.lang))


def shown(approval: Mapping[str, Any], can_withdraw: bool) -> dict:
    """One approval as the panel shows it; its people by name only to a viewer who may read users (a partner sees a
    dash, as for any reference to an object they may not read, and each step by its label)."""
    named = g.access.can("user", "read")

    def person(name: str | None) -> str:
        return (name or "") if named else "—"

    steps = []
    for step in approval["steps"]:
        current = approval["status"] == "pending" and step["name"] == approval.get("current_step")
        steps.append({
            "name": step["name"], "label": _label(step["label"]), "status": step["status"], "current": current,
            "status_label": text(f"approval.step.{step['status']}", g.lang),
            "mode": text(f"approval.mode.{step['mode']}", g.lang),
            "approvers": [{"name": person(a["name"]), "decision": a["decision"],
                           "decision_label": text(f"approval.decision.{a['decision'] or 'none'}", g.lang),
                           "at": _when(a["decided_at"]), "comment": a["comment"] or ""}
                          for a in step["approvers"]],
        })
    return {"id": approval["id"], "label": _label(approval["label"]), "status": approval["status"],
            "status_label": text(f"approval.status.{approval['status']}", g.lang),
            "submitter": person(approval.get("submitter_name")), "comment": approval.get("comment") or "",
            "end_comment": (approval.get("end_comment") or "") if approval["status"] == "withdrawn" else "",
            "started": _when(approval["started_at"]), "ended": _when(approval.get("ended_at")), "steps": steps,
            "can_decide": bool(approval.get("can_decide")),
            "can_withdraw": can_withdraw and bool(approval.get("can_withdraw"))}


def approval_panel(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> dict | None:
    """The record page's approvals: shown for a record with any approval, or one the user may submit now (a draft
    of an object with a flow); not for a record past its approval without one (an order the system approved says
    nothing rather than "not submitted yet")."""
    has_flow, allowed = _actions(obj.name)
    items = approvals(get_platform()).for_record(g.access, obj.name, record["id"])
    if not items and not has_flow:
        return None
    pending = any(a["status"] == "pending" for a in items)
    runnable = {a.name for a in actions_service(get_platform()).available(g.access, obj.name, record)}
    can_submit = SUBMIT in allowed and SUBMIT in runnable and not pending  # from its state (a draft), now
    if not items and not can_submit:
        return None
    error = state.get("approval_error") or {}
    return {
        "template": "pages/_approvals.html",
        "approvals": [shown(a, WITHDRAW in allowed) for a in items],
        "can_submit": can_submit,
        "error": error,
        "submit_url": url_for("pages.submit_approval", obj=obj.name, id=record["id"]),
        "withdraw_url": url_for("pages.withdraw_approval", obj=obj.name, id=record["id"]),
        "next": url_for("pages.record", obj=obj.name, id=record["id"]),
    }


def _panel_link(obj: ObjectDef, record: Mapping[str, Any]) -> str | None:
    """submit and withdraw in the page header lead to the approval panel, where they take a comment."""
    return url_for("pages.record", obj=obj.name, id=record["id"]) + "#approvals"


def extend(page: RecordExtensions) -> None:
    page.panels.append(approval_panel)
    page.dialogs[SUBMIT] = page.dialogs[WITHDRAW] = _panel_link


# ------------------------------------------------------------------------------------ decisions


@bp.route("/approvals/<approval_id>/decide", methods=["POST"])
def decide_approval(approval_id: str):
    """Approve or reject (the button's `decision`) with the form's comment, from the panel or the inbox."""
    service = approvals(get_platform())
    approval = service.get(g.access, approval_id)
    decision = request.form.get("decision", "")
    if decision not in DECISIONS:
        raise BadRequest(Message("approval.bad_decision", "decision must be approve or reject, not {decision!r}",
                                 decision=decision))
    comment = request.form.get("comment", "").strip() or None
    record_url = url_for("pages.record", obj=approval["object"], id=approval["record_id"])
    try:
        service.decide(g.access, approval["id"], DECISIONS[decision], comment)
    except REFUSALS as e:
        message = refusal(e, decision)
        todo = request.form.get("todo")
        if todo:
            return todos_page(e.status, errors={todo: message}, comments={todo: comment or ""})
        return record_page(approval["object"], approval["record_id"], e.status,
                           approval_error={"approval": approval["id"], "message": message, "comment": comment or ""})
    flash(text(DONE[decision], g.lang, title=_label(approval.get("title")) or _label(approval["label"])), "success")
    return redirect(local_path(request.form.get("next")) or record_url)


def _record_action(obj: str, id: str, name: str):
    """Run submit or withdraw on the record with the form's comment; a refusal shown in the panel."""
    object_def(obj)
    platform = get_platform()
    current = platform.records.get(obj, id, where=scope(obj))
    comment = request.form.get("comment", "").strip()
    try:
        result = run_action(platform, g.access, obj, name, current["id"], {"comment": comment} if comment else {})
    except REFUSALS as e:
        return record_page(obj, current["id"], e.status,
                           approval_error={"approval": name, "message": refusal(e), "comment": comment})
    label = _label(result.get("approval", {}).get("label"))
    flash(text(DONE[name], g.lang, title=label), "success")
    return redirect(url_for("pages.record", obj=obj, id=current["id"]) + "#approvals")


@bp.route("/o/<obj>/<id>/approvals/submit", methods=["POST"])
def submit_approval(obj: str, id: str):
    return _record_action(obj, id, SUBMIT)


@bp.route("/o/<obj>/<id>/approvals/withdraw", methods=["POST"])
def withdraw_approval(obj: str, id: str):
    return _record_action(obj, id, WITHDRAW)


def pending_approval_link(obj: str, record_id: str) -> str | None:
    """The anchor of the record's waiting approval on its page (for the stage path), or None."""
    pending = approvals(get_platform()).pending_for_record(obj, record_id)
    return f"#approval-{pending['id']}" if pending else None
