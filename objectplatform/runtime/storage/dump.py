"""A whole database written to one file and read back: SQLite's online backup, PostgreSQL's pg_dump and pg_restore."""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from objectplatform.runtime.errors import BadRequest, Message

from . import access_stamp
from .tables import PREFIX

DUMP_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
STAMP = access_stamp.stamp_table(sa.MetaData(), PREFIX)


def backend_of(url: str) -> str:
    """The backend a database URL names: `sqlite` or `postgresql` (the only two the platform runs on)."""
    return sa.make_url(url).get_backend_name()


def table_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per table of the database's (current) schema, by table name."""
    names = sorted(sa.inspect(conn).get_table_names())
    quote = conn.dialect.identifier_preparer.quote
    return {name: conn.exec_driver_sql(f"SELECT count(*) FROM {quote(name)}").scalar_one() for name in names}


def dump_database(url: str, target: Path) -> dict[str, int]:
    """Write the database at `url` to the file `target` as one consistent snapshot, safe while the app writes;
    return the snapshot's rows per table."""
    if backend_of(url) == "sqlite":
        _sqlite_backup(_sqlite(url, must_exist=True), sqlite3.connect(target))
        return _counts_of(f"sqlite:///{target}")
    pg_dump = pg_tool("pg_dump")
    engine = sa.create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:  # pg_dump shares this transaction's snapshot: the counts match its rows
            snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            _run([pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={target}",
                  f"--dbname={_conninfo(url)}"], url)
            return table_counts(conn)
    finally:
        engine.dispose()


def load_database(url: str, source: Path) -> None:
    """Replace the contents of the database at `url` with the dump at `source` (in one transaction), then move the
    access stamp past the one it replaced, so that no process takes the restored users for those it kept."""
    seen = _access_stamp(url)
    if backend_of(url) == "sqlite":
        _sqlite_backup(sqlite3.connect(source), _sqlite(url, must_exist=False))
    else:
        _run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
              "--exit-on-error", f"--dbname={_conninfo(url)}", str(source)], url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if access_stamp.read(conn, STAMP) is not None:
                access_stamp.bump_past(conn, STAMP, seen)
    finally:
        engine.dispose()


def _access_stamp(url: str) -> int | None:
    """The access stamp of the database at `url`; None when there is no database or no stamp in it."""
    if backend_of(url) == "sqlite" and not _sqlite_path(url).exists():
        return None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return access_stamp.read(conn, STAMP)
    finally:
        engine.dispose()


def database_counts(url: str) -> dict[str, int]:
    """Rows per table of the database at `url` (none when a SQLite file does not exist yet)."""
    if backend_of(url) == "sqlite" and not _sqlite_path(url).exists():
        return {}
    return _counts_of(url)


def pg_tool(name: str, find: Callable[[str], str | None] = shutil.which) -> str:
    """The path of a PostgreSQL client program: on PATH, else the newest under /usr/lib/postgresql/*/bin."""
    found = find(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version,
                                           reverse=True)), None)
    if not found:
        raise BadRequest(Message(
            "backup.pg_tool_missing",
            "{tool} is not installed: install the PostgreSQL client programs (e.g. apt install postgresql-client) "
            "of the server's major version or newer, or put them on PATH", tool=name))
    return found


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _counts_of(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return table_counts(conn)
    finally:
        engine.dispose()


def _sqlite_path(url: str) -> Path:
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        raise BadRequest(Message("backup.memory_database",
                                 "an in-memory SQLite database cannot be backed up or restored: name a file"))
    return Path(database)


def _sqlite(url: str, must_exist: bool) -> sqlite3.Connection:
    path = _sqlite_path(url)
    if must_exist and not path.exists():
        raise BadRequest(Message("backup.no_database", "there is no database at {path}", path=str(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(path)


def _sqlite_backup(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    """Copy every page of `source` into `target` with SQLite's online backup API, then close both."""
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def _conninfo(url: str) -> str:
    """The libpq URI of a SQLAlchemy PostgreSQL URL, without its password (given through PGPASSWORD)."""
    return sa.make_url(url).set(drivername="postgresql", password=None).render_as_string(hide_password=False)


def _run(command: list[str], url: str) -> None:
    env = dict(os.environ)
    if password := sa.make_url(url).password:
        env["PGPASSWORD"] = str(password)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise BadRequest(Message("backup.tool_failed", "{tool} failed: {output}", tool=Path(command[0]).name,
                                 output=(done.stderr or done.stdout).strip()))
