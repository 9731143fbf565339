"""Duplicate rules (查重): records sharing the values of all of a rule's fields are duplicates.

(How it works: docs/engine.md, "objectplatform/runtime/behaviors/duplicates.py".)"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from objectplatform.metadata import Label, Metadata, ObjectDef
from objectplatform.metadata.model import DuplicateRule

from .. import actions
from ..errors import Message, said_name, said_object
from ..records import hooks
from ..records.bulk import IdRuns
from ..records.masking import field_mask
from ..storage.convert import from_row
from ..storage.engine import reading
from ..storage.id_sets import json_rows
from ..storage.tables import caseless
from .pool import POOL

Key = tuple[Any, ...]
WARNING_MATCHES = 5  # matches a warning lists (oldest first); its `count` says how many there are


def rule_key(obj: ObjectDef, rule: DuplicateRule, record: dict) -> Key | None:
    """The values a rule compares, normalized; None when one of them is empty."""
    return rule_keys(obj, rule, [record])[0]


def rule_keys(obj: ObjectDef, rule: DuplicateRule, records: Iterable[Mapping[str, Any]]) -> list[Key | None]:
    """`rule_key` of each record, each field's case rule looked up once."""
    compared = [(name, caseless(obj, name)) for name in rule.fields]
    out: list[Key | None] = []
    if len(compared) == 1:  # the common rule: one field
        name, lower = compared[0]
        for record in records:
            value = record.get(name)
            if isinstance(value, str):
                value = value.strip().lower() if lower else value.strip()
            out.append(None if value is None or value == "" else (value,))
        return out
    for record in records:
        key = []
        for name, lower in compared:
            value = record.get(name)
            if isinstance(value, str):
                value = value.strip()
                if lower:
                    value = value.lower()
            if value is None or value == "":
                key = None
                break
            key.append(value)
        out.append(None if key is None else tuple(key))
    return out


def _among(conn: sa.Connection, columns: list[sa.ColumnElement], rows: set[tuple]) -> list[sa.ColumnElement[bool]]:
    """The compared columns holding one of the keys `rows`: the first column (the rule's index) probed once a key.
    Texts and whole numbers go as ONE JSON parameter the database unpacks (an IN list of a thousand values
    costs more to render than to run); on PostgreSQL the first column as `= ANY(array)`, which its planner
    sizes by the array (it guesses a set-returning function's rows, and a seq scan of a table grown since its
    statistics looks cheap)."""
    if any(value.__class__ not in (str, int) for row in rows for value in row):
        conditions = [columns[0].in_({row[0] for row in rows})]
        if len(columns) > 1:
            conditions.append(sa.tuple_(*columns).in_(sorted(rows)))
        return conditions
    data = json.dumps(sorted(rows), ensure_ascii=False)
    kinds = [sa.BigInteger() if isinstance(value, int) else sa.Text() for value in next(iter(rows))]
    if conn.dialect.name == "postgresql":
        firsts = sorted({row[0] for row in rows})
        conditions = [columns[0] == sa.any_(sa.cast(sa.literal(firsts, ARRAY(kinds[0])), ARRAY(kinds[0])))]
        if len(columns) == 1:
            return conditions
    rows_in = json_rows(conn.dialect.name, sa.literal(data), {f"k{i}": kind for i, kind in enumerate(kinds)})
    if conn.dialect.name == "postgresql":
        return [*conditions, sa.tuple_(*columns).in_(rows_in)]
    conditions = [columns[0].in_(rows_in.with_only_columns(rows_in.selected_columns[0]))]
    if len(columns) > 1:
        conditions.append(sa.tuple_(*columns).in_(rows_in))
    return conditions


