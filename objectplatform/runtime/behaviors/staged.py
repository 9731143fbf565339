"""The `sales_process` behavior: opportunities move through the stages of a sales process (销售流程).

An object declaring `behaviors: sales_process: {history: stage_history, tasks: opportunity_task,
parent_field: opportunity}` (the opportunity) has the fields `sales_process`, `stage`, `pending_stage`,
`probability`, `status` (open, won, lost, invalid), `closed_at`, `lost_reason`, `lost_comment` and
`invalid_comment`, and two child objects the behavior alone writes, each pointing at the record by
`parent_field`: `history` (one row per stage entered: entered_at, left_at null while current, left_to
the next stage or won/lost/invalid, moved_by who moved it in) and `tasks` (one row per completed stage
task). Their rows are owned by the record's owner, so the data scope reads them like the record (an
edit cannot change an owner; a user's handover moves every record they own, these rows with them).

On create (one record, or an import batch with set-based writes) the record gets its process: the one
given, else its owner's department's (the nearest department up the tree with a process), else the
first process; an open record enters the process's first stage (a system write may name another
stage), its probability is the stage's unless given, and a stage_history row opens. A record created
closed (an imported past deal) gets `closed_at` and no stage. An edit may not change `sales_process`,
`status` or the stage: those change through the actions, which every face runs with `run_action`:

- `advance` {}: to the next stage once the current stage's required tasks are done and its required
  fields filled, else 422 listing exactly the missing ones (`tasks`: one message per task; each field
  under its own name). Entering a stage with `approval:` does not move: `pending_stage` is set to it and,
  in the same transaction, the approval engine (runtime/approvals.py) starts a one-step approval by the
  stage's approvers (the result carries its `approval_id`); the record waits in its stage until that is
  decided (`decide_pending`, in the decision's transaction: approved, it moves; rejected or withdrawn, it
  stays and may be advanced again). Probability becomes the new stage's.
- `complete_task` {"task": key}: a task of the current stage (another key: 422). Completing a task
  already done changes nothing and answers `already_completed: true` (idempotent, for double clicks).
- `win` {}: only from the last stage, whose required tasks and fields must be done too; probability 100.
- `lose` {"reason": lost_reason value, "comment"} (both required) and `invalidate` {"comment"}: from
  any stage; probability 0.
Won, lost and invalid records are closed: every action refuses them with a 409 naming the status.

Each action is one transaction whose first write is ONE conditional UPDATE of the record repeating
what was decided on (status open, the stage and pending stage read), so of two concurrent moves the
second finds 0 rows and gets a 409 naming the record's state now; then the audit history (change =
the action's name), the stage_history rows, rollups and stored formulas (the weighted amount).
The current time comes from the platform's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, Label, Metadata, ObjectDef, Option, Source

from .. import actions, approvals
from ..errors import Conflict, Message, NotFound, ValidationFailed, no_record
from ..expressions_sql import days_between
from ..records import history, hooks
from ..records.bulk import insert_many
from ..sales_processes import Process, Stage, department_path, pick, process, processes
from ..storage.convert import from_row, to_row
from .registry import Behavior, FieldNeed, Need, child

BEHAVIOR = "sales_process"
OPEN = "open"
CLOSED = ("won", "lost", "invalid")
VERBS = {"advance": "advanced", "complete_task": "changed", "win": "won", "lose": "lost",
         "invalidate": "marked invalid", "approve_stage": "moved", "reject_stage": "changed",
         "withdraw_stage": "changed"}
GUARDED = {"sales_process": Message("stage.process_fixed", "is chosen when the record is created"),
           "status": Message("stage.status_by_actions", "changes through the win, lose and invalidate actions"),
           "stage": Message("stage.stage_by_advance", "changes through the advance action")}


@dataclass(frozen=True)
class SalesProcessConfig:
    """`behaviors: sales_process:` of one object: its child objects of stage history rows and of completed
    tasks, and their field pointing at the record."""

    history: str
    tasks: str
    parent_field: str


NAME = {"type": "string", "minLength": 1}
SCHEMA = {
    "type": "object",
    "properties": {"history": NAME, "tasks": NAME, "parent_field": NAME},
    "required": ["history", "tasks", "parent_field"],
    "additionalProperties": False,
}
TEXT, REASON = ("text",), ("text", "long_text")
FIELDS = (("sales_process", TEXT), ("stage", TEXT), ("pending_stage", TEXT), ("probability", ("percent", "number")),
          ("closed_at", ("datetime",)), ("lost_reason", ("picklist",)), ("lost_comment", REASON),
          ("invalid_comment", REASON))
HISTORY_FIELDS = (("sales_process", TEXT), ("stage", TEXT), ("entered_at", ("datetime",)),
                  ("left_at", ("datetime",)), ("left_to", TEXT), ("moved_by", ("user",)), ("comment", REASON))
TASK_FIELDS = (("sales_process", TEXT), ("stage", TEXT), ("task", TEXT), ("completed_at", ("datetime",)),
               ("completed_by", ("user",)))


def _needs(obj: ObjectDef, config: SalesProcessConfig) -> Iterator[Need]:
    for name, types in FIELDS:
        yield FieldNeed(name, types)
    yield FieldNeed("status", ("picklist",), options=(OPEN, *CLOSED))
    yield from child(config.history, "history", config.parent_field, obj.name, HISTORY_FIELDS)
    yield from child(config.tasks, "tasks", config.parent_field, obj.name, TASK_FIELDS)


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _stage_title(stage: Stage | None, key: str | None) -> str:
    return stage.title() if stage else repr(key)


class StagedBehavior:
    """The sales_process behavior of one object."""

    def __init__(self, platform, obj: str):
        self.platform = platform
        self.records = platform.records
        self.obj = obj
        self.ot = platform.schema[obj]
        self.table = self.ot.table
        self.config: SalesProcessConfig = SALES_PROCESS.config_of(platform.metadata.objects[obj])
        status = platform.metadata.objects[obj].fields["status"]
        self.status_labels = {o.value: o.label.zh for o in status.options}

    # ---------------------------------------------------------------------------------- reads

    def col(self, name: str) -> sa.Column:
        return self.ot.column(name)

    def read(self, conn: sa.Connection, record_id: Any) -> dict:
        return self.records.get(self.obj, record_id, conn=conn)

    def process_of(self, record: Mapping[str, Any]) -> Process:
        found = process(self.platform.metadata, record.get("sales_process"), self.obj)
        if found is None:
            raise Conflict(Message("stage.unknown_process", "{object} {id} follows the sales process {process!r}, "
                                   "which is not defined", object=self.obj, id=record["id"],
                                   process=record.get("sales_process")))
        return found

    def stage_of(self, record: Mapping[str, Any], found: Process) -> Stage:
        stage = found.stage(record.get("stage"))
        if stage is None:
            raise Conflict(Message("stage.unknown_stage", "{object} {id} is in stage {stage!r}, which {process} "
                                   "does not have", object=self.obj, id=record["id"], stage=record.get("stage"),
                                   process=found.name))
        return stage

    def state(self, record: Mapping[str, Any]) -> Message:
        status = record.get("status")
        if status != OPEN:
            label = self.status_labels.get(status, "")
            return Message("pool.state", "{object} {id} is {status}", object=self.obj, id=record["id"],
                           status=f"{label} {status}".strip(), label=label or status)
        found = process(self.platform.metadata, record.get("sales_process"), self.obj)
        stage = found.stage(record.get("stage")) if found else None
        title = _stage_title(stage, record.get("stage"))
        if record.get("pending_stage"):
            pending = found.stage(record["pending_stage"]) if found else None
            return Message("stage.state_pending", "{object} {id} is in stage {stage}, waiting for approval to enter "
                           "{pending}", object=self.obj, id=record["id"], stage=title,
                           pending=_stage_title(pending, record["pending_stage"]))
        return Message("stage.state", "{object} {id} is in stage {stage}", object=self.obj, id=record["id"],
                       stage=title)

    def refuse(self, record: Mapping[str, Any], action: str) -> Conflict:
        return Conflict(Message("pool.cannot", "{state}: it cannot be {verb}", state=self.state(record),
                                verb=VERBS[action]))

    def require_open(self, record: Mapping[str, Any], action: str) -> None:
        if record.get("status") != OPEN:
            raise self.refuse(record, action)

    def done_tasks(self, record: Mapping[str, Any], stage: str) -> dict[str, dict]:
        """The completed tasks of `stage` ({task key: row}) among the record's inline task rows."""
        return {t["task"]: t for t in record.get(self.config.tasks, ()) if t["stage"] == stage
                and t["sales_process"] == record.get("sales_process")}

    def missing(self, record: Mapping[str, Any], stage: Stage) -> dict[str, list[str]]:
        """What keeps the record in `stage`: {"tasks": [one message per required task not done],
        field: [message]} for each required field left empty."""
        done = self.done_tasks(record, stage.key)
        problems: dict[str, list[str]] = {}
        tasks = [Message("stage.task_not_done", "{task} ({label}) is not done", task=t.key, label=t.label.zh)
                 for t in stage.tasks if t.required and t.key not in done]
        if tasks:
            problems["tasks"] = tasks
        for name in stage.required_fields:
            if _blank(record.get(name)):
                problems[name] = [Message("stage.required_to_leave", "is required to leave stage {stage}",
                                          stage=stage.title(), label=stage.label.zh)]
        return problems

    def check_done(self, record: Mapping[str, Any], stage: Stage) -> None:
        problems = self.missing(record, stage)
        if problems:
            count = sum(len(m) for m in problems.values())
            raise ValidationFailed(problems, Message("stage.not_finished", "stage {stage} is not finished: {count} "
                                                     "missing", stage=stage.title(), count=count))

    # ---------------------------------------------------------------------------------- writes

    def write(self, conn: sa.Connection, action: str, current: dict, values: dict, user: str | None,
              at: datetime, where: Iterable[sa.ColumnElement[bool]], note: Any = None) -> dict:
        """The one conditional UPDATE (`where` repeats the state decided on) with the stored formulas
        recomputed, its audit history (change = `action`; `note` the new value of an entry without a
        field when no field changed), rollups and the after_update hooks."""
        merged = {**current, **values}
        self.records.formulas[self.obj].on_write(merged, at)
        stored = {n: merged[n] for n in self.records.formulas[self.obj].stored if merged[n] != current.get(n)}
        values = {**values, **stored}
        stmt = (sa.update(self.table)
                .where(self.table.c.id == int(current["id"]), *where)
                .values({**to_row(self.ot, {**values, "updated_by": user, "updated_at": at}),
                         "version": self.table.c.version + 1}))
        if conn.execute(stmt).rowcount == 0:
            latest = conn.execute(sa.select(self.table).where(self.table.c.id == int(current["id"]))).mappings().first()
            if latest is None:
                raise NotFound(no_record(self.obj, current["id"]))
            raise self.refuse(from_row(self.ot, latest), action)
        fields = self.platform.metadata.objects[self.obj].fields
        logged = {k: v for k, v in values.items()
                  if current.get(k) != v and fields[k].type not in ("formula", "rollup")}
        entries = [history.entry(self.obj, int(current["id"]), action, name, current.get(name), value, user, at)
                   for name, value in logged.items()]
        history.write(conn, self.platform.schema.history, entries or [
            history.entry(self.obj, int(current["id"]), action, None, None, note, user, at)])
        after = self.read(conn, current["id"])
        self.records.rollups.after_change(conn, self.obj, [(current, after)], at)
        self.platform.registry.run_hooks("after_update", self.ot.object,
                  hooks.HookContext(self.records, conn, self.obj, user, at, before=dict(current), after=after))
        return after

    def where_unchanged(self, current: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
        """The state an action decided on: open, in the stage read, with the pending stage read."""
        pending = current.get("pending_stage")
        return [self.col("status") == OPEN, self.col("stage") == current["stage"],
                self.col("pending_stage").is_(None) if pending is None else self.col("pending_stage") == pending]

    def leave_stage(self, conn: sa.Connection, record_id: Any, left_to: str, user: str | None, at: datetime,
                    comment: str | None = None) -> None:
        """Close the record's open stage_history row: left now, to `left_to` (with the closing comment)."""
        history_object = self.config.history
        hot = self.platform.schema[history_object]
        ids = list(conn.execute(sa.select(hot.table.c.id).where(
            hot.column(self.config.parent_field) == int(record_id), hot.column("left_at").is_(None))).scalars())
        if not ids:
            return
        values = {"left_at": at, "left_to": left_to, **({"comment": comment} if comment else {})}
        conn.execute(sa.update(hot.table).where(hot.table.c.id.in_(ids)).values(
            {**to_row(hot, {**values, "updated_by": user, "updated_at": at}), "version": hot.table.c.version + 1}))
        history.write(conn, self.platform.schema.history, [
            history.entry(history_object, i, "update", name, None, value, user, at)
            for i in ids for name, value in values.items()])

    # -------------------------------------------------------------------------------- actions

    def advance(self, access, record_id: Any) -> dict:
        user = access.user_id
        with self.records.transaction() as conn:
            current = self.read(conn, record_id)
            self.require_open(current, "advance")
            if current.get("pending_stage"):
                raise self.refuse(current, "advance")
            found = self.process_of(current)
            stage = self.stage_of(current, found)
            following = found.after(stage.key)
            if following is None:
                raise Conflict(Message("stage.last_stage", "{state}, the last stage of {process}: win it instead of "
                                       "advancing", state=self.state(current), process=found.name))
            self.check_done(current, stage)
            at = self.platform.clock.now()
            if following.approval:
                record = self.write(conn, "advance", current, {"pending_stage": following.key}, user, at,
                                    self.where_unchanged(current))
                approval_id = approvals.approvals(self.platform).start_stage(
                    conn, self.obj, record, found.name, following, user, at)
                return {"record": self.read(conn, record_id), "pending_stage": following.key,
                        "approval": dict(following.approval), "approval_id": str(approval_id)}
            record = self.enter(conn, "advance", current, following, user, at)
            return {"record": record, "stage": following.key}

    def enter(self, conn: sa.Connection, action: str, current: dict, stage: Stage, user: str | None,
              at: datetime) -> dict:
        """Move the record from its stage into `stage`: probability, history rows closed and opened."""
        record = self.write(conn, action, current,
                            {"stage": stage.key, "probability": stage.probability, "pending_stage": None},
                            user, at, self.where_unchanged(current))
        self.leave_stage(conn, current["id"], stage.key, user, at)
        open_stage_rows(self.records, conn, self.obj, [record], user, at)
        return self.read(conn, current["id"])

    def complete_task(self, access, record_id: Any, key: str) -> dict:
        user = access.user_id
        with self.records.transaction() as conn:
            current = self.read(conn, record_id)
            self.require_open(current, "complete_task")
            found = self.process_of(current)
            stage = self.stage_of(current, found)
            task = stage.task(key)
            if task is None:
                keys = ", ".join(t.key for t in stage.tasks) or "none"
                raise ValidationFailed({"task": [Message("stage.unknown_task", "stage {stage} has no task {task!r}; "
                                                         "its tasks: {tasks}", stage=stage.title(), task=key,
                                                         tasks=keys)]})
            done = self.done_tasks(current, stage.key).get(key)
            if done is None:
                at = self.platform.clock.now()
                # the conditional write locks the record: a concurrent completion of the same task waits here
                self.write(conn, "complete_task", current, {}, user, at, self.where_unchanged(current),
                           note={"stage": stage.key, "task": key})
                done = self.done_tasks(self.read(conn, record_id), stage.key).get(key)
                if done is None:
                    insert_rows(self.records, conn, self.config.tasks, [{
                        self.config.parent_field: str(current["id"]), "sales_process": found.name, "stage": stage.key,
                        "task": key, "completed_at": at, "completed_by": user, "owner": current.get("owner")}],
                        user, at)
                    record = self.read(conn, record_id)
                    return {"record": record, "task": _task_json(self.done_tasks(record, stage.key)[key]),
                            "already_completed": False}
            return {"record": self.read(conn, record_id), "task": _task_json(done), "already_completed": True}

    def close(self, access, record_id: Any, action: str, status: str, values: dict,
              comment: str | None) -> dict:
        """Win, lose or invalidate: the record is closed, its open stage_history row left to `status`."""
        user = access.user_id
        with self.records.transaction() as conn:
            current = self.read(conn, record_id)
            self.require_open(current, action)
            found = self.process_of(current)
            stage = self.stage_of(current, found)
            if action == "win":
                if stage.key != found.last.key:
                    raise Conflict(Message("stage.win_from_last", "{state}: it can be won only from the last stage "
                                           "{stage}", state=self.state(current), stage=found.last.title()))
                self.check_done(current, stage)
            at = self.platform.clock.now()
            record = self.write(conn, action, current,
                                {**values, "status": status, "pending_stage": None, "closed_at": at}, user, at,
                                self.where_unchanged(current))
            self.leave_stage(conn, record_id, status, user, at, comment)
            if current.get("pending_stage"):
                # closed while a stage approval waited: that approval ends, withdrawn
                approvals.approvals(self.platform).close_pending(conn, self.obj, record_id, approvals.WITHDRAWN, user)
            return {"record": self.read(conn, record["id"])}

    def decide_pending(self, conn: sa.Connection, user: str | None, record_id: Any, approved: bool,
                       action: str | None = None) -> dict:
        """The approval of `pending_stage` decided (in the approval engine's transaction `conn`): approved, the
        record enters it; rejected (or withdrawn, `action` withdraw_stage), it stays."""
        action = action or ("approve_stage" if approved else "reject_stage")
        current = self.read(conn, record_id)
        self.require_open(current, action)
        if not current.get("pending_stage"):
            raise Conflict(Message("stage.nothing_pending", "{state}, with no stage awaiting approval",
                                   state=self.state(current)))
        found = self.process_of(current)
        stage = found.stage(current["pending_stage"])
        if stage is None:
            raise Conflict(Message("stage.pending_unknown", "{state}, which {process} does not have",
                                   state=self.state(current), process=found.name))
        at = self.platform.clock.now()
        if approved:
            return {"record": self.enter(conn, action, current, stage, user, at)}
        return {"record": self.write(conn, action, current, {"pending_stage": None}, user, at,
                                     self.where_unchanged(current))}


def _task_json(row: Mapping[str, Any]) -> dict:
    return {"stage": row["stage"], "task": row["task"], "completed_at": row["completed_at"],
            "completed_by": row["completed_by"]}


def behavior_of(platform, obj: str) -> StagedBehavior:
    """The sales_process behavior of `obj` on this platform (built on first use)."""
    key = f"{BEHAVIOR}:{obj}"
    if key not in platform.services:
        platform.services[key] = StagedBehavior(platform, obj)
    return platform.services[key]


def approve_stage(platform, obj: str, record_id: Any, *, user: str | None = None) -> dict:
    """Grant the record's stage approval outside the approval engine (an administrator's repair): it enters
    `pending_stage`, and the engine's waiting approval of it ends approved without a decision."""
    return _settle(platform, obj, record_id, user, approved=True)


def reject_stage(platform, obj: str, record_id: Any, *, user: str | None = None) -> dict:
    """Refuse the record's stage approval outside the approval engine: it stays in its stage."""
    return _settle(platform, obj, record_id, user, approved=False)


def _settle(platform, obj: str, record_id: Any, user: str | None, approved: bool) -> dict:
    with platform.records.transaction() as conn:
        result = behavior_of(platform, obj).decide_pending(conn, user, record_id, approved)
        approvals.approvals(platform).close_pending(conn, obj, record_id,
                                                    approvals.APPROVED if approved else approvals.REJECTED, user)
        return result


def _approval_ended(platform, conn: sa.Connection, obj: str, user: str | None, record_id: Any, status: str) -> None:
    """A stage approval ended in the approval engine: the record enters its pending stage or stays."""
    behavior_of(platform, obj).decide_pending(conn, user, record_id, status == approvals.APPROVED,
                                              action="withdraw_stage" if status == approvals.WITHDRAWN else None)


# ------------------------------------------------------------------------------- child rows


def insert_rows(records, conn: sa.Connection, obj: str, rows: list[dict], user: str | None, at: datetime) -> list[str]:
    """Insert system-written child rows (stage history, completed tasks) with one executemany and
    their "create" history; the rows are trusted (the behavior built them), so not validated again."""
    if not rows:
        return []
    ot = records.schema[obj]
    full = [{**{n: None for n in ot.object.fields}, **row, "owner": row.get("owner") or user, "created_by": user,
             "updated_by": user, "created_at": at, "updated_at": at, "version": 1} for row in rows]
    make_row = records.row_makers[obj]
    ids = insert_many(conn, ot.table, [make_row(r) for r in full])
    history.write_created(conn, records.schema.history, obj, ot.table, ids, user, at)
    return [str(i) for i in ids]


def open_stage_rows(records, conn: sa.Connection, obj: str, opened: list[Mapping[str, Any]], user: str | None,
                    at: datetime) -> None:
    """A stage history row entering each record's current stage, owned like the record."""
    config: SalesProcessConfig = SALES_PROCESS.config_of(records.metadata.objects[obj])
    insert_rows(records, conn, config.history, [
        {config.parent_field: str(o["id"]), "sales_process": o["sales_process"], "stage": o["stage"],
         "entered_at": at, "moved_by": user, "owner": o.get("owner")} for o in opened if o.get("stage")], user, at)


def replace_stage_history(records, conn: sa.Connection, obj: str, record_id: Any, rows: list[Mapping[str, Any]],
                          user: str | None, at: datetime) -> None:
    """Replace a record's stage history by a known past (for loading deals with their history, e.g. the
    demo): `rows` give stage, entered_at, left_at, left_to and moved_by; process and owner are the record's."""
    config: SalesProcessConfig = SALES_PROCESS.config_of(records.metadata.objects[obj])
    hot = records.schema[config.history]
    record = records.get(obj, record_id, conn=conn)
    conn.execute(sa.delete(hot.table).where(hot.column(config.parent_field) == int(record_id)))
    insert_rows(records, conn, config.history, [
        {**row, config.parent_field: str(record_id), "sales_process": record["sales_process"],
         "owner": record["owner"]} for row in rows], user, at)


def complete_tasks(records, conn: sa.Connection, obj: str, rows: list[Mapping[str, Any]], user: str | None,
                   at: datetime) -> None:
    """Insert completed-task rows of `obj`'s records (for loading deals with their past, e.g. the demo): each
    row gives its record under the behavior's `parent_field`, sales_process, stage, task, completed_at,
    completed_by and owner."""
    insert_rows(records, conn, SALES_PROCESS.config_of(records.metadata.objects[obj]).tasks, list(rows), user, at)


# ------------------------------------------------------------------------------- on create / edit


def _prepare(records, conn: sa.Connection, obj: str, at: datetime, batch: list[dict],
             errors: list[dict[str, list[str]]]) -> None:
    """Give each new record its process and, when open, its stage and probability (see the module docstring)."""
    candidates = processes(records.metadata, obj)
    by_name = {p.name: p for p in candidates}
    owners = {int(r["owner"]) for r in batch if r.get("owner") is not None and not r.get("sales_process")}
    paths: dict[str, list[str]] = {}
    if owners and "user" in records.schema.objects:
        ut = records.schema["user"]
        departments = dict(conn.execute(sa.select(ut.table.c.id, ut.column("department"))
                                        .where(ut.table.c.id.in_(sorted(owners)))).all())
        by_department = {d: department_path(conn, records.schema, d) for d in set(departments.values()) if d}
        paths = {str(u): by_department.get(d, []) for u, d in departments.items()}
    for record, problems in zip(batch, errors, strict=True):
        name = record.get("sales_process")
        if name:
            found = by_name.get(name)
            if found is None:
                problems.setdefault("sales_process", []).append(Message(
                    "stage.no_process", "no sales process {name!r}; one of: {known}", name=name,
                    known=", ".join(by_name) or "none"))
                continue
        else:
            found = pick(candidates, paths.get(str(record.get("owner")), []))
            if found is None:
                continue
            record["sales_process"] = found.name
        status = record.get("status") or OPEN
        if record.get("stage") is not None and found.stage(record["stage"]) is None:
            problems.setdefault("stage", []).append(Message(
                "stage.no_stage", "no stage {stage!r} in {process}; one of: {known}", stage=record["stage"],
                process=found.name, known=", ".join(s.key for s in found.stages)))
            continue
        if status == OPEN:
            stage = found.stage(record.get("stage")) or found.first
            record["stage"] = stage.key
            record["pending_stage"] = None
            if record.get("probability") is None:
                record["probability"] = stage.probability
        elif record.get("closed_at") is None:
            record["closed_at"] = at


def _opened(records, conn: sa.Connection, obj: str, user: str | None, at: datetime, batch: list[dict]) -> None:
    open_stage_rows(records, conn, obj, [r for r in batch if (r.get("status") or OPEN) == OPEN], user, at)


def _guard_edit(ctx: hooks.HookContext) -> None:
    """An edit may not change the process, the status or the stage (the actions do)."""
    for name, message in GUARDED.items():
        if name in ctx.after and ctx.after.get(name) != ctx.before.get(name):
            ctx.errors.setdefault(name, []).append(message)


def derived_sql(platform, obj: str, now: datetime) -> dict[str, sa.ColumnElement]:
    """What a rule condition over a staged object may name besides its fields, as SQL as of `now`: the
    record's process settings (`process.avg_cycle_days`, `process.close_reminder_days`, empty when the
    process sets none; `process.stage_count`), `days_in_stage` (whole days since the current stage was
    entered, from the open stage history row) and `days_to_close` (whole days from today until
    `expected_close_date`, negative once it passed)."""
    ot = platform.schema[obj]
    config: SalesProcessConfig = SALES_PROCESS.config_of(ot.object)
    chosen = ot.column("sales_process")
    defined = processes(platform.metadata, obj)

    def setting(value_of) -> sa.ColumnElement:
        values = {p.name: value_of(p) for p in defined if value_of(p) is not None}
        if not values:
            return sa.cast(sa.null(), sa.Numeric())
        return sa.case({name: sa.literal(Decimal(v), sa.Numeric()) for name, v in values.items()},
                       value=chosen, else_=sa.cast(sa.null(), sa.Numeric()))

    today = sa.literal(now.date(), sa.Date())
    history_table = platform.schema[config.history]
    entered = (sa.select(sa.func.max(history_table.column("entered_at")))
               .where(history_table.column(config.parent_field) == ot.table.c.id,
                      history_table.column("left_at").is_(None))
               .scalar_subquery())
    values = {
        "process.avg_cycle_days": setting(lambda p: p.avg_cycle_days),
        "process.close_reminder_days": setting(lambda p: p.close_reminder_days),
        "process.stage_count": setting(lambda p: len(p.stages)),
        "days_in_stage": days_between(entered, today),
    }
    if "expected_close_date" in ot.columns:
        values["days_to_close"] = days_between(today, ot.column("expected_close_date"))
    return values


HOOKS: dict[str, hooks.Handler] = {
    "before_create": lambda ctx: _prepare(ctx.records, ctx.conn, ctx.object, ctx.now, [ctx.after], [ctx.errors]),
    "before_create_many": lambda ctx: _prepare(ctx.records, ctx.conn, ctx.object, ctx.now, ctx.batch,
                                               ctx.batch_errors),
    "after_create": lambda ctx: _opened(ctx.records, ctx.conn, ctx.object, ctx.user, ctx.now, [ctx.after]),
    "after_create_many": lambda ctx: _opened(ctx.records, ctx.conn, ctx.object, ctx.user, ctx.now, ctx.batch),
    "before_update": _guard_edit,
}


# ------------------------------------------------------------------------------ registration


@dataclass(frozen=True)
class ChoiceParam(actions.Param):
    """A parameter taking one value of a picklist (the lost reason), validated against its options."""

    options: tuple[Option, ...] = ()
    picklist: str | None = None

    def field(self) -> FieldDef:
        return FieldDef(self.name, "picklist", self.label, Source("<action parameter>"), required=self.required,
                        picklist=self.picklist, options=self.options)


def _handler(obj: str, name: str):
    def run(call: actions.ActionCall) -> dict:
        behavior = behavior_of(call.platform, obj)
        record_id, params = call.record["id"], call.params
        if name == "advance":
            return behavior.advance(call.access, record_id)
        if name == "complete_task":
            return behavior.complete_task(call.access, record_id, params["task"])
        if name == "win":
            return behavior.close(call.access, record_id, "win", "won", {"probability": 100}, None)
        if name == "lose":
            return behavior.close(call.access, record_id, "lose", "lost",
                                  {"probability": 0, "lost_reason": params["reason"],
                                   "lost_comment": params["comment"]}, params["comment"])
        return behavior.close(call.access, record_id, "invalidate", "invalid",
                              {"probability": 0, "invalid_comment": params["comment"]}, params["comment"])

    return run


def _open(platform, record: Mapping[str, Any]) -> bool:
    """The process's actions apply to an open opportunity not waiting for a stage approval."""
    return record.get("status") == OPEN and not record.get("pending_stage")


def staged_actions(metadata: Metadata) -> list[actions.Action]:
    found = []
    for obj, _ in SALES_PROCESS.configured(metadata):
        reason = obj.fields["lost_reason"]
        comment = actions.Param("comment", "long_text", Label("说明", "Comment"), required=True)
        specs = {
            "advance": (Label("推进到下一阶段", "Advance"), ()),
            "complete_task": (Label("完成任务", "Complete a task"),
                              (actions.Param("task", "text", Label("任务", "Task"), required=True),)),
            "win": (Label("赢单", "Win"), ()),
            "lose": (Label("输单", "Lose"), (ChoiceParam("reason", "picklist", reason.label, True,
                                                        options=reason.options, picklist=reason.picklist),
                                            comment)),
            "invalidate": (Label("标记无效", "Mark invalid"), (comment,)),
        }
        for name, (label, params) in specs.items():
            found.append(actions.Action(obj.name, name, label, _handler(obj.name, name), params,
                                        bulk=name != "complete_task", applies=_open))
    return found


SALES_PROCESS = Behavior(BEHAVIOR, SCHEMA, SalesProcessConfig, _needs, staged_actions, HOOKS, derived=derived_sql,
                         panels=("pages/_stages.html",))


def register(registry) -> None:
    registry.behavior(SALES_PROCESS)
    registry.settle(approvals.STAGE, _approval_ended)
