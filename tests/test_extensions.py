"""The common changes are one file plus one registration each (docs/architecture.md): a toy
diagnostic metric and a toy report section (tests/toys/) show up in a real run's results and report."""

from __future__ import annotations

import csv

import pytest

import actlab
from actlab import diagnostics
from actlab.report import sections
from toys.toy_metric import POSITIVE_SHARE
from toys.toy_section import TOY_SECTION


@pytest.fixture
def toys():
    metrics, order = dict(diagnostics.METRICS), list(sections.SECTIONS)
    diagnostics.register(POSITIVE_SHARE)
    sections.register(TOY_SECTION, after="findings")
    yield
    diagnostics.METRICS.clear()
    diagnostics.METRICS.update(metrics)
    sections.SECTIONS[:] = order


def test_a_toy_metric_and_a_toy_section_appear_in_a_run(toys, data_dir, tmp_path):
    config = actlab.resolve_config(overrides={"data_dir": str(data_dir), "out": str(tmp_path / "run"), "epochs": 1,
                                              "train_subset": 1000, "test_subset": 500, "hidden": [16],
                                              "activations": "relu,tanh", "workers": 1, "checkpoints": False,
                                              "lang": "zh"})
    results = actlab.run(config, show_progress=False, log=lambda line: None)
    rows = list(csv.DictReader((results.run_dir / "diagnostics.csv").open(encoding="utf-8")))
    shares = {(r["activation"], r["stage"]): float(r["value"]) for r in rows if r["metric"] == "positive_share"}
    assert 0.3 < shares["relu", "init"] < 0.7 and 0.3 < shares["tanh", "epoch_1"] < 0.7
    md = (results.run_dir / "report.md").read_text(encoding="utf-8")
    assert "positive share" in md and "正值占比" in (results.run_dir / "report.zh.md").read_text(encoding="utf-8")
    assert md.index("## Toy section") < md.index("## Results") and "The toy counted 2 models." in md
    assert (results.run_dir / "plots" / "diagnostics.png").is_file()


def test_a_report_section_name_is_registered_once():
    with pytest.raises(ValueError, match="exists"):
        sections.register(sections.Section("title", lambda c: []))
