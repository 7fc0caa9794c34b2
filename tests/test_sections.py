"""The report reads as a lab report: the conclusion first, the setup in words, numbered and captioned
figures, limitations drawn from the run, and no sentence said twice."""

from __future__ import annotations

import collections
import re

from actlab.report import build_report
from conftest import sentences
from test_report import synthetic

NOISE = [0.0, 0.0012, -0.0009]


def four(tmp_path, config=None):
    """Four activations whose diagnostics differ, as a real run's do (synthetic's are alike by default)."""
    accs = {"relu": [0.975 + n for n in NOISE], "elu": [0.970 + 2 * n for n in NOISE],
            "selu": [0.962 - n for n in NOISE], "leaky_relu:0.01": [0.9752 + n / 2 for n in NOISE]}
    base = {"name": "mnist-relu-family", "dataset": "mnist", "hidden": [512], "optimizer": "adam", "lr": 0.001,
            "batch_size": 64, "epochs": 3, "activations": list(accs)}
    results = synthetic(tmp_path / "run", accs, epochs=3, config={**base, **(config or {})},
                        diag={"relu": 0.21, "elu": 0.13, "selu": 0.34, "leaky_relu:0.01": 0.18})
    for k, label in enumerate(accs):
        for run in results.by_label(label):
            for row in run.diagnostics:
                if row["metric"] in ("act_mean", "act_std"):
                    row["value"] += 0.07 * k
    return results


def test_the_report_opens_with_the_conclusion_then_the_setup_in_words(tmp_path):
    md = build_report(four(tmp_path))[0].read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Conclusion", "## Setup", "## Results"]
    conclusion = md.split("## Conclusion")[1].split("## ")[0]
    assert "best first: `leaky_relu:0.01` 97.52%, `relu` 97.51%, `elu` 97.02%, `selu` 96.19%." in conclusion
    assert "`relu` ahead of `selu` by 1.32 points (in 3 of 3 seeds)" in conclusion
    assert "Main caveat:" in conclusion
    setup = md.split("## Setup")[1].split("## ")[0]
    assert "784 → 512 → 10 (1 hidden layers)" in setup or "784 → 512 → 10" in setup
    assert "`adam` with learning rate 0.001" in setup and "batches of 64, 3 epochs" in setup
    assert "pixels scaled to \\[0, 1\\]" in setup


def test_limitations_are_drawn_from_the_run(tmp_path):
    md = build_report(four(tmp_path, {"train_subset": 5000}))[0].read_text()
    limits = md.split("## Limitations")[1].split("## ")[0]
    assert "one hidden layer" in limits and "SELU was trained with `default` initial weights" in limits
    assert "one learning rate (`0.001` with `adam`)" in limits and "a subset of 5,000 training images" in limits
    assert "Still improving at the last of 3 epochs" in limits  # synthetic curves rise to the end


def test_every_figure_is_numbered_and_captioned_in_order(tmp_path):
    md = build_report(four(tmp_path))[0].read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    labels = re.findall(r"\*\*Figure (\d+)\.\*\* \S", md)
    assert len(images) >= 6 and labels == [str(n) for n in range(1, len(images) + 1)]
    zh = build_report(four(tmp_path), lang="zh")[0].read_text()
    assert re.findall(r"\*\*图 (\d+)\.\*\*", zh) == labels


def test_no_sentence_of_forty_characters_appears_twice(tmp_path):
    for lang in ("en", "zh"):
        md = build_report(four(tmp_path), lang=lang)[0].read_text()
        repeated = {s: n for s, n in collections.Counter(sentences(md)).items() if n > 1}
        assert repeated == {}, (lang, repeated)


def test_the_conclusion_ranks_and_quotes_the_same_seeds_when_seed_sets_differ(tmp_path):
    """relu has two more (lucky) seeds than tanh: the ranking and the means it quotes are over the
    three seeds both have, never an order from one set of seeds beside means from another."""
    results = synthetic(tmp_path / "run", {"relu": [0.960, 0.961, 0.962, 0.990, 0.991],
                                           "tanh": [0.963, 0.964, 0.965]}, epochs=3)
    md = build_report(results)[0].read_text()
    conclusion = md.split("## Conclusion")[1].split("## ")[0]
    assert "over 3 seeds, best first: `tanh` 96.40%, `relu` 96.10%." in conclusion
