"""Object definitions -> SQLAlchemy Core tables: one table per object, one typed column per field.

Each field's columns come from its field type (`runtime/fieldtypes`). Indexes: every reference and picklist
column, `index`/`unique` fields (all the columns of one stored in several, such as a geolocation's lat and lng),
and composite indexes derived from each list view (filter column, then the sort columns, then id; the lifecycle
state after each field the data scope reads, when the list filters by it) so that a
filtered, sorted list page is one index range scan.

Foreign keys: every lookup, master_detail, user and department column references its target's id (DEFERRABLE
INITIALLY IMMEDIATE, no ON DELETE action). The records service does the deleting, clearing and cascading
(records/recycle_bin.py); the constraint is the guard that turns a mistake into an error instead of a dangling id.
Not covered: multi_user/multi_department (a JSON list) and a polymorphic pair of text fields such as a follow-up's
related_object/related_id, which no constraint can name; nor the system fields owner/created_by/updated_by (the
engine writes them from the signed-in user, and users are never deleted).
"""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import SYSTEM_FIELDS, Metadata, ObjectDef

from ..derived import per_metadata
from ..fieldtypes import MULTI_TYPES as MULTI_TYPES
from ..fieldtypes import REFERENCE_TYPES as REFERENCE_TYPES
from ..fieldtypes import FieldType, type_named, value_type
from .access_stamp import stamp_table, stamped_objects
from .search import search_table
from .summaries import Summary, scope_fields, summaries_of

PREFIX = "_op_"  # internal tables; object names may not start with it
# the types of the system fields' values: ids are references (the id itself a lookup's), version an integer
SYSTEM_TYPES = {"id": "lookup", "owner": "user", "created_by": "user", "updated_by": "user",
                "created_at": "datetime", "updated_at": "datetime", "version": "integer"}


def id_column() -> sa.Column:
    """A table's own id: a 64-bit integer on PostgreSQL, SQLite's INTEGER PRIMARY KEY (its rowid)."""
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True)


def system_columns() -> list[sa.Column]:
    return [
        id_column(),
        sa.Column("owner", sa.BigInteger()),
        sa.Column("created_by", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.BigInteger()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    ]


def index_name(prefix: str, table: str, columns: list[str]) -> str:
    """A readable index name that fits PostgreSQL's 63-character limit."""
    name = f"{prefix}_{table}__{'__'.join(columns)}"
    if len(name) <= 60:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[:49]}_{digest}"


def sort_keys(obj: ObjectDef, sort: tuple[str, ...] | list[str]) -> list[tuple[str, bool]]:
    """(column, descending) for a sort spec such as ("-amount", "name"), ending with id as the tie-break.

    id takes the direction of the last key unless the spec gives it, so one index (keys..., id) serves
    the page query.
    """
    keys, id_descending = [], None
    for item in sort:
        name = item.lstrip("-")
        if name == "id":
            id_descending = item.startswith("-")
            continue
        keys.append((name, item.startswith("-")))
    if id_descending is None:
        id_descending = keys[-1][1] if keys else False
    keys.append(("id", id_descending))
    return keys


