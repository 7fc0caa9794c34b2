"""A toy model family: a bottleneck network, Linear(784, 8) → activation → Linear(8, 10), whose
models train alone through autograd (`stacks=False`)."""

from torch import nn

from actlab.activations import parse_activation
from actlab.families import ModelFamily

WIDTH = 8


def build(activation: str, output: str, config, in_features: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, WIDTH), parse_activation(activation).make(WIDTH), nn.Linear(WIDTH, 10))


BOTTLENECK = ModelFamily("toy_bottleneck", "Linear(784, 8) → activation → Linear(8, 10)", build,
                         weights=lambda c: 784 * WIDTH + WIDTH * 10,
                         parameters=lambda c: 784 * WIDTH + WIDTH + WIDTH * 10 + 10,
                         widths=lambda c: [784, WIDTH, 10])
