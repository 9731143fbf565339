"""Field types: one `FieldType` object per type, which storage, validation, filters, forms, pages, export and
the OpenAPI document read instead of branching on type names (docs/metadata.md, "Adding a field type").

The built-ins below are registered with the metadata layer's registry when this package is imported
(the runtime imports it before it loads anything); an industry template registers its own the same way.
"""

from objectplatform.metadata import FIELD_TYPES
from objectplatform.metadata.fieldtypes import register

from . import choice, computed, number, rating, reference, structured, temporal, text
from .base import FieldType as FieldType
from .base import inert as inert
from .computed import value_type as value_type
from .reference import RECORD_ID_INPUT as RECORD_ID_INPUT
from .reference import record_id as record_id

BUILT_IN: tuple[FieldType, ...] = (
    *text.TYPES, *number.TYPES, *rating.TYPES, *choice.TYPES, *temporal.TYPES, *reference.TYPES,
    *structured.TYPES, *computed.TYPES,
)
for _type in BUILT_IN:
    register(_type)

# Families other modules ask about by name (the built-ins only).
REFERENCE_TYPES = frozenset(t.name for t in reference.TYPES if isinstance(t, reference.Reference))
MULTI_TYPES = frozenset(t.name for t in BUILT_IN if t.filter_kind == "list")


def type_named(name: str) -> FieldType:
    """The registered type named `name` (KeyError when there is none)."""
    return FIELD_TYPES[name]
