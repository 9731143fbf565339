"""The approval engine: approval flows (`kind: approval_flow`) and sales-process stage approvals.

(How it works: docs/engine.md, "objectplatform/runtime/approvals.py".)"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import ApprovalFlow, Label, Metadata, ObjectDef, plain
from objectplatform.metadata.expressions import Expression, parse

from . import actions, lifecycles, rules
from .errors import (
    Conflict,
    Forbidden,
    Locked,
    Message,
    NotFound,
    RuntimeFailure,
    ValidationFailed,
    bulk_result,
    no_record,
    said_label,
    said_name,
    said_object,
)
from .permissions import access_for
from .records import hooks
from .storage import convert
from .storage.engine import reading
from .storage.id_sets import among
from .workqueue import TEXT, title_sql, work_queue

PENDING, APPROVED, REJECTED, WITHDRAWN = "pending", "approved", "rejected", "withdrawn"
FLOW, STAGE = "flow", "stage"
SUBMIT, WITHDRAW = "submit", "withdraw"
# how messages say an approval's end or a decision (`approval 3 … is already approved`), by label with its code
ENDINGS = {APPROVED: Label("已通过", "approved"), REJECTED: Label("已驳回", "rejected"),
           WITHDRAWN: Label("已撤回", "withdrawn"), "decided": Label("已审批", "decided")}
AN_APPROVAL = Message("approval.noun", "approval")  # what `no_record` names: no object's records
NO_SUFFIX = Label("", "")  # the outcome messages of a decision without a comment

# settles the records when approvals of a kind end alike: (platform, conn, object, user, record ids, status)
Settle = Callable[[Any, sa.Connection, str, str | None, list[int], str], Any]


def _pair(value: Any) -> dict:
    """A stored label as {"zh", "en"}, each falling back to the other."""
    label = Label.of(value)
    return {"zh": label.zh, "en": label.en}


def _stamp(at: datetime) -> datetime:
    return convert.to_db("datetime", at)


def _iso(value: Any) -> str | None:
    return None if value is None else convert.from_db("datetime", value).isoformat()


def _number(value: Any) -> int:
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound(no_record(AN_APPROVAL, value))
    return int(text)


def flows_of(metadata: Metadata, obj: str) -> list[ApprovalFlow]:
    """The approval flows of `obj`, in metadata order."""
    return [d for d in metadata.flows.values() if d.kind == "approval_flow" and d.object == obj]


def flows_started_by(metadata: Metadata, obj: str, action: str) -> list[ApprovalFlow]:
    """The flows an action starts: those naming it; `submit` also starts manual flows and those that start
    on create or on a field change (a resubmission after a rejection or a withdrawal)."""
    found = []
    for flow in flows_of(metadata, obj):
        if flow.trigger.on == "action":
            if flow.trigger.action == action:
                found.append(flow)
        elif action == SUBMIT:
            found.append(flow)
    return found


def _unnamed(approval: dict, me: str) -> None:
    """An approval as a caller who may not read users sees it (a partner): no one but themselves by id or name, as
    the pages show them a dash."""
    people = [(approval, "submitter", "submitter_name"), (approval, "ended_by", None),
              *((a, "user", "name") for step in approval["steps"] for a in step["approvers"])]
    for holder, id_key, name_key in people:
        if holder[id_key] != me:
            holder[id_key] = None
            if name_key:
                holder[name_key] = None


class Approvals:
    """Start, decide, withdraw and read the approvals of one platform's records."""

    def __init__(self, platform):
        self.platform = platform
        self.records = platform.records
        self.table = platform.schema.approvals
        self.steps = platform.schema.approval_steps
        self.work = work_queue(platform)
        users = platform.schema["user"]
        self.users, self.user_table = users, users.table
        self.active = sa.or_(users.column("active").is_(None), users.column("active").is_(True))

    def _said(self, obj: str, *, lower: bool = False) -> str:
        """`obj` as a message names it: by its label (in lower case within an English sentence)."""
        return said_object(self.platform.metadata.objects[obj], lower=lower)

    # ------------------------------------------------------------------------------ reading

    def _row(self, conn: sa.Connection, approval_id: Any) -> Mapping[str, Any]:
        row = conn.execute(sa.select(self.table).where(self.table.c.id == _number(approval_id))).mappings().first()
        if row is None:
            raise NotFound(no_record(AN_APPROVAL, approval_id))
        return row

    def pending_row(self, conn: sa.Connection, obj: str, record_id: Any) -> Mapping[str, Any] | None:
        t = self.table
        return conn.execute(sa.select(t).where(t.c.object == obj, t.c.record_id == int(record_id),
                                               t.c.status == PENDING)).mappings().first()

    def _visible(self, conn: sa.Connection, access, row: Mapping[str, Any]) -> bool:
        """The caller may read the record, or submitted or decides the approval."""
        me = int(access.user_id)
        if row["submitter"] == me:
            return True
        steps = self.steps
        if conn.execute(sa.select(steps.c.id).where(steps.c.approval_id == row["id"],
                                                    steps.c.approver == me)).first():
            return True
        ot = self.platform.schema[row["object"]]
        scope = access.scope(row["object"], ot.table)
        stmt = sa.select(ot.table.c.id).where(ot.table.c.id == row["record_id"])
        return conn.execute(stmt if scope is None else stmt.where(scope)).first() is not None

    def get(self, access, approval_id: Any) -> dict:
        """One approval as JSON; 404 when there is none or the caller may not see it."""
        with self.platform.engine.connect() as conn:
            row = self._row(conn, approval_id)
            if not self._visible(conn, access, row):
                raise NotFound(no_record(AN_APPROVAL, approval_id))
            return self._json(conn, [row], access)[0]

    def for_record(self, access, obj: str, record_id: Any) -> list[dict]:
        """The record's approvals, newest first; 404 when the record is not in the caller's scope."""
        if obj not in self.platform.schema.objects:
            raise NotFound(Message("object.unknown", "unknown object {object}", object=obj))
        record = self.records.get(obj, record_id, where=access.scope(obj, self.platform.schema[obj].table))
        t = self.table
        with self.platform.engine.connect() as conn:
            rows = list(conn.execute(sa.select(t).where(t.c.object == obj, t.c.record_id == int(record["id"]))
                                     .order_by(t.c.id.desc())).mappings())
            return self._json(conn, rows, access)

    def pending_for_record(self, obj: str, record_id: Any) -> dict | None:
        """The record's waiting approval as JSON (without the caller's rights), or None."""
        with self.platform.engine.connect() as conn:
            row = self.pending_row(conn, obj, record_id)
            return None if row is None else self._json(conn, [row], None)[0]

    @staticmethod
    def can_decide(access, approval: Mapping[str, Any]) -> bool:
        """The caller is an undecided approver of the step waiting."""
        if approval["status"] != PENDING:
            return False
        current = next((s for s in approval["steps"] if s["status"] == PENDING), None)
        return current is not None and any(a["user"] == str(access.user_id) and a["decision"] is None
                                           for a in current["approvers"])

    @staticmethod
    def can_withdraw(access, approval: Mapping[str, Any]) -> bool:
        return approval["status"] == PENDING and (approval["submitter"] == str(access.user_id) or access.is_admin)

    def _json(self, conn: sa.Connection, rows: list[Mapping[str, Any]], access) -> list[dict]:
        """Approvals with their steps, approvers (by name), decisions and comments, in one query each."""
        if not rows:
            return []
        steps = self.steps
        decided = list(conn.execute(sa.select(steps).where(steps.c.approval_id.in_([r["id"] for r in rows]))
                                    .order_by(steps.c.approval_id, steps.c.step, steps.c.id)).mappings())
        people = {r["submitter"] for r in rows} | {r["ended_by"] for r in rows} | {d["approver"] for d in decided}
        names = self._names(conn, people)
        by_step: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
        for d in decided:
            by_step.setdefault((d["approval_id"], d["step"]), []).append(d)
        found = []
        for row in rows:
            definition = json.loads(row["definition"])
            steps_json = []
            for index, step in enumerate(definition["steps"]):
                approvers = by_step.get((row["id"], index), [])
                steps_json.append({
                    "name": step["name"], "label": _pair(step["label"]),
                    "mode": step.get("mode", "any"), "status": _step_status(row, index, approvers),
                    "approvers": [{"user": str(a["approver"]), "name": names.get(a["approver"]),
                                   "decision": a["decision"], "comment": a["comment"],
                                   "decided_at": _iso(a["decided_at"])} for a in approvers]})
            item = {
                "id": str(row["id"]), "object": row["object"], "record_id": str(row["record_id"]),
                "kind": row["kind"], "flow": row["flow"], "label": _pair(definition["label"]),
                "title": {"zh": row["title_zh"], "en": row["title_en"]}, "status": row["status"],
                "submitter": None if row["submitter"] is None else str(row["submitter"]),
                "submitter_name": names.get(row["submitter"]), "comment": row["comment"],
                "started_at": _iso(row["started_at"]), "ended_at": _iso(row["ended_at"]),
                "ended_by": None if row["ended_by"] is None else str(row["ended_by"]),
                "end_comment": row["end_comment"],
                "current_step": definition["steps"][row["step"]]["name"] if row["status"] == PENDING else None,
                "stage": definition.get("stage"), "steps": steps_json}
            item["can_decide"] = access is not None and self.can_decide(access, item)
            item["can_withdraw"] = access is not None and self.can_withdraw(access, item)
            if access is not None and not access.can("user", "read"):
                _unnamed(item, str(access.user_id))
            found.append(item)
        return found

    def _names(self, conn: sa.Connection, ids: Iterable[Any]) -> dict[int, str]:
        wanted = sorted({int(i) for i in ids if i is not None})
        if not wanted:
            return {}
        ut = self.user_table
        return {i: name or username for i, name, username in conn.execute(
            sa.select(ut.c.id, self.users.column("display_name"), self.users.column("username"))
            .where(ut.c.id.in_(wanted)))}

    # ------------------------------------------------------------------------------ starting

    def submit(self, access, obj: str, record_id: Any, comment: str | None = None, action: str = SUBMIT) -> dict:
        """Start the first of the flows `action` starts whose entry condition holds."""
        flows = flows_started_by(self.platform.metadata, obj, action)
        with self.records.transaction() as conn:
            record = self.records.get(obj, record_id, conn=conn)
            approval_id = self.start(conn, obj, record, flows, access.user_id, self.platform.clock.now(), comment)
            return {"record": self.records.get(obj, record_id, conn=conn),
                    "approval": self._json(conn, [self._row(conn, approval_id)], access)[0]}

    def submit_many(self, access, obj: str, ids: list[str], comment: str | None = None,
                    action: str = SUBMIT) -> dict | None:
        """Submit many records set-based, with the outcome of `submit` run on each in turn: the records read and
        locked in one query within the caller's scope and their waiting approvals in another, each checked as
        `submit` checks it (a state `action` starts from, nothing waiting, a flow that applies, approvers for its
        first step; if refused, reported by id with why); then the approvals inserted in one statement, their
        flows' on_submit actions run on all their records at once (per set of equal actions), their approvers,
        rows and to-dos written in one statement each. None when an approval would be granted at once (no step
        applies) or a check only the write makes refuses the batch: the caller runs the records one by one."""
        definition, ot = self.platform.metadata.objects[obj], self.platform.schema[obj]
        scope, me, at = access.scope(obj, ot.table), access.user_id, self.platform.clock.now()
        flows = flows_started_by(self.platform.metadata, obj, action)
        label = actions.actions_service(self.platform).get(obj, action).label
        refused: dict[str, RuntimeFailure] = {}
        started = []
        try:
            with self.records.transaction() as conn:
                found = self.records.read_many(conn, obj, ids, where=scope, lock=True)
                pending = self._waiting(conn, obj, list(found))
                now = self.platform.local_now()
                for one in ids:
                    try:
                        record = found.get(one)
                        if record is None:
                            raise NotFound(no_record(definition, one))
                        if lifecycles.governs(definition, action):
                            lifecycles.refuse(access, definition, action, record, now, label)
                        if one in pending:
                            raise self._already_pending(obj, one, pending[one])
                        flow = self.flow_for(obj, record, flows, at)
                        document = plain(flow.document)
                        index = self.step_from(document, 0, record, at)
                        if index is None:
                            return None
                        step = document["steps"][index]
                        approvers = self.resolve(conn, {"object": obj, "submitter": int(me)}, document, step, record)
                    except RuntimeFailure as e:
                        refused[one] = e
                    else:
                        started.append((record, flow, document, index, approvers))
                if started:
                    self._started_many(conn, obj, started, me, at, comment)
        except RuntimeFailure:
            return None
        return bulk_result(ids, refused)

    def _waiting(self, conn: sa.Connection, obj: str, record_ids: list[str], lock: bool = False) -> dict[str, Any]:
        """The pending approvals of `obj`'s records `record_ids`, by record id (locked in id order when asked)."""
        t = self.table
        stmt = sa.select(t).where(t.c.object == obj, among(t.c.record_id, record_ids), t.c.status == PENDING)
        if lock:
            stmt = stmt.order_by(t.c.id).with_for_update()
        return {str(row["record_id"]): row for row in conn.execute(stmt).mappings()}

    def _started_many(self, conn: sa.Connection, obj: str, started: list[tuple], me: str, at: datetime,
                      comment: str | None) -> None:
        """The approvals of `started` ((record, flow, its definition, first step, its approvers) each) begun by
        `me`, set-based, as `_create` and `_enter_step` begin each."""
        ot, t = self.platform.schema[obj], self.table
        zh, en = (title_sql(self.platform, obj, "{" + ot.object.title_field + "}", lang) for lang in ("zh", "en"))
        titles = {str(i): (z, e) for i, z, e in conn.execute(sa.select(ot.table.c.id, zh, en).where(
            among(ot.table.c.id, [record["id"] for record, *_ in started])))}
        rows = []
        for record, flow, document, _, _ in started:
            label, (title_zh, title_en) = Label.of(document["label"]), titles[str(record["id"])]
            rows.append({"object": obj, "record_id": int(record["id"]), "kind": FLOW, "flow": flow.name,
                         "definition": json.dumps(document, ensure_ascii=False),
                         "title_zh": f"{label.zh} {title_zh or record['id']}",
                         "title_en": f"{label.en} {title_en or record['id']}", "status": PENDING,
                         "step": 0, "step_started_at": _stamp(at), "submitter": int(me), "comment": comment or None,
                         "started_at": _stamp(at)})
        try:
            approval_ids = conn.execute(t.insert().returning(t.c.id, sort_by_parameter_order=True),
                                        rows).scalars().all()
        except sa.exc.IntegrityError:  # a concurrent submit of one of the records won: each is tried on its own
            raise Conflict(Message("approval.already_waiting", "{object} {id} is already waiting for approval",
                                   object=self._said(obj), id=started[0][0]["id"])) from None
        approvals = [{**row, "id": approval_id} for row, approval_id in zip(rows, approval_ids, strict=True)]
        outcomes: dict[str, dict[int, int]] = {}
        for approval, (_, _, document, _, _) in zip(approvals, started, strict=True):
            outcomes.setdefault(json.dumps(document.get("on_submit", [])), {})[approval["id"]] = approval["record_id"]
        for outcome, ended in outcomes.items():
            if json.loads(outcome):
                _EndedRun(self.platform, conn, obj, ended, "submitted", me, at).perform(json.loads(outcome))
        conn.execute(self.steps.insert(), [
            {"approval_id": approval["id"], "step": index, "name": document["steps"][index]["name"], "approver": user}
            for approval, (_, _, document, index, approvers) in zip(approvals, started, strict=True)
            for user in approvers])
        alike: dict[str, list[int]] = {}
        for approval, (_, _, document, index, _) in zip(approvals, started, strict=True):
            alike.setdefault(json.dumps([index, document["steps"][index].get("remind_after_hours")]), []).append(
                approval["id"])
        for key, group in alike.items():
            index, hours = json.loads(key)
            conn.execute(sa.update(t).where(among(t.c.id, group)).values(
                _entered({"remind_after_hours": hours}, index, at)))
        conn.execute(self.work.todos.insert(), [
            {"user_id": user, "role": None, "kind": "approval", "title_zh": title.zh, "title_en": title.en,
             "object": obj, "record_id": approval["record_id"], "action": "approve", "approval_id": approval["id"],
             "dedupe_key": _step_key(approval["id"], index), "created_at": _stamp(at)}
            for approval, (_, _, document, index, approvers) in zip(approvals, started, strict=True)
            for title in [_approve(approval, document["steps"][index])] for user in approvers])

    def start(self, conn: sa.Connection, obj: str, record: Mapping[str, Any], flows: list[ApprovalFlow],
              submitter: Any, at: datetime, comment: str | None = None, *, required: bool = True) -> int | None:
        """Start the first flow whose entry condition holds on `record`; its id. None holding: 422 when
        `required` (a submit), else nothing (a create or a field change no flow cares about)."""
        self._refuse_pending(conn, obj, record)
        flow = self.flow_for(obj, record, flows, at, required)
        if flow is None:
            return None
        definition = plain(flow.document)
        return self._create(conn, obj, record, FLOW, flow.name, definition, submitter, at, comment)

    def flow_for(self, obj: str, record: Mapping[str, Any], flows: list[ApprovalFlow], at: datetime,
                 required: bool = True) -> ApprovalFlow | None:
        """The first of `flows` whose entry condition holds on `record` at `at`; none holding: 422 when `required`
        (a submit), else None."""
        local = at.astimezone(self.platform.settings.zone)  # conditions count the site's days
        flow = next((f for f in flows if _holds(f.condition, record, local)), None)
        if flow is None:
            if not required:
                return None
            if not flows:
                raise ValidationFailed({"__all__": [Message("approval.no_flow", "{object} has no approval flow to "
                                                            "submit to", object=self._said(obj))]})
            why = [f"{f.name}: {f.condition.text}" for f in flows]
            raise ValidationFailed({"__all__": [Message(
                "approval.no_flow_applies", "no approval flow of {object} applies to {object} {id}; their entry "
                "conditions: {conditions}", object=self._said(obj, lower=True), id=record["id"],
                conditions="; ".join(why))]},
                Message("approval.no_flow_for_record", "no approval flow of {object} applies",
                        object=self._said(obj, lower=True)))
        return flow

    def start_stage(self, conn: sa.Connection, obj: str, record: Mapping[str, Any], process: str, stage,
                    submitter: Any, at: datetime) -> int:
        """A one-step approval (mode any, the stage's approver spec) for entering `stage`."""
        self._refuse_pending(conn, obj, record)
        step_label = {"zh": f"进入阶段 {stage.label.zh}", "en": f"Enter the stage {stage.label.en}"}
        definition = {"label": {"zh": f"阶段审批：{stage.label.zh}", "en": f"Stage approval: {stage.label.en}"},
                      "stage": stage.key,
                      "steps": [{"name": stage.key, "label": step_label, "approvers": [plain(stage.approval)],
                                 "mode": "any"}]}
        named = self._record_title(conn, obj, record["id"])
        title = Label(f"{named.zh} 进入阶段 {stage.label.zh}", f"{named.en} entering the stage {stage.label.en}")
        return self._create(conn, obj, record, STAGE, process, definition, submitter, at, None, title)

    def _refuse_pending(self, conn: sa.Connection, obj: str, record: Mapping[str, Any]) -> None:
        pending = self.pending_row(conn, obj, record["id"])
        if pending is not None:
            raise self._already_pending(obj, record["id"], pending)

    def _already_pending(self, obj: str, record_id: Any, pending: Mapping[str, Any]) -> Conflict:
        return Conflict(Message("approval.already_pending", "{object} {id} is already waiting for approval "
                                "{approval} ({title})", object=self._said(obj), id=record_id,
                                approval=pending["id"], title=said_title(pending)))

    def _create(self, conn: sa.Connection, obj: str, record: Mapping[str, Any], kind: str, flow: str,
                definition: dict, submitter: Any, at: datetime, comment: str | None, title: Label | None = None) -> int:
        """Begin an approval of `record`; its title is `title`, else its label and the record's title
        (`订单审批 SO-2026-001`)."""
        if title is None:
            label, named = Label.of(definition["label"]), self._record_title(conn, obj, record["id"])
            title = Label(f"{label.zh} {named.zh}", f"{label.en} {named.en}")
        row = {"object": obj, "record_id": int(record["id"]), "kind": kind, "flow": flow,
               "definition": json.dumps(definition, ensure_ascii=False),
               "title_zh": title.zh, "title_en": title.en, "status": PENDING,
               "step": 0, "step_started_at": _stamp(at), "submitter": None if submitter is None else int(submitter),
               "comment": comment or None, "started_at": _stamp(at)}
        try:
            approval_id = conn.execute(self.table.insert().values(row)).inserted_primary_key[0]
        except sa.exc.IntegrityError:  # a concurrent submit of the same record won
            raise Conflict(Message("approval.already_waiting", "{object} {id} is already waiting for approval",
                                   object=self._said(obj), id=record["id"])) from None
        approval = {**row, "id": approval_id}
        self._perform(conn, approval, definition.get("on_submit", []), "submitted", submitter, at)
        if self._enter_step(conn, approval, definition, 0, record, at) is None:
            self._finish(conn, approval, definition, APPROVED, submitter, None, at)
        return approval_id

    def _record_title(self, conn: sa.Connection, obj: str, record_id: Any) -> Label:
        ot = self.platform.schema[obj]
        text = "{" + ot.object.title_field + "}"
        zh, en = (title_sql(self.platform, obj, text, lang) for lang in ("zh", "en"))
        found = conn.execute(sa.select(zh, en).where(ot.table.c.id == int(record_id))).first()
        return Label(found[0] or str(record_id), found[1] or str(record_id))

    def _enter_step(self, conn: sa.Connection, approval: Mapping[str, Any], definition: dict, index: int,
                    record: Mapping[str, Any], at: datetime) -> int | None:
        """Start the first step from `index` whose condition holds: its approvers and their to-dos; its
        index, or None when no step is left (the approval is granted)."""
        index = self.step_from(definition, index, record, at)
        if index is None:
            return None
        step = definition["steps"][index]
        approvers = self.resolve(conn, approval, definition, step, record)
        conn.execute(self.steps.insert(), [{"approval_id": approval["id"], "step": index, "name": step["name"],
                                            "approver": user} for user in approvers])
        conn.execute(sa.update(self.table).where(self.table.c.id == approval["id"]).values(
            _entered(step, index, at)))
        self.work.add_todo(conn, users=approvers, kind="approval", title=_approve(approval, step),
                           object=approval["object"], record_id=approval["record_id"], action="approve",
                           key=_step_key(approval["id"], index), approval_id=approval["id"], now=at)
        return index

    def step_from(self, definition: dict, index: int, record: Mapping[str, Any], at: datetime) -> int | None:
        """The first step from `index` whose condition holds on `record` at `at`; None when none is left."""
        steps = definition["steps"]
        local = at.astimezone(self.platform.settings.zone)
        while index < len(steps) and not _holds(_condition(steps[index]), record, local):
            index += 1
        return None if index == len(steps) else index

    def resolve(self, conn: sa.Connection, approval: Mapping[str, Any], definition: dict, step: Mapping[str, Any],
                record: Mapping[str, Any]) -> list[int]:
        """The active users a step's approver specs name; 422 naming why when there is none."""
        found: set[int] = set()
        reasons = []
        for spec in step["approvers"]:
            ids, reason = self._approvers(conn, approval, spec, record)
            found |= ids
            if not ids:
                reasons.append(reason)
        if not found:
            label, flow = Label.of(step["label"]), Label.of(definition["label"])
            message = Message("approval.no_approver", "step {step} of {flow} has no approver: {reasons}",
                              step=said_name(step["name"], label), flow=said_label(flow.zh, flow.en),
                              reasons="; ".join(reasons))
            raise ValidationFailed({"approvers": [message]}, message)
        return sorted(found)

    def _approvers(self, conn: sa.Connection, approval: Mapping[str, Any], spec: Mapping[str, Any],
                   record: Mapping[str, Any]) -> tuple[set[int], str]:
        users, ut = self.users, self.user_table

        def active(condition: sa.ColumnElement[bool]) -> set[int]:
            return set(conn.execute(sa.select(ut.c.id).where(condition, self.active)).scalars())

        if "role" in spec:
            holders = active(users.column("roles").like(f'%"{spec["role"]}"%'))
            role = self.platform.metadata.roles.get(spec["role"])
            return holders, f"no active user holds the role {role.label.en if role else spec['role']}"
        if "users" in spec:
            numbers = [int(u) for u in spec["users"] if str(u).isdigit()]
            return (active(sa.or_(users.column("username").in_(list(spec["users"])), ut.c.id.in_(numbers))),
                    f"none of the users {', '.join(spec['users'])} is active")
        if "field" in spec:
            value = record.get(spec["field"])
            ids = [int(v) for v in (value if isinstance(value, list) else [value]) if v is not None]
            field = self.platform.metadata.objects[approval["object"]].fields[spec["field"]]
            return active(ut.c.id.in_(ids)), f"the field {field.label.en} names no active user"
        if "manager_of" in spec:
            who = spec["manager_of"]
            person = approval["submitter"] if who == "submitter" else record.get("owner")
            if person is None:
                return set(), f"the {who} is not a user"
            manager = conn.execute(sa.select(users.column("manager")).where(ut.c.id == int(person))).scalar()
            name = self._names(conn, [person]).get(int(person))
            return ((active(ut.c.id == manager) if manager is not None else set()),
                    f"the {who} {name} has no active manager")
        department = self._department_of(conn, approval["object"], record)
        departments = self.platform.schema["department"]
        manager = None if department is None else conn.execute(
            sa.select(departments.column("manager")).where(departments.table.c.id == int(department))).scalar()
        return ((active(ut.c.id == manager) if manager is not None else set()),
                "the record's department has no active manager" if department is not None
                else "the record has no department (nor has its owner)")

    def _department_of(self, conn: sa.Connection, obj: str, record: Mapping[str, Any]) -> Any:
        """The record's department field (the first one), else its owner's department."""
        named = next((f.name for f in self.platform.metadata.objects[obj].fields.values()
                      if f.type == "department"), None)
        if named is not None and record.get(named) is not None:
            return record[named]
        if record.get("owner") is None:
            return None
        return conn.execute(sa.select(self.users.column("department"))
                            .where(self.user_table.c.id == int(record["owner"]))).scalar()

    # ------------------------------------------------------------------------------ deciding

    def decide(self, access, approval_id: Any, approved: bool, comment: str | None = None) -> dict:
        """Approve or reject the waiting step as one of its approvers (see the module docstring)."""
        comment = (comment or "").strip() or None
        me = int(access.user_id)
        with self.records.transaction() as conn:
            row = self._row(conn, approval_id)
            mine = list(conn.execute(sa.select(self.steps).where(
                self.steps.c.approval_id == row["id"], self.steps.c.approver == me)).mappings())
            definition = json.loads(row["definition"])
            self._check_decider(conn, access, row, definition, mine)
            if not approved and comment is None:
                needs = Message("approval.rejection_needs_comment", "a rejection needs a comment")
                raise ValidationFailed({"comment": [needs]}, needs)
            at = self.platform.clock.now()
            t = self.table
            claimed = conn.execute(sa.update(t).where(t.c.id == row["id"], t.c.status == PENDING,
                                                      t.c.step == row["step"]).values(step=t.c.step)).rowcount
            if claimed == 0:
                raise self._moved_on(conn, row, definition)
            decision = APPROVED if approved else REJECTED
            s = self.steps
            wrote = conn.execute(sa.update(s).where(
                s.c.approval_id == row["id"], s.c.step == row["step"], s.c.approver == me, s.c.decision.is_(None))
                .values(decision=decision, comment=comment, decided_at=_stamp(at))).rowcount
            if wrote == 0:
                raise Conflict(_already(definition, row, row["step"], "decided"))
            step = definition["steps"][row["step"]]
            waiting = conn.execute(sa.select(sa.func.count()).select_from(s).where(
                s.c.approval_id == row["id"], s.c.step == row["step"], s.c.decision.is_(None))).scalar_one()
            key = _step_key(row["id"], row["step"])
            if approved and step.get("mode", "any") == "all" and waiting:
                self.work.close_todos(conn, key_prefix=key, where=self.work.todos.c.user_id == me, now=at, by=me)
            else:
                self.work.close_todos(conn, key_prefix=key, now=at, by=me)
                self._step_ended(conn, row, definition, approved, me, comment, at)
            return {"record": self.records.get(row["object"], row["record_id"], conn=conn),
                    "approval": self._json(conn, [self._row(conn, row["id"])], access)[0]}

    def _check_decider(self, conn: sa.Connection, access, row: Mapping[str, Any], definition: dict,
                       mine: list[Mapping[str, Any]]) -> None:
        """403 unless the caller is an approver of the approval; 409 when their step is no longer waiting."""
        current = [m for m in mine if m["step"] == row["step"]]
        if not mine:
            s = self.steps
            approvers = conn.execute(sa.select(s.c.approver).where(s.c.approval_id == row["id"],
                                                                   s.c.step == row["step"])).scalars().all()
            names = ", ".join(self._names(conn, approvers).values()) or "none"
            if not self._visible(conn, access, row):
                raise NotFound(no_record(AN_APPROVAL, row["id"]))
            raise Forbidden(Message("approval.not_an_approver", "you are not an approver of approval {id} ({title}); "
                                    "the approvers of its step {step}: {names}", id=row["id"],
                                    title=said_title(row), step=_step_title(definition, row["step"]), names=names))
        if row["status"] != PENDING:
            raise Conflict(_ended(row, row["status"]))
        if current and current[0]["decision"] is not None:
            raise Conflict(_already(definition, row, row["step"], current[0]["decision"]))
        if not current:
            last = mine[-1]
            if last["decision"] is not None:
                raise Conflict(_already(definition, row, last["step"], last["decision"]))
            raise Conflict(_waits_for(definition, row, last["step"], row["step"]))

    def _moved_on(self, conn: sa.Connection, row: Mapping[str, Any], definition: dict) -> Conflict:
        latest = self._row(conn, row["id"])
        if latest["status"] != PENDING:
            return Conflict(_ended(row, latest["status"]))
        return Conflict(_waits_for(definition, row, row["step"], latest["step"]))

    def _step_ended(self, conn: sa.Connection, row: Mapping[str, Any], definition: dict, approved: bool, by: int,
                    comment: str | None, at: datetime) -> None:
        if not approved:
            self._finish(conn, row, definition, REJECTED, by, comment, at)
            return
        record = self.records.get(row["object"], row["record_id"], conn=conn)
        if self._enter_step(conn, row, definition, row["step"] + 1, record, at) is None:
            self._finish(conn, row, definition, APPROVED, by, comment, at)

    def _finish(self, conn: sa.Connection, row: Mapping[str, Any], definition: dict, status: str, by: Any,
                comment: str | None, at: datetime) -> None:
        """End the approval: the stage moved (or left), the flow's outcome actions, the submitter told."""
        t = self.table
        ended = len(definition["steps"]) if status == APPROVED else t.c.step
        conn.execute(sa.update(t).where(t.c.id == row["id"]).values(
            status=status, step=ended, ended_at=_stamp(at), ended_by=None if by is None else int(by),
            remind_at=None))
        user = None if by is None else str(by)
        if settle := self.platform.registry.settlers.get(row["kind"]):
            settle(self.platform, conn, row["object"], user, [row["record_id"]], status)
        outcome = definition.get("on_approve" if status == APPROVED else "on_reject", [])
        told = any(a.get("notify", {}).get("submitter") for a in outcome)
        suffix = Label(f"：{comment}", f": {comment}") if comment else NO_SUFFIX
        self._perform(conn, row, outcome, status, user, at, suffix)
        if not told and row["submitter"] is not None:
            verb = ENDINGS[status]
            self.work.notify(conn, [row["submitter"]],
                             Label(f"{row['title_zh']} {verb.zh}{suffix.zh}",
                                   f"{row['title_en']} {verb.en}{suffix.en}"),
                             object=row["object"], record_id=row["record_id"], key=f"approval:{row['id']}:{status}",
                             now=at)

    def _perform(self, conn: sa.Connection, row: Mapping[str, Any], outcome: list[dict], tag: str, user: Any,
                 at: datetime, suffix: Label = NO_SUFFIX) -> None:
        """A flow's actions (on_submit, on_withdraw, on_approve, on_reject) on the approval's record, run by
        the rules' executor; `tag` keeps their notifications and to-dos apart."""
        if outcome:
            rules.RecordRun(self.platform, conn, row["object"], row["record_id"], f"approval:{row['id']}:{tag}:",
                            row["submitter"], None if user is None else str(user), at, suffix).perform(outcome)

    # ------------------------------------------------------------------------------ withdrawing

    def withdraw(self, access, obj: str, record_id: Any, comment: str | None = None) -> dict:
        """The submitter (or an administrator) takes back the record's waiting approval."""
        with self.records.transaction() as conn:
            row = self.pending_row(conn, obj, record_id)
            if row is None:
                raise Conflict(Message("approval.nothing_to_withdraw", "{object} {id} has no approval waiting to be "
                                       "withdrawn", object=self._said(obj), id=record_id))
            if row["submitter"] != int(access.user_id) and not access.is_admin:
                name = self._names(conn, [row["submitter"]]).get(row["submitter"])
                raise Forbidden(Message("approval.withdraw_refused", "only the submitter {name} or an administrator "
                                        "can withdraw approval {id}", name=name, id=row["id"]))
            at = self.platform.clock.now()
            t = self.table
            changed = conn.execute(sa.update(t).where(t.c.id == row["id"], t.c.status == PENDING).values(
                status=WITHDRAWN, ended_at=_stamp(at), ended_by=int(access.user_id), end_comment=comment or None,
                remind_at=None)).rowcount
            if changed == 0:
                raise self._moved_on(conn, row, json.loads(row["definition"]))
            self.work.close_todos(conn, key_prefix=f"approval:{row['id']}:", now=at, by=access.user_id)
            self._perform(conn, row, json.loads(row["definition"]).get("on_withdraw", []), WITHDRAWN,
                          access.user_id, at)
            if settle := self.platform.registry.settlers.get(row["kind"]):
                settle(self.platform, conn, obj, access.user_id, [row["record_id"]], WITHDRAWN)
            return {"record": self.records.get(obj, record_id, conn=conn),
                    "approval": self._json(conn, [self._row(conn, row["id"])], access)[0]}

    def withdraw_many(self, access, obj: str, ids: list[str], comment: str | None = None) -> dict | None:
        """Withdraw the waiting approvals of many records set-based, with the outcome of `withdraw` run on each in
        turn: the records read and locked in one query within the caller's scope (each in a state the withdraw
        transition starts from, when the lifecycle has one) and their waiting approvals in another, each checked as
        `withdraw` checks it (if refused, reported by id with why); then one UPDATE ends the approvals, one closes
        their to-dos, their flows' on_withdraw actions run on all their records at once (per set of equal actions)
        and their kinds settle the records together. None when a check only the write makes refuses the batch as a
        whole: the caller runs the records one by one."""
        definition, ot = self.platform.metadata.objects[obj], self.platform.schema[obj]
        scope, me, at = access.scope(obj, ot.table), access.user_id, self.platform.clock.now()
        governed = lifecycles.governs(definition, WITHDRAW)
        checked = definition.lifecycle.transitions[WITHDRAW].condition is None if governed else True
        fields = None if not checked else [definition.lifecycle.field] if governed else []
        label = actions.actions_service(self.platform).get(obj, WITHDRAW).label
        refused: dict[str, RuntimeFailure] = {}
        ended: list[Mapping[str, Any]] = []
        try:
            with self.records.transaction() as conn:
                found = self.records.read_many(conn, obj, ids, where=scope, lock=True, fields=fields)
                pending = self._waiting(conn, obj, list(found), lock=True)
                names = self._names(conn, [row["submitter"] for row in pending.values()])
                now = self.platform.local_now()
                for one in ids:
                    try:
                        record = found.get(one)
                        if record is None:
                            raise NotFound(no_record(definition, one))
                        if governed:
                            lifecycles.refuse(access, definition, WITHDRAW, record, now, label)
                        row = pending.get(one)
                        if row is None:
                            raise Conflict(Message("approval.nothing_to_withdraw", "{object} {id} has no approval "
                                                   "waiting to be withdrawn", object=self._said(obj), id=one))
                        if row["submitter"] != int(me) and not access.is_admin:
                            raise Forbidden(Message("approval.withdraw_refused", "only the submitter {name} or an "
                                                    "administrator can withdraw approval {id}",
                                                    name=names.get(row["submitter"]), id=row["id"]))
                    except RuntimeFailure as e:
                        refused[one] = e
                    else:
                        ended.append(row)
                if ended:
                    self._withdrawn(conn, obj, ended, me, at, comment)
        except RuntimeFailure:
            return None
        return bulk_result(ids, refused)

    def _withdrawn(self, conn: sa.Connection, obj: str, rows: list[Mapping[str, Any]], by: str, at: datetime,
                   comment: str | None) -> None:
        """End the waiting approvals `rows` (locked) of `obj`'s records as withdrawn by `by`, set-based: one UPDATE,
        their to-dos closed in one, each set of equal on_withdraw actions run on its records at once, and the
        records settled per kind."""
        t = self.table
        conn.execute(sa.update(t).where(among(t.c.id, [row["id"] for row in rows]), t.c.status == PENDING).values(
            status=WITHDRAWN, ended_at=_stamp(at), ended_by=int(by), end_comment=comment or None, remind_at=None))
        todos = self.work.todos
        self.work.close_todos(conn, where=sa.or_(*(todos.c.dedupe_key.like(f"approval:{row['id']}:%")
                                                   for row in rows)), now=at, by=by)
        outcomes: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            outcomes.setdefault(json.dumps(json.loads(row["definition"]).get("on_withdraw", [])), []).append(row)
        for outcome, alike in outcomes.items():
            if json.loads(outcome):
                _EndedRun(self.platform, conn, obj, {row["id"]: row["record_id"] for row in alike}, WITHDRAWN, by,
                          at).perform(json.loads(outcome))
        kinds: dict[str, list[int]] = {}
        for row in rows:
            kinds.setdefault(row["kind"], []).append(row["record_id"])
        for kind, record_ids in kinds.items():
            if settle := self.platform.registry.settlers.get(kind):
                settle(self.platform, conn, obj, by, record_ids, WITHDRAWN)

    def close_pending(self, conn: sa.Connection, obj: str, record_id: Any, status: str, by: Any) -> None:
        """End the record's waiting approval as `status` without a decision (its stage was settled outside
        the engine, e.g. by the sales_process behavior's approve_stage), closing its to-dos."""
        row = self.pending_row(conn, obj, record_id)
        if row is None:
            return
        at = self.platform.clock.now()
        steps = len(json.loads(row["definition"])["steps"])
        conn.execute(sa.update(self.table).where(self.table.c.id == row["id"]).values(
            status=status, step=steps if status == APPROVED else row["step"], ended_at=_stamp(at),
            ended_by=None if by is None else int(by), remind_at=None))
        self.work.close_todos(conn, key_prefix=f"approval:{row['id']}:", now=at, by=by)


