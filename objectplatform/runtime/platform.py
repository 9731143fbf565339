"""The runtime assembled: metadata, database, tables, jobs and the records service, opened once."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from objectplatform.metadata import Metadata, MetadataError, default_layers, load_metadata

from .config import Settings
from .jobs import JobRunner
from .storage.engine import create_engine
from .storage.tables import Schema


@dataclass
class Platform:
    settings: Settings
    metadata: Metadata
    engine: sa.Engine
    schema: Schema
    jobs: JobRunner
    services: dict = field(default_factory=dict)

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
    """The base CRM, the enabled industry templates and the site's layer, as configured."""
    return load_metadata(default_layers(settings.root, settings.templates, settings.custom_metadata))


def open_platform(settings: Settings | None = None, metadata: Metadata | None = None) -> Platform:
    """Load the metadata (unless given), check the action names it uses against the actions the engine
    registers, connect and build the tables; raises MetadataError on problems."""
    from .names import check_names

    settings = settings or Settings.from_env()
    metadata = metadata or load_site_metadata(settings)
    if problems := check_names(metadata):
        raise MetadataError(problems)
    return Platform(
        settings,
        metadata,
        create_engine(settings.database_url),
        Schema(metadata),
        JobRunner(settings.redis_url, state_dir=settings.instance_path / "jobs"),
    )
