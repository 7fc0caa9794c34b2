"""The report: analysis written from the numbers, numbers that match the files, HTML that renders."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from actlab.cli import main
from actlab.config import resolve_config
from actlab.models import OUTPUTS
from actlab.analysis import analysis_blocks
from actlab.messages import Words
from actlab.render import to_markdown
from actlab.report import build_report
from actlab.results import ModelRun, Results
from actlab.stats import analyse
from conftest import quick_flags
from test_presets import outside_causes


def synthetic(run_dir: Path, accs: dict[str, list[float]], epochs: int = 3, config: dict | None = None,
              diag: dict[str, float] | None = None) -> Results:
    """Results whose final test accuracy per activation and seed is `accs[label][seed]`.

    The curve rises to the final value; diagnostics give each activation a first-layer gradient of
    `diag[label]` at init and 10% dead units in hidden1 for labels starting with "relu".
    """
    runs = []
    for label, finals in accs.items():
        for seed, final in enumerate(finals):
            rows = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": final - 0.02 * (epochs - e),
                     "val_loss": None, "val_acc": None, "test_loss": 0.5 / e,
                     "test_acc": final - 0.02 * (epochs - e), "seconds": 1.0} for e in range(1, epochs + 1)]
            diagnostics = []
            for stage in ("init", f"epoch_{epochs}"):
                diagnostics += [
                    {"stage": stage, "layer": "hidden1", "metric": "dead_fraction",
                     "value": 0.1 if label.startswith("relu") and stage != "init" else 0.0},
                    {"stage": stage, "layer": "hidden1", "metric": "saturated_fraction", "value": 0.0},
                    {"stage": stage, "layer": "hidden1", "metric": "act_mean", "value": 0.1},
                    {"stage": stage, "layer": "hidden1", "metric": "act_std", "value": 0.5},
                    {"stage": stage, "layer": "linear1", "metric": "grad_norm", "value": (diag or {}).get(label, 0.1)},
                    {"stage": stage, "layer": "linear2", "metric": "grad_norm", "value": 0.5},
                    {"stage": stage, "layer": "all", "metric": "grad_ratio_first_last",
                     "value": (diag or {}).get(label, 0.1) / 0.5}]
            activation, output = ("none", label) if label in OUTPUTS and label != "logits" else (label, "logits")
            runs.append(ModelRun(label, activation, output, seed, rows, "ok", train_seconds=3.0, diagnostics=diagnostics))
    run_dir.mkdir(parents=True, exist_ok=True)
    return Results(run_dir, config or {"name": "synthetic", "dataset": "mnist"}, {"device": "cpu"}, runs)


def text_of(blocks) -> str:
    return to_markdown(blocks)


def analysis_text(results: Results, stats: dict) -> str:
    return text_of(analysis_blocks(results, stats, Words("en")))


CAUSAL = re.compile(r"\b(because|causes?|caused|which reduces|due to|leads? to|explains?|explained)\b", re.I)


VERDICTS = (r"^- `[^`]+` is ahead of `[^`]+` by ", r"^- `[^`]+` and `[^`]+` are equivalent within ±",
            r"^- `[^`]+` vs `[^`]+`: inconclusive, .*would need|^- `[^`]+` vs `[^`]+`: inconclusive, .*1,000 seeds",
            r"^- `[^`]+` vs `[^`]+`: not tested; ")


def assert_every_pair_has_one_verdict_and_the_groups_agree(md: str, stats: dict) -> None:
    """Every pair sentence of the analysis is one of the four verdicts (inconclusive ones with the
    seeds a test would need), and activations share a group letter exactly when no pair says one
    is better."""
    analysis = md.split("## Analysis")[1].split("### Measured")[0]
    bullets = [line for line in analysis.splitlines() if line.startswith("- ")]
    m = stats["metrics"]["final_test_acc"]
    if any(t["verdict"] != "not_tested" for t in m["pairwise"]):
        assert len(bullets) == len(m["pairwise"])
    for line in bullets:
        assert sum(bool(re.search(v, line)) for v in VERDICTS) == 1, line
    if m["groups"]:
        for t in m["pairwise"]:
            share = bool(set(m["groups"][t["a"]]) & set(m["groups"][t["b"]]))
            assert share == (t["verdict"] not in ("a_better", "b_better")), t


def test_analysis_changes_with_the_numbers(tmp_path):
    noise = [0.000, 0.001, -0.001, 0.0005, -0.0005, 0.0]
    relu_wins = synthetic(tmp_path / "a", {"relu": [0.98 + n for n in noise], "sigmoid": [0.95 - n for n in noise]},
                          diag={"relu": 0.2, "sigmoid": 0.02})
    sigmoid_wins = synthetic(tmp_path / "b", {"relu": [0.95 + n for n in noise], "sigmoid": [0.98 - n for n in noise]},
                             diag={"relu": 0.2, "sigmoid": 0.02})
    a, b = analysis_text(relu_wins, analyse(relu_wins)), analysis_text(sigmoid_wins, analyse(sigmoid_wins))
    assert "Over 6 seeds, `relu` has the highest mean final test accuracy: 98.00% (95% CI" in a
    assert "Over 6 seeds, `sigmoid` has the highest mean final test accuracy: 98.00% (95% CI" in b
    assert "`relu` is ahead of `sigmoid` by +3.00 points (simultaneous 95% CI over 1 pair: " in a
    assert "`sigmoid` is ahead of `relu` by +3.00 points" in b
    assert "Groups: `relu` (`a`), `sigmoid` (`b`). Two activations with no letter in common differ significantly" in a
    # the measurements go with each activation, stated beside the best one's, never as a cause
    assert "first-layer gradient norm at initialisation 0.02, 10.0× smaller than `relu`'s 0.2" in a
    assert "first-layer gradient norm at initialisation 0.2, 10.0× larger than `sigmoid`'s 0.02" in b
    assert "10.0% of hidden layer 1's units dead after the last epoch" in a and "### Measured alongside the result" in a
    assert not CAUSAL.findall(a + b) and "Likely causes" not in a + b


def test_a_gradient_norm_within_five_percent_is_not_called_larger_or_smaller(tmp_path):
    noise = [0.000, 0.001, -0.001, 0.0005, -0.0005, 0.0]
    results = synthetic(tmp_path, {"relu": [0.98 + n for n in noise], "elu": [0.95 - n for n in noise]},
                        diag={"relu": 0.711, "elu": 0.7112})
    text = analysis_text(results, analyse(results))
    assert "first-layer gradient norm at initialisation 0.711, within 5% of `relu`'s 0.711" in text
    assert "1.0×" not in text


def test_counts_of_pairs_read_as_english_for_one_pair_and_for_several(tmp_path):
    two = synthetic(tmp_path / "two", {"relu": [0.980, 0.975, 0.982], "tanh": [0.979, 0.977, 0.981]})
    three = synthetic(tmp_path / "three", {"relu": [0.980, 0.975, 0.982], "tanh": [0.979, 0.977, 0.981],
                                           "elu": [0.978, 0.976, 0.980]})
    one_pair, three_pairs = analysis_text(two, analyse(two)), analysis_text(three, analyse(three))
    assert "Holm-corrected over 1 pair, α = 0.05" in one_pair and "With 3 seeds and 1 pair, " in one_pair
    assert "Holm-corrected over 3 pairs, α = 0.05" in three_pairs and "above α/3 = 0.0167" in three_pairs
    assert "1 pairs" not in one_pair


def test_close_activations_are_equivalent_within_the_margin_not_tied(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.980, 0.975, 0.982, 0.978], "tanh": [0.979, 0.977, 0.981, 0.976]})
    text = analysis_text(results, analyse(results))
    assert "`relu` and `tanh` are equivalent within ±0.5 points: their paired difference is +0.05 points" in text
    assert "tied" not in text
    assert "their smallest p-value, 0.1250, is above α/1 = 0.0500. They need at least 6 seeds" in text


def test_an_inconclusive_pair_says_how_many_seeds_a_test_would_need(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.980, 0.975, 0.982, 0.978, 0.979],
                                   "tanh": [0.976, 0.979, 0.970, 0.975, 0.981]})
    stats = analyse(results)
    (pair,) = stats["metrics"]["final_test_acc"]["pairwise"]
    assert pair["verdict"] == "inconclusive" and pair["seeds_needed"] > 5
    text = analysis_text(results, stats)
    assert "`relu` vs `tanh`: inconclusive, a paired difference of +0.26 points" in text
    assert f"would need about {pair['seeds_needed']} seeds for 80% power" in text and "at α/1 = 0.0500 (Bonferroni" in text
    assert f"--seed 5 --seeds {pair['seeds_needed']} --out" in text  # fresh seeds, after the five used


def test_fewer_than_three_seeds_are_not_tested_anywhere(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.98], "elu": [0.97]})
    results.config["name"] = "mine"
    text = analysis_text(results, analyse(results))
    assert "No pair can be tested: the activations share at most 1 seed, and a paired test needs at least 3" in text
    assert "1.00 points apart; that is a description of these runs, not evidence of a difference" in text
    assert "--seeds 6" in text and "actlab run --config" in text
    assert "ahead of" not in text and "equivalent" not in text and "Groups" not in text
    md = build_report(results)[0].read_text()
    assert "| `relu` – `elu` | 1 | +1.00 | – | – | – | – | – | not tested | – |" in md
    assert not CAUSAL.findall(outside_causes(md))


def test_the_method_says_when_activations_did_not_start_from_the_same_weights(tmp_path):
    config = {"name": "snn", "dataset": "mnist", "init": {"selu": "lecun_normal"}, "dropout": 0.05,
              "dropout_kind": "auto", "optimizer": "sgd"}
    results = synthetic(tmp_path, {"relu": [0.90, 0.91, 0.905], "selu": [0.92, 0.921, 0.918]}, config=config)
    md = build_report(results)[0].read_text()
    assert "the activation is not the only setting that differs: `relu` starts from `default` weights; `selu` " \
           "starts from `lecun_normal` weights; `relu` trains with standard dropout; `selu` trains with alpha " \
           "dropout" in md
    assert "same initial weights" not in md and "rescales each parameter's step" not in md  # SGD is not adaptive


def test_an_activation_label_is_shown_literally_never_as_markup(tmp_path):
    results = synthetic(tmp_path, {"expr:x**2": [0.970, 0.971, 0.969], "relu": [0.980, 0.979, 0.981]})
    md_path, html_path = build_report(results)
    md, page = md_path.read_text(), html_path.read_text()
    assert "| `expr:x**2` | 3/3 |" in md and "`relu` is ahead of `expr:x**2` by +1.00 points" in md
    assert md.count("expr:x**2") >= 5
    assert not re.search(r"(?<!`)expr:x\*\*2", md), "the label outside a code span"
    assert "<td><code>expr:x**2</code></td>" in page and "ahead of <code>expr:x**2</code> by" in page
    body = re.sub(r"<title>.*?</title>", "", page)  # the page title is plain text, escaped
    assert not re.search(r"(?<!<code>)expr:x\*\*2", body), "the label outside <code>"
    assert "<strong>2" not in page and "x<strong>" not in page


def test_published_figures_beside_ours_only_for_an_unchanged_preset(tmp_path):
    config = resolve_config(preset="mnist-classic-four", overrides={"seeds": 3}, env={}).to_flat()
    pub = {"relu": 0.9799, "sigmoid": 0.9758, "tanh": 0.9782, "leaky_relu:0.01": 0.9776}
    accs = {label: [v - 0.002, v + 0.003, v + 0.001] for label, v in pub.items()}
    results = synthetic(tmp_path / "same", accs, epochs=10, config=config)
    md = build_report(results)[0].read_text()
    assert "## Published figures beside ours" in md
    assert re.search(r"\| `relu` \| 10 \| 97.99 \| 98.0\d \| 97.79–98.29 \| yes \|", md), md
    changed = synthetic(tmp_path / "changed", accs, epochs=10, config={**config, "epochs": 5})
    md = build_report(changed)[0].read_text()
    assert "changed the preset's settings" in md and "beside ours" not in md


def test_one_batch_figures_get_a_binomial_range(tmp_path):
    config = resolve_config(preset="mnist-output-activation", env={}).to_flat()
    results = synthetic(tmp_path, {"log_softmax": [0.91], "softmax": [0.91], "sigmoid": [0.64], "tanh": [0.60]},
                        epochs=2, config=config)
    md = build_report(results)[0].read_text()
    assert "0.6094 (39/64)" in md and "0.7188 (46/64)" in md
    assert "Binomial(64, p)/64" in md


def test_report_numbers_match_results_json(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert main(["run", *quick_flags(data_dir, out, seeds="3", epochs="1")]) == 0
    results = json.loads((out / "results.json").read_text())
    stats = json.loads((out / "stats.json").read_text())
    md = (out / "report.md").read_text()
    for label in ("relu", "tanh"):
        accs = [r["final_test_acc"] for r in results["runs"] if r["label"] == label]
        summary = stats["metrics"]["final_test_acc"]["summary"][label]
        assert summary["n"] == 3 and summary["mean"] == pytest.approx(sum(accs) / 3)
        assert re.search(rf"\| `{label}` \| 3/3 \| 0/3 \(0%–71%\) \| {100 * summary['mean']:.2f}% \(95% CI "
                         rf"{100 * summary['ci_low']:.2f}–", md), md
    assert "Over 3 seeds" in md and "## Diagnostics" in md
    assert_every_pair_has_one_verdict_and_the_groups_agree(md, stats)
    diag = (out / "diagnostics.csv").read_text().splitlines()
    assert diag[0] == "activation,seed,stage,layer,metric,value"
    assert any(",init,hidden1,dead_fraction," in line for line in diag)
    assert any(",epoch_1,linear1,grad_norm," in line for line in diag)
    # `actlab report` rebuilds the same report from the files alone
    before = md
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == before


@pytest.mark.parametrize("lang, tag, heading", [("en", "en", "actlab report: mnist-classic-four, relu, tanh on mnist"),
                                                ("zh", "zh-CN", "actlab 报告：mnist-classic-four，mnist 上的 relu、tanh")])
def test_html_report_renders_in_a_real_browser_with_no_external_requests(tmp_path, lang, tag, heading):
    under_ci = bool(os.environ.get("CI"))  # under CI a missing browser or package is a failure
    if under_ci:
        import playwright.sync_api as playwright
    else:
        playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium and not under_ci:
        pytest.skip("Chromium not found: apt-get install chromium (CI installs it and runs this test)")
    assert chromium, "Chromium is required for this test: apt-get install chromium (.ci/run does)"
    config = resolve_config(preset="mnist-classic-four", overrides={"seeds": 3}, env={}).to_flat()
    results = synthetic(tmp_path / "run", {"relu": [0.98, 0.979, 0.981], "tanh": [0.975, 0.976, 0.974]},
                        epochs=3, config={**config, "activations": ["relu", "tanh"]})
    html_path = build_report(results, lang=lang)[1]
    requests = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html_path.resolve().as_uri())
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.naturalWidth, e.alt])")
        shown = page.inner_text("h1")
        tables = page.eval_on_selector_all("table", "els => els.length")
        page_lang = page.eval_on_selector("html", "el => el.lang")
        browser.close()
    assert shown == heading and page_lang == tag
    assert len(images) >= 5 and all(width > 0 for width, _ in images), images
    assert tables >= 3
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


def test_runs_that_fail_to_learn_are_counted_not_hidden(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981, 0.978, 0.98], "selu": [0.97, 0.11, 0.972, 0.10, 0.971]})
    for run in results.by_label("selu"):
        if run.final_test_acc < 0.2:
            run.status = "failed_to_learn"
    stats = analyse(results)
    assert {k: stats["runs"]["selu"][k] for k in ("runs", "ok", "failed_to_learn", "failures")} == \
        {"runs": 5, "ok": 3, "failed_to_learn": 2, "failures": 2}
    acc = stats["metrics"]["final_test_acc"]
    assert acc["summary"]["selu"]["n"] == 5 and acc["as_finished"]["selu"]["n"] == 3
    text = analysis_text(results, stats)
    assert "`selu` failed in 2 of 5 runs (failure rate 40%, 95% CI 5%–85%, exact binomial): 2 had not learned by epoch 3" in text
    assert "62.46% with them, 97.10% over the 3 runs that did not fail" in text
    md = build_report(results)[0].read_text()
    assert "| `selu` | 3/5 | 2/5 (5%–85%) | 62.46% (95% CI" in md


def test_bootstrap_confidence_intervals_on_request(tmp_path, capsys):
    results = synthetic(tmp_path / "run", {"relu": [0.980, 0.975, 0.982, 0.978, 0.981],
                                           "tanh": [0.970, 0.972, 0.969, 0.974, 0.971]})
    from actlab.results import write_results

    write_results(results)
    assert main(["report", str(tmp_path / "run"), "--ci", "bootstrap"]) == 0
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["ci_method"] == "bootstrap"
    assert "by BCa bootstrap (9,999 resamples)" in (tmp_path / "run" / "report.md").read_text()
    t = analyse(results)["metrics"]["final_test_acc"]["summary"]["relu"]
    boot = stats["metrics"]["final_test_acc"]["summary"]["relu"]
    assert (boot["ci_low"], boot["ci_high"]) != (t["ci_low"], t["ci_high"]) and boot["ci_low"] <= boot["mean"] <= boot["ci_high"]


# --- the report in Chinese ---------------------------------------------------------------------------

# names that stay as they are in a Chinese report: people and tests, software, data sets, activations
NAMES = {"actlab", "torch", "Python", "PyTorch", "MNIST", "Fashion", "Holm", "Wilcoxon", "Student", "BCa",
         "Clopper", "Pearson", "Bonferroni", "Binomial", "Klambauer", "LeCun", "SELU", "ReLU", "Leaky", "SGD", "Adam", "Debian",
         "Ubuntu", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "softmax", "log_softmax", "alpha", "d_z",
         "sqrt", "apt-get", "fonts-noto-cjk"}


def english_words(markdown: str) -> list[str]:
    """Latin-script words left in a report's prose once code spans, images, numbers and names are out."""
    prose = re.sub(r"`[^`]*`", " ", markdown)
    prose = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", prose)
    words = re.findall(r"[A-Za-z][A-Za-z_\-]*[A-Za-z]", prose)
    return sorted(set(w for w in words if w not in NAMES))


