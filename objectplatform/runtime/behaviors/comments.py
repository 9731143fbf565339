"""The comments behavior: a discussion thread on each record of an object declaring it (请同事或领导帮忙), kept in
the engine's comment table. `@username` or `@显示名` mentions a colleague, who is notified; a reply notifies the
author of the comment it answers.

Who may comment: whoever may read the record (a role without read is refused, 403; a record outside the data scope
is not found, 404). A mention must name a user who can read the record too, or the comment is refused (422) naming
them: a notification they could not open helps nobody. An `@name` naming no active user stays plain text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import Label, ObjectDef

from ..errors import Message, NotFound, ValidationFailed, said_object
from ..permissions import Access, access_for
from ..records.recycle_bin import title_of
from ..storage import convert
from ..storage.engine import reading
from ..users import USER
from ..validation import REQUIRED
from ..workqueue import work_queue
from .follow_ups import is_follow_up
from .registry import Behavior

BEHAVIOR = "comments"
SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}
BODY_MAX = 4000  # characters
SNIPPET = 60  # characters of the comment a notification quotes
NAME_MAX = 64  # the longest name an @mention is matched against
MENTION = re.compile(r"@([^\s@,，.。;；:：!！?？、()（）\[\]【】]+)")
MENTIONED = Label("{author} 在{object}「{title}」的评论中提到了你：{snippet}",
                  "{author} mentioned you on {object} {title}: {snippet}")
COMMENTED = Label("{author} 评论了你的{object}「{title}」：{snippet}",
                  "{author} commented on your {object} {title}: {snippet}")
REPLIED = Label("{author} 回复了你在{object}「{title}」的评论：{snippet}",
                "{author} replied to your comment on {object} {title}: {snippet}")


@dataclass(frozen=True)
class CommentsConfig:
    """`behaviors: comments: {}`: the object's records have a thread (no settings)."""


@dataclass(frozen=True)
class Comment:
    id: str
    object: str
    record_id: str
    parent_id: str | None
    author: str
    body: str
    mentions: tuple[str, ...]  # user ids
    created_at: datetime

    def json(self) -> dict:
        return {"id": self.id, "object": self.object, "record_id": self.record_id, "parent": self.parent_id,
                "author": self.author, "body": self.body, "mentions": list(self.mentions),
                "created_at": self.created_at.isoformat()}


def snippet(body: str) -> str:
    """The start of a comment on one line, as a notification quotes it."""
    flat = " ".join(body.split())
    return flat if len(flat) <= SNIPPET else flat[:SNIPPET - 1] + "…"


