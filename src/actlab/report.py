"""The report of a run, assembled: `report.md`, a self-contained `report.html`, plus `stats.json`.

`build_report` computes the statistics (`actlab.stats`), draws the plots (`actlab.plots`), lays out
the results, significance, diagnostics and configuration tables, and puts them around the written
analysis (`actlab.analysis`). One list of blocks renders to both Markdown and HTML
(`actlab.render`), where every label and value from the data is shown literally. `rebuild` redoes
it from a run folder's files, `report_store` from a sweep store's finished runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from actlab.activations import parse_layers
from actlab.analysis import (METHOD, analysis_text, diagnostic_means, mean_ci, p_value, primary_metric,
                             published_blocks, ranking_text)
from actlab.plots import plot_activations, plot_diagnostics, plot_final_bars, plot_run
from actlab.render import Block, Code, Heading, Image, Paragraph, Table, fill, to_html, to_markdown
from actlab.results import Results, atomic_write, json_safe, load_results, write_results
from actlab.stats import ALPHA, METRICS, analyse, metric_value


def build_report(results: Results, ci: str | None = None) -> tuple[Path, Path]:
    """Write stats.json, the report's plots, report.md and report.html into the run folder.

    `ci` is the confidence-interval method, `t` or `bootstrap` (default: the run's `ci` setting)."""
    run_dir = results.run_dir
    analysis = analyse(results, method=ci or results.config.get("ci", "t"))
    atomic_write(run_dir / "stats.json", json.dumps(json_safe(analysis), indent=1) + "\n")
    metric = primary_metric(analysis)
    finished = metric in analysis["metrics"]
    table = diagnostic_means(results)
    _draw_plots(results, analysis, metric, table)
    title = f"actlab report: {results.config.get('name')}"
    blocks: list[Block] = [Heading(1, fill("actlab report: {name}", name=Code(str(results.config.get("name"))))),
                           _summary_line(results, analysis), Heading(2, "Analysis"), *analysis_text(results, analysis)]
    if finished:
        blocks += _results_blocks(results, analysis, metric)
    blocks += published_blocks(results)
    blocks.append(Heading(2, "Curves"))
    blocks += [Image(f"plots/{name}.png", name) for name in ("test_acc", "train_loss", "test_loss", "val_acc")
               if (run_dir / "plots" / f"{name}.png").exists()]
    if table:
        blocks += [Heading(2, "Diagnostics"),
                   Paragraph("Measured on the first 2,000 test images, per hidden layer, at initialisation and after "
                             "the last epoch (means over seeds). Dead: the unit's output is zero for every image. "
                             "Saturated: the activation's derivative is below 5% of its maximum. Gradient norm: the "
                             "norm of the loss gradient with respect to each linear layer's weights."),
                   Image("plots/diagnostics.png", "diagnostics per layer"),
                   Table(*_diagnostics_table(table))]
    blocks += [Heading(2, "The activations"), Image("plots/activations.png", "activations and derivatives"),
               Heading(2, "Configuration"), Table(["key", "value"], _config_rows(results.config)),
               Heading(2, "Method"), Paragraph(METHOD)]
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write(md_path, to_markdown(blocks))
    atomic_write(html_path, to_html(blocks, run_dir, title))
    return md_path, html_path


def _draw_plots(results: Results, analysis: dict[str, Any], metric: str, table) -> None:
    """The curves, the final-accuracy bars, the diagnostics per layer and the activations' shapes."""
    plots = results.run_dir / "plots"
    plot_run(results)
    if metric in analysis["metrics"]:
        summary = analysis["metrics"][metric]["summary"]
        values = {label: [v for r in results.by_label(label) if r.status == "ok"
                          and (v := metric_value(r, metric)) is not None] for label in results.labels}
        plot_final_bars(summary, values, f"{METRICS[metric][0]} — mean, 95% CI, seeds as dots",
                        plots / "final_accuracy.png")
    if table:
        plot_diagnostics(table, ("init", "final"), plots / "diagnostics.png")
    activations = list(dict.fromkeys(r.activation for r in results.runs))
    specs = [spec for a in activations for spec in _as_list(parse_layers(a))]
    plot_activations(list({s.label: s for s in specs}.values()), plots / "activations.png", -5, 5)


def _summary_line(results: Results, analysis: dict[str, Any]) -> Paragraph:
    """What was run, where and with which versions."""
    env, n_seeds = results.environment, len(analysis["seeds"])
    return Paragraph(fill(
        "{models} models ({activations} activations × {n} {seeds}), {dataset}, run {started} on {device} with actlab "
        "{actlab}, torch {torch}, Python {python}. Run folder: {run_dir}.",
        models=len(results.runs), activations=len(results.labels), n=n_seeds, seeds="seeds" if n_seeds > 1 else "seed",
        dataset=Code(str(results.config.get("dataset"))), started=str(env.get("started", "")),
        device=str(env.get("gpu") or env.get("device")), actlab=str(env.get("actlab")), torch=str(env.get("torch")),
        python=str(env.get("python")), run_dir=Code(str(results.run_dir))))


def _results_blocks(results: Results, analysis: dict[str, Any], metric: str) -> list[Block]:
    ci = "from Student’s t" if analysis["ci_method"] == "t" else "by BCa bootstrap (9,999 resamples)"
    return [
        Heading(2, "Results"),
        Table(*results_table(results, analysis)),
        Paragraph(fill("Means over the seeds that finished; 95% confidence intervals {ci}. 'peak' is the highest test "
                       "accuracy over the epochs, chosen on the test set (optimistic).", ci=ci)),
        Image("plots/final_accuracy.png", "final accuracy per activation with confidence intervals"),
        Heading(2, "Ranking and significance"),
        Paragraph(fill("By {what}: {ranking}. Activations joined by = are tied (their paired difference is not "
                       "significant after Holm's correction, α = {alpha}).", what=METRICS[metric][0],
                       ranking=ranking_text(analysis["metrics"][metric]["tiers"]), alpha=str(ALPHA))),
        Table(*significance_matrix(results, analysis)),
        Paragraph("Each cell: mean paired difference of the row minus the column over seeds, in percentage points, "
                  "with the Holm-corrected paired t-test p-value; ✱ marks a significant difference."),
    ]


def _config_rows(config: dict[str, Any]) -> list[list[Code]]:
    keys = ["dataset", "hidden", "activations", "output", "init", "optimizer", "lr", "momentum", "weight_decay",
            "batch_size", "epochs", "seeds", "val_split", "train_subset", "test_subset", "device"]
    return [[Code(k), Code(str(config[k]))] for k in keys if k in config]


def results_table(results: Results, analysis: dict[str, Any]) -> tuple[list[str], list[list]]:
    metrics = analysis["metrics"]
    has_val = "best_val_test_acc" in metrics
    header = ["activation", "runs ok", "final test acc", "peak test acc", "final test loss", "epochs to 99%"]
    header += ["best-val checkpoint test acc", "best epochs"] if has_val else []
    header += ["train s"]
    rows = []
    for label in results.labels:
        counts = analysis["runs"][label]
        get = lambda m: metrics.get(m, {}).get("summary", {}).get(label)  # noqa: E731
        row = [Code(label), f"{counts['ok']}/{counts['runs']}"]
        row += [mean_ci(s) if (s := get("final_test_acc")) and s["n"] else "–",
                f"{100 * s['mean']:.2f}%" if (s := get("peak_test_acc")) and s["n"] else "–",
                f"{s['mean']:.4f} ± {s['std']:.4f}" if (s := get("final_test_loss")) and s["n"] > 1 else
                (f"{s['mean']:.4f}" if s and s["n"] else "–"),
                f"{s['mean']:.1f}" if (s := get("epochs_to_99pct")) and s["n"] else "–"]
        if has_val:
            row += [mean_ci(s) if (s := get("best_val_test_acc")) and s["n"] else "–",
                    ", ".join(str(r.best_epoch) for r in results.by_label(label) if r.best_epoch)]
        row += [f"{s['mean']:.1f}" if (s := get("train_seconds")) and s["n"] else "–"]
        rows.append(row)
    return header, rows


def significance_matrix(results: Results, analysis: dict[str, Any]) -> tuple[list, list[list]]:
    metric = primary_metric(analysis)
    tests = {(t["a"], t["b"]): t for t in analysis["metrics"][metric]["pairwise"]}
    labels = results.labels
    rows = []
    for a in labels:
        row: list = [Code(a)]
        for b in labels:
            if a == b:
                row.append("·")
                continue
            t = tests.get((a, b)) or tests.get((b, a))
            diff = t["mean_diff"] if (a, b) in tests else -t["mean_diff"]
            if t["n"] < 2:
                row.append(f"{100 * diff:+.2f}")
            else:
                mark = " ✱" if t["significant"] else ""
                row.append(f"{100 * diff:+.2f} ({p_value(t['p_t_holm'])}){mark}")
        rows.append(row)
    return ["row − column (points)", *(Code(label) for label in labels)], rows


def _as_list(spec):
    return spec if isinstance(spec, list) else [spec]


def _diagnostics_table(table) -> tuple[list[str], list[list]]:
    header = ["activation", "layer", "dead (init → final)", "saturated (init → final)", "output mean, std (final)"]
    learned = sorted({m for stage in table.values() for m in stage if m.startswith("param_") and not m.endswith("_std")})
    if learned:
        header.append("learned parameters (init → final, mean over units)")
    rows = []
    labels = list(table.get("init", {}).get("dead_fraction", {}))
    for label in labels:
        for layer in table["init"]["dead_fraction"][label]:
            get = lambda stage, metric: table.get(stage, {}).get(metric, {}).get(label, {}).get(layer, math.nan)  # noqa: E731
            row = [Code(label), layer, f"{get('init', 'dead_fraction'):.1%} → {get('final', 'dead_fraction'):.1%}",
                   f"{get('init', 'saturated_fraction'):.1%} → {get('final', 'saturated_fraction'):.1%}",
                   f"{get('final', 'act_mean'):.2f}, {get('final', 'act_std'):.2f}"]
            if learned:
                row.append(", ".join(f"{m[len('param_'):]} {get('init', m):.3f} → {get('final', m):.3f}"
                                     for m in learned if not math.isnan(get("final", m))) or "–")
            rows.append(row)
    return header, rows


def rebuild(run_dir: str | Path, ci: str | None = None) -> tuple[Path, Path]:
    """`actlab report RUN`: rebuild stats.json, plots and the report from the run folder's files."""
    return build_report(load_results(run_dir), ci)


def report_store(folder: Path, where: dict[str, str], ci: str | None = None) -> tuple[Path, Path]:
    """A report on the finished runs of a sweep store matching `where` (e.g. {"hidden": "512"}).

    The runs are read by `actlab.store.results_from_store`; the report, its results files, tables
    and plots go to `<folder>/report[-key=value…]/`.
    """
    from actlab.store import results_from_store

    results = results_from_store(folder, where)
    results.run_dir.mkdir(parents=True, exist_ok=True)
    write_results(results)
    return build_report(results, ci)
