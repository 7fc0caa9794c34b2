"""Which activation is really better: summaries with confidence intervals, paired tests, ranking.

Within one seed every activation shares the data order, the validation split and the initial
weights, so the comparison of two activations is paired: we test the per-seed differences (paired t
and Wilcoxon signed-rank, Holm-corrected over all pairs) rather than two independent samples.
Activations whose difference is not significant are ranked as tied. SciPy supplies every
distribution; nothing here hand-rolls a p-value.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from actlab.results import ModelRun, Results

ALPHA = 0.05

# metric name -> (description, higher is better, unit scale for text)
METRICS: dict[str, tuple[str, bool]] = {
    "final_test_acc": ("final test accuracy", True),
    "peak_test_acc": ("highest test accuracy over the epochs (optimistic: chosen on the test set)", True),
    "best_val_test_acc": ("test accuracy of the best-validation checkpoint", True),
    "final_test_loss": ("final test loss", False),
    "epochs_to_99pct": ("epochs to reach 99% of the final test accuracy", False),
    "train_seconds": ("training wall time, seconds", False),
}


def metric_value(run: ModelRun, metric: str) -> float | None:
    """One number per model for `metric`; None when the run did not measure it."""
    accs = [row["test_acc"] for row in run.epochs if row.get("test_acc") is not None]
    if metric == "final_test_acc":
        return run.final_test_acc
    if metric == "peak_test_acc":
        return max(accs) if accs else None
    if metric == "best_val_test_acc":
        return run.best_test_acc
    if metric == "final_test_loss":
        return run.final_test_loss
    if metric == "epochs_to_99pct":
        if not accs:
            return None
        return float(next(i for i, a in enumerate(accs, 1) if a >= 0.99 * accs[-1]))
    if metric == "train_seconds":
        return run.train_seconds
    raise KeyError(metric)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    min: float
    max: float


def summarize(values: list[float], confidence: float = 0.95, method: str = "t", seed: int = 0) -> Summary:
    """Mean, std and a confidence interval: Student t, or a seeded BCa bootstrap (`method="bootstrap"`)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        low = high = math.nan
    elif std == 0:
        low = high = mean
    elif method == "bootstrap":
        res = sps.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=9999,
                            method="BCa", rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    else:
        low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(n, mean, std, float(low), float(high), float(x.min()) if n else math.nan,
                   float(x.max()) if n else math.nan)


@dataclass(frozen=True)
class PairedTest:
    a: str
    b: str
    n: int
    mean_diff: float  # mean over seeds of (a − b)
    diff_ci_low: float
    diff_ci_high: float
    t: float
    p_t: float
    p_wilcoxon: float
    effect_dz: float  # Cohen's d_z: mean difference / std of the differences
    p_t_holm: float = math.nan
    p_wilcoxon_holm: float = math.nan
    significant: bool = False  # Holm-corrected paired t p < ALPHA


