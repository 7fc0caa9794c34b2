"""The MLP, its initialisation and its output heads against PyTorch as the oracle."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from actlab.activations import parse_activation
from actlab.config import resolve_config
from actlab.losses import loss_fn
from actlab.models import INITS, OUTPUTS, OutputActivation, build_mlp, init_linear, linear_layers
from actlab.optimizers import FlatOptimizer

RELU = parse_activation("relu")
TANH = parse_activation("tanh")

NON_DEFAULT_INITS = sorted(set(INITS) - {"default"})
HEADS = sorted(set(OUTPUTS) - {"logits"})


def linear_state(model: nn.Sequential) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.weight.detach().clone(), m.bias.detach().clone()) for m in linear_layers(model)]


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize("spec_text", ["relu", "tanh", "prelu", "none"])
def test_layer_sequence(spec_text):
    spec = parse_activation(spec_text)
    model = build_mlp(784, [128, 128], spec)
    assert isinstance(model, nn.Sequential)
    assert len(model) == 5
    kinds = [type(m) for m in model]
    act = type(spec.make())
    assert kinds == [nn.Linear, act, nn.Linear, act, nn.Linear]
    shapes = [(m.in_features, m.out_features) for m in linear_layers(model)]
    assert shapes == [(784, 128), (128, 128), (128, 10)]
    assert model[1] is not model[3]
    assert model(torch.randn(4, 784)).shape == (4, 10)


def test_learnable_activation_is_per_layer():
    model = build_mlp(784, [128, 128], parse_activation("prelu"))
    assert model[1].weight is not model[3].weight
    # two PReLU slopes + three (weight, bias) pairs
    assert len(list(model.parameters())) == 2 + 6


def test_empty_hidden_is_one_linear_layer():
    model = build_mlp(784, [], RELU)
    assert len(model) == 1
    assert isinstance(model[0], nn.Linear)
    assert (model[0].in_features, model[0].out_features) == (784, 10)


def test_num_classes_and_widths():
    model = build_mlp(20, (7, 5, 3), TANH, num_classes=4)
    shapes = [(m.in_features, m.out_features) for m in linear_layers(model)]
    assert shapes == [(20, 7), (7, 5), (5, 3), (3, 4)]
    acts = [m for m in model if isinstance(m, nn.Tanh)]
    assert len(acts) == 3 and len({id(a) for a in acts}) == 3


@pytest.mark.parametrize("output", HEADS)
def test_output_head_is_last(output):
    model = build_mlp(784, [128], RELU, output=output)
    assert isinstance(model[-1], OutputActivation)
    assert model[-1].kind == output
    assert isinstance(model[-2], nn.Linear)
    assert len(model) == 4
    assert len(linear_layers(model)) == 2


def test_logits_model_ends_with_linear():
    model = build_mlp(784, [128], RELU, output="logits")
    assert isinstance(model[-1], nn.Linear)
    assert not any(isinstance(m, OutputActivation) for m in model)


# ---------------------------------------------------------------- paired design


@pytest.mark.parametrize("init", sorted(INITS))
@pytest.mark.parametrize("other", ["tanh", "prelu", "rrelu", "elu:alpha=0.5"])
def test_same_seed_same_weights_whatever_the_activation(init, other):
    torch.manual_seed(3)
    a = build_mlp(64, [32, 16], RELU, init=init)
    torch.manual_seed(3)
    b = build_mlp(64, [32, 16], parse_activation(other), init=init)
    for (wa, ba), (wb, bb) in zip(linear_state(a), linear_state(b), strict=True):
        assert torch.equal(wa, wb)
        assert torch.equal(ba, bb)


def test_relu_vs_tanh_paired_and_seed_matters():
    torch.manual_seed(0)
    relu_model = build_mlp(784, [128, 128], RELU)
    torch.manual_seed(0)
    tanh_model = build_mlp(784, [128, 128], TANH)
    torch.manual_seed(1)
    other_seed = build_mlp(784, [128, 128], RELU)
    for (wa, ba), (wb, bb), (wc, bc) in zip(linear_state(relu_model), linear_state(tanh_model),
                                            linear_state(other_seed), strict=True):
        assert torch.equal(wa, wb) and torch.equal(ba, bb)
        assert not torch.equal(wa, wc) and not torch.equal(ba, bc)


# ---------------------------------------------------------------- initialisation vs torch.nn.init

INIT_ORACLE = {
    "lecun_normal": lambda w: nn.init.normal_(w, 0.0, 1.0 / math.sqrt(w.shape[1])),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "orthogonal": nn.init.orthogonal_,
}

# widths that make the layers wide, tall and square (orthogonal handles each differently)
IN, HIDDEN, CLASSES = 30, [40, 40, 20], 10


def oracle_layers(seed: int, scheme: str | None) -> list[nn.Linear]:
    """nn.Linear layers created in build_mlp's order, then each re-initialised by torch.nn.init."""
    torch.manual_seed(seed)
    widths = [IN, *HIDDEN, CLASSES]
    layers = [nn.Linear(a, b) for a, b in zip(widths, widths[1:])]
    if scheme is not None:
        with torch.no_grad():
            for layer in layers:
                INIT_ORACLE[scheme](layer.weight)
                layer.bias.zero_()
    return layers