def numbers(markdown: str) -> list[str]:
    body = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", markdown)
    return sorted(re.findall(r"\d+(?:[.,]\d+)*", body))


@pytest.fixture(scope="module")
def chinese_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("zh") / "run"
    assert main(["run", "--preset", "mnist-classic-four", "--seeds", "3", "--epochs", "2", "--train-subset", "5000",
                 "--data-dir", str(data_dir), "--out", str(out), "--lang", "zh", "--quiet"]) == 0
    return out


def test_a_chinese_run_writes_a_chinese_report_beside_the_english_one(chinese_run):
    zh, en = (chinese_run / "report.zh.md").read_text(), (chinese_run / "report.md").read_text()
    assert english_words(zh) == [], english_words(zh)
    assert english_words(en)  # the check can fail: English prose is caught
    headings = [line for line in zh.splitlines() if line.startswith("#")]
    assert len(headings) >= 8 and all(re.search(r"[\u4e00-\u9fff]", h) for h in headings), headings
    assert numbers(zh) == numbers(en)  # the same numbers, in other words
    assert "![" in zh and "plots/zh/test_acc.png" in zh and (chinese_run / "plots" / "zh" / "test_acc.png").is_file()


def test_actlab_report_in_chinese_on_an_english_run_gives_the_same_report(chinese_run, tmp_path, capsys):
    english = tmp_path / "run"
    shutil.copytree(chinese_run, english)  # the same models, as an English run that wrote no Chinese report
    for path in (english / "report.zh.md", english / "report.zh.html"):
        path.unlink()
    shutil.rmtree(english / "plots" / "zh")
    for name in ("results.json",):
        doc = json.loads((english / name).read_text())
        doc["config"]["lang"] = "en"
        (english / name).write_text(json.dumps(doc))
    assert main(["report", str(english), "--lang", "zh"]) == 0
    made = (english / "report.zh.md").read_text().replace(str(english), str(chinese_run))
    assert made == (chinese_run / "report.zh.md").read_text()
    assert (english / "plots" / "zh" / "diagnostics.png").read_bytes() == \
        (chinese_run / "plots" / "zh" / "diagnostics.png").read_bytes()


