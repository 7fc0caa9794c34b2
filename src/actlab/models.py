"""The networks actlab trains: an MLP with one activation, its output head, its initialisation,
and `ModelStack`, several such MLPs held as one set of tensors so that they train together.

`build_mlp(784, [128, 128], spec)` is `Linear → act → Linear → act → Linear` (an empty hidden list is
a linear / logistic-regression model). The output head is either plain logits trained with
cross-entropy (the default) or an output non-linearity trained with NLL, the negative mean of the
output at the target class, written by hand as in the classic "neural net from scratch" demo
(reference experiment `mnist-output-activation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from actlab.activations import ActivationSpec

if TYPE_CHECKING:
    from actlab.optimizers import FlatOptimizer

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


def init_linear(layer: nn.Linear | nn.Conv2d, scheme: str) -> None:
    """Re-initialise one weight layer (dense or convolutional) in place; every scheme but `default`
    zeroes the bias. A convolution's fan-in is its input channels × kernel area."""
    if scheme == "default":
        return
    w = layer.weight
    if scheme == "lecun_normal":
        nn.init.normal_(w, 0.0, 1.0 / math.sqrt(w[0].numel()))
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


def linear_layers(model: nn.Sequential) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


# --- many models as one: the tensors a training group steps together ----------------------------

@dataclass(frozen=True)
class HiddenLayer:
    """One hidden layer of one model, as `build_mlp` laid it out."""

    linear: nn.Linear
    activation: nn.Module
    dropout: nn.Module | None  # nn.Dropout or nn.AlphaDropout


def mlp_layers(model: nn.Sequential) -> tuple[list[HiddenLayer], nn.Linear, nn.Module | None]:
    """(hidden layers, output layer, output head or None) of a model built by `build_mlp`."""
    modules = list(model)
    head = modules.pop() if isinstance(modules[-1], OutputActivation) else None
    out = modules.pop()
    hidden, i = [], 0
    while i < len(modules):
        dropout = modules[i + 2] if i + 2 < len(modules) and isinstance(modules[i + 2], DROPOUTS) else None
        hidden.append(HiddenLayer(modules[i], modules[i + 1], dropout))
        i += 3 if dropout is not None else 2
    return hidden, out, head


DROPOUTS = (nn.Dropout, nn.AlphaDropout)
SELU_ALPHA_DROPOUT = 1.7580993408473766  # −scale·alpha of SELU: the value alpha dropout drops to


