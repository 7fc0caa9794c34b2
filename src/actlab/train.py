"""Training one model: data as tensors on the device, batches sliced from a seeded permutation.

`prepare_data` turns a loaded data set into float tensors on the device once per seed (with the
seeded validation split and subsets); `train_model` builds the network under that seed, trains it
epoch by epoch, evaluates in large no-grad batches, keeps the best-validation weights, and fills a
`ModelRun` record as it goes. The loop reads top to bottom: no DataLoader, no per-sample Python, no
host sync per step (losses and accuracies accumulate on the device).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from actlab.activations import parse_layers
from actlab.backprop import (flat_optimizer_step, flatten_parameters, hand_backprop_supported, hand_step,
                             unflatten_parameters)
from actlab.data import Dataset, Split, seeded_subset, validation_split
from actlab.diagnostics import DIAGNOSTIC_EXAMPLES, measure
from actlab.models import build_mlp, loss_fn
from actlab.results import ModelRun, mark_failed_to_learn, safe_name

if TYPE_CHECKING:  # the configuration is passed down; train never reads or builds one
    from actlab.config import Config, OptimConfig

CHECK_EVERY = 100  # steps between divergence checks / progress updates (the only host syncs)
DIVERGED_LOSS = 1e4  # a mean loss above this has left learning behind (cross-entropy starts at ln 10 ≈ 2.3)


@dataclass(frozen=True)
class DeviceData:
    """One seed's splits as float tensors in [0, 1] (images) and int64 labels, on the device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None
    x_test: torch.Tensor
    y_test: torch.Tensor
    normalization: tuple[torch.Tensor, torch.Tensor] | None = None  # (mean, std) from the training split


def resolve_device(name: str) -> torch.device:
    from actlab.errors import ActlabError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ActlabError(f"device = {name!r} but this torch ({torch.__version__}) sees no CUDA GPU; "
                          f"use --device cpu or --device auto")
    return torch.device(name)


def _to_device(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return split.images.to(device).float().div_(255), split.labels.to(device)


def normalization_stats(x_train: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mean, std) to standardise inputs with, from the training split only (never validation or test)."""
    if kind == "none":
        return None
    if kind == "symmetric":
        return torch.tensor(0.5), torch.tensor(0.5)
    if kind == "global":
        x = x_train.double()
        return x.mean().float(), x.std().float()
    mean, std = x_train.mean(0), x_train.std(0)
    return mean, torch.where(std > 0, std, torch.ones_like(std))  # a constant pixel gets std 1


def prepare_data(dataset: Dataset, config: Config, seed: int, device: torch.device) -> DeviceData:
    """The seed's training / validation / test tensors; every activation of one seed shares them."""
    d = config.data
    train, test = dataset.train, dataset.test
    val = None
    if d.val_split:
        size = d.val_split if isinstance(d.val_split, int) else round(d.val_split * len(train))
        train_idx, val_idx = validation_split(len(train), size, seed)
        train, val = train.take(train_idx), train.take(val_idx)
    if d.train_subset and d.train_subset < len(train):
        train = train.take(seeded_subset(len(train), d.train_subset, seed))
    if d.test_subset and d.test_subset < len(test):
        test = test.take(seeded_subset(len(test), d.test_subset, seed))
    x_train, y_train = _to_device(train, device)
    x_val, y_val = _to_device(val, device) if val is not None else (None, None)
    x_test, y_test = _to_device(test, device)
    stats = normalization_stats(x_train, d.normalize)
    if stats is not None:
        mean, std = (t.to(device) for t in stats)
        for x in (x_train, x_val, x_test):
            if x is not None:
                x.sub_(mean).div_(std)
    return DeviceData(x_train, y_train, x_val, y_val, x_test, y_test, stats)


def make_optimizer(params, o: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    """SGD and RMSprop (foreach) or Adam/AdamW (fused where this torch supports it on the device)."""
    params = list(params)
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                               weight_decay=o.weight_decay, foreach=True)
    if o.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, foreach=True)
    cls = torch.optim.Adam if o.optimizer == "adam" else torch.optim.AdamW
    try:
        return cls(params, lr=o.lr, weight_decay=o.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(params, lr=o.lr, weight_decay=o.weight_decay, foreach=True)


def make_schedule(optimizer: torch.optim.Optimizer, o: OptimConfig):
    """The per-epoch learning-rate schedule, or None."""
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=o.epochs)
    if o.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_size, gamma=o.gamma)
    return None


