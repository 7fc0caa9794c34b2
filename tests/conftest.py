"""Shared fixtures: the real MNIST / Fashion-MNIST files from ../shared/datasets (or ACTLAB_DATA_DIR).

Tests never skip for missing data: CI provides it, and a missing copy is a failure to fix.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    path = Path(os.environ.get("ACTLAB_DATA_DIR") or REPO.parent / "shared" / "datasets")
    if not (path / "mnist").is_dir():
        raise RuntimeError(f"test data not found at {path}: set ACTLAB_DATA_DIR to the folder "
                           f"holding mnist/ and fashion-mnist/")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _data_dir()


@pytest.fixture(scope="session")
def mnist(data_dir):
    from actlab.data import load_dataset

    return load_dataset("mnist", data_dir, download=False)


@pytest.fixture
def mnist_copy(tmp_path, data_dir) -> Path:
    """A private copy of the MNIST files (tmp/mnist/...) that a test may damage."""
    target = tmp_path / "data" / "mnist"
    shutil.copytree(data_dir / "mnist", target)
    return target


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's real cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def quick_flags(data_dir: Path, out: Path, **extra) -> list[str]:
    """Flags for a seconds-long run on small real subsets."""
    flags = {"data_dir": str(data_dir), "out": str(out), "train_subset": "2000", "test_subset": "1000",
             "epochs": "2", "hidden": "32", "activations": "relu,tanh", "workers": "1", "quiet": None, **extra}
    argv = []
    for key, value in flags.items():
        argv.append("--" + key.replace("_", "-"))
        if value is not None:
            argv.append(value)
    return argv


def sentences(markdown: str) -> list[str]:
    """The report's prose sentences of 40 characters or more (tables and images aside)."""
    body = "\n".join(line for line in re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", markdown).splitlines()
                     if not line.startswith("|"))
    parts = re.split(r"(?<=[.!?])\s+|\n+|(?<=[。！？])", body)
    return [p.strip(" -*") for p in parts if len(p.strip(" -*")) >= 40]
