"""The OpenAPI 3.1 document of the API, generated from the metadata: every object's record schema (each
field typed), its list filters, its actions and the error responses.

Built once per app from the definitions only (no database), and served at /api/v1/openapi.json.
"""

from __future__ import annotations

from typing import Any

from objectplatform.metadata import FieldDef, Metadata, ObjectDef
from objectplatform.runtime import imports, search
from objectplatform.runtime.actions import Action, Actions
from objectplatform.runtime.behaviors.anomalies import KINDS
from objectplatform.runtime.behaviors.calendar import CALENDAR, MAX_DAYS, MAX_PLANNED
from objectplatform.runtime.behaviors.check_in import CHECK_IN
from objectplatform.runtime.behaviors.comments import BODY_MAX, has_comments
from objectplatform.runtime.behaviors.frequency import FREQUENCY
from objectplatform.runtime.behaviors.route import ROUTE
from objectplatform.runtime.fieldtypes import RECORD_ID_INPUT, type_named, value_type
from objectplatform.runtime.geo import DEFAULT_LIMIT, DEFAULT_RADIUS_M, MAX_LIMIT, MAX_RADIUS_M, location_field
from objectplatform.runtime.records.query import operators, searchable

from .errors import ERROR_STATUSES

JSON = "application/json"
IMPORT_MEDIA_TYPES = ("text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "text/vcard")
IMPORT_FILE_NAME = f'filename="[^"]*({"|".join(imports.EXTENSIONS)})"'.replace(".", "[.]")
CSV = "text/csv"
NULL = "null"
SYSTEM_SCHEMAS: dict[str, dict] = {
    "id": {"type": "string"},
    "version": {"type": "integer"},
    "owner": {"type": ["string", NULL]},
    "created_by": {"type": ["string", NULL]},
    "created_at": {"type": "string", "format": "date-time"},
    "updated_by": {"type": ["string", NULL]},
    "updated_at": {"type": "string", "format": "date-time"},
}


def _nullable(schema: dict) -> dict:
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": NULL}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": [*types, NULL]}


def value_schema(metadata: Metadata, f: FieldDef) -> dict:
    """The JSON schema of a field's value in a record (without null)."""
    return type_named(f.type).json_schema(f, metadata)


def _input_schema(metadata: Metadata, f: FieldDef) -> dict:
    """What a field accepts on write (numbers also as text, an attachment as an upload)."""
    schema = type_named(f.type).input_schema(f, metadata)
    if schema.get("type") == "string" and f.max_length and "format" not in schema:
        schema = {**schema, "maxLength": f.max_length}
    if f.to:
        schema = {**schema, "description": f"the id of a {f.to}"}
    return schema if f.required else _nullable(_or_empty(schema))


EMPTY = {"type": "string", "pattern": r"^\s*$", "description": "empty (or blank): no value"}


