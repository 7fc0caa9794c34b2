"""Training on small real subsets: learning happens, runs are reproducible, failures are recorded."""

from __future__ import annotations

import math

import pytest
import torch

from actlab.config import resolve_config
from actlab.results import ModelRun
from actlab.device_data import prepare_data, resolve_device
from actlab.train import build_model, evaluate, train_group, train_model
from actlab.losses import loss_fn
from actlab.optimizers import FlatOptimizer


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


def test_global_normalisation_uses_the_training_split_only(mnist):
    full = prepare_data(mnist, resolve_config(overrides={"normalize": "global", "device": "cpu"}, env={}), 0,
                        torch.device("cpu"))
    mean, std = full.normalization
    assert float(mean) == pytest.approx(0.1307, abs=1e-4) and float(std) == pytest.approx(0.3081, abs=1e-4)
    assert float(full.x_train.mean()) == pytest.approx(0.0, abs=1e-4)
    config = resolve_config(overrides={"normalize": "global", "val_split": 10000, "device": "cpu"}, env={})
    split = prepare_data(mnist, config, 0, torch.device("cpu"))
    raw = prepare_data(mnist, resolve_config(overrides={"val_split": 10000, "device": "cpu"}, env={}), 0,
                       torch.device("cpu"))
    mean, std = split.normalization
    assert float(mean) == pytest.approx(float(raw.x_train.double().mean()), abs=1e-6)  # training split...
    assert float(mean) != pytest.approx(float(raw.x_val.double().mean()), abs=1e-4)  # ...not validation
    assert torch.allclose(split.x_test, (raw.x_test - mean) / std)  # test uses the training statistics


def test_per_pixel_and_symmetric_normalisation(mnist):
    config = resolve_config(overrides={"normalize": "per_pixel", "train_subset": 5000, "device": "cpu"}, env={})
    data = prepare_data(mnist, config, 0, torch.device("cpu"))
    mean, std = data.normalization
    assert mean.shape == (784,) and std[0] == 1.0  # the corner pixel is always 0: its std becomes 1
    assert torch.allclose(data.x_train.mean(0), torch.zeros(784), atol=1e-5)
    symmetric = prepare_data(mnist, resolve_config(overrides={"normalize": "symmetric", "device": "cpu"}, env={}), 0,
                             torch.device("cpu"))
    assert float(symmetric.x_train.min()) == -1.0 and float(symmetric.x_train.max()) == 1.0


def test_early_stopping_stops_after_patience_epochs_without_improvement(mnist):
    # lr so small the validation accuracy never changes: epoch 1 is best, 2 and 3 do not improve
    record, *_ = train(small_config(optimizer="sgd", lr=1e-9, epochs=10, val_split=500, patience=2), mnist)
    assert record.status == "failed_to_learn"  # it also never learned: still at chance
    assert record.stopped_epoch == 3 and len(record.epochs) == 3
    assert record.best_epoch == 1 and record.best_test_acc == record.epochs[0]["test_acc"]


def test_drop_last_averages_over_the_examples_seen(mnist):
    record, *_ = train(small_config(epochs=1, drop_last=True, batch_size=64), mnist)  # 3000 = 46·64 + 56
    seen = 46 * 64
    assert round(record.epochs[0]["train_acc"] * seen, 6) == int(round(record.epochs[0]["train_acc"] * seen))


