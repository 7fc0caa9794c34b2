"""`actlab.run(config)`: train every activation under every seed, write the run folder and report.

Within a seed every activation shares the data (validation split, subset, batch order) and starts
from the same initial weights, so differences between activations within a seed are paired. The
models are planned into groups (`plan_groups`: one model each, or stacks of many on a GPU or when
`stack = true`), handed to `actlab.workers`, and written to the run folder as each one finishes.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import importlib
import json
import logging
import platform
import shlex
import sys
import threading
from pathlib import Path

import numpy as np
import torch

from actlab import __version__
from actlab.board import summary_writer_class
from actlab.config import Config, keys_where
from actlab.data import load_dataset
from actlab.errors import ActlabError, Interrupted, Terminated
from actlab.explain import announce_explain, train_interventions
from actlab.word import require_docx
from actlab.files import atomic_write, create_folder
from actlab.messages import Words
from actlab.plan import (backward_pass, check_memory, check_size, data_folder, plan_groups, plan_line, product,
                         stacking, threads_per_worker, worker_count)
from actlab.results import (ModelRun, Results, checkpoint_name, load_results, save_checkpoint, write_results,
                            write_results_json)
from actlab.device_data import SPEED_FLAGS, check_precision, cpu_flags, prepare_data, resolve_device
from actlab.workers import (Task, Trained, default_log, objects_frozen, progress_wanted, remember_dataset,
                            resident_peak_mb, run_tasks)


def environment(device: torch.device, config: Config) -> dict:
    """Versions, device and seeds, recorded in every run folder."""
    env = {
        "actlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "device": str(device),
        "seeds": list(config.run.seeds), "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": command_line(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    env["cpu_flags"] = sorted(set(SPEED_FLAGS) & cpu_flags())  # what the speed and bf16 figures depend on
    return env


# keys that may differ between a run and the command resuming it: where and how it trains, not what
RESUMABLE_CHANGES = keys_where("resumable")


def command_line() -> str | None:
    """The `actlab ...` command this process runs, quoted for a shell; None from the Python API."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if program is None or not (program.name == "actlab" or program.parent.name == "actlab"):
        return None
    return shlex.join(["actlab", *sys.argv[1:]])


def open_run_folder(config: Config) -> tuple[Path, Results | None]:
    """The run folder, and the run it already holds when the same experiment ran there before.

    Without `out`, a new `runs/<name>-<timestamp>/`. With `out`: a new or empty folder starts a run;
    a folder holding a run of the same configuration resumes it (`kept_models`); anything else is
    an error saying why."""
    if config.run.out is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder, suffix = Path("runs") / f"{config.run.name}-{stamp}", 1
        while folder.exists():
            suffix += 1
            folder = Path("runs") / f"{config.run.name}-{stamp}-{suffix}"
        return folder, None
    folder = Path(config.run.out)
    if folder.exists() and not folder.is_dir():
        raise ActlabError(f"--out {folder} is a file, not a folder; give a new or empty folder for the run")
    if not folder.is_dir() or not any(folder.iterdir()):
        return folder, None
    if not (folder / "results.json").is_file():
        names = sorted(p.name for p in folder.iterdir())
        raise ActlabError(f"--out {folder} already holds other files ({', '.join(names[:3])}"
                          f"{', …' if len(names) > 3 else ''}) and no actlab run; give a new or empty folder")
    previous = load_results(folder, fix="so the run there cannot be resumed: restore the file, or give a new "
                                        "--out (the folder's checkpoints and CSV files stay as they are)")
    now = config.to_flat()
    differs = [f"{k} = {previous.config.get(k)!r} there, {now.get(k)!r} now"
               for k in sorted(set(now) | set(previous.config)) if k not in RESUMABLE_CHANGES
               and previous.config.get(k) != now.get(k)]
    if differs:
        raise ActlabError(f"--out {folder} holds a run of another experiment ({'; '.join(differs[:3])}); rerun it "
                          f"with its own settings to resume it, or give another --out")
    return folder, previous


