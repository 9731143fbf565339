"""The API's JSON: one encoder for bodies (decimals as exact JSON numbers) and one builder for errors.

Every error the API answers has the shape of API.md, `{"error": {"code", "message", "reason"?, "params"?,
"fields"?}}`: runtime failures, unknown routes and methods, malformed JSON and unexpected failures alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestURITooLarge

from objectplatform.runtime import RuntimeFailure
from objectplatform.runtime.errors import Message, coded_params
from objectplatform.runtime.records.recycle_bin import foreign_key_conflict

from .current import get_platform

API_PREFIX = "/api/"
MAX_URL_BYTES = 8000  # below gunicorn's request line limit (cli.py), so that the app itself says why
ERROR_STATUSES = {
    400: ("bad_request", "malformed JSON, unknown filter or sort field, bad parameter"),
    401: ("unauthenticated", "no or bad token"),
    403: ("forbidden", "the role does not allow it"),
    404: ("not_found", "unknown object, record or action, or a record outside the caller's scope"),
    409: ("conflict", "stale version, record already claimed, illegal state transition, limit reached"),
    414: ("bad_request", f"the URL (path and query) is longer than {MAX_URL_BYTES} bytes: send fewer or shorter "
                         "filters"),
    422: ("validation_failed", "field or rule errors; fields lists every one"),
    429: ("too_many_requests", "too many failed sign-ins for the account or from the address: wait Retry-After"),
}
HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 414: "bad_request",
              415: "unsupported_media_type",
              422: "validation_failed", 429: "too_many_requests"}


def _encode(value: Any) -> str:
    """JSON text of API data: Decimal as its exact digits, dates and date-times in ISO 8601. (The json module's
    own string escaping, called directly: a json.dumps per value costs a new encoder each time.)"""
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return json.dumps(value)  # nan and infinity as json writes them
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return f'"{value.isoformat()}"'
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_string(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


_string = json.encoder.encode_basestring  # a str as JSON text, non-ASCII kept (ensure_ascii=False)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status=status, mimetype="application/json")


def error_body(code: str, message: str, fields: Mapping[str, Sequence[str]] | None = None) -> dict:
    """The one error shape: {"error": {"code", "message", "reason"?, "params"?, "fields"?}}; a Message brings its
    reason and params, the fields their English messages."""
    error: dict = {"code": code, "message": message}
    if isinstance(message, Message):
        error["reason"], error["params"] = message.reason, coded_params(message)
    if fields:
        error["fields"] = {name: list(messages) for name, messages in fields.items()}
    return {"error": error}


def error_response(code: str, message: str, status: int,
                   fields: Mapping[str, Sequence[str]] | None = None) -> Response:
    return json_response(error_body(code, message, fields), status)


def _runtime_failure(e: RuntimeFailure) -> Response:
    response = error_response(e.code, e.message, e.status, e.fields)
    if e.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def http_error(e: HTTPException) -> Response:
    """A routing or protocol error under /api/ (an unknown route or method, which no blueprint matches)
    in the error shape."""
    status = e.code or 500
    if status == 404:
        message = f"no such endpoint: {request.method} {request.path}"
    elif status == 405:
        allowed = ", ".join(sorted(e.valid_methods or []))
        message = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    elif status == 414:
        message = url_too_long()
    else:
        message = e.description or e.name
    response = error_response(HTTP_CODES.get(status, "bad_request" if status < 500 else "internal_error"),
                              message, status)
    if status == 405 and e.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(e.valid_methods))
    return response


def url_too_long() -> Message:
    return Message("request.url_too_long", "the URL is longer than {limit} bytes: send fewer or shorter filters",
                   limit=MAX_URL_BYTES)


def refuse_long_url() -> None:
    """A URL whose path and query exceed MAX_URL_BYTES is refused (414) before any endpoint reads it."""
    if len(request.path.encode()) + len(request.query_string) > MAX_URL_BYTES:
        raise RequestURITooLarge()


def _unexpected(e: Exception) -> Response:
    """A failure that is the platform's fault: logged, answered as a 500 in the error shape."""
    if isinstance(e, HTTPException):
        return http_error(e)
    if isinstance(e, sa.exc.IntegrityError) and (conflict := foreign_key_conflict(get_platform().records, e)):
        return _runtime_failure(conflict)  # a write outside the records service that a foreign key refused
    current_app.logger.exception("unexpected failure on %s %s", request.method, request.path)
    return error_response("internal_error", "the server failed to answer this request; it has been logged", 500)


def register(bp: Blueprint) -> None:
    """Runtime failures and unexpected exceptions of the blueprint's own endpoints in the error shape."""
    bp.register_error_handler(RuntimeFailure, _runtime_failure)
    bp.register_error_handler(Exception, _unexpected)

