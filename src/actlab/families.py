"""Model families: each kind of network actlab trains is one entry here (`--model NAME`).

A family says how to build one model for an activation and output head (`build`, called under the
model's seed so every activation of a seed starts from the same weights), how large it is for a run's
plan and memory check (`weights`, `parameters`, `widths`), and how its models train together
(`stack`: the MLP's `ModelStack`, with actlab's hand-written backward pass; the CNN's `ConvStack`).
A family without one trains each model alone through `ModuleStack`: any `nn.Module`, its parameters
held in one flat tensor that actlab's optimizers step, its gradients from autograd. Diagnostics read
a model that is an `nn.Sequential` of weight layers (Linear, Conv2d) and activation modules
(`actlab.diagnostics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from actlab.activations import parse_layers
from actlab.convnets import ConvStack, build_cnn, conv_layers, flat_features
from actlab.losses import loss_fn
from actlab.models import ModelStack, build_mlp

if TYPE_CHECKING:  # the configuration is passed down; no family reads or builds one
    from actlab.config import Config

CLASSES = 10  # MNIST and Fashion-MNIST
PIXELS = 784


@dataclass(frozen=True)
class ModelFamily:
    """One kind of network: how it is built and sized, and how its models train."""

    name: str
    summary: str
    build: Callable[[str, str, Config, int], nn.Module]  # (activation, output, config, in_features) → model
    weights: Callable[[Config], int]  # multiply-adds per example of one forward pass
    parameters: Callable[[Config], int]
    widths: Callable[[Config], list[int]]  # each layer's width, input and output included (memory per example)
    # (models, seeds, generators, losses) → the stack they train as; None: each model alone (ModuleStack)
    stack: Callable | None = None
    hand_backward: bool = False  # its stacks can train with actlab's hand-written backward pass
    # its training time against its multiply-adds at the measured GEMM rate, beside the MLP's (for the
    # plan's estimate; the cnn's 5.5 measured by `actlab run --preset mnist-lenet-activations` on 2 cores)
    step_overhead: float = 1.0

    @property
    def stacks(self) -> bool:
        """Its models can share stacked passes."""
        return self.stack is not None


FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Add a family; `--model NAME` (and `model = "NAME"`) then trains it."""
    FAMILIES[family.name] = family
    return family


def family_of(config: Config) -> ModelFamily:
    return FAMILIES[config.model.family]


def _mlp_sizes(config: Config) -> list[int]:
    return [PIXELS, *config.model.hidden, CLASSES]


def _build_mlp(activation: str, output: str, config: Config, in_features: int) -> nn.Module:
    m = config.model
    return build_mlp(in_features, m.hidden, parse_layers(activation), CLASSES, output, m.init_for(activation),
                     m.dropout, m.dropout_kind_for(activation))


register(ModelFamily(
    "mlp", "fully connected: Linear → activation per hidden layer (--hidden), then Linear to the classes",
    _build_mlp, weights=lambda c: sum(i * o for i, o in zip(_mlp_sizes(c)[:-1], _mlp_sizes(c)[1:])),
    parameters=lambda c: sum(i * o + o for i, o in zip(_mlp_sizes(c)[:-1], _mlp_sizes(c)[1:])),
    widths=_mlp_sizes, stack=ModelStack, hand_backward=True))


def _build_cnn(activation: str, output: str, config: Config, in_features: int) -> nn.Module:
    m = config.model
    return build_cnn(m.conv, m.kernel, m.pool, m.hidden, parse_layers(activation), CLASSES, output,
                     m.init_for(activation), m.dropout, m.dropout_kind_for(activation), m.batch_norm)


def _cnn_layers(config: Config) -> list[tuple[int, int, int]]:
    """(input channels, output channels, output side before pooling) of each conv layer."""
    return [(c_in, c_out, side) for c_in, c_out, side, _ in conv_layers(config.model.conv, config.model.kernel)]


