"""Running an experiment: which models train together, and that stacking them changes no number."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import actlab
from actlab.config import resolve_config
from actlab.plan import models_per_chunk, plan_groups
from actlab.presets import PRESETS
from actlab.results import ModelRun

CPU = torch.device("cpu")


def records_of(config):
    return [ModelRun(label, a, o, s) for s in config.run.seeds for label, a, o, _ in config.variants]


def test_without_stacking_every_model_is_a_group_of_one():
    config = resolve_config(overrides={"activations": ["relu", "tanh"], "seeds": 2, "stack": False}, env={})
    assert plan_groups(config, CPU, records_of(config), workers=2) == ([[0], [1], [2], [3]], {})


def test_stacking_groups_what_can_stack_and_says_why_the_rest_trains_alone():
    config = resolve_config(overrides={"activations": ["relu", "rrelu", "tanh", "relu+rrelu"], "seeds": 2,
                                       "stack": True}, env={})
    records = records_of(config)
    groups, alone = plan_groups(config, CPU, records, workers=1)
    assert groups[0] == [0, 2, 4, 6]  # relu and tanh of both seeds, seed by seed
    assert sorted(g[0] for g in groups[1:]) == [1, 3, 5, 7] and all(len(g) == 1 for g in groups[1:])
    assert alone == {f"{a} seed {s}": "rrelu draws random numbers in training"
                     for s in (0, 1) for a in ("rrelu", "relu+rrelu")}
    two, _ = plan_groups(config, CPU, records, workers=2)
    assert [len(g) for g in two[:2]] == [2, 2]  # at least one stack per worker


def test_a_stack_is_split_into_chunks_that_fit_in_memory(monkeypatch):
    config = resolve_config(overrides={"activations": ["relu", "tanh", "elu"], "seeds": 4, "stack": True,
                                       "hidden": [4096, 4096]}, env={})
    per_model = models_per_chunk(config, CPU)
    assert per_model >= 1
    monkeypatch.setattr("actlab.plan.models_per_chunk", lambda config, device: 5)
    groups, _ = plan_groups(config, CPU, records_of(config), workers=1)
    assert [len(g) for g in groups] == [4, 4, 4] and sorted(sum(groups, [])) == list(range(12))


def metrics(folder):
    return {(r["activation"], r["seed"], r["epoch"]): r for r in csv.DictReader(open(folder / "metrics.csv"))}


def run_both_ways(data_dir, tmp_path, preset=None, **overrides):
    """metrics.csv rows of the same experiment trained with and without stacking, and the stacked
    run's environment.json."""
    out = {}
    for stack in (False, True):
        folder = tmp_path / f"stack-{stack}"
        config = resolve_config(preset=preset, overrides={"data_dir": str(data_dir), "out": str(folder),
                                                          "stack": stack, "workers": 1, **overrides}, env={})
        actlab.run(config, show_progress=False, log=lambda line: None)
        out[stack] = metrics(folder)
    return out[False], out[True], json.loads((tmp_path / "stack-True" / "environment.json").read_text())


def assert_same_rows(alone, stacked):
    assert alone.keys() == stacked.keys()
    for key, row in alone.items():
        for column in ("train_loss", "val_loss", "test_loss", "train_acc", "val_acc", "test_acc"):
            a, b = row[column], stacked[key][column]
            if a in ("", "nan") or b in ("", "nan"):
                assert a == b, (key, column)
            elif column.endswith("loss"):
                assert float(b) == pytest.approx(float(a), rel=5e-4), (key, column)
            else:
                assert abs(float(b) - float(a)) <= 4e-3, (key, column)  # two of the 500 test images at most


QUICK = {"epochs": 2, "train_subset": 1000, "test_subset": 500, "seeds": 2}


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_gives_the_same_numbers_stacked_or_not(data_dir, tmp_path, preset):
    alone, stacked, env = run_both_ways(data_dir, tmp_path, preset, **QUICK)
    assert_same_rows(alone, stacked)
    models = len(resolve_config(preset=preset, env={}).variants) * 2
    assert sum(len(g) for g in env["stacked"]) == models and env["trained_alone"] == {}


@pytest.mark.slow
def test_recipes_give_the_same_numbers_stacked_or_not(data_dir, tmp_path):
    """Early stopping, a cosine schedule, per-layer and per-unit learnable activations."""
    alone, stacked, env = run_both_ways(
        data_dir, tmp_path, activations=["relu+tanh", "prelu:per_unit", "tanh", "rrelu"], hidden=[32, 16],
        val_split=300, patience=1, schedule="cosine", lr=3e-3, **{**QUICK, "epochs": 5})
    assert_same_rows(alone, stacked)
    last_epoch = {(a, s): max(int(e) for (act, seed, e) in alone if (act, seed) == (a, s)) for a, s, _ in alone}
    assert min(last_epoch.values()) < 5  # early stopping happened inside the stack
    assert env["trained_alone"] == {"rrelu seed 0": "rrelu draws random numbers in training",
                                    "rrelu seed 1": "rrelu draws random numbers in training"}
    assert [len(g) for g in env["stacked"]] == [6]


