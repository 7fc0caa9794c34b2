"""A preset's published figures beside this run's (only when the run is the preset, unchanged)."""

from __future__ import annotations

from actlab.analysis import published_blocks
from actlab.render import Block
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    return published_blocks(c.results, c.w)
