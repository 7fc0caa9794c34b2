"""The per-epoch curves, one figure per metric that was drawn."""

from __future__ import annotations

from actlab.render import Block, Code, Heading, Image, Paragraph, joined
from actlab.report.context import Context

CURVES = ("test_acc", "train_acc", "train_loss", "test_loss", "val_acc")


def blocks(c: Context) -> list[Block]:
    w, seeds = c.w, len(c.analysis["seeds"])
    intro = [w("curves.intro", n=seeds)] if seeds > 1 else []
    losses = list(dict.fromkeys(r.loss for r in c.results.runs))
    if len(losses) > 1:  # loss values of different functions do not compare: said once, before the figures
        intro.append(w("figure.losses_differ", losses=Code(", ".join(losses))))
    lead = [Paragraph(joined(intro, w.plain("list.sentence")))] if intro else []
    return [Heading(2, w("report.curves")), *lead] + [
        Image(f"{c.images}/{name}.png", w.plain("plot.alt_curve", what=w.plain(f"plot.{name}")), w(f"figure.{name}"))
        for name in CURVES if (c.plots / f"{name}.png").exists()]
