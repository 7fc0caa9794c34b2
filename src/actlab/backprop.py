"""The training step with the backward pass written out, for plain MLPs: actlab's fast path.

At the sizes our presets use (784-128-128-10, batch 64) a training step is short enough that
autograd's bookkeeping and the optimizer's per-tensor dispatch cost about a third of it on one CPU
core (`python benchmarks/steps.py`: 1.09 s per epoch with autograd, 0.75 s with this path).
For a network of `Linear` layers and parameter-free activations trained with cross-entropy on
logits, `hand_step` runs the forward pass, then the backward pass layer by layer with the same ATen
kernels autograd would call (`threshold_backward`, `sigmoid_backward`, …, `mm`, `sum`), writing the
gradients straight into one flat buffer that the optimizer steps as a single tensor. The numbers
are those of autograd (tests/test_backprop.py checks them against it). An activation without a
listed backward kernel (softsign, a user's `expr:` or module, …) gets its derivative from autograd
on that layer alone, so every parameter-free activation can take this path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

aten = torch.ops.aten
SELU_ALPHA = 1.6732632423543772848170429916717  # the constants ATen's selu uses
SELU_SCALE = 1.0507009873554804934193349852946

# d(loss)/d(pre-activation) from d(loss)/d(activation) `g`, the pre-activation `z` and the activation
# `h`: the kernel autograd runs for each module (keyed by exact type, so a subclass that changes
# `forward` is not mistaken for its parent)
ACTIVATION_BACKWARD: dict[type, Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    nn.Identity: lambda m, z, h, g: g,
    nn.ReLU: lambda m, z, h, g: aten.threshold_backward(g, h, 0),
    nn.LeakyReLU: lambda m, z, h, g: aten.leaky_relu_backward(g, z, m.negative_slope, False),
    nn.Sigmoid: lambda m, z, h, g: aten.sigmoid_backward(g, h),
    nn.Tanh: lambda m, z, h, g: aten.tanh_backward(g, h),
    nn.ELU: lambda m, z, h, g: aten.elu_backward(g, m.alpha, 1, 1, False, z),
    nn.SELU: lambda m, z, h, g: aten.elu_backward(g, SELU_ALPHA, SELU_SCALE, 1, False, z),
    nn.CELU: lambda m, z, h, g: aten.elu_backward(g, m.alpha, 1, 1 / m.alpha, False, z),
    nn.GELU: lambda m, z, h, g: aten.gelu_backward(g, z, approximate=m.approximate),
    nn.SiLU: lambda m, z, h, g: aten.silu_backward(g, z),
    nn.Mish: lambda m, z, h, g: aten.mish_backward(g, z),
    nn.Softplus: lambda m, z, h, g: aten.softplus_backward(g, z, m.beta, m.threshold),
    nn.Hardtanh: lambda m, z, h, g: aten.hardtanh_backward(g, z, m.min_val, m.max_val),
    nn.ReLU6: lambda m, z, h, g: aten.hardtanh_backward(g, z, 0, 6),
    nn.Hardswish: lambda m, z, h, g: aten.hardswish_backward(g, z),
    nn.Hardsigmoid: lambda m, z, h, g: aten.hardsigmoid_backward(g, z),
}


def hand_backprop_supported(model: nn.Sequential, output: str, precision: str) -> bool:
    """True for `Linear → act → … → Linear` with parameter-free, in-place-free activations,
    logits with cross-entropy, in fp32; dropout, learnable activations, output heads and bf16
    autocast train with autograd."""
    if output != "logits" or precision != "fp32" or not len(model) % 2 or not isinstance(model[-1], nn.Linear):
        return False
    for i, module in enumerate(model):
        if i % 2 == 0:
            if not isinstance(module, nn.Linear) or module.bias is None:
                return False
        elif (isinstance(module, (nn.Linear, nn.Dropout, nn.AlphaDropout)) or list(module.parameters())
              or getattr(module, "inplace", False)):
            return False
    return True


def flatten_parameters(model: nn.Sequential) -> nn.Parameter:
    """Rebind every parameter of `model` as a view into one flat tensor and return that tensor as
    the single parameter to optimize, with a flat gradient buffer as its `.grad`."""
    params = [(module, name, p) for module in model for name, p in module.named_parameters(recurse=False)]
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for _, _, p in params]))
    offset = 0
    for module, name, p in params:
        setattr(module, name, nn.Parameter(flat.data[offset:offset + p.numel()].view_as(p)))
        offset += p.numel()
    flat.grad = torch.zeros_like(flat)
    return flat


def unflatten_parameters(model: nn.Sequential) -> None:
    """Give every parameter its own storage again, so the model saves, copies and moves as usual."""
    for module in model:
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, nn.Parameter(p.detach().clone()))


def _gradient_views(model: nn.Sequential, flat: nn.Parameter) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each Linear layer's (weight, bias) gradient as views into `flat.grad`, in flattening order."""
    views, offset = [], 0
    for layer in model[::2]:
        weight = flat.grad[offset:offset + layer.weight.numel()].view_as(layer.weight)
        offset += layer.weight.numel()
        views.append((weight, flat.grad[offset:offset + layer.bias.numel()]))
        offset += layer.bias.numel()
    return views


