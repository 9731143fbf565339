"""One record's pages: the record (layout sections, related lists, history, actions), delete, the
generated create/edit forms with inline errors and stale-edit handling, and running actions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app, flash, g, redirect, render_template, request, send_file, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.actions import actions_service, run_action
from objectplatform.runtime.errors import (
    Conflict,
    Forbidden,
    Message,
    NotFound,
    ValidationFailed,
    said_name,
    said_object,
    said_records,
)
from objectplatform.runtime.lifecycles import locked_for
from objectplatform.runtime.storage.engine import reading
from objectplatform.runtime.users import deletable

from .current import get_platform
from .forms import FormBuilder, make_input, posted
from .i18n import error_text, has_text, text
from .pages_base import REFERENCE_TYPES, bp, local_path, object_def, page_display, scope
from .pages_lists import columns_of
from .pages_view import cell_class, field_label, field_type, object_label

RELATED_SIZE = 10
PRINTED_LINES = 500  # an order's lines on paper: all of them, within reason


@dataclass
class RecordExtensions:
    """The record page's extension points, held by each web app (`create_app` fills them, in order):
    `panels` shown above its field sections (each `panel(obj, record, state)` returns a dict with a `template`
    to include, or None; `wide: True` puts it across the page under the header, as the sales path, the others go
    beside the fields, as the timeline; `shows`, the objects whose records it lists, which then have no related
    list of their own, as the stage history); `dialogs`, actions that open their own dialog instead of the generic
    parameter form (`dialog(obj, record)` returns its URL, or None); `after_create`, called with (obj, record) after the
    create form saved a record, before the redirect to its page (e.g. to flash a notice about it);
    `refuses_new`, each `refuses(obj, record, other)` true when a new record of `other` pointing at the record
    would only be refused now (its related list then offers no "new" link)."""

    panels: list[Callable[[ObjectDef, Mapping[str, Any], Mapping[str, Any]], dict | None]] = field(
        default_factory=list)
    dialogs: dict[str, Callable[[ObjectDef, Mapping[str, Any]], str | None]] = field(default_factory=dict)
    after_create: list[Callable[[ObjectDef, Mapping[str, Any]], None]] = field(default_factory=list)
    refuses_new: list[Callable[[ObjectDef, Mapping[str, Any], str], bool]] = field(default_factory=list)


EXTENSIONS = "objectplatform.record_page"  # the key of the app's RecordExtensions in `app.extensions`


def record_extensions() -> RecordExtensions:
    return current_app.extensions[EXTENSIONS]


# ------------------------------------------------------------------------------------ one record


def _sections(obj: ObjectDef, record: Mapping[str, Any]) -> list[dict]:
    """The layout's sections as labelled values, then any field the layout leaves out (never a field the
    user's role hides)."""
    display = page_display()
    mask = get_platform().records.mask(obj.name, g.access)
    placed: set[str] = set()
    sections = []
    for section in obj.layout:
        names = [n for n in section.fields
                 if (n not in obj.fields or obj.fields[n].type != "password") and mask.visible(n)]
        placed.update(section.fields)
        sections.append({"label": section.label.get(g.lang), "columns": section.columns, "names": names})
    rest = [n for n, f in obj.fields.items()
            if n not in placed and not f.hidden and f.type != "password" and mask.visible(n)]
    if rest:
        sections.append({"label": text("record.other", g.lang), "columns": 2, "names": rest})
    for section in sections:
        display.want(obj, [record], section["names"])
    sections = [s for s in sections if s["names"]]
    for section in sections:
        section["items"] = [(field_label(obj, n, g.lang), display.html(obj, n, record.get(n), record["id"]))
                            for n in section["names"]]
        section["empty"] = all(record.get(n) in (None, "", []) for n in section["names"])
    return sections


