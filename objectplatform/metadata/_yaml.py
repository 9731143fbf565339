"""YAML documents as plain data, keeping the ruamel nodes so any JSON path has a line and column."""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ruamel.yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from .model import Source
from .problems import Problem

JsonPath = tuple[str | int, ...]


class YamlError(Exception):
    """A file that is not valid YAML, with the 1-based line and column of the mistake."""

    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


@dataclass(frozen=True)
class Document:
    """One YAML document: `data` is plain Python, `node` the ruamel tree that knows positions."""

    file: str
    layer: int
    node: Any
    data: Any
    lines: Sequence[str]

    def get(self, path: JsonPath) -> Any:
        return _walk(self.data, path)

    def source(self, path: JsonPath = ()) -> Source:
        return Source(self.file, *position(self.node, path))

    def problem(
        self, path: JsonPath, message: str, hint: str | None = None, offset: int | None = None
    ) -> Problem:
        """A problem at `path`; with `offset`, at that character of the scalar when it is on one line."""
        line, col = position(self.node, path) if offset is None else self._scalar_position(path, offset)
        return Problem.at(self.file, line, col, message, json_path(path), hint)

    def _scalar_position(self, path: JsonPath, offset: int) -> tuple[int, int]:
        line, col = position(self.node, path, value=True)
        text, raw = self.get(path), _walk(self.node, path)
        start = col - 1 + isinstance(raw, (SingleQuotedScalarString, DoubleQuotedScalarString))
        if isinstance(text, str) and self.lines[line - 1][start : start + len(text)] == text:
            return line, start + offset + 1
        return line, col


def read_documents(path: Path, file: str, layer: int) -> Iterator[Document]:
    """Every non-empty document of a YAML file; raises `YamlError` where the file stops being valid."""
    return documents(path.read_bytes(), file, layer)


