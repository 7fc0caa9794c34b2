"""The cnn family: LeNet-5's shape and size, each model's own numbers inside a ConvStack, the config's
refusals, and a real run whose diagnostics and report show the conv layers."""

from __future__ import annotations

import copy
import csv

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import actlab
from actlab import resolve_config
from actlab.activations import parse_layers
from actlab.convnets import ConvStack, build_cnn, conv_sizes
from actlab.diagnostics import measure
from actlab.errors import ActlabError
from actlab.families import FAMILIES
from actlab.losses import loss_fn
from actlab.optimizers import FlatOptimizer

NO_AUTOCAST = torch.autocast("cpu", enabled=False)


def lenet(activation: str = "relu", **kwargs) -> nn.Sequential:
    options = dict(conv=(6, 16), kernel=5, pool="max", hidden=(120, 84))
    options.update(kwargs)
    return build_cnn(options.pop("conv"), options.pop("kernel"), options.pop("pool"), options.pop("hidden"),
                     parse_layers(activation), **options)


def test_lenet5_has_its_published_size_and_the_family_counts_it():
    model = lenet()
    assert sum(p.numel() for p in model.parameters()) == 61_706  # LeNet-5 on 28×28 MNIST with a padded first conv
    config = resolve_config(overrides={"model": "cnn", "hidden": [120, 84]}, env={})
    assert FAMILIES["cnn"].parameters(config) == 61_706
    assert model(torch.rand(3, 784)).shape == (3, 10)
    assert conv_sizes((6, 16), 5) == [14, 5]


def test_the_network_computes_what_a_plain_torch_lenet_computes():
    torch.manual_seed(0)
    model = lenet("tanh", pool="avg")
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    dense = [m for m in model if isinstance(m, nn.Linear)]
    x = torch.rand(5, 784)
    h = F.avg_pool2d(torch.tanh(F.conv2d(x.view(5, 1, 28, 28), convs[0].weight, convs[0].bias, padding=2)), 2)
    h = F.avg_pool2d(torch.tanh(F.conv2d(h, convs[1].weight, convs[1].bias)), 2).flatten(1)
    h = torch.tanh(F.linear(h, dense[0].weight, dense[0].bias))
    h = torch.tanh(F.linear(h, dense[1].weight, dense[1].bias))
    torch.testing.assert_close(model(x), F.linear(h, dense[2].weight, dense[2].bias))


def test_learnable_activations_get_one_parameter_per_channel():
    model = lenet("prelu:per_unit")
    widths = [m.weight.numel() for m in model if isinstance(m, nn.PReLU)]
    assert widths == [6, 16, 120, 84]
    swish = lenet("swish_beta:per_unit", conv=(3, 4), hidden=(5,))
    assert swish(torch.rand(2, 784)).shape == (2, 10)


SPECS = [(a, s) for s in (0, 1) for a in ("relu", "tanh", "prelu:per_unit", "selu")]


def _models(output="logits", batch_norm=True, dropout=0.2):
    def make(activation, seed):
        torch.manual_seed(seed)
        head = output if activation != "tanh" else "logits"  # heads may differ within a stack
        return lenet(activation, conv=(4, 8), hidden=(32,), output=head, dropout=dropout, batch_norm=batch_norm)
    return [make(a, s) for a, s in SPECS]


