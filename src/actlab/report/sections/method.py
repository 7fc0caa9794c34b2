"""How the statistics were done: the design, the tests and the verdicts' rules, the files to read."""

from __future__ import annotations

from actlab.analysis import method_text
from actlab.render import Block, Heading, Paragraph, joined
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    text = method_text(c.results, c.w, c.analysis["equivalence_margin_points"])
    return [Heading(2, c.w("report.method")), Paragraph(joined(text, c.w.plain("list.sentence")))]
