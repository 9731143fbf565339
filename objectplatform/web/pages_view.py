"""How the pages show values: labels in the page's language, the labels of options and of sales processes,
stages and tasks (runtime/value_labels.py), date-times in the viewer's time zone, and referenced records by
their titles (fetched in one scoped query per target object)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from flask import url_for
from markupsafe import Markup, escape

from objectplatform.metadata import SYSTEM_FIELDS, FieldDef, Label, ObjectDef
from objectplatform.runtime.fieldtypes import type_named
from objectplatform.runtime.storage.engine import reading
from objectplatform.runtime.value_labels import value_labels

from .i18n import text

REFERENCE_TYPES = frozenset({"lookup", "master_detail", "user", "department"})
MULTI_REFERENCE_TYPES = frozenset({"multi_user", "multi_department"})
SYSTEM_REFERENCES = frozenset({"owner", "created_by", "updated_by"})


NUMERIC = ("integer", "number", "currency", "percent", "rollup")  # field types whose values are numbers
UNBROKEN = ("date", "datetime", "auto_number", "phone")  # short values a line break would cut (2026-09-\n16)


def cell_class(kind: str) -> str:
    """A table column's class by its field type: numbers right-aligned ("num"), dates and numbers like
    SO-202612-0062 on one line ("nowrap"), others none ("")."""
    return "num" if kind in NUMERIC else "nowrap" if kind in UNBROKEN else ""


def field_type(obj: ObjectDef, name: str) -> str:
    """The type of a field or system field; a formula counts as its result type."""
    f = obj.fields.get(name)
    if f is None:
        return SYSTEM_FIELDS.get(name, "text")
    return (f.result_type or "text") if f.type == "formula" else f.type


def target(obj: ObjectDef, name: str) -> str | None:
    """The object a reference field (system ones included) points at."""
    if name in SYSTEM_REFERENCES:
        return "user"
    f = obj.fields.get(name)
    return f.to if f is not None else None


def field_label(obj: ObjectDef, name: str, lang: str) -> str:
    f = obj.fields.get(name)
    if f is not None:
        return f.label.get(lang)
    if name in SYSTEM_FIELDS:
        return text(f"field.{name}", lang)
    return name


def object_label(obj: ObjectDef, lang: str, plural: bool = False) -> str:
    return (obj.plural_label if plural and obj.plural_label else obj.label).get(lang)


def local_time(value: datetime, zone: tzinfo) -> datetime:
    """A stored moment (aware, or naive UTC) on the clock of `zone`."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(zone)


