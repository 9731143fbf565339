"""Record hooks: the extension point through which behaviors react to records being written.

A behavior registers a handler for an event and the objects it `applies` to (a test on the
ObjectDef, e.g. "declares follow_ups", so an object a site layer adds is covered too):

    register_hook("after_create", on_follow_up, applies=lambda obj: obj.name == "follow_up")

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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


_REGISTERED: list[Hook] = []


def register_hook(event: str, handler: Handler, *,
                  applies: Callable[[ObjectDef], bool] = lambda obj: True) -> Hook:
    """Run `handler` on `event` for every object `applies` accepts; returns the hook (for `unregister`)."""
    if event not in EVENTS:
        raise ValueError(f"unknown hook event {event}; one of {', '.join(sorted(EVENTS))}")
    hook = Hook(event, handler, applies)
    _REGISTERED.append(hook)
    return hook


def unregister(hook: Hook) -> None:
    """Remove a hook that `register_hook` returned."""
    _REGISTERED.remove(hook)


@contextmanager
def registered(event: str, handler: Handler, *,
               applies: Callable[[ObjectDef], bool] = lambda obj: True) -> Iterator[Hook]:
    """A hook in place for the duration of a `with` block (for tests)."""
    hook = register_hook(event, handler, applies=applies)
    try:
        yield hook
    finally:
        unregister(hook)


def run(event: str, obj: ObjectDef, context: HookContext) -> None:
    """Call the handlers of `event` that apply to `obj`, in the order they were registered."""
    for hook in list(_REGISTERED):
        if hook.event == event and hook.applies(obj):
            hook.handler(context)
