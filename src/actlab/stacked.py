"""Training many models in one pass: the activations × seeds of a run as stacked weights.

Models of one seed see the same batches (the paired design), so their first layers are one wide GEMM
`x @ [W1_a | W1_b | …]`; every later layer is a batched matmul over the models. One optimizer steps
all of them; since Adam and SGD act elementwise, each model follows exactly the update it would get
alone, and the numbers match single-model training up to float rounding (tests/test_stacked.py).
Every model starts from the weights `build_mlp` gives it under its seed, sees its seed's batch order,
and is copied out as a plain `nn.Sequential` for evaluation details, diagnostics and checkpoints.

This is the GPU path (one launch per layer for all models, no host sync per step); on CPU, worker
processes (actlab.experiment) pay off more, and `stack = true` is an opt-in there.
"""

from __future__ import annotations

import copy
import math
import os
import time
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from actlab.activations import parse_activation, parse_layers
from actlab.diagnostics import DIAGNOSTIC_EXAMPLES, measure
from actlab.models import OutputActivation, linear_layers, loss_fn
from actlab.results import ModelRun, mark_failed_to_learn

if TYPE_CHECKING:
    from actlab.config import Config
from actlab.train import (CHECK_EVERY, DIVERGED_LOSS, DeviceData, _progress_bar, autocast, build_model, epoch_steps,
                          evaluate, make_optimizer, test_best_checkpoint)

UNSTACKABLE = ("prelu", "rrelu")  # learnable or random in training: each needs its own module state


def stackable(activation: str, config: Config) -> bool:
    """One parameter-free, deterministic activation for every layer, without dropout, early
    stopping, a schedule or TensorBoard, can share a stacked pass; anything else trains on its own."""
    spec = parse_layers(activation)
    if (isinstance(spec, list) or config.model.dropout or config.optim.patience or config.optim.schedule != "none"
            or config.run.tensorboard):
        return False
    return spec.name not in UNSTACKABLE and spec.family != "custom" and not list(spec.make().parameters())