def kept_models(config: Config, folder: Path, previous: Results | None,
                records: list[ModelRun]) -> tuple[dict[int, ModelRun], list[dict]]:
    """The models of `records` that the folder's earlier run finished or failed (with their
    checkpoints, where the run keeps them), and the environments of the invocations that trained
    them (oldest first; empty for a new run)."""
    if previous is None:
        return {}, []
    done = {(r.label, r.seed): r for r in previous.runs if r.counts}
    kept = {i: done[r.label, r.seed] for i, r in enumerate(records) if (r.label, r.seed) in done and
            (not config.run.checkpoints or (folder / "checkpoints" / checkpoint_name(r.label, r.seed)).is_file())}
    before = previous.environment
    earlier = [*before.get("earlier", []), {k: v for k, v in before.items() if k != "earlier"}] if kept else []
    return kept, earlier


def write_normalization(folder: Path, config: Config, dataset) -> None:
    """normalization.json: the input statistics of each seed, computed from its training split only."""
    seeds = {}
    for seed in config.run.seeds:
        mean, std = prepare_data(dataset, config, seed, torch.device("cpu")).normalization
        seeds[str(seed)] = {"mean": mean.tolist(), "std": std.tolist()}
    doc = {"normalize": config.data.normalize, "computed_from": "the training split of each seed (after the "
           "validation split and any subset), never validation or test", "seeds": seeds}
    atomic_write(folder / "normalization.json", json.dumps(doc) + "\n")


def run(config: Config, show_progress: bool | None = None, log=None) -> Results:
    """Train `config`'s activations × seeds and write the run folder; returns the `Results`.

    `show_progress` defaults to bars on a terminal or in a notebook; `log` receives the plan and
    one line per finished model (default: stderr; a notebook's output), and the run folder's
    run.log gets every line too, with its time, through the `actlab.run` logger. A run folder
    that already holds this experiment is resumed.
    The report is written in English, and in `lang` beside it when that is another language.
    Ctrl-C or SIGTERM raise `Interrupted` once the models finished so far are on disk; models
    whose worker process died are marked `lost`, and the run ends in an `ActlabError` saying so.
    """
    with objects_frozen(), contextlib.ExitStack() as closing:
        return _run(config, progress_wanted() if show_progress is None else show_progress,
                    log or default_log, closing)


