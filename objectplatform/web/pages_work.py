"""The work queue's pages: the to-do inbox (/todos), the notifications (/notifications) and the bell, each paged
by cursor as the list pages are (the rules' groups on the first page).

Each is one call of `runtime/workqueue` for the signed-in user, the same calls the API makes; the bell
in the header shows the unread count (read once per page, only when the header is drawn).
"""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa
from flask import flash, g, redirect, render_template, request, url_for

from objectplatform.runtime.actions import actions_service
from objectplatform.runtime.records.query import MAX_LIMIT
from objectplatform.runtime.storage.engine import reading
from objectplatform.runtime.workqueue import work_queue

from .current import get_platform
from .i18n import has_text, text
from .pages_base import bp, cursor_pager, local_path, page_display, scope
from .pages_lists import PAGE_SIZE
from .pages_view import field_label, local_time


@bp.app_context_processor
def _bell() -> dict:
    def unread() -> int:
        access = g.get("access")
        if access is None:
            return 0
        if "unread_notifications" not in g:
            g.unread_notifications = work_queue(get_platform()).unread_count(access.user_id)
        return g.unread_notifications

    def open_todos() -> int:
        access = g.get("access")
        return 0 if access is None else work_queue(get_platform()).open_todo_count(access)

    return {"unread_notifications": unread, "open_todos": open_todos}


def _when(moment) -> str:
    return local_time(moment, g.zone).strftime("%Y-%m-%d %H:%M")


def _kind(kind: str) -> str:
    key = f"todos.kind.{kind}"
    return text(key, g.lang) if has_text(key) else kind


def _link(obj: str | None, record_id: str | None) -> str | None:
    """The record's page, for a record of an object the user may read."""
    if obj and record_id and obj in get_platform().metadata.objects and g.access.can(obj, "read"):
        return url_for("pages.record", obj=obj, id=record_id)
    return None


CONTEXT_FIELDS = 4  # how many of a record's list columns a to-do shows beside its title


def _own_action(todo) -> dict | None:
    """A task's own action (确认回款 for a payment to confirm) as its button, when the user's roles allow it and it
    asks for nothing: running it closes the to-do; None when the to-do is only ticked done."""
    platform = get_platform()
    if todo.kind == "approval" or not todo.action or todo.object not in platform.metadata.objects:
        return None
    service = actions_service(platform)
    action = service.by_object.get(todo.object, {}).get(todo.action)
    if action is None or action.params or not todo.record_id:
        return None
    if not service.allowed(g.access, todo.object, todo.action):
        return None
    return {"url": url_for("pages.run_one", obj=todo.object, id=todo.record_id, name=todo.action),
            "label": action.label.get(g.lang)}


def _contexts(items) -> dict[str, list[tuple[str, str]]]:
    """{to-do id: [(field label, value)]}: what a to-do is about, from its record's list columns (an order's
    customer, amount, status, owner...) that the user may read, one query per object; none for a record gone or
    outside the user's scope."""
    platform, display = get_platform(), page_display()
    by_object: dict[str, dict[str, list[str]]] = {}  # object -> record id -> to-do ids
    for t in items:
        if t.object in platform.metadata.objects and t.record_id and g.access.can(t.object, "read"):
            by_object.setdefault(t.object, {}).setdefault(str(t.record_id), []).append(t.id)
    found: dict[str, tuple] = {}
    for name, todos in by_object.items():
        obj = platform.metadata.objects[name]
        names = [n for n in (obj.list_view.columns if obj.list_view else ())
                 if n != obj.title_field and n in obj.fields][:CONTEXT_FIELDS]
        ids = list(todos)
        for start in range(0, len(ids), MAX_LIMIT):  # a page holds at most MAX_LIMIT records
            chunk = ids[start:start + MAX_LIMIT]
            page = platform.records.list(name, filters={"id__in": ",".join(chunk)}, where=scope(name),
                                         limit=len(chunk), count=False, seen_by=g.access)
            display.want(obj, page.items, names)
            for record in page.items:
                for todo_id in todos[str(record["id"])]:
                    found[todo_id] = (obj, record, names)
    return {todo_id: [(field_label(obj, n, g.lang), shown) for n in names
                      if (shown := display.text(obj, n, record.get(n)))]
            for todo_id, (obj, record, names) in found.items()}


def _submitted(items) -> dict[str, tuple[str, str]]:
    """{to-do id: (submitter's name, when)} of the approval to-dos: who asked, and since when it waits."""
    platform, display = get_platform(), page_display()
    ids = {int(t.approval_id): t.id for t in items if t.kind == "approval" and t.approval_id}
    if not ids:
        return {}
    table = platform.schema.approvals
    with reading(platform.engine) as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.submitter, table.c.started_at)
                            .where(table.c.id.in_(sorted(ids)))).all()
    display.want_ids("user", [submitter for _, submitter, _ in rows if submitter is not None])
    return {ids[approval]: (display.title("user", submitter) if submitter is not None else "-",
                            _when(started.replace(tzinfo=UTC)))
            for approval, submitter, started in rows}