def test_oracle_table_covers_inits():
    assert set(INIT_ORACLE) == set(NON_DEFAULT_INITS)


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("scheme", NON_DEFAULT_INITS)
def test_init_matches_torch_nn_init(scheme, seed):
    torch.manual_seed(seed)
    model = build_mlp(IN, HIDDEN, RELU, num_classes=CLASSES, init=scheme)
    expected = oracle_layers(seed, scheme)
    got = linear_layers(model)
    assert len(got) == len(expected)
    for layer, ref in zip(got, expected, strict=True):
        assert torch.equal(layer.weight, ref.weight)
        assert torch.equal(layer.bias, ref.bias)
        assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("scheme", NON_DEFAULT_INITS)
def test_init_takes_effect(scheme):
    torch.manual_seed(0)
    default = build_mlp(IN, HIDDEN, RELU, num_classes=CLASSES)
    torch.manual_seed(0)
    other = build_mlp(IN, HIDDEN, RELU, num_classes=CLASSES, init=scheme)
    for (wd, bd), (wo, bo) in zip(linear_state(default), linear_state(other), strict=True):
        assert not torch.equal(wd, wo)
        assert torch.count_nonzero(bd) > 0 and torch.count_nonzero(bo) == 0


def test_default_init_is_nn_linear_default():
    torch.manual_seed(5)
    model = build_mlp(IN, HIDDEN, RELU, num_classes=CLASSES, init="default")
    for layer, ref in zip(linear_layers(model), oracle_layers(5, None), strict=True):
        assert torch.equal(layer.weight, ref.weight)
        assert torch.equal(layer.bias, ref.bias)


def test_lecun_normal_empirical_std():
    torch.manual_seed(0)
    model = build_mlp(784, [512], parse_activation("selu"), init="lecun_normal")
    w = model[0].weight
    assert w.shape == (512, 784)
    target = 1 / math.sqrt(784)
    assert abs(w.std().item() - target) < 0.01 * target
    assert abs(w.mean().item()) < 0.01 * target


@pytest.mark.parametrize("shape", [(40, 30), (30, 40), (20, 20)])
def test_orthogonal_init_is_orthogonal(shape):
    torch.manual_seed(0)
    layer = nn.Linear(shape[1], shape[0])
    init_linear(layer, "orthogonal")
    w = layer.weight.detach().double()
    gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
    torch.testing.assert_close(gram, torch.eye(min(shape), dtype=torch.float64), atol=1e-5, rtol=0)


def test_unknown_init_raises():
    with pytest.raises(ValueError, match="unknown init"):
        build_mlp(IN, HIDDEN, RELU, init="glorot_sideways")


# ---------------------------------------------------------------- output heads vs torch


def logits_and_targets(n: int = 64, classes: int = 10, scale: float = 4.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, classes, generator=g)
    targets = torch.randint(0, classes, (n,), generator=g)
    return logits, targets


