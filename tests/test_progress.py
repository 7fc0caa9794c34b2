"""actlab's progress bars start no thread (a thread would keep a run from forking)."""

from __future__ import annotations

import io
import threading

from actlab.progress import bar_class


def test_progress_bars_start_no_thread():
    before = set(threading.enumerate())
    for disable in (True, False):
        bar = bar_class()(total=3, disable=disable, file=io.StringIO())
        bar.update(2)
        bar.close()
    assert set(threading.enumerate()) == before
    assert bar_class().monitor is None


def test_a_runs_lines_go_through_the_actlab_logger_to_a_handler_the_caller_set(data_dir, tmp_path, capsys):
    """A script or notebook that configured logging gets the plan and the per-model lines in its own
    handler, once each, and actlab prints nothing of its own beside them."""
    import logging

    import actlab
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger = logging.getLogger("actlab")
    saved, logger.handlers = logger.handlers, [Keep()]  # the caller's handler alone (an earlier run added actlab's)
    try:
        config = actlab.resolve_config(overrides={"data_dir": str(data_dir), "out": str(tmp_path / "run"),
                                                  "activations": "relu,tanh", "hidden": "16", "epochs": 1,
                                                  "train_subset": 1000, "test_subset": 500, "workers": 1})
        actlab.run(config, show_progress=False)
    finally:
        logger.handlers = saved
    assert seen[0].startswith("plan: 1 seed × 2 activations")
    assert sum(line.startswith(("relu seed 0: ok", "tanh seed 0: ok")) for line in seen) == 2
    assert "plan:" not in capsys.readouterr().err  # no second copy on the console
    assert "relu seed 0: ok" in (tmp_path / "run" / "run.log").read_text()  # and run.log has them too
