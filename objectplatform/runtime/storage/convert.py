"""Between records (what services take and return) and rows (what the tables hold).

(How it works: docs/engine.md, "objectplatform/runtime/storage/convert.py".)"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..fieldtypes import BUILT_IN, type_named, value_type
from .tables import SYSTEM_TYPES, ObjectTable

JSON_TYPES = frozenset(t.name for t in BUILT_IN if t.json)  # the built-ins stored as JSON text
ID_FIELDS = frozenset({"id", "owner", "created_by", "updated_by"})


def field_type(ot: ObjectTable, name: str) -> str:
    """The type of a field's or system field's values (system ids count as references); a formula's is
    its result type."""
    if name in SYSTEM_TYPES:
        return SYSTEM_TYPES[name]
    return value_type(ot.object.fields[name]).name


def to_db(type_name: str, value: Any) -> Any:
    """One value in record form -> the column value (a geolocation's two columns: `to_row`)."""
    return None if value is None else type_named(type_name).to_db(value)


def from_db(type_name: str, value: Any) -> Any:
    """One column value -> record form."""
    return None if value is None else type_named(type_name).from_db(value)


def to_row(ot: ObjectTable, record: Mapping[str, Any]) -> dict[str, Any]:
    """Record-form values (any subset of fields) -> {column: value} for an INSERT or UPDATE."""
    row: dict[str, Any] = {}
    for name, value in record.items():
        columns = ot.columns.get(name)
        if columns is None:
            continue  # computed on read, or not a field
        row.update(zip(columns, ot.types[name].to_columns(value), strict=True))
    return row


def from_row(ot: ObjectTable, row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row -> the record (stored fields only; formulas computed on read are added by records)."""
    record: dict[str, Any] = {}
    for name, column, read in ot.readers:  # a list page reads thousands of values: no call for a value as stored
        if column:
            value = row[column]
            record[name] = value if value is None or read is None else read(value)
        else:
            record[name] = read.from_columns(tuple(row[c] for c in ot.columns[name]))
    return record


def from_rows(ot: ObjectTable, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """`from_row` of rows whose first columns are the table's in its order (a select of the table), as a list page
    reads them: the values as stored taken by place in one call per row, then the few a type converts."""
    names, take, converted, combined = ot.places
    records = []
    for row in rows:
        record = dict(zip(names, take(row), strict=True))
        for name, read in converted:
            value = record[name]
            if value is not None:
                record[name] = read(value)
        for name, type_, at in combined:
            record[name] = type_.from_columns(tuple(row[i] for i in at))
        records.append(record)
    return records
