"""The REST API of API.md under /api/v1: tokens, metadata, records, history, actions, imports and jobs.

Each endpoint is one runtime call made as the signed-in user's `Access`: the role decides the
operation (403), the data scope is part of every read and write query (a record outside it is a
404, like a missing one). Bodies are JSON; every error has the shape built in `errors.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request, url_for

from objectplatform.metadata import SYSTEM_FIELDS, FieldDef, Flow, Label, ObjectDef
from objectplatform.metadata.fieldtypes import FIELD_TYPES
from objectplatform.metadata.model import ALL_FIELDS
from objectplatform.runtime import BadRequest, Forbidden, NotFound, Platform, Unauthenticated, geo, search
from objectplatform.runtime.actions import Action, actions_service, run_action
from objectplatform.runtime.auth import auth_service
from objectplatform.runtime.behaviors import duplicates, route
from objectplatform.runtime.errors import Message, said_object
from objectplatform.runtime.lifecycles import transition_label
from objectplatform.runtime.permissions import OPERATION_VERBS

from . import errors, import_jobs, openapi
from .current import get_platform
from .errors import json_response
from .export import csv_response

bp = Blueprint("api", __name__, url_prefix="/api/v1")
errors.register(bp)
PUBLIC_ENDPOINTS = frozenset({"api.issue_token"})
LIST_PARAMETERS = frozenset({"q", "sort", "limit", "cursor", "total"})
EXPORT_PARAMETERS = frozenset({"q", "sort", "fields", "labels"})
SYSTEM_LABELS = {
    "id": Label("编号", "ID"),
    "version": Label("版本", "Version"),
    "owner": Label("负责人", "Owner"),
    "created_by": Label("创建人", "Created by"),
    "created_at": Label("创建时间", "Created at"),
    "updated_by": Label("最后修改人", "Updated by"),
    "updated_at": Label("最后修改时间", "Updated at"),
}
SYSTEM_ORDER = ("id", "version", "owner", "created_by", "created_at", "updated_by", "updated_at")


def init_app(app: Flask) -> None:
    """Register the /api/v1 blueprint and its JSON error handlers."""
    app.register_blueprint(bp)


# ------------------------------------------------------------------------------ request helpers


@bp.before_request
def authenticate() -> None:
    """Every endpoint but POST /auth/token takes `Authorization: Bearer <token>`."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(Message(
            "auth.no_token", "sign in first: send Authorization: Bearer <token> (from POST /api/v1/auth/token)"))
    platform = get_platform()
    found = auth_service(platform).signed_in(token)
    if found is None:
        raise Unauthenticated(Message("auth.bad_token", "the token is unknown, expired or revoked; sign in again"))
    g.api_token = token
    g.access = found.access
    for name, values in request.args.lists():
        for value in (name, *values):
            _refuse_nul(value, name)


