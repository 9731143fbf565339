"""The work queue: notifications (the bell) and to-dos (the inbox) of each user, written by rules and flows.

(How it works: docs/engine.md, "objectplatform/runtime/workqueue.py".)"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from objectplatform.metadata import Label

from . import email
from .errors import Conflict, Message, NotFound, no_record
from .storage import convert
from .storage.id_sets import among, ids_param

FAN_OUT_JOB = 500  # more users than this: the notification is written by a job (on Redis)
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
LIST_LIMIT = 200
GROUP_AT = 5  # from this many open to-dos (unread notifications) of one rule on, the inbox (bell) shows one line
A_TO_DO = Message("todo.noun", "to-do")  # what `no_record` names: no object's records
A_NOTIFICATION = Message("notification.noun", "notification")


def as_label(title: Label | str | Mapping[str, str]) -> Label:
    """A Label from a Label, a plain string (both languages) or a YAML {zh, en} mapping."""
    if isinstance(title, Label):
        return title
    if isinstance(title, str):
        return Label(title, title)
    return Label.of(title)


def fill(text: str, values: Mapping[str, Any]) -> str:
    """`text` with each `{field}` replaced by the value; an unknown placeholder is left as it is."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        return "" if value is None else str(value)

    return PLACEHOLDER.sub(one, text)


def fill_label(title: Label | str | Mapping[str, str], values: Mapping[str, Any]) -> Label:
    label = as_label(title)
    return Label(fill(label.zh, values), fill(label.en, values))


@dataclass(frozen=True)
class Notification:
    id: str
    title_zh: str
    title_en: str
    object: str | None
    record_id: str | None
    created_at: datetime
    read_at: datetime | None

    def json(self, lang: str) -> dict:
        return {"id": self.id, "title": self.title_en if lang == "en" else self.title_zh,
                "title_zh": self.title_zh, "title_en": self.title_en, "object": self.object,
                "record_id": self.record_id, "created_at": self.created_at.isoformat(),
                "read": self.read_at is not None,
                "read_at": self.read_at.isoformat() if self.read_at else None}


@dataclass(frozen=True)
class Todo:
    id: str
    kind: str
    title_zh: str
    title_en: str
    object: str | None
    record_id: str | None
    action: str | None
    approval_id: str | None
    user_id: str | None
    role: str | None
    created_at: datetime
    done_at: datetime | None

    def json(self, lang: str) -> dict:
        return {"id": self.id, "kind": self.kind, "title": self.title_en if lang == "en" else self.title_zh,
                "title_zh": self.title_zh, "title_en": self.title_en, "object": self.object,
                "record_id": self.record_id, "created_at": self.created_at.isoformat(), "action": self.action,
                "approval_id": self.approval_id, "user": self.user_id, "role": self.role,
                "done": self.done_at is not None, "done_at": self.done_at.isoformat() if self.done_at else None}


@dataclass(frozen=True)
class TodoGroup:
    """The open to-dos (unread notifications) one rule gave a user about `count` records of `object`, shown as one
    line of the inbox (the notifications)."""

    rule: str
    label: Label
    object: str
    count: int
    newest: datetime


def _keyed(column: sa.ColumnElement, prefix: str) -> sa.ColumnElement[bool]:
    """The rows whose dedupe key (`column`) starts with `prefix`."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


def rule_prefix(name: str) -> str:
    """The prefix of the dedupe keys of what rule `name` writes (to-dos, notifications)."""
    return f"rule:{name}:"


def _made_by(column: sa.ColumnElement, name: str) -> sa.ColumnElement[bool]:
    """The rows (to-dos, notifications) rule `name` wrote, by their dedupe key (`column`)."""
    return _keyed(column, rule_prefix(name))


def _after(table: sa.Table, row_id: int) -> sa.ColumnElement[bool]:
    """The rows after row `row_id` newest first (by created_at, then id): a keyset page's, whatever its own filters."""
    at = sa.select(table.c.created_at).where(table.c.id == row_id).scalar_subquery()
    return sa.or_(table.c.created_at < at, sa.and_(table.c.created_at == at, table.c.id < row_id))


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def _at(value: datetime | None) -> datetime | None:
    return None if value is None else convert.from_db("datetime", value)


