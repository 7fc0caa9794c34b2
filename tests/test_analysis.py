"""The written analysis says no more than its numbers: the second review's cases (issue 29) on
synthetic results whose right answer is known, each of which the earlier wording got wrong."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats as sps

from actlab.analysis import analysis_blocks
from actlab.messages import Words
from actlab.render import to_markdown
from actlab.report import build_report
from actlab.report.sections.published import coverage_p
from actlab.stats import analyse
from test_report import synthetic
from test_sections import sentences


def text(results) -> str:
    return to_markdown(analysis_blocks(results, analyse(results), Words("en")))


def fail_all(results, labels=None) -> None:
    for run in results.runs:
        if labels is None or run.label in labels:
            run.status = "failed_to_learn"


def test_a_pair_equivalent_but_detectable_shares_a_letter_under_a_caption_that_holds(tmp_path):
    """relu − leaky is +0.10 points in every seed give or take 0.01: detectably different, yet inside
    ±0.5. They share a letter, so the caption must not say letters mean 'not significantly different'."""
    results = synthetic(tmp_path, {"relu": [0.9801, 0.9752, 0.9821, 0.9779, 0.9790],
                                   "leaky_relu:0.01": [0.9790, 0.9743, 0.9810, 0.9770, 0.9779]})
    stats = analyse(results)
    (pair,) = stats["metrics"]["final_test_acc"]["pairwise"]
    assert pair["verdict"] == "equivalent" and pair["significant"]
    md = build_report(results)[0].read_text()
    assert "not significantly different" not in md
    assert "a shared letter means only that neither was found better, not that they are the same" in md
    assert "The difference is detectable (paired t-test p" in md


def test_a_run_where_every_model_failed_ranks_nothing_and_advises_no_seeds(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.0974, 0.1135, 0.0980], "tanh": [0.1009, 0.0958, 0.1135]},
                        config={"name": "lr20", "dataset": "mnist", "optimizer": "sgd", "lr": 20.0, "epochs": 3})
    fail_all(results)
    md = build_report(results)[0].read_text()
    assert "Nothing learned: all 6 runs (`relu`, `tanh`) failed" in md and "`20` with `sgd`" in md
    assert "has the highest" not in md and "seeds for 80% power at" not in md and "would need about" not in md
    assert "inconclusive" not in md.split("## Analysis")[1].split("## ")[0]
    said = sentences(md)
    assert len(said) == len(set(said))  # "Nothing learned" in the Conclusion, not again in the Analysis


def test_activations_that_always_failed_are_named_once_and_not_ranked(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981], "sigmoid": [0.1135, 0.1135, 0.1135],
                                   "tanh": [0.1135, 0.1135, 0.1135]})
    fail_all(results, {"sigmoid", "tanh"})
    t = text(results)
    assert "`sigmoid`, `tanh` failed in every run" in t and "`sigmoid` vs `tanh`: not compared; both failed" in t
    assert "Only `relu` learned" in t and "`relu` is ahead of `sigmoid`" in t
    assert "equivalent" not in t  # the old code called the two stuck activations equivalent, p < 0.001


def test_the_seeds_advice_names_its_alpha_gives_a_range_and_keeps_error_control(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.980, 0.975, 0.982, 0.978, 0.979],
                                   "tanh": [0.976, 0.979, 0.970, 0.975, 0.981],
                                   "elu": [0.977, 0.978, 0.975, 0.974, 0.980]})
    t = text(results)
    assert "Holm-corrected α" not in t
    assert re.search(r"would need about \d+ seeds for 80% power \(the 95% interval of d\\_z allows anything from "
                     r"\d+ to over 1,000\)", t)
    assert t.count("Seeds for 80% power are counted at α/3 = 0.0167 (Bonferroni over the 3 pairs, the strictest "
                   "step of Holm's correction)") == 1  # said once, not once per pair
    assert "run fresh seeds instead and judge by that run alone" in t and "--seed 5 --seeds" in t


def test_the_rank_test_floor_counts_the_seeds_the_pairs_share_not_the_run(tmp_path):
    """Six seeds in the run, but relu and tanh share three: the floor sentence is about three."""
    results = synthetic(tmp_path, {"relu": [0.980, 0.975, 0.982, 0.978, 0.979, 0.977],
                                   "tanh": [0.976, 0.979, 0.970, 0.975, 0.981, 0.972]})
    results.runs = [r for r in results.runs if r.label == "relu" or r.seed < 3]
    assert "With 3 seeds and 1 pair, the exact sign-flip" in text(results)


def test_the_pairwise_table_marks_its_intervals_and_the_test_that_decides(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.980, 0.981, 0.982], "tanh": [0.970, 0.971, 0.972],
                                   "elu": [0.976, 0.979, 0.970]})
    md = build_report(results)[0].read_text()
    table = md.split("## Pairwise verdicts")[1].split("## ")[0]
    assert "simultaneous 95% CI" in table and "each at 98.33%" in table
    assert "(sign-flip)" in table  # relu − tanh is exactly +1.00 in every seed: the sign-flip test decides
    row = next(line for line in table.splitlines() if line.startswith("| `relu` – `tanh`"))
    assert "(sign-flip)" in row and "| – |" in row


def test_the_seeds_column_says_which_of_three_things_a_blank_means(tmp_path):
    """relu − elu: no effect at all (over 1,000 seeds); relu − tanh: +1 point in every seed, so no
    spread and no d_z (no estimate); the rest reached a verdict (–)."""
    results = synthetic(tmp_path, {"relu": [0.98, 0.97, 0.99], "elu": [0.97, 0.99, 0.98], "tanh": [0.97, 0.96, 0.98]})
    md = build_report(results)[0].read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| `")}
    assert rows["`relu` – `elu`"].rstrip(" |").endswith("over 1,000")
    assert rows["`relu` – `tanh`"].rstrip(" |").endswith("no estimate (no spread)")
    assert "– where a verdict was reached" in md


def test_failures_speak_of_runs_that_did_not_fail_and_of_the_epoch_they_stopped_at(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981], "selu": [0.11, 0.10, 0.12]}, epochs=2)
    fail_all(results, {"selu"})
    t = text(results)
    assert "3 had not learned by epoch 2" in t and "never learned" not in t
    assert "and none of its runs learned" in t and "over the 0 runs" not in t
    md = build_report(results)[0].read_text()
    assert "without failed runs" in md and "as finished" not in md
    assert "the Wilcoxon signed-rank test is in `stats.json`" in md


def test_a_tiny_gradient_ratio_is_printed_in_figures_not_as_zero(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981], "sigmoid": [0.95, 0.951, 0.949]},
                        diag={"relu": 0.2, "sigmoid": 6e-6})
    t = text(results)
    assert "the first layer's gradient is 1.2e-05× the last layer's" in t and "0.000×" not in t


def test_published_coverage_is_the_poisson_binomial_over_each_figures_own_runs():
    assert coverage_p(3, [0.5] * 8) == pytest.approx(sps.binomtest(3, 8, 0.5).pvalue)
    shares = [1 / 3, 1 / 2, 1 / 2, 3 / 5]  # 2, 3, 3 and 4 finished runs at those epochs
    outcomes = np.array(np.meshgrid(*[[0, 1]] * 4)).reshape(4, -1).T
    probs = np.prod(np.where(outcomes, shares, 1 - np.array(shares)), axis=1)
    pmf = np.bincount(outcomes.sum(axis=1), weights=probs)
    assert coverage_p(0, shares) == pytest.approx(pmf[pmf <= pmf[0] * (1 + 1e-7)].sum())
    assert math.isclose(pmf.sum(), 1)


def tuned(tmp_path, chosen: dict[str, float], fixed_shift: float = 0.0):
    """A tuned run: the tuned arm as `synthetic` makes it, the fixed arm the same accuracies shifted."""
    accs = {"relu": [0.980, 0.979, 0.981, 0.978], "leaky_relu:0.01": [0.9805, 0.9785, 0.9812, 0.9781],
            "tanh": [0.975, 0.976, 0.974, 0.977]}
    results = synthetic(tmp_path / "tuned", accs, config={"name": "tuned", "dataset": "mnist", "optimizer": "adam"})
    fixed = synthetic(tmp_path / "fixed", {k: [a - fixed_shift for a in v] for k, v in accs.items()})
    point = lambda lr: {"point": {"lr": lr}, "scores": [0.97, 0.971], "n": 2, "mean": 0.9705,  # noqa: E731
                        "ci_low": 0.96, "ci_high": 0.98}
    grid = [0.0003, 0.001, 0.003]
    results.tuning = {"grid": {"lr": grid}, "keys": ["lr"], "fixed": {"lr": 0.001}, "tuning_seeds": [4, 5],
                      "evaluation_seeds": [0, 1, 2, 3], "fixed_runs": [r.to_json() for r in fixed.runs],
                      "activations": {label: {"points": [point(v) for v in grid], "chosen": {"lr": lr},
                                              "at_edge": {"lr": "high"} if lr == grid[-1] else {},
                                              "best": 0.9705, "mean_over_grid": 0.9705, "worst": 0.9705}
                                      for label, lr in chosen.items()}}
    return build_report(results)[0].read_text()


def test_a_tuned_run_where_every_activation_chose_one_lr_says_so_and_claims_no_dependence(tmp_path):
    md = tuned(tmp_path, {"relu": 0.003, "leaky_relu:0.01": 0.003, "tanh": 0.003}, fixed_shift=0.002)
    assert "Every activation chose `lr=0.003`, so the tuned arm, too, trains all of them at one shared value" in md
    assert "depends on whether each activation trains at its own" not in md
    assert "For no pair does the difference change significantly between the fixed and the tuned values" in md
    assert "rest on values at the edge of the grid" in md  # 0.003 is the grid's top
    assert "validation acc at the chosen point (best of the grid: optimistic)" in md
    table = md.split("### Tuned against fixed")[1]
    assert "| `relu` – `tanh` | 4 | +0.40 (" in table  # the fixed difference, with its interval


def test_a_tuned_run_whose_choice_is_the_fixed_value_compares_nothing(tmp_path):
    md = tuned(tmp_path, {"relu": 0.001, "leaky_relu:0.01": 0.001, "tanh": 0.001})
    assert "Every activation chose the experiment's fixed values (`lr=0.001`)" in md
    assert "rest on values at the edge" not in md
