"""The per-epoch curves, one figure per metric that was drawn."""

from __future__ import annotations

from actlab.render import Block, Heading, Image, Paragraph
from actlab.report.context import Context

CURVES = ("test_acc", "train_acc", "train_loss", "test_loss", "val_acc")


def blocks(c: Context) -> list[Block]:
    w, seeds = c.w, len(c.analysis["seeds"])
    intro = [Paragraph(w("curves.intro", n=seeds))] if seeds > 1 else []
    return [Heading(2, w("report.curves")), *intro] + [
        Image(f"{c.images}/{name}.png", w.plain("plot.alt_curve", what=w.plain(f"plot.{name}")), w(f"figure.{name}"))
        for name in CURVES if (c.plots / f"{name}.png").exists()]
