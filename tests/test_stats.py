"""Summaries, paired tests, Holm correction and ranking against SciPy as the oracle.

No training here: `Results` are built by hand from `ModelRun` records whose answer is known.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from actlab.results import ModelRun, Results, json_safe
from actlab.stats import (ALPHA, METRICS, PairedTest, analyse, compare, holm, metric_value, paired_test, paired_values,
                          ranking, summarize)

ACCS = [0.97, 0.975, 0.98, 0.972, 0.978]


# ---------------------------------------------------------------- summarize


def test_summarize_t_interval_matches_scipy():
    s = summarize(ACCS)
    x = np.array(ACCS)
    assert s.n == 5
    assert s.mean == pytest.approx(x.mean(), abs=1e-15)
    assert s.std == pytest.approx(x.std(ddof=1), rel=1e-12)
    low, high = sps.t.interval(0.95, 4, loc=x.mean(), scale=sps.sem(x))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
    assert (s.min, s.max) == (0.97, 0.98)


def test_summarize_confidence_level_is_used():
    x = np.array(ACCS)
    s = summarize(ACCS, confidence=0.99)
    low, high = sps.t.interval(0.99, 4, loc=x.mean(), scale=sps.sem(x))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
    assert s.ci_high - s.ci_low > summarize(ACCS).ci_high - summarize(ACCS).ci_low


def test_summarize_one_value_has_no_interval():
    s = summarize([0.97])
    assert (s.n, s.mean, s.min, s.max) == (1, 0.97, 0.97, 0.97)
    assert math.isnan(s.std) and math.isnan(s.ci_low) and math.isnan(s.ci_high)


def test_summarize_no_values_is_all_nan():
    s = summarize([])
    assert s.n == 0
    assert all(math.isnan(v) for v in (s.mean, s.std, s.ci_low, s.ci_high, s.min, s.max))


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_summarize_constant_values_give_zero_width_interval(method):
    s = summarize([0.9] * 4, method=method)
    assert s.std == 0
    assert s.ci_low == s.ci_high == s.mean == pytest.approx(0.9)


def test_summarize_bootstrap_contains_mean_and_is_reproducible():
    values = np.random.default_rng(0).normal(0.97, 0.01, 20).tolist()
    boot = summarize(values, method="bootstrap", seed=3)
    again = summarize(values, method="bootstrap", seed=3)
    assert (boot.ci_low, boot.ci_high) == (again.ci_low, again.ci_high)
    assert boot.ci_low < boot.mean < boot.ci_high
    assert boot.min <= boot.ci_low and boot.ci_high <= boot.max
    # roughly comparable to the t interval on the same data
    t = summarize(values)
    assert 0.5 < (boot.ci_high - boot.ci_low) / (t.ci_high - t.ci_low) < 1.5
    assert abs((boot.ci_low + boot.ci_high) / 2 - t.mean) < (t.ci_high - t.ci_low) / 2
    # mean and std do not depend on the interval's method
    assert (boot.mean, boot.std) == (t.mean, t.std)


def test_summarize_bootstrap_on_small_sample_contains_mean():
    boot = summarize(ACCS, method="bootstrap", seed=0)
    assert boot.ci_low < boot.mean < boot.ci_high


# ---------------------------------------------------------------- paired_test

XA = [0.981, 0.978, 0.983, 0.979, 0.985, 0.980]
XB = [0.975, 0.977, 0.976, 0.974, 0.979, 0.978]


def test_paired_test_matches_scipy():
    r = paired_test("a", "b", XA, XB)
    d = np.array(XA) - np.array(XB)
    ref = sps.ttest_rel(XA, XB)
    assert (r.a, r.b, r.n) == ("a", "b", 6)
    assert r.mean_diff == pytest.approx(d.mean(), rel=1e-12)
    assert r.t == pytest.approx(ref.statistic, rel=1e-10)
    assert r.p_t == pytest.approx(ref.pvalue, rel=1e-10)
    assert r.p_wilcoxon == pytest.approx(sps.wilcoxon(XA, XB).pvalue, rel=1e-12)
    assert r.effect_dz == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)
    low, high = sps.t.interval(0.95, 5, loc=d.mean(), scale=sps.sem(d))
    assert (r.diff_ci_low, r.diff_ci_high) == (pytest.approx(low, rel=1e-10), pytest.approx(high, rel=1e-10))
    # the difference interval is the one-sample t interval, same thing as summarize() of d
    s = summarize(d.tolist())
    assert (r.diff_ci_low, r.diff_ci_high) == (pytest.approx(s.ci_low), pytest.approx(s.ci_high))
    # not yet corrected: compare() fills these in
    assert math.isnan(r.p_t_holm) and math.isnan(r.p_wilcoxon_holm) and r.significant is False


def test_paired_test_is_antisymmetric():
    ab, ba = paired_test("a", "b", XA, XB), paired_test("b", "a", XB, XA)
    assert ba.mean_diff == pytest.approx(-ab.mean_diff)
    assert ba.t == pytest.approx(-ab.t)
    assert ba.effect_dz == pytest.approx(-ab.effect_dz)
    assert ba.p_t == pytest.approx(ab.p_t)
    assert ba.p_wilcoxon == pytest.approx(ab.p_wilcoxon)
    assert (ba.diff_ci_low, ba.diff_ci_high) == (pytest.approx(-ab.diff_ci_high), pytest.approx(-ab.diff_ci_low))


def test_paired_test_identical_inputs():
    r = paired_test("a", "b", XA, list(XA))
    assert r.mean_diff == 0
    assert r.t == 0 and r.p_t == 1.0 and r.p_wilcoxon == 1.0
    assert r.effect_dz == 0
    assert r.diff_ci_low == r.diff_ci_high == 0


def test_paired_test_constant_nonzero_difference():
    xb = [x - 0.25 for x in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]  # exact in binary: d == 0.25 everywhere
    r = paired_test("a", "b", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], xb)
    assert r.mean_diff == 0.25
    assert r.p_t == 0.0
    assert r.t == math.inf and r.effect_dz == math.inf
    assert r.diff_ci_low == r.diff_ci_high == 0.25
    assert 0 < r.p_wilcoxon < 0.05
    neg = paired_test("b", "a", xb, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert neg.t == -math.inf and neg.effect_dz == -math.inf and neg.p_t == 0.0


@pytest.mark.parametrize("xa, xb", [([], []), ([0.9], [0.8])])
def test_paired_test_too_few_pairs_is_nan(xa, xb):
    r = paired_test("a", "b", xa, xb)
    assert r.n == len(xa)
    assert all(math.isnan(v) for v in (r.diff_ci_low, r.diff_ci_high, r.t, r.p_t, r.p_wilcoxon, r.effect_dz))


# ---------------------------------------------------------------- holm


def test_holm_hand_computed_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06 (monotone)
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


def test_holm_caps_at_one_and_is_monotone():
    p = [0.2, 0.6, 0.3, 0.01, 0.9]
    adjusted = holm(p)
    assert all(0 <= a <= 1 for a in adjusted)
    assert adjusted[1] == adjusted[4] == 1.0
    assert all(a >= q for a, q in zip(adjusted, p))
    ranked = [adjusted[i] for i in np.argsort(p)]
    assert ranked == sorted(ranked)


def test_holm_single_and_empty():
    assert holm([0.03]) == [0.03]
    assert holm([]) == []


def test_holm_nan_is_not_a_comparison():
    # An untested pair (NaN) keeps NaN and does not count in m: 0.01·2 and max(0.02·1, 0.02).
    adjusted = holm([0.01, math.nan, 0.02])
    assert math.isnan(adjusted[1])
    assert adjusted[0] == pytest.approx(0.02)
    assert adjusted[2] == pytest.approx(0.02)
    assert all(math.isnan(a) for a in holm([math.nan, math.nan]))


# ---------------------------------------------------------------- synthetic Results

NOISE = [0.0010, -0.0020, 0.0015, -0.0005, 0.0020, -0.0012]
B_OFFSET = [-0.0011, 0.0009, 0.0004, -0.0013, 0.0012, -0.0003]  # b − a: mean ≈ 0, no signal
C_NOISE = [0.0008, -0.0006, 0.0012, -0.0010, 0.0003, -0.0004]
SEEDS = list(range(6))


def run(label: str, seed: int, accs: list[float | None], status: str = "ok", seconds: float = 1.0) -> ModelRun:
    epochs = [{"epoch": e, "train_loss": 0.1 / e, "train_acc": a, "val_loss": None, "val_acc": None,
               "test_loss": None if a is None else 1 - a, "test_acc": a, "seconds": seconds / len(accs)}
              for e, a in enumerate(accs, 1)]
    return ModelRun(label, activation=label, output="logits", seed=seed, epochs=epochs, status=status,
                    train_seconds=seconds)


def make_results(runs: list[ModelRun]) -> Results:
    return Results(Path("unused"), {}, {}, runs)


def abc_runs() -> list[ModelRun]:
    runs = []
    for s in SEEDS:
        a = 0.98 + NOISE[s]
        runs += [run("a", s, [0.9, a]), run("b", s, [0.9, a + B_OFFSET[s]]), run("c", s, [0.9, 0.95 + C_NOISE[s]])]
    return runs


@pytest.fixture
def abc() -> Results:
    return make_results(abc_runs())


@pytest.fixture
def with_diverged() -> Results:
    """abc, but c's seed 5 diverged in epoch 2 (a poor epoch-1 accuracy that must not leak in)."""
    runs = [r for r in abc_runs() if not (r.label == "c" and r.seed == 5)]
    runs.append(run("c", 5, [0.10, None], status="diverged@epoch 2"))
    runs[-1].epochs[-1]["train_loss"] = math.nan
    return make_results(runs)


