"""A preset's published figures beside this run's: only when the run is the preset, unchanged but for
seeds and run-only settings (the keys declared `identity = False` in actlab.config)."""

from __future__ import annotations

import statistics

import numpy as np

from actlab.numbers import p_text, pct
from actlab.config import KEYS, config_from_flat, preset_flat
from actlab.messages import Words
from actlab.presets import PRESETS
from actlab.render import Block, Code, Heading, Paragraph, Table, authored, joined
from actlab.report.context import Context
from actlab.results import Results


def blocks(c: Context) -> list[Block]:
    return published_blocks(c.results, c.w)


# settings that say where and how a run went, not what it trained: a preset stays itself under them
RUN_ONLY = {name for name, spec in KEYS.items() if not spec.preset_identity} | {"tune"}


def _preset_matches(results: Results) -> str | None:
    """The preset this run reproduces unchanged (seeds and run-only settings aside), if any: every
    other key of its resolved configuration must be the preset's."""
    name = results.config.get("name")
    if name not in PRESETS or results.tuning:
        return None
    expected = config_from_flat(preset_flat(name)).to_flat()
    keys = (set(expected) | set(results.config)) - RUN_ONLY
    return name if all(expected.get(k) == results.config.get(k) for k in keys) else None


def _beside_ours(results: Results, published: dict[str, float], field: str, title: str, fmt, w: Words) -> Table:
    """A table of one published figure per activation beside our mean and seed range of `field`."""
    rows = []
    for label, figure in published.items():
        ours = [getattr(r, field) for r in results.by_label(label) if r.status.ok and getattr(r, field) is not None]
        if ours:
            rows.append([Code(label), fmt(figure), fmt(statistics.fmean(ours)), f"{fmt(min(ours))}–{fmt(max(ours))}",
                         w("published.yes" if min(ours) <= figure <= max(ours) else "published.no")])
    return Table([w("table.activation"), title, w("published.ours_mean"), w("published.ours_range"),
                  w("published.inside")], rows)


def published_blocks(results: Results, w: Words) -> list[Block]:
    """The write-up's figures beside ours, for a run that reproduces a preset unchanged."""
    name = _preset_matches(results)
    if name is None or not PRESETS[name].published:  # a preset with nothing published has nothing to set beside
        if results.config.get("name") in PRESETS and PRESETS[results.config["name"]].published:
            return [Heading(2, w("published.heading_changed")), Paragraph(w("published.changed"))]
        return []
    pub = PRESETS[name].published
    blocks: list[Block] = [Heading(2, w("published.heading")),
                           Paragraph(w("published.source", source=authored(w.plain(f"preset.{name}.source"))))]
    if "test_acc" in pub:
        blocks += _per_epoch_comparison(results, pub["test_acc"], w)
    if "final_test_loss" in pub:
        blocks.append(_beside_ours(results, pub["final_test_loss"], "final_test_loss", w("published.final_loss"),
                                   lambda v: f"{v:.4f}", w))
    if "one_batch_acc" in pub:
        blocks += _one_batch_comparison(results, pub["one_batch_acc"], w)
    if "best_val_test_acc" in pub:
        blocks.append(_beside_ours(results, pub["best_val_test_acc"], "best_test_acc", w("published.best_val"), pct, w))
    if f"preset.{name}.conclusion" in w.table:
        blocks.append(Paragraph(w("published.conclusion", conclusion=authored(w.plain(f"preset.{name}.conclusion")))))
    blocks.append(Paragraph(w("published.difference", difference=authored(w.plain(f"preset.{name}.difference")))))
    return blocks


def _per_epoch_comparison(results: Results, published: dict[str, list[float]], w: Words) -> list[Block]:
    """Each published per-epoch test accuracy against the range of our seeds at that epoch, and how
    many should land inside that range if the write-up's run were one more draw like ours."""
    rows, inside, sizes = [], 0, []
    for label, figures in published.items():
        for epoch, figure in enumerate(figures, start=1):
            ours = [r.epochs[epoch - 1]["test_acc"] for r in results.by_label(label)
                    if r.status.ok and len(r.epochs) >= epoch and r.epochs[epoch - 1].get("test_acc") is not None]
            if not ours:
                continue
            lo, hi = 100 * min(ours), 100 * max(ours)
            hit = lo <= figure <= hi
            inside += hit
            sizes.append(len(ours))
            if epoch in (1, len(figures)) or len(ours) > 1:
                rows.append([Code(label), epoch, f"{figure:.2f}", f"{100 * statistics.fmean(ours):.2f}",
                             f"{lo:.2f}–{hi:.2f}", w("published.yes" if hit else "published.no")])
    total, n = len(sizes), max(sizes, default=0)
    sentences = [w("published.per_epoch", inside=inside, total=total, seeds=w.count("seed", n))]
    if n == 1:
        sentences.append(w("published.expectation_one"))
    elif total:
        shares = [(k - 1) / (k + 1) for k in sizes]  # each figure against the runs that finished its epoch
        p, expected = coverage_p(inside, shares), f"{sum(shares):.1f}"
        if len(set(sizes)) == 1:
            sentences.append(w("published.expectation", n=n, share=pct(shares[0], 0), expected=expected,
                               total=total, inside=inside, p=p_text(p)))
        else:
            sentences.append(w("published.expectation_varied", low=min(sizes), high=n, expected=expected,
                               total=total, inside=inside, p=p_text(p)))
    header = [w("table.activation"), w("published.epoch"), w("published.published_pct"), w("published.ours_mean_pct"),
              w("published.ours_range_pct"), w("published.inside")]
    return [Paragraph(joined(sentences, w.plain("list.sentence"))), Table(header, rows)]


def coverage_p(inside: int, shares: list[float]) -> float:
    """Two-sided exact p of `inside` hits among independent figures that each land inside our range
    with its own probability (the Poisson-binomial distribution; the binomial when all are equal):
    the probability of every count no likelier than the one observed, as `scipy.stats.binomtest` does."""
    pmf = np.array([1.0])
    for share in shares:
        pmf = np.convolve(pmf, [1 - share, share])
    return float(min(1.0, pmf[pmf <= pmf[inside] * (1 + 1e-7)].sum()))


def _one_batch_comparison(results: Results, published: dict[str, float], w: Words) -> list[Block]:
    """Accuracies the write-up measured on one batch of 64, against the binomial range our accuracy gives."""
    from scipy import stats as sps

    rows = []
    for label, figure in published.items():
        ours = [r.final_test_acc for r in results.by_label(label) if r.status.ok and r.final_test_acc is not None]
        if not ours:
            continue
        p = statistics.fmean(ours)
        lo, hi = (v / 64 for v in sps.binom.interval(0.95, 64, p))
        rows.append([Code(label), f"{figure:.4f} ({round(figure * 64)}/64)", pct(p), f"{lo:.4f}–{hi:.4f}",
                     w("published.yes" if lo <= figure <= hi else "published.no")])
    return [Paragraph(w("published.one_batch")),
            Table([w("published.output"), w("published.one_batch_figure"), w("published.full_test_set"),
                   w("published.one_batch_range"), w("published.inside")], rows)]