def _or_empty(schema: dict) -> dict:
    """An optional field's input schema that also takes "" (or blank text), which the server reads as no value."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], ""]}
    if schema.get("type") == "string" and not {"format", "pattern", "minLength"} & set(schema):
        return schema  # any text: "" is one
    return {"anyOf": [schema, EMPTY]}


def _writable(f: FieldDef) -> bool:
    return (not type_named(f.type).computed or f.typed_override is not None) and not f.read_only and not f.system


SYSTEM_KINDS = {"id": "reference", "version": "integer", "owner": "reference", "created_by": "reference",
                "created_at": "datetime", "updated_by": "reference", "updated_at": "datetime"}


def _filter_kind(metadata: Metadata, obj: ObjectDef, name: str) -> str:
    """The filter kind of a field or system field as records/query.py reads it (a rollup's by its column)."""
    if name not in obj.fields:
        return SYSTEM_KINDS[name]
    f = obj.fields[name]
    type_ = value_type(f)
    columns = type_.columns(f, metadata) if f.type == "rollup" else []
    return type_.filter_kind_of(columns[0] if len(columns) == 1 else None)


_DATE = "[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"  # years from 1000, days to 28: always valid
_ITEM_PATTERNS = {  # what records/query.py reads for each filter kind, as a regular expression
    "integer": "[+-]?[0-9]{1,18}",
    "decimal": "[+-]?[0-9]{1,20}([.][0-9]{1,20})?",
    "date": _DATE,
    "datetime": _DATE + "(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?",
    "boolean": "[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0",
    "reference": "[0-9]{1,18}",
}


def _filter_value(kind: str, op: str) -> dict:
    """A filter's value as the list query reads it: typed by the field's kind, several comma-separated for `in`."""
    item = None if op == "contains" else _ITEM_PATTERNS.get("boolean" if op == "isnull" else kind)
    if item is None:
        return {"type": "string", **({"description": "comma-separated values"} if op == "in" else {})}
    if op == "in":
        return {"type": "string", "pattern": f"^({item})(,({item}))*$", "description": "comma-separated values"}
    return {"type": "string", "pattern": f"^({item})$"}


def filter_parameters(metadata: Metadata, obj: ObjectDef) -> dict:
    """The filters of a list as one form-exploded query object: `field`, `field__op` for every operator."""
    properties: dict[str, Any] = {}
    for name in _readable(obj):
        kind = _filter_kind(metadata, obj, name)
        for op in operators(kind):
            properties[name if op == "eq" else f"{name}__{op}"] = _filter_value(kind, op)
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _readable(obj: ObjectDef) -> list[str]:
    """The system fields and the fields a record shows, by name."""
    return [*SYSTEM_SCHEMAS, *(name for name, f in obj.fields.items() if type_named(f.type).readable)]


def _sortable(metadata: Metadata, obj: ObjectDef) -> list[str]:
    """The fields a list sorts on: stored (not formula) with a comparable value."""
    return [name for name in _readable(obj) if "eq" in operators(_filter_kind(metadata, obj, name))
            and (name not in obj.fields or obj.fields[name].type != "formula")]


def _names_parameter(name: str, names: list[str], description: str) -> dict:
    """A comma-separated list of names (form style, not exploded); a name given again adds nothing."""
    return {"name": name, "in": "query", "style": "form", "explode": False, "description": description,
            "schema": {"type": "array", "items": {"enum": names}, "minItems": 1}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict) -> dict:
    return {JSON: {"schema": schema}}


def _responses(ok_status: str, ok: dict | None, *errors: int) -> dict:
    responses: dict[str, Any] = {}
    if ok is None:
        responses[ok_status] = {"description": "done (no body)"}
    else:
        responses[ok_status] = {"description": "success", "content": _content(ok)}
    for status in (401, 414, *errors):  # every URL may be too long (errors.MAX_URL_BYTES)
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return dict(sorted(responses.items()))


def _calendar_paths(obj: ObjectDef, base: str, tag: list, record: dict) -> dict:
    """An object's calendar (and planning for others), its visit frequency list and its check-in anomalies, when it
    declares them."""
    paths: dict[str, dict] = {}
    lang = {"name": "lang", "in": "query", "schema": {"enum": ["zh", "en"]}}
    if CALENDAR.declared_by(obj):
        config = CALENDAR.config_of(obj)
        day = {"type": "string", "format": "date"}
        entry = {"type": "object", "required": ["id", "at", "day", "title", "state", "owner"], "properties": {
            "id": {"type": "string"}, "at": {"type": ["string", NULL]}, "day": {"type": ["string", NULL]},
            "time": {"type": ["string", NULL]}, "title": {"type": "string"}, "state": {"type": ["string", NULL]},
            "state_label": {"type": ["string", NULL]}, "owner": {"type": ["string", NULL]},
            "owner_name": {"type": ["string", NULL]}, "attendees": {"type": "array", "items": {"type": "string"}}}}
        paths[f"{base}/calendar"] = {"get": {
            "operationId": f"calendar_{obj.name}", "tags": tag, "summary": f"{obj.label.en} calendar",
            "description": f"the caller's records by {config.date} in a month or in [start, end) (at most {MAX_DAYS} "
                           "days), on `user`'s calendar when given (owned by them or naming them)",
            "parameters": [{"name": "month", "in": "query",
                            "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}},
                           {"name": "start", "in": "query", "schema": day},
                           {"name": "end", "in": "query", "schema": day},
                           {"name": "user", "in": "query", "schema": {"type": "string"}}, lang],
            "responses": _responses("200", {"type": "object", "required": ["start", "end", "items"], "properties": {
                "start": day, "end": day, "items": {"type": "array", "items": entry}}}, 400, 403, 404)}}
        if config.plan_for is not None:
            paths[f"{base}/plan"] = {"post": {
                "operationId": f"plan_{obj.name}", "tags": tag, "summary": f"Plan {obj.label.en} records",
                "description": f"one {obj.name} per {config.plan_for} id in `ids` (at most {MAX_PLANNED}), with the "
                               f"other fields given ({config.date} required), owned by the caller, all or none; "
                               "`warnings` when a daily cap is passed",
                "parameters": [lang],
                "requestBody": {"required": True, "content": _content({
                    "type": "object", "required": ["ids", config.date],
                    "properties": {"ids": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                           "maxItems": MAX_PLANNED}}})},
                "responses": _responses("201", {"type": "object", "required": ["created", "items", "warnings"],
                                                "properties": {
                    "created": {"type": "array", "items": {"type": "string"}},
                    "items": {"type": "array", "items": record},
                    "warnings": {"type": "array", "items": {"type": "object", "required": ["message"], "properties": {
                        "message": {"type": "string"}, "reason": {"type": "string"}, "params": {"type": "object"}}}}}},
                    400, 403, 404, 422)}}
    if FREQUENCY.declared_by(obj):
        config = FREQUENCY.config_of(obj)
        counts = {"visited": {"type": "integer"}, "required": {"type": "integer"}}
        paths[f"{base}/frequency"] = {"get": {
            "operationId": f"frequency_{obj.name}", "tags": tag, "summary": f"{obj.label.en} below their frequency",
            "description": f"the caller's records visited less often in the {config.period} holding `day` (or "
                           f"`month`, else today) than their {config.by} requires, per owner",
            "parameters": [{"name": "day", "in": "query", "schema": {"type": "string", "format": "date"}},
                           {"name": "month", "in": "query", "schema": {"type": "string"}},
                           {"name": "owner", "in": "query", "schema": {"type": "string"}}, lang],
            "responses": _responses("200", {"type": "object", "required": ["period", "items", "owners"], "properties": {
                "period": {"type": "object"},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "title": {"type": ["string", NULL]}, "owner": {"type": ["string", NULL]},
                    **counts}}},
                "owners": {"type": "array", "items": {"type": "object", "properties": {
                    "owner": {"type": ["string", NULL]}, "records": {"type": "integer"}, **counts}}}}}, 400, 403, 404)}}
    if CHECK_IN.declared_by(obj):
        point = {"type": ["object", NULL], "properties": {"lat": {"type": "number"}, "lng": {"type": "number"}}}
        text = {"type": ["string", NULL]}
        paths[f"{base}/anomalies"] = {"get": {
            "operationId": f"anomalies_{obj.name}", "tags": tag, "summary": f"{obj.label.en} check-in anomalies",
            "description": "the caller's records planned from `start` to `end` (both included; default this month "
                           "to today, at most a quarter) checked in out of range, checked out too soon, missed, "
                           "never checked out, completed without a required action, reached too fast from the "
                           "owner's check-in before, located less precisely than the tolerance or checked in from "
                           "one spot for targets far apart (`kind`: one of them), latest first, at most 500, with the "
                           "counts",
            "parameters": [{"name": "start", "in": "query", "schema": {"type": "string", "format": "date"}},
                           {"name": "end", "in": "query", "schema": {"type": "string", "format": "date"}},
                           {"name": "kind", "in": "query", "schema": {"enum": list(KINDS)}},
                           {"name": "owner", "in": "query", "schema": {"type": "string"}},
                           {"name": "record", "in": "query", "schema": {"type": "string"}}, lang],
            "responses": _responses("200", {"type": "object", "required": ["period", "counts", "total", "items"],
                                            "properties": {
                "period": {"type": "object"}, "tolerance_m": {"type": "number"},
                "min_minutes": {"type": ["integer", NULL]}, "max_speed_kmh": {"type": ["number", NULL]},
                "kinds": {"type": "array", "items": {"enum": list(KINDS)}},
                "total": {"type": "integer"}, "counts": {"type": "object"},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "title": text, "owner": text, "owner_name": text, "planned_at": text,
                    "check_in_at": text, "check_out_at": text, "distance_m": {"type": ["number", NULL]},
                    "duration_minutes": {"type": ["integer", NULL]},
                    "kinds": {"type": "array", "items": {"enum": list(KINDS)}}, "check_in": point,
                    "target": text, "target_title": text, "target_location": point}}}}}, 400, 403, 404)}}
        paths[f"{base}/mileage"] = {"get": {
            "operationId": f"mileage_{obj.name}", "tags": tag, "summary": f"{obj.label.en} mileage per owner and day",
            "description": "the great-circle distances between each owner's consecutive check-ins of a day (the "
                           "caller's records checked in from `start` to `end`, both included; default the last 30 "
                           "days), in km and times the settings' road factor, by owner then day",
            "parameters": [{"name": "start", "in": "query", "schema": {"type": "string", "format": "date"}},
                           {"name": "end", "in": "query", "schema": {"type": "string", "format": "date"}},
                           {"name": "owner", "in": "query", "schema": {"type": "string"}}, lang],
            "responses": _responses("200", {"type": "object", "required": ["period", "items", "km", "road_km"],
                                            "properties": {
                "period": {"type": "object"}, "road_factor": {"type": "number"}, "km": {"type": "number"},
                "road_km": {"type": "number"},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "owner": text, "owner_name": text, "day": {"type": "string", "format": "date"},
                    "check_ins": {"type": "integer"}, "km": {"type": "number"},
                    "road_km": {"type": "number"}}}}}}, 400, 403, 404)}}
    return paths


