"""The access stamp: a counter that a trigger bumps in the transaction of every write to the tables a user's access
is made of, so that a process may keep each user's access for as long as the stamp it reads stays the same.

(How it works: docs/engine.md, "objectplatform/runtime/storage/access_stamp.py".)"""

from __future__ import annotations

import sqlalchemy as sa

from objectplatform.metadata import Metadata

TRIGGER = "_op_access_stamp"  # PostgreSQL's triggers' name; SQLite's (one namespace): sqlite_trigger
FUNCTION = "_op_bump_access_stamp"  # PostgreSQL's trigger function
SQLITE_EVENTS = ("insert", "update", "delete")


def sqlite_trigger(table: str, event: str) -> str:
    return f"{TRIGGER}__{table}__{event}"


def stamp_table(sa_metadata: sa.MetaData, prefix: str) -> sa.Table:
    """The stamp: one row (id 1) whose `stamp` counts the writes to the stamped tables."""
    return sa.Table(
        f"{prefix}access_stamp", sa_metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
    )


def stamped_objects(metadata: Metadata) -> tuple[str, ...]:
    """The objects whose rows `permissions.access_for` and the pool hidings read: the users (roles, active,
    department, manager, the fields a matching scope compares with), the departments (tree and managers) and each
    pool behavior's pool object (admins, members, claimable, hidden fields)."""
    pools = {obj.behaviors["pool"]["pool_object"] for obj in metadata.objects.values() if "pool" in obj.behaviors}
    return ("user", "department", *sorted(pools - {"user", "department"}))


def current(stamp: sa.Table) -> sa.ScalarSelect:
    """The stamp as a scalar subquery (NULL if its row is missing: then nothing may be kept)."""
    return sa.select(stamp.c.stamp).where(stamp.c.id == 1).scalar_subquery()


def stamped_tables(conn: sa.Connection) -> set[str]:
    """The tables of the database (its current schema) whose writes bump the stamp."""
    if conn.dialect.name == "sqlite":
        found: dict[str, set[str]] = {}
        for table, name in conn.execute(sa.text("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")):
            found.setdefault(table, set()).add(name)
        return {table for table, have in found.items() if {sqlite_trigger(table, e) for e in SQLITE_EVENTS} <= have}
    return set(conn.execute(sa.text(
        "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE t.tgname = :name AND c.relnamespace = CAST(current_schema() AS regnamespace)"), {"name": TRIGGER}
    ).scalars())


def stamp_writes(conn: sa.Connection, stamp: sa.Table, table: str) -> None:
    """Make every write to `table` bump the stamp (and the stamp's row, if it has none yet)."""
    q = conn.dialect.identifier_preparer.quote
    conn.execute(sa.insert(stamp).from_select(
        ["id", "stamp"], sa.select(sa.literal(1), sa.literal(0)).where(~sa.exists().where(stamp.c.id == 1))))
    bump = f"UPDATE {q(stamp.name)} SET stamp = stamp + 1 WHERE id = 1"
    if conn.dialect.name == "sqlite":
        for event in SQLITE_EVENTS:
            name = q(sqlite_trigger(table, event))
            conn.exec_driver_sql(f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event.upper()} ON {q(table)} "
                                 f"BEGIN {bump}; END")
        return
    # the function reads the tables of the schema it was made in, whatever the caller's search_path
    conn.exec_driver_sql(f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql "
                         f"SET search_path FROM CURRENT AS $$ BEGIN {bump}; RETURN NULL; END $$")
    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {q(table)}")
    conn.exec_driver_sql(f"CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {q(table)} "
                         f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()")


def bump_past(conn: sa.Connection, stamp: sa.Table, seen: int | None) -> None:
    """Set the stamp beyond both its value and `seen` (what it was before the database was replaced by a backup's:
    a restored stamp may equal one a process saw before, for other rows)."""
    conn.execute(stamp.update().where(stamp.c.id == 1).values(
        stamp=sa.func.max(stamp.c.stamp, seen or 0) + 1 if conn.dialect.name == "sqlite"
        else sa.func.greatest(stamp.c.stamp, seen or 0) + 1))


def read(conn: sa.Connection, stamp: sa.Table) -> int | None:
    """The stamp now; None when the database has none (not migrated since the stamp came)."""
    if not sa.inspect(conn).has_table(stamp.name):
        return None
    return conn.execute(sa.select(current(stamp))).scalar_one()