@contextmanager
def _on_index(conn: sa.Connection, many: bool) -> Iterator[None]:
    """Around a batch's probe on PostgreSQL: its plan kept off a sequential scan. The planner prices the thousands of
    probes of a rule's index above one scan that computes lower() of every row (26-58 ms at 100,000 leads, against
    1 ms by the index, and growing with the table) until the table is several times larger."""
    if not many or conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    try:
        yield
    finally:
        conn.exec_driver_sql("SET LOCAL enable_seqscan TO DEFAULT")


def _label(rule: DuplicateRule) -> str:
    """The rule as a message names it: its label (`same mobile`), its name in the API's params."""
    text = rule.label.en
    return said_name(rule.name, Label(rule.label.zh, text[:1].lower() + text[1:]))


class Duplicates:
    """Finding the records that duplicate given values, for one platform's schema."""

    def __init__(self, records):
        self.records = records
        self.schema = records.schema
        self.metadata: Metadata = records.metadata

    def find(self, conn: sa.Connection, obj: str, rule: DuplicateRule, keys: Iterable[Key],
             where: sa.ColumnElement[bool] | None = None) -> dict[Key, list[dict]]:
        """The records matching each of `keys` by `rule` (oldest first): ONE SELECT probing the rule's index
        with the keys' first values, the whole keys compared as (value, value) rows (an IN list per field
        would make the index probe every combination: 1,000 names x 1,000 companies a batch)."""
        keys = set(keys)
        if not keys:
            return {}
        ot = self.schema[obj]
        columns, stored = [], []
        for name in rule.fields:
            column = ot.column(name)
            lower = caseless(ot.object, name)
            columns.append(sa.func.lower(column) if lower else column)
            stored.append(None if lower or len(ot.columns[name]) != 1 else ot.types[name].to_columns)
        rows = keys
        if any(store is not None for store in stored):  # converted position by position, not key by key
            given = list(keys)
            positions = [list(values) if store is None else [store(v)[0] for v in values]
                         for values, store in zip(zip(*given, strict=True), stored, strict=True)]
            rows = set(zip(*positions, strict=True))
        conditions = _among(conn, columns, rows)
        if where is not None:
            conditions.append(where)
        stmt = sa.select(ot.table).where(*conditions).order_by(ot.table.c.id)
        with _on_index(conn, len(rows) > 1):
            matched = conn.execute(stmt).mappings().all()
        found: dict[Key, list[dict]] = {}
        for row in matched:
            record = from_row(ot, row)
            record["id"] = str(row["id"])
            key = rule_key(ot.object, rule, record)
            if key in keys:
                found.setdefault(key, []).append(record)
        return found

    def describe(self, conn: sa.Connection, obj: str, records: list[dict]) -> dict[str, dict]:
        """Per record id: its title, owner {"id", "title"} and, with the pool behavior, pool {"id", "title"}."""
        ot = self.schema[obj]
        pool = POOL.config_of(ot.object) if POOL.declared_by(ot.object) else None
        pool_field = pool.pool_field if pool is not None else None
        pool_object = pool.pool_object if pool is not None else None
        owners = self._titles(conn, "user", {r.get("owner") for r in records})
        pools = self._titles(conn, pool_object, {r.get(pool_field) for r in records}) if pool_object else {}
        described = {}
        for r in records:
            item = {"title": r.get(ot.object.title_field) if ot.object.title_field != "id" else r["id"],
                    "owner": _ref(r.get("owner"), owners)}
            if pool_field is not None:
                item["pool"] = _ref(r.get(pool_field), pools)
            described[r["id"]] = item
        return described

    def _titles(self, conn: sa.Connection, obj: str | None, ids: set[Any]) -> dict[str, Any]:
        ids = {int(i) for i in ids if i is not None}
        if not ids or obj not in self.schema.objects:
            return {}
        ot = self.schema[obj]
        title = ot.object.title_field
        column = ot.table.c.id if title == "id" or title not in ot.columns else ot.column(title)
        stmt = sa.select(ot.table.c.id, column).where(ot.table.c.id.in_(ids))
        return {str(i): t for i, t in conn.execute(stmt).all()}

    def hides(self, access, obj: str, rule: DuplicateRule, match: Mapping[str, Any]) -> bool:
        """Whether a value `rule` compares is hidden from `access` (None: the system) on `match`: then naming
        the match would tell them the hidden value."""
        if access is None:
            return False
        return bool(field_mask(self.records.platform, access, obj).hidden_on(match).intersection(rule.fields))

    def message(self, obj: str, rule: DuplicateRule, match: dict, described: dict, access=None) -> Message:
        """'duplicate of lead 12 (王伟's, in 华北区线索池): same mobile'; for a caller the compared value is
        hidden from on the match, only 'duplicate of a lead in 华北区线索池: same mobile'."""
        info = described[match["id"]]
        said = said_object(self.metadata.objects[obj], lower=True)
        if self.hides(access, obj, rule, match):
            if info.get("pool") is not None:
                return Message("duplicates.duplicate_in_pool", "duplicate of a {object} in {pool}: {rule}",
                               object=said, pool=info["pool"]["title"], rule=_label(rule))
            return Message("duplicates.duplicate_hidden", "duplicate of another {object}: {rule}", object=said,
                           rule=_label(rule))
        parts = []
        if info["owner"] is not None:
            parts.append(f"{info['owner']['title']}'s")
        if info.get("pool") is not None:
            parts.append(f"in {info['pool']['title']}")
        where = f" ({', '.join(parts)})" if parts else ""
        return Message("duplicates.duplicate_of", "duplicate of {object} {id}{where}: {rule}", object=said,
                       id=match["id"], where=where, rule=_label(rule))

    # ------------------------------------------------------------------------------------ hooks

    def before_create(self, ctx: hooks.HookContext) -> None:
        self._refuse_blocked(ctx)

    def before_update(self, ctx: hooks.HookContext) -> None:
        self._refuse_blocked(ctx, where=self.schema[ctx.object].table.c.id != int(ctx.before["id"]))

    def _refuse_blocked(self, ctx: hooks.HookContext, where: sa.ColumnElement[bool] | None = None) -> None:
        """A field error for each block rule by which `ctx.after` matches another record (on a change,
        only the rules whose compared values it alters)."""
        obj = self.metadata.objects[ctx.object]
        for rule in obj.duplicate_rules:
            key = rule_key(obj, rule, ctx.after)
            if rule.action != "block" or key is None:
                continue
            if ctx.before is not None and key == rule_key(obj, rule, ctx.before):
                continue
            matches = self.find(ctx.conn, obj.name, rule, [key], where=where).get(key)
            if matches:
                described = self.describe(ctx.conn, obj.name, matches[:1])
                ctx.errors.setdefault(rule.fields[0], []).append(
                    self.message(obj.name, rule, matches[0], described, ctx.records.caller))

    def before_create_many(self, ctx: hooks.HookContext) -> None:
        obj = self.metadata.objects[ctx.object]
        for rule in obj.duplicate_rules:
            if rule.action != "block":
                continue
            keys = rule_keys(obj, rule, ctx.batch)
            existing = self.find(ctx.conn, obj.name, rule, [k for k in keys if k is not None])
            firsts = [matches[0] for matches in existing.values()]
            described = self.describe(ctx.conn, obj.name, firsts)
            seen: set[Key] = set()
            for key, errors in zip(keys, ctx.batch_errors, strict=True):
                if key is None:
                    continue
                if key in existing:
                    message = self.message(obj.name, rule, existing[key][0], described, ctx.records.caller)
                elif key in seen:
                    message = Message("duplicates.earlier_row", "duplicate of an earlier row of this import: {rule}",
                                      rule=_label(rule))
                else:
                    if not errors:  # a row refused for another reason is not inserted: no duplicate of it
                        seen.add(key)
                    continue
                errors.setdefault(rule.fields[0], []).append(message)

    # --------------------------------------------------------------------------------- warnings

    def warnings(self, conn: sa.Connection, obj: str, batch: list[dict],
                 where: sa.ColumnElement[bool] | None = None,
                 imported: Container[str] = frozenset(),
                 rules: Iterable[DuplicateRule] | None = None, access=None) -> dict[str, list[dict]]:
        """Per id of the saved records `batch` (in the order they were created) that match others by a
        `warn` rule: [{"rule", "label": {"zh", "en"}, "message", "count", "matches": [{"id", "title",
        "owner", "pool"}]}], the matches being the records within `where` other than the record itself
        and the batch's later ones. ONE SELECT per warn rule for the whole batch, plus the owner and
        pool titles of the matches shown. `imported`: ids of records the same import created earlier;
        `rules`: the object's rules to consider (default: all); `access`: the caller, to whom a match whose
        compared value is hidden from them is counted but not named."""
        definition = self.metadata.objects[obj]
        rules = [rule for rule in (definition.duplicate_rules if rules is None else rules) if rule.action == "warn"]
        if not rules or not batch:
            return {}
        # the database is asked for the records before the batch; the batch's earlier rows are in hand
        ids = sorted(int(record["id"]) for record in batch)
        table = self.schema[obj].table
        others = (sa.not_(table.c.id.between(ids[0], ids[-1])) if ids[-1] - ids[0] == len(ids) - 1
                  else table.c.id.not_in(ids))  # a bulk insert's ids are consecutive: a range, not a list
        others = others if where is None else sa.and_(where, others)
        hits: list[tuple[dict, DuplicateRule, list[dict]]] = []
        for rule in rules:
            keys = rule_keys(definition, rule, batch)
            found = self.find(conn, obj, rule, [k for k in keys if k is not None], where=others)
            earlier: dict[Key, list[dict]] = {}
            for record, key in zip(batch, keys, strict=True):
                if key is None:
                    continue
                if matches := found.get(key, []) + earlier.get(key, []):
                    hits.append((record, rule, matches))
                earlier.setdefault(key, []).append(record)
        described = self.describe(conn, obj, [m for _, _, matches in hits for m in matches[:WARNING_MATCHES]])
        out: dict[str, list[dict]] = {}
        for record, rule, matches in hits:
            first = matches[0]
            if first["id"] in imported:
                message = Message("duplicates.possible_earlier_row", "possible duplicate of an earlier row of this "
                                  "import ({object} {id}): {rule}", id=first["id"], rule=_label(rule),
                                  object=said_object(self.metadata.objects[obj], lower=True))
            else:
                message = Message("duplicates.possible", "possible {duplicate}",
                                  duplicate=self.message(obj, rule, first, described, access))
            if len(matches) > 1:
                message = Message("duplicates.and_more", "{warning} (and {more} more)", warning=message,
                                  more=len(matches) - 1)
            out.setdefault(record["id"], []).append({
                "rule": rule.name, "label": {"zh": rule.label.zh, "en": rule.label.en}, "message": message,
                "count": len(matches),
                "matches": [{"id": m["id"], **described[m["id"]]} for m in matches[:WARNING_MATCHES]
                            if not self.hides(access, obj, rule, m)]})
        return out

    def after_create_many(self, ctx: hooks.HookContext) -> None:
        """An import's warnings, when the import collects them (`collecting()`)."""
        collector = _collector.get()
        if collector is None or collector.object != ctx.object:
            return
        scope = ctx.records.reference_scope
        where = scope(ctx.object, self.schema[ctx.object].table) if scope is not None else None
        collector.created.add(int(record["id"]) for record in ctx.batch)  # the batch's earlier rows count too
        collector.warnings.update(self.warnings(ctx.conn, ctx.object, ctx.batch, where, collector.created,
                                                access=ctx.records.caller))

    # ----------------------------------------------------------------------------------- action

    def check(self, access, obj: str, record: dict) -> list[dict]:
        """Every record (but this one) matching `record` by one of the rules, within the caller's scope, by
        the rules whose compared values neither record hides from the caller."""
        definition = self.metadata.objects[obj]
        table = self.schema[obj].table
        scope = access.scope(obj, table)
        where = table.c.id != int(record["id"])
        if scope is not None:
            where = sa.and_(where, scope)
        with self.records.transaction() as conn:
            found = []
            for rule in definition.duplicate_rules:
                key = rule_key(definition, rule, record)
                if key is None or self.hides(access, obj, rule, record):
                    continue
                found += [(rule, match) for match in self.find(conn, obj, rule, [key], where=where).get(key, [])
                          if not self.hides(access, obj, rule, match)]
            described = self.describe(conn, obj, [m for _, m in found])
        return [{"rule": rule.name, "action": rule.action, "id": match["id"], **described[match["id"]]}
                for rule, match in found]


