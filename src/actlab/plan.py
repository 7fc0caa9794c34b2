"""A run's plan: its size, checked and stated before anything is allocated for its models, and how
its models are spread over worker processes, stacked passes and memory.

A run is the product of its seeds, activations (and output heads) and, in a sweep, grid points. A
typo such as `--seeds 1000000` multiplies into millions of models, whose per-model records alone
outgrow a shared machine's memory while the run is still planning. `check_size` counts the models
from the config alone, estimates the time and the memory of their records, and refuses, in one
line naming the product, a plan that would not fit in memory or would take more than a month. The
estimate also opens every run's narration (`plan_line`), as nanoGPT's train.py states its setup.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from actlab.activations import split_layers, stacking_obstacle
from actlab.config import Config
from actlab.errors import ActlabError
from actlab.messages import Words
from actlab.numbers import variant_count
from actlab.families import family_of, memory_parts
from actlab.results import ModelRun

MAX_SECONDS = 30 * 86400  # a month: beyond this a run of MNIST-sized MLPs is a typo, not a plan
MODEL_SECONDS = 0.3  # per model, besides its epochs: start, evaluation, diagnostics, its files
STEP_OVERHEAD = 1.5  # a training step takes about 1.2x its matrix products' floor (docs/speed.md), plus the rest
RECORD_BYTES = 3000  # one model's record in memory, before its epochs
EPOCH_BYTES = 1500  # one epoch's row and that epoch's diagnostics, in memory and in results.json
WRITE_RATE = 100e6  # bytes per second at which results.json, rewritten after each model, is encoded and written


def model_flops(config: Config) -> float:
    """Floating-point operations one model needs per epoch: 6 per weight per training example
    (forward and backward), 2 per weight per evaluated example (validation and test)."""
    weights = family_of(config).weights(config)
    train = config.data.train_subset or 60000
    evaluated = (config.data.test_subset or 10000) + (10000 if config.data.val_split else 0)
    return weights * (6 * train + 2 * evaluated)


def measured_rate(device: torch.device, seconds: float = 0.03) -> float:
    """The matrix-product rate (FLOP/s) of one CPU core, as a worker trains with, or of the GPU,
    measured for a moment on one training-sized product, so an estimate says what this machine
    would take."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _rate(device, seconds)
    finally:
        torch.set_num_threads(threads)


def _rate(device: torch.device, seconds: float) -> float:
    a = torch.randn(256, 784, device=device)
    b = torch.randn(784, 256, device=device)
    a @ b  # the first product starts torch's thread pool
    flops, done, start = 2 * 256 * 784 * 256, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or done < 3:
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        done += 1
    return flops * done / max(elapsed, 1e-9)


def estimate_seconds(config: Config, models: int, device: torch.device, parallel: int = 0) -> float:
    """Wall-clock seconds `models` of this config would take here, roughly: the epochs' matrix
    products at the measured rate, a fixed cost per model, and results.json rewritten after each
    model (a cost that grows with the square of the count)."""
    parallel = parallel or (1 if device.type == "cuda" else os.cpu_count() or 1)
    rate = measured_rate(device) * (1 if device.type == "cuda" else parallel)
    epochs = config.optim.epochs
    compute = models * epochs * model_flops(config) * STEP_OVERHEAD * family_of(config).step_overhead / rate
    rewrites = models * models * (RECORD_BYTES + epochs * EPOCH_BYTES) / 2 / WRITE_RATE
    return compute + models * MODEL_SECONDS / parallel + rewrites


def record_bytes(config: Config, models: int) -> int:
    """Memory the models' records take once trained (the results a run keeps and rewrites)."""
    return models * (RECORD_BYTES + config.optim.epochs * EPOCH_BYTES)


