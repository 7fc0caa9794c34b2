"""Sweeps: a `[sweep]` table of lists expands to a grid of runs, trained once each and resumable.

    [experiment]                       [sweep]
    preset = "mnist-classic-four"      dataset = ["mnist", "fashion-mnist"]
    epochs = 5                         lr = [0.001, 0.003]
                                       activation = ["relu", "tanh", "selu"]
                                       seed = [0, 1, 2]

`actlab run --config sweep.toml --out DIR` trains every run of the grid into DIR's results store
(actlab.store); the same command again skips the runs already done (same content hash) and
reruns pending, failed and interrupted ones. A run is one model: one activation under one seed of
one grid point. Backends: `local` (worker processes on this machine, the fastest path) and `ray`
(one Ray task per grid point × seed, on a local Ray or an existing cluster); either way this
process alone writes the store.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from actlab import __version__
from actlab.activations import stacking_obstacle
from actlab.board import summary_writer_class
from actlab.config import CNN_KEYS, KEYS, SWEEP_ALIASES, Config, config_from_flat, keys_where
from actlab.data import load_dataset
from actlab.errors import ActlabError
from actlab.families import FAMILIES
from actlab.files import atomic_write, create_folder
from actlab.messages import Words
from actlab.plan import (check_size, data_folder, main_defined, models_per_chunk, stacking, threads_per_worker,
                         worker_count)
from actlab.results import ModelRun, checkpoint_name, save_checkpoint
from actlab.device_data import check_precision, resolve_device
from actlab.store import Store
from actlab.workers import Progress, Task, Trained, default_log, progress_wanted, run_tasks, train_task

# keys that do not change what a run computes, left out of its content hash
NOT_HASHED = frozenset(KEYS) - set(keys_where("hashed"))
PER_MODEL = ("activations", "output", "loss", "init", "seed", "seeds")  # what differs between a grid point's models
TRAINING_CODE_VERSION = __version__  # a new actlab version retrains: its numbers may differ


@dataclass(frozen=True)
class SweepRun:
    """One model of the grid: its content hash, grid position and the experiment it belongs to."""

    hash: str
    index: int
    flat: dict[str, Any]  # the grid point's resolved [experiment] table
    label: str
    activation: str
    output: str
    seed: int
    loss: str = "cross_entropy"

    def record(self) -> ModelRun:
        return ModelRun(self.label, self.activation, self.output, self.seed, loss=self.loss)


def run_hash(flat: dict[str, Any], activation: str, output: str, seed: int, loss: str = "cross_entropy") -> str:
    """A stable content hash of what one run trains: data, model, optimiser, seed, epochs, code version."""
    key = {k: v for k, v in flat.items() if k not in NOT_HASHED}
    key.update(activation=activation, output=output, seed=seed, init=_init_of(flat, activation),
               actlab=TRAINING_CODE_VERSION)
    if loss != "cross_entropy" or "loss" in key:  # the default leaves the hashes of runs from before losses alone
        key["loss"] = loss
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def expand(config: Config, sweep: dict[str, list[Any]]) -> list[SweepRun]:
    """Every run of the grid, in grid order (the last key varies fastest; activations, then seeds)."""
    base = config.to_flat()
    keys = list(sweep)
    runs: list[SweepRun] = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        flat = dict(base)
        for key, value in zip(keys, values):
            target = SWEEP_ALIASES.get(key, key)
            if key in ("activation", "seed"):
                flat[target] = [value]
            else:
                flat[target] = value
            if target == "seeds" and isinstance(flat["seeds"], list):
                flat["seed"] = flat["seeds"][0]
        if isinstance(flat.get("init"), dict):  # a per-activation table: the entries of this point's activations
            acts = flat["activations"] if isinstance(flat["activations"], list) else [flat["activations"]]
            flat["init"] = {a: s for a, s in flat["init"].items() if a in acts} or "default"
        if flat.get("model", "mlp") != "cnn":  # a grid point of another family leaves the cnn's keys out
            flat = {k: v for k, v in flat.items() if k not in CNN_KEYS}
        point = config_from_flat(flat, {k: "[sweep]" for k in flat})  # checks every swept value
        flat = point.to_flat()
        for seed in point.run.seeds:
            for label, activation, output, loss in point.variants:
                runs.append(SweepRun(run_hash(flat, activation, output, seed, loss), len(runs), flat, label,
                                     activation, output, seed, loss))
    hashes = [r.hash for r in runs]
    if len(set(hashes)) != len(hashes):
        raise ActlabError("the sweep lists the same run twice (two grid points train identical models); "
                          "remove the duplicate values")
    return runs


def _init_of(flat: dict[str, Any], activation: str) -> str:
    """The init scheme of one activation (a per-activation table applies to the activations it names)."""
    init = flat.get("init", "default")
    return init.get(activation, "default") if isinstance(init, dict) else init


def _single(flat: dict[str, Any], run: SweepRun) -> dict[str, Any]:
    """The run's own [experiment] table: its one activation, output, seed and init scheme."""
    single = {**flat, "activations": [run.activation], "output": run.output, "seed": run.seed, "seeds": 1,
              "init": _init_of(flat, run.activation)}
    if run.loss != "cross_entropy" or "loss" in flat:
        single["loss"] = run.loss
    return single


