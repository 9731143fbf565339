"""The records service: the only way data is written, each operation one transaction.

(How it works: docs/engine.md, "objectplatform/runtime/records/service.py".)"""

from __future__ import annotations

import base64
import copy
import mimetypes
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from objectplatform.metadata import Label, Metadata, ObjectDef
from objectplatform.metadata.expressions import ExpressionError, parse

from .. import lifecycles
from ..attachment_store import AttachmentStore
from ..derived import per_metadata
from ..errors import Conflict, Message, NotFound, RuntimeFailure, ValidationFailed, no_record, said_name, said_object
from ..permissions import access_for
from ..storage.convert import field_type, from_row, to_row
from ..storage.engine import reading
from ..storage.id_sets import among
from ..storage.tables import ObjectTable, schema_of
from ..validation import build_validators
from . import history, history_sql, hooks, recycle_bin
from .autonumber import AutoNumber, reserve
from .bulk import RowMaker, batches, frozen_heap, insert_columns
from .formulas import Formulas
from .masking import FieldMask, HeldValidators, field_mask
from .query import formula_columns, list_page
from .rollups import Rollups

MAX_ID = 2**63 - 1
DERIVED_TYPES = frozenset({"formula", "rollup"})  # recomputed, so not written to the history
PENDING_PARENT = "1"  # stands in for the parent's id while inline child lines are validated
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (\w+)\.(\w+)")
Errors = dict[str, list[str]]
validators_of = per_metadata(build_validators)  # shared by the platforms opened on one Metadata


@dataclass
class Page:
    items: list[dict]
    next_cursor: str | None
    total: int | None
    total_is_exact: bool  # False: beyond Settings.exact_total_limit matches, `total` is the database's estimate


@dataclass
class RowError:
    index: int  # 0-based position of the row in the input
    fields: Errors


@dataclass
class BulkResult:
    created: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the before_create_many hooks' (a daily cap passed)


def _add(errors: Errors, more: Mapping[str, list[str]], prefix: str = "") -> None:
    for name, messages in more.items():
        errors.setdefault(prefix + name, []).extend(messages)


def parse_record_id(value: Any) -> int | None:
    """`value` as a record id (a positive integer up to MAX_ID), or None when it cannot be one."""
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID else None


@dataclass(frozen=True)
class _Shared:
    """What every Records service of one Metadata builds alike (see `_shared`)."""

    formulas: Mapping[str, Formulas]
    children: Mapping[str, list[tuple[str, str]]]  # parent -> [(child object, master_detail field)]
    auto_numbers: Mapping[str, list[tuple[str, AutoNumber]]]
    row_makers: Mapping[str, RowMaker]
    lifecycles: lifecycles.Guard
    rule_paths: Mapping[str, list[str]]  # the paths through lookups (order_line.sales_order) each object's rules read
    unique_constraints: Mapping[str, tuple[str, str]]  # unique index -> (object, column)
    references_among: dict[tuple[str, ...], sa.Select]  # `Records._existing`'s statement by its objects, made on use


@per_metadata
def _shared(metadata: Metadata) -> _Shared:
    """The parts of a Records service made from its metadata and schema alone, made once per Metadata: a platform
    is opened per request thread, per job and per test, and these cost it 20 ms."""
    schema = schema_of(metadata)
    children: dict[str, list[tuple[str, str]]] = {}
    for obj in metadata.objects.values():
        for f in obj.fields.values():
            if f.type == "master_detail":
                children.setdefault(f.to, []).append((obj.name, f.name))
    return _Shared(
        formulas={name: Formulas(obj) for name, obj in metadata.objects.items()},
        children=children,
        auto_numbers={name: [(f.name, AutoNumber(f.pattern)) for f in obj.fields.values() if f.type == "auto_number"]
                      for name, obj in metadata.objects.items()},
        row_makers={name: RowMaker(ot) for name, ot in schema.objects.items()},
        lifecycles=lifecycles.Guard(metadata),
        rule_paths={name: sorted({n for r in obj.validation_rules for n in parse(r.condition).names if "." in n})
                    for name, obj in metadata.objects.items()},
        unique_constraints={idx.name: (name, column.name) for name, ot in schema.objects.items()
                            for idx in ot.table.indexes if idx.unique for column in idx.columns},
        references_among={},
    )