def test_metric_value_on_hand_made_epochs():
    r = run("a", 0, [0.50, 0.90, 0.97, 0.985, 0.98], seconds=7.5)
    r.best_test_acc = 0.975
    assert metric_value(r, "final_test_acc") == 0.98
    assert metric_value(r, "peak_test_acc") == 0.985
    assert metric_value(r, "best_val_test_acc") == 0.975
    assert metric_value(r, "final_test_loss") == pytest.approx(0.02)
    # 0.99 · 0.98 = 0.9702: epoch 3 (0.97) is short, epoch 4 is the first to reach it
    assert metric_value(r, "epochs_to_99pct") == 4.0
    assert metric_value(r, "train_seconds") == 7.5
    with pytest.raises(KeyError):
        metric_value(r, "no_such_metric")


def test_metric_value_epochs_to_99pct_first_epoch_and_missing_rows():
    assert metric_value(run("a", 0, [0.95, 0.94, 0.95]), "epochs_to_99pct") == 1.0
    # an unevaluated trailing row (a divergence) is skipped: the last *evaluated* accuracy is the target
    r = run("a", 0, [0.5, 0.8, None])
    assert metric_value(r, "epochs_to_99pct") == 2.0
    assert metric_value(r, "peak_test_acc") == 0.8
    assert metric_value(r, "final_test_acc") == 0.8


