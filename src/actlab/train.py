"""Training: one epoch loop for a group of models, data as tensors on the device.

`actlab.device_data` holds each seed's splits as tensors on the device. `train_group` trains a
group of models together: a group of one in a CPU worker, a stack of many on a GPU (or on a CPU
when asked). It builds each network under its seed (`actlab.families`), holds the group as one
`ModelStack` (a family that does not stack: a `ModuleStack` of one), and each step computes every model at once (the
hand-written backward pass of `actlab.backprop`, or autograd). Each model's bookkeeping, written once
here, fills its `ModelRun` record epoch by epoch: evaluation in large no-grad batches, the epoch row,
divergence, the best-validation weights, diagnostics, early stopping. A model that diverges or stops
early leaves the stack at the end of the epoch and keeps its weights; the others go on. The loop
reads top to bottom: no DataLoader, no per-sample Python, no host sync per step (losses and
accuracies accumulate on the device).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from actlab.backprop import hand_backprop_applies, hand_step
from actlab.board import tensorboard_writer
from actlab.device_data import DeviceData
from actlab.diagnostics import DIAGNOSTIC_EXAMPLES, measure
from actlab.families import ModuleStack, family_of
from actlab.losses import loss_fn, model_losses
from actlab.messages import Words
from actlab.models import ModelStack, apply_per_model, stack_forward
from actlab.optimizers import FlatOptimizer, learning_rate
from actlab.status import OK, Status
from actlab.results import ModelRun, mark_failed_to_learn

if TYPE_CHECKING:  # the configuration is passed down; train never reads or builds one
    from actlab.config import Config, OptimConfig

CHECK_EVERY = 100  # steps between divergence checks / progress updates (the only host syncs)
DIVERGED_LOSS = 1e4  # a mean loss above this has left learning behind (cross-entropy starts at ln 10 ≈ 2.3)


def build_model(record: ModelRun, config: Config, in_features: int, device: torch.device) -> nn.Module:
    """The network `record` names, of the config's model family, with the initial weights its seed gives it."""
    torch.manual_seed(record.seed)  # same seed → same initial weights for every activation
    return family_of(config).build(record.activation, record.output, config, in_features).to(device)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy over (x, y) in eval mode; restores the model's mode."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(y), batch_size):
        out = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        total_loss += loss(out, target) * len(target)
        correct += (out.argmax(1) == target).sum()
    model.train(was_training)
    return total_loss.item() / len(y), correct.item() / len(y)


Progress = Callable[[str, int, int, str], None]  # (what, steps done, steps in all, loss text)
EPOCH_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds")


@dataclass
class Member:
    """One model of a training group and what the loop keeps about it."""

    record: ModelRun
    data: DeviceData
    model: nn.Sequential
    noise: torch.Generator  # its dropout masks: the same ones in a stack as alone
    board: Callable | None = None  # its TensorBoard writer
    best_state: dict | None = None
    x_diag: torch.Tensor = field(init=False)
    y_diag: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:  # the diagnostics' images: the first of the seed's training split
        self.x_diag = self.data.x_train[:DIAGNOSTIC_EXAMPLES]
        self.y_diag = self.data.y_train[:DIAGNOSTIC_EXAMPLES]


def train_model(record: ModelRun, data: DeviceData, config: Config, device: torch.device,
                progress: Progress | None = None, tensorboard_dir: Path | None = None) -> tuple[nn.Module, dict | None]:
    """Train one model (a group of one); returns its final model and best-validation state."""
    return train_group([record], {record.seed: data}, config, device, progress, tensorboard_dir)[0]


