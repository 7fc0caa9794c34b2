"""The activation registry: one table from name to constructor, with aliases and parameters.

A name as a user writes it, e.g. `relu`, `leaky_relu:0.2`, `elu:alpha=0.5`, `hardtanh:-2,2`,
`prelu:per_unit`, `none`, `expr:x*sigmoid(1.702*x)` (an expression of x, parsed against a
whitelist, never `eval`ed), `relu+tanh` (one per hidden layer) or `mypackage.acts:my_act` (a
function or an `nn.Module` class), is parsed here and nowhere else into an `ActivationSpec`, whose
`make()` builds a fresh module for every layer (so learnable activations and per-layer hooks work).
An unknown name is an error listing close matches. Expressions are compiled by `actlab.expressions`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from actlab.errors import ActlabError
from actlab.expressions import Expression, compile_expression


@dataclass(frozen=True)
class Entry:
    """One registered activation: its constructor, parameters in order, a one-line summary, and the
    facts training needs about it."""

    factory: Callable[..., nn.Module]
    params: tuple[str, ...]
    summary: str
    family: str  # "relu", "smooth", "bounded", "shrink", "identity": used to explain results
    learnable: bool = False  # holds parameters the optimizer trains
    per_unit: bool = False  # can hold one learnable parameter per unit (`prelu:per_unit`)
    deterministic: bool = True  # False: draws random numbers in training (so it cannot share a stacked pass)


class LearnableSwish(nn.Module):
    """x · sigmoid(β·x) with a learnable β: one per layer, or one per unit (`swish_beta:per_unit`)."""

    def __init__(self, num_parameters: int = 1, init: float = 1.0):
        super().__init__()
        self.beta = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta
        if x.dim() > 2 and beta.numel() > 1:  # per channel (dim 1) on a conv layer's output, as PReLU
            beta = beta.view(-1, *[1] * (x.dim() - 2))
        return x * torch.sigmoid(beta * x)


REGISTRY: dict[str, Entry] = {
    "none": Entry(nn.Identity, (), "identity: no non-linearity (the network is linear)", "identity"),
    "relu": Entry(nn.ReLU, (), "max(0, x)", "relu"),
    "leaky_relu": Entry(nn.LeakyReLU, ("negative_slope",), "x if x > 0 else slope·x (slope 0.01)", "relu"),
    "prelu": Entry(nn.PReLU, ("num_parameters", "init"), "leaky ReLU with a learnable slope (init 0.25); "
                   "prelu:per_unit learns one per unit", "relu", learnable=True, per_unit=True),
    "rrelu": Entry(nn.RReLU, ("lower", "upper"), "leaky ReLU with a random slope in training (1/8..1/3)", "relu",
                   deterministic=False),
    "relu6": Entry(nn.ReLU6, (), "min(max(0, x), 6)", "relu"),
    "elu": Entry(nn.ELU, ("alpha",), "x if x > 0 else alpha·(exp(x) − 1) (alpha 1)", "smooth"),
    "selu": Entry(nn.SELU, (), "scale·ELU with alpha 1.6733, scale 1.0507 (self-normalising)", "smooth"),
    "celu": Entry(nn.CELU, ("alpha",), "x if x > 0 else alpha·(exp(x/alpha) − 1) (alpha 1)", "smooth"),
    "gelu": Entry(nn.GELU, ("approximate",), "x·Φ(x) (approximate 'none' or 'tanh')", "smooth"),
    "silu": Entry(nn.SiLU, (), "x·sigmoid(x), also called swish", "smooth"),
    "mish": Entry(nn.Mish, (), "x·tanh(softplus(x))", "smooth"),
    "swish_beta": Entry(LearnableSwish, ("num_parameters", "init"), "x·sigmoid(β·x) with a learnable β (init 1); "
                        "swish_beta:per_unit learns one per unit", "smooth", learnable=True, per_unit=True),
    "softplus": Entry(nn.Softplus, ("beta", "threshold"), "log(1 + exp(beta·x))/beta (beta 1)", "smooth"),
    "hardswish": Entry(nn.Hardswish, (), "x·relu6(x + 3)/6", "smooth"),
    "sigmoid": Entry(nn.Sigmoid, (), "1/(1 + exp(−x)), in (0, 1)", "bounded"),
    "tanh": Entry(nn.Tanh, (), "tanh(x), in (−1, 1)", "bounded"),
    "hardtanh": Entry(nn.Hardtanh, ("min_val", "max_val"), "clamp(x, −1, 1)", "bounded"),
    "hardsigmoid": Entry(nn.Hardsigmoid, (), "relu6(x + 3)/6, in [0, 1]", "bounded"),
    "softsign": Entry(nn.Softsign, (), "x/(1 + |x|), in (−1, 1)", "bounded"),
    "logsigmoid": Entry(nn.LogSigmoid, (), "log(sigmoid(x)), in (−∞, 0)", "bounded"),
    "tanhshrink": Entry(nn.Tanhshrink, (), "x − tanh(x)", "shrink"),
    "hardshrink": Entry(nn.Hardshrink, ("lambd",), "x if |x| > 0.5 else 0", "shrink"),
    "softshrink": Entry(nn.Softshrink, ("lambd",), "x ∓ 0.5 outside [−0.5, 0.5], else 0", "shrink"),
}

ALIASES = {
    "identity": "none", "linear": "none",
    "leakyrelu": "leaky_relu", "lrelu": "leaky_relu", "leaky-relu": "leaky_relu",
    "swish": "silu", "learnable_swish": "swish_beta", "logistic": "sigmoid", "hard_swish": "hardswish",
    "hard_sigmoid": "hardsigmoid", "hard_tanh": "hardtanh", "log_sigmoid": "logsigmoid",
    "soft_plus": "softplus", "tanh_shrink": "tanhshrink",
}


@dataclass(frozen=True)
class ActivationSpec:
    """A parsed activation: `label` is the text as written, `make()` builds a fresh module."""

    label: str
    name: str  # registry key, or the import path of a user activation
    kwargs: tuple[tuple[str, object], ...] = ()
    factory: Callable[..., nn.Module] = field(default=nn.Identity, repr=False, compare=False)
    family: str = "custom"
    learnable: bool = False
    deterministic: bool | None = None  # None: a user's activation, which actlab cannot inspect

    @property
    def stacking_obstacle(self) -> str | None:
        """Why this activation cannot share a stacked pass with other models, or None when it can:
        every model of a stack must draw exactly the random numbers it would draw alone."""
        if self.deterministic is None:
            return f"{self.label} is a user activation, which might draw random numbers in training"
        if not self.deterministic:
            return f"{self.label} draws random numbers in training"
        return None

    def make(self, width: int | None = None) -> nn.Module:
        """A fresh module; `width` (the layer's units) sizes per-unit learnable parameters."""
        kwargs = dict(self.kwargs)
        if kwargs.pop("per_unit", False):
            kwargs["num_parameters"] = width or 1
        return self.factory(**kwargs)

    def __str__(self) -> str:
        return self.label


class _FunctionModule(nn.Module):
    """Wraps a user's elementwise function so it can sit in an `nn.Sequential`."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str):
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def list_activations() -> list[tuple[str, str]]:
    """(name with its parameters, summary) for every registered activation."""
    return [(name + (f":{','.join(e.params)}" if e.params else ""), e.summary)
            for name, e in REGISTRY.items()]


def _parse_value(text: str) -> object:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip().strip("'\"")


def _parse_params(label: str, name: str, entry: Entry, text: str) -> tuple[tuple[str, object], ...]:
    kwargs: dict[str, object] = {}
    parts = [p for p in text.split(",") if p.strip()]
    if any(p.strip() == "per_unit" for p in parts):
        if not entry.per_unit:
            per_unit = [n for n, e in REGISTRY.items() if e.per_unit]
            raise ActlabError(f"activation {label!r}: per_unit applies to learnable activations only "
                              f"({', '.join(per_unit)})")
        kwargs["per_unit"] = True
        parts = [p for p in parts if p.strip() != "per_unit"]
    for position, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if sep:
            key = key.strip()
            if key not in entry.params:
                raise ActlabError(f"activation {label!r}: {name} has no parameter {key!r}; "
                                  f"it takes {', '.join(entry.params) or 'no parameters'}")
        elif position < len(entry.params):
            key, value = entry.params[position], part
        else:
            raise ActlabError(f"activation {label!r}: {name} takes "
                              f"{len(entry.params)} parameter(s) ({', '.join(entry.params) or 'none'})")
        kwargs[key] = _parse_value(value)
    return tuple(kwargs.items())


def _import_user(label: str, path: str, attr: str) -> ActivationSpec:
    try:
        target = getattr(sys.modules.get(path) or importlib.import_module(path), attr)  # __main__: a notebook
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise ActlabError(f"activation {label!r}: cannot import {attr!r} from {path!r} ({exc}); "
                          f"give a function or nn.Module class as package.module:name") from None
    if isinstance(target, type) and issubclass(target, nn.Module):
        spec = ActivationSpec(label, label, (), target)
    elif callable(target):
        spec = ActivationSpec(label, label, (), lambda: _FunctionModule(target, label))
    else:
        raise ActlabError(f"activation {label!r}: {path}.{attr} is neither a function nor an nn.Module class")
    x = torch.linspace(-3, 3, 84).reshape(7, 12)  # 7 examples of 12 units: room for activations over unit groups
    try:
        y = spec.make()(x)
    except Exception as exc:  # the user's code: whatever it raises, the run must not start with it
        raise ActlabError(f"activation {label!r} fails on a test batch ({type(exc).__name__}: {exc}); give a "
                          f"function of a tensor, or an nn.Module class built without arguments, that returns "
                          f"a tensor of the input's shape") from None
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        got = f"shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ActlabError(f"activation {label!r} returns {got} for a test batch of shape {tuple(x.shape)}; an "
                          f"activation must return a tensor of its input's shape")
    return spec


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # `__main__` in a notebook has no spec
        return False


def parse_activation(text: str) -> ActivationSpec:
    """Parse `name[:params]` or `package.module:name` into a spec, checking that it builds."""
    label = text.strip()
    head, _, params = label.partition(":")
    key = head.strip().lower()
    key = ALIASES.get(key, key)
    if key == "expr":
        compile_expression(params)  # every problem with the expression is reported here, once
        x = torch.linspace(-3, 3, 8, requires_grad=True)  # not exactly 0, where sin(x)/x is 0/0 and training never is
        try:
            with torch.enable_grad():  # a caller under no_grad must not make every expression look constant
                y = Expression(params)(x)
        except (TypeError, ValueError, RuntimeError, ArithmeticError) as exc:
            why = "a number in it is too large for a float" if isinstance(exc, OverflowError) else exc
            raise ActlabError(f"expression {params!r} fails on a test input ({why}); check the functions' "
                              f"arguments, e.g. clamp(x, -1, 1)") from None
        if not y.requires_grad:
            raise ActlabError(f"expression {params!r} does not depend on x, so no gradient passes through it; "
                              f"write it in terms of x, e.g. expr:x*sigmoid(x)")
        if y.is_complex():
            raise ActlabError(f"expression {params!r} gives complex numbers (a fractional power of a negative "
                              f"number?); an activation must give real ones, e.g. sign(x)*abs(x)**(1/3)")
        _check_finite(label, y.detach(), x.detach())
        return ActivationSpec(label, "expr", (("text", params),), Expression, "expression", deterministic=True)
    if key not in REGISTRY:
        if params.isidentifier() and ("." in head or head.strip() in sys.modules or _findable(head.strip())):
            return _import_user(label, head.strip(), params)
        names = list(REGISTRY) + list(ALIASES)
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ActlabError(f"unknown activation {label!r}; {hint}run `actlab activations` for the list "
                          f"(or give your own as package.module:name)")
    entry = REGISTRY[key]
    spec = ActivationSpec(label, key, _parse_params(label, key, entry, params), entry.factory, entry.family,
                          entry.learnable, entry.deterministic)
    x = torch.linspace(-3, 3, 7)
    try:
        y = spec.make().eval()(x)  # a value can pass the constructor and fail here
    except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
        raise ActlabError(f"activation {label!r}: bad parameter value ({exc or 'rejected by torch'}); "
                          f"{key} takes {', '.join(entry.params) or 'no parameters'}") from None
    _check_finite(label, y, x, f"; {key} takes {', '.join(entry.params) or 'no parameters'}")
    return spec


def _check_finite(label: str, y: torch.Tensor, x: torch.Tensor, hint: str = "") -> None:
    """An activation that gives inf or NaN on ordinary inputs (`leaky_relu:nan`, `softplus:beta=0`,
    `expr:sqrt(x)`) would only make every model it is in diverge: say so before training."""
    bad = ~torch.isfinite(y)
    if bad.any():
        at = ", ".join(f"{v:g}" for v in x[bad].tolist()[:3])
        raise ActlabError(f"activation {label!r} gives {y[bad][0].item()} at x = {at}: a network with it cannot "
                          f"train{hint}")


def split_activation_list(text: str) -> list[str]:
    """Split a comma-separated flag value, keeping commas that belong to one activation.

    `relu,hardtanh:-2,2,elu:alpha=0.5` → ['relu', 'hardtanh:-2,2', 'elu:alpha=0.5']: a piece that is
    a number or a `key=value` continues the previous activation's parameter list, and commas inside
    parentheses (`expr:clamp(x,-1,1)`) never split.
    """
    pieces, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    items: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        starts_new = piece[0].isalpha() and "=" not in piece.partition(":")[0] and piece != "per_unit"
        if items and not starts_new:
            items[-1] += "," + piece
        else:
            items.append(piece)
    return items


def split_layers(text: str) -> list[str]:
    """`relu+tanh` → ['relu', 'tanh'] (one activation per hidden layer). A `+` splits only where an
    activation name follows it, so `expr:x+sigmoid(x)` stays one expression."""
    parts = text.split("+")
    out = [parts[0]]
    for piece in parts[1:]:
        head = re.match(r"\s*([A-Za-z_][\w.]*)\s*(:|$)", piece)
        name = head.group(1).lower() if head else ""
        if name == "expr" or ALIASES.get(name, name) in REGISTRY:
            out.append(piece)
        else:
            out[-1] += "+" + piece
    return [p.strip() for p in out]


def parse_layers(text: str) -> ActivationSpec | list[ActivationSpec]:
    """One spec for every layer (`relu`), or one per hidden layer (`relu+tanh`)."""
    parts = split_layers(text)
    return parse_activation(parts[0]) if len(parts) == 1 else [parse_activation(p) for p in parts]


def stacking_obstacle(text: str) -> str | None:
    """Why a model with this activation (`relu`, `relu+rrelu`, ...) must train alone, or None."""
    specs = parse_layers(text)
    return next((o for s in (specs if isinstance(specs, list) else [specs]) if (o := s.stacking_obstacle)), None)


def activation_family(text: str) -> str:
    """The family of an activation, or of every layer's when they agree (else `mixed`)."""
    specs = parse_layers(text)
    families = {s.family for s in (specs if isinstance(specs, list) else [specs])}
    return families.pop() if len(families) == 1 else "mixed"


def derivative(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`module(x)` and its elementwise derivative at `x`, by autograd. The module gets a copy of
    `x` that is not a leaf, so activations that work in place are measured too."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = module(x.clone())
        (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), dy


def curve(spec: ActivationSpec, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The activation and its derivative at the points `x`, in eval mode."""
    return derivative(spec.make().eval(), x)
