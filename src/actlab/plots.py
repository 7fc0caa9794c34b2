"""PNG plots of a run: one figure per metric per epoch (one line per activation), and activation curves.

With several seeds a line is the mean over seeds and the band spans the lowest to highest seed, so
a reader sees the spread before reading any claim about the difference.
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
from actlab.results import Results, atomic_write  # noqa: E402

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


def _series(results: Results, label: str, metric: str) -> np.ndarray:
    """(seeds, epochs) array of one metric, NaN where a run stopped early or did not measure it."""
    runs = results.by_label(label)
    epochs = max((len(r.epochs) for r in runs), default=0)
    out = np.full((len(runs), epochs), np.nan)
    for i, run in enumerate(runs):
        for row in run.epochs:
            value = row.get(metric)
            if value is not None:
                out[i, int(row["epoch"]) - 1] = value
    return out


def plot_metric(results: Results, metric: str, path: Path) -> bool:
    """Draw one metric per epoch; returns False (and draws nothing) when no run measured it."""
    title, unit = CURVES[metric]
    scale = 100.0 if unit.startswith("accuracy") else 1.0
    series = {label: _series(results, label, metric) * scale for label in results.labels}
    if all(np.isnan(s).all() for s in series.values()):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, values in series.items():
        epochs = np.arange(1, values.shape[1] + 1)
        with np.errstate(all="ignore"):
            valid = ~np.isnan(values).all(axis=0)
            mean = np.nanmean(np.where(valid, values, 0), axis=0)
        line, = ax.plot(epochs[valid], mean[valid], marker="o", markersize=3, label=label)
        if values.shape[0] > 1:
            ax.fill_between(epochs[valid], np.nanmin(values[:, valid], axis=0),
                            np.nanmax(values[:, valid], axis=0), color=line.get_color(), alpha=0.15)
    seeds = len({r.seed for r in results.runs})
    ax.set_title(f"{title}" + (f" — mean and range over {seeds} seeds" if seeds > 1 else ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    return True


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