class _EndedRun(rules.RecordRun):
    """A flow's outcome actions on the records of many approvals ended together ({approval id: record id}), as
    `Approvals._perform` runs them on each: its keys name the approval and `tag`, its owner is the submitter."""

    def __init__(self, platform, conn: sa.Connection, obj: str, ended: dict[int, int], tag: str, user: str | None,
                 at: datetime):
        super().__init__(platform, conn, obj, 0, "approval:", None, user, at, NO_SUFFIX)
        self.ended, self.tag, self.approvals = ended, tag, platform.schema.approvals

    def fresh(self) -> sa.ColumnElement[bool]:
        return among(self.table.c.id, list(self.ended.values()))

    def submitter_pairs(self) -> sa.Select:
        t, a = self.table, self.approvals
        return sa.select(t.c.id.label("record_id"), a.c.submitter.label("user_id")).select_from(
            t.join(a, sa.and_(a.c.record_id == t.c.id, among(a.c.id, list(self.ended)))))

    def key_prefix(self) -> sa.ColumnElement:
        a = self.approvals
        approval = sa.select(a.c.id).where(a.c.record_id == self.table.c.id, a.c.object == self.obj,
                                           among(a.c.id, list(self.ended))).scalar_subquery()
        return (sa.literal("approval:", TEXT) + sa.cast(approval, TEXT)
                + sa.literal(f":{self.tag}:", TEXT))


