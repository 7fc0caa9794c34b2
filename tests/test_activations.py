"""The activation registry against closed-form oracles.

Every registered activation is built through `parse_activation(name).make()` and its values and
autograd derivatives on a grid are compared with its closed form written here in elementary
operations, whose derivative is also taken by autograd (micrograd `test/test_engine.py` style).
"""

from __future__ import annotations

import math
import sys
import textwrap
import time

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from actlab.activations import REGISTRY, ActivationSpec, curve, parse_activation, split_activation_list
from actlab.errors import ActlabError

# Points where some registered activation has a kink (relu & co at 0, shrink at ±0.5, hardtanh at
# ±1, hardswish / hardsigmoid at ±3, relu6 at 6): the derivative there is a convention, not math.
KINKS = (0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0)


def grid() -> torch.Tensor:
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    keep = torch.ones_like(x, dtype=torch.bool)
    for k in KINKS:
        keep &= (x - k).abs() > 1e-6
    return x[keep]


def value_and_grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), dy


def assert_matches(module: nn.Module, reference, x: torch.Tensor | None = None, grad_rtol: float = 1e-10) -> None:
    x = grid() if x is None else x
    y, dy = value_and_grad(module, x)
    y_ref, dy_ref = value_and_grad(reference, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dy, dy_ref, rtol=grad_rtol, atol=1e-12)


# Closed forms written from each activation's definition in elementary operations (exp, log1p, erf,
# abs, where). Not torch.nn.functional: the registry builds torch.nn modules, which call exactly
# those functions, so comparing with them could not catch a wrong formula, parameter or default.
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
MEAN_RRELU_SLOPE = (1 / 8 + 1 / 3) / 2  # eval mode uses the mean of its default range [1/8, 1/3]


def sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def tanh(x):
    return 2 * sigmoid(2 * x) - 1


def softplus(x, beta=1.0, threshold=20.0):
    return torch.where(beta * x > threshold, x, torch.log1p(torch.exp(beta * x)) / beta)


def leaky(slope):
    return lambda x: torch.where(x > 0, x, slope * x)


def elu(alpha=1.0):
    return lambda x: torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


def celu(alpha=1.0):
    return lambda x: torch.where(x > 0, x, alpha * (torch.exp(x / alpha) - 1))


def clamp(low, high):
    return lambda x: torch.where(x < low, low, torch.where(x > high, high, x))


def gelu(approximate="none"):
    if approximate == "tanh":
        return lambda x: 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def hardshrink(lambd=0.5):
    return lambda x: torch.where(x.abs() > lambd, x, 0.0)


def softshrink(lambd=0.5):
    return lambda x: torch.where(x > lambd, x - lambd, torch.where(x < -lambd, x + lambd, 0.0))


# name -> closed-form oracle, at the activation's default parameters
REFERENCE = {
    "none": lambda x: x,
    "relu": leaky(0.0),
    "leaky_relu": leaky(0.01),
    "prelu": leaky(0.25),  # learnable slope, initialised at 0.25
    "rrelu": leaky(MEAN_RRELU_SLOPE),
    "relu6": clamp(0.0, 6.0),
    "elu": elu(),
    "selu": lambda x: SELU_SCALE * elu(SELU_ALPHA)(x),
    "celu": celu(),
    "gelu": gelu(),
    "silu": lambda x: x * sigmoid(x),
    "mish": lambda x: x * tanh(softplus(x)),
    "swish_beta": lambda x: x * sigmoid(x),  # learnable beta starts at 1: x·sigmoid(x)
    "softplus": softplus,
    "hardswish": lambda x: x * clamp(0.0, 6.0)(x + 3) / 6,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "hardtanh": clamp(-1.0, 1.0),
    "hardsigmoid": lambda x: clamp(0.0, 1.0)(x / 6 + 0.5),
    "softsign": lambda x: x / (1 + x.abs()),
    "tanhshrink": lambda x: x - tanh(x),
    "logsigmoid": lambda x: -softplus(-x),
    "hardshrink": hardshrink(),
    "softshrink": softshrink(),
}


