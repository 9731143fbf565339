"""Helpers the test modules share: the shipped CRM with a site layer, a migrated platform on a test database, and a
clock a test sets."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import objectplatform_crm
from objectplatform.metadata import Metadata, default_layers, load_metadata
from objectplatform.runtime import Platform, Settings, open_platform
from objectplatform.runtime.apps import find_apps
from objectplatform.runtime.clock import Clock
from objectplatform.runtime.config import ROOT
from objectplatform.runtime.plugins import registry_for
from objectplatform.runtime.registry import Registry
from objectplatform.runtime.storage.migrate import migrate

CRM_LAYERS = objectplatform_crm.app.layers  # the CRM app's metadata, loaded after the engine's base layer
# every database test runs on each; PostgreSQL when OBJECTPLATFORM_TEST_DATABASE_URL names one (CI does)
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("OBJECTPLATFORM_TEST_DATABASE_URL") else [])


def crm_metadata(site: Path | None = None, files: Mapping[str, str] | None = None) -> Metadata:
    """The shipped CRM, plus a site layer in `site` holding `files` ({"object_defs/x.yaml": YAML text});
    without a site, one `Metadata` for the whole run (so its migrated template is made once)."""
    if site is None and not files:
        return shipped_crm()
    for name, text in (files or {}).items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return load_metadata(default_layers(ROOT, (), site, CRM_LAYERS))


def shared_site(files: Mapping[str, str]) -> Metadata:
    """The shipped CRM with a site layer of `files`, one `Metadata` for every module asking for the same files: their
    tests share its migrated template and its seeded records (tests/conftest.py) instead of making their own."""
    return _shared_site(tuple(sorted(files.items())))


@functools.cache
def _shared_site(files: tuple[tuple[str, str], ...]) -> Metadata:
    return crm_metadata(Path(tempfile.mkdtemp(prefix="op-site-")), dict(files))


@functools.cache
def shipped_crm() -> Metadata:
    return load_metadata(default_layers(ROOT, (), None, CRM_LAYERS))


def crm_registry() -> Registry:
    """A new registry of the CRM's site: the engine's plugins and the CRM app's registrations."""
    return registry_for(find_apps(["crm"]))


@contextmanager
def migrated_platform(database_url: str, instance: Path, metadata: Metadata | None = None) -> Iterator[Platform]:
    """A platform on `database_url`, migrated as `objectplatform migrate` would, closed afterwards."""
    platform = open_platform(Settings.from_env({}, database_url=database_url, instance_path=instance), metadata)
    try:
        migrate(platform.engine, platform.schema)
        yield platform
    finally:
        platform.close()


class FixedClock(Clock):
    """A platform clock standing at `at` until the test moves it: `platform.clock = clock = FixedClock(T0)`, then
    `clock.at = ...` or `clock.advance(days=1)`."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


def english(result: Mapping) -> dict:
    """An import's result with its row errors in English only, each row's `reasons` left out (the tests of imports
    in tests/test_imports_jobs.py assert those exactly)."""
    return {**result, "errors": [{k: v for k, v in row.items() if k != "reasons"} for row in result["errors"]]}


def one_by_one(platform, user: str, obj: str, action: str, ids: list[str], params: Mapping) -> dict:
    """`action` of `obj` run as `user` on each id as its own single action, answered as a bulk run answers: what a
    bulk action that is not set-based does, to compare a set-based one with."""
    from objectplatform.runtime.actions import run_action
    from objectplatform.runtime.errors import RuntimeFailure
    from objectplatform.runtime.permissions import access_for

    succeeded, failed = [], []
    for one in ids:
        try:
            run_action(platform, access_for(platform, user), obj, action, one, dict(params))
        except RuntimeFailure as e:
            failed.append({"id": one, "error": e.as_dict()["error"]})
        else:
            succeeded.append(one)
    return {"succeeded": succeeded, "failed": failed}


REFERENCES = ("id", "record_id", "approval_id")  # what `written` leaves out: ids, which differ between equal records


def written(platform, obj: str, record_id: str, references: tuple[str, ...] = ()) -> dict:
    """What actions left on a record, without what differs between equal records (ids: its own, those of its rows,
    those of the records its `references` fields name; its title, e.g. an order number, and numbers in keys), to
    compare them: the record with its lines, its history, its approvals and their approvers, to-dos and
    notifications."""
    import re

    import sqlalchemy as sa

    dropped = REFERENCES + references
    schema, records = platform.schema, platform.records
    record = records.get(obj, record_id)
    title = str(record[platform.metadata.objects[obj].title_field])

    def said(value):
        if isinstance(value, dict):
            if value.get("field") in dropped:  # a history entry of a reference to a record
                value = {**value, "old": None, "new": None}
            return {k: re.sub(r"\d+", "N", v) if k == "dedupe_key" else said(v) for k, v in value.items()
                    if k not in dropped}
        if isinstance(value, list):
            return [said(v) for v in value]
        return value.replace(title, "{title}") if isinstance(value, str) else value

    tables = {"approvals": schema.approvals, "todos": schema.todos, "notifications": schema.notifications}
    with platform.engine.connect() as conn:
        rows = {name: [{k: v for k, v in row.items() if k != "definition"} for row in conn.execute(
            sa.select(t).where(t.c.object == obj, t.c.record_id == int(record_id)).order_by(t.c.id)).mappings()]
            for name, t in tables.items()}
        steps = schema.approval_steps
        rows["approval_steps"] = [dict(row) for row in conn.execute(sa.select(steps).where(steps.c.approval_id.in_(
            [row["id"] for row in rows["approvals"]])).order_by(steps.c.approval_id, steps.c.step, steps.c.id))
            .mappings()]
    return said({"record": record, "history": records.history(obj, record_id), **rows})
