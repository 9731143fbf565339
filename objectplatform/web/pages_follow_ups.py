"""Follow-ups in the pages: the timeline and quick follow-up form on a record page, and the manager's
feed (工作) of the follow-ups of everyone the viewer's data scope reaches.

(How it works: docs/engine.md, "objectplatform/web/pages_follow_ups.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import flash, g, redirect, render_template, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.behaviors import convertible, follow_ups
from objectplatform.runtime.behaviors.comments import comments_service, has_comments
from objectplatform.runtime.errors import ValidationFailed

from .current import get_platform
from .forms import make_input, posted, shown_value
from .i18n import error_text, text
from .pages_base import bp, object_def, page_display, scope, url_with
from .pages_comments import colleagues, thread_entries, thread_view
from .pages_records import RecordExtensions, record_page
from .pages_view import object_label

TIMELINE_SIZE = 50
FEED_SIZE = 30
FORM_FIELDS = ("kind", "content", "next_follow_up_at")
PREFIX = "follow_up-"  # the quick form's input names, apart from the record page's other forms
DEFAULT_ICON = "•"  # a kind whose option has no `icon` attribute
PICKER = "follow-up-colleagues"  # the id of the @mention picker's datalist of the follow-ups' comment forms


def follow_up_object() -> str | None:
    """The object of the follow-ups the timeline and the feed show (None: no object declares follow_ups)."""
    return follow_ups.follow_up_object(get_platform().metadata)


def _sources(metadata, obj: ObjectDef) -> list[tuple[str, str]]:
    """(object, link field) of the convertible objects with follow-ups whose conversion links to `obj`."""
    found = []
    for other in metadata.objects.values():
        if convertible.BEHAVIOR in other.behaviors and follow_ups.BEHAVIOR in other.behaviors:
            link = convertible.config(metadata, other.name).links.get(obj.name)
            if link:
                found.append((other.name, link))
    return found


def timeline_condition(platform, obj: ObjectDef, record_id: str) -> sa.ColumnElement[bool] | None:
    """The follow-ups of the record, and of the records converted into it; None when `obj` has none."""
    sources = _sources(platform.metadata, obj)
    if follow_ups.BEHAVIOR not in obj.behaviors and not sources:
        return None
    ft = platform.schema[follow_up_object()]
    related_object, related_id = ft.column("related_object"), ft.column("related_id")
    either = [sa.and_(related_object == obj.name, related_id == str(record_id))]
    for source, link in sources:
        st = platform.schema[source]
        converted = sa.select(sa.cast(st.table.c.id, sa.String)).where(st.column(link) == int(record_id))
        either.append(sa.and_(related_object == source, related_id.in_(converted.scalar_subquery())))
    return sa.or_(*either)


def entries(items: list[Mapping[str, Any]], page_url: str, shown_on: tuple[str, str] | None = None,
            picker: str | None = None) -> list[dict]:
    """Follow-ups as the timeline and the feed show them, each with its comment thread when the follow-up object
    has them (its forms come back to `page_url`; `picker`: the @mention datalist's id); the record each belongs to
    is named unless it is `shown_on` (object, id), the record of the page."""
    platform = get_platform()
    display = page_display()
    fu = platform.metadata.objects[follow_up_object()]
    display.want(fu, items, ["owner", "kind"])
    for item in items:
        display.want_ids(item["related_object"], [item["related_id"]])
    threads: dict[str, list[dict]] | None = None
    if has_comments(fu):
        found = comments_service(platform).threads(fu.name, [item["id"] for item in items])
        threads = {}
        for comment in thread_entries([c for thread in found.values() for c in thread]):
            threads.setdefault(comment["record_id"], []).append(comment)
    shown = []
    for item in items:
        related = (item["related_object"], item["related_id"])
        entry = {"id": item["id"], "kind": item.get("kind"), "icon": _icon(fu, item.get("kind")),
                 "kind_label": display.text(fu, "kind", item.get("kind")),
                 "who": display.html(fu, "owner", item.get("owner")),
                 "at": display.text(fu, "followed_at", item.get("followed_at")),
                 "next": display.text(fu, "next_follow_up_at", item.get("next_follow_up_at")),
                 "content": item.get("content") or "", "record": None,
                 "comments": None if threads is None else thread_view(
                     fu.name, item["id"], threads.get(str(item["id"]), []), picker, {}, page_url)}
        if related != shown_on and related[0] in platform.metadata.objects:
            other = platform.metadata.objects[related[0]]
            entry["record"] = {"object": related[0], "id": related[1], "label": object_label(other, g.lang),
                               "title": display.title(related[0], related[1]),
                               "link": display.readable(related[0], related[1])}
        shown.append(entry)
    return shown


def _icon(fu: ObjectDef, kind: str | None) -> str:
    """The timeline's icon of a follow-up kind: its picklist option's `icon` attribute."""
    option = fu.fields["kind"].option(kind) if kind else None
    return option.attrs.get("icon", DEFAULT_ICON) if option else DEFAULT_ICON


def _form_inputs(values: Mapping[str, Any] | None, errors: Mapping[str, list[str]] | None) -> list:
    fu = get_platform().metadata.objects[follow_up_object()]
    inputs = []
    for name in FORM_FIELDS:
        f = fu.fields[name]
        value = (values or {}).get(name)
        item = make_input(f, PREFIX + name, value if values is not None else shown_value(f, f.default, page_display()),
                          g.lang)
        item.errors = [error_text(m, g.lang) for m in (errors or {}).get(name, [])]
        inputs.append(item)
    return inputs


def timeline_panel(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> dict | None:
    """The record page's follow-up timeline, newest first, and its quick follow-up form."""
    platform = get_platform()
    follow_up = follow_up_object()
    if follow_up is None or not g.access.can(follow_up, "read") or obj.name == follow_up:
        return None
    where = timeline_condition(platform, obj, record["id"])
    if where is None:
        return None
    page = platform.records.list(follow_up, where=where, sort="-followed_at", limit=TIMELINE_SIZE, seen_by=g.access)
    errors = state.get("follow_up_errors")
    general = [error_text(m, g.lang) for k, ms in (errors or {}).items() if k not in FORM_FIELDS for m in ms]
    picker = colleagues() if has_comments(platform.metadata.objects[follow_up]) else []
    return {"template": "pages/_follow_ups.html", "total": page.total, "colleagues": picker,
            "entries": entries(page.items, url_for("pages.record", obj=obj.name, id=record["id"]),
                               (obj.name, str(record["id"])), PICKER if picker else None),
            "can_create": g.access.can(follow_up, "create"),
            "inputs": _form_inputs(state.get("follow_up_values"), errors), "general_errors": general,
            "action": url_for("pages.add_follow_up", obj=obj.name, id=record["id"])}


def extend(page: RecordExtensions) -> None:
    page.panels.append(timeline_panel)


@bp.route("/o/<obj>/<id>/follow_ups", methods=["POST"])
def add_follow_up(obj: str, id: str):
    """The quick follow-up form: a follow_up record on this record; errors come back inline, input kept."""
    definition = object_def(obj)
    platform = get_platform()
    fu = object_def(follow_up_object() or "", "create")
    current = platform.records.get(obj, id, where=scope(obj))
    values, typed = {"related_object": definition.name, "related_id": current["id"]}, {}
    for name in FORM_FIELDS:
        value, typed[name] = posted(fu.fields[name], PREFIX + name, request.form, request.files, g.zone)
        values[name] = value if value != "" else None
    try:
        platform.records.within(g.access).create(fu.name, values, user=g.access.user_id)
    except ValidationFailed as e:
        return record_page(obj, current["id"], 422, follow_up_values=typed, follow_up_errors=e.fields)
    flash(text("follow_up.added", g.lang), "success")
    return redirect(url_for("pages.record", obj=obj, id=current["id"]) + "#follow-ups")


# ------------------------------------------------------------------------------------ the feed


@bp.route("/feed")
def feed():
    """Follow-ups of everyone in the viewer's scope, newest first, by person and by record, by cursor."""
    follow_up = object_def(follow_up_object() or "").name
    platform = get_platform()
    args = request.args
    filters = {}
    owner = args.get("owner", "").strip()
    if owner:
        filters["owner"] = owner
    related = (args.get("object", "").strip(), args.get("record", "").strip())
    if all(related):
        filters.update(related_object=related[0], related_id=related[1])
    cursor = args.get("cursor") or None
    page = platform.records.list(follow_up, filters=filters, sort="-followed_at", cursor=cursor, limit=FEED_SIZE,
                                 where=scope(follow_up), seen_by=g.access)
    display = page_display()
    picker = colleagues() if has_comments(platform.metadata.objects[follow_up]) else []
    shown = entries(page.items, request.full_path.rstrip("?"), picker=PICKER if picker else None)
    user_def = platform.metadata.objects["user"]
    if owner:
        display.want(user_def, [{"owner": owner}], ["owner"])
    record = None
    if all(related) and related[0] in platform.metadata.objects:
        display.want_ids(related[0], [related[1]])
        record = {"label": object_label(platform.metadata.objects[related[0]], g.lang),
                  "title": display.title(related[0], related[1]), "clear": url_with(object=None, record=None,
                                                                                    cursor=None)}
    return render_template(
        "pages/feed.html", feed=True, entries=shown, colleagues=picker, total=page.total,
        total_exact=page.total_is_exact, owner=owner,
        owner_title=display.title("user", owner) if owner else "", record=record, related=related,
        next_url=url_with(cursor=page.next_cursor) if page.next_cursor else None,
        first_url=url_with(cursor=None) if cursor else None)
