"""Tuning: the grid, the choice (by validation accuracy only), edges, and a tuning that is killed
and resumed; then the tuned run's files and report."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from actlab.config import resolve_config
from actlab.errors import ActlabError
from actlab.results import ModelRun
from actlab.tune import at_edge, choose, parse_values, read_tune, score, tuning_seeds


def test_a_log_range_and_a_list_give_the_grid():
    assert parse_values("lr", "log:1e-4:1e-1:4") == [1e-4, 1e-3, 1e-2, 1e-1]
    assert parse_values("lr", "log:1e-3:1:7") == [0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1.0]
    assert parse_values("weight_decay", [0, 1e-4]) == [0, 1e-4]
    with pytest.raises(ActlabError, match="log:LOW:HIGH:N"):
        parse_values("lr", "log:1:0.1:3")


def test_tune_flags_and_the_default_grid_of_the_optimizer():
    sgd = resolve_config(preset="mnist-selu-snn", env={})
    assert read_tune(None, ["lr"], sgd) == {"lr": [0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1.0]}
    adam = resolve_config(preset="mnist-classic-four", env={})
    assert read_tune(None, ["lr=0.0003;0.001", "weight_decay=0;0.0001"], adam) == {
        "lr": [0.0003, 0.001], "weight_decay": [0, 0.0001]}
    with pytest.raises(ActlabError, match="not a hyper-parameter actlab tunes"):
        read_tune(None, ["epochs_to_final=1;2"], adam)
    with pytest.raises(ActlabError, match="--tune hidden: not a hyper-parameter actlab tunes"):
        read_tune(None, ["hidden"], adam)
    with pytest.raises(ActlabError, match=r"only lr has a default grid; give dropout's values, e.g. --tune 'dropout=0;0\.2;0\.5'"):
        read_tune(None, ["dropout"], adam)


def test_a_tune_file_that_is_a_folder_is_one_error(tmp_path):
    with pytest.raises(ActlabError, match="is a folder"):
        read_tune(tmp_path, [], resolve_config(preset="mnist-classic-four", env={}))


def test_tuning_seeds_are_never_evaluation_seeds():
    config = resolve_config(overrides={"seeds": [4, 0, 7], "tune_seeds": 3}, env={})
    assert tuning_seeds(config) == [8, 9, 10] and not set(tuning_seeds(config)) & set(config.run.seeds)


def test_a_synthetic_objective_gives_back_each_activations_best_value():
    grid = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
    best = {"relu": 1e-3, "sigmoid": 1e-2, "tanh": 3e-3}

    def accuracy(label, lr, seed):  # a peak at the activation's best lr, in log space, plus seed noise
        return 0.97 - 0.02 * (math.log10(lr) - math.log10(best[label])) ** 2 + 0.002 * math.sin(seed + 7 * lr)
    scores = {label: [({"lr": lr}, [accuracy(label, lr, s) for s in (3, 4, 5)]) for lr in grid] for label in best}
    assert choose(scores) == {label: {"lr": lr} for label, lr in best.items()}


def test_the_choice_follows_validation_accuracy_never_the_test_split():
    def run(val, test):
        r = ModelRun("relu", "relu", "logits", 3, [{"epoch": 1, "val_acc": val, "test_acc": test}])
        r.status, r.best_val_acc = "ok", val
        return r
    good_on_test, good_on_validation = run(0.90, 0.99), run(0.95, 0.80)
    scores = {"relu": [({"lr": 0.1}, [score(good_on_test)]), ({"lr": 0.01}, [score(good_on_validation)])]}
    assert choose(scores) == {"relu": {"lr": 0.01}}
    no_validation = ModelRun("relu", "relu", "logits", 3, [{"epoch": 1, "val_acc": None, "test_acc": 0.99}])
    assert score(no_validation) is None  # a run never scores by its test accuracy
    config = resolve_config(overrides={"activations": ["relu"]}, env={})
    from actlab.tune import run_tuned

    with pytest.raises(ActlabError, match="no validation split"):
        run_tuned(config, {"lr": [0.001, 0.01]}, None)


def test_a_choice_at_the_end_of_the_grid_is_flagged():
    grid = {"lr": [0.001, 0.003, 0.01], "weight_decay": [0, 0.0001]}
    assert at_edge({"lr": 0.01, "weight_decay": 0}, grid) == {"lr": "high", "weight_decay": "low"}
    assert at_edge({"lr": 0.003, "weight_decay": 0.0001}, grid) == {"weight_decay": "high"}
    assert at_edge({"lr": 0.003}, {"lr": [0.001, 0.003, 0.01]}) == {}


def _command(data_dir, out):
    return [sys.executable, "-m", "actlab", "run", "--data-dir", str(data_dir), "--out", str(out),
            "--activations", "relu,sigmoid", "--hidden", "24", "--epochs", "2", "--train-subset", "1500",
            "--test-subset", "500", "--val-split", "500", "--seeds", "2", "--workers", "2",
            "--tune", "lr=0.0003;0.003;0.03", "--quiet"]


def _done(out):
    try:
        db = sqlite3.connect(out / "results.db")
        return db.execute("SELECT count(*) FROM runs WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_a_tuning_killed_with_sigkill_resumes_with_every_run_exactly_once(data_dir, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert subprocess.run(_command(data_dir, reference), env=env, capture_output=True).returncode == 0
    process = subprocess.Popen(_command(data_dir, killed), env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _done(killed) < 5 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 5 <= _done(killed) < 20  # killed during the tuning: 12 tuning runs, then up to 8 evaluation runs
    rerun = subprocess.run(_command(data_dir, killed), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    queries = ("SELECT hash, status, final_test_acc, best_val_acc FROM runs ORDER BY hash",
               "SELECT hash, epoch, train_loss, val_acc, test_acc FROM epochs ORDER BY hash, epoch")
    for query in queries:
        rows = [sqlite3.connect(folder / "results.db").execute(query).fetchall() for folder in (reference, killed)]
        assert rows[0] == rows[1]  # every run once, with the numbers of the uninterrupted tuning
    summary = list(csv.DictReader(open(killed / "summary.csv")))
    assert [(r["activation"], r["seed"]) for r in summary] == [(a, s) for s in "01" for a in ("relu", "sigmoid")]
    assert all(r["tuned"].startswith("lr=") for r in summary)
    stats = json.loads((killed / "stats.json").read_text())["tuning"]
    assert stats["tuning_seeds"] == [2, 3] and stats["evaluation_seeds"] == [0, 1]
    assert {label: entry["chosen"] for label, entry in stats["activations"].items()} == \
        {r["activation"]: {"lr": float(r["tuned"][3:])} for r in summary}
    report = (killed / "report.md").read_text()
    assert "## Tuned values and sensitivity" in report and "plots/sensitivity.png" in report
    assert "### Tuned against fixed" in report and "fixed values (`lr=" in report
    assert (killed / "plots" / "sensitivity.png").is_file() and (killed / "plots" / "robustness.png").is_file()
    from actlab.cli import main  # the tuned run's own report, rebuilt, in Chinese: not a report on its store

    assert main(["report", str(killed), "--lang", "zh"]) == 0
    assert "## 调优取值与敏感性" in (killed / "report.zh.md").read_text() and not (killed / "report").exists()
