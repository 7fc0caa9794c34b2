"""Faults a long run meets, injected for real: a worker killed, Ctrl-C and SIGTERM to the process
group, a file-size limit, absurd sizes, a bad --out. Each ends in bounded time with a non-zero
status and one line on stderr, no traceback from any process, and nothing already written lost;
a rerun of the same command resumes."""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMEOUT = 120  # seconds any faulty run may take before the test calls it a hang


def actlab(data_dir: Path, out: Path, *extra: str, workers: str = "2", epochs: str = "4") -> list[str]:
    return [sys.executable, "-m", "actlab", "run", "--data-dir", str(data_dir), "--out", str(out),
            "--train-subset", "6000", "--test-subset", "1000", "--hidden", "64", "--activations", "relu,tanh",
            "--seeds", "2", "--epochs", epochs, "--workers", workers, *extra]


def start(command: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "default"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, **kwargs)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, err


MODEL_LINE = re.compile(r"^\S+ seed \d+: ")  # the log line of one model: `relu seed 1: ok, ...` / `: lost, ...`


def error_lines(err: str) -> list[str]:
    """The lines of stderr that are not one model's log line or the run's narration."""
    return [line for line in err.splitlines() if line.strip() and not MODEL_LINE.match(line)
            and not line.startswith(("resuming ", "plan: "))]


def assert_one_line(code: int, err: str, expected_code: int | None = None) -> str:
    assert "Traceback" not in err and "Warning" not in err and "leaked" not in err, err
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("actlab: "), err
    assert code != 0 and (expected_code is None or code == expected_code), (code, err)
    return lines[0]


def wait_for_models(out: Path, count: int, process: subprocess.Popen, timeout: float = 90) -> None:
    """Until `count` models are in summary.csv with a final status."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()
        if len(finished(out)) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} models finished in {timeout} s")


def finished(out: Path) -> list[dict]:
    try:
        return [r for r in csv.DictReader(open(out / "summary.csv")) if r["status"] == "ok"]
    except (OSError, KeyError):
        return []


def children(pid: int, running: bool = False) -> list[int]:
    """The worker processes of `pid` (forked or spawned; not multiprocessing's resource tracker),
    read from /proc; with `running`, only those on a CPU now (state R: training, not waiting in the
    pipe for their next task)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"resource_tracker" not in command and (not running or fields[0] == "R"):
            out.append(int(stat.parent.name))
    return out


def busy_worker(process: subprocess.Popen, timeout: float = 30) -> int:
    """A worker of `process` that is training a model. Just after a model is saved, the worker that
    trained it may still be waiting for its next task: killing that one would lose nothing."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()
        if running := children(process.pid, running=True):
            return running[0]
        time.sleep(0.05)
    raise AssertionError(f"no worker was training within {timeout} s")


def metrics(out: Path) -> dict:
    return {(r["activation"], r["seed"], r["epoch"]): {k: v for k, v in r.items() if k != "seconds"}
            for r in csv.DictReader(open(out / "metrics.csv"))}


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory) -> Path:
    """The same run, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, err = finish(start(actlab(data_dir, out)))
    assert code == 0, err
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_process_group_stops_cleanly_and_the_same_command_resumes(
        data_dir, tmp_path, reference, sig, code):
    out = tmp_path / "run"
    command = actlab(data_dir, out)
    process = start(command)
    wait_for_models(out, 1, process)
    os.killpg(process.pid, sig)
    status, err = finish(process)
    line = assert_one_line(status, err, code)
    kept = len(finished(out))
    assert line.startswith("actlab: interrupted") and f"{kept} of 4 models are trained and saved in {out}" in line
    assert "resume with `actlab run" in line and 1 <= kept < 4
    process = start(command)  # the same command again
    status, err = finish(process)
    assert status == 0, err
    assert f"resuming {out}: {kept} of 4 models are already trained, {4 - kept} to train" in err
    trained_again = [line for line in err.splitlines() if ": ok, test acc" in line]
    assert len(trained_again) == 4 - kept  # every model trained exactly once
    assert metrics(out) == metrics(reference)
    assert json.loads((out / "environment.json").read_text())["resumed"] == kept


@pytest.mark.slow
def test_a_killed_worker_is_reported_lost_not_waited_for_and_the_rest_is_kept(data_dir, tmp_path, reference):
    out = tmp_path / "run"
    command = actlab(data_dir, out, epochs="40")
    process = start(command)
    wait_for_models(out, 1, process)
    os.kill(busy_worker(process), signal.SIGKILL)
    status, err = finish(process)
    line = assert_one_line(status, err, 1)
    assert "1 of 4 models were lost" in line and "was killed by SIGKILL" in line and "to train just the lost ones" in line
    assert re.search(r"^\S+ seed \d: lost, its worker process \(pid \d+\) was killed by SIGKILL$", err, re.M)
    statuses = [r["status"] for r in csv.DictReader(open(out / "summary.csv"))]
    assert "lost" in statuses and "ok" in statuses
    status, err = finish(start(command))  # the same command trains just the lost ones
    assert status == 0, err
    assert all(r["status"] == "ok" for r in csv.DictReader(open(out / "summary.csv")))


@pytest.mark.slow
def test_a_file_size_limit_ends_in_one_line_and_leaves_what_was_written_intact(data_dir, tmp_path):
    out = tmp_path / "run"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))  # checkpoints are larger: they fail
    status, err = finish(start(actlab(data_dir, out, workers="1", epochs="1"), preexec_fn=limit))
    line = assert_one_line(status, err, 1)
    assert line.startswith("actlab: error: cannot write ") and "ulimit -f" in line and "checkpoints" in line
    assert json.loads((out / "results.json").read_text())["config"]["epochs"] == 1  # intact
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # nothing half-written