@dataclass
class Collector:
    """The warnings of one import of `object`, by created record id (the import takes each batch's); `created`: the
    ids inserted so far."""

    object: str
    warnings: dict[str, list[dict]] = field(default_factory=dict)
    created: IdRuns = field(default_factory=IdRuns)


_collector: ContextVar[Collector | None] = ContextVar("objectplatform_duplicate_warnings", default=None)


@contextmanager
def collecting(obj: str) -> Iterator[Collector]:
    """Collect the warn-rule matches of the records `create_many` inserts into `obj` in this block."""
    collector = Collector(obj)
    token = _collector.set(collector)
    try:
        yield collector
    finally:
        _collector.reset(token)


def record_warnings(platform, access, obj: str, record: Mapping[str, Any],
                    changed: Iterable[str] | None = None) -> list[dict]:
    """The warnings of one saved record (see `Duplicates.warnings`), within `access`'s data scope; after
    an update, `changed` names the fields it set: only the rules comparing one of them warn."""
    rules = platform.metadata.objects[obj].duplicate_rules
    if changed is not None:
        changed = set(changed)
        rules = tuple(rule for rule in rules if changed & set(rule.fields))
    if not any(rule.action == "warn" for rule in rules):
        return []
    duplicates = Duplicates(platform.records)
    scope = access.scope(obj, duplicates.schema[obj].table) if access is not None else None
    record_id = str(record["id"])
    with reading(platform.engine) as conn:
        found = duplicates.warnings(conn, obj, [{**record, "id": record_id}], scope, rules=rules, access=access)
    return found.get(record_id, [])


