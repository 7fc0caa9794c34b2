"""actlab's optimizers and schedules give torch.optim's numbers, tensor for tensor, without torch.optim."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from actlab.config import resolve_config
from actlab.optimizers import FUSED_KERNELS, FlatOptimizer, learning_rate

STEPS = 40


def optim_config(**overrides):
    return resolve_config(overrides={"lr": 1e-2, **overrides}, env={}).optim


def torch_optimizer(params, o, fused=True):
    """torch.optim's optimizer for config `o`, as actlab built it before it had its own."""
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                               weight_decay=o.weight_decay, foreach=True)
    if o.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, foreach=True)
    cls = torch.optim.Adam if o.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=o.lr, weight_decay=o.weight_decay, **({"fused": True} if fused else {"foreach": False}))


def random_gradients(n=1000):
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(n, generator=generator) for _ in range(STEPS)]


def run_ours(o, grads, lr_every=None):
    torch.manual_seed(0)
    flat = nn.Parameter(torch.randn(grads[0].numel()))
    optimizer = FlatOptimizer(flat, o)
    for i, g in enumerate(grads):
        flat.grad = g.clone()
        optimizer.step()
        if lr_every and i % lr_every == lr_every - 1:
            optimizer.lr *= 0.5
    return flat.detach(), optimizer.state


def run_torch(o, grads, lr_every=None, fused=True):
    torch.manual_seed(0)
    flat = nn.Parameter(torch.randn(grads[0].numel()))
    optimizer = torch_optimizer([flat], o, fused)
    for i, g in enumerate(grads):
        flat.grad = g.clone()
        optimizer.step()
        if lr_every and i % lr_every == lr_every - 1:
            optimizer.param_groups[0]["lr"] *= 0.5
    return flat.detach(), optimizer.state[flat]


@pytest.mark.parametrize("overrides", [
    {"optimizer": "adam"},
    {"optimizer": "adam", "weight_decay": 0.1},
    {"optimizer": "adamw", "weight_decay": 0.1},
    {"optimizer": "sgd"},
    {"optimizer": "sgd", "momentum": 0.9},
    {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"optimizer": "rmsprop"},
    {"optimizer": "rmsprop", "momentum": 0.5, "weight_decay": 1e-3},
])
def test_each_optimizer_gives_torch_optims_weights_and_state(overrides):
    o = optim_config(**overrides)
    grads = random_gradients()
    ours, our_state = run_ours(o, grads, lr_every=10)
    theirs, their_state = run_torch(o, grads, lr_every=10)
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, run_ours(o, grads[:-1], lr_every=10)[0])  # the last step did move the weights
    for key in ("exp_avg", "exp_avg_sq", "momentum_buffer", "square_avg"):
        if key in their_state:
            assert torch.equal(our_state[key], their_state[key]), key
    if "step" in our_state:
        assert torch.equal(our_state["step"], their_state["step"])


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_adam_without_a_fused_kernel_gives_torchs_single_tensor_adam(monkeypatch, kind):
    calls = []

    def refusing(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("no kernel for this device")
    monkeypatch.setattr(torch, "_actlab_refusing_kernel", refusing, raising=False)
    monkeypatch.setitem(FUSED_KERNELS, kind, "_actlab_refusing_kernel")
    o = optim_config(optimizer=kind, weight_decay=0.1)
    grads = random_gradients()
    ours, our_state = run_ours(o, grads, lr_every=10)
    theirs, their_state = run_torch(o, grads, lr_every=10, fused=False)
    assert calls == [1]  # tried once, then the single-tensor update every step
    assert torch.equal(ours, theirs)
    assert torch.equal(our_state["step"], their_state["step"].float())
    assert torch.equal(our_state["exp_avg_sq"], their_state["exp_avg_sq"])


@pytest.mark.parametrize("overrides", [{"schedule": "cosine", "epochs": 7, "lr": 0.3},
                                       {"schedule": "cosine", "epochs": 10, "lr": 1e-3},
                                       {"schedule": "cosine", "epochs": 50, "lr": 0.3},
                                       {"schedule": "step", "step_size": 2, "gamma": 0.5, "epochs": 7, "lr": 0.3},
                                       {"schedule": "step", "step_size": 1, "gamma": 0.1, "epochs": 10, "lr": 0.3},
                                       {"schedule": "none", "epochs": 3, "lr": 0.3}])
def test_schedules_give_torchs_learning_rates(overrides):
    o = optim_config(optimizer="sgd", **overrides)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=o.lr)
    schedule = {"cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=o.epochs),
                "step": lambda: torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_size, gamma=o.gamma),
                "none": lambda: None}[o.schedule]()
    for epoch in range(o.epochs + 1):
        assert learning_rate(o, epoch) == optimizer.param_groups[0]["lr"]  # to the last bit
        if schedule:
            optimizer.step()
            schedule.step()
    if o.schedule == "cosine":
        assert learning_rate(o, o.epochs) == 0.0


def test_training_never_imports_torch_dynamo(data_dir):
    """torch.optim would import it on first use: 2-3 s of every worker's start on a 2-core CPU."""
    script = f"""
import sys, torch
from actlab.config import resolve_config
from actlab.data import load_dataset
from actlab.results import ModelRun
from actlab.device_data import prepare_data
from actlab.train import train_model
mnist = load_dataset("mnist", {str(data_dir)!r}, download=False)
for optimizer in ("adam", "adamw", "sgd", "rmsprop"):
    c = resolve_config(overrides={{"device": "cpu", "epochs": 2, "hidden": [16], "optimizer": optimizer,
                                  "momentum": 0.5 if optimizer in ("sgd", "rmsprop") else 0.0, "schedule": "cosine",
                                  "train_subset": 500, "test_subset": 200, "val_split": 100}}, env={{}})
    record = ModelRun("relu", "relu", "logits", 0)
    train_model(record, prepare_data(mnist, c, 0, torch.device("cpu")), c, torch.device("cpu"))
    assert len(record.epochs) == 2 and "diverged" not in record.status, record.status
print("torch._dynamo" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
