"""`--explain` and `actlab explain` on small real runs: the models each hypothesis needs are trained on
the run's seeds, labelled in results.json, resumed after a kill, and never trained twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from actlab.cli import main
from conftest import quick_flags

SMALL = dict(activations="relu,sigmoid", hidden="16", train_subset="1500", test_subset="500", epochs="1",
             seeds="3", workers="2")


def interventions(out) -> dict:
    return json.loads((out / "results.json").read_text())["interventions"]


def done_in_store(out) -> int:
    try:
        with sqlite3.connect(out / "explain" / "results.db") as db:
            return db.execute("SELECT count(*) FROM runs WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_explain_trains_the_missing_arms_on_the_runs_seeds_and_labels_them(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *quick_flags(data_dir, out, **SMALL), "--explain", "dead_units,zero_centred"]) == 0
    doc = interventions(out)
    assert doc["hypotheses"] == ["dead_units", "zero_centred"]
    models = doc["settings"][""]["runs"]
    assert sorted({(m["activation"], m["seed"]) for m in models}) == sorted(
        (a, s) for a in ("leaky_relu:0.01", "expr:sigmoid(x) - 0.5", "expr:4*(sigmoid(x) - 0.5)", "tanh")
        for s in (0, 1, 2))
    assert doc["cost"]["models"] == 12 and doc["cost"]["train_seconds"] > 0
    labels = {r["label"] for r in json.loads((out / "results.json").read_text())["runs"]}
    assert labels == {"relu", "sigmoid"}  # the intervention models are not among the compared ones
    stats = json.loads((out / "stats.json").read_text())
    verdicts = {e["name"]: e["subjects"] for e in stats["causes"]}
    assert set(verdicts["dead_units"]) == {"relu"} and set(verdicts["zero_centred"]) == {"sigmoid"}
    assert all(v in ("supported", "contradicted", "no_effect", "inconclusive") for v in
               (*verdicts["dead_units"].values(), *verdicts["zero_centred"].values()))
    md = (out / "report.md").read_text()
    assert "## Possible causes" in md and "--explain trained 12 models" in md and (out / "plots" / "causes.png").is_file()

    capsys.readouterr()
    assert main(["explain", str(out), "--only", "dead_units,zero_centred"]) == 0  # a second call trains nothing
    err = capsys.readouterr().err
    assert "all trained already" in err and "0 to train" in err
    assert interventions(out)["settings"] == doc["settings"]


def test_explain_on_a_finished_run_adds_only_what_is_missing(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *quick_flags(data_dir, out, **{**SMALL, "activations": "relu,leaky_relu:0.01"})]) == 0
    assert "interventions" not in json.loads((out / "results.json").read_text())
    md = (out / "report.md").read_text()
    assert "## Possible causes" in md and "Dead ReLU units" in md  # the twin ran: tested without --explain
    capsys.readouterr()
    assert main(["explain", str(out), "--only", "dead_units"]) == 0
    assert "--explain adds no models" in capsys.readouterr().err
    assert main(["explain", str(out), "--only", "capacity"]) == 0  # no linear network: nothing applies
    assert main(["explain", str(out), "--only", "nonsense"]) == 1
    assert "'nonsense' is not a hypothesis" in capsys.readouterr().err


@pytest.mark.slow
def test_a_killed_explain_resumes_with_every_model_once_and_the_same_numbers(data_dir, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    flags = lambda out: [sys.executable, "-m", "actlab", "run", *quick_flags(  # noqa: E731
        data_dir, out, **{**SMALL, "epochs": "2"}), "--explain", "vanishing_gradient"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert subprocess.run(flags(reference), env=env, capture_output=True).returncode == 0
    process = subprocess.Popen(flags(killed), env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while done_in_store(killed) < 1 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 1 <= done_in_store(killed) < 6  # killed while --explain trained: relu and sigmoid at 3× the depth
    rerun = subprocess.run(flags(killed), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    query = "SELECT hash, status, final_test_acc FROM runs ORDER BY hash"
    rows = [sqlite3.connect(folder / "explain" / "results.db").execute(query).fetchall()
            for folder in (reference, killed)]
    assert rows[0] == rows[1] and len(rows[0]) == 6
    numbers = lambda out: sorted((m["activation"], m["seed"], m["final_test_acc"], m["status"])  # noqa: E731
                                 for m in interventions(out)["settings"]["depth×3"]["runs"])
    assert numbers(killed) == numbers(reference) and len(numbers(killed)) == 6


@pytest.mark.parametrize("extra", [["--tune", "lr=0.001;0.01", "--val-split", "500"], ["--sweep", "lr=0.001;0.01"]])
def test_explain_with_tuning_or_a_sweep_is_one_clear_error(data_dir, tmp_path, capsys, extra):
    assert main(["run", *quick_flags(data_dir, tmp_path / "run", **SMALL), "--explain", *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("actlab: error: --explain") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
