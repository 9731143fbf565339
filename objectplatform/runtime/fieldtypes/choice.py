"""Choice field types: boolean, picklist (one option) and multi_picklist (several)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields

from objectplatform.metadata import FieldDef, Metadata

from ..errors import Message
from .base import FieldType, JsonFieldType, items


class Flag(fields.Field):
    """A boolean: true/false, 1/0, and the texts true/false, 1/0, yes/no in any case."""

    default_error_messages = {"invalid": Message("value.not_boolean", "must be true or false")}
    WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and (flag := self.WORDS.get(value.lower())) is not None:
            return flag
        raise self.make_error("invalid")


class Choice(fields.Field):
    """One of the active option values of a picklist."""

    default_error_messages = {"invalid": Message("value.not_an_option", "'{input}' is not one of: {allowed}")}

    def __init__(self, values: tuple[str, ...], **kwargs: Any):
        super().__init__(**kwargs)
        self.values, self.allowed = frozenset(values), ", ".join(values) or "(no active options)"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str) and value in self.values:
            return value
        raise self.make_error("invalid", input=value, allowed=self.allowed)


class Choices(Choice):
    """A list of active option values (or a comma-separated text of them), without repeats."""

    default_error_messages = {"type": Message("value.not_a_list", "must be a list of values")}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        given = items(value)
        if given is None:
            raise self.make_error("type")
        wrong = [item for item in given if not (isinstance(item, str) and item in self.values)]
        if wrong:
            template = self.error_messages["invalid"]
            raise ValidationError([template.format(input=item, allowed=self.allowed) for item in wrong])
        return list(dict.fromkeys(given))


class Boolean(FieldType):
    filter_kind = "boolean"
    widget = "checkbox"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.Boolean()

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return Flag()

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "boolean"}


def _active(f: FieldDef) -> tuple[str, ...]:
    return tuple(o.value for o in f.options if o.active)


def _options(f: FieldDef, value: Any, lang: str) -> list[tuple[str, str]]:
    """The active options, and the inactive ones the value still holds."""
    held = value if isinstance(value, list) else [value]
    return [(o.value, o.label.get(lang)) for o in f.options if o.active or o.value in held]


class Picklist(FieldType):
    """One option value of the field's options (inline, or a shared `kind: picklist`)."""

    widget = "select"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.String(100)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return Choice(_active(f))

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"enum": [o.value for o in f.options]} if f.options else {"type": "string"}

    def choices(self, f: FieldDef, value: Any, lang: str) -> list[tuple[str, str]]:
        return _options(f, value, lang)


class MultiPicklist(JsonFieldType):
    """A list of option values, stored as JSON text."""

    filter_kind = "list"
    widget = "checkboxes"

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return Choices(_active(f))

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "array", "items": {"enum": [o.value for o in f.options]} if f.options else {"type": "string"}}

    def choices(self, f: FieldDef, value: Any, lang: str) -> list[tuple[str, str]]:
        return _options(f, value, lang)


OPTIONS = frozenset({"picklist", "options"})
BOOLEAN = Boolean("boolean", "boolean", comparable=True)
PICKLIST = Picklist("picklist", "text", OPTIONS, searchable=True, comparable=True)
MULTI_PICKLIST = MultiPicklist("multi_picklist", "list", OPTIONS)
TYPES = (BOOLEAN, PICKLIST, MULTI_PICKLIST)
