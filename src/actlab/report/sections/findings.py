"""The written analysis: which activation is ahead, the verdicts, failures, and what was measured
alongside (actlab.analysis composes the sentences)."""

from __future__ import annotations

from actlab.analysis import analysis_blocks
from actlab.render import Block, Heading
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    return [Heading(2, c.w("report.analysis")), *analysis_blocks(c.results, c.analysis, c.w)]
