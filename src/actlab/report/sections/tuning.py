"""A tuned run's choices, its verdicts at the tuned and the fixed values, and its sensitivity figures."""

from __future__ import annotations

from actlab.analysis import tuning_blocks
from actlab.render import Block
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    return tuning_blocks(c.results, c.analysis, c.w, c.images) if c.results.tuning else []
