"""Which activation is really better: summaries, one verdict per pair, groups, seeds needed, failures.

The tests of one pair (paired t, exact sign flip, TOST, the d_z interval, seeds for power) are in
`actlab.paired`; here they are run over every pair of a run, corrected for multiplicity (Holm) and
turned into verdicts, groups and the analysis the report reads.

Within a seed every activation shares the data order and split, so two activations are compared on
their per-seed differences over the seeds both have (a paired design). Each pair gets one verdict:
- `equivalent`: on an accuracy, the difference lies within ±margin (two one-sided t-tests, TOST,
  Holm-corrected over the pairs): too small to matter, whether or not it is detectable;
- `a_better` / `b_better`: the paired t-test, Holm-corrected over the pairs, is significant at α
  (when the differences have no spread, the t statistic is undefined and the exact sign-flip test
  decides instead);
- `inconclusive`: neither; `seeds_needed` says how many seeds a paired t-test would need for 80%
  power at the Holm-corrected α, if the true effect were the one observed;
- `not_tested`: the pair shares fewer than 3 seeds.
The exact sign-flip permutation test (n ≤ 10) and the Wilcoxon signed-rank test are reported beside
the t-test. Groups are a compact letter display built from the verdicts: two activations share a
letter unless one is significantly better, so no grouping contradicts a pair. Runs that failed (never
learned, or diverged) count at the accuracy they reached; the as-finished summaries leave them out.
SciPy supplies every distribution; nothing here hand-rolls a p-value. `scipy.stats` is imported
where a test or interval needs it, not with this module: it takes about a second, and the report of
a one-seed run needs none of it (only the failure rates' exact interval, from `scipy.special`).
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy import special

from actlab.config import RunConfig
from actlab.paired import (ALPHA, MIN_SEEDS, SIGN_FLIP_MAX_N, PairedTest, mean_interval, no_spread, paired_test,
                           seeds_for_power)
from actlab.results import ModelRun, Results

DEFAULT_MARGIN_POINTS = RunConfig.equivalence_margin  # the smallest difference of interest, in points
NEAR_FINAL = 0.005  # "epochs to final": the first epoch within 0.5 points of the run's final test accuracy

# metric name -> (description, higher is better, is an accuracy: equivalence applies)
METRICS: dict[str, tuple[str, bool, bool]] = {
    "final_test_acc": ("final test accuracy", True, True),
    "peak_test_acc": ("highest test accuracy over the epochs (optimistic: chosen on the test set)", True, True),
    "best_val_test_acc": ("test accuracy of the best-validation checkpoint", True, True),
    "final_test_loss": ("final test loss", False, False),
    "epochs_to_final": ("epochs to come within 0.5 points of the run's own final test accuracy", False, False),
    "train_seconds": ("training wall time, seconds", False, False),
}


def metric_bounds(metric: str) -> tuple[float, float]:
    """The values a metric can take: accuracies lie in [0, 1], losses and times are not negative."""
    return (0.0, 1.0) if metric.endswith("acc") else (0.0, math.inf)


def metric_value(run: ModelRun, metric: str) -> float | None:
    """One number per model for `metric`, as it counts in comparisons; None when the run has none
    (a failed run has no loss or convergence speed worth comparing, only the accuracy it reached)."""
    accs = [row["test_acc"] for row in run.epochs if row.get("test_acc") is not None]
    if metric == "final_test_acc":
        return run.accuracy_reached()
    if metric == "best_val_test_acc":
        return run.accuracy_reached(best_checkpoint=True)
    if metric == "peak_test_acc":
        return max(accs) if accs else run.accuracy_reached()
    if metric == "train_seconds":
        return run.train_seconds
    if not run.status.ok:
        return None
    if metric == "final_test_loss":
        return run.final_test_loss
    if metric == "epochs_to_final":  # its own final, not a common target: read it beside the final accuracy
        return float(next(i for i, a in enumerate(accs, 1) if a >= accs[-1] - NEAR_FINAL)) if accs else None
    raise KeyError(metric)


def values_by_seed(results: Results, label: str, metric: str, finished_only: bool = False) -> dict[int, float]:
    """{seed: value} over the label's runs that count (finished or failed; `finished_only`: ok)."""
    out = {}
    for run in results.by_label(label):
        if (run.status.ok if finished_only else run.counts) and (v := metric_value(run, metric)) is not None:
            out[run.seed] = v
    return out


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    min: float
    max: float