def _label_schema() -> dict:
    return {"type": ["object", NULL], "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}}


def _action_params_schema(metadata: Metadata, action: Action, bulk: bool) -> dict:
    properties = {p.name: p.json_schema() or _input_schema(metadata, p.field()) for p in action.params}
    required = [p.name for p in action.params if p.required]
    if bulk:
        properties["ids"] = {"type": "array", "items": RECORD_ID_INPUT, "minItems": 1, "maxItems": 500}
        required.insert(0, "ids")
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _object_paths(metadata: Metadata, obj: ObjectDef, actions: list[Action]) -> dict:
    name = obj.name
    record, input_, patch = _ref(name), _ref(f"{name}_input"), _ref(f"{name}_patch")
    record_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}}
    tag = [name]
    list_params = [
        {"name": "filters", "in": "query", "style": "form", "explode": True,
         "schema": filter_parameters(metadata, obj)},
        *([{"name": "q", "in": "query", "schema": {"type": "string"}, "description": "search the searchable fields"}]
          if searchable(obj) else []),
        _names_parameter("sort", [n for name in _sortable(metadata, obj) for n in (name, f"-{name}")],
                         "e.g. -created_at,name: fields to sort on, - for descending (a field named again adds "
                         "nothing)"),
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of a page"},
        {"name": "total", "in": "query", "schema": {"enum": ["exact"]},
         "description": "count every matching record (by default, beyond OBJECTPLATFORM_EXACT_TOTAL_LIMIT matches, "
                        "100,000 unless set, the total is the database's estimate)"},
    ]
    export_params = [
        *(p for p in list_params if p["name"] in ("filters", "q", "sort")),
        _names_parameter("fields", _readable(obj),
                         "comma-separated field names to export after id (default: the list view's columns)"),
        {"name": "labels", "in": "query", "schema": {"enum": ["zh", "en"]},
         "description": "head the columns with the fields' labels in this language (default: field names)"},
    ]
    export = {"description": "every matching record in the caller's scope: UTF-8 with a BOM, a header row, then "
                             "one row per record in sort order",
              "headers": {"Content-Disposition": {"schema": {"type": "string"},
                                                  "description": f'attachment; filename="{name}-YYYYMMDD.csv"'}},
              "content": {CSV: {"schema": {"type": "string"}}}}
    page = {"type": "object", "required": ["items", "next_cursor", "total", "total_is_exact"],
            "additionalProperties": False,
            "properties": {"items": {"type": "array", "items": record}, "next_cursor": {"type": ["string", NULL]},
                           "total": {"type": ["integer", NULL]},
                           "total_is_exact": {"type": "boolean", "description": "false: more records match than "
                                              "OBJECTPLATFORM_EXACT_TOTAL_LIMIT and total is an estimate"}}}
    base = f"/objects/{name}"
    saved = _ref(f"{name}_saved") if _warns(obj) else record
    paths: dict[str, Any] = {
        f"{base}/records": {
            "get": {"operationId": f"list_{name}", "tags": tag, "summary": f"List {obj.label.en} records",
                    "parameters": list_params, "responses": _responses("200", page, 400, 403)},
            "post": {"operationId": f"create_{name}", "tags": tag, "summary": f"Create a {obj.label.en}",
                     "requestBody": {"required": True, "content": _content(input_)},
                     "responses": _responses("201", saved, 400, 403, 422)},
        },
        f"{base}/records/export.csv": {
            "get": {"operationId": f"export_{name}", "tags": tag, "summary": f"Export {obj.label.en} records as CSV",
                    "parameters": export_params,
                    "responses": {**_responses("200", None, 400, 403), "200": export}},
        },
        f"{base}/records/{{id}}": {
            "parameters": [record_id],
            "get": {"operationId": f"get_{name}", "tags": tag,
                    "responses": _responses("200", _ref(f"{name}_detail"), 403, 404)},
            "patch": {"operationId": f"update_{name}", "tags": tag,
                      "requestBody": {"required": True, "content": _content(patch)},
                      "responses": _responses("200", saved, 400, 403, 404, 409, 422)},
            "delete": {"operationId": f"delete_{name}", "tags": tag,
                       "responses": _responses("204", None, 403, 404, 409)},
        },
        f"{base}/records/{{id}}/history": {
            "parameters": [record_id],
            "get": {"operationId": f"history_{name}", "tags": tag,
                    "responses": _responses("200", _ref("History"), 403, 404)},
        },
    }
    if location_field(obj) is not None:
        paths[f"{base}/nearby"] = {"get": {
            "operationId": f"nearby_{name}", "tags": tag, "summary": f"{obj.label.en} records near a point",
            "description": f"the caller's records within radius_m of (lat, lng) by {location_field(obj).name}, "
                           "nearest first, each with its great-circle distance_m",
            "parameters": [
                {"name": "lat", "in": "query", "required": True, "schema": {"type": "number", "minimum": -90,
                                                                            "maximum": 90}},
                {"name": "lng", "in": "query", "required": True, "schema": {"type": "number", "minimum": -180,
                                                                            "maximum": 180}},
                {"name": "radius_m", "in": "query", "schema": {"type": "number", "minimum": 1,
                                                               "maximum": MAX_RADIUS_M, "default": DEFAULT_RADIUS_M}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                                            "default": DEFAULT_LIMIT}}],
            "responses": _responses("200", {"type": "object", "required": ["items"], "properties": {"items": {
                "type": "array", "items": {"allOf": [record, {"type": "object", "required": ["distance_m"],
                                                              "properties": {"distance_m": {"type": "number"}}}]}}}},
                400, 403, 404)}}
    paths.update(_calendar_paths(obj, base, tag, record))
    paths[f"{base}/imports"] = {
        "post": {"operationId": f"import_{name}", "tags": tag, "summary": f"Import {obj.label.en} records",
                 "description": "Checks the file (400 naming every unknown column) and starts a job importing its "
                                "rows as the caller, who needs create and the import action; poll GET /jobs/{id}.",
                 "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                     "type": "object", "required": ["file"],
                     "properties": {"file": {"type": "string", "format": "binary",
                                             "description": "the file's name says its type (runtime/imports.py): "
                                                           ".csv (UTF-8, header row of field names or labels), "
                                                           ".xlsx (first sheet) or .vcf (vCard 3 or 4); any other "
                                                           "is a 400"},
                                    "all_or_nothing": {"type": "boolean", "default": False},
                                    "force": {"type": "boolean", "default": False,
                                              "description": "import a file imported before (else 409)"}}},
                     "encoding": {"file": {"contentType": ", ".join(IMPORT_MEDIA_TYPES), "headers": {
                         "Content-Disposition": {"schema": {"type": "string", "pattern": IMPORT_FILE_NAME},
                                                 "example": 'form-data; name="file"; filename="records.csv"'}}}}}}},
                 "responses": _responses("202", {"type": "object", "required": ["job_id"],
                                                 "properties": {"job_id": {"type": "string"}}}, 400, 403, 404, 409)},
    }
    for action in actions:
        result = {"type": "object", "required": ["record"],
                  "properties": {"record": {"anyOf": [record, {"type": NULL}]}}}
        paths[f"{base}/records/{{id}}/actions/{action.name}"] = {
            "parameters": [record_id],
            "post": {"operationId": f"{name}_{action.name}", "tags": tag, "summary": action.label.en,
                     "requestBody": {"content": _content(_action_params_schema(metadata, action, bulk=False))},
                     "responses": _responses("200", result, 400, 403, 404, 409, 422)},
        }
        if action.bulk:
            paths[f"{base}/actions/{action.name}"] = {
                "post": {"operationId": f"{name}_{action.name}_bulk", "tags": tag,
                         "summary": f"{action.label.en} (many records)",
                         "requestBody": {"required": True,
                                         "content": _content(_action_params_schema(metadata, action, bulk=True))},
                         "responses": _responses("200", _ref("BulkResult"), 400, 403, 404, 422)},
            }
    return paths