def plot_texts(monkeypatch) -> list[str]:
    """Every text drawn into the plots saved after this call."""
    import matplotlib.text

    from actlab import plots

    texts: list[str] = []
    save = plots._save

    def recording(fig, path):
        texts.extend(t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text())
        save(fig, path)
    monkeypatch.setattr(plots, "_save", recording)
    return texts


def test_chinese_plots_carry_chinese_labels_with_no_missing_glyph(tmp_path, monkeypatch, recwarn):
    from actlab.plots import cjk_font

    if not cjk_font() and not os.environ.get("CI"):
        pytest.skip("no CJK font: apt-get install fonts-noto-cjk (CI installs it and runs this test)")
    assert cjk_font(), "a CJK font is needed here: apt-get install fonts-noto-cjk (.ci/run installs it)"
    texts = plot_texts(monkeypatch)
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981], "tanh": [0.975, 0.976, 0.974]})
    build_report(results, lang="zh", log=lambda line: pytest.fail(line))
    assert "测试集准确率" in " ".join(texts) and "轮" in texts
    assert not [w for w in recwarn if "Glyph" in str(w.message)]


def test_without_a_cjk_font_the_plots_are_english_and_the_report_says_how_to_install_one(tmp_path, monkeypatch):
    monkeypatch.setattr("actlab.plots.cjk_font", lambda: None)
    texts = plot_texts(monkeypatch)
    lines: list[str] = []
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981], "tanh": [0.975, 0.976, 0.974]})
    md = build_report(results, lang="zh", log=lines.append)[0].read_text()
    assert any(t.startswith("test accuracy") for t in texts) and "测试集准确率" not in " ".join(texts)
    assert len(lines) == 1 and "apt-get install fonts-noto-cjk" in lines[0]
    assert md.count("apt-get install fonts-noto-cjk") == 1 and "未找到含中文字形的字体" in md


