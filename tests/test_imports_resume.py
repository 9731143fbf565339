"""Crash-safe imports: each batch commits with its checkpoint (file rows), a silent job reads `interrupted` with
what committed, and a resume continues after the last committed batch, every row exactly once; a file imported
before is refused unless forced. A real rq worker is killed with SIGKILL mid-import; in-process, a runner stops
after two batches."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import FixedClock, migrated_platform
from test_api import ERROR_RESPONSES, PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_imports_jobs import finished, upload
from test_jobs import rq_setup as rq_setup  # noqa: F401
from test_jobs import rq_worker, wait_until
from test_pages import login, token

from objectplatform.runtime import import_runs, imports, open_platform
from objectplatform.runtime.clock import Clock
from objectplatform.runtime.jobs import JobRunner
from objectplatform.web import create_app

ROWS = 7  # file rows 2-8; row 5 has no name


def leads_csv(count: int, bad: int | None = None) -> bytes:
    """`count` leads, each with its own mobile (the unique column the tests count by); data row `bad` unnamed."""
    rows = "".join(f"{'' if i == bad else f'客户{i:05d}'},公司{i},139{i:08d}\n" for i in range(count))
    return f"name,company,mobile\n{rows}".encode()


def mobiles(platform) -> tuple[int, int]:
    """(leads, distinct mobiles) in the database."""
    table = platform.schema["lead"].table
    with platform.engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(table.c.mobile)))).one())


def later(platform, seconds: float) -> FixedClock:
    """Stand the platform's clock `seconds` after now (so a heartbeat written now is that old)."""
    platform.clock = clock = FixedClock(Clock().now() + timedelta(seconds=seconds))
    return clock


class Killed(BaseException):
    """What SIGTERM or a killed thread leaves: no handler of the job runs (the job is not marked failed)."""


def stopping_after(batches: int, size: int):
    """A progress callback (it runs after each committed batch) that stops the runner after `batches` batches."""
    def progress(done: int, total: int | None) -> None:
        if done >= batches * size:
            raise Killed
    return progress


# --- in-process, SQLite and PostgreSQL --------------------------------------------------------


@pytest.fixture
def restarted(platform):
    """A second platform on the same database and instance folder: the server after a restart."""
    again = open_platform(platform.settings, platform.metadata)
    yield again
    again.close()


