"""The `objectplatform` command: check metadata, migrate, run workers, create users, import CSV, back up and restore,
enable industry templates, serve, demo.

A thin face over the runtime services: every command reads `Settings.from_env()`, prints for humans,
and turns every expected failure into a message and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import sqlalchemy as sa
from redis.exceptions import RedisError

from objectplatform.metadata import MetadataError
from objectplatform.metadata.problems import closest
from objectplatform.runtime import RuntimeFailure, Settings, imports, open_platform
from objectplatform.runtime.actions import run_action
from objectplatform.runtime.apps import DemoUnavailable, find_apps
from objectplatform.runtime.attachment_store import attachment_store
from objectplatform.runtime.backup import create_backup, restore_backup
from objectplatform.runtime.industry_templates import record_versions, site_settings, site_templates
from objectplatform.runtime.jobs import worker as run_worker
from objectplatform.runtime.names import check_names
from objectplatform.runtime.permissions import access_for
from objectplatform.runtime.platform import Platform, job_platform, load_site_metadata, site_registry
from objectplatform.runtime.records.history import jsonable
from objectplatform.runtime.storage.migrate import (
    MigrationRefused,
    apply_migration,
    migrate,
    plan_migration,
)
from objectplatform.runtime.template_admin import (
    DATABASE,
    TemplateChange,
    disable_template,
    enable_template,
    list_templates,
    new_template,
)
from objectplatform.translations import LANGUAGES, message_text


class CommandError(Exception):
    """A mistake in the command's arguments or input, shown as `error: message`."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 success, 1 failure, 2 bad usage)."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except MetadataError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print(_count(len(e.problems), "problem") + " in the metadata", file=sys.stderr)
    except MigrationRefused as e:
        _print_refusal(e)
    except RuntimeFailure as e:
        print(f"error: {message_text(e.message, args.lang)}", file=sys.stderr)
        for name, messages in e.fields.items():
            for message in messages:
                print(f"  {name}: {message_text(message, args.lang)}", file=sys.stderr)
    except (CommandError, DemoUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
    except sa.exc.ArgumentError as e:
        print(f"error: OBJECTPLATFORM_DATABASE_URL is not a usable database URL: {e}", file=sys.stderr)
    except sa.exc.DBAPIError as e:
        print(f"database error: {str(e.orig).strip()}", file=sys.stderr)
        print(
            "(check OBJECTPLATFORM_DATABASE_URL; run `objectplatform migrate` if a table is missing)", file=sys.stderr
        )
    except RedisError as e:
        print(f"redis error: {e}", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="objectplatform",
        description="A metadata-driven object platform. Configuration: OBJECTPLATFORM_* environment variables.",
    )
    parser.add_argument("--lang", choices=LANGUAGES, default="en", help="the language of error messages (default: en)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], int] | None, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        if run is not None:  # None: its own subcommands set it
            sub.set_defaults(run=run)
        return sub

    command("check", check, "load the metadata of every layer and report every problem")
    sub = command("migrate", migrate_command, "bring the database in line with the metadata")
    sub.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sub = command("worker", worker, "run a background job worker on OBJECTPLATFORM_REDIS_URL")
    sub.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    sub = command("create-user", create_user, "create a user who can sign in")
    sub.add_argument("username")
    sub.add_argument("--password", required=True)
    sub.add_argument("--role", action="append", default=[], dest="roles", help="a role name (repeatable)")
    sub.add_argument("--department", help="the department's name")
    sub.add_argument("--manager", help="the manager's username")
    sub.add_argument("--display-name", help="the name shown in the product (default: the username)")
    sub = command("import", import_csv, "import records from a CSV, XLSX or vCard file (header: field names or labels)")
    sub.add_argument("object")
    sub.add_argument("file", type=Path)
    sub.add_argument("--all-or-nothing", action="store_true", help="import nothing if any row fails")
    sub.add_argument("--as", dest="as_user", metavar="USERNAME", help="the user who imports (and owns) the rows")
    sub = command("action", action_command, "run a named action on records as a user (as the API and pages do)")
    sub.add_argument("object")
    sub.add_argument("action")
    sub.add_argument("ids", nargs="+", metavar="ID", help="one record id, or several for a bulk action")
    sub.add_argument("--as", dest="as_user", metavar="USERNAME", required=True,
                     help="the user whose roles and data scope apply")
    sub.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="an action parameter (repeatable), e.g. --param handover_to=7")
    sub = command("edit", edit_command, "change fields of one record as a user (as the API and pages do)")
    sub.add_argument("object")
    sub.add_argument("id")
    sub.add_argument("--as", dest="as_user", metavar="USERNAME", required=True,
                     help="the user whose roles, data scope and lifecycle rules apply")
    sub.add_argument("--set", action="append", default=[], dest="values", metavar="FIELD=VALUE",
                     help="a field's new value (repeatable), e.g. --set remark=加急")
    sub.add_argument("--version", help="the version you read (default: the record's current one)")
    sub = command("rules", rules_command, "time-based rules: `rules run` runs each once, as the scheduler does")
    sub.add_argument("what", choices=["run"], help="run: run every scheduled rule (or those named) once")
    sub.add_argument("--now", metavar="ISO-DATETIME",
                     help="the moment to run as of, e.g. 2026-12-04T09:00 (no offset: OBJECTPLATFORM_TIMEZONE's time)")
    sub.add_argument("--rule", action="append", default=[], dest="rules", metavar="NAME",
                     help="a rule to run (repeatable; default: every scheduled rule)")
    sub = command("scheduler", scheduler_command, "run due rules as jobs: tick every minute (Ctrl+C stops)")
    sub.add_argument("--once", action="store_true", help="tick once and stop")
    sub = command("backup", backup_command, "write the database, the site's metadata layer and the attachments to "
                  "one new .tar.gz file (safe while the site runs)")
    sub.add_argument("path", type=Path, metavar="PATH", help="the file to write, e.g. backups/site-2026-12-07.tar.gz")
    sub = command("restore", restore_command, "restore a backup into the configured database (an empty one, unless "
                  "--force), site layer folder and attachments folder")
    sub.add_argument("path", type=Path, metavar="PATH", help="a file `objectplatform backup` wrote")
    sub.add_argument("--force", action="store_true",
                     help="replace the contents of a database that holds tables; move folders holding files aside")
    _templates_parser(command("templates", None, "industry templates: list them, enable or disable one for this "
                                                  "site's database, start a new one"))
    sub = command("serve", serve, "serve the web app and the API on the configured database, as it is "
                  "(needs OBJECTPLATFORM_SECRET_KEY)")
    _server_options(sub)
    sub = command("demo", demo, "migrate the database, load the demo company (once), then serve it")
    sub.add_argument("--no-serve", action="store_true", help="stop after loading")
    sub.add_argument("--template", metavar="NAME", help="enable this industry template in the database first and "
                     "load its own demo company (its demo/ folder) instead of the app's")
    _server_options(sub)
    return parser


def _templates_parser(parser: argparse.ArgumentParser) -> None:
    what = parser.add_subparsers(title="template commands", metavar="WHAT", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = what.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    command("list", templates_list, "the industry templates: version, what each adds, whether this site enables it")
    for name, run, help in (
        ("enable", templates_enable, "enable an industry template in the database (every web and worker process of "
                                     "the site loads it when it starts), then migrate"),
        ("disable", templates_disable, "disable an industry template in the database, then migrate: its tables and "
                                       "columns are kept with their data"),
    ):
        sub = command(name, run, help)
        sub.add_argument("name", metavar="NAME")
        sub.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sub = command("new", templates_new, "start a new industry template: a folder with a manifest, an example "
                                        "extension and a test on the template test kit")
    sub.add_argument("name", metavar="NAME", help="its folder's name, e.g. pharma")
    sub.add_argument("--label-zh", help="its Chinese name, e.g. 医药版")
    sub.add_argument("--label-en", help="its English name, e.g. Pharma edition")


def _server_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    sub.add_argument("--port", type=int, default=5000, help="the port to listen on (default: %(default)s)")
    sub.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default: %(default)s)")


# --- check, migrate, worker -------------------------------------------------------------------


def check(args: argparse.Namespace) -> int:
    """Load every layer and check the action names it uses; print the counts of what they define and the
    layers loaded: the engine's base, each app, each industry template (OBJECTPLATFORM_TEMPLATES's and the
    database's), the site's folder (problems are raised as MetadataError)."""
    settings = site_settings(Settings.from_env())
    md = load_site_metadata(settings)
    if problems := check_names(md, site_registry(settings)):
        raise MetadataError(problems)
    layers = [
        "base",
        *(f"app {app.name}" for app in find_apps(settings.apps)),
        *(f"template {name}" for name in site_templates(settings)),
        *([f"site {settings.custom_metadata}"] if settings.custom_metadata else []),
    ]
    print(
        f"ok: {_count(len(md.objects), 'object')}, {_count(len(md.picklists), 'picklist')}, "
        f"{_count(len(md.roles), 'role')}, {_count(len(md.flows), 'flow')}, {_count(len(md.reports), 'report')} "
        f"(layers: {', '.join(layers)})"
    )
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    """Print the plan; apply it unless --dry-run or it holds a refusal (then nothing is applied)."""
    platform = open_platform(Settings.from_env())
    try:
        plan = plan_migration(platform.engine, platform.schema)
        print(plan.render())
        if plan.refusals:
            print("migration refused: nothing was applied", file=sys.stderr)
            return 1
        if args.dry_run:
            if not plan.empty:
                print("dry run: nothing was applied")
            return 0
        if not plan.empty:
            apply_migration(platform.engine, platform.schema, plan)
            print("applied")
        for name, old, new in record_versions(platform.engine, platform.settings):
            print(f"industry template {name}: {old} -> {new}")
    finally:
        platform.close()
    return 0


# --- templates --------------------------------------------------------------------------------


def templates_list(args: argparse.Namespace) -> int:
    """One block per edition: name, version, label, whether enabled and by what, what it adds, what it needs."""
    settings = Settings.from_env()
    found = list_templates(settings)
    if not found:
        print(f"no industry templates in {settings.template_folder} (`objectplatform templates new NAME` starts one)")
        return 0
    print(f"industry templates in {settings.template_folder}:")
    for info in found:
        m = info.manifest
        if m is None:
            print(f"{info.name}  (not usable: {len(info.problems)} problem{'s' if len(info.problems) > 1 else ''} "
                  "in its manifest)")
            for problem in info.problems:
                print(f"  {problem}")
            continue
        enabled = f"enabled ({', '.join(info.enabled_by)})" if info.enabled_by else "not enabled"
        if info.applied is not None and info.applied != m.version:
            enabled += f", {info.applied} migrated: run `objectplatform migrate`"
        print(f"{m.name} {m.version}  {m.label.zh} · {m.label.en}  [{enabled}]")
        if m.description.zh:
            print(f"  {m.description.get(args.lang)}")
        adds = info.adds
        print(f"  adds {_count(adds.objects, 'object')}, {_count(adds.fields, 'field')}, "
              f"{_count(adds.reports, 'report')}, {_count(adds.flows, 'flow')}")
        needs = [f"objectplatform {m.requires}"] if m.requires else []
        needs += [f"app {app}" for app in m.apps] + [f"template {name}" for name in m.depends]
        if needs or m.conflicts:
            print(f"  requires {', '.join(needs) or 'nothing'}"
                  + (f"; conflicts with {', '.join(m.conflicts)}" if m.conflicts else ""))
    return 0


def templates_enable(args: argparse.Namespace) -> int:
    """Enable the edition in the database and migrate; print the plan and what to do next."""
    change = enable_template(Settings.from_env(), args.name, dry_run=args.dry_run)
    if change is None:
        print(f"{args.name} is already enabled in the database: nothing to do")
        return 0
    _print_change(change, f"enabled {_titled(change)}", args.dry_run)
    return 0


def templates_disable(args: argparse.Namespace) -> int:
    """Disable the edition in the database and migrate; print the plan and the data kept."""
    change = disable_template(Settings.from_env(), args.name, dry_run=args.dry_run)
    _print_change(change, f"disabled {_titled(change)}", args.dry_run)
    kept = [f"{name} ({_count(rows, 'row')})" for name, rows in change.kept_tables.items()]
    if kept or change.kept_fields:
        print("its data stays in the database, nothing is dropped:")
        if kept:
            print(f"  tables kept: {', '.join(kept)}")
        if change.kept_fields:
            print(f"  columns kept: {', '.join(change.kept_fields)}")
        print(f"  they leave the API, forms, imports and reports; `objectplatform templates enable {args.name}` "
              "brings them back with their data")
    return 0


def _titled(change: TemplateChange) -> str:
    m = change.manifest
    return f"{m.name} {m.version} ({m.label.zh} · {m.label.en})"


def _print_change(change: TemplateChange, done: str, dry_run: bool) -> None:
    print(change.plan.render())
    if dry_run:
        print("dry run: nothing was applied or recorded")
        return
    print(f"{'' if change.plan.empty else 'applied; '}{done} in the {DATABASE}")
    print("restart the web and worker processes of the site: they read the enabled templates when they start")


def templates_new(args: argparse.Namespace) -> int:
    """Write the new edition's folder; print its files and the next steps."""
    settings = Settings.from_env()
    apps = tuple(app.name for app in find_apps(settings.apps))
    written = new_template(settings, args.name, args.label_zh, args.label_en, apps)
    folder = settings.template_folder / args.name
    print(f"created {folder}:")
    for path in written:
        print(f"  {path.relative_to(folder)}")
    print(f"next: edit it, `OBJECTPLATFORM_TEMPLATES={args.name} objectplatform check`, "
          f"`pytest {folder / 'tests'}`, then `objectplatform templates enable {args.name}` (docs/implementers.md)")
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run an rq worker (with the scheduler) until stopped, or until the queue is empty with --burst."""
    settings = Settings.from_env()
    if not settings.redis_url:
        raise CommandError("OBJECTPLATFORM_REDIS_URL is not set: without Redis, jobs run in-process and need no worker")
    print(f"worker listening on {settings.redis_url}", flush=True)
    run_worker(settings.redis_url, burst=args.burst, preload=job_platform)
    return 0


def _print_refusal(e: MigrationRefused) -> None:
    print("migration refused; nothing was applied:", file=sys.stderr)
    for reason in e.refusals:
        print(f"  {reason}", file=sys.stderr)


# --- create-user ------------------------------------------------------------------------------


def create_user(args: argparse.Namespace) -> int:
    """Create a user through the records service, naming the department and manager as people know them."""
    platform = open_platform(Settings.from_env())
    try:
        roles = platform.metadata.roles
        for role in args.roles:
            if role not in roles:
                raise CommandError(f"unknown role {role!r}{_hint(role, roles)}; roles: {', '.join(roles)}")
        values: dict = {
            "username": args.username,
            "password": args.password,
            "display_name": args.display_name or args.username,
            "roles": args.roles,
        }
        if args.department:
            values["department"] = _department_id(platform, args.department)
        if args.manager:
            values["manager"] = _user_id(platform, args.manager)
        user = platform.records.create("user", values)
    finally:
        platform.close()
    details = [f"roles {', '.join(args.roles) or '(none)'}"]
    details += [f"department {args.department}"] if args.department else []
    details += [f"manager {args.manager}"] if args.manager else []
    print(f"created user {args.username} (id {user['id']}): {'; '.join(details)}")
    return 0


def _department_id(platform: Platform, name: str) -> str:
    """The id of the department called `name`; an error lists the known departments otherwise."""
    found = platform.records.list("department", filters={"name": name}, limit=2).items
    if len(found) == 1:
        return found[0]["id"]
    if found:
        raise CommandError(f"more than one department is called {name!r}")
    known = [d["name"] for d in platform.records.list("department", sort="name", limit=500).items]
    listing = ", ".join(known) if known else "(none yet)"
    raise CommandError(f"unknown department {name!r}{_hint(name, known)}; departments: {listing}")


def _user_id(platform: Platform, username: str) -> str:
    """The id of the user signing in as `username`."""
    found = platform.records.list("user", filters={"username": username}, limit=1).items
    if not found:
        raise CommandError(f"unknown user {username!r}")
    return found[0]["id"]


# --- action -----------------------------------------------------------------------------------


def _pairs(items: list[str], option: str, key: str) -> dict[str, str]:
    """`KEY=VALUE` arguments of a repeatable option as a mapping."""
    found: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandError(f"{option} {item!r}: write it as {key}=VALUE")
        found[name] = value
    return found


def action_command(args: argparse.Namespace) -> int:
    """Run the action through the same registry and checks as the API; print its result as JSON."""
    params = _pairs(args.param, "--param", "NAME")
    platform = open_platform(Settings.from_env())
    try:
        access = access_for(platform, _user_id(platform, args.as_user))
        target = args.ids[0] if len(args.ids) == 1 else list(args.ids)
        result = run_action(platform, access, args.object, args.action, target, params)
    finally:
        platform.close()
    print(json.dumps(jsonable(result), ensure_ascii=False, indent=2))
    return 1 if result.get("failed") else 0


def edit_command(args: argparse.Namespace) -> int:
    """Change fields through the records service as the user, held to the same rules as a PATCH."""
    values = _pairs(args.values, "--set", "FIELD")
    if not values:
        raise CommandError("give the fields to change with --set FIELD=VALUE")
    platform = open_platform(Settings.from_env())
    try:
        access = access_for(platform, _user_id(platform, args.as_user))
        if args.object not in platform.metadata.objects:
            raise CommandError(f"unknown object {args.object!r}{_hint(args.object, platform.metadata.objects)}")
        access.require(args.object, "edit")
        where = access.scope(args.object, platform.schema[args.object].table)
        version = args.version or platform.records.get(args.object, args.id, where=where)["version"]
        record = platform.records.within(access.scope).update(args.object, args.id, values, version=version,
                                                              user=access.user_id, where=where)
    finally:
        platform.close()
    print(json.dumps(jsonable(record), ensure_ascii=False, indent=2))
    return 0


# --- import -----------------------------------------------------------------------------------


def import_csv(args: argparse.Namespace) -> int:
    """Import a CSV, XLSX or vCard file (runtime/imports.py) with a progress bar; report failed rows by number."""
    platform = open_platform(Settings.from_env())
    try:
        obj = platform.metadata.objects.get(args.object)
        if obj is None:
            objects = platform.metadata.objects
            raise CommandError(f"unknown object {args.object!r}{_hint(args.object, objects)}")
        prepared = imports.prepare(obj, imports.read_path(args.file))
        user = _user_id(platform, args.as_user) if args.as_user else None
        bar = ProgressBar(sys.stderr)
        result = imports.run_import(platform, prepared, user=user, all_or_nothing=args.all_or_nothing, progress=bar)
        bar.finish()
    finally:
        platform.close()
    print(f"imported {result.created}, failed {len(result.errors)}")
    if result.errors and args.all_or_nothing:
        print("nothing was imported (--all-or-nothing)")
    for error in result.errors:
        print(f"row {error['row']}: {imports.row_report(error['fields'])}")
    if result.warnings:
        print(f"possible duplicates (imported) {len(result.warnings)}")
    for warned in result.warnings:
        print(f"row {warned['row']} ({args.object} {warned['id']}): {imports.warning_report(warned['warnings'])}")
    return 1 if result.errors else 0


class ProgressBar:
    """`[#######.....] 7000/10000 rows` on one terminal line, redrawn as rows are done."""

    def __init__(self, stream, width: int = 30):
        self.stream = stream
        self.width = width
        self.drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        if total:
            filled = self.width * min(done, total) // total
            text = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} rows"
        else:
            text = f"{done} rows"
        self.stream.write(f"\r{text}")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


# --- backup, restore ---------------------------------------------------------------------------


def backup_command(args: argparse.Namespace) -> int:
    """Write the backup; print what it holds."""
    settings = Settings.from_env()
    manifest = create_backup(settings, args.path)
    tables = manifest["tables"]
    print(f"backed up {_safe_url(settings.database_url)} ({manifest['backend']}: {_count(len(tables), 'table')}, "
          f"{_count(sum(tables.values()), 'row')})")
    if manifest["site_layer"]:
        print(f"  site metadata layer: {manifest['site_layer']}")
    print(f"  attachments: {_count(manifest['attachments'], 'file')} ({attachment_store(settings).where})")
    print(f"to {args.path} ({args.path.stat().st_size / 1e6:.1f} MB)")
    return 0


def restore_command(args: argparse.Namespace) -> int:
    """Restore the backup; print what was restored where and what was moved aside."""
    settings = Settings.from_env()
    done = restore_backup(settings, args.path, force=args.force)
    manifest = done["manifest"]
    print(f"restored the backup of {manifest['created_at']} (objectplatform {manifest['objectplatform_version']}, "
          f"{manifest['backend']})")
    print(f"  database: {_count(done['tables'], 'table')}, {_count(done['rows'], 'row')} "
          f"into {_safe_url(settings.database_url)}")
    if done["layer"]:
        print(f"  site metadata layer: into {done['layer']}")
    print(f"  attachments: {_count(done['attachments'], 'file')} into {attachment_store(settings).where}")
    for folder in done["moved"]:
        print(f"  moved aside: {folder}")
    print("next: `objectplatform check`, then `objectplatform migrate` (brings the database in line with this "
          "version's metadata)")
    return 0


# --- rules, scheduler -------------------------------------------------------------------------


def rules_command(args: argparse.Namespace) -> int:
    """Run the scheduled rules once as of --now (default: the platform's clock); print each rule's summary."""
    from objectplatform.runtime import rules
    from objectplatform.runtime.approvals import approval_reminders

    platform = open_platform(Settings.from_env())
    try:
        at = _moment(args.now, platform.settings.zone) if args.now else platform.clock.now()
        summaries = rules.run_rules(platform, at, args.rules or None)
        reminded = None if args.rules else approval_reminders(platform, at)  # as the scheduler's every tick
    finally:
        platform.close()
    zone = platform.settings.zone
    print(f"rules as of {at.astimezone(zone):%Y-%m-%d %H:%M} {zone.key} ({at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ})")
    for s in summaries:
        print(f"{s['rule']}: matched {s['matched']}, notified {s['notified']}, to-dos {s['todos']}, "
              f"closed {s['closed']}, updated {s['updated']}, recycled {s['recycled']}, warned {s['warned']}")
    if reminded is not None:
        print(f"approval reminders: {reminded}")
    return 0


def _moment(text: str, zone: tzinfo) -> datetime:
    """An ISO 8601 moment; without an offset it is in `zone`."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--now {text!r} is not an ISO 8601 date-time (e.g. 2026-12-04T09:00)") from None
    return at.replace(tzinfo=zone) if at.tzinfo is None else at


def scheduler_command(args: argparse.Namespace) -> int:
    """Tick every minute (or once): enqueue the run of each due rule as a job."""
    from objectplatform.runtime import scheduler

    settings = Settings.from_env()
    platform = open_platform(settings)
    try:
        if args.once:
            started = scheduler.tick(platform)
            print(f"started: {', '.join(started)}" if started else "no rule is due")
            return 0
        print(f"scheduler ticking every {scheduler.TICK_SECONDS} s "
              f"({'jobs on ' + settings.redis_url if settings.redis_url else 'jobs in-process'})", flush=True)
        stop = threading.Event()
        try:
            scheduler.run_forever(platform, stop, log=lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            stop.set()
    finally:
        platform.close()
    return 0


# --- serve, demo -----------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """Serve the configured database as it is; refuse without a secret key (anyone knowing the key can sign a
    session as any user) or when the database needs migrating (the server never migrates)."""
    settings = Settings.from_env()
    if not settings.secret_key:
        raise CommandError(
            "OBJECTPLATFORM_SECRET_KEY is not set: it signs the sessions of everyone who signs in, so it must be "
            "a long random value kept secret. Make one and set it in the server's environment, e.g.\n"
            "  export OBJECTPLATFORM_SECRET_KEY=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\"\n"
            "(`objectplatform demo` makes and keeps its own in the instance folder)"
        )
    platform = open_platform(settings)
    try:
        plan = plan_migration(platform.engine, platform.schema)
    finally:
        platform.close()
    if not plan.empty or plan.refusals:
        raise CommandError(
            f"the database at {_safe_url(settings.database_url)} is not in line with the metadata: "
            "run `objectplatform migrate` first (`objectplatform migrate --dry-run` shows what it would change)"
        )
    return _serve(settings, args)


def demo(args: argparse.Namespace) -> int:
    """Migrate; load the demo company of the first app that has one, unless the database already has users;
    print what was done; serve (without OBJECTPLATFORM_SECRET_KEY, with the instance's own random key)."""
    settings = Settings.from_env()
    found = [app.demo for app in find_apps(settings.apps) if app.demo is not None]
    if not found:
        raise CommandError(f"none of the apps ({', '.join(settings.apps)}) has demo data")
    folder = _template_demo(settings, args.template)
    # before migrating: raises DemoUnavailable when the demo cannot run here
    demo_users = found[0].users(folder) if folder else found[0].users()
    if args.template:
        change = enable_template(settings, args.template)
        print(f"enabled {_titled(change)} in the {DATABASE}" if change else f"{args.template} is already enabled")
    platform = open_platform(settings)
    try:
        plan = migrate(platform.engine, platform.schema)
        print(f"database: {_safe_url(settings.database_url)}")
        print(plan.summary())
        if platform.records.list("user", limit=1).total:
            print("the database already holds users: demo data not loaded")
            existing = {u["username"] for u in platform.records.list("user", limit=500).items}
            users = [u for u in demo_users if u.username in existing]
        else:
            started = time.perf_counter()
            result = found[0].load(platform, folder) if folder else found[0].load(platform)
            print(f"loaded the demo company in {time.perf_counter() - started:.1f} s:")
            for name, count in result.counts.items():
                print(f"  {platform.metadata.objects[name].label.zh} {name}: {count}")
            users = list(result.users)
        jobs = _jobs_of(platform, [u.username for u in users])
    finally:
        platform.close()
    if users:
        print("demo users (username / password, role · department · manager, as the demo created them):")
        name_width = max(len(u.username) for u in users)
        password_width = max(len(u.password) for u in users)
        shown_width = max(_width(u.display_name) for u in users)
        for u in users:
            shown = u.display_name + " " * (shown_width - _width(u.display_name))
            print(f"  {u.username:<{name_width}}  {u.password:<{password_width}}  {shown}  {jobs.get(u.username, '')}"
                  .rstrip())
    if args.no_serve:
        return 0
    return _serve(replace(settings, secret_key=settings.secret_key or settings.instance_secret_key()), args)


def _template_demo(settings: Settings, name: str | None) -> Path | None:
    """The industry template `name`'s own demo folder (its `demo/`), if it has one."""
    folder = settings.template_folder / name / "demo" if name else None
    return folder if folder is not None and folder.is_dir() else None


def _jobs_of(platform, usernames: list[str]) -> dict[str, str]:
    """Username -> "role · department · manager" (Chinese labels), so a newcomer sees whom to sign in as."""
    if not usernames:
        return {}
    records, roles = platform.records, platform.metadata.roles
    people = [u for u in records.list("user", limit=500, count=False).items if u["username"] in usernames]
    names = {u["id"]: u["display_name"] for u in people}
    departments = {d["id"]: d["name"] for d in records.list("department", limit=500, count=False).items}
    jobs = {}
    for person in people:
        parts = ["、".join(roles[r].label.zh if r in roles else r for r in person.get("roles") or ())]
        parts.append(departments.get(person.get("department"), ""))
        if manager := names.get(person.get("manager")):
            parts.append(f"经理 {manager}")
        jobs[person["username"]] = " · ".join(p for p in parts if p)
    return jobs


def _width(text: str) -> int:
    """Columns `text` takes in a terminal: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run gunicorn on create_app(open_platform(settings)) until stopped; each worker opens its own platform."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("timeout", 120)
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("worker_exit", lambda server, worker: gc.freeze())  # as `run` does for the master
            self.cfg.set("limit_request_line", 8190)  # gunicorn's most: the app refuses long URLs itself (414)
            self.cfg.set("proc_name", "objectplatform")
            if "control_socket_disable" in self.cfg.settings:  # gunicorn 24+: one shared socket path per user
                self.cfg.set("control_socket_disable", True)

        def load(self):
            from objectplatform.web import create_app

            return create_app(open_platform(settings))

    embedded = not settings.redis_url  # then nobody else runs the scheduler: a thread here does
    print(f"serving http://{args.host}:{args.port}/ with {_count(args.workers, 'worker')}"
          f"{' and the rule scheduler' if embedded else ''} (Ctrl+C stops)", flush=True)
    if embedded:
        from objectplatform.runtime import scheduler

        scheduler.start_thread(settings)
    Server().run()
    return 0


# --- helpers ----------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _hint(word: str, choices) -> str:
    match = closest(word, list(choices))
    return f" (did you mean {match!r}?)" if match else ""


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def run() -> None:
    """The `objectplatform` command: main()'s status as the process's exit status. Its objects are frozen first
    (`gc.freeze`): the interpreter's last collections at exit then skip them, which cost a server or a worker a
    second of CPU each, a served worker past gunicorn's graceful timeout (killed, not stopped)."""
    try:
        status = main()
    finally:
        gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    run()
