"""The possible causes: each verdict mapping on synthetic results whose answer is known, contrasts
read from the run's own models and from intervention models, and the report's section."""

from __future__ import annotations

import numpy as np
import pytest

from actlab.causes import causes, contrast_test, verdict_of
from actlab.hypotheses import Arm, Contrast, Side
from actlab.messages import Words
from actlab.render import to_markdown
from actlab.report import build_report
from actlab.stats import analyse
from test_report import synthetic as report_synthetic


def synthetic(run_dir, accs, epochs: int = 3):
    """`test_report.synthetic`, every label an activation of the hidden layers (never an output head)."""
    results = report_synthetic(run_dir, accs, epochs=epochs)
    for run in results.runs:
        run.activation, run.output = run.label, "logits"
    return results


@pytest.mark.parametrize("prediction, significant, mean, equivalent, verdict", [
    (1, True, 0.01, False, "supported"), (1, True, -0.01, False, "contradicted"),
    (1, False, 0.001, True, "no_effect"), (1, True, 0.002, True, "no_effect"),  # detectable, yet inside the margin
    (1, False, 0.004, False, "inconclusive"),
    (0, False, 0.0, True, "supported"), (0, True, 0.02, False, "contradicted"), (0, False, 0.01, False, "inconclusive"),
])
def test_each_verdict_maps_from_the_contrasts_statistics(prediction, significant, mean, equivalent, verdict):
    assert verdict_of(prediction, significant, mean, equivalent) == verdict


NOISE = [0.0, 0.0012, -0.0009, 0.0004, -0.0006]


def with_interventions(results, setting: str, accs: dict[str, list[float]], overrides=()):
    """Intervention models of `setting`, made like `synthetic`'s: the arms --explain would train."""
    extra = synthetic(results.run_dir / f"arm{len(setting)}", accs)
    settings = (results.interventions or {}).get("settings", {})
    settings[setting] = {"overrides": dict(overrides), "runs": [r.to_json() for r in extra.runs]}
    results.interventions = {"hypotheses": ["dead_units", "zero_centred", "vanishing_gradient"], "settings": settings,
                             "cost": {"models": 0, "train_seconds": 0.0}}
    return results


def classic(tmp_path, relu_gap: float = 0.0):
    accs = {"relu": [0.975 + n for n in NOISE], "sigmoid": [0.95 + 2 * n for n in NOISE],
            "tanh": [0.972 - n for n in NOISE], "leaky_relu:0.01": [0.975 + relu_gap + n / 2 for n in NOISE]}
    return synthetic(tmp_path / "run", accs, epochs=3)


def by_name(entries):
    return {e["name"]: e for e in entries}


def test_dead_units_reuses_the_runs_own_twin_and_reads_no_effect_when_they_are_equivalent(tmp_path):
    results = classic(tmp_path)
    entry = by_name(causes(results, analyse(results)))["dead_units"]
    (row,) = entry["contrasts"]
    assert row["missing"] == [] and row["test"]["n"] == 5  # leaky_relu:0.01 ran: no model to train
    assert row["verdict"] == "no_effect" and abs(row["test"]["mean_diff"]) < 0.005


def test_dead_units_is_supported_when_the_twin_is_clearly_better(tmp_path):
    results = classic(tmp_path, relu_gap=0.02)
    (row,) = by_name(causes(results, analyse(results)))["dead_units"]["contrasts"]
    assert row["verdict"] == "supported" and row["test"]["mean_diff"] == pytest.approx(0.02, abs=1e-3)
    assert row["ci_low"] > 0 and row["p_holm"] < 0.05


def test_contrasts_whose_models_are_missing_are_not_run_and_name_the_command(tmp_path):
    results = classic(tmp_path)
    entries = by_name(causes(results, analyse(results)))
    assert {row["verdict"] for row in entries["vanishing_gradient"]["contrasts"]} == {"not_run"}
    md = build_report(results)[0].read_text()
    assert f"actlab explain {results.run_dir} --only vanishing_gradient" in md
    assert "## Possible causes" in md and "plots/causes.png" in md  # dead_units and fit_vs_generalise were tested


def test_the_depth_contrast_is_a_difference_of_differences_over_the_interventions(tmp_path):
    results = classic(tmp_path)
    deep = {"relu": [0.970 + n for n in NOISE], "sigmoid": [0.30 + n for n in NOISE], "tanh": [0.968 + n for n in NOISE]}
    with_interventions(results, "depth×3", deep, (("hidden", [128] * 3),))
    rows = by_name(causes(results, analyse(results)))["vanishing_gradient"]["contrasts"]
    sigmoid = next(r for r in rows if r["subject"] == "sigmoid")
    expected = np.mean((np.array(deep["relu"]) - deep["sigmoid"]) - (np.array([0.975 + n for n in NOISE]) -
                                                                      [0.95 + 2 * n for n in NOISE]))
    assert sigmoid["test"]["mean_diff"] == pytest.approx(expected) and sigmoid["verdict"] == "supported"
    assert sigmoid["treated"]["mean"] == pytest.approx(np.mean(np.array(deep["relu"]) - deep["sigmoid"]))
    md = build_report(results)[0].read_text()  # the gap against depth, as a figure of its own
    assert "plots/depth_gaps.png" in md and (results.run_dir / "plots" / "depth_gaps.png").is_file()


