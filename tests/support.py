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
