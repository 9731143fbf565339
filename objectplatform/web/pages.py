"""The HTML pages: sign-in, navigation, list, record, create/edit forms and actions, for every object.

(How it works: docs/engine.md, "objectplatform/web/pages.py".)"""

from __future__ import annotations

from flask import Flask, g, redirect, render_template, request, session, url_for

from objectplatform.runtime.auth import auth_service
from objectplatform.runtime.errors import Forbidden, Message, Unauthenticated

from . import csrf
from .current import get_platform
from .i18n import LANGUAGES, text
from .pages_admin import metadata_context
from .pages_base import SESSION_TOKEN, bp, local_path


def init_app(app: Flask) -> None:
    """Register the pages at / with secure session cookies (Secure when the settings say HTTPS)."""
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    if app.extensions["objectplatform"].settings.secure_cookies:
        app.config["SESSION_COOKIE_SECURE"] = True
    app.register_blueprint(bp)


# ------------------------------------------------------------------------------------ sign-in


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = local_path(request.values.get("next"))
    error = None
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        try:
            session_token, _user = auth_service(get_platform()).issue_token(
                username, request.form.get("password", ""), address=request.remote_addr)
        except Unauthenticated:
            error = text("login.failed", g.lang)
        else:
            lang = session.get("lang")
            session.clear()
            session[SESSION_TOKEN] = session_token
            if lang:
                session["lang"] = lang
            csrf.renew()
            return redirect(next_url or url_for("pages.home"))
    return render_template("pages/login.html", error=error, username=username, next=next_url), \
        (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    auth_service(get_platform()).revoke(session.get(SESSION_TOKEN))
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    csrf.renew()
    return redirect(url_for("pages.login"))


@bp.route("/lang/<code>")
def switch_language(code: str):
    if code in LANGUAGES:
        session["lang"] = code
    return redirect(local_path(request.args.get("next")) or url_for("pages.home"))


# ------------------------------------------------------------------------------------ metadata browser


@bp.route("/admin/metadata")
def metadata_browser():
    if not g.access.is_admin:
        raise Forbidden(Message("page.admins_only", "the metadata browser is for administrators"))
    return render_template("pages/metadata.html", **metadata_context(get_platform().metadata, g.lang))
