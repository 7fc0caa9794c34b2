"""The `actlab` command, called as `main([...])`: outputs on real data, and one-line errors."""

from __future__ import annotations

import csv
import json
import re

import pytest

import actlab.workers
from actlab.cli import main
from actlab.config import CNN_KEYS, KEYS, Config, resolve_config, tomllib
from actlab.results import METRIC_COLUMNS, SUMMARY_COLUMNS, load_results
from conftest import quick_flags


def run_cli(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("actlab: error: ")
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]


def test_run_writes_the_documented_run_folder(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, ["run", "--preset", "mnist-classic-four", "--seeds", "2",
                                       *quick_flags(data_dir, out, val_split="500")])
    assert code == 0
    assert "relu" in stdout and "tanh" in stdout and f"run folder: {out}" in stdout
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == METRIC_COLUMNS
    assert len(rows) == 2 * 2 * 2  # activations × seeds × epochs
    assert {(r["activation"], r["seed"], r["epoch"]) for r in rows} == {
        (a, s, e) for a in ("relu", "tanh") for s in ("0", "1") for e in ("1", "2")}
    assert all(0 <= float(r["test_acc"]) <= 1 and float(r["train_loss"]) > 0 for r in rows)
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert tuple(summary[0]) == SUMMARY_COLUMNS and len(summary) == 4
    assert all(r["status"] == "ok" and r["best_epoch"] in ("1", "2") for r in summary)
    results = json.loads((out / "results.json").read_text())
    assert results["environment"]["seeds"] == [0, 1] and results["environment"]["torch"]
    assert results["environment"]["device"] == "cpu"
    config = tomllib.loads((out / "config.toml").read_text())["experiment"]
    assert config["hidden"] == [32] and config["name"] == "mnist-classic-four"
    for plot in ("train_loss", "test_loss", "test_acc", "val_acc", "val_loss"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 1000
    assert len(list((out / "checkpoints").glob("*.pt"))) == 4
    # `actlab show` reprints the same table
    code, shown, _ = run_cli(capsys, ["show", str(out)])
    assert code == 0 and load_results(out).table() in shown


def test_resolved_config_reruns_to_the_same_numbers(tmp_path, data_dir, capsys):
    first = tmp_path / "first"
    assert main(["run", *quick_flags(data_dir, first, activations="elu")]) == 0
    second = tmp_path / "second"
    assert main(["run", "--config", str(first / "config.toml"), "--out", str(second), "--quiet"]) == 0
    strip = lambda path: [{k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
                          for r in csv.DictReader(open(path / "metrics.csv"))]
    assert strip(first) == strip(second)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_give_the_same_numbers_as_one_process(tmp_path, data_dir, monkeypatch, method):
    """Forked (the default on a Linux CPU) or spawned, workers train what one process trains."""
    monkeypatch.setattr(actlab.workers, "start_method", lambda tasks, threads: method)

    def metrics(path):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path / "metrics.csv"))]

    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", *quick_flags(data_dir, one, seeds="2", threads="1")]) == 0
    assert main(["run", *quick_flags(data_dir, two, seeds="2", threads="1", workers="2")]) == 0
    assert metrics(one) == metrics(two)
    assert json.loads((two / "environment.json").read_text())["workers"] == 2
    assert len(list((two / "checkpoints").glob("*.pt"))) == 4


def test_a_run_where_every_model_diverges_ends_in_one_error_line(tmp_path, data_dir, capsys):
    """Its table and files are written (the divergence is measured), but a run that compares
    nothing is a failure: exit 1 and one line saying what to change."""
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, ["run", *quick_flags(data_dir, out, lr="1e4", optimizer="adam",
                                                             activations="relu,sigmoid")])
    assert_one_line_error(code, err, r"every model diverged .*epoch 1.*Lower the learning rate \(lr = 10000\)")
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert len(summary) == 2
    assert all(r["status"].startswith("diverged@epoch ") for r in summary)
    assert "diverged@epoch" in stdout and (out / "report.md").is_file()


def test_interrupted_run_keeps_finished_models(tmp_path, data_dir, monkeypatch, capsys):
    import actlab.train as train

    real = train.evaluate
    calls = []

    def interrupt_third_evaluation(*args, **kwargs):  # relu: epochs 1 and 2; tanh: Ctrl-C in epoch 1
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", interrupt_third_evaluation)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, ["run", *quick_flags(data_dir, out)])
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["activation"], r["status"]) for r in summary] == [("relu", "ok"), ("tanh", "pending")]
    assert float(summary[0]["final_test_acc"]) > 0.5
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [(r["activation"], r["epoch"]) for r in rows] == [("relu", "1"), ("relu", "2")]
    assert json.loads((out / "results.json").read_text())["runs"][1]["status"] == "pending"  # not saved: a resume trains it
    assert not list(out.glob(".*.tmp")), "no half-written files left behind"


