"""The field-type registry as the metadata layer sees it: each type's name, value kind, options and checks.

(How it works: docs/engine.md, "objectplatform/metadata/fieldtypes.py".)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import FieldDef

COMMON_OPTIONS = frozenset(
    {"type", "label", "help", "required", "unique", "default", "default_from", "default_match", "read_only", "hidden",
     "index", "searchable"}
)


@dataclass(frozen=True)
class FieldType:
    """What loading and checking a definition need to know of a field type."""

    name: str
    kind: str
    options: frozenset[str] = frozenset()
    reference: str | None = None  # implied target object (user, department), or "to" when given
    numeric: bool = False
    computed: bool = False  # the platform writes the value, never the user
    defaults: Mapping[str, Any] = field(default_factory=dict)  # option values a field gets when not given
    searchable: bool = False  # may be marked `searchable` (a text column `q` can look into)
    comparable: bool = False  # a duplicate rule may compare it (one stored value, equal or not)

    def check(self, f: FieldDef) -> Iterator[tuple[str, str]]:
        """(option, message) for each option value this type cannot take; the JSON Schema checked the rest."""
        return iter(())


FIELD_TYPES: dict[str, FieldType] = {}


def register(field_type: FieldType) -> FieldType:
    """Add a field type; the built-ins (runtime/fieldtypes) and industry templates use the same call."""
    FIELD_TYPES[field_type.name] = field_type
    return field_type


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