def _entered(step: Mapping[str, Any], index: int, at: datetime) -> dict:
    """What an approval's row holds once step `index` started at `at`."""
    hours = step.get("remind_after_hours")
    return {"step": index, "step_started_at": _stamp(at),
            "remind_at": _stamp(at + timedelta(hours=hours)) if hours else None}


def _approve(approval: Mapping[str, Any], step: Mapping[str, Any]) -> Label:
    """The title of an approver's to-do for `step` of `approval`: a stage approval's title already says its one
    step (`审批：零售条线CRM项目 进入阶段 商务谈判`), a flow's is followed by the step's
    (`审批：订单审批 SO-2026-001（财务审批）`)."""
    if approval["kind"] == STAGE:
        return Label(f"审批：{approval['title_zh']}", f"Approve: {approval['title_en']}")
    label = Label.of(step["label"])
    return Label(f"审批：{approval['title_zh']}（{label.zh}）", f"Approve: {approval['title_en']} ({label.en})")


def _step_key(approval_id: Any, index: int) -> str:
    return f"approval:{approval_id}:step:{index}:"


def said_title(row: Mapping[str, Any]) -> str:
    """An approval by its title (`Order approval SO-2026-001`), in each face's language."""
    return said_label(row["title_zh"], row["title_en"])


