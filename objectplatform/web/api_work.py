"""The work queue in the REST API: the caller's to-dos and notifications, each title in their language.

(How it works: docs/engine.md, "objectplatform/web/api_work.py".)"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g, request

from objectplatform.runtime import BadRequest
from objectplatform.runtime.errors import Message
from objectplatform.runtime.workqueue import work_queue

from . import api, errors
from .current import get_platform
from .errors import json_response

bp = Blueprint("api_work", __name__, url_prefix="/api/v1")
errors.register(bp)
bp.before_request(api.authenticate)
LANGUAGES = ("zh", "en")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def request_language() -> str:
    """?lang=, else the best of Accept-Language, else zh."""
    lang = request.args.get("lang")
    if lang is not None:
        if lang not in LANGUAGES:
            raise BadRequest(Message("request.bad_lang", "lang must be zh or en, not {lang!r}", lang=lang),
                             {"lang": [Message("request.lang", "must be zh or en")]})
        return lang
    best = request.accept_languages.best_match(["zh", "zh-CN", "en"], default="zh")
    return "en" if best and best.startswith("en") else "zh"


def _flag(name: str) -> bool:
    value = request.args.get(name, "false")
    if value not in ("true", "false"):
        raise BadRequest(Message("request.bad_flag", "{name} must be true or false, not {value!r}", name=name,
                                 value=value),
                         {name: [Message("value.not_boolean", "must be true or false")]})
    return value == "true"


@bp.get("/todos")
def list_todos() -> Response:
    lang = request_language()
    items = work_queue(get_platform()).todos_for(g.access)
    return json_response({"items": [t.json(lang) for t in items]})


@bp.post("/todos/<todo_id>/done")
def finish_todo(todo_id: str) -> Response:
    lang = request_language()
    return json_response(work_queue(get_platform()).done(g.access, todo_id).json(lang))


@bp.get("/notifications")
def list_notifications() -> Response:
    lang = request_language()
    items, unread = work_queue(get_platform()).notifications_for(g.access.user_id, _flag("unread"))
    return json_response({"items": [n.json(lang) for n in items], "unread": unread})


@bp.post("/notifications/<notification_id>/read")
def read_notification(notification_id: str) -> Response:
    service = work_queue(get_platform())
    marked = service.mark_read(g.access.user_id, notification_id)
    return json_response({"marked": marked, "unread": service.unread_count(g.access.user_id)})


@bp.post("/notifications/read")
def read_all_notifications() -> Response:
    service = work_queue(get_platform())
    marked = service.mark_read(g.access.user_id)
    return json_response({"marked": marked, "unread": service.unread_count(g.access.user_id)})