_REF_OR_NULL = {"type": ["object", NULL], "properties": {"id": {"type": "string"}, "title": {}}}
DUPLICATE_WARNINGS = {
    "type": "array", "description": "the duplicate rules of action warn that the new record matches",
    "items": {"type": "object", "required": ["rule", "label", "message", "count", "matches"], "properties": {
        "rule": {"type": "string"}, "label": {"type": "object"}, "message": {"type": "string"},
        "count": {"type": "integer"},
        "matches": {"type": "array", "maxItems": 5, "items": {"type": "object", "required": ["id", "title", "owner"],
                    "properties": {"id": {"type": "string"}, "title": {}, "owner": _REF_OR_NULL,
                                   "pool": _REF_OR_NULL}}}}}}


AVAILABLE_ACTIONS = {
    "type": "array", "description": "the actions and lifecycle transitions the caller may run on the record now",
    "items": {"type": "object", "required": ["name", "label"], "additionalProperties": False,
              "properties": {"name": {"type": "string"}, "label": {"type": "object"}}}}


def _warns(obj: ObjectDef) -> bool:
    return any(rule.action == "warn" for rule in obj.duplicate_rules)


def _record_schemas(metadata: Metadata, obj: ObjectDef, children: list[tuple[str, str]]) -> dict:
    """`<object>` (a record as returned), `<object>_input` (create) and `<object>_patch` (update)."""
    name = obj.name
    properties = dict(SYSTEM_SCHEMAS)
    for f in obj.fields.values():
        if type_named(f.type).readable:
            properties[f.name] = _nullable(value_schema(metadata, f))
    required = list(properties)
    for child, _via in children:
        properties[child] = {"type": "array", "items": _ref(child)}
    writable = {"owner": {**_nullable(RECORD_ID_INPUT), "description": "the id of a user"}}
    writable.update({f.name: _input_schema(metadata, f) for f in obj.fields.values() if _writable(f)})
    child_inputs = {child: {"type": "array", "items": _ref(f"{child}_line")} for child, _via in children}
    creating = [f.name for f in obj.fields.values() if _writable(f) and f.required and f.default is None]
    line = {field: schema for field, schema in writable.items()
            if field == "owner" or obj.fields[field].type != "master_detail"}
    created = {}
    if _warns(obj):  # the answer to a create or update: the record and the duplicate rules' `_warnings`
        created[f"{name}_saved"] = {"type": "object", "properties": {**properties, "_warnings": DUPLICATE_WARNINGS},
                                      "required": required, "additionalProperties": False}
    detail = {  # one record's GET: the record and what the caller may run on it now
        "type": "object", "properties": {**properties, "_actions": AVAILABLE_ACTIONS},
        "required": [*required, "_actions"], "additionalProperties": False}
    return {
        **created,
        f"{name}_detail": detail,
        name: {"type": "object", "properties": properties, "required": required, "additionalProperties": False},
        f"{name}_input": {"type": "object", "properties": {**writable, **child_inputs}, "required": creating,
                          "additionalProperties": False},
        f"{name}_patch": {"type": "object", "properties": {"version": {"type": "integer", "minimum": 1},
                                                           **writable, **child_inputs},
                          "required": ["version"], "additionalProperties": False},
        f"{name}_line": {"type": "object", "properties": {"id": RECORD_ID_INPUT, **line},
                         "additionalProperties": False},
    }


