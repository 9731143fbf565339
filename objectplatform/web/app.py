"""The app factory: one Flask app per platform, with the API under /api/v1 and the pages at /."""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException

from objectplatform.runtime import Platform, Settings, open_platform


def create_app(platform: Platform | None = None, settings: Settings | None = None) -> Flask:
    """A Flask app serving `platform` (opened from `settings` or the environment when not given)."""
    platform = platform or open_platform(settings)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=platform.settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["objectplatform"] = platform

    from . import api, api_approvals, api_work, pages, pages_work  # noqa: F401 - pages_work's views register on the pages
    from .api_reports import init_app as init_reports

    api.init_app(app)
    api_work.init_app(app)
    api_approvals.init_app(app)
    init_reports(app)
    pages.init_app(app)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(e: HTTPException):
    """An unknown URL or method matches no blueprint: the API answers in its error shape, the rest with a page."""
    from . import errors, pages_base

    return errors.http_error(e) if request.path.startswith(errors.API_PREFIX) else pages_base.http_error_page(e)


def get_platform() -> Platform:
    """The platform of the app handling the current request."""
    return current_app.extensions["objectplatform"]
