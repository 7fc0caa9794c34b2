"""PNG plots of a run: one figure per metric per epoch (one line per activation), the final
accuracies, the diagnostics per layer, and the activations' curves, labelled in the report's language.

With several seeds a line is the mean over seeds and the band its 95% confidence interval, so a
reader sees the spread before reading any claim about the difference. Chinese labels need a font
with Chinese glyphs; `labels_for` finds an installed one (Noto Sans CJK SC, Source Han Sans SC,
WenQuanYi, Microsoft YaHei, PingFang SC, SimHei, ...) and, when there is none, labels the plots in
English instead of drawing boxes where the glyphs are missing.

Every figure is actlab's own (`matplotlib.figure.Figure` on an Agg canvas, no pyplot state, so the
caller's backend and open figures stay as they were). Each `plot_*` function writes its PNG and
returns the figure, which a notebook shows when it is a cell's value.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from actlab.activations import ActivationSpec, curve
from actlab.diagnostics import METRICS
from actlab.files import atomic_write
from actlab.forks import fork_is_safe, fork_warning_silenced
from actlab.messages import Words
from actlab.numbers import layer_name, layer_order
from actlab.results import Results
from actlab.stats import epoch_curves

CURVES = ("train_loss", "test_loss", "test_acc", "train_acc", "val_loss", "val_acc")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":")
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Micro Hei",
             "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "SimHei", "Noto Sans CJK JP",
             "Droid Sans Fallback")


def cjk_font() -> str | None:
    """The first installed font of `CJK_FONTS` that matplotlib knows, or None. matplotlib keeps its
    font list in a cache that predates fonts installed since; without a CJK font in it, the system's
    font files it does not know yet are added once (to the font manager the renderer uses)."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    for fresh in (False, True):
        if fresh:
            known = {font.fname for font in manager.ttflist}
            for path in font_manager.findSystemFonts():
                if path not in known:
                    try:
                        manager.addfont(path)
                    except (OSError, RuntimeError, ValueError):
                        pass  # a file FreeType cannot read is not a font for us
        installed = {font.name for font in manager.ttflist}
        found = next((name for name in CJK_FONTS if name in installed), None)
        if found:
            return found
    return None


@contextlib.contextmanager
def labels_for(w: Words):
    """The words to label plots with, and the fonts to draw them in: `w` itself, with a CJK font
    first where Chinese needs one; English where no such font is installed (yields
    `(words, hint)`, the hint saying how to install a font, else None)."""
    if w.lang != "zh":
        yield w, None
        return
    font = cjk_font()
    if font is None:
        yield Words("en"), w.plain("plot.no_cjk_font")
        return
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"],
                                "axes.unicode_minus": False}):
        yield w, None


def _figure(nrows: int = 1, ncols: int = 1, *, figsize, dpi, **kwargs):
    """A figure of actlab's own, drawn by Agg: no pyplot state, so the caller's backend (a notebook's
    inline one, a script's window) and open figures are left as they were."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})  # the same run draws the same bytes
    atomic_write(path, buffer.getvalue())


def draw_side_by_side(here: list[Callable[[], object]], there: list[Callable[[], object]]) -> None:
    """Draw the figures `here` in this process while a forked child draws `there`: a report's figures
    take 2-3 s on one core, and a run's report waits for them. Each figure is written atomically, so
    the child's files are whole once it exits. Where a fork is not safe (`actlab.forks`), or the child
    fails, this process draws `there` itself."""
    child = _fork_drawing(there) if fork_is_safe() else None
    try:
        for job in here:
            job()
    finally:
        done = child is not None and os.waitpid(child, 0)[1] == 0
    if not done:
        for job in there:
            job()


def _fork_drawing(jobs: list[Callable[[], object]]) -> int | None:
    """The pid of a child that runs `jobs` and exits with 0 when all succeeded, or None. The child
    ignores Ctrl-C (the parent handles it, and waits for the child), and never returns into the
    parent's code: it ends in `os._exit`, without the interpreter's teardown, which would flush the
    parent's buffered output a second time."""
    sys.stdout.flush()
    sys.stderr.flush()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # no Ctrl-C between fork and try
    with fork_warning_silenced():
        try:
            pid = os.fork()
        except OSError:
            pid = None
    if pid != 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return pid
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        torch.set_num_threads(1)  # an OpenMP thread team does not survive a fork
        for job in jobs:
            job()
        code = 0
    finally:
        os._exit(code)


