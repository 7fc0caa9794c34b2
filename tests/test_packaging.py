"""actlab as a package: its wheel holds what it needs, builds without a deprecation warning, and the
top-level names are discoverable."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import actlab

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_builds_without_deprecation_and_holds_licence_types_and_catalogues(tmp_path):
    out = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path), str(REPO)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "deprecat" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    (wheel,) = tmp_path.glob("actlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "actlab/py.typed" in names and "actlab/messages/en.toml" in names and "actlab/messages/zh.toml" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert f"actlab-{actlab.__version__}" in wheel.name  # the version is read from actlab/__init__.py


def test_the_public_names_are_listed_and_documented():
    public = {"ActlabError", "Config", "Results", "load_results", "resolve_config", "run"}
    assert public <= set(dir(actlab))
    for name in public:
        assert getattr(actlab, name).__doc__, name
    for cls in (actlab.Results, actlab.results.ModelRun):
        for member, value in vars(cls).items():
            if not member.startswith("_") and (callable(value) or isinstance(value, property)):
                assert (value.fget if isinstance(value, property) else value).__doc__, f"{cls.__name__}.{member}"
