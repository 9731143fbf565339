"""Between records (what services take and return) and rows (what the tables hold).

A record maps field names to Python values: ids and references as strings, Decimal for numbers,
date/datetime (UTC, aware) for dates, lists for multi-valued fields, {"lat", "lng"} for a
geolocation and {"name", "path", "size", "content_type"} for an attachment. Passwords never leave
the table. Rows map column names to what the database driver takes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .tables import MULTI_TYPES, REFERENCE_TYPES, ObjectTable

JSON_TYPES = MULTI_TYPES | {"attachment"}
ID_FIELDS = frozenset({"id", "owner", "created_by", "updated_by"})


def field_type(ot: ObjectTable, name: str) -> str:
    """The field type of a field or system field (system ids count as references)."""
    if name in ID_FIELDS:
        return "user" if name != "id" else "lookup"
    if name in ("created_at", "updated_at"):
        return "datetime"
    if name == "version":
        return "integer"
    f = ot.object.fields[name]
    return f.result_type or "text" if f.type == "formula" else f.type


def to_db(type_name: str, value: Any, multi_reference: bool = False) -> Any:
    """One value in record form -> the column value (geolocation is handled by `to_row`)."""
    if value is None:
        return None
    if type_name in REFERENCE_TYPES or type_name in ("lookup",):
        return int(value)
    if type_name in ("multi_user", "multi_department"):
        return json.dumps([str(v) for v in value])
    if type_name in JSON_TYPES:
        return json.dumps(value, ensure_ascii=False)
    if type_name == "datetime":
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return value


def from_db(type_name: str, value: Any) -> Any:
    """One column value -> record form."""
    if value is None:
        return None
    if type_name in REFERENCE_TYPES:
        return str(value)
    if type_name in JSON_TYPES:
        return json.loads(value)
    if type_name == "datetime":
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if type_name == "integer":
        return int(value)
    return value


def to_row(ot: ObjectTable, record: Mapping[str, Any]) -> dict[str, Any]:
    """Record-form values (any subset of fields) -> {column: value} for an INSERT or UPDATE."""
    row: dict[str, Any] = {}
    for name, value in record.items():
        columns = ot.columns.get(name)
        if columns is None:
            continue  # computed on read, or not a field
        if len(columns) == 2:  # geolocation
            row[columns[0]] = None if value is None else float(value["lat"])
            row[columns[1]] = None if value is None else float(value["lng"])
        else:
            row[columns[0]] = to_db(field_type(ot, name), value)
    return row


def from_row(ot: ObjectTable, row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row -> the record (stored fields only; formulas computed on read are added by records)."""
    record: dict[str, Any] = {}
    for name, columns in ot.columns.items():
        if name in ot.object.fields and ot.object.fields[name].type == "password":
            continue
        if len(columns) == 2:
            lat, lng = row[columns[0]], row[columns[1]]
            record[name] = None if lat is None or lng is None else {"lat": lat, "lng": lng}
        else:
            record[name] = from_db(field_type(ot, name), row[columns[0]])
    return record


def now() -> datetime:
    """The current time as stored: UTC, second precision kept to microseconds."""
    return datetime.now(UTC)
