"""The app factory: one Flask app per platform, with the API under /api/v1 and the pages at /."""

from __future__ import annotations

import secrets
from typing import ClassVar

from flask import Flask, request
from jinja2 import BytecodeCache
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from objectplatform.runtime import Platform, Settings, open_platform
from objectplatform.runtime.apps import find_apps

from . import (  # noqa: F401 - the page modules' views register on the pages blueprint (pages_base.bp)
    api,
    api_approvals,
    api_calendar,
    api_comments,
    api_recycle_bin,
    api_reports,
    api_work,
    errors,
    pages,
    pages_anomalies,
    pages_approvals,
    pages_base,
    pages_calendar,
    pages_check_in,
    pages_checklist,
    pages_comments,
    pages_convert,
    pages_duplicates,
    pages_follow_ups,
    pages_home,
    pages_imports,
    pages_leads,
    pages_lists,
    pages_pools,
    pages_records,
    pages_recycle_bin,
    pages_report_builder,
    pages_reports,
    pages_routes,
    pages_search,
    pages_stages,
    pages_work,
    sign_in,
)


class UrlRule(Rule):
    """A werkzeug rule that reuses the URL builders made for the same rule by an earlier app of the process:
    generating and compiling their code is most of what `create_app` costs, and the tests make an app per test."""

    builders: ClassVar[dict] = {}

    def _compile_builder(self, append_unknown: bool = True):
        key = (self.rule, tuple(self._trace), repr(self.defaults), append_unknown)
        if key not in self.builders:
            self.builders[key] = super()._compile_builder(append_unknown)
        return self.builders[key]


class CompiledTemplates(BytecodeCache):
    """The page templates compiled once per process, whichever app renders them first (every app's Jinja
    environment is set up alike; a template changed on disk has another checksum and is compiled again)."""

    def __init__(self):
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = CompiledTemplates()


def create_app(platform: Platform | None = None, settings: Settings | None = None) -> Flask:
    """A Flask app serving `platform` (opened from `settings` or the environment when not given)."""
    platform = platform or open_platform(settings)
    app = Flask(__name__)
    app.url_rule_class = UrlRule
    app.jinja_options = {**app.jinja_options, "bytecode_cache": COMPILED_TEMPLATES}
    app.config.update(
        # without a configured key (a test, a script) a random one: sessions end with the app, none is forgeable
        SECRET_KEY=platform.settings.secret_key or secrets.token_urlsafe(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["objectplatform"] = platform
    app.before_request(errors.refuse_long_url)

    api.init_app(app)
    api_work.init_app(app)
    api_calendar.init_app(app)
    api_approvals.init_app(app)
    api_reports.init_app(app)
    api_recycle_bin.init_app(app)
    api_comments.init_app(app)
    pages.init_app(app)
    record_page = app.extensions[pages_records.EXTENSIONS] = pages_records.RecordExtensions()
    for module in (pages_stages, pages_approvals, pages_duplicates, pages_follow_ups, pages_comments, pages_imports,
                   pages_convert, pages_leads):  # the record page's panels in this order, top to bottom
        module.extend(record_page)
    pages_check_in.extend(record_page, platform.metadata)
    pages_checklist.extend(record_page)
    for found in find_apps(platform.settings.apps):  # each app's own pages (runtime/apps.py)
        if found.pages is not None:
            found.pages(app)
    sign_in.init_app(app)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(e: HTTPException):
    """An unknown URL or method matches no blueprint: the API answers in its error shape, the rest with a page."""
    return errors.http_error(e) if request.path.startswith(errors.API_PREFIX) else pages_base.http_error_page(e)
