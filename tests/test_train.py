"""Training on small real subsets: learning happens, runs are reproducible, failures are recorded."""

from __future__ import annotations

import math

import pytest
import torch

from actlab.config import resolve_config
from actlab.results import ModelRun
from actlab.train import evaluate, prepare_data, resolve_device, train_model
from actlab.models import loss_fn


def small_config(**overrides):
    flat = {"train_subset": 3000, "test_subset": 2000, "hidden": [64], "epochs": 3, "device": "cpu",
            "activations": ["relu"], "batch_size": 64, **overrides}
    return resolve_config(overrides=flat, env={})


def train(config, mnist, activation="relu", seed=0, output="logits"):
    device = torch.device("cpu")
    data = prepare_data(mnist, config, seed, device)
    record = ModelRun(activation if output == "logits" else output, activation, output, seed)
    model, best = train_model(record, data, config, device)
    return record, model, best, data


def test_a_small_mlp_learns_mnist(mnist):
    record, *_ = train(small_config(), mnist)
    losses = [row["train_loss"] for row in record.epochs]
    assert record.status == "ok" and len(record.epochs) == 3
    assert losses[0] > losses[1] > losses[2]
    assert record.final_test_acc > 0.85  # 3 epochs on 3,000 images
    assert all(row["seconds"] > 0 for row in record.epochs)
    assert record.train_seconds == pytest.approx(sum(row["seconds"] for row in record.epochs))


def test_same_config_and_seed_give_identical_numbers(mnist):
    config = small_config(optimizer="sgd", lr=0.1, momentum=0.9, activations=["tanh"])
    first, *_ = train(config, mnist, "tanh", seed=5)
    second, *_ = train(config, mnist, "tanh", seed=5)
    other, *_ = train(config, mnist, "tanh", seed=6)
    strip = lambda r: [{k: v for k, v in row.items() if k != "seconds"} for row in r.epochs]  # noqa: E731
    assert strip(first) == strip(second)
    assert strip(first) != strip(other)


def test_activations_of_one_seed_share_data_and_initial_weights(mnist):
    config = small_config(epochs=1, val_split=500)
    a = prepare_data(mnist, config, 3, torch.device("cpu"))
    b = prepare_data(mnist, config, 3, torch.device("cpu"))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert len(a.y_train) == 3000 and len(a.y_val) == 500 and len(a.y_test) == 2000
    assert a.x_train.dtype == torch.float32 and 0 <= a.x_train.min() and a.x_train.max() <= 1


def test_validation_split_checkpoint_is_reloaded_and_tested(mnist):
    config = small_config(epochs=4, val_split=1000, optimizer="sgd", lr=0.5)
    record, model, best, data = train(config, mnist)
    val = [row["val_acc"] for row in record.epochs]
    assert record.best_epoch == 1 + val.index(max(val)) and record.best_val_acc == max(val)
    # The best-validation checkpoint's test accuracy is what that epoch measured.
    assert record.best_test_acc == record.epochs[record.best_epoch - 1]["test_acc"]
    model.load_state_dict(best)
    _, acc = evaluate(model, data.x_test, data.y_test, loss_fn("logits"), 512)
    assert acc == record.best_test_acc


def test_evaluation_batch_size_does_not_change_the_numbers(mnist):
    config = small_config(epochs=1)
    record, model, _, data = train(config, mnist)
    whole = evaluate(model, data.x_test, data.y_test, loss_fn("logits"), 10000)
    pieces = evaluate(model, data.x_test, data.y_test, loss_fn("logits"), 333)
    assert whole[1] == pieces[1] and whole[0] == pytest.approx(pieces[0], rel=1e-5)
    assert model.training  # evaluate restores train mode


def test_exploding_learning_rate_is_marked_diverged(mnist):
    config = small_config(lr=1e4, optimizer="sgd", epochs=3)
    record, *_ = train(config, mnist)
    assert record.status.startswith("diverged@epoch ")
    epoch = int(record.status.rsplit(" ", 1)[1])
    assert len(record.epochs) == epoch and math.isnan(record.epochs[-1]["train_loss"])
    assert all(math.isfinite(row["train_loss"]) for row in record.epochs[:-1])


def test_nll_heads_train_the_from_scratch_model(mnist):
    config = small_config(hidden=[], activations=["none"], output=["log_softmax"], init="lecun_normal",
                          optimizer="sgd", lr=0.5, epochs=2)
    record, model, _, _ = train(config, mnist, "none", output="log_softmax")
    assert record.final_test_acc > 0.8
    assert type(model[-1]).__name__ == "OutputActivation"


def test_auto_device_is_cpu_without_a_gpu():
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type == "cpu"
        from actlab.errors import ActlabError
        with pytest.raises(ActlabError, match="sees no CUDA GPU"):
            resolve_device("cuda")


def test_bf16_precision_is_an_opt_in_that_still_learns(mnist):
    fp32, *_ = train(small_config(epochs=2), mnist)
    bf16, *_ = train(small_config(epochs=2, precision="bf16"), mnist)
    assert bf16.status == "ok" and bf16.final_test_acc > 0.85
    assert bf16.epochs[0]["train_loss"] != fp32.epochs[0]["train_loss"]  # really ran in bfloat16
    assert abs(bf16.final_test_acc - fp32.final_test_acc) < 0.03
