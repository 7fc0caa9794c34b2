"""The device a run trains on, and each seed's data held there as tensors: pick the device once,
check the precision it supports, and turn a loaded data set into float tensors (with the seeded
validation split, subsets and normalisation) once per seed, so batches are slices by index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from actlab.data import Dataset, Split, seeded_subset, validation_size, validation_split
from actlab.errors import ActlabError

if TYPE_CHECKING:  # the configuration is passed down; train never reads or builds one
    from actlab.config import Config


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
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ActlabError(f"device = {name!r} but this torch ({torch.__version__}) sees no CUDA GPU; "
                          f"use --device cpu or --device auto")
    return torch.device(name)


SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo says nothing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 only where the hardware computes it natively: emulated on a CPU without AVX-512 BF16 or
    AMX, it runs many times slower than fp32 (docs/speed.md), which is not what the option is for."""
    if precision != "bf16":
        return
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        flags = cpu_flags()
        native = not flags or bool({"avx512_bf16", "amx_bf16"} & flags)  # no flags to read: let it run
    if not native:
        raise ActlabError(f"precision = bf16: this {'GPU' if device.type == 'cuda' else 'CPU'} has no native "
                          f"bfloat16 (no avx512_bf16 or amx_bf16 among its flags), so bf16 would be emulated and "
                          f"many times slower than fp32 (docs/speed.md); use --precision fp32, or a machine with "
                          f"native bf16")


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
        train_idx, val_idx = validation_split(len(train), validation_size(d.val_split, len(train)), seed)
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
