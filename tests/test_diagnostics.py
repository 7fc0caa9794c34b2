"""Diagnostics on hand-built networks whose answer is known, with PyTorch autograd as the oracle."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from actlab.activations import parse_activation
from actlab.diagnostics import dead_unit_fraction, hidden_layer_io, max_derivative, measure, saturated_fraction
from actlab.losses import loss_fn
from actlab.models import OutputActivation, build_mlp

LOSS = loss_fn("logits")


def rows_dict(rows: list[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    d = {(layer, metric): value for layer, metric, value in rows}
    assert len(d) == len(rows), "a (layer, metric) pair is reported twice"
    return d


def constant_net(activation: str, biases: list[float] | float, hidden: int = 8) -> nn.Sequential:
    """Linear(4, hidden) with zero weights and the given bias (the pre-activations), act, Linear(hidden, 3)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, hidden), parse_activation(activation).make(), nn.Linear(hidden, 3))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.as_tensor(biases, dtype=torch.float32).expand(hidden))
    return model


def batch(n: int = 16, features: int = 4, classes: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def constant_net_rows(activation: str, biases: list[float] | float) -> dict[tuple[str, str], float]:
    """`measure` of a `constant_net` on the standard batch, as a dict."""
    x, y = batch()
    return rows_dict(measure(constant_net(activation, biases), x, y, LOSS))


# ---------------------------------------------------------------- dead units


def test_dead_unit_fraction_hand_made():
    out = torch.tensor([[0.0, 1.0, 0.0],
                        [0.0, 0.0, 2.0],
                        [0.0, 3.0, 0.0],
                        [0.0, 0.0, 0.0]])
    assert dead_unit_fraction(out) == pytest.approx(1 / 3)
    assert dead_unit_fraction(torch.zeros(4, 3)) == 1.0
    assert dead_unit_fraction(torch.ones(4, 3)) == 0.0
    # within eps of zero, on either side, counts as dead; one live example keeps a unit alive
    tiny = torch.tensor([[1e-9, -1e-9, 0.0, 0.0], [0.0, 0.0, -1e-3, 0.0]])
    assert dead_unit_fraction(tiny) == pytest.approx(3 / 4)
    assert dead_unit_fraction(tiny, eps=1e-2) == 1.0


def test_relu_net_with_negative_preactivations_is_all_dead():
    r = constant_net_rows("relu", -100.0)
    assert r["hidden1", "dead_fraction"] == 1.0
    assert r["hidden1", "saturated_fraction"] == 1.0  # relu'(-100) = 0
    assert r["hidden1", "act_mean"] == 0.0 and r["hidden1", "act_std"] == 0.0
    # a dead layer passes no gradient to the first weights
    assert r["linear1", "grad_norm"] == 0.0
    assert r["linear2", "grad_norm"] == 0.0  # its inputs are all zero too
    assert "hidden2" not in {layer for layer, _ in r}


def test_relu_net_with_positive_preactivations_is_alive():
    r = constant_net_rows("relu", 1.0)
    assert r["hidden1", "dead_fraction"] == 0.0
    assert r["hidden1", "saturated_fraction"] == 0.0
    assert r["hidden1", "act_mean"] == pytest.approx(1.0) and r["hidden1", "act_std"] == 0.0


def test_relu_half_dead():
    # four units at −5 (dead), four at +5 (alive)
    r = constant_net_rows("relu", [-5.0] * 4 + [5.0] * 4)
    assert r["hidden1", "dead_fraction"] == 0.5
    assert r["hidden1", "saturated_fraction"] == 0.5


# ---------------------------------------------------------------- saturation


def test_sigmoid_saturated_at_plus_minus_20():
    r = constant_net_rows("sigmoid", [20.0, -20.0] * 4)
    assert r["hidden1", "saturated_fraction"] == 1.0
    assert r["hidden1", "dead_fraction"] == 0.5  # sigmoid(−20) ≈ 2e-9 ≤ 1e-8; sigmoid(20) ≈ 1


def test_sigmoid_not_saturated_at_zero():
    r = constant_net_rows("sigmoid", 0.0)
    assert r["hidden1", "saturated_fraction"] == 0.0
    assert r["hidden1", "max_derivative"] == pytest.approx(0.25)  # read saturation against it
    assert r["hidden1", "dead_fraction"] == 0.0
    assert r["hidden1", "act_mean"] == pytest.approx(0.5)


def test_saturated_fraction_is_an_absolute_derivative_threshold():
    # tanh'(x) = 1 − tanh²(x) < 0.05 ⇔ |x| > atanh(√0.95) ≈ 2.178
    pre = torch.tensor([[0.0, 1.0, 2.0, 2.5], [-3.0, -2.0, 10.0, -0.5]])
    assert saturated_fraction(pre, nn.Tanh()) == pytest.approx(3 / 8)
    # sigmoid'(x) = s(1 − s) < 0.05 ⇔ |x| > ln(0.9472 / 0.0528) ≈ 2.887, whatever its maximum (0.25)
    pre = torch.tensor([[0.0, 2.8, 3.0, -5.0]])
    assert saturated_fraction(pre, nn.Sigmoid()) == pytest.approx(2 / 4)
    assert saturated_fraction(pre, nn.Sigmoid(), threshold=0.3) == 1.0  # everywhere below 0.3


def test_saturated_fraction_leaves_input_alone():
    pre = torch.tensor([[-30.0, 0.0]])
    with torch.no_grad():
        assert saturated_fraction(pre, nn.Sigmoid()) == 0.5
    assert not pre.requires_grad and pre.grad is None


@pytest.mark.parametrize("name, expected", [("sigmoid", 0.25), ("tanh", 1.0), ("relu", 1.0), ("none", 1.0),
                                            ("leaky_relu:0.2", 1.0), ("relu6", 1.0)])
def test_max_derivative(name, expected):
    assert max_derivative(parse_activation(name).make()) == pytest.approx(expected, abs=1e-6)


def test_max_derivative_relu_is_exactly_one():
    assert max_derivative(parse_activation("relu").make()) == 1.0


# ---------------------------------------------------------------- gradients, mode and .grad


def two_hidden_net(activation: str = "tanh") -> nn.Sequential:
    torch.manual_seed(0)
    spec = parse_activation(activation)
    return nn.Sequential(nn.Linear(4, 8), spec.make(), nn.Linear(8, 6), spec.make(), nn.Linear(6, 3))


def functional_forward(ws, bs, x, act):
    h = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = F.linear(h, w, b)
        if i < len(ws) - 1:
            h = act(h)
    return h


@pytest.mark.parametrize("activation, act", [("tanh", torch.tanh), ("relu", torch.relu)])
def test_grad_norm_matches_autograd(activation, act):
    model = two_hidden_net(activation)
    x, y = batch(32)
    r = rows_dict(measure(model, x, y, LOSS))
    linears = [m for m in model if isinstance(m, nn.Linear)]
    # oracle: a functional forward pass on fresh leaf copies of the weights
    ws = [m.weight.detach().clone().requires_grad_(True) for m in linears]
    bs = [m.bias.detach().clone() for m in linears]
    loss = F.cross_entropy(functional_forward(ws, bs, x, act), y)
    norms = []
    for w in ws:
        (g,) = torch.autograd.grad(loss, w, retain_graph=True)
        norms.append(float(g.norm()))
    assert all(n > 0 for n in norms)
    for i, n in enumerate(norms, start=1):
        assert r[f"linear{i}", "grad_norm"] == pytest.approx(n, rel=1e-5)
    assert r["all", "grad_ratio_first_last"] == pytest.approx(norms[0] / norms[-1], rel=1e-5)
    assert r["all", "grad_ratio_first_last"] == pytest.approx(r["linear1", "grad_norm"] / r["linear3", "grad_norm"])
    assert {layer for layer, _ in r} == {"hidden1", "hidden2", "linear1", "linear2", "linear3", "all"}


@pytest.mark.parametrize("training", [True, False])
def test_measure_restores_grads_and_mode(training):
    model = two_hidden_net()
    x, y = batch(32)
    LOSS(model(x * 2), (y + 1) % 3).backward()  # some unrelated, existing gradients
    before = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.train(training)
    measure(model, x, y, LOSS)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, before[name]), name