def available_bytes(device: torch.device) -> int:
    """Memory free for new work: on the GPU, what CUDA reports; on the CPU, the kernel's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def product(config: Config, sweep: dict[str, list] | None = None, w: Words | None = None) -> tuple[int, str]:
    """The number of models and how it multiplies out, e.g. (8, "2 seeds × 4 activations"), in the
    words of `w` (default English); a sweep's lists multiply in (its `activation` and `seed` lists in
    place of the config's)."""
    sweep, w = sweep or {}, w or Words("en")
    seeds = len(sweep["seed"]) if "seed" in sweep else len(config.run.seeds)
    m = config.model
    variants = len(config.variants)
    if "activation" in sweep:
        variants = len(sweep["activation"]) * len(m.outputs) * len(m.losses)
    activations = len(sweep["activation"]) if "activation" in sweep else len(m.activations)
    parts = [_count(w, "seed", seeds), variant_count(w, activations, len(m.outputs), len(m.losses), variants)]
    points = math.prod(len(v) for k, v in sweep.items() if k not in ("activation", "seed"))
    if points > 1:
        parts.append(_count(w, "point", points))
    return seeds * variants * points, " × ".join(parts)


def _count(w: Words, noun: str, n: int) -> str:
    return w.plain(f"terminal.{noun}_{'one' if n == 1 else 'other'}", n=f"{n:,}")


def check_size(config: Config, device: torch.device, sweep: dict[str, list] | None = None,
               fix: str = "give fewer seeds") -> float:
    """The estimated seconds of a run of `config` (over `sweep`'s grid, if given); refuses, before
    anything is allocated for its models, one whose records would not fit in memory or which would
    take more than `MAX_SECONDS` (a month) with the workers it would have."""
    models, how = product(config, sweep)
    seconds = estimate_seconds(config, models, device, worker_count(config, device, models))
    memory, free = record_bytes(config, models), available_bytes(torch.device("cpu"))
    if seconds > MAX_SECONDS or memory > free / 2:
        costs = [f"about {duration(seconds)} on this machine"]
        if memory > free / 2:
            costs.append(f"{size(memory)} of memory for their records alone ({size(free)} is free)")
        raise ActlabError(f"{how} = {models:,} models, {' and '.join(costs)}; {fix}")
    return seconds


def duration(seconds: float, w: Words | None = None) -> str:
    """Seconds as a person would say them: 40 s, 12 min, 3.5 h, 12 days (in the words of `w`)."""
    w = w or Words("en")
    if seconds < 90:
        return w.plain("terminal.seconds", n=max(1, round(seconds)))
    if seconds < 5400:
        return w.plain("terminal.minutes", n=round(seconds / 60))
    if seconds < 2 * 86400:
        return w.plain("terminal.hours", n=f"{seconds / 3600:.1f}")
    days = seconds / 86400
    return w.plain("terminal.days", n=f"{days:,.0f}" if days < 1e6 else f"{days:.1e}")


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


def backward_pass(config: Config) -> str:
    """Which backward pass the models train with (`actlab.backprop.hand_backprop_applies` decides
    per stack, by the same rule): actlab's own where every head is logits and training is fp32."""
    hand = (family_of(config).hand_backward and config.run.backprop == "auto" and config.run.precision == "fp32"
            and all(o == "logits" for o in config.model.outputs)
            and all(loss == "cross_entropy" for loss in config.model.losses))
    return "hand-written" if hand else "autograd"


def plan_line(how: str, models: int, workers: int, stack: bool, device: torch.device, backward: str,
              seconds: float, w: Words | None = None) -> str:
    """The run's plan in one line, before anything is allocated for its models: what trains, where,
    how, and about how long (in the words of `w`, the run's language; default English)."""
    w = w or Words("en")
    where = w.plain("terminal.where_workers", n=workers, device=device) if workers > 1 else \
        w.plain("terminal.where_here", device=device)
    return w.plain("terminal.plan", how=how, models=_count(w, "model", models), where=where,
                   stacked=w.plain("terminal.stacked") if stack else "",
                   backward=w.plain(f"terminal.backward_{'hand' if backward == 'hand-written' else 'autograd'}"),
                   time=duration(seconds, w))


# --- how the models are spread over workers, stacks and memory -------------------------------------

def worker_count(config: Config, device: torch.device, tasks: int) -> int:
    """Processes to train in: on CPU one per core (small MLPs keep one core busier than two threads
    keep two), on a GPU one; one, too, where an activation is defined in the caller's `__main__` (a
    notebook cell, a script), which a worker process does not have."""
    if device.type != "cpu" or tasks < 2 or defined_in_main(config):
        return 1  # a GPU trains in this process (stacked); `workers` is for CPUs
    if config.run.workers:
        return min(config.run.workers, tasks)
    return max(1, min(os.cpu_count() or 1, tasks))


