"""Background jobs: on rq/Redis when a Redis URL is configured, otherwise in-process.

(How it works: docs/engine.md, "objectplatform/runtime/jobs.py".)"""

from __future__ import annotations

import contextvars
import importlib
import json
import threading
import traceback
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue, Worker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from .clock import Clock

_RQ_STATUS = {
    "scheduled": "scheduled",
    "started": "running",
    "finished": "finished",
    "failed": "failed",
    "stopped": "failed",
    "canceled": "failed",
}  # every other rq status (created, queued, deferred, rate_limited, ...) is "queued"

_NEW = {"status": "queued", "progress": {"done": 0, "total": None}, "result": None, "error": None}
_current: ContextVar[tuple[JobRunner, str] | None] = ContextVar("objectplatform_job", default=None)


def function_path(func: Callable | str) -> str:
    """Return the dotted import path of a job function."""
    return func if isinstance(func, str) else f"{func.__module__}.{func.__qualname__}"


def import_function(path: str) -> Callable:
    """The function a dotted import path names."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _perform(func: Callable | str, /, *args, **kwargs) -> Any:
    """Run a job function and return its result as JSON data (raising if it is not JSON-serialisable)."""
    if isinstance(func, str):
        func = import_function(func)
    return json.loads(json.dumps(func(*args, **kwargs)))


def _error_line(text: str) -> str:
    """Return the last non-empty line of a traceback, e.g. "ValueError: boom"."""
    return text.strip().splitlines()[-1]


class JobRunner:
    """Enqueues jobs on rq when `redis_url` is set, else runs them in-process."""

    def __init__(
        self, redis_url: str | None, queue_name: str = "objectplatform", state_dir: Path | None = None
    ):
        self.redis = Redis.from_url(redis_url) if redis_url else None
        self.queue = (
            Queue(queue_name, connection=self.redis, serializer=JSONSerializer) if self.redis else None
        )
        self.state_dir = state_dir  # in-process mode: job records are also kept here as <id>.json
        self._lock = threading.Lock()
        self._jobs: dict[str, dict] = {}
        self._pending: dict[str, tuple[datetime, Callable | str, tuple, dict]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.clock = Clock()  # the wall clock rq schedules by, not a platform's (a test's may stand still)

    def enqueue(self, func: Callable | str, *args, job_id: str | None = None, background: bool = False,
                **kwargs) -> str:
        """Run `func(*args, **kwargs)` in the background and return the job id; in-process it runs right now, or
        with `background` in a thread of its own (so a request answers at once; `wait` joins it)."""
        if self.queue:
            return self.queue.enqueue(_perform, **self._rq_call(func, args, kwargs), job_id=job_id).id
        job_id = job_id or uuid.uuid4().hex
        if not background:
            self._run(job_id, func, args, kwargs)
            return job_id
        self._put(job_id, status="queued")
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(self._run, job_id, func, args, kwargs),
                                  name=f"job-{job_id}", daemon=True)
        with self._lock:  # keep the running ones (for `wait`), forget the finished
            self._threads = {k: t for k, t in self._threads.items() if t.is_alive()} | {job_id: thread}
        thread.start()
        return job_id

    def wait(self, job_id: str, timeout: float = 60) -> None:
        """In-process mode: return once the job's thread has ended (at once for any other job)."""
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"job {job_id} still running after {timeout} s")

    def close(self, timeout: float = 60) -> None:
        """In-process mode: return once every job thread still running has ended (each a `timeout` at most): a job
        runs on the platform that started it, which is closed after."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def enqueue_in(self, delay: timedelta, func: Callable | str, *args, **kwargs) -> str:
        """Run the job once `delay` has passed and return its id."""
        return self.enqueue_at(self.clock.now() + delay, func, *args, **kwargs)

    def enqueue_at(
        self, when: datetime, func: Callable | str, *args, job_id: str | None = None, **kwargs
    ) -> str:
        """Run the job at `when` (naive means local time, as in rq) and return its id."""
        if self.queue:
            return self.queue.enqueue_at(
                when, _perform, **self._rq_call(func, args, kwargs), job_id=job_id
            ).id
        job_id = job_id or uuid.uuid4().hex
        with self._lock:
            self._pending[job_id] = (when.astimezone(UTC), func, args, kwargs)
        self._put(job_id, status="scheduled")
        return job_id

    def run_due(self, now: datetime | None = None) -> int:
        """In-process mode: run the delayed jobs due at `now` (default: the current time); return how many."""
        now = (now or self.clock.now()).astimezone(UTC)
        with self._lock:
            due = sorted((p[0], job_id) for job_id, p in self._pending.items() if p[0] <= now)
            jobs = [(job_id, self._pending.pop(job_id)) for _, job_id in due]
        for job_id, (_, func, args, kwargs) in jobs:
            self._run(job_id, func, args, kwargs)
        return len(jobs)

    def status(self, job_id: str) -> dict:
        """Return {"id", "status", "progress": {"done", "total"}, "result", "error"}; KeyError if unknown."""
        if self.queue:
            return self._rq_status(job_id)
        with self._lock:
            record = self._jobs.get(job_id)
        if record is None and self.state_dir and (path := self.state_dir / f"{job_id}.json").exists():
            record = json.loads(path.read_text())
        if record is None:
            raise KeyError(job_id)
        return json.loads(json.dumps(record))

    @staticmethod
    def _rq_call(func: Callable | str, args: tuple, kwargs: dict) -> dict:
        """rq enqueue arguments that run `func` through `_perform` (which enforces JSON results)."""
        return {"args": (function_path(func), *args), "kwargs": kwargs, "description": function_path(func)}

    def _rq_status(self, job_id: str) -> dict:
        """Build the status dict of an rq job from its Redis hash and latest result."""
        try:
            job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
        except NoSuchJobError:
            raise KeyError(job_id) from None
        rq_status = job.get_status(refresh=False).value
        status = _RQ_STATUS.get(rq_status, "queued")
        latest = job.latest_result() if status in ("finished", "failed") else None
        error = None
        if status == "failed":
            error = _error_line(latest.exc_string) if latest and latest.exc_string else f"job {rq_status}"
        return {
            "id": job.id,
            "status": status,
            "progress": job.meta.get("progress", {"done": 0, "total": None}),
            "result": latest.return_value if latest and latest.type == Result.Type.SUCCESSFUL else None,
            "error": error,
        }

    def _put(self, job_id: str, **fields: Any) -> None:
        """Create or update an in-process job record (and its file under `state_dir`)."""
        with self._lock:
            record = self._jobs.setdefault(job_id, {"id": job_id, **_NEW})
            record.update(fields)
            text = json.dumps(record)
        if self.state_dir:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.state_dir / f".{job_id}.{uuid.uuid4().hex}.tmp"
            tmp.write_text(text)
            tmp.replace(self.state_dir / f"{job_id}.json")

    def _run(self, job_id: str, func: Callable | str, args: tuple, kwargs: dict) -> None:
        """Run one in-process job, recording its outcome instead of raising."""
        self._put(job_id, status="running")
        token = _current.set((self, job_id))
        try:
            result = _perform(func, *args, **kwargs)
        except Exception as exc:
            error = _error_line("".join(traceback.format_exception_only(exc)))
            self._put(job_id, status="failed", error=error)
        else:
            self._put(job_id, status="finished", result=result)
        finally:
            _current.reset(token)


def report_progress(done: int, total: int | None = None) -> None:
    """Record the running job's progress (either mode); does nothing outside a job."""
    progress = {"done": done, "total": total}
    if current := _current.get():
        runner, job_id = current
        runner._put(job_id, progress=progress)
    elif job := get_current_job():
        job.meta["progress"] = progress
        job.save_meta()


COMMAND_POLL_SECONDS = 1  # how often a worker's pub/sub thread wakes, so it stops within about this long


class PromptWorker(Worker):
    """An rq worker whose command thread (pub/sub, for `rq shutdown` and the like) reads a second at a time, so
    the worker stops within seconds: rq's reads for 60 s, and stopping the worker waits for that read (rq#1613)."""

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=COMMAND_POLL_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler)


def worker(redis_url: str, queue_name: str = "objectplatform", burst: bool = False,
           preload: Callable[[], Any] | None = None) -> None:
    """Run an rq worker on `queue_name` with the built-in scheduler (for delayed jobs) enabled; on SIGTERM it
    finishes the job it is running, if any, then stops (a second SIGTERM, a second or more later, at once).
    `preload` (the site's platform) runs once before the first job: each job runs in a fork of this process, so
    it starts with the metadata loaded instead of loading it again (about a second a job)."""
    if preload is not None:
        preload()
    connection = Redis.from_url(redis_url)
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
    PromptWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=burst, with_scheduler=True)
