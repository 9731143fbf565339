"""The recycle bin in the REST API (API.md, "Recycle bin"): the deleted records and their restore, for
administrators only."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g

from objectplatform.runtime.errors import Forbidden, Message
from objectplatform.runtime.records import recycle_bin

from . import api, errors
from .current import get_platform
from .errors import json_response

bp = Blueprint("api_recycle_bin", __name__, url_prefix="/api/v1")
errors.register(bp)
bp.before_request(api.authenticate)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def require_admin() -> None:
    """403 unless the caller is a full administrator (the bin holds every object's records)."""
    if not g.access.is_admin:
        raise Forbidden(Message("recycle_bin.admins_only", "the recycle bin is for administrators"))


@bp.get("/recycle_bin")
def list_recycle_bin() -> Response:
    require_admin()
    return json_response({"items": recycle_bin.entries(get_platform())})


@bp.post("/recycle_bin/<entry_id>/restore")
def restore_from_recycle_bin(entry_id: str) -> Response:
    require_admin()
    platform = get_platform()
    obj, record = recycle_bin.restore(platform, entry_id, g.access.user_id)
    return json_response(api.record_json(platform, obj, record))
