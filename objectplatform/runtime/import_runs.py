"""Import jobs kept in the database: the uploaded file, the batches committed so far (each checkpoint commits with
its rows) and the heartbeat by which an interrupted job is found, shown and resumed.

(How it works: docs/engine.md, "objectplatform/runtime/import_runs.py".)"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .errors import Conflict, Message
from .storage.engine import reading

RESUMABLE = ("interrupted", "failed")


class Superseded(Exception):
    """The job was resumed by another runner since this one claimed it: this runner's batch rolls back, it stops."""


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now(platform) -> datetime:
    """The platform's now as stored: naive UTC."""
    return platform.clock.now().astimezone(UTC).replace(tzinfo=None)


def create(platform, job_id: str, obj: str, user: str, name: str, data: bytes, all_or_nothing: bool,
           defaults: Mapping[str, str] | None, total: int) -> None:
    """Keep the upload and its settings under the job id, queued (a resume reads the file from here)."""
    now = _now(platform)
    with platform.engine.begin() as conn:
        conn.execute(platform.schema.imports.insert().values(
            id=job_id, object=obj, user_id=int(user), file_name=name, file_hash=file_hash(data), data=data,
            all_or_nothing=all_or_nothing, defaults=json.dumps(dict(defaults or {})), status="queued", attempt=1,
            done=0, total=total, created_at=now, heartbeat_at=now))


def earlier(platform, obj: str, data: bytes) -> dict | None:
    """The latest import of the same file (by content) into `obj` that created records or may still create some."""
    table = platform.schema.imports
    query = (sa.select(table.c.id, table.c.status, table.c.created_at, table.c.file_name)
             .where(table.c.object == obj, table.c.file_hash == file_hash(data))
             .order_by(table.c.created_at.desc(), table.c.id.desc()))
    with reading(platform.engine) as conn:
        for row in conn.execute(query).mappings():
            created = _created(conn, platform, row["id"])
            if created or row["status"] in ("queued", "running"):
                return {**row, "created": created}
    return None


def _created(conn: sa.Connection, platform, job_id: str) -> int:
    batches = platform.schema.import_batches
    query = sa.select(sa.func.coalesce(sa.func.sum(batches.c.created), 0)).where(batches.c.job_id == job_id)
    return int(conn.execute(query).scalar_one())


def claim(platform, job_id: str, attempt: int) -> dict | None:
    """Mark attempt `attempt` of the job running and return its row; None when a later attempt superseded it."""
    table = platform.schema.imports
    with platform.engine.begin() as conn:
        claimed = conn.execute(table.update().where(table.c.id == job_id, table.c.attempt == attempt)
                               .values(status="running", heartbeat_at=_now(platform), error=None)).rowcount
        if not claimed:
            return None
        return dict(conn.execute(sa.select(table).where(table.c.id == job_id)).mappings().one())


def committed(conn: sa.Connection, platform, job_id: str) -> list[dict]:
    """The job's committed batches in file order."""
    batches = platform.schema.import_batches
    query = sa.select(batches).where(batches.c.job_id == job_id).order_by(batches.c.first_row)
    return [dict(row) for row in conn.execute(query).mappings()]


def checkpoint(conn: sa.Connection, platform, run: Mapping[str, Any], batch: Mapping[str, Any], done: int) -> None:
    """Record a batch in its own transaction (`conn`) and beat the heart; Superseded if the job was resumed since."""
    table = platform.schema.imports
    beat = conn.execute(table.update().where(table.c.id == run["id"], table.c.attempt == run["attempt"])
                        .values(done=done, heartbeat_at=_now(platform))).rowcount
    if not beat:
        raise Superseded(run["id"])
    conn.execute(platform.schema.import_batches.insert().values(
        job_id=run["id"], first_row=batch["first_row"], last_row=batch["last_row"], rows=batch["rows"],
        created=batch["created"], errors=json.dumps(batch["errors"]), warnings=json.dumps(batch["warnings"])))


