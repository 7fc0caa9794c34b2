"""The training step with the backward pass written out: actlab's fast path, for one model or a stack.

At the sizes our presets use (784-128-128-10, batch 64) a training step is short enough that
autograd's bookkeeping and the optimizer's per-tensor dispatch cost about a third of it on one CPU
core (`python benchmarks/steps.py`). For a `ModelStack` whose models end in logits trained with
cross-entropy, `hand_step` runs the forward pass, then the backward pass layer by layer with the
same ATen kernels autograd would call (`threshold_backward`, `sigmoid_backward`, …, `mm`, `bmm`,
`sum`), writing the gradients straight into the stack's flat gradient, which the optimizer steps as
one tensor. The numbers are autograd's (tests/test_backprop.py checks them against it). Dropout is a
mask multiply; an activation without a listed kernel (softsign, `expr:`, a user's module, one that
works in place) or with learnable parameters (PReLU, swish_beta) gets its derivatives from autograd
on that layer alone. Output heads and bf16 autocast train with autograd (`actlab.train`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from actlab.models import ModelStack, apply_per_model, stack_forward

aten = torch.ops.aten
SELU_ALPHA = 1.6732632423543772848170429916717  # the constants ATen's selu uses
SELU_SCALE = 1.0507009873554804934193349852946

# d(loss)/d(pre-activation) from d(loss)/d(activation) `g`, the pre-activation `z` and the activation
# `h`: the kernel autograd runs for each module (keyed by exact type, so a subclass that changes
# `forward` is not mistaken for its parent)
ACTIVATION_BACKWARD: dict[type, Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    nn.Identity: lambda m, z, h, g: g,
    nn.ReLU: lambda m, z, h, g: aten.threshold_backward.default(g, h, 0),
    nn.LeakyReLU: lambda m, z, h, g: aten.leaky_relu_backward.default(g, z, m.negative_slope, False),
    nn.Sigmoid: lambda m, z, h, g: aten.sigmoid_backward.default(g, h),
    nn.Tanh: lambda m, z, h, g: aten.tanh_backward.default(g, h),
    nn.ELU: lambda m, z, h, g: aten.elu_backward.default(g, m.alpha, 1, 1, False, z),
    nn.SELU: lambda m, z, h, g: aten.elu_backward.default(g, SELU_ALPHA, SELU_SCALE, 1, False, z),
    nn.CELU: lambda m, z, h, g: aten.elu_backward.default(g, m.alpha, 1, 1 / m.alpha, False, z),
    nn.GELU: lambda m, z, h, g: aten.gelu_backward.default(g, z, approximate=m.approximate),
    nn.SiLU: lambda m, z, h, g: aten.silu_backward.default(g, z),
    nn.Mish: lambda m, z, h, g: aten.mish_backward.default(g, z),
    nn.Softplus: lambda m, z, h, g: aten.softplus_backward.default(g, z, m.beta, m.threshold),
    nn.Hardtanh: lambda m, z, h, g: aten.hardtanh_backward.default(g, z, m.min_val, m.max_val),
    nn.ReLU6: lambda m, z, h, g: aten.hardtanh_backward.default(g, z, 0, 6),
    nn.Hardswish: lambda m, z, h, g: aten.hardswish_backward.default(g, z),
    nn.Hardsigmoid: lambda m, z, h, g: aten.hardsigmoid_backward.default(g, z),
}


def hand_backprop_applies(stack: ModelStack, precision: str) -> bool:
    """True when every model of the stack ends in logits with cross-entropy and training runs in
    fp32; output heads, other losses and bf16 autocast train with autograd."""
    return (precision == "fp32" and all(head is None for head in stack.heads)
            and all(loss == "cross_entropy" for loss in stack.losses))


def backward_kernel(activation: nn.Module):
    """The listed kernel of a parameter-free activation that does not work in place, else None
    (its derivatives then come from autograd on that layer)."""
    if list(activation.parameters()) or getattr(activation, "inplace", False):
        return None
    return ACTIVATION_BACKWARD.get(type(activation))


def _shared_activation(activations: list[nn.Module]) -> nn.Module | None:
    """The one module to apply to a whole stacked layer when every model has the same parameter-free,
    listed activation (several seeds of one activation), else None."""
    first = activations[0]
    same = all(type(a) is type(first) and repr(a) == repr(first) for a in activations)
    return first if len(activations) > 1 and same and backward_kernel(first) else None


def hand_step(stack: ModelStack, straight_line: bool = True) -> Callable:
    """A function (inputs per seed block, labels, dropout noise, `out=None`) → (logits, loss per
    model) that also fills the stack's flat gradient; the caller steps the optimizer. For one model
    the tensors have no model dimension (its plain matrix products); for a stack they are models ×
    batch × … The logits are written into `out` when it is given (the training loop's buffer for
    the epoch, read once at its end). `straight_line=False` keeps one model off its straight-line
    step (to compare the two)."""
    depths = len(stack.weights) - 1
    activations = [[hidden[d].activation for hidden in stack.hidden] for d in range(depths)]
    kernels = [[backward_kernel(a) for a in layer] for layer in activations]
    if straight_line and len(stack) == 1 and not stack.drops and all(layer[0] is not None for layer in kernels):
        return _one_model_step(stack, [layer[0] for layer in activations], [layer[0] for layer in kernels])
    shared = [_shared_activation(layer) for layer in activations]
    by_autograd: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}  # (depth, model) → (z, h)
    forwards = [[_forward_one(a, k, d, m, by_autograd) for m, (a, k) in enumerate(zip(activations[d], kernels[d]))]
                for d in range(depths)]
    one = torch.ones((), device=stack.flat.device)

    def activate(depth: int, z: torch.Tensor) -> torch.Tensor:
        return shared[depth](z) if shared[depth] is not None else apply_per_model(forwards[depth], z)

    @torch.no_grad()
    def step(xs: list[torch.Tensor], y: torch.Tensor, noise, out: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, tape = stack_forward(stack, xs, stack.weights, stack.biases, activate, noise)
        if out is not None:
            out.copy_(logits)
        losses, g = _cross_entropy_and_gradient(logits, y, one)
        for depth in range(depths, -1, -1):
            _layer_gradients(stack, depth, g, xs, tape)
            if depth:
                weight = stack.weights[depth]
                g = g.mm(weight) if g.dim() == 2 else torch.bmm(g, weight)
                if tape.scales[depth - 1] is not None:
                    g = g * tape.scales[depth - 1]
                g = _activation_backward(stack, depth - 1, activations[depth - 1], kernels[depth - 1],
                                         shared[depth - 1], tape, g, by_autograd)
        return logits, losses
    return step


def _one_model_step(stack: ModelStack, activations: list[nn.Module], kernels: list[Callable]) -> Callable:
    """`hand_step` for one model without dropout whose activations all have listed kernels: the same
    kernels on the same tensors, called in a straight line. At 784-128-128-10 and batch 64 a step is
    short enough that the general step's bookkeeping (tape, per-model dispatch) is a measurable
    share of it (`python benchmarks/steps.py`); its last product writes the logits straight into
    `out`."""
    weights, biases = stack.weights, stack.biases
    transposed = [w.t() for w in weights]  # views of the flat tensor: they see every update
    weight_grads, bias_grads = stack.weight_grads, stack.bias_grads
    forwards = [a.forward for a in activations]
    one = torch.ones((), device=stack.flat.device)
    last = len(forwards)  # the depth of the product that gives the logits

    @torch.no_grad()
    def step(xs: list[torch.Tensor], y: torch.Tensor, noise, out: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        x = xs[0]
        z = torch.addmm(biases[0], x, transposed[0], out=out if last == 0 else None)
        pre, post = [], []
        for depth, forward in enumerate(forwards, start=1):
            h = forward(z)
            pre.append(z)
            post.append(h)
            z = torch.addmm(biases[depth], h, transposed[depth], out=out if depth == last else None)
        losses, g = _cross_entropy_and_gradient(z, y, one)
        for depth in range(len(forwards), 0, -1):
            h = post[depth - 1]
            torch.sum(g, 0, out=bias_grads[depth])
            torch.mm(g.t(), h, out=weight_grads[depth])
            g = kernels[depth - 1](activations[depth - 1], pre[depth - 1], h, g.mm(weights[depth]))
        torch.sum(g, 0, out=bias_grads[0])
        torch.mm(g.t(), x, out=weight_grads[0])
        return z, losses
    return step


def _forward_one(activation: nn.Module, kernel, depth: int, m: int, by_autograd: dict) -> Callable:
    """Model m's activation at `depth`, recording the autograd graph where there is no kernel."""
    if kernel is not None:
        return activation

    def forward(z: torch.Tensor) -> torch.Tensor:
        z = z.detach().requires_grad_()
        with torch.enable_grad():
            h = activation(z.clone())  # a non-leaf input: activations may work in place
        by_autograd[(depth, m)] = (z, h)
        return h.detach()
    return forward