def train_group(records: list[ModelRun], data: dict[int, DeviceData], config: Config, device: torch.device,
                progress: Progress | None = None,
                tensorboard_dir: Path | None = None) -> list[tuple[nn.Sequential, dict | None]]:
    """Train the models `records` name together, filling each record epoch by epoch.

    Returns each model's (final model, best-validation state or None), in the order of `records`.
    The records are filled as training goes, so on Ctrl-C the caller still has every finished epoch;
    a non-finite loss, or a mean loss above `DIVERGED_LOSS`, stops that model (`diverged@epoch N`).
    Every model of the group must be able to stack (`activations.stacking_obstacle`) unless it is
    alone.
    """
    o = config.optim
    members = [_member(records[i], data[records[i].seed], config, device, tensorboard_dir)
               for i in sorted(range(len(records)), key=lambda i: records[i].seed)]  # one seed side by side
    family = family_of(config)
    if family.stack is not None:
        stack = family.stack([m.model for m in members], [m.record.seed for m in members], [m.noise for m in members],
                             [m.record.loss for m in members])
    elif len(members) == 1:
        r = members[0].record
        stack = ModuleStack(members[0].model, r.seed, members[0].noise, r.output, r.loss)
    else:
        raise ValueError(f"the {config.model.family} family trains each model alone, not {len(members)} together")
    optimizer = FlatOptimizer(stack.flat, o)
    for member in members:
        _diagnose(member, "init", config)
    orders = {seed: torch.Generator().manual_seed(seed) for seed in stack.seeds}  # same seed → same batch order
    live = list(range(len(members)))  # the members in the stack, in its order
    desc = _progress_label(members, Words(config.run.lang))
    try:
        for epoch in range(1, o.epochs + 1):
            for i in live:
                members[i].record.status = Status("interrupted", epoch)
            losses, accs, diverged, seconds = _train_epoch(stack, optimizer, data, config, device, orders, epoch,
                                                           lambda *a: progress and progress(desc, *a))
            leaving = [k for k, i in enumerate(live)
                       if _end_epoch(members[i], epoch, seconds / len(live), losses[k], accs[k], diverged[k], config)]
            optimizer.lr = learning_rate(o, epoch)
            if len(leaving) == len(live):
                break
            if leaving:
                for k in leaving:
                    stack.release(k)
                stack = stack.keep([k for k in range(len(live)) if k not in leaving], optimizer)
                live = [i for k, i in enumerate(live) if k not in leaving]
        else:
            for i in live:
                members[i].record.status = OK
    finally:
        for k in range(len(stack)):
            stack.release(k)
        for member in members:
            if member.board:
                member.board(None)
    for member in members:
        mark_failed_to_learn(member.record)
        test_best_checkpoint(member, config)
    by_record = {id(m.record): (m.model, m.best_state) for m in members}
    return [by_record[id(r)] for r in records]


def _progress_label(members: list[Member], w: Words) -> str:
    """What a progress bar calls the group: one model's label and seed, or how many are stacked."""
    if len(members) == 1:
        return w.plain("terminal.progress_model", label=members[0].record.label, seed=members[0].record.seed)
    return w.plain("terminal.progress_stacked", n=len(members))


def _member(record: ModelRun, data: DeviceData, config: Config, device: torch.device,
            tensorboard_dir: Path | None) -> Member:
    model = build_model(record, config, data.x_train.shape[1], device)
    noise = torch.Generator(device).manual_seed(record.seed)
    board = tensorboard_writer(tensorboard_dir, record, config) if tensorboard_dir else None
    return Member(record, data, model, noise, board)


def _diagnose(member: Member, stage: str, config: Config) -> None:
    if config.run.diagnostics:
        member.record.diagnostics += [
            {"stage": stage, "layer": layer, "metric": metric, "value": value}
            for layer, metric, value in measure(member.model, member.x_diag, member.y_diag,
                                                loss_fn(member.record.output, member.record.loss))]


def _train_epoch(stack: ModelStack, optimizer: FlatOptimizer, data: dict[int, DeviceData], config: Config,
                 device: torch.device, orders: dict, epoch: int,
                 progress) -> tuple[list[float], list[float], list[bool], float]:
    """One pass over the training split for every model of the stack; returns per model the mean
    loss and accuracy over the examples seen, whether it diverged, and the pass's seconds."""
    o, words = config.optim, Words(config.run.lang)
    start = time.perf_counter()
    if not isinstance(stack, ModelStack):  # a stack with its own (autograd) step
        step = stack.step(autocast(device, config))
    elif config.run.backprop == "auto" and hand_backprop_applies(stack, config.run.precision):
        step = hand_step(stack)
    else:
        step = autograd_step(stack, autocast(device, config))
    n = len(data[stack.seeds[0]].y_train)
    steps, seen_per_epoch = epoch_steps(n, o)
    perms = {seed: torch.randperm(n, generator=orders[seed]).to(device) for seed in data}
    labels = {seed: data[seed].y_train.index_select(0, perm) for seed, perm in perms.items()}  # in batch order
    for model in stack.models:
        model.train()
    loss_sum = torch.zeros(len(stack), device=device)
    # each step writes its logits here, and the predictions are compared with the labels once at the
    # end: no kernel per step for the accuracy
    logits = torch.empty(len(stack), seen_per_epoch, stack.classes, device=device)
    into = logits[0].split(o.batch_size) if len(stack) == 1 else logits.split(o.batch_size, dim=1)
    diverged = [False] * len(stack)
    for i in range(steps):
        batch = slice(i * o.batch_size, (i + 1) * o.batch_size)
        xs = [data[seed].x_train.index_select(0, perms[seed][batch]) for seed, _, _ in stack.blocks]
        ys = [labels[seed][batch] for seed, _, _ in stack.blocks]
        y = ys[0] if len(stack) == 1 else torch.cat([y.expand(end - first, -1) for y, (_, first, end)
                                                     in zip(ys, stack.blocks)])
        _, losses = step(xs, y, stack.dropout_noise(len(ys[0])), into[i])
        optimizer.step()
        loss_sum.add_(losses, alpha=len(ys[0]))
        if (i + 1) % CHECK_EVERY == 0 or i + 1 == steps:  # the loop's last step always checks, so sets `seen`
            seen = min((i + 1) * o.batch_size, seen_per_epoch)
            running = (loss_sum / seen).tolist()
            diverged = [d or not math.isfinite(r) or r > DIVERGED_LOSS for d, r in zip(diverged, running)]
            progress((epoch - 1) * steps + i + 1, o.epochs * steps,
                     words.plain("terminal.progress_epoch", epoch=epoch, loss=f"{min(running):.4f}"))
            if all(diverged):
                break
    truth = torch.stack([labels[seed][:seen] for seed, first, end in stack.blocks for _ in range(first, end)])
    correct = (logits[:, :seen].argmax(-1) == truth).sum(-1)
    seconds = time.perf_counter() - start
    return ([v / seen_per_epoch for v in loss_sum.tolist()], [c / seen_per_epoch for c in correct.tolist()],
            diverged, seconds)