def end(platform, run: Mapping[str, Any], status: str, *, error: str | None = None, done: int | None = None,
        outcome: Mapping[str, Any] | None = None) -> None:
    """Mark the run finished (with its result; the file, no longer needed, is let go) or failed (with its error),
    unless a later attempt took the job."""
    table = platform.schema.imports
    values: dict = {"status": status, "error": error, "heartbeat_at": _now(platform),
                    "result": json.dumps(outcome) if outcome is not None else None}
    if status == "finished":
        values["data"] = b""
    if done is not None:
        values["done"] = done
    with platform.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == run["id"], table.c.attempt == run["attempt"]).values(values))


def result(batches: list[Mapping[str, Any]], all_or_nothing: bool) -> dict:
    """The job's result from its committed batches: counts, row errors and warnings, and the committed ranges."""
    errors = [e for b in batches for e in json.loads(b["errors"])]
    warnings = [w for b in batches for w in json.loads(b["warnings"])]
    out = {"created": sum(b["created"] for b in batches), "failed": len(errors), "errors": errors,
           "all_or_nothing": all_or_nothing, "committed": [[b["first_row"], b["last_row"]] for b in batches]}
    if warnings:
        out.update(warned=len(warnings), warnings=warnings)
    return out


def status(platform, job_id: str) -> dict | None:
    """The import job's {"id", "status", "progress", "result", "error"} (None for a job that is not an import).

    A queued or running job whose heartbeat is older than the setting (and that rq does not hold queued) is
    `interrupted`; an interrupted or failed job's result says what committed."""
    found = _job(platform, job_id)
    return found and found[1]


def _job(platform, job_id: str) -> tuple[dict, dict] | None:
    """The job's row and its status JSON."""
    table = platform.schema.imports
    with reading(platform.engine) as conn:
        run = conn.execute(sa.select(table).where(table.c.id == job_id)).mappings().one_or_none()
        if run is None:
            return None
        state = run["status"]
        if state in ("queued", "running") and _silent(platform, run) and not _waiting(platform.jobs, job_id):
            state = "interrupted"
        batches = committed(conn, platform, job_id) if state in RESUMABLE else []
    shown = json.loads(run["result"]) if state == "finished" else None
    if state in RESUMABLE:
        shown = result(batches, run["all_or_nothing"])
    job = {"id": job_id, "status": state, "progress": {"done": run["done"], "total": run["total"]},
           "result": shown, "error": run["error"] if state == "failed" else None}
    return dict(run), job


def _silent(platform, run: Mapping[str, Any]) -> bool:
    limit = timedelta(seconds=platform.settings.import_heartbeat_seconds)
    return _now(platform) - run["heartbeat_at"] > limit


def _waiting(jobs, job_id: str) -> bool:
    """Whether rq holds the job queued (behind others): silent, not dead. In-process, a thread starts at once."""
    try:
        return jobs.queue is not None and jobs.status(job_id)["status"] == "queued"
    except KeyError:
        return False


def resume(platform, job_id: str) -> int:
    """Take an interrupted or failed job over as its next attempt (Conflict otherwise); the attempt's number."""
    run, job = _job(platform, job_id) or ({}, {"status": "unknown"})
    taken = 0
    if job["status"] in RESUMABLE:
        table = platform.schema.imports
        with platform.engine.begin() as conn:
            taken = conn.execute(table.update().where(table.c.id == job_id, table.c.attempt == run["attempt"])
                                 .values(attempt=run["attempt"] + 1, status="queued", heartbeat_at=_now(platform),
                                         error=None)).rowcount
    if not taken:
        raise Conflict(Message("import.not_resumable", "job {id} is {status}; only an interrupted or failed import "
                               "can be resumed", id=job_id,
                               status="queued" if job["status"] in RESUMABLE else job["status"]))  # lost a race
    return run["attempt"] + 1
