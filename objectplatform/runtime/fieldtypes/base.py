"""`FieldType`: everything the engine knows of one field type, read by storage, validation, filters, forms,
pages, export and the OpenAPI document; a type overrides only the parts that differ from the defaults."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa
from marshmallow import ValidationError, fields

from objectplatform.metadata import FieldDef, Metadata
from objectplatform.metadata import fieldtypes as registry

from ..errors import Message

MULTI_SEPARATOR = ";"  # between the values of a multi-valued field in an export cell
NUMBER = re.compile(r"[+-]?[\d .()-]*\d[\d .()-]*")  # digits, maybe with phone punctuation


class FieldType(registry.FieldType):
    """A field type: the metadata part (name, kind, options, defaults, checks) plus one method or
    attribute per layer. Values in record form are those of `storage/convert.py`'s docstring."""

    filter_kind: ClassVar[str] = "text"  # decides the list and report filter operators (records/query.py)
    widget: ClassVar[str] = "text"  # the form input (web/forms.py, templates/pages/macros.html)
    json: ClassVar[bool] = False  # stored as JSON text
    caseless: ClassVar[bool] = False  # duplicate rules compare its values with lower()
    stripped: ClassVar[bool] = True  # surrounding whitespace of a text input is removed
    readable: ClassVar[bool] = True  # its value leaves the table (a password's never does)

    # ----------------------------------------------------------------------------------- storage

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        """The type of the field's one column."""
        # every built-in type defines one of the two; a new type that forgets says so when its table is built
        raise NotImplementedError(f"field type {self.name!r} defines neither column_type nor columns")

    def columns(self, f: FieldDef, md: Metadata) -> list[sa.Column]:
        """The field's columns (none for a value computed on read, two for a geolocation)."""
        return [sa.Column(f.name, self.column_type(f))]

    def to_db(self, value: Any) -> Any:
        """A non-null record-form value -> its single column's value."""
        return value

    def from_db(self, value: Any) -> Any:
        """A non-null single column's value -> record form."""
        return value

    def to_columns(self, value: Any) -> tuple[Any, ...]:
        """A record-form value (None included) -> the values of the field's columns, in order."""
        return (None if value is None else self.to_db(value),)

    def from_columns(self, values: tuple[Any, ...]) -> Any:
        """The values of the field's columns -> record form."""
        (value,) = values
        return None if value is None else self.from_db(value)

    def default_value(self, default: Any) -> Any:
        """A `default:` as written in YAML -> record form (what migrate fills existing rows with)."""
        return default

    # -------------------------------------------------------------------------------- validation

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        """The marshmallow field that turns an input value into record form, or says what is wrong."""
        # computed types (formula, rollup, auto_number) are never written, so only a new type can reach this
        raise NotImplementedError(f"field type {self.name!r} has no validator")

    # ---------------------------------------------------------------------------- filters, OpenAPI

    def filter_kind_of(self, column: sa.Column | None) -> str:
        """The filter kind of a field of this type stored in `column` (None: computed, or a report path)."""
        return self.filter_kind

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        """The JSON Schema of a value in a record as the API returns it (null left out)."""
        return {"type": "string"}

    def input_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        """The JSON Schema of what the API takes on write (null left out)."""
        return self.json_schema(f, md)

    # ---------------------------------------------------------------------------- forms and pages

    def choices(self, f: FieldDef, value: Any, lang: str) -> list[tuple[str, str]]:
        """(value, label) of the input's options: the active ones, and the current value's."""
        return []

    def display(self, f: FieldDef, value: Any) -> str | None:
        """A non-empty value as the pages show it, when that does not depend on the page's language or
        clock (None: the pages' own rendering: labels, titles, yes/no, local times, else the text)."""
        return None

    def export(self, value: Any) -> str:
        """A non-null value as one CSV cell, the API's form as text: several values joined by `;`, and text
        that a spreadsheet would run as a formula made inert."""
        if isinstance(value, list):
            return MULTI_SEPARATOR.join(self.export(v) for v in value if v is not None)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime | date):
            return value.isoformat()
        return inert(str(value))


class JsonFieldType(FieldType):
    """A type whose values (lists, mappings) are kept as JSON text in one column."""

    json = True

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.Text()

    def to_db(self, value: Any) -> Any:
        return json.dumps(value, ensure_ascii=False)

    def from_db(self, value: Any) -> Any:
        return json.loads(value)


def inert(text: str) -> str:
    """Text a spreadsheet would run as a formula (`=...`, `@...`, `+cmd|...`) gets a leading apostrophe,
    which Excel and LibreOffice show as text; numbers such as `+8613800000000` or `-5` stay as they are."""
    if text[:1] in ("=", "@", "\t", "\r") or (text[:1] in ("+", "-") and not NUMBER.fullmatch(text)):
        return "'" + text
    return text


def items(value: Any) -> list[Any] | None:
    """A list input, or a comma-separated text as its stripped items (None when it is neither)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return [item.strip() if isinstance(item, str) else item for item in value]
    return None


def no_nul(value: str) -> None:
    """NUL cannot be stored (PostgreSQL refuses it in text) and never belongs in a field."""
    if "\x00" in value:
        raise ValidationError(Message("value.nul", "must not contain NUL characters"))