def models_per_chunk(config: Config, device: torch.device, n_examples: int) -> int:
    """How many models fit in one stacked pass, from a byte estimate against the free memory."""
    sizes = [784, *config.model.hidden, 10]
    params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    per_model = params * 4 * 6 + config.optim.batch_size * sum(sizes) * 4 * 4  # weights, grads, state, copy; activations
    data_bytes = n_examples * 785 * 4 * len(config.run.seeds)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = 0.6 * free
    else:
        budget = 0.5 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, int((budget - data_bytes) // per_model))


class SeedGroup(nn.Module):
    """The models of one seed: a wide first layer, then per-model batched layers."""

    def __init__(self, models: list[nn.Sequential], activations: list[nn.Module], outputs: list[str]):
        super().__init__()
        linears = [linear_layers(m) for m in models]
        self.count = len(models)
        self.width = linears[0][0].out_features
        self.w1 = nn.Parameter(torch.cat([ls[0].weight.detach().t() for ls in linears], dim=1).contiguous())
        self.b1 = nn.Parameter(torch.cat([ls[0].bias.detach() for ls in linears]))
        self.ws = nn.ParameterList(nn.Parameter(torch.stack([ls[i].weight.detach().t() for ls in linears]).contiguous())
                                   for i in range(1, len(linears[0])))
        self.bs = nn.ParameterList(nn.Parameter(torch.stack([ls[i].bias.detach()[None] for ls in linears]))
                                   for i in range(1, len(linears[0])))
        self.activations = nn.ModuleList(activations)
        self.outputs = outputs
        self.heads = [OutputActivation(o) if o != "logits" else None for o in outputs]

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        """Apply model a's activation to h[a] for every a (h: models × batch × width)."""
        return torch.stack([act(h[a]) for a, act in enumerate(self.activations)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of every model for the same input: (models, batch, classes)."""
        h = torch.addmm(self.b1, x, self.w1).view(len(x), self.count, self.width).transpose(0, 1)
        if len(self.ws):
            h = self._act(h)
        for i, (w, b) in enumerate(zip(self.ws, self.bs)):
            h = torch.baddbmm(b, h, w)
            if i + 1 < len(self.ws):
                h = self._act(h)
        if any(self.heads):
            h = torch.stack([head(h[a]) if head else h[a] for a, head in enumerate(self.heads)])
        return h

    def losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each model's mean loss on the batch: (models,)."""
        if not any(self.heads):
            flat = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.repeat(self.count), reduction="none")
            return flat.view(self.count, -1).mean(1)
        return torch.stack([loss_fn(o)(out[a], y) for a, o in enumerate(self.outputs)])

    def copy_out(self, a: int, model: nn.Sequential) -> nn.Sequential:
        """Write model a's current weights into `model` (a plain MLP of the same shape)."""
        linears = linear_layers(model)
        with torch.no_grad():
            linears[0].weight.copy_(self.w1[:, a * self.width:(a + 1) * self.width].t())
            linears[0].bias.copy_(self.b1[a * self.width:(a + 1) * self.width])
            for lin, w, b in zip(linears[1:], self.ws, self.bs):
                lin.weight.copy_(w[a].t())
                lin.bias.copy_(b[a, 0])
        return model


def train_stacked(records: list[ModelRun], data: dict[int, DeviceData], config: Config, device: torch.device,
                  show_progress: bool = False) -> list[tuple[nn.Sequential, dict | None]]:
    """Train `records` (any seeds; stackable activations) together, filling each record as
    `train_model` would; returns each model's (final model, best-validation state)."""
    o = config.optim
    seeds = list(dict.fromkeys(r.seed for r in records))
    members = {s: [i for i, r in enumerate(records) if r.seed == s] for s in seeds}
    singles, groups = [], []
    for seed in seeds:
        models = []
        for i in members[seed]:
            models.append(build_model(records[i], config, data[seed].x_train.shape[1], device))
        singles += models
        groups.append(SeedGroup(models, [parse_activation(records[i].activation).make() for i in members[seed]],
                                [records[i].output for i in members[seed]]).to(device))
    plain = dict(zip([i for s in seeds for i in members[s]], singles))  # record index -> plain copy
    optimizer = make_optimizer([p for g in groups for p in g.parameters()], o, device)
    orders = {s: torch.Generator().manual_seed(s) for s in seeds}
    n = len(data[seeds[0]].y_train)
    steps, seen_per_epoch = epoch_steps(n, o)
    best: dict[int, dict] = {}
    live = set(range(len(records)))

    def diagnose(stage: str) -> None:
        if not config.run.diagnostics:
            return
        for g, seed in zip(groups, seeds):
            d = data[seed]
            for a, i in enumerate(members[seed]):
                if i in live:
                    model = g.copy_out(a, plain[i])
                    rows = measure(model, d.x_test[:DIAGNOSTIC_EXAMPLES], d.y_test[:DIAGNOSTIC_EXAMPLES],
                                   loss_fn(records[i].output))
                    records[i].diagnostics += [{"stage": stage, "layer": layer, "metric": metric, "value": value}
                                               for layer, metric, value in rows]

    diagnose("init")
    bar = _progress_bar(o.epochs * steps, f"{len(records)} models stacked", show_progress)
    try:
        for epoch in range(1, o.epochs + 1):
            for i in live:
                records[i].status = f"interrupted@epoch {epoch}"
            start = time.perf_counter()
            perms = {s: torch.randperm(n, generator=orders[s]).to(device) for s in seeds}
            loss_sum = [torch.zeros(g.count, device=device) for g in groups]
            correct = [torch.zeros(g.count, device=device, dtype=torch.long) for g in groups]
            diverged: set[int] = set()
            for step in range(steps):
                total = 0
                for gi, (g, seed) in enumerate(zip(groups, seeds)):
                    idx = perms[seed][step * o.batch_size:(step + 1) * o.batch_size]
                    x, y = data[seed].x_train.index_select(0, idx), data[seed].y_train.index_select(0, idx)
                    with autocast(device, config):
                        out = g(x)
                        losses = g.losses(out, y)
                    total = total + losses.sum()
                    loss_sum[gi] += losses.detach() * len(idx)
                    correct[gi] += (out.detach().argmax(-1) == y).sum(1)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
                    seen = min((step + 1) * o.batch_size, seen_per_epoch)
                    bar.update(step + 1 - bar.n + (epoch - 1) * steps)
                    for g, seed, sums in zip(groups, seeds, loss_sum):
                        for a, i in enumerate(members[seed]):
                            running = sums[a].item() / seen
                            if i in live and (not math.isfinite(running) or running > DIVERGED_LOSS):
                                diverged.add(i)
            seconds = time.perf_counter() - start
            for gi, (g, seed) in enumerate(zip(groups, seeds)):
                d = data[seed]
                for a, i in enumerate(members[seed]):
                    if i not in live:
                        continue
                    record = records[i]
                    record.train_seconds += seconds / len(records)  # the pass's time, shared equally
                    row: dict[str, float | None] = dict.fromkeys(
                        ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"))
                    row = {"epoch": epoch, **row, "seconds": seconds / len(records)}
                    if i in diverged:
                        row["train_loss"] = float("nan")
                        record.epochs.append(row)
                        record.status = f"diverged@epoch {epoch}"
                        live.discard(i)
                        continue
                    row.update(train_loss=loss_sum[gi][a].item() / seen_per_epoch,
                               train_acc=correct[gi][a].item() / seen_per_epoch)
                    model = g.copy_out(a, plain[i])
                    loss = loss_fn(record.output)
                    if d.x_val is not None:
                        row["val_loss"], row["val_acc"] = evaluate(model, d.x_val, d.y_val, loss, config.run.eval_batch_size)
                    row["test_loss"], row["test_acc"] = evaluate(model, d.x_test, d.y_test, loss, config.run.eval_batch_size)
                    record.epochs.append(row)
                    record.stopped_epoch = epoch
                    if row["val_acc"] is not None and (record.best_val_acc is None or row["val_acc"] > record.best_val_acc):
                        record.best_epoch, record.best_val_acc = epoch, row["val_acc"]
                        best[i] = copy.deepcopy(model.state_dict())
            diagnose(f"epoch_{epoch}")
            if not live:
                break  # every model diverged
        for i in live:
            records[i].status = "ok"
    finally:
        bar.close()
    out = []
    for g, seed in zip(groups, seeds):
        for a, i in enumerate(members[seed]):
            g.copy_out(a, plain[i])
    for i, record in enumerate(records):
        mark_failed_to_learn(record)
        test_best_checkpoint(record, plain[i], best.get(i), data[record.seed], config)
        out.append((plain[i], best.get(i)))
    return out