_STRING_OR_NULL = {"type": ["string", NULL]}
_WHEN = {"type": "string", "format": "date-time"}
_WHEN_OR_NULL = {"type": ["string", NULL], "format": "date-time"}
WORK_QUEUE_SCHEMAS: dict[str, Any] = {
    "Todo": {"type": "object", "additionalProperties": False,
             "required": ["id", "kind", "title", "title_zh", "title_en", "object", "record_id", "created_at", "action",
                          "approval_id", "user", "role", "done", "done_at"],
             "properties": {"id": {"type": "string"}, "kind": {"type": "string"}, "title": {"type": "string"},
                            "title_zh": {"type": "string"}, "title_en": {"type": "string"},
                            "object": _STRING_OR_NULL, "record_id": _STRING_OR_NULL, "created_at": _WHEN,
                            "action": _STRING_OR_NULL, "approval_id": _STRING_OR_NULL, "user": _STRING_OR_NULL,
                            "role": _STRING_OR_NULL, "done": {"type": "boolean"}, "done_at": _WHEN_OR_NULL}},
    "Notification": {"type": "object", "additionalProperties": False,
                     "required": ["id", "title", "title_zh", "title_en", "object", "record_id", "created_at", "read",
                                  "read_at"],
                     "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                                    "title_zh": {"type": "string"}, "title_en": {"type": "string"},
                                    "object": _STRING_OR_NULL, "record_id": _STRING_OR_NULL, "created_at": _WHEN,
                                    "read": {"type": "boolean"}, "read_at": _WHEN_OR_NULL}},
    "ReadResult": {"type": "object", "required": ["marked", "unread"], "additionalProperties": False,
                   "properties": {"marked": {"type": "integer"}, "unread": {"type": "integer"}}},
}


def work_queue_paths() -> dict:
    """The caller's to-dos and notifications (web/api_work.py)."""
    lang = {"name": "lang", "in": "query", "schema": {"enum": ["zh", "en"]},
            "description": "the language of `title` (default: Accept-Language, else zh)"}
    item_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    tag = ["work queue"]
    return {
        "/todos": {"get": {"operationId": "list_todos", "tags": tag, "parameters": [lang],
                           "summary": "The caller's open to-dos and those of the roles they hold, newest first",
                           "responses": _responses("200", {
                               "type": "object", "required": ["items"], "additionalProperties": False,
                               "properties": {"items": {"type": "array", "items": _ref("Todo")}}}, 400)}},
        "/todos/{id}/done": {"post": {"operationId": "finish_todo", "tags": tag, "parameters": [item_id, lang],
                                      "summary": "Finish a to-do (for a role: for every holder)",
                                      "responses": _responses("200", _ref("Todo"), 400, 404, 409)}},
        "/notifications": {"get": {
            "operationId": "list_notifications", "tags": tag,
            "parameters": [lang, {"name": "unread", "in": "query", "schema": {"enum": ["true", "false"]}}],
            "responses": _responses("200", {
                "type": "object", "required": ["items", "unread"], "additionalProperties": False,
                "properties": {"items": {"type": "array", "items": _ref("Notification")},
                               "unread": {"type": "integer"}}}, 400)}},
        "/notifications/{id}/read": {"post": {"operationId": "read_notification", "tags": tag,
                                              "parameters": [item_id],
                                              "responses": _responses("200", _ref("ReadResult"), 404)}},
        "/notifications/read": {"post": {"operationId": "read_all_notifications", "tags": tag,
                                         "responses": _responses("200", _ref("ReadResult"))}},
    }


COMMENT_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["id", "object", "record_id", "parent", "author", "body", "mentions", "created_at"],
    "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "record_id": {"type": "string"},
                   "parent": _STRING_OR_NULL, "author": {"type": "string"}, "body": {"type": "string"},
                   "mentions": {"type": "array", "items": {"type": "string"},
                                "description": "the mentioned users' ids"},
                   "created_at": _WHEN}}


def comment_paths(metadata: Metadata) -> dict:
    """The thread of each record of the objects with the comments behavior (web/api_comments.py)."""
    record_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    new = {"type": "object", "required": ["body"], "additionalProperties": False,
           "properties": {"body": {"type": "string", "minLength": 1, "maxLength": BODY_MAX,
                                   "description": "@username or @display name mentions (notifies) a colleague who "
                                                  "can see the record"},
                          "parent": {"type": ["string", NULL], "description": "the comment this one replies to"}}}
    return {f"/objects/{obj.name}/records/{{id}}/comments": {
        "get": {"operationId": f"list_{obj.name}_comments", "tags": [obj.name], "parameters": [record_id],
                "summary": f"The comments on a {obj.label.en}, oldest first",
                "responses": _responses("200", {"type": "object", "required": ["items"], "additionalProperties": False,
                                                "properties": {"items": {"type": "array", "items": COMMENT_SCHEMA}}},
                                        403, 404)},
        "post": {"operationId": f"comment_on_{obj.name}", "tags": [obj.name], "parameters": [record_id],
                 "summary": f"Comment on a {obj.label.en} (or reply to a comment), notifying whom it mentions",
                 "requestBody": {"required": True, "content": _content(new)},
                 "responses": _responses("201", COMMENT_SCHEMA, 400, 403, 404, 422)},
    } for obj in metadata.objects.values() if has_comments(obj)}