class ModelStack:
    """Models of one shape held as one flat tensor, so one optimizer and one pass train them all.

    `flat` holds every parameter of every model, layer by layer: the weights of layer 1 of all
    models (models × out × in), their biases (models × out), then layer 2, …, then each model's
    activation parameters. Each model stays an ordinary `nn.Sequential` whose parameters are views
    into `flat`, so evaluation, diagnostics and checkpoints use it as usual, while a training step
    computes all models at once through `weights[l]` / `biases[l]` (views with a leading model
    dimension). Adam, SGD and RMSprop act elementwise, so each model follows exactly the updates it
    would get alone. Models that share a seed sit side by side (`blocks`) and see the same batches:
    their first layers are one wide matrix product.
    """

    def __init__(self, models: list[nn.Sequential], seeds: list[int], generators: list[torch.Generator],
                 losses: list[str] | None = None):
        self.models, self.seeds, self.generators = models, seeds, generators
        self.losses = losses or ["cross_entropy"] * len(models)  # each model's loss (actlab.losses)
        layers = [mlp_layers(m) for m in models]
        self.hidden = [h for h, _, _ in layers]
        self.heads = [head for _, _, head in layers]
        linears = [[layer.linear for layer in h] + [out] for h, out, _ in layers]
        self.blocks = _seed_blocks(seeds)
        self.slots: list[tuple[int, torch.Size]] = []  # (offset, stacked shape) of each weight and bias
        pieces, offset = [], 0
        for depth in range(len(linears[0])):
            for name in ("weight", "bias"):
                stacked = torch.stack([getattr(ls[depth], name).detach() for ls in linears])
                self.slots.append((offset, stacked.shape))
                pieces.append(stacked.reshape(-1))
                offset += stacked.numel()
        self.act_slots: list[list[dict[str, tuple[int, torch.Size]]]] = []  # [model][layer] name → slot
        for hidden in self.hidden:
            per_layer = []
            for layer in hidden:
                named = {}
                for name, p in layer.activation.named_parameters():
                    named[name] = (offset, p.shape)
                    pieces.append(p.detach().reshape(-1))
                    offset += p.numel()
                per_layer.append(named)
            self.act_slots.append(per_layer)
        self.drops = any(layer.dropout is not None and layer.dropout.p > 0 for h in self.hidden for layer in h)
        self._no_noise = [None] * len(self.hidden[0])
        self.flat = nn.Parameter(torch.cat(pieces))
        self.flat.grad = torch.zeros_like(self.flat)
        self._bind(linears)
        self.weights, self.biases, self.act_params = self.views(self.flat.data, squeeze=True)
        self.weight_grads, self.bias_grads, self.act_grads = self.views(self.flat.grad, squeeze=True)

    def __len__(self) -> int:
        return len(self.models)

    @property
    def classes(self) -> int:
        return self.slots[-1][1][-1]  # the output layer's bias: models × classes

    def __repr__(self) -> str:
        return f"ModelStack({len(self)} models, {self.flat.numel():,} parameters in all, seeds {self.seeds})"

    def _bind(self, linears: list[list[nn.Linear]]) -> None:
        """Make every model's parameters views into `flat` (they follow its in-place updates)."""
        weights, biases, acts = self.views(self.flat.data)
        for m, ls in enumerate(linears):
            for depth, layer in enumerate(ls):
                layer.weight = nn.Parameter(weights[depth][m])
                layer.bias = nn.Parameter(biases[depth][m])
            for layer, params in zip(self.hidden[m], acts[m]):
                for name, view in params.items():
                    setattr(layer.activation, name, nn.Parameter(view))

    def views(self, source: torch.Tensor, squeeze: bool = False):
        """(weights, biases, activation parameters) as views into `source` (`flat`, its data or its
        gradient): weights[l] is models × out × in, act_params[m][l] maps names to tensors. With
        `squeeze`, a stack of one model drops the model dimension (out × in): its step then runs
        the plain matrix products of one network, without per-step reshaping."""
        def view(slot):
            offset, shape = slot
            tensor = source[offset:offset + math.prod(shape)].view(shape)
            return tensor[0] if squeeze and len(self.models) == 1 else tensor
        stacked = [view(slot) for slot in self.slots]
        acts = [[{name: source[o:o + math.prod(shape)].view(shape) for name, (o, shape) in layer.items()}
                 for layer in model] for model in self.act_slots]
        return stacked[0::2], stacked[1::2], acts

    def positions(self, keep: list[int]) -> torch.Tensor:
        """Indices into `flat` of the models `keep`, in the layout a stack of just those models has."""
        parts = []
        for offset, shape in self.slots:
            size = math.prod(shape[1:])
            parts += [torch.arange(offset + m * size, offset + (m + 1) * size) for m in keep]
        for m in keep:
            for layer in self.act_slots[m]:
                parts += [torch.arange(offset, offset + math.prod(shape)) for offset, shape in layer.values()]
        return torch.cat(parts).to(self.flat.device)

    def release(self, m: int) -> nn.Sequential:
        """Model m with its own storage again (no longer a view into `flat`), to keep or save."""
        for module in self.models[m]:
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, nn.Parameter(p.detach().clone()))
        return self.models[m]

    def keep(self, kept: list[int], optimizer: FlatOptimizer | None = None) -> ModelStack:
        """A stack of the models `kept` (the others must be released first), carrying their share
        of `optimizer`'s state over to the new flat tensor, which the optimizer steps from then on."""
        stack = ModelStack([self.models[m] for m in kept], [self.seeds[m] for m in kept],
                           [self.generators[m] for m in kept], [self.losses[m] for m in kept])
        if optimizer is not None:
            optimizer.keep(self.positions(kept), stack.flat)
        return stack

    def dropout_noise(self, batch: int) -> list[tuple[torch.Tensor, torch.Tensor | None] | None]:
        """Per hidden layer, (scale, shift) with which this step's dropout maps each model's
        activations (h · scale + shift; None where no model drops out). Each model draws its masks
        from its own generator, so it draws the same masks in a stack as alone."""
        if not self.drops:
            return self._no_noise
        noise = []
        for depth, layers in enumerate(zip(*self.hidden)):
            if all(layer.dropout is None for layer in layers):
                noise.append(None)
                continue
            scales, shifts = [], []
            for layer, generator in zip(layers, self.generators):
                width = layer.linear.out_features
                scale, shift = _dropout_scale_shift(layer.dropout, batch, width, generator, self.flat.device)
                scales.append(scale)
                shifts.append(shift)
            if len(scales) == 1:  # one model: its step computes without a model dimension
                noise.append((scales[0], shifts[0]))
                continue
            any_shift = any(s is not None for s in shifts)
            noise.append((torch.stack(scales),
                          torch.stack([s if s is not None else torch.zeros_like(scales[0]) for s in shifts])
                          if any_shift else None))
        return noise


