"""Field types whose value is a small mapping: geolocation ({"lat", "lng"}, two float columns) and
attachment (a stored file {"name", "path", "size", "content_type"}, JSON text)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError, fields

from objectplatform.metadata import FieldDef, Metadata

from ..errors import Message
from .base import FieldType, JsonFieldType, inert

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
BASE64 = "^[A-Za-z0-9+/]*={0,2}$"


def coordinate(value: Any) -> float | None:
    """A finite number (or its text) as a float, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number - number == 0 else None  # rejects nan and inf


class Location(fields.Field):
    """A geolocation: {"lat", "lng"} or "lat,lng", within the valid ranges, as floats."""

    default_error_messages = {
        "invalid": Message("value.not_a_location", 'must be {{"lat": ..., "lng": ...}} or "lat,lng"'),
        "lat": Message("value.latitude", "latitude must be between -90 and 90"),
        "lng": Message("value.longitude", "longitude must be between -180 and 180"),
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, float]:
        if isinstance(value, str) and value.count(",") == 1:
            lat, lng = (coordinate(part.strip()) for part in value.split(","))
        elif isinstance(value, Mapping) and set(value) == {"lat", "lng"}:
            lat, lng = coordinate(value["lat"]), coordinate(value["lng"])
        else:
            lat = lng = None
        if lat is None or lng is None:
            raise self.make_error("invalid")
        problems = [
            self.error_messages[key]
            for key, number, limit in (("lat", lat, 90), ("lng", lng, 180))
            if abs(number) > limit
        ]
        if problems:
            raise ValidationError(problems)
        return {"lat": lat, "lng": lng}


class File(fields.Field):
    """An attachment: a stored file {name, path, size, content_type}, or an upload for the service to save.

    An upload is {filename, content_base64, content_type?}; it is returned as given once its content
    is known to be base64 of at most 20 MB.
    """

    default_error_messages = {
        "invalid": Message("value.not_a_file", "must be a stored file {{name, path, size, content_type}} "
                           "or an upload {{filename, content_base64, content_type}}"),
        "path": Message("value.file_path", "path must be a relative path inside the file store"),
        "base64": Message("value.file_base64", "content_base64 is not valid base64"),
        "too_large": Message("value.file_too_large", "must be at most 20 MB"),
    }
    STORED = frozenset({"name", "path", "size", "content_type"})
    UPLOAD = frozenset({"filename", "content_base64"})

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        keys = set(value) if isinstance(value, Mapping) else set()
        if keys == self.STORED and self._stored_shape(value):
            return self._stored(value)
        if keys in (self.UPLOAD, self.UPLOAD | {"content_type"}) and self._upload_shape(value):
            return self._upload(value)
        raise self.make_error("invalid")

    @staticmethod
    def _stored_shape(value: Mapping[str, Any]) -> bool:
        size = value["size"]
        texts = (value["name"], value["path"], value["content_type"])
        return (
            all(isinstance(t, str) and t for t in texts)
            and isinstance(size, int)
            and not isinstance(size, bool)
            and size >= 0
        )

    @staticmethod
    def _upload_shape(value: Mapping[str, Any]) -> bool:
        texts = (value["filename"], value.get("content_type", "-"))
        return all(isinstance(t, str) and t for t in texts) and isinstance(value["content_base64"], str)

    def _stored(self, value: Mapping[str, Any]) -> dict[str, Any]:
        path = value["path"]
        if path.startswith(("/", "\\")) or ":" in path or ".." in re.split(r"[/\\]", path):
            raise self.make_error("path")
        return {key: value[key] for key in ("name", "path", "size", "content_type")}

    def _upload(self, value: Mapping[str, Any]) -> dict[str, Any]:
        content = value["content_base64"]
        if len(content) > (MAX_UPLOAD_BYTES + 2) // 3 * 4:
            raise self.make_error("too_large")
        try:
            decoded = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):  # ValueError: text that is not ASCII
            raise self.make_error("base64") from None
        if len(decoded) > MAX_UPLOAD_BYTES:
            raise self.make_error("too_large")
        return dict(value)


class Geolocation(FieldType):
    """A point: two float columns `<name>_lat` and `<name>_lng`."""

    filter_kind = "geo"
    widget = "geo"

    def columns(self, f: FieldDef, md: Metadata) -> list[sa.Column]:
        return [sa.Column(f"{f.name}_lat", sa.Float()), sa.Column(f"{f.name}_lng", sa.Float())]

    def to_columns(self, value: Any) -> tuple[Any, ...]:
        return (None, None) if value is None else (float(value["lat"]), float(value["lng"]))

    def from_columns(self, values: tuple[Any, ...]) -> Any:
        lat, lng = values
        return None if lat is None or lng is None else {"lat": lat, "lng": lng}

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return Location()

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "object", "properties": {"lat": {"type": "number"}, "lng": {"type": "number"}},
                "required": ["lat", "lng"]}

    def display(self, f: FieldDef, value: Any) -> str | None:
        return f"{value['lat']}, {value['lng']}" if isinstance(value, Mapping) else None

    def export(self, value: Any) -> str:
        return f"{inert(str(value['lat']))},{inert(str(value['lng']))}"


class Attachment(JsonFieldType):
    """A file kept under the instance folder; the record holds its name, path, size and content type."""

    filter_kind = "file"
    widget = "file"

    def validator(self, f: FieldDef, md: Metadata) -> fields.Field:
        return File()

    def json_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "object", "required": ["name", "path", "size", "content_type"],
                "properties": {"name": {"type": "string"}, "path": {"type": "string"},
                               "size": {"type": "integer"}, "content_type": {"type": "string"}}}

    def input_schema(self, f: FieldDef, md: Metadata) -> dict[str, Any]:
        return {"type": "object", "required": ["filename", "content_base64"],
                "properties": {"filename": {"type": "string"},
                               "content_base64": {"type": "string", "pattern": BASE64},
                               "content_type": {"type": "string"}}}

    def display(self, f: FieldDef, value: Any) -> str | None:
        return str(value.get("name", "")) if isinstance(value, Mapping) else None

    def export(self, value: Any) -> str:
        return inert(str(value.get("name", ""))) if isinstance(value, Mapping) else super().export(value)


GEOLOCATION = Geolocation("geolocation", "geo")
ATTACHMENT = Attachment("attachment", "file")
TYPES = (GEOLOCATION, ATTACHMENT)