def build_model(record: ModelRun, config: Config, in_features: int, device: torch.device) -> nn.Sequential:
    """The network `record` names, with the initial weights its seed gives it."""
    m = config.model
    torch.manual_seed(record.seed)  # same seed → same initial weights for every activation
    return build_mlp(in_features, m.hidden, parse_layers(record.activation), 10, record.output,
                     m.init_for(record.activation), m.dropout, m.dropout_kind_for(record.activation)).to(device)


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


def _tensorboard(folder: Path, record: ModelRun):
    """A per-epoch writer for one model: every metric as a scalar, histograms per layer."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        from actlab.errors import ActlabError
        raise ActlabError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    from actlab.diagnostics import layer_histograms

    name = safe_name(record.label) + f"-seed{record.seed}"
    writer = SummaryWriter(log_dir=str(folder / name))

    def write(model: nn.Module | None, row: dict | None = None, loss=None, data: DeviceData | None = None) -> None:
        """Write one epoch; `write(None)` closes the files."""
        if model is None:
            writer.close()
            return
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and value is not None:
                writer.add_scalar(key, value, epoch)
        x, y = data.x_test[:DIAGNOSTIC_EXAMPLES], data.y_test[:DIAGNOSTIC_EXAMPLES]
        for tag, values in layer_histograms(model, x, y, loss).items():
            writer.add_histogram(tag, values, epoch)
        writer.flush()
    return write


def autocast(device: torch.device, config: Config):
    """bfloat16 autocast for training steps when `precision = "bf16"`, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.run.precision == "bf16")


class _ForwardedBar:
    """The progress-bar calls train_model makes, forwarded to `send` (a worker process's queue) so
    the parent can draw the bar."""

    def __init__(self, total: int, desc: str, send):
        self.total, self.desc, self.send, self.n, self.postfix = total, desc, send, 0, ""

    def update(self, steps: int) -> None:
        self.n += steps
        self.send((self.desc, self.n, self.total, self.postfix))

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        pass


def _progress_bar(total: int, desc: str, show):
    """A tqdm bar on stderr when `show` is True, forwarded when `show` is a function, else silent."""
    if callable(show):
        return _ForwardedBar(total, desc, show)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not show, file=sys.stderr,
                dynamic_ncols=True)


