"""Database schema -> the tables the metadata describes: a plan of additive operations, then one transaction.

(How it works: docs/engine.md, "objectplatform/runtime/storage/migrate.py".)"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import singledispatch
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql import operators

from objectplatform.metadata import FieldDef
from objectplatform.metadata.expressions import ExpressionError, parse

from ..fieldtypes import type_named
from . import access_stamp, search
from .derived import rollup_value, stored_formula_value
from .summaries import PREFIX as SUMMARY_PREFIX
from .tables import ObjectTable, Schema

VARCHAR = re.compile(r"VARCHAR\((\d+)\)")
NUMERIC = re.compile(r"NUMERIC\((\d+), (\d+)\)")
_Field = tuple[str, str]  # (object, field)

if TYPE_CHECKING:
    from alembic.operations import Operations
else:  # what `_execute`'s registrations name (singledispatch reads every annotation); alembic is imported to apply
    Operations = Any
SEARCH = "_search"  # the `_op_schema` row of an object's `search:` fields (no field name starts with "_")
TYPE_CHANGE = "changing a field's type is not supported: add a new field and copy the data"


@dataclass(frozen=True)
class CreateTable:
    table: str
    columns: int

    def render(self) -> str:
        return f"+ table {self.table} ({self.columns} columns)"


@dataclass(frozen=True)
class AddColumn:
    table: str
    column: str
    type: str

    def render(self) -> str:
        return f"+ column {self.table}.{self.column} {self.type}"


@dataclass(frozen=True)
class WidenColumn:
    """A longer VARCHAR or a wider NUMERIC; SQLite does not enforce them, so there only the record changes."""

    table: str
    column: str
    old: str
    new: str

    def render(self) -> str:
        return f"~ column {self.table}.{self.column} {self.old} -> {self.new}"


@dataclass(frozen=True)
class FillDefault:
    """Give the field's default to the existing rows that have no value."""

    table: str
    field: str
    default: Any
    rows: int

    def render(self) -> str:
        value = json.dumps(self.default, ensure_ascii=False)
        return f"~ fill {self.table}.{self.field} = {value} where empty ({_rows(self.rows)})"


@dataclass(frozen=True)
class ComputeField:
    """Compute a derived field on every existing row with one UPDATE (rows: how many the plan saw)."""

    table: str
    field: str
    how: str  # "rollup count of sales_order", "stored formula"
    rows: int

    def render(self) -> str:
        return f"~ compute {self.table}.{self.field} ({self.how}) for {_rows(self.rows)}"


@dataclass(frozen=True)
class ComputeLater:
    """A derived field the database cannot compute: existing rows get it when `when` happens."""

    table: str
    field: str
    how: str
    when: str  # "their next change", "the next change of their order_line records"
    reason: str

    def render(self) -> str:
        return f"= {self.table}.{self.field} ({self.how}) is computed for existing rows on {self.when}: {self.reason}"


@dataclass(frozen=True)
class FillTeam:
    """A field that became a record team: its members' `_op_team` rows, from the rows holding members
    (rows: how many the plan saw); one that stopped being a team: its rows removed (`clear`)."""

    table: str
    field: str
    rows: int
    clear: bool = False

    def render(self) -> str:
        if self.clear:
            return f"~ clear the team members of {self.table}.{self.field}"
        return f"~ fill the team members of {self.table}.{self.field} from {_rows(self.rows)}"


@dataclass(frozen=True)
class FillSearch:
    """An object whose `search:` fields changed, or whose terms were made another way (search.TERMS): the global
    search's terms of its rows, computed again (rows: how many the plan saw), and the fields and TERMS recorded in
    `_op_schema` under SEARCH."""

    table: str
    fields: tuple[str, ...]
    rows: int
    source: str

    def render(self) -> str:
        if not self.fields:
            return f"~ clear the search terms of {self.table}"
        return f"~ fill the search terms of {self.table} ({', '.join(self.fields)}) from {_rows(self.rows)}"


@dataclass(frozen=True)
class CreateIndex:
    table: str
    name: str
    columns: tuple[str, ...]  # "created_at DESC" for a descending key
    unique: bool = False
    reasons: tuple[str, ...] = ()  # what queries by it (storage/tables.py derives them)
    carried: tuple[str, ...] = ()  # columns it holds besides its keys, on PostgreSQL (INCLUDE)
    where: str = ""  # the rows it holds when not all (`converted_account IS NOT NULL`)

    def render(self) -> str:
        kind = "unique index" if self.unique else "index"
        why = f" for {'; '.join(self.reasons)}" if self.reasons else ""
        carried = f" carrying {', '.join(self.carried)} on PostgreSQL" if self.carried else ""
        where = f" where {self.where}" if self.where else ""
        return f"+ {kind} {self.name} on {self.table} ({', '.join(self.columns)}){where}{carried}{why}"