@pytest.mark.parametrize("output", ["logits", "softmax"])
def test_one_step_of_a_stack_gives_each_model_the_outputs_and_gradients_it_gets_alone(output):
    losses = ["cross_entropy", "mse"] * 4
    models = _models(output)
    alone = [copy.deepcopy(m) for m in models]
    torch.manual_seed(1)
    x = {0: torch.rand(16, 784), 1: torch.rand(16, 784)}
    y = {0: torch.randint(0, 10, (16,)), 1: torch.randint(0, 10, (16,))}
    stack = ConvStack(models, [s for _, s in SPECS], [torch.Generator().manual_seed(s) for _, s in SPECS], losses)
    labels = torch.cat([y[s].expand(e - b, -1) for s, b, e in stack.blocks])
    out, loss = stack.step(NO_AUTOCAST)([x[0], x[1]], labels, stack.dropout_noise(16))
    for m, (activation, seed) in enumerate(SPECS):
        one = ConvStack([alone[m]], [seed], [torch.Generator().manual_seed(seed)], [losses[m]])
        out1, loss1 = one.step(NO_AUTOCAST)([x[seed]], y[seed], one.dropout_noise(16))
        torch.testing.assert_close(out1, out[m], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(loss1[0], loss[m], rtol=1e-4, atol=1e-6)
        scale = float(one.flat.grad.abs().max())  # float32 sums in another order: relative to the largest
        torch.testing.assert_close(one.flat.grad, stack.flat.grad[stack.positions([m])], rtol=1e-4, atol=1e-5 * scale)
        for (i, name), buffer in stack.buffers.items():  # batch norm's running statistics, per model
            torch.testing.assert_close(getattr(models[m][i], name), getattr(alone[m][i], name))


def test_stacked_models_follow_the_optimizer_and_keep_their_weights_when_released():
    models = _models()
    stack = ConvStack(models, [s for _, s in SPECS], [torch.Generator().manual_seed(s) for _, s in SPECS])
    optimizer = FlatOptimizer(stack.flat, resolve_config(env={}).optim)
    stack.flat.grad.normal_()
    before = models[3][1].weight.detach().clone()
    optimizer.step()
    assert not torch.equal(models[3][1].weight, before)  # a view into the stack's tensor
    kept = stack.keep([1, 3], optimizer)
    released = stack.release(0)
    snapshot = released[1].weight.detach().clone()
    kept.flat.grad.normal_()
    optimizer.step()
    assert torch.equal(released[1].weight, snapshot)
    assert torch.equal(kept.models[1][1].weight, models[3][1].weight)


@pytest.mark.parametrize("overrides, words", [
    ({"model": "cnn", "conv": [6, 16, 32, 64]}, "conv layer 3 leaves no image"),
    ({"loss": "crossentropy"}, "did you mean 'cross_entropy'"),
    ({"loss": "mse", "output": "log_softmax"}, "loss = 'mse' does not fit output = 'log_softmax'"),
    ({"loss": "hinge", "output": "softmax"}, "hinge takes logits"),
    ({"conv": [6, 16]}, "conv = [6, 16] (--conv) applies to the cnn family only"),
    ({"model": "cnn", "activations": ["relu+tanh"], "hidden": [120]}, "give one activation per conv and dense layer"),
])
def test_bad_cnn_and_loss_settings_are_one_line_naming_the_fix(overrides, words):
    with pytest.raises(ActlabError) as err:
        resolve_config(overrides=overrides, env={})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_dead_filter_is_dead_on_every_position_of_every_image():
    torch.manual_seed(0)
    model = lenet("relu", conv=(4, 8), hidden=(16,))
    with torch.no_grad():
        model[1].bias[2] = -1e3  # conv1's third channel: negative everywhere, so zero after ReLU
    x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    rows = {(layer, metric): value for layer, metric, value in measure(model, x, y, loss_fn("logits"))}
    assert rows["conv1", "dead_fraction"] == pytest.approx(1 / 4)
    assert {"conv1", "conv2", "hidden1"} <= {layer for layer, metric in rows if metric == "act_std"}
    assert {"conv1", "conv2", "linear1", "linear2"} == {layer for layer, metric in rows if metric == "grad_norm"}
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), [model[1].weight])
    assert rows["conv1", "grad_norm"] == pytest.approx(float(grads[0].norm()), rel=1e-5)


def test_a_cnn_run_writes_conv_diagnostics_and_the_report_shows_them(data_dir, tmp_path):
    config = resolve_config(overrides={"data_dir": str(data_dir), "out": str(tmp_path / "run"), "model": "cnn",
                                       "activations": ["relu", "tanh"], "epochs": 1, "train_subset": 2000,
                                       "test_subset": 1000, "workers": 1, "conv": [4, 8], "hidden": [32],
                                       "lr": 0.003}, env={})
    results = actlab.run(config, show_progress=False, log=lambda line: None)
    assert all(r.status.ok and r.final_test_acc > 0.5 for r in results.runs), results.runs
    with open(tmp_path / "run" / "diagnostics.csv", newline="") as f:
        layers = {(row["activation"], row["layer"], row["metric"]) for row in csv.DictReader(f)}
    assert ("relu", "conv2", "dead_fraction") in layers and ("tanh", "conv1", "grad_norm") in layers
    report = (tmp_path / "run" / "report.md").read_text()
    assert "conv layer 1" in report and "convolutional network" in report
    assert 'model = "cnn"' in (tmp_path / "run" / "config.toml").read_text()


def test_a_final_batch_of_one_with_batch_norm_duplicates_and_a_mixed_family_sweep_are_handled():
    with pytest.raises(ActlabError, match="last batch of each epoch would hold 1"):
        resolve_config(overrides={"model": "cnn", "batch_norm": True, "train_subset": 1025, "batch_size": 64}, env={})
    assert resolve_config(overrides={"model": "cnn", "batch_norm": True, "train_subset": 1025, "batch_size": 64,
                                     "drop_last": True}, env={}).optim.drop_last
    with pytest.raises(ActlabError, match="lists a loss twice"):
        resolve_config(overrides={"loss": ["mse", "mse"]}, env={})
    from actlab.sweep import expand
    config = resolve_config(overrides={"model": "cnn", "conv": [4, 8]}, env={})
    runs = expand(config, {"model": ["cnn", "mlp"]})
    assert [r.flat.get("model", "mlp") for r in runs] == ["cnn", "mlp"] and "conv" not in runs[1].flat


def test_depth_and_width_hypotheses_say_why_a_cnn_cannot_test_them_yet():
    from actlab.hypotheses import RunFacts, applicable
    facts = RunFacts({"sigmoid": "sigmoid", "none": "none"}, {"model": "cnn", "hidden": [84]})
    found = applicable(facts, ("vanishing_gradient", "capacity"))
    assert {name: found[name] for name in found} == {"vanishing_gradient": ([], "cause.untestable.cnn"),
                                                     "capacity": ([], "cause.untestable.cnn")}