def test_measure_keeps_missing_grads_missing():
    model = two_hidden_net()
    x, y = batch()
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    measure(model, x, y, LOSS)
    for name, p in model.named_parameters():
        assert p.grad is None, name
        assert torch.equal(p, weights[name]), name


def test_measure_in_eval_mode_does_not_use_training_randomness():
    # RReLU draws random slopes in training mode; measure() evaluates in eval mode, so it repeats exactly
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.RReLU(), nn.Linear(8, 3)).train()
    x, y = batch()
    assert measure(model, x, y, LOSS) == measure(model, x, y, LOSS)
    assert model.training


# ---------------------------------------------------------------- activation statistics


def test_act_mean_std_match_hand_computation():
    model = two_hidden_net("tanh")
    x, y = batch(32)
    r = rows_dict(measure(model, x, y, LOSS))
    with torch.no_grad():
        h1 = torch.tanh(x @ model[0].weight.T + model[0].bias)
        h2 = torch.tanh(h1 @ model[2].weight.T + model[2].bias)
    for name, h in (("hidden1", h1), ("hidden2", h2)):
        flat = h.flatten().double()
        n = flat.numel()
        mean = float(flat.sum() / n)
        std = float(((flat - mean) ** 2).sum().div(n - 1).sqrt())
        assert r[name, "act_mean"] == pytest.approx(mean, abs=1e-6)
        assert r[name, "act_std"] == pytest.approx(std, rel=1e-5)
        assert r[name, "dead_fraction"] == 0.0


