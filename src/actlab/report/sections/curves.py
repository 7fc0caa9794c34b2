"""The per-epoch curves, one figure per metric that was drawn."""

from __future__ import annotations

from actlab.render import Block, Code, Heading, Image, Paragraph, joined
from actlab.report.context import Context

CURVES = ("test_acc", "train_acc", "train_loss", "test_loss", "val_acc")


def blocks(c: Context) -> list[Block]:
    w, seeds = c.w, len(c.analysis["seeds"])
    intro = [Paragraph(w("curves.intro", n=seeds))] if seeds > 1 else []
    losses = list(dict.fromkeys(r.loss for r in c.results.runs))

    def caption(name: str):
        if name.endswith("loss") and len(losses) > 1:  # loss values of different functions do not compare
            return joined([w(f"figure.{name}"), w("figure.losses_differ", losses=Code(", ".join(losses)))],
                          w.plain("list.sentence"))
        return w(f"figure.{name}")
    return [Heading(2, w("report.curves")), *intro] + [
        Image(f"{c.images}/{name}.png", w.plain("plot.alt_curve", what=w.plain(f"plot.{name}")), caption(name))
        for name in CURVES if (c.plots / f"{name}.png").exists()]
