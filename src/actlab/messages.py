"""The words of actlab's reports, one catalogue per language (`messages/<lang>.toml` beside this file).

Every heading, sentence, table header and caption a report prints is a message: a template with
named placeholders, looked up by its key (`verdict.better`, `table.pair`, ...). Numbers, activation
names, commands and file names are the values filled in, as `actlab.render` values, so they read
the same in every language. A test checks that every language has every key of the English
catalogue with the same placeholders, so a report can never fall back to English silently.
"""

from __future__ import annotations

import functools
import string
import sys
from importlib import resources

from actlab.errors import ActlabError
from actlab.render import Inline, Text, fill

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

LANGUAGES = {"en": "English", "zh": "Chinese (简体中文)"}


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """Every message of one language, keyed `table.key` (the TOML file's tables flattened)."""
    if lang not in LANGUAGES:
        raise ActlabError(f"unknown report language {lang!r}; choose one of: {', '.join(LANGUAGES)}")
    path = resources.files("actlab").joinpath("messages", f"{lang}.toml")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ActlabError(f"the {LANGUAGES[lang]} catalogue ({path}) is missing; reinstall actlab") from None
    flat: dict[str, str] = {}

    def walk(table: dict, prefix: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value
    walk(doc, "")
    return flat


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class Words:
    """The messages of one language: `w("verdict.better", winner=Code("relu"), ...)` gives the filled
    text, `w.plain(key, ...)` a plain string (plots, the terminal), `w.count("seed", n)` "1 seed" or
    "5 seeds" in the language's own way."""

    def __init__(self, lang: str = "en"):
        self.lang = lang
        self.table = catalogue(lang)

    def __call__(self, key: str, /, **values: Text | int) -> tuple[Inline, ...]:
        return fill(self.table[key], **values)

    def named(self, key: str, /, **values: Text | int) -> tuple[Inline, ...]:
        """The message filled with those of `values` its template names: for one call site that fills
        several sentences of a kind, each naming some of the values (the others are not an error)."""
        used = placeholders(self.table[key])
        return self(key, **{k: v for k, v in values.items() if k in used})

    def plain(self, key: str, /, **values: object) -> str:
        return self.table[key].format(**values)

    def count(self, noun: str, n: int) -> str:
        return self.plain(f"count.{noun}_{'one' if n == 1 else 'other'}", n=n)

    def __repr__(self) -> str:
        return f"Words({self.lang!r}: {len(self.table)} messages)"