def _cnn_dense(config: Config) -> list[int]:
    return [flat_features(config.model.conv, config.model.kernel), *config.model.hidden, CLASSES]


def _cnn_weights(config: Config) -> int:
    k2, dense = config.model.kernel ** 2, _cnn_dense(config)
    return (sum(i * o * k2 * s * s for i, o, s in _cnn_layers(config))
            + sum(i * o for i, o in zip(dense[:-1], dense[1:])))


def _cnn_parameters(config: Config) -> int:
    k2, dense, norm = config.model.kernel ** 2, _cnn_dense(config), 2 if config.model.batch_norm else 0
    return (sum(i * o * k2 + o + norm * o for i, o, _ in _cnn_layers(config))
            + sum(i * o + o for i, o in zip(dense[:-1], dense[1:])) + norm * sum(config.model.hidden))


def _cnn_widths(config: Config) -> list[int]:
    convs = [n for _, o, s in _cnn_layers(config) for n in (o * s * s, o * s * s, o * (s // 2) ** 2)]
    return [PIXELS, *convs, *_cnn_dense(config)]


register(ModelFamily(
    "cnn", "LeNet-5 style: conv → activation → 2×2 pool per --conv, then Linear → activation per --hidden, then "
    "Linear to the classes (--conv 6,16 --hidden 120,84 is LeNet-5)",
    _build_cnn, weights=_cnn_weights, parameters=_cnn_parameters, widths=_cnn_widths, stack=ConvStack,
    step_overhead=5.5))


class ModuleStack:
    """One model of any family, trained as a stack of one: its parameters become views into one
    flat tensor (`flat`, stepped by actlab's optimizers), and a step takes its gradients from
    autograd. It offers what the training loop asks of a `ModelStack`."""

    def __init__(self, model: nn.Module, seed: int, generator: torch.Generator, output: str,
                 loss: str = "cross_entropy"):
        self.models, self.seeds, self.generators = [model], [seed], [generator]
        self.blocks = [(seed, 0, 1)]
        self.output, self.loss = output, loss
        params = list(model.parameters())
        self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        for module in model.modules():
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, nn.Parameter(self.flat.data[offset:offset + p.numel()].view(p.shape)))
                offset += p.numel()
        self.params = list(model.parameters())
        self.classes = CLASSES

    def __len__(self) -> int:
        return 1

    def dropout_noise(self, batch: int) -> list:
        return []  # the model's own dropout modules draw their masks

    def release(self, m: int) -> nn.Module:
        """The model with its own storage again (no longer views into `flat`), to keep or save."""
        for module in self.models[m].modules():
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, nn.Parameter(p.detach().clone()))
        return self.models[m]

    def step(self, precision) -> Callable:
        """The training step: (inputs, labels, noise, out=None) → (outputs, loss per model), with the
        gradient written into `flat.grad` for the optimizer."""
        model, loss = self.models[0], loss_fn(self.output, self.loss)

        def step(xs: list[torch.Tensor], y: torch.Tensor, noise, out: torch.Tensor | None = None):
            with precision:
                outputs = model(xs[0])
                value = loss(outputs, y)
            grads = torch.autograd.grad(value, self.params)
            torch.cat([g.reshape(-1) for g in grads], out=self.flat.grad)
            if out is not None:
                out.copy_(outputs.detach())
            return outputs.detach(), value.detach().view(1)
        return step


def memory_parts(config: Config) -> dict[str, int]:
    """Memory one model needs while it trains, by what sets it (bytes): its parameters with their
    gradients, optimizer state and copies, plus an epoch's outputs; one training batch's
    activations; one evaluation chunk's."""
    family, examples = family_of(config), min(60000, config.data.train_subset or 60000)
    widths = family.widths(config)
    return {"layers": family.parameters(config) * 4 * 7 + 60000 * CLASSES * 4,
            "batch_size": min(config.optim.batch_size, examples) * sum(widths) * 4 * 4,
            "eval_batch_size": min(config.run.eval_batch_size, 70000) * max(widths) * 4 * 3}