def recycle_bin_paths() -> dict:
    """The administrators' recycle bin (web/api_recycle_bin.py)."""
    tag = ["recycle bin"]
    entry = {"type": "object", "additionalProperties": False,
             "required": ["id", "object", "record_id", "title", "deleted_by", "deleted_at", "purge_at"],
             "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "record_id": {"type": "string"},
                            "title": {"type": "string"}, "deleted_by": _STRING_OR_NULL, "deleted_at": _WHEN,
                            "purge_at": _WHEN}}
    return {
        "/recycle_bin": {"get": {
            "operationId": "list_recycle_bin", "tags": tag,
            "summary": "The deleted records that may still be restored, newest first (administrators only)",
            "responses": _responses("200", {"type": "object", "required": ["items"], "additionalProperties": False,
                                            "properties": {"items": {"type": "array", "items": entry}}}, 403)}},
        "/recycle_bin/{id}/restore": {"post": {
            "operationId": "restore_from_recycle_bin", "tags": tag,
            "summary": "Put a deleted record (and its lines) back with its id and values; answers the record",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": _responses("200", {"type": "object", "required": ["id"]}, 403, 404, 409)}},
    }


_LABEL_PAIR = {"type": "object", "required": ["zh", "en"], "additionalProperties": False,
               "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}}


def search_paths(metadata: Metadata) -> dict:
    """The global search over the objects declaring `search:` (runtime/search.py); none when no object does."""
    searched = [o.name for o in metadata.objects.values() if o.search]
    if not searched:
        return {}
    item = {"type": "object", "additionalProperties": False, "required": ["id", "title", "field", "values", "url"],
            "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                           "field": {"type": "string", "description": "the field whose term matched"},
                           "values": {"type": "object", "description": "the record's other searched fields that "
                                                                       "have a value (a masked phone as 139****5678)"},
                           "url": {"type": "string", "description": "the record's page"}}}
    group = {"type": "object", "additionalProperties": False, "required": ["object", "label", "items"],
             "properties": {"object": {"enum": searched}, "label": _LABEL_PAIR,
                            "items": {"type": "array", "items": item}}}
    return {"/search": {"get": {
        "operationId": "search", "tags": ["search"],
        "summary": "The caller's records whose name, phone or number starts with q (a Chinese name also by its full "
                   "pinyin or initials), grouped by object in metadata order",
        "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}},
                       {"name": "limit", "in": "query", "description": "records per object",
                        "schema": {"type": "integer", "minimum": 1, "maximum": search.MAX_LIMIT,
                                   "default": search.DEFAULT_LIMIT}}],
        "responses": _responses("200", {"type": "object", "additionalProperties": False, "required": ["q", "groups"],
                                        "properties": {"q": {"type": "string"},
                                                       "groups": {"type": "array", "items": group}}}, 400)}}}
APPROVAL_SCHEMAS: dict[str, Any] = {
    "Approval": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "object", "record_id", "kind", "flow", "label", "title", "status", "submitter",
                     "submitter_name", "comment", "started_at", "ended_at", "ended_by", "end_comment", "current_step",
                     "stage", "steps", "can_decide", "can_withdraw"],
        "properties": {
            "id": {"type": "string"}, "object": {"type": "string"}, "record_id": {"type": "string"},
            "kind": {"enum": ["flow", "stage"]}, "flow": {"type": "string"}, "label": _LABEL_PAIR,
            "title": _LABEL_PAIR, "status": {"enum": ["pending", "approved", "rejected", "withdrawn"]},
            "submitter": _STRING_OR_NULL, "submitter_name": _STRING_OR_NULL, "comment": _STRING_OR_NULL,
            "started_at": _WHEN, "ended_at": _WHEN_OR_NULL, "ended_by": _STRING_OR_NULL,
            "end_comment": _STRING_OR_NULL, "current_step": _STRING_OR_NULL, "stage": _STRING_OR_NULL,
            "can_decide": {"type": "boolean"}, "can_withdraw": {"type": "boolean"},
            "steps": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "required": ["name", "label", "mode", "status", "approvers"],
                "properties": {
                    "name": {"type": "string"}, "label": _LABEL_PAIR, "mode": {"enum": ["any", "all"]},
                    "status": {"enum": ["pending", "approved", "rejected", "skipped", "waiting", "withdrawn",
                                        "not_reached"]},
                    "approvers": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False,
                        "required": ["user", "name", "decision", "comment", "decided_at"],
                        "properties": {"user": {"type": "string"}, "name": _STRING_OR_NULL,
                                       "decision": {"enum": ["approved", "rejected", None]},
                                       "comment": _STRING_OR_NULL, "decided_at": _WHEN_OR_NULL}}}}}},
        }},
}


def approval_paths(metadata: Metadata) -> dict:
    """Reading and deciding approvals (web/api_approvals.py); submit and withdraw are record actions."""
    item_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    tag = ["approvals"]
    decided = {"type": "object", "required": ["record", "approval"], "additionalProperties": False,
               "properties": {"record": {"type": "object"}, "approval": _ref("Approval")}}

    def decide(name: str, required: bool) -> dict:
        body = {"type": "object", "additionalProperties": False, "required": ["comment"] if required else [],
                "properties": {"comment": {"type": "string", "minLength": 1} if required else _STRING_OR_NULL}}
        return {"post": {"operationId": f"{name}_approval", "tags": tag, "parameters": [item_id],
                         "summary": f"{name.capitalize()} the step waiting, as one of its approvers",
                         "requestBody": {"required": required, "content": _content(body)},
                         "responses": _responses("200", decided, 400, 403, 404, 409, 422)}}

    paths = {
        "/approvals/{id}": {"get": {"operationId": "get_approval", "tags": tag, "parameters": [item_id],
                                    "summary": "An approval: flow, status, steps, approvers, decisions, comments",
                                    "responses": _responses("200", _ref("Approval"), 404)}},
        "/approvals/{id}/approve": decide("approve", False),
        "/approvals/{id}/reject": decide("reject", True),
    }
    record_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}}
    flowing = {d.object for d in metadata.flows.values() if d.kind == "approval_flow"}
    for obj in metadata.objects.values():
        if obj.name in flowing or "sales_process" in obj.behaviors:
            paths[f"/objects/{obj.name}/records/{{id}}/approvals"] = {"get": {
                "operationId": f"approvals_of_{obj.name}", "tags": tag, "parameters": [record_id],
                "summary": f"The approvals of a {obj.label.en}, newest first",
                "responses": _responses("200", {"type": "object", "required": ["items"], "additionalProperties": False,
                                                "properties": {"items": {"type": "array", "items": _ref("Approval")}}},
                                        404)}}
    return paths


