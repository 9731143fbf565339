"""What every page shares: the blueprint, the signed-in user's access loaded per request, the CSRF
check, security headers, the error pages and the helpers the views use (data scope once per object
and request, value display, safe redirects)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, flash, g, get_flashed_messages, redirect, render_template, request, session, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime import navigation
from objectplatform.runtime.actions import actions_service
from objectplatform.runtime.auth import auth_service
from objectplatform.runtime.errors import Message, NotFound, RuntimeFailure
from objectplatform.runtime.users import user_zone

from . import csrf
from .current import get_platform
from .i18n import date_in_words, error_text, language, text, translator
from .pages_view import REFERENCE_TYPES as REFERENCE_TYPES
from .pages_view import Display, object_label

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/pages")

PUBLIC_ENDPOINTS = frozenset({"pages.login", "pages.switch_language", "pages.static"})
SESSION_TOKEN = "token"  # the session's key for its token (runtime/auth.py), which sign-out revokes


# ------------------------------------------------------------------------------------ request setup


@bp.before_request
def _before() -> Any:
    g.lang = language()
    g.zone = get_platform().settings.zone
    if not csrf.request_is_valid():
        return error_page(400, text("error.csrf", g.lang))
    if request.endpoint in PUBLIC_ENDPOINTS:
        g.access = None
        return None
    token = session.get(SESSION_TOKEN)
    g.access = _access(token) if token else None
    if g.access is None:
        session.pop(SESSION_TOKEN, None)
        flash(text("login.required", g.lang), "info")
        return redirect(url_for("pages.login", next=request.full_path if request.method == "GET" else None))
    return None


def _access(token: str):
    """The signed-in user's Access, or None when the session has ended (signed out, a new password, the user
    deactivated) or the user is gone."""
    platform = get_platform()
    found = auth_service(platform).signed_in(token)
    if found is None:
        return None
    g.zone = user_zone(platform, found.user)
    return found.access


@bp.after_request
def _headers(response):
    """No framing, no sniffing, scripts and styles from this site only (the pages have no inline script)."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'")
    return response


@bp.app_context_processor
def _context() -> dict:
    lang = g.get("lang") or language()
    access = g.get("access")
    platform = get_platform()
    nav = []
    if access is not None:
        objects = platform.metadata.objects  # child objects (order lines, stage history) live on their parent's page
        nav = [(name, object_label(objects[name], lang, plural=True)) for name in access.readable_objects()
               if not any(f.type == "master_detail" for f in objects[name].fields.values())]
    return {"_": translator(lang), "lang": lang, "access": access, "nav": nav, "menu": _menu(platform, access, lang),
            "csrf_token": csrf.token, "date_in_words": date_in_words,
            "other_lang": "en" if lang == "zh" else "zh", "messages": get_flashed_messages(with_categories=True)}


def _menu(platform, access, lang: str) -> list[dict]:
    """The navigation's groups for the signed-in user: each item's label, link and whether it is this page."""
    if access is None:
        return []
    here = request.view_args.get("obj") if request.view_args else None
    endpoint = request.endpoint or ""
    groups = []
    for group in navigation.menu(platform.metadata, platform.registry, access):
        items = []
        for item in group.items:
            if item.object is not None:
                link = url_for(item.endpoint, obj=item.object)
                current = here == item.object and endpoint == item.endpoint
            else:
                link = url_for(item.endpoint)
                current = endpoint == item.endpoint or (item.endpoint == "pages.reports"
                                                        and endpoint.startswith("pages.report"))
            items.append({"label": item.label.get(lang), "link": link, "current": current, "page": item.page})
        groups.append({"key": group.key, "label": group.label.get(lang), "items": items})
    return groups


def error_page(status: int, message: str | None = None, hint: str | None = None):
    lang = g.get("lang") or language()
    title = text(f"error.{status}" if status in (400, 403, 404) else "error.title", lang)
    return render_template("pages/error.html", status=status, title=title, message=message, hint=hint), status