def summarize(values: list[float], confidence: float = 0.95, method: str = "t", seed: int = 0,
              bounds: tuple[float, float] = (-math.inf, math.inf)) -> Summary:
    """Mean, std and a confidence interval: Student t, or a seeded BCa bootstrap (`method="bootstrap"`).
    With no spread there is no interval to estimate (NaN), rather than one of zero width. The interval
    is cut to `bounds`, the values the quantity can take: with 2 seeds a t interval of an accuracy can
    otherwise reach past 100%."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    std = (0.0 if no_spread(x) else float(x.std(ddof=1))) if n > 1 else math.nan
    if n < 2 or std == 0:
        low = high = math.nan
    elif method == "bootstrap":
        from scipy import stats as sps

        res = sps.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=9999,
                            method="BCa", rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    else:
        from scipy import stats as sps

        low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    if not math.isnan(low):
        low, high = max(float(low), bounds[0]), min(float(high), bounds[1])
    return Summary(n, mean, std, float(low), float(high), float(x.min()) if n else math.nan,
                   float(x.max()) if n else math.nan)


# --- all pairs -----------------------------------------------------------------------------------

def holm(p_values: list[float | None], family: list[bool] | None = None) -> list[float | None]:
    """Holm's step-down adjustment: controls the family-wise error over all the pairs tested.
    `family` marks the pairs tested; a tested pair whose p is undefined (None) still counts in the
    family, as p = 1, so dropping it never loosens the others' correction."""
    family = family or [p is not None and not math.isnan(p) for p in p_values]
    defined = [i for i, p in enumerate(p_values) if family[i] and p is not None and not math.isnan(p)]
    size = sum(family)
    order = sorted(defined, key=lambda i: p_values[i])
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (size - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def paired_values(results: Results, metric: str, a: str, b: str) -> tuple[list[float], list[float]]:
    """The metric for a and b over the seeds where both count, in seed order."""
    va, vb = values_by_seed(results, a, metric), values_by_seed(results, b, metric)
    seeds = sorted(va.keys() & vb.keys())
    return [va[s] for s in seeds], [vb[s] for s in seeds]


def never_learned(results: Results, label: str) -> bool:
    """Every run of `label` that counts failed (never learned or diverged): its accuracies are chance
    or assumed chance, and ranking it against another such activation would rank noise."""
    counted = [r for r in results.by_label(label) if r.counts]
    return bool(counted) and all(r.failed for r in counted)


def compare(results: Results, metric: str, margin: float | None = None, alpha: float = ALPHA) -> list[PairedTest]:
    """Every pair of activations, with Holm-corrected p-values and one verdict each. `margin` (as a
    fraction, 0.005 = 0.5 points) makes equivalence testable on accuracies. Two activations that
    failed in every run are not compared (`both_failed`): they are in no Holm family."""
    _, higher, accuracy = METRICS[metric]
    margin = margin if accuracy else None
    failed = {label for label in results.labels if never_learned(results, label)}
    values = {(a, b): paired_values(results, metric, a, b) for a, b in itertools.combinations(results.labels, 2)}
    tests = [paired_test(a, b, *values[a, b], margin) for a, b in values]
    family = [t.n >= MIN_SEEDS and not {t.a, t.b} <= failed for t in tests]
    holms = {name: holm([getattr(t, name) for t in tests], family)
             for name in ("p_decision", "p_sign_flip", "p_wilcoxon", "p_tost")}
    tested = sum(family)
    confidence = 1 - alpha / max(1, tested)
    out = []
    for i, t in enumerate(tests):
        if not family[i]:
            kind = "not_tested" if t.n < MIN_SEEDS else "both_failed"
            out.append(replace(t, p_decision=None, p_tost=None, p_sign_flip=None, p_wilcoxon=None, verdict=kind))
            continue
        xa, xb = values[t.a, t.b]
        simultaneous = mean_interval(np.subtract(xa, xb), confidence)
        t = replace(t, **{f"{name}_holm": holm_values[i] for name, holm_values in holms.items()},
                    diff_ci_adj_low=simultaneous[0] if simultaneous else None,
                    diff_ci_adj_high=simultaneous[1] if simultaneous else None, adj_confidence=confidence)
        out.append(_with_verdict(t, higher, alpha, tested))
    return out


def _with_verdict(t: PairedTest, higher: bool, alpha: float, tested: int) -> PairedTest:
    significant = t.p_decision_holm is not None and t.p_decision_holm < alpha
    if t.p_tost_holm is not None and t.p_tost_holm < alpha:
        verdict = "equivalent"
    elif significant:
        verdict = "a_better" if (t.mean_diff > 0) == higher else "b_better"
    else:
        verdict = "inconclusive"
    normality = significant and t.p_t is not None and (t.p_sign_flip_holm is None or t.p_sign_flip_holm >= alpha) \
        and t.n <= SIGN_FLIP_MAX_N
    needed = spread = None
    if verdict == "inconclusive":
        needed = seeds_for_power(t.effect_dz, alpha / max(1, tested))
        spread = _seeds_range(t, alpha / max(1, tested))
    return replace(t, verdict=verdict, significant=significant, rests_on_normality=normality, seeds_needed=needed,
                   seeds_needed_range=spread)


def _seeds_range(t: PairedTest, alpha: float) -> tuple[int | None, int | None] | None:
    """Seeds for 80% power at the two ends of d_z's interval: (fewest, most). The most is None when the
    interval reaches 0 (no number of seeds is enough against no effect) or needs over 1,000."""
    if t.dz_ci_low is None or t.dz_ci_high is None:
        return None
    low, high = sorted((abs(t.dz_ci_low), abs(t.dz_ci_high)))
    crosses = t.dz_ci_low <= 0 <= t.dz_ci_high
    return seeds_for_power(high, alpha), None if crosses else seeds_for_power(low, alpha)


UNTESTED = ("not_tested", "both_failed")  # verdicts outside the Holm family


def ranking(by_seed: dict[str, dict[int, float]], learned: list[str], higher: bool) -> tuple[list[str], dict]:
    """The activations that learned, best first. When their seed sets differ, each own mean would
    compare different seeds, so the order is by the mean over the seeds they all have (where they
    share any); `basis` says which."""
    present = [label for label in learned if by_seed[label]]
    seed_sets = {frozenset(by_seed[label]) for label in present}
    common = sorted(frozenset.intersection(*seed_sets)) if seed_sets else []
    if len(seed_sets) > 1 and common:
        mean = {label: statistics.fmean(by_seed[label][s] for s in common) for label in present}
        basis = {"seeds": common, "means": mean}
    else:
        mean = {label: statistics.fmean(by_seed[label].values()) for label in present}
        basis = {"seeds": None, "means": None}
    return sorted(present, key=lambda label: mean[label], reverse=higher), basis


def letter_groups(order: list[str], tests: list[PairedTest]) -> dict[str, str]:
    """A compact letter display (Piepho's insert-absorb): two activations share a letter unless one
    is significantly better than the other. Letters go by the best member of each group (`order`)."""
    different = [(t.a, t.b) for t in tests if t.verdict in ("a_better", "b_better") and t.a in order and t.b in order]
    sets = [frozenset(order)]
    for a, b in different:
        split = []
        for s in sets:
            split += [s - {a}, s - {b}] if a in s and b in s else [s]
        unique = list(dict.fromkeys(s for s in split if s))
        sets = [s for s in unique if not any(s < other for other in unique)]
    sets.sort(key=lambda s: sorted(order.index(label) for label in s))
    letters = dict.fromkeys(order, "")
    for k, s in enumerate(sets):
        for label in s:
            letters[label] += _letter(k)
    return letters


def _letter(k: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[k] if k < 26 else f"g{k}"


# --- whole runs ----------------------------------------------------------------------------------

def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a proportion k/n: the beta quantiles that
    `scipy.stats.binomtest(k, n).proportion_ci(confidence, "exact")` finds by root search."""
    tail = (1 - confidence) / 2
    low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, tail))
    high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1 - tail))
    return low, high


def failure_counts(results: Results) -> dict[str, dict[str, Any]]:
    """Per activation: runs, how they ended, and the failure rate with its exact (Clopper–Pearson)
    95% interval over the runs that count."""
    out = {}
    for label in results.labels:
        runs = results.by_label(label)
        counted = [r for r in runs if r.counts]
        failures = sum(r.failed for r in counted)
        interval = clopper_pearson(failures, len(counted)) if counted else None
        out[label] = {"runs": len(runs), "ok": sum(r.status.ok for r in runs),
                      "failed_to_learn": sum(r.status.kind == "failed_to_learn" for r in runs),
                      "diverged": sum(r.status.diverged for r in runs),
                      "unfinished": len(runs) - len(counted), "failures": failures,
                      "failure_rate": failures / len(counted) if counted else None,
                      "failure_ci": list(interval) if interval else None,
                      "still_improving": sum(still_improving(r) for r in runs)}
    return out


def still_improving(run: ModelRun) -> bool:
    """Its best validation (else test) accuracy came in its last epoch: more epochs might change it.
    A run that had not learned yet counts too (it may have been about to); a diverged one does not."""
    key = "val_acc" if any(row.get("val_acc") is not None for row in run.epochs) else "test_acc"
    accs = [row[key] for row in run.epochs if row.get(key) is not None]
    return run.counts and not run.status.diverged and len(accs) > 1 and accs.index(max(accs)) == len(accs) - 1


def rank_test_min_seeds(pairs: int, alpha: float = ALPHA) -> int:
    """The fewest seeds with which the exact Wilcoxon or sign-flip test can pass Holm's first step
    (p < α / pairs): its smallest p-value with n seeds is 2 / 2^n."""
    n = 1
    while 2 / 2 ** n >= alpha / max(1, pairs):
        n += 1
    return n


def epoch_curves(results: Results, metric: str, confidence: float = 0.95) -> dict[str, list[dict[str, float]]]:
    """Per activation and epoch: mean and t confidence interval over the runs that count."""
    curves = {}
    for label in results.labels:
        by_epoch: dict[int, list[float]] = {}
        for run in results.by_label(label):
            if not run.counts:
                continue
            for row in run.epochs:
                if row.get(metric) is not None and math.isfinite(row[metric]):
                    by_epoch.setdefault(int(row["epoch"]), []).append(row[metric])
        curves[label] = [{"epoch": e, **asdict(summarize(v, confidence, bounds=metric_bounds(metric)))}
                         for e, v in sorted(by_epoch.items())]
    return curves


def analyse(results: Results, confidence: float = 0.95, method: str = "t",
            margin_points: float = DEFAULT_MARGIN_POINTS) -> dict[str, Any]:
    """Everything `stats.json` holds: per metric the summaries (failed runs counted, and as finished),
    every pair's verdict and the letter groups; per activation its failures; advice on seeds."""
    out: dict[str, Any] = {
        "alpha": ALPHA, "confidence": confidence, "ci_method": method, "equivalence_margin_points": margin_points,
        "min_seeds": MIN_SEEDS, "seeds": sorted({r.seed for r in results.runs}), "runs": failure_counts(results),
        "decision": "paired t-test over seeds, Holm-corrected over all pairs (exact sign-flip test where the "
                    "differences have no spread); equivalence by two one-sided t-tests against ±margin, "
                    "Holm-corrected; the exact sign-flip (n ≤ 10) and Wilcoxon tests are reported beside",
        "metrics": {}, "warnings": [],
    }
    checkpoints = any(r.best_test_acc is not None for r in results.runs)  # a validation split was used
    failed = [label for label in results.labels if never_learned(results, label)]
    several_losses = len({r.loss for r in results.runs}) > 1
    for metric, (description, higher, _) in METRICS.items():
        if metric == "final_test_loss" and several_losses:  # values of different loss functions do not compare
            continue
        by_seed = {label: values_by_seed(results, label, metric) for label in results.labels}
        values = {label: list(v.values()) for label, v in by_seed.items()}
        if not any(values.values()) or (metric == "best_val_test_acc" and not checkpoints):
            continue
        finished = {label: list(values_by_seed(results, label, metric, True).values()) for label in results.labels}
        summaries = {label: summarize(v, confidence, method, bounds=metric_bounds(metric))
                     for label, v in values.items()}
        order, basis = ranking(by_seed, [label for label in results.labels if label not in failed], higher)
        tests = compare(results, metric, margin_points / 100)
        learned = [t for t in tests if t.a in order and t.b in order]
        out["metrics"][metric] = {
            "description": description, "higher_is_better": higher, "order": order, "order_basis": basis,
            "never_learned": [label for label in failed if values[label]],
            "summary": {label: asdict(s) for label, s in summaries.items()},
            "as_finished": {label: asdict(summarize(v, confidence, method, bounds=metric_bounds(metric)))
                            for label, v in finished.items()},
            "pairwise": [asdict(t) for t in tests],
            "groups": letter_groups(order, learned) if any(t.verdict != "not_tested" for t in learned) else None,
        }
    primary = out["metrics"].get("best_val_test_acc") or out["metrics"].get("final_test_acc")
    tested = [t for t in primary["pairwise"] if t["verdict"] not in UNTESTED] if primary else []
    out["tested_pairs"], out["rank_test_min_seeds"] = len(tested), rank_test_min_seeds(max(1, len(tested)))
    out["tested_pair_seeds"] = max((t["n"] for t in tested), default=0)
    if method == "bootstrap" and any(s["n"] < 10 for m in out["metrics"].values() for s in m["summary"].values()):
        out["warnings"].append("bootstrap_small_n")
    out["curves"] = {m: epoch_curves(results, m, confidence)
                     for m in ("test_acc", "test_loss", "train_loss", "val_acc")}
    return out


def pairwise_verdicts(results: Results, margin_points: float) -> list[dict[str, Any]]:
    """The primary metric's pairs with their verdicts (a, b, n, mean difference, verdict)."""
    metrics = analyse(results, margin_points=margin_points)["metrics"]
    primary = metrics.get("best_val_test_acc") or metrics.get("final_test_acc") or {"pairwise": []}
    return [{k: t[k] for k in ("a", "b", "n", "mean_diff", "verdict")} for t in primary["pairwise"]]
