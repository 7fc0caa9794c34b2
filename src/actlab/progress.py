"""actlab's progress bars: tqdm's, without tqdm's monitor thread.

tqdm starts a monitor thread with its first bar (a disabled one included) and keeps it after the
last bar closes. actlab refreshes its bars itself, and a second thread would stop a run from
forking its worker processes and its second report process (`actlab.forks`).
"""

from __future__ import annotations

import functools
import sys


@functools.cache
def bar_class():
    from tqdm.auto import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread
    return Bar


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel running the user's cells (ipykernel being imported
    is not enough: a test harness or a tool may import it without being one)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return getattr(shell, "kernel", None) is not None  # Jupyter's ZMQInteractiveShell, Colab's subclass of it
