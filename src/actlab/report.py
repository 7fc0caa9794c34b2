"""The report of a run, assembled: `report.md`, a self-contained `report.html`, plus `stats.json`.

`build_report` computes the statistics (`actlab.stats`), draws the plots (`actlab.plots`), lays out
the results, pairwise, diagnostics and configuration tables, and puts them around the written
analysis (`actlab.analysis`). One list of blocks renders to both Markdown and HTML
(`actlab.render`), where every label and value from the data is shown literally; every word comes
from the message catalogue of the report's language (`actlab.messages`). `rebuild` redoes it from a
run folder's files, `report_store` from a sweep store's finished runs.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actlab.activations import parse_layers
from actlab.analysis import (analysis_blocks, diagnostic_means, mean_ci, method_text, p_text, pct, primary_metric,
                             published_blocks, pts, tuning_blocks)
from actlab.config import keys_where
from actlab.messages import Words
from actlab.plots import (draw_side_by_side, labels_for, plot_activations, plot_diagnostics, plot_final_bars,
                          plot_robustness, plot_run, plot_sensitivity)
from actlab.render import Block, Code, Heading, Image, Paragraph, Table, authored, joined, to_html, to_markdown
from actlab.files import atomic_write
from actlab.results import ModelRun, Results, json_safe, load_results, write_results
from actlab.stats import DEFAULT_MARGIN_POINTS, analyse, pairwise_verdicts, values_by_seed


def build_report(results: Results, ci: str | None = None, margin: float | None = None, lang: str = "en",
                 log=None, drawn: frozenset[Path] = frozenset()) -> tuple[Path, Path]:
    """Write stats.json, the report's plots, and the report in `lang` into the run folder: English as
    `report.md`/`report.html` with plots in `plots/`, another language as `report.<lang>.md`/`.html`
    with its plots in `plots/<lang>/`.

    `ci` is the confidence-interval method, `t` or `bootstrap`, and `margin` the equivalence margin
    in percentage points (defaults: the run's settings); `log` gets the one-line hint when Chinese
    plots fall back to English for want of a font (default: stderr). `drawn` names figures already
    drawn for this report (`draw_ahead`), which are not drawn again."""
    run_dir, w = results.run_dir, Words(lang)
    margin = margin if margin is not None else results.config.get("equivalence_margin", DEFAULT_MARGIN_POINTS)
    analysis = analyse(results, method=ci or results.config.get("ci", "t"), margin_points=margin)
    if results.tuning and "fixed_runs" in results.tuning:  # the verdicts at the fixed values, at this margin
        fixed = Results(run_dir, results.config, {}, [ModelRun.from_json(r) for r in results.tuning["fixed_runs"]])
        analysis["tuning"] = {**results.tuning, "fixed_pairwise": pairwise_verdicts(fixed, margin)}
    elif results.tuning:
        analysis["tuning"] = results.tuning
    atomic_write(run_dir / "stats.json", json.dumps(json_safe(analysis), indent=1) + "\n")
    metric = primary_metric(analysis)
    finished = bool(analysis["metrics"].get(metric, {}).get("order"))
    table = diagnostic_means(results)
    plots = plots_folder(run_dir, lang)
    with labels_for(w) as (plot_words, hint):
        _draw_plots(results, analysis, metric, table, plots, plot_words, drawn)
    if hint:
        (log or (lambda line: print(line, file=sys.stderr)))(f"actlab: {hint}")
    images = plots.relative_to(run_dir).as_posix()
    blocks: list[Block] = [Heading(1, w("report.title", name=Code(str(results.config.get("name"))))),
                           _summary_line(results, analysis, w), *([Paragraph(authored(hint))] if hint else []),
                           Heading(2, w("report.analysis")), *analysis_blocks(results, analysis, w)]
    if finished:
        blocks += _results_blocks(results, analysis, metric, w, images)
    if results.tuning:
        blocks += tuning_blocks(results, analysis, w, images)
    blocks += published_blocks(results, w)
    blocks.append(Heading(2, w("report.curves")))
    blocks += [Image(f"{images}/{name}.png", w.plain("plot.alt_curve", what=w.plain(f"plot.{name}")))
               for name in ("test_acc", "train_loss", "test_loss", "val_acc") if (plots / f"{name}.png").exists()]
    if table:
        blocks += [Heading(2, w("report.diagnostics")), Paragraph(w("diagnostics.definitions")),
                   Image(f"{images}/diagnostics.png", w.plain("plot.alt_diagnostics")),
                   Table(*_diagnostics_table(table, w))]
    blocks += [Heading(2, w("report.activations")), Image(f"{images}/activations.png", w.plain("plot.alt_activations")),
               Heading(2, w("report.configuration")), Table([w("table.key"), w("table.value")],
                                                              _config_rows(results.config)),
               Heading(2, w("report.method")),
               Paragraph(joined(method_text(results, w, analysis["equivalence_margin_points"]),
                                w.plain("list.sentence")))]
    stem = "report" if lang == "en" else f"report.{lang}"
    md_path, html_path = run_dir / f"{stem}.md", run_dir / f"{stem}.html"
    atomic_write(md_path, to_markdown(blocks))
    atomic_write(html_path, to_html(blocks, run_dir, w.plain("report.title", name=results.config.get("name")),
                                    lang=lang))
    return md_path, html_path


def plots_folder(run_dir: Path, lang: str) -> Path:
    """Where the report in `lang` keeps its figures."""
    return run_dir / "plots" if lang == "en" else run_dir / "plots" / lang


def draw_ahead(results: Results, langs: list[str]) -> frozenset[Path]:
    """Draw the figures of the reports in `langs` that depend only on which activations the run
    trains (their shapes), before the models are done: a run does it on the core its last models
    leave free. Returns the files drawn, for `build_report(drawn=...)`."""
    drawn = set()
    for lang in langs:
        with labels_for(Words(lang)) as (w, _):
            path = plots_folder(results.run_dir, lang) / "activations.png"
            _plot_run_activations(results, path, w)
            drawn.add(path)
    return frozenset(drawn)


def _plot_run_activations(results: Results, path: Path, w: Words) -> None:
    activations = list(dict.fromkeys(r.activation for r in results.runs))
    specs = [spec for a in activations for spec in _as_list(parse_layers(a))]
    plot_activations(list({s.label: s for s in specs}.values()), path, -5, 5, w=w)


def _draw_plots(results: Results, analysis: dict[str, Any], metric: str, table, plots: Path, w: Words,
                drawn: frozenset[Path]) -> None:
    """The curves, the final-accuracy bars, the diagnostics per layer and the activations' shapes
    (unless `drawn` has them); the last two (about half the drawing time) in a second process where
    one can be forked."""
    here: list[Callable[[], object]] = [lambda: plot_run(results, plots, w)]
    if analysis["metrics"].get(metric, {}).get("order"):
        summary = analysis["metrics"][metric]["summary"]
        values = {label: list(values_by_seed(results, label, metric).values()) for label in results.labels}
        title = w.plain("plot.final_bars", what=w.plain(f"metric.{metric}"))
        here.append(lambda: plot_final_bars(summary, values, title, plots / "final_accuracy.png", w))
    if results.tuning:
        here += [lambda: plot_sensitivity(results.tuning, plots / "sensitivity.png", w),
                 lambda: plot_robustness(results.tuning, plots / "robustness.png", w)]
    there: list[Callable[[], object]] = []
    if plots / "activations.png" not in drawn:
        there.append(lambda: _plot_run_activations(results, plots / "activations.png", w))
    if table:
        there.append(lambda: plot_diagnostics(table, ("init", "final"), plots / "diagnostics.png", w))
    draw_side_by_side(here, there)


def _summary_line(results: Results, analysis: dict[str, Any], w: Words) -> Paragraph:
    """What was run, where and with which versions."""
    env = results.environment
    return Paragraph(w(
        "report.summary", models=len(results.runs), activations=len(results.labels),
        seeds=w.count("seed", len(analysis["seeds"])), dataset=Code(str(results.config.get("dataset"))),
        started=str(env.get("started", "")), device=Code(str(env.get("gpu") or env.get("device"))),
        actlab=Code(str(env.get("actlab"))), torch=Code(str(env.get("torch"))), python=Code(str(env.get("python"))),
        run_dir=Code(str(results.run_dir))))


def _results_blocks(results: Results, analysis: dict[str, Any], metric: str, w: Words,
                    images: str) -> list[Block]:
    m = analysis["metrics"][metric]
    ci = w("results.ci_t" if analysis["ci_method"] == "t" else "results.ci_bootstrap")
    blocks: list[Block] = [Heading(2, w("report.results")), Table(*results_table(results, analysis, w)),
                           Paragraph(w("results.caption", ci=ci)),
                           Image(f"{images}/final_accuracy.png", w.plain("plot.alt_final")),
                           Heading(2, w("report.pairs"))]
    lead = [w("pairs.caption", what=w(f"metric.{metric}"), margin=f"{analysis['equivalence_margin_points']:g}")]
    return blocks + [Paragraph(joined(lead, w.plain("list.sentence"))), Table(*pairwise_table(m, w))]


def _config_rows(config: dict[str, Any]) -> list[list[Code]]:
    return [[Code(k), Code(str(config[k]))] for k in keys_where("shown") if k in config]


def results_table(results: Results, analysis: dict[str, Any], w: Words) -> tuple[list, list[list]]:
    """Per activation: runs and failures, the accuracies with failed runs counted (and as finished),
    loss, speed of convergence, time, and its group letters."""
    metrics, primary = analysis["metrics"], primary_metric(analysis)
    has_val = "best_val_test_acc" in metrics
    header = [w("table.activation"), *([w("tuning.chosen")] if results.tuning else []), w("table.runs"),
              w("table.failures"), w("table.final_acc")]
    header += [w("table.best_val_acc")] if has_val else []
    header += [w("table.as_finished"), w("table.peak_acc"), w("table.final_loss"), w("table.epochs_to_99"),
               w("table.train_s"), w("table.group")]
    groups = metrics[primary].get("groups") or {}
    rows = []
    for label in results.labels:
        c = analysis["runs"][label]
        get = lambda m: metrics.get(m, {}).get("summary", {}).get(label)  # noqa: E731
        counted = c["runs"] - c["unfinished"]
        failures = f"{c['failures']}/{counted} ({pct(c['failure_ci'][0], 0)}–{pct(c['failure_ci'][1], 0)})" \
            if c["failure_ci"] else "–"
        tuned = [Code(" ".join(f"{k}={v:g}" for k, v in results.tuning["activations"][label]["chosen"].items()))] \
            if results.tuning else []
        row: list = [Code(label), *tuned, f"{c['ok']}/{c['runs']}", failures, mean_ci(w, get("final_test_acc"))]
        row += [mean_ci(w, get("best_val_test_acc"))] if has_val else []
        finished = metrics[primary]["as_finished"].get(label)
        row += [pct(finished["mean"]) if finished and finished["n"] else "–",
                pct(s["mean"]) if (s := get("peak_test_acc")) and s["n"] else "–",
                f"{s['mean']:.4f}" if (s := get("final_test_loss")) and s["n"] else "–",
                f"{s['mean']:.1f}" if (s := get("epochs_to_99pct")) and s["n"] else "–",
                f"{s['mean']:.1f}" if (s := get("train_seconds")) and s["n"] else "–",
                Code(groups[label]) if label in groups else "–"]
        rows.append(row)
    return header, rows


def pairwise_table(m: dict[str, Any], w: Words) -> tuple[list, list[list]]:
    """One row per pair: the paired difference and every test beside its verdict."""
    header = [w("table.pair"), w("table.seeds"), w("table.difference"), w("table.diff_ci"), w("table.p_t"),
              w("table.p_sign_flip"), w("table.p_tost"), w("table.dz"), w("table.verdict"), w("table.seeds_needed")]
    rows = []
    for t in m["pairwise"]:
        verdict = w("verdict_short.better", winner=Code(t["a"] if t["verdict"] == "a_better" else t["b"])) \
            if t["verdict"] in ("a_better", "b_better") else w(f"verdict_short.{t['verdict']}")
        dz = "–" if t["effect_dz"] is None else f"{t['effect_dz']:+.2f}"
        rows.append([joined([Code(t["a"]), Code(t["b"])], " – "), t["n"], pts(t["mean_diff"]),
                     f"{pts(t['diff_ci_low'])} … {pts(t['diff_ci_high'])}" if t["diff_ci_low"] is not None else "–",
                     p_text(t["p_decision_holm"]), p_text(t["p_sign_flip_holm"]), p_text(t["p_tost_holm"]), dz,
                     verdict, str(t["seeds_needed"]) if t["seeds_needed"] else "–"])
    return header, rows


def _as_list(spec):
    return spec if isinstance(spec, list) else [spec]


def _diagnostics_table(table, w: Words) -> tuple[list, list[list]]:
    header = [w("table.activation"), w("table.layer"), w("diagnostics.dead"), w("diagnostics.saturated"),
              w("diagnostics.max_derivative"), w("diagnostics.output_stats")]
    has_best = "best" in table
    header += [w("diagnostics.best")] if has_best else []
    learned = sorted({m for stage in table.values() for m in stage if m.startswith("param_") and not m.endswith("_std")})
    header += [w("diagnostics.learned")] if learned else []
    rows = []
    for label in table.get("init", {}).get("dead_fraction", {}):
        for layer in table["init"]["dead_fraction"][label]:
            get = lambda stage, metric: table.get(stage, {}).get(metric, {}).get(label, {}).get(layer, math.nan)  # noqa: E731
            row: list = [Code(label), Code(layer),
                         f"{pct(get('init', 'dead_fraction'), 1)} → {pct(get('final', 'dead_fraction'), 1)}",
                         f"{pct(get('init', 'saturated_fraction'), 1)} → {pct(get('final', 'saturated_fraction'), 1)}",
                         f"{get('init', 'max_derivative'):.3g}",
                         f"{get('final', 'act_mean'):.2f}, {get('final', 'act_std'):.2f}"]
            if has_best:
                row.append(f"{pct(get('best', 'dead_fraction'), 1)}, {pct(get('best', 'saturated_fraction'), 1)}")
            if learned:
                row.append(", ".join(f"{m[len('param_'):]} {get('init', m):.3f} → {get('final', m):.3f}"
                                     for m in learned if not math.isnan(get("final", m))) or "–")
            rows.append(row)
    return header, rows


def rebuild(run_dir: str | Path, ci: str | None = None, margin: float | None = None,
            lang: str = "en") -> tuple[Path, Path]:
    """`actlab report RUN`: rebuild stats.json, plots and the report in `lang` from the run folder's files."""
    return build_report(load_results(run_dir), ci, margin, lang)


def report_store(folder: Path, where: dict[str, str], ci: str | None = None,
                 margin: float | None = None, lang: str = "en") -> tuple[Path, Path]:
    """A report on the finished runs of a sweep store matching `where` (e.g. {"hidden": "512"}).

    The runs are read by `actlab.store.results_from_store`; the report, its results files, tables
    and plots go to `<folder>/report[-key=value…]/`.
    """
    from actlab.store import results_from_store

    from actlab.config import config_from_flat
    from actlab.errors import ActlabError

    results = results_from_store(folder, where)
    results.run_dir.mkdir(parents=True, exist_ok=True)
    write_results(results)
    try:  # the runs' shared settings, where they form an experiment, rerun with more seeds
        atomic_write(results.run_dir / "config.toml", config_from_flat(
            {k: v for k, v in results.config.items() if k not in ("seed", "seeds")}).to_toml())
    except ActlabError:
        pass
    return build_report(results, ci, margin, lang)