def test_an_interruption_while_a_checkpoint_is_written_counts_only_models_a_resume_keeps(
        data_dir, tmp_path, monkeypatch):
    """A model counts as saved once its checkpoint is on disk: the interrupted message, results.json
    and the resume agree on how many models are kept."""
    from actlab import experiment
    from actlab.errors import Interrupted

    config = resolve_config(overrides={"data_dir": str(data_dir), "out": str(tmp_path / "run"), "workers": 1,
                                       "activations": ["relu", "tanh"], **QUICK}, env={})
    written = []
    save = experiment.save_checkpoint

    def interrupted_on_the_second(*args):
        if written:
            raise KeyboardInterrupt
        save(*args)
        written.append(args[0])

    monkeypatch.setattr(experiment, "save_checkpoint", interrupted_on_the_second)
    with pytest.raises(Interrupted, match="1 of 4 models are trained and saved"):
        actlab.run(config, show_progress=False, log=lambda line: None)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())["runs"]
    assert sum(r["status"] == "ok" for r in saved) == 1 and len(list((tmp_path / "run" / "checkpoints").iterdir())) == 1
    monkeypatch.setattr(experiment, "save_checkpoint", save)
    lines = []
    actlab.run(config, show_progress=False, log=lines.append)
    assert lines[0].startswith("plan: ") and lines[1].endswith("1 of 4 models are already trained, 3 to train")


def test_a_run_with_progress_bars_leaves_one_thread_so_its_report_draws_on_two_cores(data_dir, tmp_path):
    """tqdm's monitor thread or the report's import thread, left running, would keep the report's
    figures in one process (a fork copies only the forking thread)."""
    import subprocess
    import sys

    script = f"""
import threading
import actlab, actlab.plots as plots
forked = []
fork = plots._fork_drawing
plots._fork_drawing = lambda jobs: forked.append(fork(jobs)) or forked[-1]
config = actlab.resolve_config(overrides={{"data_dir": {str(data_dir)!r}, "out": {str(tmp_path / "run")!r},
    "train_subset": 2000, "test_subset": 1000, "epochs": 1, "hidden": [32], "activations": ["relu", "tanh", "elu"],
    "workers": 2, "device": "cpu"}}, env={{}})
actlab.run(config, show_progress=True, log=lambda line: None)
print(len([pid for pid in forked if pid]), [t.name for t in threading.enumerate()])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1 ['MainThread']"
    assert (tmp_path / "run" / "plots" / "diagnostics.png").is_file()


def test_workers_train_with_what_they_start_with_frozen_and_the_caller_gets_its_collector_back(data_dir, tmp_path):
    """A full collection in a worker would walk every object of torch and actlab (about 0.1 s, once
    per model); `run` freezes the caller's objects only while it runs."""
    import subprocess
    import sys

    script = f"""
import gc, os
import actlab, actlab.workers as workers
train_group = workers.train_group
def recording(*args, **kwargs):
    with open({str(tmp_path / "frozen.txt")!r}, "a") as f:
        f.write(f"{{os.getpid()}} {{gc.get_freeze_count()}}\\n")
    return train_group(*args, **kwargs)
workers.train_group = recording
config = actlab.resolve_config(overrides={{"data_dir": {str(data_dir)!r}, "out": {str(tmp_path / "run")!r},
    "train_subset": 2000, "test_subset": 1000, "epochs": 1, "hidden": [32], "activations": ["relu", "tanh"],
    "workers": 2, "device": "cpu"}}, env={{}})
during = []
actlab.run(config, show_progress=False, log=lambda line: during.append(gc.get_freeze_count()))
print(os.getpid(), min(during), gc.get_freeze_count())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    parent, during, after = map(int, out.stdout.split())
    assert during > 0 and after == 0
    rows = [line.split() for line in (tmp_path / "frozen.txt").read_text().splitlines()]
    assert len(rows) == 2 and all(int(pid) != parent and int(count) > 0 for pid, count in rows)


def test_the_report_is_prepared_while_models_train_and_left_alone_once_they_are_done(tmp_path):
    import threading

    from actlab.experiment import _prepare_report_in_background
    from test_report import synthetic

    results = synthetic(tmp_path, {"relu": [0.98], "tanh": [0.975]})
    drawn: set = set()
    _prepare_report_in_background(results, ["en", "zh"], drawn, threading.Event()).join()
    assert drawn == {tmp_path / "plots" / "activations.png", tmp_path / "plots" / "zh" / "activations.png"}
    assert all(path.exists() for path in drawn)
    done, later = threading.Event(), set()
    done.set()
    _prepare_report_in_background(results, ["en"], later, done).join()
    assert later == set()  # after training, the report's second process draws it sooner
