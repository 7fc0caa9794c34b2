"""Whether a pair's difference depends on the tuned values: the paired test of the difference of
differences between a tuned run's two arms, against SciPy, on synthetic arms whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from actlab.interaction import shared_choice, tuning_interaction
from actlab.results import ModelRun, Results
from actlab.stats import holm

SEEDS = 5


def arm(finals: dict[str, list[float]]) -> Results:
    runs = [ModelRun(label, label, "logits", seed,
                     [{"epoch": 1, "train_loss": 0.1, "train_acc": acc, "test_loss": 0.1, "test_acc": acc}], "ok")
            for label, accs in finals.items() for seed, acc in enumerate(accs)]
    return Results(Path("unused"), {}, {}, runs)


NOISE = np.array([0.0, 0.001, -0.001, 0.0015, -0.0005])


def test_the_change_is_a_paired_t_test_of_the_difference_of_differences():
    tuned = arm({"relu": list(0.980 + NOISE), "tanh": list(0.975 - NOISE / 2)})
    fixed = arm({"relu": list(0.978 + NOISE[::-1]), "tanh": list(0.976 + NOISE / 3)})
    (row,) = tuning_interaction(tuned, fixed, "final_test_acc")
    d_tuned = (0.980 + NOISE) - (0.975 - NOISE / 2)
    d_fixed = (0.978 + NOISE[::-1]) - (0.976 + NOISE / 3)
    ref = sps.ttest_rel(d_tuned, d_fixed)
    assert row["n"] == SEEDS and row["test"]["p_t"] == pytest.approx(ref.pvalue)
    assert row["p_holm"] == pytest.approx(ref.pvalue)  # one pair: Holm changes nothing
    assert row["change"]["mean"] == pytest.approx(float(np.mean(d_tuned - d_fixed)))
    assert row["tuned"]["ci_low"] < row["tuned"]["mean"] < row["tuned"]["ci_high"]


def test_a_difference_that_is_the_same_in_both_arms_does_not_depend_on_tuning():
    """relu − leaky about −0.05 points in both arms: whatever the verdicts say, the change is noise."""
    rng = np.random.default_rng(3)
    tuned = arm({"relu": list(0.97 + rng.normal(0, 0.001, SEEDS)), "leaky": list(0.9705 + rng.normal(0, 0.001, SEEDS))})
    fixed = arm({"relu": list(0.96 + rng.normal(0, 0.001, SEEDS)), "leaky": list(0.9606 + rng.normal(0, 0.001, SEEDS))})
    (row,) = tuning_interaction(tuned, fixed, "final_test_acc")
    assert not row["depends"] and row["change"]["ci_low"] < 0 < row["change"]["ci_high"]


def test_a_difference_that_flips_between_the_arms_depends_on_tuning_after_holm():
    tuned = arm({"a": list(0.98 + NOISE), "b": list(0.95 + NOISE), "c": list(0.97 + NOISE / 2)})
    fixed = arm({"a": list(0.95 - NOISE / 2), "b": list(0.98 + NOISE / 3), "c": list(0.97 - NOISE)})
    rows = {(r["a"], r["b"]): r for r in tuning_interaction(tuned, fixed, "final_test_acc")}
    assert rows["a", "b"]["depends"] and rows["a", "b"]["change"]["mean"] == pytest.approx(0.06, abs=1e-3)
    raw = [r["test"]["p_decision"] for r in rows.values()]
    assert [r["p_holm"] for r in rows.values()] == [pytest.approx(p) for p in holm(raw)]
    assert rows["a", "b"]["confidence"] == pytest.approx(1 - 0.05 / 3)


def test_shared_choice_is_the_point_every_activation_chose():
    same = {"activations": {"relu": {"chosen": {"lr": 0.003}}, "tanh": {"chosen": {"lr": 0.003}}}}
    own = {"activations": {"relu": {"chosen": {"lr": 0.003}}, "tanh": {"chosen": {"lr": 0.001}}}}
    assert shared_choice(same) == {"lr": 0.003} and shared_choice(own) is None
