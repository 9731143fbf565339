"""Reference field types: lookup, master_detail, user and department (one record's id), multi_user and
multi_department (a list of ids, stored as JSON text)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields

from objectplatform.metadata import FieldDef, Metadata

from ..errors import Message
from .base import FieldType, JsonFieldType, items

MAX_ID = 2**63 - 1
# What the API takes as a record id (it answers ids as text): the text of a positive whole number, or the number.
RECORD_ID_INPUT: dict[str, Any] = {"type": ["string", "integer"], "pattern": "^[1-9][0-9]{0,17}$", "minimum": 1,
                                   "maximum": MAX_ID}


def record_id(value: Any) -> str | None:
    """A positive integer id (text or number) as text, or None when it is not one."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return str(value)
    return None


class RecordId(fields.Field):
    """The id of a record (existence is the records service's to check), as text."""

    default_error_messages = {"invalid": Message("value.not_an_id", "must be a record id (a positive whole number)")}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if (found := record_id(value)) is None:
            raise self.make_error("invalid")
        return found


class RecordIds(fields.Field):
    """A list of record ids (or a comma-separated text of them), as texts without repeats."""

    default_error_messages = {"type": Message("value.not_id_list", "must be a list of record ids"),
                              "invalid": Message("value.item_not_an_id", "'{input}' is not a record id")}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        given = items(value)
        if given is None:
            raise self.make_error("type")
        ids = [record_id(item) for item in given]
        if None in ids:
            template = self.error_messages["invalid"]
            wrong = [item for item, found in zip(given, ids, strict=True) if found is None]
            raise ValidationError([template.format(input=item) for item in wrong])
        return list(dict.fromkeys(ids))


class Reference(FieldType):
    """The id of one record of the object `to` (text in records, an integer column)."""

    filter_kind = "reference"
    widget = "lookup"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.BigInteger()

    def to_db(self, value: Any) -> Any:
        return int(value)

    def from_db(self, value: Any) -> Any:
        return str(value)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return RecordId()

    def check(self, f: FieldDef) -> Iterator[tuple[str, str]]:
        """A required reference cannot be emptied when its record is deleted."""
        if f.on_delete == "clear" and f.required:
            yield "on_delete", ("on_delete: clear empties the field, which a required field cannot be: "
                                "use refuse or cascade")

    def input_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return RECORD_ID_INPUT


class References(JsonFieldType):
    """The ids of several records of the object `to`, stored as a JSON list of texts."""

    filter_kind = "list"
    widget = "multi_lookup"

    def to_db(self, value: Any) -> Any:
        return super().to_db([str(v) for v in value])

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return RecordIds()

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}}

    def input_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "array", "items": RECORD_ID_INPUT}


TO = frozenset({"to"})
ON_DELETE = frozenset({"on_delete"})  # what deleting the record it names does to it (records/recycle_bin.py)
FILTER = frozenset({"filter", "show"})  # the values a newly named target must hold; its fields a form shows
LOOKUP = Reference("lookup", "text", TO | ON_DELETE | FILTER, reference="to", comparable=True)
MASTER_DETAIL = Reference("master_detail", "text", TO, reference="to", comparable=True)
USER = Reference("user", "text", reference="user", comparable=True)
DEPARTMENT = Reference("department", "text", ON_DELETE, reference="department", comparable=True)
MULTI_USER = References("multi_user", "list", frozenset({"team"}), reference="user")
MULTI_DEPARTMENT = References("multi_department", "list", reference="department")
TYPES = (LOOKUP, MASTER_DETAIL, USER, DEPARTMENT, MULTI_USER, MULTI_DEPARTMENT)