class _QuietFileHandler(logging.FileHandler):
    """run.log is a record beside the run's files: a full disk must not print tracebacks for it."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _check_extras(config: Config) -> None:
    """A missing optional package (TensorBoard, python-docx) is one line before the run folder exists."""
    if config.run.tensorboard:
        summary_writer_class()
    if config.run.docx:
        require_docx()


def _logged_to_file(folder: Path, log, closing: contextlib.ExitStack, first: str):
    """`log`, with every line also written to the folder's run.log (appended: a resume adds to it)
    through a logger of this run's own (`actlab.run.N`); `first` is written there at once."""
    handler = _QuietFileHandler(folder / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger(f"actlab.run.{id(closing)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the file's logger: the console gets the line from `log`
    logger.addHandler(handler)
    closing.callback(lambda: (logger.removeHandler(handler), handler.close()))
    logger.info(first)

    def both(line: str) -> None:
        logger.info(line)
        log(line)
    return both


def _run(config: Config, show_progress: bool, log, closing: contextlib.ExitStack) -> Results:
    device = resolve_device(config.run.device)
    check_precision(config.run.precision, device)
    check_memory(config, device)
    seconds = check_size(config, device)  # before anything is allocated per model
    _check_extras(config)
    dataset = load_dataset(config.data.dataset, data_folder(config), download=config.data.download,
                           mirror=config.data.data_mirror, show_progress=show_progress)
    remember_dataset(dataset)
    folder, previous = open_run_folder(config)
    create_folder(folder)
    words = Words(config.run.lang)  # the terminal's lines in the run's language, as its summary table
    models, how = product(config, w=words)  # stated once every check has passed, before anything per model
    plan = plan_line(how, models, worker_count(config, device, models), stacking(config, device), device,
                     backward_pass(config), seconds, words)
    log(plan)
    if config.run.explain:
        log(announce_explain(config, folder))
    records = [ModelRun(label, activation, output, seed, loss=loss)
               for seed in config.run.seeds for label, activation, output, loss in config.variants]
    kept, earlier = kept_models(config, folder, previous, records)
    records = [kept.get(i, record) for i, record in enumerate(records)]
    todo = [i for i in range(len(records)) if i not in kept]
    groups, alone = plan_groups(config, device, [records[i] for i in todo], worker_count(config, device, len(todo)))
    groups = [[todo[i] for i in g] for g in groups]
    workers = worker_count(config, device, len(groups))
    threads = threads_per_worker(config, workers)
    results = Results(folder, config.to_flat(), environment(device, config), records,
                      interventions=previous.interventions if previous else None)
    results.environment.update(
        data_folder=str(dataset.folder), workers=workers, threads_per_worker=threads, resumed=len(kept),
        stacked=[[f"{records[i].label} seed {records[i].seed}" for i in g] for g in groups if len(g) > 1],
        trained_alone=alone, **({"earlier": earlier} if earlier else {}))
    atomic_write(folder / "config.toml", config.to_toml())
    atomic_write(folder / "environment.json", json.dumps(results.environment, indent=1) + "\n")
    write_results(results)
    log = _logged_to_file(folder, log, closing, plan)  # a folder holding run.log holds results.json too
    if config.data.normalize != "none":
        write_normalization(folder, config, dataset)
    if kept:
        log(words.plain("terminal.resuming", folder=folder, kept=len(kept), total=len(records), todo=len(todo)))
    langs = ["en"] + ([config.run.lang] if config.run.lang != "en" else [])  # the reports, English first
    lost, drawn = _train(config, device, dataset, results, groups, workers, threads, show_progress, log, langs)
    from actlab.report import build_report  # plotting and statistics: only the parent needs them

    atomic_write(folder / "environment.json", json.dumps(results.environment, indent=1) + "\n")
    write_results_json(results)
    if config.run.explain and not lost:
        _explain(config, results, show_progress, log)
    try:
        for lang in langs:
            build_report(results, lang=lang, log=log, drawn=drawn)
    except KeyboardInterrupt as stop:  # every file is written whole or not at all: the report is there or absent
        raise Interrupted(f"interrupted while the report was written; all {len(records)} models are saved in "
                          f"{folder}: `actlab report {folder}` writes the report", getattr(stop, "signum", 2)) from None
    if lost:
        raise ActlabError(f"{len(lost)} of {len(records)} models were lost ({'; '.join(lost)}); the other models "
                          f"are saved in {folder}: run `{resume_command(results)}` to train just the lost ones")
    return results


def _explain(config: Config, results: Results, show_progress: bool, log) -> None:
    """--explain: the models that test the hypotheses, trained after the run's own (resumable alike)."""
    try:
        train_interventions(config, results, show_progress=show_progress, log=log, announce=False)
    except KeyboardInterrupt as stop:
        raise Interrupted(f"interrupted while --explain trained its models; the run's models and the explain "
                          f"models done so far are saved in {results.run_dir}: `{resume_command(results)}` or "
                          f"`actlab explain {results.run_dir}` goes on", getattr(stop, "signum", 2)) from None


def _train(config: Config, device: torch.device, dataset, results: Results, groups: list[list[int]], workers: int,
           threads: int, show_progress: bool, log, langs: list[str]) -> tuple[list[str], frozenset[Path]]:
    """Train the groups, writing each model to the run folder as it finishes; returns what was lost
    and the figures of the reports in `langs` drawn meanwhile (`_prepare_report_in_background`).
    Ctrl-C and SIGTERM become `Interrupted`, with the finished models on disk."""
    folder, records = results.run_dir, results.runs
    board = str(folder / "tensorboard") if config.run.tensorboard else None
    # copies, as a worker process gets: a model enters `results` when `finished` has saved it, never before
    tasks = [Task(tuple(g), tuple(copy.deepcopy(records[i]) for i in g), config, str(dataset.folder),
                  str(device), board) for g in groups]
    worker_peaks: list[float] = []
    lost: list[str] = []

    def finished(trained: Trained) -> None:
        record = trained.record
        if trained.lost:
            results.runs[trained.index] = record
            lost.append(f"{record.label} seed {record.seed}: {trained.error}")
            write_results(results)
            log(f"{record.label} seed {record.seed}: lost, {trained.error}")
            return
        if trained.error:
            raise ActlabError(trained.error)
        if config.run.checkpoints:  # before the model counts as saved: a resume keeps only models with one
            save_checkpoint(folder / "checkpoints" / checkpoint_name(record.label, record.seed), record,
                            trained.final_state, trained.best_state, results.config)
        results.runs[trained.index] = record
        worker_peaks.append(trained.peak_mb)
        write_results(results)
        acc, words = record.final_test_acc, Words(config.run.lang)
        log(words.plain("terminal.model_done", label=record.label, seed=record.seed,
                        status=words.plain("terminal.ok") if record.status.ok else record.status,
                        acc="–" if acc is None else f"{acc:.2%}", seconds=f"{record.train_seconds:.1f}"))

    preparing: list[threading.Thread] = []
    drawn: set[Path] = set()
    trained = threading.Event()
    try:
        run_tasks(tasks, workers, threads, show_progress, finished,
                  Words(config.run.lang).plain("terminal.progress_models"),
                  on_idle=lambda: preparing.append(_prepare_report_in_background(results, langs, drawn, trained)),
                  lang=config.run.lang)
    except KeyboardInterrupt as stop:
        done = sum(r.counts for r in records)
        raise Interrupted(f"interrupted{' (SIGTERM)' if isinstance(stop, Terminated) else ''}: {done} of "
                          f"{len(records)} models are trained and saved in {folder}; resume with "
                          f"`{resume_command(results)}`", getattr(stop, "signum", 2)) from None
    finally:
        trained.set()
        write_results(results)
    for thread in preparing:  # the report waits for this work anyway, and forks only with one thread left
        thread.join()
    results.environment.update(peak_memory(device, worker_peaks if workers > 1 else []))
    return lost, frozenset(drawn)


def _prepare_report_in_background(results: Results, langs: list[str], drawn: set[Path],
                                  trained: threading.Event) -> threading.Thread:
    """On a core the last models left free, instead of after training: import the report's modules
    (matplotlib, SciPy: 1-2 s), then, if models are still training, draw the figures that depend
    only on the configuration (`report.draw_ahead`, which also readies matplotlib for the report's
    other figures), adding them to `drawn`. Once training is over the report draws them faster, in
    its second process. `run` imports the modules again, which finds them or redoes a failed
    import, and the report draws whatever is not in `drawn`."""
    def prepare() -> None:
        with contextlib.suppress(Exception):
            report = importlib.import_module("actlab.report")
            if not trained.is_set():
                drawn.update(report.draw_ahead(results, langs))

    thread = threading.Thread(target=prepare, name="actlab-report-prepare", daemon=True)
    thread.start()
    return thread


def resume_command(results: Results) -> str:
    """The command that resumes this run: the one that started it, with its `--out`; from Python (a
    notebook), the same call again into the same folder."""
    command = results.environment.get("command")
    if command is None and results.config.get("out") is not None:
        return "actlab.run(config) again (re-run the cell)"
    if command is None:
        return f"actlab.run(config) again with \"out\": {str(results.run_dir)!r} in its overrides (re-run the cell)"
    return command if "--out" in shlex.split(command) else f"{command} --out {shlex.quote(str(results.run_dir))}"


def peak_memory(device: torch.device, worker_peaks: list[float]) -> dict[str, float]:
    """Peak memory in MiB: allocated on the GPU, or resident in this process and in its largest worker."""
    if device.type == "cuda":
        return {"peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)}
    peaks = {"peak_memory_mb": resident_peak_mb()}
    if worker_peaks:
        peaks["peak_worker_memory_mb"] = max(worker_peaks)
    return peaks