@bp.route("/todos")
def todos():
    return todos_page()


def todos_page(status: int = 200, errors: dict[str, str] | None = None, comments: dict[str, str] | None = None):
    """The inbox; an approval to-do whose decision was refused shows `errors[id]` and keeps `comments[id]`
    (a refusal for a to-do no longer open, decided meanwhile, shows above the list)."""
    platform = get_platform()
    queue, rule, cursor = work_queue(platform), request.args.get("rule") or None, request.args.get("cursor") or None
    groups = [] if rule else queue.todo_groups(g.access)
    items = queue.todos_for(g.access, rule=rule, except_rules=[group.rule for group in groups], limit=PAGE_SIZE + 1,
                            after=cursor)
    items, pager = _paged(items, queue.open_todo_count(g.access, rule=rule))
    roles = platform.metadata.roles
    contexts, submitted = _contexts(items), _submitted(items)
    rows = [{"item": t, "title": t.title_en if g.lang == "en" else t.title_zh, "link": _link(t.object, t.record_id),
             "context": contexts.get(t.id, []), "submitted": submitted.get(t.id),
             "role": roles[t.role].label.get(g.lang) if t.role in roles else t.role,
             "when": _when(t.created_at), "kind": _kind(t.kind), "decide": t.kind == "approval" and t.approval_id,
             "act": _own_action(t),
             "error": (errors or {}).get(t.id), "comment": (comments or {}).get(t.id, "")}
            for t in items]
    gone = [message for todo_id, message in (errors or {}).items() if todo_id not in {t.id for t in items}]
    grouped = [{"title": text("todos.group", g.lang, label=group.label.get(g.lang), count=group.count),
                "link": url_for("pages.todos", rule=group.rule), "when": _when(group.newest),
                "kind": _kind("reminder"), "count": group.count} for group in groups]
    return render_template("pages/todos.html", rows=rows, grouped=[] if cursor else grouped, errors=gone,
                           rule=_rule_label(platform, rule), pager=pager,
                           here=url_for("pages.todos", **request.args.to_dict())), status  # a refusal: a POST


def _paged(items: list, total: int) -> tuple[list, dict]:
    """A page of the to-dos or notifications read with one more than PAGE_SIZE (there is a next page when it came):
    the page's items and its pager, the next page after its last item's id."""
    return items[:PAGE_SIZE], cursor_pager(items[PAGE_SIZE - 1].id if len(items) > PAGE_SIZE else None, total)


def _rule_label(platform, rule: str | None) -> str | None:
    """The label, in the page's language, of the rule a filtered inbox or bell page shows (its name if unknown)."""
    shown = platform.metadata.flows.get(rule) if rule else None
    return shown.label.get(g.lang) if shown is not None else rule


@bp.route("/todos/<todo_id>/done", methods=["POST"])
def finish_todo(todo_id: str):
    work_queue(get_platform()).done(g.access, todo_id)
    flash(text("todos.finished", g.lang), "success")
    return redirect(local_path(request.form.get("next")) or url_for("pages.todos"))  # the page it was ticked on


@bp.route("/notifications")
def notifications():
    """The bell's page: a rule's many unread notifications (a follow-up reminder per lead) as one line linking to
    them (?rule=), as the inbox groups to-dos; the unread count counts each."""
    platform = get_platform()
    queue, rule, cursor = work_queue(platform), request.args.get("rule") or None, request.args.get("cursor") or None
    groups = [] if rule else queue.notification_groups(g.access.user_id)
    items, unread = queue.notifications_for(g.access.user_id, rule=rule, except_rules=[group.rule for group in groups],
                                            limit=PAGE_SIZE + 1, after=cursor)
    items, pager = _paged(items, queue.notification_count(g.access.user_id, rule))
    rows = [{"item": n, "title": n.title_en if g.lang == "en" else n.title_zh, "link": _link(n.object, n.record_id),
             "when": _when(n.created_at)}
            for n in items]
    grouped = [{"title": text("notifications.group", g.lang, label=group.label.get(g.lang), count=group.count),
                "link": url_for("pages.notifications", rule=group.rule), "when": _when(group.newest)}
               for group in groups]
    return render_template("pages/notifications.html", rows=rows, grouped=[] if cursor else grouped, unread=unread,
                           rule=rule, rule_label=_rule_label(platform, rule), pager=pager)


@bp.route("/notifications/<notification_id>/read", methods=["POST"])
def read_notification(notification_id: str):
    work_queue(get_platform()).mark_read(g.access.user_id, notification_id)
    return redirect(url_for("pages.notifications"))


@bp.route("/notifications/read", methods=["POST"])
def read_all_notifications():
    rule = request.form.get("rule") or None
    work_queue(get_platform()).mark_read(g.access.user_id, rule=rule)
    flash(text("notifications.all_read", g.lang), "success")
    return redirect(url_for("pages.notifications", rule=rule))