def _step_title(definition: dict, index: int) -> str:
    """A step as messages name it: by its label (its name in the API's params)."""
    step = definition["steps"][min(index, len(definition["steps"]) - 1)]
    return said_name(step["name"], Label.of(step["label"]))


def _already(definition: dict, row: Mapping[str, Any], step: int, decision: str) -> Message:
    return Message("approval.already_decided", "you already {decision} step {step} of approval {id}",
                   decision=said_name(decision, ENDINGS[decision]), step=_step_title(definition, step), id=row["id"])


def _ended(row: Mapping[str, Any], status: str) -> Message:
    return Message("approval.already_ended", "approval {id} ({title}) is already {status}", id=row["id"],
                   title=said_title(row), status=said_name(status, ENDINGS[status]))


def _waits_for(definition: dict, row: Mapping[str, Any], step: int, now: int) -> Message:
    return Message("approval.moved_on", "step {step} of approval {id} was already decided; it waits for step {next} "
                   "now", step=_step_title(definition, step), id=row["id"], next=_step_title(definition, now))


def _step_status(row: Mapping[str, Any], index: int, approvers: list[Mapping[str, Any]]) -> str:
    """pending (waiting now), approved, rejected, skipped (its condition was false), waiting (still ahead),
    withdrawn (waiting when the approval was withdrawn), not_reached (after the step that ended it)."""
    if index < row["step"]:
        if not approvers:
            return "skipped"
        return REJECTED if any(a["decision"] == REJECTED for a in approvers) else APPROVED
    if index > row["step"]:
        return "waiting" if row["status"] == PENDING else "not_reached"
    if row["status"] == REJECTED and any(a["decision"] == REJECTED for a in approvers):
        return REJECTED
    return {PENDING: PENDING, WITHDRAWN: WITHDRAWN}.get(row["status"], "not_reached")


