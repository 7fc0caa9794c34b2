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
