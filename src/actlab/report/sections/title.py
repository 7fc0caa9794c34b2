"""The title, the one-line account of what ran where, and the font note when figures fell back."""

from __future__ import annotations

from actlab.numbers import variant_count
from actlab.render import Block, Code, Heading, Paragraph, authored, joined
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    env, w = c.results.environment, c.w
    runs = c.results.runs
    variants = variant_count(w, len({r.activation for r in runs}), len({r.output for r in runs}),
                             len({r.loss for r in runs}), len(c.results.labels))
    summary = w("report.summary", models=len(runs), variants=variants,
                seeds=w.count("seed", len(c.analysis["seeds"])), dataset=Code(str(c.results.config.get("dataset"))),
                started=str(env.get("started", "")), device=Code(str(env.get("gpu") or env.get("device"))),
                actlab=Code(str(env.get("actlab"))), torch=Code(str(env.get("torch"))),
                python=Code(str(env.get("python"))), run_dir=Code(str(c.results.run_dir)))
    config = c.results.config
    title = w("report.title", name=Code(str(config.get("name"))), dataset=Code(str(config.get("dataset"))),
              activations=joined([Code(label) for label in c.results.labels], w.plain("list.comma")))
    return [Heading(1, title), Paragraph(summary),
            *([Paragraph(authored(c.font_hint))] if c.font_hint else [])]