def _stored(at: datetime) -> datetime:
    return convert.to_db("datetime", at)


class WorkQueue:
    """Notifications and to-dos on one platform's database."""

    def __init__(self, platform):
        self.platform = platform
        self.notifications = platform.schema.notifications
        self.todos = platform.schema.todos
        self._closing: dict[tuple[str, tuple[str, ...]], sa.Update] = {}  # close_record_todos', built once each

    # ------------------------------------------------------------------------------ writing

    def notify(self, conn: sa.Connection, users: Iterable[Any], title: Label | str | Mapping[str, str], *,
               object: str | None = None, record_id: Any = None, key: str, now: datetime | None = None) -> int:
        """Notify each of `users` (ids) once per `key`; returns how many notifications were written.

        More than FAN_OUT_JOB users with jobs on Redis: a job writes them (returns 0 here)."""
        wanted = sorted({int(u) for u in users if u is not None})
        if not wanted:
            return 0
        label, at = as_label(title), now or self.platform.clock.now()
        if len(wanted) > FAN_OUT_JOB and self.platform.jobs.queue is not None:
            self.platform.enqueue(notify_job, [str(u) for u in wanted], label.zh, label.en, object,
                                  _id(record_id), key, at.isoformat())
            return 0
        table = self.notifications
        seen = set(conn.execute(sa.select(table.c.user_id).where(
            table.c.dedupe_key == key, table.c.user_id.in_(wanted))).scalars())
        rows = [{"user_id": u, "title_zh": label.zh, "title_en": label.en, "object": object,
                 "record_id": None if record_id is None else int(record_id), "dedupe_key": key,
                 "created_at": _stored(at)} for u in wanted if u not in seen]
        if rows:
            ids = conn.execute(table.insert().returning(table.c.id), rows).scalars().all()
            email.after_commit(self.platform, conn, ids)
        return len(rows)

    def notify_from(self, conn: sa.Connection, rows: sa.Select | sa.Insert, params: Mapping[str, Any] | None = None
                    ) -> int:
        """Notify from a query of (user_id, title_zh, title_en, object, record_id, dedupe_key, created_at)
        rows, one INSERT ... SELECT (or that INSERT, `notify_insert`'s, built once by the caller), executed with
        `params`; a row whose (user, key) exists already is left out."""
        insert = rows if isinstance(rows, sa.Insert) else self.notify_insert(conn.dialect.name, rows)
        ids = conn.execute(insert, dict(params or {})).scalars().all()
        email.after_commit(self.platform, conn, ids)
        return len(ids)

    def notify_insert(self, dialect: str, rows: sa.Select) -> sa.Insert:
        """`notify_from`'s INSERT ... SELECT of `rows`, returning the ids of the notifications it writes."""
        columns = ["user_id", "title_zh", "title_en", "object", "record_id", "dedupe_key", "created_at"]
        return new_rows(dialect, self.notifications, columns, rows)

    def add_todo(self, conn: sa.Connection, *, users: Iterable[Any] = (), role: str | None = None, kind: str,
                 title: Label | str | Mapping[str, str], object: str | None = None, record_id: Any = None,
                 action: str | None = None, key: str, approval_id: Any = None,
                 now: datetime | None = None) -> list[str]:
        """A to-do for each of `users` or one for `role`, unless one with `key` is open for them; the new ids."""
        label, at = as_label(title), now or self.platform.clock.now()
        table = self.todos
        base = {"kind": kind, "title_zh": label.zh, "title_en": label.en, "object": object,
                "record_id": None if record_id is None else int(record_id), "action": action,
                "approval_id": None if approval_id is None else int(approval_id), "dedupe_key": key,
                "created_at": _stored(at)}
        open_ = sa.and_(table.c.dedupe_key == key, table.c.done_at.is_(None))
        if role is not None:
            if conn.execute(sa.select(table.c.id).where(open_, table.c.role == role)).first():
                return []
            rows = [{**base, "user_id": None, "role": role}]
        else:
            wanted = sorted({int(u) for u in users if u is not None})
            seen = set(conn.execute(sa.select(table.c.user_id).where(open_, table.c.user_id.in_(wanted))).scalars())
            rows = [{**base, "user_id": u, "role": None} for u in wanted if u not in seen]
        ids = []
        for row in rows:  # one user each: a few rows, and their ids are wanted
            ids.append(str(conn.execute(table.insert().values(row)).inserted_primary_key[0]))
        return ids

    def add_todos_from(self, conn: sa.Connection, rows: sa.Select) -> int:
        """To-dos from a query of (user_id, role, kind, title_zh, title_en, object, record_id, action,
        dedupe_key, created_at) rows, one INSERT ... SELECT; an open one with the same addressee and key
        is left as it is."""
        columns = ["user_id", "role", "kind", "title_zh", "title_en", "object", "record_id", "action",
                   "dedupe_key", "created_at"]
        return insert_new(conn, self.todos, columns, rows)

    def close_todos(self, conn: sa.Connection, *, key_prefix: str | None = None, ids: Iterable[Any] = (),
                    where: sa.ColumnElement[bool] | None = None, now: datetime | None = None,
                    by: Any = None) -> int:
        """Close the open to-dos whose key starts with `key_prefix` or whose id is in `ids` (and `where`; `where`
        alone: those it holds)."""
        table = self.todos
        chosen = []
        if key_prefix is not None:
            chosen.append(_keyed(table.c.dedupe_key, key_prefix))
        wanted = [int(i) for i in ids]
        if wanted:
            chosen.append(table.c.id.in_(wanted))
        if not chosen and where is None:
            return 0
        stmt = sa.update(table).where(table.c.done_at.is_(None))
        if chosen:
            stmt = stmt.where(sa.or_(*chosen))
        if where is not None:
            stmt = stmt.where(where)
        values = {"done_at": _stored(now or self.platform.clock.now()), "done_by": None if by is None else int(by)}
        return conn.execute(stmt.values(values)).rowcount

    def close_record_todos(self, conn: sa.Connection, obj: str, record_ids: Iterable[Any], actions: Iterable[str],
                           by: Any = None, now: datetime | None = None) -> int:
        """Close the records' open to-dos that ask for one of `actions` (the action has been done): one UPDATE,
        built once per object and actions, the records and the moment bound."""
        key = (obj, tuple(actions))
        if key not in self._closing:
            t = self.todos
            self._closing[key] = sa.update(t).where(
                t.c.done_at.is_(None), t.c.object == obj, among(t.c.record_id, ids_param("_records")),
                t.c.action.in_(list(actions))).values(done_at=sa.bindparam("_done_at", type_=t.c.done_at.type),
                                                      done_by=sa.bindparam("_done_by", type_=t.c.done_by.type))
        return conn.execute(self._closing[key], {
            "_records": list(record_ids), "_done_at": _stored(now or self.platform.clock.now()),
            "_done_by": None if by is None else int(by)}).rowcount

    # ------------------------------------------------------------------------------ reading

    def _mine(self, access) -> sa.ColumnElement[bool]:
        table = self.todos
        roles = sorted(access.roles)
        mine = table.c.user_id == int(access.user_id)
        return sa.or_(mine, table.c.role.in_(roles)) if roles else mine

    def todos_for(self, access, include_done: bool = False, limit: int | None = LIST_LIMIT,
                  kinds: Sequence[str] = (), rule: str | None = None, except_rules: Sequence[str] = (),
                  after: Any = None) -> list[Todo]:
        """The user's to-dos and those of the roles they hold, newest first; open ones only by default; only
        those of `kinds` (approval, task, ...) when given; only those `rule` made, or none `except_rules` made;
        only those after to-do `after` in that order (the next page)."""
        table = self.todos
        stmt = sa.select(table).where(self._mine(access))
        if kinds:
            stmt = stmt.where(table.c.kind.in_(kinds))
        if rule is not None:
            stmt = stmt.where(_made_by(table.c.dedupe_key, rule))
        for name in except_rules:
            stmt = stmt.where(sa.not_(_made_by(table.c.dedupe_key, name)))
        if not include_done:
            stmt = stmt.where(table.c.done_at.is_(None))
        if after is not None:
            stmt = stmt.where(_after(table, _number(after, A_TO_DO)))
        stmt = stmt.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        with self.platform.engine.connect() as conn:
            return [_todo(r) for r in conn.execute(stmt).mappings()]

    def todo_groups(self, access, kinds: Sequence[str] = ()) -> list[TodoGroup]:
        """The rules that gave the user GROUP_AT or more open to-dos, most first, in one query: a rule reminding a
        rep of 170 leads is one line ("follow-up reminder: 170") linking to them, not a page of look-alikes."""
        table = self.todos
        return self._groups(table, [self._mine(access), table.c.done_at.is_(None),
                                    *([table.c.kind.in_(kinds)] if kinds else [])])

    def notification_groups(self, user_id: Any) -> list[TodoGroup]:
        """The rules that gave the user GROUP_AT or more unread notifications, most first, in one query: the bell's
        page shows each as one line, as the inbox does the to-dos."""
        table = self.notifications
        return self._groups(table, [table.c.user_id == int(user_id), table.c.read_at.is_(None)])

    def _groups(self, table: sa.Table, where: list[sa.ColumnElement[bool]]) -> list[TodoGroup]:
        rules = [d for d in self.platform.metadata.flows.values() if d.kind == "rule"]
        if not rules:
            return []
        columns = []
        for rule in rules:
            made = _made_by(table.c.dedupe_key, rule.name)
            columns += [sa.func.count(sa.case((made, 1))), sa.func.max(sa.case((made, table.c.created_at)))]
        with self.platform.engine.connect() as conn:
            row = conn.execute(sa.select(*columns).where(*where)).one()
        groups = [TodoGroup(rule.name, rule.label, rule.object, row[2 * i], _at(row[2 * i + 1]))
                  for i, rule in enumerate(rules) if row[2 * i] >= GROUP_AT]
        return sorted(groups, key=lambda group: -group.count)

    def open_todo_count(self, access, kinds: Sequence[str] = (), rule: str | None = None) -> int:
        """How many open to-dos the user (and their roles) have: of `kinds` when given, only those `rule` made."""
        table = self.todos
        where = [self._mine(access), table.c.done_at.is_(None), *([table.c.kind.in_(kinds)] if kinds else []),
                 *([_made_by(table.c.dedupe_key, rule)] if rule is not None else [])]
        with self.platform.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()

    def done(self, access, todo_id: Any, now: datetime | None = None) -> Todo:
        """Mark one of the user's (or their roles') to-dos done; 404 if not theirs, 409 if already done."""
        number = _number(todo_id, A_TO_DO)
        table = self.todos
        with self.platform.records.transaction() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == number, self._mine(access))).mappings().first()
            if row is None:
                raise NotFound(no_record(A_TO_DO, todo_id))
            if row["done_at"] is not None:
                raise Conflict(Message("todo.done", "to-do {id} is already done", id=todo_id))
            values = {"done_at": _stored(now or self.platform.clock.now()), "done_by": int(access.user_id)}
            changed = conn.execute(sa.update(table).where(table.c.id == number, table.c.done_at.is_(None))
                                   .values(values)).rowcount
            if not changed:
                raise Conflict(Message("todo.done", "to-do {id} is already done", id=todo_id))
            return _todo({**row, **values})

    def notifications_for(self, user_id: Any, unread_only: bool = False, limit: int = LIST_LIMIT,
                          rule: str | None = None, except_rules: Sequence[str] = (),
                          after: Any = None) -> tuple[list[Notification], int]:
        """The user's notifications, newest first (only those `rule` made, or no unread one `except_rules` made;
        only those after notification `after`: the next page), and how many are unread."""
        table = self.notifications
        mine = table.c.user_id == int(user_id)
        stmt = sa.select(table).where(mine)
        if unread_only:
            stmt = stmt.where(table.c.read_at.is_(None))
        if rule is not None:
            stmt = stmt.where(_made_by(table.c.dedupe_key, rule))
        for name in except_rules:
            stmt = stmt.where(sa.or_(table.c.read_at.is_not(None),
                                     sa.not_(_made_by(table.c.dedupe_key, name))))
        if after is not None:
            stmt = stmt.where(_after(table, _number(after, A_NOTIFICATION)))
        stmt = stmt.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        with self.platform.engine.connect() as conn:
            items = [_notification(r) for r in conn.execute(stmt).mappings()]
            unread = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                mine, table.c.read_at.is_(None))).scalar_one()
        return items, unread

    def notification_count(self, user_id: Any, rule: str | None = None) -> int:
        """How many notifications, read or not, the user has (only those `rule` made)."""
        table = self.notifications
        where = [table.c.user_id == int(user_id), *([_made_by(table.c.dedupe_key, rule)] if rule is not None else [])]
        with self.platform.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()

    def unread_count(self, user_id: Any) -> int:
        table = self.notifications
        with self.platform.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.user_id == int(user_id), table.c.read_at.is_(None))).scalar_one()

    def mark_read(self, user_id: Any, notification_id: Any | None = None, now: datetime | None = None,
                  rule: str | None = None) -> int:
        """Mark one notification (404 if not the user's) or, without an id, all of them (those `rule` made) read;
        how many changed."""
        table = self.notifications
        stmt = sa.update(table).where(table.c.user_id == int(user_id), table.c.read_at.is_(None))
        if rule is not None:
            stmt = stmt.where(_made_by(table.c.dedupe_key, rule))
        with self.platform.records.transaction() as conn:
            if notification_id is not None:
                number = _number(notification_id, A_NOTIFICATION)
                found = conn.execute(sa.select(table.c.id).where(
                    table.c.id == number, table.c.user_id == int(user_id))).first()
                if found is None:
                    raise NotFound(no_record(A_NOTIFICATION, notification_id))
                stmt = stmt.where(table.c.id == number)
            return conn.execute(stmt.values(read_at=_stored(now or self.platform.clock.now()))).rowcount


