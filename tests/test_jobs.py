"""Background jobs, in-process and on a real Redis with a real rq worker subprocess."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jobfuncs
import pytest
from redis import Redis
from rq import Queue, Worker

from objectplatform.runtime.jobs import COMMAND_POLL_SECONDS, JobRunner, PromptWorker

TESTS_DIR = Path(__file__).resolve().parent
SQUARES_3 = {"count": 3, "squares": [0, 1, 4, 9]}


def job(name: str) -> str:
    """Dotted path of a function in tests/jobfuncs.py, as a worker imports it."""
    return f"{jobfuncs.__name__}.{name}"


# --- in-process -------------------------------------------------------------------------------


def test_inprocess_job_runs_immediately_with_progress_and_result():
    runner = JobRunner(None)
    job_id = runner.enqueue(jobfuncs.count_to, 3)
    assert runner.status(job_id) == {
        "id": job_id,
        "status": "finished",
        "progress": {"done": 3, "total": 3},
        "result": SQUARES_3,
        "error": None,
    }


def test_closing_waits_for_the_inprocess_jobs_still_running():
    """A background job runs on the platform that started it: closing (Platform.close) waits for it to end, so it
    never writes through an engine that is gone or already serving the next platform."""
    runner = JobRunner(None)
    job_id = runner.enqueue(jobfuncs.nap, 0.3, background=True)
    assert runner.status(job_id)["status"] in ("queued", "running")
    runner.close()
    assert (runner.status(job_id)["status"], runner.status(job_id)["result"]) == ("finished", {"slept": 0.3})
    runner.close()  # nothing left running: at once


def test_inprocess_failures_are_recorded_not_raised():
    runner = JobRunner(None)
    failed = runner.enqueue(job("fail"), "disk full", job_id="import-1")
    assert failed == "import-1"
    assert runner.status(failed) == {
        "id": "import-1",
        "status": "failed",
        "progress": {"done": 0, "total": None},
        "result": None,
        "error": "ValueError: disk full",
    }
    bad_result = runner.status(runner.enqueue(jobfuncs.not_json))
    assert (bad_result["status"], bad_result["error"]) == (
        "failed",
        "TypeError: Object of type object is not JSON serializable",
    )
    with pytest.raises(KeyError):
        runner.status("no-such-job")


def test_inprocess_delayed_jobs_run_only_when_due():
    runner = JobRunner(None)
    when = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
    at_id = runner.enqueue_at(when, jobfuncs.count_to, 3)
    in_id = runner.enqueue_in(timedelta(minutes=5), jobfuncs.count_to, 1)
    assert runner.status(at_id)["status"] == "scheduled"
    assert runner.run_due() == 0
    assert runner.run_due(datetime.now(UTC) + timedelta(minutes=6)) == 1
    assert runner.status(in_id)["result"] == {"count": 1, "squares": [0, 1]}
    assert runner.run_due(when - timedelta(seconds=1)) == 0
    assert runner.status(at_id) == {
        "id": at_id,
        "status": "scheduled",
        "progress": {"done": 0, "total": None},
        "result": None,
        "error": None,
    }
    assert runner.run_due(when) == 1
    assert runner.status(at_id)["status"] == "finished"
    assert runner.status(at_id)["result"] == SQUARES_3
    assert runner.run_due(when + timedelta(days=1)) == 0


def test_inprocess_status_survives_in_state_dir(tmp_path):
    job_id = JobRunner(None, state_dir=tmp_path).enqueue(jobfuncs.count_to, 3)
    assert JobRunner(None, state_dir=tmp_path).status(job_id) == {
        "id": job_id,
        "status": "finished",
        "progress": {"done": 3, "total": 3},
        "result": SQUARES_3,
        "error": None,
    }


# --- Redis + rq worker ------------------------------------------------------------------------


def wait_until(predicate, timeout: float = 20):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.05)
    return value


@contextlib.contextmanager
def rq_worker(url: str, queue: str, burst: bool):
    """Run `objectplatform.runtime.jobs.worker` in a subprocess; stop it (bounded) on exit. With a site's database
    named (OBJECTPLATFORM_DATABASE_URL), it opens the site's platform first, as `objectplatform worker` does."""
    code = ("import os, sys, objectplatform.runtime.jobs as j, objectplatform.runtime.platform as p; "
            "j.worker(*sys.argv[1:3], burst=sys.argv[3] == '1', "
            "preload=p.job_platform if os.environ.get('OBJECTPLATFORM_DATABASE_URL') else None)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(TESTS_DIR.parent)])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, url, queue, "1" if burst else "0"],
        cwd=TESTS_DIR.parent,
        env=env,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture
def rq_setup(redis_url):
    """A unique queue name on the test Redis; afterwards every key naming it is deleted."""
    queue = f"optest-{uuid.uuid4().hex[:12]}"
    yield redis_url, queue
    redis = Redis.from_url(redis_url)
    keys = list(redis.scan_iter(match=f"*{queue}*"))
    if keys:
        redis.delete(*keys)
    redis.srem("rq:queues", f"rq:queue:{queue}")
    redis.close()


def test_rq_worker_runs_jobs_with_progress_results_and_errors(rq_setup):
    url, queue = rq_setup
    runner = JobRunner(url, queue)
    ok = runner.enqueue(jobfuncs.count_to, 3, job_id=f"{queue}-ok")
    bad = runner.enqueue(job("fail"), "disk full", job_id=f"{queue}-bad")
    not_json = runner.enqueue(jobfuncs.not_json, job_id=f"{queue}-not-json")
    assert runner.status(ok)["status"] == "queued"
    with rq_worker(url, queue, burst=True) as proc:
        assert proc.wait(timeout=20) == 0
    assert runner.status(ok) == {
        "id": ok,
        "status": "finished",
        "progress": {"done": 3, "total": 3},
        "result": SQUARES_3,
        "error": None,
    }
    assert runner.status(bad) == {
        "id": bad,
        "status": "failed",
        "progress": {"done": 0, "total": None},
        "result": None,
        "error": "ValueError: disk full",
    }
    assert runner.status(not_json)["error"] == "TypeError: Object of type object is not JSON serializable"


def test_rq_progress_is_visible_while_the_job_runs(rq_setup):
    url, queue = rq_setup
    runner = JobRunner(url, queue)
    key = f"{queue}:go"
    job_id = runner.enqueue(jobfuncs.wait_for_key, key, job_id=f"{queue}-wait")
    with rq_worker(url, queue, burst=True) as proc:
        running = wait_until(lambda: (s := runner.status(job_id))["progress"]["done"] == 1 and s)
        assert running == {
            "id": job_id,
            "status": "running",
            "progress": {"done": 1, "total": 3},
            "result": None,
            "error": None,
        }
        runner.redis.set(key, "now")
        assert proc.wait(timeout=20) == 0
    assert runner.status(job_id) == {
        "id": job_id,
        "status": "finished",
        "progress": {"done": 3, "total": 3},
        "result": {"value": "now"},
        "error": None,
    }


def test_rq_delayed_job_is_run_by_the_worker_scheduler(rq_setup):
    url, queue = rq_setup
    runner = JobRunner(url, queue)
    job_id = runner.enqueue_in(timedelta(seconds=1), jobfuncs.count_to, 3, job_id=f"{queue}-later")
    assert runner.status(job_id)["status"] == "scheduled"
    with rq_worker(url, queue, burst=False):
        done = wait_until(lambda: (s := runner.status(job_id))["status"] in ("finished", "failed") and s)
    assert done == {
        "id": job_id,
        "status": "finished",
        "progress": {"done": 3, "total": 3},
        "result": SQUARES_3,
        "error": None,
    }


def idle_worker(redis: Redis, queue: str) -> Worker | None:
    """The worker on `queue` once it waits for jobs (its signal handlers set) and listens for commands."""
    workers = Worker.all(connection=redis, queue=Queue(queue, connection=redis))
    if (
        workers
        and redis.hget(workers[0].key, "state") == b"idle"
        and redis.pubsub_numsub(workers[0].pubsub_channel_name)[0][1]
    ):
        return workers[0]
    return None


def test_a_worker_stops_within_seconds_of_sigterm(rq_setup):
    url, queue = rq_setup
    redis = Redis.from_url(url)
    with rq_worker(url, queue, burst=False) as proc:
        worker = wait_until(lambda: idle_worker(redis, queue))
        started = time.monotonic()
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 10
    assert redis.pubsub_numsub(worker.pubsub_channel_name)[0][1] == 0
    assert Worker.all(connection=redis, queue=Queue(queue, connection=redis)) == []


def test_a_worker_stops_its_command_thread_within_seconds_even_when_the_unsubscribe_reply_came_first(rq_setup):
    """rq#1613: the thread that takes the worker's commands saw the unsubscribe reply before its stop flag was
    set, and now waits for a subscription; stopping the worker must not wait that out (rq's own: 60 s)."""
    url, queue = rq_setup
    redis = Redis.from_url(url)
    worker = PromptWorker([Queue(queue, connection=redis)], connection=redis)
    worker.subscribe()
    wait_until(lambda: worker.pubsub.subscribed)
    worker.pubsub.unsubscribe()
    wait_until(lambda: not worker.pubsub.subscribed)
    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    started = time.monotonic()
    stopping.start()
    stopping.join(timeout=10)
    assert not stopping.is_alive()
    assert time.monotonic() - started < COMMAND_POLL_SECONDS + 3
    assert not worker.pubsub_thread.is_alive()


def test_a_busy_worker_given_sigterm_finishes_its_job_then_stops(rq_setup):
    url, queue = rq_setup
    runner = JobRunner(url, queue)
    key = f"{queue}:go"
    job_id = runner.enqueue(jobfuncs.wait_for_key, key, job_id=f"{queue}-busy")
    with rq_worker(url, queue, burst=False) as proc:
        wait_until(lambda: runner.status(job_id)["progress"]["done"] == 1)
        proc.terminate()
        time.sleep(1)
        assert proc.poll() is None
        runner.redis.set(key, "now")
        assert proc.wait(timeout=20) == 0
    assert runner.status(job_id)["result"] == {"value": "now"}