@bp.errorhandler(RuntimeFailure)
def _failure(e: RuntimeFailure):
    if isinstance(e, NotFound):  # what is missing, by its label (`找不到编号为 9 的销售订单`), and what that may mean
        return error_page(404, error_text(e.message, g.lang), text("error.404_detail", g.lang))
    return error_page(e.status if e.status in (400, 403) else 400, error_text(e.message, g.lang))


@bp.errorhandler(404)
def _not_found(e):
    return error_page(404, text("error.404_detail", g.get("lang") or language()))


def http_error_page(e):
    """The page for an HTTP error outside every page route (an unknown URL, a wrong method)."""
    if e.code == 404:
        return _not_found(e)
    return error_page(e.code or 500, e.description)


# ------------------------------------------------------------------------------------ helpers


def object_def(name: str, operation: str = "read") -> ObjectDef:
    """The object definition, after checking the user may `operation` it (404 for an unknown object)."""
    obj = get_platform().metadata.objects.get(name)
    if obj is None:
        raise NotFound(Message("object.unknown", "unknown object {object}", object=name))
    g.access.require(name, operation)
    return obj


def scope(obj: str, operation: str = "read"):
    """The user's data scope on `obj`'s table for reading (or "edit", "delete"), computed once per request."""
    scopes = g.setdefault("scopes", {})
    if (obj, operation) not in scopes:
        scopes[obj, operation] = g.access.scope(obj, get_platform().schema[obj].table, operation)
    return scopes[obj, operation]


def page_display() -> Display:
    if "display" not in g:
        g.display = Display(get_platform(), g.access, g.lang, g.zone)
    return g.display


def local_path(target_: str | None) -> str | None:
    """`target_` when it is a path on this site (one leading slash: no scheme, no host), else None. A backslash
    or a control character makes it None too: browsers read a backslash as a slash and drop tabs and line breaks
    from a Location (so `next=/%09/evil.com` would lead to //evil.com, another site), and a line break cannot go
    in a header."""
    if (not isinstance(target_, str) or not target_.startswith("/") or target_.startswith("//") or "\\" in target_
            or any(c < " " or c == "\x7f" for c in target_)):
        return None
    return target_


def url_with(**changes: Any) -> str:
    """The current URL with some query parameters replaced (None removes one)."""
    args = {k: v for k, v in request.args.items(multi=False)}
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return request.path + ("?" + urlencode(args) if args else "")


MAX_TRAIL = 20  # pages the "previous" link can walk back; beyond that, "first page"


def cursor_pager(next_cursor: str | None, total: int, exact: bool = True) -> dict:
    """A list paged by `?cursor=` (its first page without one): the page's number, how many in all and the links to
    the first, previous and next pages, the cursors of the pages before this one riding along in `trail`."""
    args = request.args
    cursor = args.get("cursor") or None
    trail = args["trail"].split(",") if "trail" in args else []
    number = int(args["page"]) if cursor and args.get("page", "").isdigit() else 1
    pager: dict[str, Any] = {"number": number, "total": total, "exact": exact}
    if next_cursor:
        pager["next"] = url_with(cursor=next_cursor, trail=",".join([*trail, cursor or ""][-MAX_TRAIL:]),
                                 page=str(number + 1))
    if cursor:
        pager["first"] = url_with(cursor=None, trail=None, page=None)
        if trail:
            previous = trail[-1]
            pager["prev"] = url_with(cursor=previous or None, trail=",".join(trail[:-1]) if previous else None,
                                     page=str(number - 1) if previous else None)
    return pager


def available_actions(obj: str, bulk: bool = False) -> list:
    """The actions of `obj` the user's roles allow (on a list: those that run in bulk)."""
    service = actions_service(get_platform())
    return [a for a in service.for_object(obj) if (a.bulk or not bulk) and service.allowed(g.access, obj, a.name)]