@dataclass(frozen=True)
class ObjectTable:
    """An object's table and the column(s) behind each of its stored fields."""

    object: ObjectDef
    table: sa.Table
    columns: Mapping[str, tuple[str, ...]]  # field -> column names (geolocation has two)
    types: Mapping[str, FieldType]  # stored field -> the type of its values (a formula's: its result type)

    def column(self, field: str) -> sa.Column:
        """The single column of a field (system fields included)."""
        (name,) = self.columns[field]
        return self.table.c[name]

    # Built once and reused: building a statement (and its cache key) costs several times running it.
    @functools.cached_property
    def by_id(self) -> sa.Select:
        """The row whose id is the parameter `_id`."""
        return sa.select(self.table).where(self.table.c.id == sa.bindparam("_id"))

    def alias(self, name: str) -> sa.Alias:
        """The table under another name, made once per name: an alias builds a proxy of each column the first
        time one is read (about 0.1 ms per column of a wide table), which cost a report most of its run."""
        if name not in self._aliases:
            self._aliases[name] = self.table.alias(name)
        return self._aliases[name]

    @functools.cached_property
    def _aliases(self) -> dict[str, sa.Alias]:
        return {}

    @functools.cached_property
    def readers(self) -> tuple[tuple[str, str, Any], ...]:
        """How storage/convert.from_row reads each readable stored field, made once: (field, its column, the
        conversion of a non-null value or None when the value is as stored) for a field of one column, and
        (field, "", its type) for one of several columns or whose type reads its columns itself."""
        out = []
        for name, columns in self.columns.items():
            type_ = self.types[name]
            if not type_.readable:
                continue
            kind = type(type_)
            if len(columns) == 1 and kind.from_columns is FieldType.from_columns:
                out.append((name, columns[0], None if kind.from_db is FieldType.from_db else type_.from_db))
            else:
                out.append((name, "", type_))
        return tuple(out)

    @functools.cached_property
    def places(self) -> tuple[tuple[str, ...], Any, tuple[tuple[str, Any], ...], tuple[tuple[str, Any, tuple], ...]]:
        """How storage/convert.from_rows reads a row of the table's columns in their order, made once: the readable
        fields, a getter of their values by place (a field of several columns: its first; the system fields make
        it always several, so it gives a tuple), the (field, conversion) of those not read as stored, and the
        (field, type, places) of those read from several columns."""
        place = {column.name: i for i, column in enumerate(self.table.columns)}
        names, at, converted, combined = [], [], [], []
        for name, column, read in self.readers:
            names.append(name)
            at.append(place[column or self.columns[name][0]])
            if not column:
                combined.append((name, read, tuple(place[c] for c in self.columns[name])))
            elif read is not None:
                converted.append((name, read))
        return tuple(names), operator.itemgetter(*at), tuple(converted), tuple(combined)


