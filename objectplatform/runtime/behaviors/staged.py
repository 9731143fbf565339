"""The `sales_process` behavior: opportunities move through the stages of a sales process (销售流程).

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/staged.py".)"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, Label, Metadata, ObjectDef, Option, Source

from .. import actions, approvals, lifecycles
from ..errors import (
    Conflict,
    Message,
    NotFound,
    RuntimeFailure,
    ValidationFailed,
    bulk_result,
    no_record,
    said_list,
    said_name,
)
from ..expressions_sql import days_between
from ..records import history, history_sql, hooks
from ..records.bulk import insert_many
from ..records.service import parse_record_id
from ..sales_processes import Process, Stage, department_path, pick, process, processes
from ..storage.convert import JSON_TYPES, field_type, from_row, to_row
from ..storage.id_sets import among, positions
from .registry import Behavior, FieldNeed, Key, Need, child

BEHAVIOR = "sales_process"
VERBS = {"advance": "advanced", "complete_task": "changed", "win": "won", "lose": "lost",
         "invalidate": "marked invalid", "approve_stage": "moved", "reject_stage": "changed",
         "withdraw_stage": "changed"}
PROCESS_FIXED = Message("stage.process_fixed", "is chosen when the record is created")
STATUS_BY_ACTIONS = Message("stage.status_by_actions", "changes through the win, lose and invalidate actions")
STAGE_BY_ADVANCE = Message("stage.stage_by_advance", "changes through the advance action")


@dataclass(frozen=True)
class RecordFields:
    """`fields:` of the configuration: the staged record's fields the behavior reads and writes
    (`expected_close_date`, optional, gives rule conditions `days_to_close` when the object has it)."""

    sales_process: str = "sales_process"
    stage: str = "stage"
    pending_stage: str = "pending_stage"
    probability: str = "probability"
    closed_at: str = "closed_at"
    lost_reason: str = "lost_reason"
    lost_comment: str = "lost_comment"
    invalid_comment: str = "invalid_comment"
    expected_close_date: str = "expected_close_date"


@dataclass(frozen=True)
class HistoryFields:
    """`history_fields:`: the fields of a stage history row (one per stage entered)."""

    sales_process: str = "sales_process"
    stage: str = "stage"
    entered_at: str = "entered_at"
    left_at: str = "left_at"
    left_to: str = "left_to"  # the next stage, or the status the record closed as
    moved_by: str = "moved_by"
    comment: str = "comment"


@dataclass(frozen=True)
class TaskFields:
    """`task_fields:`: the fields of a completed task row."""

    sales_process: str = "sales_process"
    stage: str = "stage"
    task: str = "task"
    completed_at: str = "completed_at"
    completed_by: str = "completed_by"


STATUS_KEYS = ("open_status", "won_status", "lost_status", "invalid_status")
GROUPS = {"fields": RecordFields, "history_fields": HistoryFields, "task_fields": TaskFields}


@dataclass(frozen=True)
class SalesProcessConfig:
    """`behaviors: sales_process:` of one object: its child objects of stage history rows and of completed
    tasks and their field pointing at the record, the status field and its four statuses, and the fields of
    the record and of its children (each group a mapping in YAML, typed here)."""

    history: str
    tasks: str
    parent_field: str
    status_field: str = "status"
    open_status: str = "open"
    won_status: str = "won"
    lost_status: str = "lost"
    invalid_status: str = "invalid"
    fields: RecordFields = RecordFields()
    history_fields: HistoryFields = HistoryFields()
    task_fields: TaskFields = TaskFields()

    def __post_init__(self) -> None:
        for key, group in GROUPS.items():
            if isinstance(getattr(self, key), Mapping):
                object.__setattr__(self, key, group(**getattr(self, key)))

    @property
    def closed_statuses(self) -> tuple[str, str, str]:
        """The statuses of a closed record (refused by every action)."""
        return self.won_status, self.lost_status, self.invalid_status

    @property
    def statuses(self) -> tuple[str, ...]:
        """The statuses the actions write, open first."""
        return self.open_status, *self.closed_statuses


def _names(group: type) -> dict[str, Any]:
    """The JSON Schema of a group of names: each key of the dataclass `group`, its default the default."""
    return {f.name: {"type": "string", "minLength": 1, **({} if f.default is MISSING else {"default": f.default})}
            for f in dataclass_fields(group)}


SCHEMA = {
    "type": "object",
    "properties": {
        **{k: v for k, v in _names(SalesProcessConfig).items() if k not in GROUPS},
        **{key: {"type": "object", "properties": _names(group), "additionalProperties": False}
           for key, group in GROUPS.items()},
    },
    "required": ["history", "tasks", "parent_field"],
    "additionalProperties": False,
}
TEXT, REASON = ("text",), ("text", "long_text")
FIELD_TYPES = {"sales_process": TEXT, "stage": TEXT, "pending_stage": TEXT, "probability": ("percent", "number"),
               "closed_at": ("datetime",), "lost_reason": ("picklist",), "lost_comment": REASON,
               "invalid_comment": REASON, "expected_close_date": ("date",)}
HISTORY_TYPES = {"sales_process": TEXT, "stage": TEXT, "entered_at": ("datetime",), "left_at": ("datetime",),
                 "left_to": TEXT, "moved_by": ("user",), "comment": REASON}
TASK_TYPES = {"sales_process": TEXT, "stage": TEXT, "task": TEXT, "completed_at": ("datetime",),
              "completed_by": ("user",)}


def _needs(obj: ObjectDef, config: SalesProcessConfig) -> Iterator[Need]:
    written = obj.behaviors[BEHAVIOR]

    def place(group: str, key: str, default: Key | None) -> Key | None:  # a name written is shown there
        return (group, key) if key in (written.get(group) or {}) else default

    for key, types in FIELD_TYPES.items():
        if key != "expected_close_date" or key in (written.get("fields") or {}):  # optional unless named
            yield FieldNeed(getattr(config.fields, key), types, place("fields", key, None))
    statuses = dict(zip(STATUS_KEYS, config.statuses, strict=True))  # a status written is shown there
    yield FieldNeed(config.status_field, ("picklist",), "status_field" if "status_field" in written else None,
                    options=tuple(value for key, value in statuses.items() if key not in written))
    status = obj.fields.get(config.status_field)
    if status is not None and status.type == "picklist":
        for key in (k for k in STATUS_KEYS if k in written):
            yield FieldNeed(config.status_field, ("picklist",), key, options=(statuses[key],))
    yield from child(config.history, "history", config.parent_field, obj.name, ())
    for key, types in HISTORY_TYPES.items():
        yield FieldNeed(getattr(config.history_fields, key), types, place("history_fields", key, "history"),
                        config.history)
    yield from child(config.tasks, "tasks", config.parent_field, obj.name, ())
    for key, types in TASK_TYPES.items():
        yield FieldNeed(getattr(config.task_fields, key), types, place("task_fields", key, "tasks"), config.tasks)


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def said_stage(stage: Stage | None, key: str | None = None) -> str:
    """A stage as messages name it: by its label (its key in the API's params); an unknown key as it is."""
    return said_name(stage.key, stage.label) if stage else repr(key)


def said_process(found: Process) -> str:
    return said_name(found.name, found.label)


class StagedBehavior:
    """The sales_process behavior of one object."""

    def __init__(self, platform, obj: str):
        self.platform = platform
        self.records = platform.records
        self.obj = obj
        self.ot = platform.schema[obj]
        self.table = self.ot.table
        self.config: SalesProcessConfig = SALES_PROCESS.config_of(platform.metadata.objects[obj])
        self.fields = self.config.fields
        self.definition = platform.metadata.objects[obj]

    # ---------------------------------------------------------------------------------- reads

    def col(self, name: str) -> sa.Column:
        return self.ot.column(name)

    def read(self, conn: sa.Connection, record_id: Any) -> dict:
        return self.records.get(self.obj, record_id, conn=conn)

    def process_of(self, record: Mapping[str, Any]) -> Process:
        found = process(self.platform.metadata, record.get(self.fields.sales_process), self.obj)
        if found is None:
            raise Conflict(Message("stage.unknown_process", "{object} {id} follows the sales process {process!r}, "
                                   "which is not defined", object=lifecycles.said_object(self.definition),
                                   id=record["id"], process=record.get(self.fields.sales_process)))
        return found

    def stage_of(self, record: Mapping[str, Any], found: Process) -> Stage:
        stage = found.stage(record.get(self.fields.stage))
        if stage is None:
            raise Conflict(Message("stage.unknown_stage", "{object} {id} is in stage {stage!r}, which {process} "
                                   "does not have", object=lifecycles.said_object(self.definition), id=record["id"],
                                   stage=record.get(self.fields.stage), process=said_process(found)))
        return stage

    def state(self, record: Mapping[str, Any]) -> Message:
        status = record.get(self.config.status_field)
        if status != self.config.open_status:
            return Message("pool.state", "{object} {id} is {status}", object=lifecycles.said_object(self.definition),
                           id=record["id"], status=lifecycles.said_option(
                               self.definition.fields[self.config.status_field], status))
        f = self.fields
        found = process(self.platform.metadata, record.get(f.sales_process), self.obj)
        stage = found.stage(record.get(f.stage)) if found else None
        title = said_stage(stage, record.get(f.stage))
        if record.get(f.pending_stage):
            pending = found.stage(record[f.pending_stage]) if found else None
            return Message("stage.state_pending", "{object} {id} is in stage {stage}, waiting for approval to enter "
                           "{pending}", object=lifecycles.said_object(self.definition), id=record["id"], stage=title,
                           pending=said_stage(pending, record[f.pending_stage]))
        return Message("stage.state", "{object} {id} is in stage {stage}",
                       object=lifecycles.said_object(self.definition), id=record["id"], stage=title)

    def refuse(self, record: Mapping[str, Any], action: str) -> Conflict:
        return Conflict(Message("pool.cannot", "{state}: it cannot be {verb}", state=self.state(record),
                                verb=VERBS[action]))

    def require_open(self, record: Mapping[str, Any], action: str) -> None:
        if not self.is_open(record):
            raise self.refuse(record, action)

    def is_open(self, record: Mapping[str, Any]) -> bool:
        return record.get(self.config.status_field) == self.config.open_status

    def done_tasks(self, record: Mapping[str, Any], stage: str) -> dict[str, dict]:
        """The completed tasks of `stage` ({task key: row}) among the record's inline task rows."""
        tf = self.config.task_fields
        return {t[tf.task]: t for t in record.get(self.config.tasks, ()) if t[tf.stage] == stage
                and t[tf.sales_process] == record.get(self.fields.sales_process)}

    def missing(self, record: Mapping[str, Any], stage: Stage) -> dict[str, list[str]]:
        """What keeps the record in `stage`: {"tasks": [one message per required task not done],
        field: [message]} for each required field left empty."""
        done = self.done_tasks(record, stage.key)
        problems: dict[str, list[str]] = {}
        tasks = [Message("stage.task_not_done", "{task} is not done", task=said_name(t.key, t.label),
                         label=t.label.zh)
                 for t in stage.tasks if t.required and t.key not in done]
        if tasks:
            problems["tasks"] = tasks
        for name in stage.required_fields:
            if _blank(record.get(name)):
                problems[name] = [Message("stage.required_to_leave", "is required to leave stage {stage}",
                                          stage=said_stage(stage), label=stage.label.zh)]
        return problems

    def check_done(self, record: Mapping[str, Any], stage: Stage) -> None:
        problems = self.missing(record, stage)
        if problems:
            count = sum(len(m) for m in problems.values())
            raise ValidationFailed(problems, Message("stage.not_finished", "stage {stage} is not finished: {count} "
                                                     "missing", stage=said_stage(stage), count=count))

    # ---------------------------------------------------------------------------------- writes

    def write(self, conn: sa.Connection, action: str, current: dict, values: dict, user: str | None,
              at: datetime, where: Iterable[sa.ColumnElement[bool]], note: Any = None) -> dict:
        """The one conditional UPDATE (`where` repeats the state decided on) with the stored formulas
        recomputed, its audit history (change = `action`; `note` the new value of an entry without a
        field when no field changed), rollups and the after_update hooks."""
        merged = {**current, **values}
        self.records.formulas[self.obj].on_write(merged, at.astimezone(self.platform.settings.zone))
        stored = {n: merged[n] for n in self.records.formulas[self.obj].stored if merged[n] != current.get(n)}
        values = {**values, **stored}
        stmt = (sa.update(self.table)
                .where(self.table.c.id == int(current["id"]), *where)
                .values({**to_row(self.ot, {**values, "updated_by": user, "updated_at": at}),
                         "version": self.table.c.version + 1}))
        if conn.execute(stmt).rowcount == 0:
            latest = conn.execute(sa.select(self.table).where(self.table.c.id == int(current["id"]))).mappings().first()
            if latest is None:
                raise NotFound(no_record(self.definition, current["id"]))
            raise self.refuse(from_row(self.ot, latest), action)
        fields = self.platform.metadata.objects[self.obj].fields
        after = self.read(conn, current["id"])
        logged = [k for k, v in values.items() if current.get(k) != v and fields[k].type not in ("formula", "rollup")]
        entries = [history.entry(self.obj, int(current["id"]), action, name, current.get(name), after.get(name), user,
                                 at) for name in logged]  # the values as the record holds them (100.00, not 100)
        history.write(conn, self.platform.schema.history, entries or [
            history.entry(self.obj, int(current["id"]), action, None, None, note, user, at)])
        self.records.rollups.after_change(conn, self.obj, [(current, after)], at)
        self.platform.registry.run_hooks("after_update", self.ot.object,
                  hooks.HookContext(self.records, conn, self.obj, user, at, before=dict(current), after=after))
        return after

    def where_unchanged(self, current: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
        """The state an action decided on: open, in the stage read, with the pending stage read."""
        f = self.fields
        pending = current.get(f.pending_stage)
        return [self.col(self.config.status_field) == self.config.open_status, self.col(f.stage) == current[f.stage],
                self.col(f.pending_stage).is_(None) if pending is None else self.col(f.pending_stage) == pending]

    def leave_stage(self, conn: sa.Connection, record_ids: list[int], left_to: str, user: str | None, at: datetime,
                    comment: str | None = None) -> None:
        """Close the open stage_history rows of the records: left now, to `left_to` (with the closing comment), in
        one UPDATE, their history in one INSERT."""
        history_object, h = self.config.history, self.config.history_fields
        hot = self.platform.schema[history_object]
        rows = sa.and_(among(hot.column(self.config.parent_field), record_ids), hot.column(h.left_at).is_(None))
        values = {h.left_at: at, h.left_to: left_to, **({h.comment: comment} if comment else {})}
        with self.records.rollups.summaries.moving(conn, history_object, rows, values):
            history_sql.write_set(conn, self.platform.schema.history, history_object, hot.table, rows, {
                name: (hot.column(name), field_type(hot, name), value) for name, value in values.items()},
                "update", user, at)
            conn.execute(sa.update(hot.table).where(rows).values(
                {**to_row(hot, {**values, "updated_by": user, "updated_at": at}),
                 "version": hot.table.c.version + 1}))

    # -------------------------------------------------------------------------------- actions

    def next_of(self, current: Mapping[str, Any]) -> Stage:
        """The stage the record advances to; refused when it is closed, waits for a stage approval, is in its
        process's last stage or has not finished its own."""
        self.require_open(current, "advance")
        if current.get(self.fields.pending_stage):
            raise self.refuse(current, "advance")
        found = self.process_of(current)
        stage = self.stage_of(current, found)
        following = found.after(stage.key)
        if following is None:
            raise Conflict(Message("stage.last_stage", "{state}, the last stage of {process}: win it instead of "
                                   "advancing", state=self.state(current), process=said_process(found)))
        self.check_done(current, stage)
        return following

    def advance(self, access, record_id: Any) -> dict:
        user = access.user_id
        with self.records.transaction() as conn:
            current = self.read(conn, record_id)
            following = self.next_of(current)
            found = self.process_of(current)
            at = self.platform.clock.now()
            if following.approval:
                record = self.write(conn, "advance", current, {self.fields.pending_stage: following.key}, user, at,
                                    self.where_unchanged(current))
                approval_id = approvals.approvals(self.platform).start_stage(
                    conn, self.obj, record, found.name, following, user, at)
                return {"record": self.read(conn, record_id), "pending_stage": following.key,
                        "approval": dict(following.approval), "approval_id": str(approval_id)}
            record = self.enter(conn, "advance", current, following, user, at)
            return {"record": record, "stage": following.key}

    def advance_many(self, access, ids: list[str]) -> dict | None:
        """Advance many records with the outcome of `advance` run on each in turn: the records read and locked in
        one query within the caller's scope (their tasks in another), each checked as `advance` checks it (if
        refused, reported by id with why); those entering a stage without approval moved set-based, per stage they
        leave (`update_all`, their stage history rows left in one UPDATE and opened in one INSERT); those whose next
        stage needs an approval then advanced one by one (`advance`: each starts its own approval). None when a
        hook must see each record written or a check only the write makes refuses the batch as a whole: the caller
        runs them one by one."""
        user, f = access.user_id, self.fields
        scope = access.scope(self.obj, self.table)
        moved_to = {f.stage: "", f.probability: 0, f.pending_stage: None}
        if not self.records.writes_alike(self.obj, moved_to, checked=False):
            return None
        stages = [stage for found in processes(self.platform.metadata, self.obj) for stage in found.stages]
        checked = self.checked(stages)
        refused: dict[str, RuntimeFailure] = {}
        approving: list[str] = []
        try:
            with self.records.transaction() as conn:
                found = self.records.read_many(conn, self.obj, ids, where=scope, lock=True,
                                               fields=None if checked is None else [*checked, "owner"])
                self.add_tasks(conn, found, stages)
                leaving: dict[tuple, tuple[Stage, list[dict]]] = {}
                for one in ids:
                    try:
                        record = found.get(one)
                        if record is None:
                            raise NotFound(no_record(self.definition, one))
                        following = self.next_of(record)
                    except RuntimeFailure as e:
                        refused[one] = e
                        continue
                    if following.approval:
                        approving.append(one)
                    else:
                        leaving.setdefault((record[f.sales_process], record[f.stage]), (following, []))[1].append(
                            record)
                at = self.platform.clock.now()
                for (process_name, stage), (following, group) in leaving.items():
                    values = {f.stage: following.key, f.probability: following.probability, f.pending_stage: None}
                    guard = sa.and_(self.col(self.config.status_field) == self.config.open_status,
                                    self.col(f.sales_process) == process_name, self.col(f.stage) == stage,
                                    self.col(f.pending_stage).is_(None), *([] if scope is None else [scope]))
                    moved, failed = self.records.update_all(
                        self.obj, [int(r["id"]) for r in group], values, conn=conn, user=user, where=guard,
                        change="advance", fields=values)
                    refused.update(failed)
                    self.leave_stage(conn, moved, following.key, user, at)
                    entered = set(moved)
                    open_stage_rows(self.records, conn, self.obj, [
                        {**r, f.stage: following.key} for r in group if int(r["id"]) in entered], user, at)
        except RuntimeFailure:
            return None
        for one in approving:  # each starts its own approval
            try:
                self.advance(access, one)
            except RuntimeFailure as e:
                refused[one] = e
        return bulk_result(ids, refused)

    def enter(self, conn: sa.Connection, action: str, current: dict, stage: Stage, user: str | None,
              at: datetime) -> dict:
        """Move the record from its stage into `stage`: probability, history rows closed and opened."""
        f = self.fields
        record = self.write(conn, action, current,
                            {f.stage: stage.key, f.probability: stage.probability, f.pending_stage: None},
                            user, at, self.where_unchanged(current))
        self.leave_stage(conn, [int(current["id"])], stage.key, user, at)
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
                keys = (said_list([said_name(t.key, t.label) for t in stage.tasks]) if stage.tasks
                        else Message("stage.no_tasks", "none"))
                raise ValidationFailed({"task": [Message("stage.unknown_task", "stage {stage} has no task {task!r}; "
                                                         "its tasks: {tasks}", stage=said_stage(stage), task=key,
                                                         tasks=keys)]})
            done = self.done_tasks(current, stage.key).get(key)
            if done is None:
                at = self.platform.clock.now()
                # the conditional write locks the record: a concurrent completion of the same task waits here
                self.write(conn, "complete_task", current, {}, user, at, self.where_unchanged(current),
                           note={"stage": stage.key, "task": key})
                done = self.done_tasks(self.read(conn, record_id), stage.key).get(key)
                if done is None:
                    tf = self.config.task_fields
                    insert_rows(self.records, conn, self.config.tasks, [{
                        self.config.parent_field: str(current["id"]), tf.sales_process: found.name,
                        tf.stage: stage.key, tf.task: key, tf.completed_at: at, tf.completed_by: user,
                        "owner": current.get("owner")}], user, at)
                    record = self.read(conn, record_id)
                    return {"record": record, "task": self.task_json(self.done_tasks(record, stage.key)[key]),
                            "already_completed": False}
            return {"record": self.read(conn, record_id), "task": self.task_json(done), "already_completed": True}

    def task_json(self, row: Mapping[str, Any]) -> dict:
        """A completed task row as the complete_task action answers it."""
        tf = self.config.task_fields
        return {"stage": row[tf.stage], "task": row[tf.task], "completed_at": row[tf.completed_at],
                "completed_by": row[tf.completed_by]}

    def closing(self, action: str, params: Mapping[str, Any]) -> tuple[str, dict, str | None]:
        """What win, lose or invalidate (`action`, with its `params`) writes: the status, the values beside it (the
        record's pending stage cleared and its closing time added by the caller) and the stage history's comment."""
        c, f = self.config, self.fields
        if action == "win":
            return c.won_status, {f.probability: 100}, None
        if action == "lose":
            return c.lost_status, {f.probability: 0, f.lost_reason: params["reason"],
                                   f.lost_comment: params["comment"]}, params["comment"]
        return c.invalid_status, {f.probability: 0, f.invalid_comment: params["comment"]}, params["comment"]

    def check_close(self, current: Mapping[str, Any], action: str) -> None:
        """Refuse to close a record that is not open, or (a win) not in its process's last stage, finished."""
        self.require_open(current, action)
        found = self.process_of(current)
        stage = self.stage_of(current, found)
        if action == "win":
            if stage.key != found.last.key:
                raise Conflict(Message("stage.win_from_last", "{state}: it can be won only from the last stage "
                                       "{stage}", state=self.state(current), stage=said_stage(found.last)))
            self.check_done(current, stage)

    def close(self, access, record_id: Any, action: str, params: Mapping[str, Any]) -> dict:
        """Win, lose or invalidate: the record is closed, its open stage history row left to its status."""
        user = access.user_id
        status, values, comment = self.closing(action, params)
        with self.records.transaction() as conn:
            current = self.read(conn, record_id)
            self.check_close(current, action)
            at = self.platform.clock.now()
            f = self.fields
            record = self.write(conn, action, current,
                                {**values, self.config.status_field: status, f.pending_stage: None, f.closed_at: at},
                                user, at, self.where_unchanged(current))
            self.leave_stage(conn, [int(record_id)], status, user, at, comment)
            if current.get(f.pending_stage):
                # closed while a stage approval waited: that approval ends, withdrawn
                approvals.approvals(self.platform).close_pending(conn, self.obj, record_id, approvals.WITHDRAWN, user)
            return {"record": self.read(conn, record["id"])}

    def close_many(self, access, ids: list[str], action: str, params: Mapping[str, Any]) -> dict | None:
        """Win, lose or invalidate many records set-based, with the outcome of `close` run on each in turn: the
        records that pass `close`'s checks chosen by one SQL condition (open, in scope, `in_a_stage`, or for a win
        `finished_last`; on PostgreSQL the batch locked first, as `close` locks its record), one `update_all` of the
        closing values (the stored formulas computed by the database, the history in one INSERT), their open stage
        history rows left in one UPDATE, and the stage approvals some waited for withdrawn; only the refused records
        (few, usually) are read back, each refused with what `close` says of it. None when a hook must see each
        record written, a win's checks read a field not stored, or a check only the write makes refuses the batch
        as a whole: the caller runs them one by one."""
        user, f, t = access.user_id, self.fields, self.table
        status, values, comment = self.closing(action, params)
        at = self.platform.clock.now()
        values = {**values, self.config.status_field: status, f.pending_stage: None, f.closed_at: at}
        last = [found.last for found in processes(self.platform.metadata, self.obj)] if action == "win" else []
        fields = self.checked(last)
        if not self.records.writes_alike(self.obj, values, checked=False) or fields is None:
            return None
        scope = access.scope(self.obj, self.table)
        guard = self.col(self.config.status_field) == self.config.open_status
        guard = guard if scope is None else sa.and_(guard, scope)
        numbers = {one: n for one in ids if (n := parse_record_id(one)) is not None and str(n) == one}  # as read
        wanted = sorted(set(numbers.values()))
        refused: dict[str, RuntimeFailure] = {}
        try:
            with self.records.transaction() as conn:
                if conn.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already serializes the writers
                    conn.execute(sa.select(sa.func.count()).select_from(
                        sa.select(t.c.id).where(among(t.c.id, wanted), *([] if scope is None else [scope]))
                        .order_by(t.c.id).with_for_update().subquery()))
                batch = positions(conn.dialect.name, wanted)
                passes = sa.and_(guard, self.finished_last() if action == "win" else self.in_a_stage())
                failing = {str(i) for i in conn.execute(
                    sa.select(batch.c.id).select_from(batch.outerjoin(t, t.c.id == batch.c.id))
                    .where(sa.case((passes, 0), else_=1) == 1)).scalars()}
                found = self.records.read_many(conn, self.obj, failing, where=scope, fields=fields)
                if action == "win":
                    self.add_tasks(conn, found, last)
                for one in ids:
                    if one in failing or one not in numbers:
                        refused[one] = self.refusal(found.get(one), one, action)
                ready = [numbers[one] for one in ids if one not in refused]
                waiting = set(conn.execute(sa.select(t.c.id).where(among(t.c.id, ready),
                                                                    self.col(f.pending_stage).is_not(None))).scalars())
                moved, failed = self.records.update_all(self.obj, ready, values, conn=conn, user=user, where=guard,
                                                        change=action, fields=values)
                refused.update(failed)
                self.leave_stage(conn, moved, status, user, at, comment)
                engine, closed = approvals.approvals(self.platform), set(moved) & waiting
                for record_id in ready:  # closed while a stage approval waited (few do): it ends, withdrawn
                    if record_id in closed:
                        engine.close_pending(conn, self.obj, str(record_id), approvals.WITHDRAWN, user)
        except RuntimeFailure:
            return None
        return bulk_result(ids, refused)

    def refusal(self, record: Mapping[str, Any] | None, record_id: str, action: str) -> RuntimeFailure:
        """Why `close` refuses the record (None: not found in the caller's scope) that a set-based close did not
        choose."""
        if record is None:
            return NotFound(no_record(self.definition, record_id))
        try:
            self.check_close(record, action)
        except RuntimeFailure as e:
            return e
        return self.refuse(record, action)

    def in_a_stage(self) -> sa.ColumnElement[bool]:
        """The records in a stage of a defined process (what `process_of` and `stage_of` ask), as SQL."""
        f = self.fields
        return sa.or_(sa.false(), *(sa.and_(self.col(f.sales_process) == found.name,
                                            self.col(f.stage).in_([stage.key for stage in found.stages]))
                                    for found in processes(self.platform.metadata, self.obj)))

    def finished_last(self) -> sa.ColumnElement[bool]:
        """The records a win's checks pass besides being open, as SQL: in their process's last stage, its required
        tasks done (a task row of the process and stage) and its required fields filled (`filled`)."""
        f, tf, parent = self.fields, self.config.task_fields, self.config.parent_field
        tot = self.platform.schema[self.config.tasks]

        def done(found: Process, task: str) -> sa.ColumnElement[bool]:
            return sa.exists().where(tot.column(parent) == self.table.c.id, tot.column(tf.task) == task,
                                     tot.column(tf.stage) == found.last.key,
                                     tot.column(tf.sales_process) == found.name)

        return sa.or_(sa.false(), *(sa.and_(
            self.col(f.sales_process) == found.name, self.col(f.stage) == found.last.key,
            *(done(found, task.key) for task in found.last.tasks if task.required),
            *(self.filled(name) for name in found.last.required_fields),
        ) for found in processes(self.platform.metadata, self.obj)))

    def filled(self, name: str) -> sa.ColumnElement[bool]:
        """The stored field `name` not blank as `_blank` tells it, as SQL: each of its columns set, a text not empty
        and a list (stored as JSON text) not empty."""
        columns = [self.table.c[c] for c in self.ot.columns[name]]
        if len(columns) > 1 or not isinstance(columns[0].type, sa.String):
            return sa.and_(*(c.is_not(None) for c in columns))
        empty = ["", "[]"] if field_type(self.ot, name) in JSON_TYPES else [""]
        return sa.and_(columns[0].is_not(None), columns[0].not_in(empty))

    def checked(self, stages: Iterable[Stage]) -> list[str] | None:
        """The fields the checks of an action read of a record in one of `stages` (its tasks apart): its status,
        process, stage and pending stage and the fields those stages require; None when one is not stored (then
        the whole record is read)."""
        names = [self.config.status_field, self.fields.sales_process, self.fields.stage, self.fields.pending_stage,
                 *(name for stage in stages for name in stage.required_fields)]
        return names if all(name in self.ot.columns for name in names) else None

    def add_tasks(self, conn: sa.Connection, found: Mapping[str, dict], stages: Iterable[Stage]) -> None:
        """Give each record read its completed task rows of `stages` (as `done_tasks` reads them), in one query."""
        tot, tf, parent = self.platform.schema[self.config.tasks], self.config.task_fields, self.config.parent_field
        for record in found.values():
            record[self.config.tasks] = []
        rows = conn.execute(sa.select(tot.column(parent), tot.column(tf.sales_process), tot.column(tf.stage),
                                      tot.column(tf.task)).where(among(tot.column(parent), list(found)),
                                                                 tot.column(tf.stage).in_({s.key for s in stages})))
        # (unordered: ordered by id, PostgreSQL walks the id index testing each row against the whole id list)
        for record_id, process_name, stage, task in rows:
            found[str(record_id)][self.config.tasks].append(
                {tf.sales_process: process_name, tf.stage: stage, tf.task: task})

    def decide_pending(self, conn: sa.Connection, user: str | None, record_id: Any, approved: bool,
                       action: str | None = None) -> dict:
        """The approval of the pending stage decided (in the approval engine's transaction `conn`): approved, the
        record enters it; rejected (or withdrawn, `action` withdraw_stage), it stays."""
        action = action or ("approve_stage" if approved else "reject_stage")
        current = self.read(conn, record_id)
        stage = self.pending_of(current, action)
        at = self.platform.clock.now()
        if approved:
            return {"record": self.enter(conn, action, current, stage, user, at)}
        return {"record": self.write(conn, action, current, {self.fields.pending_stage: None}, user, at,
                                     self.where_unchanged(current))}

    def pending_of(self, current: Mapping[str, Any], action: str) -> Stage:
        """The stage the open record waits to enter; refused when it waits for none (or one its process lacks)."""
        self.require_open(current, action)
        if not current.get(self.fields.pending_stage):
            raise Conflict(Message("stage.nothing_pending", "{state}, with no stage awaiting approval",
                                   state=self.state(current)))
        found = self.process_of(current)
        stage = found.stage(current[self.fields.pending_stage])
        if stage is None:
            raise Conflict(Message("stage.pending_unknown", "{state}, which {process} does not have",
                                   state=self.state(current), process=said_process(found)))
        return stage

    def keep_stages(self, conn: sa.Connection, user: str | None, record_ids: list[int], action: str) -> None:
        """The stage approvals of the records refused or withdrawn together (`action`): each stays in its stage, as
        `decide_pending` leaves it, set-based (`update_all`: one UPDATE, the history in one INSERT) when no hook
        needs each record written, else one after another."""
        values = {self.fields.pending_stage: None}
        if not self.records.writes_alike(self.obj, values, checked=False):
            for record_id in record_ids:
                self.decide_pending(conn, user, record_id, False, action)
            return
        f = self.fields
        found = self.records.read_many(conn, self.obj, record_ids, lock=True, fields=[
            self.config.status_field, f.sales_process, f.stage, f.pending_stage])
        for record_id in record_ids:
            current = found.get(str(record_id))
            if current is None:
                raise NotFound(no_record(self.definition, record_id))
            self.pending_of(current, action)
        guard = sa.and_(self.col(self.config.status_field) == self.config.open_status,
                        self.col(f.pending_stage).is_not(None))
        _, refused = self.records.update_all(self.obj, [int(i) for i in record_ids], values, conn=conn, user=user,
                                             where=guard, change=action)
        if refused:
            raise next(iter(refused.values()))


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


def _approval_ended(platform, conn: sa.Connection, obj: str, user: str | None, record_ids: list[int],
                    status: str) -> None:
    """Stage approvals ended in the approval engine: each record enters its pending stage (approved) or they stay
    in theirs (rejected, or withdrawn: together)."""
    behavior = behavior_of(platform, obj)
    if status == approvals.APPROVED:
        for record_id in record_ids:
            behavior.decide_pending(conn, user, record_id, True)
        return
    behavior.keep_stages(conn, user, record_ids, "withdraw_stage" if status == approvals.WITHDRAWN else "reject_stage")


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
    records.rollups.summaries.after_change(conn, obj, [(None, r) for r in full])
    return [str(i) for i in ids]


def open_stage_rows(records, conn: sa.Connection, obj: str, opened: list[Mapping[str, Any]], user: str | None,
                    at: datetime) -> None:
    """A stage history row entering each record's current stage, owned like the record."""
    config: SalesProcessConfig = SALES_PROCESS.config_of(records.metadata.objects[obj])
    f, h = config.fields, config.history_fields
    insert_rows(records, conn, config.history, [
        {config.parent_field: str(o["id"]), h.sales_process: o[f.sales_process], h.stage: o[f.stage],
         h.entered_at: at, h.moved_by: user, "owner": o.get("owner")} for o in opened if o.get(f.stage)], user, at)


def replace_stage_history(records, conn: sa.Connection, obj: str, record_id: Any, rows: list[Mapping[str, Any]],
                          user: str | None, at: datetime) -> None:
    """Replace a record's stage history by a known past (for loading deals with their history, e.g. the
    demo): `rows` give the stage, entered_at, left_at, left_to and moved_by fields of the history object (as the
    behavior's `history_fields` name them); process and owner are the record's."""
    config: SalesProcessConfig = SALES_PROCESS.config_of(records.metadata.objects[obj])
    hot = records.schema[config.history]
    found = records.read_many(conn, obj, [record_id], fields=(config.fields.sales_process, "owner"))
    record = found.get(str(record_id))
    if record is None:
        raise NotFound(no_record(records.metadata.objects[obj], record_id))
    mine = hot.column(config.parent_field) == int(record_id)
    with records.rollups.summaries.moving(conn, config.history, mine, hot.object.fields):
        conn.execute(sa.delete(hot.table).where(mine))
    insert_rows(records, conn, config.history, [
        {**row, config.parent_field: str(record_id),
         config.history_fields.sales_process: record[config.fields.sales_process], "owner": record["owner"]}
        for row in rows], user, at)


def complete_tasks(records, conn: sa.Connection, obj: str, rows: list[Mapping[str, Any]], user: str | None,
                   at: datetime) -> None:
    """Insert completed-task rows of `obj`'s records (for loading deals with their past, e.g. the demo): each
    row gives its record under the behavior's `parent_field`, the process, stage, task, completed_at and
    completed_by fields (as its `task_fields` name them) and owner."""
    insert_rows(records, conn, SALES_PROCESS.config_of(records.metadata.objects[obj]).tasks, list(rows), user, at)


# ------------------------------------------------------------------------------- on create / edit


def _prepare(records, conn: sa.Connection, obj: str, at: datetime, batch: list[dict],
             errors: list[dict[str, list[str]]]) -> None:
    """Give each new record its process and, when open, its stage and probability (see the module docstring)."""
    config: SalesProcessConfig = SALES_PROCESS.config_of(records.metadata.objects[obj])
    f = config.fields
    candidates = processes(records.metadata, obj)
    by_name = {p.name: p for p in candidates}
    owners = {int(r["owner"]) for r in batch if r.get("owner") is not None and not r.get(f.sales_process)}
    paths: dict[str, list[str]] = {}
    if owners and "user" in records.schema.objects:
        ut = records.schema["user"]
        departments = dict(conn.execute(sa.select(ut.table.c.id, ut.column("department"))
                                        .where(ut.table.c.id.in_(sorted(owners)))).all())
        by_department = {d: department_path(conn, records.schema, d) for d in set(departments.values()) if d}
        paths = {str(u): by_department.get(d, []) for u, d in departments.items()}
    for record, problems in zip(batch, errors, strict=True):
        name = record.get(f.sales_process)
        if name:
            found = by_name.get(name)
            if found is None:
                problems.setdefault(f.sales_process, []).append(Message(
                    "stage.no_process", "no sales process {name!r}; one of: {known}", name=name,
                    known=", ".join(by_name) or "none"))
                continue
        else:
            found = pick(candidates, paths.get(str(record.get("owner")), []))
            if found is None:
                continue
            record[f.sales_process] = found.name
        if record.get(f.stage) is not None and found.stage(record[f.stage]) is None:
            problems.setdefault(f.stage, []).append(Message(
                "stage.no_stage", "no stage {stage!r} in {process}; one of: {known}", stage=record[f.stage],
                process=said_process(found), known=", ".join(s.key for s in found.stages)))
            continue
        if _created_open(config, record):
            stage = found.stage(record.get(f.stage)) or found.first
            record[f.stage] = stage.key
            record[f.pending_stage] = None
            if record.get(f.probability) is None:
                record[f.probability] = stage.probability
        elif record.get(f.closed_at) is None:
            record[f.closed_at] = at


def _created_open(config: SalesProcessConfig, record: Mapping[str, Any]) -> bool:
    """Whether a new record is open (a record created without a status is)."""
    return (record.get(config.status_field) or config.open_status) == config.open_status


def _opened(records, conn: sa.Connection, obj: str, user: str | None, at: datetime, batch: list[dict]) -> None:
    config: SalesProcessConfig = SALES_PROCESS.config_of(records.metadata.objects[obj])
    open_stage_rows(records, conn, obj, [r for r in batch if _created_open(config, r)], user, at)


def _guard_edit(ctx: hooks.HookContext) -> None:
    """An edit may not change the process, the status or the stage (the actions do)."""
    config: SalesProcessConfig = SALES_PROCESS.config_of(ctx.records.metadata.objects[ctx.object])
    guarded = {config.fields.sales_process: PROCESS_FIXED, config.status_field: STATUS_BY_ACTIONS,
               config.fields.stage: STAGE_BY_ADVANCE}
    for name, message in guarded.items():
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
    chosen = ot.column(config.fields.sales_process)
    defined = processes(platform.metadata, obj)

    def setting(value_of) -> sa.ColumnElement:
        values = {p.name: value_of(p) for p in defined if value_of(p) is not None}
        if not values:
            return sa.cast(sa.null(), sa.Numeric())
        return sa.case({name: sa.literal(Decimal(v), sa.Numeric()) for name, v in values.items()},
                       value=chosen, else_=sa.cast(sa.null(), sa.Numeric()))

    today = sa.literal(now.date(), sa.Date())
    history_table, h = platform.schema[config.history], config.history_fields
    entered = (sa.select(sa.func.max(history_table.column(h.entered_at)))
               .where(history_table.column(config.parent_field) == ot.table.c.id,
                      history_table.column(h.left_at).is_(None))
               .scalar_subquery())
    values = {
        "process.avg_cycle_days": setting(lambda p: p.avg_cycle_days),
        "process.close_reminder_days": setting(lambda p: p.close_reminder_days),
        "process.stage_count": setting(lambda p: len(p.stages)),
        "days_in_stage": days_between(entered, today),
    }
    if config.fields.expected_close_date in ot.columns:
        values["days_to_close"] = days_between(today, ot.column(config.fields.expected_close_date))
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
        return behavior.close(call.access, record_id, name, params)

    return run


def _many(obj: str, name: str):
    """A bulk advance, win, lose or invalidate set-based (`StagedBehavior.advance_many`, `close_many`: as the action
    on one record after another)."""
    if name == "advance":
        return lambda platform, access, _obj, ids, params: behavior_of(platform, obj).advance_many(access, ids)
    return lambda platform, access, _obj, ids, params: behavior_of(platform, obj).close_many(access, ids, name, params)


def _movable(obj: str):
    def movable(platform, record: Mapping[str, Any]) -> bool:
        """The process's actions apply to an open record not waiting for a stage approval."""
        behavior = behavior_of(platform, obj)
        return behavior.is_open(record) and not record.get(behavior.fields.pending_stage)

    return movable


def staged_actions(metadata: Metadata) -> list[actions.Action]:
    found = []
    for obj, config in SALES_PROCESS.configured(metadata):
        reason = obj.fields[config.fields.lost_reason]
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
                                        bulk=name != "complete_task", applies=_movable(obj.name),
                                        run_many=_many(obj.name, name) if name != "complete_task" else None))
    return found


SALES_PROCESS = Behavior(BEHAVIOR, SCHEMA, SalesProcessConfig, _needs, staged_actions, HOOKS, derived=derived_sql,
                         panels=("pages/_stages.html",))


def register(registry) -> None:
    registry.behavior(SALES_PROCESS)
    registry.settle(approvals.STAGE, _approval_ended)