def _cross_entropy_and_gradient(logits: torch.Tensor, y: torch.Tensor,
                                one: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each model's mean cross-entropy (models,) and its gradient with respect to the logits, by the
    kernels F.cross_entropy and its backward run (per-example losses summed, for a stack)."""
    if logits.dim() == 2:
        log_probs = torch.log_softmax(logits, 1)
        loss, total = aten.nll_loss_forward.default(log_probs, y, None, 1, -100)  # 1: mean reduction
        g = aten.nll_loss_backward.default(one, log_probs, y, None, 1, -100, total)
        return loss.view(1), torch._log_softmax_backward_data(g, log_probs, 1, log_probs.dtype)
    target = y.reshape(-1)
    log_probs = torch.log_softmax(logits.reshape(-1, logits.shape[-1]), 1)
    per_example, total = aten.nll_loss_forward.default(log_probs, target, None, 0, -100)  # 0: no reduction
    scale = torch.full((), 1.0 / y.shape[1], device=logits.device)  # each model's mean over its batch
    g = aten.nll_loss_backward.default(scale, log_probs, target, None, 2, -100, total)  # 2: sum reduction
    g = torch._log_softmax_backward_data(g, log_probs, 1, log_probs.dtype)
    return per_example.view(y.shape).mean(1), g.view(logits.shape)


def _layer_gradients(stack: ModelStack, depth: int, g: torch.Tensor, xs: list[torch.Tensor], tape) -> None:
    """Write the weight and bias gradients of layer `depth` into the stack's flat gradient; layer 0
    takes each seed block's shared input."""
    weight_grad, bias_grad = stack.weight_grads[depth], stack.bias_grads[depth]
    torch.sum(g, g.dim() - 2, out=bias_grad)
    inputs = tape.inputs[depth - 1] if depth else xs[0]
    if g.dim() == 2:
        torch.mm(g.t(), inputs, out=weight_grad)
    elif depth:
        torch.bmm(g.transpose(1, 2), inputs, out=weight_grad)
    else:
        for (_, start, end), x in zip(stack.blocks, xs):
            wide = g[start:end].transpose(0, 1).reshape(len(x), -1)
            torch.mm(wide.t(), x, out=weight_grad[start:end].view(-1, x.shape[1]))


def _activation_backward(stack: ModelStack, depth: int, activations, kernels, shared, tape, g: torch.Tensor,
                         by_autograd: dict) -> torch.Tensor:
    """d(loss)/d(pre-activation) at `depth` for every model, writing learnable activation
    parameters' gradients into the flat gradient on the way."""
    z, h = tape.pre[depth], tape.post[depth]
    if shared is not None:
        return kernels[0](shared, z, h, g)
    if g.dim() == 2:
        return _one_backward(stack, 0, depth, activations[0], kernels[0], z, h, g, by_autograd)
    return torch.stack([_one_backward(stack, m, depth, a, k, z[m], h[m], g[m], by_autograd)
                        for m, (a, k) in enumerate(zip(activations, kernels))])


def _one_backward(stack: ModelStack, m: int, depth: int, activation: nn.Module, kernel, z: torch.Tensor,
                  h: torch.Tensor, g: torch.Tensor, by_autograd: dict) -> torch.Tensor:
    """One model's activation backward: its listed kernel, or autograd on this layer alone."""
    if kernel is not None:
        return kernel(activation, z, h, g)
    leaf, out = by_autograd[(depth, m)]
    params = stack.act_params[m][depth]
    named = dict(activation.named_parameters())
    wanted = [leaf, *(named[name] for name in params)] if out.requires_grad else []
    found = torch.autograd.grad(out, wanted, g, allow_unused=True) if wanted else []
    for name, grad in zip(params, found[1:]):
        stack.act_grads[m][depth][name].copy_(grad if grad is not None else 0)
    return found[0] if found and found[0] is not None else torch.zeros_like(z)
