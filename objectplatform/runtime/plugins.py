"""The engine's built-in plugins, in the order a platform's registry is filled with them: each module's
`register(registry)` adds its actions, record hooks, hidings, behavior declaration or report engine.

The records service, the actions and the behavior declarations sit below them and know none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import actions, approvals, auth, navigation, search, transitions, users
from .apps import App
from .behaviors import (
    anomalies,
    calendar,
    check_in,
    checklist,
    comments,
    convertible,
    duplicates,
    follow_ups,
    frequency,
    pool,
    route,
    staged,
)
from .records import limits, lookup_filters, masking, matched_defaults, path_defaults, teams, typed_overrides
from .registry import Registry, build_registry
from .reports import funnel

BUILT_IN = (actions, masking, teams, search, path_defaults, matched_defaults, typed_overrides, lookup_filters, limits,
            approvals, transitions, duplicates, pool, follow_ups, comments, convertible, staged, check_in, anomalies,
            checklist, calendar, frequency, route, funnel, auth, users, navigation)


def registry_for(apps: Sequence[App]) -> Registry:
    """A registry filled by the built-in plugins, then by each of `apps` in the order they are named."""
    return build_registry([*(module.register for module in BUILT_IN),
                           *(app.register for app in apps if app.register is not None)])
