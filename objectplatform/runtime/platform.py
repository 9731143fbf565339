"""The runtime assembled: metadata, database, tables, jobs and the records service, opened once."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from objectplatform.metadata import Metadata, MetadataError, default_layers, load_metadata

from .apps import app_layers, find_apps
from .clock import Clock
from .config import Settings
from .jobs import JobRunner
from .storage.engine import create_engine
from .storage.tables import Schema, schema_of


@dataclass
class Platform:
    settings: Settings
    metadata: Metadata
    engine: sa.Engine
    schema: Schema
    jobs: JobRunner
    services: dict = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)  # every "now" of the runtime; a test gives its own

    @property
    def records(self):
        """The records service: the only way data is written."""
        from .records import Records

        if "records" not in self.services:
            self.services["records"] = Records(self)
        return self.services["records"]

    def close(self) -> None:
        self.engine.dispose()


def load_site_metadata(settings: Settings) -> Metadata:
    """The apps' layers, the enabled industry templates and the site's layer, as configured (the apps
    registered first, as `apps.find_apps` does once per process)."""
    base = app_layers(find_apps(settings.apps))
    return load_metadata(default_layers(settings.root, settings.templates, settings.custom_metadata, base))


def open_platform(settings: Settings | None = None, metadata: Metadata | None = None) -> Platform:
    """Register the configured apps, load the metadata (unless given), check the action names it uses
    against the actions the engine registers, connect and build the tables; raises MetadataError on
    problems."""
    from .names import check_names

    settings = settings or Settings.from_env()
    find_apps(settings.apps)
    metadata = metadata or load_site_metadata(settings)
    if problems := check_names(metadata):
        raise MetadataError(problems)
    return Platform(
        settings,
        metadata,
        create_engine(settings.database_url),
        schema_of(metadata),
        JobRunner(settings.redis_url, state_dir=settings.instance_path / "jobs"),
    )
