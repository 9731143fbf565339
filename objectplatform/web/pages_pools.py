"""The pool board (线索池): the pools the user may see, the chosen pool's waiting records with the pool's
hidden fields masked, and claim / assign for one record or a selection.

(How it works: docs/engine.md, "objectplatform/web/pages_pools.py".)"""

from __future__ import annotations

import sqlalchemy as sa
from flask import flash, g, redirect, render_template, request, url_for

from objectplatform.runtime.actions import actions_service, run_action
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.errors import Message, NotFound, ValidationFailed, no_record

from .current import get_platform
from .forms import make_input
from .i18n import error_text, text
from .pages_base import bp, local_path, object_def, page_display, url_with
from .pages_lists import columns_of
from .pages_view import field_label, object_label

PAGE_SIZE = 50
NO_POOL_OBJECT = Message("pool.no_pool_object", "no object with the pool behavior")


def pool_object() -> str | None:
    """The first object with the pool behavior that the user may read (the CRM's lead)."""
    for name in g.access.readable_objects():
        if "pool" in get_platform().metadata.objects[name].behaviors:
            return name
    return None


def visible_pools(obj: str) -> list[dict]:
    """The pools of `obj` the user sees on the board, by name."""
    platform = get_platform()
    behavior = pool_behavior.behavior_of(platform, obj)
    table = behavior.pot.table
    if g.access.is_admin:
        where = None
    else:
        ids = sorted(g.access.pools.get(obj, (None, frozenset()))[1])
        where = table.c.id.in_(ids) if ids else sa.false()
    return platform.records.list(behavior.pool_object, where=where, sort="name", limit=500, count=False).items


def failure_lines(result: dict, titles: dict[str, str]) -> list[str]:
    """Each failed record of a bulk result as "title: reason" in the page's language."""
    lines = []
    for failure in result["failed"]:
        error = failure["error"]
        reasons = [error_text(m, g.lang) for ms in error.get("fields", {}).values() for m in ms]
        lines.append(text("pool.failure", g.lang, title=titles.get(failure["id"], f"#{failure['id']}"),
                          reason="; ".join(reasons) or error_text(error["message"], g.lang)))
    return lines


@bp.route("/pools")
def pool_board():
    obj = pool_object()
    if obj is None:
        raise NotFound(NO_POOL_OBJECT)
    definition = object_def(obj)
    platform = get_platform()
    behavior = pool_behavior.behavior_of(platform, obj)
    pools = visible_pools(obj)
    chosen = request.args.get("pool") or (pools[0]["id"] if pools else None)
    current = next((p for p in pools if p["id"] == chosen), None)
    if chosen is not None and current is None:
        raise NotFound(no_record(behavior.pot.object, chosen))
    context: dict = {"pools": pools, "current": current, "rows": [], "headers": [], "total": 0, "total_exact": True,
                     "next_url": None}
    if current is not None:
        q = request.args.get("q", "").strip()
        cursor = request.args.get("cursor") or None
        filters = {behavior.pool_field: current["id"], behavior.status: behavior.config.unassigned_status}
        page = platform.records.list(obj, filters=filters, q=q or None, cursor=cursor, limit=PAGE_SIZE,
                                     seen_by=g.access, scope=g.access)
        items = page.items
        mask = platform.records.mask(obj, g.access)
        hidden = {behavior.pool_field, behavior.status, "owner", behavior.last_followed}
        columns = [c for c in columns_of(definition) if c not in hidden and mask.visible(c)]
        display = page_display()
        display.want(definition, items, columns)
        context.update(
            q=q, total=page.total, total_exact=page.total_is_exact,
            headers=[field_label(definition, c, g.lang) for c in columns],
            rows=[{"id": r["id"], "title": display.record_title(definition, r),
                   "cells": [display.text(definition, columns[0], r.get(columns[0])) or
                             display.record_title(definition, r),
                             *(display.html(definition, c, r.get(c)) for c in columns[1:])]} for r in items],
            next_url=url_with(cursor=page.next_cursor) if page.next_cursor else None,
            first_url=url_with(cursor=None) if cursor else None,
            can_claim=g.access.can_act(obj, "claim") and bool(current.get("claimable")),
            can_assign=g.access.can_act(obj, "assign") and behavior.may_manage(g.access, current))
        if context["can_assign"]:
            params = {p.name: p for p in actions_service(platform).get(obj, "assign").params}
            context["assign_inputs"] = [make_input(params["owner"].field(), "owner", (None, ""), g.lang),
                                        make_input(params["owners"].field(), "owners", [], g.lang)]
    return render_template("pages/pool_board.html", obj=definition, object_label=object_label(definition, g.lang),
                           pool_label=object_label(platform.metadata.objects[behavior.pool_object], g.lang),
                           board_url=request.full_path.rstrip("?"), **context)


@bp.route("/pools/act", methods=["POST"])
def pool_act():
    """Claim or assign the selected records (or the one whose row button was pressed)."""
    obj = pool_object()
    if obj is None:
        raise NotFound(NO_POOL_OBJECT)
    object_def(obj)
    form = request.form
    back = local_path(form.get("next")) or url_for("pages.pool_board")
    if form.get("claim_one") or form.get("assign_one"):
        name = "claim" if form.get("claim_one") else "assign"
        ids = [form.get(f"{name}_one")]
    else:
        name, ids = form.get("do", ""), [i for i in form.getlist("ids") if i]
    if name not in ("claim", "assign"):
        raise NotFound(Message("pool.no_board_action", "{object} has no board action {action}", object=obj,
                                       action=name))
    if not ids:
        flash(text("pool.none_selected", g.lang), "error")
        return redirect(back)
    params: dict = {}
    if name == "assign":
        owners = list(dict.fromkeys(o for o in form.getlist("owners") if o))
        if len(owners) > 1:
            params["owners"] = owners
        elif owners or form.get("owner"):
            params["owner"] = owners[0] if owners else form["owner"]
        else:
            flash(text("pool.choose_owner", g.lang), "error")
            return redirect(back)
    display = page_display()
    display.want_ids(obj, ids)
    titles = {i: display.title(obj, i) for i in ids}  # before the records leave the pool
    try:
        result = run_action(get_platform(), g.access, obj, name, ids, params)
    except ValidationFailed as e:
        labels = {p.name: p.label.get(g.lang) for p in actions_service(get_platform()).get(obj, name).params}
        for field, messages in e.fields.items():
            flash(text("pool.param_error", g.lang, param=labels.get(field, field),
                       message="; ".join(error_text(m, g.lang) for m in messages)), "error")
        return redirect(back)
    key = "pool.claimed" if name == "claim" else "pool.assigned"
    flash(text(key, g.lang, ok=len(result["succeeded"]), failed=len(result["failed"])),
          "success" if not result["failed"] else "error")
    for line in failure_lines(result, titles):
        flash(line, "error")
    return redirect(back)