@dataclass(frozen=True)
class DropIndex:
    """An index of an object's table that nothing queries by any more (a field no longer unique, a list filter or a
    duplicate rule removed, a derivation that no longer wants it), or the search side table's former index by
    record: it goes, and inserts no longer maintain it."""

    table: str
    name: str

    def render(self) -> str:
        if self.name.startswith("uq_"):
            return f"- unique index {self.name} on {self.table} (no longer unique)"
        return f"- index {self.name} on {self.table} (nothing queries by it)"


@dataclass(frozen=True)
class AddForeignKey:
    """A reference column's foreign key to its target's id. PostgreSQL adds it after every table exists (the
    user<->department references make a cycle), on an existing table NOT VALID and then validated; SQLite has it in
    the table's CREATE TABLE or the column's ADD COLUMN, so there this operation runs nothing."""

    table: str
    column: str
    target: str
    name: str
    existing: bool = False  # a column that had rows before this migration

    def render(self) -> str:
        return f"+ foreign key {self.name} on {self.table} ({self.column}) -> {self.target} (id)"


@dataclass(frozen=True)
class DropForeignKey:
    """A removed reference field's foreign key (PostgreSQL): its column stays with its data, which the records service
    no longer clears or checks, so a delete of a record it names must not fail on it; or the old one of a reference
    whose target changed (a new one follows). SQLite cannot drop one."""

    table: str
    name: str
    why: str = "field removed from metadata"

    def render(self) -> str:
        return f"- foreign key {self.name} on {self.table} ({self.why})"


@dataclass(frozen=True)
class NoForeignKey:
    """SQLite cannot add a constraint to an existing table's column (it would have to rebuild the table): the
    reference stays guarded by the records service alone there; shown once, when the field is first recorded so."""

    table: str
    column: str
    target: str

    def render(self) -> str:
        return (f"= foreign key {self.table}.{self.column} -> {self.target} (id) not added: SQLite cannot add one to "
                "an existing column (a database created by this version has it)")


@dataclass(frozen=True)
class KeepColumn:
    """A column whose field left the metadata: kept with its data (the field's record says so)."""

    table: str
    column: str

    def render(self) -> str:
        return f"= column {self.table}.{self.column} kept (field removed from metadata)"


@dataclass(frozen=True)
class FillSummary:
    """Fill a summary table (storage/summaries.py) from its object's records: one INSERT ... SELECT ... GROUP BY
    (rows: how many records the plan saw)."""

    table: str
    how: str
    rows: int

    def render(self) -> str:
        return f"~ fill summary {self.table} ({self.how}) from {_rows(self.rows)}"


@dataclass(frozen=True)
class DropSummary:
    """A summary table no report declares any more, or whose measures changed (then made and filled again):
    derived data, computed again from the records whenever it is wanted."""

    table: str
    why: str

    def render(self) -> str:
        return f"- summary {self.table} ({self.why})"


@dataclass(frozen=True)
class StampWrites:
    """A trigger making every write to a table a user's access is made of bump the access stamp
    (storage/access_stamp.py)."""

    table: str

    def render(self) -> str:
        return f"+ trigger {self.table}: its writes bump the access stamp"


@dataclass(frozen=True)
class RecordField:
    """Write a field's applied state into `_op_schema`: the base the next plan compares against."""

    object: str
    field: str
    type: str
    spec: str  # JSON: {"columns": {name: type}, "required", "unique"} (+ "removed": true)
    source: str


Operation = (
    CreateTable
    | AddColumn
    | WidenColumn
    | FillDefault
    | ComputeField
    | ComputeLater
    | FillTeam
    | FillSearch
    | CreateIndex
    | DropIndex
    | AddForeignKey
    | DropForeignKey
    | NoForeignKey
    | KeepColumn
    | FillSummary
    | DropSummary
    | StampWrites
    | RecordField
)


@dataclass(frozen=True)
class Plan:
    ops: tuple[Operation, ...] = ()
    refusals: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.ops

    def render(self) -> str:
        """One line per operation; the field records are summed up in one last line."""
        lines = [op.render() for op in self.ops if not isinstance(op, RecordField)]
        if records := sum(isinstance(op, RecordField) for op in self.ops):
            lines.append(f"* record {records} field definition{'' if records == 1 else 's'}")
        lines.extend(f"! {refusal}" for refusal in self.refusals)
        return "\n".join(lines) or "nothing to do"

    def summary(self) -> str:
        """One line counting the operations by kind, e.g. "migrated: 20 tables, 150 indexes, 300 field
        definitions"; "nothing to do" for an empty plan."""
        counts: dict[type, int] = {}
        for op in self.ops:
            counts[type(op)] = counts.get(type(op), 0) + 1
        parts = [f"{counts[kind]} {nouns[counts[kind] != 1]}" for kind, nouns in _NOUNS.items() if kind in counts]
        return "migrated: " + ", ".join(parts) if parts else "nothing to do"