def build(text: str) -> nn.Module:
    """A module from a user-written activation name, in float64 and eval mode."""
    return parse_activation(text).make().double().eval()


# ---------------------------------------------------------------- registry vs closed forms


def test_reference_table_covers_the_registry():
    assert set(REFERENCE) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entry_builds(name):
    spec = parse_activation(name)
    assert isinstance(spec, ActivationSpec)
    assert spec.name == name
    assert spec.family == REGISTRY[name].family
    assert isinstance(spec.make(), nn.Module)


# PyTorch's Hardsigmoid backward multiplies by 1/6 rounded to float32, even in float64 (3e-8 relative)
GRAD_RTOL = {"hardsigmoid": 1e-7}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_value_and_derivative_match_the_closed_form(name):
    assert_matches(build(name), REFERENCE[name], grad_rtol=GRAD_RTOL.get(name, 1e-10))


def test_grid_avoids_kinks_and_is_dense():
    x = grid()
    assert len(x) == 241 - len(KINKS)
    for k in KINKS:
        assert (x - k).abs().min() > 1e-6


def test_none_is_identity():
    x = grid()
    module = build("none")
    assert isinstance(module, nn.Identity)
    y, dy = value_and_grad(module, x)
    assert torch.equal(y, x)
    assert torch.equal(dy, torch.ones_like(x))


def test_rrelu_is_random_in_training_and_mean_slope_in_eval():
    x = -torch.ones(1000, dtype=torch.float64)
    module = parse_activation("rrelu").make().double()
    torch.manual_seed(0)
    slopes = -module.train()(x)
    assert slopes.min() >= 1 / 8 and slopes.max() <= 1 / 3
    assert slopes.std() > 0.01  # random per element in training
    torch.testing.assert_close(-module.eval()(x), torch.full_like(x, (1 / 8 + 1 / 3) / 2))


# ---------------------------------------------------------------- parameters take effect

# (spec as written, oracle with those parameters, oracle at the defaults)
PARAMETRISED = [
    ("leaky_relu:0.2", leaky(0.2), REFERENCE["leaky_relu"]),
    ("leaky_relu:negative_slope=0.2", leaky(0.2), REFERENCE["leaky_relu"]),
    ("elu:alpha=0.5", elu(0.5), REFERENCE["elu"]),
    ("elu:0.5", elu(0.5), REFERENCE["elu"]),
    ("hardtanh:-2,2", clamp(-2.0, 2.0), REFERENCE["hardtanh"]),
    ("hardtanh:min_val=-2,max_val=2", clamp(-2.0, 2.0), REFERENCE["hardtanh"]),
    ("softplus:beta=2", lambda x: softplus(x, beta=2), softplus),
    ("softplus:beta=2,threshold=10", lambda x: softplus(x, beta=2, threshold=10), softplus),
    ("gelu:approximate=tanh", gelu("tanh"), gelu()),
    ("gelu:tanh", gelu("tanh"), gelu()),
    ("celu:alpha=2", celu(2.0), celu()),
    ("rrelu:0.1,0.3", leaky(0.2), leaky(MEAN_RRELU_SLOPE)),
    ("hardshrink:lambd=1.5", hardshrink(1.5), hardshrink()),
    ("softshrink:1.5", softshrink(1.5), softshrink()),
    # the slope is a float32 parameter: 0.1 rounded to float32 before the module goes to float64
    ("prelu:init=0.1", leaky(torch.tensor(0.1).item()), leaky(0.25)),
]


def _off_kinks(x: torch.Tensor, kinks) -> torch.Tensor:
    keep = torch.ones_like(x, dtype=torch.bool)
    for k in kinks:
        keep &= (x - k).abs() > 1e-6
    return x[keep]