def test_metric_value_without_evaluations_is_none():
    r = ModelRun("a", "a", "logits", 0)
    for metric in ("final_test_acc", "peak_test_acc", "best_val_test_acc", "final_test_loss", "epochs_to_99pct"):
        assert metric_value(r, metric) is None


def test_compare_tiers_and_significance(abc):
    tests = compare(abc, "final_test_acc")
    assert [(t.a, t.b) for t in tests] == [("a", "b"), ("a", "c"), ("b", "c")]
    by_pair = {(t.a, t.b): t for t in tests}
    assert not by_pair["a", "b"].significant
    assert by_pair["a", "c"].significant and by_pair["b", "c"].significant
    assert by_pair["a", "c"].mean_diff == pytest.approx(0.03, abs=0.002)
    # Holm over the three pairs, for t and Wilcoxon separately
    assert [t.p_t_holm for t in tests] == pytest.approx(holm([t.p_t for t in tests]))
    assert [t.p_wilcoxon_holm for t in tests] == pytest.approx(holm([t.p_wilcoxon for t in tests]))
    assert all(t.significant == (t.p_t_holm < ALPHA) for t in tests)
    # each pair is the paired test of the per-seed values
    xa, xc = paired_values(abc, "final_test_acc", "a", "c")
    ref = sps.ttest_rel(xa, xc)
    assert by_pair["a", "c"].p_t == pytest.approx(ref.pvalue, rel=1e-10)

    summaries = {label: summarize([metric_value(r, "final_test_acc") for r in abc.by_label(label)])
                 for label in abc.labels}
    tiers = ranking(summaries, tests, higher_is_better=True)
    assert len(tiers) == 2
    assert set(tiers[0]) == {"a", "b"} and tiers[1] == ["c"]


def test_ranking_lower_is_better_reverses_order(abc):
    tests = compare(abc, "final_test_loss")
    summaries = {label: summarize([metric_value(r, "final_test_loss") for r in abc.by_label(label)])
                 for label in abc.labels}
    tiers = ranking(summaries, tests, higher_is_better=False)
    assert len(tiers) == 2 and set(tiers[0]) == {"a", "b"} and tiers[1] == ["c"]


def test_ranking_hand_made():
    s = {k: summarize(v) for k, v in {"x": [3.0, 3.1], "y": [2.0, 2.1], "z": [1.0, 1.1], "w": []}.items()}

    def t(a, b, sig):
        return PairedTest(a, b, 2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, significant=sig)

    # x ~ y (tied), y ~ z but x ≠ z: z starts a new tier, because a tier is judged against its leader
    tests = [t("x", "y", False), t("x", "z", True), t("y", "z", False)]
    assert ranking(s, tests, True) == [["x", "y"], ["z"]]
    assert ranking(s, tests, False) == [["z", "y"], ["x"]]
    # a NaN mean (no values) is left out; everything significant → one tier each
    assert ranking(s, [t("x", "y", True), t("x", "z", True), t("y", "z", True)], True) == [["x"], ["y"], ["z"]]


