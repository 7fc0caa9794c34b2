"""`actlab.run(config)`: train every activation under every seed, write the run folder and report.

The order of work is seeds outer, activations inner: each seed's data (validation split, subset,
batch order) is prepared once and shared by all its activations, which also start from the same
initial weights, so differences between activations within a seed are paired.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import multiprocessing
import os
import platform
import resource
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from actlab import __version__
from actlab.config import Config, config_from_flat
from actlab.data import load_dataset
from actlab.errors import ActlabError
from actlab.results import ModelRun, Results, atomic_write, safe_name, write_results
from actlab.train import prepare_data, resolve_device, train_model


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


def worker_count(config: Config, device: torch.device, models: int) -> int:
    """Processes to train in: on CPU one per core (small MLPs keep one core busier than two threads
    keep two), on a GPU one."""
    if device.type != "cpu" or models < 2:
        return 1  # a GPU trains in this process (stacked); `workers` is for CPUs
    if config.run.workers:
        return min(config.run.workers, models)
    return max(1, min(os.cpu_count() or 1, models))


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
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Task:
    """One model to train, self-contained so a worker process (or a Ray task) needs nothing else."""

    index: int
    flat_config: dict
    data_folder: str
    record: ModelRun
    board: str | None = None  # TensorBoard folder


_WORKER: dict = {"datasets": {}, "data": {}}  # per worker process: loaded data sets, one seed's tensors


def _init_worker(threads: int, progress=None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    torch.set_num_threads(threads)
    if progress is not None:
        pid = os.getpid()
        _WORKER["progress"] = lambda state: progress.put((pid, *state))


def train_task(task: Task) -> tuple[int, ModelRun, dict | None, dict | None, float, str | None]:
    """Train one task's model on the CPU; returns (index, record, final state, best state, peak MiB,
    error). A problem the user can fix comes back as the error text, so one bad run of a sweep
    does not stop the others."""
    try:
        config = config_from_flat(task.flat_config)
        d = config.data
        key = (d.dataset, task.data_folder)
        if key not in _WORKER["datasets"]:
            _WORKER["datasets"][key] = load_dataset(d.dataset, Path(task.data_folder), download=False)
        data_key = (key, d.val_split, d.train_subset, d.test_subset, d.normalize, task.record.seed)
        if data_key not in _WORKER["data"]:
            _WORKER["data"].clear()  # keep one seed's tensors: tasks arrive grouped by seed
            _WORKER["data"][data_key] = prepare_data(_WORKER["datasets"][key], config, task.record.seed,
                                                     torch.device("cpu"))
        model, best_state = train_model(task.record, _WORKER["data"][data_key], config, torch.device("cpu"),
                                        _WORKER.get("progress", False),
                                        tensorboard_dir=Path(task.board) if task.board else None)
        return task.index, task.record, model.state_dict(), best_state, resident_peak_mb(), None
    except ActlabError as exc:
        return task.index, task.record, None, None, resident_peak_mb(), str(exc)


def train_in_processes(tasks: list[Task], workers: int, threads: int, show_progress: bool, on_done,
                       desc: str = "models") -> list[float]:
    """Train `tasks` in `workers` spawned processes of `threads` threads each, calling
    `on_done(index, record, final_state, best_state, error)` in this process as each finishes.
    Returns the workers' peak memory per task. Ctrl-C or an error stops every worker at once."""
    from tqdm import tqdm

    peaks: list[float] = []
    context = multiprocessing.get_context("spawn")
    progress = context.SimpleQueue() if show_progress else None
    with _main_script_hidden():
        pool = context.Pool(workers, _init_worker, (threads, progress))
    bar = tqdm(total=len(tasks), desc=f"{desc} in {workers} processes", unit="model", disable=not show_progress,
               file=sys.stderr, leave=False)
    drawer = threading.Thread(target=_draw_worker_bars, args=(progress,), daemon=True) if progress else None
    if drawer:
        drawer.start()
    try:
        for index, record, final_state, best_state, peak, error in pool.imap_unordered(train_task, tasks):
            peaks.append(peak)
            on_done(index, record, final_state, best_state, error)
            bar.update()
        pool.close()
    except BaseException:
        pool.terminate()  # finished models are already handed to on_done
        raise
    finally:
        bar.close()
        pool.join()
        if drawer:
            progress.put(None)
            drawer.join(timeout=5)
    return peaks


@contextlib.contextmanager
def _main_script_hidden():
    """Spawned workers re-run the parent's main script unless it guards its code with
    `if __name__ == "__main__":`, and a script calling `actlab.run()` at top level would then start
    its experiment again in every worker. The workers need nothing from that script, so it is
    hidden from them while they start."""
    namespace = vars(sys.modules["__main__"])
    saved = {key: namespace[key] for key in ("__file__", "__spec__") if key in namespace}
    namespace.pop("__file__", None)
    namespace["__spec__"] = None
    try:
        yield
    finally:
        namespace.update(saved)


