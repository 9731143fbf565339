"""Sign-in protection for the sign-in page and the API's token endpoint alike: failed sign-ins are counted per
account and per address (flask-limiter, in Redis when OBJECTPLATFORM_REDIS_URL is set so that every worker
counts together, in the worker's memory otherwise); past either limit, sign-ins there are refused with a 429
until the oldest failure counted is older than the window, whatever the password."""

from __future__ import annotations

import math
import time
from functools import partial

from flask import Flask, Response, g, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from objectplatform.runtime.auth import log
from objectplatform.runtime.errors import Message

from . import errors
from .i18n import error_text, language
from .pages_base import local_path

FAILURES_PER_ACCOUNT = "5 per 15 minutes"
FAILURES_PER_ADDRESS = "20 per 15 minutes"
SIGN_IN_ENDPOINTS = ("pages.login", "api.issue_token")


def init_app(app: Flask) -> None:
    """Limit the failed sign-ins of `app`'s sign-in endpoints (registered before) and answer a lockout in each
    face's way."""
    settings = app.extensions["objectplatform"].settings
    limiter = Limiter(get_remote_address, app=app, storage_uri=settings.redis_url or "memory://",
                      strategy="moving-window", key_prefix="objectplatform-sign-in", headers_enabled=False,
                      in_memory_fallback_enabled=True)  # Redis unreachable: each worker counts on its own
    limiter.request_filter(lambda: request.endpoint not in SIGN_IN_ENDPOINTS)  # the others skip its checks at once
    per_account = limiter.shared_limit(FAILURES_PER_ACCOUNT, scope="username", key_func=_account,
                                       methods=["POST"], deduct_when=_failed)
    per_address = limiter.shared_limit(FAILURES_PER_ADDRESS, scope="address", methods=["POST"], deduct_when=_failed)
    for endpoint in SIGN_IN_ENDPOINTS:
        app.view_functions[endpoint] = per_account(per_address(app.view_functions[endpoint]))
    app.register_error_handler(RateLimitExceeded, partial(_locked_out, limiter))


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _account() -> str:
    """The account a sign-in names (the form's or the JSON body's username), case and surrounding spaces aside."""
    given = request.get_json(silent=True) if request.is_json else request.form
    username = given.get("username") if isinstance(given, dict) else None
    return username.strip().casefold()[:100] if isinstance(username, str) and username.strip() else "-"


def _locked_out(limiter: Limiter, e: RateLimitExceeded) -> Response:
    """A refused sign-in: 429 with Retry-After, the API's error shape or the sign-in page saying for how long."""
    seconds = max(1, math.ceil(limiter.current_limit.reset_at - time.time()))
    message = Message("auth.locked_out", "too many failed sign-ins: try again in {minutes} minutes",
                      minutes=max(1, round(seconds / 60)))
    log.warning("sign-in refused after too many failures (%s) from %s", e.limit.limit, request.remote_addr)
    if request.path.startswith(errors.API_PREFIX):
        response = errors.error_response("too_many_requests", message, 429)
    else:
        lang = g.get("lang") or language()
        response = Response(render_template("pages/login.html", error=error_text(message, lang),
                                            username=request.form.get("username", "").strip(),
                                            next=local_path(request.values.get("next"))), 429)
    response.headers["Retry-After"] = str(seconds)
    return response