def test_one_activation_has_nothing_to_compare(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981, 0.978, 0.98]})
    text = analysis_text(results, analyse(results))
    assert "Only one activation ran, `relu`" in text and "nothing to compare" in text and "apart" not in text


def test_published_figures_only_for_a_preset_run_unchanged_in_what_it_trains(tmp_path):
    config = resolve_config(preset="mnist-classic-four", overrides={"seeds": 3, "train_subset": 5000}, env={}).to_flat()
    accs = {label: [0.97, 0.971, 0.969] for label in ("relu", "sigmoid", "tanh", "leaky_relu:0.01")}
    md = build_report(synthetic(tmp_path, accs, epochs=10, config=config))[0].read_text()
    assert "changed the preset's settings" in md and "beside ours" not in md


def test_a_tuned_report_says_each_activation_trains_at_its_own_values(tmp_path):
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981], "tanh": [0.975, 0.976, 0.974]},
                        config={"name": "tuned", "dataset": "mnist", "optimizer": "adam"})
    point = lambda lr: {"point": {"lr": lr}, "scores": [0.97, 0.971], "n": 2, "mean": 0.9705,  # noqa: E731
                        "ci_low": 0.96, "ci_high": 0.98}
    results.tuning = {"grid": {"lr": [0.001, 0.01]}, "keys": ["lr"], "fixed": {"lr": 0.001}, "tuning_seeds": [3, 4],
                      "evaluation_seeds": [0, 1, 2], "fixed_runs": [r.to_json() for r in results.runs],
                      "activations": {label: {"points": [point(0.001), point(0.01)], "chosen": {"lr": lr},
                                              "at_edge": {"lr": "high"} if lr == 0.01 else {"lr": "low"},
                                              "best": 0.9705, "mean_over_grid": 0.9705, "worst": 0.9705}
                                      for label, lr in (("relu", 0.01), ("tanh", 0.001))}}
    md = build_report(results)[0].read_text()
    assert "`relu` trains at its tuned `lr=0.01`; `tanh` trains at its tuned `lr=0.001`" in md
    assert "same initial weights and saw the same batches, so the activation is the only setting" not in md
    assert "`relu`'s chosen `lr` = 0.01 is at the high end of the grid" in md


