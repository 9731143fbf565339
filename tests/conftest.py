"""Shared fixtures: every database test runs on SQLite and, when configured, on PostgreSQL.

`OBJECTPLATFORM_TEST_DATABASE_URL` (a PostgreSQL URL) adds the PostgreSQL variant; each test
gets a fresh schema there, dropped afterwards. `.ci/run` sets it and fails when the server is
missing, so the PostgreSQL variants never silently disappear on CI.
"""

from __future__ import annotations

import copy
import gc
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

# New password hashes at scrypt's lowest allowed cost: thousands of test users are made and sign in
# (hashes verify at the cost they were made with; test_validation checks the default of 16384).
os.environ.setdefault("OBJECTPLATFORM_PASSWORD_COST", "1024")

from support import BACKENDS, crm_metadata  # noqa: E402

from objectplatform.runtime import Platform, Settings, open_platform
from objectplatform.runtime.storage.engine import create_engine, defer_foreign_keys
from objectplatform.runtime.storage.migrate import migrate
from objectplatform.runtime.storage.tables import schema_of

# Each test builds a platform, an app and their caches, objects that outlive the collector's youngest generation:
# at the default thresholds a full collection ran every few tests over the whole heap (a sixth of a test process's
# CPU). Young objects are collected less often; the processes' peak memory stays the same.
gc.set_threshold(50_000, 20, 100)

# The tests' files (SQLite copies, instance folders) in memory when the machine has a roomy tmpfs: a SQLite
# connection's last close checkpoints its WAL with an fdatasync, ~3 ms each on disk, most of the syscall wait of a
# SQLite test (a sample: 2.1 s of waits on /tmp, 0.13 s on /dev/shm). pytest reads the root on its first temp dir.
SHM = Path("/dev/shm")
if "PYTEST_DEBUG_TEMPROOT" not in os.environ and SHM.is_dir() and os.access(SHM, os.W_OK) \
        and shutil.disk_usage(SHM).free > 2 << 30:
    os.environ["PYTEST_DEBUG_TEMPROOT"] = str(SHM)


def _pg_options(url: str | None, **settings: str) -> str | None:
    """`url` with PostgreSQL settings added to its `options`: the tests' commits need not wait for the disk
    (`synchronous_commit=off` loses at most the last commits on a crash, which a test database never needs),
    which makes the PostgreSQL tests about a quarter faster."""
    if url is None:
        return None
    parsed = sa.make_url(url)
    options = " ".join([parsed.query.get("options", ""), "-csynchronous_commit=off",
                        *(f"-c{name}={value}" for name, value in settings.items())]).strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


PG_URL = _pg_options(os.environ.get("OBJECTPLATFORM_TEST_DATABASE_URL"))
REDIS_URL = os.environ.get("OBJECTPLATFORM_TEST_REDIS_URL")

REQUIRE_SERVICES = os.environ.get("OBJECTPLATFORM_REQUIRE_SERVICES") == "1"

# Parsed metadata files are kept for the run's processes (the test workers, the servers, workers and commands the
# tests start: each would parse the CRM's files again, 0.8 s) in a folder of the run's own, made by the first
# process (xdist's controller, whose environment the workers inherit) and removed at its end: a run starts cold,
# as on a fresh machine, and leaves nothing in the user's cache.
RUN_CACHE = None
if "OBJECTPLATFORM_METADATA_CACHE" not in os.environ:
    RUN_CACHE = tempfile.mkdtemp(prefix="objectplatform-metadata-", dir=os.environ.get("PYTEST_DEBUG_TEMPROOT"))
    os.environ["OBJECTPLATFORM_METADATA_CACHE"] = RUN_CACHE


def pytest_unconfigure(config):
    if RUN_CACHE is not None:
        shutil.rmtree(RUN_CACHE, ignore_errors=True)
    gc.freeze()  # the process ends: its last collections need not walk the millions of objects its tests left



def pytest_sessionstart(session):
    """With OBJECTPLATFORM_REQUIRE_SERVICES=1 (CI), a missing PostgreSQL or Redis fails the run."""
    if not REQUIRE_SERVICES:
        return
    problems = []
    if not PG_URL:
        problems.append("OBJECTPLATFORM_TEST_DATABASE_URL is not set")
    else:
        try:
            with sa.create_engine(PG_URL).connect() as c:
                c.execute(sa.text("select 1"))
        except sa.exc.OperationalError as e:
            problems.append(f"PostgreSQL at {PG_URL} is unreachable: {e.orig}")
    if not REDIS_URL:
        problems.append("OBJECTPLATFORM_TEST_REDIS_URL is not set")
    else:
        from redis import Redis
        from redis.exceptions import ConnectionError as RedisConnectionError

        try:
            Redis.from_url(REDIS_URL).ping()
        except RedisConnectionError as e:
            problems.append(f"Redis at {REDIS_URL} is unreachable: {e}")
    if problems:
        pytest.exit("required services missing: " + "; ".join(problems), returncode=3)


