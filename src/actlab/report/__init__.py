"""The report of a run, assembled: `report.md`, a self-contained `report.html`, plus `stats.json`.

`build_report` computes the statistics (`actlab.stats`), draws the plots (`actlab.plots`) and puts
the report's sections in their order (`actlab.report.sections`: one file each, registered in a
list). One list of blocks renders to both Markdown and HTML
(`actlab.render`), where every label and value from the data is shown literally; every word comes
from the message catalogue of the report's language (`actlab.messages`). `rebuild` redoes it from a
run folder's files, `report_store` from a sweep store's finished runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actlab.activations import parse_layers
from actlab.analysis import primary_metric
from actlab.causes import causes
from actlab.hypotheses import DEPTH_FACTOR
from actlab.measured import diagnostic_means
from actlab.config import config_from_flat
from actlab.errors import ActlabError
from actlab.files import atomic_write
from actlab.interaction import loss_interaction, tuning_interaction
from actlab.messages import Words
from actlab.plots import (VERDICT_COLOURS, draw_side_by_side, labels_for, plot_activations, plot_causes,
                          plot_depth_gaps, plot_diagnostics, plot_final_bars, plot_robustness, plot_run,
                          plot_sensitivity)
from actlab.render import Block, Image, Paragraph, Strong, joined, to_html, to_markdown
from actlab.report.context import Context
from actlab.report.sections import SECTIONS
from actlab.word import to_docx
from actlab.results import ModelRun, Results, json_safe, load_results, write_results
from actlab.stats import DEFAULT_MARGIN_POINTS, analyse, pairwise_verdicts, values_by_seed
from actlab.store import results_from_store


def build_report(results: Results, ci: str | None = None, margin: float | None = None, lang: str = "en",
                 log=None, drawn: frozenset[Path] = frozenset(), docx: bool | None = None) -> tuple[Path, Path]:
    """Write stats.json, the report's plots, and the report in `lang` into the run folder: English as
    `report.md`/`report.html` with plots in `plots/`, another language as `report.<lang>.md`/`.html`
    with its plots in `plots/<lang>/`.

    `ci` is the confidence-interval method, `t` or `bootstrap`, and `margin` the equivalence margin
    in percentage points (defaults: the run's settings); `log` gets the one-line hint when Chinese
    plots fall back to English for want of a font (default: stderr). `drawn` names figures already
    drawn for this report (`draw_ahead`), which are not drawn again. `docx` (default: the run's
    `docx` setting) also writes the report as `report.docx` / `report.<lang>.docx`."""
    run_dir, w = results.run_dir, Words(lang)
    margin = margin if margin is not None else results.config.get("equivalence_margin", DEFAULT_MARGIN_POINTS)
    analysis = analyse(results, method=ci or results.config.get("ci", "t"), margin_points=margin)
    if results.tuning and "fixed_runs" in results.tuning:  # the verdicts at the fixed values, at this margin
        fixed = Results(run_dir, results.config, {}, [ModelRun.from_json(r) for r in results.tuning["fixed_runs"]])
        analysis["tuning"] = {**results.tuning, "fixed_pairwise": pairwise_verdicts(fixed, margin),
                              "interaction": tuning_interaction(results, fixed, primary_metric(analysis))}
    elif results.tuning:
        analysis["tuning"] = results.tuning
    analysis["causes"] = causes(results, analysis)
    if (crossed := loss_interaction(results, primary_metric(analysis))) is not None:
        analysis["loss_interaction"] = crossed
    atomic_write(run_dir / "stats.json", json.dumps(json_safe(analysis), indent=1) + "\n")
    metric = primary_metric(analysis)
    table = diagnostic_means(results)
    plots = plots_folder(run_dir, lang)
    with labels_for(w) as (plot_words, hint):
        _draw_plots(results, analysis, metric, table, plots, plot_words, drawn)
    if hint:
        (log or (lambda line: print(line, file=sys.stderr)))(f"actlab: {hint}")
    context = Context(results, analysis, metric, w, plots.relative_to(run_dir).as_posix(), plots, table, hint)
    blocks = numbered([block for section in SECTIONS for block in section.blocks(context)], w)
    stem = "report" if lang == "en" else f"report.{lang}"
    md_path, html_path = run_dir / f"{stem}.md", run_dir / f"{stem}.html"
    atomic_write(md_path, to_markdown(blocks))
    title = w.plain("report.title", name=results.config.get("name"), dataset=results.config.get("dataset"),
                    activations=w.plain("list.comma").join(results.labels))
    atomic_write(html_path, to_html(blocks, run_dir, title, lang=lang))
    if results.config.get("docx", False) if docx is None else docx:
        to_docx(blocks, run_dir, run_dir / f"{stem}.docx", lang)
    return md_path, html_path


def numbered(blocks: list[Block], w: Words) -> list[Block]:
    """Every figure with a caption gets its number (Figure 1, 图 1, in order) and its caption below it."""
    out: list[Block] = []
    for block in blocks:
        out.append(block)
        if isinstance(block, Image) and block.caption:
            count = sum(isinstance(b, Image) and bool(b.caption) for b in out)
            out.append(Paragraph(joined([Strong(w.plain("figure.label", n=count)), block.caption], " ")))
    return out


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


def _as_list(spec):
    return spec if isinstance(spec, list) else [spec]


def _draw_plots(results: Results, analysis: dict[str, Any], metric: str, table, plots: Path, w: Words,
                drawn: frozenset[Path]) -> None:
    """The curves, the final-accuracy bars, the diagnostics per layer and the activations' shapes
    (unless `drawn` has them); the last two (about half the drawing time) in a second process where
    one can be forked."""
    here: list[Callable[[], object]] = [lambda: plot_run(results, plots, w)]
    if any(s["n"] for s in analysis["metrics"].get(metric, {}).get("summary", {}).values()):
        summary = analysis["metrics"][metric]["summary"]
        values = {label: list(values_by_seed(results, label, metric).values()) for label in results.labels}
        title = w.plain("plot.final_bars", what=w.plain(f"metric.{metric}"))
        here.append(lambda: plot_final_bars(summary, values, title, plots / "final_accuracy.png", w))
    if any(row["verdict"] in VERDICT_COLOURS for e in analysis.get("causes", []) for row in e["contrasts"]):
        here.append(lambda: plot_causes(analysis["causes"], analysis["equivalence_margin_points"],
                                        plots / "causes.png", w))
        layers = len(results.config.get("hidden") or [1])
        here.append(lambda: plot_depth_gaps(analysis["causes"], layers, DEPTH_FACTOR, plots / "depth_gaps.png", w))
    if results.tuning:
        here += [lambda: plot_sensitivity(results.tuning, plots / "sensitivity.png", w),
                 lambda: plot_robustness(results.tuning, plots / "robustness.png", w)]
    there: list[Callable[[], object]] = []
    if plots / "activations.png" not in drawn:
        there.append(lambda: _plot_run_activations(results, plots / "activations.png", w))
    if table:
        there.append(lambda: plot_diagnostics(table, ("init", "final"), plots / "diagnostics.png", w))
    draw_side_by_side(here, there)


def rebuild(run_dir: str | Path, ci: str | None = None, margin: float | None = None,
            lang: str = "en", docx: bool | None = None) -> tuple[Path, Path]:
    """`actlab report RUN`: rebuild stats.json, plots and the report in `lang` from the run folder's files."""
    return build_report(load_results(run_dir), ci, margin, lang, docx=docx)


def report_store(folder: Path, where: dict[str, str], ci: str | None = None,
                 margin: float | None = None, lang: str = "en") -> tuple[Path, Path]:
    """A report on the finished runs of a sweep store matching `where` (e.g. {"hidden": "512"}).

    The runs are read by `actlab.store.results_from_store`; the report, its results files, tables
    and plots go to `<folder>/report[-key=value…]/`.
    """
    results = results_from_store(folder, where)
    results.run_dir.mkdir(parents=True, exist_ok=True)
    write_results(results)
    try:  # the runs' shared settings, where they form an experiment, rerun with more seeds
        atomic_write(results.run_dir / "config.toml", config_from_flat(
            {k: v for k, v in results.config.items() if k not in ("seed", "seeds")}).to_toml())
    except ActlabError:
        pass
    return build_report(results, ci, margin, lang)