class Display:
    """Values of one page's records as text and links, for one signed-in user in one language and time zone.

    Call `want` for every record shown first, so the titles of all referenced records are fetched
    together (one query per target object, within the user's scope of it).
    """

    def __init__(self, platform, access, lang: str, zone: tzinfo):
        self.platform = platform
        self.zone = zone
        self.metadata = platform.metadata
        self.access = access
        self.lang = lang
        self._wanted: dict[str, set[str]] = {}
        self._titles: dict[str, dict[str, str]] = {}
        self._labels: dict[tuple[str, str], dict[str, Label]] = {}

    # ------------------------------------------------------------------------------ titles

    def want(self, obj: ObjectDef, records: Iterable[Mapping[str, Any]], names: Iterable[str]) -> None:
        """Note the references that `names` of `records` hold, to fetch their titles at once."""
        names = [n for n in names if target(obj, n) or field_type(obj, n) in MULTI_REFERENCE_TYPES]
        for record in records:
            for name in names:
                value = record.get(name)
                ids = value if isinstance(value, list) else [value]
                to = target(obj, name)
                for item in ids:
                    if item not in (None, "") and to is not None and str(item) not in self._titles.get(to, {}):
                        self._wanted.setdefault(to, set()).add(str(item))

    def want_ids(self, obj_name: str, ids: Iterable[Any]) -> None:
        """Note records of `obj_name` by id (a polymorphic reference, such as a follow-up's record)."""
        known = self._titles.get(obj_name, {})
        wanted = {str(i) for i in ids if i not in (None, "") and str(i) not in known}
        if wanted and obj_name in self.metadata.objects:
            self._wanted.setdefault(obj_name, set()).update(wanted)

    def _fetch(self) -> None:
        while self._wanted:
            wanted, self._wanted = self._wanted, {}
            for obj_name, ids in wanted.items():
                self._titles.setdefault(obj_name, {}).update(self._fetch_titles(obj_name, ids))

    def titles_to_choose(self, obj_name: str, limit: int) -> dict[str, str]:
        """{id: title} of the first `limit` records (by id) of `obj_name` the user may read, to choose from."""
        titles = self._fetch_titles(obj_name, None, limit)
        self._titles.setdefault(obj_name, {}).update(titles)
        return titles

    def _fetch_titles(self, obj_name: str, ids: set[str] | None, limit: int | None = None) -> dict[str, str]:
        """{id: title} of the records of `obj_name` the user may read (others keep their id as title): those of
        `ids`, or (None) the first `limit` by id."""
        obj = self.metadata.objects.get(obj_name)
        numeric = None if ids is None else sorted(int(i) for i in ids if i.isascii() and i.isdigit())
        if obj is None or numeric == [] or not self.access.can(obj_name, "read"):
            return {}
        ot = self.platform.schema[obj_name]
        title = obj.title_field if obj.title_field in ot.columns else "id"
        if len(ot.columns[title]) != 1:
            title = "id"
        where = self.access.scope(obj_name, ot.table)
        shown = ot.column(title) if title == "id" else self.platform.records.mask(obj_name, self.access).column(
            ot.table, title, ot.column(title))  # a title hidden from the user reads as empty: "#id"
        stmt = sa.select(ot.table.c.id, shown)
        stmt = stmt.order_by(ot.table.c.id).limit(limit) if numeric is None else stmt.where(ot.table.c.id.in_(numeric))
        if where is not None:
            stmt = stmt.where(where)
        with reading(self.platform.engine) as conn:
            rows = conn.execute(stmt).all()
        found = {str(row[0]): row[1] for row in rows}
        if title == "id":
            return {i: f"#{i}" for i in found}
        to = target(obj, title)
        if to is not None:  # a title that is itself a reference (an order line's product)
            self._wanted.setdefault(to, set()).update(str(v) for v in found.values() if v is not None)
            self._fetch()
            return {i: self.title(to, v) if v is not None else f"#{i}" for i, v in found.items()}
        return {i: self.text(obj, title, v) or f"#{i}" for i, v in found.items()}

    def title(self, obj_name: str, record_id: Any) -> str:
        """A referenced record's title (its id when it is gone or outside the user's scope; a dash when the user may
        not read its object at all, as a partner a record's owner: an id would name nothing they may open)."""
        if self._wanted:
            self._fetch()
        if obj_name in self.metadata.objects and not self.access.can(obj_name, "read"):
            return "—"
        return self._titles.get(obj_name, {}).get(str(record_id), f"#{record_id}")

    def readable(self, obj_name: str, record_id: Any) -> bool:
        if self._wanted:
            self._fetch()
        return str(record_id) in self._titles.get(obj_name, {})

    def record_title(self, obj: ObjectDef, record: Mapping[str, Any]) -> str:
        name = obj.title_field
        if name == "id" or record.get(name) in (None, ""):
            return f"#{record['id']}"
        to = target(obj, name)
        if to is not None:
            self.want(obj, [record], [name])
            return self.title(to, record[name])
        return self.text(obj, name, record.get(name))

    # ------------------------------------------------------------------------------ values

    def labels(self, obj: ObjectDef, name: str) -> dict[str, Label]:
        """{stored value: label} of a field whose values people read by label (runtime/value_labels.py)."""
        if (obj.name, name) not in self._labels:
            self._labels[obj.name, name] = value_labels(self.metadata, obj, name)
        return self._labels[obj.name, name]

    def labelled(self, obj: ObjectDef, name: str, value: Any, separator: str) -> str | None:
        """The value by its label (several values joined by `separator`), None when the field's values have
        no labels; a value without one stays as it is."""
        labels = self.labels(obj, name)
        if not labels:
            return None
        values = value if isinstance(value, list) else [value]
        return separator.join(labels[str(v)].get(self.lang) if str(v) in labels else str(v) for v in values)

    def text(self, obj: ObjectDef, name: str, value: Any) -> str:
        """A value as plain text in the page's language (references by title, stored keys by label)."""
        if value is None or value == "" or value == []:
            return ""
        kind = self._kind(obj, name)
        separator = text("value.separator", self.lang)
        labelled = self.labelled(obj, name, value, separator)
        if labelled is not None:
            return labelled
        if kind in ("picklist", "multi_picklist"):
            return separator.join(str(v) for v in (value if isinstance(value, list) else [value]))
        if kind in REFERENCE_TYPES or kind in MULTI_REFERENCE_TYPES or name in SYSTEM_REFERENCES:
            to = target(obj, name)
            values = value if isinstance(value, list) else [value]
            return separator.join(self.title(to, v) if to else str(v) for v in values)
        if kind == "boolean":
            return text("value.yes" if value in (True, "true") else "value.no", self.lang)
        if kind == "datetime":
            try:
                moment = datetime.fromisoformat(value) if isinstance(value, str) else value
            except ValueError:
                moment = None
            if isinstance(moment, datetime):
                return local_time(moment, self.zone).strftime("%Y-%m-%d %H:%M")
        shown = type_named(kind).display(self._shown_field(obj, name), value)
        return str(value) if shown is None else shown

    def _kind(self, obj: ObjectDef, name: str) -> str:
        """The type a value is shown as: a rollup counts as an integer or as the type it summarises."""
        f = obj.fields.get(name)
        if f is None or f.type != "rollup":
            return field_type(obj, name)
        if f.rollup.function == "count":
            return "integer"
        return field_type(self.metadata.objects[f.rollup.child], f.rollup.field)

    def _shown_field(self, obj: ObjectDef, name: str) -> FieldDef | None:
        """The field whose options a value is shown with: a rollup's summarised field, else the field itself."""
        f = obj.fields.get(name)
        if f is None or f.type != "rollup" or f.rollup.function == "count":
            return f
        return self.metadata.objects[f.rollup.child].fields[f.rollup.field]

    def html(self, obj: ObjectDef, name: str, value: Any, record_id: str | None = None) -> Markup:
        """A value as HTML: references link to their records when the user may open them, a record's
        attachment (given `record_id`) to its download."""
        kind = field_type(obj, name)
        to = target(obj, name)
        if to is not None and value not in (None, "", []) and (kind in REFERENCE_TYPES or kind in MULTI_REFERENCE_TYPES
                                                                or name in SYSTEM_REFERENCES):
            values = value if isinstance(value, list) else [value]
            parts = []
            for v in values:
                if self.readable(to, v):
                    parts.append(Markup('<a href="{}">{}</a>').format(url_for("pages.record", obj=to, id=v),
                                                                      self.title(to, v)))
                else:
                    parts.append(escape(self.title(to, v)))
            return Markup(escape(text("value.separator", self.lang))).join(parts)
        shown = self.text(obj, name, value)
        if kind == "long_text":
            return Markup('<span class="multiline">{}</span>').format(shown)
        if kind == "url" and shown.startswith(("http://", "https://")):
            return Markup('<a href="{}" rel="noopener noreferrer">{}</a>').format(shown, shown)
        if kind == "attachment" and shown and record_id is not None:
            return Markup('<a href="{}">{}</a>').format(
                url_for("pages.attachment", obj=obj.name, id=record_id, field=name), shown)
        if kind == "email" and shown:
            return Markup('<a href="mailto:{}">{}</a>').format(shown, shown)
        return escape(shown)