def run_sweep(config: Config, sweep: dict[str, list[Any]], out: Path, backend: str = "local",
              ray_address: str | None = None, show_progress: bool | None = None, log=None) -> dict[str, int]:
    """Train the grid's runs not yet done into `out`'s store; returns counts by status."""
    if config.run.explain:
        raise ActlabError("--explain works on one run: run the grid point you want explained without --sweep, "
                          "or `actlab explain` a run folder")
    check_size(config, resolve_device(config.run.device), sweep, fix="give fewer values or seeds")
    runs = expand(config, sweep)
    if config.run.tensorboard:
        summary_writer_class()  # a missing package is one line before the store's folder exists
    create_folder(out)
    atomic_write(out / "sweep.toml", config.to_toml(sweep))
    return train_runs(config, runs, out, backend, ray_address, show_progress, log,
                      Words(config.run.lang).plain("terminal.what_sweep"),
                      lambda run: _point(run, sweep))


def train_runs(config: Config, runs: list[SweepRun], out: Path, backend: str = "local", ray_address: str | None = None,
               show_progress: bool | None = None, log=None, what: str = "sweep",
               describe=lambda run: "") -> dict[str, int]:
    """Train the runs not yet done into `out`'s store (one line up front with the count, one with a
    time estimate once the first runs are in); returns counts by status of these runs."""
    show_progress = progress_wanted() if show_progress is None else show_progress
    log = log or default_log
    check_precision(config.run.precision, resolve_device(config.run.device))
    folders = {name: str(load_dataset(name, data_folder(config), download=config.data.download,
                                      mirror=config.data.data_mirror).folder)
               for name in dict.fromkeys(r.flat["dataset"] for r in runs)}
    w = Words(config.run.lang)
    with Store(out) as store:
        store.add_pending((r.hash, r.index, _single(r.flat, r), r.label, r.activation, r.output, r.seed) for r in runs)
        status = store.status_of(r.hash for r in runs)
        todo = [r for r in runs if status.get(r.hash) != "done"]
        already = len(runs) - len(todo)
        log(w.plain("terminal.store_plan", what=what, runs=len(runs), done=already, store=store.path, todo=len(todo)))
        estimate = _estimator(len(todo), log, w)

        def done(run: SweepRun, trained: Trained) -> None:
            record = trained.record
            estimate()
            if trained.error:
                store.fail(run.hash, trained.error)
                log(w.plain("terminal.store_failed", hash=run.hash, label=run.label, seed=run.seed,
                            error=trained.error))
                return
            store.save(run.hash, record)
            if config.run.checkpoints and trained.final_state is not None:
                save_checkpoint(out / "checkpoints" / f"{run.hash}-{checkpoint_name(run.label, run.seed)}",
                                record, trained.final_state, trained.best_state, _single(run.flat, run))
            acc = record.final_test_acc
            log(w.plain("terminal.store_done", hash=run.hash, label=run.label, seed=run.seed, point=describe(run),
                        status=w.plain("terminal.ok") if record.status.ok else record.status,
                        acc="–" if acc is None else f"{acc:.2%}"))

        try:
            if backend == "ray":
                _run_on_ray(todo, folders, store, ray_address, show_progress, done, w)
            else:
                _run_locally(config, todo, folders, store, show_progress, done,
                             out / "tensorboard" if config.run.tensorboard else None)
        finally:  # stopped (Ctrl-C, an error): what this invocation claimed and did not finish is pending again
            store.release_running(r.hash for r in todo)
        counts: dict[str, int] = {}
        for state in store.status_of(r.hash for r in runs).values():  # these runs only
            counts[state] = counts.get(state, 0) + 1
    return {"runs": len(runs), "already_done": already, **counts}


def _estimator(todo: int, log, w: Words, after: int = 2):
    """A callback for each finished run that, once `after` runs are in, logs the time the rest
    will take at the rate so far (workers running side by side included)."""
    start, finished = time.perf_counter(), 0

    def finished_one() -> None:
        nonlocal finished
        finished += 1
        if finished == min(after, todo) and todo > finished:
            seconds = (time.perf_counter() - start) / finished * (todo - finished)
            log(w.plain("terminal.store_estimate", n=finished, seconds=f"{time.perf_counter() - start:.0f}",
                        minutes=f"{seconds / 60:.1f}", left=todo - finished))
    return finished_one


