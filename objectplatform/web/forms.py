"""Create/edit forms generated from the field definitions: which inputs a form has, how a posted form
becomes the values the records service takes, and how its errors land next to their inputs.

(How it works: docs/engine.md, "objectplatform/web/forms.py".)"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from werkzeug.datastructures import FileStorage, ImmutableMultiDict

from objectplatform.metadata import FieldDef, ObjectDef
from objectplatform.metadata.expressions import Binary, Call, Literal, Name, Node, Unary, parse
from objectplatform.runtime.errors import NotFound
from objectplatform.runtime.fieldtypes import type_named
from objectplatform.runtime.sales_processes import process_for_owner, processes

from .i18n import error_text, text
from .pages_view import Display, local_time

LOCAL_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")
LINE_KEY = re.compile(r"(?P<child>\w+)-(?P<index>\d+)-(?P<field>\w+)")
ERROR_KEY = re.compile(r"(?P<child>\w+)\[(?P<index>\d+)\]\.(?P<field>\w+)")


@dataclass
class Input:
    """One form input: the field, the widget, what it shows and its errors (in the page's language)."""

    field: FieldDef
    name: str  # the form field name (a line input is prefixed "<child>-<index>-")
    label: str
    widget: str
    value: Any = None  # text for most widgets; list (checkboxes), (lat, lng), (id, title) for lookups
    errors: list[str] = field(default_factory=list)
    options: list[tuple[str, str]] = field(default_factory=list)
    help: str | None = None

    @property
    def required(self) -> bool:
        return self.field.required


@dataclass
class Section:
    label: str
    inputs: list[Input]
    columns: int = 2


@dataclass
class Line:
    id: str | None
    inputs: list[Input]
    outputs: dict[str, str]  # live formula fields: their current value, as text
    notes: dict[str, str] = field(default_factory=dict)  # input -> where its default came from (a price policy)


@dataclass
class LineEditor:
    """The lines of one master_detail child object inside its parent's form."""

    child: ObjectDef
    via: str
    label: str
    columns: list[tuple[str, str]]  # (field name, label) of the inputs
    outputs: list[tuple[str, str]]  # (field name, label) of the computed columns
    lines: list[Line]
    blank: Line  # the template row the script copies ("__i__" for its index)
    live: dict  # what the script computes: line formulas, sums and the parent's totals
    totals: list[tuple[str, str, str]]  # (parent field, label, current value)
    errors: list[str] = field(default_factory=list)


@dataclass
class Form:
    sections: list[Section]
    editors: list[LineEditor]
    general_errors: list[str]
    multipart: bool

    @property
    def error_count(self) -> int:
        return (len(self.general_errors) + sum(len(i.errors) for s in self.sections for i in s.inputs)
                + sum(len(e.errors) + sum(len(i.errors) for line in e.lines for i in line.inputs)
                      for e in self.editors))


def widget(f: FieldDef) -> str:
    """The input of a field: its type's widget."""
    return type_named(f.type).widget


def editable(f: FieldDef) -> bool:
    return not type_named(f.type).computed and not f.read_only and not f.system and not f.hidden


def locked_names(access, obj: ObjectDef, record: Mapping[str, Any] | None, children: Iterable[str]) -> frozenset[str]:
    """What a form leaves out: the lifecycle's state field (transitions move it) and, editing a record,
    the fields and child objects' lines its state locks for this user."""
    lifecycle = obj.lifecycle
    if lifecycle is None:
        return frozenset()
    state = lifecycle.states.get(record.get(lifecycle.field)) if record is not None else None
    if state is None or access.is_admin or access.roles & set(state.editable_by):
        return frozenset({lifecycle.field})
    return frozenset({lifecycle.field, *(n for n in [*obj.fields, *children] if state.locks(n))})


def sections_of(obj: ObjectDef, lang: str, skip: frozenset[str] = frozenset()) -> list[tuple[str, list[str], int]]:
    """The form's sections: the layout's (editable fields only) then the editable fields it leaves out."""
    placed: set[str] = set()
    result = []
    for section in obj.layout:
        names = [n for n in section.fields if n in obj.fields and editable(obj.fields[n]) and n not in skip]
        placed.update(section.fields)
        if names:
            result.append((section.label.get(lang), names, section.columns))
    rest = [n for n, f in obj.fields.items() if n not in placed and editable(f) and n not in skip]
    if rest:
        result.append((text("record.other", lang), rest, 2))
    return result


# --------------------------------------------------------------------------------- values <-> inputs


def shown_value(f: FieldDef, value: Any, display: Display) -> Any:
    """A record's value as its input shows it."""
    shown = widget(f)
    if value is None:
        return ([] if shown in ("checkboxes", "multi_lookup") else (None, "") if shown == "lookup"
                else ("", "") if shown == "geo" else False if shown == "checkbox" else "")
    if shown == "lookup":
        return str(value), display.title(f.to, value)
    if shown == "multi_lookup":
        return [(str(v), display.title(f.to, v)) for v in value]
    if shown == "geo":
        return str(value["lat"]), str(value["lng"])
    if shown == "datetime" and isinstance(value, datetime):
        return local_time(value, display.zone).strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if shown in ("password", "file"):
        return ""
    if shown == "select":  # option values are texts (a rating's stars too)
        return str(value)
    return value


def posted(f: FieldDef, name: str, form: ImmutableMultiDict, files: ImmutableMultiDict,
           zone: tzinfo) -> tuple[Any, Any]:
    """(the value for the records service, the input as typed to show again) of one posted input; a date-time
    is typed on the clock of `zone`.

    The service value is `...` (Ellipsis) when the input says "leave unchanged" (an empty password,
    no new file)."""
    input_ = widget(f)
    if input_ == "checkbox":
        checked = form.get(name) in ("true", "on", "1")
        return checked, checked
    if input_ in ("checkboxes", "multi_lookup"):
        values = [v for v in form.getlist(name) if v]
        return values, values
    if input_ == "geo":
        lat, lng = form.get(f"{name}__lat", "").strip(), form.get(f"{name}__lng", "").strip()
        return (None if not lat and not lng else {"lat": lat, "lng": lng}), (lat, lng)
    if input_ == "lookup":
        value = form.get(name, "").strip()
        return value or None, (value or None, form.get(f"{name}__title", ""))
    if input_ == "password":
        value = form.get(name, "")
        return (value if value else ...), ""
    if input_ == "file":
        upload: FileStorage | None = files.get(name)
        if upload is None or not upload.filename:
            return ..., ""
        content = base64.b64encode(upload.read()).decode()
        return {"filename": upload.filename, "content_base64": content,
                "content_type": upload.mimetype or "application/octet-stream"}, ""
    value = form.get(name, "")
    if input_ == "datetime" and LOCAL_DATETIME.fullmatch(value.strip()):
        local = datetime.fromisoformat(value.strip()).replace(tzinfo=zone)
        return local.isoformat(), value
    return value, value


def make_input(f: FieldDef, name: str, value: Any, lang: str) -> Input:
    return Input(f, name, f.label.get(lang), widget(f), value, options=type_named(f.type).choices(f, value, lang),
                 help=f.help.get(lang) if f.help else None)


# ------------------------------------------------------------------------------- live formulas


def formula_script(expression: str | None) -> list | None:
    """A formula as a small JSON tree the page script evaluates (arithmetic, coalesce and round only);
    None when it uses anything else (the page then waits for the server's value)."""
    if not expression:
        return None

    def tree(node: Node) -> list:
        if isinstance(node, Literal) and (node.value is None or isinstance(node.value, int | Decimal)) \
                and not isinstance(node.value, bool):
            return ["lit", None if node.value is None else str(node.value)]
        if isinstance(node, Name):
            return ["var", node.name]
        if isinstance(node, Unary) and node.op == "-":
            return ["neg", tree(node.operand)]
        if isinstance(node, Binary) and node.op in ("+", "-", "*", "/"):
            return ["op", node.op, tree(node.left), tree(node.right)]
        if isinstance(node, Call) and node.name in ("coalesce", "round"):
            return ["call", node.name, *[tree(a) for a in node.args]]
        raise ValueError(node)

    try:
        return tree(parse(expression).node)
    except ValueError:
        return None


def live_spec(parent: ObjectDef, child: ObjectDef, via: str) -> dict:
    """What the line editor's script computes: each line's formulas, the parent's sums of them, and
    the parent's formulas over those sums and its own inputs."""
    lines = {n: s for n, f in child.fields.items() if f.type == "formula" and (s := formula_script(f.expression))}
    sums = {n: f.rollup.field for n, f in parent.fields.items()
            if f.type == "rollup" and f.rollup.child == child.name and f.rollup.via == via
            and f.rollup.function == "sum" and not f.rollup.filter
            and (f.rollup.field in lines or child.fields[f.rollup.field].type in ("number", "currency", "integer"))}
    totals = {n: s for n, f in parent.fields.items() if f.type == "formula"
              and (s := formula_script(f.expression)) and any(name in sums for name in _names(s))}
    scales = {n: 2 if child.fields[n].scale is None else child.fields[n].scale for n in lines}
    return {"child": child.name, "lines": lines, "sums": sums, "totals": totals, "scales": scales}


def _names(tree: list) -> set[str]:
    if tree[0] == "var":
        return {tree[1]}
    return set().union(*(_names(t) for t in tree[1:] if isinstance(t, list)))


# ------------------------------------------------------------------------------- metadata choices


def metadata_choices(platform, access, obj: ObjectDef, lang: str) -> dict[str, tuple[list[tuple[str, str]], Any]]:
    """Text fields whose values name metadata, offered as a choice: {field: ([(value, label)], default())} where
    default() gives a new record's value. A staged object's `sales_process` lists the processes by label and
    defaults to the one of the user's department (the process the record would get without a choice)."""
    if "sales_process" not in obj.behaviors or "sales_process" not in obj.fields:
        return {}

    def default() -> str | None:
        found = process_for_owner(platform, access.user_id, obj.name)
        return found.name if found else None

    return {"sales_process": ([(p.name, p.label.get(lang)) for p in processes(platform.metadata, obj.name)],
                              default)}


# ---------------------------------------------------------------------------------- whole forms


class FormBuilder:
    """The form of one object for one user: build it from a record or a post, and read a post."""

    def __init__(self, platform, access, obj: ObjectDef, display: Display, lang: str,
                 record: Mapping[str, Any] | None = None):
        """`record`: the record being edited (None: a new one); its state may lock fields and lines, and a
        field hidden on it from the user (a pool's, while it waits) has no input: its value is not shown,
        and a post cannot overwrite it with the mask."""
        self.platform = platform
        self.access = access
        self.obj = obj
        self.display = display
        self.lang = lang
        children = platform.records.children.get(obj.name, ())
        hidden = platform.records.mask(obj.name, access).hidden_on(record) if record is not None else frozenset()
        self.skip = locked_names(access, obj, record, [c for c, _via in children]) | hidden
        self.children = [(self.platform.metadata.objects[c], via) for c, via in children
                         if access.can(c, "read") and (access.can(c, "create") or access.can(c, "edit"))
                         and c not in self.skip]
        self.choices = metadata_choices(platform, access, obj, lang)

    def _sections(self) -> list[tuple[str, list[str], int]]:
        return sections_of(self.obj, self.lang, self.skip | self._not_writable(self.obj))

    def _line_fields(self, child: ObjectDef, via: str) -> list[str]:
        skip = frozenset({via}) | self._not_writable(child)
        return [n for _label, names, _cols in sections_of(child, self.lang, skip) for n in names]

    def _not_writable(self, obj: ObjectDef) -> frozenset[str]:
        """The fields the user's roles hide, or let them only read (the record page shows those): no input."""
        mask = self.platform.records.mask(obj.name, self.access)
        return mask.hidden | mask.read_only

    # ------------------------------------------------------------------------------ building

    def from_record(self, record: Mapping[str, Any] | None) -> Form:
        """The form showing a record (one without an id: a new one, with the fields' defaults and the
        values given)."""
        record = record or {}
        for f in self.obj.fields.values():
            if widget(f) in ("lookup", "multi_lookup"):
                self.display.want(self.obj, [record], [f.name])
        for child, via in self.children:
            self.display.want(child, record.get(child.name, []), self._line_fields(child, via))

        def value(obj: ObjectDef, rec: Mapping[str, Any], name: str) -> Any:
            f = obj.fields[name]
            new = rec.get("id") is None
            raw = rec.get(name) if name in rec or not new else f.default
            if new and f.type == "multi_picklist" and isinstance(raw, str):
                raw = [raw]
            return shown_value(f, raw, self.display)

        sections = [Section(label, [make_input(self.obj.fields[n], n, value(self.obj, record, n), self.lang)
                                    for n in names], cols)
                    for label, names, cols in self._sections()]
        self._choose(sections, new=record.get("id") is None, given=record)
        editors = []
        for child, via in self.children:
            names = self._line_fields(child, via)
            lines = [self._line(child, names, i, line.get("id"),
                                {n: value(child, line, n) for n in names}, line) for i, line in
                     enumerate(record.get(child.name, []))]
            editors.append(self._editor(child, via, names, lines, record))
        return Form(sections, editors, [], self._multipart())

    def _choose(self, sections: list[Section], new: bool, given: Mapping[str, Any]) -> None:
        """The metadata choices as selects; a new record's unset one shows its default."""
        for item in (i for s in sections for i in s.inputs if i.field.name in self.choices):
            options, default = self.choices[item.field.name]
            item.widget, item.options = "select", options
            if new and not given.get(item.field.name):
                item.value = default() or ""

    def _multipart(self) -> bool:
        return any(f.type == "attachment" for f in self.obj.fields.values())

    def _line(self, child: ObjectDef, names: list[str], index: Any, line_id: str | None, values: Mapping[str, Any],
              record: Mapping[str, Any] | None = None) -> Line:
        inputs = [make_input(child.fields[n], f"{child.name}-{index}-{n}", values.get(n), self.lang)
                  for n in names]
        outputs = {n: self.display.text(child, n, (record or {}).get(n)) for n, f in child.fields.items()
                   if f.type == "formula"}
        return Line(line_id, inputs, outputs, self._matched_notes(child, names, record or {}))

    def _matched_notes(self, child: ObjectDef, names: list[str], record: Mapping[str, Any]) -> dict[str, str]:
        """For each input whose default a `default_match` gave, the record matched ("价格政策: A级客户 硬件 95折"),
        named whether or not the user may read that object: it is the line's own price."""
        notes = {}
        for name in names:
            match = child.fields[name].default_match
            kept = record.get(match.record) if match is not None and match.record else None
            if kept is None:
                continue
            source = self.platform.metadata.objects[match.object]
            try:
                found = self.platform.records.get(source.name, kept)
            except NotFound:
                continue
            title = found.get(source.title_field) if source.title_field else kept
            notes[name] = f"{child.fields[match.record].label.get(self.lang)}: {title}"
        return notes

    def _editor(self, child: ObjectDef, via: str, names: list[str], lines: list[Line],
                record: Mapping[str, Any]) -> LineEditor:
        live = live_spec(self.obj, child, via)
        outputs = [(n, child.fields[n].label.get(self.lang)) for n, f in child.fields.items() if f.type == "formula"]
        # a field whose default is matched starts empty: a value shown would be sent as if typed
        blank_values = {n: None if child.fields[n].default_match else
                        shown_value(child.fields[n], child.fields[n].default, self.display) for n in names}
        totals = [(n, self.obj.fields[n].label.get(self.lang), self.display.text(self.obj, n, record.get(n)))
                  for n in [*live["sums"], *live["totals"]]]
        return LineEditor(child, via, child.plural_label.get(self.lang) if child.plural_label else
                          child.label.get(self.lang),
                          [(n, child.fields[n].label.get(self.lang)) for n in names], outputs, lines,
                          self._line(child, names, "__i__", None, blank_values), live, totals)

    # ------------------------------------------------------------------------------ reading a post

    def read(self, form: ImmutableMultiDict, files: ImmutableMultiDict, creating: bool) -> tuple[dict, Form]:
        """(the values for the records service, the form showing the input as typed)."""
        values: dict[str, Any] = {}
        typed: dict[str, Any] = {}
        for _label, names, _cols in self._sections():
            for name in names:
                f = self.obj.fields[name]
                value, shown = posted(f, name, form, files, self.display.zone)
                if widget(f) == "multi_lookup":
                    self.display.want(self.obj, [{name: shown}], [name])
                    shown = [(v, self.display.title(f.to, v)) for v in shown]
                typed[name] = shown
                if value is ... or (creating and value in (None, "", [])):
                    continue
                values[name] = value
        sections = [Section(label, [make_input(self.obj.fields[n], n, typed[n], self.lang) for n in names],
                            cols) for label, names, cols in self._sections()]
        self._choose(sections, new=False, given=typed)
        editors = []
        for child, via in self.children:
            names = self._line_fields(child, via)
            lines = []
            if form.get(f"{child.name}__present") == "1":  # the editor was on the page: its lines replace the record's
                values[child.name], lines = self._read_lines(child, names, form, files)
            editors.append(self._editor(child, via, names, lines, {}))
        return values, Form(sections, editors, [], self._multipart())

    def _read_lines(self, child: ObjectDef, names: list[str], form: ImmutableMultiDict,
                    files: ImmutableMultiDict) -> tuple[list[dict], list[Line]]:
        """The posted lines in page order, blank new ones dropped, renumbered from 0 as the service reports them."""
        indexes = sorted({int(m["index"]) for key in form.keys()
                          if (m := LINE_KEY.fullmatch(key)) and m["child"] == child.name})
        items, lines = [], []
        for index in indexes:
            prefix = f"{child.name}-{index}-"
            line_id = form.get(prefix + "id") or None
            item: dict[str, Any] = {}
            typed: dict[str, Any] = {}
            for name in names:
                value, shown = posted(child.fields[name], prefix + name, form, files, self.display.zone)
                typed[name] = shown
                if value is not ... and (line_id or value not in (None, "", [])):
                    item[name] = value
            if line_id is None and not any(v not in (None, "", [], False) for v in item.values()):
                continue
            if line_id is not None:
                item["id"] = line_id
            position = len(items)
            items.append(item)
            lines.append(self._line(child, names, position, line_id, typed))
        return items, lines

    # ------------------------------------------------------------------------------ errors

    def with_errors(self, form: Form, errors: Mapping[str, list[str]]) -> Form:
        """Each error next to its input (a line's under its row); the rest at the top."""
        by_name = {i.name: i for s in form.sections for i in s.inputs}
        editors = {e.child.name: e for e in form.editors}
        for key, messages in errors.items():
            shown = [error_text(m, self.lang) for m in messages]
            target = by_name.get(key)
            if target is None and (m := ERROR_KEY.fullmatch(key)) and m["child"] in editors:
                editor = editors[m["child"]]
                index = int(m["index"])
                if index < len(editor.lines):
                    target = next((i for i in editor.lines[index].inputs if i.field.name == m["field"]), None)
                if target is None:
                    editor.errors.extend(shown)
                    continue
            if target is None and key in editors:
                editors[key].errors.extend(shown)
                continue
            if target is None:
                label = self._label(key)
                colon = "：" if self.lang == "zh" else ": "
                form.general_errors.extend(f"{label}{colon}{s}" if label else s for s in shown)
                continue
            target.errors.extend(shown)
        return form

    def _label(self, key: str) -> str:
        if key == "__all__":
            return ""
        f = self.obj.fields.get(key)
        return f.label.get(self.lang) if f else key
