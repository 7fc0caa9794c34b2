"""The example notebook, run headlessly in a fresh kernel with the inline backend, as a student runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "activation-comparison.ipynb"


def _outputs(cell) -> tuple[str, set[str]]:
    """The cell's printed and displayed text, and the MIME types it displayed."""
    text, kinds = [], set()
    for out in cell.get("outputs", []):
        text.append(out.get("text", ""))
        for kind, value in out.get("data", {}).items():
            kinds.add(kind)
            if kind in ("text/plain", "text/html"):
                text.append(value)
    return "\n".join(text), kinds


@pytest.mark.slow
def test_the_example_notebook_runs_with_inline_results_frames_and_plots(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("ACTLAB_DATA_DIR", str(data_dir))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own inline backend, as in Jupyter
    notebook = tmp_path / EXAMPLE.name
    shutil.copy(EXAMPLE, notebook)
    nb = nbformat.read(notebook, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    shown, kinds = _outputs(code[2])  # `results`
    assert "text/html" in kinds and "<table" in shown and "<img" in shown and "__main__:Swish" in shown
    frame, _ = _outputs(code[3])
    assert all(column in frame for column in ("activation", "seed", "epoch", "test_acc"))
    models, _ = _outputs(code[4])
    assert models.count("__main__:Swish") >= 3 and "failed" not in models  # the notebook's own activation trained
    printed, kinds = _outputs(code[5])
    assert "backend unchanged: True" in printed and "image/png" in kinds
    assert (tmp_path / "runs" / "notebook-demo" / "report.html").is_file()
    report, kinds = _outputs(code[6])  # results.show_report()
    assert "text/html" in kinds and "<iframe srcdoc=\"&lt;!DOCTYPE html" in report