def plot_metric(results: Results, metric: str, path: Path, w: Words) -> Figure | None:
    """Draw one metric per epoch; returns False (and draws nothing) when no run measured it.

    With several seeds the line is the mean and the band its 95% t confidence interval.
    """
    accuracy = metric.endswith("acc")
    scale = 100.0 if accuracy else 1.0
    curves = epoch_curves(results, metric)
    if not any(curves.values()):
        return None
    fig, ax = _figure(figsize=(7, 4.5), dpi=110)
    for k, (label, points) in enumerate(curves.items()):
        if not points:
            continue
        epochs = np.array([p["epoch"] for p in points])
        mean = np.array([p["mean"] for p in points]) * scale
        # a marker and dash of its own: curves that coincide (relu and leaky_relu:0.01) stay apart
        line, = ax.plot(epochs, mean, marker=MARKERS[k % len(MARKERS)], linestyle=DASHES[k % len(DASHES)],
                        markersize=4, label=label)
        low = np.array([p["ci_low"] for p in points]) * scale
        high = np.array([p["ci_high"] for p in points]) * scale
        if not np.isnan(low).all():
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.10, linewidth=0)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # epochs are whole numbers
    seeds = len({r.seed for r in results.runs})
    ax.set_title(w.plain(f"plot.{metric}") + ("\n" + w.plain("plot.band", n=seeds) if seeds > 1 else ""))
    ax.set_xlabel(w.plain("plot.epoch"))
    ax.set_ylabel(w.plain("plot.accuracy" if accuracy else "plot.loss"))
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    return fig


def plot_final_bars(summary: dict[str, dict], values: dict[str, list[float]], title: str, path: Path, w: Words,
                    scale: float = 100.0) -> Figure:
    """Per activation the mean as a point with its 95% CI, and every seed as a small dot beside it: no
    bars, whose length from a cut axis would make a small gap look large."""
    labels = [label for label in summary if summary[label]["n"]]
    fig, ax = _figure(figsize=(max(5.0, 1.2 * len(labels) + 2), 4.2), dpi=110)
    means = np.array([summary[label]["mean"] for label in labels]) * scale
    low = np.array([summary[label]["ci_low"] for label in labels], dtype=float) * scale
    high = np.array([summary[label]["ci_high"] for label in labels], dtype=float) * scale
    err = None if np.isnan(low).all() else np.nan_to_num(np.vstack([means - low, high - means]))
    ax.errorbar(range(len(labels)), means, yerr=err, fmt="o", markersize=8, capsize=8, color="#08519c",
                elinewidth=2, zorder=3)
    for i, label in enumerate(labels):
        points = np.array(values.get(label, [])) * scale
        ax.plot(np.full(len(points), i + 0.18), points, "o", color="#6baed6", markersize=4, zorder=2)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    finite = np.concatenate([v[np.isfinite(v)] for v in (means, low, high)] + [np.array([])])
    if finite.size:
        pad = max(0.5, 0.15 * (finite.max() - finite.min()))
        ax.set_ylim(finite.min() - pad, finite.max() + pad)
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_ylabel(w.plain("plot.accuracy"))
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return fig