@pytest.mark.parametrize("argv, pattern", [
    (["run", "--activations", "relu,sigmod"], r"unknown activation 'sigmod'; did you mean 'sigmoid'"),
    (["run", "--preset", "mnist-classic"], r"unknown preset 'mnist-classic'; did you mean 'mnist-classic-four'"),
    (["run", "--epochs", "0"], r"epochs = 0 \(--epochs\): must be an integer ≥ 1"),
    (["run", "--hidden", "-3"], r"hidden = \[-3\] \(--hidden\)"),
    (["run", "--data-dir", "/nonexistent/data"], r"data folder /nonexistent/data does not exist"),
    (["run", "--lr", "fast"], r"lr = 'fast' \(--lr\): must be a number"),
    (["run", "--bogus", "1"], r"unrecognized arguments: --bogus"),
    (["show", "/nonexistent/run"], r"not an actlab run folder"),
    (["plot-activations", "relu,tanhh"], r"unknown activation 'tanhh'"),
    (["plot-activations", "relu", "--range=0,1e39"], r"--range '0,1e39': give numbers within ±1e\+30"),
    (["plot-activations", "relu", "--range=-inf,inf"], r"--range '-inf,inf': give numbers within"),
    (["plot-activations", ""], r"name at least one activation"),
])
def test_bad_input_is_one_clear_line(argv, pattern, capsys):
    code, _, err = run_cli(capsys, argv)
    assert_one_line_error(code, err, pattern)


def test_run_help_shows_the_field_default_of_every_experiment_flag(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside a default (textwrap breaks at hyphens)
    code, out, _ = run_cli(capsys, ["run", "--help"])
    assert code == 0
    helps: dict[str, str] = {}
    flag = None
    for line in out.splitlines():  # one entry per flag, its continuation lines joined
        if line.startswith("  -"):
            flag = line.split()[0]
            helps[flag] = line
        elif flag and line.startswith("    "):
            helps[flag] += " " + line.strip()
        else:
            flag = None
    shown = {}
    for key in KEYS:
        text = " ".join(helps["--" + key.replace("_", "-")].split())
        match = re.search(r"\(default: ([^()]+)\)$", text)
        assert match, text
        shown[key] = match.group(1)
    assert [shown[k] for k in ("lr", "batch_size", "epochs", "hidden", "activations", "seed", "seeds")] == [
        "0.001", "64", "10", "128,128", "relu", "0", "1"]
    assert [shown[k] for k in ("stack", "val_split", "nesterov", "output")] == ["auto", "0", "false", "logits"]
    assert shown["data_dir"].startswith("$ACTLAB_DATA_DIR") and shown["out"].startswith("runs/<name>-<timestamp>")
    assert shown["data_mirror"].startswith("$ACTLAB_DATA_MIRROR")
    cnn = resolve_config(overrides={"model": "cnn"}, env={})
    for key, text in shown.items():  # each default shown, given back as its flag, gives the default config
        if key in CNN_KEYS:  # the cnn's own keys are refused with another family, even at their defaults
            assert resolve_config(overrides={key: text, "model": "cnn"}, env={}) == cnn, key
        elif not KEYS[key].unset:  # a default of None is shown as what it means
            assert resolve_config(overrides={key: text}, env={}) == Config(), key


def test_truncated_gz_is_one_clear_line(mnist_copy, tmp_path, capsys):
    path = mnist_copy / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100000])
    code, _, err = run_cli(capsys, ["run", "--data-dir", str(mnist_copy.parent), "--out", str(tmp_path / "r")])
    assert_one_line_error(code, err, r"train-images-idx3-ubyte.gz.*truncated or corrupt.*actlab data fetch")
    assert not (tmp_path / "r").exists()


