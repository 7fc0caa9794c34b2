"""The shapes of the run's activations and their derivatives."""

from __future__ import annotations

from actlab.render import Block, Heading, Image
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    return [Heading(2, c.w("report.activations")),
            Image(f"{c.images}/activations.png", c.w.plain("plot.alt_activations"), c.w("figure.activations"))]