# ---------------------------------------------------------------- hidden_layer_io


def test_hidden_layer_io_one_entry_per_hidden_layer():
    torch.manual_seed(0)
    model = build_mlp(784, [16, 8], parse_activation("relu"))
    x = torch.randn(5, 784)
    layers = hidden_layer_io(model, x)
    assert len(layers) == 2
    (pre1, out1, act1), (pre2, out2, act2) = layers
    assert act1 is model[1] and act2 is model[3]
    with torch.no_grad():
        assert torch.allclose(pre1, model[0](x))
        assert torch.allclose(out1, torch.relu(pre1))
        assert torch.allclose(pre2, model[2](out1))
        assert torch.allclose(out2, torch.relu(pre2))
    assert pre1.shape == (5, 16) and pre2.shape == (5, 8)


def test_hidden_layer_io_ignores_output_activation():
    torch.manual_seed(0)
    for output in ("log_softmax", "softmax", "sigmoid", "tanh"):
        model = build_mlp(784, [16], parse_activation("tanh"), output=output)
        assert isinstance(model[-1], OutputActivation)
        layers = hidden_layer_io(model, torch.randn(3, 784))
        assert len(layers) == 1 and layers[0][2] is model[1]


def test_hidden_layer_io_no_hidden_layer():
    x = torch.randn(3, 784)
    assert hidden_layer_io(nn.Sequential(nn.Linear(784, 10)), x) == []
    assert hidden_layer_io(nn.Sequential(nn.Linear(784, 10), OutputActivation("log_softmax")), x) == []


def test_hidden_layer_io_identity_activation_counts():
    # "none" is an nn.Identity between two Linear layers: still a hidden layer (a linear network)
    torch.manual_seed(0)
    model = build_mlp(784, [16], parse_activation("none"))
    assert len(hidden_layer_io(model, torch.randn(3, 784))) == 1


def test_measure_without_hidden_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 10))
    x, y = torch.randn(8, 784), torch.randint(0, 10, (8,))
    rows = measure(model, x, y, LOSS)
    assert [(layer, metric) for layer, metric, _ in rows] == [("linear1", "grad_norm")]
    w = model[0].weight.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(F.linear(x, w, model[0].bias.detach()), y), w)
    assert rows[0][2] == pytest.approx(float(g.norm()), rel=1e-5)


def test_measure_with_output_head_and_its_loss():
    torch.manual_seed(0)
    model = build_mlp(4, [8], parse_activation("relu"), num_classes=3, output="log_softmax")
    x, y = batch()
    r = rows_dict(measure(model, x, y, loss_fn("log_softmax")))
    assert {layer for layer, _ in r} == {"hidden1", "linear1", "linear2", "all"}
    # log_softmax + NLL is cross-entropy on the logits: same gradients as the logits model
    logits = nn.Sequential(*list(model)[:-1])
    r2 = rows_dict(measure(logits, x, y, LOSS))
    assert r["linear1", "grad_norm"] == pytest.approx(r2["linear1", "grad_norm"], rel=1e-5)
    assert r["linear2", "grad_norm"] == pytest.approx(r2["linear2", "grad_norm"], rel=1e-5)


def test_an_activation_that_works_in_place_gets_the_same_diagnostics():
    torch.manual_seed(0)
    x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
    plain = build_mlp(20, [16, 12], parse_activation("relu"))
    in_place = build_mlp(20, [16, 12], parse_activation("torch:relu_"))
    in_place.load_state_dict(plain.state_dict())
    assert rows_dict(measure(in_place, x, y, LOSS)) == rows_dict(measure(plain, x, y, LOSS))
    pre, out, _ = hidden_layer_io(in_place, x)[0]
    assert (pre < 0).any() and not torch.equal(pre, out)


def test_a_redefined_activation_of_the_same_name_is_measured_again():
    """A notebook cell run twice defines a new class of the same name and repr: its own maximum slope."""
    from torch import nn

    from actlab.diagnostics import max_derivative

    def make(scale):
        class Scaled(nn.Module):
            def forward(self, x):
                return scale * torch.tanh(x)
        return Scaled()
    assert max_derivative(make(1.0)) == pytest.approx(1.0) and max_derivative(make(3.0)) == pytest.approx(3.0)