def _holds(condition: Expression | None, record: Mapping[str, Any], at: datetime) -> bool:
    return condition is None or bool(condition.evaluate(record, at))


def _condition(step: Mapping[str, Any]) -> Expression | None:
    """The condition of a step of a stored definition (parsed once per process: `parse` keeps each text's)."""
    return parse(step["condition"]) if step.get("condition") else None


def approvals(platform) -> Approvals:
    """The platform's approval engine (built on first use)."""
    if "approvals" not in platform.services:
        platform.services["approvals"] = Approvals(platform)
    return platform.services["approvals"]


def approval_reminders(platform, at: datetime) -> int:
    """Remind the undecided approvers of each step waiting past its remind_after_hours, once; how many
    notifications were written. Set-based: one INSERT ... SELECT, one UPDATE."""
    t, s = platform.schema.approvals, platform.schema.approval_steps
    stamp = _stamp(at)
    due = sa.and_(t.c.status == PENDING, t.c.remind_at <= stamp)
    key = (sa.literal("approval:", TEXT) + sa.cast(t.c.id, TEXT) + sa.literal(":step:", TEXT)
           + sa.cast(t.c.step, TEXT) + sa.literal(":remind", TEXT))
    rows = (sa.select(s.c.approver.label("user_id"),
                      (sa.literal("请尽快审批：", TEXT) + t.c.title_zh).label("title_zh"),
                      (sa.literal("Waiting for your approval: ", TEXT) + t.c.title_en).label("title_en"),
                      t.c.object, t.c.record_id, key.label("dedupe_key"),
                      sa.literal(stamp, sa.DateTime()).label("created_at"))
            .select_from(t.join(s, sa.and_(s.c.approval_id == t.c.id, s.c.step == t.c.step)))
            .where(due, s.c.decision.is_(None)))
    with platform.records.transaction() as conn:
        written = work_queue(platform).notify_from(conn, rows)
        conn.execute(sa.update(t).where(due).values(remind_at=None))
    return written


