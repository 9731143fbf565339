"""Record hooks: the extension point through which behaviors react to records being written.

A plugin registers a handler for an event and the objects it `applies` to (a test on the ObjectDef, e.g.
"declares follow_ups", so an object a site layer adds is covered too) on the platform's registry:

    registry.hook("after_create", on_follow_up, applies=lambda obj: "follow_ups" in obj.behaviors)

The records service runs the handlers INSIDE the transaction of the write, with its connection, so
whatever a handler writes commits or rolls back with the record; a handler that raises (say
ValidationFailed or Conflict) aborts the whole operation. Events, and what the context carries:

- `before_create`: `after` is the full record about to be inserted (field values validated, lookups
  and unique values checked), `errors` the field errors found so far. A handler may change `after`
  (trusted like a system write: what it sets is not validated again, but the validation rules and
  stored formulas run after it) and add messages to `errors` (all reported at once as a 422).
- `before_update`: the same for a change, `before` being the record as it is; `after` holds the
  merged record about to be written (a field the handler changes is written and logged too).
- `after_create`, `after_update`, `after_delete`: `before` / `after` are the record as it was / is
  (`after` without its inline child lines). Inline child lines are records too and fire these events.
- `after_rollup`: a record's rollups (and the stored formulas reading them) changed because of its
  children; `before` / `after` are the record as it was / is.
- `before_create_many`, `after_create_many`: the same for one batch of `create_many`, so that a
  behavior handles an import with set-based SQL instead of one record at a time: `batch` holds the
  records (after: with their ids, only those inserted), `batch_errors` each row's errors (before).
  `create_many` fires no per-record event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from objectplatform.metadata import ObjectDef

EVENTS = frozenset({"before_create", "after_create", "before_update", "after_update", "after_delete",
                    "before_create_many", "after_create_many", "after_rollup"})


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


Handler = Callable[[HookContext], None]


@dataclass(frozen=True, eq=False)
class Hook:
    event: str
    handler: Handler
    applies: Callable[[ObjectDef], bool]
