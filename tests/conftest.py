"""Shared fixtures: every database test runs on SQLite and, when configured, on PostgreSQL.

`OBJECTPLATFORM_TEST_DATABASE_URL` (a PostgreSQL URL) adds the PostgreSQL variant; each test
gets a fresh schema there, dropped afterwards. `.ci/run` sets it and fails when the server is
missing, so the PostgreSQL variants never silently disappear on CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from support import crm_metadata, migrated_platform

PG_URL = os.environ.get("OBJECTPLATFORM_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("OBJECTPLATFORM_TEST_REDIS_URL")

REQUIRE_SERVICES = os.environ.get("OBJECTPLATFORM_REQUIRE_SERVICES") == "1"

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


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
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A URL to an empty database for one test, on each backend."""
    with fresh_database(request.param, tmp_path) as url:
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
def platform(database_url, tmp_path, metadata):
    """A platform on a fresh, migrated database of each backend."""
    with migrated_platform(database_url, tmp_path, metadata) as p:
        yield p


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