class Records:
    """create / create_many / get / update / delete / list / history of any object's records."""

    def __init__(self, platform):
        self.platform = platform  # for hooks that need another service (the approval engine)
        self.engine: sa.Engine = platform.engine
        self.schema = platform.schema
        self.metadata = platform.metadata
        self.attachments: AttachmentStore = platform.attachments
        self.validators = validators_of(self.metadata)
        shared = _shared(self.metadata)
        self.formulas = shared.formulas
        self.rollups = Rollups(self.metadata, self.schema, self.formulas)
        self.rollups.records = self
        self.children = shared.children
        self.auto_numbers = shared.auto_numbers
        self.row_makers = shared.row_makers
        self.lifecycles = shared.lifecycles
        self.rule_paths = shared.rule_paths
        self.reference_scope: Callable[[str, sa.Table], ColumnElement[bool] | None] | None = None
        self.caller = None  # the Access of `within`: its writes are held to the caller's field levels
        self.unique_constraints = shared.unique_constraints
        self.references_among = shared.references_among

    def within(self, caller) -> Records:
        """This service for one caller (their `Access`): a reference may only name a record their data scope
        admits (any other is "no <object> with id N", as if it did not exist), and a write may not change a
        field their roles let them only read, nor give one they may not see (records/masking.py).
        Given a bare `scope(object, table)` instead, only references are held to it."""
        view = copy.copy(self)
        view.reference_scope = getattr(caller, "scope", caller)
        if hasattr(caller, "field_levels"):
            view.caller = caller
            view.validators = HeldValidators(self.validators, lambda obj: self.mask(obj, caller))
        return view

    def mask(self, obj: str, access) -> FieldMask:
        """What `access` (None: the system) may see and change of `obj`'s fields, made once per access."""
        return field_mask(self.platform, access, obj)

    # ------------------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction for several operations: pass the connection as `conn=`. A foreign key the database
        refuses (at a statement or at the commit) is a 409 record.referenced."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.IntegrityError as e:
            raise recycle_bin.foreign_key_conflict(self, e) or e from None

    @contextmanager
    def _writing(self, conn: sa.Connection | None, saved: list[str]) -> Iterator[sa.Connection]:
        """The caller's transaction, or a new one; files saved for a failed operation are removed; a foreign key the
        database refuses is a 409 record.referenced."""
        try:
            if conn is not None:
                yield conn
            else:
                with self.engine.begin() as own:
                    yield own
        except BaseException as e:
            self._remove_files(saved)
            if isinstance(e, sa.exc.IntegrityError):
                raise recycle_bin.foreign_key_conflict(self, e) or e from None
            raise

    @contextmanager
    def _reading(self, conn: sa.Connection | None) -> Iterator[sa.Connection]:
        if conn is not None:
            yield conn
        else:
            with reading(self.engine) as own:
                yield own

    def _access(self, user: str, conn: sa.Connection):
        """The access of `user` (who may edit what a lifecycle state locks)."""
        return access_for(self.platform, user, conn)

    def _action_labels(self, obj: str) -> dict[str, Label]:
        """The labels of `obj`'s actions, which name a transition that has none of its own (read only when a
        message names one)."""
        from ..actions import actions_service  # (actions import auth, which imports records: here on first use)

        return actions_service(self.platform).labels(obj)

    def _table(self, obj: str) -> ObjectTable:
        if obj not in self.schema.objects:
            raise NotFound(Message("object.unknown", "unknown object {object}", object=obj))
        return self.schema[obj]

    # ------------------------------------------------------------------------------------ reads

    def get(self, obj: str, id: Any, *, where=None, seen_by=None, conn: sa.Connection | None = None) -> dict:
        """The record with its formulas and inline child lines; NotFound when there is none.

        `where` (a condition on the object's table, such as the caller's data scope) makes a record
        it excludes NotFound too, in the same query; `seen_by` (an Access) masks what it may not see.
        """
        ot = self._table(obj)
        with self._reading(conn) as c:
            record = self._read(c, ot, id, where=where)
            if record is None:
                raise NotFound(no_record(ot.object, id))
            return record if seen_by is None else self.masked(obj, record, seen_by)

    def read_many(self, conn: sa.Connection, obj: str, ids: Iterable[Any], *, where=None,
                  lock: bool = False, fields: Iterable[str] | None = None) -> dict[str, dict]:
        """{id: record} of the records among `ids` that exist (and that `where` holds), as `get` gives them, in
        one query per table; `lock` takes their row locks for a write in `conn`. Given `fields` (stored ones), only
        those and the id are read, as they are stored (no formula, no lines)."""
        ot = self._table(obj)
        wanted = sorted({i for i in map(parse_record_id, ids) if i is not None})
        if fields is not None:
            names = ["id", *(name for name in dict.fromkeys(fields) if name != "id")]
            stmt = sa.select(*(ot.table.c[c] for name in names for c in ot.columns[name])).where(
                among(ot.table.c.id, wanted)).order_by(ot.table.c.id)
            stmt = stmt if where is None else stmt.where(where)
            spans, at = [], 0  # each field's converter and its columns' positions in a row
            for name in names:
                width = len(ot.columns[name])
                spans.append((name, ot.types[name].from_columns, at, at + width))
                at += width
            rows = conn.execute(stmt.with_for_update() if lock else stmt).all()
            if at == len(names):  # a column each: its value converted as it is (no tuple made per field)
                singles = [(name, ot.types[name].from_db, start) for name, _, start, _ in spans]
                return {str(row[0]): {name: None if row[i] is None else convert(row[i]) for name, convert, i in singles}
                        for row in rows}
            return {str(row[0]): {name: convert(row[start:end]) for name, convert, start, end in spans}
                    for row in rows}
        stmt = sa.select(ot.table).where(among(ot.table.c.id, wanted)).order_by(ot.table.c.id)
        stmt = stmt if where is None else stmt.where(where)
        now = self.platform.local_now()
        rows = conn.execute(stmt.with_for_update() if lock else stmt).mappings()
        records = {str(row["id"]): self.formulas[obj].on_read(from_row(ot, row), now) for row in rows}
        for child, via in self.children.get(obj, ()):
            cot = self.schema[child]
            for record in records.values():
                record[child] = []
            lines = conn.execute(sa.select(cot.table).where(among(cot.column(via), records))
                                 .order_by(cot.table.c.id)).mappings()
            for line in lines:
                records[str(line[cot.column(via).name])][child].append(
                    self.formulas[child].on_read(from_row(cot, line), now))
        return records

    def masked(self, obj: str, record: Mapping[str, Any], access) -> dict:
        """`record` (with its inline child lines) as `access` may see it (records/masking.py)."""
        out = dict(self.mask(obj, access)(record))
        for child, _via in self.children.get(obj, ()):
            if child in out:
                out[child] = [self.mask(child, access)(line) for line in out[child]]
        return out

    def _read(self, conn: sa.Connection, ot: ObjectTable, id: Any, lock: bool = False, where=None,
              lines: bool = True) -> dict | None:
        """The record as `get` gives it (without its inline child lines unless `lines`), None when there is none."""
        record_id = parse_record_id(id)
        if record_id is None:
            return None
        stmt = ot.by_id if where is None else ot.by_id.where(where)
        row = conn.execute(stmt.with_for_update() if lock else stmt, {"_id": record_id}).mappings().first()
        if row is None:
            return None
        now = self.platform.local_now()
        record = self.formulas[ot.object.name].on_read(from_row(ot, row), now)
        for child, via in self.children.get(ot.object.name, ()) if lines else ():
            cot = self.schema[child]
            rows = conn.execute(
                sa.select(cot.table).where(cot.column(via) == record_id).order_by(cot.table.c.id)
            ).mappings()
            record[child] = [self.formulas[child].on_read(from_row(cot, r), now) for r in rows]
        return record

    def list(self, obj: str, *, filters: Mapping[str, str] | None = None, q: str | None = None,
             sort: str | None = None, limit: int | str = 50, cursor: str | None = None, where=None,
             count: bool = True, exact_total: bool = False, seen_by=None, scope=None,
             conn: sa.Connection | None = None) -> Page:
        """A page of records (see records/query.py for the filters, search, sort and cursor); the
        total is None unless `count`, and beyond the settings' exact_total_limit an estimate unless `exact_total`.
        `seen_by` (an Access) masks what it may not see, and its filters, search and sort cannot find or order
        records by it. `scope` (an Access) keeps the records to its data scope, besides `where`: a filter that pins
        the owner to one the scope reaches keeps them there alone (Access.scope's `owner`)."""
        ot = self._table(obj)
        if scope is not None:
            pinned = None if filters is None else filters.get("owner", filters.get("owner__eq"))
            reached = scope.scope(obj, ot.table, owner=pinned)
            where = reached if where is None else where if reached is None else sa.and_(reached, where)
        mask = None if seen_by is None else self.mask(obj, seen_by)
        exact_up_to = None if exact_total else self.platform.settings.exact_total_limit
        with self._reading(conn) as c:
            items, next_cursor, total, exact = list_page(
                c, self.schema, obj, filters=filters, q=q, sort=sort, limit=limit, cursor=cursor, where=where,
                count=count, exact_up_to=exact_up_to, mask=mask, now=self.platform.local_now())
        return Page(items if mask is None or not mask.hides else [mask(r) for r in items], next_cursor, total, exact)

    def history(self, obj: str, id: Any, *, where=None, seen_by=None, conn: sa.Connection | None = None) -> list[dict]:
        """The record's audit entries, oldest first (also for a deleted record, unless `where` is given:
        then the record must exist and satisfy it, else NotFound). For `seen_by` (an Access), the entries
        of a field it may not see are left out, those of a field hidden on the record as it is now (a deleted
        one: as it was deleted) are masked, and so are the values a deletion's entry keeps."""
        ot = self._table(obj)
        record_id = parse_record_id(id)
        if record_id is None:
            raise NotFound(no_record(ot.object, id))
        with self._reading(conn) as c:
            if where is not None and c.execute(
                sa.select(ot.table.c.id).where(ot.table.c.id == record_id, where)
            ).first() is None:
                raise NotFound(no_record(ot.object, id))
            entries = history.read(c, self.schema.history, obj, record_id)
            if seen_by is None:
                return entries
            mask = self.mask(obj, seen_by)
            current = c.execute(sa.select(ot.table).where(ot.table.c.id == record_id)).mappings().first()
            return history.masked(entries, mask, from_row(ot, current) if current else None)

    # ------------------------------------------------------------------------------- validation

    def _load(self, obj: str, data: Mapping[str, Any], partial: bool, system: bool,
              current: Mapping[str, Any] | None = None) -> tuple[dict, Errors]:
        """Validated values and field errors; on errors, the values of the fields that passed. `current` is
        the record changed, if any."""
        validator = self.validators[obj]
        try:
            return validator.load(data, partial=partial, system=system, current=current), {}
        except ValidationFailed as e:
            errors = e.fields
        good = {k: v for k, v in data.items() if k not in errors}
        try:
            values = validator.load(good, partial=True, system=system, current=current)
        except ValidationFailed:
            return {}, errors
        # a new record keeps its defaults: a hook may still mend the errors (a required field's `default_from`)
        return values if partial else {**validator.defaults(data), **values}, errors

    def _reference_errors(self, conn: sa.Connection, ot: ObjectTable, rows: list[Mapping[str, Any]],
                          skip: frozenset[str] = frozenset()) -> list[Errors]:
        """Per row, the references to records that do not exist: one SELECT per target object."""
        fields = [(f.name, f.to) for f in ot.object.fields.values()
                  if f.to and f.name not in skip and f.to in self.schema.objects]
        if "user" in self.schema.objects:
            fields.append(("owner", "user"))
        values = {name: [row.get(name) for row in rows] for name, _ in fields}  # column by column
        wanted: dict[str, set[int]] = {}
        given: dict[str, set[int]] = {}
        for name, target in fields:
            given[name] = {int(item) for item in {item for value in values[name] if value is not None
                                                  for item in (value if isinstance(value, list) else [value])}}
            if given[name]:
                wanted.setdefault(target, set()).update(given[name])
        existing = self._existing(conn, wanted)
        result: list[Errors] = [{} for _ in rows]
        for name, target in fields:
            found = existing.get(target, set())
            if given[name] <= found:  # every value names a record: no row to look at
                continue
            for errors, value in zip(result, values[name], strict=True):
                if value is None:
                    continue
                for item in value if isinstance(value, list) else [value]:
                    if int(item) not in found:
                        errors.setdefault(name, []).append(no_record(self.schema[target].object, item))
        return result

    def _existing(self, conn: sa.Connection, wanted: Mapping[str, set[int]]) -> dict[str, set[int]]:
        """{object: those of its `wanted` ids whose record exists (and the reference scope admits)}, in one query: a
        UNION ALL of one id lookup per object, built once per set of objects when no scope holds the references."""
        targets = tuple(sorted(wanted))
        if not targets:
            return {}
        stmt = None if self.reference_scope else self.references_among.get(targets)
        if stmt is None:
            lookups = []
            for i, target in enumerate(targets):
                tot = self.schema[target]
                lookup = sa.select(sa.literal(i, sa.Integer()).label("target"), tot.table.c.id.label("id")).where(
                    tot.table.c.id.in_(sa.bindparam(f"_ids{i}", expanding=True)))
                visible = self.reference_scope(target, tot.table) if self.reference_scope else None
                lookups.append(lookup if visible is None else lookup.where(visible))
            stmt = lookups[0] if len(lookups) == 1 else sa.union_all(*lookups)
            if not self.reference_scope:
                self.references_among[targets] = stmt
        existing: dict[str, set[int]] = {target: set() for target in targets}
        for i, record_id in conn.execute(stmt, {f"_ids{i}": sorted(wanted[t]) for i, t in enumerate(targets)}):
            existing[targets[i]].add(record_id)
        return existing

    def _unique_errors(self, conn: sa.Connection, ot: ObjectTable, rows: list[Mapping[str, Any]],
                       own_ids: list[int | None]) -> list[Errors]:
        """Per row, unique values already used by another record or by an earlier row of `rows`."""
        result: list[Errors] = [{} for _ in rows]
        message = Message("record.unique", "already used by another {object}",
                          object=said_object(ot.object, lower=True))
        for f in ot.object.fields.values():
            if not f.unique or f.name not in ot.columns:
                continue
            column = ot.column(f.name)
            values = [None if row.get(f.name) is None else to_row(ot, {f.name: row[f.name]})[column.name]
                      for row in rows]
            present = {v for v in values if v is not None}
            if not present:
                continue
            taken: dict[Any, set[int]] = {}
            for value, id_ in conn.execute(sa.select(column, ot.table.c.id).where(column.in_(present))):
                taken.setdefault(value, set()).add(id_)
            seen: set[Any] = set()
            for i, (value, own) in enumerate(zip(values, own_ids, strict=True)):
                if value is None:
                    continue
                if taken.get(value, set()) - {own} or value in seen:
                    result[i].setdefault(f.name, []).append(message)
                seen.add(value)
        return result

    def _check_database(self, conn: sa.Connection, ot: ObjectTable, values: Mapping[str, Any], errors: Errors,
                        own_id: int | None = None, skip: frozenset[str] = frozenset()) -> None:
        """References to records that do not exist and unique values already used, added to `errors`
        (the hooks' `before_create` / `before_update` run next, then `_check_rules`)."""
        _add(errors, self._reference_errors(conn, ot, [values], skip)[0])
        _add(errors, self._unique_errors(conn, ot, [values], [own_id])[0])

    def _hooks(self, event: str, conn: sa.Connection, definition: ObjectDef, user: str | None, now: datetime,
               **context: Any) -> None:
        """Run the platform's record hooks of `event` on `definition`, inside the write's transaction."""
        self.platform.registry.run_hooks(event, definition,
                                         hooks.HookContext(self, conn, definition.name, user, now, **context))

    def _check_rules(self, conn: sa.Connection, ot: ObjectTable, record: dict, errors: Errors, now: datetime,
                     before: Mapping[str, Any] | None = None, master: tuple[str, Mapping] | None = None) -> None:
        """Stored formulas computed (over `before`, the stored record of a change) and (when the fields they read
        are valid) the rules, added to `errors`; their today() is the site's date. `master` is an inline line's
        (master_detail field, master record being written), which its rules' paths read."""
        now = now.astimezone(self.platform.settings.zone)
        self.formulas[ot.object.name].on_write(record, now, before)
        rules = ot.object.validation_rules
        if not any({n.partition(".")[0] for n in parse(r.condition).names} & errors.keys() for r in rules):
            _add(errors, self.validators[ot.object.name].rule_errors(self._with_paths(conn, ot, record, master), now))

    def _with_paths(self, conn: sa.Connection, ot: ObjectTable, record: dict,
                    master: tuple[str, Mapping] | None = None) -> dict:
        """`record` with the values of the paths its rules read (None where a step names no record)."""
        paths = self.rule_paths[ot.object.name]
        return {**record, **{p: self.follow(conn, ot.object, record, p, master) for p in paths}} if paths else record

    def follow(self, conn: sa.Connection, obj: ObjectDef, record: Mapping[str, Any], path: str,
               master: tuple[str, Mapping] | None = None) -> Any:
        """The value at `path` (lookups, then a field) from `record`, None where a step is empty or names no record;
        a first step through `master`'s field reads its record (an inline line's master, not yet written)."""
        *steps, last = path.split(".")
        for i, step in enumerate(steps):
            obj = self.metadata.objects[obj.fields[step].to]
            if i == 0 and master is not None and master[0] == step:
                record = master[1]
                continue
            target = self._read(conn, self.schema[obj.name], record.get(step), lines=False) if record.get(step) \
                else None
            if target is None:
                return None
            record = target
        return record.get(last)

    def follow_many(self, conn: sa.Connection, obj: ObjectDef, records: list[Mapping[str, Any]], path: str,
                    master: tuple[str, Mapping] | None = None) -> list[Any]:
        """`follow` for many records at once: per record the value at `path`, one query per lookup step."""
        *steps, last = path.split(".")
        current: list[Mapping[str, Any] | None] = list(records)
        now = self.platform.local_now()
        for i, step in enumerate(steps):
            obj = self.metadata.objects[obj.fields[step].to]
            if i == 0 and master is not None and master[0] == step:
                current = [master[1]] * len(current)
                continue
            ot = self.schema[obj.name]
            ids = {int(r[step]) for r in current if r is not None and r.get(step) not in (None, "")}
            rows = conn.execute(sa.select(ot.table).where(ot.table.c.id.in_(sorted(ids)))).mappings() if ids else ()
            found = {str(row["id"]): self.formulas[obj.name].on_read(from_row(ot, row), now) for row in rows}
            current = [None if r is None or r.get(step) in (None, "") else found.get(str(r[step])) for r in current]
        return [None if r is None else r.get(last) for r in current]

    def _integrity(self, error: sa.exc.IntegrityError, ot: ObjectTable) -> ValidationFailed | None:
        """A unique index violated by a concurrent insert, as the field error the pre-check gives."""
        orig = error.orig
        constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
        found = self.unique_constraints.get(constraint) if constraint else None
        if found is None and (m := _SQLITE_UNIQUE.search(str(orig))):
            found = (m.group(1), m.group(2))
        if found is None:
            return None
        obj, column = found
        name = next((f for f, cols in self.schema[obj].columns.items() if cols == (column,)), column)
        return ValidationFailed({name: [Message("record.unique", "already used by another {object}",
                                                 object=said_object(self.metadata.objects[obj], lower=True))]})

    # ----------------------------------------------------------------------------------- writes

    def _save_uploads(self, ot: ObjectTable, values: dict, saved: list[str]) -> None:
        """Attachment uploads put into the attachment store as <object>/<uuid>/<name>, replaced by the stored form."""
        for f in ot.object.fields.values():
            upload = values.get(f.name) if f.type == "attachment" else None
            if not upload or "content_base64" not in upload:
                continue
            name = PurePosixPath(upload["filename"].replace("\\", "/")).name or "file"
            key = f"{ot.object.name}/{uuid.uuid4().hex}/{name}"
            content = base64.b64decode(upload["content_base64"])
            content_type = upload.get("content_type") or mimetypes.guess_type(name)[0] or "application/octet-stream"
            self.attachments.put(key, content, content_type)
            saved.append(key)
            values[f.name] = {"name": name, "path": key, "size": len(content), "content_type": content_type}

    def _remove_files(self, saved: list[str]) -> None:
        """Take back the files saved for an operation that failed."""
        for key in saved:
            self.attachments.delete(key)

    def _split_children(self, obj: str, data: Mapping[str, Any], errors: Errors) -> tuple[dict, dict]:
        """The record's own input and its inline child lists ({child object: [items]})."""
        own, lines = dict(data), {}
        for child, via in self.children.get(obj, ()):
            if child in own:
                items = own.pop(child)
                if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
                    errors[child] = [Message("record.lines_not_a_list", "must be a list of records")]
                else:
                    lines[child] = (via, items)
        return own, lines

    def create(self, obj: str, values: Mapping[str, Any], *, user: str | None = None,
               conn: sa.Connection | None = None, system: bool = False) -> dict:
        """Validate and insert one record (with inline child lines); returns it as `get` would."""
        ot = self._table(obj)
        with self._writing(conn, []) as c:
            return self._read(c, ot, self.create_id(obj, values, user=user, conn=c, system=system))

    def create_id(self, obj: str, values: Mapping[str, Any], *, user: str | None = None,
                  conn: sa.Connection | None = None, system: bool = False) -> str:
        """`create`, returning the new record's id alone: for a caller that needs no more, the record is not read
        back (nor its lines)."""
        ot = self._table(obj)
        saved: list[str] = []
        with self._writing(conn, saved) as c:
            now = self.platform.clock.now()
            errors: Errors = {}
            data, lines = self._split_children(obj, values, errors)
            # a value typed over a formula is held to the lines posted with it, so it waits for them
            typed = {f.name: data.pop(f.name) for f in ot.object.fields.values()
                     if lines and f.typed_override is not None and f.name in data}
            if not system:
                self.lifecycles.refuse_new(obj, data, self._action_labels)
                self.lifecycles.refuse_locked_parent(c, self.schema, self._access, obj, data, user,
                                                     scope=self.reference_scope)
            record, load_errors = self._prepare_new(c, ot, data, user, now, system)
            _add(errors, load_errors)
            if not system:
                self.lifecycles.refuse_start(obj, record, errors, self._action_labels)
            prepared = {}
            for child, (via, items) in lines.items():
                prepared[child] = []
                for i, item in enumerate(items):
                    child_record, child_errors = self._prepare_new(c, self.schema[child], {**item, via: PENDING_PARENT},
                                                                   user, now, system, skip=via, master=record)
                    _add(errors, child_errors, f"{child}[{i}].")
                    prepared[child].append(child_record)
            if errors:
                raise ValidationFailed(errors)
            record_id = self._insert(c, ot, record, user, now, saved)
            self.rollups.after_insert_many(c, obj, [record], now)
            for child, records in prepared.items():
                via = lines[child][0]
                for child_record in records:
                    child_record[via] = str(record_id)
                    self._insert(c, self.schema[child], child_record, user, now, saved)
                self.rollups.after_insert_many(c, child, records, now)
            if typed:
                self.update(obj, record_id, typed, version=None, user=user, conn=c, system=True)
            return str(record_id)

    def _prepare_new(self, conn: sa.Connection, ot: ObjectTable, data: Mapping[str, Any], user: str | None,
                     now: datetime, system: bool, skip: str | None = None,
                     master: Mapping[str, Any] | None = None) -> tuple[dict, Errors]:
        """The full record to insert (system fields, defaults, rollups, stored formulas) and its errors."""
        values, errors = self._load(ot.object.name, data, partial=False, system=system)
        record = {name: None for name in ot.object.fields}
        record.update(self.rollups.initial(ot.object.name))
        record.update(values)
        record.update(owner=values.get("owner") or user, created_by=user, updated_by=user,
                      created_at=now, updated_at=now, version=1)
        self._check_database(conn, ot, values, errors, skip=frozenset({skip} if skip else ()))
        self._hooks("before_create", conn, ot.object, user, now, after=record, errors=errors, system=system, given=data,
                    master=(skip, master) if skip and master else None)
        self._check_rules(conn, ot, record, errors, now, master=(skip, master) if skip and master else None)
        return record, errors

    def _insert(self, conn: sa.Connection, ot: ObjectTable, record: dict, user: str | None, now: datetime,
                saved: list[str]) -> int:
        """Auto numbers, uploads, the row and its "create" history; returns the new id."""
        obj = ot.object.name
        local = now.astimezone(self.platform.settings.zone)  # an auto number's date parts are the site's date
        for name, pattern in self.auto_numbers[obj]:
            counter = reserve(conn, self.schema.autonumbers, obj, name, pattern.period(local))
            record[name] = pattern.format(local, counter)
        self._save_uploads(ot, record, saved)
        try:
            record_id = conn.execute(ot.table.insert(), to_row(ot, record)).inserted_primary_key[0]
        except sa.exc.IntegrityError as e:
            raise self._integrity(e, ot) or e from None
        record["id"] = str(record_id)
        entries = [history.entry(obj, record_id, "create", name, None, self._logged(ot, name, record),
                                 user, now)
                   for name, f in ot.object.fields.items()
                   if f.type not in DERIVED_TYPES and record.get(name) is not None and record[name] != []]
        history.write(conn, self.schema.history, entries or [
            history.entry(obj, record_id, "create", None, None, None, user, now)])
        self._hooks("after_create", conn, ot.object, user, now, after=record)
        return record_id

    @staticmethod
    def _logged(ot: ObjectTable, name: str, record: Mapping[str, Any]) -> Any:
        """The value the history keeps: never a password."""
        f = ot.object.fields.get(name)
        return None if f is not None and f.type == "password" else record.get(name)

    def update(self, obj: str, id: Any, values: Mapping[str, Any], *, version: int | None,
               user: str | None = None, where=None, conn: sa.Connection | None = None,
               system: bool = False, change: str = "update", detail: Mapping[str, Any] | None = None) -> dict:
        """Change the given fields (and replace inline child lists) of the record read at `version`;
        a record that `where` excludes is NotFound. The history names the change `change` (a transition's
        name) and keeps `detail` (its parameters) as one more entry.

        A user's write (not `system`) is held to the object's lifecycle, in API.md's order: a field only
        transitions set (422), then a stale version (409), then a field or lines the state locks (409
        `locked`), then the other field errors (422)."""
        ot = self._table(obj)
        if version is None and not system:
            raise ValidationFailed({"version": [Message("value.missing", "required")]})
        if version is not None and parse_record_id(version) is None:
            raise ValidationFailed({"version": [Message("value.not_whole_number", "must be a whole number")]})
        saved: list[str] = []
        with self._writing(conn, saved) as c:
            now = self.platform.clock.now()
            current = self._read(c, ot, id, lock=True, where=where)
            if current is None:
                raise NotFound(no_record(ot.object, id))
            errors: Errors = {}
            data, lines = self._split_children(obj, values, errors)
            changed = [] if system else self.validators[obj].changed(data, current)
            if not system:
                self.lifecycles.refuse_transition_only(obj, changed, self._action_labels)
                data = {name: value for name, value in data.items() if name in changed}
            if version is not None and current["version"] != int(version):
                raise self._conflict(c, ot, current, version)
            if not system:
                self.lifecycles.refuse_locked(c, self._access, obj, current, changed, user)
                self.lifecycles.refuse_locked_parent(c, self.schema, self._access, obj, current, user)
            record, changes, load_errors = self._prepare_change(c, ot, current, data, user, now, system)
            _add(errors, load_errors)
            plans = {child: self._plan_lines(c, child, via, current, items, user, now, system, errors, master=record)
                     for child, (via, items) in lines.items()}
            if not system:
                touched = [child for child, (creates, updates, deletes) in plans.items()
                           if creates or deletes or any(line_changes for _, _, line_changes in updates)]
                self.lifecycles.refuse_locked(c, self._access, obj, current, touched, user)
            if errors:
                raise ValidationFailed(errors)
            self._apply_change(c, ot, current, record, changes, user, now, saved,
                               expected=int(version) if version is not None else current["version"],
                               change=change, detail=detail)
            for child, (creates, updates, deletes) in plans.items():
                cot = self.schema[child]
                for child_current, child_record, child_changes in updates:
                    self._apply_change(c, cot, child_current, child_record, child_changes, user, now, saved,
                                       expected=child_current["version"])
                for child_record in creates:
                    self._insert(c, cot, child_record, user, now, saved)
                self.rollups.after_insert_many(c, child, creates, now)
                for child_current in deletes:
                    self.remove_rows(c, cot, child_current, user, now)
            return self._read(c, ot, current["id"])

    def _conflict(self, conn: sa.Connection, ot: ObjectTable, current: Mapping[str, Any], version: Any) -> Conflict:
        """A stale edit: the object and the user who changed the record named as people read them (their label, their
        name), their code and id in the params."""
        by = current["updated_by"] or Message("record.the_system", "the system")
        if current["updated_by"]:
            users = self.schema["user"].table
            name = conn.execute(sa.select(users.c.display_name).where(users.c.id == int(by))).scalar()
            by = by if name is None else said_name(str(by), Label(zh=name, en=name))
        at = current["updated_at"].isoformat(timespec="seconds")
        return Conflict(Message("record.stale_version", "{object} {id} was changed by {by} at {at}; reload it "
                                "(your version {version}, current {current})",
                                object=said_object(ot.object), id=current["id"], by=by, at=at,
                                version=version, current=current["version"]))

    def _prepare_change(self, conn: sa.Connection, ot: ObjectTable, current: Mapping[str, Any],
                        data: Mapping[str, Any], user: str | None, now: datetime, system: bool,
                        skip: str | None = None, master: Mapping[str, Any] | None = None) -> tuple[dict, dict, Errors]:
        """The merged record, {field: (old, new)} of its real changes, and the errors."""
        values, errors = self._load(ot.object.name, data, partial=True, system=system, current=current)
        self._check_database(conn, ot, values, errors, own_id=int(current["id"]),
                             skip=frozenset({skip} if skip else ()))
        record, changes = self._checked_change(conn, ot, current, data, values, errors, user, now, system, skip, master)
        return record, changes, errors

    def _checked_change(self, conn: sa.Connection, ot: ObjectTable, current: Mapping[str, Any],
                        data: Mapping[str, Any], values: Mapping[str, Any], errors: Errors, user: str | None,
                        now: datetime, system: bool, skip: str | None = None,
                        master: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
        """After its values are loaded and checked against the database: the merged record (its hooks and rules
        adding to `errors`) and {field: (old, new)} of its real changes."""
        own = {k: v for k, v in current.items() if k in ot.columns or k in ot.object.fields}
        record = {**own, **values}
        self._hooks("before_update", conn, ot.object, user, now, before=dict(current), after=record, errors=errors,
                    system=system, given=data, master=(skip, master) if skip and master else None)
        self._check_rules(conn, ot, record, errors, now, before=current,
                          master=(skip, master) if skip and master else None)
        stored = [name for name in ot.object.fields if name in ot.columns and name != skip]
        return record, history.changes(own, record, stored)

    def _apply_change(self, conn: sa.Connection, ot: ObjectTable, current: Mapping[str, Any], record: dict,
                      changes: dict, user: str | None, now: datetime, saved: list[str], expected: int,
                      change: str = "update", detail: Mapping[str, Any] | None = None) -> None:
        """The conditional UPDATE (version must still be `expected`), its history and the rollups."""
        if not changes:
            return
        obj, table = ot.object.name, ot.table
        self._save_uploads(ot, record, saved)
        new = {name: record[name] for name in changes}
        new.update(updated_by=user, updated_at=now)
        stmt = (sa.update(table).where(table.c.id == int(current["id"]), table.c.version == expected)
                .values({**to_row(ot, new), "version": table.c.version + 1}))
        try:
            updated = conn.execute(stmt).rowcount
        except sa.exc.IntegrityError as e:
            raise self._integrity(e, ot) or e from None
        if updated == 0:
            latest = self._read(conn, ot, current["id"])
            if latest is None:
                raise NotFound(no_record(ot.object, current["id"]))
            raise self._conflict(conn, ot, latest, expected)
        history.write(conn, self.schema.history,
                      self._change_entries(ot, current, record, changes, user, now, change, detail))
        self.rollups.after_change(conn, obj, [(current, record)], now)
        self._hooks("after_update", conn, ot.object, user, now, before=dict(current), after=record)

    def _change_entries(self, ot: ObjectTable, current: Mapping[str, Any], record: Mapping[str, Any], changes: dict,
                        user: str | None, now: datetime, change: str, detail: Mapping[str, Any] | None) -> list[dict]:
        """The history rows of one record's change: one per changed stored field, one more keeping `detail`."""
        record_id = int(current["id"])
        return [history.entry(ot.object.name, record_id, change, name, self._logged(ot, name, current),
                              self._logged(ot, name, record), user, now)
                for name in changes if ot.object.fields[name].type not in DERIVED_TYPES] + (
            [history.entry(ot.object.name, record_id, change, None, None, detail, user, now)] if detail else [])

    def update_many(self, obj: str, changes: list[tuple[Mapping[str, Any], Mapping[str, Any]]], *, conn: sa.Connection,
                    user: str | None = None, where=None, change: str = "update",
                    detail: Mapping[str, Any] | None = None) -> tuple[list[int], dict[str, RuntimeFailure]]:
        """System writes of many records the caller read and locked in `conn`, each (current record, values) held
        to what `update` checks (references and unique values looked up for all at once); then one UPDATE per set of
        identical values, guarded by `where` (a record it no longer holds is refused, not written), the history in
        one INSERT, the rollups the records feed refreshed together, and each one's `after_update` hooks.
        Returns the ids written and, by id, why each other record was not."""
        ot = self._table(obj)
        now = self.platform.clock.now()
        loaded = [self._load(obj, values, partial=True, system=True, current=current) for current, values in changes]
        found = [values for values, _ in loaded]
        references = self._reference_errors(conn, ot, found)
        uniques = self._unique_errors(conn, ot, found, [int(current["id"]) for current, _ in changes])
        refused: dict[str, RuntimeFailure] = {}
        groups: dict[str, tuple[dict, list]] = {}
        for (current, data), (values, errors), refs, uniq in zip(changes, loaded, references, uniques, strict=True):
            _add(errors, refs)
            _add(errors, uniq)
            record, diff = self._checked_change(conn, ot, current, data, values, errors, user, now, system=True)
            if errors:
                refused[current["id"]] = ValidationFailed(errors)
                continue
            row = to_row(ot, {**{name: record[name] for name in diff}, "updated_by": user, "updated_at": now})
            groups.setdefault(repr(sorted(row.items())), (row, []))[1].append((current, record, diff))
        table = ot.table
        written: list[tuple[Mapping[str, Any], dict, dict]] = []
        for row, members in groups.values():
            stmt = sa.update(table).where(table.c.id.in_([int(current["id"]) for current, _, _ in members]))
            stmt = (stmt if where is None else stmt.where(where)).values({**row, "version": table.c.version + 1})
            try:
                done = set(conn.execute(stmt.returning(table.c.id)).scalars())
            except sa.exc.IntegrityError as e:
                raise self._integrity(e, ot) or e from None
            for current, record, diff in members:
                if int(current["id"]) in done:
                    written.append((current, record, diff))
                else:
                    latest = self._read(conn, ot, current["id"])
                    refused[current["id"]] = NotFound(no_record(ot.object, current["id"])) if latest is None \
                        else self._conflict(conn, ot, latest, current["version"])
        history.write(conn, self.schema.history, [
            entry for current, record, diff in written
            for entry in self._change_entries(ot, current, record, diff, user, now, change, detail)])
        self.rollups.after_change(conn, obj, [(current, record) for current, record, _ in written], now)
        for current, record, _ in written:
            self._hooks("after_update", conn, ot.object, user, now, before=dict(current), after=record)
        return [int(current["id"]) for current, _, _ in written], refused

    def writes_alike(self, obj: str, values: Mapping[str, Any], *, checked: bool = True) -> bool:
        """Whether `update_all` can give many records of `obj` the same `values` set-based, with nothing to check or
        run per record: no value is unique or a password, the stored formulas compile to SQL, and no update hook it
        has needs to run on each record (records/hooks.Hook.needed); a `checked` write (a behavior's own write,
        which holds the records to its own checks, is not) also needs no validation rule nor before_update hook."""
        ot = self._table(obj)
        definition = ot.object
        if (checked and definition.validation_rules) or any(
                definition.fields[name].unique or definition.fields[name].type == "password" for name in values):
            return False
        try:
            self._stored_sql(ot, values, self.platform.clock.now())
        except ExpressionError:
            return False
        registry, written = self.platform.registry, {**values, **dict.fromkeys(self.formulas[obj].stored)}
        events = ("before_update", "after_update") if checked else ("after_update",)
        return not any(hook.needed is None or hook.needed(self.metadata, definition, written)
                       for event in events for hook in registry.hooks_of(event, definition))

    def _stored_sql(self, ot: ObjectTable, values: Mapping[str, Any], now: datetime) -> dict[str, ColumnElement]:
        """The stored formulas of a set-based write of `values` as SQL over each row ({field: expression}); raises
        ExpressionError naming one the database cannot compute."""
        formulas = self.formulas[ot.object.name]
        if not formulas.stored:
            return {}
        columns = formula_columns(ot)
        new = {name: sa.literal(value, columns[name].type) for name, value in to_row(ot, {
            name: value for name, value in values.items() if name in columns}).items()}
        return formulas.sql(columns, new, now.astimezone(self.platform.settings.zone))

    def update_all(self, obj: str, ids: list[int], values: Mapping[str, Any], *, conn: sa.Connection,
                   user: str | None = None, where=None, change: str = "update",
                   detail: Mapping[str, Any] | None = None,
                   fields: Iterable[str] | None = None) -> tuple[list[int], dict[str, RuntimeFailure]]:
        """A system write of the same `values` on the records `ids` the caller locked in `conn`, set-based (the
        caller checked `writes_alike`): the values validated once, the stored formulas computed by the database,
        the history in one INSERT ... SELECT (its entries in the order of `fields`, else the object's), one
        UPDATE guarded by `where`, the rollups the records feed refreshed together (counts and sums added to: what
        the write adds read from the locked records before it, `Rollups.added_by`). Returns the ids written and,
        by id, why each other record was not (all of them, with the values' field errors, when those are wrong)."""
        ot = self._table(obj)
        table = ot.table
        now = self.platform.clock.now()
        loaded, errors = self._load(obj, values, partial=True, system=True)
        _add(errors, self._reference_errors(conn, ot, [loaded])[0])
        if errors:
            return [], {str(i): ValidationFailed(errors) for i in ids}
        chosen = among(table.c.id, ids) if where is None else sa.and_(among(table.c.id, ids), where)
        changes = {name: (ot.column(name), field_type(ot, name), loaded[name])
                   for name in (fields or ot.object.fields) if name in loaded and name in ot.columns}
        history_sql.write_set(conn, self.schema.history, obj, table, where, changes, change, user, now, detail, ids=ids)
        derived = {ot.column(name).name: value for name, value in self._stored_sql(ot, loaded, now).items()}
        feeds = {**loaded, **dict.fromkeys(self.formulas[obj].stored)}
        added = self.rollups.added_by(conn, obj, chosen, loaded)  # what the write adds to counts and sums, read now
        skip = self.rollups.addable(obj, loaded)
        vias = self.rollups.feeding(obj, feeds, skip)  # their parents: read now if the write moves them, else written
        fed = self.rollups.fed_by(conn, obj, chosen, feeds, added=skip) if loaded.keys() & set(vias) else None
        stmt = sa.update(table).where(chosen).values(
            {**to_row(ot, {**loaded, "updated_by": user, "updated_at": now}), **derived,
             "version": table.c.version + 1})
        self.rollups.summaries.changing(conn, obj, chosen, {**to_row(ot, loaded), **derived})  # they follow the rows
        try:
            written = conn.execute(stmt.returning(table.c.id, *(ot.column(via) for via in vias))).all()
        except sa.exc.IntegrityError as e:
            raise self._integrity(e, ot) or e from None
        done = {row[0] for row in written}
        if fed is None:
            fed = self.rollups.fed_by(conn, obj, chosen, feeds, written, added=skip)
        refused: dict[str, RuntimeFailure] = {}
        for record_id in ids:
            if record_id not in done:
                latest = self._read(conn, ot, record_id)
                refused[str(record_id)] = NotFound(no_record(ot.object, record_id)) if latest is None \
                    else self._conflict(conn, ot, latest, latest["version"])
        self.rollups.refresh_added(conn, added, now)
        self.rollups.refresh_fed(conn, fed, now)
        return sorted(done), refused

    def _plan_lines(self, conn: sa.Connection, child: str, via: str, parent: Mapping[str, Any],
                    items: list[Mapping[str, Any]], user: str | None, now: datetime, system: bool,
                    errors: Errors, master: Mapping[str, Any] | None = None) -> tuple[list, list, list]:
        """An inline list replacing the parent's lines: (records to create, changes to apply, lines to delete);
        `master` is the parent as this write leaves it."""
        cot = self.schema[child]
        existing = {line["id"]: line for line in parent.get(child, [])}
        creates, updates, kept = [], [], set()
        for i, item in enumerate(items):
            prefix = f"{child}[{i}]."
            data = {k: v for k, v in item.items() if k not in ("id", "version", via)}
            if "id" in item:
                line = existing.get(str(item["id"]))
                if line is None:
                    errors.setdefault(f"{prefix}id", []).append(Message(
                        "record.no_such_line", "no {object} with id {id} in this {parent}",
                        object=said_object(cot.object, lower=True), id=item["id"],
                        parent=said_object(self.metadata.objects[cot.object.fields[via].to], lower=True)))
                    continue
                kept.add(line["id"])
                record, changes, line_errors = self._prepare_change(conn, cot, line, data, user, now, system,
                                                                      skip=via, master=master)
                updates.append((line, record, changes))
            else:
                record, line_errors = self._prepare_new(conn, cot, {**data, via: str(parent["id"])}, user, now,
                                                        system, skip=via, master=master)
                creates.append(record)
            _add(errors, line_errors, prefix)
        deletes = [line for line_id, line in existing.items() if line_id not in kept]
        return creates, updates, deletes

    def delete(self, obj: str, id: Any, *, user: str | None = None, where=None,
               conn: sa.Connection | None = None) -> None:
        """Move the record, with its master_detail children (recursively), to the recycle bin
        (records/recycle_bin.py); a record that `where` excludes is NotFound, one others still name is a 409."""
        ot = self._table(obj)
        with self._writing(conn, []) as c:
            current = self._read(c, ot, id, lock=True, where=where)
            if current is None:
                raise NotFound(no_record(ot.object, id))
            now = self.platform.clock.now()
            self._hooks("before_delete", c, ot.object, user, now, before=dict(current))
            self.lifecycles.refuse_locked_parent(c, self.schema, self._access, obj, current, user)
            recycle_bin.discard(self, c, ot, current, user, now)

    def remove_rows(self, conn: sa.Connection, ot: ObjectTable, record: Mapping[str, Any], user: str | None,
                    now: datetime) -> None:
        """Delete the row and its children (recursively), each child before its parent, whose foreign key it holds;
        then, parent first, each one's history, rollups (a child's refresh skips the parent that is gone) and hooks."""
        tree = self._removal_tree(conn, ot, record)
        self._delete_tree(conn, tree)
        self._after_removal(conn, tree, user, now)

    def _removal_tree(self, conn: sa.Connection, ot: ObjectTable, record: Mapping[str, Any]) -> tuple:
        """(table, record, [its children's trees]), the children read as stored."""
        lines = [self._removal_tree(conn, cot, self._read(conn, cot, line["id"]) or line)
                 for child, _via in self.children.get(ot.object.name, ())
                 for cot in [self.schema[child]] for line in record.get(child, [])]
        return ot, record, lines

    def _delete_tree(self, conn: sa.Connection, tree: tuple) -> None:
        ot, record, lines = tree
        for line in lines:
            self._delete_tree(conn, line)
        conn.execute(sa.delete(ot.table).where(ot.table.c.id == int(record["id"])))

    def _after_removal(self, conn: sa.Connection, tree: tuple, user: str | None, now: datetime) -> None:
        ot, record, lines = tree
        obj = ot.object.name
        snapshot = {k: self._logged(ot, k, record) for k in ot.columns if k in record}
        history.write(conn, self.schema.history,
                      [history.entry(obj, int(record["id"]), "delete", None, snapshot, None, user, now)])
        for line in lines:
            self._after_removal(conn, line, user, now)
        self.rollups.after_change(conn, obj, [(record, None)], now)
        self._hooks("after_delete", conn, ot.object, user, now, before=dict(record))

    # ------------------------------------------------------------------------------------- bulk

    def create_many(self, obj: str, rows: Iterable[Mapping[str, Any]], *, user: str | None = None,
                    all_or_nothing: bool = False, batch_size: int = 1000,
                    progress: Callable[[int, int | None], None] | None = None,
                    total: int | None = None, system: bool = False,
                    on_batch: Callable[[sa.Connection, int, int, list[str], list[RowError]], None] | None = None,
                    keep_ids: bool = True) -> BulkResult:
        """Validate every row and insert the valid ones in batches (one executemany each).

        Each batch is its own transaction unless `all_or_nothing`, which inserts nothing when any
        row fails (then `created` is empty and `errors` lists every bad row). The history gets one
        "create" entry per imported record, not one per field. `system` rows (the demo's history) may set
        system fields and start in any state of a lifecycle. `on_batch(conn, first index, rows, created ids,
        errors)` runs inside each batch's transaction (an import's checkpoint commits with its rows); with
        `keep_ids=False` the result's `created` stays empty, the ids given to `on_batch` alone (an import of millions
        of rows keeps no list of them).
        """
        ot = self._table(obj)
        result = BulkResult()
        done = 0

        def run(create_batch: Callable[[list, int], tuple[list[str], list[RowError], list[str]]]) -> None:
            nonlocal done
            for batch in batches(rows, batch_size):
                created, errors, warnings = create_batch(batch, done)
                if keep_ids:
                    result.created.extend(created)
                result.errors.extend(errors)
                result.warnings.extend(warnings)
                done += len(batch)
                if progress is not None:
                    progress(done, total)

        def create_batch(conn: sa.Connection, batch: list, start: int) -> tuple[list[str], list[RowError], list[str]]:
            warnings: list[str] = []
            created, errors = self._create_batch(conn, ot, batch, start, user, system, warnings)
            if on_batch is not None:
                on_batch(conn, start, len(batch), created, errors)
            return created, errors, warnings

        with frozen_heap():
            if not all_or_nothing:
                run(lambda batch, start: self._create_batch_retrying(create_batch, batch, start))
                return result
            try:
                with self.engine.begin() as conn:
                    run(lambda batch, start: create_batch(conn, batch, start))
                    if result.errors:
                        raise _RolledBack
            except _RolledBack:
                result.created = []
            return result

    def _create_batch_retrying(self, create_batch: Callable, batch: list,
                               start: int) -> tuple[list[str], list[RowError], list[str]]:
        """One batch in its own transaction, validated again once if a concurrent insert took a unique value."""
        try:
            with self.engine.begin() as conn:
                return create_batch(conn, batch, start)
        except ValidationFailed:
            with self.engine.begin() as conn:
                return create_batch(conn, batch, start)

    def _create_batch(self, conn: sa.Connection, ot: ObjectTable, batch: list[Mapping[str, Any]], start: int,
                      user: str | None, system: bool = False, warnings: list[str] | None = None,
                      ) -> tuple[list[str], list[RowError]]:
        obj = ot.object.name
        now = self.platform.clock.now()
        validator, formulas = self.validators[obj], self.formulas[obj]
        loaded: list[tuple[int, dict, Errors]] = []
        for i, (row, values) in enumerate(zip(batch, validator.load_many(batch, system=system), strict=True)):
            errors: Errors = {}
            if values is None:  # a row in error, loaded alone for its messages
                values, errors = self._load(obj, row, partial=False, system=system)
            loaded.append((start + i, values, errors))
        values_list = [values for _, values, _ in loaded]
        references = self._reference_errors(conn, ot, values_list)
        uniques = self._unique_errors(conn, ot, values_list, [None] * len(values_list))
        rule_fields = [{n.partition(".")[0] for n in parse(r.condition).names} for r in ot.object.validation_rules]
        initial = {name: None for name in ot.object.fields} | self.rollups.initial(obj)
        stamps = {"created_by": user, "updated_by": user, "created_at": now, "updated_at": now, "version": 1}
        records: list[dict] = []
        for (_, values, errors), refs, uniq in zip(loaded, references, uniques, strict=True):
            if refs or uniq:
                _add(errors, refs)
                _add(errors, uniq)
            if not system:
                self.lifecycles.refuse_start(obj, values, errors, self._action_labels)
            record = {**initial, **values, **stamps}
            record["owner"] = values.get("owner") or user
            records.append(record)
        self._hooks("before_create_many", conn, ot.object, user, now, batch=records,
                    batch_errors=[errors for _, _, errors in loaded], batch_given=batch,
                    warnings=[] if warnings is None else warnings, system=system)
        good: list[dict] = []
        bad: list[RowError] = []
        local = now.astimezone(self.platform.settings.zone)
        for (index, _, errors), record in zip(loaded, records, strict=True):
            if formulas.order:
                formulas.on_write(record, local)
            if rule_fields and (not errors or not any(names & errors.keys() for names in rule_fields)):
                _add(errors, validator.rule_errors(self._with_paths(conn, ot, record), local))
            if errors:
                bad.append(RowError(index, errors))
            else:
                good.append(record)
        if not good:
            return [], bad
        for name, pattern in self.auto_numbers[obj]:
            last = reserve(conn, self.schema.autonumbers, obj, name, pattern.period(local), len(good))
            for n, record in enumerate(good, start=last - len(good) + 1):
                record[name] = pattern.format(local, n)
        saved: list[str] = []
        if any(f.type == "attachment" for f in ot.object.fields.values()):
            for record in good:
                self._save_uploads(ot, record, saved)
        try:
            ids = insert_columns(conn, ot.table, self.row_makers[obj].columns(good), len(good))
        except sa.exc.IntegrityError as e:
            self._remove_files(saved)
            raise self._integrity(e, ot) or e from None
        for record, record_id in zip(good, ids, strict=True):
            record["id"] = str(record_id)
        history.write_created(conn, self.schema.history, obj, ot.table, ids, user, now)
        self.rollups.after_insert_many(conn, obj, good, now)
        self._hooks("after_create_many", conn, ot.object, user, now, batch=good)
        return [record["id"] for record in good], bad  # the same texts as the records (and hooks) hold


class _RolledBack(Exception):
    """Ends an all-or-nothing import's transaction when a row failed."""
