"""What the runtime builds from a loaded `Metadata` (its tables, its validators), built once per Metadata object.

A Metadata never changes once loaded, so every platform opened on the same object can share what is built from it;
the tests open hundreds of platforms on one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from objectplatform.metadata import Metadata

T = TypeVar("T")
KEEP = 8  # the Metadata objects remembered, the most recently used ones


def per_metadata(build: Callable[[Metadata], T]) -> Callable[[Metadata], T]:
    """`build`, run once for each of the last KEEP Metadata objects it is given (a Metadata is not hashable)."""
    made: dict[int, tuple[Metadata, T]] = {}  # holding the Metadata keeps its id its own

    @functools.wraps(build)
    def once(metadata: Metadata) -> T:
        key = id(metadata)
        made[key] = made.pop(key, None) or (metadata, build(metadata))  # the most recent last
        if len(made) > KEEP:
            del made[next(iter(made))]
        return made[key][1]

    return once
