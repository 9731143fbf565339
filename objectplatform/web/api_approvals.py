"""Approvals in the REST API: read an approval or a record's approvals, approve or reject a waiting step.

(How it works: docs/engine.md, "objectplatform/web/api_approvals.py".)"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g

from objectplatform.runtime import ValidationFailed
from objectplatform.runtime.approvals import approvals
from objectplatform.runtime.errors import Message

from . import api, errors
from .current import get_platform
from .errors import json_response

bp = Blueprint("api_approvals", __name__, url_prefix="/api/v1")
errors.register(bp)
bp.before_request(api.authenticate)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _comment() -> str | None:
    body = api.object_body(empty={})
    unknown = sorted(set(body) - {"comment"})
    problems = {name: [Message("action.unknown_param", "unknown parameter")] for name in unknown}
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        problems["comment"] = [Message("value.not_text", "must be text")]
    if problems:
        raise ValidationFailed(problems)
    return comment


def _decided(result: dict) -> Response:
    platform = get_platform()
    approval = result["approval"]
    return json_response({"record": api.record_json(platform, approval["object"], result["record"]),
                          "approval": approval})


@bp.get("/approvals/<approval_id>")
def get_approval(approval_id: str) -> Response:
    return json_response(approvals(get_platform()).get(g.access, approval_id))


@bp.post("/approvals/<approval_id>/approve")
def approve(approval_id: str) -> Response:
    return _decided(approvals(get_platform()).decide(g.access, approval_id, True, _comment()))


@bp.post("/approvals/<approval_id>/reject")
def reject(approval_id: str) -> Response:
    return _decided(approvals(get_platform()).decide(g.access, approval_id, False, _comment()))


@bp.get("/objects/<obj>/records/<record_id>/approvals")
def record_approvals(obj: str, record_id: str) -> Response:
    api.object_def(obj)
    return json_response({"items": approvals(get_platform()).for_record(g.access, obj, record_id)})