def _draw_worker_bars(progress) -> None:
    """In the parent: one bar per worker process, showing the run it is training (epoch, step, loss)."""
    from tqdm import tqdm

    bars: dict[int, tqdm] = {}
    showing: dict[int, str] = {}  # the run each worker's bar shows
    while (message := progress.get()) is not None:
        pid, desc, n, total, postfix = message
        bar = bars.get(pid)
        if bar is None:
            bar = bars[pid] = tqdm(total=total, unit="step", leave=False, file=sys.stderr, position=len(bars) + 1,
                                   dynamic_ncols=True)
        if showing.get(pid) != desc:
            showing[pid] = desc
            bar.reset(total=total)
            bar.set_description(desc, refresh=False)
        bar.n = n
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()
    for bar in bars.values():
        bar.close()


def run(config: Config, show_progress: bool | None = None, log=None) -> Results:
    """Train `config`'s activations × seeds and write the run folder; returns the `Results`.

    `show_progress` defaults to "stderr is a terminal"; `log` receives one line per finished model
    (default: stderr). On Ctrl-C the models finished so far are already on disk.
    """
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    device = resolve_device(config.run.device)
    dataset = load_dataset(config.data.dataset, data_folder(config), download=config.data.download)
    records = [ModelRun(label, activation, output, seed)
               for seed in config.run.seeds for label, activation, output in config.variants]
    workers = worker_count(config, device, len(records))
    threads = threads_per_worker(config, workers)
    folder = run_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    results = Results(folder, config.to_flat(), environment(device, config), records)
    results.environment.update(data_folder=str(dataset.folder), workers=workers, threads_per_worker=threads)
    atomic_write(folder / "config.toml", config.to_toml())
    atomic_write(folder / "environment.json", json.dumps(results.environment, indent=1) + "\n")
    write_results(results)
    if config.data.normalize != "none":
        write_normalization(folder, config, dataset)
    worker_peaks: list[float] = []

    def finished(index: int, record: ModelRun, final_state: dict, best_state: dict | None) -> None:
        results.runs[index] = record
        write_results(results)
        if config.run.checkpoints:
            save_checkpoint(folder / "checkpoints" / checkpoint_name(record.label, record.seed), record,
                            final_state, best_state, results.config)
        acc = record.final_test_acc
        log(f"{record.label} seed {record.seed}: {record.status}, test acc "
            f"{'–' if acc is None else f'{acc:.2%}'}, {record.train_seconds:.1f} s")

    stack = config.run.stack if config.run.stack != "auto" else device.type == "cuda"
    if stack:
        results.environment.update(stacked=True, workers=1)
        torch.set_num_threads(config.run.threads or torch.get_num_threads())
        try:
            _run_stacked(config, dataset, records, folder, device, show_progress, finished)
        finally:
            write_results(results)  # the records of an interrupted chunk say where they stopped
    elif workers == 1:
        torch.set_num_threads(threads)
        board = folder / "tensorboard" if config.run.tensorboard else None
        data = {}
        for index, record in enumerate(records):
            if record.seed not in data:
                data = {record.seed: prepare_data(dataset, config, record.seed, device)}
            try:
                model, best_state = train_model(record, data[record.seed], config, device, show_progress,
                                                board)
            finally:
                write_results(results)
            finished(index, record, model.state_dict(), best_state)
    else:
        board = str(folder / "tensorboard") if config.run.tensorboard else None
        flat = config.to_flat()
        tasks = [Task(i, flat, str(dataset.folder), record, board) for i, record in enumerate(records)]

        def done(index, record, final_state, best_state, error):
            if error:
                raise ActlabError(error)
            finished(index, record, final_state, best_state)
        worker_peaks += train_in_processes(tasks, workers, threads, show_progress, done)
    from actlab.report import build_report  # plotting and statistics: only the parent needs them

    results.environment.update(peak_memory(device, worker_peaks))
    atomic_write(folder / "environment.json", json.dumps(results.environment, indent=1) + "\n")
    build_report(results)
    return results


def resident_peak_mb() -> float:
    """This process's own peak resident memory (VmHWM: reset at exec, unlike ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def peak_memory(device: torch.device, worker_peaks: list[float]) -> dict[str, float]:
    """Peak memory in MiB: allocated on the GPU, or resident in this process and in its largest worker."""
    if device.type == "cuda":
        return {"peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)}
    peaks = {"peak_memory_mb": resident_peak_mb()}
    if worker_peaks:
        peaks["peak_worker_memory_mb"] = max(worker_peaks)
    return peaks


def _run_stacked(config, dataset, records, folder, device, show_progress, finished) -> None:
    """Stackable models in chunks that fit in memory, one stacked pass each; the rest one by one."""
    from actlab.stacked import models_per_chunk, stackable, train_stacked

    data = {seed: prepare_data(dataset, config, seed, device) for seed in config.run.seeds}
    together = [i for i, r in enumerate(records) if stackable(r.activation, config)]
    alone = [i for i in range(len(records)) if i not in together]
    size = models_per_chunk(config, device, len(dataset.train) + len(dataset.test))
    for start in range(0, len(together), size):
        chunk = together[start:start + size]
        trained = train_stacked([records[i] for i in chunk], data, config, device, show_progress)
        for i, (model, best_state) in zip(chunk, trained):
            finished(i, records[i], model.state_dict(), best_state)
    board = folder / "tensorboard" if config.run.tensorboard else None
    for i in alone:
        model, best_state = train_model(records[i], data[records[i].seed], config, device, show_progress, board)
        finished(i, records[i], model.state_dict(), best_state)
