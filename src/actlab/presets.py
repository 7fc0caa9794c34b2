"""The reference experiments as presets: their setup, where they come from, what they published.

Each preset is the `[experiment]` table of a published write-up our users start from (see
docs/presets.md), reproduced faithfully; where the write-up had a bug the preset does the intended
thing. `published` holds the figures the write-up reported, so a report can set them beside ours.
The presets are data, kept in `presets.toml` beside this file; what each write-up was, concluded,
and where actlab differs from it are words of the report (`preset.<name>.*` in the catalogues).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    experiment: dict[str, Any]
    published: dict[str, Any] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)  # the summary in other languages, by code

    def summary_in(self, lang: str) -> str:
        return self.summaries.get(lang, self.summary)


def _load() -> dict[str, Preset]:
    doc = tomllib.loads(resources.files("actlab").joinpath("presets.toml").read_text(encoding="utf-8"))
    return {name: Preset(name, table["summary"], table["experiment"], table.get("published", {}),
                         {k.removeprefix("summary_"): v for k, v in table.items() if k.startswith("summary_")})
            for name, table in doc.items()}


PRESETS: dict[str, Preset] = _load()
