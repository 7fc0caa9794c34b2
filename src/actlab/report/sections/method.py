"""How the statistics were done: the design, the tests and the verdicts' rules, the files to read."""

from __future__ import annotations

from actlab.messages import Words
from actlab.numbers import pct
from actlab.paired import ALPHA, MIN_SEEDS, SIGN_FLIP_MAX_N
from actlab.render import Block, Code, Heading, Paragraph, Text, joined
from actlab.report.context import Context
from actlab.results import CHANCE_ACCURACY, FAILED_TO_LEARN, Results


def blocks(c: Context) -> list[Block]:
    text = method_text(c.results, c.w, c.analysis["equivalence_margin_points"])
    return [Heading(2, c.w("report.method")), Paragraph(joined(text, c.w.plain("list.sentence")))]


def method_text(results: Results, w: Words, margin: float) -> list[Text]:
    """The Method section, true of this run: how verdicts are reached (at `margin`, the margin the
    verdicts used) and what counts. The pairing is in Setup, what differed between models in the
    Analysis: said once each."""
    return [w("method.verdicts", min=MIN_SEEDS, alpha=str(ALPHA),
              margin=f"{margin:g}", exact=SIGN_FLIP_MAX_N, stats=Code("stats.json")),
            w("method.failures", chance=pct(CHANCE_ACCURACY, 0), threshold=pct(FAILED_TO_LEARN, 0)),
            w("method.files", results=Code("results.json"), stats=Code("stats.json"),
              diagnostics=Code("diagnostics.csv"))]