def paired_test(a: str, b: str, xa: list[float], xb: list[float], confidence: float = 0.95) -> PairedTest:
    """Paired t and Wilcoxon signed-rank tests of a − b over seeds (both lists in seed order)."""
    d = np.asarray(xa, dtype=float) - np.asarray(xb, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        return PairedTest(a, b, n, mean, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    if sd == 0:
        t, p_t = (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
        low = high = mean
    else:
        res = sps.ttest_rel(xa, xb)
        t, p_t = float(res.statistic), float(res.pvalue)
        low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    p_w = 1.0 if np.all(d == 0) else float(sps.wilcoxon(xa, xb).pvalue)
    dz = mean / sd if sd and sd > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
    return PairedTest(a, b, n, mean, float(low), float(high), t, p_t, p_w, dz)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error over all the pairs tested."""
    m = sum(not math.isnan(p) for p in p_values)  # untested pairs (NaN) are not comparisons
    order = sorted(range(len(p_values)), key=lambda i: (math.isnan(p_values[i]), p_values[i]))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        if math.isnan(p_values[i]):
            continue
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def paired_values(results: Results, metric: str, a: str, b: str) -> tuple[list[float], list[float]]:
    """The metric for a and b over the seeds where both finished `ok`, in seed order."""
    def by_seed(label):
        return {r.seed: metric_value(r, metric) for r in results.by_label(label) if r.status == "ok"}
    va, vb = by_seed(a), by_seed(b)
    seeds = sorted(s for s in va.keys() & vb.keys() if va[s] is not None and vb[s] is not None)
    return [va[s] for s in seeds], [vb[s] for s in seeds]


def compare(results: Results, metric: str) -> list[PairedTest]:
    """Every pair of activations, tested and Holm-corrected together."""
    tests = [paired_test(a, b, *paired_values(results, metric, a, b))
             for a, b in itertools.combinations(results.labels, 2)]
    adj_t, adj_w = holm([t.p_t for t in tests]), holm([t.p_wilcoxon for t in tests])
    return [PairedTest(**{**asdict(t), "p_t_holm": pt, "p_wilcoxon_holm": pw,
                          "significant": bool(pt < ALPHA)}) for t, pt, pw in zip(tests, adj_t, adj_w)]


def ranking(summaries: dict[str, Summary], tests: list[PairedTest], higher_is_better: bool) -> list[list[str]]:
    """Tiers in order: each tier's leader is the best activation not yet placed, and every later
    activation not significantly different from that leader joins its tier (ties)."""
    significant = {frozenset((t.a, t.b)): t.significant for t in tests}
    order = sorted((label for label, s in summaries.items() if not math.isnan(s.mean)),
                   key=lambda label: summaries[label].mean, reverse=higher_is_better)
    tiers: list[list[str]] = []
    for label in order:
        if tiers and not significant.get(frozenset((tiers[-1][0], label)), False):
            tiers[-1].append(label)
        else:
            tiers.append([label])
    return tiers


def epoch_curves(results: Results, metric: str, confidence: float = 0.95) -> dict[str, list[dict[str, float]]]:
    """Per activation and epoch: mean and t confidence interval over the seeds that finished."""
    curves = {}
    for label in results.labels:
        by_epoch: dict[int, list[float]] = {}
        for run in results.by_label(label):
            if run.status != "ok":  # as in the summaries: unfinished runs are left out
                continue
            for row in run.epochs:
                if row.get(metric) is not None and math.isfinite(row[metric]):
                    by_epoch.setdefault(int(row["epoch"]), []).append(row[metric])
        curves[label] = [{"epoch": e, **asdict(summarize(v, confidence))} for e, v in sorted(by_epoch.items())]
    return curves


def failure_counts(results: Results) -> dict[str, dict[str, int]]:
    return {label: {"runs": len(results.by_label(label)),
                    "ok": sum(r.status == "ok" for r in results.by_label(label)),
                    "failed_to_learn": sum(r.status == "failed_to_learn" for r in results.by_label(label))}
            for label in results.labels}


def analyse(results: Results, confidence: float = 0.95, method: str = "t") -> dict[str, Any]:
    """Everything `stats.json` holds: per-activation summaries, pairwise tests and tiers per metric."""
    out: dict[str, Any] = {
        "alpha": ALPHA, "confidence": confidence, "ci_method": method,
        "seeds": sorted({r.seed for r in results.runs}), "runs": failure_counts(results),
        "test": "paired t-test over seeds (Holm-corrected over all pairs) decides significance; "
                "Wilcoxon signed-rank reported beside it",
        "metrics": {},
    }
    for metric, (description, higher) in METRICS.items():
        values = {label: [v for r in results.by_label(label) if r.status == "ok"
                          and (v := metric_value(r, metric)) is not None] for label in results.labels}
        if not any(values.values()):
            continue
        summaries = {label: summarize(v, confidence, method) for label, v in values.items()}
        tests = compare(results, metric)
        out["metrics"][metric] = {
            "description": description, "higher_is_better": higher,
            "summary": {label: asdict(s) for label, s in summaries.items()},
            "pairwise": [asdict(t) for t in tests],
            "tiers": ranking(summaries, tests, higher),
        }
    out["curves"] = {m: epoch_curves(results, m, confidence) for m in ("test_acc", "test_loss", "train_loss", "val_acc")}
    return out


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon test can give with n pairs (2 / 2^n)."""
    return min(1.0, 2.0 / 2 ** n)