def insert_new(conn: sa.Connection, table: sa.Table, columns: list[str], rows: sa.Select) -> int:
    """INSERT ... SELECT `rows`, skipping each row a unique index already holds (ON CONFLICT DO NOTHING: no
    anti-join over the table being written); how many rows it wrote."""
    return len(inserted_ids(conn, table, columns, rows))


def inserted_ids(conn: sa.Connection, table: sa.Table, columns: list[str], rows: sa.Select) -> list:
    """`insert_new`, answering the ids of the rows it wrote."""
    return conn.execute(new_rows(conn.dialect.name, table, columns, rows)).scalars().all()


def new_rows(dialect: str, table: sa.Table, columns: list[str], rows: sa.Select) -> sa.Insert:
    """`inserted_ids`'s statement: INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING id."""
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(table).from_select(columns, rows)
    # RETURNING counts: psycopg reports no rowcount for an INSERT ... SELECT
    return stmt.on_conflict_do_nothing().returning(table.c.id)


def _number(value: Any, what: Message) -> int:
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound(no_record(what, value))
    return int(text)


def _notification(row: Mapping[str, Any]) -> Notification:
    return Notification(str(row["id"]), row["title_zh"], row["title_en"], row["object"], _id(row["record_id"]),
                        _at(row["created_at"]), _at(row["read_at"]))