_NOUNS = {  # (one, several)
    CreateTable: ("table", "tables"), AddColumn: ("column", "columns"),
    WidenColumn: ("widened column", "widened columns"), FillDefault: ("default filled", "defaults filled"),
    ComputeField: ("derived field computed", "derived fields computed"),
    ComputeLater: ("derived field left for later", "derived fields left for later"),
    FillTeam: ("team filled", "teams filled"),
    CreateIndex: ("index", "indexes"), DropIndex: ("index dropped", "indexes dropped"),
    AddForeignKey: ("foreign key", "foreign keys"), DropForeignKey: ("foreign key dropped", "foreign keys dropped"),
    NoForeignKey: ("foreign key left out", "foreign keys left out"),
    FillSearch: ("search filled", "searches filled"),
    KeepColumn: ("column kept", "columns kept"), FillSummary: ("summary filled", "summaries filled"),
    DropSummary: ("summary dropped", "summaries dropped"), StampWrites: ("access trigger", "access triggers"),
    RecordField: ("field definition", "field definitions"),
}


class MigrationRefused(Exception):
    """The plan holds changes that could lose or break data; nothing was applied."""

    def __init__(self, refusals: tuple[str, ...]):
        super().__init__("\n".join(refusals))
        self.refusals = refusals


@dataclass(frozen=True)
class Applied:
    """A field as `_op_schema` recorded it."""

    type: str
    spec: dict
    source: str

    @property
    def removed(self) -> bool:
        return self.spec.get("removed", False)


def plan_migration(engine: sa.Engine, schema: Schema) -> Plan:
    """What `apply_migration` would do to bring the database to `schema`, and what it refuses to do."""
    with engine.connect() as conn:
        return _Planner(conn, schema).plan()


def apply_migration(engine: sa.Engine, schema: Schema, plan: Plan) -> None:
    """Execute `plan` in one transaction and record it; raises MigrationRefused if it holds refusals."""
    if plan.refusals:
        raise MigrationRefused(plan.refusals)
    if plan.empty:
        return
    # alembic (with mako and pygments, 0.4 s) is imported by the processes that change a schema, not by every
    # command, server and worker that only compares one with the metadata
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        for item in plan.ops:
            _execute(item, conn, op, schema)
        _record_fields(conn, schema, [item for item in plan.ops if isinstance(item, RecordField)])
        conn.execute(
            schema.migrations.insert().values(applied_at=datetime.now(UTC).replace(tzinfo=None), plan=plan.render())
        )


def migrate(engine: sa.Engine, schema: Schema, dry_run: bool = False) -> Plan:
    """Plan, then apply unless `dry_run`; a plan with refusals raises MigrationRefused and applies nothing."""
    plan = plan_migration(engine, schema)
    if plan.refusals:
        raise MigrationRefused(plan.refusals)
    if not dry_run:
        apply_migration(engine, schema, plan)
    return plan


def field_spec(ot: ObjectTable, f: FieldDef) -> dict:
    """What `_op_schema` records of a field besides its type: its columns' types, required, unique."""
    columns = {name: str(ot.table.c[name].type) for name in ot.columns.get(f.name, ())}
    target = next((fk.elements[0].column.table.name for fk in foreign_keys(ot.table)
                   if fk.column_keys == list(columns)), None)
    return {"columns": columns, "required": f.required, "unique": f.unique, **({"team": True} if f.team else {}),
            **({"foreign_key": target} if target else {})}


def foreign_keys(table: sa.Table) -> list[sa.ForeignKeyConstraint]:
    """The table's foreign keys (storage/tables.py), in a stable order."""
    return sorted(table.foreign_key_constraints, key=lambda fk: fk.name)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _source(f: FieldDef) -> str:
    return f"{f.source.file}:{f.source.line}"


def _index_columns(index: sa.Index) -> tuple[str, ...]:
    return tuple(
        f"{e.element.name} DESC" if getattr(e, "modifier", None) is operators.desc_op
        else f"{e.name}({', '.join(arg.name for arg in e.clauses)})" if isinstance(e, sa.sql.functions.Function)
        else e.name
        for e in index.expressions
    )


def index_names(conn: sa.Connection, inspector) -> dict[str, set[str]]:
    """Each table's index names. SQLite's inspector skips expression indexes (a duplicate rule's
    lower(name)), so there they come from sqlite_master."""
    if conn.dialect.name == "sqlite":
        names: dict[str, set[str]] = {t: set() for t in inspector.get_table_names()}
        for table, name in conn.execute(sa.text("SELECT tbl_name, name FROM sqlite_master "
                                                "WHERE type = 'index' AND sql IS NOT NULL")):
            names[table].add(name)
        return names
    return {t: {ix["name"] for ix in ixs} for (_, t), ixs in inspector.get_multi_indexes().items()}


