"""Summaries, pairwise verdicts, letter groups, seeds needed and failure rates, against SciPy as the
oracle and on synthetic results whose right answer is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from actlab.results import ModelRun, Results, json_safe
from actlab.paired import ALPHA, PairedTest, dz_interval, paired_test, seeds_for_power, sign_flip_p, tost
from actlab.stats import (METRICS, analyse, clopper_pearson, compare, holm, letter_groups, metric_value, paired_values,
                          rank_test_min_seeds, still_improving, summarize)

ACCS = [0.97, 0.975, 0.98, 0.972, 0.978]


# ---------------------------------------------------------------- summarize

def test_summarize_t_interval_matches_scipy():
    s = summarize(ACCS)
    low, high = sps.t.interval(0.95, len(ACCS) - 1, loc=np.mean(ACCS), scale=sps.sem(ACCS))
    assert s.n == 5 and s.mean == pytest.approx(np.mean(ACCS)) and s.std == pytest.approx(np.std(ACCS, ddof=1))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert (s.min, s.max) == (min(ACCS), max(ACCS))
    wider = summarize(ACCS, confidence=0.99)
    assert wider.ci_low < s.ci_low and wider.ci_high > s.ci_high


def test_summarize_cuts_the_interval_to_the_values_an_accuracy_can_take():
    """Two seeds far apart give a t interval past 100%; the summary stops it at 1 and keeps the low end."""
    values = [0.9731, 0.9791]
    low, high = sps.t.interval(0.95, 1, loc=np.mean(values), scale=np.std(values, ddof=1) / math.sqrt(2))
    assert high > 1
    s = summarize(values, bounds=(0.0, 1.0))
    assert s.ci_high == 1.0 and s.ci_low == pytest.approx(low)
    assert summarize(values).ci_high == pytest.approx(high)


@pytest.mark.parametrize("values", [[], [0.9]])
def test_summarize_too_few_values_has_no_interval(values):
    s = summarize(values)
    assert s.n == len(values) and math.isnan(s.ci_low) and math.isnan(s.ci_high) and math.isnan(s.std)


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_summarize_constant_values_have_no_interval_rather_than_a_zero_width_one(method):
    s = summarize([0.9] * 4, method=method)
    assert s.std == 0 and s.mean == pytest.approx(0.9) and math.isnan(s.ci_low) and math.isnan(s.ci_high)


def test_summarize_bootstrap_is_reproducible_and_close_to_t_on_many_values():
    values = np.random.default_rng(0).normal(0.97, 0.01, 20).tolist()
    boot, again, t = (summarize(values, method="bootstrap", seed=3), summarize(values, method="bootstrap", seed=3),
                      summarize(values))
    assert (boot.ci_low, boot.ci_high) == (again.ci_low, again.ci_high)
    assert boot.ci_low < boot.mean < boot.ci_high
    assert 0.5 < (boot.ci_high - boot.ci_low) / (t.ci_high - t.ci_low) < 1.5


# ---------------------------------------------------------------- one pair

XA = [0.981, 0.978, 0.983, 0.979, 0.985, 0.980]
XB = [0.975, 0.977, 0.976, 0.974, 0.979, 0.978]


def test_paired_test_matches_scipy():
    r = paired_test("a", "b", XA, XB, margin=0.005)
    d = np.array(XA) - np.array(XB)
    ref = sps.ttest_rel(XA, XB)
    assert (r.a, r.b, r.n) == ("a", "b", 6)
    assert r.mean_diff == pytest.approx(d.mean()) and r.sd_diff == pytest.approx(d.std(ddof=1))
    assert r.t == pytest.approx(ref.statistic, rel=1e-10) and r.p_t == pytest.approx(ref.pvalue, rel=1e-10)
    assert r.p_wilcoxon == pytest.approx(sps.wilcoxon(XA, XB).pvalue)
    assert r.effect_dz == pytest.approx(d.mean() / d.std(ddof=1))
    low, high = sps.t.interval(0.95, 5, loc=d.mean(), scale=sps.sem(d))
    assert (r.diff_ci_low, r.diff_ci_high) == (pytest.approx(low), pytest.approx(high))
    # TOST is the larger of two one-sided one-sample t-tests against ±margin
    p_low = sps.ttest_1samp(d, -0.005, alternative="greater").pvalue
    p_high = sps.ttest_1samp(d, 0.005, alternative="less").pvalue
    assert r.p_tost == pytest.approx(max(p_low, p_high), rel=1e-9)
    assert r.verdict == "not_tested"  # compare() decides verdicts, over all pairs at once


def test_sign_flip_p_is_scipys_exact_permutation_test():
    d = np.array(XA) - np.array(XB)
    ref = sps.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                               n_resamples=np.inf, alternative="two-sided")
    assert sign_flip_p(d) == pytest.approx(ref.pvalue)
    assert sign_flip_p(np.zeros(4)) == 1.0
    assert sign_flip_p(np.arange(1, 12, dtype=float)) is None  # n > 10: the t-test alone


def test_dz_interval_inverts_the_noncentral_t():
    d = np.array(XA) - np.array(XB)
    t, n = sps.ttest_1samp(d, 0).statistic, len(d)
    low, high = dz_interval(t, n)
    assert low < t / math.sqrt(n) < high
    assert sps.nct.cdf(t, n - 1, low * math.sqrt(n)) == pytest.approx(0.975, abs=1e-6)
    assert sps.nct.cdf(t, n - 1, high * math.sqrt(n)) == pytest.approx(0.025, abs=1e-6)


def test_identical_differences_get_finite_statistics_and_are_not_significant_by_construction():
    xa = [1.0, 2.0, 3.0, 4.0, 5.0]
    r = paired_test("a", "b", xa, [x - 0.25 for x in xa])  # d == 0.25 in every seed, exactly
    assert r.mean_diff == 0.25 and r.sd_diff == 0
    assert r.t is None and r.p_t is None and r.effect_dz is None and r.diff_ci_low is None
    assert r.p_sign_flip == pytest.approx(2 / 2 ** 5)  # the exact test: 5 of 5 seeds one way
    results = make_results([run(label, s, [x]) for s, x in enumerate(xa) for label, x in
                            (("a", x / 10), ("b", (x - 0.25) / 10))])
    (pair,) = compare(results, "final_test_acc", margin=0.005)
    assert pair.verdict == "inconclusive" and not pair.significant and pair.p_decision == pytest.approx(0.0625)
    json.dumps(json_safe(analyse(results)), allow_nan=False)


@pytest.mark.parametrize("xa, xb", [([], []), ([0.9], [0.8])])
def test_too_few_pairs_have_no_statistics(xa, xb):
    r = paired_test("a", "b", xa, xb)
    assert r.n == len(xa) and r.t is None and r.p_t is None and r.p_wilcoxon is None and r.effect_dz is None


def test_seeds_for_power_matches_the_standard_table():
    assert seeds_for_power(0.5, 0.05) == 34  # two-sided paired t, α 0.05, 80% power (Cohen; G*Power gives 34)
    assert seeds_for_power(1.0, 0.05) == 10
    assert seeds_for_power(1.0, 0.05 / 6) > 10  # a Holm-corrected α needs more
    assert seeds_for_power(0.0, 0.05) is None and seeds_for_power(0.01, 0.05) is None  # more than 1000


def test_rank_tests_need_enough_seeds_to_pass_holms_first_step():
    assert rank_test_min_seeds(1) == 6  # 2/2^6 = 0.031 < 0.05; 2/2^5 = 0.0625 is not
    assert rank_test_min_seeds(6) == 8  # 4 activations: α/6 = 0.0083; 2/2^8 = 0.0078


def test_holm_hand_computed_example_untested_left_out():
    adjusted = holm([0.01, 0.04, 0.005, None, 0.03])
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06 (monotone)
    assert adjusted == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.02), None, pytest.approx(0.06)]
    assert holm([]) == [] and holm([None]) == [None]


# ---------------------------------------------------------------- synthetic results

def run(label: str, seed: int, accs: list[float | None], status: str = "ok", seconds: float = 1.0) -> ModelRun:
    epochs = [{"epoch": e, "train_loss": 0.1 / e, "train_acc": a, "val_loss": None, "val_acc": None,
               "test_loss": None if a is None else 1 - a, "test_acc": a, "seconds": seconds / len(accs)}
              for e, a in enumerate(accs, 1)]
    return ModelRun(label, activation=label, output="logits", seed=seed, epochs=epochs, status=status,
                    train_seconds=seconds)


def make_results(runs: list[ModelRun]) -> Results:
    return Results(Path("unused"), {}, {}, runs)


def results_from(finals: dict[str, list[float]]) -> Results:
    """One two-epoch run per activation and seed, ending at the given final accuracies."""
    return make_results([run(label, s, [0.5, acc]) for label, accs in finals.items() for s, acc in enumerate(accs)])


def verdicts(results: Results, metric: str = "final_test_acc") -> dict[tuple[str, str], str]:
    return {(t.a, t.b): t.verdict for t in compare(results, metric, margin=0.005)}


def assert_groups_contradict_no_pair(groups: dict[str, str], tests: list[PairedTest]) -> None:
    for t in tests:
        share = bool(set(groups[t.a]) & set(groups[t.b]))
        assert share == (t.verdict not in ("a_better", "b_better")), (t.a, t.b, t.verdict, groups)


def test_the_non_transitive_case_gives_letters_that_contradict_no_pair():
    rng = np.random.default_rng(1)
    a = 0.980 + rng.normal(0, 0.0005, 10)
    c = a - 0.012 + rng.normal(0, 0.0005, 10)  # a clearly above c
    d = a - 0.006 + rng.normal(0, 0.012, 10)  # in between, and noisy: neither a nor c is surely apart from it
    results = results_from({"a": list(a), "c": list(c), "d": list(d)})
    tests = compare(results, "final_test_acc", margin=0.005)
    assert verdicts(results) == {("a", "c"): "a_better", ("a", "d"): "inconclusive", ("c", "d"): "inconclusive"}
    groups = letter_groups(["a", "d", "c"], tests)
    assert groups == {"a": "a", "d": "ab", "c": "b"}
    assert_groups_contradict_no_pair(groups, tests)


def test_letter_groups_follow_every_verdict_in_harder_patterns():
    def pair(a, b, verdict):
        return PairedTest(a, b, 5, 0.0, *[None] * 10, verdict=verdict)
    order = ["p", "q", "r", "s", "t"]
    better = {("p", "r"), ("p", "s"), ("q", "s"), ("p", "t"), ("r", "t")}
    tests = [pair(a, b, "a_better" if (a, b) in better else "inconclusive")
             for i, a in enumerate(order) for b in order[i + 1:]]
    groups = letter_groups(order, tests)
    assert_groups_contradict_no_pair(groups, tests)
    assert groups["p"] == "a"


def test_one_seed_is_not_tested_anywhere():
    results = results_from({"a": [0.98], "b": [0.95], "c": [0.97]})
    out = analyse(results)
    acc = out["metrics"]["final_test_acc"]
    assert {p["verdict"] for p in acc["pairwise"]} == {"not_tested"}
    assert all(p["p_t"] is None and p["seeds_needed"] is None for p in acc["pairwise"])
    assert acc["groups"] is None


def test_two_activations_a_tenth_of_a_point_apart_with_small_variance_are_equivalent():
    rng = np.random.default_rng(0)
    a = 0.975 + rng.normal(0, 0.002, 10)
    results = results_from({"a": list(a), "b": list(a - 0.001 + rng.normal(0, 0.0005, 10))})
    (pair,) = compare(results, "final_test_acc", margin=0.005)
    assert pair.verdict == "equivalent" and pair.p_tost_holm < ALPHA
    assert -0.005 < pair.tost_ci_low < pair.tost_ci_high < 0.005
    # a real but small difference: detectable, and still inside the margin
    assert pair.significant
    (wide,) = compare(results, "final_test_acc", margin=0.0005)
    assert wide.verdict == "a_better"


def test_inconclusive_pairs_say_how_many_seeds_a_paired_test_would_need():
    rng = np.random.default_rng(2)
    a = 0.975 + rng.normal(0, 0.003, 5)
    results = results_from({"a": list(a), "b": list(a - 0.004 + rng.normal(0, 0.006, 5)), "c": list(a - 0.02)})
    tests = {(t.a, t.b): t for t in compare(results, "final_test_acc", margin=0.005)}
    ab = tests["a", "b"]
    assert ab.verdict == "inconclusive"
    assert ab.seeds_needed == seeds_for_power(ab.effect_dz, ALPHA / 3) and ab.seeds_needed > 5


def test_a_failed_run_changes_the_primary_mean_and_the_failure_rate():
    rng = np.random.default_rng(3)
    base = list(0.97 + rng.normal(0, 0.002, 6))
    runs = [run("a", s, [0.9, x]) for s, x in enumerate(base)] + [run("b", s, [0.9, x - 0.002])
                                                                    for s, x in enumerate(base)]
    runs[-1] = run("b", 5, [0.101, 0.105], status="failed_to_learn")
    out = analyse(make_results(runs))
    acc = out["metrics"]["final_test_acc"]
    b_all, b_finished = acc["summary"]["b"], acc["as_finished"]["b"]
    assert b_all["n"] == 6 and b_finished["n"] == 5
    assert b_all["mean"] == pytest.approx(np.mean([x - 0.002 for x in base[:5]] + [0.105]))
    assert b_finished["mean"] == pytest.approx(np.mean([x - 0.002 for x in base[:5]]))
    failures = out["runs"]["b"]
    ci = sps.binomtest(1, 6).proportion_ci(0.95, "exact")
    assert failures["failures"] == 1 and failures["failure_rate"] == pytest.approx(1 / 6)
    assert failures["failure_ci"] == [pytest.approx(ci.low), pytest.approx(ci.high)]
    assert out["runs"]["a"]["failure_ci"][0] == 0.0 and out["runs"]["a"]["failures"] == 0
    assert {p["n"] for p in acc["pairwise"]} == {6}  # the failed run is in the pair, at the accuracy it reached


def test_a_diverged_run_counts_at_chance_for_its_final_model_and_keeps_its_checkpoint():
    diverged = run("a", 0, [0.8, None], status="diverged@epoch 2")
    assert metric_value(diverged, "final_test_acc") == 0.1
    diverged.best_test_acc = 0.79
    assert metric_value(diverged, "best_val_test_acc") == 0.79
    assert metric_value(diverged, "final_test_loss") is None and metric_value(diverged, "epochs_to_final") is None
    assert metric_value(run("a", 0, [0.5, 0.7], status="interrupted@epoch 3"), "final_test_acc") == 0.7
    assert not run("a", 0, [0.5], status="interrupted@epoch 2").counts and diverged.counts


def test_metric_value_on_hand_made_epochs():
    r = run("a", 0, [0.50, 0.90, 0.97, 0.985, 0.98], seconds=7.5)
    r.best_test_acc = 0.975
    assert metric_value(r, "final_test_acc") == 0.98 and metric_value(r, "peak_test_acc") == 0.985
    assert metric_value(r, "best_val_test_acc") == 0.975 and metric_value(r, "final_test_loss") == pytest.approx(0.02)
    assert metric_value(r, "epochs_to_final") == 4.0  # 0.98 − 0.005 = 0.975: epoch 4 is the first to reach it
    assert metric_value(r, "train_seconds") == 7.5
    with pytest.raises(KeyError):
        metric_value(r, "no_such_metric")


def test_still_improving_means_the_best_epoch_is_the_last():
    assert still_improving(run("a", 0, [0.5, 0.7, 0.9]))
    assert not still_improving(run("a", 0, [0.5, 0.9, 0.9]))  # reached its best before the end
    assert not still_improving(run("a", 0, [0.9]))
    assert not still_improving(run("a", 0, [0.5, 0.9], status="interrupted@epoch 3"))


def test_paired_values_in_seed_order():
    runs = [run("a", s, [0.9 + s / 100]) for s in (3, 1, 2)] + [run("b", s, [0.8 + s / 100]) for s in (2, 3, 1, 4)]
    xa, xb = paired_values(make_results(runs), "final_test_acc", "a", "b")
    assert xa == pytest.approx([0.91, 0.92, 0.93]) and xb == pytest.approx([0.81, 0.82, 0.83])


def test_analyse_holds_every_metric_and_is_standard_json():
    rng = np.random.default_rng(4)
    results = results_from({"a": list(0.98 + rng.normal(0, 0.001, 6)), "b": list(0.95 + rng.normal(0, 0.001, 6))})
    for method in ("t", "bootstrap"):
        out = analyse(results, method=method, margin_points=0.25)
        json.loads(json.dumps(json_safe(out), allow_nan=False))
        assert out["equivalence_margin_points"] == 0.25 and out["ci_method"] == method
        assert set(out["metrics"]) == set(METRICS) - {"best_val_test_acc"}
        acc = out["metrics"]["final_test_acc"]
        assert acc["order"] == ["a", "b"] and acc["groups"] == {"a": "a", "b": "b"}
        assert acc["pairwise"][0]["verdict"] == "a_better"
        assert out["metrics"]["final_test_loss"]["pairwise"][0]["p_tost"] is None  # equivalence: accuracies only
    assert analyse(results, method="bootstrap")["warnings"] == ["bootstrap_small_n"]
    assert analyse(results)["warnings"] == []


def test_tost_has_no_answer_without_spread():
    assert tost(np.array([0.001, 0.001, 0.001]), 0.005) is None


def test_without_a_validation_split_a_diverged_run_does_not_make_a_checkpoint_metric():
    runs = [run(label, s, [0.5, 0.97 + 0.001 * s]) for label in ("relu", "tanh") for s in range(5)]
    runs[5] = run("tanh", 0, [0.5, None], status="diverged@epoch 2")
    out = analyse(make_results(runs))
    assert "best_val_test_acc" not in out["metrics"]  # no run tested a best-validation checkpoint
    assert out["metrics"]["final_test_acc"]["summary"]["tanh"]["n"] == 5  # the diverged run, at chance


@pytest.mark.parametrize("seeds, verdict", [(3, "inconclusive"), (4, "inconclusive"), (5, "equivalent")])
def test_identical_results_are_equivalent_only_by_an_exact_test(seeds, verdict):
    """No spread: the TOST statistic is undefined, so equivalence rests on the exact one-sided sign
    tests, p = ½ⁿ, never on a made-up p = 0 ("p < 0.001" from three seeds)."""
    finals = [0.97, 0.975, 0.98, 0.972, 0.978][:seeds]
    (pair,) = compare(results_from({"a": finals, "b": finals}), "final_test_acc", margin=0.005)
    assert pair.verdict == verdict and pair.t is None and pair.tost_by == "sign"
    assert pair.p_tost == pytest.approx(0.5 ** seeds)


def test_untested_pairs_are_in_no_holm_family():
    finals = {"a": [0.98, 0.981, 0.979, 0.982], "b": [0.95, 0.951, 0.949, 0.952], "c": [0.96]}
    tests = {(t.a, t.b): t for t in compare(results_from(finals), "final_test_acc", margin=0.005)}
    assert tests["a", "c"].verdict == "not_tested" and tests["a", "c"].p_sign_flip is None
    assert tests["a", "b"].p_sign_flip_holm == pytest.approx(tests["a", "b"].p_sign_flip)  # one tested pair


@pytest.mark.parametrize("n", [1, 2, 3, 6, 10, 57])
def test_the_exact_failure_interval_is_scipys_binomtest_interval(n):
    for k in range(n + 1):
        ci = sps.binomtest(k, n).proportion_ci(0.95, "exact")
        low, high = clopper_pearson(k, n)
        assert (low, high) == (pytest.approx(ci.low, rel=1e-9, abs=1e-12), pytest.approx(ci.high, rel=1e-9, abs=1e-12))


def test_the_analysis_of_a_one_seed_run_does_not_import_scipy_stats(tmp_path):
    """scipy.stats takes about a second to import; one seed allows no test or interval that needs it."""
    import subprocess
    import sys

    script = """
