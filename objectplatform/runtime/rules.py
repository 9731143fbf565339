"""Time-based rules (`kind: rule` with `trigger.schedule`), each run once as of a given moment, set-based.

(How it works: docs/engine.md, "objectplatform/runtime/rules.py".)"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from objectplatform.metadata import Label, Rule, Source

from .behaviors.recycle import recycle, rollup_parents
from .errors import BadRequest, Message
from .expressions_sql import derived_values, to_sql
from .records import history_sql
from .records.query import formula_columns
from .storage import convert
from .workqueue import TEXT, as_label, rule_prefix, title_sql, work_queue

SUMMARY_KEYS = ("matched", "notified", "todos", "closed", "updated", "recycled", "warned")
DEFAULT_REASON = "自动回收 auto-recycle"


def scheduled_rules(metadata) -> list[Rule]:
    """The rules with a schedule, in metadata order."""
    return [d for d in metadata.flows.values() if d.kind == "rule" and d.schedule]


def run_rules(platform, at: datetime, names: Iterable[str] | None = None) -> list[dict]:
    """Run each scheduled rule (or those named) once as of `at`; record each run; their summaries."""
    rules = {d.name: d for d in scheduled_rules(platform.metadata)}
    wanted = list(names) if names else list(rules)
    unknown = [n for n in wanted if n not in rules]
    if unknown:
        known = ", ".join(rules) or "(none)"
        raise BadRequest(Message("rule.unknown", "unknown rule {rules}; scheduled rules: {known}",
                                 rules=", ".join(map(repr, unknown)), known=known))
    return [run_rule(platform, rules[name], at) for name in wanted]


def run_rule(platform, rule: Rule, at: datetime, run_id: Any = None) -> dict:
    """Run one rule as of `at` in one transaction; record the run (or complete the claimed `run_id`)."""
    with platform.records.transaction() as conn:
        summary = _Run(platform, conn, rule, at).summary()
        runs = platform.schema.rule_runs
        text = json.dumps(summary, ensure_ascii=False)
        if run_id is None:
            conn.execute(runs.insert().values(rule=rule.name, ran_at=convert.to_db("datetime", at), summary=text))
        else:
            conn.execute(runs.update().where(runs.c.id == int(run_id)).values(summary=text))
    return summary


def rule_job(platform, name: str, at: str, run_id: int | None = None) -> dict:
    """The background job the scheduler enqueues: run one rule as of `at` (ISO 8601)."""
    rules = {d.name: d for d in scheduled_rules(platform.metadata)}
    return run_rule(platform, rules[name], datetime.fromisoformat(at), run_id)


def enqueue_rule(platform, name: str, at: datetime, run_id: int) -> str:
    """Enqueue `rule_job` (in-process mode: it runs now, on this platform)."""
    return platform.enqueue(rule_job, name, at.isoformat(), run_id)


class _Run:
    """One run of one rule (RecordRun, below, runs an approval flow's on_approve / on_reject the same way
    on one record: it overrides `fresh`, `submitter_pairs` and the key prefix, history change and user)."""

    def __init__(self, platform, conn: sa.Connection, rule: Rule, at: datetime):
        self.platform, self.conn, self.rule, self.at = platform, conn, rule, at
        self.obj = rule.object
        self.ot = platform.schema[self.obj]
        self.table = self.ot.table
        columns = {**derived_values(platform, self.obj, at), **formula_columns(self.ot)}
        local = at.astimezone(platform.settings.zone)
        self.condition = None if rule.condition is None else to_sql(rule.condition, columns, local, condition=True)
        self.counts = dict.fromkeys(SUMMARY_KEYS, 0)
        self.stamp = convert.to_db("datetime", at)
        self.work = work_queue(platform)
        self.prefix = rule_prefix(rule.name)  # of the dedupe keys of what the run writes
        self.change, self.user = "rule", None  # the history entry of a `set`, and who made it

    def summary(self) -> dict:
        actions = self.rule.actions
        tracked = any("recycle" not in a for a in actions)
        if tracked:
            self.track_matches()
        self.perform(actions)
        if not tracked:
            self.counts["matched"] = self.counts["recycled"] + self.counts["warned"]
        return {"rule": self.rule.name, **self.counts}

    def perform(self, actions: Iterable[Mapping[str, Any]]) -> None:
        """Each action in order, on the fresh records, counting what it did."""
        for action in actions:
            if "notify" in action:
                self.counts["notified"] += self.notify(action["notify"], action["message"])
            elif "todo" in action:
                self.counts["todos"] += self.todo(action["todo"])
            elif "set" in action:
                self.counts["updated"] += self.set(action["set"])
            elif "recycle" in action:
                done = recycle(self.platform, self.conn, self.obj, now=self.at, where=self.condition,
                               reason=action["recycle"].get("reason") or DEFAULT_REASON)
                self.counts["recycled"] += done["recycled"]
                self.counts["warned"] += done["warned"]

    # ------------------------------------------------------------------------------ matches

    def track_matches(self) -> None:
        """Mark the records holding now (new ones since now); forget the others, closing their to-dos.

        No anti-join: an upsert stamps what holds with this run, then the rows it did not stamp go."""
        matches, name, conn, t = self.platform.schema.rule_matches, self.rule.name, self.conn, self.table
        holding = sa.select(sa.literal(name, matches.c.rule.type), t.c.id, sa.literal(self.stamp, matches.c.since.type),
                            sa.literal(self.stamp, matches.c.seen.type))
        if self.condition is not None:
            holding = holding.where(self.condition)
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(matches).from_select(["rule", "record_id", "since", "seen"], holding)
        conn.execute(upsert.on_conflict_do_update(index_elements=[matches.c.rule, matches.c.record_id],
                                                  set_={"seen": upsert.excluded.seen}))
        gone = sa.and_(matches.c.rule == name, matches.c.seen != self.stamp)
        todos = self.work.todos
        stopped = sa.select(matches.c.record_id).where(gone)
        self.counts["closed"] = self.work.close_todos(
            conn, key_prefix=rule_prefix(name), now=self.at,
            where=sa.and_(todos.c.object == self.obj, todos.c.record_id.in_(stopped)))
        conn.execute(sa.delete(matches).where(gone))
        self.counts["matched"] = conn.execute(
            sa.select(sa.func.count()).select_from(matches).where(matches.c.rule == name)).scalar_one()

    def fresh(self) -> sa.ColumnElement[bool]:
        """The condition on the object's table selecting the records that started to hold at this run."""
        matches = self.platform.schema.rule_matches
        return self.table.c.id.in_(sa.select(matches.c.record_id).where(matches.c.rule == self.rule.name,
                                                                         matches.c.since == self.stamp))

    # ------------------------------------------------------------------------------ recipients

    def recipients(self, spec: Mapping[str, Any]) -> sa.Subquery:
        """(record_id, user_id) pairs: the fresh records and the active users the spec names for each."""
        users = self.platform.schema["user"]
        ut, t = users.table, self.table
        parts = []
        if spec.get("users"):
            numbers = [int(u) for u in spec["users"] if str(u).isdigit()]
            named = sa.or_(users.column("username").in_(list(spec["users"])), ut.c.id.in_(numbers))
            parts.append(sa.select(t.c.id.label("record_id"), ut.c.id.label("user_id"))
                         .select_from(t.join(ut, named)))
        if spec.get("roles"):
            holds = sa.or_(*[users.column("roles").like(f'%"{role}"%') for role in spec["roles"]])
            parts.append(sa.select(t.c.id.label("record_id"), ut.c.id.label("user_id"))
                         .select_from(t.join(ut, holds)))
        if spec.get("submitter"):
            parts.append(self.submitter_pairs())
        if spec.get("field"):
            parts.append(self.path_users(spec["field"]))
        union = sa.union(*[p.where(self.fresh()) for p in parts]).subquery()
        active = sa.or_(users.column("active").is_(None), users.column("active").is_(True))
        return (sa.select(union.c.record_id, union.c.user_id)
                .select_from(union.join(ut, ut.c.id == union.c.user_id)).where(active).subquery())

    def submitter_pairs(self) -> sa.Select:
        """(record_id, user_id) of the submitter: for a rule, who created the record."""
        t = self.table
        return sa.select(t.c.id.label("record_id"), t.c.created_by.label("user_id"))

    def path_users(self, path: str) -> sa.Select:
        """(record_id, user_id) through a field path such as `owner` or `pool.admins` (a multi-user field)."""
        schema, t = self.platform.schema, self.table
        ot, source, joined = self.ot, t, t
        steps = path.split(".")
        for step in steps[:-1]:
            f = ot.object.fields[step] if step in ot.object.fields else None
            target_name = f.to if f is not None else "user"
            target = schema[target_name]
            alias = target.table.alias(f"{step}_{len(steps)}")
            joined = joined.join(alias, alias.c.id == source.c[ot.columns[step][0]])
            ot, source = target, alias
        last = steps[-1]
        column = source.c[ot.columns[last][0]]
        if convert.field_type(ot, last) == "multi_user":
            ut = schema["user"].table
            holder = sa.literal('%"', TEXT) + sa.cast(ut.c.id, TEXT) + sa.literal('"%', TEXT)
            return (sa.select(t.c.id.label("record_id"), ut.c.id.label("user_id"))
                    .select_from(joined.join(ut, column.like(holder))))
        return sa.select(t.c.id.label("record_id"), column.label("user_id")).select_from(joined) \
            .where(column.is_not(None))

    # ------------------------------------------------------------------------------ actions

    def key_prefix(self) -> sa.ColumnElement:
        """The start of the dedupe keys of what the run writes, per record."""
        return sa.literal(self.prefix, TEXT)

    def titles(self, label: Label) -> tuple[sa.ColumnElement, sa.ColumnElement]:
        return (title_sql(self.platform, self.obj, label.zh, "zh"),
                title_sql(self.platform, self.obj, label.en, "en"))

    def notify(self, spec: Mapping[str, Any], message: Mapping[str, str]) -> int:
        """Notify the recipients of each fresh record, once per occasion (the key holds its start)."""
        return self.work.notify_from(self.conn, self.notify_rows(spec, message), self.occasion())

    def notify_rows(self, spec: Mapping[str, Any], message: Mapping[str, str]) -> sa.Select:
        """The notifications of `notify` as a query, the run's moment its parameters (`occasion`)."""
        pairs, t = self.recipients(spec), self.table
        zh, en = self.titles(as_label(message))
        key = self.key_prefix() + sa.cast(t.c.id, TEXT) + sa.bindparam("_run_occasion", type_=TEXT)
        return sa.select(
            pairs.c.user_id, zh.label("title_zh"), en.label("title_en"), sa.literal(self.obj, TEXT).label("object"),
            t.c.id.label("record_id"), key.label("dedupe_key"),
            sa.bindparam("_run_stamp", type_=sa.DateTime()).label("created_at"),
        ).select_from(pairs.join(t, t.c.id == pairs.c.record_id))

    def occasion(self) -> dict[str, Any]:
        """The parameters of `notify_rows`: the end of the notifications' keys and their time."""
        return {"_run_occasion": f":{self.at.strftime('%Y%m%dT%H%M%S')}", "_run_stamp": self.stamp}

    def todo(self, spec: Mapping[str, Any]) -> int:
        """A to-do per fresh record, for a role or the users of a field; closed when the record stops holding."""
        t = self.table
        zh, en = self.titles(as_label(spec["title"]))
        key = self.key_prefix() + sa.cast(t.c.id, TEXT)
        common = [zh.label("title_zh"), en.label("title_en"), sa.literal(self.obj, TEXT).label("object"),
                  t.c.id.label("record_id"), sa.literal(spec.get("action"), TEXT).label("action"),
                  key.label("dedupe_key"), sa.literal(self.stamp, sa.DateTime()).label("created_at")]
        kind = sa.literal("task" if spec.get("action") else "reminder", TEXT).label("kind")
        if "role" in spec:
            rows = sa.select(sa.cast(sa.null(), sa.BigInteger()).label("user_id"),
                             sa.literal(spec["role"], TEXT).label("role"), kind,
                             *common).where(self.fresh())
        else:
            pairs = self.recipients({"field": spec["field"]})
            rows = sa.select(pairs.c.user_id, sa.cast(sa.null(), TEXT).label("role"), kind, *common) \
                .select_from(pairs.join(t, t.c.id == pairs.c.record_id))
        return self.work.add_todos_from(self.conn, rows)

    def set(self, values: Mapping[str, Any]) -> int:
        """One UPDATE of the fresh records whose values differ, after their history rows."""
        ot, t = self.ot, self.table
        changes = {name: (ot.column(name), convert.field_type(ot, name), value) for name, value in values.items()}
        differs = sa.or_(*[c.is_not(None) if v is None else sa.or_(c.is_(None), c != convert.to_db(ft, v))
                           for c, ft, v in changes.values()])
        where = sa.and_(self.fresh(), differs)
        parents = rollup_parents(self.platform, self.conn, self.obj, where)
        history_sql.write_changes(self.conn, self.platform.schema.history, self.obj, t, where, changes,
                                  self.change, self.user, self.at)
        row = convert.to_row(ot, values)
        with self.platform.records.rollups.summaries.moving(self.conn, self.obj, where, values):
            updated = self.conn.execute(sa.update(t).where(where).values(
                {**row, "updated_at": self.stamp, "updated_by": None if self.user is None else int(self.user),
                 "version": t.c.version + 1})).rowcount
        for group, ids in parents:
            self.platform.records.rollups.refresh(self.conn, group, ids, self.at)
        return updated


class RecordRun(_Run):
    """The rules' actions run on one record, for the approval engine's on_approve / on_reject: `submitter` is
    the approval's, the keys start with `prefix`, a `set` is logged as change "approval" by `user`, and each
    message and title ends with `suffix` (the deciding comment)."""

    def __init__(self, platform, conn: sa.Connection, obj: str, record_id: Any, prefix: str, submitter: Any,
                 user: str | None, at: datetime, suffix: Label):
        super().__init__(platform, conn, Rule(prefix, Label(prefix, prefix), obj, Source("<approval>")), at)
        self.record_id, self.submitter, self.suffix = int(record_id), submitter, suffix
        self.prefix, self.change, self.user = prefix, "approval", user

    def fresh(self) -> sa.ColumnElement[bool]:
        return self.table.c.id == self.record_id

    def submitter_pairs(self) -> sa.Select:
        t = self.table
        return sa.select(t.c.id.label("record_id"), sa.literal(self.submitter, sa.BigInteger()).label("user_id"))

    def titles(self, label: Label) -> tuple[sa.ColumnElement, sa.ColumnElement]:
        zh, en = super().titles(label)
        return zh + sa.literal(self.suffix.zh, TEXT), en + sa.literal(self.suffix.en, TEXT)
