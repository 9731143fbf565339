"""Rollup fields kept current in the transaction of the child change, then propagated upwards.

(How it works: docs/engine.md, "objectplatform/runtime/records/rollups.py".)"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import FieldDef, Metadata
from objectplatform.metadata.expressions import ExpressionError

from ..storage.convert import from_row, to_row
from ..storage.derived import rollup_counts, rollup_deltas
from ..storage.engine import temporary_table
from ..storage.id_sets import among, ids_param, json_rows
from ..storage.tables import Schema
from . import hooks
from .formulas import Formulas
from .query import formula_columns
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
        self._prepared: dict[tuple[_Group, tuple[str, ...] | None], tuple[sa.Select, sa.Select]] = {}
        self._fields: dict[_Group, frozenset[str]] = {}
        self._held: dict[_Group, sa.Table | None] = {}
        self._expression_columns: dict[str, Mapping[str, sa.Column]] = {}
        self._updates: dict[tuple[_Group, str], sa.Insert] = {}  # refresh_set's, built once (not reading the clock)
        self._addable: dict[tuple[str, frozenset[str]], list[_Group]] = {}
        self._adding: dict[tuple, Any] = {}  # refresh_added's statements, built once per shape
        self.summaries = Summaries(schema)  # kept current from the same after-write point

    def initial(self, obj: str) -> dict[str, Any]:
        """The rollup values of a record that has no children yet."""
        fields = self.schema[obj].object.fields.values()
        return {f.name: 0 for f in fields if f.rollup is not None and f.rollup.function in ("sum", "count")}

    def after_change(self, conn: sa.Connection, child: str, changes: Iterable[Change], now: datetime) -> None:
        """Refresh the parents whose rollups the changed `child` records feed (old and new parents: what updates add
        to counts and sums, where they add anything; recounted otherwise), and those whose rollups filter on a field
        of `child` that changed (through their children's lookup of it); and the summary tables `child` feeds."""
        changes = list(changes)
        self.summaries.after_change(conn, child, changes)
        for group in self.by_child.get(child, ()):
            ids: set[int] = set()
            moved: list[Change] = []
            for before, after in changes:
                if before is not None and after is not None and all(
                    before.get(name) == after.get(name) for name in group.reads
                ):
                    continue
                ids.update(int(r[group.via]) for r in (before, after) if r is not None and r.get(group.via))
                moved.append((before, after))
            if not ids:
                continue
            if not self._additive(group) or any(before is None or after is None for before, after in moved):
                self.refresh(conn, group, sorted(ids), now)  # a record restored comes back with its parents' rollups
                continue
            deltas = _deltas(group, moved)  # a change that moves no record in or out of a filter adds nothing
            if deltas:
                self.refresh(conn, group, sorted(deltas), now, deltas)
        for through in self.by_target.get(child, ()):
            targets = [int(after["id"]) for before, after in changes if before is not None and after is not None
                       and any(before.get(name) != after.get(name) for name in through.fields)]
            if targets:
                self._refresh_through(conn, through, targets, now)

    def _refresh_through(self, conn: sa.Connection, through: _Through, targets: list[int], now: datetime,
                         set_based: bool = False) -> None:
        """Refresh the parents of the children that name one of `targets` in their lookup `through.hop`: the
        target's change may move them in or out of the group's filter."""
        cot = self.schema[through.group.child]
        via = cot.column(through.group.via)
        parents = conn.execute(sa.select(via).distinct().where(
            cot.column(through.hop).in_(targets), via.is_not(None))).scalars()
        ids = sorted(int(p) for p in parents)
        if ids:
            (self.refresh_set if set_based else self.refresh)(conn, through.group, ids, now)

    def feeding(self, child: str, values: Mapping[str, Any], added: Iterable[_Group] = ()) -> list[str]:
        """The lookups of `child` whose parents `fed_by` refreshes after a set-based write of `values` (the groups
        `added` left out)."""
        groups = self.by_child.get(child, ())
        return list(dict.fromkeys(group.via for group in groups if group.reads & values.keys() and group not in added))

    def fed_by(self, conn: sa.Connection, child: str, where: sa.ColumnElement[bool], values: Mapping[str, Any],
               written: Iterable[Sequence[Any]] | None = None,
               added: Iterable[_Group] = ()) -> list[tuple[_Group | _Through, list[int]]]:
        """For a set-based write of `values` on the `child` records `where` selects: what `refresh_fed` refreshes
        after it, each group the values may change with its parents (theirs now and the one `values` names), each
        group filtering on a field of `child` the values change with the records. Read before the write, in one
        query; or, when the write changes none of the lookups `feeding` names, taken from `written`, the rows it
        wrote as (id, each of those lookups). The groups `added` (`added_by` read what the write adds to them) are
        left out."""
        cot = self.schema[child]
        vias = self.feeding(child, values, added)
        throughs = [through for through in self.by_target.get(child, ()) if through.fields & values.keys()]
        if written is None and (vias or throughs):  # the records' ids only when a through group wants them
            read = sa.select(cot.table.c.id if throughs else sa.null(), *(cot.column(via) for via in vias))
            written = conn.execute((read if throughs else read.distinct()).where(where)).all()
        rows = list(written or ())
        fed: list[tuple[_Group | _Through, list[int]]] = []
        for group in self.by_child.get(child, ()):
            if group.reads & values.keys() and group not in added:
                at = vias.index(group.via) + 1
                ids = {row[at] for row in rows if row[at] is not None}
                if values.get(group.via):
                    ids.add(int(values[group.via]))
                fed.append((group, sorted(ids)))
        for through in throughs:
            fed.append((through, sorted(row[0] for row in rows)))
        return fed

    def addable(self, child: str, values: Mapping[str, Any]) -> list[_Group]:
        """The groups a set-based write of the same `values` (as given; the `child`'s stored formulas it computes
        named too, as None) refreshes by adding to their parents (`added_by`, `refresh_added`): counts and sums over
        the child's own fields (`_additive`) whose lookup it leaves alone and whose fields it changes are all given,
        of a parent whose stored formulas compile to SQL without reading the clock and whose after_rollup hooks all
        have a set form. The others take `fed_by` and `refresh_fed`."""
        given = frozenset(name for name, value in values.items() if name not in self.formulas[child].stored)
        key = (child, given)
        if key not in self._addable:
            derived = self.formulas[child].stored
            self._addable[key] = [
                group for group in self.by_child.get(child, ())
                if group.reads & given and not group.reads & derived and group.via not in given
                and self._additive(group) and self._set_based(group)
                and not self.formulas[group.parent].clocked]
        return self._addable[key]

    def _set_based(self, group: _Group) -> bool:
        """Whether the group's parents may be refreshed without reading them into Python: their stored formulas
        compile to SQL and each after_rollup hook they have has a set form."""
        hooked = self.records.platform.registry.hooks_of("after_rollup", self.metadata.objects[group.parent]) \
            if self.records is not None else []
        try:
            self.formulas[group.parent].sql(self._columns(group.parent), {}, datetime.now())
        except ExpressionError:
            return False
        return all(hook.many is not None for hook in hooked)

    def added_by(self, conn: sa.Connection, child: str, where: sa.ColumnElement[bool],
                 values: Mapping[str, Any]) -> list[tuple[_Group, list[tuple]]]:
        """Read before a set-based write of the same `values` on the `child` records `where` selects: for each group
        of `addable`, what the write adds to its rollups on each parent, as [(parent id, then each rollup's delta in
        the group's order)], the parents it adds nothing to left out; one grouped query per group
        (`storage.derived.rollup_deltas`, built once per group and fields written, the values bound)."""
        found = []
        for group in self.addable(child, values):
            stmt, params = self._deltas_read(group, values)
            rows = sorted(tuple(row) for row in conn.execute(stmt.where(where), params) if any(row[1:]))
            if rows:  # (in id order: two writers lock the parents they share in one order)
                found.append((group, rows))
        return found

    def _deltas_read(self, group: _Group, values: Mapping[str, Any]) -> tuple[sa.Select, dict[str, Any]]:
        """`added_by`'s query of `group` (without its `where`; built once per fields written and values of the
        filters' fields) and its parameters: the measured fields written as the columns hold them."""
        cot = self.schema[group.child]
        written = {name: values[name] for name in sorted(group.reads & values.keys())}
        measured = sorted({f.rollup.field for f in group.fields} & written.keys())
        key = ("read", group, tuple((name, None if name in measured else repr(value))
                                    for name, value in written.items()))
        if key not in self._adding:
            self._adding[key] = rollup_deltas(self.schema, group.fields, written)
        row = to_row(cot, {name: written[name] for name in measured})
        return self._adding[key], {f"_new_{name}": row[cot.column(name).name] for name in measured}

    def refresh_added(self, conn: sa.Connection, added: list[tuple[_Group, list[tuple]]], now: datetime) -> None:
        """After a set-based write, add what `added_by` read before it to each group's parents: ONE UPDATE (the
        deltas bound as one JSON parameter) adds to the rollups that change and computes the stored formulas
        reading them, then what they feed is refreshed set-based and each after_rollup hook's set form runs once,
        its `before` read from the same deltas (the parents' rollups less what was added). A parent refreshing
        itself (it feeds its own rollups) is recounted instead."""
        active = conn.info.setdefault("rollups_set_based", set())
        for group, rows in added:
            if group.parent in active:
                self.refresh(conn, group, [row[0] for row in rows], now)
                continue
            names = tuple(f.name for n, f in enumerate(group.fields, 1) if any(row[n] for row in rows))
            update, before, changed = self._adding_update(conn.dialect.name, group, names)
            data = json.dumps(rows, default=str)
            ids = [row[0] for row in rows]
            table = self.schema[group.parent].table
            chosen = among(table.c.id, ids)
            active.add(group.parent)
            try:
                with self.summaries.moving(conn, group.parent, chosen, changed):
                    conn.execute(update, {"_rows": data})
                self.refresh_fed(conn, self.fed_by(conn, group.parent, chosen, dict.fromkeys(changed)), now)
                if self.records is not None:
                    context = hooks.RowsContext(self.records, conn, group.parent, now, table,
                                                before.params(_rows=data).subquery("before"),
                                                self._columns(group.parent), ids, frozenset(changed))
                    for hook in self.records.platform.registry.hooks_of("after_rollup",
                                                                        self.metadata.objects[group.parent]):
                        hook.many(context)
            finally:
                active.discard(group.parent)

    def _adding_update(self, dialect: str, group: _Group, names: tuple[str, ...]) -> tuple:
        """`refresh_added`'s statements for the rollups `names` of `group` (built once each): the UPDATE of the
        parents a `_rows` JSON list of `added_by`'s rows names ([id, then each rollup's delta]), the select of
        `before` (id, each rollup as it was and, as new_<column>, as it is) and the fields the UPDATE writes (the
        rollups, the stored formulas reading them)."""
        key = ("update", group, names, dialect)
        if key not in self._adding:
            pot = self.schema[group.parent]
            table = pot.table
            rows = json_rows(dialect, sa.bindparam("_rows", type_=sa.Text()), {
                "id": sa.BigInteger(), **{f.name: pot.column(f.name).type for f in group.fields}}).subquery("rows")
            new, old = {}, {}
            for f in group.fields:
                if f.name in names:
                    column = pot.column(f.name)
                    new[f.name], old[f.name] = column + rows.c[f.name], column - rows.c[f.name]
                    if isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Integer):
                        new[f.name], old[f.name] = (sa.func.round(v, column.type.scale or 0)  # SQLite adds floats
                                                    for v in (new[f.name], old[f.name]))
                    new[f.name] = sa.type_coerce(new[f.name], column.type)
            formulas = self.formulas[group.parent]
            reading = set(names)
            for f, expr in formulas.order:  # a formula after those it reads
                if expr.names & reading:
                    reading.add(f.name)
            computed = formulas.sql(self._columns(group.parent), new, datetime.now(), only=reading)
            changed = [*names, *(name for name in sorted(formulas.stored) if name in reading)]
            update = sa.update(table).values(
                {pot.column(name).name: new[name] if name in new else computed[name] for name in changed}
            ).where(table.c.id == rows.c.id)
            before = sa.select(table.c.id, *(c for name in names for c in (
                old[name].label(pot.column(name).name), pot.column(name).label(f"new_{pot.column(name).name}")))
            ).where(table.c.id == rows.c.id)
            self._adding[key] = (update, before, changed)
        return self._adding[key]

    def refresh_fed(self, conn: sa.Connection, fed: list[tuple[_Group | _Through, list[int]]], now: datetime) -> None:
        """After a set-based write, refresh what `fed_by` found before it, set-based too (`refresh_set`)."""
        for item, ids in fed:
            if not ids:
                continue
            if isinstance(item, _Through):
                self._refresh_through(conn, item, ids, now, set_based=True)
            else:
                self.refresh_set(conn, item, ids, now)

    def after_insert_many(self, conn: sa.Connection, child: str, records: list[Mapping[str, Any]],
                          now: datetime) -> None:
        """Add a bulk insert's counts and sums to the parents' rollups (each a running total).

        Recounting every touched parent from all its children after each batch of an import grows
        with the table; adding the batch's own contribution is one UPDATE per parent, still under
        the parent's row lock. min and max are recomputed. The summary tables get the batch's deltas too.
        """
        inserted: list[Change] = [(None, record) for record in records]
        self.summaries.after_change(conn, child, inserted)
        for group in self.by_child.get(child, ()):
            if self._additive(group):
                deltas = _deltas(group, inserted)  # the parents the records add nothing to left alone
                if deltas:
                    self.refresh(conn, group, sorted(deltas), now, deltas)
                continue
            parents = sorted({int(record[group.via]) for record in records if record.get(group.via)})
            if parents:
                self.refresh(conn, group, parents, now)

    def _additive(self, group: _Group) -> bool:
        """Whether the group's rollups follow from the changed records alone: counts and sums of stored fields whose
        filters read the child's own fields (a filter on a looked-up record's field is not in the rows: recount)."""
        columns = self.schema[group.child].columns
        return all(f.rollup.function in ("sum", "count") and (f.rollup.field is None or f.rollup.field in columns)
                   and not any("." in k for k in f.rollup.filter) for f in group.fields)

    def _watched(self, group: _Group) -> tuple[str, ...] | None:
        """The fields of its parent a refresh of `group` reads (None: whole records): the group's rollups, the
        stored formulas with what they read, what the rollups the parent feeds read of it and what its after_rollup
        hooks read. Reading only these keeps a refresh of many parents from converting whole rows."""
        parent = group.parent
        obj, pot = self.metadata.objects[parent], self.schema[parent]
        hooked = self.records.platform.registry.hooks_of("after_rollup", obj) if self.records is not None else []
        if any(hook.reads is None for hook in hooked):
            return None
        if group not in self._fields:
            names = {f.name for f in group.fields}
            for fed in self.by_child.get(parent, ()):
                names |= {fed.via, *fed.reads}
            for through in self.by_target.get(parent, ()):
                names |= through.fields
            formulas = self.formulas[parent]
            names |= formulas.stored
            for f, expr in reversed(formulas.order):  # a formula after those it reads: its inputs, then theirs
                if f.name in names:
                    names |= expr.names
            self._fields[group] = frozenset(names)
        names = self._fields[group].union(*(hook.reads(obj) for hook in hooked))
        return ("id", *sorted(n for n in names if n in pot.columns and n != "id"))

    def _statements(self, group: _Group, watched: tuple[str, ...] | None) -> tuple[sa.Select, sa.Select]:
        """The group's parents (a `_parents` list of ids) locked and read (the `watched` fields, None: whole rows),
        and their rollups counted in one aggregate query over their children, built on the group's first refresh
        (building a statement costs more than running it on a few parents)."""
        if (group, watched) not in self._prepared:
            pot = self.schema[group.parent]
            table = pot.table
            parents = among(table.c.id, ids_param("_parents"))
            columns = [table] if watched is None else [table.c[c] for name in watched for c in pot.columns[name]]
            read = sa.select(*columns).where(parents).order_by(table.c.id)
            count = rollup_counts(self.schema, pot, group.fields)
            self._prepared[(group, watched)] = (read.with_for_update(), count)
        return self._prepared[(group, watched)]

    def _record(self, parent: str, watched: tuple[str, ...] | None, row: Mapping[str, Any]) -> dict[str, Any]:
        """A parent's row as `_statements` read it: the whole record, or its `watched` fields."""
        pot = self.schema[parent]
        if watched is None:
            return from_row(pot, row)
        return {name: pot.types[name].from_columns(tuple(row[c] for c in pot.columns[name])) for name in watched}

    def refresh(self, conn: sa.Connection, group: _Group, ids: list[int], now: datetime,
                deltas: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        """Recount (or, given `deltas`, add to) the group's rollups on the parents `ids` locked, compute their
        stored formulas, write what changed in one UPDATE per set of changed columns, then upwards and the
        after_rollup hooks of each parent changed."""
        pot = self.schema[group.parent]
        table = pot.table
        watched = self._watched(group)
        lock, count = self._statements(group, watched)
        before = {r["id"]: self._record(group.parent, watched, r)
                  for r in conn.execute(lock, {"_parents": ids}).mappings()}
        if not before:
            return
        if deltas is None:
            none = {f.name: 0 if f.rollup.function in ("sum", "count") else None for f in group.fields}
            counted = dict.fromkeys(before, none) | {
                r["id"]: {f.name: pot.types[f.name].from_columns((r[f.name],)) for f in group.fields}
                for r in conn.execute(count, {"_parents": list(before)}).mappings()}
        else:
            counted = {pid: {f.name: (old[f.name] or 0) + (deltas[pid][f.name] or 0) for f in group.fields}
                       for pid, old in before.items()}
        formulas = self.formulas[group.parent]
        changes: list[Change] = []
        by_columns: dict[tuple[str, ...], list[dict]] = {}  # one executemany per set of columns changed
        for pid, old in before.items():
            new = {**old, **counted[pid]}
            if formulas.stored:
                computed = formulas.on_write(dict(new), now, before=old)
                new.update({name: computed[name] for name in formulas.stored})
            changed = {name: new[name] for name in (*counted[pid], *sorted(formulas.stored)) if new[name] != old[name]}
            if not changed:
                continue
            changes.append((old, new))
            row = to_row(pot, changed)
            by_columns.setdefault(tuple(sorted(row)), []).append({"__id": pid, **{f"_{c}": v for c, v in row.items()}})
        for columns, params in by_columns.items():
            _update_rows(conn, table, columns, params)
        if changes:
            self.after_change(conn, group.parent, changes, now)
            if self.records is not None:
                definition = self.metadata.objects[group.parent]
                for old, new in changes:
                    self.records.platform.registry.run_hooks("after_rollup", definition, hooks.HookContext(
                        self.records, conn, group.parent, None, now, before=old, after=new))

    def refresh_set(self, conn: sa.Connection, group: _Group, ids: list[int], now: datetime) -> None:
        """`refresh` with no record read into Python: the parents `ids` locked and, in ONE INSERT ... SELECT into a
        temporary table, their written columns as they are and as they will be (the rollups from one grouped
        count of the children, the stored formulas computed over them); the parents whose values change written in
        one UPDATE from that table, what they feed refreshed set-based and each after_rollup hook's set form
        (`Hook.many`) run once on them. A parent whose formulas the database cannot compute, or with a hook lacking
        a set form, is refreshed by `refresh`."""
        active = conn.info.setdefault("rollups_set_based", set())
        held = self._held_table(group)
        hooked = self.records.platform.registry.hooks_of("after_rollup", self.metadata.objects[group.parent]) \
            if self.records is not None else []
        if held is None or group.parent in active or any(hook.many is None for hook in hooked):
            self.refresh(conn, group, ids, now)  # (a parent feeding itself: its own refresh holds the table)
            return
        pot = self.schema[group.parent]
        table = pot.table
        active.add(group.parent)
        try:
            temporary_table(conn, held)
            conn.execute(held.delete())  # left over by a refresh whose failure the caller survived
            rows = conn.execute(self._set_fill(conn.dialect.name, group, held, now), {"_parents": ids}).all()
            changed = [name for n, name in enumerate(self._written(group), 1) if any(row[n] for row in rows)]
            if not changed:
                return
            ids = sorted(row[0] for row in rows if any(row[1:]))
            if len(ids) < len(rows):  # `held` keeps the parents whose values change
                conn.execute(held.delete().where(sa.not_(among(held.c.id, ids))))
            chosen = among(table.c.id, ids)  # (not a subquery: the planner knows nothing of a temporary table)
            with self.summaries.moving(conn, group.parent, chosen, changed):
                conn.execute(_copy(conn.dialect, table, held, [pot.column(name).name for name in changed]))
            # the parents' lookups are not written here: what they feed is found after the write, for those changed
            self.refresh_fed(conn, self.fed_by(conn, group.parent, chosen, dict.fromkeys(changed)), now)
            if self.records is not None:
                context = hooks.RowsContext(self.records, conn, group.parent, now, table, held,
                                            self._columns(group.parent), ids, frozenset(changed))
                for hook in hooked:
                    hook.many(context)
        finally:
            active.discard(group.parent)

    def _columns(self, obj: str) -> Mapping[str, sa.Column]:
        """`formula_columns` of `obj`, made once."""
        if obj not in self._expression_columns:
            self._expression_columns[obj] = formula_columns(self.schema[obj])
        return self._expression_columns[obj]

    def _written(self, group: _Group) -> list[str]:
        """The fields `refresh_set` writes on the group's parents: its rollups, the parent's stored formulas."""
        return [f.name for f in group.fields] + sorted(self.formulas[group.parent].stored)

    def _held_table(self, group: _Group) -> sa.Table | None:
        """The temporary table of `refresh_set` for `group` (id, then each column it writes as it is and, as
        new_<column>, as it will be), or None when the parent's stored formulas do not compile to SQL."""
        if group not in self._held:
            pot = self.schema[group.parent]
            held = None
            if self._compiles(group):
                columns = [pot.column(name) for name in self._written(group)]
                held = sa.Table(f"_op_held_{group.parent}_{group.child}_{group.via}"[:63], sa.MetaData(),
                                sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
                                *(sa.Column(c.name, c.type) for c in columns),
                                *(sa.Column(f"new_{c.name}", c.type) for c in columns), prefixes=["TEMPORARY"])
            self._held[group] = held
        return self._held[group]

    def _compiles(self, group: _Group) -> bool:
        """Whether the parent's stored formulas compile to SQL (`Formulas.sql`)."""
        try:
            self._fresh(group, datetime.now())
        except ExpressionError:
            return False
        return True

    def _set_fill(self, dialect: str, group: _Group, held: sa.Table, now: datetime) -> sa.Insert:
        """The INSERT ... SELECT of `refresh_set`, returning each parent's id and, column by column, whether its
        value changes as stored (built once unless a formula reads the clock)."""
        key = (group, dialect)
        if key in self._updates:
            return self._updates[key]
        fresh, columns = self._fresh(group, now)
        if dialect == "postgresql":  # SQLite's BEGIN IMMEDIATE already serializes the writers
            fresh = fresh.with_for_update(of=columns)
        names = [c.name for c in held.c if c.name != "id" and not c.name.startswith("new_")]
        insert = held.insert().from_select(["id", *names, *(f"new_{c}" for c in names)], fresh).returning(
            held.c.id, *(held.c[f"new_{c}"].is_distinct_from(held.c[c]) for c in names))
        if not self.formulas[group.parent].clocked:
            self._updates[key] = insert
        return insert

    def _fresh(self, group: _Group, now: datetime) -> tuple[sa.Select, sa.FromClause]:
        """The parents a `_parents` list of ids names: id, their written columns as they are, then as they will be
        (the rollups from their grouped counts, a parent without children 0 for a sum or count, else null; the
        stored formulas over them); and the aliased parent table it reads."""
        pot = self.schema[group.parent]
        counts = rollup_counts(self.schema, pot, group.fields).subquery("counts")
        parents = pot.table.alias("parents")
        new: dict[str, sa.ColumnElement] = {}
        for f in group.fields:
            value, column = counts.c[f.name], pot.column(f.name)
            if f.rollup.function in ("sum", "count"):
                value = sa.func.coalesce(value, 0)
            if f.rollup.function == "sum" and isinstance(column.type, sa.Numeric) \
                    and not isinstance(column.type, sa.Integer):  # SQLite sums floats
                value = sa.func.round(value, column.type.scale or 0)
            new[f.name] = sa.type_coerce(value, column.type)
        columns = {name: parents.c[column.name] for name, column in self._columns(group.parent).items()}
        new.update(self.formulas[group.parent].sql(columns, dict(new), now))
        written = self._written(group)
        fresh = sa.select(parents.c.id, *(columns[name] for name in written), *(new[name] for name in written)) \
            .select_from(parents.outerjoin(counts, counts.c.id == parents.c.id)) \
            .where(among(parents.c.id, ids_param("_parents")))
        return fresh, parents


def _copy(dialect: sa.Dialect, table: sa.Table, held: sa.Table, columns: list[str]) -> sa.TextClause:
    """UPDATE `columns` of the rows of `table` that `held` (`refresh_set`'s) names from its new_<column> values: on
    PostgreSQL FROM it, on SQLite by a row value looked up by id (its UPDATE ... FROM would scan `table`)."""
    quote, name = dialect.identifier_preparer.quote, dialect.identifier_preparer.format_table
    target, source = name(table), quote(held.name)
    if dialect.name == "postgresql":
        assigned = ", ".join(f"{quote(c)} = {source}.{quote('new_' + c)}" for c in columns)
        return sa.text(f"UPDATE {target} SET {assigned} FROM {source} WHERE {target}.id = {source}.id")
    listed = ", ".join(quote(c) for c in columns)
    new = ", ".join(quote("new_" + c) for c in columns)
    return sa.text(f"UPDATE {target} SET ({listed}) = (SELECT {new} FROM {source} WHERE {source}.id = {target}.id) "
                   f"WHERE {target}.id IN (SELECT id FROM {source})")


def _update_rows(conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], params: list[dict]) -> None:
    """Write `columns` of the rows `params` give ({"__id", "_<column>"...} each): on PostgreSQL one UPDATE ... FROM
    the rows as ONE JSON parameter (a statement per row costs it as much again as the write), on SQLite an
    executemany (its statements cost next to nothing)."""
    if conn.dialect.name != "postgresql" or len(params) == 1:
        conn.execute(sa.update(table).where(table.c.id == sa.bindparam("__id"))
                     .values({c: sa.bindparam(f"_{c}") for c in columns}), params)
        return
    quote = conn.dialect.identifier_preparer.quote
    types = ", ".join(f"{quote(c)} {table.c[c].type.compile(dialect=conn.dialect)}" for c in ("id", *columns))
    assigned = ", ".join(f"{quote(c)} = rows.{quote(c)}" for c in columns)
    data = json.dumps([{"id": p["__id"], **{c: p[f"_{c}"] for c in columns}} for p in params], default=str)
    conn.execute(sa.text(f"UPDATE {conn.dialect.identifier_preparer.format_table(table)} SET {assigned} "
                         f"FROM json_to_recordset(CAST(:rows AS json)) AS rows({types}) "
                         f"WHERE {quote(table.name)}.id = rows.id"), {"rows": data})


def _deltas(group: _Group, changes: list[Change]) -> dict[int, dict[str, Any]]:
    """{parent: {rollup field: what the changes add to it}} of an additive group, the parents they add nothing to
    left out: each record as it was taken out of its parent's counts and sums, as it is put into its parent's."""
    deltas: dict[int, dict[str, Any]] = {}
    for before, after in changes:
        for record, sign in ((before, -1), (after, 1)):
            if record is None or not record.get(group.via):
                continue
            totals = deltas.setdefault(int(record[group.via]), dict.fromkeys((f.name for f in group.fields), 0))
            for f in group.fields:
                if _matches(f.rollup.filter, record):
                    totals[f.name] += sign if f.rollup.function == "count" else sign * (record.get(f.rollup.field) or 0)
    return {parent: totals for parent, totals in deltas.items() if any(totals.values())}


def _matches(conditions: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether a record passes a rollup filter ({field: value}, a list of values, or null)."""
    for name, wanted in conditions.items():
        value = record.get(name)
        if value != wanted if not isinstance(wanted, list) else value not in wanted:
            return False
    return True
