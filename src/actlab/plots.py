"""PNG plots of a run: one figure per metric per epoch (one line per activation), and activation curves.

With several seeds a line is the mean over seeds and the band its 95% confidence interval, so a
reader sees the spread before reading any claim about the difference.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from actlab.activations import ActivationSpec, curve  # noqa: E402
from actlab.files import atomic_write  # noqa: E402
from actlab.results import Results  # noqa: E402

CURVES = {
    "train_loss": ("training loss (mean over the epoch)", "loss"),
    "test_loss": ("test loss", "loss"),
    "test_acc": ("test accuracy", "accuracy %"),
    "train_acc": ("training accuracy (over the epoch)", "accuracy %"),
    "val_loss": ("validation loss", "loss"),
    "val_acc": ("validation accuracy", "accuracy %"),
}


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def plot_metric(results: Results, metric: str, path: Path) -> bool:
    """Draw one metric per epoch; returns False (and draws nothing) when no run measured it.

    With several seeds the line is the mean and the band its 95% t confidence interval.
    """
    from actlab.stats import epoch_curves

    title, unit = CURVES[metric]
    scale = 100.0 if unit.startswith("accuracy") else 1.0
    curves = epoch_curves(results, metric)
    if not any(curves.values()):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, points in curves.items():
        if not points:
            continue
        epochs = np.array([p["epoch"] for p in points])
        mean = np.array([p["mean"] for p in points]) * scale
        line, = ax.plot(epochs, mean, marker="o", markersize=3, label=label)
        low = np.array([p["ci_low"] for p in points]) * scale
        high = np.array([p["ci_high"] for p in points]) * scale
        if not np.isnan(low).all():
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.15)
    seeds = len({r.seed for r in results.runs})
    ax.set_title(f"{title}" + (f"\nmean and 95% CI over {seeds} seeds" if seeds > 1 else ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    return True


def plot_final_bars(summary: dict[str, dict], values: dict[str, list[float]], title: str, path: Path,
                    scale: float = 100.0, unit: str = "accuracy %") -> Path:
    """One bar per activation: the mean with its 95% CI, and every seed as a dot."""
    labels = list(summary)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels) + 2), 4.2), dpi=110)
    means = np.array([summary[label]["mean"] for label in labels]) * scale
    low = np.array([summary[label]["ci_low"] for label in labels]) * scale
    high = np.array([summary[label]["ci_high"] for label in labels]) * scale
    err = None if np.isnan(low).all() else np.vstack([means - low, high - means])
    ax.bar(range(len(labels)), means, yerr=err, capsize=6, color="#9ecae1", edgecolor="#3182bd")
    for i, label in enumerate(labels):
        points = np.array(values.get(label, [])) * scale
        ax.plot(np.full(len(points), i), points, "o", color="#08519c", markersize=4)
    finite = np.concatenate([v[np.isfinite(v)] for v in (means, low, high)] + [np.array([])])
    if finite.size:
        pad = max(0.5, 0.15 * (finite.max() - finite.min()))
        ax.set_ylim(finite.min() - pad, finite.max() + pad)
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return path


def plot_diagnostics(table: dict[str, dict[str, dict[str, float]]], stages: tuple[str, str], path: Path) -> Path:
    """Grouped bars per layer: dead units, saturation and gradient norm, at init and after training.

    `table[metric][activation][layer]` holds the mean over seeds; `stages` names the two rows.
    """
    metrics = [("dead_fraction", "dead units (fraction)"), ("saturated_fraction", "saturated pre-activations"),
               ("grad_norm", "weight-gradient norm")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), dpi=100, squeeze=False)
    for row, stage in enumerate(stages):
        for col, (metric, title) in enumerate(metrics):
            ax = axes[row][col]
            per_act = table.get(stage, {}).get(metric, {})
            labels = list(per_act)
            layers = sorted({layer for values in per_act.values() for layer in values})
            width = 0.8 / max(1, len(labels))
            for i, label in enumerate(labels):
                ax.bar(np.arange(len(layers)) + i * width, [per_act[label].get(layer, np.nan) for layer in layers],
                       width, label=label)
            ax.set_xticks(np.arange(len(layers)) + width * (len(labels) - 1) / 2, layers)
            ax.set_title(f"{title} — {stage}", fontsize=10)
            if metric == "grad_norm":
                ax.set_yscale("log")
            ax.grid(axis="y", alpha=0.3)
            if row == 0 and col == 0 and labels:
                ax.legend(fontsize=8)
    _save(fig, path)
    return path


def plot_run(results: Results) -> list[Path]:
    """Every curve of a run into `<run>/plots/`; returns the files written."""
    written = []
    for metric in CURVES:
        path = results.run_dir / "plots" / f"{metric}.png"
        if plot_metric(results, metric, path):
            written.append(path)
    return written


def plot_activations(specs: list[ActivationSpec], path: Path, lo: float = -10.0, hi: float = 10.0,
                     points: int = 1001) -> Path:
    """Each activation and its derivative (by autograd) over [lo, hi], side by side."""
    x = torch.linspace(lo, hi, points)
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for spec in specs:
        y, dy = curve(spec, x)
        ax_f.plot(x.numpy(), y.numpy(), label=spec.label)
        ax_d.plot(x.numpy(), dy.numpy(), label=spec.label)
    for ax, title in ((ax_f, "activation f(x)"), (ax_d, "derivative f'(x) (autograd)")):
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)
    return path
