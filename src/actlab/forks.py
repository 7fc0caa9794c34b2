"""When actlab may fork a process of its own: the one rule, shared by the worker pool
(`actlab.workers`) and the report's second drawing process (`actlab.plots`).

A fork copies only the thread that calls it. Another Python thread (a notebook kernel's, a
server's, tqdm's monitor) may hold a lock at that moment, and the child would wait on it forever,
so actlab forks only on Linux (macOS system libraries do not survive a fork) and only from a
process whose one Python thread is the caller. torch's idle intra-op threads are not Python
threads; a child that must not start an OpenMP thread team sets one torch thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
import warnings


def fork_is_safe() -> bool:
    """True on Linux in a process whose only Python thread is this one."""
    return (sys.platform.startswith("linux") and threading.active_count() == 1
            and "fork" in multiprocessing.get_all_start_methods())


@contextlib.contextmanager
def fork_warning_silenced():
    """Python 3.12+ warns about fork in a process with threads: with one Python thread, those are
    torch's idle intra-op threads, which a child that keeps to one torch thread never uses."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
        yield
