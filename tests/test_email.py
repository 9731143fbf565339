"""Optional email on SQLite and PostgreSQL: off without OBJECTPLATFORM_SMTP_HOST; when on, a notification
(a rule's, a flow's) reaches a real local SMTP server after its transaction commits, addressed to the user's
email with the title as subject; nothing for a rolled-back notification or a user without email; an
unreachable server is logged and never fails the action."""

from __future__ import annotations

import dataclasses
import email.policy
import logging
import os
import socket
import socketserver
import threading
from datetime import UTC, datetime
from email import message_from_bytes

import pytest
from test_api import PASSWORD
from test_jobs import rq_setup as rq_setup  # noqa: F401  (fixture)
from test_jobs import rq_worker

from objectplatform.runtime import Settings, rules
from objectplatform.runtime import email as mail
from objectplatform.runtime.jobs import JobRunner
from objectplatform.runtime.workqueue import work_queue

AT = datetime(2026, 12, 24, 1, 0, tzinfo=UTC)  # 7 days before the expected close date, 09:00 in China


class SmtpSink(socketserver.ThreadingTCPServer):
    """A tiny SMTP server on 127.0.0.1 that keeps every message it accepts: (envelope to, parsed message)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SmtpSession)
        self.messages: list[tuple[list[str], object]] = []
        self.port = self.server_address[1]


class _SmtpSession(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ready")
        recipients: list[str] = []
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 sink")
            elif verb == "MAIL":
                recipients = []
                self.reply("250 ok")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                data = b"".join(iter(lambda: self.rfile.readline(), b".\r\n"))
                self.server.messages.append((recipients, message_from_bytes(data, policy=email.policy.default)))
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def sink():
    server = SmtpSink()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def people(seeded) -> dict[str, str]:
    return seeded(make_people)


def make_people(platform) -> dict[str, str]:
    records = platform.records
    sales = records.create("department", {"name": "销售部"}, system=True)["id"]

    def user(username: str, name: str, **more) -> str:
        return records.create("user", {"username": username, "display_name": name, "password": PASSWORD,
                                       "roles": ["sales_rep"], "department": sales, **more}, system=True)["id"]

    ids = {"boss": user("boss", "赵经理", email="zhao@yuntu.example")}
    ids["rep"] = user("rep", "王伟", email="wangwei@yuntu.example", manager=ids["boss"])
    ids["silent"] = user("silent", "李娜")  # no email
    ids["account"] = records.create("account", {"name": "华信银行"}, user=ids["rep"])["id"]
    return ids


def smtp(platform, port: int) -> None:
    platform.settings = dataclasses.replace(platform.settings, smtp_host="127.0.0.1", smtp_port=port,
                                            smtp_from="crm@yuntu.example")


def closing_soon(platform, people, owner: str = "rep") -> str:
    return platform.records.create("opportunity", {"name": "零售条线CRM项目", "account": people["account"],
                                                   "amount": "500000", "expected_close_date": "2026-12-31"},
                                   user=people[owner])["id"]


def test_email_is_off_unless_a_host_is_set():
    assert Settings.from_env({}).smtp_host is None
    settings = Settings.from_env({"OBJECTPLATFORM_SMTP_HOST": "smtp.yuntu.example", "OBJECTPLATFORM_SMTP_PORT": "587",
                                  "OBJECTPLATFORM_SMTP_USER": "crm", "OBJECTPLATFORM_SMTP_PASSWORD": "s3cret",
                                  "OBJECTPLATFORM_SMTP_FROM": "crm@yuntu.example", "OBJECTPLATFORM_SMTP_STARTTLS": "1"})
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_password, settings.smtp_from,
            settings.smtp_starttls) == ("smtp.yuntu.example", 587, "crm", "s3cret", "crm@yuntu.example", True)
    with pytest.raises(ValueError, match="OBJECTPLATFORM_SMTP_PORT must be a port number"):
        Settings.from_env({"OBJECTPLATFORM_SMTP_PORT": "smtp"})


def test_without_a_host_nothing_is_sent(platform, people, sink):
    closing_soon(platform, people)
    assert rules.run_rules(platform, AT, ["opportunity_close_reminder"])[0]["notified"] == 1
    mail.wait(platform)
    assert sink.messages == []


def test_a_rules_notification_is_emailed_to_the_owner_after_commit(platform, people, sink):
    smtp(platform, sink.port)
    closing_soon(platform, people)
    closing_soon(platform, people, "silent")
    assert rules.run_rules(platform, AT, ["opportunity_close_reminder"])[0]["notified"] == 2
    mail.wait(platform)
    assert [(to, m["From"], m["To"], m["Subject"], m.get_content()) for to, m in sink.messages] == [
        (["wangwei@yuntu.example"], "crm@yuntu.example", "王伟 <wangwei@yuntu.example>",
         "商机「零售条线CRM项目」预计 2026-12-31 成交，请尽快推进",
         "商机「零售条线CRM项目」预计 2026-12-31 成交，请尽快推进\n"
         "Opportunity 零售条线CRM项目 is expected to close on 2026-12-31: move it forward\n")]


def test_notify_emails_each_user_with_an_address_and_a_rollback_sends_nothing(platform, people, sink):
    smtp(platform, sink.port)
    work = work_queue(platform)
    with pytest.raises(RuntimeError), platform.records.transaction() as conn:
        work.notify(conn, [people["boss"]], {"zh": "撤销的通知", "en": "Rolled back"}, key="test:rolled-back")
        raise RuntimeError("the action failed")
    with platform.records.transaction() as conn:
        assert work.notify(conn, [people["boss"], people["rep"], people["silent"]],
                           {"zh": "订单 SO-0001 已审批通过", "en": "Order SO-0001 approved"}, key="test:approved") == 3
        mail.wait(platform)
        assert sink.messages == []  # not before the commit
    mail.wait(platform)
    assert sorted((to, m["Subject"]) for to, m in sink.messages) == [
        (["wangwei@yuntu.example"], "订单 SO-0001 已审批通过"), (["zhao@yuntu.example"], "订单 SO-0001 已审批通过")]


def test_an_unreachable_mail_server_is_logged_and_the_action_succeeds(platform, people, caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp(platform, port)
    opportunity = closing_soon(platform, people)
    with caplog.at_level(logging.ERROR, logger="objectplatform.email"):
        assert rules.run_rules(platform, AT, ["opportunity_close_reminder"])[0]["notified"] == 1
        mail.wait(platform)
    items, unread = work_queue(platform).notifications_for(people["rep"])
    assert ([(n.record_id, n.title_en) for n in items], unread) == (
        [(opportunity, "Opportunity 零售条线CRM项目 is expected to close on 2026-12-31: move it forward")], 1)
    assert [r.getMessage().split(": [Errno")[0] for r in caplog.records] == [
        f"cannot email 1 notification(s) through 127.0.0.1:{port}"]


def test_on_redis_an_rq_worker_sends_the_email(platform, database_url, people, sink, rq_setup, monkeypatch):  # noqa: F811
    url, queue = rq_setup
    platform.jobs = JobRunner(url, queue)
    smtp(platform, sink.port)
    closing_soon(platform, people)
    assert rules.run_rules(platform, AT, ["opportunity_close_reminder"])[0]["notified"] == 1
    assert sink.messages == []  # queued for the worker
    for name, value in (("DATABASE_URL", database_url), ("SMTP_HOST", "127.0.0.1"), ("SMTP_PORT", str(sink.port)),
                        ("SMTP_FROM", "crm@yuntu.example")):
        monkeypatch.setitem(os.environ, f"OBJECTPLATFORM_{name}", value)
    with rq_worker(url, queue, burst=True) as proc:
        assert proc.wait(timeout=60) == 0
    assert [(to, m["From"], m["Subject"]) for to, m in sink.messages] == [
        (["wangwei@yuntu.example"], "crm@yuntu.example", "商机「零售条线CRM项目」预计 2026-12-31 成交，请尽快推进")]