def test_diverged_run_excluded_from_pairs(with_diverged):
    xa, xc = paired_values(with_diverged, "final_test_acc", "a", "c")
    assert len(xa) == len(xc) == 5
    assert 0.10 not in xc
    xa_all, xb_all = paired_values(with_diverged, "final_test_acc", "a", "b")
    assert len(xa_all) == len(xb_all) == 6
    by_pair = {(t.a, t.b): t for t in compare(with_diverged, "final_test_acc")}
    assert by_pair["a", "c"].n == by_pair["b", "c"].n == 5 and by_pair["a", "b"].n == 6
    # the pair over seeds 0..4 only
    ref = sps.ttest_rel([0.98 + NOISE[s] for s in range(5)], [0.95 + C_NOISE[s] for s in range(5)])
    assert by_pair["a", "c"].p_t == pytest.approx(ref.pvalue, rel=1e-10)


def test_paired_values_in_seed_order():
    runs = [run("a", s, [0.9 + s / 100]) for s in (3, 1, 2)] + [run("b", s, [0.8 + s / 100]) for s in (2, 3, 1, 4)]
    xa, xb = paired_values(make_results(runs), "final_test_acc", "a", "b")
    assert xa == pytest.approx([0.91, 0.92, 0.93]) and xb == pytest.approx([0.81, 0.82, 0.83])


def test_analyse(with_diverged):
    out = analyse(with_diverged)
    assert out["runs"] == {"a": {"runs": 6, "ok": 6, "failed_to_learn": 0}, "b": {"runs": 6, "ok": 6, "failed_to_learn": 0},
                           "c": {"runs": 6, "ok": 5, "failed_to_learn": 0}}
    assert out["seeds"] == SEEDS
    assert out["alpha"] == ALPHA and out["confidence"] == 0.95 and out["ci_method"] == "t"
    # no validation split → no best-validation metric; the others are all there
    assert set(out["metrics"]) == set(METRICS) - {"best_val_test_acc"}
    acc = out["metrics"]["final_test_acc"]
    assert acc["higher_is_better"] is True
    assert out["metrics"]["final_test_loss"]["higher_is_better"] is False
    c = acc["summary"]["c"]
    c_values = [0.95 + C_NOISE[s] for s in range(5)]
    assert c["n"] == 5
    assert c["mean"] == pytest.approx(np.mean(c_values))
    assert c["min"] > 0.9  # the diverged run's 0.10 is not in
    ref = summarize(c_values)
    assert (c["ci_low"], c["ci_high"]) == (pytest.approx(ref.ci_low), pytest.approx(ref.ci_high))
    assert acc["summary"]["a"]["n"] == 6
    assert len(acc["tiers"]) == 2 and set(acc["tiers"][0]) == {"a", "b"} and acc["tiers"][1] == ["c"]
    sig = {(p["a"], p["b"]): p["significant"] for p in acc["pairwise"]}
    assert sig == {("a", "b"): False, ("a", "c"): True, ("b", "c"): True}
    assert {p["n"] for p in acc["pairwise"] if "c" in (p["a"], p["b"])} == {5}
    # train_seconds is the same for every run: no significant difference, one tier
    secs = out["metrics"]["train_seconds"]
    assert len(secs["tiers"]) == 1 and sorted(secs["tiers"][0]) == ["a", "b", "c"]
    assert set(out["curves"]) == {"test_acc", "test_loss", "train_loss", "val_acc"}
    assert out["curves"]["val_acc"] == {"a": [], "b": [], "c": []}
    assert [row["epoch"] for row in out["curves"]["test_acc"]["a"]] == [1, 2]
    assert out["curves"]["test_acc"]["a"][1]["mean"] == pytest.approx(acc["summary"]["a"]["mean"])


def test_analyse_is_json_serialisable(with_diverged):
    for method in ("t", "bootstrap"):
        out = analyse(with_diverged, method=method)
        text = json.dumps(json_safe(out), allow_nan=False)
        assert json.loads(text)["ci_method"] == method


def test_analyse_with_a_label_that_never_finished():
    runs = abc_runs() + [run("d", s, [0.1, None], status="diverged@epoch 2") for s in SEEDS]
    out = analyse(make_results(runs))
    assert out["runs"]["d"] == {"runs": 6, "ok": 0, "failed_to_learn": 0}
    acc = out["metrics"]["final_test_acc"]
    assert acc["summary"]["d"]["n"] == 0 and math.isnan(acc["summary"]["d"]["mean"])
    assert all(p["n"] == 0 and not p["significant"] for p in acc["pairwise"] if "d" in (p["a"], p["b"]))
    assert "d" not in {label for tier in acc["tiers"] for label in tier}
    json.dumps(json_safe(out), allow_nan=False)
