"""Importing from a record page: a campaign's page imports leads into that campaign (CSV, XLSX or vCard,
optionally all or nothing) as a job, then shows its progress bar and, once done, the per-row report.

(How it works: docs/engine.md, "objectplatform/web/pages_imports.py".)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import g, jsonify, redirect, render_template, request, url_for

from objectplatform.metadata import ObjectDef
from objectplatform.runtime.actions import IMPORT
from objectplatform.runtime.errors import BadRequest, Conflict, Message, NotFound, message_from_json

from . import import_jobs
from .current import get_platform
from .i18n import error_text, has_text, text
from .pages_base import bp, local_path, object_def, scope
from .pages_records import RecordExtensions, record_page
from .pages_view import field_label, object_label


def importers(obj: ObjectDef) -> list[tuple[ObjectDef, str]]:
    """(object, lookup field) of the objects pointing at `obj` that the user may import."""
    found = []
    for other in get_platform().metadata.objects.values():
        if not (g.access.can(other.name, "create") and g.access.can_act(other.name, IMPORT)):
            continue
        for f in other.fields.values():
            if f.type == "lookup" and f.to == obj.name and not f.read_only:
                found.append((other, f.name))
    return found


def import_panel(obj: ObjectDef, record: Mapping[str, Any], state: Mapping[str, Any]) -> dict | None:
    found = importers(obj)
    if not found:
        return None
    return {"template": "pages/_import_panel.html", "wide": True, "error": state.get("import_error"),
            "forms": [{"label": object_label(other, g.lang, plural=True), "field": field,
                       "action": url_for("pages.start_import", obj=obj.name, id=record["id"], target=other.name,
                                         field=field)} for other, field in found]}


def extend(page: RecordExtensions) -> None:
    page.panels.append(import_panel)


@bp.route("/o/<obj>/<id>/import/<target>/<field>", methods=["POST"])
def start_import(obj: str, id: str, target: str, field: str):
    """Start the import of `target` records with `field` = this record; then to the progress page."""
    definition = object_def(obj)
    platform = get_platform()
    current = platform.records.get(obj, id, where=scope(obj))
    other = platform.metadata.objects.get(target)
    lookup = other.fields.get(field) if other is not None else None
    if lookup is None or lookup.type != "lookup" or lookup.to != definition.name:
        raise NotFound(Message("import.no_such_panel", "no import of {target} by {field} on {object}", target=target,
                                       field=field, object=obj))
    try:
        job_id = import_jobs.start(platform, g.access, other, request.files.get("file"),
                                   "true" if request.form.get("all_or_nothing") else "false", {field: current["id"]},
                                   force="true" if request.form.get("force") else "false")
    except (BadRequest, Conflict) as e:
        return record_page(obj, current["id"], e.status, import_error=error_text(e.message, g.lang))
    back = url_for("pages.record", obj=obj, id=current["id"])
    return redirect(url_for("pages.import_progress", job_id=job_id, obj=target, next=back))


@bp.route("/jobs/<job_id>")
def job_status(job_id: str):
    """The job's status as GET /api/v1/jobs/<id> answers it, for the page's progress bar."""
    return jsonify(import_jobs.status(get_platform(), g.access, job_id))


@bp.route("/imports/<job_id>")
def import_progress(job_id: str):
    """The progress bar while the job runs (the page script polls /jobs/<id>), then its report."""
    job = import_jobs.status(get_platform(), g.access, job_id)
    target = get_platform().metadata.objects.get(request.args.get("obj", ""))
    report = None
    if job["status"] == "finished" and job["result"]:
        result = job["result"]
        report = {"created": result["created"], "failed": result["failed"],
                  "all_or_nothing": result.get("all_or_nothing"),
                  "rows": [{"row": e["row"], "reasons": [_reason(target, name, message_from_json(m))
                                                         for name, ms in e["reasons"].items() for m in ms]}
                           for e in result["errors"]]}
    progress = job["progress"] or {}
    state = text(f"job.{job['status']}", g.lang) if has_text(f"job.{job['status']}") else job["status"]
    resumable = job["status"] in ("interrupted", "failed") and job["result"] is not None
    ranges = ", ".join(f"{first}–{last}" for first, last in (job["result"] or {}).get("committed", []))
    return render_template("pages/import_progress.html", job=job, report=report, done=progress.get("done") or 0,
                           total=progress.get("total"), state=state, back=local_path(request.args.get("next")),
                           label=object_label(target, g.lang, plural=True) if target else "",
                           status_url=url_for("pages.job_status", job_id=job_id), resumable=resumable,
                           ranges=ranges or "–", resume_url=url_for("pages.resume_import", job_id=job_id,
                                                                   **request.args))


@bp.route("/imports/<job_id>/resume", methods=["POST"])
def resume_import(job_id: str):
    """Continue an interrupted import (as POST /api/v1/jobs/<id>/resume does), then back to its progress."""
    import_jobs.resume(get_platform(), g.access, job_id)
    return redirect(url_for("pages.import_progress", job_id=job_id, **request.args))


def _reason(obj: ObjectDef | None, name: str, message: str) -> str:
    shown = error_text(message, g.lang)
    if name == "__all__":
        return shown
    label = field_label(obj, name, g.lang) if obj is not None else name
    return f"{label}：{shown}" if g.lang == "zh" else f"{label}: {shown}"
