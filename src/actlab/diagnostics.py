"""What goes with an activation's result: measurements of the network on a fixed batch of images.

Per hidden layer (`hidden1`, … in an MLP; `conv1`, … then `hidden1`, … in a CNN, where a conv
layer's units are its channels, each measured over every position of every image), at
initialisation, after every epoch, and for the best-validation checkpoint that was tested (stage
`best`), on the same batch for every activation of a seed (the first `DIAGNOSTIC_EXAMPLES`
images of the seed's training split):
- `dead_fraction`: units whose output is zero (|a| ≤ 1e-8) for every example of the batch; such a
  unit passes no gradient for these images (the ReLU family's failure mode);
- `saturated_fraction`: pre-activations where the activation's derivative (autograd) is below
  `SATURATED_DERIVATIVE` (0.05) in absolute value, and `max_derivative`, the activation's largest
  |derivative| over [-20, 20], to read it against (sigmoid's never exceeds 0.25; for the ReLU
  family the fraction is the inputs on the flat side);
- `grad_norm`: the norm of the loss gradient w.r.t. the layer's weights (every weight layer,
  `linear1`, … and a CNN's `conv1`, …, the output layer included), and `grad_ratio_first_last`,
  first layer's over the last's (≪ 1: vanishing gradients);
- `never_positive_fraction`: units whose input is ≤ 0 for every example of the batch: for ReLU the
  same units as `dead_fraction`, for leaky ReLU and other activations with a sloped negative side the
  analogue (such a unit never reaches its positive side), so that both are described with one quantity;
- `act_mean`, `act_std`: the layer output's statistics (SELU's self-normalisation keeps them
  near 0 and 1);
- `param_<name>`: the current value of a learnable activation's parameter (e.g. PReLU's slope).

Each metric is one entry in `METRICS` (`register` adds one): how it is measured, per hidden layer
or per weight gradient, and where the report shows it (a panel of the diagnostics figure, a column
of its table). The run writes every registered metric's rows to diagnostics.csv.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from actlab.activations import derivative


DIAGNOSTIC_EXAMPLES = 2000
DEAD_EPS = 1e-8
SATURATED_DERIVATIVE = 0.05


_MAX_DERIVATIVE: dict[tuple, float] = {}  # parameter-free activations: the value never changes


def max_derivative(activation: nn.Module, width: int = 1) -> float:
    """The activation's largest |derivative| over [-20, 20] (the scale saturation is judged on),
    taken on a grid of `width` units so per-unit and learnable activations are measured as they are."""
    learnable = any(True for _ in activation.parameters())
    # the class itself (a notebook may define one of the same name again) and, for a wrapped function, it
    key = (id(type(activation)), repr(activation), id(getattr(activation, "fn", None)))
    if not learnable:
        if key in _MAX_DERIVATIVE:
            return _MAX_DERIVATIVE[key]
        width = 1
    was_training = activation.training
    activation.eval()
    try:
        x = torch.linspace(-20, 20, 4001, device=_device_of(activation))[:, None].expand(-1, width)
        _, dy = derivative(activation, x)
    finally:
        activation.train(was_training)
    value = float(dy.abs().max())
    if not learnable:
        _MAX_DERIVATIVE[key] = value
    return value


def _device_of(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


WEIGHTS = (nn.Linear, nn.Conv2d)  # the layers whose weight gradients are measured
PRE = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)  # what an activation's input comes out of


def hidden_layer_io(model: nn.Sequential, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, nn.Module]]:
    """(pre-activation, activation output, activation module) of each hidden layer for input x; a
    conv layer's as (positions × channels), so every metric reads units as columns."""
    return [(units_last(pre), units_last(out), act) for pre, out, act in _forward_recording(model, x)[0]]


def units_last(t: torch.Tensor) -> torch.Tensor:
    """A conv layer's N × C × H × W output as (N·H·W) × C: one column per channel (unit)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]) if t.dim() == 4 else t


def _forward_recording(model: nn.Sequential,
                       x: torch.Tensor) -> tuple[list[tuple[torch.Tensor, torch.Tensor, nn.Module]], torch.Tensor]:
    """Each hidden layer's (pre-activation, output, activation) and the model's output, from one pass."""
    layers = []
    h, pre = x, None  # pre: the output of the weight (or batch-norm) layer just before, if the last module was one
    for module in model:
        if isinstance(module, PRE):
            h = pre = module(h)
            continue
        h = module(h.clone() if pre is not None else h)  # clone: an activation may work in place, and `pre` is kept
        if pre is not None and type(module).__name__ != "OutputActivation":
            layers.append((pre, h, module))
        pre = None
    return layers, h


def layer_names(model: nn.Sequential) -> tuple[list[str], list[str]]:
    """(hidden layers, weight layers) as diagnostics.csv names them: `conv1`, …, `hidden1`, … for the
    activations after conv and dense layers; `conv1`, …, `linear1`, … for the weight layers."""
    hidden, weights, count = [], [], {"conv": 0, "linear": 0, "hidden": 0}
    kind = None  # the kind of weight layer the next module's input comes out of, if any
    for module in model:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
            count[kind] += 1
            weights.append(f"{kind}{count[kind]}")
        elif isinstance(module, PRE):  # batch norm, between a weight layer and its activation
            continue
        elif kind is not None and type(module).__name__ != "OutputActivation":
            if kind == "linear":
                count["hidden"] += 1
            hidden.append(f"conv{count['conv']}" if kind == "conv" else f"hidden{count['hidden']}")
            kind = None
        else:
            kind = None
    return hidden, weights


def dead_unit_fraction(outputs: torch.Tensor, eps: float = DEAD_EPS) -> float:
    """Fraction of units (columns) whose output is within eps of zero for every example (row)."""
    return float((outputs.abs() <= eps).all(dim=0).float().mean())


def never_positive_fraction(pre: torch.Tensor) -> float:
    """Fraction of units (columns) whose input (pre-activation) is ≤ 0 for every example (row)."""
    return float((pre <= 0).all(dim=0).float().mean())


def saturated_fraction(pre: torch.Tensor, activation: nn.Module, threshold: float = SATURATED_DERIVATIVE) -> float:
    """Fraction of pre-activation values where |f'(x)| < threshold."""
    _, dy = derivative(activation, pre)
    return float((dy.abs() < threshold).float().mean())


