"""How worker processes start: forked where that is safe, spawned elsewhere."""

from __future__ import annotations

import gc
import sys
import threading
import weakref

import pytest
import torch

from actlab.config import Config
from actlab.results import ModelRun
from actlab.workers import Task, objects_frozen, start_method


def tasks_on(device: str) -> list[Task]:
    record = ModelRun("relu", "relu", "logits", 0)
    return [Task((0,), (record,), Config(), "data", device)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is chosen on Linux only")
def test_single_threaded_cpu_workers_are_forked_on_linux(monkeypatch):
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # as in `actlab run` (Ray tests leave threads here)
    assert start_method(tasks_on("cpu"), threads=1) == "fork"


def test_a_process_with_other_python_threads_spawns():
    """A notebook kernel's threads, say: one may hold a lock a forked worker would wait on."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert start_method(tasks_on("cpu"), threads=1) == "spawn"
    finally:
        stop.set()
        thread.join()


def test_workers_that_may_run_openmp_threads_or_use_a_gpu_are_spawned():
    assert start_method(tasks_on("cpu"), threads=2) == "spawn"  # an OpenMP team does not survive fork
    assert start_method(tasks_on("cuda"), threads=1) == "spawn"  # nor does a CUDA context
    assert start_method(tasks_on("cpu") + tasks_on("cuda"), threads=1) == "spawn"


def test_a_process_that_has_touched_cuda_spawns(monkeypatch):
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert start_method(tasks_on("cpu"), threads=1) == "spawn"


class Node:
    """An object that can sit in a reference cycle and be watched through a weak reference."""


def test_objects_alive_when_the_block_starts_stay_out_of_collections_until_it_ends():
    old = Node()
    old.me = old  # a cycle: only the collector frees it
    old_ref = weakref.ref(old)
    with objects_frozen():
        assert gc.get_freeze_count() > 0
        new = Node()
        new.me = new
        new_ref = weakref.ref(new)
        del old, new
        gc.collect()
        assert old_ref() is not None  # frozen with the block's start
        assert new_ref() is None  # garbage made inside the block is collected as ever
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert old_ref() is None


def test_a_process_that_freezes_objects_itself_keeps_its_freeze():
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        with objects_frozen():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_process_that_merely_imported_ipykernel_is_no_notebook(capsys):
    """The per-model lines go to stderr outside a kernel, even where ipykernel is imported (a harness)."""
    pytest.importorskip("ipykernel")
    import ipykernel  # noqa: F401

    from actlab.progress import in_kernel
    from actlab.workers import default_log

    assert not in_kernel()
    default_log("relu seed 0: ok")
    out, err = capsys.readouterr()
    assert err == "relu seed 0: ok\n" and out == ""


def test_a_notebook_kernel_is_known_by_its_shell_colab_s_too(monkeypatch):
    import types

    from actlab.progress import in_kernel

    class Shell:  # Colab's shell subclasses Jupyter's; both carry the kernel they run in
        kernel = object()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: Shell()))
    assert in_kernel()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not in_kernel()