def _related(obj: ObjectDef, record: Mapping[str, Any], types: tuple[str, ...] = ("lookup", "master_detail"),
             size: int = RELATED_SIZE) -> list[dict]:
    """Each object's records (the first `size`) whose field of `types` points at this record, in the user's
    scope, the record's own lines (master_detail) first; no "new" where the record's state locks its lines (an
    approved order's products)."""
    record_id = record["id"]
    platform = get_platform()
    display = page_display()
    found = []
    for other in platform.metadata.objects.values():
        pointing = [f for f in other.fields.values() if f.type in types and f.to == obj.name]
        if not pointing or not g.access.can(other.name, "read"):
            continue
        for f in pointing:
            mask = platform.records.mask(other.name, g.access)
            if not mask.visible(f.name):
                continue
            page = platform.records.list(other.name, filters={f.name: record_id}, limit=size, sort="id",
                                         where=scope(other.name), seen_by=g.access)
            items = page.items
            columns = [c for c in columns_of(other) if c != f.name and mask.visible(c)][:6]
            display.want(other, items, columns)
            label = object_label(other, g.lang, plural=True)
            if len(pointing) > 1 or other.name == obj.name:
                label = f"{label}（{f.label.get(g.lang)}）" if g.lang == "zh" else f"{label} ({f.label.get(g.lang)})"
            found.append({"object": other, "field": f.name, "label": label, "page": page, "items": items,
                          "columns": columns,
                          "can_create": g.access.can(other.name, "create") and not f.read_only
                          and not (f.type == "master_detail" and locked_for(g.access, obj, record, other.name))
                          and not any(refuses(obj, record, other.name) for refuses in record_extensions().refuses_new)})
    found.sort(key=lambda item: item["object"].fields[item["field"]].type != "master_detail")
    for item in found:
        other = item["object"]
        item["headers"] = [field_label(other, c, g.lang) for c in item["columns"]]
        columns = item["columns"]
        item["classes"] = [cell_class(field_type(other, c)) for c in columns]
        item["rows"] = [{"id": r["id"],
                         "cells": [display.text(other, columns[0], r.get(columns[0])) or display.record_title(other, r),
                                   *(display.html(other, c, r.get(c)) for c in columns[1:])]}
                        for r in item["items"]]
    return found


def _history(obj: ObjectDef, record_id: str) -> list[dict]:
    """The record's audit history, newest first; each change named as people say it (an action by its label)."""
    display = page_display()
    platform = get_platform()
    actions = {a.name: a.label.get(g.lang) for a in actions_service(platform).for_object(obj.name)}
    entries = platform.records.history(obj.name, record_id, where=scope(obj.name), seen_by=g.access)
    for e in entries:
        if e["field"]:
            display.want(obj, [{e["field"]: e["old"]}, {e["field"]: e["new"]}], [e["field"]])
        if e["user"]:
            display.want(obj, [{"created_by": e["user"]}], ["created_by"])
    shown = []
    for e in reversed(entries):
        key = f"change.{e['change']}"
        shown.append({
            "at": display.text(obj, "created_at", e["at"]),
            "user": display.html(obj, "created_by", e["user"]) if e["user"] else "",
            "change": text(key, g.lang) if has_text(key) else actions.get(e["change"], e["change"]),
            "field": field_label(obj, e["field"], g.lang) if e["field"] else "",
            "old": display.html(obj, e["field"], e["old"]) if e["field"] else "",
            "new": display.html(obj, e["field"], e["new"]) if e["field"] else "",
        })
    return shown


@bp.route("/o/<obj>/<id>")
def record(obj: str, id: str):
    return record_page(obj, id)


def record_page(obj: str, id: str, status: int = 200, **state: Any):
    """The record page; `state` reaches the panels (a posted panel form with its errors)."""
    definition = object_def(obj)
    platform = get_platform()
    current = platform.records.get(obj, id, where=scope(obj), seen_by=g.access)
    tab = request.args.get("tab", "details") if not state else "details"
    display = page_display()
    lifecycle = _lifecycle_path(definition, current)
    actions = _record_actions(definition, current, state)
    context = {"sections": [], "related": [], "history": [], "panels": []}
    if tab == "history":
        context["history"] = _history(definition, current["id"])
    else:
        tab = "details"
        context["sections"] = _sections(definition, current)
        context["panels"] = [p for panel in record_extensions().panels
                             if (p := panel(definition, current, state)) is not None]
        shown = {name for p in context["panels"] for name in p.get("shows", ())}
        context["related"] = [r for r in _related(definition, current) if r["object"].name not in shown]
    return render_template(
        "pages/record.html", obj=definition, record=current, tab=tab,
        object_label=object_label(definition, g.lang), title=display.record_title(definition, current),
        actions=actions, refused=_refused(definition, actions, state), lifecycle=lifecycle,
        state_badge=next((s for s in lifecycle or () if s["state"] == "current"), None),
        can_edit=_may(obj, current["id"], "edit"), can_delete=deletable(obj) and _may(obj, current["id"], "delete"),
        **context,
    ), status


