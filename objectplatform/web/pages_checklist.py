"""A record's checklist on the pages (a visit's actions, 拜访动作): the record page's panel of the actions its owner's
department is offered, each action's fill form, and the page switching between the actions' lists (切换动作视图)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import flash, g, redirect, render_template, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.behaviors.checklist import CHECKLIST, ChecklistConfig, Item, status
from objectplatform.runtime.errors import Conflict, Message, NotFound, ValidationFailed, said_object
from objectplatform.runtime.storage.engine import reading

from .current import get_platform
from .forms import FormBuilder
from .i18n import error_text, text
from .pages_base import bp, object_def, page_display, scope
from .pages_records import RecordExtensions
from .pages_view import object_label


def checklist_panel(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> dict | None:
    """The "拜访动作" panel: each action offered on the record, required or not, how many are filled (linking to
    them) and, while the record's state lets them be filled, a button to fill one."""
    if not CHECKLIST.declared_by(obj):
        return None
    found = status(get_platform(), obj, record)
    metadata = get_platform().metadata
    items = []
    for item in found["items"]:
        action = metadata.objects[item["object"]]
        if not g.access.can(action.name, "read"):
            continue
        items.append({
            **item, "label": object_label(action, g.lang),
            "list_url": url_for("pages.list_records", obj=action.name, **{item["via"]: record["id"]}),
            "fill_url": url_for("pages.fill_checklist", obj=obj.name, id=record["id"], item=action.name)
            if found["open"] and g.access.can(action.name, "create") else None})
    config: ChecklistConfig = CHECKLIST.config_of(obj)
    states = obj.fields[obj.lifecycle.field] if obj.lifecycle else None
    return {"template": "pages/_checklist.html", "items": items, "open": found["open"],
            "title": object_label(obj, g.lang),
            "states": [o.label.get(g.lang) for value in config.states if states and (o := states.option(value))],
            "missing": [object_label(metadata.objects[m], g.lang) for m in found["missing"]],
            "view_url": url_for("pages.checklist_page", obj=obj.name)}


def _item(obj: ObjectDef, name: str) -> Item:
    """The checklist item `name` of `obj` (404 when the object has no such item)."""
    if CHECKLIST.declared_by(obj):
        config: ChecklistConfig = CHECKLIST.config_of(obj)
        for item in config.listed(obj):
            if item.object == name:
                return item
    raise NotFound(Message("checklist.no_item", "{object} has no action {item}", object=said_object(obj),
                           item=name))


@bp.route("/o/<obj>/<id>/checklist/<item>", methods=["GET", "POST"])
def fill_checklist(obj: str, id: str, item: str):
    """One action's form for the record (its `via` set to it); saved, back to the record's page."""
    definition = object_def(obj)
    one = _item(definition, item)
    action = object_def(item, "create")
    platform = get_platform()
    current = platform.records.get(obj, id, where=scope(obj), seen_by=g.access)
    display = page_display()
    builder = FormBuilder(platform, g.access, action, display, g.lang)
    builder.skip = builder.skip | {one.via}
    back = url_for("pages.record", obj=obj, id=current["id"])
    heading = text("checklist.fill", g.lang, action=object_label(action, g.lang),
                   title=display.record_title(definition, current))
    if request.method == "GET":
        return render_template("pages/form.html", form=builder.from_record({}), obj=action, heading=heading,
                               cancel=back, object_label=object_label(action, g.lang))
    values, form = builder.read(request.form, request.files, creating=True)
    try:
        platform.records.within(g.access).create(item, {**values, one.via: current["id"]}, user=g.access.user_id)
    except ValidationFailed as e:
        return render_template("pages/form.html", form=builder.with_errors(form, e.fields), obj=action,
                               heading=heading, cancel=back, object_label=object_label(action, g.lang)), 422
    except Conflict as e:  # the record's state no longer lets its actions be filled
        flash(error_text(e.message, g.lang), "error")
        return redirect(back)
    flash(text("checklist.filled", g.lang, action=object_label(action, g.lang)), "success")
    return redirect(f"{back}#checklist")


@bp.route("/o/<obj>/checklist")
def checklist_page(obj: str):
    """切换动作视图: the object's actions, each with the departments offered it, whether it is required and how many
    of its records the caller may read, linking to its list (where it is exported)."""
    definition = object_def(obj)
    if not CHECKLIST.declared_by(definition):
        raise NotFound(Message("checklist.none", "{object} has no actions", object=said_object(definition)))
    config: ChecklistConfig = CHECKLIST.config_of(definition)
    platform = get_platform()
    metadata = platform.metadata
    items = []
    with reading(platform.engine) as conn:
        dt = platform.schema["department"]
        known = set(conn.execute(sa.select(dt.column("name"))).scalars())
        for item in config.listed(definition):
            if not g.access.can(item.object, "read"):
                continue
            it = platform.schema[item.object]
            where = scope(item.object)
            count = sa.select(sa.func.count()).select_from(it.table)
            total = conn.execute(count if where is None else count.where(where)).scalar()
            action = metadata.objects[item.object]
            items.append({"object": item.object, "label": object_label(action, g.lang), "total": total,
                          "departments": [(name, name in known) for name in item.departments],
                          "required": item.required,
                          "list_url": url_for("pages.list_records", obj=item.object),
                          "export_url": url_for("pages.export_records", obj=item.object, labels=g.lang)})
    return render_template("pages/checklist.html", obj=definition, items=items,
                           object_label=object_label(definition, g.lang))


def refuses_new(obj: ObjectDef, record: Mapping[str, Any], other: str) -> bool:
    """An action of the record's checklist is not created from its related list unless the record's state lets
    its actions be filled and its owner's department is offered it."""
    if not CHECKLIST.declared_by(obj) or other not in {i.object for i in CHECKLIST.config_of(obj).listed(obj)}:
        return False
    found = status(get_platform(), obj, record)
    return not (found["open"] and other in {i["object"] for i in found["items"]})


def extend(page: RecordExtensions) -> None:
    page.panels.append(checklist_panel)
    page.refuses_new.append(refuses_new)