def test_a_finished_run_folder_is_resumed_not_overwritten(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    flags = quick_flags(data_dir, out, activations="relu", epochs="1")
    assert main(["run", *flags]) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    code, _, err = run_cli(capsys, ["run", *flags[:-1]])  # the same command, without --quiet: its log shows
    assert code == 0 and "1 of 1 models are already trained, 0 to train" in err and ": ok, test acc" not in err
    assert json.loads((out / "results.json").read_text())["runs"] == runs  # nothing retrained
    first = json.loads((out / "environment.json").read_text())["earlier"]
    assert len(first) == 1 and first[0]["workers"] >= 1 and "earlier" not in first[0]  # how the kept model trained
    assert main(["run", *flags]) == 0
    environment = json.loads((out / "environment.json").read_text())
    assert environment["earlier"][0] == first[0] and len(environment["earlier"]) == 2 and environment["resumed"] == 1
    assert json.loads((out / "results.json").read_text())["environment"] == environment
    before = (out / "results.json").read_bytes()
    code, _, err = run_cli(capsys, ["run", *quick_flags(data_dir, out, activations="relu", epochs="2")])
    assert_one_line_error(code, err, r"holds a run of another experiment \(epochs = 1 there, 2 now\)")
    assert (out / "results.json").read_bytes() == before


@pytest.mark.parametrize("value", ['"high"', "NaN", "true"])
def test_a_hand_edited_value_in_results_json_is_one_line_everywhere(tmp_path, data_dir, capsys, value):
    """show, report and a resume each name the file and the value, instead of failing in a table
    or a statistic; a resume's message says what works, since rerunning into the folder cannot."""
    out = tmp_path / "run"
    flags = quick_flags(data_dir, out, activations="relu", epochs="1")
    assert main(["run", *flags]) == 0
    path = out / "results.json"
    path.write_text(re.sub(r'"test_acc": [0-9.]+', f'"test_acc": {value}', path.read_text(), count=1))
    for command in (["show", str(out)], ["report", str(out)]):
        code, _, err = run_cli(capsys, command)
        assert_one_line_error(code, err, rf"results.json is damaged \(run 'relu' seed 0: epochs\[0\].test_acc = ")
    code, _, err = run_cli(capsys, ["run", *flags])
    assert_one_line_error(code, err, r"results.json is damaged .*cannot be resumed: restore the file, or give a new --out")


def test_a_data_folder_missing_one_file_names_it(mnist_copy, tmp_path, capsys):
    (mnist_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    code, _, err = run_cli(capsys, ["run", "--data-dir", str(mnist_copy.parent), "--download", "false",
                                    "--out", str(tmp_path / "r")])
    assert_one_line_error(code, err, r"lacks t10k-labels-idx1-ubyte.gz\)")
    assert "train-images" not in err.split("lacks")[1]


def test_listing_commands(capsys, data_dir, tmp_path):
    code, out, _ = run_cli(capsys, ["presets"])
    assert code == 0 and all(name in out for name in
                             ("fashion-relu-family", "mnist-relu-vs-linear", "mnist-classic-four", "mnist-output-activation"))
    code, out, _ = run_cli(capsys, ["activations"])
    assert code == 0 and "leaky_relu:negative_slope" in out and "swish=silu" in out
    code, out, _ = run_cli(capsys, ["data", "info", "mnist", "--data-dir", str(data_dir)])
    assert code == 0 and "60000 train / 10000 test" in out and "0.1307" in out
    code, out, _ = run_cli(capsys, ["data", "verify", "fashion-mnist", "--data-dir", str(data_dir)])
    assert code == 0 and out.count("ok  ") == 4
    png = tmp_path / "acts.png"
    code, out, _ = run_cli(capsys, ["plot-activations", "sigmoid,tanh,relu", "--out", str(png)])
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_recipe_with_every_key_runs_end_to_end(tmp_path, data_dir, capsys):
    from test_config import RECIPE

    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE)
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, ["run", "--config", str(path), "--data-dir", str(data_dir), "--out", str(out),
                                         "--workers", "1", "--quiet"])
    assert code == 0, err
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["activation"] for r in summary] == ["selu", "relu+tanh+prelu:per_unit+swish_beta",
                                                  "expr:x*sigmoid(1.702*x)"] * 2
    assert all(r["status"] in ("ok", "failed_to_learn") and r["stopped_epoch"] for r in summary)
    norm = json.loads((out / "normalization.json").read_text())
    assert norm["normalize"] == "global" and set(norm["seeds"]) == {"0", "1"}
    diag = (out / "diagnostics.csv").read_text()
    assert "relu+tanh+prelu:per_unit+swish_beta,0,epoch_1,hidden3,param_weight," in diag
    assert "relu+tanh+prelu:per_unit+swish_beta,0,epoch_1,hidden4,param_beta," in diag
    assert tomllib.loads((out / "config.toml").read_text())["experiment"]["normalize"] == "global"
    report = (out / "report.md").read_text()
    assert "## Analysis" in report and "learned parameters (init → final" in report
    assert "weight 0.250 → " in report and "beta 1.000 → " in report