def _todo(row: Mapping[str, Any]) -> Todo:
    return Todo(str(row["id"]), row["kind"], row["title_zh"], row["title_en"], row["object"],
                _id(row["record_id"]), row["action"], _id(row["approval_id"]), _id(row["user_id"]), row["role"],
                _at(row["created_at"]), _at(row["done_at"]))


def work_queue(platform) -> WorkQueue:
    """The platform's work queue service (built on first use)."""
    if "workqueue" not in platform.services:
        platform.services["workqueue"] = WorkQueue(platform)
    return platform.services["workqueue"]


def notify_job(platform, users: list[str], title_zh: str, title_en: str, object: str | None,
               record_id: str | None, key: str, at: str) -> dict:
    """The background fan-out of a notification to many users: one executemany batch."""
    service = work_queue(platform)
    with platform.records.transaction() as conn:
        table = service.notifications
        seen = set(conn.execute(sa.select(table.c.user_id).where(table.c.dedupe_key == key)).scalars())
        rows = [{"user_id": int(u), "title_zh": title_zh, "title_en": title_en, "object": object,
                 "record_id": None if record_id is None else int(record_id), "dedupe_key": key,
                 "created_at": _stored(datetime.fromisoformat(at))} for u in users if int(u) not in seen]
        if rows:
            ids = conn.execute(table.insert().returning(table.c.id), rows).scalars().all()
            email.after_commit(platform, conn, ids)
    return {"notified": len(rows)}


