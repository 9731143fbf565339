"""Import jobs as the API and the pages start, read and resume them: who may start one, the job id naming its
user, and the job's status for that user only (another user's job is unknown to them)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from werkzeug.datastructures import FileStorage

from objectplatform.metadata import ObjectDef
from objectplatform.runtime import BadRequest, NotFound, import_runs, imports
from objectplatform.runtime.actions import IMPORT
from objectplatform.runtime.errors import Message

TRUE_WORDS, FALSE_WORDS = frozenset({"1", "true", "on", "yes"}), frozenset({"", "0", "false", "off", "no"})
JOB_ID = re.compile(r"[a-z_]+-([0-9]+)-[0-9a-f]{32}")
STATUS_KEYS = ("id", "status", "progress", "result", "error")
BAD_FLAG = {"all_or_nothing": Message("import.bad_all_or_nothing", "all_or_nothing must be true or false"),
            "force": Message("import.bad_force", "force must be true or false")}


def start(platform, access, obj: ObjectDef, upload: FileStorage | None, all_or_nothing: str,
          defaults: Mapping[str, str] | None = None, force: str = "") -> str:
    """Check the caller and the upload (403, 400; 409 for a file imported before unless `force`), then start the
    import job; its id.

    The caller needs `create` on the object and the role action `import`; the records are created
    as, and owned by, the caller, within the caller's data scope (runtime/imports.py)."""
    access.require(obj.name, "create")
    access.require_action(obj.name, IMPORT, platform.registry.permissions.get(IMPORT))
    if upload is None or not upload.filename:
        raise BadRequest(Message("import.no_file", "send the file as the multipart/form-data field \"file\""),
                         {"file": [Message("value.required", "is required")]})
    flags = {name: _flag(name, value) for name, value in (("all_or_nothing", all_or_nothing), ("force", force))}
    job_id = f"import-{access.user_id}-{uuid.uuid4().hex}"
    imports.start_import(platform, obj, upload.filename, upload.read(), access.user_id, flags["all_or_nothing"],
                         job_id, defaults, force=flags["force"])
    return job_id


def _flag(name: str, value: str) -> bool:
    flag = value.strip().lower()
    if flag not in TRUE_WORDS | FALSE_WORDS:
        raise BadRequest(BAD_FLAG[name], {name: [Message("value.not_boolean", "must be true or false")]})
    return flag in TRUE_WORDS


def status(platform, access, job_id: str) -> dict:
    """{"id", "status", "progress", "result", "error"} of a job the caller started; NotFound otherwise. An import's
    status is read from the database (runtime/import_runs.py): it may be `interrupted`."""
    owner = JOB_ID.fullmatch(job_id)
    try:
        if owner is None or owner.group(1) != str(access.user_id):
            raise KeyError(job_id)
        job = import_runs.status(platform, job_id) or platform.jobs.status(job_id)
    except KeyError:
        raise NotFound(Message("job.not_found", "no job {id}", id=job_id)) from None
    return {key: job[key] for key in STATUS_KEYS}


def resume(platform, access, job_id: str) -> str:
    """Continue an interrupted (or failed) import of the caller's after its last committed batch (409 for any
    other state); its job id."""
    status(platform, access, job_id)
    attempt = import_runs.resume(platform, job_id)
    return platform.enqueue(imports.import_job, job_id, attempt, job_id=job_id, background=True)
