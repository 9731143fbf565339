"""Is it a metadata document of a known kind, valid under that kind's JSON Schema?"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource

from ._yaml import Document, JsonPath
from .problems import Problem, closest

KINDS = (
    "object",
    "picklist",
    "object_extension",
    "roles",
    "approval_flow",
    "sales_process",
    "rule",
    "report",
    "dashboard",
    "navigation",
    "report_folders",
)
MANIFEST_KIND = "industry_template"  # an edition's manifest (templates.py): beside its layer, not a document in it
NAME = re.compile(r"[a-z][a-z0-9_]*")
NAME_RULE = "use lowercase letters, digits and _, starting with a letter"
SCHEMAS = Path(__file__).parent / "schemas"


def check_kind(doc: Document) -> Iterator[Problem]:
    """A document is a mapping whose `kind` is one of KINDS."""
    if not isinstance(doc.data, dict):
        yield doc.problem((), "a metadata document is a mapping that starts with kind:")
    elif "kind" not in doc.data:
        yield doc.problem((), f"missing kind: (one of {', '.join(KINDS)})")
    elif doc.data["kind"] not in KINDS:
        yield doc.problem(("kind",), f"unknown kind {doc.data['kind']!r}", closest(doc.data["kind"], KINDS))


@cache
def _validators() -> dict[str, Draft202012Validator]:
    schemas = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SCHEMAS.glob("*.json"))]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    return {
        kind: Draft202012Validator({"$ref": f"urn:objectplatform:{kind}"}, registry=registry)
        for kind in (*KINDS, MANIFEST_KIND)
    }


def schema_errors(doc: Document) -> Iterator[tuple[JsonPath, Problem]]:
    """The JSON Schema errors of a document of a known kind, each with its path."""
    key = _key(doc.data)
    if key in _VALID:
        return
    errors = list(_validators()[doc.data["kind"]].iter_errors(doc.data))
    if not errors and key is not None:
        if len(_VALID) >= VALID_KEPT:
            _VALID.clear()
        _VALID.add(key)
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    for error in errors:
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            for key in sorted(error.instance.keys() - known.keys()):
                yield (*path, key), doc.problem((*path, key), f"unknown key {key!r}", closest(key, known))
        elif path not in mistyped or error.validator == "type":
            yield path, doc.problem(path, _schema_message(error), _schema_hint(error))


# Documents known to have no schema error, by their data as canonical JSON: validating costs about 50 ms a
# document, and a process (`check` of several layers, a worker, the tests) loads the same documents again.
_VALID: set[str] = set()
VALID_KEPT = 4096


def _key(data: Any) -> str | None:
    """`data` as canonical JSON (a value JSON has not, as its repr); None when its keys do not sort."""
    try:
        return json.dumps(data, sort_keys=True, ensure_ascii=False, default=repr)
    except TypeError:
        return None


def _schema_message(error: ValidationError) -> str:
    if custom := error.schema.get("x-messages", {}).get(error.validator):
        return custom
    if error.validator == "pattern" and error.validator_value == f"^{NAME.pattern}$":
        return f"invalid name {error.instance!r}: {NAME_RULE}"
    return error.message


def _schema_hint(error: ValidationError) -> str | None:
    return closest(error.instance, map(str, error.validator_value)) if error.validator == "enum" else None