def _ref(value: Any, titles: dict[str, Any]) -> dict | None:
    return None if value is None else {"id": str(value), "title": titles.get(str(value))}


def duplicates_of(records) -> Duplicates:
    return Duplicates(records)


def _has_rules(obj: ObjectDef) -> bool:
    return bool(obj.duplicate_rules)


def _check_handler(obj: str):
    def run(call: actions.ActionCall) -> dict:
        return {"matches": Duplicates(call.platform.records).check(call.access, obj, call.record)}

    return run


def duplicate_actions(metadata: Metadata) -> list[actions.Action]:
    return [actions.Action(obj.name, "check_duplicates", Label("查重", "Check duplicates"),
                           _check_handler(obj.name), (), False)
            for obj in metadata.objects.values() if obj.duplicate_rules]


def register(registry) -> None:
    """Duplicate rules checked on every create, update and import batch; `check_duplicates` on demand."""
    registry.hook("before_create", lambda ctx: duplicates_of(ctx.records).before_create(ctx), applies=_has_rules)
    registry.hook("before_update", lambda ctx: duplicates_of(ctx.records).before_update(ctx), applies=_has_rules)
    registry.hook("before_create_many", lambda ctx: duplicates_of(ctx.records).before_create_many(ctx),
                  applies=_has_rules)
    registry.hook("after_create_many", lambda ctx: duplicates_of(ctx.records).after_create_many(ctx),
                  applies=_has_rules)
    registry.action_provider(duplicate_actions)
