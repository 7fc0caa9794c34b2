"""The common changes are one file plus one registration each (docs/architecture.md): a toy model
family, a toy diagnostic metric and a toy report section (tests/toys/) show up in a real run's
results and report."""

from __future__ import annotations

import csv

import pytest

import actlab
from actlab import diagnostics, families
from actlab.errors import ActlabError
from actlab.report import sections
from toys.toy_family import BOTTLENECK
from toys.toy_metric import POSITIVE_SHARE
from toys.toy_section import TOY_SECTION


@pytest.fixture
def toys():
    metrics, order = dict(diagnostics.METRICS), list(sections.SECTIONS)
    families.register(BOTTLENECK)
    diagnostics.register(POSITIVE_SHARE)
    sections.register(TOY_SECTION, after="findings")
    yield
    del families.FAMILIES[BOTTLENECK.name]
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
    assert md.index("## Analysis") < md.index("## Toy section") < md.index("## Pairwise verdicts")  # after findings
    assert "The toy counted 2 models." in md
    assert (results.run_dir / "plots" / "diagnostics.png").is_file()


def test_a_report_section_name_is_registered_once():
    with pytest.raises(ValueError, match="exists"):
        sections.register(sections.Section("title", lambda c: []))


def test_a_toy_model_family_trains_and_is_reported(toys, data_dir, tmp_path):
    config = actlab.resolve_config(overrides={"data_dir": str(data_dir), "out": str(tmp_path / "run"), "epochs": 2,
                                              "train_subset": 2000, "test_subset": 1000, "model": "toy_bottleneck",
                                              "activations": "relu,tanh", "seeds": 2, "stack": True})
    assert config.model.family == "toy_bottleneck" and config.to_flat()["model"] == "toy_bottleneck"
    results = actlab.run(config, show_progress=False, log=lambda line: None)
    assert all(r.status.ok and r.final_test_acc > 0.5 for r in results.runs), [r.final_test_acc for r in results.runs]
    assert results.environment["stacked"] == []  # a family that does not stack trains each model alone
    layers = {r["layer"] for r in results.runs[0].diagnostics}
    assert layers == {"hidden1", "linear1", "linear2", "all"}
    assert "dead_fraction" in {r["metric"] for r in results.runs[0].diagnostics}
    state = results.runs[0]
    assert [row["epoch"] for row in state.epochs] == [1, 2]
    assert "toy_bottleneck" in (results.run_dir / "report.md").read_text(encoding="utf-8")
    assert 'model = "toy_bottleneck"' in (results.run_dir / "config.toml").read_text(encoding="utf-8")
    again = actlab.run(config, show_progress=False, log=lambda line: None)  # CPU training is reproducible
    assert [r.final_test_acc for r in again.runs] == [r.final_test_acc for r in results.runs]


def test_the_default_family_is_not_written_so_older_runs_read_the_same():
    flat = actlab.resolve_config().to_flat()
    assert "model" not in flat and actlab.resolve_config(overrides={"model": "mlp"}).to_flat() == flat
    with pytest.raises(ActlabError, match="model = 'mpl'.*did you mean 'mlp'"):
        actlab.resolve_config(overrides={"model": "mpl"})
