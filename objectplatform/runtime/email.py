"""Optional email of notifications (SMTP, the standard library's smtplib): off unless OBJECTPLATFORM_SMTP_HOST is set.

(How it works: docs/engine.md, "objectplatform/runtime/email.py".)"""

from __future__ import annotations

import logging
import smtplib
import threading
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

import sqlalchemy as sa

TIMEOUT = 10  # seconds to connect and for each SMTP reply
PENDING = "objectplatform_email_pending"  # conn.info: [(platform, ids)] written in the open transaction
COMMITTED = "objectplatform_email_committed"  # conn.info: the same, committed, sent when the connection returns
log = logging.getLogger("objectplatform.email")


def enabled(platform) -> bool:
    return bool(platform.settings.smtp_host)


def after_commit(platform, conn: sa.Connection, ids: list[Any]) -> None:
    """Email the notifications `ids` once the transaction of `conn` commits (nothing when email is off)."""
    if ids and enabled(platform):
        conn.info.setdefault(PENDING, []).append((platform, [str(i) for i in ids]))


@sa.event.listens_for(sa.engine.Engine, "commit")
def _committing(conn: sa.Connection) -> None:
    if pending := conn.info.pop(PENDING, None):
        conn.info.setdefault(COMMITTED, []).extend(pending)


@sa.event.listens_for(sa.engine.Engine, "rollback")
def _rolled_back(conn: sa.Connection) -> None:
    conn.info.pop(PENDING, None)


@sa.event.listens_for(sa.pool.Pool, "checkin")
def _returned(_dbapi_connection, record) -> None:
    """The connection went back to the pool, its transaction committed: send what it committed."""
    if record is None:
        return
    for platform, ids in record.info.pop(COMMITTED, ()):
        send_later(platform, ids)
    record.info.pop(PENDING, None)


def send_later(platform, ids: list[str]) -> None:
    """Hand the notifications to the email job: rq on Redis, else a thread running the job in-process."""
    try:
        if platform.jobs.queue is not None:
            platform.enqueue(send, ids)
            return
        thread = threading.Thread(target=platform.enqueue, args=(send, ids), name="objectplatform-email")
        with _lock:  # keep the running ones (for `wait`), forget the finished
            _threads[id(platform)] = [t for t in _threads.get(id(platform), []) if t.is_alive()] + [thread]
        thread.start()
    except Exception:
        log.exception("cannot start emailing notifications %s", ", ".join(ids))


_lock = threading.Lock()
_threads: dict[int, list[threading.Thread]] = {}


def wait(platform, timeout: float = 30) -> None:
    """Wait for the platform's in-process email jobs started so far (tests, and a command before it exits)."""
    with _lock:
        threads = _threads.pop(id(platform), [])
    for thread in threads:
        thread.join(timeout)


def send(platform, ids: list[str]) -> dict:
    """Email each of the notifications `ids` whose user is active and has an email, over one SMTP connection."""
    settings = platform.settings
    messages = [_message(settings.smtp_from, row) for row in _rows(platform, ids)]
    sent = 0
    if not messages:
        return {"sent": 0, "failed": 0}
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            for message in messages:
                try:
                    smtp.send_message(message)
                    sent += 1
                except smtplib.SMTPException as e:
                    log.error("the mail server %s:%s refused the email to %s (%s): %s", settings.smtp_host,
                              settings.smtp_port, message["To"], message["Subject"], e)
    except (OSError, smtplib.SMTPException) as e:
        log.error("cannot email %d notification(s) through %s:%s: %s", len(messages) - sent, settings.smtp_host,
                  settings.smtp_port, e)
    return {"sent": sent, "failed": len(messages) - sent}


def _rows(platform, ids: list[str]) -> list[sa.Row]:
    notifications, users = platform.schema.notifications, platform.schema["user"]
    email, active = users.column("email"), users.column("active")
    numbers = [int(i) for i in ids]
    stmt = (sa.select(notifications.c.title_zh, notifications.c.title_en, email.label("address"),
                      users.column("display_name").label("name"))
            .select_from(notifications.join(users.table, users.table.c.id == notifications.c.user_id))
            .where(notifications.c.id.in_(numbers), email.is_not(None), email != "",
                   sa.or_(active.is_(None), active.is_(True)))
            .order_by(notifications.c.id))
    with platform.engine.connect() as conn:
        return conn.execute(stmt).all()


def _message(sender: str, row: sa.Row) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((row.name or "", row.address))
    message["Subject"] = row.title_zh
    lines = [row.title_zh] + ([row.title_en] if row.title_en != row.title_zh else [])
    message.set_content("\n".join(lines) + "\n")
    return message