def test_an_absurd_size_is_refused_before_allocating(data_dir, tmp_path):
    started = time.time()
    status, err = finish(start(actlab(data_dir, tmp_path / "run", "--hidden", "2000000000")))
    line = assert_one_line(status, err, 1)
    assert "hidden = [2000000000]" in line and "TB of memory" in line and "use smaller layers" in line
    assert time.time() - started < 30 and not (tmp_path / "run").exists()


def test_the_memory_check_names_what_needs_the_memory(monkeypatch):
    """The estimate blames what sets it, and a batch never holds more than the training split: a
    batch size above the split's size needs no more memory than the whole split."""
    import torch

    from actlab import plan
    from actlab.config import resolve_config
    from actlab.errors import ActlabError

    capped = resolve_config(overrides={"train_subset": 2000, "batch_size": 10 ** 9})
    assert plan.model_bytes(capped) == plan.model_bytes(resolve_config(overrides={
        "train_subset": 2000, "batch_size": 2000}))
    big_batch = resolve_config(overrides={"hidden": [16], "batch_size": 60000})
    monkeypatch.setattr(plan, "available_bytes", lambda device: plan.DATA_BYTES + 10 ** 6)
    with pytest.raises(ActlabError, match=r"batch_size = 60000 .*use a smaller --batch-size"):
        plan.check_memory(big_batch, torch.device("cpu"))
    with pytest.raises(ActlabError, match=r"hidden = \[4096, 4096\] .*use smaller layers"):
        plan.check_memory(resolve_config(overrides={"hidden": [4096, 4096]}), torch.device("cpu"))