@dataclass(frozen=True)
class Metric:
    """One diagnostic metric: what it measures and where the report shows it."""

    name: str
    scope: str  # "hidden": measure(pre, out, activation) per hidden layer; "linear": measure(weight_grad) per layer
    measure: Callable[..., float]
    plot: bool = False  # a panel of the diagnostics figure, at initialisation and at the end
    log_scale: bool = False  # that panel's axis
    column: bool = False  # a column "init → final" of the report's diagnostics table (beyond its built-in ones)
    words: str | dict[str, str] = ""  # its title: a message key, or the title itself by language ("en" required)

    def title(self, w) -> str:
        """Its title in the report's language (`w`: actlab.messages.Words)."""
        if isinstance(self.words, str):
            return w.plain(self.words)
        return self.words.get(w.lang, self.words["en"])


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric; every run from then on measures it and the report shows it as it asks."""
    if metric.scope not in ("hidden", "linear"):
        raise ValueError(f"metric {metric.name!r}: scope must be 'hidden' or 'linear'")
    METRICS[metric.name] = metric
    return metric


for _metric in (  # in the order diagnostics.csv lists them within a layer
        Metric("dead_fraction", "hidden", lambda pre, out, act: dead_unit_fraction(out), plot=True, words="plot.dead"),
        Metric("saturated_fraction", "hidden", lambda pre, out, act: saturated_fraction(pre, act), plot=True,
               words="plot.saturated"),
        Metric("max_derivative", "hidden", lambda pre, out, act: max_derivative(act, pre.shape[1]),
               words="diagnostics.max_derivative"),
        Metric("never_positive_fraction", "hidden", lambda pre, out, act: never_positive_fraction(pre), column=True,
               words="diagnostics.never_positive"),
        Metric("act_mean", "hidden", lambda pre, out, act: float(out.mean()), words="diagnostics.output_stats"),
        Metric("act_std", "hidden", lambda pre, out, act: float(out.std()), words="diagnostics.output_stats"),
        Metric("grad_norm", "linear", lambda grad: float(grad.norm()), plot=True, log_scale=True,
               words="plot.grad_norm")):
    register(_metric)


def measure(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, loss) -> list[tuple[str, str, float]]:
    """(layer, metric, value) rows for the model on (x, y); the model's mode and grads are restored.

    Learnable activations add their parameters' current values per layer (`param_<name>`, the mean
    over units, and `param_<name>_std` when there is one per unit).
    """
    was_training = model.training
    weights = [m for m in model if isinstance(m, WEIGHTS)]
    hidden_names, weight_names = layer_names(model)
    model.eval()
    try:
        rows: list[tuple[str, str, float]] = []
        with torch.enable_grad():  # one forward pass for the layers' statistics and the weight gradients
            layers, output = _forward_recording(model, x)
            grads = torch.autograd.grad(loss(output, y), [m.weight for m in weights])
        with torch.no_grad():
            for layer, (pre, out, act) in zip(hidden_names, layers, strict=True):
                pre, out = units_last(pre.detach()), units_last(out.detach())
                rows += [(layer, m.name, m.measure(pre, out, act)) for m in METRICS.values() if m.scope == "hidden"]
                for name, param in act.named_parameters():
                    rows.append((layer, f"param_{name}", float(param.mean())))
                    if param.numel() > 1:
                        rows.append((layer, f"param_{name}_std", float(param.std())))
    finally:
        model.train(was_training)
    with torch.no_grad():
        rows += [(name, m.name, m.measure(g)) for m in METRICS.values() if m.scope == "linear"
                 for name, g in zip(weight_names, grads)]
    norms = [float(g.norm()) for g in grads]
    if len(norms) > 1:
        rows.append(("all", "grad_ratio_first_last", norms[0] / norms[-1] if norms[-1] else float("inf")))
    return rows


def layer_histograms(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, loss) -> dict[str, torch.Tensor]:
    """Per-layer tensors for histograms: each hidden layer's activations and each linear layer's
    weight gradient, on the diagnostic batch (eval mode; the model's mode is restored)."""
    was_training = model.training
    weights = [m for m in model if isinstance(m, WEIGHTS)]
    hidden_names, weight_names = layer_names(model)
    model.eval()
    try:
        with torch.enable_grad():  # one forward pass for the activations and the weight gradients, as `measure`
            layers, output = _forward_recording(model, x)
            grads = torch.autograd.grad(loss(output, y), [m.weight for m in weights])
        tensors = {f"activations/{name}": out.detach().cpu() for name, (_, out, _) in zip(hidden_names, layers)}
    finally:
        model.train(was_training)
    tensors.update({f"weight_grad/{name}": g.cpu() for name, g in zip(weight_names, grads)})
    return tensors