# ------------------------------------------------------------------------------ triggers and locking


def _started(conn: sa.Connection) -> set[tuple[str, str]]:
    """The records whose approval started in this transaction: their own inline lines are not locked."""
    return conn.info.setdefault("objectplatform_approvals_started", set())


def _start_on(ctx: hooks.HookContext, flows: list[ApprovalFlow]) -> None:
    if not flows:
        return
    platform = ctx.records.platform
    engine = approvals(platform)
    record = ctx.after
    if engine.pending_row(ctx.conn, ctx.object, record["id"]) is not None:
        return
    submitter = ctx.user if ctx.user is not None else record.get("owner")
    if engine.start(ctx.conn, ctx.object, record, flows, submitter, platform.clock.now(), required=False) is not None:
        _started(ctx.conn).add((ctx.object, str(record["id"])))


def _on_create(ctx: hooks.HookContext) -> None:
    """Flows with `on: create` start when a record is created."""
    _start_on(ctx, _flows_on_create(ctx))


def _on_create_many(ctx: hooks.HookContext) -> None:
    """An import starts the flows a create would, on each record of the batch (in the batch's transaction)."""
    flows = _flows_on_create(ctx)
    if not flows:
        return
    for record in ctx.batch:
        _start_on(dataclasses.replace(ctx, after=record), flows)


