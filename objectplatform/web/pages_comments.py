"""Comments in the pages: the thread on a record page (replies indented under what they answer), its comment form
with an @mention picker of colleagues, and each reply's form; the same service calls the API makes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import flash, g, redirect, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.behaviors.comments import Comment, comments_service, has_comments
from objectplatform.runtime.errors import ValidationFailed
from objectplatform.runtime.storage.engine import reading
from objectplatform.runtime.users import USER

from .current import get_platform
from .i18n import error_text, text
from .pages_base import bp, local_path, object_def, page_display, scope
from .pages_records import RecordExtensions, record_page
from .pages_view import local_time

MAX_DEPTH = 3  # deeper replies are indented no further (a phone's width)
PICKER_SIZE = 200  # colleagues offered by the @mention picker


def _when(moment) -> str:
    return local_time(moment, g.zone).strftime("%Y-%m-%d %H:%M")


def _parts(body: str, names: list[str]) -> list[tuple[str, bool]]:
    """The body as (text, is a mention) pieces: each `@name` of a mentioned user marked."""
    if not names:
        return [(body, False)]
    pattern = re.compile("(@(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + "))")
    return [(piece, i % 2 == 1) for i, piece in enumerate(pattern.split(body)) if piece]


def thread_entries(comments: list[Comment]) -> list[dict]:
    """The comments as the page shows them: each reply right after the comment it answers (and that one's earlier
    replies), indented by its depth."""
    display = page_display()
    display.want_ids(USER, [c.author for c in comments])
    users = get_platform().schema[USER]
    mentioned = sorted({u for c in comments for u in c.mentions}, key=int)
    names: dict[str, list[str]] = {}
    if mentioned:
        with reading(get_platform().engine) as conn:
            for user_id, username, name in conn.execute(sa.select(
                    users.table.c.id, users.column("username"), users.column("display_name")).where(
                    users.table.c.id.in_([int(u) for u in mentioned]))):
                names[str(user_id)] = [n for n in (username, name) if n]
    children: dict[str | None, list[Comment]] = {}
    known = {c.id for c in comments}
    for c in comments:
        children.setdefault(c.parent_id if c.parent_id in known else None, []).append(c)
    shown: list[dict] = []

    def add(parent: str | None, depth: int) -> None:
        for c in children.get(parent, []):
            shown.append({"id": c.id, "record_id": c.record_id, "author": display.title(USER, c.author),
                          "at": _when(c.created_at), "depth": min(depth, MAX_DEPTH), "reply": depth > 0,
                          "parts": _parts(c.body, [n for u in c.mentions for n in names.get(u, [])])})
            add(c.id, depth + 1)

    add(None, 0)
    return shown


def colleagues() -> list[tuple[str, str]]:
    """(display name, username) of the active users the signed-in user can see, for the @mention picker (read
    once per request)."""
    if "comment_colleagues" not in g:
        g.comment_colleagues = _colleagues()
    return g.comment_colleagues


def _colleagues() -> list[tuple[str, str]]:
    platform = get_platform()
    if not g.access.can(USER, "read"):
        return []
    users = platform.schema[USER]
    where = scope(USER)
    stmt = (sa.select(users.column("display_name"), users.column("username"))
            .where(users.column("active") == sa.true(), users.table.c.id != int(g.access.user_id),
                   *([where] if where is not None else []))
            .order_by(users.column("display_name"), users.table.c.id).limit(PICKER_SIZE))
    with reading(platform.engine) as conn:
        return [(name or username, username) for name, username in conn.execute(stmt)]


def thread_view(obj: str, record_id: str, entries: list[dict], picker: str | None, state: Mapping[str, Any],
                next_url: str | None = None) -> dict:
    """What `_comment_thread.html` draws of one record's thread: its entries, where its forms post (and go back to),
    the @mention picker's datalist id (None: no picker), and a refused form's text and errors."""
    errors = state.get("comment_errors") or {}
    return {"key": f"{obj}-{record_id}", "entries": entries, "colleagues": picker, "next": next_url,
            "action": url_for("pages.add_comment", obj=obj, id=record_id),
            "parent": state.get("comment_parent") or "", "body": state.get("comment_body", ""),
            "errors": [error_text(m, g.lang) for ms in errors.values() for m in ms]}


def thread_panel(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> dict | None:
    """The record's comments and the forms to add one or reply (kept with their errors when refused)."""
    if not has_comments(obj):
        return None
    comments = comments_service(get_platform()).thread(g.access, obj.name, record["id"])
    picker = colleagues()
    return {"template": "pages/_comments.html", "total": len(comments), "colleagues": picker,
            "thread": thread_view(obj.name, record["id"], thread_entries(comments),
                                  "comment-colleagues" if picker else None, state)}


def extend(page: RecordExtensions) -> None:
    page.panels.append(thread_panel)


@bp.route("/o/<obj>/<id>/comments", methods=["POST"])
def add_comment(obj: str, id: str):
    """A comment or a reply on the record, then back to `next` (the page it was written on: a timeline's) or the
    record's page; refused, the record's page comes back with the text kept and the errors beside its form."""
    definition = object_def(obj)
    current = get_platform().records.get(obj, id, where=scope(obj))
    body, parent = request.form.get("body", ""), request.form.get("parent") or None
    try:
        comment = comments_service(get_platform()).add(g.access, definition.name, current["id"], body, parent)
    except ValidationFailed as e:
        return record_page(obj, current["id"], 422, comment_body=body, comment_parent=parent, comment_errors=e.fields)
    flash(text("comment.added", g.lang), "success")
    back = local_path(request.form.get("next")) or url_for("pages.record", obj=obj, id=current["id"])
    return redirect(back + f"#comment-{comment.id}")
