"""The field-type registry: which options each type takes and what kind of value it holds.

Kinds are what expressions type-check against: text, number, boolean, date, datetime,
list (multi-valued), geo, file. Storage and validation for each type live in `runtime`
and register against the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMON_OPTIONS = frozenset(
    {"type", "label", "help", "required", "unique", "default", "read_only", "hidden", "index", "searchable"}
)


@dataclass(frozen=True)
class FieldType:
    name: str
    kind: str
    options: frozenset[str] = frozenset()
    reference: str | None = None  # implied target object (user, department), or "to" when given
    numeric: bool = False
    computed: bool = False  # the platform writes the value, never the user


FIELD_TYPES: dict[str, FieldType] = {}


def register(field_type: FieldType) -> FieldType:
    """Add a field type; industry templates and the engine's built-ins use the same call."""
    FIELD_TYPES[field_type.name] = field_type
    return field_type


_NUMBER = frozenset({"precision", "scale", "min", "max"})
for _ft in (
    FieldType("text", "text", frozenset({"max_length"})),
    FieldType("long_text", "text", frozenset({"max_length"})),
    FieldType("email", "text"),
    FieldType("phone", "text"),
    FieldType("url", "text"),
    FieldType("integer", "number", frozenset({"min", "max"}), numeric=True),
    FieldType("number", "number", _NUMBER, numeric=True),
    FieldType("currency", "number", _NUMBER, numeric=True),
    FieldType("percent", "number", _NUMBER, numeric=True),
    FieldType("boolean", "boolean"),
    FieldType("date", "date"),
    FieldType("datetime", "datetime"),
    FieldType("picklist", "text", frozenset({"picklist", "options"})),
    FieldType("multi_picklist", "list", frozenset({"picklist", "options"})),
    FieldType("lookup", "text", frozenset({"to"}), reference="to"),
    FieldType("master_detail", "text", frozenset({"to"}), reference="to"),
    FieldType("user", "text", reference="user"),
    FieldType("department", "text", reference="department"),
    FieldType("multi_user", "list", frozenset({"team"}), reference="user"),
    FieldType("multi_department", "list", reference="department"),
    FieldType("auto_number", "text", frozenset({"pattern"}), computed=True),
    FieldType("formula", "any", frozenset({"expression", "result_type", "stored"}), computed=True),
    FieldType("rollup", "number", frozenset({"function", "child", "via", "field", "filter"}), numeric=True,
              computed=True),
    FieldType("geolocation", "geo"),
    FieldType("password", "text"),  # write-only, stored as a hash
    FieldType("attachment", "file"),
):
    register(_ft)

# Fields every object has; definitions may not declare them.
SYSTEM_FIELDS: dict[str, str] = {
    "id": "text",
    "owner": "user",
    "created_by": "user",
    "created_at": "datetime",
    "updated_by": "user",
    "updated_at": "datetime",
    "version": "integer",
}


def value_kind(field_type: str, result_type: str | None = None) -> str:
    """The expression kind of a field's value (a formula has the kind of its result type)."""
    if field_type == "formula":
        return FIELD_TYPES[result_type or "text"].kind
    return FIELD_TYPES[field_type].kind
