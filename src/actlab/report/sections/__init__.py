"""The report's sections, in the order the report shows them: one file each, one entry in `SECTIONS`.

A section is a function from the report's `Context` (the run's results, its statistics, the words
of the report's language, where its figures are) to the blocks it adds (`actlab.render`); it adds
none where it has nothing to say. To add one: write `sections/<name>.py` with
`def blocks(c: Context) -> list[Block]`, put its words in both message catalogues, and insert
`Section("<name>", <name>.blocks)` here where it belongs (or call `register` from outside).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from actlab.render import Block
from actlab.report.context import Context
from actlab.report.sections import (activations, causes, conclusion, configuration, curves, diagnostics, findings,
                                    limitations, losses, method, published, results_tables, setup, title, tuning)


@dataclass(frozen=True)
class Section:
    name: str
    blocks: Callable[[Context], list[Block]]


SECTIONS: list[Section] = [
    Section("title", title.blocks),
    Section("conclusion", conclusion.blocks),
    Section("setup", setup.blocks),
    Section("results", results_tables.blocks),
    Section("curves", curves.blocks),
    Section("losses", losses.blocks),
    Section("causes", causes.blocks),
    Section("findings", findings.blocks),
    Section("pairs", results_tables.pairs_blocks),
    Section("tuning", tuning.blocks),
    Section("published", published.blocks),
    Section("diagnostics", diagnostics.blocks),
    Section("activations", activations.blocks),
    Section("limitations", limitations.blocks),
    Section("method", method.blocks),
    Section("configuration", configuration.blocks),
]


def register(section: Section, after: str | None = None) -> None:
    """Add `section` after the one named `after` (default: before the configuration appendix)."""
    names = [s.name for s in SECTIONS]
    if section.name in names:
        raise ValueError(f"a report section named {section.name!r} exists")
    SECTIONS.insert(names.index(after) + 1 if after else names.index("configuration"), section)
