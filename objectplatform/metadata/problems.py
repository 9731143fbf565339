"""What goes wrong in metadata: one `Problem` per mistake, all raised together in `MetadataError`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One mistake in a metadata file, shown as `FILE:LINE:COL: message (at json.path)`."""

    file: str
    line: int
    col: int
    message: str
    path: str = ""
    hint: str | None = None  # the suggested name, also spelled out in `message`

    @classmethod
    def at(
        cls, file: str, line: int, col: int, message: str, path: str = "", hint: str | None = None
    ) -> Problem:
        """A problem whose message ends with ` (did you mean 'x'?)` when there is a hint."""
        return cls(file, line, col, f"{message} (did you mean {hint!r}?)" if hint else message, path, hint)

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        where = f" (at {self.path})" if self.path else ""
        return f"{place}: {self.message}{where}"


class MetadataError(Exception):
    """The metadata cannot be loaded; `problems` lists every mistake found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


def closest(word: object, choices: Iterable[str]) -> str | None:
    """The choice that `word` most likely misspells, if any is close enough."""
    if not isinstance(word, str):
        return None
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return match[0] if match else None
