"""The pool work's pages beyond the generic ones: "mine" (我的线索) with status tabs and the forgotten tab
and the return dialog (退回线索池); the navigation names them (runtime/navigation.py).

(How it works: docs/engine.md, "objectplatform/web/pages_leads.py".)"""

from __future__ import annotations

from datetime import UTC, timedelta

import sqlalchemy as sa
from flask import flash, g, redirect, render_template, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.actions import actions_service, run_action
from objectplatform.runtime.behaviors import convertible
from objectplatform.runtime.behaviors import pool as pool_behavior
from objectplatform.runtime.errors import BadRequest, Message, NotFound, ValidationFailed, said_object
from objectplatform.runtime.storage.engine import reading

from .current import get_platform
from .i18n import error_text, text
from .pages_base import bp, object_def, page_display, scope, url_with
from .pages_lists import columns_of
from .pages_pools import NO_POOL_OBJECT, pool_object
from .pages_records import RecordExtensions
from .pages_view import field_label, object_label

PAGE_SIZE = 50
DEFAULT_FORGOTTEN_DAYS = 7


# ------------------------------------------------------------------------------------ my leads


def status_tabs(definition: ObjectDef) -> tuple[str, ...]:
    """The states a tab shows: the pool's held ones, the converted value (convertible), the pool's invalid."""
    config = pool_behavior.POOL.config_of(definition)
    converted = ()
    if convertible.BEHAVIOR in definition.behaviors:
        converted = (convertible.config(get_platform().metadata, definition.name).converted_value,)
    return (*config.open, *converted, config.invalid_status)


def forgotten_condition(definition: ObjectDef, ot, days: int) -> sa.ColumnElement[bool]:
    """Held, and no follow-up (else no assignment, else no creation) for more than `days` days."""
    cutoff = (get_platform().clock.now() - timedelta(days=days)).astimezone(UTC).replace(tzinfo=None)
    followed = pool_behavior.last_followed_field(definition)
    config = pool_behavior.POOL.config_of(definition)
    last = sa.func.coalesce(*([ot.column(followed)] if followed else []), ot.column(config.assigned_at_field),
                            ot.table.c.created_at)
    return sa.and_(ot.column(config.status_field).in_(config.open), last < cutoff)


def tab_counts(definition: ObjectDef, days: int) -> dict[str, int]:
    """{tab: how many of the user's records it holds}, in one statement."""
    platform = get_platform()
    obj = definition.name
    ot = platform.schema[obj]
    status = ot.column(pool_behavior.POOL.config_of(definition).status_field)
    counted = [sa.func.count().label("all")]
    counted += [sa.func.sum(sa.case((status == tab, 1), else_=0)).label(tab) for tab in status_tabs(definition)]
    counted.append(sa.func.sum(sa.case((forgotten_condition(definition, ot, days), 1), else_=0)).label("forgotten"))
    where = [ot.table.c.owner == int(g.access.user_id)]
    if scope(obj) is not None:
        where.append(scope(obj))
    with reading(platform.engine) as conn:
        row = conn.execute(sa.select(*counted).where(*where)).mappings().one()
    return {key: int(value or 0) for key, value in row.items()}


def _days() -> int:
    raw = request.args.get("days", "").strip()
    if not raw:
        return DEFAULT_FORGOTTEN_DAYS
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 3650:
        raise BadRequest(Message("page.bad_days", "days: {days!r} is not a whole number of days from 1 to 3650",
                                 days=raw),
                         {"days": [Message("page.days", "must be a whole number from 1 to 3650")]})
    return int(raw)


