"""Record hooks: the extension point through which behaviors react to records being written.

(How it works: docs/engine.md, "objectplatform/runtime/records/hooks.py".)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import ObjectDef

from ..storage.id_sets import among

EVENTS = frozenset({"before_create", "after_create", "before_update", "after_update", "before_delete",
                    "after_delete", "after_restore", "before_create_many", "after_create_many", "after_rollup"})


@dataclass
class HookContext:
    """What a handler gets: the service (as the caller sees it), the transaction and the record(s)."""

    records: Any  # the Records service, within the caller's data scope when the caller has one
    conn: sa.Connection
    object: str
    user: str | None
    now: datetime
    before: dict | None = None
    after: dict | None = None
    errors: dict[str, list[str]] | None = None
    batch: list[dict] = field(default_factory=list)
    batch_errors: list[dict[str, list[str]]] = field(default_factory=list)
    batch_given: list[Mapping[str, Any]] = field(default_factory=list)  # before_create_many: each row as given
    warnings: list[str] = field(default_factory=list)  # what a write may do but the caller should hear about
    system: bool = False  # a write by the system (a transition, a behavior, the demo): no user's guard holds it
    given: Mapping[str, Any] | None = None  # before_create/_update: the values the caller gave (defaults not added)
    master: tuple[str, Mapping] | None = None  # an inline line's (master_detail field, master record being written)


@dataclass
class RowsContext:
    """What the set form of an after_rollup handler gets: the records a set-based rollup refresh changed, as SQL
    (no record is read into Python): `table` holds them as written, `before` one row per record changed: its `id`,
    and each column the refresh wrote as it was (by the column's name) and as it is now (`new_<column>`); a
    refresh that added to counts and sums (`Rollups.refresh_added`) gives there the rollups it changed, as they are
    less what it added. Read `before` alone or select from `table` by `changed()` (by `ids`): the databases know no
    statistics of a temporary table, and a join of the two, or a subquery, may make them scan `table`."""

    records: Any
    conn: sa.Connection
    object: str
    now: datetime
    table: sa.Table
    before: sa.FromClause
    columns: Mapping[str, sa.Column]  # {field: its column of `table`}, those an expression may read (formula_columns)
    ids: list[int]  # the records changed, by id (values, not a subquery: the planner knows how few they are)
    written: frozenset[str]  # the fields the refresh changed on some of them

    def changed(self) -> sa.ColumnElement[bool]:
        """The condition selecting the records changed in `table`."""
        return among(self.table.c.id, self.ids)


Handler = Callable[[HookContext], None]


@dataclass(frozen=True, eq=False)
class Hook:
    event: str
    handler: Handler
    applies: Callable[[ObjectDef], bool]
    # after_rollup: the fields of the object the handler reads (None: the whole record), so that a rollup refresh
    # reads only those of the parents it changed
    reads: Callable[[ObjectDef], Iterable[str]] | None = None
    # before_update / after_update: whether a system write of the same `values` on many records at once needs the
    # handler run on each record, as (metadata, object, values) -> bool (None: it does); one that does not lets
    # the write stay set-based (records.Records.update_all)
    needed: Callable[[Any, ObjectDef, Mapping[str, Any]], bool] | None = None
    # after_rollup: the handler's set form, run once on all the records a set-based refresh changed (RowsContext);
    # an object with an after_rollup hook lacking one has its rollups refreshed record by record
    many: Callable[[RowsContext], None] | None = None
