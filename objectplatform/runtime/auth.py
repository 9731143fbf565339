"""Signing in and out: passwords, tokens, and deactivating a user with the handover of their records.

A token is random (`secrets.token_urlsafe`), given to the client once and stored only as its sha256,
with an expiry; revoking stamps it. Checking a token is one indexed read that also reads the access stamp
(storage/access_stamp.py): the process keeps each user's record and access made for the stamp it read, and
makes them again once a write to users, departments or pools has moved it. The
token's `last_used_at` is refreshed at most every few minutes, so a busy client does not write on
every request. A signed-in page session holds a token too, so it ends on the server: at sign-out, when
the user's password is set anew and when the user is deactivated. A failed sign-in is logged, and
written in the user's history when the username is known.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa

from .errors import Message, NotFound, RuntimeFailure, Unauthenticated, ValidationFailed, bulk_result, no_record
from .passwords import hash_password, verify_password
from .permissions import Access, access_for
from .records import history, history_sql
from .storage import access_stamp
from .storage.convert import from_row
from .storage.engine import reading
from .storage.id_sets import among
from .users import USER, admin_stays, is_admin, last_admin

DEFAULT_TOKEN_TTL = timedelta(days=7)
TOUCH_EVERY = timedelta(minutes=5)  # how stale last_used_at may get before a use refreshes it
WRONG_CREDENTIALS = Message("auth.wrong_credentials", "wrong username or password")
HANDOVER = "handover"
INACTIVE = {"active": False}  # what deactivating writes on the user
SIGN_IN_FAILED = "sign_in_failed"  # the history's change for a failed sign-in, with the address it came from
KEPT = 10_000  # users whose access a process keeps at most (past that it starts again with none)
log = logging.getLogger("objectplatform.auth")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user_id(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 2**63 else None


@dataclass(frozen=True)
class SignedIn:
    """The user of a valid token: their record and their access."""

    user: dict
    access: Access


class Auth:
    """Passwords, tokens and deactivation for one platform; get it with `auth_service(platform)`."""

    def __init__(self, platform, token_ttl: timedelta = DEFAULT_TOKEN_TTL):
        self.platform = platform
        self.engine: sa.Engine = platform.engine
        self.schema = platform.schema
        self.users = platform.schema["user"]
        self.tokens: sa.Table = platform.schema.tokens
        self.token_ttl = token_ttl
        self._dummy_hash: str | None = None
        self._kept: dict[int, tuple[int, SignedIn | None]] = {}  # user id -> (access stamp, what it was then)
        tokens = self.tokens  # a token's user and the access stamp, in one statement built once (every request's)
        self._token_read = sa.select(tokens.c.id, tokens.c.user_id, tokens.c.last_used_at,
                                     access_stamp.current(self.schema.access_stamp)).where(
            tokens.c.token_hash == sa.bindparam("token_hash"), tokens.c.revoked_at.is_(None),
            tokens.c.expires_at > sa.bindparam("now"))

    def _user_record(self, row) -> dict:
        """A user row (as selected with the whole table) -> the record, formulas computed."""
        record = from_row(self.users, row)
        return self.platform.records.formulas["user"].on_read(record, self.platform.local_now())

    def _now(self) -> datetime:
        """The platform's current time as the tables store it (naive UTC)."""
        return self.platform.clock.now().astimezone(UTC).replace(tzinfo=None)

    # ---------------------------------------------------------------------------------- passwords

    def authenticate(self, username: str, password: str, *, address: str | None = None) -> dict:
        """The active user with this username and password; Unauthenticated otherwise, with one message
        whether the username, the password or the user's status was wrong. A failure is logged with the
        `address` it came from, and written in the history of the user named, if there is one."""
        table = self.users.table
        row = None
        if isinstance(username, str) and isinstance(password, str) and username.strip():
            with reading(self.engine) as conn:
                row = conn.execute(
                    sa.select(table).where(self.users.column("username") == username.strip())
                ).mappings().first()
        hashed = row[self.users.columns["password"][0]] if row is not None else None
        if hashed is None:
            # spend the same time as a real check, so a response's speed does not reveal the username
            if self._dummy_hash is None:
                self._dummy_hash = hash_password(secrets.token_hex(8))
            verify_password(str(password), self._dummy_hash)
            self._refuse(username, None if row is None else row["id"], address)
        if not verify_password(password, hashed) or row[self.users.columns["active"][0]] is not True:
            self._refuse(username, row["id"], address)
        return self._user_record(row)

    def _refuse(self, username: Any, user_id: int | None, address: str | None) -> NoReturn:
        """Refuse a sign-in, after logging it and writing it in the history of the user named (if any)."""
        log.warning("failed sign-in as %r from %s", username if isinstance(username, str) else None,
                    address or "an unknown address")
        if user_id is not None:
            with self.engine.begin() as conn:
                history.write(conn, self.schema.history, [history.entry(
                    "user", user_id, SIGN_IN_FAILED, None, None, {"address": address}, None, self._now())])
        raise Unauthenticated(WRONG_CREDENTIALS)

    # ------------------------------------------------------------------------------------- tokens

    def issue_token(self, username: str, password: str, *, expires_at: datetime | None = None,
                    address: str | None = None) -> tuple[str, dict]:
        """A new token for the user (valid for `token_ttl`, or until `expires_at`) and the user record;
        `address` is where the sign-in came from (see `authenticate`).

        The user's tokens that have expired or been revoked are removed at the same time.
        """
        user = self.authenticate(username, password, address=address)
        token = secrets.token_urlsafe(32)
        now = self._now()
        expiry = expires_at.astimezone(UTC).replace(tzinfo=None) if expires_at and expires_at.tzinfo else expires_at
        tokens = self.tokens
        with self.engine.begin() as conn:
            conn.execute(tokens.delete().where(
                tokens.c.user_id == int(user["id"]),
                sa.or_(tokens.c.expires_at <= now, tokens.c.revoked_at.is_not(None)),
            ))
            conn.execute(tokens.insert().values(
                token_hash=token_hash(token), user_id=int(user["id"]), created_at=now,
                expires_at=expiry or now + self.token_ttl,
            ))
        return token, user

    def user_for_token(self, token: str) -> dict | None:
        """The user record of a valid token; None when the token is unknown, expired or revoked or the
        user inactive."""
        found = self.signed_in(token)
        return None if found is None else found.user

    def signed_in(self, token: str) -> SignedIn | None:
        """The user record and access of a valid token; None when the token is unknown, expired or revoked or the
        user inactive or gone.

        One statement reads the token and the access stamp. What the process made for the same user and the same
        stamp is used again: no write to the tables an access is made of has been committed since (their triggers
        bump the stamp in the writer's transaction). The stamp is read before the user, so what is kept under a
        stamp is never older than it.
        """
        if not isinstance(token, str) or not token:
            return None
        tokens = self.tokens
        now = self._now()
        with reading(self.engine) as conn:
            row = conn.execute(self._token_read, {"token_hash": token_hash(token), "now": now}).first()
            if row is None:
                return None
            token_id, user_id, last_used, stamp = row
            kept = self._kept.get(user_id)
            if kept is None or stamp is None or kept[0] != stamp:
                kept = (stamp, self._signed_in(conn, user_id))
                if stamp is not None:
                    if len(self._kept) >= KEPT:
                        self._kept.clear()
                    self._kept[user_id] = kept
        if kept[1] is not None and (last_used is None or now - last_used >= TOUCH_EVERY):
            with self.engine.begin() as conn:
                conn.execute(tokens.update().where(tokens.c.id == token_id).values(last_used_at=now))
        return kept[1]

    def _signed_in(self, conn: sa.Connection, user_id: int) -> SignedIn | None:
        """The record and access of the user `user_id` if active, read on `conn`."""
        users = self.users
        row = conn.execute(sa.select(users.table).where(users.table.c.id == user_id,
                                                        users.column("active") == sa.true())).mappings().first()
        if row is None:
            return None
        return SignedIn(self._user_record(row), access_for(self.platform, str(user_id), conn))

    def revoke(self, token: str) -> None:
        """End the token now (an unknown or already revoked token is left as it is)."""
        if not isinstance(token, str) or not token:
            return
        tokens = self.tokens
        with self.engine.begin() as conn:
            conn.execute(tokens.update().where(tokens.c.token_hash == token_hash(token),
                                               tokens.c.revoked_at.is_(None)).values(revoked_at=self._now()))

    def revoke_all(self, conn: sa.Connection, user_ids: list[int]) -> None:
        """End every token and page session of the users now, in the transaction of `conn`."""
        tokens = self.tokens
        conn.execute(tokens.update().where(among(tokens.c.user_id, user_ids), tokens.c.revoked_at.is_(None))
                     .values(revoked_at=self._now()))

    # -------------------------------------------------------------------------------- deactivation

    def deactivate(self, user_id: str, handover_to: str, *, by: str | None) -> dict[str, int]:
        """Deactivate the user, revoke their tokens and hand every record they own to `handover_to`.

        One transaction: the user's system write, then `_hand_over_all`. Returns {object: records moved} for the
        objects with any. The user's place in the organisation (`user.manager`, `department.manager` pointing at
        them) is left as it is: who takes over a team is a separate decision from who takes over the records.
        ValidationFailed (field handover_to) when `handover_to` is missing, unknown, inactive or the user
        themselves; NotFound for an unknown user.
        """
        old = _user_id(user_id)
        users = self.users
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(users.table.c.id).where(users.table.c.id == old)).first() if old else None
            if found is None:
                raise NotFound(no_record(users.object, user_id))
            new, active = self._receiver(conn, handover_to)
            refused = self._refused_receiver(old, handover_to, new, active)
            if refused is not None:
                raise refused
            now = self.platform.clock.now()
            self.platform.records.update(USER, str(old), INACTIVE, version=None, user=by, conn=conn, system=True)
            self.revoke_all(conn, [old])
            return self._hand_over_all(conn, [old], new, by, now)

    def deactivate_many(self, ids: list[str], handover_to: Any, *, by: str | None, where=None) -> dict | None:
        """The bulk deactivate set-based, answering as `deactivate` run on one user after another: {"succeeded":
        [ids], "failed": [{"id", "error"}]}; None when a site's hooks or rules on users need the write record by
        record (`Records.writes_alike`), for the caller to run them one by one.

        The users are read and locked in one query within `where` (the caller's scope) and each is checked as
        `deactivate` checks it: the batch's own hand-over target is refused as handing over to themselves, and of a
        batch holding every active administrator the last one given stays one (each before it still saw it
        active). Then one system write of the users still active (`update_all`), their tokens revoked in one
        statement and `_hand_over_all`: a user record owned by one deactivated before it in the batch is handed
        over before its own write, as one after another would."""
        records, metadata = self.platform.records, self.platform.metadata
        if not records.writes_alike(USER, INACTIVE, checked=False):
            return None
        refused: dict[str, RuntimeFailure] = {}
        with records.transaction() as conn:
            found = records.read_many(conn, USER, ids, where=where, lock=True,
                                      fields=["username", "roles", "active", "owner"])
            new, active = self._receiver(conn, handover_to)
            leaving = []
            for one in ids:
                refusal = NotFound(no_record(self.users.object, one)) if one not in found \
                    else self._refused_receiver(int(one), handover_to, new, active)
                if refusal is None:
                    leaving.append(found[one])
                else:
                    refused[one] = refusal
            admins = [user for user in leaving if is_admin(metadata, user)]
            if admins and not admin_stays(conn, records, [int(user["id"]) for user in admins]):
                refused[admins[-1]["id"]] = last_admin(admins[-1]["username"])
                leaving.remove(admins[-1])
            if leaving:
                olds, place = [int(user["id"]) for user in leaving], {user["id"]: i for i, user in enumerate(leaving)}
                writing = [int(user["id"]) for user in leaving if user["active"] is not False]
                first = [i for i, user in enumerate(leaving) if user["active"] is not False
                         and place.get(user["owner"], len(leaving)) < i]
                now = self.platform.clock.now()
                if first:
                    self._hand_over(conn, USER, olds, new, by, now, only=[olds[i] for i in first])
                records.update_all(USER, writing, INACTIVE, conn=conn, user=by)  # (locked above: all written)
                self.revoke_all(conn, olds)
                self._hand_over_all(conn, olds, new, by, now)
        return bulk_result(ids, refused)

    def _receiver(self, conn: sa.Connection, handover_to: Any) -> tuple[int | None, bool | None]:
        """The id of the user named to receive the records and whether they are active; (None, None) when
        there is none."""
        new = _user_id(handover_to)
        row = None if new is None else conn.execute(
            sa.select(self.users.column("active")).where(self.users.table.c.id == new)).first()
        return (None, None) if row is None else (new, row[0] is True)

    def _refused_receiver(self, old: int, handover_to: Any, new: int | None,
                          active: bool | None) -> ValidationFailed | None:
        """Why the user `new` (`_receiver`, named as `handover_to`) may not receive the records of the user `old`, if
        they may not: none named, unknown, the user themselves or inactive."""
        if handover_to is None or str(handover_to).strip() == "":
            return ValidationFailed({"handover_to": [Message("value.missing", "required")]})
        if new is None:
            return ValidationFailed({"handover_to": [no_record(self.users.object, handover_to)]})
        if new == old:
            return ValidationFailed({"handover_to": [Message("auth.handover_to_self",
                                                              "must be another user than the one deactivated")]})
        if not active:
            return ValidationFailed({"handover_to": [Message("auth.handover_to_inactive",
                                                              "is inactive: hand over to an active user")]})
        return None

    def _hand_over_all(self, conn: sa.Connection, olds: list[int], new: int, by: str | None,
                       now: datetime) -> dict[str, int]:
        """Every record the users `olds` own handed to `new` (`_hand_over`, per object); {object: records moved}
        for the objects with any."""
        moved = {}
        for name in self.schema.objects:
            count = self._hand_over(conn, name, olds, new, by, now)
            if count:
                moved[name] = count
        return moved

    def _hand_over(self, conn: sa.Connection, obj: str, olds: list[int], new: int, by: str | None, now: datetime,
                   only: list[int] | None = None) -> int:
        """Move the records of `obj` owned by one of `olds` (those of `only`, given) to `new`: ONE UPDATE (owner,
        version + 1, updated_by, updated_at), a "handover" history entry (owner, old, new) per record moved and the
        summaries' moves; returns how many moved.

        PostgreSQL does it all in one statement (the UPDATE's RETURNING, with each locked row's owner and summary keys
        as they were, feeding the history's INSERT and the summaries' upserts as CTEs), so a row committed meanwhile
        cannot be moved without its entry; SQLite's writer holds the database lock for the whole transaction, so there
        the history is written first, from the rows about to move, inside the summaries' `moving`.
        """
        ot, log = self.schema[obj], self.schema.history
        table, summaries = ot.table, self.platform.records.rollups.summaries
        owned = among(table.c.owner, olds)
        chosen = owned if only is None else sa.and_(owned, among(table.c.id, only))
        at = now.replace(tzinfo=None)
        update = table.update().values(owner=new, version=table.c.version + 1,
                                       updated_by=None if by is None else int(by), updated_at=at)
        if conn.dialect.name == "postgresql":
            kept = sorted(summaries.reads(obj, {"owner"}) | {"owner"})
            was = sa.select(table.c.id, *(ot.column(name).label(name) for name in kept)).where(
                chosen).with_for_update().subquery("was")
            moved = update.where(table.c.id == was.c.id, chosen).returning(
                table.c.id, *(was.c[name] for name in kept), table.c.owner.label("new__owner")).cte("moved")
            logged, values = history_sql.set_history(conn.dialect.name, log, obj, moved, sa.true(), {
                "owner": (moved.c.owner, "user", str(new))}, HANDOVER, by, at)
            upserts = summaries.moves(conn.dialect.name, obj, moved, {"owner": moved.c.new__owner})
            return conn.execute(sa.select(sa.func.count()).select_from(moved).add_cte(
                logged.cte("logged"), *(u.cte(f"summary_{i}") for i, u in enumerate(upserts))), values).scalar_one()
        with summaries.moving(conn, obj, chosen, {"owner"}):  # (here faster than `changing`'s one upsert of moves)
            history_sql.write_set(conn, log, obj, table, chosen, {"owner": (table.c.owner, "user", str(new))},
                                  HANDOVER, by, at)
            return conn.execute(update.where(chosen)).rowcount


def _password_set(ctx) -> None:
    """A user's password set anew (or removed) ends their sessions and tokens: one stolen with the old
    password no longer signs in."""
    if "password" in ctx.after:
        auth_service(ctx.records.platform).revoke_all(ctx.conn, [int(ctx.after["id"])])


def register(registry) -> None:
    registry.hook("after_update", _password_set, applies=lambda obj: obj.name == USER,
                  needed=lambda metadata, obj, values: "password" in values)


def auth_service(platform) -> Auth:
    """The platform's Auth (made on first use)."""
    if "auth" not in platform.services:
        platform.services["auth"] = Auth(platform)
    return platform.services["auth"]
