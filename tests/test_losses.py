"""The losses (`--loss`): PyTorch is the oracle for each, a stack gives each model its own loss, and
a run compares losses like activations, paired by seed."""

from __future__ import annotations

import json

import pytest

import torch
from torch.nn import functional as F

import actlab
from actlab import resolve_config
from actlab.losses import LOSS_HEADS, LOSSES, loss_fn, model_losses
from actlab.models import OUTPUTS, OutputActivation


def test_squared_error_is_half_the_summed_squares_to_one_hot_targets():
    torch.manual_seed(0)
    out, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    expected = 0.5 * 10 * F.mse_loss(out, F.one_hot(y, 10).float())  # mse_loss averages over classes too
    torch.testing.assert_close(loss_fn("logits", "mse")(out, y), expected)
    probabilities = out.softmax(-1)
    torch.testing.assert_close(loss_fn("softmax", "mse")(probabilities, y),
                               0.5 * ((probabilities - F.one_hot(y, 10)) ** 2).sum(1).mean())


def test_hinge_is_torchs_multi_class_margin_loss_and_cross_entropy_is_unchanged():
    torch.manual_seed(1)
    out, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    manual = torch.clamp(1 - out.gather(1, y[:, None]) + out, min=0)
    manual[torch.arange(8), y] = 0
    torch.testing.assert_close(loss_fn("logits", "hinge")(out, y), manual.sum(1).mean() / 10)
    torch.testing.assert_close(loss_fn("logits")(out, y), F.cross_entropy(out, y))
    torch.testing.assert_close(loss_fn("log_softmax")(out.log_softmax(-1), y), F.cross_entropy(out, y))


def test_every_loss_takes_the_heads_it_lists():
    assert set(LOSS_HEADS) == set(LOSSES)
    assert all(set(heads) <= set(OUTPUTS) for heads in LOSS_HEADS.values())
    assert "log_softmax" not in LOSS_HEADS["mse"] and LOSS_HEADS["hinge"] == ("logits",)


def test_a_stack_computes_each_models_own_loss():
    torch.manual_seed(2)
    out, y = torch.randn(3, 16, 10), torch.randint(0, 10, (3, 16))
    heads = [None, OutputActivation("softmax"), None]
    losses = ["cross_entropy", "mse", "hinge"]
    got = model_losses(out, y, heads, losses)
    expected = [F.cross_entropy(out[0], y[0]), loss_fn("softmax", "mse")(out[1], y[1]),
                F.multi_margin_loss(out[2], y[2])]
    torch.testing.assert_close(got, torch.stack(expected))


def test_losses_are_compared_in_one_run_paired_by_seed(data_dir, tmp_path):
    folder = tmp_path / "run"
    config = resolve_config(overrides={"data_dir": str(data_dir), "out": str(folder), "activations": ["relu"],
                                       "loss": ["cross_entropy", "mse", "hinge"], "hidden": [32], "epochs": 1,
                                       "train_subset": 2000, "test_subset": 1000, "seeds": 3, "workers": 1}, env={})
    assert [v[0] for v in config.variants] == ["cross_entropy", "mse", "hinge"]
    results = actlab.run(config, show_progress=False, log=lambda line: None)
    assert {(r.label, r.loss) for r in results.runs} == {("cross_entropy", "cross_entropy"), ("mse", "mse"),
                                                         ("hinge", "hinge")}
    assert all(r.final_test_acc > 0.6 for r in results.runs)
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["tested_pairs"] == 3 and len(stats["metrics"]["final_test_acc"]["pairwise"]) == 3
    report = (folder / "report.md").read_text()
    assert "cross_entropy, mse, hinge" in report  # the Setup names the losses compared
    doc = json.loads((folder / "results.json").read_text())
    assert [run.get("loss") for run in doc["runs"][:3]] == [None, "mse", "hinge"]  # cross-entropy: left out
    reloaded = actlab.load(folder)
    assert {r.loss for r in reloaded.runs} == {"cross_entropy", "mse", "hinge"}


def test_a_run_crossing_activations_with_losses_tests_whether_the_gain_differs(tmp_path):
    """The course question, on synthetic results with a known answer: cross-entropy gains 1.4 points
    over squared error for sigmoid and 0.5 for relu, the same in every seed but for small noise."""
    from actlab.report import build_report
    from test_report import synthetic

    noise = [0.0, 0.0012, -0.0009, 0.0004, -0.0006]
    accs = {"sigmoid/cross_entropy": [0.944 + n for n in noise], "sigmoid/mse": [0.930 + n / 2 for n in noise],
            "relu/cross_entropy": [0.975 + n for n in noise], "relu/mse": [0.970 + 2 * n / 3 for n in noise]}
    results = synthetic(tmp_path / "run", accs, config={"name": "crossed", "dataset": "mnist", "hidden": [128],
                                                        "loss": ["cross_entropy", "mse"]})
    for run in results.runs:
        run.activation, run.loss = run.label.split("/")
    md = build_report(results)[0].read_text()
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())["loss_interaction"]
    assert stats["gains"]["mse"]["sigmoid"]["mean"] == pytest.approx(0.014, abs=1e-3)
    assert stats["gains"]["mse"]["relu"]["ahead"] == 5
    (difference,) = stats["differences"]
    assert difference["significant"] and difference["mean"] == pytest.approx(0.009, abs=1e-3)
    assert "## Loss × activation" in md and "differs significantly between `sigmoid` and `relu`" in md
    same = synthetic(tmp_path / "same", {k: [v + n for n in noise] for k, v in
                                         {"sigmoid/cross_entropy": 0.944, "sigmoid/mse": 0.930,
                                          "relu/cross_entropy": 0.974, "relu/mse": 0.960}.items()})
    for run in same.runs:
        run.activation, run.loss = run.label.split("/")
    assert "no difference between activations in that gain is shown" in build_report(same)[0].read_text()
