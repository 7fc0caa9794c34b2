"""The four reference experiments, run in full on the real data, land where the write-ups did.

These are the acceptance figures of docs/presets.md; each preset runs as `actlab run --preset`
would (CPU, seed 0), and CPU training is deterministic, so a drift here means the reproduction
changed. About 4 minutes in all on 2 cores.
"""

from __future__ import annotations

import collections
import re

import pytest

import actlab
from conftest import sentences

# wording that claims a cause; a report states what was measured alongside a result, not why, except in
# its "Possible causes" section, where each cause is a tested hypothesis with a verdict that says "here"
CAUSAL = re.compile(r"\b(because|causes?|caused|which reduces|due to|leads? to|explains?|explained)\b", re.I)


def outside_causes(markdown: str) -> str:
    """The report without its Possible causes section."""
    return re.sub(r"\n## Possible causes\n.*?(?=\n## |\Z)", "\n", markdown, flags=re.S)


def run_preset(name, data_dir, tmp_path, **overrides):
    """Run a preset as `actlab run --preset` would, and check its report claims no cause."""
    config = actlab.resolve_config(preset=name, overrides={"data_dir": str(data_dir), "out": str(tmp_path / name),
                                                           "device": "cpu", "checkpoints": False, **overrides})
    results = actlab.run(config, show_progress=False, log=lambda line: None)
    report = (results.run_dir / "report.md").read_text()
    assert not CAUSAL.findall(outside_causes(report)), CAUSAL.findall(outside_causes(report))
    repeated = {s: n for s, n in collections.Counter(sentences(report)).items() if n > 1}
    assert repeated == {}, repeated  # every sentence once (test_sections.py checks the same on synthetic runs)
    return results


def final_acc(results, label):
    (run,) = results.by_label(label)
    assert run.status == "ok"
    return run.final_test_acc


@pytest.mark.slow
def test_mnist_classic_four(data_dir, tmp_path):
    results = run_preset("mnist-classic-four", data_dir, tmp_path)
    for label in ("relu", "sigmoid", "tanh", "leaky_relu:0.01"):
        assert 0.970 <= final_acc(results, label) <= 0.986, label


@pytest.mark.slow
def test_fashion_relu_family(data_dir, tmp_path):
    results = run_preset("fashion-relu-family", data_dir, tmp_path)
    for label in ("relu", "leaky_relu:0.01", "elu", "selu"):
        assert 0.865 <= final_acc(results, label) <= 0.900, label


@pytest.mark.slow
def test_mnist_relu_vs_linear_best_validation_checkpoint(data_dir, tmp_path):
    results = run_preset("mnist-relu-vs-linear", data_dir, tmp_path)
    (relu,), (linear,) = results.by_label("relu"), results.by_label("none")
    assert 0.915 <= linear.best_test_acc <= 0.930
    assert relu.best_test_acc >= 0.977
    assert len(relu.epochs) == 50 and relu.epochs[0]["val_acc"] is not None


@pytest.mark.slow
def test_mnist_output_activation_on_the_full_test_set(data_dir, tmp_path):
    results = run_preset("mnist-output-activation", data_dir, tmp_path)
    log_softmax = final_acc(results, "log_softmax")
    assert 0.905 <= log_softmax <= 0.920
    assert abs(final_acc(results, "softmax") - log_softmax) <= 0.01
    for label in ("sigmoid", "tanh"):
        assert final_acc(results, label) < log_softmax - 0.15, label
    assert all(len(r.epochs) == 2 for r in results.runs)


@pytest.mark.slow
def test_mnist_selu_snn_seed_0(data_dir, tmp_path):
    """The SELU paper's MNIST MLP as the preset runs it (seed 0, about 80 s): both in their bands,
    SELU ahead at the preset's lr. docs/presets.md has seeds 0-2, measured by the command it names;
    one seed here keeps the suite inside CI's time."""
    results = run_preset("mnist-selu-snn", data_dir, tmp_path)
    (relu,), (selu,) = results.by_label("relu"), results.by_label("selu")
    assert relu.seed == selu.seed == 0 and relu.status == selu.status == "ok"
    assert 0.895 <= relu.best_test_acc <= 0.915, relu.best_test_acc
    assert 0.910 <= selu.best_test_acc <= 0.928, selu.best_test_acc
    assert selu.best_test_acc > relu.best_test_acc


@pytest.mark.slow
def test_mnist_loss_activation_seed_0(data_dir, tmp_path):
    """The course's loss comparison as the preset runs it (seed 0, about 30 s): four cells, each in
    its band, cross-entropy ahead of squared error and relu ahead of sigmoid, the losses named."""
    results = run_preset("mnist-loss-activation", data_dir, tmp_path)
    acc = {label: final_acc(results, label) for label in results.labels}
    assert set(acc) == {"sigmoid/cross_entropy", "sigmoid/mse", "relu/cross_entropy", "relu/mse"}
    assert 0.935 <= acc["sigmoid/cross_entropy"] <= 0.952 and 0.920 <= acc["sigmoid/mse"] <= 0.940, acc
    assert 0.968 <= acc["relu/cross_entropy"] <= 0.980 and 0.962 <= acc["relu/mse"] <= 0.976, acc
    assert acc["sigmoid/cross_entropy"] > acc["sigmoid/mse"] and acc["relu/mse"] > acc["sigmoid/cross_entropy"]
    assert {r.loss for r in results.runs} == {"cross_entropy", "mse"}


@pytest.mark.slow
def test_a_lenet_reaches_95_percent_on_20000_images_in_2_epochs(data_dir, tmp_path):
    """`actlab run --model cnn --activations relu,tanh --epochs 2 --train-subset 20000` (issue 31's
    acceptance): a plain PyTorch LeNet-5 with Adam reaches 96.2–97.0% there."""
    config = actlab.resolve_config(overrides={"data_dir": str(data_dir), "out": str(tmp_path / "cnn"), "model": "cnn",
                                              "activations": ["relu", "tanh"], "epochs": 2, "train_subset": 20000,
                                              "checkpoints": False})
    results = actlab.run(config, show_progress=False, log=lambda line: None)
    assert final_acc(results, "relu") >= 0.95 and final_acc(results, "tanh") >= 0.95
