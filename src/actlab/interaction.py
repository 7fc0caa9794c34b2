"""Whether a pair's difference depends on the tuned values: the tuned and the fixed arm of a tuned run
compared seed by seed.

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
