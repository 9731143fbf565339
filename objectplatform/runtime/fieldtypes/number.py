"""Number field types: integer, and the decimals number, currency and percent."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields, validate

from objectplatform.metadata import FieldDef, Metadata

from ..errors import Message
from .base import FieldType


def plain(bound: float) -> int | Decimal:
    """A bound from the metadata as written: 100 rather than 100.0."""
    number = Decimal(str(bound))
    return int(number) if number == number.to_integral_value() else number


def bounds(low: float | None, high: float | None) -> list[validate.Validator]:
    """A range check with a message saying which bounds exist."""
    if low is None and high is None:
        return []
    if low is not None and high is not None:
        error = Message("value.between", "must be between {min} and {max}")
    else:
        error = (Message("value.at_least", "must be at least {min}") if low is not None
                 else Message("value.at_most", "must be at most {max}"))
    return [validate.Range(None if low is None else plain(low), None if high is None else plain(high), error=error)]


def as_decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def plain_number(value: Decimal) -> str:
    """A decimal without trailing zeros after the point (3.50 -> 3.5, 2.00 -> 2)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def numeric(precision: int | None, scale: int | None) -> sa.Numeric:
    """A decimal column; precision defaults to 18 digits and scale to 2, as docs/metadata.md says."""
    return sa.Numeric(precision or 18, 2 if scale is None else scale)


class WholeNumber(fields.Field):
    """An integer: ints, integral floats and decimals, and digit texts such as "-12"."""

    default_error_messages = {"invalid": Message("value.not_whole_number", "must be a whole number"),
                              "too_large": Message("value.too_many_digits", "must have at most 18 digits")}
    TEXT = re.compile(r"[+-]?[0-9]+")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and self.TEXT.fullmatch(value):
            number = int(value)
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            number = int(value)
        else:
            raise self.make_error("invalid")
        if abs(number) >= 10**18:
            raise self.make_error("too_large")
        return number


NOT_A_NUMBER = Message("value.not_a_number", "must be a number")


class DecimalNumber(fields.Decimal):
    """A decimal rounded half up to the field's scale."""

    default_error_messages = {
        "invalid": NOT_A_NUMBER,
        "special": NOT_A_NUMBER,
        "too_large": NOT_A_NUMBER,
    }


def integer_digits(limit: int) -> Callable[[Decimal], None]:
    """A check that a decimal has at most `limit` digits before the point."""

    def check(value: Decimal) -> None:
        if value and value.adjusted() >= limit:
            raise ValidationError(Message("value.integer_digits", "must have at most {limit} digits before the "
                                          "decimal point", limit=limit))

    return check


class Integer(FieldType):
    filter_kind = "integer"
    widget = "integer"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.BigInteger()

    def from_db(self, value: Any) -> Any:
        return int(value)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return WholeNumber(validate=bounds(f.min, f.max))

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "integer"}

    def display(self, f: FieldDef, value: Any) -> str | None:
        number = as_decimal(value)
        return None if number is None else plain_number(number)


class Number(FieldType):
    """A decimal of `precision` digits, `scale` of them after the point (18 and 2 unless given)."""

    filter_kind = "decimal"
    widget = "number"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return numeric(f.precision, f.scale)

    def default_value(self, default: Any) -> Any:
        return Decimal(str(default))

    def range(self, f: FieldDef) -> tuple[float | None, float | None]:
        return f.min, f.max

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        scale = 2 if f.scale is None else f.scale
        checks = [integer_digits((f.precision or 18) - scale), *bounds(*self.range(f))]
        return DecimalNumber(places=scale, rounding=ROUND_HALF_UP, validate=checks)

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "number"}

    def display(self, f: FieldDef, value: Any) -> str | None:
        number = as_decimal(value)
        return None if number is None else plain_number(number)


class Currency(Number):
    """An amount, shown with thousands separators and two decimals."""

    def display(self, f: FieldDef, value: Any) -> str | None:
        number = as_decimal(value)
        return None if number is None else f"{number:,.2f}"


class Percent(Number):
    """A percentage from 0 to 100 unless `min` or `max` say otherwise, shown with %."""

    def range(self, f: FieldDef) -> tuple[float | None, float | None]:
        return (0, 100) if f.min is None and f.max is None else (f.min, f.max)

    def display(self, f: FieldDef, value: Any) -> str | None:
        number = as_decimal(value)
        return None if number is None else plain_number(number) + "%"


DECIMAL_OPTIONS = frozenset({"precision", "scale", "min", "max"})
DECIMAL_DEFAULTS = {"precision": 18, "scale": 2}
INTEGER = Integer("integer", "number", frozenset({"min", "max"}), numeric=True, comparable=True)
NUMBER = Number("number", "number", DECIMAL_OPTIONS, numeric=True, defaults=DECIMAL_DEFAULTS, comparable=True)
CURRENCY = Currency("currency", "number", DECIMAL_OPTIONS, numeric=True, defaults=DECIMAL_DEFAULTS, comparable=True)
PERCENT = Percent("percent", "number", DECIMAL_OPTIONS, numeric=True, defaults=DECIMAL_DEFAULTS, comparable=True)
TYPES = (INTEGER, NUMBER, CURRENCY, PERCENT)