HEAD_ORACLE = {
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "softmax": lambda x: F.softmax(x, dim=-1),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def test_head_oracle_covers_outputs():
    assert set(HEAD_ORACLE) == set(HEADS)


@pytest.mark.parametrize("kind", HEADS)
def test_output_activation_matches_torch(kind):
    logits, _ = logits_and_targets()
    out = OutputActivation(kind)(logits)
    torch.testing.assert_close(out, HEAD_ORACLE[kind](logits), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", HEADS)
def test_output_activation_gradient_matches_torch(kind):
    logits, _ = logits_and_targets(scale=2.0)
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (OutputActivation(kind), HEAD_ORACLE[kind]):
        x = logits.double().clone().requires_grad_(True)
        (fn(x) * weights.double()).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_softmax_head_rows_sum_to_one():
    logits, _ = logits_and_targets()
    out = OutputActivation("softmax")(logits)
    torch.testing.assert_close(out.sum(-1), torch.ones(len(logits)))


# ---------------------------------------------------------------- losses


def test_logits_loss_is_cross_entropy():
    logits, y = logits_and_targets()
    assert loss_fn("logits") is F.cross_entropy
    torch.testing.assert_close(loss_fn("logits")(logits, y), F.cross_entropy(logits, y))


def test_log_softmax_head_with_nll_is_cross_entropy():
    logits, y = logits_and_targets()
    out = OutputActivation("log_softmax")(logits)
    torch.testing.assert_close(loss_fn("log_softmax")(out, y), F.cross_entropy(logits, y),
                               rtol=1e-5, atol=1e-6)


def test_log_softmax_head_gradient_equals_cross_entropy_gradient():
    logits, y = logits_and_targets(scale=2.0)
    x1 = logits.double().clone().requires_grad_(True)
    loss_fn("log_softmax")(OutputActivation("log_softmax")(x1), y).backward()
    x2 = logits.double().clone().requires_grad_(True)
    F.cross_entropy(x2, y).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", HEADS)
def test_nll_is_minus_mean_output_at_target(kind):
    logits, y = logits_and_targets()
    out = OutputActivation(kind)(logits)
    n = len(y)
    expected = -out[torch.arange(n), y].mean()
    torch.testing.assert_close(loss_fn(kind)(out, y), expected)
    torch.testing.assert_close(loss_fn(kind)(out, y), F.nll_loss(out, y))


def test_full_model_with_log_softmax_head_matches_logits_model_loss():
    torch.manual_seed(0)
    logits_model = build_mlp(20, [16], RELU, output="logits")
    torch.manual_seed(0)
    head_model = build_mlp(20, [16], RELU, output="log_softmax")
    x = torch.randn(8, 20)
    y = torch.randint(0, 10, (8,))
    torch.testing.assert_close(loss_fn("log_softmax")(head_model(x), y),
                               loss_fn("logits")(logits_model(x), y), rtol=1e-5, atol=1e-6)


def test_per_layer_activations_and_dropout_in_the_right_places():
    from actlab.config import resolve_config
    from actlab.results import ModelRun
    from actlab.train import build_model

    torch.manual_seed(0)
    model = build_mlp(784, [16, 8], [parse_activation("relu"), parse_activation("tanh")], dropout=0.1)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "Tanh", "Dropout", "Linear"]
    config = resolve_config(overrides={"hidden": [16, 8], "activations": ["selu", "relu+tanh"], "dropout": 0.05,
                                       "init": {"selu": "lecun_normal"}}, env={})
    selu = build_model(ModelRun("selu", "selu", "logits", 0), config, 784, torch.device("cpu"))
    mixed = build_model(ModelRun("relu+tanh", "relu+tanh", "logits", 0), config, 784, torch.device("cpu"))
    assert [type(m).__name__ for m in selu] == ["Linear", "SELU", "AlphaDropout", "Linear", "SELU", "AlphaDropout",
                                                "Linear"]
    assert [type(m).__name__ for m in mixed] == ["Linear", "ReLU", "Dropout", "Linear", "Tanh", "Dropout", "Linear"]
    assert torch.count_nonzero(selu[0].bias) == 0  # lecun_normal for selu: zero biases
    assert torch.count_nonzero(mixed[0].bias) > 0  # the rest keep PyTorch's default init
    assert selu[0].weight.std().item() == pytest.approx(1 / 28, rel=0.05)


def test_per_layer_list_must_match_the_hidden_layers():
    with pytest.raises(ValueError):
        build_mlp(784, [16, 8, 4], [parse_activation("relu"), parse_activation("tanh")])


# --- ModelStack: several models as one flat tensor ----------------------------------------------

def _stack(activations, seeds, dropout=0.0):
    from actlab.models import ModelStack

    models = []
    for activation, seed in zip(activations, seeds):
        torch.manual_seed(seed)
        models.append(build_mlp(20, [12, 8], parse_activation(activation), dropout=dropout,
                                dropout_kind="alpha" if activation == "selu" else "standard"))
    return ModelStack(models, list(seeds), [torch.Generator().manual_seed(s) for s in seeds])


def test_a_stack_computes_each_models_own_forward_pass():
    from actlab.models import stack_forward

    stack = _stack(["relu", "tanh", "prelu", "sigmoid"], [0, 0, 1, 1])
    assert stack.blocks == [(0, 0, 2), (1, 2, 4)]
    xs = [torch.rand(5, 20), torch.rand(5, 20)]
    acts = [[h.activation for h in hidden] for hidden in stack.hidden]
    logits, _ = stack_forward(stack, xs, stack.weights, stack.biases,
                              lambda d, z: torch.stack([acts[m][d](z[m]) for m in range(4)]), stack.dropout_noise(5))
    for m, model in enumerate(stack.models):
        torch.testing.assert_close(logits[m], model(xs[m // 2]))


@pytest.mark.parametrize("kind", ["standard", "alpha"])
def test_dropout_noise_is_torchs_dropout_drawn_from_the_models_own_generator(kind):
    stack = _stack(["selu" if kind == "alpha" else "relu"], [7], dropout=0.3)
    scale, shift = stack.dropout_noise(64)[0]  # one model: batch × width, no model dimension
    h = torch.randn(64, 12)
    ours = h * scale if shift is None else h * scale + shift
    torch.manual_seed(7)  # torch's dropout draws its mask from the global generator the same way
    expected = F.alpha_dropout(h, 0.3, training=True) if kind == "alpha" else F.dropout(h, 0.3, training=True)
    torch.testing.assert_close(ours, expected)


def test_keeping_some_models_carries_their_weights_and_optimizer_state():
    stack = _stack(["relu", "tanh", "sigmoid"], [0, 0, 0])
    optimizer = FlatOptimizer(stack.flat, resolve_config(overrides={"optimizer": "adam", "lr": 0.1}, env={}).optim)
    stack.flat.grad = torch.randn_like(stack.flat)
    optimizer.step()
    tanh_weights = [p.detach().clone() for p in stack.models[1].parameters()]
    state = {k: v.clone() for k, v in optimizer.state.items()}
    index = stack.positions([1])
    left = stack.release(0)
    kept = stack.keep([1, 2], optimizer)
    assert optimizer.flat is kept.flat and len(kept) == 2
    assert all(torch.equal(p, q) for p, q in zip(kept.models[0].parameters(), tanh_weights))
    n = len(index)
    assert torch.equal(optimizer.state["exp_avg"][kept.positions([0])], state["exp_avg"][index])
    assert torch.equal(optimizer.state["step"], state["step"])
    assert kept.flat.numel() == 2 * n
    kept.flat.grad = torch.randn_like(kept.flat)
    optimizer.step()  # the kept models go on from their own state
    assert torch.equal(optimizer.state["step"], torch.tensor(2.0))
    with torch.no_grad():
        kept.flat.zero_()
    assert all(p.abs().sum() > 0 for p in left.parameters())  # the released model keeps its own weights
    assert all(torch.equal(p, torch.zeros_like(p)) for p in kept.models[0].parameters())