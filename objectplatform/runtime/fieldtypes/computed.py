"""Field types the platform computes, never the user: auto_number, formula (its values are those of its
`result_type`) and rollup (a sum, count, min or max over child records)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FIELD_TYPES, FieldDef, Metadata

from .base import FieldType
from .number import numeric


def value_type(f: FieldDef) -> FieldType:
    """The type of a field's values: a formula's result type, else the field's own."""
    return FIELD_TYPES[f.result_type or "text" if f.type == "formula" else f.type]


class AutoNumber(FieldType):
    """A text assigned on create from a pattern such as `SO-{YYYY}{MM}-{0000}` (records/autonumber.py)."""

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.String(64)


class Formula(FieldType):
    """A value computed from an expression, on read or (`stored: true`) on write; everything about its
    values is its result type's."""

    def columns(self, f: FieldDef, md: Metadata) -> list[sa.Column]:
        """A stored formula gets a column of its result type; the others are computed on read."""
        if not f.stored:
            return []
        return value_type(f).columns(replace(f, type=f.result_type or "text"), md)

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return value_type(f).json_schema(f, md)

    def display(self, f: FieldDef, value: Any) -> str | None:
        return value_type(f).display(f, value)


def summarised(f: FieldDef, md: Metadata) -> FieldDef:
    """The child field a rollup's sum, min or max reads."""
    return md.objects[f.rollup.child].fields[f.rollup.field]


class Rollup(FieldType):
    """count is an integer; sum/min/max of numbers a wide decimal; min/max of other values take the
    type of the field they read."""

    filter_kind = "decimal"

    def columns(self, f: FieldDef, md: Metadata) -> list[sa.Column]:
        if f.rollup.function == "count":
            return [sa.Column(f.name, sa.BigInteger())]
        child = summarised(f, md)
        source = value_type(child)
        if source.numeric:
            return [sa.Column(f.name, numeric(20, child.scale))]
        return source.columns(FieldDef(f.name, source.name, child.label, child.source), md)

    def filter_kind_of(self, column: sa.Column | None) -> str:
        """By the column's type: a count filters as an integer, a min of dates as a date."""
        if column is None:
            return self.filter_kind
        for cls, kind in ((sa.Integer, "integer"), (sa.Numeric, "decimal"), (sa.DateTime, "datetime"),
                          (sa.Date, "date")):
            if isinstance(column.type, cls):
                return kind
        return "text"

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        if f.rollup.function == "count":
            return {"type": "integer"}
        child = summarised(f, md)
        source = value_type(child)
        return {"type": "number"} if source.numeric else source.json_schema(child, md)


AUTO_NUMBER = AutoNumber("auto_number", "text", frozenset({"pattern"}), computed=True, searchable=True,
                         comparable=True)
FORMULA = Formula("formula", "any", frozenset({"expression", "result_type", "stored", "typed_override"}), computed=True)
ROLLUP = Rollup("rollup", "number", frozenset({"function", "child", "via", "field", "filter", "never_above"}),
                numeric=True, computed=True)
TYPES = (AUTO_NUMBER, FORMULA, ROLLUP)