@pytest.mark.parametrize("text, reference, default", PARAMETRISED, ids=[p[0] for p in PARAMETRISED])
def test_parameters_take_effect(text, reference, default):
    # also avoid the kinks that the new parameters move (±2 for hardtanh:-2,2, ±1.5 for shrink)
    x = _off_kinks(grid(), (2.0, -2.0, 1.5, -1.5))
    module = build(text)
    assert_matches(module, reference, x)
    # a parameter silently ignored would leave the default curve
    y, dy = value_and_grad(module, x)
    y_default, dy_default = value_and_grad(default, x)
    assert not torch.allclose(y, y_default)
    assert not torch.allclose(dy, dy_default)


def test_parameter_values_are_parsed_as_numbers():
    assert dict(parse_activation("leaky_relu:0.2").kwargs) == {"negative_slope": 0.2}
    assert dict(parse_activation("hardtanh:-2,2").kwargs) == {"min_val": -2, "max_val": 2}
    assert dict(parse_activation("hardtanh: -2, 2").kwargs) == {"min_val": -2, "max_val": 2}
    assert dict(parse_activation("gelu:approximate='tanh'").kwargs) == {"approximate": "tanh"}
    module = build("hardtanh:min_val=-2,max_val=2")
    assert (module.min_val, module.max_val) == (-2, 2)


# ---------------------------------------------------------------- aliases and case


@pytest.mark.parametrize("text, name", [
    ("swish", "silu"),
    ("Swish", "silu"),
    ("LeakyReLU", "leaky_relu"),
    ("LEAKY_RELU", "leaky_relu"),
    ("lrelu", "leaky_relu"),
    ("identity", "none"),
    ("Identity", "none"),
    ("linear", "none"),
    ("ReLU", "relu"),
    ("  tanh  ", "tanh"),
    ("logistic", "sigmoid"),
    ("hard_swish", "hardswish"),
])
def test_aliases_and_case_resolve(text, name):
    spec = parse_activation(text)
    assert spec.name == name
    assert_matches(build(text), REFERENCE[name])


def test_alias_keeps_parameters():
    spec = parse_activation("LeakyReLU:0.2")
    assert spec.name == "leaky_relu"
    assert_matches(build("LeakyReLU:0.2"), leaky(0.2))


def test_label_is_the_text_as_written():
    spec = parse_activation("LeakyReLU:0.2")
    assert spec.label == "LeakyReLU:0.2"
    assert str(spec) == "LeakyReLU:0.2"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("text, suggestions", [
    ("reluu", ("relu6", "relu")),
    ("leaky_relo", ("leaky_relu",)),
    ("sigmod", ("sigmoid",)),
    ("tahn", ("tanh",)),
])
def test_unknown_name_suggests_close_match(text, suggestions):
    with pytest.raises(ActlabError) as info:
        parse_activation(text)
    message = str(info.value)
    assert text in message
    assert any(repr(s) in message for s in suggestions), message


def test_unknown_name_without_close_match():
    with pytest.raises(ActlabError, match="unknown activation"):
        parse_activation("zzzzqqq")


@pytest.mark.parametrize("text", ["elu:beta=1", "relu:alpha=1", "gelu:approx=tanh"])
def test_bad_parameter_name_raises(text):
    with pytest.raises(ActlabError, match="no parameter"):
        parse_activation(text)


@pytest.mark.parametrize("text", ["relu:1", "leaky_relu:0.1,0.2", "hardtanh:-2,2,3", "elu:1,2"])
def test_too_many_positional_parameters_raise(text):
    with pytest.raises(ActlabError, match="takes"):
        parse_activation(text)


@pytest.mark.parametrize("text", [
    "hardtanh:2,-2",           # min above max: nn.Hardtanh asserts
    "gelu:approximate=foo",    # nn.GELU only checks at the first forward
    "elu:alpha=abc",           # a string where a number belongs
    "leaky_relu:abc",
])
def test_bad_parameter_value_raises_actlab_error(text):
    """A bad value must be a one-line ActlabError at parse time, not a traceback in training."""
    with pytest.raises(ActlabError):
        spec = parse_activation(text)
        spec.make()(torch.linspace(-1, 1, 5))


