"""The hand-written backward pass gives autograd's numbers, and steps aside where it does not apply."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from actlab.activations import parse_layers
from actlab.backprop import ACTIVATION_BACKWARD, backward_kernel, hand_backprop_applies, hand_step
from actlab.config import resolve_config
from actlab.models import ModelStack, build_mlp
from actlab.results import ModelRun
from actlab.device_data import prepare_data
from actlab.train import train_model

CPU = torch.device("cpu")


def config_for(**overrides):
    flat = {"train_subset": 1500, "test_subset": 500, "hidden": [40, 24], "epochs": 2, "device": "cpu",
            "activations": ["relu"], "batch_size": 64, "val_split": 300, "lr": 3e-3, **overrides}
    return resolve_config(overrides=flat, env={})


def train_both(mnist, activation, **overrides):
    """(record, model) trained by autograd and by the hand-written pass, same config and seed."""
    out = []
    for backprop in ("autograd", "auto"):
        config = config_for(activations=[activation], backprop=backprop, **overrides)
        data = prepare_data(mnist, config, 1, CPU)
        record = ModelRun(activation, activation, "logits", 1)
        model, _ = train_model(record, data, config, CPU)
        out.append((record, model))
    return out


def assert_same_training(auto, hand, rtol=1e-6, atol=1e-7):
    (ra, ma), (rh, mh) = auto, hand
    assert ra.status == rh.status and len(ra.epochs) == len(rh.epochs)
    for a, h in zip(ra.epochs, rh.epochs):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
            assert h[key] == pytest.approx(a[key], rel=rtol, abs=atol), key
    for (name, pa), (_, ph) in zip(ma.named_parameters(), mh.named_parameters()):
        torch.testing.assert_close(ph, pa, rtol=rtol, atol=atol, msg=name)
    assert ra.diagnostics and [r["metric"] for r in ra.diagnostics] == [r["metric"] for r in rh.diagnostics]


# an activation of every listed backward kernel, with non-default parameters where it has some
LISTED = ["relu", "leaky_relu:0.2", "sigmoid", "tanh", "elu:0.7", "selu", "celu:0.5", "gelu", "gelu:tanh", "silu",
          "mish", "softplus:2", "hardtanh:-2,2", "relu6", "hardswish", "hardsigmoid", "none", "relu+tanh"]


@pytest.mark.parametrize("activation", LISTED)
def test_listed_backward_kernels_give_autograds_numbers(mnist, activation):
    assert_same_training(*train_both(mnist, activation))


@pytest.mark.parametrize("activation", ["softsign", "tanhshrink", "expr:x*sigmoid(1.702*x)", "rrelu",
                                        "torch:relu_",  # works in place on its input
                                        "prelu", "prelu:per_unit", "swish_beta:per_unit"])  # learnable
def test_other_activations_take_their_derivatives_from_autograd_on_their_layer(mnist, activation):
    spec = parse_layers(activation)
    assert backward_kernel(spec.make(width=8)) is None
    assert_same_training(*train_both(mnist, activation))


@pytest.mark.parametrize("dropout", [{"dropout": 0.2}, {"dropout": 0.1, "dropout_kind": "alpha"}])
def test_dropout_by_hand_gives_autograds_numbers(mnist, dropout):
    assert_same_training(*train_both(mnist, "selu", **dropout))


@pytest.mark.parametrize("optim", [{"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                                    "weight_decay": 1e-4},
                                   {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05, "schedule": "cosine"},
                                   {"optimizer": "rmsprop", "lr": 1e-3, "momentum": 0.5}])
def test_every_optimizer_and_schedule_steps_the_flat_buffer_as_it_steps_the_layers(mnist, optim):
    assert_same_training(*train_both(mnist, "tanh", **optim))


def test_linear_model_without_hidden_layers(mnist):
    assert_same_training(*train_both(mnist, "none", hidden=[]))


def one_model_stack(model: nn.Sequential) -> ModelStack:
    return ModelStack([model], [0], [torch.Generator().manual_seed(0)])


def test_one_step_gradients_equal_autograds():
    torch.manual_seed(0)
    x, y = torch.rand(33, 20), torch.randint(0, 10, (33,))
    spec = parse_layers("elu")
    reference = build_mlp(20, [16, 8], spec)
    model = build_mlp(20, [16, 8], spec)
    model.load_state_dict(reference.state_dict())
    loss = nn.functional.cross_entropy(reference(x), y)
    loss.backward()
    stack = one_model_stack(model)
    logits, hand_loss = hand_step(stack)([x], y, stack.dropout_noise(33))
    torch.testing.assert_close(hand_loss[0], loss.detach())
    torch.testing.assert_close(logits, reference(x).detach())
    expected = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    torch.testing.assert_close(stack.flat.grad, expected)


def test_one_step_of_a_stack_gives_each_models_own_gradients():
    torch.manual_seed(0)
    x, y = torch.rand(33, 20), torch.randint(0, 10, (33,))
    specs = [parse_layers(a) for a in ("relu", "tanh", "prelu:per_unit")]
    models = [build_mlp(20, [16, 8], spec) for spec in specs]
    references = [build_mlp(20, [16, 8], spec) for spec in specs]
    for model, reference in zip(models, references):
        reference.load_state_dict(model.state_dict())
        nn.functional.cross_entropy(reference(x), y).backward()
    stack = ModelStack(models, [0, 0, 0], [torch.Generator().manual_seed(0) for _ in models])
    hand_step(stack)([x], y.expand(3, -1), stack.dropout_noise(33))
    for m, reference in enumerate(references):
        hand = dict(zip([n for n, _ in reference.named_parameters()], _gradients_of(stack, m)))
        for name, p in reference.named_parameters():
            torch.testing.assert_close(hand[name], p.grad, msg=name)


def _gradients_of(stack: ModelStack, m: int) -> list[torch.Tensor]:
    """Model m's gradients from the stack's flat gradient, in `named_parameters` order."""
    grads = []
    for depth, layer in enumerate(stack.hidden[m]):
        grads += [stack.weight_grads[depth][m], stack.bias_grads[depth][m], *stack.act_grads[m][depth].values()]
    return grads + [stack.weight_grads[-1][m], stack.bias_grads[-1][m]]


def test_stacked_parameters_are_views_until_released():
    model = build_mlp(12, [6], parse_layers("relu"))
    before = [p.detach().clone() for p in model.parameters()]
    stack = one_model_stack(model)
    assert stack.flat.numel() == sum(p.numel() for p in before)
    with torch.no_grad():
        stack.flat.add_(1.0)
    assert all(torch.equal(p, b + 1) for p, b in zip(model.parameters(), before))
    stack.release(0)
    with torch.no_grad():
        stack.flat.add_(1.0)  # no longer shared
    assert all(torch.equal(p, b + 1) for p, b in zip(model.parameters(), before))
    assert len({p.untyped_storage().data_ptr() for p in model.parameters()}) == len(before)
    saved = io.BytesIO()
    torch.save(model.state_dict(), saved)
    assert saved.tell() < stack.flat.numel() * 4 + 4000  # each tensor saves its own values only


@pytest.mark.parametrize("activation, output, precision, by_hand", [
    ("relu", "logits", "fp32", True),
    ("prelu", "logits", "fp32", True),
    ("relu", "logits", "bf16", False),
    ("relu", "softmax", "fp32", False),
])
def test_what_trains_by_hand_and_what_by_autograd(activation, output, precision, by_hand):
    stack = one_model_stack(build_mlp(784, [8, 8], parse_layers(activation), output=output, dropout=0.1))
    assert hand_backprop_applies(stack, precision) is by_hand


def test_models_trained_by_hand_come_back_as_ordinary_modules(mnist):
    (_, auto_model), (_, hand_model) = train_both(mnist, "relu", epochs=1)
    storages = {p.untyped_storage().data_ptr() for p in hand_model.parameters()}
    assert len(storages) == len(list(hand_model.parameters()))
    assert [n for n, _ in hand_model.named_parameters()] == [n for n, _ in auto_model.named_parameters()]


@pytest.mark.parametrize("activation", LISTED)
def test_the_straight_line_step_gives_the_general_steps_numbers_bit_for_bit(mnist, activation):
    """Across batch sizes too (an epoch's last batch is smaller), with the logits written into the
    buffer the training loop gives."""
    torch.manual_seed(0)
    model = build_mlp(784, [32, 16], parse_layers(activation))
    stack = one_model_stack(model)
    out = {True: [], False: []}
    for straight in (True, False):
        step = hand_step(stack, straight_line=straight)
        for rows in (64, 40, 64):
            x = mnist.train.images[:rows].float().div(255)
            y = mnist.train.labels[:rows]
            stack.flat.grad.zero_()
            into = torch.full((rows, 10), float("nan"))
            logits, losses = step([x], y, stack.dropout_noise(rows), into)
            assert torch.equal(into, logits)
            out[straight].append((logits, losses, stack.flat.grad.clone()))
    for a, b in zip(out[True], out[False]):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert out[True][0][2].abs().sum() > 0
