"""Sweeps: grid expansion and run hashes, the SQLite store, resuming after kill -9, and Ray."""

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
from actlab.config import read_sweep, resolve_config
from actlab.errors import ActlabError
from actlab.results import ModelRun
from actlab.store import Store
from actlab.sweep import expand, run_hash

SWEEP = """[experiment]
hidden = [32]
epochs = 1
batch_size = 100
train_subset = {train}
test_subset = 500
optimizer = "adam"

[sweep]
dataset = ["mnist", "fashion-mnist"]
activation = ["relu", "tanh", "sigmoid", "elu"]
seed = [0, 1, 2]
lr = [0.001, 0.003]
"""


def sweep_file(tmp_path, train=2000):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.format(train=train))
    return path


def test_grid_expands_to_one_run_per_model_with_stable_hashes(tmp_path):
    path = sweep_file(tmp_path)
    config = resolve_config(file=path, env={})
    runs = expand(config, read_sweep(path))
    assert len(runs) == 2 * 4 * 3 * 2
    assert len({r.hash for r in runs}) == 48
    first = runs[0]
    assert (first.flat["dataset"], first.activation, first.seed, first.flat["lr"]) == ("mnist", "relu", 0, 0.001)
    again = expand(resolve_config(file=path, overrides={"workers": "1", "out": "elsewhere", "backprop": "autograd"},
                                  env={}), read_sweep(path))
    assert [r.hash for r in again] == [r.hash for r in runs]  # bookkeeping keys do not change what is trained
    assert run_hash(first.flat, "relu", "logits", 0) == first.hash
    assert run_hash({**first.flat, "epochs": 2}, "relu", "logits", 0) != first.hash
    assert run_hash(first.flat, "relu", "logits", 1) != first.hash


def test_sweep_values_are_checked_like_experiment_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[experiment]\nepochs = 1\n[sweep]\nlr = [0.001, -1]\n')
    with pytest.raises(ActlabError, match=r"lr = -1 \(\[sweep\]\): must be a number"):
        expand(resolve_config(file=path, env={}), read_sweep(path))
    path.write_text('[experiment]\nepochs = 1\n[sweep]\nlrr = [0.001]\n')
    with pytest.raises(ActlabError, match="unknown key 'lrr' in \\[sweep\\]; did you mean 'lr'"):
        read_sweep(path)
    path.write_text('[experiment]\nepochs = 1\n[sweep]\nlr = 0.001\n')
    with pytest.raises(ActlabError, match="give a non-empty list"):
        read_sweep(path)
    assert read_sweep(None, ["lr=0.001;0.003", "hidden=128,128;512"]) == {"lr": [0.001, 0.003],
                                                                          "hidden": [[128, 128], [512]]}


def test_store_commits_a_run_with_its_epochs_atomically(tmp_path):
    with Store(tmp_path) as store:
        store.add_pending([("h1", 0, {"lr": 0.1}, "relu", "relu", "logits", 0),
                           ("h2", 1, {"lr": 0.2}, "relu", "relu", "logits", 0)])
        store.add_pending([("h1", 0, {"lr": 0.1}, "relu", "relu", "logits", 0)])  # idempotent
        store.mark_running(["h1"])
        record = ModelRun("relu", "relu", "logits", 0, [
            {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "val_loss": None, "val_acc": None,
             "test_loss": 0.4, "test_acc": 0.85, "seconds": 1.0}], "ok", train_seconds=1.0, stopped_epoch=1,
            diagnostics=[{"stage": "init", "layer": "hidden1", "metric": "dead_fraction", "value": 0.0}])
        store.save("h1", record)
        store.save("h1", record)  # saving again replaces, never duplicates
        store.fail("h2", "boom")
        assert store.status_of(["h1", "h2"]) == {"h1": "done", "h2": "failed"}
        (row,) = store.rows({"lr": "0.1"})
        again = store.model_run(row)
        assert again.epochs == record.epochs and again.diagnostics == record.diagnostics
        assert row["final_test_acc"] == 0.85 and row["attempts"] == 1
        assert store.rows(status="failed")[0]["error"] == "boom"
    db = sqlite3.connect(tmp_path / "results.db")
    assert db.execute("SELECT COUNT(*) FROM epochs").fetchone() == (1,)