# ---------------------------------------------------------------- user activations

USER_MODULE = """
    import torch
    from torch import nn


    def scaled_tanh(x):
        return 1.7159 * torch.tanh(2 * x / 3)


    class ScaledTanh(nn.Module):
        def forward(self, x):
            return 1.7159 * torch.tanh(2 * x / 3)


    def maxmin(x):  # MaxMin / GroupSort: the larger and the smaller of each pair of units
        a, b = x.chunk(2, -1)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], -1)


    NOT_CALLABLE = 3
"""


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """`actlab_test_userpkg.acts` and top-level `actlab_test_usermod`, importable for one test."""
    package = tmp_path / "actlab_test_userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "acts.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "actlab_test_usermod.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ("actlab_test_userpkg", "actlab_test_userpkg.acts", "actlab_test_usermod")
    yield "actlab_test_userpkg.acts"
    for name in names:
        sys.modules.pop(name, None)


def scaled_tanh_reference(x):
    return 1.7159 * torch.tanh(2 * x / 3)


@pytest.mark.parametrize("module_path", ["actlab_test_userpkg.acts", "actlab_test_usermod"])
@pytest.mark.parametrize("attr", ["scaled_tanh", "ScaledTanh"])
def test_user_activation_function_and_module_class(user_package, module_path, attr):
    text = f"{module_path}:{attr}"
    spec = parse_activation(text)
    assert spec.label == text
    assert spec.family == "custom"
    module = spec.make()
    assert isinstance(module, nn.Module)
    assert_matches(module, scaled_tanh_reference)
    assert spec.make() is not module


def test_user_function_and_class_give_equal_values(user_package):
    x = grid()
    y_fn, dy_fn = value_and_grad(parse_activation(f"{user_package}:scaled_tanh").make(), x)
    y_cls, dy_cls = value_and_grad(parse_activation(f"{user_package}:ScaledTanh").make(), x)
    assert torch.equal(y_fn, y_cls)
    assert torch.equal(dy_fn, dy_cls)


def test_user_activation_in_a_sequential(user_package):
    net = nn.Sequential(nn.Linear(3, 4), parse_activation(f"{user_package}:scaled_tanh").make())
    assert net(torch.randn(2, 3)).shape == (2, 4)


@pytest.mark.parametrize("text", [
    "actlab_test_userpkg.acts:missing",
    "actlab_test_usermod:missing",
    "actlab_test_userpkg.nosuchmodule:scaled_tanh",
])
def test_user_activation_missing_raises(user_package, text):
    with pytest.raises(ActlabError, match="cannot import"):
        parse_activation(text)


def test_user_activation_not_callable_raises(user_package):
    with pytest.raises(ActlabError, match="neither a function nor an nn.Module"):
        parse_activation(f"{user_package}:NOT_CALLABLE")


# ---------------------------------------------------------------- split_activation_list


@pytest.mark.parametrize("text, expected", [
    ("relu,hardtanh:-2,2,elu:alpha=0.5", ["relu", "hardtanh:-2,2", "elu:alpha=0.5"]),
    ("relu, tanh", ["relu", "tanh"]),
    ("softplus:beta=2,threshold=10,relu", ["softplus:beta=2,threshold=10", "relu"]),
    ("relu", ["relu"]),
    ("relu,,tanh,", ["relu", "tanh"]),
    ("leaky_relu:0.2,relu", ["leaky_relu:0.2", "relu"]),
    ("hardtanh:min_val=-2,max_val=2,gelu:approximate=tanh",
     ["hardtanh:min_val=-2,max_val=2", "gelu:approximate=tanh"]),
    ("", []),
])
def test_split_activation_list(text, expected):
    assert split_activation_list(text) == expected