def _point(run: SweepRun, sweep: dict[str, list[Any]]) -> str:
    """The grid point's swept values, as the run's line names them (a model's own output and loss)."""
    own = {"output": run.output, "loss": run.loss}
    return ", ".join(f"{k}={own.get(k, run.flat.get(SWEEP_ALIASES.get(k, k)))}" for k in sweep
                     if k not in ("activation", "seed", "activations", "seeds"))


def _run_locally(config: Config, todo: list[SweepRun], folders: dict[str, str], store: Store, show_progress: bool,
                 done, board: Path | None = None) -> None:
    """Worker processes on this machine (one per core, one thread each; on a GPU, this process) fed
    every pending run; with `stack` (by default on a GPU) the runs of one grid point that differ only
    in activation and seed train together, in stacks that fit in memory."""
    device = resolve_device(config.run.device)
    stack = stacking(config, device)
    points: dict[str, list[int]] = {}
    for i, run in enumerate(todo):
        same = {k: v for k, v in run.flat.items() if k not in PER_MODEL}
        stacks = FAMILIES[run.flat.get("model", KEYS["model"].default)].stacks  # a grid point's model family
        together = stack and stacks and not stacking_obstacle(run.activation)
        key = json.dumps(same, sort_keys=True) if together else f"#{i}"
        points.setdefault(key, []).append(i)
    size = models_per_chunk(config, device) if stack else 1
    tasks = [_task(group[k:k + size], todo, folders, str(device), board) for group in points.values()
             for k in range(0, len(group), size)]
    workers = 1 if any(main_defined(r.activation) for r in todo) else worker_count(config, device, len(tasks))
    store.mark_running(r.hash for r in todo)
    run_tasks(tasks, workers, threads_per_worker(config, workers), show_progress,
              lambda trained: done(todo[trained.index], trained),
              Words(config.run.lang).plain("terminal.progress_runs"), lang=config.run.lang)


def _task(group: list[int], runs: list[SweepRun], folders: dict[str, str], device: str = "cpu",
          board: Path | None = None) -> Task:
    """The task that trains the runs `group` (indices into `runs`, alike but for activation and seed)
    together, under one [experiment] table naming each activation's own init; with `board`, each
    grid point writes its TensorBoard files under `board/point-<id>/` (the HParams tab tells them apart)."""
    members = [runs[i] for i in group]
    flat = _single(members[0].flat, members[0])
    if len(members) > 1:
        activations = list(dict.fromkeys(r.activation for r in members))
        flat.update(activations=activations, init={r.activation: _init_of(r.flat, r.activation) for r in members})
    point = {k: v for k, v in members[0].flat.items() if k not in PER_MODEL}
    folder = board / f"point-{hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:10]}" \
        if board is not None and flat.get("tensorboard") else None
    return Task(tuple(group), tuple(r.record() for r in members), config_from_flat(flat),
                folders[members[0].flat["dataset"]], device, str(folder) if folder else None)


# --- Ray ----------------------------------------------------------------------------------------

def _ray_train(tasks: list[Task]) -> list[Trained]:
    """A Ray task: train a group of runs (one grid point × seed) in this worker, one thread."""
    torch.set_num_threads(1)  # a reused Ray worker keeps its old thread count otherwise
    return [trained for task in tasks for trained in train_task(task)]


def _check_reachable(address: str) -> None:
    """Fail fast on an address nothing listens on (ray.init would hang for minutes)."""
    if address == "auto":
        return
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise ActlabError(f"--ray-address {address}: nothing answers there ({exc}); start the cluster with "
                          f"`ray start --head` or check the address (docs/sweeps.md)") from None


def _run_on_ray(todo: list[SweepRun], folders: dict[str, str], store: Store, address: str | None,
                show_progress: bool, done, w: Words | None = None) -> None:
    mine = next((r.activation for r in todo if main_defined(r.activation)), None)
    if mine is not None:
        raise ActlabError(f"activation {mine!r} is defined in __main__ (a notebook or script), which Ray's workers "
                          f"cannot import; put it in a module file (mymodule:Name) or use --backend local")
    try:
        import ray
    except ImportError:
        raise ActlabError("--backend ray needs Ray: pip install -e \".[ray]\" (or pip install ray)") from None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            _check_reachable(address)
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_ray_train)
    groups: dict[tuple, list[tuple[int, SweepRun]]] = {}
    for i, run in enumerate(todo):
        groups.setdefault((json.dumps({k: v for k, v in run.flat.items() if k not in ("activations", "output", "loss")},
                                      sort_keys=True), run.seed), []).append((i, run))
    progress = Progress(show_progress, len(todo), (w or Words("en")).plain("terminal.progress_ray"))
    try:
        pending = {}
        for members in groups.values():
            store.mark_running(r.hash for _, r in members)
            pending[remote.remote([_task([i], todo, folders) for i, _ in members])] = members
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(ready[0])
            for trained in ray.get(ready[0]):
                done(todo[trained.index], trained)
                progress.finished(1)
    finally:
        progress.close()
        if started_here:
            ray.shutdown()