def test_the_centred_twin_comes_from_the_interventions_and_the_ladder_is_shown_beside(tmp_path):
    results = classic(tmp_path)
    with_interventions(results, "", {"expr:sigmoid(x) - 0.5": [0.951 + n for n in NOISE],
                                     "expr:4*(sigmoid(x) - 0.5)": [0.971 + n / 3 for n in NOISE]})
    rows = by_name(causes(results, analyse(results)))["zero_centred"]["contrasts"]
    test, slope, shape = rows
    assert (test["role"], slope["step"], shape["step"]) == ("test", "slope", "shape")
    assert test["verdict"] == "no_effect"  # +0.1 points with the same noise: centring alone does nothing here
    assert slope["verdict"] == "supported"
    md = build_report(results)[0].read_text()
    assert "only the centring differs" in md and "slope ×4" in md and "no effect within ±0.5 points" in md


def test_fit_vs_generalise_takes_only_pairs_whose_test_accuracy_differs(tmp_path):
    results = classic(tmp_path)
    stats = analyse(results)
    rows = by_name(causes(results, stats))["fit_vs_generalise"]["contrasts"]
    behind = {(t["b"] if t["verdict"] == "a_better" else t["a"], t["a"] if t["verdict"] == "a_better" else t["b"])
              for t in stats["metrics"]["final_test_acc"]["pairwise"] if t["verdict"] in ("a_better", "b_better")}
    assert rows and all(r["metric"] == "final_train_acc" for r in rows) and len(rows) == len(behind) < 6
    assert {(r["subject"], r["treated"]["plus"]["activation"]) for r in rows} == behind  # loser, winner
    assert all(r["verdict"] == "supported" for r in rows)  # synthetic training accuracy trails test by the same


def test_a_verdict_never_claims_more_than_this_setting(tmp_path):
    results = classic(tmp_path, relu_gap=0.02)
    md = build_report(results)[0].read_text()
    section = md.split("## Possible causes")[1].split("\n## ")[0]
    assert "in this setting" in section and "proves" not in section and "supported here" in section
    assert "not testable in this run" in section  # learning_rate: the run was not tuned


def test_the_chinese_section_is_headed_and_worded_in_chinese(tmp_path):
    results = classic(tmp_path, relu_gap=0.02)
    md = build_report(results, lang="zh")[0].read_text()
    assert "## 可能原因分析" in md and "死亡 ReLU" in md and "在本次设置下得到支持" in md


def test_a_contrast_with_fewer_than_three_shared_seeds_is_untestable(tmp_path):
    results = synthetic(tmp_path / "run", {"relu": [0.97, 0.971], "leaky_relu:0.01": [0.972, 0.973]})
    (row,) = by_name(causes(results, analyse(results)))["dead_units"]["contrasts"]
    assert row["verdict"] == "untestable" and row["why"] == "cause.untestable.few_seeds"
    c = Contrast("dead_units", "relu", Side(Arm("leaky_relu:0.01")), Side(Arm("relu")))
    assert contrast_test(results, c, 0.005)["seeds"] == [0, 1]
    assert "Fewer than 3 seeds" in to_markdown([]) + Words("en").plain("cause.untestable.few_seeds")


def test_bounded_heads_read_the_runs_own_heads_and_say_the_bound_is_not_what_holds_them_back(tmp_path):
    heads = {"log_softmax": [0.913 + n / 2 for n in NOISE], "softmax": [0.912 + n for n in NOISE],
             "sigmoid": [0.65 + 3 * n for n in NOISE], "tanh": [0.61 - 2 * n for n in NOISE]}
    results = report_synthetic(tmp_path / "run", heads, config={"name": "heads", "dataset": "mnist", "hidden": [],
                                                                 "output": list(heads)})
    entry = by_name(causes(results, analyse(results), ("bounded_output",)))["bounded_output"]
    test, to_sigmoid, to_tanh = entry["contrasts"]
    assert test["verdict"] == "no_effect" and test["test"]["n"] == 5  # log_softmax and softmax: within the margin
    assert (to_sigmoid["verdict"], to_tanh["verdict"]) == ("supported", "supported")  # normalising is what helps
    assert to_sigmoid["test"]["mean_diff"] == pytest.approx(0.262, abs=0.005)
    md = build_report(results)[0].read_text()
    assert "`sigmoid` 65.01%" in md and "softmax` minus `tanh`" in md and "being bounded did not cost accuracy" in md