def _filled(sections: list[dict], record: Mapping[str, Any]) -> list[dict]:
    """The sections with only the fields that hold a value, and only the sections left holding one (paper)."""
    kept = []
    for section in sections:
        items = [item for name, item in zip(section["names"], section["items"], strict=True)
                 if record.get(name) not in (None, "", [])]
        if items:
            kept.append({**section, "items": items})
    return kept


@bp.route("/o/<obj>/<id>/print")
def print_view(obj: str, id: str):
    """The record on paper (打印): its details, then its lines (master_detail children) in full, with who
    printed it when; the browser's print dialog opens from the page."""
    definition = object_def(obj)
    platform = get_platform()
    current = platform.records.get(obj, id, where=scope(obj), seen_by=g.access)
    display = page_display()
    state = None
    if definition.lifecycle is not None:
        state = display.text(definition, definition.lifecycle.field, current.get(definition.lifecycle.field))
    return render_template(
        "pages/print.html", obj=definition, record=current, object_label=object_label(definition, g.lang),
        title=display.record_title(definition, current), state=state, sections=_filled(_sections(definition, current),
                                                                                       current),
        lines=_related(definition, current, ("master_detail",), PRINTED_LINES),
        printed_at=display.text(definition, "created_at", platform.clock.now()),
    )


def _may(obj: str, record_id: str, operation: str) -> bool:
    """Whether the user may `operation` this record: their roles allow it and it is in that data scope
    (a team member who may only read it gets neither button)."""
    if not g.access.can(obj, operation):
        return False
    where = scope(obj, operation)
    if where is None:
        return True
    table = get_platform().schema[obj].table
    with reading(get_platform().engine) as conn:
        return conn.execute(sa.select(table.c.id).where(table.c.id == int(record_id), where)).first() is not None


