"""The runtime assembled: metadata, registry, database, tables, jobs and the records service, opened once. The
top of the runtime: it fills the registry with the engine's plugins and the apps (plugins.py), and no module
of the runtime below it imports it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from objectplatform.metadata import Metadata, MetadataError, Problem, default_layers, load_metadata

from .apps import App, app_layers, find_apps
from .attachment_store import AttachmentStore, attachment_store
from .clock import Clock
from .config import Settings
from .derived import per_metadata
from .industry_templates import site_templates, with_enabled
from .jobs import JobRunner, function_path, import_function
from .names import check_names
from .plugins import registry_for
from .records import Records
from .registry import Registry
from .storage.engine import create_engine
from .storage.tables import Schema, schema_of


@dataclass
class Platform:
    settings: Settings
    metadata: Metadata
    engine: sa.Engine
    schema: Schema
    jobs: JobRunner
    registry: Registry  # the actions, hooks, behaviors, ... of the engine's plugins and the site's apps
    services: dict = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)  # every "now" of the runtime; a test gives its own
    read_engine: sa.Engine | None = None  # reports, exports and dashboards read here (None: `engine`)
    owns_engine: bool = True  # False: `engine` is the caller's to dispose (open_platform's `engine`)

    def __post_init__(self):
        self.read_engine = self.read_engine or self.engine

    @property
    def attachments(self) -> AttachmentStore:
        """Where attachments' files are kept (runtime/attachment_store.py)."""
        if "attachments" not in self.services:
            self.services["attachments"] = attachment_store(self.settings)
        return self.services["attachments"]

    @property
    def records(self) -> Records:
        """The records service: the only way data is written."""
        if "records" not in self.services:
            self.services["records"] = Records(self)
        return self.services["records"]

    def local_now(self) -> datetime:
        """The clock's now in the site's time zone, whose date is the today() of rules, formulas and reports."""
        return self.clock.now().astimezone(self.settings.zone)

    def enqueue(self, job: Callable, *args, **kwargs) -> str:
        """Run `job(platform, *args, **kwargs)` in the background and return the job id: in-process right now
        (or in a thread, given `background=True`) on this platform, on rq on the platform the worker opens
        (`job_platform`)."""
        token = _running.set(self)
        try:
            return self.jobs.enqueue(run_job, function_path(job), *args, **kwargs)
        finally:
            _running.reset(token)

    def forget_connections(self) -> None:
        """In a forked child: new connections for the child, the parent's left to the parent."""
        self.engine.dispose(close=False)
        self.read_engine.dispose(close=False)

    def close(self) -> None:
        """Close the platform once its in-process jobs' threads have ended: they run on it (an import started from a
        page); left running, one went on writing through an engine it shared with the next platform."""
        self.jobs.close()
        if self.owns_engine:
            self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def load_site_metadata(settings: Settings) -> Metadata:
    """The engine's base layer, the apps' layers, the industry templates of `settings` (each held to its manifest)
    and the site's layer."""
    apps = app_layers(find_apps(settings.apps))
    return load_metadata(default_layers(settings.root, site_templates(settings), settings.custom_metadata, apps,
                                        templates_path=settings.template_folder))


def site_registry(settings: Settings) -> Registry:
    """The registry of the configured apps: the engine's plugins, then each app's registrations."""
    return registry_for(find_apps(settings.apps))


def open_platform(settings: Settings | None = None, metadata: Metadata | None = None,
                  engine: sa.Engine | None = None) -> Platform:
    """Build the registry of the configured apps, connect, load the metadata (unless given) with the industry
    templates enabled in the database added to the configured ones, check its behaviors and the action names
    it uses against that registry and build the tables; raises MetadataError on problems.

    `engine` (one of `storage.engine.create_engine` on the settings' database URL) is the caller's: the platform
    uses it and leaves it open when it closes, so a process opening many platforms on one database one after
    the other keeps its connections and its compiled statements (the tests do)."""
    settings = settings or Settings.from_env()
    apps = find_apps(settings.apps)
    registry = registry_for(apps)
    borrowed = engine is not None
    engine = engine if borrowed else create_engine(settings.database_url)
    read_engine = create_engine(settings.read_database_url) if settings.read_database_url else None
    try:
        if metadata is None:
            settings = with_enabled(settings, engine)
            metadata = load_site_metadata(settings)
        if problems := _name_problems(metadata, registry, apps):
            raise MetadataError(problems)
    except BaseException:
        if not borrowed:
            engine.dispose()
        if read_engine is not None:
            read_engine.dispose()
        raise
    return Platform(
        settings,
        metadata,
        engine,
        schema_of(metadata),
        JobRunner(settings.redis_url, state_dir=settings.instance_path / "jobs"),
        registry,
        read_engine=read_engine,
        owns_engine=not borrowed,
    )


@per_metadata
def _checked(metadata: Metadata) -> dict[tuple, list[Problem]]:
    return {}


def _name_problems(metadata: Metadata, registry: Registry, apps: Sequence[App]) -> list[Problem]:
    """`check_names` of `metadata` against the registry `apps` fill, once per Metadata and set of apps (a Metadata
    never changes; the tests open thousands of platforms on a few)."""
    checked, key = _checked(metadata), tuple(app.register for app in apps)
    if key not in checked:
        checked[key] = check_names(metadata, registry)
    return checked[key]


_running: ContextVar[Platform | None] = ContextVar("objectplatform_job_platform", default=None)
_worker: Platform | None = None  # the platform an rq worker process opens once (from OBJECTPLATFORM_* settings)


def job_platform() -> Platform:
    """The platform a background job runs on: the enqueuing one in-process, else the worker's own."""
    global _worker
    if (platform := _running.get()) is not None:
        return platform
    if _worker is None:
        _worker = open_platform()
        # a job forked from a worker that opened it first uses the platform but none of the parent's connections
        os.register_at_fork(after_in_child=_worker.forget_connections)
    return _worker


def run_job(path: str, *args, **kwargs):
    """The function the job runner runs for `Platform.enqueue`: the job at `path`, given its platform first."""
    return import_function(path)(job_platform(), *args, **kwargs)
