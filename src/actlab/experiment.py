"""`actlab.run(config)`: train every activation under every seed, write the run folder and report.

Within a seed every activation shares the data (validation split, subset, batch order) and starts
from the same initial weights, so differences between activations within a seed are paired. The
models are planned into groups (`plan_groups`: one model each, or stacks of many on a GPU or when
`stack = true`), handed to `actlab.workers`, and written to the run folder as each one finishes.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from actlab import __version__
from actlab.activations import stacking_obstacle
from actlab.config import Config
from actlab.data import load_dataset
from actlab.errors import ActlabError
from actlab.results import ModelRun, Results, atomic_write, safe_name, write_results
from actlab.train import prepare_data, resolve_device
from actlab.workers import Task, Trained, progress_wanted, remember_dataset, resident_peak_mb, run_tasks


def environment(device: torch.device, config: Config) -> dict:
    """Versions, device and seeds, recorded in every run folder."""
    env = {
        "actlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "device": str(device),
        "seeds": list(config.run.seeds), "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("actlab") else None,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def run_folder(config: Config) -> Path:
    if config.run.out is not None:
        folder = Path(config.run.out)
        if (folder / "results.json").exists():
            raise ActlabError(f"{folder} already holds a run (results.json); choose another --out "
                              f"or delete that folder")
        return folder
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path("runs") / f"{config.run.name}-{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = Path("runs") / f"{config.run.name}-{stamp}-{suffix}"
    return folder


def write_normalization(folder: Path, config: Config, dataset) -> None:
    """normalization.json: the input statistics of each seed, computed from its training split only."""
    seeds = {}
    for seed in config.run.seeds:
        mean, std = prepare_data(dataset, config, seed, torch.device("cpu")).normalization
        seeds[str(seed)] = {"mean": mean.tolist(), "std": std.tolist()}
    doc = {"normalize": config.data.normalize, "computed_from": "the training split of each seed (after the "
           "validation split and any subset), never validation or test", "seeds": seeds}
    atomic_write(folder / "normalization.json", json.dumps(doc) + "\n")


def checkpoint_name(label: str, seed: int) -> str:
    return safe_name(label) + f"-seed{seed}.pt"


def worker_count(config: Config, device: torch.device, tasks: int) -> int:
    """Processes to train in: on CPU one per core (small MLPs keep one core busier than two threads
    keep two), on a GPU one."""
    if device.type != "cpu" or tasks < 2:
        return 1  # a GPU trains in this process (stacked); `workers` is for CPUs
    if config.run.workers:
        return min(config.run.workers, tasks)
    return max(1, min(os.cpu_count() or 1, tasks))


def threads_per_worker(config: Config, workers: int) -> int:
    return config.run.threads or max(1, (os.cpu_count() or 1) // workers)


def data_folder(config: Config) -> Path | None:
    """The user's data folder, if they named one (`--data-dir` / `ACTLAB_DATA_DIR`)."""
    return Path(config.data.data_dir).expanduser() if config.data.data_dir else None