def test_a_stopped_sweep_leaves_its_unfinished_runs_pending_not_running(tmp_path, data_dir, monkeypatch):
    """Ctrl-C mid-sweep: the runs it had claimed and not finished read `pending` in `runs list`, as
    nothing trains them any more; the one it finished stays done."""
    from actlab import sweep

    path = tmp_path / "small.toml"
    path.write_text('[experiment]\nhidden = [16]\nepochs = 1\ntrain_subset = 500\ntest_subset = 200\n'
                    '[sweep]\nactivation = ["relu", "tanh"]\nseed = [0, 1]\n')
    config = resolve_config(file=path, overrides={"data_dir": str(data_dir), "workers": 1}, env={})
    local = sweep._run_locally

    def stopped_after_one(config, todo, folders, store, show_progress, done, board=None):
        store.mark_running(r.hash for r in todo)  # as the local backend claims every run it will train
        local(config, todo[:1], folders, store, show_progress, done, board)
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "_run_locally", stopped_after_one)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(config, read_sweep(path), tmp_path / "sweep", show_progress=False, log=lambda line: None)
    with Store(tmp_path / "sweep") as store:
        assert sorted(row["status"] for row in store.rows()) == ["done", "pending", "pending", "pending"]


def _store_rows(folder):
    db = sqlite3.connect(folder / "results.db")
    runs = db.execute("SELECT hash, status, final_test_acc, final_test_loss FROM runs").fetchall()
    epochs = db.execute("SELECT hash, epoch, train_loss, test_acc, test_loss FROM epochs").fetchall()
    db.close()
    return runs, epochs


def test_a_killed_sweep_resumes_to_exactly_the_uninterrupted_results(tmp_path, data_dir):
    """2 data sets × 4 activations × 3 seeds × 2 lrs, SIGKILLed halfway, rerun: 48 runs, all right."""
    path = sweep_file(tmp_path, train=3000)
    common = ["run", "--config", str(path), "--data-dir", str(data_dir), "--workers", "2", "--threads", "1", "--quiet"]
    reference = tmp_path / "reference"
    assert main([*common, "--out", str(reference)]) == 0

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "actlab", *common, "--out", str(out)]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done_at_kill = 0
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
        if (out / "results.db").exists():
            try:
                db = sqlite3.connect(out / "results.db", timeout=1)
                done_at_kill = db.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
                db.close()
            except sqlite3.Error:
                continue
            if done_at_kill >= 12:
                os.killpg(process.pid, signal.SIGKILL)  # the driver and its workers, mid-sweep
                break
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert 12 <= done_at_kill < 48

    runs, epochs = _store_rows(out)
    assert len(runs) == 48 and 12 <= sum(status == "done" for _, status, *_ in runs) < 48
    assert subprocess.run(command, capture_output=True).returncode == 0  # the same command resumes

    runs, epochs = _store_rows(out)
    ref_runs, ref_epochs = _store_rows(reference)
    assert len(runs) == 48 and all(status == "done" for _, status, *_ in runs)
    assert len(epochs) == 48 and len({(h, e) for h, e, *_ in epochs}) == 48  # one epoch each, none duplicated
    assert sorted(runs) == sorted(ref_runs)
    assert sorted(epochs) == sorted(ref_epochs)