def train_model(record: ModelRun, data: DeviceData, config: Config, device: torch.device,
                show_progress: bool = False, tensorboard_dir: Path | None = None) -> tuple[nn.Module, dict | None]:
    """Train the model `record` names, filling `record` epoch by epoch.

    Returns the trained model (its final weights) and the best-validation state dict (None without
    a validation split). The record is filled as training goes, so on Ctrl-C the caller still has
    every finished epoch; a non-finite loss, or a mean loss above `DIVERGED_LOSS`, stops the run
    and marks it `diverged@epoch N`. With `tensorboard_dir`, each epoch's metrics and per-layer
    histograms go to TensorBoard event files there.
    """
    o = config.optim
    model = build_model(record, config, data.x_train.shape[1], device)
    loss = loss_fn(record.output)
    hand = config.run.backprop == "auto" and hand_backprop_supported(model, record.output, config.run.precision)
    flat = flatten_parameters(model) if hand else None
    optimizer = make_optimizer([flat] if hand else model.parameters(), o, device)
    schedule = make_schedule(optimizer, o)  # before the step functions take optimizer.step: it wraps it
    if hand:
        forward_backward, optimizer_step = hand_step(model, flat), flat_optimizer_step(optimizer, flat)
    else:
        forward_backward = autograd_step(model, loss, optimizer, autocast(device, config))
        optimizer_step = optimizer.step
    x_diag, y_diag = data.x_test[:DIAGNOSTIC_EXAMPLES], data.y_test[:DIAGNOSTIC_EXAMPLES]

    def diagnose(stage: str) -> None:
        if config.run.diagnostics:
            record.diagnostics += [{"stage": stage, "layer": layer, "metric": metric, "value": value}
                                   for layer, metric, value in measure(model, x_diag, y_diag, loss)]
    diagnose("init")
    board = _tensorboard(tensorboard_dir, record) if tensorboard_dir else None
    order = torch.Generator().manual_seed(record.seed)  # same seed → same batch order
    n = len(data.y_train)
    steps, seen_per_epoch = epoch_steps(n, o)
    best_state = None
    bar = _progress_bar(o.epochs * steps, f"{record.label} seed {record.seed}", show_progress)
    try:
        for epoch in range(1, o.epochs + 1):
            record.status = f"interrupted@epoch {epoch}"
            start = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=order).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            diverged = False
            for step in range(steps):
                idx = perm[step * o.batch_size:(step + 1) * o.batch_size]
                x, y = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)
                out, batch_loss = forward_backward(x, y)
                optimizer_step()
                loss_sum += batch_loss * len(idx)
                correct += (out.argmax(1) == y).sum()
                if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
                    seen = min((step + 1) * o.batch_size, seen_per_epoch)
                    running = loss_sum.item() / seen
                    bar.set_postfix(epoch=epoch, loss=f"{running:.4f}", refresh=False)
                    bar.update(step + 1 - bar.n + (epoch - 1) * steps)
                    if not math.isfinite(running) or running > DIVERGED_LOSS:
                        diverged = True
                        break
            seconds = time.perf_counter() - start
            record.train_seconds += seconds
            row: dict[str, float | None] = dict.fromkeys(
                ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds"))
            row.update(epoch=epoch, seconds=seconds)
            if diverged:
                row["train_loss"] = float("nan")
                record.epochs.append(row)
                record.status = f"diverged@epoch {epoch}"
                break
            row.update(train_loss=loss_sum.item() / seen_per_epoch, train_acc=correct.item() / seen_per_epoch)
            if data.x_val is not None:
                row["val_loss"], row["val_acc"] = evaluate(model, data.x_val, data.y_val, loss,
                                                           config.run.eval_batch_size)
            row["test_loss"], row["test_acc"] = evaluate(model, data.x_test, data.y_test, loss,
                                                         config.run.eval_batch_size)
            record.epochs.append(row)
            diagnose(f"epoch_{epoch}")
            if board:
                board(model, row, loss, data)
            record.stopped_epoch = epoch
            if schedule is not None:
                schedule.step()
            if row["val_acc"] is not None and (record.best_val_acc is None or row["val_acc"] > record.best_val_acc):
                record.best_epoch, record.best_val_acc = epoch, row["val_acc"]
                best_state = {k: v.clone() for k, v in model.state_dict().items()}  # own storage, not views
            if o.patience and epoch - record.best_epoch >= o.patience:
                record.status = "ok"  # early stopping: the best-validation checkpoint is what gets tested
                break
        else:
            record.status = "ok"
    finally:
        if hand:
            unflatten_parameters(model)
        bar.close()
        if board:
            board(None)
    mark_failed_to_learn(record)
    test_best_checkpoint(record, model, best_state, data, config)
    return model, best_state


def autograd_step(model: nn.Module, loss, optimizer: torch.optim.Optimizer, precision):
    """A function (x, y) → (output, mean loss), detached, that leaves the loss's gradient in the
    model's `.grad`s by autograd, under `precision` (an autocast context); the caller steps the
    optimizer. `actlab.backprop.hand_step` is the same step with the backward pass written out."""
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with precision:
            out = model(x)
            batch_loss = loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        batch_loss.backward()
        return out.detach(), batch_loss.detach()
    return step


def epoch_steps(n: int, o: OptimConfig) -> tuple[int, int]:
    """(steps per epoch, training examples seen per epoch): `drop_last` drops the incomplete batch."""
    if o.drop_last:
        steps = n // o.batch_size
        return steps, steps * o.batch_size
    return math.ceil(n / o.batch_size), n


def test_best_checkpoint(record: ModelRun, model: nn.Module, best_state: dict | None, data: DeviceData,
                         config: Config) -> None:
    """Reload the best-validation weights, test them into `record.best_test_acc` (as the reference
    write-up does), and put the final weights back."""
    if best_state is None:
        return
    final_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    _, record.best_test_acc = evaluate(model, data.x_test, data.y_test, loss_fn(record.output),
                                       config.run.eval_batch_size)
    model.load_state_dict(final_state)