class Comments:
    """The threads of the records of objects declaring the behavior, on one platform's database."""

    def __init__(self, platform):
        self.platform = platform
        self.table = platform.schema.comments

    def _record(self, access: Access, obj: str, record_id: Any, conn: sa.Connection) -> dict:
        """The record the caller may read: 404 for an object without comments or a record outside their scope,
        403 for a role that may not read the object."""
        definition = self.platform.metadata.objects.get(obj)
        if definition is None or BEHAVIOR not in definition.behaviors:
            raise NotFound(Message("comment.not_enabled", "{object} records have no comments",
                                   object=obj if definition is None else said_object(definition)))
        access.require(obj, "read")
        return self.platform.records.get(obj, record_id, where=self._scope(access, obj), conn=conn)

    def _scope(self, access: Access, obj: str):
        return access.scope(obj, self.platform.schema[obj].table)

    def thread(self, access: Access, obj: str, record_id: Any) -> list[Comment]:
        """The record's comments, oldest first (a reply after the comment it answers, by time)."""
        with reading(self.platform.engine) as conn:
            record = self._record(access, obj, record_id, conn)
            return self._read(conn, obj, [record["id"]]).get(str(record["id"]), [])

    def threads(self, obj: str, record_ids: list[Any]) -> dict[str, list[Comment]]:
        """{record id: its comments, oldest first} of records the caller has already read (a timeline's)."""
        if not record_ids:
            return {}
        with reading(self.platform.engine) as conn:
            return self._read(conn, obj, record_ids)

    def _read(self, conn: sa.Connection, obj: str, record_ids: list[Any]) -> dict[str, list[Comment]]:
        t = self.table
        rows = conn.execute(sa.select(t).where(t.c.object == obj, t.c.record_id.in_([int(i) for i in record_ids]))
                            .order_by(t.c.id)).mappings()
        found: dict[str, list[Comment]] = {}
        for row in rows:
            found.setdefault(str(row["record_id"]), []).append(_comment(row))
        return found

    def add(self, access: Access, obj: str, record_id: Any, body: Any, parent: Any = None,
            now: datetime | None = None) -> Comment:
        """A comment by the caller on the record (a reply when `parent` names one of its comments); notifies
        the users it mentions and the author of the comment it answers."""
        platform = self.platform
        now = now or platform.clock.now()
        t = self.table
        with platform.records.transaction() as conn:
            record = self._record(access, obj, record_id, conn)
            text = body.strip() if isinstance(body, str) else ""
            errors: dict[str, list[Message]] = {}
            if not text:
                errors["body"] = [REQUIRED]
            elif len(text) > BODY_MAX:
                errors["body"] = [Message("value.too_long", "must be at most {max} characters", max=BODY_MAX)]
            parent_row = self._parent(conn, obj, record["id"], parent, errors)
            mentions = self._mentions(conn, obj, record["id"], text, errors) if text else []
            if errors:
                raise ValidationFailed(errors)
            values = {"object": obj, "record_id": int(record["id"]),
                      "parent_id": None if parent_row is None else parent_row["id"], "author": int(access.user_id),
                      "body": text, "mentions": json.dumps(mentions), "created_at": convert.to_db("datetime", now)}
            values["id"] = conn.execute(t.insert().values(values)).inserted_primary_key[0]
            comment = _comment(values)
            self._notify(conn, access, platform.metadata.objects[obj], record, comment, parent_row, now)
        return comment

    def _parent(self, conn: sa.Connection, obj: str, record_id: Any, parent: Any,
                errors: dict[str, list[Message]]) -> Mapping[str, Any] | None:
        """The comment of the same record a reply answers; an error on `parent` for any other."""
        if parent in (None, ""):
            return None
        text = str(parent)
        row = None
        if text.isascii() and text.isdigit() and len(text) <= 18:
            t = self.table
            row = conn.execute(sa.select(t).where(t.c.id == int(text), t.c.object == obj,
                                                  t.c.record_id == int(record_id))).mappings().first()
        if row is None:
            errors["parent"] = [Message("comment.no_parent", "no comment {id} on this record", id=text)]
        return row

    def _mentions(self, conn: sa.Connection, obj: str, record_id: Any, text: str,
                  errors: dict[str, list[Message]]) -> list[str]:
        """The ids of the active users `text` mentions, in order; the longest name wins (`@赵建国请看` names
        赵建国). A user who cannot read the record, or a display name two users share, is an error on `body`."""
        words = [m.group(1)[:NAME_MAX] for m in MENTION.finditer(text)]
        if not words:
            return []
        prefixes = sorted({w[:n] for w in words for n in range(1, len(w) + 1)})
        users = self.platform.schema[USER]
        username, display_name = users.column("username"), users.column("display_name")
        rows = conn.execute(sa.select(users.table.c.id, username, display_name).where(
            users.column("active") == sa.true(), sa.or_(username.in_(prefixes), display_name.in_(prefixes)))).all()
        by_username = {r.username: r for r in rows}
        by_name: dict[str, list] = {}
        for r in rows:
            by_name.setdefault(r.display_name, []).append(r)
        found: list[str] = []
        problems: list[Message] = []
        for word in words:
            for n in range(len(word), 0, -1):
                name = word[:n]
                if name in by_username:
                    chosen = [by_username[name]]
                elif name in by_name:
                    chosen = by_name[name]
                else:
                    continue
                if len(chosen) > 1:
                    problems.append(Message("comment.mention_ambiguous", "@{name} names {users}: write @username",
                                            name=name, users=", ".join(sorted("@" + r.username for r in chosen))))
                elif str(chosen[0].id) not in found:
                    found.append(str(chosen[0].id))
                break
        for user_id in found:
            if not self._can_read(conn, user_id, obj, record_id):
                row = next(r for r in rows if str(r.id) == user_id)
                problems.append(Message("comment.mention_unreadable", "{user} (@{username}) cannot see this "
                                        "record: share it with them first", user=row.display_name,
                                        username=row.username))
        if problems:
            errors["body"] = problems
        return found

    def _can_read(self, conn: sa.Connection, user_id: str, obj: str, record_id: Any) -> bool:
        access = access_for(self.platform, user_id, conn)
        if not access.can(obj, "read"):
            return False
        table = self.platform.schema[obj].table
        where = self._scope(access, obj)
        return conn.execute(sa.select(table.c.id).where(
            table.c.id == int(record_id), *([where] if where is not None else []))).first() is not None

    def _notify(self, conn: sa.Connection, access: Access, obj: ObjectDef, record: Mapping[str, Any],
                comment: Comment, parent: Mapping[str, Any] | None, now: datetime) -> None:
        """The mentioned users; then the author of the comment answered (a reply), or the record's owner (a new
        comment); never the author, nor anyone twice."""
        told = {access.user_id}
        answered = [str(parent["author"])] if parent else [str(record["owner"])] if record.get("owner") else []
        values = {"author": access.display_name or access.username, "title": snippet(title_of(obj, record)),
                  "snippet": snippet(comment.body)}
        home = self._home(obj, record)
        queue = work_queue(self.platform)
        for label, users, kind in ((MENTIONED, comment.mentions, "mention"),
                                   (REPLIED if parent else COMMENTED, answered, "reply" if parent else "comment")):
            users = [u for u in users if u not in told]
            told.update(users)
            if users:
                title = Label(label.zh.format(object=obj.label.zh, **values),
                              label.en.format(object=obj.label.en, **values))
                queue.notify(conn, users, title, object=home[0], record_id=home[1],
                             key=f"comment:{comment.id}:{kind}", now=now)

    def _home(self, obj: ObjectDef, record: Mapping[str, Any]) -> tuple[str, Any]:
        """The page a notification opens: the record's, or for a follow-up the record it follows up, whose
        timeline shows the follow-up's thread."""
        related = record.get("related_object")
        if is_follow_up(obj) and related in self.platform.metadata.objects and record.get("related_id"):
            return related, record["related_id"]
        return obj.name, record["id"]


def _comment(row: Mapping[str, Any]) -> Comment:
    return Comment(str(row["id"]), row["object"], str(row["record_id"]),
                   None if row["parent_id"] is None else str(row["parent_id"]), str(row["author"]), row["body"],
                   tuple(json.loads(row["mentions"])), convert.from_db("datetime", row["created_at"]))


def comments_service(platform) -> Comments:
    """The platform's comments service (built on first use)."""
    if BEHAVIOR not in platform.services:
        platform.services[BEHAVIOR] = Comments(platform)
    return platform.services[BEHAVIOR]


def has_comments(obj: ObjectDef) -> bool:
    return BEHAVIOR in obj.behaviors


COMMENTS = Behavior(BEHAVIOR, SCHEMA, CommentsConfig, panels=("pages/_comments.html",))


def register(registry) -> None:
    registry.behavior(COMMENTS)
