"""Import jobs as the API and the pages start and read them: who may start one, the job id naming its
user, and the job's status for that user only (another user's job is unknown to them)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from werkzeug.datastructures import FileStorage

from objectplatform.metadata import ObjectDef
from objectplatform.runtime import BadRequest, NotFound, imports
from objectplatform.runtime.actions import IMPORT
from objectplatform.runtime.errors import Message

TRUE_WORDS, FALSE_WORDS = frozenset({"1", "true", "on", "yes"}), frozenset({"", "0", "false", "off", "no"})
JOB_ID = re.compile(r"[a-z_]+-([0-9]+)-[0-9a-f]{32}")
STATUS_KEYS = ("id", "status", "progress", "result", "error")


def start(platform, access, obj: ObjectDef, upload: FileStorage | None, all_or_nothing: str,
          defaults: Mapping[str, str] | None = None) -> str:
    """Check the caller and the upload (403, 400), then start the import job; its id.

    The caller needs `create` on the object and the role action `import`; the records are created
    as, and owned by, the caller, within the caller's data scope (runtime/imports.py)."""
    access.require(obj.name, "create")
    access.require_action(obj.name, IMPORT)
    if upload is None or not upload.filename:
        raise BadRequest(Message("import.no_file", "send the file as the multipart/form-data field \"file\""),
                         {"file": [Message("value.required", "is required")]})
    flag = all_or_nothing.strip().lower()
    if flag not in TRUE_WORDS | FALSE_WORDS:
        raise BadRequest(Message("import.bad_all_or_nothing", "all_or_nothing must be true or false"),
                         {"all_or_nothing": [Message("value.not_boolean", "must be true or false")]})
    job_id = f"import-{access.user_id}-{uuid.uuid4().hex}"
    imports.start_import(platform, obj, upload.filename, upload.read(), access.user_id, flag in TRUE_WORDS, job_id,
                         defaults)
    return job_id


def status(platform, access, job_id: str) -> dict:
    """{"id", "status", "progress", "result", "error"} of a job the caller started; NotFound otherwise."""
    owner = JOB_ID.fullmatch(job_id)
    try:
        if owner is None or owner.group(1) != str(access.user_id):
            raise KeyError(job_id)
        job = platform.jobs.status(job_id)
    except KeyError:
        raise NotFound(Message("job.not_found", "no job {id}", id=job_id)) from None
    return {key: job[key] for key in STATUS_KEYS}