class _Planner:
    """One pass over the schema against what the inspector and `_op_schema` say is there."""

    def __init__(self, conn: sa.Connection, schema: Schema):
        self.conn = conn
        self.schema = schema
        inspector = sa.inspect(conn)
        self.tables = set(inspector.get_table_names())
        self.db_columns = {t: {c["name"] for c in cols} for (_, t), cols in inspector.get_multi_columns().items()}
        self.db_indexes = index_names(conn, inspector)
        self.db_foreign_keys = {  # (table, column) -> (the table it references, the constraint's name)
            (t, fk["constrained_columns"][0]): (fk["referred_table"], fk["name"])
            for (_, t), fks in (inspector.get_multi_foreign_keys() if self.tables else {}).items()
            for fk in fks if len(fk["constrained_columns"]) == 1}
        self.foreign_key_ops: list[Operation] = []  # after every table and column exists
        self.applied = self._read_applied()
        self.counts: dict[str, dict[str | None, int]] = {}
        self.new_derived: set[_Field] = set()  # (object, field): derived fields given a new column or a new type
        self.ops: list[Operation] = []
        self.refusals: list[str] = []

    def _read_applied(self) -> dict[tuple[str, str], Applied]:
        applied = self.schema.applied
        if applied.name not in self.tables:
            return {}
        rows = self.conn.execute(sa.select(applied)).all()
        return {(r.object, r.field): Applied(r.type, json.loads(r.spec), r.source) for r in rows}

    def plan(self) -> Plan:
        objects = {ot.table.name for ot in self.schema.objects.values()}
        for table in self.schema.sa_metadata.tables.values():
            if table.name not in objects and table.name not in self.tables:
                self._create_table(table)
        for ot in self.schema.objects.values():
            if ot.table.name in self.tables:
                self._existing_table(ot)
            else:
                self._create_table(ot.table)
                self.ops.extend(self._record(ot, f) for f in ot.object.fields.values())
                self.foreign_key_ops.extend(AddForeignKey(ot.table.name, fk.column_keys[0],
                                                          fk.elements[0].column.table.name, fk.name)
                                            for fk in foreign_keys(ot.table))
        self.ops.extend(self.foreign_key_ops)
        self._search()
        self._removed_fields()
        self._compute_derived()
        self._summaries()
        self._access_stamp()
        return Plan(tuple(self.ops), tuple(self.refusals))

    def _summaries(self) -> None:
        """Summary tables no longer wanted dropped; a new one (made by `plan`'s first loop) or one whose measures
        changed (dropped and made again) filled from its object's records."""
        wanted = {s.table.name: s for found in self.schema.summaries.values() for s in found}
        for name in sorted(t for t in self.tables if t.startswith(SUMMARY_PREFIX) and t not in wanted):
            self.ops.append(DropSummary(name, "no report declares it any more"))
        for name, summary in wanted.items():
            if name in self.tables:
                if self.db_columns[name] == set(summary.columns):
                    continue
                self.ops.append(DropSummary(name, "its measures changed"))
                self._create_table(summary.table)
            source = self.schema[summary.object].table
            rows = self._counts(source)[None] if source.name in self.tables else 0
            self.ops.append(FillSummary(name, summary.describe(), rows))

    def _access_stamp(self) -> None:
        """A trigger on each table a user's access is made of that has none (a new table, a database migrated before
        the stamp came)."""
        have = access_stamp.stamped_tables(self.conn) if self.tables else set()
        self.ops.extend(StampWrites(table) for table in self.schema.stamped if table not in have)

    def _create_table(self, table: sa.Table) -> None:
        self.ops.append(CreateTable(table.name, len(table.columns)))
        self.ops.extend(self._create_index(table, index) for index in _sorted(table.indexes))

    def _create_index(self, table: sa.Table, index: sa.Index) -> CreateIndex:
        where = index.dialect_options["postgresql"]["where"]
        return CreateIndex(table.name, index.name, _index_columns(index), bool(index.unique),
                           index.info.get("reasons", ()), tuple(index.dialect_options["postgresql"]["include"] or ()),
                           "" if where is None else str(where.compile(compile_kwargs={"include_table": False})))

    def _record(self, ot: ObjectTable, f: FieldDef) -> RecordField:
        spec = json.dumps(field_spec(ot, f), sort_keys=True)
        return RecordField(ot.object.name, f.name, f.type, spec, _source(f))

    def _existing_table(self, ot: ObjectTable) -> None:
        table = ot.table
        for f in ot.object.fields.values():
            old = self.applied.get((ot.object.name, f.name))
            spec = field_spec(ot, f)
            if old is not None and old.type != f.type:
                if not (_is_derived(f) and self._nothing_typed(ot, old)):
                    self.refusals.append(
                        f"{_source(f)}: {ot.object.name}.{f.name} was {old.type}, now {f.type}: {TYPE_CHANGE}"
                    )
                    continue
                self.new_derived.add((ot.object.name, f.name))  # its values are computed again
            new_columns = [c for c in spec["columns"] if c not in self.db_columns[table.name]]
            self.ops.extend(AddColumn(table.name, c, spec["columns"][c]) for c in new_columns)
            if new_columns and _is_derived(f):
                self.new_derived.add((ot.object.name, f.name))
            for column, type_ in spec["columns"].items():
                previous = old.spec["columns"].get(column) if old is not None else None
                if previous is not None and previous != type_ and column not in new_columns:
                    self._change_column(ot, f, column, previous, type_)
            if len(spec["columns"]) == 1:
                (column,) = spec["columns"]
                if new_columns:  # every existing row is empty in a new column
                    self._fill(ot, f, self._counts(table)[None])
                elif f.required and (old is None or old.removed or not old.spec["required"]):
                    self._fill(ot, f, self._counts(table)[column])
                if f.unique and not new_columns:
                    self._check_duplicates(ot, f, column)
                if (old is not None and not new_columns and bool(f.team) != old.spec.get("team", False)
                        and self.schema.teams is not None):  # no team left: the side table is no longer read
                    counts = self._counts(table)
                    self.ops.append(FillTeam(ot.object.name, f.name, counts[None] - counts[column], clear=not f.team))
            if "foreign_key" in spec:
                self._foreign_key(ot, f, spec, old, new_columns)
            if old is None or old.removed or old.spec != spec:
                self.ops.append(self._record(ot, f))
        self.ops.extend(
            self._create_index(table, index)
            for index in _sorted(table.indexes)
            if index.name not in self.db_indexes[table.name]
        )
        wanted = {index.name for index in table.indexes}
        self.ops.extend(
            DropIndex(table.name, name)
            for name in sorted(self.db_indexes[table.name])
            if name.startswith((f"uq_{table.name}__", f"ix_{table.name}__")) and name not in wanted
        )

    def _nothing_typed(self, ot: ObjectTable, old: Applied) -> bool:
        """Whether a field becoming derived (a rollup or a stored formula) loses nothing by being computed again:
        it was derived already, or its one numeric column holds nothing but null and 0 (a placeholder)."""
        if old.type in ("rollup", "formula"):
            return True
        columns = list(old.spec["columns"].items())
        if len(columns) != 1 or not NUMERIC.fullmatch(columns[0][1]) or columns[0][0] not in ot.table.c:
            return False
        column = ot.table.c[columns[0][0]]
        kept = self.conn.execute(sa.select(sa.func.count()).where(column.is_not(None), column != 0)).scalar_one()
        return not kept

    def _foreign_key(self, ot: ObjectTable, f: FieldDef, spec: dict, old: Applied | None, new_columns: list) -> None:
        """The field's foreign key when the table lacks it: over existing rows only when every value names a
        record (else refused, listing the rows); on SQLite an existing column gets none (noted once)."""
        table = ot.table.name
        (column,) = spec["columns"]
        target = spec["foreign_key"]
        existing = self.db_foreign_keys.get((table, column))
        if existing is not None and existing[0] == target:
            return
        fk = next(fk for fk in foreign_keys(ot.table) if fk.column_keys == [column])
        if column in new_columns:
            self.foreign_key_ops.append(AddForeignKey(table, column, target, fk.name))
            return
        sqlite = self.conn.dialect.name == "sqlite"
        if existing is not None:  # the field's `to` changed
            if sqlite:
                self.refusals.append(
                    f"{_source(f)}: {ot.object.name}.{f.name} referenced {existing[0]}, now {target}: SQLite cannot "
                    "change a column's foreign key: add a new field and copy the data")
                return
            self.foreign_key_ops.append(DropForeignKey(table, existing[1], f"now referencing {target}"))
        if sqlite and old is not None and not old.removed and old.spec.get("foreign_key") == target:
            return  # noted when it was recorded
        self._refuse_orphans(ot, f, column, target)
        if sqlite:
            self.ops.append(NoForeignKey(table, column, target))
        else:
            self.foreign_key_ops.append(AddForeignKey(table, column, target, fk.name, existing=True))

    def _refuse_orphans(self, ot: ObjectTable, f: FieldDef, column: str, target: str) -> None:
        """A foreign key over rows naming records that do not exist is refused, with those rows' ids."""
        table = ot.table
        col = table.c[column]
        dangling = col.is_not(None)
        if target in self.tables:
            dangling &= ~sa.exists().where(self.schema.sa_metadata.tables[target].c.id == col)
        count = self.conn.execute(sa.select(sa.func.count()).select_from(table).where(dangling)).scalar_one()
        if not count:
            return
        ids = self.conn.execute(sa.select(table.c.id).where(dangling).order_by(table.c.id).limit(10)).scalars().all()
        listed = ", ".join(map(str, ids)) + (", ..." if count > len(ids) else "")
        self.refusals.append(
            f"{_source(f)}: {ot.object.name}.{f.name} names {target} records that do not exist in {_rows(count)} "
            f"(id {listed}): its foreign key cannot be added; point those rows at existing {target} records or "
            "empty the field, then migrate again"
        )

    def _change_column(self, ot: ObjectTable, f: FieldDef, column: str, old: str, new: str) -> None:
        """A longer VARCHAR or a wider NUMERIC of the same scale (a derived field's: any precision) is applied; any
        other change of a column's type is refused."""
        old_length, new_length = VARCHAR.fullmatch(old), VARCHAR.fullmatch(new)
        old_digits, new_digits = NUMERIC.fullmatch(old), NUMERIC.fullmatch(new)
        where = f"{_source(f)}: {ot.object.name}.{f.name}"
        if old_length and new_length and int(new_length[1]) > int(old_length[1]):
            self.ops.append(WidenColumn(ot.table.name, column, old, new))
        elif old_digits and new_digits and old_digits[2] == new_digits[2] and (
                int(new_digits[1]) > int(old_digits[1]) or _is_derived(f)):  # a computed value fits or fails
            self.ops.append(WidenColumn(ot.table.name, column, old, new))
        elif old_length and new_length:
            self.refusals.append(
                f"{where}: column {column} would shrink from {old} to {new}: existing values may not fit; "
                "keep the length or add a new field and copy the data"
            )
        else:
            self.refusals.append(f"{where}: column {column} would change from {old} to {new}: {TYPE_CHANGE}")

    def _fill(self, ot: ObjectTable, f: FieldDef, empty: int) -> None:
        """Rows without a value get the default; without one, a required field over them is refused."""
        if not empty:
            return
        if f.default is not None:
            self.ops.append(FillDefault(ot.table.name, f.name, f.default, empty))
            if f.unique and empty > 1:
                self.refusals.append(
                    f"{_source(f)}: {ot.object.name}.{f.name} is unique, but its default would give "
                    f"{empty} existing rows the same value: drop the default or the unique option"
                )
        elif f.required:
            self.refusals.append(
                f"{_source(f)}: {ot.object.name}.{f.name} is now required, but {_rows(empty)} "
                f"{'has' if empty == 1 else 'have'} no value: give the field a default (existing rows get it) "
                "or fill those rows first"
            )

    def _check_duplicates(self, ot: ObjectTable, f: FieldDef, column: str) -> None:
        """A unique index over data that repeats a value is refused, naming how many values repeat."""
        index = next(ix for ix in ot.table.indexes if ix.unique and _index_columns(ix) == (column,))
        if index.name in self.db_indexes[ot.table.name]:
            return
        col = ot.table.c[column]
        repeated = (
            sa.select(col, sa.func.count().label("n"))
            .where(col.is_not(None))
            .group_by(col)
            .having(sa.func.count() > 1)
            .subquery()
        )
        values = self.conn.execute(sa.select(sa.func.count()).select_from(repeated)).scalar_one()
        if not values:
            return
        example, rows = self.conn.execute(
            sa.select(repeated).order_by(repeated.c.n.desc(), repeated.c[column]).limit(1)
        ).one()
        self.refusals.append(
            f"{_source(f)}: {ot.object.name}.{f.name} is now unique, but {values} value"
            f"{' is' if values == 1 else 's are'} shared by several rows (e.g. {example!r} in {rows} rows): "
            "make the values distinct first"
        )

    def _counts(self, table: sa.Table) -> dict[str | None, int]:
        """Rows (key None), and rows with NULL per existing column, in one scan of the table."""
        if table.name not in self.counts:
            existing = [c for c in table.columns if c.name in self.db_columns[table.name]]
            stmt = sa.select(
                sa.func.count().label("_rows"),
                *(sa.func.count().filter(c.is_(None)).label(c.name) for c in existing),
            ).select_from(table)
            row = self.conn.execute(stmt).one()._mapping
            self.counts[table.name] = {None: row["_rows"], **{c.name: row[c.name] for c in existing}}
        return self.counts[table.name]

    def _compute_derived(self) -> None:
        """Derived fields given a new column over existing rows, and those reading them, in dependency order.

        Each is one UPDATE; one the database cannot compute (or that reads such a one) is a note instead.
        """
        reads = {
            (ot.object.name, f.name): self._reads(ot.object.name, f)
            for ot in self.schema.objects.values()
            if ot.table.name in self.tables
            for f in ot.object.fields.values()
            if _is_derived(f)
        }
        computed = {key for key in self.new_derived if self._row_count(key)}
        while more := {
            key for key, read in reads.items() if key not in computed and read & computed and self._row_count(key)
        }:
            computed |= more
        deferred: set[_Field] = set()
        now = datetime.now(UTC).replace(tzinfo=None)
        for key in self._in_order(computed, reads):
            ot = self.schema[key[0]]
            f = ot.object.fields[key[1]]
            waiting = sorted(reads[key] & deferred)
            reason = f"it reads {'.'.join(waiting[0])}, which this migration cannot compute" if waiting else None
            if reason is None:
                try:
                    _derived_value(self.schema, ot, f, now)  # raises when the database cannot compute it
                except ExpressionError as e:
                    reason = str(e)
            if reason is None:
                self.ops.append(ComputeField(ot.table.name, f.name, _how(f), self._row_count(key)))
            else:
                deferred.add(key)
                when = f"the next change of their {f.rollup.child} records" if f.rollup else "their next change"
                self.ops.append(ComputeLater(ot.table.name, f.name, _how(f), when, reason))

    def _in_order(self, keys: set[_Field], reads: dict[_Field, frozenset[_Field]]) -> list[_Field]:
        """`keys` each after the ones it reads; otherwise rollups first, then formulas, in metadata order."""
        ranked = sorted(
            (key for key in reads if key in keys),
            key=lambda key: self.schema[key[0]].object.fields[key[1]].rollup is None,
        )
        ordered: dict[_Field, None] = {}

        def visit(key: _Field, path: frozenset[_Field]) -> None:
            if key in ordered or key in path:
                return
            for dep in ranked:
                if dep in reads[key]:
                    visit(dep, path | {key})
            ordered[key] = None

        for key in ranked:
            visit(key, frozenset())
        return list(ordered)

    def _reads(self, obj: str, f: FieldDef) -> frozenset[_Field]:
        """The (object, field) pairs a derived field's value comes from."""
        if f.rollup is None:
            return self._through(obj, parse(f.expression).names)
        spec = f.rollup
        hops = [key.partition(".") for key in spec.filter]
        looked_up = {(self.schema[spec.child].object.fields[hop].to, far) for hop, _, far in hops if far}
        return self._through(spec.child, {spec.via, *(hop for hop, _, _ in hops),
                                          *([spec.field] if spec.field else [])}) | looked_up

    def _through(
        self, obj: str, names: set[str] | frozenset[str], seen: frozenset[str] = frozenset()
    ) -> frozenset[_Field]:
        """Fields of `obj` named, a formula computed on read standing for the fields it reads."""
        fields = self.schema[obj].object.fields
        found: set[_Field] = set()
        for name in names:
            f = fields.get(name)
            if f is not None and f.type == "formula" and not f.stored:
                if name not in seen:
                    found |= self._through(obj, parse(f.expression).names, seen | {name})
            else:
                found.add((obj, name))
        return frozenset(found)

    def _row_count(self, key: _Field) -> int:
        return self._counts(self.schema[key[0]].table)[None]

    def _search(self) -> None:
        """The objects whose `search:` fields differ from those recorded: their terms filled again (cleared when
        the object no longer declares any)."""
        if self.schema.search is None:  # no object is searched: the side table is no longer read
            return
        table = self.schema.search.name
        self.ops.extend(DropIndex(table, name) for name in sorted(self.db_indexes.get(table, ()))
                        if name == f"ix_{table}__object__record_id")  # removals now find rows by their key
        for ot in self.schema.objects.values():
            old = self.applied.get((ot.object.name, SEARCH))
            if (list(ot.object.search) != (old.spec["fields"] if old else [])
                    or ot.object.search and old.spec.get("terms") != search.TERMS):
                rows = self._counts(ot.table)[None] if ot.table.name in self.tables else 0
                self.ops.append(FillSearch(ot.table.name, ot.object.search, rows, str(ot.object.source)))

    def _removed_fields(self) -> None:
        """Fields recorded but gone from the metadata: their columns stay; the record says removed."""
        for (obj, name), old in self.applied.items():
            ot = self.schema.objects.get(obj)
            if old.removed or name == SEARCH or (ot is not None and name in ot.object.fields):
                continue
            self.ops.extend(KeepColumn(obj, column) for column in old.spec["columns"])
            if self.conn.dialect.name != "sqlite":  # nothing keeps the kept column's ids current any more
                self.ops.extend(DropForeignKey(obj, self.db_foreign_keys[(obj, column)][1])
                                for column in old.spec["columns"] if (obj, column) in self.db_foreign_keys)
            spec = json.dumps({**old.spec, "removed": True}, sort_keys=True)
            self.ops.append(RecordField(obj, name, old.type, spec, old.source))


