"""The template test kit: pytest fixtures an implementer's tests use to open the engine's base layer, the apps, their
industry templates and a site layer on a fresh, migrated database, and to assert on objects, actions and report rows.

An edition's `tests/conftest.py` imports the fixtures (`objectplatform templates new` writes it):

    from objectplatform.testing import edition_backend, edition_site  # noqa: F401

Each test then runs on SQLite and, when OBJECTPLATFORM_TEST_DATABASE_URL names a PostgreSQL database, on a fresh
schema of it too (docs/implementers.md).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from objectplatform.runtime import Platform, Settings, open_platform
from objectplatform.runtime.actions import actions_service, run_action
from objectplatform.runtime.permissions import Access, access_for
from objectplatform.runtime.reports import definition, run_report
from objectplatform.runtime.storage.migrate import Plan, migrate

POSTGRESQL_SETTING = "OBJECTPLATFORM_TEST_DATABASE_URL"
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRESQL_SETTING) else [])
Files = Mapping[str, str]  # a layer's files by path inside it: {"object_defs/stores.yaml": "kind: object..."}


class Site:
    """A site on a migrated database: its platform, and the calls a test of an edition makes, each through the same
    services as the API and the pages (validation, lifecycles, permissions and data scope apply)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.platform: Platform = open_platform(settings)
        self.plan = migrate(self.platform.engine, self.platform.schema)

    @property
    def metadata(self):
        return self.platform.metadata

    def create(self, obj: str, as_user: str | None = None, **values: Any) -> dict:
        """A new `obj` record, as `as_user` (a username: their roles and data scope apply) or as the system."""
        if as_user is None:
            return self.platform.records.create(obj, values)
        access = self.access(as_user)
        access.require(obj, "create")
        return self.platform.records.within(access).create(obj, values, user=access.user_id)

    def get(self, obj: str, record_id: str) -> dict:
        return self.platform.records.get(obj, record_id)

    def user(self, username: str, *roles: str, **values: Any) -> str:
        """A user holding `roles` (other fields of the user object in `values`); returns their id."""
        return self.platform.records.create("user", {"username": username, "display_name": username,
                                                     "roles": list(roles), **values})["id"]

    def access(self, username: str) -> Access:
        found = self.platform.records.list("user", filters={"username": username}, limit=1).items
        if not found:
            raise LookupError(f"no user {username!r}: make one with site.user({username!r}, role)")
        return access_for(self.platform, found[0]["id"])

    def actions(self, obj: str, record_id: str, as_user: str) -> list[str]:
        """The names of the actions `as_user` may run on the record now, as its page offers them."""
        access = self.access(as_user)
        return [a.name for a in actions_service(self.platform).available(access, obj, self.get(obj, record_id))]

    def act(self, obj: str, action: str, record_id: str | list[str], as_user: str, **params: Any) -> dict:
        """Run the action as `as_user` (as the API does); returns its result."""
        return run_action(self.platform, self.access(as_user), obj, action, record_id, params)

    def report(self, name: str, as_user: str | None = None, **filters: Any) -> list[dict]:
        """The rows of the report `name`, as `as_user` (their data scope) or unrestricted, with run-time filters."""
        access = self.access(as_user) if as_user is not None else None
        return run_report(self.platform, definition(self.metadata, name), access=access,
                          filters=filters or None).rows

    def reopen(self, **changes: Any) -> Plan:
        """Open the site again with `changes` to its settings (say, templates=...) after its folders changed (an
        edition's new version), migrate as `objectplatform migrate` does and return the plan applied."""
        self.close()
        self.settings = replace(self.settings, **changes)
        self.platform = open_platform(self.settings)
        self.plan = migrate(self.platform.engine, self.platform.schema)
        return self.plan

    def close(self) -> None:
        self.platform.close()


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file in `folder`, or a new schema of OBJECTPLATFORM_TEST_DATABASE_URL's
    PostgreSQL database, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'site.db'}"
        return
    url = os.environ[POSTGRESQL_SETTING]
    schema = f"kit_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        options = f"{sa.make_url(url).query.get('options', '')} -csearch_path={schema}".strip()
        yield sa.make_url(url).update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def open_site(folder: Path, templates: Sequence[str] = (), site: Files | Path | None = None, *,
              backend: str = "sqlite", templates_path: Path | None = None, apps: Sequence[str] | None = None,
              ) -> Iterator[Site]:
    """A site with the apps (default: OBJECTPLATFORM_APPS's), the industry `templates` (from `templates_path`,
    default the checkout's industry_templates/) and a site layer (a folder, or files written into
    `folder`/site) migrated into a fresh `backend` database; closed (and, on PostgreSQL, dropped) afterwards."""
    if isinstance(site, Mapping):
        for name, text in site.items():
            path = folder / "site" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        site = folder / "site"
    with fresh_database(backend, folder) as url:
        overrides: dict[str, Any] = {"database_url": url, "instance_path": folder / "instance",
                                     "templates": tuple(templates), "custom_metadata": site, "redis_url": None}
        if templates_path is not None:
            overrides["templates_path"] = templates_path
        if apps is not None:
            overrides["apps"] = tuple(apps)
        opened = Site(Settings.from_env(**overrides))
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture(params=BACKENDS)
def edition_backend(request) -> str:
    """Each database the kit's sites run on: SQLite, and PostgreSQL when OBJECTPLATFORM_TEST_DATABASE_URL is set."""
    return request.param


@pytest.fixture
def edition_site(edition_backend, tmp_path):
    """A function opening a `Site` (see `open_site`, whose arguments it takes but the folder and backend) on this
    test's database: `site = edition_site(["pharma"], {"object_defs/site.yaml": "..."})`."""
    with ExitStack() as stack:
        count = 0

        def opened(templates: Sequence[str] = (), site: Files | Path | None = None, **options: Any) -> Site:
            nonlocal count
            count += 1
            folder = tmp_path / f"site{count}"
            folder.mkdir()
            return stack.enter_context(open_site(folder, templates, site, backend=edition_backend, **options))

        yield opened