def _record_actions(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> list[dict]:
    """The actions that apply to the record now, for its buttons: one with parameters carries its form
    (an in-page dialog), opened again with its errors when it was refused; a refusal shows beside it."""
    failed = state.get("action") or {}
    found = []
    for a in actions_service(get_platform()).available(g.access, obj.name, record):
        dialog = record_extensions().dialogs.get(a.name)
        url = dialog(obj, record) if dialog else None
        mine = failed.get("name") == a.name
        errors = failed.get("fields") if mine else None
        found.append({
            "name": a.name, "label": a.label.get(g.lang), "dialog": url,
            "inputs": _param_inputs(a, request.form if mine else None, errors) if a.params and not url else None,
            "open": mine, "error": failed.get("message") if mine else None,
        })
    return found


def _refused(obj: ObjectDef, actions: list[dict], state: Mapping[str, Any]) -> dict | None:
    """A refused action the record no longer offers (its state moved on): its refusal, said under the header."""
    failed = state.get("action") or {}
    if not failed or any(a["name"] == failed["name"] for a in actions):
        return None
    action = actions_service(get_platform()).get(obj.name, failed["name"])
    messages = [failed.get("message")] + [m for ms in (failed.get("fields") or {}).values() for m in ms]
    return {"name": action.name, "label": action.label.get(g.lang),
            "message": "; ".join(error_text(m, g.lang) if not isinstance(m, str) else m for m in messages if m)}


def _lifecycle_path(obj: ObjectDef, record: Mapping[str, Any]) -> list[dict] | None:
    """The lifecycle's states in their declared order, each with its label, the record's marked current
    (a lifecycle is a graph, not a line: the others are not marked passed or ahead); a `side` state (rejected,
    cancelled) only while the record is in it, after the others."""
    if obj.lifecycle is None:
        return None
    field = obj.fields[obj.lifecycle.field]
    current = record.get(obj.lifecycle.field)
    states = obj.lifecycle.states.values()
    shown = [*(s for s in states if not s.side), *(s for s in states if s.side and s.value == current)]
    return [{"value": s.value, "label": option.label.get(g.lang) if (option := field.option(s.value)) else s.value,
             "state": "current" if s.value == current else "other", "side": s.side} for s in shown]


INLINE = frozenset({"image/jpeg", "image/png", "image/webp"})  # `?inline=1` shows these in the page


@bp.route("/o/<obj>/<id>/file/<field>")
def attachment(obj: str, id: str, field: str):
    """The file an attachment field of a record (in the user's scope) holds, as a download (`?inline=1`: a JPEG,
    PNG or WebP image shown in the page)."""
    definition = object_def(obj)
    f = definition.fields.get(field)
    stored = get_platform().records.get(obj, id, where=scope(obj), seen_by=g.access).get(field) \
        if f and f.type == "attachment" else None
    missing = NotFound(Message("record.no_file", "{object} {id} has no file in {field}", object=said_object(definition),
                               id=id, field=said_name(field, f.label) if f else field))
    if not stored:
        raise missing
    try:
        content = get_platform().attachments.open(stored["path"])
    except FileNotFoundError:
        raise missing from None
    inline = request.args.get("inline") == "1" and stored["content_type"] in INLINE
    return send_file(content, as_attachment=not inline, download_name=stored["name"],
                     mimetype=stored["content_type"])


@bp.route("/o/<obj>/<id>/delete", methods=["POST"])
def delete(obj: str, id: str):
    definition = object_def(obj, "delete")
    try:
        get_platform().records.delete(obj, id, user=g.access.user_id, where=scope(obj, "delete"))
    except Conflict as e:  # still referenced, or a user (never deleted): said on the record's page
        flash(error_text(e.message, g.lang), "error")
        return redirect(url_for("pages.record", obj=definition.name, id=id))
    flash(text("record.deleted", g.lang), "success")
    return redirect(url_for("pages.list_records", obj=definition.name))


# ------------------------------------------------------------------------------------ forms


def _form_page(builder: FormBuilder, form, status: int = 200, **context):
    return render_template("pages/form.html", form=form, obj=builder.obj,
                           object_label=object_label(builder.obj, g.lang), **context), status


@bp.route("/o/<obj>/new", methods=["GET", "POST"])
def create(obj: str):
    definition = object_def(obj, "create")
    builder = FormBuilder(get_platform(), g.access, definition, page_display(), g.lang)
    heading = text("form.new", g.lang, object=object_label(definition, g.lang))
    cancel = local_path(request.values.get("next")) or url_for("pages.list_records", obj=obj)
    if request.method == "GET":
        given = {k: v for k, v in request.args.items() if k in definition.fields}
        return _form_page(builder, builder.from_record(given), heading=heading, cancel=cancel)
    values, form = builder.read(request.form, request.files, creating=True)
    try:
        created = get_platform().records.within(g.access).create(obj, values, user=g.access.user_id)
    except ValidationFailed as e:
        return _form_page(builder, builder.with_errors(form, e.fields), 422, heading=heading, cancel=cancel)
    except Conflict as e:  # a record it points at refuses new ones in its state (a completed visit's actions)
        return _form_page(builder, form, 409, heading=heading, cancel=cancel, refused=error_text(e.message, g.lang))
    flash(text("record.created", g.lang), "success")
    for after in record_extensions().after_create:
        after(definition, created)
    return redirect(url_for("pages.record", obj=obj, id=created["id"]))


@bp.route("/o/<obj>/<id>/edit", methods=["GET", "POST"])
def edit(obj: str, id: str):
    definition = object_def(obj, "edit")
    platform = get_platform()
    current = platform.records.get(obj, id, where=scope(obj, "edit"), seen_by=g.access)
    display = page_display()
    builder = FormBuilder(platform, g.access, definition, display, g.lang, current)
    heading = text("form.edit", g.lang, object=object_label(definition, g.lang),
                   title=display.record_title(definition, current))
    cancel = url_for("pages.record", obj=obj, id=current["id"])
    if request.method == "GET":
        return _form_page(builder, builder.from_record(current), heading=heading, cancel=cancel,
                          version=current["version"])
    version = request.form.get("version", "")
    values, form = builder.read(request.form, request.files, creating=False)
    try:
        platform.records.within(g.access).update(obj, id, values, version=version, user=g.access.user_id,
                                                 where=scope(obj, "edit"))
    except ValidationFailed as e:
        return _form_page(builder, builder.with_errors(form, e.fields), 422, heading=heading, cancel=cancel,
                          version=version)
    except Conflict as e:
        latest = platform.records.get(obj, id, where=scope(obj, "edit"), seen_by=g.access)
        if str(latest["version"]) == version:  # not a stale edit: the record refuses edits now (waiting for approval)
            return _form_page(builder, form, 409, heading=heading, cancel=cancel, version=version,
                              refused=error_text(e.message, g.lang))
        display.want(definition, [latest], ["updated_by"])
        conflict = text("conflict.message", g.lang, user=display.text(definition, "updated_by", latest["updated_by"]),
                        at=display.text(definition, "updated_at", latest["updated_at"]), version=latest["version"])
        return _form_page(builder, form, 409, heading=heading, cancel=cancel, version=version, conflict=conflict,
                          reload=url_for("pages.edit", obj=obj, id=current["id"]))
    flash(text("record.saved", g.lang), "success")
    return redirect(url_for("pages.record", obj=obj, id=current["id"]))


# ------------------------------------------------------------------------------------ actions


def _param_inputs(action, data=None, errors: Mapping[str, list[str]] | None = None) -> list:
    inputs = []
    for p in action.params:
        f = p.field()
        if data is None:
            value = (None, "") if f.type in REFERENCE_TYPES else ""
        else:
            value = posted(f, p.name, data, request.files, g.zone)[1]
        item = make_input(f, p.name, value, g.lang)
        item.errors = [error_text(m, g.lang) for m in (errors or {}).get(p.name, [])]
        inputs.append(item)
    return inputs


def _read_params(action) -> dict:
    params = {}
    for p in action.params:
        value = posted(p.field(), p.name, request.form, request.files, g.zone)[0]
        if value is not ...:
            params[p.name] = value
    return params


def _action_page(action, obj: ObjectDef, ids: list[str], back: str, errors=None, status: int = 200):
    data = request.form if errors is not None else None
    general = [error_text(m, g.lang) for k, ms in (errors or {}).items()
               if k not in {p.name for p in action.params} for m in ms]
    return render_template("pages/action.html", action=action, label=action.label.get(g.lang), obj=obj, ids=ids,
                           inputs=_param_inputs(action, data, errors), back=back, general_errors=general,
                           object_label=object_label(obj, g.lang)), status


@bp.route("/o/<obj>/<id>/action/<name>", methods=["POST"])
def run_one(obj: str, id: str, name: str):
    definition = object_def(obj)
    platform = get_platform()
    service = actions_service(platform)
    action = service.get(obj, name)
    if not service.allowed(g.access, obj, name):
        raise Forbidden(Message("permission.action", "your roles do not allow the action {action} on {object}",
                                action=said_name(name, action.label), object=said_records(definition)))
    record_url = url_for("pages.record", obj=obj, id=id)
    if action.params and request.form.get("__params") != "1":
        platform.records.get(obj, id, where=scope(obj))
        return _action_page(action, definition, [id], record_url)
    try:
        result = run_action(platform, g.access, obj, name, id, _read_params(action))
    except (ValidationFailed, Conflict, Forbidden) as e:  # shown on the record page, beside the action
        fields = {k: v for k, v in e.fields.items() if k in {p.name for p in action.params}}
        general = [error_text(m, g.lang) for k, ms in e.fields.items() if k not in fields for m in ms]
        message = "; ".join(general) or (None if fields else error_text(e.message, g.lang))
        return record_page(obj, id, e.status, action={"name": name, "fields": fields, "message": message})
    flash(text("action.done", g.lang, action=action.label.get(g.lang)), "success")
    if result.get("record") is None:
        return redirect(url_for("pages.list_records", obj=obj))
    return redirect(local_path(request.form.get("next")) or record_url)


@bp.route("/o/<obj>/bulk", methods=["POST"])
def run_bulk(obj: str):
    definition = object_def(obj)
    platform = get_platform()
    name = request.form.get("action", "")
    back = local_path(request.form.get("next")) or url_for("pages.list_records", obj=obj)
    ids = [i for i in request.form.getlist("ids") if i]
    if not ids:
        flash(text("action.none_selected", g.lang), "error")
        return redirect(back)
    if not name:  # the bar's placeholder (a browser without `required` sends it)
        flash(text("action.none_chosen", g.lang), "error")
        return redirect(back)
    service = actions_service(platform)
    action = service.get(obj, name)
    if not service.allowed(g.access, obj, name):
        raise Forbidden(Message("permission.action", "your roles do not allow the action {action} on {object}",
                                action=said_name(name, action.label), object=said_records(definition)))
    if action.params and request.form.get("__params") != "1":
        return _action_page(action, definition, ids, back)
    try:
        result = run_action(platform, g.access, obj, name, ids, _read_params(action))
    except ValidationFailed as e:
        return _action_page(action, definition, ids, back, e.fields, 422)
    label = action.label.get(g.lang)
    flash(text("action.bulk_done", g.lang, action=label, ok=len(result["succeeded"]), failed=len(result["failed"])),
          "success" if not result["failed"] else "error")
    for failure in result["failed"]:
        error = failure["error"]
        messages = [error_text(m, g.lang) for ms in error.get("fields", {}).values() for m in ms]
        flash(text("action.bulk_failure", g.lang, id=failure["id"],
                   message="; ".join(messages) or error_text(error["message"], g.lang)), "error")
    return redirect(back)