def test_optimisers_and_schedules_follow_the_config():
    from actlab.optimizers import FlatOptimizer, learning_rate

    flat = torch.nn.Parameter(torch.zeros(3))
    rms = FlatOptimizer(flat, resolve_config(overrides={"optimizer": "rmsprop", "momentum": 0.5, "lr": 0.01,
                                                        "weight_decay": 1e-4}, env={}).optim)
    assert (rms.kind, rms.momentum, rms.weight_decay, rms.lr) == ("rmsprop", 0.5, 1e-4, 0.01)
    adamw = FlatOptimizer(flat, resolve_config(overrides={"optimizer": "adamw"}, env={}).optim)
    assert adamw.weight_decay == 0.0  # what the config says, not torch's 0.01
    o = resolve_config(overrides={"optimizer": "sgd", "lr": 1.0, "schedule": "step", "step_size": 2, "gamma": 0.5},
                       env={}).optim
    assert [learning_rate(o, epoch) for epoch in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    o = resolve_config(overrides={"optimizer": "sgd", "lr": 1.0, "schedule": "cosine", "epochs": 4}, env={}).optim
    assert learning_rate(o, 2) == pytest.approx(0.5) and learning_rate(o, 4) == pytest.approx(0.0, abs=1e-12)


def test_the_schedule_sets_each_epochs_learning_rate(mnist):
    config = small_config(epochs=3, optimizer="sgd", lr=0.2, schedule="step", step_size=1, gamma=0.5)
    seen = []
    original = FlatOptimizer.step

    def step(self):
        seen.append(self.lr)
        original(self)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FlatOptimizer, "step", step)
        train(config, mnist)
    per_epoch = len(seen) // 3
    assert sorted(set(seen), reverse=True) == [0.2, 0.1, 0.05]
    assert seen[:per_epoch] == [0.2] * per_epoch and seen[-per_epoch:] == [0.05] * per_epoch


def test_learnable_activations_train_and_report_their_values(mnist):
    config = small_config(activations=["prelu:per_unit", "swish_beta"], hidden=[32, 16], epochs=2)
    for activation, param in (("prelu:per_unit", "param_weight"), ("swish_beta", "param_beta")):
        record, model, _, _ = train(config, mnist, activation)
        rows = {(r["stage"], r["layer"], r["metric"]): r["value"] for r in record.diagnostics}
        start, end = rows[("init", "hidden1", param)], rows[("epoch_2", "hidden1", param)]
        assert start == pytest.approx(0.25 if activation.startswith("prelu") else 1.0)
        assert end != start  # the parameter learned
        if activation == "prelu:per_unit":
            assert model[1].weight.shape == (32,) and ("epoch_2", "hidden1", "param_weight_std") in rows


def test_failed_to_learn_is_marked(mnist):
    record, *_ = train(small_config(optimizer="sgd", lr=1e-9, epochs=1), mnist)
    assert record.status == "failed_to_learn" and record.final_test_acc < 0.2


# --- a group of models trains as each would alone -----------------------------------------------

def group_config(**overrides):
    flat = {"train_subset": 2000, "test_subset": 1000, "hidden": [48, 32], "epochs": 2, "device": "cpu",
            "activations": ["relu", "tanh", "sigmoid"], "batch_size": 50, "val_split": 500, **overrides}
    return resolve_config(overrides=flat, env={})


def alone_and_together(mnist, config, seeds=(0, 1)):
    """Records and models of every variant × seed, trained one by one and as one group."""
    data = {s: prepare_data(mnist, config, s, CPU) for s in seeds}
    alone, together, alone_models = [], [], []
    for s in seeds:
        for label, act, out, _ in config.variants:
            record = ModelRun(label, act, out, s)
            alone_models.append(train_model(record, data[s], config, CPU))
            alone.append(record)
            together.append(ModelRun(label, act, out, s))
    return alone, together, alone_models, train_group(together, data, config, CPU)


def assert_same_metrics(alone, stacked, rel=2e-4, acc=2e-3):
    for a, b in zip(alone, stacked):
        assert (a.label, a.seed, a.status, a.stopped_epoch) == (b.label, b.seed, b.status, b.stopped_epoch)
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


CPU = torch.device("cpu")


@pytest.mark.parametrize("optimizer", [{"optimizer": "adam", "lr": 1e-3},
                                       {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}])
def test_a_group_trains_each_model_as_it_would_train_alone(mnist, optimizer):
    alone, together, _, models = alone_and_together(mnist, group_config(**optimizer))
    assert_same_metrics(alone, together)
    assert len(models) == 6 and all(isinstance(m, torch.nn.Sequential) for m, _ in models)
    for a, b in zip(alone, together):  # diagnostics agree too: same weights at init, close ones after
        da = {(r["stage"], r["layer"], r["metric"]): r["value"] for r in a.diagnostics}
        db = {(r["stage"], r["layer"], r["metric"]): r["value"] for r in b.diagnostics}
        assert da.keys() == db.keys()
        for key in da:
            if key[0] == "init":
                assert db[key] == pytest.approx(da[key], rel=1e-5, abs=1e-7), key