def test_split_pieces_all_parse():
    for piece in split_activation_list("relu,hardtanh:-2,2,elu:alpha=0.5,softplus:beta=2,threshold=10"):
        parse_activation(piece)


# ---------------------------------------------------------------- curve: closed-form derivatives


def test_curve_sigmoid_derivative_closed_form():
    x = grid()
    y, dy = curve(parse_activation("sigmoid"), x)
    s = torch.sigmoid(x)
    torch.testing.assert_close(y, s)
    torch.testing.assert_close(dy, s * (1 - s))


def test_curve_tanh_derivative_closed_form():
    x = grid()
    y, dy = curve(parse_activation("tanh"), x)
    t = torch.tanh(x)
    torch.testing.assert_close(y, t)
    torch.testing.assert_close(dy, 1 - t ** 2)


def test_curve_relu_derivative_is_step():
    x = grid()
    y, dy = curve(parse_activation("relu"), x)
    torch.testing.assert_close(y, x.clamp(min=0))
    assert torch.equal(dy[x < 0], torch.zeros_like(dy[x < 0]))
    assert torch.equal(dy[x > 0], torch.ones_like(dy[x > 0]))


def test_curve_does_not_touch_its_input():
    x = grid()
    before = x.clone()
    y, dy = curve(parse_activation("elu"), x)
    assert torch.equal(x, before)
    assert not x.requires_grad and not y.requires_grad and not dy.requires_grad


def test_curve_uses_eval_mode_for_rrelu():
    x = -torch.ones(50, dtype=torch.float64)
    y, dy = curve(parse_activation("rrelu"), x)
    mean = (1 / 8 + 1 / 3) / 2
    torch.testing.assert_close(y, torch.full_like(x, -mean))
    torch.testing.assert_close(dy, torch.full_like(x, mean))


# ---------------------------------------------------------------- make() builds fresh modules


def test_make_returns_fresh_modules_with_unshared_weights():
    spec = parse_activation("prelu")
    a, b = spec.make(), spec.make()
    assert a is not b
    assert a.weight is not b.weight
    assert a.weight.data_ptr() != b.weight.data_ptr()
    with torch.no_grad():
        a.weight.fill_(0.9)
    torch.testing.assert_close(b.weight, torch.tensor([0.25]))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_make_is_fresh_for_every_entry(name):
    spec = parse_activation(name)
    assert spec.make() is not spec.make()


@pytest.mark.parametrize("text, reference", [
    ("expr:x*sigmoid(1.702*x)", lambda x: x * torch.sigmoid(1.702 * x)),
    ("expr:clamp(x, -1, 1)", F.hardtanh),
    ("expr:max(x, 0.1*x)", lambda x: F.leaky_relu(x, 0.1)),
    ("expr:x*tanh(softplus(x))", F.mish),
    ("expr:0.5*x*(1+erf(x/sqrt(2)))", F.gelu),
    ("expr:-x**2/2 + e - pi", lambda x: -x ** 2 / 2 + math.e - math.pi),
])
def test_expression_activations_equal_their_torch_equivalents(text, reference):
    assert_matches(build(text), reference)


@pytest.mark.parametrize("text, message", [
    ("expr:__import__('os').system('true')", "not allowed"),
    ("expr:x.exp()", r"attribute access \(\.exp\)"),
    ("expr:torch.exp(x)", "not allowed"),
    ("expr:y*2", "unknown name 'y'"),
    ("expr:import os", "not valid"),
    ("expr:open('f')", "function 'open' is not allowed"),
    ("expr:[x for x in x]", "not allowed"),
])
def test_expression_activations_reject_anything_but_arithmetic(text, message):
    with pytest.raises(ActlabError, match=message):
        parse_activation(text)