# ------------------------------------------------------------------------------ titles in SQL

TEXT = sa.String()


def title_sql(platform, obj: str, text: str, lang: str) -> sa.ColumnElement:
    """`text` as SQL over `obj`'s table, each `{field}` replaced by the record's value as people read it
    (a picklist by its label in `lang`, a reference by its target's title, a date-time to the minute, a decimal
    with thousand separators and its decimals: 353,215.80);
    an unknown placeholder is left as it is."""
    ot = platform.schema[obj]
    parts: list[sa.ColumnElement] = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(sa.literal(text[position:match.start()], TEXT))
        parts.append(_placeholder_sql(platform, ot, match.group(1), lang))
        position = match.end()
    if position < len(text) or not parts:
        parts.append(sa.literal(text[position:], TEXT))
    result = parts[0]
    for part in parts[1:]:
        result = result + part
    return result


def _placeholder_sql(platform, ot, name: str, lang: str) -> sa.ColumnElement:
    columns = ot.columns.get(name)
    if columns is None or len(columns) != 1:
        return sa.literal("{" + name + "}", TEXT)
    column = ot.table.c[columns[0]]
    field_type = convert.field_type(ot, name)
    f = ot.object.fields.get(name)
    if field_type == "password":
        return sa.literal("{" + name + "}", TEXT)
    if field_type == "picklist" and f is not None and f.options:
        value = sa.case({o.value: o.label.get(lang) for o in f.options}, value=column,
                        else_=sa.cast(column, TEXT))
    elif field_type in ("lookup", "master_detail", "user", "department") and name != "id":
        target_name = f.to if f is not None else "user"
        target = platform.schema[target_name]
        title = target.object.title_field
        shown = target.columns.get(title)
        if shown is None or len(shown) != 1:
            value = sa.cast(column, TEXT)
        else:
            value = (sa.select(sa.cast(target.table.c[shown[0]], TEXT))
                     .where(target.table.c.id == column).scalar_subquery())
    elif field_type == "datetime":
        value = sa.func.substr(sa.cast(column, TEXT), 1, 16, type_=TEXT)
    elif isinstance(column.type, sa.Numeric) and column.type.scale is not None:  # also a rollup's sum
        value = _grouped_sql(platform.engine.dialect.name, column, column.type.precision, column.type.scale)
    else:
        value = sa.cast(column, TEXT)
    return sa.func.coalesce(value, sa.literal("", TEXT), type_=TEXT)


