"""The demo company: the steps of demo/company.yaml run through the records service in one transaction.

A step creates records of one object (`records:` inline, or `csv:` naming a file beside the YAML) or
updates records created earlier (`update:`, naming them by `key`). A value "@key", anywhere in a
record (lists and inline child lines included), is replaced by the id of the record named `key`.
A record's `owner` is also the user who creates it.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

DEMO_FILE = "company.yaml"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    display_name: str


@dataclass(frozen=True)
class DemoResult:
    counts: Mapping[str, int]  # object name -> records created (inline child lines included)
    users: tuple[DemoUser, ...]  # the users created, with the passwords they sign in with


def load_demo(platform, folder: Path | None = None) -> DemoResult:
    """Create the demo company's records; nothing is written if any record fails validation."""
    folder = folder or platform.settings.root / "demo"
    steps = YAML(typ="safe").load((folder / DEMO_FILE).read_text(encoding="utf-8"))["steps"]
    records = platform.records
    ids: dict[str, str] = {}
    counts: Counter[str] = Counter()
    users = []
    with records.transaction() as conn:
        for step in steps:
            if "update" in step:
                for raw in step["records"]:
                    record_id = ids[raw["key"]]
                    values = _resolve({k: v for k, v in raw.items() if k != "key"}, ids)
                    current = records.get(step["update"], record_id, conn=conn)
                    records.update(
                        step["update"], record_id, values, version=current["version"], conn=conn, system=True
                    )
                continue
            name = step["create"]
            for raw in _step_records(step, folder):
                key = raw.pop("key", None)
                values = _resolve(raw, ids)
                record = records.create(name, values, user=values.get("owner"), conn=conn, system=True)
                counts[name] += 1
                counts.update(_child_lines(platform.metadata, name, values))
                if key:
                    ids[key] = record["id"]
                if name == "user":
                    users.append(DemoUser(values["username"], values["password"], values["display_name"]))
    return DemoResult(dict(counts), tuple(users))


def _child_lines(metadata, name: str, values: Mapping[str, Any]) -> dict[str, int]:
    """How many inline child lines a record carried, by child object (e.g. {"order_line": 3})."""
    fields = metadata.objects[name].fields
    return {key: len(v) for key, v in values.items() if key not in fields and key in metadata.objects}


def _step_records(step: Mapping, folder: Path) -> Iterator[dict]:
    """A create step's records: inline ones, or the CSV file's rows without their empty cells."""
    if "csv" not in step:
        yield from (dict(r) for r in step["records"])
        return
    with (folder / step["csv"]).open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            yield {k: v for k, v in row.items() if v != ""}


def _resolve(value: Any, ids: Mapping[str, str]) -> Any:
    """The value with every "@key" replaced by that record's id and dates written as ISO 8601 text."""
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in ids:
            raise KeyError(f"demo data names {value}, which no earlier record has as its key")
        return ids[value[1:]]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value
