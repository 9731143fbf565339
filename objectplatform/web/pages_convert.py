"""The convert dialog (线索转换): a new account with the mapped values (editable) or one of the suggested
matches, and optional contact and opportunity parts, posted to the `convert` action in one call.

(How it works: docs/engine.md, "objectplatform/web/pages_convert.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.behaviors import convertible
from objectplatform.runtime.errors import Conflict, Message, NotFound, ValidationFailed, said_object

from .current import get_platform
from .forms import editable, make_input, posted, shown_value
from .i18n import error_text, text
from .pages_base import bp, error_page, object_def, page_display, scope
from .pages_records import RecordExtensions
from .pages_view import field_label, object_label

NEW, PICK = "new", "pick"  # the account choices besides a suggested match's id


def part_fields(metadata, c: convertible.Config, target: str) -> list[str]:
    """The fields a part shows: those the mapping fills and the required ones, in the object's order;
    never a reference to another part (the action links the parts)."""
    target_def = metadata.objects[target]
    mapped = set(c.targets[target])
    return [n for n, f in target_def.fields.items()
            if editable(f) and (n in mapped or f.required) and not (f.to in c.targets and f.type != "user")]


def _convert_dialog(obj: ObjectDef, record: Mapping[str, Any]) -> str | None:
    if convertible.BEHAVIOR not in obj.behaviors:
        return None
    return url_for("pages.convert_dialog", obj=obj.name, id=record["id"])


def extend(page: RecordExtensions) -> None:
    page.dialogs["convert"] = _convert_dialog


def shown_targets(c: convertible.Config) -> list[str]:
    """The main target, and the optional ones the user may create."""
    return [t for t in c.targets if t == c.main or g.access.can(t, "create")]


def _parts(c: convertible.Config, defaults: Mapping[str, Mapping[str, Any]], typed: Mapping[str, dict] | None,
           errors: Mapping[str, list[str]]) -> list[dict]:
    """Each part of the dialog: its object, label, inputs (the defaults, or what was posted) and errors."""
    platform = get_platform()
    display = page_display()
    parts = []
    for target in shown_targets(c):
        target_def = platform.metadata.objects[target]
        names = part_fields(platform.metadata, c, target)
        if typed is None:
            display.want(target_def, [defaults.get(target, {})], names)
            values = {n: shown_value(target_def.fields[n], defaults.get(target, {}).get(n), display) for n in names}
        else:
            values = typed.get(target, {})
        inputs = []
        for n in names:
            item = make_input(target_def.fields[n], f"{target}-{n}", values.get(n), g.lang)
            item.errors = [error_text(m, g.lang) for m in errors.get(f"{target}.{n}", [])]
            inputs.append(item)
        general = [f"{field_label(target_def, key.partition('.')[2], g.lang)}：{error_text(m, g.lang)}"
                   if "." in key else error_text(m, g.lang)
                   for key, ms in errors.items()
                   if (key.partition(".")[0] == target and key.partition(".")[2] not in names)
                   or key in (target, f"existing_{target}") for m in ms]
        parts.append({"object": target, "label": object_label(target_def, g.lang), "inputs": inputs,
                      "errors": general, "main": target == c.main})
    return parts


@bp.route("/o/<obj>/<id>/convert", methods=["GET", "POST"])
def convert_dialog(obj: str, id: str):
    definition = object_def(obj)
    if convertible.BEHAVIOR not in definition.behaviors:
        raise NotFound(Message("convert.not_convertible", "{object} cannot be converted",
                               object=said_object(definition)))
    platform = get_platform()
    current = platform.records.get(obj, id, where=scope(obj))
    try:
        preview = run_action(platform, g.access, obj, "convert", current["id"], {"preview": True})
    except Conflict as e:  # converted already, invalid or voided
        return error_page(409, error_text(e.message, g.lang))
    c = convertible.config(platform.metadata, obj)
    main = c.main
    matches = preview["matches"]
    display = page_display()
    main_def = platform.metadata.objects[main]
    display.want(main_def, matches, ["owner"])
    choice = request.form.get("account_choice", NEW) if request.method == "POST" else NEW
    chosen_create = {t: t in request.form.getlist("create") for t in c.targets} if request.method == "POST" \
        else {t: t in c.proposed for t in c.targets}
    typed, errors = None, {}
    if request.method == "POST":
        params: dict[str, Any] = {}
        typed = {}
        for target in shown_targets(c):
            names = part_fields(platform.metadata, c, target)
            values, typed[target] = {}, {}
            for n in names:
                value, typed[target][n] = posted(platform.metadata.objects[target].fields[n], f"{target}-{n}",
                                                 request.form, request.files, g.zone)
                if value is not ...:
                    values[n] = None if value == "" else value
            if target == main:
                if choice == NEW:
                    params[main] = values
                else:
                    params[f"existing_{main}"] = (request.form.get(f"existing_{main}") if choice == PICK
                                                  else choice) or None
            else:
                params[target] = values if chosen_create.get(target) else None
        try:
            result = run_action(platform, g.access, obj, "convert", current["id"], params)
        except ValidationFailed as e:
            errors = e.fields
        else:
            made = [f"{object_label(platform.metadata.objects[t], g.lang)} "
                    f"{display.record_title(platform.metadata.objects[t], result[t])}"
                    for t in c.targets if result.get(t)]
            flash(text("convert.done", g.lang, made=text("value.separator", g.lang).join(made)), "success")
            return redirect(url_for("pages.record", obj=obj, id=current["id"]))
    picked = request.form.get(f"existing_{main}", "") if choice == PICK else ""
    if picked:
        display.want_ids(main, [picked])
    return render_template(
        "pages/convert.html", obj=definition, record=current, title=display.record_title(definition, current),
        object_label=object_label(definition, g.lang), parts=_parts(c, preview["defaults"], typed, errors),
        main=main, main_label=object_label(main_def, g.lang), choice=choice, create=chosen_create,
        picked=(picked, display.title(main, picked) if picked else ""),
        matches=[{"id": m["id"], "name": m["name"], "phone": m.get("phone") or "",
                  "owner": display.text(main_def, "owner", m.get("owner"))} for m in matches],
        error_count=sum(len(ms) for ms in errors.values())), (422 if errors else 200)
