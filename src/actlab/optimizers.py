"""The optimizers actlab trains with, each stepping a stack's one flat parameter tensor, and the
learning-rate schedules.

actlab keeps every weight of a stack in one flat tensor (`actlab.models.ModelStack`), so an optimizer
here is a few kernel calls on that tensor. torch.optim is not used: its optimizers import
`torch._dynamo` on first use, 2-3 s of every run's start-up on a 2-core CPU, and wrap each step in
bookkeeping (hooks, profiler labels, grad-mode switches) that costs a share of a short step. The
arithmetic is torch.optim's, operation for operation: Adam and AdamW call torch's fused kernel
(`torch._fused_adam_` / `_fused_adamw_`, what `fused=True` runs) where this torch has it for the
device, else torch's single-tensor Adam; SGD and RMSprop are torch's single-tensor updates. The state
starts as torch.optim's does, on the first step, and the schedules update the rate as torch's
schedulers do. tests/test_optimizers.py checks every optimizer and schedule against torch.optim,
tensor for tensor and rate for rate.
"""

from __future__ import annotations

import math

import torch

from actlab.config import OptimConfig

ADAM_BETAS = (0.9, 0.999)  # torch.optim's defaults, which actlab does not expose
ADAM_EPS = 1e-8
RMSPROP_ALPHA = 0.99
RMSPROP_EPS = 1e-8
FUSED_KERNELS = {"adam": "_fused_adam_", "adamw": "_fused_adamw_"}


class FlatOptimizer:
    """`kind` (sgd, adam, adamw, rmsprop) for one flat tensor whose `.grad` the training step fills.
    `lr` is read at every step, so a schedule sets it between epochs."""

    def __init__(self, flat: torch.Tensor, o: OptimConfig):
        self.flat, self.kind, self.lr = flat, o.optimizer, o.lr
        self.momentum, self.nesterov, self.weight_decay = o.momentum, o.nesterov, o.weight_decay
        self.state: dict[str, torch.Tensor] = {}
        self._fused = getattr(torch, FUSED_KERNELS.get(self.kind, ""), None)  # None once the device refuses it

    @torch.no_grad()
    def step(self) -> None:
        p, g = self.flat, self.flat.grad
        if self.kind in FUSED_KERNELS:
            self._adam(p, g)
        elif self.kind == "sgd":
            self._sgd(p, g)
        else:
            self._rmsprop(p, g)

    def keep(self, index: torch.Tensor, flat: torch.Tensor) -> None:
        """Continue on `flat`, which holds the old flat tensor's entries `index`, with their state."""
        self.state = {k: v[index] if v.shape == self.flat.shape else v for k, v in self.state.items()}
        self.flat = flat

    def _adam(self, p: torch.Tensor, g: torch.Tensor) -> None:
        if not self.state:
            self.state = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                          "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        s = self.state
        s["step"] += 1
        beta1, beta2 = ADAM_BETAS
        if self._fused is not None:
            try:
                self._fused([p], [g], [s["exp_avg"]], [s["exp_avg_sq"]], [], [s["step"]], lr=self.lr, beta1=beta1,
                            beta2=beta2, weight_decay=self.weight_decay, eps=ADAM_EPS, amsgrad=False,
                            maximize=False, grad_scale=None, found_inf=None)
                return
            except (TypeError, RuntimeError):  # no fused kernel for this device in this torch: raised before any write
                self._fused = None
        if self.weight_decay:
            if self.kind == "adamw":
                p.mul_(1 - self.lr * self.weight_decay)
            else:
                g = g.add(p, alpha=self.weight_decay)
        s["exp_avg"].lerp_(g, 1 - beta1)
        s["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step = s["step"].item()
        step_size = self.lr / (1 - beta1 ** step)
        denom = (s["exp_avg_sq"].sqrt() / (1 - beta2 ** step) ** 0.5).add_(ADAM_EPS)
        p.addcdiv_(s["exp_avg"], denom, value=-step_size)

    def _sgd(self, p: torch.Tensor, g: torch.Tensor) -> None:
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        if self.momentum:
            if "momentum_buffer" not in self.state:
                self.state["momentum_buffer"] = g.detach().clone()
            else:
                self.state["momentum_buffer"].mul_(self.momentum).add_(g)
            buf = self.state["momentum_buffer"]
            g = g.add(buf, alpha=self.momentum) if self.nesterov else buf
        p.add_(g, alpha=-self.lr)

    def _rmsprop(self, p: torch.Tensor, g: torch.Tensor) -> None:
        if not self.state:
            self.state = {"square_avg": torch.zeros_like(p),
                          **({"momentum_buffer": torch.zeros_like(p)} if self.momentum else {})}
        s = self.state
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        s["square_avg"].mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
        avg = s["square_avg"].sqrt().add_(RMSPROP_EPS)
        if self.momentum:
            s["momentum_buffer"].mul_(self.momentum).addcdiv_(g, avg)
            p.add_(s["momentum_buffer"], alpha=-self.lr)
        else:
            p.addcdiv_(g, avg, value=-self.lr)


def learning_rate(o: OptimConfig, epochs_done: int) -> float:
    """The learning rate after `epochs_done` epochs: constant, cosine annealing to 0 over the run, or
    multiplied by `gamma` every `step_size` epochs. Each epoch's rate comes from the previous one by
    the update torch's CosineAnnealingLR and StepLR apply, so the rates are theirs to the last bit."""
    lr = o.lr
    for epoch in range(1, epochs_done + 1):
        if o.schedule == "cosine":
            lr = (1 + math.cos(math.pi * epoch / o.epochs)) / (1 + math.cos(math.pi * (epoch - 1) / o.epochs)) * lr
        elif o.schedule == "step" and epoch % o.step_size == 0:
            lr = lr * o.gamma
    return lr
