"""Fair comparisons: every activation at its own tuned hyper-parameters, and how robust each is to them.

    actlab run --preset mnist-classic-four --tune 'lr=0.0003;0.001;0.003;0.01' --val-split 10000 --seeds 3
    actlab run --preset mnist-selu-snn --tune lr          # the default grid for the preset's optimizer
    [tune]                                               # in a TOML file, beside [experiment]
    lr = "log:1e-4:1e-1:7"                               # 7 values, evenly spaced in log
    weight_decay = [0, 1e-4]                             # several keys form a grid

Two phases in one store (`<out>/results.db`), so a killed tuning resumes where it stopped:
1. tuning: every activation at every grid point on the tuning seeds (`tune_seeds` of them, numbered
   after the evaluation seeds, so the two never overlap), each run scored by its best validation
   accuracy: the test split never enters the choice. Each activation gets the point with the best
   mean score;
2. evaluation: every activation at its chosen point, and at the experiment's own (fixed) values, on
   the evaluation seeds.
The run folder then holds the evaluation at the chosen points as an ordinary run, with the choice in
summary.csv (`tuned`), results.json and stats.json (`tuning`) and the report's sensitivity section,
which says whether the verdicts at the tuned values differ from those at the fixed values.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from actlab.board import summary_writer_class
from actlab.config import KEYS, Config, config_from_flat, keys_where, load_toml, toml_text
from actlab.device_data import resolve_device
from actlab.errors import ActlabError
from actlab.experiment import environment
from actlab.files import atomic_write, create_folder
from actlab.messages import Words
from actlab.plan import check_size
from actlab.results import CHANCE_ACCURACY, ModelRun, Results, write_results
from actlab.stats import pairwise_verdicts, summarize
from actlab.store import Store
from actlab.sweep import expand, train_runs
from actlab.workers import default_log

TUNABLE = keys_where("tunable")
EXAMPLE_VALUES = {"weight_decay": "0;0.0001;0.001", "momentum": "0;0.9", "dropout": "0;0.2;0.5",
                  "batch_size": "32;64;128", "gamma": "0.1;0.5", "step_size": "2;5"}
# default lr grids by optimizer: a decade either side of the usual value, in half-decade steps
DEFAULT_GRIDS = {"adam": "log:1e-4:1e-2:5", "adamw": "log:1e-4:1e-2:5", "rmsprop": "log:1e-5:1e-2:7",
                 "sgd": "log:1e-3:1:7"}


def parse_values(key: str, text: Any) -> list[float]:
    """A list of values, or `log:LOW:HIGH:N` (N values evenly spaced in log between LOW and HIGH,
    rounded to 3 significant digits)."""
    if isinstance(text, list) and text:
        return list(text)
    if isinstance(text, str) and text.startswith("log:"):
        try:
            low, high, count = (float(p) for p in text[4:].split(":"))
        except ValueError:
            count = 0
        if count >= 2 and count == int(count) and 0 < low < high:
            return [float(f"{v:.3g}") for v in np.geomspace(low, high, int(count))]
    raise ActlabError(f"[tune] {key} = {text!r}: give a list of values, e.g. [0.001, 0.003], or a log range "
                      f"log:LOW:HIGH:N, e.g. \"log:1e-4:1e-1:7\"")


def read_tune(file: str | Path | None, flags: list[str], config: Config) -> dict[str, list[float]]:
    """The grid to tune: a file's `[tune]` table, then `--tune key=v1;v2` / `--tune key=log:a:b:n` /
    `--tune lr` (the default grid for the experiment's optimizer). Keys are hyper-parameters."""
    grid: dict[str, list[float]] = {}
    if file is not None:
        for key, values in load_toml(Path(file)).get("tune", {}).items():
            grid[key] = parse_values(key, values)
    for flag in flags:
        key, sep, text = flag.partition("=")
        key = key.strip().replace("-", "_")
        if key not in TUNABLE:
            raise ActlabError(f"--tune {key}: not a hyper-parameter actlab tunes; tune one of: {', '.join(TUNABLE)}")
        if not sep:
            if key != "lr":
                raise ActlabError(f"--tune {flag!r}: only lr has a default grid; give {key}'s values, e.g. "
                                  f"--tune '{key}={EXAMPLE_VALUES[key]}'")
            grid[key] = parse_values(key, DEFAULT_GRIDS[config.optim.optimizer])
            continue
        values = text.strip() if text.strip().startswith("log:") else \
            [KEYS[key].from_text(v.strip()) if key in KEYS else v for v in text.split(";") if v.strip()]
        grid[key] = parse_values(key, values)
    for key in grid:
        if key not in TUNABLE:
            raise ActlabError(f"[tune] {key}: not a hyper-parameter actlab tunes; tune one of: {', '.join(TUNABLE)}")
    return grid


def points(grid: dict[str, list[float]]) -> list[dict[str, float]]:
    """Every combination of the grid's values, the last key varying fastest."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def tuning_seeds(config: Config) -> list[int]:
    """The tuning seeds: `tune_seeds` of them, numbered after the evaluation seeds (never the same)."""
    start = max(config.run.seeds) + 1
    return list(range(start, start + config.run.tune_seeds))


def point_config(config: Config, activation: str, point: dict[str, float], seeds: list[int]) -> Config:
    """The experiment for one activation at one grid point, on `seeds` (a per-activation init
    table keeps this activation's entry)."""
    flat = {**config.to_flat(), **point, "activations": [activation], "seeds": list(seeds), "seed": seeds[0]}
    if isinstance(flat.get("init"), dict):
        flat["init"] = {a: s for a, s in flat["init"].items() if a == activation} or "default"
    return config_from_flat(flat, {k: "[tune]" for k in point})


def score(run: ModelRun) -> float | None:
    """A tuning run's score: its best validation accuracy (chance for a run that diverged before its
    first evaluation). Only the validation split enters the choice; the test split never does."""
    if run.best_val_acc is not None:
        return run.best_val_acc
    return CHANCE_ACCURACY if run.counts else None


def choose(scores: dict[str, list[tuple[dict[str, float], list[float]]]]) -> dict[str, dict[str, float]]:
    """Per activation, the grid point with the best mean score (the first, on a tie)."""
    chosen = {}
    for label, per_point in scores.items():
        means = [(statistics.fmean(values) if values else -math.inf, i) for i, (_, values) in enumerate(per_point)]
        chosen[label] = per_point[max(means, key=lambda m: (m[0], -m[1]))[1]][0]
    return chosen


def at_edge(point: dict[str, float], grid: dict[str, list[float]]) -> dict[str, str]:
    """The keys whose chosen value is the grid's lowest or highest (`low` / `high`): the best value
    may lie beyond the range tried."""
    edges = {}
    for key, value in point.items():
        values = sorted(grid[key])
        if len(values) > 1 and value == values[0]:
            edges[key] = "low"
        elif len(values) > 1 and value == values[-1]:
            edges[key] = "high"
    return edges


def summary_of(values: list[float]) -> dict[str, float]:
    s = summarize(values, bounds=(0.0, 1.0))  # validation accuracies
    return {"n": s.n, "mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high}


def tuning_report(grid: dict[str, list[float]], scores, chosen, fixed: dict[str, float], seeds: dict[str, list[int]],
                  fixed_results: Results) -> dict[str, Any]:
    """What results.json and stats.json keep of a tuning: the grid, every point's scores, the
    choices, edges, robustness, and the runs and verdicts at the fixed values."""
    per_label = {}
    for label, per_point in scores.items():
        means = [statistics.fmean(v) for _, v in per_point if v]
        per_label[label] = {
            "points": [{"point": p, "scores": v, **summary_of(v)} for p, v in per_point],
            "chosen": chosen[label], "at_edge": at_edge(chosen[label], grid),
            "best": max(means, default=None), "mean_over_grid": statistics.fmean(means) if means else None,
            "worst": min(means, default=None)}
    margin = fixed_results.config.get("equivalence_margin", 0.5)
    return {"grid": grid, "keys": list(grid), "fixed": fixed, "tuning_seeds": seeds["tuning"],
            "evaluation_seeds": seeds["evaluation"], "score": "best validation accuracy of each tuning run",
            "activations": per_label, "fixed_runs": [r.to_json() for r in fixed_results.runs],
            "fixed_pairwise": pairwise_verdicts(fixed_results, margin)}


def run_tuned(config: Config, grid: dict[str, list[float]], out: Path, backend: str = "local",
              ray_address: str | None = None, show_progress: bool | None = None, log=None) -> Results:
    """Tune, choose, evaluate, and write the run folder and its report; returns the tuned `Results`."""
    log = log or default_log
    if config.run.explain:
        raise ActlabError("--explain tests a hypothesis by changing one setting of a run; a tuned run trains each "
                          "activation at its own values, so explain the experiment without --tune")
    if len(config.model.outputs) > 1 or len(config.model.losses) > 1:
        raise ActlabError("tuning compares activations: give one output head (--output) and one loss (--loss)")
    if not config.data.val_split:
        raise ActlabError("tuning chooses each activation's values by validation accuracy, and this experiment has "
                          "no validation split: add one (e.g. --val-split 10000); the test split is never used to "
                          "choose")
    check_size(config, resolve_device(config.run.device), {**grid, "seed": [*config.run.seeds, *tuning_seeds(config)]},
               fix="give fewer values or seeds")
    seeds = {"tuning": tuning_seeds(config), "evaluation": list(config.run.seeds)}
    labels = [label for label, *_ in config.variants]
    grid_points = points(grid)
    fixed = {key: getattr(getattr(config, KEYS[key].section), KEYS[key].field) for key in grid}
    w = Words(config.run.lang)
    log(w.plain("terminal.tune_plan", keys=", ".join(grid), runs=len(labels) * len(grid_points) * len(seeds["tuning"]),
                labels=len(labels), points=len(grid_points), seeds=seeds["tuning"],
                evaluations=2 * len(labels) * len(seeds["evaluation"]), evaluation_seeds=seeds["evaluation"]))
    if config.run.tensorboard:
        summary_writer_class()  # a missing package is one line before the folder exists
    create_folder(out)
    tuning = [run for a in config.model.activations for p in grid_points
              for run in expand(point_config(config, a, p, seeds["tuning"]), {})]
    _train(config, tuning, out, backend, ray_address, show_progress, log, w.plain("terminal.what_tuning"), list(grid))
    scores = _scores(tuning, out, grid_points)
    chosen = choose(scores)
    evaluation = {(label, json_key(p)): [run for run in expand(point_config(config, activation, p, seeds["evaluation"]),
                                                               {}) if run.label == label]
                  for label, activation in _activation_of(config).items() for p in (chosen[label], fixed)}
    _train(config, [r for runs in evaluation.values() for r in runs], out, backend, ray_address, show_progress, log,
           w.plain("terminal.what_evaluation"), list(grid))
    tuned = _records(out, [r for label in labels for r in evaluation[label, json_key(chosen[label])]], chosen)
    fixed_runs = _records(out, [r for label in labels for r in evaluation[label, json_key(fixed)]], {})
    base = {**config.to_flat(), "tune": grid}
    fixed_results = Results(out, base, {}, fixed_runs)
    results = Results(out, base, _environment(config, seeds), tuned,
                      tuning_report(grid, scores, chosen, fixed, seeds, fixed_results))
    return results


def json_key(point: dict[str, float]) -> str:
    return ",".join(f"{k}={v!r}" for k, v in sorted(point.items()))


def _activation_of(config: Config) -> dict[str, str]:
    return {label: activation for label, activation, *_ in config.variants}


def _train(config: Config, runs, out: Path, backend: str, ray_address, show_progress, log, what: str,
           keys: list[str]) -> None:
    counts = train_runs(config, runs, out, backend, ray_address, show_progress, log, what,
                        lambda run: ", ".join(f"{k}={run.flat[k]:g}" for k in keys))
    if counts.get("failed") or counts.get("pending") or counts.get("running"):
        raise ActlabError(f"{what}: {counts.get('failed', 0)} runs failed and {counts.get('pending', 0)} did not run "
                          f"(see `actlab runs list {out} --status failed`); fix the cause and run the same command "
                          f"again: the runs already done are kept")


def _scores(tuning, out: Path, grid_points: list[dict[str, float]]) -> dict[str, list]:
    """Per activation, per grid point (in grid order), the tuning seeds' scores."""
    with Store(out) as store:
        records = store.done_runs([r.hash for r in tuning])
    scores: dict[str, list] = {}
    for run in tuning:
        per_point = scores.setdefault(run.label, [(p, []) for p in grid_points])
        point = {k: run.flat[k] for k in grid_points[0]}
        value = score(records[run.hash])
        if value is not None:
            next(values for p, values in per_point if p == point).append(value)
    return scores


def _records(out: Path, runs, chosen: dict[str, dict[str, float]]) -> list[ModelRun]:
    """The store's finished records of `runs`, marked with the values tuning chose for them."""
    with Store(out) as store:
        records = store.done_runs([r.hash for r in runs])
    out_runs = []
    for run in runs:
        record = records[run.hash]
        record.tuned = dict(chosen.get(run.label, {}))
        out_runs.append(record)
    return sorted(out_runs, key=lambda r: r.seed)


def _environment(config: Config, seeds: dict[str, list[int]]) -> dict:
    env = environment(resolve_device(config.run.device), config)
    env.update(tuning_seeds=seeds["tuning"], seeds=seeds["evaluation"])
    return env


def write_tuned(results: Results, log=None) -> None:
    """The tuned run's folder: its tables, config, and the report (with the sensitivity section)."""
    from actlab.report import build_report  # matplotlib and SciPy: imported when a report is written

    write_results(results)
    experiment = {k: v for k, v in results.config.items() if k != "tune"}
    atomic_write(results.run_dir / "config.toml", toml_text({"experiment": experiment, "tune": results.tuning["grid"]}))
    atomic_write(results.run_dir / "environment.json", json.dumps(results.environment, indent=1) + "\n")
    build_report(results, log=log)
    lang = results.config.get("lang", "en")
    if lang != "en":
        build_report(results, lang=lang, log=log)
