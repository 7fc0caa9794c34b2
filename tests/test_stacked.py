"""Stacked training (many models in one pass) gives the numbers of training each model alone."""

from __future__ import annotations

import math

import pytest
import torch

from actlab.config import resolve_config
from actlab.results import ModelRun
from actlab.stacked import SeedGroup, models_per_chunk, stackable, train_stacked
from actlab.train import prepare_data, train_model
from actlab.activations import parse_activation
from actlab.models import build_mlp

CPU = torch.device("cpu")


def config_for(**overrides):
    flat = {"train_subset": 2000, "test_subset": 1000, "hidden": [48, 32], "epochs": 2, "device": "cpu",
            "activations": ["relu", "tanh", "sigmoid"], "batch_size": 50, "val_split": 500, **overrides}
    return resolve_config(overrides=flat, env={})


def alone_and_stacked(mnist, config, seeds=(0, 1)):
    data = {s: prepare_data(mnist, config, s, CPU) for s in seeds}
    alone, stacked = [], []
    for s in seeds:
        for label, act, out in config.variants:
            record = ModelRun(label, act, out, s)
            train_model(record, data[s], config, CPU)
            alone.append(record)
            stacked.append(ModelRun(label, act, out, s))
    models = train_stacked(stacked, data, config, CPU)
    return alone, stacked, models


def assert_same_metrics(alone, stacked, rel=2e-4, acc=2e-3):
    for a, b in zip(alone, stacked):
        assert (a.label, a.seed, a.status) == (b.label, b.seed, b.status)
        assert len(a.epochs) == len(b.epochs)
        for ra, rb in zip(a.epochs, b.epochs):
            for key in ("train_loss", "val_loss", "test_loss", "train_acc", "val_acc", "test_acc"):
                if ra[key] is None or rb[key] is None or math.isnan(ra[key]):
                    assert (ra[key] is None) == (rb[key] is None), (a.label, a.seed, key)
                elif key.endswith("loss"):
                    assert rb[key] == pytest.approx(ra[key], rel=rel), (a.label, a.seed, key)
                else:
                    assert abs(rb[key] - ra[key]) <= acc, (a.label, a.seed, key)
        assert a.best_epoch == b.best_epoch


@pytest.mark.parametrize("optimizer", [{"optimizer": "adam", "lr": 1e-3},
                                       {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}])
def test_stacked_training_equals_training_each_model_alone(mnist, optimizer):
    config = config_for(**optimizer)
    alone, stacked, models = alone_and_stacked(mnist, config)
    assert_same_metrics(alone, stacked)
    assert len(models) == 6 and all(isinstance(m, torch.nn.Sequential) for m, _ in models)
    # diagnostics agree as well (same weights at init, close ones after training)
    for a, b in zip(alone, stacked):
        da = {(r["stage"], r["layer"], r["metric"]): r["value"] for r in a.diagnostics}
        db = {(r["stage"], r["layer"], r["metric"]): r["value"] for r in b.diagnostics}
        assert da.keys() == db.keys()
        for key in da:
            if key[0] == "init":
                assert db[key] == pytest.approx(da[key], rel=1e-5, abs=1e-7), key


def test_stacked_linear_models_with_output_heads(mnist):
    config = config_for(hidden=[], activations=["none"], output=["log_softmax", "softmax", "tanh"],
                        init="lecun_normal", optimizer="sgd", lr=0.5, val_split=0)
    alone, stacked, _ = alone_and_stacked(mnist, config, seeds=(3,))
    assert_same_metrics(alone, stacked)


def test_a_diverging_model_does_not_disturb_the_others(mnist):
    # lr 50 kills relu in epoch 1; sigmoid survives it (near chance, a chaotic regime where rounding
    # differences grow, so only finiteness and status are compared, not its accuracy)
    config = config_for(optimizer="sgd", lr=50.0, activations=["relu", "sigmoid"], epochs=2, val_split=0)
    alone, stacked, models = alone_and_stacked(mnist, config, seeds=(0,))
    assert [r.status for r in stacked] == [r.status for r in alone] == ["diverged@epoch 1", "failed_to_learn"]
    sigmoid = stacked[1]
    assert len(sigmoid.epochs) == 2 and all(math.isfinite(row["train_loss"]) for row in sigmoid.epochs)
    assert all(torch.isfinite(p).all() for p in models[1][0].parameters())


def test_seed_group_copies_weights_in_and_out_exactly():
    torch.manual_seed(0)
    models = [build_mlp(784, [16, 8], parse_activation(a)) for a in ("relu", "tanh")]
    group = SeedGroup(models, [parse_activation(a).make() for a in ("relu", "tanh")], ["logits", "logits"])
    x = torch.rand(5, 784)
    out = group(x)
    for a, model in enumerate(models):
        assert torch.allclose(out[a], model(x), atol=1e-6)
        copy = group.copy_out(a, build_mlp(784, [16, 8], parse_activation("relu")))
        for p, q in zip(copy.parameters(), model.parameters()):
            assert torch.equal(p, q)


def test_which_activations_stack_and_chunking():
    config = config_for()
    assert stackable("relu", config) and stackable("leaky_relu:0.2", config) and stackable("none", config)
    assert stackable("expr:x*sigmoid(x)", config)
    assert not stackable("prelu", config) and not stackable("rrelu", config) and not stackable("relu+tanh", config)
    assert not stackable("relu", config_for(dropout=0.1))
    assert models_per_chunk(config, CPU, 70000) >= 1


def test_stacked_run_end_to_end(tmp_path, data_dir, capsys):
    from actlab.cli import main
    from conftest import quick_flags
    import csv, json

    out = tmp_path / "run"
    assert main(["run", *quick_flags(data_dir, out, stack="true", seeds="2", activations="relu,prelu,tanh")]) == 0
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["activation"], r["seed"], r["status"]) for r in rows] == [
        (a, s, "ok") for s in ("0", "1") for a in ("relu", "prelu", "tanh")]
    assert json.loads((out / "environment.json").read_text())["stacked"] is True
    assert all(not math.isnan(float(r["final_test_acc"])) for r in rows)
