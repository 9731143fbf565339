"""What `objectplatform templates` does: list the industry templates, enable or disable one in the database (the
migrate plan run as for any metadata change, the data of a disabled one kept), and start a new one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import sqlalchemy as sa

from objectplatform.metadata import (
    MANIFEST,
    Adds,
    Manifest,
    Metadata,
    MetadataError,
    Problem,
    available_templates,
    read_manifest,
    template_adds,
    template_name,
)

from .config import Settings
from .errors import BadRequest, Conflict, Message
from .industry_templates import (
    platform_version,
    record_disabled,
    record_enabled,
    recorded,
    site_settings,
    with_enabled,
)
from .platform import load_site_metadata, open_platform
from .storage.engine import create_engine
from .storage.migrate import MigrationRefused, Plan, apply_migration, plan_migration

DATABASE = "database"
SETTING = "OBJECTPLATFORM_TEMPLATES"


@dataclass(frozen=True)
class TemplateInfo:
    """One edition of the templates' folder as `templates list` shows it."""

    name: str
    manifest: Manifest | None  # None: its manifest has `problems`
    problems: tuple[Problem, ...]
    adds: Adds
    enabled_by: tuple[str, ...]  # DATABASE and/or SETTING; empty: not enabled
    applied: str | None  # the version migrate last applied, when enabled in the database


@dataclass(frozen=True)
class TemplateChange:
    """What enabling or disabling an edition did (or, `applied` False, would do)."""

    manifest: Manifest
    plan: Plan
    applied: bool
    kept_tables: dict[str, int] = field(default_factory=dict)  # a disabled edition's object tables -> their rows
    kept_fields: tuple[str, ...] = ()  # object.field it had added to objects of other layers, whose columns stay


def list_templates(settings: Settings) -> list[TemplateInfo]:
    """Every edition in the templates' folder, with what it adds and whether this site enables it."""
    enabled_in_db = _recorded(settings)
    found = []
    for name in available_templates(settings.template_folder):
        folder = settings.template_folder / name
        try:
            manifest, problems = read_manifest(folder), ()
        except MetadataError as e:
            manifest, problems = None, tuple(e.problems)
        by = tuple(source for source, names in ((DATABASE, enabled_in_db), (SETTING, settings.templates))
                   if name in names)
        found.append(TemplateInfo(name, manifest, problems, template_adds(folder), by, enabled_in_db.get(name)))
    return found


def enable_template(settings: Settings, name: str, dry_run: bool = False) -> TemplateChange | None:
    """Enable `name` in the database once its manifest's requirements are met and the site's metadata loads with
    it, applying the migrate plan (unless `dry_run`); None when the database enables it already."""
    engine = create_engine(settings.database_url)
    try:
        enabled = recorded(engine)
        if name in enabled:
            return None
        current = with_enabled(settings, engine)
        target = replace(current, templates=tuple(dict.fromkeys([*current.templates, name])))
        plan, _ = _migrate(target, dry_run)
        manifest = read_manifest(settings.template_folder / name)
        if not dry_run:
            record_enabled(engine, name, manifest.version)
        return TemplateChange(manifest, plan, not dry_run)
    finally:
        engine.dispose()


def disable_template(settings: Settings, name: str, dry_run: bool = False) -> TemplateChange:
    """Disable `name` in the database once the site's metadata loads without it (a site layer or another edition
    building on it refuses), applying the migrate plan unless `dry_run`: its tables and columns stay, with their
    data; nothing is dropped."""
    if name in settings.templates:
        raise Conflict(Message("template.enabled_by_setting", "{name} is enabled by OBJECTPLATFORM_TEMPLATES: take it "
                               "out of that setting", name=name))
    engine = create_engine(settings.database_url)
    try:
        if name not in recorded(engine):
            raise Conflict(Message("template.not_enabled", "{name} is not enabled in the database", name=name))
        current = with_enabled(settings, engine)
        target = replace(current, templates=tuple(t for t in current.templates if t != name))
        before = load_site_metadata(current)
        plan, after = _migrate(target, dry_run)
        manifest = read_manifest(settings.template_folder / name)
        kept_tables = _rows(engine, [obj for obj in before.objects if obj not in after.objects])
        kept_fields = tuple(f"{obj.name}.{f}" for obj in after.objects.values() if obj.name in before.objects
                            for f in before.objects[obj.name].fields if f not in obj.fields)
        if not dry_run:
            record_disabled(engine, name)
        return TemplateChange(manifest, plan, not dry_run, kept_tables, kept_fields)
    finally:
        engine.dispose()


def _recorded(settings: Settings) -> dict[str, str]:
    """The editions enabled in the site's database; none for a SQLite file not made yet."""
    db_only = replace(settings, templates=())
    if site_settings(db_only) is db_only:
        return {}
    engine = create_engine(settings.database_url)
    try:
        return recorded(engine)
    finally:
        engine.dispose()


