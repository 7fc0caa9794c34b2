"""The convolutional family (`--model cnn`): a LeNet-5-style network, and `ConvStack`, several such
networks trained as one.

`build_cnn` makes `Unflatten → [Conv2d → (BatchNorm2d) → activation → 2×2 pool] per --conv →
Flatten → [Linear → (BatchNorm1d) → activation → (dropout)] per --hidden → Linear → (head)`, so a
model takes the same N×784 rows as an MLP and sees them as N×1×28×28 images (a view, no copy). The
first conv pads to keep 28×28 (LeNet-5's 32×32 input); the others do not pad.

`ConvStack` holds M such models' parameters in one flat tensor, layer by layer (each layer's
weights of every model side by side, as `ModelStack` does for MLPs), and its step computes all of
them at once: the models of a seed share their input, so their first conv is one wide conv; later
convs are grouped (groups = M); pooling acts per channel; dense layers are batched matrix
products; batch norm normalises each model's channels over its own batch. A stack of one model is
the same code with M = 1, so the path a GPU takes is the path every CPU run tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from actlab.activations import ActivationSpec
from actlab.losses import model_losses
from actlab.models import DROPOUTS, OutputActivation, _dropout_scale_shift, _seed_blocks, apply_per_model, init_linear

IMAGE = (1, 28, 28)
STRUCTURE = (nn.Unflatten, nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten,
             nn.Linear, *DROPOUTS, OutputActivation)  # every other module of a cnn is an activation


def conv_layers(conv: tuple[int, ...], kernel: int) -> list[tuple[int, int, int, int]]:
    """(input channels, output channels, image side after the conv, after its 2×2 pool) of each conv
    layer; a side may reach 0 or below (a stack too deep)."""
    layers, side = [], IMAGE[1]
    for i, (c_in, c_out) in enumerate(zip((IMAGE[0], *conv[:-1]), conv)):
        convolved = side + 2 * (kernel // 2 if i == 0 else 0) - kernel + 1
        side = convolved // 2 if convolved > 0 else convolved
        layers.append((c_in, c_out, convolved, side))
    return layers


def conv_sizes(conv: tuple[int, ...], kernel: int) -> list[int]:
    """The image side after each conv layer and its pool."""
    return [pooled for *_, pooled in conv_layers(conv, kernel)]


def flat_features(conv: tuple[int, ...], kernel: int) -> int:
    return conv[-1] * conv_sizes(conv, kernel)[-1] ** 2


def build_cnn(conv: tuple[int, ...], kernel: int, pool: str, hidden: tuple[int, ...],
              activation: ActivationSpec | list[ActivationSpec], classes: int = 10, output: str = "logits",
              init: str = "default", dropout: float = 0.0, dropout_kind: str = "standard",
              batch_norm: bool = False) -> nn.Sequential:
    """The network, with one activation module per hidden layer (`activation`: one spec for all, or
    one per conv and dense layer); learnable activations get one parameter per channel or unit.
    Layers are created in the same order whatever the activation: one seed, one set of weights."""
    specs = activation if isinstance(activation, list) else [activation] * (len(conv) + len(hidden))
    if len(specs) != len(conv) + len(hidden):
        raise ValueError(f"{len(specs)} activations for {len(conv)} conv and {len(hidden)} dense layers")
    layers: list[nn.Module] = [nn.Unflatten(1, IMAGE)]
    channels = IMAGE[0]
    for i, (out, spec) in enumerate(zip(conv, specs)):
        layers.append(nn.Conv2d(channels, out, kernel, padding=kernel // 2 if i == 0 else 0))
        layers += [nn.BatchNorm2d(out)] if batch_norm else []
        layers += [spec.make(width=out), nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)]
        channels = out
    layers.append(nn.Flatten())
    width = flat_features(conv, kernel)
    for size, spec in zip(hidden, specs[len(conv):]):
        layers += [nn.Linear(width, size)] + ([nn.BatchNorm1d(size)] if batch_norm else []) + [spec.make(width=size)]
        if dropout:
            layers.append(nn.AlphaDropout(dropout) if dropout_kind == "alpha" else nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, classes))
    for layer in layers:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            init_linear(layer, init)
    if output != "logits":
        layers.append(OutputActivation(output))
    return nn.Sequential(*layers)


def is_activation(module: nn.Module) -> bool:
    return not isinstance(module, STRUCTURE)


class ConvStack:
    """CNNs of one shape trained together: parameters in `flat` (one optimizer steps them), batch-norm
    running statistics in `buffers`; each model's own tensors are views into both, so evaluation,
    diagnostics and checkpoints use the models as usual. Offers what the training loop asks of a
    `ModelStack`, with its own `step` (autograd)."""

    def __init__(self, models: list[nn.Sequential], seeds: list[int], generators: list[torch.Generator],
                 losses: list[str] | None = None):
        self.models, self.seeds, self.generators = models, seeds, generators
        self.losses = losses or ["cross_entropy"] * len(models)
        self.blocks = _seed_blocks(seeds)
        # model 0's modules but its output head: the structure every model shares (heads may differ)
        self.layout = [module for module in models[0] if not isinstance(module, OutputActivation)]
        self.heads = [m[-1] if isinstance(m[-1], OutputActivation) else None for m in models]
        self.slots: dict[tuple[int, str], tuple[int, torch.Size]] = {}  # (module index, name) → offset, stacked shape
        self.act_slots: list[dict[int, dict[str, tuple[int, torch.Size]]]] = [{} for _ in models]
        pieces, offset = [], 0
        for i, module in enumerate(self.layout):
            if is_activation(module):
                continue
            for name, _ in module.named_parameters(recurse=False):
                stacked = torch.stack([getattr(m[i], name).detach() for m in models])
                self.slots[i, name] = (offset, stacked.shape)
                pieces.append(stacked.reshape(-1))
                offset += stacked.numel()
        for m, model in enumerate(models):
            for i, module in enumerate(model):
                if is_activation(module):
                    for name, p in module.named_parameters():
                        self.act_slots[m].setdefault(i, {})[name] = (offset, p.shape)
                        pieces.append(p.detach().reshape(-1))
                        offset += p.numel()
        self.flat = nn.Parameter(torch.cat(pieces))
        self.flat.grad = torch.zeros_like(self.flat)
        self.buffers = {(i, name): torch.stack([getattr(m[i], name).detach() for m in models]).clone()
                        for i, module in enumerate(self.layout) if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
                        for name in ("running_mean", "running_var")}
        self.classes = self.layout[-1].out_features
        self._bind()

    def __len__(self) -> int:
        return len(self.models)

    def __repr__(self) -> str:
        return f"ConvStack({len(self)} models, {self.flat.numel():,} parameters in all, seeds {self.seeds})"

    def _view(self, source: torch.Tensor, slot: tuple[int, torch.Size]) -> torch.Tensor:
        offset, shape = slot
        return source[offset:offset + math.prod(shape)].view(shape)

    def _bind(self) -> None:
        """Make every model's parameters and running statistics views into the stack's tensors."""
        for (i, name), slot in self.slots.items():
            stacked = self._view(self.flat.data, slot)
            for m, model in enumerate(self.models):
                setattr(model[i], name, nn.Parameter(stacked[m]))
        for m, model in enumerate(self.models):
            for i, named in self.act_slots[m].items():
                for name, slot in named.items():
                    setattr(model[i], name, nn.Parameter(self._view(self.flat.data, slot)))
            for (i, name), stacked in self.buffers.items():
                setattr(model[i], name, stacked[m])

    def positions(self, keep: list[int]) -> torch.Tensor:
        """Indices into `flat` of the models `keep`, in the layout a stack of just those models has."""
        parts = []
        for offset, shape in self.slots.values():
            size = math.prod(shape[1:])
            parts += [torch.arange(offset + m * size, offset + (m + 1) * size) for m in keep]
        for m in keep:
            parts += [torch.arange(o, o + math.prod(shape)) for named in self.act_slots[m].values()
                      for o, shape in named.values()]
        return torch.cat(parts).to(self.flat.device)

    def release(self, m: int) -> nn.Sequential:
        """Model m with its own storage again, to keep or save."""
        for module in self.models[m]:
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, nn.Parameter(p.detach().clone()))
            for name, b in list(module.named_buffers(recurse=False)):
                setattr(module, name, b.clone())
        return self.models[m]

    def keep(self, kept: list[int], optimizer=None) -> ConvStack:
        """A stack of the models `kept` (the others released first), carrying their optimizer state."""
        stack = ConvStack([self.models[m] for m in kept], [self.seeds[m] for m in kept],
                          [self.generators[m] for m in kept], [self.losses[m] for m in kept])
        if optimizer is not None:
            optimizer.keep(self.positions(kept), stack.flat)
        return stack

    def dropout_noise(self, batch: int) -> dict[int, tuple[torch.Tensor, torch.Tensor | None]]:
        """Per dropout module (by index), each model's mask for this step as (scale, shift), drawn
        from the model's own generator: the same masks in a stack as alone."""
        noise = {}
        for i, module in enumerate(self.layout):
            if isinstance(module, DROPOUTS) and module.p > 0:
                width = _width_before(self.layout, i)
                pairs = [_dropout_scale_shift(m[i], batch, width, g, self.flat.device)
                         for m, g in zip(self.models, self.generators)]
                scale = torch.stack([s for s, _ in pairs])
                shift = None if all(s is None for _, s in pairs) else \
                    torch.stack([s if s is not None else torch.zeros_like(pairs[0][0]) for _, s in pairs])
                noise[i] = (scale, shift)
        return noise

    def forward(self, xs: list[torch.Tensor], flat: torch.Tensor, noise: dict) -> torch.Tensor:
        """Every model's output (models × batch × classes) for this step's inputs (one per seed
        block), computed from `flat` so that autograd reaches it. Conv stages hold the models'
        channels side by side (batch × models·channels × H × W), dense stages models × batch × width."""
        models, h = len(self), None
        for i, module in enumerate(self.layout):
            param = {name: self._view(flat, slot) for (j, name), slot in self.slots.items() if j == i}
            if isinstance(module, nn.Unflatten):
                xs = [x.view(len(x), *IMAGE) for x in xs]
            elif isinstance(module, nn.Conv2d):
                h = self._conv(module, xs if h is None else h, param)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                h = self._batch_norm(module, h, param, i)
            elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
                h = module(h)
            elif isinstance(module, nn.Flatten):
                h = h.reshape(len(h), models, -1).transpose(0, 1)
            elif isinstance(module, nn.Linear):
                w, b = param["weight"], param["bias"]
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            elif isinstance(module, DROPOUTS):
                if i in noise:
                    scale, shift = noise[i]
                    h = h * scale if shift is None else torch.addcmul(shift, h, scale)
            else:
                h = self._activate(i, h, flat)
        if any(head is not None for head in self.heads):
            h = apply_per_model([head or (lambda t: t) for head in self.heads], h)
        return h

    def _conv(self, module: nn.Conv2d, h, param: dict) -> torch.Tensor:
        w, b = param["weight"], param["bias"]  # models × out × in × k × k, models × out
        pad = module.padding
        if isinstance(h, list):  # the first conv: the models of a seed block share its images
            outs = [F.conv2d(x, w[s:e].reshape(-1, *w.shape[2:]), b[s:e].reshape(-1), padding=pad)
                    for (_, s, e), x in zip(self.blocks, h)]
            return outs[0] if len(outs) == 1 else torch.cat(outs, 1)
        return F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), padding=pad, groups=len(self))

    def _batch_norm(self, module: nn.Module, h: torch.Tensor, param: dict, i: int) -> torch.Tensor:
        mean, var = self.buffers[i, "running_mean"].view(-1), self.buffers[i, "running_var"].view(-1)
        w, b = param["weight"].reshape(-1), param["bias"].reshape(-1)
        if h.dim() == 4:
            return F.batch_norm(h, mean, var, w, b, True, module.momentum, module.eps)
        models, batch, width = h.shape
        flat = h.transpose(0, 1).reshape(batch, models * width)
        return F.batch_norm(flat, mean, var, w, b, True, module.momentum, module.eps) \
            .view(batch, models, width).transpose(0, 1)

    def _activate(self, i: int, h: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        def function(m: int) -> Callable:
            module, named = self.models[m][i], self.act_slots[m].get(i)
            if not named:
                return module
            params = {name: self._view(flat, slot) for name, slot in named.items()}
            return lambda z: torch.func.functional_call(module, params, (z,))
        functions = [function(m) for m in range(len(self))]
        if h.dim() == 3:
            return apply_per_model(functions, h)
        batch, _, height, width = h.shape
        per_model = h.view(batch, len(self), -1, height, width)
        if len(self) == 1:
            return functions[0](per_model[:, 0]).view_as(h)
        return torch.stack([f(per_model[:, m]) for m, f in enumerate(functions)], 1).view_as(h)

    def step(self, precision) -> Callable:
        """The training step: (inputs, labels, noise, out=None) → (outputs, loss per model), the
        gradient written into `flat.grad` for the optimizer."""
        def step(xs: list[torch.Tensor], y: torch.Tensor, noise, out: torch.Tensor | None = None):
            with precision:
                outputs = self.forward(xs, self.flat, noise)
                losses = model_losses(outputs, y.view(len(self), -1), self.heads, self.losses)
            self.flat.grad.zero_()
            losses.sum().backward()
            outputs = outputs.detach()
            if out is not None:
                out.copy_(outputs[0] if out.dim() == 2 else outputs)
            return (outputs[0] if len(self) == 1 else outputs), losses.detach()
        return step


def _width_before(layout: list[nn.Module], i: int) -> int:
    """The width of the dense layer a dropout module at index i follows."""
    return next(m.out_features for m in reversed(layout[:i]) if isinstance(m, nn.Linear))