def test_sweep_runs_list_export_and_report_on_a_subset(tmp_path, data_dir, capsys):
    path = tmp_path / "small.toml"
    path.write_text('[experiment]\nhidden = [16]\nepochs = 1\ntrain_subset = 1000\ntest_subset = 300\n'
                    '[sweep]\nactivation = ["relu", "tanh"]\nseed = [0, 1, 2]\nhidden = [[16], [32]]\n')
    out = tmp_path / "sweep"
    assert main(["run", "--config", str(path), "--data-dir", str(data_dir), "--out", str(out), "--workers", "1",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", "--config", str(path), "--data-dir", str(data_dir), "--out", str(out), "--quiet"]) == 0
    assert "12 runs: 12 done (12 were already)" in capsys.readouterr().out
    assert main(["runs", "list", str(out), "--where", "hiden=32"]) == 1  # a misspelt key is not "0 runs"
    assert "no run in" in capsys.readouterr().err
    assert main(["show", str(out)]) == 1 and f"actlab runs list {out}" in capsys.readouterr().err
    assert main(["runs", "list", str(out), "--where", "hidden=32"]) == 0
    listing = capsys.readouterr().out
    assert "(6 runs)" in listing and "[32]" not in listing  # hidden does not vary within the subset
    export = tmp_path / "runs.jsonl"
    assert main(["runs", "export", str(out), "--format", "jsonl", "--output", str(export)]) == 0
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(rows) == 12 and {"hash", "status", "hidden", "lr", "activations", "final_test_acc"} <= set(rows[0])
    assert main(["runs", "export", str(out), "--format", "csv", "--where", "activations=tanh"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 6
    nested = tmp_path / "exports" / "new" / "runs.csv"  # a folder that does not exist yet is made
    assert main(["runs", "export", str(out), "--output", str(nested)]) == 0 and len(nested.read_text().splitlines()) == 13
    capsys.readouterr()
    link = tmp_path / "latest.csv"  # a link (like /dev/stdout) is written through, never replaced by a file
    link.symlink_to(nested)
    assert main(["runs", "export", str(out), "--format", "jsonl", "--output", str(link)]) == 0
    assert link.is_symlink() and len(nested.read_text().splitlines()) == 12
    assert main(["runs", "export", str(out), "--output", str(export / "runs.csv")]) == 1  # under a file
    err = capsys.readouterr().err
    assert err.startswith("actlab: error: cannot create the folder ") and len(err.splitlines()) == 1, err
    assert main(["report", str(out), "--where", "hidden=32"]) == 0
    md = (out / "report-hidden=32" / "report.md").read_text()
    assert "Over 3 seeds" in md and "| `relu` | 3/3 |" in md
    assert main(["runs", "show", str(out), rows[0]["hash"][:8]]) == 0
    assert '"status": "done"' in capsys.readouterr().out


def test_ray_backend_gives_the_metrics_of_the_local_backend(tmp_path, data_dir, capsys):
    pytest.importorskip("ray", reason="Ray is installed by .ci/run (pip install -e '.[test,ray]')")
    path = tmp_path / "small.toml"
    path.write_text('[experiment]\nhidden = [16]\nepochs = 1\ntrain_subset = 1000\ntest_subset = 300\n'
                    '[sweep]\nactivation = ["relu", "tanh"]\nseed = [0, 1]\nlr = [0.001, 0.01]\n')
    common = ["run", "--config", str(path), "--data-dir", str(data_dir), "--threads", "1", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    assert main([*common, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    local, ray_runs = _store_rows(tmp_path / "local"), _store_rows(tmp_path / "ray")
    assert len(local[0]) == 8 and sorted(local[0]) == sorted(ray_runs[0])
    assert sorted(local[1]) == sorted(ray_runs[1])


def test_unreachable_ray_address_is_one_clear_line(tmp_path, data_dir, capsys):
    pytest.importorskip("ray", reason="Ray is installed by .ci/run")
    path = tmp_path / "small.toml"
    path.write_text('[experiment]\nepochs = 1\ntrain_subset = 500\n[sweep]\nseed = [0, 1]\n')
    code = main(["run", "--config", str(path), "--data-dir", str(data_dir), "--out", str(tmp_path / "x"),
                 "--backend", "ray", "--ray-address", "ray://127.0.0.1:9", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "nothing answers there" in err and "Traceback" not in err


def test_a_per_activation_init_table_sweeps_by_activation(tmp_path):
    """Each run keeps its own activation's scheme; other activations' entries do not touch its hash."""
    config = resolve_config(preset="mnist-selu-snn", env={})
    runs = expand(config, {"activation": ["relu", "selu"], "seed": [0]})
    from actlab.sweep import _single

    assert [_single(r.flat, r)["init"] for r in runs] == ["default", "lecun_normal"]
    other = resolve_config(preset="mnist-selu-snn", overrides={"init": {"selu": "orthogonal"}}, env={})
    again = expand(other, {"activation": ["relu", "selu"], "seed": [0]})
    assert again[0].hash == runs[0].hash and again[1].hash != runs[1].hash
    ci = resolve_config(preset="mnist-selu-snn", overrides={"ci": "bootstrap"}, env={})
    assert [r.hash for r in expand(ci, {"activation": ["relu", "selu"], "seed": [0]})] == [r.hash for r in runs]


def test_a_stacked_sweep_trains_each_grid_point_as_one_stack_with_the_same_numbers(tmp_path, data_dir, capsys,
                                                                                   monkeypatch):
    import actlab.sweep

    sizes = []
    real = actlab.sweep.run_tasks
    monkeypatch.setattr(actlab.sweep, "run_tasks", lambda tasks, *a, **k: (sizes.append(
        sorted(len(t.records) for t in tasks)), real(tasks, *a, **k))[1])
    path = tmp_path / "small.toml"
    path.write_text('[experiment]\nhidden = [16]\nepochs = 2\ntrain_subset = 1000\ntest_subset = 300\n'
                    '[sweep]\nactivation = ["relu", "tanh", "rrelu"]\nseed = [0, 1]\nlr = [0.001, 0.01]\n')
    common = ["run", "--config", str(path), "--data-dir", str(data_dir), "--threads", "1", "--workers", "2"]
    assert main([*common, "--out", str(tmp_path / "single"), "--quiet"]) == 0
    assert main([*common, "--out", str(tmp_path / "stacked"), "--stack", "true"]) == 0
    err = capsys.readouterr().err
    assert "the first 2 runs took" in err and "min for the 10 left" in err
    # each lr's relu and tanh runs, of both seeds, stack; rrelu draws random numbers, so it trains alone
    assert sizes == [[1] * 12, [1, 1, 1, 1, 4, 4]]
    single, stacked = _store_rows(tmp_path / "single"), _store_rows(tmp_path / "stacked")
    assert sorted(h for h, *_ in single[0]) == sorted(h for h, *_ in stacked[0])  # the same 12 runs
    by_key = {(h, e): (loss, acc) for h, e, loss, acc, _ in single[1]}
    for h, e, loss, acc, _ in stacked[1]:
        assert loss == pytest.approx(by_key[h, e][0], rel=5e-4) and abs(acc - by_key[h, e][1]) <= 0.01, (h, e)


def test_store_rows_read_a_key_written_only_when_changed_at_its_default(tmp_path):
    """Runs of the default model family carry no `model` key; `--where model=mlp` still finds them."""
    from actlab.store import Store

    with Store(tmp_path) as store:
        store.add_pending([("h1", 0, {"lr": 0.001, "activations": ["relu"]}, "relu", "relu", "logits", 0)])
        assert [r["hash"] for r in store.rows({"model": "mlp"})] == ["h1"]
        assert store.rows({"model": "toy"}) == []


def test_a_sweep_with_an_activation_from_main_refuses_ray_in_one_line(tmp_path):
    from actlab.errors import ActlabError
    from actlab.sweep import SweepRun, _run_on_ray

    run = SweepRun("h", 0, {}, "__main__:Swish", "__main__:Swish", "logits", 0)
    with pytest.raises(ActlabError, match=r"defined in __main__ .* Ray's workers cannot import"):
        _run_on_ray([run], {}, None, None, False, None)