def save_checkpoint(path: Path, record: ModelRun, final_state: dict, best_state: dict | None, config: dict) -> None:
    """The final and best-validation weights of one model, written atomically (on the CPU)."""
    state = {"final": {k: v.cpu() for k, v in final_state.items()},
             "best_val": best_state and {k: v.cpu() for k, v in best_state.items()},
             "label": record.label, "seed": record.seed, "best_epoch": record.best_epoch, "config": config}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def plan_groups(config: Config, device: torch.device, records: list[ModelRun],
                workers: int) -> tuple[list[list[int]], dict[str, str]]:
    """Which models train together. With `stack` (on by default on a GPU) the models that can share
    a stacked pass form groups (chunks that fit in memory, at least one per worker); every other
    model is a group of one. Returns the groups (indices into `records`) and, for each model that
    trained alone although stacking was on, why."""
    stack = config.run.stack if config.run.stack != "auto" else device.type == "cuda"
    if not stack:
        return [[i] for i in range(len(records))], {}
    alone = {i: why for i, r in enumerate(records) if (why := stacking_obstacle(r.activation))}
    together = sorted((i for i in range(len(records)) if i not in alone), key=lambda i: records[i].seed)
    count = max(workers, math.ceil(len(together) / models_per_chunk(config, device))) if together else 0
    groups = [together[k * len(together) // count:(k + 1) * len(together) // count] for k in range(count)]
    why = {f"{records[i].label} seed {records[i].seed}": reason for i, reason in alone.items()}
    return [g for g in groups if g] + [[i] for i in alone], why


def models_per_chunk(config: Config, device: torch.device) -> int:
    """How many models fit in one stacked pass, from a byte estimate against the free memory
    (0 when not even the data fits)."""
    sizes = [784, *config.model.hidden, 10]
    params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    per_model = params * 4 * 6 + config.optim.batch_size * sum(sizes) * 4 * 4  # weights, grads, state, copy; activations
    data_bytes = 70000 * 785 * 4 * len(config.run.seeds)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = 0.6 * free
    else:
        budget = 0.5 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, int((budget - data_bytes) // per_model))


def run(config: Config, show_progress: bool | None = None, log=None) -> Results:
    """Train `config`'s activations × seeds and write the run folder; returns the `Results`.

    `show_progress` defaults to bars on a terminal or in a notebook; `log` receives one line per
    finished model (default: stderr). On Ctrl-C the models finished so far are already on disk.
    """
    show_progress = progress_wanted() if show_progress is None else show_progress
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    device = resolve_device(config.run.device)
    dataset = load_dataset(config.data.dataset, data_folder(config), download=config.data.download,
                           mirror=config.data.data_mirror, show_progress=show_progress)
    remember_dataset(dataset)
    records = [ModelRun(label, activation, output, seed)
               for seed in config.run.seeds for label, activation, output in config.variants]
    folder = run_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    groups, alone = plan_groups(config, device, records, worker_count(config, device, len(records)))
    workers = worker_count(config, device, len(groups))
    threads = threads_per_worker(config, workers)
    results = Results(folder, config.to_flat(), environment(device, config), records)
    results.environment.update(
        data_folder=str(dataset.folder), workers=workers, threads_per_worker=threads,
        stacked=[[f"{records[i].label} seed {records[i].seed}" for i in g] for g in groups if len(g) > 1],
        trained_alone=alone)
    atomic_write(folder / "config.toml", config.to_toml())
    atomic_write(folder / "environment.json", json.dumps(results.environment, indent=1) + "\n")
    write_results(results)
    if config.data.normalize != "none":
        write_normalization(folder, config, dataset)
    board = str(folder / "tensorboard") if config.run.tensorboard else None
    tasks = [Task(tuple(g), tuple(records[i] for i in g), config.to_flat(), str(dataset.folder), str(device), board)
             for g in groups]
    worker_peaks: list[float] = []

    def finished(trained: Trained) -> None:
        if trained.error:
            raise ActlabError(trained.error)
        record = results.runs[trained.index] = trained.record
        worker_peaks.append(trained.peak_mb)
        write_results(results)
        if config.run.checkpoints:
            save_checkpoint(folder / "checkpoints" / checkpoint_name(record.label, record.seed), record,
                            trained.final_state, trained.best_state, results.config)
        acc = record.final_test_acc
        log(f"{record.label} seed {record.seed}: {record.status}, test acc "
            f"{'–' if acc is None else f'{acc:.2%}'}, {record.train_seconds:.1f} s")

    try:
        run_tasks(tasks, workers, threads, show_progress, finished)
    finally:
        write_results(results)
    from actlab.report import build_report  # plotting and statistics: only the parent needs them

    results.environment.update(peak_memory(device, worker_peaks if workers > 1 else []))
    atomic_write(folder / "environment.json", json.dumps(results.environment, indent=1) + "\n")
    build_report(results)
    return results


def peak_memory(device: torch.device, worker_peaks: list[float]) -> dict[str, float]:
    """Peak memory in MiB: allocated on the GPU, or resident in this process and in its largest worker."""
    if device.type == "cuda":
        return {"peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)}
    peaks = {"peak_memory_mb": resident_peak_mb()}
    if worker_peaks:
        peaks["peak_worker_memory_mb"] = max(worker_peaks)
    return peaks