def _sorted(indexes: set[sa.Index]) -> list[sa.Index]:
    return sorted(indexes, key=lambda ix: ix.name)


def _is_derived(f: FieldDef) -> bool:
    """A rollup or a stored formula: a column whose values come from other fields."""
    return f.rollup is not None or (f.type == "formula" and f.stored)


def _derived_value(schema: Schema, ot: ObjectTable, f: FieldDef, now: datetime) -> sa.ColumnElement:
    """A rollup's or stored formula's value for each row of its table, as SQL."""
    return rollup_value(schema, f, ot.table) if f.rollup else stored_formula_value(ot, f, now)


def _how(f: FieldDef) -> str:
    """How a derived field is computed, as the plan shows it: "rollup sum of order_line.subtotal where ..."."""
    if f.rollup is None:
        return "stored formula"
    spec = f.rollup
    conditions = [
        f"{name} is null"
        if value is None
        else f"{name} {'in' if isinstance(value, list) else '='} {json.dumps(value, ensure_ascii=False)}"
        for name, value in spec.filter.items()
    ]
    how = f"rollup {spec.function} of {spec.child}" + (f".{spec.field}" if spec.field else "")
    return f"{how} where {' and '.join(conditions)}" if conditions else how


@singledispatch
def _execute(item: Operation, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    """Operations without SQL of their own (ComputeLater, KeepColumn, RecordField) do nothing here."""


@_execute.register
def _(item: CreateTable, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    # SQLite: the foreign keys inline (it resolves the target when a row is written); PostgreSQL: AddForeignKey
    table = schema.sa_metadata.tables[item.table]
    inline = None if conn.dialect.name == "sqlite" else []
    conn.execute(sa.schema.CreateTable(table, include_foreign_key_constraints=inline))


@_execute.register
def _(item: AddColumn, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    column = schema.sa_metadata.tables[item.table].c[item.column]
    if conn.dialect.name == "sqlite" and column.foreign_keys:  # SQLite takes a foreign key with a new column only
        (fk,) = column.foreign_keys
        q = conn.dialect.identifier_preparer.quote
        conn.exec_driver_sql(
            f"ALTER TABLE {q(item.table)} ADD COLUMN {q(column.name)} {column.type.compile(conn.dialect)} "
            f"REFERENCES {q(fk.column.table.name)} (id) DEFERRABLE INITIALLY IMMEDIATE")
        return
    op.add_column(item.table, sa.Column(column.name, column.type, nullable=True))


@_execute.register
def _(item: DropForeignKey, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    q = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"ALTER TABLE {q(item.table)} DROP CONSTRAINT {q(item.name)}")


@_execute.register
def _(item: AddForeignKey, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    if conn.dialect.name == "sqlite":
        return
    q = conn.dialect.identifier_preparer.quote
    table, name = q(item.table), q(item.name)
    conn.exec_driver_sql(
        f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({q(item.column)}) REFERENCES {q(item.target)} (id) "
        f"DEFERRABLE INITIALLY IMMEDIATE{' NOT VALID' if item.existing else ''}")
    if item.existing:  # the plan found no dangling value; validating checks the rows under the migration's lock
        conn.exec_driver_sql(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


@_execute.register
def _(item: WidenColumn, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    if conn.dialect.name != "sqlite":
        column = schema.sa_metadata.tables[item.table].c[item.column]
        op.alter_column(item.table, item.column, type_=column.type, existing_nullable=True)


@_execute.register
def _(item: FillDefault, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    ot = schema.objects[item.table]
    column = ot.column(item.field)
    type_ = type_named(ot.object.fields[item.field].type)
    value = type_.to_db(type_.default_value(item.default))
    conn.execute(ot.table.update().where(column.is_(None)).values({column.name: value}))


@_execute.register
def _(item: ComputeField, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    ot = schema.objects[item.table]
    f = ot.object.fields[item.field]
    value = _derived_value(schema, ot, f, datetime.now(UTC).replace(tzinfo=None))
    conn.execute(ot.table.update().values({ot.column(f.name): value}))


@_execute.register
def _(item: FillTeam, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    team, ot = schema.teams, schema.objects[item.table]
    conn.execute(sa.delete(team).where(team.c.object == item.table, team.c.field == item.field))
    if item.clear:
        return
    column = ot.column(item.field).name
    members = ("json_each(t.{c}) AS j" if conn.dialect.name == "sqlite"
               else "LATERAL json_array_elements_text(CAST(t.{c} AS json)) AS j(value)").format(c=f'"{column}"')
    conn.execute(sa.text(
        f'INSERT INTO "{team.name}" (object, record_id, field, user_id) '
        f"SELECT DISTINCT :object, t.id, :field, CAST(j.value AS BIGINT) "
        f'FROM "{ot.table.name}" AS t CROSS JOIN {members} WHERE t."{column}" IS NOT NULL'
    ), {"object": item.table, "field": item.field})


@_execute.register
def _(item: FillSearch, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    ot = schema.objects[item.table]
    search.fill(conn, schema.search, ot.object, ot.table)
    applied = schema.applied
    conn.execute(applied.delete().where(applied.c.object == item.table, applied.c.field == SEARCH))
    conn.execute(applied.insert().values(object=item.table, field=SEARCH, type="search", source=item.source,
                                         spec=json.dumps({"fields": list(item.fields), "terms": search.TERMS})))


@_execute.register
def _(item: FillSummary, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    summary = next(s for found in schema.summaries.values() for s in found if s.table.name == item.table)
    summary.fill(conn, schema[summary.object].table)


@_execute.register
def _(item: StampWrites, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    access_stamp.stamp_writes(conn, schema.access_stamp, item.table)


@_execute.register
def _(item: DropSummary, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    op.drop_table(item.table)


@_execute.register
def _(item: CreateIndex, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    index = next(ix for ix in schema.sa_metadata.tables[item.table].indexes if ix.name == item.name)
    from alembic.operations import ops

    op.invoke(ops.CreateIndexOp.from_index(index))


@_execute.register
def _(item: DropIndex, conn: sa.Connection, op: Operations, schema: Schema) -> None:
    op.drop_index(item.name, table_name=item.table)


def _record_fields(conn: sa.Connection, schema: Schema, records: list[RecordField]) -> None:
    """Upsert the records: delete each object's recorded rows for these fields, then insert them all."""
    applied = schema.applied
    by_object: dict[str, list[str]] = {}
    for r in records:
        by_object.setdefault(r.object, []).append(r.field)
    for obj, fields in by_object.items():
        conn.execute(applied.delete().where(applied.c.object == obj, applied.c.field.in_(fields)))
    if records:
        conn.execute(
            applied.insert(),
            [
                {"object": r.object, "field": r.field, "type": r.type, "spec": r.spec, "source": r.source}
                for r in records
            ],
        )