@contextmanager
def fresh_database(backend: str, folder) -> Iterator[str]:
    """A URL to an empty database: a SQLite file in `folder`, or a new PostgreSQL schema dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'test.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_options(os.environ["OBJECTPLATFORM_TEST_DATABASE_URL"], search_path=schema)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Templates:
    """Migrated databases made once per test process, copied for each test that needs one.

    Migrating the whole CRM costs 0.3 s on SQLite and about 1 s on PostgreSQL; copying it costs a file
    copy (SQLite) or a `CREATE DATABASE ... TEMPLATE` (PostgreSQL, about 0.45 s: it syncs 10 MB). So a
    PostgreSQL copy is emptied after its test (one DELETE per table but the migration's own three, the
    sequences reset: about 20 ms) and handed to the next test of the same template, unless the test
    migrated it further or changed its tables: then it is dropped. A template is keyed by its
    `Metadata` object (the shipped CRM is one object for the whole run, see support.crm_metadata; a
    module with its own layer gets its own template). PostgreSQL databases are named `optest_<pid>_...`
    and dropped when the process ends; those of a process that died are dropped by the next run.

    A DROP DATABASE costs PostgreSQL a checkpoint (about 4 s here, slowing every other connection meanwhile),
    so no database is dropped while tests run: a copy that cannot be reused waits, and a detached process
    drops them all once the tests are over (`_drop_later`).

    The `platform` fixture's PostgreSQL platforms use one engine per copy (`engine`), kept from test to test of the
    copy: its idle connections keep the server's catalog caches warm (a new connection reading a dozen tables
    for the first time costs the server about 12 ms) and its dialect keeps the compiled statements (a new engine
    compiles each again: a tenth of a test's CPU). The last ENGINES copies' engines are kept, POOL idle
    connections each. On SQLite a template's copy is one file, `<template>-live.db`, made again from the template
    for each test, whose engine is kept the same way (its connections closed after each test, its compiled
    statements kept: compiling was a sixth of a SQLite test's CPU); a test holding it already (a second copy at
    once) gets a copy in its own folder.
    """

    KEPT = ("_op_schema", "_op_migration", "_op_access_stamp")  # what `migrate` wrote: the same in every copy
    ENGINES = 4
    POOL = 2

    def __init__(self, folder):
        self.folder = folder
        self.made: dict[tuple[str, int], tuple[object, str]] = {}  # keeps the Metadata alive: its id stays its own
        self.prefix = f"optest_{os.getpid()}_"
        self.count = itertools.count()
        self.spare: dict[str, list[str]] = {}  # PostgreSQL template -> emptied copies for the next tests
        self.shape: dict[str, tuple] = {}  # template -> its tables' and indexes' columns (hashed), its migrations
        self.tables: dict[str, frozenset[str]] = {}  # template -> its tables but KEPT
        self.doomed: list[str] = []  # databases to drop once the tests are over
        self.held: dict[str, tuple[sa.Connection, int]] = {}  # an emptied copy -> the connection that empties it
        self.engines: dict[str, tuple[sa.Engine, set[int]]] = {}  # a copy -> its kept engine, its connections' pids
        self.live: dict[str, sa.Engine] = {}  # a SQLite template's live copy -> its kept engine
        self.busy: set[str] = set()  # the SQLite live copies a test holds
        self.admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT") if PG_URL else None
        if self.admin is not None:
            self._drop_orphans()

    def _pg_url(self, name: str) -> str:
        return sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def _drop_orphans(self) -> None:
        with self.admin.connect() as c:
            names = c.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'optest\\_%'")).scalars()
            self._drop_later([name for name in names if not _alive(int(name.split("_")[1]))])

    def _drop_later(self, names: list[str]) -> None:
        """Drop the databases `names` in a detached process, which outlives the test run (see the class)."""
        if names:
            conninfo = self.admin.url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
            subprocess.Popen([sys.executable, "-c", DROPPER, conninfo, *names], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def template(self, backend: str, metadata) -> str:
        """The template of `metadata` on `backend`: a SQLite file path or a PostgreSQL database name."""
        key = (backend, id(metadata))
        if key not in self.made:
            n = next(self.count)
            if backend == "sqlite":
                name = str(self.folder / f"template{n}.db")
                url = f"sqlite:///{name}"
            else:
                name = f"{self.prefix}template{n}"
                with self.admin.connect() as c:
                    c.execute(sa.text(f'CREATE DATABASE "{name}"'))
                url = self._pg_url(name)
            engine = create_engine(url)
            try:  # the platform a test opens on a copy checks the metadata against its apps' registry
                migrate(engine, schema_of(metadata))
            finally:
                engine.dispose()
            if backend == "postgresql":
                engine = sa.create_engine(url)
                try:
                    with engine.connect() as c:
                        self.shape[name], self.tables[name] = _shape(c), frozenset(_tables(c))
                finally:
                    engine.dispose()
            self.made[key] = (metadata, name)
        return self.made[key][1]

    @contextmanager
    def copy(self, backend: str, metadata, folder) -> Iterator[str]:
        """A URL to a new database holding the migrated `metadata`, dropped after (PostgreSQL)."""
        template = self.template(backend, metadata)
        if backend == "sqlite":
            live = template.removesuffix(".db") + "-live.db"
            target = Path(live) if live not in self.busy else folder / "test.db"  # (a second copy at once)
            self.busy.add(str(target))
            try:
                for old in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):  # what the last test left
                    old.unlink(missing_ok=True)
                shutil.copyfile(template, f"{target}.new")
                os.replace(f"{target}.new", target)  # a new file: a connection the last test left open keeps its own
                yield f"sqlite:///{target}"
            finally:
                self.busy.discard(str(target))
                if str(target) in self.live:
                    self.live[str(target)].dispose()  # its connections go; its compiled statements stay
            return
        spare = self.spare.setdefault(template, [])
        if spare:
            name = spare.pop()
        else:
            name = f"{self.prefix}{next(self.count)}"
            with self.admin.connect() as c:
                c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        try:
            yield self._pg_url(name)
        finally:
            if self._emptied(name, template):
                spare.append(name)
            else:
                self._forget(name)
                self.doomed.append(name)

    @contextmanager
    def blank(self, backend: str, folder) -> Iterator[str]:
        """A URL to a new, empty database (a SQLite file not made yet), dropped after the run (PostgreSQL)."""
        if backend == "sqlite":
            yield f"sqlite:///{folder / 'blank.db'}"
            return
        name = f"{self.prefix}{next(self.count)}"
        with self.admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield self._pg_url(name)
        finally:
            self.doomed.append(name)

    def engine(self, url: str) -> sa.Engine | None:
        """The kept engine of the copy at `url` (see the class), made on first use; None for a SQLite copy that is
        not its template's live file."""
        name = sa.make_url(url).database
        if url.startswith("sqlite"):
            if not name.endswith("-live.db"):
                return None
            if name not in self.live:
                self.live[name] = create_engine(url)
            return self.live[name]
        if name in self.engines:
            self.engines[name] = self.engines.pop(name)  # the most recently used last
            return self.engines[name][0]
        if len(self.engines) >= self.ENGINES:
            self._forget(next(iter(self.engines)))
        engine, pids = create_engine(url, pool_size=self.POOL), set()
        sa.event.listen(engine, "connect", lambda dbapi, _record: pids.add(dbapi.info.backend_pid))
        sa.event.listen(engine, "close", lambda dbapi, _record: pids.discard(dbapi.info.backend_pid))
        self.engines[name] = engine, pids
        return engine

    def _forget(self, name: str) -> None:
        kept = self.engines.pop(name, None)
        if kept is not None:
            kept[0].dispose()

    def _emptied(self, name: str, template: str) -> bool:
        """Empty the copy `name` as its template left it; False when it no longer has the template's
        shape (migrated further, a table added) or cannot be emptied now (a lock held elsewhere).

        The connection that empties a copy stays open for its next emptying (a new one costs PostgreSQL 20 to
        30 ms); what the test left connected goes, as on DROP."""
        held = self.held.pop(name, None)
        kept = sorted(self.engines[name][1]) if name in self.engines else []
        with self.admin.connect() as c:
            c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> ALL(:kept)"),
                      {"name": name, "kept": [held[1] if held else 0, *kept]})
        try:
            if held is None:
                conn = sa.create_engine(self._pg_url(name), poolclass=sa.pool.NullPool).connect()
                held = conn, conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
                conn.commit()
            conn = held[0]
            with conn.begin():
                tables = self.tables[template]
                if _shape(conn) != self.shape[template]:
                    conn.close()
                    return False
                conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                conn.exec_driver_sql("SET CONSTRAINTS ALL DEFERRED")  # the foreign keys hold again once all are empty
                conn.exec_driver_sql("; ".join(f'DELETE FROM "{t}"' for t in sorted(tables - set(self.KEPT))))
                kept = ", ".join(f"'{t}'" for t in self.KEPT)
                conn.exec_driver_sql(  # the emptied tables' id sequences start again at 1
                    "SELECT setval(s.oid, 1, false) FROM pg_class s JOIN pg_depend d ON d.objid = s.oid "
                    "AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
                    "JOIN pg_class t ON t.oid = d.refobjid WHERE s.relkind = 'S' "
                    f"AND t.relnamespace = current_schema()::regnamespace AND t.relname NOT IN ({kept})")
            self.held[name] = held
            return True
        except sa.exc.DBAPIError:
            if held is not None:
                held[0].invalidate()
                held[0].close()
            return False

    def close(self) -> None:
        for engine in self.live.values():
            engine.dispose()
        if self.admin is None:
            return
        made = [name for _metadata, name in self.made.values() if name.startswith(self.prefix)]
        for name in list(self.engines):
            self._forget(name)
        for conn, _pid in self.held.values():
            conn.close()
        with self.admin.connect() as c:  # what the last tests left connected (a server, a worker) goes first
            c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname LIKE :prefix"),
                      {"prefix": self.prefix.replace("_", "\\_") + "%"})
        self._drop_later(self.doomed + [n for s in self.spare.values() for n in s] + made)
        self.admin.dispose()


