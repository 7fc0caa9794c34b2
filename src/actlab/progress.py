"""actlab's progress bars (tqdm's, without tqdm's monitor thread) and its lines on the console.

tqdm starts a monitor thread with its first bar (a disabled one included) and keeps it after the
last bar closes. actlab refreshes its bars itself, and a second thread would stop a run from
forking its worker processes and its second report process (`actlab.forks`).

The lines a run prints (its plan, one per finished model) go through the `actlab` logger: a caller
that gave that logger handlers gets them there; otherwise actlab adds one console handler, on
stderr, or in a notebook on stdout (stderr shows as a red warning there).
"""

from __future__ import annotations

import functools
import logging
import sys

LOGGER = logging.getLogger("actlab")


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


class ConsoleHandler(logging.Handler):
    """The lines on the console: the stream of the moment (a notebook's stdout, the terminal's or a
    test's captured stderr), written and flushed as `print` would, a closed pipe raising as it does."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stdout if in_kernel() else sys.stderr
        stream.write(record.getMessage() + "\n")
        stream.flush()


def log_line(line: str) -> None:
    """One line through the `actlab` logger, with actlab's console handler unless the caller gave
    that logger handlers of its own (then the lines go there, and nowhere else)."""
    if not LOGGER.handlers:
        LOGGER.addHandler(ConsoleHandler())
        LOGGER.propagate = False  # a root handler the caller set would print every line a second time
    if LOGGER.level == logging.NOTSET:  # a level the caller set stays theirs
        LOGGER.setLevel(logging.INFO)
    LOGGER.info(line)
