"""Database engines: PostgreSQL as is; SQLite with WAL, a busy timeout, foreign keys enforced, real transactions
and op_local_time()."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

READ_ONLY = "objectplatform_read_only"
TEMPORARY = "objectplatform_temporary_tables"  # in a connection's info: the temporary tables made on it


def reading(engine: sa.Engine) -> sa.Connection:
    """A connection for reads only: on SQLite its transactions do not take the write lock; on PostgreSQL it runs
    each statement in its own transaction (autocommit), as READ COMMITTED gives each statement its own snapshot
    anyway, without the BEGIN and ROLLBACK round trips around them."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        return conn.execution_options(**{READ_ONLY: True}, isolation_level="AUTOCOMMIT")
    return conn.execution_options(**{READ_ONLY: True})


def create_engine(url: str, **kwargs) -> sa.Engine:
    """An engine whose transactions really are transactions on both databases.

    pysqlite defers BEGIN until the first write and commits DDL implicitly; we switch that off and
    emit BEGIN IMMEDIATE ourselves, so DDL runs inside the migration's transaction and a writer holds
    the write lock from its first statement (no lock-upgrade deadlock between two writers).
    """
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "rollback")
    @sa.event.listens_for(engine, "rollback_savepoint")
    def _forget_temporary(conn, *_):
        conn.info.pop(TEMPORARY, None)  # the rollback may have undone their creation (see `temporary_table`)

    if engine.dialect.name == "postgresql":

        @sa.event.listens_for(engine, "connect")
        def _plan_each_time(dbapi_connection, _record):
            # psycopg prepares a statement run often; PostgreSQL may then settle on a generic plan made
            # while a table was small (early in a bulk import) and scan the whole grown table on every
            # later batch. A plan for each execution's own values keeps using the indexes.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET plan_cache_mode = force_custom_plan")
            dbapi_connection.commit()
    if engine.dialect.name == "sqlite":
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")  # off by default, per connection: the references' guard
            cursor.close()
            dbapi_connection.create_function("op_local_time", 2, local_time_text, deterministic=True)

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):
            # a read-only connection (see `reading`) takes a plain BEGIN: readers never queue for the write lock
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def temporary_table(conn: sa.Connection, table: sa.Table) -> None:
    """Make the temporary `table` on `conn`'s database connection, where it then lasts as long as the connection,
    unless made there already: once a connection, not once a transaction (a rollback, which may undo the creation,
    makes the connection forget its temporary tables and the next call make them again if need be)."""
    made = conn.info.setdefault(TEMPORARY, set())
    if table.name not in made:
        conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
        made.add(table.name)


def defer_foreign_keys(conn: sa.Connection) -> None:
    """Check the foreign keys at the commit of `conn`'s transaction instead of at each statement: for writes that put
    rows back in any order (a recycle bin restore). The tables' foreign keys are DEFERRABLE (storage/tables.py)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")  # ends with the transaction
    else:
        conn.exec_driver_sql("SET CONSTRAINTS ALL DEFERRED")


def local_time_text(stored: str | None, zone: str) -> str | None:
    """SQLite's op_local_time(value, zone): a stored naive-UTC date-time as `zone`'s wall time, per value (so
    daylight saving time is right), in the text form SQLite's date functions read."""
    if stored is None:
        return None
    moment = datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    return moment.strftime("%Y-%m-%d %H:%M:%S")
