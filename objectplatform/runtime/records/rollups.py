"""Rollup fields kept current in the transaction of the child change, then propagated upwards.

(How it works: docs/engine.md, "objectplatform/runtime/records/rollups.py".)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, Metadata

from ..storage.convert import from_row, to_row
from ..storage.derived import rollup_value
from ..storage.tables import Schema
from . import hooks
from .formulas import Formulas
from .summaries import Summaries

Change = tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]  # (before, after); None: inserted/deleted


@dataclass(frozen=True, eq=False)  # one per (parent, child, via), made by Rollups: hashed by identity
class _Group:
    """The rollup fields of `parent` over `child` records linked by `via`, and the child fields they read."""

    parent: str
    child: str
    via: str
    fields: tuple[FieldDef, ...]
    reads: frozenset[str]  # fields of the child; a filter on a field of a record it looks up reads the lookup


@dataclass(frozen=True)
class _Through:
    """A group whose filter reads `fields` of the record each child names in its lookup `hop`."""

    group: _Group
    hop: str
    fields: frozenset[str]


class Rollups:
    """Which rollups each object feeds, and their refresh."""

    def __init__(self, metadata: Metadata, schema: Schema, formulas: Mapping[str, Formulas]):
        self.metadata, self.schema, self.formulas = metadata, schema, formulas
        self.records = None  # the records service, set by it: a parent's change fires `after_rollup`
        groups: dict[tuple[str, str, str], list[FieldDef]] = {}
        for obj in metadata.objects.values():
            for f in obj.fields.values():
                if f.rollup is not None:
                    groups.setdefault((obj.name, f.rollup.child, f.rollup.via), []).append(f)
        self.by_child: dict[str, list[_Group]] = {}
        self.by_target: dict[str, list[_Through]] = {}  # object -> groups whose filters read its fields
        for (parent, child, via), fields in groups.items():
            reads = {via} | {f.rollup.field for f in fields if f.rollup.field} | {
                k.partition(".")[0] for f in fields for k in f.rollup.filter}
            group = _Group(parent, child, via, tuple(fields), frozenset(reads))
            self.by_child.setdefault(child, []).append(group)
            through: dict[str, set[str]] = {}
            for key in {k for f in fields for k in f.rollup.filter if "." in k}:
                hop, _, far = key.partition(".")
                through.setdefault(hop, set()).add(far)
            for hop, far in through.items():
                target = metadata.objects[child].fields[hop].to
                self.by_target.setdefault(target, []).append(_Through(group, hop, frozenset(far)))
        self._prepared: dict[_Group, tuple[sa.Select, sa.Update, sa.Select]] = {}
        self.summaries = Summaries(schema)  # kept current from the same after-write point

    def initial(self, obj: str) -> dict[str, Any]:
        """The rollup values of a record that has no children yet."""
        fields = self.schema[obj].object.fields.values()
        return {f.name: 0 for f in fields if f.rollup is not None and f.rollup.function in ("sum", "count")}

    def after_change(self, conn: sa.Connection, child: str, changes: Iterable[Change], now: datetime) -> None:
        """Refresh the parents whose rollups the changed `child` records feed (old and new parents), and those
        whose rollups filter on a field of `child` that changed (through their children's lookup of it); and the
        summary tables `child` feeds."""
        changes = list(changes)
        self.summaries.after_change(conn, child, changes)
        for group in self.by_child.get(child, ()):
            ids: set[int] = set()
            for before, after in changes:
                if before is not None and after is not None and all(
                    before.get(name) == after.get(name) for name in group.reads
                ):
                    continue
                ids.update(int(r[group.via]) for r in (before, after) if r is not None and r.get(group.via))
            if ids:
                self.refresh(conn, group, sorted(ids), now)
        for through in self.by_target.get(child, ()):
            targets = [int(after["id"]) for before, after in changes if before is not None and after is not None
                       and any(before.get(name) != after.get(name) for name in through.fields)]
            if targets:
                self._refresh_through(conn, through, targets, now)

    def _refresh_through(self, conn: sa.Connection, through: _Through, targets: list[int], now: datetime) -> None:
        """Refresh the parents of the children that name one of `targets` in their lookup `through.hop`: the
        target's change may move them in or out of the group's filter."""
        cot = self.schema[through.group.child]
        via = cot.column(through.group.via)
        parents = conn.execute(sa.select(via).distinct().where(
            cot.column(through.hop).in_(targets), via.is_not(None))).scalars()
        ids = sorted(int(p) for p in parents)
        if ids:
            self.refresh(conn, through.group, ids, now)

    def after_insert_many(self, conn: sa.Connection, child: str, records: list[Mapping[str, Any]],
                          now: datetime) -> None:
        """Add a bulk insert's counts and sums to the parents' rollups (each a running total).

        Recounting every touched parent from all its children after each batch of an import grows
        with the table; adding the batch's own contribution is one UPDATE per parent, still under
        the parent's row lock. min and max are recomputed. The summary tables get the batch's deltas too.
        """
        self.summaries.after_change(conn, child, [(None, record) for record in records])
        for group in self.by_child.get(child, ()):
            parents = [record.get(group.via) for record in records]
            deltas: dict[int, dict[str, Any]] = {
                int(p): dict.fromkeys(f.name for f in group.fields) for p in set(parents) if p}
            for f in group.fields:  # field by field, a count by counting (no per-record addition)
                wanted = f.rollup.filter
                matching = [(parent, record) for record, parent in zip(records, parents, strict=True)
                            if parent and (not wanted or _matches(wanted, record))]
                if f.rollup.function == "count":
                    for parent, n in Counter(parent for parent, _ in matching).items():
                        deltas[int(parent)][f.name] = n
                    continue
                for parent, record in matching:
                    add, totals = record.get(f.rollup.field or ""), deltas[int(parent)]
                    totals[f.name] = add if totals[f.name] is None else totals[f.name] + (add or 0)
            if deltas:  # a filter on a looked-up record's field is not in the rows: recount
                additive = all(f.rollup.function in ("sum", "count") and not any("." in k for k in f.rollup.filter)
                               for f in group.fields)
                self.refresh(conn, group, sorted(deltas), now, deltas if additive else None)

    def _statements(self, group: _Group) -> tuple[sa.Select, sa.Update, sa.Select]:
        """The group's parents (an expanding `_parents`) locked and read, recounted, and read again, built on the
        group's first refresh: building the recount's subqueries cost more than running them."""
        if group not in self._prepared:
            pot = self.schema[group.parent]
            table = pot.table
            parents = table.c.id.in_(sa.bindparam("_parents", expanding=True))
            read = sa.select(table).where(parents).order_by(table.c.id)
            recount = sa.update(table).where(parents).values(
                {pot.column(f.name): rollup_value(self.schema, f, table) for f in group.fields})
            self._prepared[group] = (read.with_for_update(), recount, read)
        return self._prepared[group]

    def refresh(self, conn: sa.Connection, group: _Group, ids: list[int], now: datetime,
                deltas: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        """Recompute (or, given `deltas`, add to) the group's rollups on the parents `ids`, then their
        stored formulas, then upwards."""
        pot = self.schema[group.parent]
        table = pot.table
        lock, recount, read = self._statements(group)
        before = {r["id"]: r for r in conn.execute(lock, {"_parents": ids}).mappings()}
        if not before:
            return
        if deltas is None:
            conn.execute(recount, {"_parents": list(before)})
        else:
            columns = {f.name: pot.column(f.name) for f in group.fields}
            conn.execute(
                sa.update(table).where(table.c.id == sa.bindparam("_parent"))
                .values({c: sa.func.coalesce(c, 0) + sa.bindparam(f"_add_{n}", type_=c.type)
                         for n, c in columns.items()}),
                [{"_parent": pid, **{f"_add_{n}": deltas[pid][n] or 0 for n in columns}} for pid in before],
            )
        formulas = self.formulas[group.parent]
        changes: list[Change] = []
        updates: list[dict] = []
        rows = conn.execute(read, {"_parents": list(before)}).mappings()
        for row in rows:
            old, new = from_row(pot, before[row["id"]]), from_row(pot, row)
            if formulas.stored:
                computed = formulas.on_write(dict(new), now, before=old)
                stored = {name: computed[name] for name in formulas.stored if computed[name] != new[name]}
                if stored:
                    new.update(stored)
                    updates.append({"_id": row["id"], **to_row(pot, stored)})
            if old != new:
                changes.append((old, new))
        by_columns: dict[tuple[str, ...], list[dict]] = {}
        for update in updates:  # one executemany per set of columns changed
            by_columns.setdefault(tuple(sorted(update)), []).append({f"_{k}": v for k, v in update.items()})
        for columns, params in by_columns.items():
            stored = [c for c in columns if c != "_id"]
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("__id"))
                         .values({c: sa.bindparam(f"_{c}") for c in stored}), params)
        if changes:
            self.after_change(conn, group.parent, changes, now)
            if self.records is not None:
                definition = self.metadata.objects[group.parent]
                for old, new in changes:
                    self.records.platform.registry.run_hooks("after_rollup", definition, hooks.HookContext(
                        self.records, conn, group.parent, None, now, before=old, after=new))


def _matches(conditions: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether a record passes a rollup filter ({field: value}, a list of values, or null)."""
    for name, wanted in conditions.items():
        value = record.get(name)
        if value != wanted if not isinstance(wanted, list) else value not in wanted:
            return False
    return True
