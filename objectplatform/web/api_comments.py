"""Comments in the REST API: a record's thread and a new comment or reply on it (runtime/behaviors/comments.py)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g

from objectplatform.runtime.behaviors.comments import comments_service
from objectplatform.runtime.errors import Message, ValidationFailed

from . import api, errors
from .current import get_platform
from .errors import json_response

bp = Blueprint("api_comments", __name__, url_prefix="/api/v1")
errors.register(bp)
bp.before_request(api.authenticate)
FIELDS = ("body", "parent")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/objects/<obj>/records/<record_id>/comments")
def list_comments(obj: str, record_id: str) -> Response:
    thread = comments_service(get_platform()).thread(g.access, obj, record_id)
    return json_response({"items": [c.json() for c in thread]})


@bp.post("/objects/<obj>/records/<record_id>/comments")
def add_comment(obj: str, record_id: str) -> Response:
    body = api.object_body()
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ValidationFailed({name: [Message("value.unknown_field", "unknown field")] for name in unknown})
    comment = comments_service(get_platform()).add(g.access, obj, record_id, body.get("body"), body.get("parent"))
    return json_response(comment.json(), 201)