def _pid_writer(path: Path, fail_in_child: bool = False):
    parent = os.getpid()

    def job():
        if fail_in_child and os.getpid() != parent:
            raise RuntimeError("this figure fails in the child")
        path.write_text(str(os.getpid()))
    return job


@pytest.fixture
def one_thread(monkeypatch):
    """As in a run, where actlab leaves no second thread (tests/test_experiment.py): threads other
    tests of this session left behind would keep draw_side_by_side from forking."""
    import threading

    monkeypatch.setattr(threading, "active_count", lambda: 1)


def test_a_second_process_draws_half_the_figures_and_the_first_waits_for_it(tmp_path, one_thread):
    from actlab.plots import draw_side_by_side

    here, there = tmp_path / "here", tmp_path / "there"
    draw_side_by_side([_pid_writer(here)], [_pid_writer(there)])
    assert int(here.read_text()) == os.getpid()
    assert int(there.read_text()) != os.getpid()  # written by the child, and whole before the call returned


def test_figures_the_second_process_failed_to_draw_are_drawn_by_the_first(tmp_path, one_thread):
    from actlab.plots import draw_side_by_side

    there = tmp_path / "there"
    draw_side_by_side([], [_pid_writer(there, fail_in_child=True)])
    assert int(there.read_text()) == os.getpid()


