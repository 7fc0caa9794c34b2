"""The loss functions a model trains with (`--loss`), one entry each, and the output heads each takes.

The course comparison this serves: the same activations under squared error (the "Euclidean" loss)
and softmax cross-entropy, and the multi-class hinge. Every loss is the mean over the batch's
examples, so a stack of models computes each model's loss from its own outputs and labels.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from actlab.models import OUTPUTS

LOSSES = {
    "cross_entropy": "cross-entropy on logits; with an output head, NLL: minus the head's output at the target "
                     "class (as reference experiment mnist-output-activation)",
    "mse": "squared error to one-hot targets, ½·Σ over classes, mean over examples (the Euclidean loss), on the "
           "raw outputs or through the output head (softmax, sigmoid, tanh)",
    "hinge": "multi-class hinge on the raw outputs: Σ over wrong classes of max(0, 1 − x_target + x_j) / classes "
             "(torch's multi_margin_loss)",
}
# the output heads each loss takes; any other pairing is refused when the configuration is checked
LOSS_HEADS = {"cross_entropy": tuple(OUTPUTS), "mse": ("logits", "softmax", "sigmoid", "tanh"), "hinge": ("logits",)}


def loss_fn(output: str, loss: str = "cross_entropy"):
    """The loss of a model with this output head: (outputs, targets) → the batch's mean."""
    if loss == "mse":
        return squared_error
    if loss == "hinge":
        return F.multi_margin_loss
    if output == "logits":
        return F.cross_entropy
    return negative_output


def negative_output(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Minus the output at the target class: NLL on a head's log-probabilities, the from-scratch
    demo's loss on its other heads."""
    return -out.gather(1, target[:, None]).mean()


def squared_error(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """½·Σ_classes (out − one-hot)², averaged over the examples (Caffe's EuclideanLoss)."""
    out = out.float()  # in fp32 under bf16 autocast, as cross-entropy is
    one_hot = F.one_hot(target, out.shape[-1]).to(out.dtype)
    return 0.5 * (out - one_hot).square().sum(-1).mean()


def model_losses(out: torch.Tensor, y: torch.Tensor, heads: list, losses: list[str]) -> torch.Tensor:
    """Each model's mean loss on the batch (models,): `heads[m]` is model m's output head module or
    None (logits), `losses[m]` its loss. One model's output and labels have no model dimension."""
    def fn(m: int):
        return loss_fn(heads[m].kind if heads[m] is not None else "logits", losses[m])
    if out.dim() == 2:
        return fn(0)(out, y).view(1)
    if all(head is None for head in heads) and all(loss == "cross_entropy" for loss in losses):
        return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(len(out), -1).mean(1)
    return torch.stack([fn(m)(out[m], y[m]) for m in range(len(out))])
