"""Interactions, as paired differences of differences: whether a pair's difference depends on the tuned
values (the tuned and the fixed arm of a tuned run), and whether a loss's gain depends on the activation
(`loss_interaction`), each compared seed by seed.

A tuned run trains every activation twice on the same evaluation seeds: at the values tuning chose for
it and at the experiment's fixed values. For a pair a, b the tuned difference (a − b at the tuned
values) and the fixed difference are both paired over seeds, so their difference of differences is
paired too: a paired t-test on it (Holm-corrected over the pairs) says whether the difference changes
between the arms. Two verdicts that differ while this test does not reject are the same difference
judged on other runs, not an effect of tuning. Intervals are simultaneous over the pairs (Bonferroni),
like the pairwise table's.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from typing import Any

import numpy as np

from actlab.paired import ALPHA, MIN_SEEDS, mean_and_interval, paired_test
from actlab.results import Results
from actlab.stats import holm, values_by_seed


def tuning_interaction(tuned: Results, fixed: Results, metric: str, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Per pair: the tuned and the fixed difference with their intervals, and the paired test of their
    difference (tuned − fixed) over the seeds where all four runs count, with its Holm-corrected p."""
    pairs = list(itertools.combinations(tuned.labels, 2))
    rows = []
    for a, b in pairs:
        ta, tb, fa, fb = (values_by_seed(r, label, metric)
                          for r, label in ((tuned, a), (tuned, b), (fixed, a), (fixed, b)))
        seeds = sorted(ta.keys() & tb.keys() & fa.keys() & fb.keys())
        at_tuned = [ta[s] - tb[s] for s in seeds]
        at_fixed = [fa[s] - fb[s] for s in seeds]
        rows.append((a, b, at_tuned, at_fixed, paired_test(a, b, at_tuned, at_fixed)))
    family = [len(at_tuned) >= MIN_SEEDS for _, _, at_tuned, _, _ in rows]
    adjusted = holm([t.p_decision for *_, t in rows], family)
    confidence = 1 - alpha / max(1, sum(family))
    out = []
    for (a, b, at_tuned, at_fixed, test), p in zip(rows, adjusted):
        out.append({"a": a, "b": b, "n": len(at_tuned), "confidence": confidence,
                    "tuned": mean_and_interval(at_tuned, confidence), "fixed": mean_and_interval(at_fixed, confidence),
                    "change": mean_and_interval(np.subtract(at_tuned, at_fixed), confidence),
                    "test": asdict(test), "p_holm": p, "depends": p is not None and p < alpha})
    return out


def shared_choice(tuning: dict[str, Any]) -> dict[str, float] | None:
    """The point every activation chose, when they all chose the same one: then the tuned arm, too,
    trains every activation at one shared value."""
    chosen = [entry["chosen"] for entry in tuning["activations"].values()]
    return chosen[0] if chosen and all(c == chosen[0] for c in chosen) else None


def loss_interaction(results: Results, metric: str, alpha: float = ALPHA) -> dict[str, Any] | None:
    """In a run that crosses activations with losses (one output head): per activation, how much the
    first loss gains over each other loss, seed by seed; and per pair of activations whether that gain
    differs (a paired difference of differences, Holm-corrected over every such pair, with intervals
    simultaneous over them). None where the run does not cross the two."""
    activations = list(dict.fromkeys(r.activation for r in results.runs))
    losses = list(dict.fromkeys(r.loss for r in results.runs))
    if len(activations) < 2 or len(losses) < 2 or len({r.output for r in results.runs}) > 1:
        return None
    label = {(r.activation, r.loss): r.label for r in results.runs}
    gains: dict[str, dict[str, dict[int, float]]] = {}  # other loss → activation → seed → gain
    for other in losses[1:]:
        for a in activations:
            first, second = (values_by_seed(results, label[a, loss], metric) for loss in (losses[0], other))
            gains.setdefault(other, {})[a] = {s: first[s] - second[s] for s in sorted(first.keys() & second.keys())}
    rows = []
    for other, by_activation in gains.items():
        for a, b in itertools.combinations(activations, 2):
            seeds = sorted(by_activation[a].keys() & by_activation[b].keys())
            xa, xb = [by_activation[a][s] for s in seeds], [by_activation[b][s] for s in seeds]
            rows.append((other, paired_test(a, b, xa, xb), np.subtract(xa, xb)))
    family = [t.n >= MIN_SEEDS for _, t, _ in rows]
    adjusted = holm([t.p_decision for _, t, _ in rows], family)
    confidence = 1 - alpha / max(1, sum(family))
    differences = [{"other": other, "a": t.a, "b": t.b, "n": t.n, "p_holm": p,
                    "significant": p is not None and p < alpha, **mean_and_interval(d, confidence)}
                   for (other, t, d), p in zip(rows, adjusted)]
    per_activation = {other: {a: {**mean_and_interval(list(g.values()), 0.95), "n": len(g),
                                  "ahead": sum(v > 0 for v in g.values())} for a, g in by_activation.items()}
                      for other, by_activation in gains.items()}
    return {"metric": metric, "first": losses[0], "gains": per_activation, "differences": differences,
            "confidence": confidence}