def test_an_out_that_cannot_be_created_is_one_line(data_dir, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    line = assert_one_line(*finish(start(actlab(data_dir, blocker / "run"))), 1)
    assert line.startswith("actlab: error: cannot create the folder ") and "--out" in line, line
    assert blocker.read_text() == "mine"


def test_a_config_that_is_a_folder_or_not_utf8_is_one_line(data_dir, tmp_path):
    line = assert_one_line(*finish(start(actlab(data_dir, tmp_path / "run", "--config", str(tmp_path)))), 1)
    assert "is a folder" in line, line
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[experiment]\nname = "caf\xe9"\n')
    line = assert_one_line(*finish(start(actlab(data_dir, tmp_path / "run", "--config", str(latin)))), 1)
    assert "not UTF-8" in line and "latin.toml" in line, line
    assert not (tmp_path / "run").exists()


def without_root_override(command: list[str]) -> list[str]:
    """`command` as a user whom file permissions bind: root reads any file, so under root the
    command runs with the capabilities that let it do so dropped (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return command
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]


def test_unreadable_data_is_one_line_that_does_not_say_delete_it(mnist_copy, tmp_path):
    """A file or folder the user cannot read is a permissions problem, not a corrupt download:
    the advice must not be to delete a good file."""
    data = mnist_copy.parent
    image = mnist_copy / "t10k-images-idx3-ubyte.gz"
    image.chmod(0)
    try:
        line = assert_one_line(*finish(start(without_root_override(actlab(data, tmp_path / "a", "--download",
                                                                          "false")))), 1)
        assert "t10k-images-idx3-ubyte.gz: cannot be read (permission denied)" in line and "chmod" in line, line
        assert "delete" not in line
    finally:
        image.chmod(0o644)
    mnist_copy.chmod(0)
    try:
        line = assert_one_line(*finish(start(without_root_override(actlab(data, tmp_path / "b", "--download",
                                                                          "false")))), 1)
        assert f"data folder {mnist_copy} cannot be read (permission denied)" in line, line
    finally:
        mnist_copy.chmod(0o755)


def test_a_run_folder_or_store_the_user_cannot_write_or_read_is_one_line_with_the_right_fix(data_dir, tmp_path):
    """Reading needs read permission (chmod, not 'damaged'); a report into a read-only folder and a
    store in one say that the folder is not writable, not that the disk is full or the store broken."""
    out = tmp_path / "run"
    assert finish(start(actlab(data_dir, out, workers="1", epochs="1")))[0] == 0
    out.chmod(0o555)
    try:
        line = assert_one_line(*finish(start(without_root_override([sys.executable, "-m", "actlab", "report",
                                                                    str(out)]))), 1)
        assert "permission denied" in line and "make the folder writable" in line and "free space" not in line, line
    finally:
        out.chmod(0o755)
    (out / "results.json").chmod(0)
    try:
        line = assert_one_line(*finish(start(without_root_override([sys.executable, "-m", "actlab", "show",
                                                                    str(out)]))), 1)
        assert "results.json cannot be read (Permission denied); make it readable (chmod a+r" in line, line
    finally:
        (out / "results.json").chmod(0o644)
    from actlab.store import Store
    with Store(tmp_path / "sweep") as store:
        store.add_pending([("h1", 0, {"lr": 0.1}, "relu", "relu", "logits", 0)])
    for path in (tmp_path / "sweep").iterdir():
        path.chmod(0o444)
    (tmp_path / "sweep").chmod(0o555)
    try:
        line = assert_one_line(*finish(start(without_root_override([sys.executable, "-m", "actlab", "runs", "list",
                                                                    str(tmp_path / "sweep")]))), 1)
        assert "cannot be opened for writing" in line and "move it away" not in line, line
    finally:
        (tmp_path / "sweep").chmod(0o755)


def test_a_flag_is_taken_only_as_spelled(data_dir, tmp_path):
    """argparse would read `--epoch 2` as `--epochs 2`; a typo must not change what runs unnoticed."""
    code, err = finish(start(actlab(data_dir, tmp_path / "run", "--epoch", "2")))
    assert code == 2 and "unrecognized arguments: --epoch 2" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_sigterm_while_actlab_starts_is_one_line(data_dir, tmp_path):
    """A scheduler may stop a job at once: the signal lands while torch is still importing."""
    process = start(actlab(data_dir, tmp_path / "run"))
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    code, err = finish(process)
    assert "Traceback" not in err and code in (143, -signal.SIGTERM), (code, err)


def test_an_out_that_is_a_file_or_holds_other_things_is_one_line(data_dir, tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    line = assert_one_line(*finish(start(actlab(data_dir, file))), 1)
    assert "is a file, not a folder" in line and file.read_text() == "mine"
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_text("meow")
    line = assert_one_line(*finish(start(actlab(data_dir, folder))), 1)
    assert "already holds other files (cat.jpg) and no actlab run" in line


def test_values_beyond_the_data_are_errors_naming_the_limit(data_dir, tmp_path):
    command = actlab(data_dir, tmp_path / "run")
    command[command.index("--train-subset") + 1] = "999999999"
    line = assert_one_line(*finish(start(command)), 1)
    assert "train_subset = 999999999: MNIST's training split holds 60000 examples" in line


def test_resuming_with_other_settings_says_what_differs(data_dir, tmp_path, reference):
    command = actlab(data_dir, reference, "--lr", "0.01")
    line = assert_one_line(*finish(start(command)), 1)
    assert "holds a run of another experiment (lr = 0.001 there, 0.01 now)" in line


def test_run_folder_files_follow_the_umask(reference):
    modes = {p.name: p.stat().st_mode & 0o777 for p in reference.rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {0o666 & ~_umask()}, modes


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_workers_exit_quietly_when_their_parent_is_killed(data_dir, tmp_path):
    out = tmp_path / "run"
    process = start(actlab(data_dir, out, epochs="20"))
    wait_for_models(out, 0, process)
    deadline = time.time() + 60
    while not children(process.pid) and time.time() < deadline:
        time.sleep(0.1)
    workers = children(process.pid)
    assert workers
    time.sleep(2)  # the workers are training
    os.kill(process.pid, signal.SIGKILL)
    _, err = process.communicate(timeout=30)  # EOF once every worker has exited too
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text()
                .rsplit(")", 1)[1].split()[0]]


def test_an_allocation_that_fails_anyway_is_one_line(data_dir, tmp_path):
    """A size that passes the estimate but not the process's address-space limit (as on a machine
    whose memory other programs took): torch's allocator fails, and actlab says so in one line."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3_000_000_000, 3_000_000_000))
    command = actlab(data_dir, tmp_path / "run", "--hidden", "150000", workers="1", epochs="1")
    line = assert_one_line(*finish(start(command, preexec_fn=limit)), 1)
    assert "not enough memory to train relu seed 0 on cpu" in line and "can't allocate memory" in line