def _body(empty: Any = None) -> Any:
    """The request's JSON body; `empty` stands for an empty body where one is allowed."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if empty is None:
            raise BadRequest(Message("request.no_body", "send a JSON body (Content-Type: application/json)"))
        return empty
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise BadRequest(Message("request.not_json", "send JSON with Content-Type: application/json, not {mimetype}",
                                 mimetype=mimetype or "no content type"))
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as e:
        raise BadRequest(Message("request.malformed_json", "malformed JSON: {error}", error=str(e))) from None
    _refuse_nul(body, "body")
    return body


def _refuse_nul(value: Any, where: str) -> None:
    """No text may hold a NUL character (PostgreSQL cannot store one): a 400 naming where it is."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(Message("request.nul", "{where}: text may not contain the NUL character", where=where),
                             {where: [Message("request.nul_here", "contains NUL (\\u0000)")]})
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, where)
            _refuse_nul(item, key if where == "body" else f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_nul(item, f"{where}[{i}]")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def object_body(empty: Any = None) -> dict:
    body = _body(empty)
    if not isinstance(body, dict):
        raise BadRequest(Message("request.not_an_object", "the body must be a JSON object"))
    return body


def object_def(name: str) -> ObjectDef:
    obj = get_platform().metadata.objects.get(name)
    if obj is None:
        raise NotFound(Message("object.unknown", "unknown object {object}", object=name))
    return obj


def _scope(obj: str, operation: str = "read"):
    return g.access.scope(obj, get_platform().schema[obj].table, operation)


def _write_scope(obj: str, record_id: str, operation: str):
    """The caller's data scope for `operation` ("edit", "delete"); a record of `obj` that only a team field
    lets them read is a 403 (read-only to them), not a 404."""
    where = _scope(obj, operation)
    if where is not None and obj in g.access.teams:
        records = get_platform().records
        try:
            records.get(obj, record_id, where=where)
        except NotFound:
            records.get(obj, record_id, where=_scope(obj))  # NotFound when they may not read it either
            raise Forbidden(Message("permission.team_read_only", "{object} {id} is read-only to you: its team lets you "
                                    "read it, not {operation} it", object=said_object(records.metadata.objects[obj]),
                                    id=record_id, operation=OPERATION_VERBS[operation])) from None
    return where


def label_json(label: Label | None) -> dict | None:
    return None if label is None else {"zh": label.zh, "en": label.en}


# ----------------------------------------------------------------------------------- records


def record_json(platform: Platform, obj: str, record: Mapping[str, Any]) -> dict:
    """A record as API.md shows it: system fields, then every field by name (never a password, nor a field
    the signed-in user's role hides), then inline child lines under the child object's name. Values hidden
    on the record (a waiting lead's pool hidden fields) are masked (records/masking.py)."""
    mask = platform.records.mask(obj, g.access)
    record = mask(record)
    out = {name: record.get(name) for name in SYSTEM_ORDER if mask.visible(name)}
    for name, f in platform.metadata.objects[obj].fields.items():
        if f.type != "password" and mask.visible(name):
            out[name] = record.get(name)
    for child, _via in platform.records.children.get(obj, ()):
        if child in record:
            out[child] = [record_json(platform, child, line) for line in record[child]]
    return out


def _require_children(obj: str, body: Mapping[str, Any], operation: str) -> None:
    """Inline child lines are written too: the role must allow `operation` on their object."""
    for child, _via in get_platform().records.children.get(obj, ()):
        if child in body:
            g.access.require(child, operation)


@bp.post("/auth/token")
def issue_token() -> Response:
    body = object_body()
    username, password = body.get("username"), body.get("password")
    problems = {name: [Message("auth.credential_required", "is required (text)")]
                for name, value in (("username", username), ("password", password))
                if not isinstance(value, str) or not value}
    if problems:
        raise BadRequest(Message("auth.credentials_required", "give a username and a password"), problems)
    token, user = auth_service(get_platform()).issue_token(username, password, address=request.remote_addr)
    return json_response({"token": token, "user": {"id": str(user["id"]), "username": user["username"]}})


@bp.delete("/auth/token")
def revoke_token() -> Response:
    auth_service(get_platform()).revoke(g.api_token)
    return Response(status=204)


def query_filters(parameters: frozenset[str]) -> dict[str, str]:
    """The query string's field filters: every argument but `parameters`, each given once."""
    filters = {}
    for name, values in request.args.lists():
        if len(values) > 1:
            raise BadRequest(Message("request.repeated_parameter", "{name}: given more than once", name=name),
                             {name: [Message("request.repeated", "given more than once")]})
        if name not in parameters:
            filters[name] = values[0]
    return filters


@bp.get("/objects/<obj>/records")
def list_records(obj: str) -> Response:
    object_def(obj)
    g.access.require(obj, "read")
    filters = query_filters(LIST_PARAMETERS)
    args = request.args
    if args.get("total", "exact") != "exact":
        message = Message("list.total_exact", "must be exact (count every matching record)")
        raise BadRequest(Message("request.bad_parameter", "{param}: {problem}", param="total", problem=message),
                         {"total": [message]})
    platform = get_platform()
    page = platform.records.list(obj, filters=filters, q=args.get("q"), sort=args.get("sort"),
                                 limit=args.get("limit", 50), cursor=args.get("cursor"),
                                 exact_total="total" in args, seen_by=g.access, scope=g.access)
    items = [record_json(platform, obj, r) for r in page.items]
    return json_response({"items": items, "next_cursor": page.next_cursor, "total": page.total,
                          "total_is_exact": page.total_is_exact})


@bp.get("/objects/<obj>/nearby")
def nearby_records(obj: str) -> Response:
    """The caller's records of `obj` near a point, nearest first, each with its `distance_m` (runtime/geo.py)."""
    object_def(obj)
    g.access.require(obj, "read")
    lat, lng, radius_m, limit = geo.nearby_query(request.args)
    platform = get_platform()
    found = geo.nearby(platform, obj, lat, lng, radius_m, limit, where=_scope(obj))
    return json_response({"items": [{**record_json(platform, obj, r), "distance_m": r["distance_m"]}
                                    for r in found]})


@bp.get("/search")
def global_search() -> Response:
    """The caller's records whose search terms start with `q` (a Chinese name also by its pinyin or initials),
    grouped by object (runtime/search.py)."""
    platform = get_platform()
    q, limit = search.search_query(request.args)
    return json_response({"q": q, "groups": search_groups(platform, q, limit)})


def search_groups(platform: Platform, q: str, limit: int) -> list[dict]:
    """The search's groups as the API and the search page show them: each object's label and each record's link."""
    return [{"object": group["object"], "label": label_json(platform.metadata.objects[group["object"]].label),
             "items": [{**item, "url": url_for("pages.record", obj=group["object"], id=item["id"])}
                       for item in group["items"]]}
            for group in search.search(platform, g.access, q, limit)]


@bp.post("/<path>/route")
def plan_day_route(path: str) -> Response:
    """The caller's records of a day in the order that travels least, saved as the day's route unless `"save":
    false` (runtime/behaviors/route.py); `path` is the route behavior's `path` (the CRM's: visits)."""
    return json_response(route.plan_day(get_platform(), g.access, path, object_body()))


@bp.get("/<path>/plan.ics")
def day_plan_calendar(path: str) -> Response:
    """The caller's day plan (`?date=YYYY-MM-DD`) as an iCalendar file, one event per record."""
    text = route.day_calendar(get_platform(), g.access, path, request.args.get("date"))
    return Response(text, mimetype="text/calendar", headers={
        "Content-Disposition": f'attachment; filename="{path}-{request.args["date"]}.ics"'})


@bp.get("/objects/<obj>/records/export.csv")
def export_records(obj: str) -> Response:
    """Every record the list would page through, as CSV (see export.py)."""
    definition = object_def(obj)
    g.access.require(obj, "read")
    filters = query_filters(EXPORT_PARAMETERS)
    args = request.args
    return csv_response(get_platform(), definition, filters=filters, q=args.get("q"), sort=args.get("sort"),
                        where=_scope(obj), fields=args.get("fields"), labels=args.get("labels"))


@bp.post("/objects/<obj>/records")
def create_record(obj: str) -> Response:
    object_def(obj)
    g.access.require(obj, "create")
    body = object_body()
    _require_children(obj, body, "create")
    platform = get_platform()
    record = platform.records.within(g.access).create(obj, body, user=g.access.user_id)
    out = record_json(platform, obj, record)
    if warnings := duplicates.record_warnings(platform, g.access, obj, record):
        out["_warnings"] = warnings  # duplicate (warn) rules it matches; a field name never starts with "_"
    return json_response(out, 201)


@bp.get("/objects/<obj>/records/<record_id>")
def get_record(obj: str, record_id: str) -> Response:
    object_def(obj)
    g.access.require(obj, "read")
    platform = get_platform()
    record = platform.records.get(obj, record_id, where=_scope(obj))
    out = record_json(platform, obj, record)
    out["_actions"] = [{"name": a.name, "label": label_json(a.label)}
                       for a in actions_service(platform).available(g.access, obj, record)]
    return json_response(out)


@bp.patch("/objects/<obj>/records/<record_id>")
def update_record(obj: str, record_id: str) -> Response:
    object_def(obj)
    g.access.require(obj, "edit")
    body = object_body()
    version = body.pop("version", None)
    _require_children(obj, body, "edit")
    platform = get_platform()
    record = platform.records.within(g.access).update(obj, record_id, body, version=version,
                                                      user=g.access.user_id, where=_write_scope(obj, record_id, "edit"))
    out = record_json(platform, obj, record)
    if warnings := duplicates.record_warnings(platform, g.access, obj, record, changed=body):
        out["_warnings"] = warnings  # as on create, for the warn rules whose fields the change sets
    return json_response(out)


@bp.delete("/objects/<obj>/records/<record_id>")
def delete_record(obj: str, record_id: str) -> Response:
    object_def(obj)
    g.access.require(obj, "delete")
    get_platform().records.delete(obj, record_id, user=g.access.user_id, where=_write_scope(obj, record_id, "delete"))
    return Response(status=204)


@bp.get("/objects/<obj>/records/<record_id>/history")
def record_history(obj: str, record_id: str) -> Response:
    object_def(obj)
    g.access.require(obj, "read")
    entries = get_platform().records.history(obj, record_id, where=_scope(obj), seen_by=g.access)
    return json_response({"items": entries})


@bp.post("/objects/<obj>/records/<record_id>/actions/<action>")
def run_record_action(obj: str, record_id: str, action: str) -> Response:
    object_def(obj)
    platform = get_platform()
    result = run_action(platform, g.access, obj, action, record_id, object_body(empty={}))
    record = result["record"]
    result["record"] = None if record is None else record_json(platform, obj, record)
    return json_response(result)


@bp.post("/objects/<obj>/actions/<action>")
def run_bulk_action(obj: str, action: str) -> Response:
    object_def(obj)
    body = object_body()
    ids = body.get("ids")
    if not isinstance(ids, list):
        raise BadRequest(Message("action.ids_not_a_list", "give the records as \"ids\": [...]"),
                         {"ids": [Message("value.not_id_list", "must be a list of record ids")]})
    return json_response(run_action(get_platform(), g.access, obj, action, ids, body))


# -------------------------------------------------------------------------------------- jobs

@bp.post("/objects/<obj>/imports")
def start_import(obj: str) -> Response:
    """Multipart `file` (.csv, .xlsx or .vcf), `all_or_nothing` and `force` (import a file imported before, else
    409): checked now (400), imported by a job (202)."""
    definition = object_def(obj)
    job_id = import_jobs.start(get_platform(), g.access, definition, request.files.get("file"),
                               request.form.get("all_or_nothing", ""), force=request.form.get("force", ""))
    return json_response({"job_id": job_id}, 202)


@bp.get("/jobs/<job_id>")
def job_status(job_id: str) -> Response:
    """A job the caller started (ids name their user: another user's job is a 404, like an unknown one)."""
    return json_response(import_jobs.status(get_platform(), g.access, job_id))


@bp.post("/jobs/<job_id>/resume")
def resume_job(job_id: str) -> Response:
    """Continue an interrupted import after its last committed batch (202; 409 unless interrupted or failed)."""
    return json_response({"job_id": import_jobs.resume(get_platform(), g.access, job_id)}, 202)


# ---------------------------------------------------------------------------------- metadata


def action_json(action: Action, allowed: bool) -> dict:
    return {
        "name": action.name,
        "label": label_json(action.label),
        "bulk": action.bulk,
        "allowed": allowed,
        "params": [{"name": p.name, "type": p.type, "label": label_json(p.label), "required": p.required,
                    **({"target": p.to} if p.to else {})} for p in action.params],
    }


def _actions_json(obj: str) -> list[dict]:
    service = actions_service(get_platform())
    return [action_json(a, service.allowed(g.access, obj, a.name)) for a in service.for_object(obj)]


def lifecycle_json(o: ObjectDef, action_labels: Mapping[str, Label]) -> dict | None:
    """The object's lifecycle as API.md (Lifecycles) shows it: states with labels and what stays
    editable, transitions with their label (`transition_label`, by the object's `action_labels`), states, roles,
    parameters and required fields."""
    lc = o.lifecycle
    if lc is None:
        return None
    state_field = o.fields[lc.field]

    def state_json(state) -> dict:
        option = state_field.option(state.value)
        return {"value": state.value, "label": label_json(option.label if option else None),
                "editable": state.editable if state.editable == ALL_FIELDS else list(state.editable),
                "editable_by": list(state.editable_by)}

    return {
        "field": lc.field, "initial": list(lc.initial),
        "states": [state_json(s) for s in lc.states.values()],
        "transitions": [{"name": t.name, "label": label_json(transition_label(t, action_labels.get(t.name))),
                         "from": list(t.sources), "to": t.to, "by": t.by, "roles": list(t.roles),
                         "condition": t.condition,
                         "params": [field_json(p) for p in t.params], "required_fields": list(t.required_fields)}
                        for t in lc.transitions.values()],
    }


def field_json(f: FieldDef) -> dict:
    """A field as the runtime sees it after all layers."""
    computed = FIELD_TYPES[f.type].computed
    out: dict[str, Any] = {"name": f.name, "type": f.type, "label": label_json(f.label),
                           "required": f.required, "read_only": f.read_only or f.system or computed}
    if f.help is not None:
        out["help"] = label_json(f.help)
    for key in ("unique", "hidden", "searchable", "system"):
        if getattr(f, key):
            out[key] = True
    if f.type == "password":
        out["write_only"] = True
    if f.to:
        out["target"] = f.to
    if f.team:
        out["team"] = f.team  # its users may read ("read") or edit ("edit") the record
    if f.on_delete:
        out["on_delete"] = f.on_delete  # what deleting the record it names does: refuse, cascade or clear
    for key in ("max_length", "precision", "scale", "min", "max", "pattern", "expression", "result_type",
                "picklist"):
        if getattr(f, key) is not None:
            out[key] = getattr(f, key)
    if f.default is not None:
        out["default"] = f.default
    if f.rollup is not None:
        out["rollup"] = {"function": f.rollup.function, "child": f.rollup.child, "via": f.rollup.via,
                         "field": f.rollup.field}
    if f.type in ("picklist", "multi_picklist"):
        out["options"] = [{"value": o.value, "label": label_json(o.label), "active": o.active,
                           "attributes": dict(o.attrs)} for o in f.options]
    return out


def _field_for_caller(obj: str, f: FieldDef) -> dict:
    """A field as the caller may use it: one their roles let them only read says `"access": "read"`
    (a field they may not see is left out of the object's fields altogether)."""
    out = field_json(f)
    if g.access.field_level(obj, f.name) == "read":
        out["access"] = "read"
    return out


def _system_field_json(name: str) -> dict:
    type_ = SYSTEM_FIELDS[name]
    return {"name": name, "type": type_, "label": label_json(SYSTEM_LABELS[name]), "required": False,
            "read_only": name != "owner", "system": True, **({"target": "user"} if type_ == "user" else {})}


def object_summary(o: ObjectDef) -> dict:
    return {"name": o.name, "label": label_json(o.label), "plural_label": label_json(o.plural_label or o.label),
            "title_field": o.title_field, "actions": _actions_json(o.name)}


@bp.get("/meta/objects")
def meta_objects() -> Response:
    metadata = get_platform().metadata
    return json_response({"items": [object_summary(metadata.objects[name]) for name in g.access.readable_objects()]})


@bp.get("/meta/objects/<obj>")
def meta_object(obj: str) -> Response:
    o = object_def(obj)
    g.access.require(obj, "read")
    platform = get_platform()
    list_view = o.list_view
    body = {
        **object_summary(o),
        "permissions": {op: g.access.can(obj, op) for op in ("create", "read", "edit", "delete")},
        "fields": [_system_field_json(name) for name in SYSTEM_ORDER]
        + [_field_for_caller(obj, f) for f in o.fields.values() if g.access.field_level(obj, f.name) != "hidden"],
        "children": [{"object": child, "field": via} for child, via in platform.records.children.get(obj, ())],
        "list_view": None if list_view is None else {"columns": list(list_view.columns),
                                                     "filters": list(list_view.filters), "sort": list(list_view.sort)},
        "layout": [{"name": s.name, "label": label_json(s.label), "fields": list(s.fields), "columns": s.columns}
                   for s in o.layout],
        "validation_rules": [{"name": r.name, "field": r.field, "message": label_json(r.message)}
                             for r in o.validation_rules],
        "lifecycle": lifecycle_json(o, actions_service(platform).labels(obj)),
    }
    return json_response(body)


def flow_json(d: Flow) -> dict:
    """An approval flow, sales process or rule: name, kind, object, label, and a sales process's stages."""
    out: dict[str, Any] = {"name": d.name, "kind": d.kind, "object": d.object, "label": label_json(d.label)}
    if d.kind == "sales_process":
        out["departments"] = list(d.departments)
        out["stages"] = [
            {"key": s.key, "label": label_json(s.label), "probability": s.probability,
             "required_fields": list(s.required_fields),
             "tasks": [{"key": t.key, "label": label_json(t.label), "required": t.required} for t in s.tasks],
             "approval": s.approval}
            for s in d.stages
        ]
    elif d.kind == "approval_flow":
        trigger = d.trigger
        out["trigger"] = {k: v for k, v in (("on", trigger.on), ("action", trigger.action), ("field", trigger.field))
                          if v is not None}
        out["steps"] = [{"name": s.name, "label": label_json(s.label), "approvers": s.approvers, "mode": s.mode}
                        for s in d.steps]
    elif d.kind == "rule":
        out["trigger"] = {"schedule": d.schedule} if d.schedule else {"event": d.event}
    return out


@bp.get("/meta/flows")
def meta_flows() -> Response:
    readable = set(g.access.readable_objects())
    flows = get_platform().metadata.flows.values()
    return json_response({"items": [flow_json(d) for d in flows if d.object is None or d.object in readable]})


@bp.get("/openapi.json")
def openapi_document() -> Response:
    cache = current_app.extensions
    if "objectplatform.openapi" not in cache:
        platform = get_platform()
        cache["objectplatform.openapi"] = openapi.document(platform.metadata, actions_service(platform))
    return json_response(cache["objectplatform.openapi"])
