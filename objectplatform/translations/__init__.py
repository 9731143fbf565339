"""The zh and en catalogues (gettext `.po` files beside this module, read as they are) and the one way to say
something from them: an interface string by its key, a runtime message by its reason and params."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = ("zh", "en")
CATALOGUES = Path(__file__).parent


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The translated entries of `lang`'s catalogue: key (or reason) -> sentence with `{name}` parts; fuzzy and
    empty entries left out, as a compiled catalogue would."""
    with (CATALOGUES / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        entries = read_po(po, locale=lang)
    return {m.id: m.string for m in entries if m.id and m.string and not m.fuzzy}


def text(key: str, lang: str, **values: Any) -> str:
    """The catalogue's sentence for `key` in `lang`, with its `{name}` parts filled from `values`."""
    words = catalogue(lang)[key]
    return words.format(**values) if values else words


def message_text(message: str, lang: str) -> str:
    """A runtime message in `lang`: its reason's sentence filled with its params (messages among them said in
    `lang` too); its own English words when it has no reason or the catalogue has no sentence for it."""
    reason = getattr(message, "reason", None)
    words = catalogue(lang).get(reason) if reason else None
    if words is None:
        return str(message)
    params = {name: message_text(value, lang) if isinstance(value, str) else value
              for name, value in message.params.items()}
    return words.format(**params)