def _flows_on_create(ctx: hooks.HookContext) -> list[ApprovalFlow]:
    return [f for f in flows_of(ctx.records.metadata, ctx.object) if f.trigger.on == "create"]


def _on_field_change(ctx: hooks.HookContext) -> None:
    """Flows with `on: field_change` start when their field changes (unless the record already waits)."""
    changed = {name for name in ctx.after if ctx.after.get(name) != ctx.before.get(name)}
    _start_on(ctx, [f for f in flows_of(ctx.records.metadata, ctx.object)
                    if f.trigger.on == "field_change" and f.trigger.field in changed])


def _locks(metadata: Metadata) -> dict[str, list[tuple[str, str | None]]]:
    """{object: [(the object whose approval locks it, via its master_detail field or None for itself)]}."""
    flowing = _flowing(metadata)
    found = {name: [(name, None)] for name in flowing}
    for obj in metadata.objects.values():
        found.setdefault(obj.name, []).extend(_locked_through(obj, flowing))
    return {name: locks for name, locks in found.items() if locks}


def _flowing(metadata: Metadata) -> set[str]:
    """The objects an approval locks: those an approval flow or a sales process runs on."""
    flowing = {f.object for f in metadata.flows.values() if f.kind == "approval_flow"}
    return flowing | {o.name for o in metadata.objects.values() if "sales_process" in o.behaviors}