DROPPER = """
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for name in sys.argv[2:]:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
"""


def _shape(conn: sa.Connection) -> tuple[str, int]:
    """A fingerprint of a PostgreSQL database's tables' and indexes' columns (read from pg_catalog: information_schema's
    views cost ten times as much, and hashed there: a copy is compared with its template after every test), and how
    many migrations it recorded."""
    return tuple(conn.exec_driver_sql(
        "SELECT (SELECT md5(string_agg(c.relname || '.' || a.attname || '.' || c.relkind::text, ',' "
        "ORDER BY c.relname, a.attname)) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i') "
        "AND a.attnum > 0 AND NOT a.attisdropped), (SELECT count(*) FROM \"_op_migration\")").one())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def templates(tmp_path_factory) -> Iterator[Templates]:
    made = Templates(tmp_path_factory.mktemp("templates"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def migrated_database_url(backend, tmp_path, metadata, templates) -> Iterator[str]:
    """A database of `backend` already migrated to `metadata` (a copy of the run's template)."""
    with templates.copy(backend, metadata, tmp_path) as url:
        yield url


@pytest.fixture
def database_url(request, backend, tmp_path):
    """A URL to an empty database for one test, on each backend; in a test that also uses `platform`
    (or `migrated_database_url`), that platform's database."""
    if "migrated_database_url" in request.fixturenames:
        yield request.getfixturevalue("migrated_database_url")
        return
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(request, tmp_path_factory):
    """A URL to an empty database shared by one module's tests, on each backend."""
    with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="module")
def metadata():
    """The shipped CRM; a module testing a site layer defines its own `metadata`."""
    return crm_metadata()


@pytest.fixture
def platform(migrated_database_url, backend, tmp_path, metadata, templates):
    """A platform on a fresh, migrated database of each backend (on PostgreSQL with the copy's kept engine:
    Templates)."""
    engine = templates.engine(migrated_database_url)
    platform = open_platform(Settings.from_env({}, database_url=migrated_database_url, instance_path=tmp_path),
                             metadata, engine=engine)
    try:
        yield platform
    finally:
        platform.close()


class Seeds:
    """The records a fixture made, kept as rows, so that the next tests of the same fixture get them by a bulk copy
    instead of making them again through the engine (a department of people with orders, payments and visits costs
    the engine a second or more; putting its rows back costs milliseconds).

    A seed is a function of a platform that only writes records (setting the platform's clock and such stays the
    fixture's part, each test) and returns plain values (their ids). Its first run is kept as every table's rows and
    sequences; each later test on the same backend and metadata gets those rows put back into its own database, in
    one transaction, and the seed's return value: the same ids, the same created_at, the same next id. Seeds chain:
    a seed made after others (a fixture using another) is kept with theirs, and putting it back replaces their rows.
    The first seed of a test runs on an empty database (the copy would not be the seed's alone otherwise)."""

    def __init__(self):
        # (backend, metadata id, the chain of seeds) -> (its value, the tables' rows, the Metadata: its id its own)
        self.kept: dict[tuple, tuple[object, list, object]] = {}

    def __call__(self, platform: Platform, backend: str, chain: tuple) -> object:
        key = (backend, id(platform.metadata), repr(chain))
        if key in self.kept:
            value, rows, _metadata = self.kept[key]
            with platform.engine.begin() as conn:
                defer_foreign_keys(conn)
                if len(chain) > 1:  # the rows of the seeds before it go: its rows hold them as they were after it
                    for table, _data in self.kept[key[:2] + (repr(chain[:-1]),)][1]:
                        if table is not None:
                            conn.exec_driver_sql(f'DELETE FROM "{table}"')
                _put_rows(conn, rows)
            return copy.deepcopy(value)
        if len(chain) == 1:
            with platform.engine.connect() as conn:
                assert not _rows(conn), "a seed runs on an empty database (its rows are copied for the next tests)"
        make, args = chain[-1]
        value = make(platform, *args)
        with platform.engine.connect() as conn:
            self.kept[key] = copy.deepcopy(value), _rows(conn), platform.metadata
        return value


def _tables(conn: sa.Connection) -> list[str]:
    if conn.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    return sorted(set(conn.exec_driver_sql(sql).scalars()) - set(Templates.KEPT))


def _rows(conn: sa.Connection) -> list:
    """Every non-empty table's rows (SQLite: tuples, and sqlite_sequence; PostgreSQL: COPY's text) and, on
    PostgreSQL, the sequences' values."""
    tables = [t for t in _tables(conn) if conn.exec_driver_sql(f'SELECT EXISTS (SELECT 1 FROM "{t}")').scalar()]
    if conn.dialect.name == "sqlite":
        kept = [(t, conn.exec_driver_sql(f'SELECT * FROM "{t}"').all()) for t in tables]
        if tables:
            kept.append(("sqlite_sequence", conn.exec_driver_sql("SELECT name, seq FROM sqlite_sequence").all()))
        return kept
    cursor = conn.connection.driver_connection.cursor()
    kept = []
    for t in tables:
        with cursor.copy(f'COPY "{t}" TO STDOUT') as copy:
            kept.append((t, b"".join(bytes(data) for data in copy)))
    if tables:
        kept.append((None, conn.exec_driver_sql(
            "SELECT quote_ident(sequencename), last_value FROM pg_sequences "
            "WHERE schemaname = current_schema() AND last_value IS NOT NULL").all()))
    return kept


def _put_rows(conn: sa.Connection, kept: list) -> None:
    if conn.dialect.name == "sqlite":
        for table, rows in kept:
            if table == "sqlite_sequence":
                conn.exec_driver_sql("DELETE FROM sqlite_sequence")
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                conn.exec_driver_sql(f'INSERT INTO "{table}" VALUES ({marks})', [tuple(row) for row in rows])
        return
    cursor = conn.connection.driver_connection.cursor()
    for table, data in kept:
        if table is None:
            for sequence, value in data:
                cursor.execute("SELECT setval(%s, %s)", (sequence, value))
            continue
        with cursor.copy(f'COPY "{table}" FROM STDIN') as copy:
            copy.write(data)


@pytest.fixture(scope="session")
def seeds() -> Seeds:
    return Seeds()


@pytest.fixture
def seeded(platform, backend, seeds):
    """`seeded(make, *args)`: what `make(platform, *args)` returns, its records made once per backend, metadata and
    arguments (plain values: ids) and copied into each test's database after (see Seeds)."""
    made: list = []

    def seed(make, *args):
        step = (make, args)
        value = seeds(platform, backend, (*made, step))
        made.append(step)
        return value

    return seed


@pytest.fixture
def records(platform):
    return platform.records


@pytest.fixture
def redis_url():
    if not REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("OBJECTPLATFORM_TEST_REDIS_URL is not set")
        pytest.skip("OBJECTPLATFORM_TEST_REDIS_URL is not set (CI sets it)")
    return REDIS_URL
