"""The reference experiments as presets: their setup, where they come from, what they published.

Each preset is the `[experiment]` table of a published write-up our users start from (see
docs/presets.md), reproduced faithfully; where the write-up had a bug the preset does the intended
thing and `differences` says so. `published` holds the figures the write-up reported, so a report
can set them beside ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    experiment: dict[str, Any]
    source: str
    differences: tuple[str, ...] = ()
    published: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {}


def _add(preset: Preset) -> None:
    PRESETS[preset.name] = preset


_add(Preset(
    name="fashion-relu-family",
    summary="SELU, ELU, Leaky-ReLU, ReLU in a 784-512-10 MLP on Fashion-MNIST (Adam, 10 epochs)",
    experiment=dict(dataset="fashion-mnist", hidden=[512],
                    activations=["relu", "leaky_relu:0.01", "elu", "selu"],
                    optimizer="adam", lr=1e-3, batch_size=64, epochs=10, seed=0),
    source="a course assignment write-up: compare four ReLU-family activations on Fashion-MNIST, "
           "pixels in [0, 1], PyTorch default init, global seed 0",
    differences=("The write-up recorded only the loss of the last batch of each epoch; actlab "
                 "records the sample-weighted mean training loss over the epoch, and test loss too.",),
    published={"conclusion": "all four similar; SELU slightly best and fastest to lower the loss; "
                             "Leaky-ReLU slightly worst; results change from run to run (no numbers)"},
))

_add(Preset(
    name="mnist-relu-vs-linear",
    summary="784-512-10 with ReLU vs no activation (a linear model) on MNIST, SGD, 50 epochs, best-val checkpoint",
    experiment=dict(dataset="mnist", hidden=[512], activations=["relu", "none"], val_split=10000,
                    optimizer="sgd", lr=0.15, batch_size=128, epochs=50, seed=0),
    source="a tutorial write-up: does the non-linearity matter? 50,000/10,000 train/validation split, "
           "best-validation checkpoint reloaded and tested",
    differences=("The write-up computed its 'validation' metrics on the training loader; actlab uses "
                 "the real 10,000-example validation split.",),
    published={"conclusion": "without activation the curves jitter; with ReLU they are much smoother "
                             "(no numbers)"},
))

_add(Preset(
    name="mnist-classic-four",
    summary="ReLU, Sigmoid, Tanh, LeakyReLU in a 784-128-128-10 MLP on MNIST (Adam, 10 epochs)",
    experiment=dict(dataset="mnist", hidden=[128, 128],
                    activations=["relu", "sigmoid", "tanh", "leaky_relu:0.01"],
                    optimizer="adam", lr=1e-3, batch_size=64, epochs=10, seed=0),
    source="a blog write-up comparing the four classic activations on MNIST, with plots of sigmoid, "
           "tanh and ReLU over [-10, 10] (`actlab plot-activations`); one run each, seed not given",
    differences=("The write-up overwrote its test-history lists with None; actlab records them.",),
    published={
        "test_acc": {
            "relu": [95.02, 96.52, 97.15, 97.50, 97.47, 97.80, 97.56, 97.78, 97.75, 97.99],
            "sigmoid": [92.81, 94.99, 96.06, 96.42, 97.00, 97.10, 97.28, 97.42, 97.58, 97.58],
            "tanh": [95.17, 96.47, 96.86, 97.21, 97.61, 97.23, 97.66, 97.67, 97.47, 97.82],
            "leaky_relu:0.01": [95.14, 96.37, 97.22, 97.06, 97.37, 97.26, 97.54, 97.77, 97.92, 97.76],
        },
        "final_test_loss": {"relu": 0.0735, "sigmoid": 0.0795, "tanh": 0.0834, "leaky_relu:0.01": 0.1012},
    },
))

_add(Preset(
    name="mnist-output-activation",
    summary="784-10 from-scratch model: log_softmax vs softmax vs sigmoid vs tanh output, NLL, SGD lr 0.5, 2 epochs",
    experiment=dict(dataset="mnist", hidden=[], activations=["none"],
                    output=["log_softmax", "softmax", "sigmoid", "tanh"], init="lecun_normal",
                    optimizer="sgd", lr=0.5, batch_size=64, epochs=2, seed=0),
    source="the classic 'neural net from scratch' MNIST demo: raw-tensor linear layer, weights "
           "N(0,1)/sqrt(784) (= lecun_normal), zero bias, hand-written SGD and output functions",
    differences=("The write-up's sigmoid 0.6094 and tanh 0.7188 are accuracies on one batch of 64 "
                 "(39/64, 46/64); actlab reports accuracy on the full 10,000-image test set.",),
    published={"one_batch_acc": {"sigmoid": 0.6094, "tanh": 0.7188},
               "conclusion": "log_softmax best; softmax slightly worse"},
))

_add(Preset(
    name="mnist-selu-snn",
    summary="the SELU paper's MNIST MLP: 784-512-256-10, ReLU vs SELU (LeCun init, alpha dropout), SGD, 20 epochs",
    experiment=dict(dataset="mnist", hidden=[512, 256], activations=["relu", "selu"],
                    init={"selu": "lecun_normal"}, dropout=0.05, dropout_kind="auto", normalize="global",
                    val_split=10000, optimizer="sgd", lr=1e-3, batch_size=128, drop_last=True, epochs=20, seed=0),
    source="the MNIST MLP published with the SELU paper (Klambauer et al. 2017; bioinf-jku/SNNs, "
           "Pytorch/SelfNormalizingNetworks_MLP_MNIST.ipynb): ReLU with PyTorch default init and dropout 0.05 vs "
           "SELU with LeCun-normal init, zero biases and alpha dropout 0.05, inputs normalised globally, "
           "50,000/10,000 train/validation split, best-validation checkpoint tested",
    differences=("The notebook normalised with the fixed constants 0.1307 / 0.3081 (the full training set's "
                 "statistics); actlab computes them from the 50,000-image training split of each seed.",),
    published={"best_val_test_acc": {"relu": 0.9076, "selu": 0.9204},
               "conclusion": "SELU ahead of ReLU (one run each)"},
))