def _locked(metadata: Metadata, obj: ObjectDef, values: Mapping[str, Any]) -> bool:
    """Whether an approval may lock `obj`'s records (a write of any `values` then runs `_guard` on each)."""
    flowing = _flowing(metadata)
    return obj.name in flowing or bool(_locked_through(obj, flowing))


def _locked_through(obj: ObjectDef, flowing: set[str]) -> list[tuple[str, str]]:
    """(the object whose approval locks `obj`, its master_detail field to it) for each such field."""
    return [(f.to, f.name) for f in obj.fields.values() if f.type == "master_detail" and f.to in flowing]


def _lock_targets(platform, obj: str) -> list[tuple[str, str | None]]:
    if "approvals:locks" not in platform.services:
        platform.services["approvals:locks"] = _locks(platform.metadata)
    return platform.services["approvals:locks"].get(obj, [])


def _guard(ctx: hooks.HookContext, record: Mapping[str, Any]) -> None:
    """409 `locked` when the record (or the record it is a line of) waits for approval and the user is no admin."""
    platform = ctx.records.platform
    targets = _lock_targets(platform, ctx.object)
    if not targets or ctx.user is None:
        return
    for obj, via in targets:
        target = record.get("id") if via is None else record.get(via)
        if via is not None and ctx.master is not None and ctx.master[0] == via and "id" not in ctx.master[1]:
            continue  # a line of a record being created (its parent's id a stand-in): nothing waits for it yet
        if target is None or not str(target).isdigit() or (obj, str(target)) in _started(ctx.conn):
            continue
        pending = approvals(platform).pending_row(ctx.conn, obj, target)
        if pending is None or access_for(platform, ctx.user, ctx.conn).is_admin:
            continue
        raise Locked(Message("approval.locked", "{object} {id} is waiting for approval {approval} ({title}): neither "
                             "it nor its lines can be changed until the approval is decided or withdrawn",
                             object=said_object(platform.metadata.objects[obj]), id=target, approval=pending["id"],
                             title=said_title(pending)))


def _on_delete(ctx: hooks.HookContext) -> None:
    """A record an administrator deletes while it waits takes its approval with it (withdrawn)."""
    if (ctx.object, None) in _lock_targets(ctx.records.platform, ctx.object):
        approvals(ctx.records.platform).close_pending(ctx.conn, ctx.object, ctx.before["id"], WITHDRAWN, ctx.user)


# ------------------------------------------------------------------------------ actions


def _submit(name: str):
    def run(call: actions.ActionCall) -> dict:
        return approvals(call.platform).submit(call.access, call.object, call.record["id"],
                                               call.params.get("comment"), name)

    return run


def _submit_many(name: str):
    """The bulk submit (or another action starting flows) set-based (`Approvals.submit_many`: as `submit` on one
    record after another)."""
    def run(platform, access, obj: str, ids: list[str], params: dict) -> dict | None:
        return approvals(platform).submit_many(access, obj, ids, params.get("comment"), name)

    return run


def _withdraw(call: actions.ActionCall) -> dict:
    return approvals(call.platform).withdraw(call.access, call.object, call.record["id"], call.params.get("comment"))


def _withdraw_many(platform, access, obj: str, ids: list[str], params: dict) -> dict | None:
    """The bulk withdraw set-based (`Approvals.withdraw_many`: as `withdraw` on one record after another)."""
    return approvals(platform).withdraw_many(access, obj, ids, params.get("comment"))


def approval_actions(metadata: Metadata) -> list[actions.Action]:
    """`submit` and `withdraw` on every object with an approval flow, and each action a flow names;
    `withdraw` on an object with the sales_process behavior (its stage approvals)."""
    comment = actions.Param("comment", "long_text", Label("说明", "Comment"))
    found = []
    for obj in metadata.objects:
        flows = flows_of(metadata, obj)
        if not flows:
            continue
        labels = {SUBMIT: Label("提交审批", "Submit for approval")}
        for flow in flows:
            if flow.trigger.on == "action":
                labels.setdefault(flow.trigger.action, flow.label)
        for name, label in labels.items():
            found.append(actions.Action(obj, name, label, _submit(name), (comment,), applies=_waiting(obj, False),
                                        run_many=_submit_many(name)))
        found.append(actions.Action(obj, WITHDRAW, Label("撤回审批", "Withdraw"), _withdraw, (comment,),
                                    applies=_waiting(obj, True), run_many=_withdraw_many))
    for obj in metadata.objects.values():  # a sales-process stage approval may be withdrawn too
        if "sales_process" in obj.behaviors and not flows_of(metadata, obj.name):
            found.append(actions.Action(obj.name, WITHDRAW, Label("撤回审批", "Withdraw"), _withdraw, (comment,),
                                        applies=_waiting(obj.name, True), run_many=_withdraw_many))
    return found


def _waiting(obj: str, pending: bool):
    """Applies when the record waits for an approval (`pending`) or does not."""
    def check(platform, record: Mapping[str, Any]) -> bool:
        with reading(platform.engine) as conn:
            return (approvals(platform).pending_row(conn, obj, record["id"]) is not None) == pending

    return check


def register(registry) -> None:
    """The approval engine: flows started by record events, records locked while they wait, the submit and
    withdraw actions."""
    registry.hook("after_create", _on_create)
    registry.hook("after_create_many", _on_create_many)
    registry.hook("after_update", _on_field_change, needed=lambda metadata, obj, values: any(
        f.trigger.on == "field_change" and f.trigger.field in values for f in flows_of(metadata, obj.name)))
    registry.hook("before_update", lambda ctx: _guard(ctx, ctx.before),
                  needed=_locked)
    registry.hook("before_create", lambda ctx: _guard(ctx, ctx.after))
    registry.hook("after_delete", lambda ctx: _guard(ctx, ctx.before))
    registry.hook("after_delete", _on_delete)
    registry.action_provider(approval_actions)