def _grouped_sql(dialect: str, column: sa.ColumnElement, precision: int | None, scale: int) -> sa.ColumnElement:
    """A decimal as people read an amount: thousand separators and the field's decimals (353,215.80)."""
    if dialect == "postgresql":
        digits = "9" * ((precision or 38) - scale - 1) + "0"
        whole = ",".join(reversed([digits[max(end - 3, 0):end] for end in range(len(digits), 0, -3)]))
        return sa.func.to_char(column, "FM" + whole + ("." + "0" * scale if scale else ""), type_=TEXT)
    # SQLite's printf groups whole numbers only: the whole part grouped, then the decimals as %.Nf gives them
    shown = sa.func.printf(f"%.{scale}f", sa.func.abs(column), type_=TEXT)
    whole_part = sa.func.substr(shown, 1, sa.func.length(shown) - (scale + 1 if scale else 0), type_=TEXT)
    grouped = sa.func.printf("%,d", sa.cast(whole_part, sa.Integer), type_=TEXT)
    sign = sa.case((sa.func.round(column, scale) < 0, sa.literal("-", TEXT)), else_=sa.literal("", TEXT))
    if scale:
        grouped = grouped + sa.func.substr(shown, -(scale + 1), type_=TEXT)
    return sa.case((column.is_(None), sa.null()), else_=sign + grouped)  # empty, as PostgreSQL's, not 0.00