def test_no_second_process_while_another_thread_runs(tmp_path):
    import threading

    from actlab.plots import draw_side_by_side

    there, release = tmp_path / "there", threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        draw_side_by_side([], [_pid_writer(there)])
    finally:
        release.set()
        other.join()
    assert int(there.read_text()) == os.getpid()  # a fork could copy a lock that thread holds


def test_the_second_process_ignores_ctrl_c_which_the_first_handles(tmp_path, one_thread):
    import signal

    from actlab.plots import draw_side_by_side

    parent, there = os.getpid(), tmp_path / "there"

    def interrupted_then_draws():
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGINT)  # as the terminal's Ctrl-C reaches the whole process group
        there.write_text(str(os.getpid()))
    draw_side_by_side([], [interrupted_then_draws])
    assert int(there.read_text()) != parent  # the child went on and drew it


def test_figures_drawn_ahead_are_not_drawn_again_and_the_report_is_whole(tmp_path, monkeypatch):
    from actlab import report

    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981], "tanh": [0.975, 0.976, 0.974]})
    drawn = report.draw_ahead(results, ["en"])
    assert drawn == {tmp_path / "plots" / "activations.png"} and (tmp_path / "plots" / "activations.png").stat().st_size
    monkeypatch.setattr(report, "plot_activations", lambda *a, **k: pytest.fail("drawn twice"))
    md = build_report(results, drawn=drawn)[0].read_text()
    assert "plots/activations.png" in md and (tmp_path / "plots" / "diagnostics.png").exists()