def test_an_interrupted_import_shows_what_committed_and_resumes_every_row_once(platform, restarted, people):
    platform.settings = restarted.settings = dataclasses.replace(platform.settings, import_batch_size=2)
    data = leads_csv(ROWS, bad=3)
    job_id = f"import-{people['boss']}-{uuid.uuid4().hex}"
    # the runner of attempt 1 stops after two batches, as a killed server would leave it
    import_runs.create(platform, job_id, "lead", people["boss"], "leads.csv", data, False, None, ROWS)
    with pytest.raises(Killed):
        imports.resume_run(platform, job_id, 1, stopping_after(2, 2))
    assert mobiles(platform) == (3, 3)  # rows 2, 3 and 4 (row 5 failed)

    # the restarted server knows the job from the database only
    platform = restarted
    app = create_app(platform)
    api = Api(app.test_client())
    assert finished(api, "boss", job_id)["status"] == "running"  # its heartbeat is fresh
    assert api.call("POST", f"/jobs/{job_id}/resume", "boss")[0] == 409

    later(platform, 61)
    interrupted = {
        "id": job_id, "status": "interrupted", "progress": {"done": 4, "total": 7}, "error": None,
        "result": {"created": 3, "failed": 1, "all_or_nothing": False, "committed": [[2, 3], [4, 5]],
                   "errors": [{"row": 5, "fields": {"name": ["is required"]},
                               "reasons": {"name": [{"reason": "value.required", "template": "is required",
                                                     "params": {}}]}}]},
    }
    assert finished(api, "boss", job_id) == interrupted

    client = app.test_client()
    login(client, "boss", PASSWORD)
    page = client.get(f"/imports/{job_id}?obj=lead").text
    assert "导入在第 4 行（共 7 行）处中断；已提交 3 条记录（文件第 2–3, 4–5 行）" in page
    assert f'action="/imports/{job_id}/resume?obj=lead"' in page and "继续导入</button>" in page
    client.get("/lang/en")
    assert "Interrupted at row 4 of 7; 3 records committed (file rows 2–3, 4–5)." in client.get(
        f"/imports/{job_id}?obj=lead").text

    assert api.call("POST", f"/jobs/{job_id}/resume", "rep1") == (
        404, {"error": {"code": "not_found", "message": f"no job {job_id}"}})
    assert api.call("POST", f"/jobs/{job_id}/resume", "boss") == (202, {"job_id": job_id})
    assert finished(api, "boss", job_id) == {
        **interrupted, "status": "finished", "progress": {"done": 7, "total": 7},
        "result": {**interrupted["result"], "created": 6, "committed": [[2, 3], [4, 5], [6, 7], [8, 8]]},
    }
    assert mobiles(platform) == (6, 6)
    assert api.call("POST", f"/jobs/{job_id}/resume", "boss") == (409, {"error": {
        "code": "conflict", "message": f"job {job_id} is finished; only an interrupted or failed import can be "
                                       "resumed"}})
    # the runner of attempt 1, alive after all, may not commit another batch: attempt 2 took the job over
    assert imports.resume_run(platform, job_id, 1, stopping_after(9, 2)) is None
    assert mobiles(platform) == (6, 6)


def test_the_resume_button_continues_the_import(app, platform, people):
    platform.settings = dataclasses.replace(platform.settings, import_batch_size=3)
    job_id = f"import-{people['boss']}-{uuid.uuid4().hex}"
    import_runs.create(platform, job_id, "lead", people["boss"], "leads.csv", leads_csv(ROWS), False, None, ROWS)
    with pytest.raises(Killed):
        imports.resume_run(platform, job_id, 1, stopping_after(1, 3))
    later(platform, 61)
    client = app.test_client()
    login(client, "boss", PASSWORD)
    resumed = client.post(f"/imports/{job_id}/resume?obj=lead", data={"csrf_token": token(client)})
    assert (resumed.status_code, resumed.location) == (302, f"/imports/{job_id}?obj=lead")
    platform.jobs.wait(job_id)
    page = client.get(resumed.location).text
    assert "成功导入 7 条，失败 0 条" in page and "继续导入" not in page
    assert mobiles(platform) == (7, 7)


def test_the_same_file_again_is_refused_unless_forced(api, app, platform, people):
    data = leads_csv(3)
    status, body = upload(api, "boss", "leads.csv", data)
    assert status == 202
    first = body["job_id"]
    assert finished(api, "boss", first)["result"]["created"] == 3
    status, body = upload(api, "boss", "renamed.csv", data)  # the content names the file, not its name
    assert status == 409
    assert re.fullmatch(rf"renamed\.csv was already imported into lead by job {first} \(3 records, started "
                        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); send force=true to import it again",
                        body["error"]["message"]), body
    assert (ERROR_RESPONSES[-1][3]["error"]["reason"], ERROR_RESPONSES[-1][3]["error"]["params"]["job_id"]) == (
        "import.same_file", first)
    with platform.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(platform.schema.imports)).scalar_one() == 1
    assert upload(api, "boss", "leads.csv", data, force="maybe") == (400, {"error": {
        "code": "bad_request", "message": "force must be true or false",
        "fields": {"force": ["must be true or false"]}}})

    status, body = upload(api, "boss", "leads.csv", data, force="true")  # confirmed: the duplicate rule answers
    assert status == 202
    result = finished(api, "boss", body["job_id"])["result"]
    assert (result["created"], [e["row"] for e in result["errors"]]) == (0, [2, 3, 4])
    assert mobiles(platform) == (3, 3)

    # a file none of whose rows went in may be sent again without force
    bad = b"name,mobile\nX,oops\n"
    status, body = upload(api, "boss", "bad.csv", bad)
    assert finished(api, "boss", body["job_id"])["result"]["created"] == 0
    assert upload(api, "boss", "bad.csv", bad)[0] == 202

    # the campaign page says it in the user's language, and its "import again" box forces it
    campaign = platform.records.create("campaign", {"name": "2026 春季展会"}, system=True)["id"]
    client = app.test_client()
    login(client, "admin", PASSWORD)

    def start(**form):
        return client.post(f"/o/campaign/{campaign}/import/lead/campaign",
                           data={"csrf_token": token(client), "file": (io.BytesIO(data), "leads.csv"),
                                 **form}, content_type="multipart/form-data")

    refused = start()
    assert refused.status_code == 409
    assert f"leads.csv 已由任务 {first} 导入过（3 条记录" in refused.text
    assert start(force="true").status_code == 302