@bp.route("/leads/mine")
def my_leads():
    obj = pool_object()
    if obj is None:
        raise NotFound(NO_POOL_OBJECT)
    definition = object_def(obj)
    platform = get_platform()
    days = _days()
    tabs = status_tabs(definition)
    tab = request.args.get("tab", tabs[0])
    if tab not in (*tabs, "all", "forgotten"):
        tab = tabs[0]
    filters = {"owner": g.access.user_id}
    where = None
    status_field = pool_behavior.POOL.config_of(definition).status_field
    if tab in tabs:
        filters[status_field] = tab
    elif tab == "forgotten":
        where = forgotten_condition(definition, platform.schema[obj], days)
    cursor = request.args.get("cursor") or None
    page = platform.records.list(obj, filters=filters, cursor=cursor, limit=PAGE_SIZE, where=where, count=False,
                                 seen_by=g.access, scope=g.access)
    mask = platform.records.mask(obj, g.access)
    columns = [c for c in columns_of(definition) if c != "owner" and mask.visible(c)]
    display = page_display()
    display.want(definition, page.items, columns)
    rows = [{"id": r["id"], "cells": [display.text(definition, columns[0], r.get(columns[0])) or
                                      display.record_title(definition, r),
                                      *(display.html(definition, c, r.get(c)) for c in columns[1:])]}
            for r in page.items]
    counts = tab_counts(definition, days)
    labelled = [(t, display.text(definition, status_field, t)) for t in tabs] + [
        ("all", text("leads.tab_all", g.lang)), ("forgotten", text("leads.tab_forgotten", g.lang, days=days))]
    keep_days = None if days == DEFAULT_FORGOTTEN_DAYS else days
    return render_template(
        "pages/my_leads.html", obj=definition, tab=tab, days=days, counts=counts,
        tabs=[{"key": t, "label": label, "count": counts[t], "url": url_for("pages.my_leads", tab=t, days=keep_days)}
              for t, label in labelled],
        headers=[field_label(definition, c, g.lang) for c in columns], rows=rows,
        next_url=url_with(cursor=page.next_cursor) if page.next_cursor else None,
        first_url=url_with(cursor=None) if cursor else None, object_label=object_label(definition, g.lang))


# ------------------------------------------------------------------------------------ return dialog


def _return_dialog(obj, record) -> str | None:
    if "pool" not in obj.behaviors:
        return None
    return url_for("pages.return_dialog", obj=obj.name, id=record["id"])


def extend(page: RecordExtensions) -> None:
    page.dialogs["return"] = _return_dialog


@bp.route("/o/<obj>/<id>/return", methods=["GET", "POST"])
def return_dialog(obj: str, id: str):
    """退回线索池: a reason (required) and, optionally, another pool than the record's own."""
    definition = object_def(obj)
    if "pool" not in definition.behaviors:
        raise NotFound(Message("pool.no_pool_behavior", "{object} has no lead pool", object=said_object(definition)))
    platform = get_platform()
    g.access.require_action(obj, "return", actions_service(platform).get(obj, "return").label)
    current = platform.records.get(obj, id, where=scope(obj))
    behavior = pool_behavior.behavior_of(platform, obj)
    pools = platform.records.list(behavior.pool_object, sort="name", limit=500, count=False,
                                  where=scope(behavior.pool_object)).items
    display = page_display()
    own = current.get(behavior.pool_field)
    if own:
        display.want(definition, [current], [behavior.pool_field])
    errors: dict[str, list[str]] = {}
    reason, chosen = "", ""
    if request.method == "POST":
        reason, chosen = request.form.get("reason", ""), request.form.get("pool", "")
        try:
            run_action(platform, g.access, obj, "return", current["id"], {"reason": reason, "pool": chosen or None})
        except ValidationFailed as e:
            errors = {k: [error_text(m, g.lang) for m in ms] for k, ms in e.fields.items()}
        else:
            flash(text("leads.returned", g.lang), "success")
            return redirect(url_for("pages.my_leads"))
    return render_template(
        "pages/return.html", obj=definition, record=current, title=display.record_title(definition, current),
        object_label=object_label(definition, g.lang), pools=[(p["id"], p["name"]) for p in pools if p["id"] != own],
        own_pool=display.title(behavior.pool_object, own) if own else None, reason=reason, chosen=chosen,
        errors=errors), (422 if errors else 200)
