"""The scheduler: which rules are due at a moment, and the tick that enqueues their runs as jobs.

(How it works: docs/engine.md, "objectplatform/runtime/scheduler.py".)"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from datetime import UTC, datetime, timedelta, tzinfo

import sqlalchemy as sa

from objectplatform.metadata import Rule

from . import approvals, rules
from .platform import open_platform
from .records import recycle_bin
from .storage import convert

UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
TICK_SECONDS = 60


def slot_start(schedule: str, at: datetime, zone: tzinfo) -> datetime:
    """The start of the slot of `schedule` that `at` falls in, in `at`'s zone; "daily at 09:00" and the
    slots of "every 2h" or "every 1d" are counted on `zone`'s clock."""
    local = at.astimezone(zone)
    if schedule == "hourly":
        schedule = "every 1h"
    if schedule == "daily":
        schedule = "daily at 00:00"
    if match := re.fullmatch(r"every (\d+)([mhd])", schedule):
        length = int(match.group(1)) * UNITS[match.group(2)]
        epoch = datetime(1970, 1, 1, tzinfo=zone)
        return (epoch + ((local - epoch) // length) * length).astimezone(at.tzinfo)
    match = re.fullmatch(r"daily at (\d\d):(\d\d)", schedule)
    if match is None:
        raise ValueError(f"not a schedule: {schedule!r}")
    start = local.replace(hour=int(match.group(1)), minute=int(match.group(2)), second=0, microsecond=0)
    if start > local:
        start -= timedelta(days=1)
    return start.astimezone(at.tzinfo)


def last_runs(platform, at: datetime | None = None) -> dict[str, datetime]:
    """When each rule last ran (or was claimed to run), up to `at`: a run `rules run --now` dated later does
    not hold the schedule back."""
    runs = platform.schema.rule_runs
    stmt = sa.select(runs.c.rule, sa.func.max(runs.c.ran_at)).group_by(runs.c.rule)
    if at is not None:
        stmt = stmt.where(runs.c.ran_at <= convert.to_db("datetime", at))
    with platform.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {rule: convert.from_db("datetime", at) for rule, at in rows}


def due_rules(platform, at: datetime) -> list[Rule]:
    """The scheduled rules that have not run since their current slot began."""
    last = last_runs(platform, at)
    return [rule for rule in rules.scheduled_rules(platform.metadata)
            if rule.name not in last or last[rule.name] < slot_start(rule.schedule, at, platform.settings.zone)]


def claim_tick(platform, at: datetime) -> bool:
    """Whether this process ticks for the minute of `at`. On Redis (several `serve` and `scheduler` processes, on
    several machines, sharing the site's queue) the first to set the minute's key does, the others skip it, so a
    rule is enqueued once however many schedulers run; the key expires after three ticks. In-process (no Redis:
    one process) always."""
    redis = platform.jobs.redis
    if redis is None:
        return True
    key = f"{platform.jobs.queue.name}:scheduler:{at.astimezone(UTC):%Y%m%d%H%M}"
    return bool(redis.set(key, os.getpid(), nx=True, ex=3 * TICK_SECONDS))


def tick(platform, at: datetime | None = None) -> list[str]:
    """Claim and enqueue the run of every due rule as of `at` (default: the platform's clock); their names (none
    when another process ticks this minute, see claim_tick). Approval steps waiting past their remind_after_hours
    remind their approvers on every tick too, and the recycle bin's entries past the retention period are purged."""
    at = at or platform.clock.now()
    if not claim_tick(platform, at):
        return []
    approvals.approval_reminders(platform, at)
    recycle_bin.purge(platform, at)
    started = []
    for rule in due_rules(platform, at):
        runs = platform.schema.rule_runs
        with platform.records.transaction() as conn:
            run_id = conn.execute(runs.insert().values(
                rule=rule.name, ran_at=convert.to_db("datetime", at),
                summary=json.dumps({"rule": rule.name, "queued": True}))).inserted_primary_key[0]
        rules.enqueue_rule(platform, rule.name, at, run_id)
        started.append(rule.name)
    return started


def run_forever(platform, stop: threading.Event, seconds: float = TICK_SECONDS, log=None,
                working: threading.RLock | None = None) -> None:
    """Tick until `stop` is set, telling `log` which rules started; a failing tick is reported on stderr
    and the next one still runs. Each tick holds `working` (see start_thread)."""
    working = working or threading.RLock()
    while not stop.is_set():
        try:
            with working:
                started = tick(platform)
            if started and log:
                log(f"scheduler: started {', '.join(started)}")
        except Exception as e:  # noqa: BLE001 - the loop outlives one bad tick (database briefly away, ...)
            print(f"scheduler: tick failed: {e}", file=sys.stderr, flush=True)
        stop.wait(seconds)


def start_thread(settings) -> threading.Event:
    """Embedded mode: tick every minute in a daemon thread on its own platform, quietly (the rules' runs are
    in `_op_rule_run`); set the event to stop it.

    The process forks (gunicorn's master starts and restarts its workers) only while the thread is not working:
    a fork copies the SQLite mutexes the thread holds inside a statement, locked, and the child then waits on them
    for ever at its first statement (a worker that never answered, seen on 2026-12-07)."""
    stop = threading.Event()
    working = threading.RLock()
    os.register_at_fork(before=working.acquire, after_in_parent=working.release, after_in_child=working.release)

    def loop() -> None:
        with working:
            platform = open_platform(settings)
        try:
            run_forever(platform, stop, working=working)
        finally:
            with working:
                platform.close()

    threading.Thread(target=loop, name="objectplatform-scheduler", daemon=True).start()
    return stop