def route_paths(metadata: Metadata) -> dict:
    """POST /{path}/route and GET /{path}/plan.ics of each object declaring the route behavior."""
    paths = {}
    point = {"type": "object", "required": ["lat", "lng"],
             "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                            "lng": {"type": "number", "minimum": -180, "maximum": 180}}}
    date = {"type": "string", "format": "date"}
    for obj, config in ROUTE.configured(metadata):
        tag = [obj.name]
        paths[f"/{config.path}/route"] = {"post": {
            "operationId": f"route_{obj.name}", "tags": tag, "summary": f"Order a day's {obj.label.en} records",
            "description": f"The caller's {obj.name} records of `date` (or `visit_ids` of them) in the order that "
                           "travels least from `start` (else the user's home location, else the first stop), "
                           "each leg's km and minutes and the totals; saved as the day's route (`route`: its id) "
                           "unless `save` is false.",
            "requestBody": {"required": True, "content": _content({
                "type": "object", "required": ["date"], "additionalProperties": False,
                "properties": {"date": date, "start": point, "save": {"type": "boolean", "default": True},
                               "visit_ids": {"type": "array", "minItems": 1, "items": {"type": "string"}}}})},
            "responses": _responses("200", {
                "type": "object", "required": ["stops", "legs", "total_km", "total_minutes", "route"],
                "properties": {
                    "stops": {"type": "array", "items": {"type": "string"}},
                    "legs": {"type": "array", "items": {
                        "type": "object", "required": ["from", "to", "km", "minutes"],
                        "properties": {"from": {"type": ["string", NULL]}, "to": {"type": "string"},
                                       "km": {"type": "number"}, "minutes": {"type": "integer"}}}},
                    "total_km": {"type": "number"}, "total_minutes": {"type": "integer"},
                    "arrivals": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                    "start": {"oneOf": [point, {"type": NULL}]},
                    "route": {"type": ["string", NULL]}}}, 400, 403, 404, 422)}}
        paths[f"/{config.path}/plan.ics"] = {"get": {
            "operationId": f"day_plan_{obj.name}", "tags": tag, "summary": f"A day's {obj.label.en} plan as .ics",
            "parameters": [{"name": "date", "in": "query", "required": True, "schema": date}],
            "responses": {**_responses("200", None, 403, 404, 422), "200": {
                "description": "an iCalendar file: one VEVENT per record", "content": {
                    "text/calendar": {"schema": {"type": "string"}}}}}}}
    return paths


def report_paths() -> dict:
    """The report engine's endpoints (web/api_reports.py)."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    query = [{"name": "scene", "in": "query", "schema": {"enum": ["all", "mine", "subordinates"]}},
             {"name": "labels", "in": "query", "schema": {"enum": ["zh", "en"]}}]
    result = {"type": "object", "required": ["columns", "rows", "totals"], "additionalProperties": False,
              "properties": {"columns": {"type": "array", "items": {
                  "type": "object", "required": ["key", "label", "type"],
                  "properties": {"key": {"type": "string"}, "label": _ref("Label"), "type": {"type": "string"}}}},
                  "rows": {"type": "array", "items": {"type": "object"}},
                  "totals": {"type": ["object", NULL]}}}
    tag = ["reports"]
    summary = {"type": "object", "required": ["name", "personal", "label", "object", "engine"],
               "properties": {"name": {"type": "string"}, "personal": {"type": "boolean"}, "label": _ref("Label"),
                              "object": {"type": "string"}, "engine": {"type": "string"},
                              "folder": {"type": ["string", NULL]},
                              "description": {"oneOf": [_ref("Label"), {"type": NULL}]}}}
    named = {"type": "array", "items": {"type": "object"}}
    definition = {
        "type": "object", "required": ["name", "label", "object"],
        "description": "a report template's structure (docs/metadata.md, kind: report), checked as at load",
        "properties": {"kind": {"const": "report"}, "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                       "label": _ref("Label"), "object": {"type": "string"}, "folder": {"type": "string"},
                       "description": _ref("Label"), "dimensions": named,
                       "columns": {"type": "object"}, "measures": named, "filters": {"type": "object"},
                       "runtime_filters": named, "scene": {"enum": ["all", "mine", "subordinates"]},
                       "sort": {"type": "array", "items": {"type": "string"}}, "limit": {"type": "integer"},
                       "totals": {"type": "boolean"}, "chart": {"type": "object"}}}
    detail = {"allOf": [summary, {"type": "object", "required": ["definition"],
                                  "properties": {"definition": {"type": "object"}}}]}
    personal = "the caller's personal report of that name first, else the shipped one"
    return {
        "/reports": {
            "get": {"operationId": "list_reports", "tags": tag, "responses": _responses("200", {
                "type": "object", "required": ["items"], "properties": {"items": {"type": "array",
                                                                                  "items": summary}}})},
            "post": {"operationId": "create_report", "tags": tag,
                     "summary": "Save a report definition as the caller's personal report; a 422 names each bad "
                                "part by its path (measures[1].function)",
                     "requestBody": {"required": True, "content": _content(definition)},
                     "responses": _responses("201", detail, 400, 403, 422)}},
        "/reports/{name}": {
            "get": {"operationId": "get_report", "tags": tag, "parameters": [name],
                    "summary": f"A report with its definition: {personal}",
                    "responses": _responses("200", detail, 403, 404)},
            "put": {"operationId": "replace_report", "tags": tag, "parameters": [name],
                    "summary": "Replace the caller's personal report (a shipped one: 403)",
                    "requestBody": {"required": True, "content": _content(definition)},
                    "responses": _responses("200", detail, 400, 403, 404, 422)},
            "delete": {"operationId": "delete_report", "tags": tag, "parameters": [name],
                       "summary": "Delete the caller's personal report (a shipped one: 403)",
                       "responses": _responses("204", None, 403, 404)}},
        "/reports/{name}/export.yaml": {"get": {
            "operationId": "export_report_yaml", "tags": tag, "parameters": [name],
            "summary": "The report as a kind: report file for report_templates/",
            "responses": {**_responses("200", None, 403, 404), "200": {
                "description": "YAML", "content": {"application/yaml": {"schema": {"type": "string"}}}}}}},
        "/reports/{name}/run": {"post": {
            "operationId": "run_report", "tags": tag, "parameters": [name],
            "summary": "Run a report within the caller's data scope; filters: field or path__op -> value, a date "
                       "field also this_month, last_month, this_quarter, last_quarter, this_year or {from, to}",
            "requestBody": {"required": False, "content": _content({
                "type": "object", "additionalProperties": False,
                "properties": {"filters": {"type": "object"},
                               "scene": {"enum": ["all", "mine", "subordinates"]},
                               "compare": {"type": "object", "additionalProperties": False,
                                           "description": "a second run with these filters, side by side: "
                                                          "each measure as {key}__a and {key}__b",
                                           "properties": {"filters": {"type": "object"}}}}})},
            "responses": _responses("200", result, 400, 403, 404, 422)}},
        "/reports/{name}/export.csv": {"get": {
            "operationId": "export_report", "tags": tag, "parameters": [name, *query],
            "summary": "The run as CSV (UTF-8 with a BOM), then the totals row; filters as query parameters",
            "responses": {**_responses("200", None, 400, 403, 404, 422),
                          "200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}}}},
        "/reports/{name}/chart.svg": {"get": {
            "operationId": "report_chart", "tags": tag,
            "parameters": [name, query[0], {"name": "lang", "in": "query", "schema": {"enum": ["zh", "en"]}}],
            "summary": "The run drawn as SVG (the template's chart); filters as query parameters",
            "responses": {**_responses("200", None, 400, 403, 404, 422), "200": {
                "description": "SVG", "content": {"image/svg+xml": {"schema": {"type": "string"}}}}}}},
    }


def document(metadata: Metadata, actions: Actions) -> dict:
    """The whole OpenAPI 3.1 document."""
    children: dict[str, list[tuple[str, str]]] = {}
    for o in metadata.objects.values():
        for f in o.fields.values():
            if f.type == "master_detail":
                children.setdefault(f.to, []).append((o.name, f.name))
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "additionalProperties": False,
                  "properties": {"error": {
                      "type": "object", "required": ["code", "message"], "additionalProperties": False,
                      "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                     "reason": {"type": "string"}, "params": {"type": "object"},
                                     "fields": {"type": "object",
                                                "additionalProperties": {"type": "array",
                                                                         "items": {"type": "string"}}}}}}},
        "Label": _label_schema(),
        "History": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
            "type": "object", "required": ["change", "field", "old", "new", "user", "at"],
            "properties": {"change": {"type": "string"}, "field": {"type": ["string", NULL]}, "old": {}, "new": {},
                           "user": {"type": ["string", NULL]}, "at": {"type": "string", "format": "date-time"}}}}}},
        "BulkResult": {"type": "object", "required": ["succeeded", "failed"], "additionalProperties": False,
                       "properties": {"succeeded": {"type": "array", "items": {"type": "string"}},
                                      "failed": {"type": "array", "items": {
                                          "type": "object", "required": ["id", "error"],
                                          "properties": {"id": {"type": "string"},
                                                         "error": _ref("Error/properties/error")}}}}},
        "Job": {"type": "object", "required": ["id", "status", "progress", "result", "error"],
                "additionalProperties": False,
                "properties": {"id": {"type": "string"},
                               "status": {"enum": ["queued", "scheduled", "running", "finished", "failed",
                                                   "interrupted"]},
                               "progress": {"type": "object", "required": ["done", "total"],
                                            "properties": {"done": {"type": "integer"},
                                                           "total": {"type": ["integer", NULL]}}},
                               "result": {"description": "an import: {created, failed, errors: [{row, fields}], "
                                                         "all_or_nothing, committed: [[first row, last row]]}; "
                                                         "also while interrupted or failed"},
                               "error": {"type": ["string", NULL]}}},
        "ObjectSummary": {"type": "object", "required": ["name", "label", "plural_label", "title_field", "actions"],
                          "properties": {"name": {"type": "string"}, "label": _ref("Label"),
                                         "plural_label": _ref("Label"), "title_field": {"type": "string"},
                                         "actions": {"type": "array", "items": {"type": "object"}}}},
    }
    paths: dict[str, Any] = {
        "/auth/token": {
            "post": {"operationId": "issue_token", "tags": ["auth"], "security": [],
                     "requestBody": {"required": True, "content": _content({
                         "type": "object", "required": ["username", "password"],
                         "properties": {"username": {"type": "string", "minLength": 1},
                                        "password": {"type": "string", "minLength": 1}}})},
                     "responses": _responses("200", {
                         "type": "object", "required": ["token", "user"],
                         "properties": {"token": {"type": "string"}, "user": {
                             "type": "object", "required": ["id", "username"],
                             "properties": {"id": {"type": "string"}, "username": {"type": "string"}}}}}, 400, 429)},
            "delete": {"operationId": "revoke_token", "tags": ["auth"], "responses": _responses("204", None)},
        },
        "/meta/objects": {"get": {"operationId": "meta_objects", "tags": ["meta"], "responses": _responses(
            "200", {"type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": _ref("ObjectSummary")}}})}},
        "/meta/objects/{object}": {"get": {
            "operationId": "meta_object", "tags": ["meta"],
            "parameters": [{"name": "object", "in": "path", "required": True,
                            "schema": {"enum": list(metadata.objects)}}],
            "responses": _responses("200", {"allOf": [_ref("ObjectSummary"), {
                "type": "object", "required": ["fields", "list_view", "layout"],
                "properties": {"fields": {"type": "array", "items": {
                    "type": "object", "required": ["name", "type", "label", "required", "read_only"]}}}}]},
                403, 404)}},
        "/meta/flows": {"get": {"operationId": "meta_flows", "tags": ["meta"], "responses": _responses(
            "200", {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
                "type": "object", "required": ["name", "kind", "object"]}}}})}},
        "/jobs/{id}": {"get": {
            "operationId": "job_status", "tags": ["jobs"], "summary": "A background job the caller started",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": _responses("200", _ref("Job"), 404)}},
        "/jobs/{id}/resume": {"post": {
            "operationId": "resume_job", "tags": ["jobs"],
            "summary": "Continue an interrupted import after its last committed batch",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": _responses("202", {"type": "object", "required": ["job_id"],
                                            "properties": {"job_id": {"type": "string"}}}, 404, 409)}},
        "/openapi.json": {"get": {"operationId": "openapi", "tags": ["meta"],
                                  "responses": _responses("200", {"type": "object"})}},
    }
    schemas.update(WORK_QUEUE_SCHEMAS)
    paths.update(work_queue_paths())
    paths.update(report_paths())
    paths.update(route_paths(metadata))
    paths.update(recycle_bin_paths())
    paths.update(comment_paths(metadata))
    paths.update(search_paths(metadata))
    schemas.update(APPROVAL_SCHEMAS)
    paths.update(approval_paths(metadata))
    for obj in metadata.objects.values():
        own_children = children.get(obj.name, [])
        schemas.update(_record_schemas(metadata, obj, own_children))
        paths.update(_object_paths(metadata, obj, actions.for_object(obj.name)))
    return {
        "openapi": "3.1.0",
        "info": {"title": "objectplatform API", "version": "1",
                 "description": "Generated from the metadata: every object, field and action of this site."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": {f"E{status}": {"description": f"{code}: {text}", "content": _content(_ref("Error"))}
                          for status, (code, text) in ERROR_STATUSES.items()},
        },
    }
