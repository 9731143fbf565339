"""CSV exports of an object's list, shared by the API and the pages: the same filters, search and sort as
the list, within the caller's data scope and field mask (a field their role hides is no column, a value
hidden on a record is masked), streamed page by page along the keyset cursor.

(How it works: docs/engine.md, "objectplatform/web/export.py".)"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from flask import Response, g, has_request_context

from objectplatform.metadata import SYSTEM_FIELDS, ObjectDef
from objectplatform.runtime import BadRequest, Platform
from objectplatform.runtime.errors import Message
from objectplatform.runtime.fieldtypes import inert, type_named
from objectplatform.runtime.fieldtypes.base import MULTI_SEPARATOR
from objectplatform.runtime.records.masking import FieldMask
from objectplatform.runtime.storage.engine import reading

from .i18n import LANGUAGES
from .pages_view import (
    MULTI_REFERENCE_TYPES,
    REFERENCE_TYPES,
    SYSTEM_REFERENCES,
    Display,
    field_label,
    field_type,
    target,
)

PAGE_SIZE = 500
BOM = "\ufeff"


def signed_in():
    """The signed-in user's Access (None outside a request or with no one signed in: nothing masked)."""
    return getattr(g, "access", None) if has_request_context() else None


def export_columns(obj: ObjectDef, fields: str | None, mask: FieldMask | None = None) -> list[str]:
    """`id`, then the fields named in `fields` ("a,b,c") or the list view's columns; never a password,
    nor a field `mask` (the caller's) hides.

    Raises BadRequest naming every unknown or hidden field.
    """
    if fields is None:
        names = [name for name in list_columns(obj) if mask is None or mask.visible(name)]
    else:
        names = [name.strip() for name in fields.split(",") if name.strip()]
        unknown = [name for name in names if not _exportable(obj, name)]
        hidden = [name for name in names if mask is not None and not mask.visible(name)]
        if unknown or hidden or not names:
            message = (Message("export.unknown_fields", "unknown field(s): {fields}", fields=", ".join(unknown))
                       if unknown else Message("export.hidden_fields", "hidden from your role: {fields}",
                                               fields=", ".join(hidden))
                       if hidden else Message("export.no_fields", "name at least one field"))
            raise BadRequest(Message("request.bad_parameter", "{param}: {problem}", param="fields", problem=message),
                             {"fields": [message]})
    columns = ["id"]
    for name in names:
        if name not in columns and _exportable(obj, name):
            columns.append(name)
    return columns


def list_columns(obj: ObjectDef) -> list[str]:
    """The columns of the object's list: its list view's, else its title, owner and creation time."""
    if obj.list_view:
        return list(obj.list_view.columns)
    return [obj.title_field if obj.title_field in obj.fields else "id", "owner", "created_at"]


def _exportable(obj: ObjectDef, name: str) -> bool:
    f = obj.fields.get(name)
    return name in SYSTEM_FIELDS if f is None else type_named(f.type).readable


def header_language(labels: str | None) -> str | None:
    """The language of the header's labels (`labels=zh|en`), or None for field names."""
    if labels is None or labels in LANGUAGES:
        return labels
    message = Message("export.labels", "must be one of {languages}", languages=", ".join(LANGUAGES))
    raise BadRequest(Message("request.bad_parameter", "{param}: {problem}", param="labels", problem=message),
                     {"labels": [message]})


def csv_response(platform: Platform, obj: ObjectDef, *, filters: Mapping[str, str], q: str | None,
                 sort: str | None, where, fields: str | None = None, labels: str | None = None,
                 titles: Callable[[], Display] | None = None) -> Response:
    """The export as a streamed attachment. Bad parameters raise BadRequest here, before streaming:
    the first page is read now. `titles` makes a Display per page to show references by their
    titles and stored keys by their labels (the pages); without it they stay ids and keys (the API)."""
    access = signed_in()  # taken now: the stream runs after the request's context
    columns = export_columns(obj, fields, platform.records.mask(obj.name, access))
    lang = header_language(labels)
    header = [field_label(obj, name, lang) for name in columns] if lang else columns

    def read(cursor: str | None):
        with reading(platform.read_engine) as conn:
            return platform.records.list(obj.name, filters=filters, q=q, sort=sort, limit=PAGE_SIZE, cursor=cursor,
                                         where=where, count=False, seen_by=access, conn=conn)

    first = read(None)

    def chunks() -> Iterator[str]:
        yield BOM + csv_lines([header])
        page = first
        while True:
            display = titles() if titles else None
            items = page.items
            if display is not None:
                display.want(obj, items, columns)
            yield csv_lines([_cell(obj, name, record.get(name), display) for name in columns] for record in items)
            if page.next_cursor is None:
                return
            page = read(page.next_cursor)

    day = platform.clock.today(platform.settings.zone).strftime("%Y%m%d")
    response = Response(chunks(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{obj.name}-{day}.csv"'
    return response


def csv_lines(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _cell(obj: ObjectDef, name: str, value: Any, display: Display | None) -> str:
    """A value as the API renders it, as text; when a Display is given, references by title and stored keys
    (options, sales processes, stages, tasks) by label."""
    if value is None:
        return ""
    kind = field_type(obj, name)
    if display is not None and (kind in REFERENCE_TYPES or kind in MULTI_REFERENCE_TYPES or name in SYSTEM_REFERENCES):
        to = target(obj, name)
        if to is not None:
            values = value if isinstance(value, list) else [value]
            return MULTI_SEPARATOR.join(display.title(to, v) for v in values)
    labelled = display.labelled(obj, name, value, MULTI_SEPARATOR) if display is not None else None
    if labelled is not None:
        return inert(labelled)
    return type_named(kind).export(value)