class PlainLogFormatter(ticker.LogFormatter):
    """Log-axis tick labels as plain numbers (0.06, 0.1, 0.2) at the ticks matplotlib would label:
    easier to read than 6×10⁻², and drawn without mathtext (the diagnostics figure took 0.80 s
    instead of 0.91 s to draw)."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def plot_diagnostics(table: dict[str, dict[str, dict[str, float]]], stages: tuple[str, str], path: Path,
                     w: Words) -> Figure:
    """Grouped bars per layer, one panel per metric that asks for one (`diagnostics.METRICS`: dead
    units, saturation and gradient norm), at init and after training.

    `table[stage][metric][activation][layer]` holds the mean over seeds; `stages` names the two rows.
    """
    panels = [m for m in METRICS.values() if m.plot]  # the registered metrics that ask for one
    fig, axes = _figure(2, len(panels), figsize=(13 * len(panels) / 3, 6.5), dpi=100, squeeze=False)
    for row, stage in enumerate(stages):
        for col, entry in enumerate(panels):
            metric = entry.name
            ax = axes[row][col]
            per_act = table.get(stage, {}).get(metric, {})
            labels = list(per_act)
            layers = sorted({layer for values in per_act.values() for layer in values}, key=layer_order)
            width = 0.8 / max(1, len(labels))
            values = [v for per_layer in per_act.values() for v in per_layer.values() if v is not None]
            if values and not any(values):  # nothing to draw: say so rather than show an empty axis
                ax.text(0.5, 0.5, w.plain("plot.all_zero"), ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(w.plain("plot.panel", what=entry.title(w), stage=w.plain(f"plot.{stage}")), fontsize=10)
                continue
            for i, label in enumerate(labels):
                ax.bar(np.arange(len(layers)) + i * width, [per_act[label].get(layer, np.nan) for layer in layers],
                       width, label=label)
            ax.set_xticks(np.arange(len(layers)) + width * (len(labels) - 1) / 2, [layer_name(x, w) for x in layers],
                          fontsize=8, rotation=20 * (len(layers) > 4), ha=("center", "right")[len(layers) > 4])
            ax.set_title(w.plain("plot.panel", what=entry.title(w), stage=w.plain(f"plot.{stage}")), fontsize=10)
            if entry.log_scale:
                ax.set_ylabel(w.plain("plot.log_axis"), fontsize=8)
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(PlainLogFormatter())
                ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))
            ax.grid(axis="y", alpha=0.3)
            if row == 0 and col == 0 and labels:
                ax.legend(fontsize=8)
    _save(fig, path)
    return fig


def plot_run(results: Results, folder: Path, w: Words) -> list[Path]:
    """Every curve of a run into `folder`; returns the files written."""
    written = []
    for metric in CURVES:
        path = folder / f"{metric}.png"
        if plot_metric(results, metric, path, w):
            written.append(path)
    return written


def plot_activations(specs: list[ActivationSpec], path: Path, lo: float = -10.0, hi: float = 10.0,
                     points: int = 1001, w: Words | None = None) -> Figure:
    """Each activation and its derivative (by autograd) over [lo, hi], side by side."""
    w = w or Words("en")
    x = torch.linspace(lo, hi, points)
    fig, (ax_f, ax_d) = _figure(1, 2, figsize=(11, 4.2), dpi=110)
    for spec in specs:
        y, dy = curve(spec, x)
        ax_f.plot(x.numpy(), y.numpy(), label=spec.label)
        ax_d.plot(x.numpy(), dy.numpy(), label=spec.label)
    for ax, title in ((ax_f, "plot.function"), (ax_d, "plot.derivative")):
        ax.set_title(w.plain(title))
        ax.set_xlabel("x")
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)
    return fig


def plot_sensitivity(tuning: dict, path: Path, w: Words) -> Figure:
    """Validation accuracy against the first tuned key, one line per activation (the other keys at
    that activation's chosen values), mean and 95% CI over the tuning seeds; log axis for a range
    that spans a decade or more."""
    key = tuning["keys"][0]
    fig, ax = _figure(figsize=(7, 4.5), dpi=110)
    for label, entry in tuning["activations"].items():
        others = {k: v for k, v in entry["chosen"].items() if k != key}
        rows = sorted((p["point"][key], p) for p in entry["points"]
                      if p["n"] and all(p["point"][k] == v for k, v in others.items()))
        x = np.array([v for v, _ in rows], dtype=float)
        mean = np.array([p["mean"] for _, p in rows]) * 100
        low = np.array([p["ci_low"] for _, p in rows], dtype=float) * 100
        high = np.array([p["ci_high"] for _, p in rows], dtype=float) * 100
        line, = ax.plot(x, mean, marker="o", markersize=3, label=label)
        if not np.isnan(low).all():
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15)
        best = entry["chosen"][key]
        ax.plot([best], [mean[list(x).index(best)]], "*", color=line.get_color(), markersize=12)
    values = [v for v in tuning["grid"][key] if v > 0]
    if len(values) == len(tuning["grid"][key]) and max(values) / min(values) >= 10:
        ax.set_xscale("log")
    ax.set_title(w.plain("plot_tuning.sensitivity", key=key))
    ax.set_xlabel(key)
    ax.set_ylabel(w.plain("plot_tuning.sensitivity_axis"))
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    return fig


def plot_robustness(tuning: dict, path: Path, w: Words) -> Figure:
    """Per activation: its best point, its mean and its worst point over the grid."""
    labels = list(tuning["activations"])
    fig, ax = _figure(figsize=(max(5.0, 1.2 * len(labels) + 2), 4.2), dpi=110)
    for i, label in enumerate(labels):
        entry = tuning["activations"][label]
        best, mean, worst = (100 * entry[k] for k in ("best", "mean_over_grid", "worst"))
        ax.plot([i, i], [worst, best], color="#3182bd", lw=2)
        ax.plot([i], [best], "*", color="#08519c", markersize=12, label=w.plain("plot_tuning.best") if i == 0 else None)
        ax.plot([i], [mean], "o", color="#6baed6", markersize=8, label=w.plain("plot_tuning.mean") if i == 0 else None)
        ax.plot([i], [worst], "v", color="#9ecae1", markersize=8,
                label=w.plain("plot_tuning.worst") if i == 0 else None)
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_ylabel(w.plain("plot_tuning.sensitivity_axis"))
    ax.set_title(w.plain("plot_tuning.robustness"))
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    _save(fig, path)
    return fig


VERDICT_COLOURS = {"supported": "#238b45", "contradicted": "#cb181d", "no_effect": "#6a51a3", "inconclusive": "#737373"}


def plot_causes(entries: list[dict], margin_points: float, path: Path, w: Words) -> Figure | None:
    """Every tested contrast of the possible causes: treated − control in points, its simultaneous 95% interval."""
    rows = [row for e in entries for row in e["contrasts"] if row["verdict"] in VERDICT_COLOURS]
    if not rows:
        return None
    fig, ax = _figure(figsize=(7.5, 0.45 * len(rows) + 1.4), dpi=110)
    ax.axvspan(-margin_points, margin_points, color="#eeeeee", zorder=0)
    ax.axvline(0, color="#444444", linewidth=0.8)
    for i, row in enumerate(rows):
        mean = 100 * row["test"]["mean_diff"]
        low, high = (100 * row["ci_low"], 100 * row["ci_high"]) if row["ci_low"] is not None else (mean, mean)
        colour = VERDICT_COLOURS[row["verdict"]]
        ax.plot([low, high], [i, i], color=colour, linewidth=2)
        ax.plot([mean], [i], "o", color=colour)
    arm = lambda side: side["plus"].get("output") or side["plus"]["activation"]  # noqa: E731
    names = [f"{row['hypothesis']}: " + (row["subject"] if row["role"] != "ladder" else f"{arm(row['treated'])} − "
             f"{arm(row['control'])} ({w.plain('causes.step.' + row['step'])})") for row in rows]
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.set_xlabel(w.plain("causes.axis"))
    handles = [Line2D([], [], color=c, marker="o", label=w.plain(f"causes.verdict_plain.{v}"))
               for v, c in VERDICT_COLOURS.items() if any(row["verdict"] == v for row in rows)]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
    return fig


def plot_depth_gaps(entries: list[dict], layers: int, depth_factor: int, path: Path, w: Words) -> Figure | None:
    """vanishing_gradient: each saturating activation's gap to the reference at the run's depth and
    at `depth_factor`× it, with 95% intervals; a gap that grows with depth is the prediction."""
    rows = [row for e in entries if e["name"] == "vanishing_gradient" for row in e["contrasts"]
            if row["verdict"] in VERDICT_COLOURS and row["control"]["mean"] is not None]
    if not rows:
        return None
    fig, ax = _figure(figsize=(5.5, 4.0), dpi=110)
    depths = [layers, layers * depth_factor]
    for k, row in enumerate(rows):
        sides = (row["control"], row["treated"])  # the gap at the run's depth, then at the deeper one
        means = [100 * side["mean"] for side in sides]
        low = [side["mean"] if side["ci_low"] is None else side["ci_low"] for side in sides]
        high = [side["mean"] if side["ci_high"] is None else side["ci_high"] for side in sides]
        err = [[m - 100 * lo for m, lo in zip(means, low)], [100 * hi - m for m, hi in zip(means, high)]]
        ax.errorbar(depths, means, yerr=err, marker=MARKERS[k % len(MARKERS)], capsize=5,
                    label=w.plain("causes.gap_label", ref=row["control"]["plus"]["activation"], subject=row["subject"]))
    ax.axhline(0, color="#444444", linewidth=0.8)
    ax.set_xticks(depths)
    ax.set_xlabel(w.plain("causes.depth_axis"))
    ax.set_ylabel(w.plain("causes.gap_axis"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return fig
