"""How worker processes start: forked where that is safe, spawned elsewhere."""

from __future__ import annotations

import sys

import pytest
import torch

from actlab.results import ModelRun
from actlab.workers import Task, start_method


def tasks_on(device: str) -> list[Task]:
    record = ModelRun("relu", "relu", "logits", 0)
    return [Task((0,), (record,), {}, "data", device)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is chosen on Linux only")
def test_single_threaded_cpu_workers_are_forked_on_linux():
    assert start_method(tasks_on("cpu"), threads=1) == "fork"


def test_workers_that_may_run_openmp_threads_or_use_a_gpu_are_spawned():
    assert start_method(tasks_on("cpu"), threads=2) == "spawn"  # an OpenMP team does not survive fork
    assert start_method(tasks_on("cuda"), threads=1) == "spawn"  # nor does a CUDA context
    assert start_method(tasks_on("cpu") + tasks_on("cuda"), threads=1) == "spawn"


def test_a_process_that_has_touched_cuda_spawns(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert start_method(tasks_on("cpu"), threads=1) == "spawn"