def defined_in_main(config: Config) -> bool:
    """Whether an activation is the caller's own, defined in `__main__` (`__main__:Swish`)."""
    return any(main_defined(a) for a in config.model.activations)


def main_defined(activation: str) -> bool:
    """Whether this activation (any of its layers) is defined in the caller's `__main__`."""
    return any(layer.split(":")[0].strip() == "__main__" for layer in split_layers(activation))


def threads_per_worker(config: Config, workers: int) -> int:
    return config.run.threads or max(1, (os.cpu_count() or 1) // workers)


def data_folder(config: Config) -> Path | None:
    """The user's data folder, if they named one (`--data-dir` / `ACTLAB_DATA_DIR`)."""
    return Path(config.data.data_dir).expanduser() if config.data.data_dir else None


def stacking(config: Config, device: torch.device) -> bool:
    """Whether models share stacked passes: `stack`, where `auto` means on a GPU."""
    return config.run.stack if config.run.stack != "auto" else device.type == "cuda"


def plan_groups(config: Config, device: torch.device, records: list[ModelRun],
                workers: int) -> tuple[list[list[int]], dict[str, str]]:
    """Which models train together. With `stack` (on by default on a GPU) the models that can share
    a stacked pass form groups (chunks that fit in memory, at least one per worker); every other
    model is a group of one. Returns the groups (indices into `records`) and, for each model that
    trained alone although stacking was on, why."""
    if not stacking(config, device) or not family_of(config).stacks:
        return [[i] for i in range(len(records))], {}
    alone = {i: why for i, r in enumerate(records) if (why := stacking_obstacle(r.activation))}
    together = sorted((i for i in range(len(records)) if i not in alone), key=lambda i: records[i].seed)
    count = max(workers, math.ceil(len(together) / models_per_chunk(config, device))) if together else 0
    groups = [together[k * len(together) // count:(k + 1) * len(together) // count] for k in range(count)]
    why = {f"{records[i].label} seed {records[i].seed}": reason for i, reason in alone.items()}
    return [g for g in groups if g] + [[i] for i in alone], why


def model_bytes(config: Config) -> int:
    """Memory one model needs while it trains, roughly: its parameters with their gradients, the
    optimizer's state and the copies kept (best-validation weights, the checkpoint), plus one
    training batch's and one evaluation batch's activations and an epoch's logits (the training
    accuracy reads them once per epoch); its family says how large (`families.memory_parts`)."""
    return sum(memory_parts(config).values())


DATA_BYTES = 70000 * 785 * 4  # one seed's splits as float32 tensors: each worker holds one seed's at a time


def check_memory(config: Config, device: torch.device) -> None:
    """Refuse, before allocating anything, a model that cannot fit in this machine's memory."""
    need, available = model_bytes(config) + DATA_BYTES, available_bytes(device)
    if need > available:
        parts = memory_parts(config)
        what, fix = {  # by the part that needs the most
            "layers": (f"hidden = {list(config.model.hidden)} (the parameters with their gradients, optimizer state "
                       f"and copies)", "use smaller layers"),
            "batch_size": (f"batch_size = {config.optim.batch_size} (one batch's activations)",
                           "use a smaller --batch-size"),
            "eval_batch_size": (f"eval_batch_size = {config.run.eval_batch_size} (one evaluation chunk's "
                                f"activations)", "use a smaller --eval-batch-size")}[max(parts, key=parts.get)]
        raise ActlabError(f"one model and its data need about {size(need)} of memory, most of it for {what}; this "
                          f"{'GPU' if device.type == 'cuda' else 'machine'} has {size(available)} available: {fix}")


def models_per_chunk(config: Config, device: torch.device) -> int:
    """How many models fit in one stacked pass, from `model_bytes` against the free memory."""
    budget = 0.6 * available_bytes(device) - DATA_BYTES * len(config.run.seeds)
    return max(1, int(budget // model_bytes(config)))