def _migrate(target: Settings, dry_run: bool) -> tuple[Plan, Metadata]:
    """Plan the site's migration to `target`'s templates and apply it unless `dry_run`; MetadataError when the
    metadata does not load with them, MigrationRefused (nothing applied) when the plan holds a refusal."""
    platform = open_platform(target, load_site_metadata(target))
    try:
        plan = plan_migration(platform.engine, platform.schema)
        if plan.refusals:
            raise MigrationRefused(plan.refusals)
        if not dry_run:
            apply_migration(platform.engine, platform.schema, plan)
        return plan, platform.metadata
    finally:
        platform.close()


def _rows(engine: sa.Engine, objects: list[str]) -> dict[str, int]:
    """The rows of each object's table that the database holds."""
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        return {obj: conn.execute(sa.select(sa.func.count()).select_from(sa.table(obj))).scalar_one()
                for obj in sorted(objects) if obj in tables}


# --- templates new ------------------------------------------------------------------------------


def new_template(settings: Settings, name: str, label_zh: str | None = None, label_en: str | None = None,
                 apps: tuple[str, ...] = ()) -> list[Path]:
    """Write a new edition's folder: its manifest, an example extension (a field on the platform's users) and a
    test on the template test kit; return the files written."""
    if not template_name(name):
        raise BadRequest(Message("template.bad_name", "{name} is not a template name: use lowercase letters, digits "
                                 "and _, starting with a letter", name=name))
    folder = settings.template_folder / name
    if folder.exists():
        raise Conflict(Message("template.exists", "{folder} already exists: choose another name", folder=str(folder)))
    zh, en = label_zh or label_en or name, label_en or label_zh or name
    major, minor = platform_version().split(".")[:2]
    files = {
        MANIFEST: _MANIFEST.format(name=name, label=_flow({"zh": zh, "en": en}), requires=f'">={major}.{minor}"',
                                   apps=_flow(list(apps)), zh=_flow(f"{zh}：本行业版给基础 CRM 增加了什么（一句话）"),
                                   en=_flow(f"{en}: what this edition adds to the base CRM, in one sentence")),
        "object_defs/user.yaml": _EXTENSION.format(name=name, label=_flow({"zh": f"{zh}负责片区",
                                                                          "en": f"{en} territory"})),
        "flows/README.md": _FOLDER_NOTE.format(what="approval_flow, sales_process and rule documents"),
        "report_templates/README.md": _FOLDER_NOTE.format(what="report and dashboard documents"),
        "tests/conftest.py": _CONFTEST,
        f"tests/test_{name}.py": _TEST.format(name=name, zh=json.dumps(f"{zh}负责片区", ensure_ascii=False),
                                              en=json.dumps(f"{en} territory", ensure_ascii=False)),
    }
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _flow(value) -> str:
    """A value as YAML flow text (JSON is YAML)."""
    return json.dumps(value, ensure_ascii=False)


_MANIFEST = """\
# The manifest of the industry template {name} (docs/implementers.md). `objectplatform check` holds a site that
# enables it to what it requires.
kind: industry_template
name: {name}
label: {label}
version: "0.1.0"  # raise it with each release; migrate records the version it applied
description:
  zh: {zh}
  en: {en}
requires:
  objectplatform: {requires}  # the platform versions it runs on
  apps: {apps}  # the apps (OBJECTPLATFORM_APPS) whose objects it builds on
depends: []  # editions that must be enabled with it (their layers load first)
conflicts: []  # editions a site may not enable beside it
"""

_EXTENSION = """\
# An example extension: a field this edition adds to the platform's users. Extend the apps' objects the same way
# (object: <an object of the apps>); define new objects with kind: object, options with kind: picklist.
kind: object_extension
object: user
fields:
  {name}_territory:
    type: text
    label: {label}
    max_length: 100
"""

_FOLDER_NOTE = "This edition's {what} go here (docs/metadata.md).\n"

_CONFTEST = '''\
"""The template test kit's fixtures (objectplatform.testing): `edition_site` opens the engine's base, the apps,
editions and a site layer on a fresh database, on SQLite and, with OBJECTPLATFORM_TEST_DATABASE_URL, PostgreSQL."""

from objectplatform.testing import edition_backend, edition_site  # noqa: F401
'''

_TEST = '''\
"""{name}'s own tests, on the template test kit: `pytest industry_templates/{name}/tests`."""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2]  # the folder holding this edition


def test_users_get_the_territory_field(edition_site):
    site = edition_site(["{name}"], templates_path=TEMPLATES)
    territory = site.metadata.objects["user"].fields["{name}_territory"]
    assert (territory.label.zh, territory.label.en) == ({zh}, {en})
    user = site.create("user", username="kit_rep", display_name="Kit", {name}_territory="North")
    assert site.get("user", user["id"])["{name}_territory"] == "North"
'''
