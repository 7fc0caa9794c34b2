"""Where models train: in this process, or in worker processes; the one place `actlab run`, sweeps
and Ray tasks hand their training to.

A `Task` is one group of models to train together (a group of one on a CPU worker, a stack on a GPU),
self-contained so that a spawned process or a Ray task needs nothing else; `train_task` trains it
where it is called and returns one `Trained` result per model. `run_tasks` runs a list of tasks: in
this process with one worker, else in a pool of worker processes (forked on a Linux CPU, else
spawned) that hands each worker one task at a time over a pipe. The pool knows which task each worker
holds, so a worker that dies (the OOM killer, `kill -9`) costs exactly its own models, reported as
lost, while the others go on; a worker whose parent has gone exits quietly. Progress is drawn here,
in the parent, for every worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import resource
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from actlab.config import Config
from actlab.data import Dataset, load_dataset
from actlab.errors import ActlabError
from actlab.forks import fork_is_safe, fork_warning_silenced
from actlab.progress import bar_class, in_kernel, log_line
from actlab.status import LOST
from actlab.messages import Words
from actlab.results import ModelRun
from actlab.device_data import prepare_data
from actlab.train import train_group


@dataclass(frozen=True)
class Task:
    """One group of models to train together, as its models' positions in the caller's list."""

    indices: tuple[int, ...]
    records: tuple[ModelRun, ...]
    config: Config  # resolved once, in the parent
    data_folder: str
    device: str = "cpu"
    board: str | None = None  # TensorBoard folder


@dataclass
class Trained:
    """One model of a finished task: its filled record and weights, or why it has none."""

    index: int
    record: ModelRun
    final_state: dict | None = None
    best_state: dict | None = None
    peak_mb: float = 0.0  # the peak resident memory of the process that trained it
    error: str | None = None  # a problem the user can fix, in one line
    lost: bool = False  # the worker process training it died


_CACHE: dict = {"datasets": {}, "data": {}}  # per process: loaded data sets, the current task's tensors


@contextlib.contextmanager
def objects_frozen():
    """Keep the objects that exist now (torch's, actlab's, the caller's: about 250,000 in `actlab
    run`) out of the garbage collector's full collections until the block ends. Each one otherwise
    walks them all, 100-150 ms on a 2-core CPU, and a run sets off several: importing the report's
    modules and building the report. Left alone where the process freezes objects itself or has
    the collector off."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def remember_dataset(dataset: Dataset) -> None:
    """Let tasks trained in this process use a data set already loaded here."""
    _CACHE["datasets"][(dataset.info.name, str(dataset.folder))] = dataset


def train_task(task: Task, progress=None) -> list[Trained]:
    """Train the task's models together here; a problem the user can fix comes back as each model's
    `error`, so one bad run of a sweep does not stop the others."""
    try:
        config = task.config
        device = torch.device(task.device)
        data = _task_data(task, config, device)
        trained = train_group(list(task.records), data, config, device, progress,
                              Path(task.board) if task.board else None)
    except ActlabError as exc:
        return [Trained(i, r, peak_mb=resident_peak_mb(), error=str(exc)) for i, r in zip(task.indices, task.records)]
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "allocate" not in str(exc) and "out of memory" not in str(exc):
            raise
        what = ", ".join(f"{r.label} seed {r.seed}" for r in task.records)
        error = (f"not enough memory to train {what} on {task.device} ({str(exc).splitlines()[0][:120]}); use "
                 f"smaller layers, a smaller --eval-batch-size or fewer --workers")
        return [Trained(i, r, peak_mb=resident_peak_mb(), error=error) for i, r in zip(task.indices, task.records)]
    peak = resident_peak_mb()
    return [Trained(i, r, model.state_dict(), best, peak)
            for i, r, (model, best) in zip(task.indices, task.records, trained)]


def _task_data(task: Task, config, device: torch.device) -> dict:
    """The task's seeds' tensors, loaded once per process and kept while tasks of the same seeds follow."""
    d = config.data
    key = (d.dataset, task.data_folder)
    if key not in _CACHE["datasets"]:
        _CACHE["datasets"][key] = load_dataset(d.dataset, Path(task.data_folder), download=False)
    wanted = {(key, d.val_split, d.train_subset, d.test_subset, d.normalize, seed, str(device)): seed
              for seed in dict.fromkeys(r.seed for r in task.records)}
    for data_key in list(_CACHE["data"]):
        if data_key not in wanted:
            del _CACHE["data"][data_key]
    for data_key, seed in wanted.items():
        if data_key not in _CACHE["data"]:
            _CACHE["data"][data_key] = prepare_data(_CACHE["datasets"][key], config, seed, device)
    return {seed: _CACHE["data"][data_key] for data_key, seed in wanted.items()}


def resident_peak_mb() -> float:
    """This process's peak resident memory (VmHWM: reset at exec, unlike ru_maxrss; a forked
    worker's counts the pages it shares with its parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- progress ------------------------------------------------------------------------------------

def progress_wanted() -> bool:
    """Bars on a terminal and in a notebook that can draw widgets; elsewhere (a log file, CI, a kernel
    without ipywidgets, where text bars would fill the cell with cursor codes) only the per-model lines."""
    if in_kernel():
        return importlib.util.find_spec("ipywidgets") is not None
    return sys.stderr.isatty()


def default_log(line: str) -> None:
    """The per-model lines, through the `actlab` logger (`actlab.progress.log_line`)."""
    log_line(line)


class Progress:
    """What a user sees while models train: a bar of finished models and one bar per worker (the
    models it is training, epoch and loss). Disabled, it draws nothing."""

    def __init__(self, enabled: bool, total: int, what: str):
        self.enabled = enabled
        self.bars: dict[int, object] = {}
        self.showing: dict[int, str] = {}  # what each bar shows (tqdm keeps its description reformatted)
        self.overall = self._bar(total=total, desc=what, unit="model", position=0) if enabled else None

    def _bar(self, **kwargs):
        return bar_class()(leave=False, file=sys.stderr, dynamic_ncols=True, **kwargs)

    def step(self, slot: int, desc: str, done: int, total: int, postfix: str) -> None:
        """Worker `slot` has done `done` of `total` steps of the models `desc` names."""
        if not self.enabled:
            return
        bar = self.bars.get(slot)
        if bar is None:
            bar = self.bars[slot] = self._bar(total=total, unit="step", position=len(self.bars) + 1)
        if self.showing.get(slot) != desc:
            self.showing[slot] = desc
            bar.reset(total=total)
            bar.set_description(desc, refresh=False)
        bar.n = done
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def finished(self, models: int) -> None:
        if self.overall is not None:
            self.overall.update(models)

    def close(self) -> None:
        for bar in [*self.bars.values(), *([self.overall] if self.overall is not None else [])]:
            bar.close()


# --- running tasks -------------------------------------------------------------------------------

def run_tasks(tasks: list[Task], workers: int, threads: int, show_progress: bool,
              on_done: Callable[[Trained], None], what: str = "models",
              on_idle: Callable[[], None] | None = None, lang: str = "en") -> None:
    """Train `tasks` with `workers` processes of `threads` torch threads each (one worker: here), calling
    `on_done` here for every model as its task finishes. Ctrl-C or an exception from `on_done` stops
    every worker at once; models finished before are already handed over. `on_idle` is called once, when
    a worker has no task left while others still train (a core is free from then on)."""
    # the workers start before the progress bars: nothing but this thread may run when they fork
    pool = _start_workers(min(workers, len(tasks)), threads, start_method(tasks, threads)) if workers > 1 else []
    progress = None
    try:
        what = what if workers == 1 else Words(lang).plain("terminal.progress_processes", what=what, n=workers)
        progress = Progress(show_progress, sum(len(t.records) for t in tasks), what)
        if workers == 1:
            torch.set_num_threads(threads)
            for task in tasks:
                for trained in train_task(task, lambda *state: progress.step(0, *state)):
                    on_done(trained)
                    progress.finished(1)
        else:
            _run_in_processes(tasks, pool, progress, on_done, on_idle)
    finally:
        _stop_workers(pool)
        if progress is not None:
            progress.close()
        _CACHE["data"].clear()  # one seed's tensors (on a GPU, device memory) are not kept past the run


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    task: Task | None = None


def _run_in_processes(tasks: list[Task], pool: list[_Worker], progress: Progress, on_done, on_idle) -> None:
    pending = deque(tasks)
    for worker in pool:
        _hand_out(worker, pending)
    while busy := [w for w in pool if w.task is not None]:
        ready = multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
        for slot, worker in enumerate(pool):
            if worker.task is None or not (worker.conn in ready or worker.process.sentinel in ready):
                continue
            results = _receive(worker, slot, progress)
            if results is None:
                continue
            worker.task = None
            for trained in results:
                on_done(trained)
            progress.finished(len(results))
            if worker.process.is_alive():
                _hand_out(worker, pending)
            if on_idle and worker.task is None and any(w.task is not None for w in pool):
                on_idle()
                on_idle = None
    for task in pending:  # every worker died before these could start
        for trained in _lost(task, "no worker process was left to train it"):
            on_done(trained)


def _receive(worker: _Worker, slot: int, progress: Progress) -> list[Trained] | None:
    """The worker's next message: progress (None returned), its task's results, or, if it died,
    its task's models as lost."""
    try:
        while worker.conn.poll():
            kind, payload = worker.conn.recv()
            if kind == "progress":
                progress.step(slot, *payload)
            else:
                return torch.load(io.BytesIO(payload), weights_only=False)  # our own worker's results
        if worker.process.is_alive():
            return None
    except (EOFError, OSError, pickle.UnpicklingError):
        pass
    worker.process.join(timeout=5)
    code = worker.process.exitcode
    how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
           else f"exited with code {code}")
    return _lost(worker.task, f"its worker process (pid {worker.process.pid}) was {how}")


def _lost(task: Task, why: str) -> list[Trained]:
    """The task's models, marked lost, with `why` as their error."""
    return [Trained(index, replace(record, status=LOST), error=why, lost=True)
            for index, record in zip(task.indices, task.records)]


def _hand_out(worker: _Worker, pending: deque) -> None:
    if pending:
        worker.task = pending.popleft()
        try:
            worker.conn.send(worker.task)
        except OSError:
            pass  # it died just now: the next wait sees its sentinel and reports its task lost


def start_method(tasks: list[Task], threads: int) -> str:
    """How worker processes start: `fork` where that is safe, `spawn` elsewhere.

    A forked worker has torch, actlab and the loaded data set from this process at once (about 3 s
    less per run on 2 cores than spawning, which imports torch and reads the data again). Fork only
    where `actlab.forks` allows it (Linux, one Python thread), for CPU tasks in a process that has
    not touched CUDA (a CUDA context does not survive it), and for single-threaded workers (a forked
    child must not start an OpenMP thread team, whose threads stayed behind in this process).
    """
    if fork_is_safe() and threads == 1 and all(t.device == "cpu" for t in tasks) and not torch.cuda.is_initialized():
        return "fork"
    return "spawn"


def _start_workers(count: int, threads: int, method: str = "spawn") -> list[_Worker]:
    """Start the workers with Ctrl-C ignored: an ignored signal stays ignored across fork and exec, so
    a worker never sees the terminal's SIGINT, even while a spawned one is still importing torch; this
    process handles it."""
    context = multiprocessing.get_context(method)
    pool = []
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:
        with _main_script_hidden(), fork_warning_silenced():
            for _ in range(count):
                parent_end, child_end = context.Pipe()
                process = context.Process(target=_worker_main, args=(child_end, threads, os.getpid()), daemon=True)
                process.start()
                child_end.close()
                pool.append(_Worker(process, parent_end))
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    return pool


def _stop_workers(pool: list[_Worker]) -> None:
    """Idle workers are told to stop; busy ones (after Ctrl-C or an error) are terminated."""
    for worker in pool:
        with contextlib.suppress(OSError):
            if worker.task is None and worker.process.is_alive():
                worker.conn.send(None)
            else:
                worker.process.terminate()
    for worker in pool:
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()


def _worker_main(conn: multiprocessing.connection.Connection, threads: int, parent: int) -> None:
    """A worker process: train the tasks the parent sends until it sends None or goes away. Results
    go back as `torch.save` bytes (no shared-memory tensors to leak or to fail on a full /dev/shm)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops its workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker would inherit `actlab run`'s handler
    _exit_with(parent)
    torch.set_num_threads(threads)
    gc.freeze()  # what the worker starts with lives as long as it does: no full collection walks it (objects_frozen)
    try:
        while (task := conn.recv()) is not None:
            buffer = io.BytesIO()
            torch.save(train_task(task, lambda *state: conn.send(("progress", state))), buffer)
            conn.send(("done", buffer.getvalue()))
    except (EOFError, OSError):
        pass  # the parent has gone (a broken pipe): nobody is left to hand the results to
    finally:
        conn.close()
    # Everything a worker makes went back through the pipe, so it skips the interpreter's teardown
    # (over a second with torch loaded) that the parent would otherwise wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _exit_with(parent: int) -> None:
    """Have the kernel end this worker quietly (SIGTERM) when its parent dies, on Linux."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the call
        os._exit(0)


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
