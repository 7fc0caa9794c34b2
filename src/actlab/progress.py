"""actlab's progress bars: tqdm's, without tqdm's monitor thread.

tqdm starts a monitor thread with its first bar (a disabled one included) and keeps it after the
last bar closes. actlab refreshes its bars itself, and a second thread would stop a run from
forking its worker processes and its second report process (`actlab.forks`).
"""

from __future__ import annotations

import functools


@functools.cache
def bar_class():
    from tqdm.auto import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread
    return Bar
