"""A run's plan: its size checked before anything is allocated, stated in one line, and a command
that stays responsive to Ctrl-C and SIGTERM while it plans; output a terminal cannot encode degrades."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import actlab
from actlab import plan
from actlab.cli import _print_results, can_show
from actlab.errors import ActlabError
from actlab.results import load_results
from conftest import quick_flags

CPU = torch.device("cpu")


def test_product_names_what_multiplies():
    config = actlab.resolve_config(overrides={"activations": "relu,tanh,elu", "seeds": 2})
    assert plan.product(config) == (6, "2 seeds × 3 activations")
    assert plan.product(config, {"lr": [0.1, 0.2], "seed": [0, 1, 2, 3]}) == (24, "4 seeds × 3 activations × 2 grid points")
    heads = actlab.resolve_config(overrides={"output": "logits,softmax"})
    assert plan.product(heads) == (2, "1 seed × 2 output heads")


def test_estimate_grows_with_the_work():
    small = actlab.resolve_config(overrides={"epochs": 1, "train_subset": 1000})
    large = actlab.resolve_config(overrides={"epochs": 10})
    assert 0 < plan.estimate_seconds(small, 1, CPU) < plan.estimate_seconds(large, 1, CPU)
    assert plan.estimate_seconds(large, 1000, CPU) > 100 * plan.estimate_seconds(large, 1, CPU)


def test_a_million_seeds_is_refused_naming_the_product():
    config = actlab.resolve_config(preset="mnist-classic-four", overrides={"seeds": 1_000_000, "epochs": 1,
                                                                           "train_subset": 3000})
    with pytest.raises(ActlabError, match=r"^1,000,000 seeds × 4 activations = 4,000,000 models, about [\d,.e+]+ "
                                          r"days on this machine.*; give fewer seeds$"):
        plan.check_size(config, CPU)
    assert plan.check_size(actlab.resolve_config(preset="mnist-classic-four"), CPU) < plan.MAX_SECONDS


def test_more_seeds_than_any_plan_is_a_config_error():
    with pytest.raises(ActlabError, match="seeds = 2000000 .*at most 1,000,000 seeds"):
        actlab.resolve_config(overrides={"seeds": "2000000"})


def test_duration_reads_like_speech():
    assert [plan.duration(s) for s in (0.2, 40, 720, 12600, 10 * 86400)] == ["1 s", "40 s", "12 min", "3.5 h", "10 days"]


def _actlab(args: list[str], data_dir, **popen) -> subprocess.Popen:
    code = ("import sys; from actlab.cli import main; from actlab.workers import resident_peak_mb; "
            "code = main(sys.argv[1:]); print('peak_mb', resident_peak_mb()); sys.exit(code)")  # VmHWM: reset at exec
    env = {**os.environ, "ACTLAB_DATA_DIR": str(data_dir), **popen.pop("env", {})}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen)


@pytest.mark.slow
def test_million_seeds_end_in_one_line_within_seconds_and_little_memory(data_dir, tmp_path):
    start = time.monotonic()
    proc = _actlab(["run", "--preset", "mnist-classic-four", "--epochs", "1", "--train-subset", "3000",
                    "--seeds", "1000000", "--out", str(tmp_path / "big")], data_dir)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert time.monotonic() - start < 15  # a few seconds, most of them importing torch
    assert err.count("\n") == 1 and "4,000,000 models" in err and "give fewer seeds" in err, err
    assert float(out.split("peak_mb")[1]) < 1000
    assert not (tmp_path / "big").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_a_long_plan_is_built_ends_it_within_two_seconds(data_dir, tmp_path, signum, code):
    """80,000 models: accepted (about two days), and seconds of planning before the first trains."""
    proc = _actlab(["run", "--preset", "mnist-classic-four", "--epochs", "1", "--train-subset", "3000",
                    "--seeds", "20000", "--out", str(tmp_path / "long")], data_dir)
    first = proc.stderr.readline()
    assert first.startswith("plan: 20,000 seeds × 4 activations = 80,000 models"), first
    time.sleep(0.5)  # into the planning of 80,000 records
    proc.send_signal(signum)
    sent = time.monotonic()
    proc.wait(timeout=30)
    assert time.monotonic() - sent < 2
    assert proc.returncode == code, proc.stderr.read()


def test_a_run_states_its_plan_first(data_dir, tmp_path):
    lines = []
    config = actlab.resolve_config(overrides={"data_dir": str(data_dir), "out": str(tmp_path / "r"), "epochs": 1,
                                              "train_subset": 500, "test_subset": 500, "hidden": [16],
                                              "activations": "relu,tanh", "workers": 1, "checkpoints": False})
    actlab.run(config, show_progress=False, log=lines.append)
    assert lines[0].startswith("plan: 1 seed × 2 activations = 2 models, in this process on cpu, hand-written "
                               "backward pass; about "), lines[0]
    logged = (tmp_path / "r" / "run.log").read_text(encoding="utf-8").splitlines()
    assert [line[20:] for line in logged] == lines and re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", logged[0])


class _AsciiStream(io.TextIOWrapper):
    def __init__(self):
        super().__init__(io.BytesIO(), encoding="ascii")

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("ascii")


def test_a_stream_that_cannot_encode_chinese_gets_the_english_table(data_dir, tmp_path, monkeypatch):
    from actlab.cli import main

    assert main(["run", *quick_flags(data_dir, tmp_path / "zh", epochs="1"), "--lang", "zh"]) == 0
    stream = _AsciiStream()
    assert not can_show(stream, "中文")
    monkeypatch.setattr(sys, "stdout", stream)
    assert _print_results(load_results(tmp_path / "zh"), "zh") == 0
    text = stream.text()
    assert "cannot show zh" in text and "PYTHONIOENCODING=utf-8" in text and "relu" in text
    assert "report.zh.html" in text
    assert "：" in (tmp_path / "zh" / "report.zh.md").read_text(encoding="utf-8")  # the files stay UTF-8


@pytest.mark.slow
def test_an_ascii_terminal_with_lang_zh_exits_0(data_dir, tmp_path):
    env = {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""}
    proc = _actlab(["run", *quick_flags(data_dir, tmp_path / "c", epochs="1"), "--lang", "zh"], data_dir, env=env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "relu" in out and "cannot show zh" in out