def _seed_blocks(seeds: list[int]) -> list[tuple[int, int, int]]:
    """(seed, start, end) of each run of models sharing a seed; the models must be sorted by seed."""
    blocks: list[tuple[int, int, int]] = []
    for m, seed in enumerate(seeds):
        if blocks and blocks[-1][0] == seed:
            blocks[-1] = (seed, blocks[-1][1], m + 1)
        elif any(b[0] == seed for b in blocks):
            raise ValueError("the models of a stack must be ordered by seed")
        else:
            blocks.append((seed, m, m + 1))
    return blocks


def _dropout_scale_shift(dropout: nn.Module | None, batch: int, width: int, generator: torch.Generator,
                         device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One model's dropout for one layer and step, as torch's dropout and alpha dropout compute it."""
    if dropout is None or dropout.p == 0:
        return torch.ones(batch, width, device=device), None
    p = dropout.p
    keep = torch.empty(batch, width, device=device).bernoulli_(1 - p, generator=generator)
    if isinstance(dropout, nn.AlphaDropout):
        a = 1.0 / math.sqrt((SELU_ALPHA_DROPOUT ** 2 * p + 1) * (1 - p))
        return keep * a, (keep - 1) * (SELU_ALPHA_DROPOUT * a) + SELU_ALPHA_DROPOUT * a * p
    return keep / (1 - p), None


def linear_stack(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Every model's layer at once: h (models × batch × in) → models × batch × out; one model's
    (squeezed views, batch × in) is the plain matrix product F.linear runs."""
    if weight.dim() == 2:
        return torch.addmm(bias, h, weight.t())
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


def first_layer(stack: ModelStack, xs: list[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The first layer of every model: the models of one seed share their input, so theirs is one
    wide matrix product `x @ [W_a | W_b | …]`; returns models × batch × out (batch × out for one
    model's squeezed views)."""
    if weight.dim() == 2:
        return torch.addmm(bias, xs[0], weight.t())
    outs = []
    for (_, start, end), x in zip(stack.blocks, xs):
        w, b = weight[start:end], bias[start:end]
        z = torch.addmm(b.reshape(-1), x, w.reshape(-1, w.shape[-1]).t())
        outs.append(z.view(len(x), end - start, -1).transpose(0, 1))
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def apply_per_model(functions: list, h: torch.Tensor) -> torch.Tensor:
    """functions[m](h[m]) for every model m, stacked again; one model's (batch × width) as it is."""
    if len(functions) == 1 and h.dim() == 2:
        return functions[0](h)
    return torch.stack([f(h[m]) for m, f in enumerate(functions)])


@dataclass
class Tape:
    """What a stacked forward pass keeps for the backward pass, per hidden layer."""

    inputs: list[torch.Tensor]  # the input of each layer after the first (after dropout)
    pre: list[torch.Tensor]  # the pre-activations
    post: list[torch.Tensor]  # the activation outputs (before dropout)
    scales: list[torch.Tensor | None]  # the dropout scale applied, or None


def stack_forward(stack: ModelStack, xs: list[torch.Tensor], weights: list[torch.Tensor], biases: list[torch.Tensor],
                  activate, noise) -> tuple[torch.Tensor, Tape]:
    """Every model's logits (models × batch × classes) for this step's inputs (one per seed block),
    with `activate(depth, z)` applying each model's activation and `noise` its dropout (from
    `ModelStack.dropout_noise`, or None entries in evaluation)."""
    tape = Tape([], [], [], [])
    z = first_layer(stack, xs, weights[0], biases[0])
    for depth in range(1, len(weights)):
        h = activate(depth - 1, z)
        tape.pre.append(z)
        tape.post.append(h)
        scale, shift = noise[depth - 1] if noise[depth - 1] is not None else (None, None)
        if scale is not None:
            h = h * scale if shift is None else torch.addcmul(shift, h, scale)
        tape.scales.append(scale)
        tape.inputs.append(h)
        z = linear_stack(h, weights[depth], biases[depth])
    return z, tape
