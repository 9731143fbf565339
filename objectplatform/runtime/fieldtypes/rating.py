"""The rating field type: a whole number of stars from 1 to `max` (5 unless given), shown as ★★★☆☆."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from marshmallow import fields

from objectplatform.metadata import FieldDef, Metadata

from .base import FieldType
from .number import WholeNumber, bounds

MOST_STARS = 10


class Rating(FieldType):
    filter_kind = "integer"
    widget = "select"

    def check(self, f: FieldDef) -> Iterator[tuple[str, str]]:
        if not (isinstance(f.max, int) and not isinstance(f.max, bool) and 1 <= f.max <= MOST_STARS):
            yield "max", f"max of a rating must be a whole number from 1 to {MOST_STARS}, not {f.max!r}"

    def column_type(self, f: FieldDef) -> sa.types.TypeEngine:
        return sa.SmallInteger()

    def from_db(self, value: Any) -> Any:
        return int(value)

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return WholeNumber(validate=bounds(1, f.max))

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": f.max}

    def choices(self, f: FieldDef, value: Any, lang: str) -> list[tuple[str, str]]:
        return [(str(n), f"{self.display(f, n)} {n}") for n in range(1, f.max + 1)]

    def display(self, f: FieldDef, value: Any) -> str | None:
        stars = min(int(value), f.max) if isinstance(value, int) and not isinstance(value, bool) else None
        return None if stars is None else "★" * stars + "☆" * (f.max - stars)


RATING = Rating("rating", "number", frozenset({"max"}), numeric=True, defaults={"max": 5}, comparable=True)
TYPES = (RATING,)