def _end_epoch(member: Member, epoch: int, seconds: float, train_loss: float, train_acc: float, diverged: bool,
               config: Config) -> bool:
    """A model's bookkeeping after an epoch: its row, evaluation, diagnostics, best weights and
    early stopping. Returns True when the model leaves training (diverged, or stopped early)."""
    record = member.record
    record.train_seconds += seconds
    row: dict[str, float | None] = dict.fromkeys(EPOCH_KEYS)
    row.update(epoch=epoch, seconds=seconds)
    if diverged:
        row["train_loss"] = float("nan")
        record.epochs.append(row)
        record.status = Status("diverged", epoch)
        return True
    row.update(train_loss=train_loss, train_acc=train_acc)
    loss, data, batch = loss_fn(record.output, record.loss), member.data, config.run.eval_batch_size
    if data.x_val is not None:
        row["val_loss"], row["val_acc"] = evaluate(member.model, data.x_val, data.y_val, loss, batch)
    row["test_loss"], row["test_acc"] = evaluate(member.model, data.x_test, data.y_test, loss, batch)
    record.epochs.append(row)
    _diagnose(member, f"epoch_{epoch}", config)
    if member.board:
        member.board(member.model, row, loss, data)
    record.stopped_epoch = epoch
    if row["val_acc"] is not None and (record.best_val_acc is None or row["val_acc"] > record.best_val_acc):
        record.best_epoch, record.best_val_acc = epoch, row["val_acc"]
        member.best_state = {k: v.clone() for k, v in member.model.state_dict().items()}  # own storage, not views
    if config.optim.patience and epoch - record.best_epoch >= config.optim.patience:
        record.status = OK  # early stopping: the best-validation checkpoint is what gets tested
        return True
    return False


def autograd_step(stack: ModelStack, precision) -> Callable:
    """The training step of `actlab.backprop.hand_step` by autograd, under `precision` (an autocast
    context): for output heads, bf16, and `backprop = "autograd"`."""
    def activation_of(layer, params: dict) -> Callable:
        if not params:
            return layer.activation
        return lambda z: torch.func.functional_call(layer.activation, params, (z,))

    def step(xs: list[torch.Tensor], y: torch.Tensor, noise, out: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        weights, biases, act_params = stack.views(stack.flat, squeeze=True)  # differentiable: gradients reach `flat`
        functions = [[activation_of(layer, params) for layer, params in zip(hidden, acts)]
                     for hidden, acts in zip(stack.hidden, act_params)]
        with precision:
            logits, _ = stack_forward(stack, xs, weights, biases,
                                      lambda depth, z: apply_per_model([f[depth] for f in functions], z), noise)
            outputs = logits if all(h is None for h in stack.heads) else \
                apply_per_model([h or (lambda t: t) for h in stack.heads], logits)
            losses = model_losses(outputs, y, stack.heads, stack.losses)
        stack.flat.grad.zero_()
        losses.sum().backward()
        if out is not None:
            out.copy_(outputs.detach())
        return outputs.detach(), losses.detach()
    return step


def autocast(device: torch.device, config: Config):
    """bfloat16 autocast for training steps when `precision = "bf16"`, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.run.precision == "bf16")


def epoch_steps(n: int, o: OptimConfig) -> tuple[int, int]:
    """(steps per epoch, training examples seen per epoch): `drop_last` drops the incomplete batch."""
    if o.drop_last:
        steps = n // o.batch_size
        return steps, steps * o.batch_size
    return math.ceil(n / o.batch_size), n


def test_best_checkpoint(member: Member, config: Config) -> None:
    """Reload the best-validation weights, test them into `record.best_test_acc` (as the reference
    write-up does) and measure their diagnostics (stage `best`), then put the final weights back."""
    if member.best_state is None:
        return
    model, record = member.model, member.record
    final_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(member.best_state)
    _, record.best_test_acc = evaluate(model, member.data.x_test, member.data.y_test,
                                       loss_fn(record.output, record.loss),
                                       config.run.eval_batch_size)
    _diagnose(member, "best", config)
    model.load_state_dict(final_state)