def test_per_layer_names_split_only_at_activation_names():
    from actlab.activations import parse_layers, split_layers

    assert split_layers("relu+tanh") == ["relu", "tanh"]
    assert split_layers("expr:x+sigmoid(x)") == ["expr:x+sigmoid(x)"]
    assert split_layers("leaky_relu:0.2+expr:x*2+selu") == ["leaky_relu:0.2", "expr:x*2", "selu"]
    assert [s.name for s in parse_layers("relu+tanh")] == ["relu", "tanh"]
    assert split_activation_list("relu,expr:max(x,x*0.1),prelu:per_unit") == ["relu", "expr:max(x,x*0.1)",
                                                                                 "prelu:per_unit"]


def test_per_unit_is_for_learnable_activations_only():
    assert parse_activation("prelu:per_unit").make(width=12).weight.shape == (12,)
    assert parse_activation("swish_beta:per_unit").make(width=5).beta.shape == (5,)
    with pytest.raises(ActlabError, match="per_unit applies to learnable activations only"):
        parse_activation("relu:per_unit")


def test_an_expression_that_fails_on_input_is_caught_when_parsed():
    with pytest.raises(ActlabError, match=r"fails on a test input .*clamp\(x, -1, 1\)"):
        parse_activation("expr:clamp(x)")


@pytest.mark.parametrize("text, message", [
    ("expr:1", "does not depend on x"),
    ("expr:1/0", "fails on a test input .*division by zero"),
    ("expr:x+9**9**9", "too large for a float"),  # Python's integers would take hours to compute it
    ("expr:sqrt(x)", "gives nan at x = -3"),
    ("expr:x*(-8)**(1/3)", "gives complex numbers"),
    ("leaky_relu:nan", "gives nan at x = -3"),
    ("softplus:beta=0", "gives inf"),
])
def test_an_activation_a_network_cannot_train_with_is_refused_when_parsed(text, message):
    """Each of these passed the parser before and then crashed in the diagnostics, hung, or made
    every model diverge: the run must not start."""
    started = time.perf_counter()
    with pytest.raises(ActlabError, match=message):
        parse_activation(text)
    assert time.perf_counter() - started < 5


def test_activations_with_a_removable_singularity_or_over_unit_groups_still_parse(user_package):
    """sin(x)/x is 0/0 only at exactly 0, which a pre-activation never is in practice; a user
    activation may work on groups of units (MaxMin), so it is tried on a batch of several units."""
    assert parse_activation("expr:sin(x)/x").make()(torch.tensor([1.0])).item() == pytest.approx(math.sin(1.0))
    assert parse_activation(f"{user_package}:maxmin").make()(torch.tensor([[1.0, 2.0, 4.0, 3.0]])).tolist() == \
        [[4.0, 3.0, 1.0, 2.0]]


def test_an_expression_parsed_under_no_grad_is_not_taken_for_a_constant():
    with torch.no_grad():
        assert parse_activation("expr:x*sigmoid(x)").make()(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("terms", [150, 1500, 100_000])  # deeper than Python's recursion limit from 1,000 on
def test_a_very_long_expression_is_one_error(terms):
    with pytest.raises(ActlabError, match="too long or too deeply nested"):
        parse_activation("expr:" + "+".join(["x"] * terms))
    assert parse_activation("expr:" + "+".join(["x"] * 40)).make()(torch.ones(2)).tolist() == [40.0, 40.0]


@pytest.mark.parametrize("text, message", [
    ("os:system", "fails on a test batch .*TypeError"),
    ("math:sqrt", "fails on a test batch"),
    ("torch.nn:Linear", "fails on a test batch .*in_features"),
    ("torch:sum", r"returns shape \(\) for a test batch of shape \(7, 12\)"),
])
def test_a_user_activation_that_is_not_a_tensor_function_is_refused_when_parsed(text, message):
    with pytest.raises(ActlabError, match=message):
        parse_activation(text)


def test_a_user_activation_from_torch_still_parses():
    assert torch.equal(parse_activation("torch:tanh").make()(torch.ones(2, 3)), torch.tanh(torch.ones(2, 3)))
    assert isinstance(parse_activation("torch.nn:Tanh").make(), nn.Tanh)