def test_tensorboard_event_files_read_back_with_the_expected_tags(tmp_path, data_dir, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["run", *quick_flags(data_dir, out, tensorboard=None, val_split="500", workers="2",
                                     hidden="32,16")]) == 0
    runs = sorted(p.name for p in (out / "tensorboard").iterdir())
    assert runs == ["relu-seed0", "tanh-seed0"]
    events = EventAccumulator(str(out / "tensorboard" / "tanh-seed0"), size_guidance={"histograms": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/train", "acc/train", "loss/val", "acc/val", "loss/test", "acc/test",
            "time/epoch_seconds"} <= set(tags["scalars"])
    assert set(tags["histograms"]) == {"activations/hidden1", "activations/hidden2", "weight_grad/linear1",
                                       "weight_grad/linear2", "weight_grad/linear3"}
    test_acc = [e.value for e in events.Scalars("acc/test")]
    metrics = [r for r in csv.DictReader(open(out / "metrics.csv")) if r["activation"] == "tanh"]
    assert test_acc == pytest.approx([float(r["test_acc"]) for r in metrics])
    assert [e.step for e in events.Histograms("activations/hidden1")] == [1, 2]
    from tensorboard.plugins.hparams import plugin_data_pb2

    (content,) = [c for tag, c in events.PluginTagToContent("hparams").items() if "session_start" in tag]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["activation"].string_value == "tanh" and start.hparams["lr"].number_value == 0.001


def test_a_sweep_writes_tensorboard_files_per_grid_point_with_their_hparams(tmp_path, data_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = tmp_path / "sweep"
    assert main(["run", *quick_flags(data_dir, out, tensorboard=None, epochs="1", activations="relu"),
                 "--sweep", "lr=0.001;0.01"]) == 0
    points = sorted((out / "tensorboard").iterdir())
    assert len(points) == 2 and all(p.name.startswith("point-") for p in points)
    lrs = set()
    for point in points:
        assert [p.name for p in point.iterdir()] == ["relu-seed0"]
        events = EventAccumulator(str(point / "relu-seed0"))
        events.Reload()
        assert "acc/test" in events.Tags()["scalars"]
        (content,) = [c for tag, c in events.PluginTagToContent("hparams").items() if "session_start" in tag]
        lrs.add(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams["lr"].number_value)
    assert lrs == {0.001, 0.01}  # the HParams tab tells the grid points apart


def test_tensorboard_without_its_package_is_one_line_before_the_run_folder(tmp_path, data_dir, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    code, _, err = run_cli(capsys, ["run", *quick_flags(data_dir, tmp_path / "run", tensorboard=None)])
    assert_one_line_error(code, err, r"--tensorboard needs the tensorboard package: pip install tensorboard")
    assert not (tmp_path / "run").exists()


def test_a_script_without_a_main_guard_can_use_worker_processes(tmp_path, data_dir):
    """Spawned workers must not rerun the user's script (it would start the experiment again)."""
    import subprocess
    import sys

    script = tmp_path / "experiment.py"
    script.write_text(f"""import actlab
config = actlab.resolve_config(overrides={{"activations": "relu,tanh", "hidden": "16", "epochs": 1,
    "train_subset": 1000, "test_subset": 300, "workers": 2, "data_dir": {str(data_dir)!r},
    "out": {str(tmp_path / 'run')!r}}})
results = actlab.run(config, show_progress=True, log=lambda line: None)
print("finished", len(results.runs))
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "finished 2"
    assert json.loads((tmp_path / "run" / "environment.json").read_text())["workers"] == 2


def test_a_run_with_the_data_folder_from_the_environment_does_not_write_it(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("ACTLAB_DATA_DIR", str(data_dir))
    flags = quick_flags(data_dir, tmp_path / "run", epochs="1")
    flags = flags[:flags.index("--data-dir")] + flags[flags.index("--data-dir") + 2:]
    code, _, _ = run_cli(capsys, ["run", *flags])
    assert code == 0
    assert str(data_dir) not in (tmp_path / "run" / "config.toml").read_text(encoding="utf-8")
    assert "data_dir" not in json.loads((tmp_path / "run" / "results.json").read_text())["config"]


def test_a_chinese_run_speaks_chinese_on_the_terminal(tmp_path, data_dir, capsys):
    """The plan, the per-model lines and the summary in --lang zh: no English words beyond names and code."""
    out = tmp_path / "run"
    flags = [f for f in quick_flags(data_dir, out, epochs="1") if f != "--quiet"]
    assert main(["run", *flags, "--lang", "zh"]) == 0
    err = capsys.readouterr().err
    plan = next(line for line in err.splitlines() if line.startswith("计划："))
    assert "1 个种子 × 2 个激活函数 = 2 个模型" in plan and "反向传播；约" in plan
    assert "relu 种子 0：完成，测试集准确率" in err and "tanh 种子 0：完成" in err
    names = {"relu", "tanh", "cpu"}
    words = {w for line in err.splitlines() if not line.startswith(("---", "运行目录"))
             for w in re.findall(r"[A-Za-z][A-Za-z_\-]*[A-Za-z]", line)}
    assert words <= names, words - names