def _autograd_derivative(h: torch.Tensor, z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """d(loss)/dz from d(loss)/dh by autograd; zero where h does not depend on z (a constant
    activation), where autograd would leave the earlier layers without a gradient."""
    if not h.requires_grad:
        return torch.zeros_like(z)
    (grad,) = torch.autograd.grad(h, z, g, allow_unused=True)
    return torch.zeros_like(z) if grad is None else grad


def hand_step(model: nn.Sequential, flat: nn.Parameter) -> Callable[[torch.Tensor, torch.Tensor],
                                                                     tuple[torch.Tensor, torch.Tensor]]:
    """A function (x, y) → (logits, mean loss) that also fills `flat.grad` with the loss's gradient;
    the caller steps the optimizer. `model` must have passed `hand_backprop_supported` and
    `flatten_parameters`."""
    linears, activations = list(model[::2]), list(model[1::2])
    weights_t = [layer.weight.t() for layer in linears]  # views: they follow the in-place updates
    grads = _gradient_views(model, flat)
    backward = [ACTIVATION_BACKWARD.get(type(a)) for a in activations]
    one = torch.ones((), device=flat.device)

    @torch.no_grad()
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, pre = [x], []  # each Linear's input; each activation's input (pre-activation)
        h = x
        for layer, weight_t, act, kernel in zip(linears, weights_t, activations, backward):
            z = torch.addmm(layer.bias, h, weight_t)  # what F.linear runs, without its dispatch
            if kernel is None:  # derivative by autograd on this layer alone
                z.requires_grad_()
                with torch.enable_grad():
                    h = act(z.clone())  # a non-leaf input: activations may work in place
            else:
                h = act(z)
            pre.append(z)
            inputs.append(h)
        logits = torch.addmm(linears[-1].bias, h, weights_t[-1])
        log_probs = torch.log_softmax(logits, 1)
        loss, total_weight = aten.nll_loss_forward(log_probs, y, None, 1, -100)  # 1: mean reduction
        g = aten.nll_loss_backward(one, log_probs, y, None, 1, -100, total_weight)
        g = aten._log_softmax_backward_data(g, log_probs, 1, log_probs.dtype)
        for i in range(len(linears) - 1, -1, -1):
            weight_grad, bias_grad = grads[i]
            torch.mm(g.t(), inputs[i], out=weight_grad)
            torch.sum(g, 0, out=bias_grad)
            if i:
                g = g.mm(linears[i].weight)
                kernel = backward[i - 1]
                if kernel is None:
                    g = _autograd_derivative(inputs[i], pre[i - 1], g)
                else:
                    g = kernel(activations[i - 1], pre[i - 1], inputs[i], g)
        return logits, loss
    return step


FUSED_KERNELS = {False: "_fused_adam_", True: "_fused_adamw_"}  # torch's kernels, by decoupled weight decay


def flat_optimizer_step(optimizer: torch.optim.Optimizer, flat: nn.Parameter) -> Callable[[], None]:
    """`optimizer.step` for the one flat tensor, cheaper where it can be.

    Fused Adam and AdamW end their step in one kernel (`torch._fused_adam_` / `_fused_adamw_`). The
    returned function calls that kernel directly, on the optimizer's own state and at its param
    group's current learning rate (so schedules, `state_dict` and the numbers are unchanged), and
    skips the per-call bookkeeping around it: about 80 µs of a 0.8 ms step on one core
    (`python benchmarks/steps.py --breakdown`). That bookkeeping includes optimizer step hooks and
    the profiler label, which actlab does not use; they fire on the first step only. The first
    step (which creates the state) and every other optimizer go through `optimizer.step`; so does
    every step if this torch's kernel does not take the call.
    """
    group = optimizer.param_groups[0]
    decoupled = isinstance(optimizer, torch.optim.AdamW) or group.get("decoupled_weight_decay", False)
    kernel = getattr(torch, FUSED_KERNELS[decoupled], None)
    if (kernel is None or not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))
            or not group.get("fused") or group["amsgrad"] or group["maximize"] or len(optimizer.param_groups) != 1
            or isinstance(group["lr"], torch.Tensor)):
        return optimizer.step
    refused = False  # set when this torch's kernel does not take the call

    @torch.no_grad()
    def step() -> None:
        nonlocal refused
        state = optimizer.state.get(flat)
        if not state or refused:  # the first step creates the state
            optimizer.step()
            return
        state["step"] += 1
        beta1, beta2 = group["betas"]
        try:
            kernel([flat], [flat.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]],
                   amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                   eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)
        except (TypeError, RuntimeError):
            state["step"] -= 1
            refused = True
            optimizer.step()
    return step
