"""The Babel extractor of our Python code (babel.cfg): the keys of `text("key", ...)` and `N_("key")`, and the reason
of every `Message("reason", "English", ...)` with its English as the translators' comment."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import IO, Any

KEY_FUNCTIONS = frozenset({"text", "N_"})


def _name(call: ast.Call) -> str | None:
    return call.func.id if isinstance(call.func, ast.Name) else None


def _literal(node: ast.expr) -> list[str]:
    """The strings a literal argument may be (both branches of `a if c else b`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literal(node.body) + _literal(node.orelse)
    return []


def extract(fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any) -> Iterator[tuple]:
    """Babel's extractor protocol: (line, function, message, comments) for each key or reason in the module."""
    for node in ast.walk(ast.parse(fileobj.read())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name, first = _name(node), _literal(node.args[0])
        if name in KEY_FUNCTIONS:
            for key in first:
                yield node.lineno, None, key, []
        elif name == "Message" and len(first) == 1:
            english = _literal(node.args[1]) if len(node.args) > 1 else []
            yield node.lineno, None, first[0], [" | ".join(english)] if english else []
