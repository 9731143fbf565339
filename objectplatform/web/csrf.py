"""CSRF protection for the pages: a random token per session, sent back by every form.

Every POST to the pages blueprint must carry the session's token in the `csrf_token` form field (or
the `X-CSRF-Token` header, for the page scripts); anything else is refused with a 400 page before
the view runs. The API is not covered: it takes bearer tokens, never the session cookie.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token() -> str:
    """The session's token, made on first use."""
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def renew() -> None:
    """A new token (on sign-in and sign-out, with the new session)."""
    session[FIELD] = secrets.token_urlsafe(32)


def request_is_valid() -> bool:
    """Whether the current request is safe or carries the session's token."""
    if request.method in SAFE_METHODS:
        return True
    expected = session.get(FIELD)
    sent = request.form.get(FIELD) or request.headers.get(HEADER)
    return bool(expected and sent) and hmac.compare_digest(str(expected), str(sent))