class Schema:
    """Every object's table plus the platform's internal tables, built once from the metadata."""

    def __init__(self, metadata: Metadata):
        self.md = metadata
        self.sa_metadata = sa.MetaData()
        self.objects: dict[str, ObjectTable] = {
            obj.name: self._object_table(obj) for obj in metadata.objects.values()
        }
        self.history = sa.Table(
            f"{PREFIX}history", self.sa_metadata,
            id_column(),
            sa.Column("object", sa.String(64), nullable=False),
            sa.Column("record_id", sa.BigInteger(), nullable=False),
            sa.Column("change", sa.String(32), nullable=False),  # create | update | delete | action name
            sa.Column("field", sa.String(64)),
            sa.Column("old_value", sa.Text()),  # JSON
            sa.Column("new_value", sa.Text()),  # JSON
            sa.Column("user_id", sa.BigInteger()),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Index(f"ix_{PREFIX}history__record", "object", "record_id", "id"),
        )
        self.autonumbers = sa.Table(
            f"{PREFIX}autonumber", self.sa_metadata,
            sa.Column("object", sa.String(64), primary_key=True),
            sa.Column("field", sa.String(64), primary_key=True),
            sa.Column("period", sa.String(16), primary_key=True),
            sa.Column("value", sa.BigInteger(), nullable=False),
        )
        self.applied = sa.Table(  # what migrate last applied, per field: the base for the next diff
            f"{PREFIX}schema", self.sa_metadata,
            sa.Column("object", sa.String(64), primary_key=True),
            sa.Column("field", sa.String(64), primary_key=True),
            sa.Column("type", sa.String(32), nullable=False),
            sa.Column("spec", sa.Text(), nullable=False),  # JSON: column names and types, unique, required
            sa.Column("source", sa.String(500), nullable=False),
        )
        self.migrations = sa.Table(
            f"{PREFIX}migration", self.sa_metadata,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("applied_at", sa.DateTime(), nullable=False),
            sa.Column("plan", sa.Text(), nullable=False),
        )
        self.tokens = sa.Table(  # API tokens: only their sha256 is stored
            f"{PREFIX}token", self.sa_metadata,
            id_column(),
            sa.Column("token_hash", sa.String(64), nullable=False),
            sa.Column("user_id", sa.BigInteger(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("expires_at", sa.DateTime(), nullable=False),
            sa.Column("revoked_at", sa.DateTime()),
            sa.Column("last_used_at", sa.DateTime()),
            sa.Index(f"uq_{PREFIX}token__token_hash", "token_hash", unique=True),
            sa.Index(f"ix_{PREFIX}token__user_id", "user_id"),
        )
        self.access_stamp = stamp_table(self.sa_metadata, PREFIX)  # storage/access_stamp.py
        # the tables whose writes bump the access stamp (migrate gives each its trigger)
        self.stamped = tuple(self.objects[name].table.name for name in stamped_objects(metadata)
                             if name in self.objects)
        self.templates = template_table(self.sa_metadata)
        self.add_work_queue_tables()
        self.add_approval_tables()
        self.add_report_tables()
        self.add_recycle_bin_table()
        self.add_import_tables()
        self.add_comment_table()
        has_teams = any(f.team for o in metadata.objects.values() for f in o.fields.values())
        self.teams = self.team_table() if has_teams else None
        has_search = any(o.search for o in metadata.objects.values())
        self.search = search_table(self.sa_metadata, PREFIX) if has_search else None  # storage/search.py
        # object -> its summary tables (storage/summaries.py), for the reports declaring `summary:`
        self.summaries: dict[str, list[Summary]] = summaries_of(metadata, self.sa_metadata,
                                                                lambda obj: self.objects[obj].table)

    def team_table(self) -> sa.Table:
        """Who is on each record's team fields (相关团队, records/teams.py keeps it): the data scope finds a
        member's records by the (user_id, object, field, record_id) index."""
        return sa.Table(
            f"{PREFIX}team", self.sa_metadata,
            sa.Column("object", sa.String(64), primary_key=True),
            sa.Column("record_id", sa.BigInteger(), primary_key=True),
            sa.Column("field", sa.String(64), primary_key=True),
            sa.Column("user_id", sa.BigInteger(), primary_key=True),
            sa.Index(f"ix_{PREFIX}team__member", "user_id", "object", "field", "record_id"),
        )

    def add_recycle_bin_table(self) -> None:
        """Deleted records (records/recycle_bin.py): one row per delete, its records' rows kept as JSON."""
        self.recycle_bin = sa.Table(
            f"{PREFIX}recycle_bin", self.sa_metadata,
            id_column(),
            sa.Column("object", sa.String(64), nullable=False),
            sa.Column("record_id", sa.BigInteger(), nullable=False),
            sa.Column("title", sa.Text(), nullable=False),
            sa.Column("snapshot", sa.Text(), nullable=False),  # JSON: the rows, their children, what cascaded
            sa.Column("deleted_by", sa.BigInteger()),
            sa.Column("deleted_at", sa.DateTime(), nullable=False),
            sa.Index(f"ix_{PREFIX}recycle_bin__deleted_at", "deleted_at"),
            sa.Index(f"ix_{PREFIX}recycle_bin__object__record_id", "object", "record_id"),
        )

    def add_comment_table(self) -> None:
        """The comments on records (behaviors/comments.py): a thread per record, a reply naming its parent comment,
        the users it mentions (JSON list of ids)."""
        self.comments = sa.Table(
            f"{PREFIX}comment", self.sa_metadata,
            id_column(),
            sa.Column("object", sa.String(64), nullable=False),
            sa.Column("record_id", sa.BigInteger(), nullable=False),
            sa.Column("parent_id", sa.BigInteger()),
            sa.Column("author", sa.BigInteger(), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("mentions", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Index(f"ix_{PREFIX}comment__object__record_id__id", "object", "record_id", "id"),
        )

    def add_import_tables(self) -> None:
        """Import jobs and their committed batches (runtime/import_runs.py): what a resumed import skips."""
        self.imports = sa.Table(  # one row per import job, with the uploaded file itself
            f"{PREFIX}import", self.sa_metadata,
            sa.Column("id", sa.String(100), primary_key=True),  # the job id
            sa.Column("object", sa.String(64), nullable=False),
            sa.Column("user_id", sa.BigInteger(), nullable=False),
            sa.Column("file_name", sa.String(255), nullable=False),
            sa.Column("file_hash", sa.String(64), nullable=False),  # sha256 of the bytes: the same file again
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.Column("all_or_nothing", sa.Boolean(), nullable=False),
            sa.Column("defaults", sa.Text(), nullable=False),  # JSON
            sa.Column("status", sa.String(16), nullable=False),  # queued | running | finished | failed
            sa.Column("attempt", sa.Integer(), nullable=False),  # +1 on each resume; a stale runner's batch fails
            sa.Column("done", sa.Integer(), nullable=False),
            sa.Column("total", sa.Integer(), nullable=False),
            sa.Column("error", sa.Text()),
            sa.Column("result", sa.Text()),  # JSON: a finished job's result
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
            sa.Index(f"ix_{PREFIX}import__object__file_hash", "object", "file_hash"),
        )
        self.import_batches = sa.Table(  # committed with the batch's records: the idempotency key (job, file row)
            f"{PREFIX}import_batch", self.sa_metadata,
            sa.Column("job_id", sa.String(100), primary_key=True),
            sa.Column("first_row", sa.Integer(), primary_key=True),  # file row numbers
            sa.Column("last_row", sa.Integer(), nullable=False),
            sa.Column("rows", sa.Integer(), nullable=False),
            sa.Column("created", sa.Integer(), nullable=False),
            sa.Column("errors", sa.Text(), nullable=False),  # JSON: the result's errors of these rows
            sa.Column("warnings", sa.Text(), nullable=False),  # JSON: the result's warnings of these rows
        )

    def add_report_tables(self) -> None:
        """Personal reports (runtime/reports/personal.py): a `kind: report` definition saved by its owner; the
        reports users pin to their home."""
        self.reports = sa.Table(  # definition: the report as JSON, the structure of a report template
            f"{PREFIX}report", self.sa_metadata,
            id_column(),
            sa.Column("owner", sa.BigInteger(), nullable=False),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("label", sa.Text(), nullable=False),  # JSON {zh, en}
            sa.Column("definition", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.Index(f"uq_{PREFIX}report__owner__name", "owner", "name", unique=True),
        )
        self.home_pins = sa.Table(  # the reports a user pinned to their home (runtime/dashboards.py)
            f"{PREFIX}home_pin", self.sa_metadata,
            id_column(),
            sa.Column("user_id", sa.BigInteger(), nullable=False),
            sa.Column("report", sa.String(64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Index(f"uq_{PREFIX}home_pin__user_id__report", "user_id", "report", unique=True),
        )

    def add_work_queue_tables(self) -> None:
        """Notifications, to-dos (runtime/workqueue.py) and the rules' runs and matches (runtime/rules.py)."""
        open_ = sa.text("done_at IS NULL")
        self.notifications = sa.Table(  # dedupe_key is unique per user: a rule run twice notifies once
            f"{PREFIX}notification", self.sa_metadata,
            id_column(),
            sa.Column("user_id", sa.BigInteger(), nullable=False),
            sa.Column("title_zh", sa.Text(), nullable=False),
            sa.Column("title_en", sa.Text(), nullable=False),
            sa.Column("object", sa.String(64)),
            sa.Column("record_id", sa.BigInteger()),
            sa.Column("dedupe_key", sa.String(255), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("read_at", sa.DateTime()),
            sa.Index(f"uq_{PREFIX}notification__user_id__dedupe_key", "user_id", "dedupe_key", unique=True),
            sa.Index(f"ix_{PREFIX}notification__user_id__read_at__id", "user_id", "read_at", "id"),
        )
        self.todos = sa.Table(  # addressed to a user or to a role; dedupe_key unique per addressee while open
            f"{PREFIX}todo", self.sa_metadata,
            id_column(),
            sa.Column("user_id", sa.BigInteger()),
            sa.Column("role", sa.String(64)),
            sa.Column("kind", sa.String(32), nullable=False),  # reminder | task | approval | ...
            sa.Column("title_zh", sa.Text(), nullable=False),
            sa.Column("title_en", sa.Text(), nullable=False),
            sa.Column("object", sa.String(64)),
            sa.Column("record_id", sa.BigInteger()),
            sa.Column("action", sa.String(64)),
            sa.Column("approval_id", sa.BigInteger()),
            sa.Column("dedupe_key", sa.String(255), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("done_at", sa.DateTime()),
            sa.Column("done_by", sa.BigInteger()),
            sa.Index(f"uq_{PREFIX}todo__user_id__dedupe_key", "user_id", "dedupe_key", unique=True,
                     sqlite_where=open_, postgresql_where=open_),
            sa.Index(f"uq_{PREFIX}todo__role__dedupe_key", "role", "dedupe_key", unique=True,
                     sqlite_where=open_, postgresql_where=open_),
            sa.Index(f"ix_{PREFIX}todo__dedupe_key", "dedupe_key"),
        )
        self.rule_runs = sa.Table(  # every run of a rule, with its summary (JSON): the scheduler's memory
            f"{PREFIX}rule_run", self.sa_metadata,
            id_column(),
            sa.Column("rule", sa.String(64), nullable=False),
            sa.Column("ran_at", sa.DateTime(), nullable=False),
            sa.Column("summary", sa.Text(), nullable=False),
            sa.Index(f"ix_{PREFIX}rule_run__rule__ran_at", "rule", "ran_at"),
        )
        self.rule_matches = sa.Table(  # the records a rule's condition held for at its last run, since when
            f"{PREFIX}rule_match", self.sa_metadata,
            sa.Column("rule", sa.String(64), primary_key=True),
            sa.Column("record_id", sa.BigInteger(), primary_key=True),
            sa.Column("since", sa.DateTime(), nullable=False),
            sa.Column("seen", sa.DateTime(), nullable=False),  # the last run that found it holding
        )

    def add_approval_tables(self) -> None:
        """The approvals of records (runtime/approvals.py): one row per approval, one per approver of a step."""
        pending = sa.text("status = 'pending'")
        self.approvals = sa.Table(  # the definition it started with is kept: a YAML change leaves it alone
            f"{PREFIX}approval", self.sa_metadata,
            id_column(),
            sa.Column("object", sa.String(64), nullable=False),
            sa.Column("record_id", sa.BigInteger(), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),  # flow | stage (a sales-process stage approval)
            sa.Column("flow", sa.String(64), nullable=False),  # the flow's name (the process's, for a stage)
            sa.Column("definition", sa.Text(), nullable=False),  # JSON: the flow as it was when submitted
            sa.Column("title_zh", sa.Text(), nullable=False),
            sa.Column("title_en", sa.Text(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),  # pending | approved | rejected | withdrawn
            sa.Column("step", sa.Integer(), nullable=False),  # index of the step waiting (or that ended it)
            sa.Column("step_started_at", sa.DateTime(), nullable=False),
            sa.Column("remind_at", sa.DateTime()),  # when the waiting step's approvers get reminded (once)
            sa.Column("submitter", sa.BigInteger()),
            sa.Column("comment", sa.Text()),  # the submitter's
            sa.Column("started_at", sa.DateTime(), nullable=False),
            sa.Column("ended_at", sa.DateTime()),
            sa.Column("ended_by", sa.BigInteger()),
            sa.Column("end_comment", sa.Text()),  # the withdrawal's
            sa.Index(f"ix_{PREFIX}approval__object__record_id__id", "object", "record_id", "id"),
            sa.Index(f"ix_{PREFIX}approval__status__remind_at", "status", "remind_at"),
            sa.Index(f"uq_{PREFIX}approval__object__record_id__pending", "object", "record_id", unique=True,
                     sqlite_where=pending, postgresql_where=pending),  # one waiting approval per record
        )
        self.approval_steps = sa.Table(  # an approver of a step, their decision and comment
            f"{PREFIX}approval_step", self.sa_metadata,
            id_column(),
            sa.Column("approval_id", sa.BigInteger(), nullable=False),
            sa.Column("step", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("approver", sa.BigInteger(), nullable=False),
            sa.Column("decision", sa.String(16)),  # approved | rejected; null while waiting
            sa.Column("comment", sa.Text()),
            sa.Column("decided_at", sa.DateTime()),
            sa.Index(f"uq_{PREFIX}approval_step__approval_id__step__approver", "approval_id", "step", "approver",
                     unique=True),
        )

    def __getitem__(self, object_name: str) -> ObjectTable:
        return self.objects[object_name]

    def _object_table(self, obj: ObjectDef) -> ObjectTable:
        columns: dict[str, tuple[str, ...]] = {name: (name,) for name in SYSTEM_FIELDS}
        types = {name: type_named(SYSTEM_TYPES[name]) for name in SYSTEM_FIELDS}
        sa_columns = system_columns()
        for f in obj.fields.values():
            made = type_named(f.type).columns(f, self.md)
            columns_ = tuple(c.name for c in made)
            if columns_:
                columns[f.name], types[f.name] = columns_, value_type(f)
            sa_columns.extend(made)
        # AUTOINCREMENT: SQLite would otherwise give a deleted record's id (the highest) to the next new one, and its
        # restore from the recycle bin would find the id taken
        table = sa.Table(obj.name, self.sa_metadata, *sa_columns, sqlite_autoincrement=True)
        _add_indexes(obj, table, columns)
        for f in obj.fields.values():
            if f.type in REFERENCE_TYPES and f.to in self.md.objects and len(columns.get(f.name, ())) == 1:
                (column,) = columns[f.name]
                table.append_constraint(sa.ForeignKeyConstraint(
                    [column], [f"{f.to}.id"], name=index_name("fk", obj.name, [column]),
                    deferrable=True, initially="IMMEDIATE"))
        return ObjectTable(obj, table, columns, types)


def template_table(sa_metadata: sa.MetaData) -> sa.Table:
    """The industry templates enabled in this database (`objectplatform templates enable`), each with the version
    migrate last applied: every web and worker process reads it when it starts (runtime/industry_templates.py)."""
    return sa.Table(
        f"{PREFIX}template", sa_metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("enabled_at", sa.DateTime(), nullable=False),
    )


@per_metadata
def schema_of(metadata: Metadata) -> Schema:
    """The tables of `metadata`, shared by the platforms opened on it (SQLAlchemy tables do not belong to an engine)."""
    return Schema(metadata)


def caseless(obj: ObjectDef, name: str) -> bool:
    """Whether duplicate rules compare the field's values case-insensitively (a phone has no case)."""
    f = obj.fields.get(name)
    return f is not None and type_named(f.type).caseless


def _index_part(c: str | sa.ColumnElement) -> str:
    """An index part's name: the column, `name_desc` for a descending one, `lower_name` for lower(name)."""
    if isinstance(c, str):
        return c
    if isinstance(c, sa.sql.functions.Function):
        return f"{c.name}_{'_'.join(arg.name for arg in c.clauses)}"
    return f"{c.element.name}_desc"


def _add_indexes(obj: ObjectDef, table: sa.Table, columns: Mapping[str, tuple[str, ...]]) -> None:
    """Attach the indexes something queries the object's records by, each with why in `info["reasons"]` (migrate's
    plan prints them; docs/engine.md lists the reasons). A non-unique index that is a prefix of another is left out
    and its reasons go to the longest one. On PostgreSQL an index may also carry columns a condition on its rows
    reads (INCLUDE), so that counting them needs no visit to the table."""
    wanted: dict[tuple, tuple[list, bool, list[str]]] = {}  # key: (parts, unique, reasons)
    carried: dict[tuple, list[str]] = {}  # key: the columns it carries besides its keys

    def want(cols: list, reason: str, unique: bool = False, carry: tuple[str, ...] = ()) -> None:
        key = tuple(str(c) for c in cols)
        reasons = wanted.setdefault(key, (cols, unique, []))[2]
        if reason not in reasons:
            reasons.append(reason)
        if carry:
            carried.setdefault(key, []).extend(c for c in carry if c not in carried[key])

    sort_cols: list = []
    state = obj.lifecycle.field if obj.lifecycle is not None else None
    if obj.list_view is not None:
        keys = [(n, d) for n, d in sort_keys(obj, obj.list_view.sort) if len(columns.get(n, ())) == 1]
        sort_cols = [table.c[n].desc() if d else n for n, d in keys]
        want(sort_cols, f"list sort {', '.join(obj.list_view.sort) or 'id'}")
        for name in obj.list_view.filters:
            f = obj.fields.get(name)
            if (len(columns.get(name, ())) == 1 and name not in {n for n, _ in keys}
                    and (name in ("owner", state) or (f is not None and f.type in REFERENCE_TYPES))):
                want([name, *sort_cols], f"list filter {name}")
    if state is not None and len(columns.get(state, ())) == 1:
        want([state, *sort_cols], "lifecycle state")  # rules, pools and actions find records by it
    want(["owner", *sort_cols], "scope by owner")
    if obj.list_view is not None and state in obj.list_view.filters and len(columns.get(state, ())) == 1:
        # a rep's list filtered by state (我的线索's tabs), a pool's waiting records: one index range in the list's
        # order, and the total counted from the index alone
        for name in scope_fields(obj):
            if len(columns.get(name, ())) == 1:
                # a scope by another field (a pool's) reaches the records without an owner: it reads the owner too
                want([name, state, *sort_cols], f"list filter {state} within the scope by {name}",
                     carry=() if name == "owner" else ("owner",))
    for rule in obj.duplicate_rules:  # 查重 looks records up by all of a rule's fields at once
        if all(len(columns.get(n, ())) == 1 for n in rule.fields):
            want([sa.func.lower(table.c[n]) if caseless(obj, n) else n for n in rule.fields],
                 f"duplicate rule {rule.name}")
    for f in obj.fields.values():
        if f.name in columns and len(columns[f.name]) > 1 and f.index:  # a geolocation: (lat, lng) for a bounding box
            want(list(columns[f.name]), f"index: true on {f.name}")
        if f.name not in columns or len(columns[f.name]) != 1:
            continue
        if f.unique:
            want([f.name], "unique: true", unique=True)
        if f.index:
            want([f.name], "index: true")
        if f.type in REFERENCE_TYPES:
            want([f.name], f"references to {f.to}")
    for key, (cols, unique, reasons) in sorted(wanted.items(), key=lambda item: len(item[0])):  # shorter first
        longer = max((k for k in wanted if k != key and k[: len(key)] == key), key=len, default=None)
        if longer is not None and not unique:
            wanted[longer][2].extend(r for r in reasons if r not in wanted[longer][2])
            carried.setdefault(longer, []).extend(c for c in carried.get(key, ()) if c not in carried[longer])
            continue
        names = [_index_part(c) for c in cols]
        exprs = [table.c[c] if isinstance(c, str) else c for c in cols]
        extra = carried.get(key, [])
        options: dict = {"postgresql_include": extra} if extra else {}
        if _sparse_reference(obj, cols, reasons):
            names.append("not_null")
            options.update(postgresql_where=exprs[0].is_not(None), sqlite_where=exprs[0].is_not(None))
        sa.Index(index_name("uq" if unique else "ix", table.name, [*names, *(f"with_{c}" for c in extra)]), *exprs,
                 unique=unique, info={"reasons": tuple(reasons)}, **options)


def _sparse_reference(obj: ObjectDef, cols: list, reasons: list[str]) -> bool:
    """Whether an index is a reference's own, of an optional field: then it holds only the rows that name a record
    (`WHERE ref IS NOT NULL`). It serves `ref = x` and `ref IN (...)` alone (a deletion's search for its referrers, a
    related list, a rollup), which never match an empty reference, and a row without one (a lead not converted into
    an account) costs its insert no entry."""
    f = obj.fields.get(cols[0]) if len(cols) == 1 and isinstance(cols[0], str) else None
    return (f is not None and f.type in REFERENCE_TYPES and not f.required
            and all(reason.startswith("references to ") for reason in reasons))