import sys
from actlab.results import ModelRun, Results
from actlab.stats import analyse
runs = []
for label, final in (("relu", 0.97), ("tanh", 0.975)):
    run = ModelRun(label, label, "logits", 0)
    run.epochs = [{"epoch": 1, "train_loss": 0.3, "train_acc": 0.9, "val_loss": None, "val_acc": None,
                   "test_loss": 0.2, "test_acc": final, "seconds": 1.0}]
    run.status = "ok"
    runs.append(run)
out = analyse(Results(".", {}, {}, runs))
assert out["runs"]["relu"]["failure_ci"] == [0.0, 0.975], out["runs"]["relu"]
print("scipy.stats" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- second review (issue 29)

def test_holm_counts_a_tested_pair_whose_p_is_undefined_as_p_one():
    """Dropping an undefined p from the family would shrink it and loosen the others' correction."""
    assert holm([0.01, None, 0.04], family=[True, True, True]) == [pytest.approx(0.03), None, pytest.approx(0.08)]
    assert holm([0.01, None, 0.04]) == [pytest.approx(0.02), None, pytest.approx(0.04)]  # no family: as before


@pytest.mark.parametrize("t, n", [(30.0, 3), (-30.0, 3), (300.0, 3), (80.0, 4), (2.1, 5)])
def test_the_dz_interval_is_exact_where_scipys_noncentral_t_returns_nan_in_a_tail(t, n):
    """With |t| ≈ 30 and 3 seeds the old code fell back to a normal approximation (0.80–80.53 where
    the exact interval is narrower); each end must put the observed t at the 97.5% / 2.5% point."""
    low, high = dz_interval(t, n)
    assert sps.nct.cdf(t, n - 1, low * math.sqrt(n)) == pytest.approx(0.975, abs=1e-6)
    assert sps.nct.cdf(t, n - 1, high * math.sqrt(n)) == pytest.approx(0.025, abs=1e-6)


def random_results(rng: np.random.Generator, labels: int, seeds: int) -> Results:
    base = rng.normal(0.97, 0.004, labels)
    return results_from({f"act{i}": list(np.clip(base[i] + rng.normal(0, rng.uniform(0.0005, 0.004), seeds), 0, 1))
                         for i in range(labels)})


def test_every_inconclusive_pair_has_a_simultaneous_interval_that_includes_zero():
    """The intervals beside Holm-corrected p-values are simultaneous (Bonferroni, 1 − α/m): Holm's
    p ≥ α implies the Bonferroni p ≥ α, so an inconclusive pair's interval always reaches 0, while
    the unadjusted 95% interval often does not."""
    rng, unadjusted_excludes = np.random.default_rng(7), 0
    for _ in range(60):
        tests = compare(random_results(rng, 4, 3), "final_test_acc", margin=0.005)
        for t in tests:
            if t.verdict == "inconclusive" and t.sd_diff:
                assert t.diff_ci_adj_low <= 0 <= t.diff_ci_adj_high, t
                assert t.adj_confidence == pytest.approx(1 - ALPHA / 6)
                unadjusted_excludes += not (t.diff_ci_low <= 0 <= t.diff_ci_high)
    assert unadjusted_excludes > 0  # the case the review found: this test would fail on the old intervals


def test_seeds_needed_carries_the_range_that_dz_s_interval_allows():
    results = results_from({"a": [0.980, 0.975, 0.982, 0.978, 0.979], "b": [0.976, 0.979, 0.970, 0.975, 0.981]})
    (pair,) = compare(results, "final_test_acc", margin=0.005)
    assert pair.verdict == "inconclusive" and pair.seeds_needed is not None
    low, high = pair.seeds_needed_range
    assert low <= pair.seeds_needed and high is None  # d_z's interval reaches 0: no upper bound
    assert low == seeds_for_power(max(abs(pair.dz_ci_low), abs(pair.dz_ci_high)), ALPHA)


def test_activations_that_failed_in_every_run_are_not_ranked_nor_compared_with_each_other():
    runs = [run("relu", s, [0.9, 0.97 + 0.001 * s]) for s in range(4)]
    runs += [run(label, s, [0.1, 0.1135], status="failed_to_learn") for label in ("sigmoid", "tanh") for s in range(4)]
    out = analyse(make_results(runs))
    m = out["metrics"]["final_test_acc"]
    assert m["order"] == ["relu"] and m["never_learned"] == ["sigmoid", "tanh"]
    pairs = {(t["a"], t["b"]): t for t in m["pairwise"]}
    assert pairs["sigmoid", "tanh"]["verdict"] == "both_failed" and pairs["sigmoid", "tanh"]["seeds_needed"] is None
    assert pairs["relu", "sigmoid"]["verdict"] == "a_better"
    assert out["tested_pairs"] == 2  # the pair of two failures is in no Holm family
    assert pairs["relu", "sigmoid"]["p_decision_holm"] == pytest.approx(min(1, 2 * pairs["relu", "sigmoid"]["p_t"]))


def test_the_order_uses_the_seeds_every_activation_has_when_seed_sets_differ():
    """b's extra seed 3 is a lucky one; on the three shared seeds a is ahead in every one."""
    runs = [run("a", s, [0.5, acc]) for s, acc in enumerate([0.970, 0.971, 0.972])]
    runs += [run("b", s, [0.5, acc]) for s, acc in enumerate([0.968, 0.969, 0.970, 0.999])]
    m = analyse(make_results(runs))["metrics"]["final_test_acc"]
    assert m["summary"]["b"]["mean"] > m["summary"]["a"]["mean"]  # own means would put b first
    assert m["order"] == ["a", "b"] and m["order_basis"]["seeds"] == [0, 1, 2]


def test_a_run_that_had_not_learned_yet_can_still_be_improving():
    assert still_improving(run("sigmoid", 0, [0.10, 0.11, 0.15], status="failed_to_learn"))
    assert not still_improving(run("sigmoid", 0, [0.10, 0.15, None], status="diverged@epoch 3"))