def documents(content: bytes, file: str, layer: int) -> Iterator[Document]:
    """Every non-empty document of a YAML file's `content`; raises `YamlError` where it stops being valid."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlError(1, 1, f"not UTF-8 text: {e.reason}") from None
    parsed, error = _parse(text)
    lines = text.splitlines()
    for node, data in parsed:
        yield Document(file, layer, node, _fresh(data), lines)
    if error is not None:
        raise error


def _fresh(data: Any) -> Any:
    """A copy of plain `data`'s dicts and lists (a loader may change a document's data; the parsed one is kept)."""
    if isinstance(data, dict):
        return {k: _fresh(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_fresh(v) for v in data]
    return data


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> tuple[tuple[tuple[Any, Any], ...], YamlError | None]:
    """The documents of a YAML text, each its node and its `plain` data, up to where it stops being valid, and why
    it stops (None: it does not).

    The round-trip parser (for positions) is most of what loading metadata costs (0.8 s for the CRM's files); a
    process that loads the same files again (a test run, a command run in-process) parses each text once, and a
    valid text's parse is kept on disk (`cache_folder`) for the next process: unpickling it costs a tenth. The
    nodes and data are only read afterwards, never changed (`documents` hands out copies of the data)."""
    folder = cache_folder()
    entry = folder / f"{hashlib.sha256((CACHE_KEY + text).encode()).hexdigest()}.pickle" if folder else None
    if entry is not None:
        try:
            return pickle.loads(entry.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
            pass  # not there yet (or unreadable): parsed and written again
    parsed = _parse_text(text)
    if entry is not None and parsed[1] is None:
        _keep(entry, pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL))
    return parsed


# What a kept parse depends on besides the text: bump the number when `_parse_text` or `plain` changes.
CACHE_KEY = f"1/ruamel {ruamel.yaml.__version__}\n"
CACHE_ENTRIES = 4000  # beyond this many kept parses, the oldest half is removed when one is added


def cache_folder() -> Path | None:
    """Where parsed metadata files are kept between processes: `OBJECTPLATFORM_METADATA_CACHE`, by default
    `objectplatform/metadata` of the user's cache folder (`XDG_CACHE_HOME`, else ~/.cache); `off` keeps none.
    An entry is named by the hash of the text it was parsed from, so an edited file is parsed again, and is read
    with pickle: the folder must be writable by its user only (as Python's own `__pycache__`)."""
    setting = os.environ.get("OBJECTPLATFORM_METADATA_CACHE")
    if setting == "off":
        return None
    if setting:
        return Path(setting)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "objectplatform" / "metadata"


def _keep(entry: Path, blob: bytes) -> None:
    """Write `entry` whole or not at all (another process may read it meanwhile); a folder that cannot be written
    (read-only home, full disk) only costs the next process its parse."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=entry.parent, suffix=".tmp", delete=False) as out:
            out.write(blob)
        os.replace(out.name, entry)
        kept = list(entry.parent.glob("*.pickle"))
        if len(kept) > CACHE_ENTRIES:
            for old in sorted(kept, key=lambda path: path.stat().st_mtime)[: len(kept) // 2]:
                old.unlink(missing_ok=True)
    except OSError:  # not kept: the next process parses the text again, which is all a missing entry costs
        pass


def _parse_text(text: str) -> tuple[tuple[tuple[Any, Any], ...], YamlError | None]:
    """`_parse` without the kept copies."""
    deep = _too_deep(text)
    if deep is not None:
        return (), YamlError(*deep, f"invalid YAML: nested too deeply (more than {MAX_FLOW_DEPTH} levels of [ ] "
                                    "or { })")
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True  # quoted scalars keep their style, so positions inside them are exact
    nodes: list[Any] = []
    try:
        for node in yaml.load_all(text):
            if node is not None:
                nodes.append((node, plain(node)))
    except DuplicateKeyError as e:
        key = re.search(r'duplicate key "(.*?)"', str(e.problem))
        return tuple(nodes), YamlError(*_mark(e), f"duplicate key {key.group(1) if key else ''!r}")
    except MarkedYAMLError as e:
        return tuple(nodes), YamlError(*_mark(e), f"invalid YAML: {e.problem}{_syntax_hint(str(e.problem))}")
    except YAMLError as e:
        return tuple(nodes), YamlError(1, 1, f"invalid YAML: {e}")
    except RecursionError:
        return tuple(nodes), YamlError(1, 1, "invalid YAML: nested too deeply")
    return tuple(nodes), None


MAX_FLOW_DEPTH = 64  # ruamel's scanner takes time quadratic in the depth of [ ] and { } (4,000 levels: 6 s)


def _too_deep(text: str) -> tuple[int, int] | None:
    """Where the text's brackets (outside quotes and comments) first nest deeper than MAX_FLOW_DEPTH, or None."""
    if text.count("[") + text.count("{") <= MAX_FLOW_DEPTH:
        return None
    depth, quote, line, start = 0, "", 1, 0
    previous = "\n"
    for i, c in enumerate(text):
        if c == "\n":
            line, start = line + 1, i + 1
            if quote == "#":
                quote = ""
        elif quote:
            if quote == c and not (c == '"' and previous == "\\"):
                quote = ""
        elif c in "'\"" or (c == "#" and previous in " \t\n"):
            quote = c
        elif c in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                return line, i - start + 1
        elif c in "]}":
            depth = max(depth - 1, 0)
        previous = c
    return None


def _mark(error: MarkedYAMLError) -> tuple[int, int]:
    mark = error.problem_mark or error.context_mark
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


def _syntax_hint(problem: str) -> str:
    if "'\\t'" in problem:
        return " (indent with spaces, not tabs)"
    if "block end" in problem or "mapping values are not allowed" in problem:
        return " (check the indentation)"
    return ""


def plain(node: Any) -> Any:
    """ruamel's round-trip objects as plain dicts, lists, strings, numbers and booleans."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, ScalarBoolean | bool):
        return bool(node)
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


def position(node: Any, path: JsonPath, value: bool = False) -> tuple[int, int]:
    """1-based line and column of the deepest part of `path` found in `node` (of its value if asked)."""
    line, col = (node.lc.line, node.lc.col) if hasattr(node, "lc") else (0, 0)
    for i, key in enumerate(path):
        if isinstance(node, CommentedMap) and key in node:
            line, col = node.lc.value(key) if value and i == len(path) - 1 else node.lc.key(key)
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line, col = node.lc.item(key)
        else:
            break
        node = node[key]
    return line + 1, col + 1


def _walk(value: Any, path: JsonPath) -> Any:
    for key in path:
        value = value[key]
    return value


def json_path(path: JsonPath) -> str:
    """`fields.source.options[0].value` for ("fields", "source", "options", 0, "value")."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