def test_recipes_in_a_stack_dropout_early_stopping_schedule_per_layer_learnable_init(mnist):
    config = group_config(activations=["relu+tanh", "prelu:per_unit", "selu", "swish_beta"], dropout=0.1,
                          init={"selu": "lecun_normal"}, patience=1, schedule="cosine", epochs=5, lr=3e-3)
    alone, together, alone_models, models = alone_and_together(mnist, config)
    assert_same_metrics(alone, together)
    stopped = [r for r in together if r.stopped_epoch < 5]
    assert stopped and len(stopped) < len(together)  # some left the stack early, the others went on
    for (model_a, best_a), (model_b, best_b) in zip(alone_models, models):
        for (name, pa), pb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
            torch.testing.assert_close(pb, pa, rtol=2e-3, atol=2e-4, msg=name)  # the weights it stopped with
        assert (best_a is None) == (best_b is None)


def test_output_heads_train_in_a_group_by_autograd(mnist):
    config = group_config(hidden=[], activations=["none"], output=["log_softmax", "softmax", "tanh"],
                          init="lecun_normal", optimizer="sgd", lr=0.5, val_split=0)
    alone, together, _, _ = alone_and_together(mnist, config, seeds=(3,))
    assert_same_metrics(alone, together)


def test_a_diverging_model_leaves_the_group_and_does_not_disturb_the_others(mnist):
    # lr 50 kills relu in epoch 1; sigmoid survives it (near chance, a chaotic regime where rounding
    # differences grow, so only finiteness and status are compared, not its accuracy)
    config = group_config(optimizer="sgd", lr=50.0, activations=["relu", "sigmoid"], epochs=2, val_split=0)
    alone, together, _, models = alone_and_together(mnist, config, seeds=(0,))
    assert [r.status for r in together] == [r.status for r in alone] == ["diverged@epoch 1", "failed_to_learn"]
    sigmoid = together[1]
    assert len(sigmoid.epochs) == 2 and all(math.isfinite(row["train_loss"]) for row in sigmoid.epochs)
    assert all(torch.isfinite(p).all() for p in models[1][0].parameters())


def test_bf16_is_refused_where_the_cpu_would_only_emulate_it(monkeypatch, tmp_path, data_dir, capsys):
    from actlab.cli import main
    from actlab.device_data import check_precision
    from conftest import quick_flags

    monkeypatch.setattr("actlab.device_data.cpu_flags", lambda: {"avx2", "fma"})
    with pytest.raises(Exception, match="no native bfloat16"):
        check_precision("bf16", CPU)
    check_precision("fp32", CPU)  # fp32 runs anywhere
    assert main(["run", *quick_flags(data_dir, tmp_path / "run", precision="bf16")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "precision = bf16: this CPU has no native bfloat16" in err[0]
    monkeypatch.setattr("actlab.device_data.cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    check_precision("bf16", CPU)  # a CPU that computes bf16 natively takes it


@pytest.mark.parametrize("stacked", [False, True])
def test_the_training_accuracy_and_loss_count_every_example_once(mnist, stacked):
    """With a step too small to move any weight (lr 1e-30 rounds away), an epoch's training accuracy
    and loss are those of the initial network on the whole training split: every batch, the last
    short one (3000 = 46 × 64 + 56) included, is counted once, for each model of a stack."""
    config = small_config(epochs=1, optimizer="sgd", lr=1e-30, activations=["relu", "tanh"])
    data = prepare_data(mnist, config, 0, torch.device("cpu"))
    records = [ModelRun(a, a, "logits", 0) for a in ("relu", "tanh")]
    initial = [build_model(r, config, data.x_train.shape[1], torch.device("cpu")) for r in records]
    groups = [records] if stacked else [[r] for r in records]
    for group in groups:
        train_group(group, {0: data}, config, torch.device("cpu"))
    for record, model in zip(records, initial):
        loss, acc = evaluate(model, data.x_train, data.y_train, loss_fn("logits"), 1000)
        assert record.epochs[0]["train_acc"] == acc
        assert record.epochs[0]["train_loss"] == pytest.approx(loss, rel=1e-5)
