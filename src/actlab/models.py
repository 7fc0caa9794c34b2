"""The networks actlab trains: an MLP with one activation, its output head, its initialisation.

`build_mlp(784, [128, 128], spec)` is `Linear → act → Linear → act → Linear` (an empty hidden list is
a linear / logistic-regression model). The output head is either plain logits trained with
cross-entropy (the default) or an output non-linearity trained with NLL, the negative mean of the
output at the target class, written by hand as in the classic "neural net from scratch" demo
(reference experiment `mnist-output-activation`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from actlab.activations import ActivationSpec

OUTPUTS = {
    "logits": "raw logits, cross-entropy loss (the usual classifier)",
    "log_softmax": "x − log(Σ exp(x)), NLL loss (equivalent to cross-entropy)",
    "softmax": "exp(x)/Σ exp(x), NLL loss on probabilities",
    "sigmoid": "1/(1 + exp(−x)) per class, NLL loss",
    "tanh": "tanh(x) per class, NLL loss",
}

INITS = {
    "default": "PyTorch's default: kaiming-uniform(a=√5) weights, uniform(±1/√fan_in) biases",
    "lecun_normal": "weights N(0, 1/fan_in), biases zero (SELU's init; = N(0,1)/√784 for 784 inputs)",
    "kaiming_normal": "weights N(0, 2/fan_in), biases zero",
    "kaiming_uniform": "weights U(±√(6/fan_in)), biases zero",
    "xavier_normal": "weights N(0, 2/(fan_in + fan_out)), biases zero",
    "xavier_uniform": "weights U(±√(6/(fan_in + fan_out))), biases zero",
    "orthogonal": "orthogonal weights, biases zero",
}


class OutputActivation(nn.Module):
    """A hand-written output non-linearity, as the from-scratch MNIST demo writes it."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "log_softmax":
            return x - x.exp().sum(-1, keepdim=True).log()
        if self.kind == "softmax":
            e = x.exp()
            return e / e.sum(-1, keepdim=True)
        if self.kind == "sigmoid":
            return 1 / (1 + (-x).exp())
        return x.tanh()

    def extra_repr(self) -> str:
        return self.kind


def init_linear(layer: nn.Linear, scheme: str) -> None:
    """Re-initialise one layer in place; every scheme but `default` zeroes the bias."""
    if scheme == "default":
        return
    w = layer.weight
    if scheme == "lecun_normal":
        nn.init.normal_(w, 0.0, 1.0 / math.sqrt(w.shape[1]))
    elif scheme == "kaiming_normal":
        nn.init.kaiming_normal_(w, nonlinearity="relu")
    elif scheme == "kaiming_uniform":
        nn.init.kaiming_uniform_(w, nonlinearity="relu")
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(w)
    elif scheme == "xavier_uniform":
        nn.init.xavier_uniform_(w)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(w)
    else:
        raise ValueError(f"unknown init {scheme!r}")
    nn.init.zeros_(layer.bias)


def build_mlp(in_features: int, hidden: list[int] | tuple[int, ...],
              activation: ActivationSpec | list[ActivationSpec], num_classes: int = 10, output: str = "logits",
              init: str = "default", dropout: float = 0.0, dropout_kind: str = "standard") -> nn.Sequential:
    """`Linear → act [→ dropout]` per hidden size, then `Linear` to the classes, then the output head.

    `activation` is one spec for every hidden layer or a list with one per layer. Layers are created
    in the same order whatever the activation, so under one seed every activation starts from the
    same weights (the paired design).
    """
    specs = activation if isinstance(activation, list) else [activation] * len(hidden)
    if len(specs) != len(hidden):
        raise ValueError(f"{len(specs)} activations for {len(hidden)} hidden layers")
    layers: list[nn.Module] = []
    width = in_features
    for size, spec in zip(hidden, specs):
        layers += [nn.Linear(width, size), spec.make(width=size)]
        if dropout:
            layers.append(nn.AlphaDropout(dropout) if dropout_kind == "alpha" else nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            init_linear(layer, init)
    if output != "logits":
        layers.append(OutputActivation(output))
    return nn.Sequential(*layers)


def loss_fn(output: str):
    """The loss for an output head: cross-entropy on logits, else NLL on the head's output."""
    if output == "logits":
        return F.cross_entropy
    return lambda out, target: -out.gather(1, target[:, None]).mean()


def linear_layers(model: nn.Sequential) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]