# --- a real rq worker, killed ------------------------------------------------------------------


def kill_9(pid: int) -> None:
    """SIGKILL an rq worker and its work horse (the child running the job, in a session of its own), as a machine
    or container that dies would stop them."""
    horses = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for process in [*map(int, horses), pid]:
        os.kill(process, signal.SIGKILL)


def test_an_rq_worker_killed_mid_import_is_resumed_every_row_once(migrated_database_url, tmp_path, rq_setup):  # noqa: F811
    url, queue = rq_setup
    count, size = 6000, 100
    with migrated_platform(migrated_database_url, tmp_path) as platform:
        platform.jobs = JobRunner(url, queue)
        platform.records.create("user", {"username": "boss", "display_name": "赵经理", "password": PASSWORD,
                                         "roles": ["sales_manager"]}, system=True)
        api = Api(create_app(platform).test_client())
        status, body = upload(api, "boss", "big.csv", leads_csv(count))
        assert status == 202
        job_id = body["job_id"]
        env = {"OBJECTPLATFORM_DATABASE_URL": migrated_database_url, "OBJECTPLATFORM_IMPORT_BATCH_SIZE": str(size)}
        os.environ.update(env)
        try:
            with rq_worker(url, queue, burst=True) as proc:
                wait_until(lambda: finished(api, "boss", job_id)["progress"]["done"] >= 2 * size, timeout=120)
                kill_9(proc.pid)
                proc.wait(timeout=20)
            running = finished(api, "boss", job_id)
            assert running["status"] == "running" and running["progress"]["done"] < count  # heartbeat still young
            committed_rows = mobiles(platform)[0]
            later(platform, 61)
            interrupted = finished(api, "boss", job_id)
            assert interrupted["status"] == "interrupted"
            ranges = interrupted["result"]["committed"]
            assert ranges == [[2 + i * size, 1 + (i + 1) * size] for i in range(len(ranges))]
            # exactly the rows of the committed batches are in, each once
            assert mobiles(platform) == (committed_rows, committed_rows) == (len(ranges) * size, len(ranges) * size)
            assert interrupted["result"]["created"] == committed_rows
            assert interrupted["progress"] == {"done": committed_rows, "total": count}

            assert api.call("POST", f"/jobs/{job_id}/resume", "boss") == (202, {"job_id": job_id})
            with rq_worker(url, queue, burst=True) as proc:
                assert proc.wait(timeout=300) == 0
        finally:
            for name in env:
                del os.environ[name]
        done = finished(api, "boss", job_id)
        assert (done["status"], done["progress"], done["error"]) == ("finished", {"done": count, "total": count}, None)
        assert done["result"]["committed"] == [[2 + i * size, 1 + (i + 1) * size] for i in range(count // size)]
        assert (done["result"]["created"], done["result"]["failed"]) == (count, 0)
        assert mobiles(platform) == (count, count)
