"""The industry templates a site runs: those OBJECTPLATFORM_TEMPLATES names plus those enabled in its database
(`objectplatform templates enable`), so that every web and worker process of the site starts with the same set."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import sqlalchemy as sa

from objectplatform.metadata import read_manifest, template_order

from .apps import find_apps
from .config import Settings
from .storage.engine import create_engine, reading
from .storage.tables import template_table

TABLE = template_table(sa.MetaData())


def platform_version() -> str:
    """The installed objectplatform's version, which a manifest's `requires.objectplatform` is held to."""
    return version("objectplatform")


def recorded(engine: sa.Engine) -> dict[str, str]:
    """The templates enabled in the database, in the order they were enabled: name -> the version migrate last
    applied (none before the database's first migrate)."""
    with reading(engine) as conn:
        if not sa.inspect(conn).has_table(TABLE.name):
            return {}
        rows = conn.execute(sa.select(TABLE.c.name, TABLE.c.version).order_by(TABLE.c.enabled_at, TABLE.c.name))
        return dict(rows.all())


def with_enabled(settings: Settings, engine: sa.Engine) -> Settings:
    """`settings` whose templates are OBJECTPLATFORM_TEMPLATES's, then those enabled in the database."""
    return replace(settings, templates=tuple(dict.fromkeys([*settings.templates, *recorded(engine)])))


def site_settings(settings: Settings) -> Settings:
    """`with_enabled` for a command that opens no platform (`check`): a SQLite file that does not exist yet
    enables nothing and is not made."""
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not Path(url.database).exists():
        return settings
    engine = create_engine(settings.database_url)
    try:
        return with_enabled(settings, engine)
    finally:
        engine.dispose()


def site_templates(settings: Settings) -> list[str]:
    """`settings.templates` in the order their layers load, each held to its manifest (MetadataError otherwise)."""
    if not settings.templates:
        return []
    apps = [app.name for app in find_apps(settings.apps)]
    return template_order(settings.template_folder, settings.templates, platform_version(), apps)


def record_enabled(engine: sa.Engine, name: str, applied_version: str) -> None:
    """Enable `name` in the database, at the version just migrated."""
    with engine.begin() as conn:
        conn.execute(TABLE.delete().where(TABLE.c.name == name))
        conn.execute(TABLE.insert().values(name=name, version=applied_version,
                                           enabled_at=datetime.now(UTC).replace(tzinfo=None)))


def record_disabled(engine: sa.Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(TABLE.delete().where(TABLE.c.name == name))


def record_versions(engine: sa.Engine, settings: Settings) -> list[tuple[str, str, str]]:
    """After a migrate: the version of each template enabled in the database brought to its folder's; returns
    (name, old, new) for each that changed."""
    changed = []
    for name, old in recorded(engine).items():
        new = read_manifest(settings.template_folder / name).version
        if new != old:
            changed.append((name, old, new))
    if changed:
        with engine.begin() as conn:
            for name, _old, new in changed:
                conn.execute(TABLE.update().where(TABLE.c.name == name).values(version=new))
    return changed