def test_the_gradient_norm_axis_is_labelled_in_plain_numbers(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from actlab import plots

    labels: list[str] = []
    save = plots._save

    def recording(fig, path):
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_yscale() == "log":
                labels.extend(t.get_text() for t in ax.get_yticklabels(minor=False) + ax.get_yticklabels(minor=True))
        save(fig, path)
    monkeypatch.setattr(plots, "_save", recording)
    monkeypatch.setattr(plots, "fork_is_safe", lambda: False)  # every figure in this process, to be seen here
    results = synthetic(tmp_path, {"relu": [0.98, 0.979, 0.981], "tanh": [0.975, 0.976, 0.974]},
                        diag={"relu": 0.03, "tanh": 0.6})
    build_report(results)
    shown = [t for t in labels if t]
    assert shown and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in shown), shown
    assert "0.1" in shown
    plt.close("all")


def test_drawing_a_report_leaves_the_callers_matplotlib_backend_and_figures_alone(tmp_path):
    """A notebook's inline backend (here: svg, any backend not Agg) and its open figures stay as they were."""
    import subprocess
    import sys

    script = f"""
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
plt.figure()
from actlab import plots
from actlab.activations import parse_activation
plots.plot_activations([parse_activation("relu"), parse_activation("tanh")], __import__("pathlib").Path(r"{tmp_path}") / "a.png")
print(matplotlib.get_backend(), plt.get_fignums())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**__import__("os").environ, "MPLBACKEND": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg", "[1]"] and (tmp_path / "a.png").stat().st_size > 1000


def test_plot_functions_return_their_figure_as_well_as_writing_it(tmp_path):
    from matplotlib.figure import Figure

    from actlab import plots
    from actlab.activations import parse_activation

    fig = plots.plot_activations([parse_activation("relu")], tmp_path / "relu.png")
    assert isinstance(fig, Figure) and (tmp_path / "relu.png").stat().st_size > 1000
    assert len(fig.axes) == 2  # the function and its derivative
