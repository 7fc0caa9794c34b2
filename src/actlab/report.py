"""The written report of a run: `report.md` and a self-contained `report.html`, plus `stats.json`.

The report is built from measurements only: the results table and ranking come from `actlab.stats`,
the explanations from `actlab.diagnostics` rows, and the Analysis section is composed sentence by
sentence from those numbers (each sentence cites the figure it rests on), so two different result
sets read differently. One list of blocks renders to both Markdown and HTML; the HTML embeds its
images as data URIs and makes no external request.
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy import stats as sps

from actlab.activations import activation_family, parse_layers
from actlab.plots import plot_activations, plot_diagnostics, plot_final_bars, plot_run
from actlab.presets import PRESETS
from actlab.results import Results, atomic_write, json_safe, load_results, safe_name
from actlab.stats import ALPHA, METRICS, analyse, metric_value, min_wilcoxon_p

# --- a tiny document model rendered to Markdown and HTML -------------------------------------


@dataclass(frozen=True)
class Block:
    kind: str  # h1, h2, h3, p, ul, table, img
    content: Any


def _md(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.content)
        elif b.kind == "p":
            out.append(b.content)
        elif b.kind == "ul":
            out.append("\n".join(f"- {item}" for item in b.content))
        elif b.kind == "table":
            header, rows = b.content
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif b.kind == "img":
            path, alt = b.content
            out.append(f"![{alt}]({path})")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Markdown's `code` and **bold** as HTML, everything else escaped."""
    parts = html.escape(text).split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.5}table{border-collapse:collapse;margin:1em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f5f5f5;padding:0 .2em}
h1{border-bottom:2px solid #3182bd}h2{border-bottom:1px solid #ddd;margin-top:1.6em}"""


def _html(blocks: list[Block], run_dir: Path, title: str) -> str:
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{_inline(b.content)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            header, rows = b.content
            out.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in rows)
                       + "</table>")
        elif b.kind == "img":
            path, alt = b.content
            data = base64.b64encode((run_dir / path).read_bytes()).decode()
            out.append(f"<img src='data:image/png;base64,{data}' alt='{html.escape(alt)}'>")
    out.append("</body></html>")
    return "\n".join(out)


# --- numbers used by several sections ----------------------------------------------------------

def pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def pts(x: float) -> str:
    """A difference of accuracies in percentage points."""
    return f"{100 * x:+.2f} points"


def p_value(p: float) -> str:
    if math.isnan(p):
        return "–"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _ci(s: dict[str, float], scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
    if s["n"] < 2 or math.isnan(s["ci_low"]):
        return f"{s['mean'] * scale:.{digits}f}{unit}"
    return (f"{s['mean'] * scale:.{digits}f}{unit} (95% CI {s['ci_low'] * scale:.{digits}f}–"
            f"{s['ci_high'] * scale:.{digits}f})")


def diagnostic_means(results: Results) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """table[stage][metric][activation][layer] = mean over seeds; stage is "init" or "final"."""
    acc: dict[tuple[str, str, str, str], list[float]] = {}
    for run in results.runs:
        if run.status != "ok" or not run.diagnostics:
            continue
        last = max((row["stage"] for row in run.diagnostics if row["stage"].startswith("epoch_")),
                   key=lambda s: int(s.split("_")[1]), default=None)
        for row in run.diagnostics:
            stage = "init" if row["stage"] == "init" else "final" if row["stage"] == last else None
            if stage and row["value"] is not None:
                acc.setdefault((stage, row["metric"], run.label, row["layer"]), []).append(row["value"])
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for (stage, metric, label, layer), values in acc.items():
        table.setdefault(stage, {}).setdefault(metric, {}).setdefault(label, {})[layer] = statistics.fmean(values)
    return table


def _layer_max(table, stage: str, metric: str, label: str) -> tuple[str, float] | None:
    values = table.get(stage, {}).get(metric, {}).get(label, {})
    values = {k: v for k, v in values.items() if k.startswith("hidden")}
    if not values:
        return None
    layer = max(values, key=values.get)
    return layer, values[layer]


def _first_epoch_acc(results: Results, label: str) -> float | None:
    values = [r.epochs[0]["test_acc"] for r in results.by_label(label)
              if r.status == "ok" and r.epochs and r.epochs[0].get("test_acc") is not None]
    return statistics.fmean(values) if values else None


# --- the Analysis section ---------------------------------------------------------------------

def primary_metric(analysis: dict[str, Any]) -> str:
    return "best_val_test_acc" if "best_val_test_acc" in analysis["metrics"] else "final_test_acc"


def rerun_command(results: Results, seeds: int = 5) -> str:
    return f"actlab run --config {results.run_dir / 'config.toml'} --seeds {seeds} --out {results.run_dir}-seeds{seeds}"


def analysis_text(results: Results, analysis: dict[str, Any]) -> list[Block]:
    """The written analysis: verdict with CIs and tests, then what the diagnostics show and imply."""
    metric = primary_metric(analysis)
    if metric not in analysis["metrics"]:
        statuses = ", ".join(f"{r.label} seed {r.seed}: {r.status}" for r in results.runs)
        return [Block("p", f"No model finished training ({statuses}), so there is nothing to compare. "
                           f"A diverged run usually means the learning rate is too high for this optimizer.")]
    m = analysis["metrics"][metric]
    summary, tiers, tests = m["summary"], m["tiers"], m["pairwise"]
    n_seeds = len(analysis["seeds"])
    what = METRICS[metric][0]
    blocks: list[Block] = []
    ranked = [label for tier in tiers for label in tier]
    if not ranked:
        return [Block("p", "No model finished training, so there is nothing to compare.")]
    best, worst = ranked[0], ranked[-1]
    verdict: list[str] = []
    if n_seeds < 3:
        spread = summary[best]["mean"] - summary[worst]["mean"]
        verdict.append(
            f"With {n_seeds} seed{'s' if n_seeds > 1 else ''} per activation, differences cannot be judged: "
            f"a paired test needs at least 3 seeds, and the seed-to-seed noise is unknown. On "
            f"{'this seed' if n_seeds == 1 else 'these seeds'}, {best} had the highest {what} "
            f"({pct(summary[best]['mean'])}) and {worst} the lowest ({pct(summary[worst]['mean'])}), "
            f"a spread of {100 * spread:.2f} points. To find out which differences are real, run "
            f"`{rerun_command(results)}`.")
    else:
        top = tiers[0]
        verdict.append(f"Over {n_seeds} seeds, {best} has the highest {what}: {_ci(summary[best])}.")
        if len(top) == len(ranked):
            verdict.append(f"No activation differs significantly from {best} (paired t-test over seeds, "
                           f"Holm-corrected, α = {ALPHA}): all {len(ranked)} are tied at this N.")
        elif len(top) > 1:
            verdict.append(f"Tied with it (no significant difference): {', '.join(top[1:])}.")
        pair = {frozenset((t["a"], t["b"])): t for t in tests}
        if len(top) == 1 and all(pair[frozenset((best, label))]["significant"] for label in ranked[1:]):
            verdict.append("Every other activation is significantly below it.")
        versus = []
        for label in ranked[1:]:
            t = pair[frozenset((best, label))]
            diff = t["mean_diff"] if t["a"] == label else -t["mean_diff"]
            low, high = (t["diff_ci_low"], t["diff_ci_high"]) if t["a"] == label else (-t["diff_ci_high"], -t["diff_ci_low"])
            status = "significantly below" if t["significant"] else "not significantly different from"
            versus.append(
                f"{label}: {_ci(summary[label])}, {pts(diff)} vs {best} (95% CI of the paired difference "
                f"{100 * low:+.2f} to {100 * high:+.2f}; paired t {p_value(t['p_t_holm'])} after Holm, "
                f"Wilcoxon {p_value(t['p_wilcoxon_holm'])}; effect size d_z = {abs(t['effect_dz']):.2f}) — "
                f"{status} {best}.")
        blocks += [Block("p", " ".join(verdict)), Block("ul", versus)]
        verdict = []
        if min_wilcoxon_p(n_seeds) >= ALPHA:
            verdict.append(f"With {n_seeds} seeds the exact Wilcoxon test cannot go below p = "
                           f"{min_wilcoxon_p(n_seeds):.3f}, so only the t-test can reach significance; "
                           f"use 6 or more seeds for the rank test to count.")
        if len(tiers) > 1:
            ties = " (= means tied)" if any(len(tier) > 1 for tier in tiers) else ""
            verdict.append("Ranking: " + "; ".join(
                f"{i}. {' = '.join(tier)}" for i, tier in enumerate(tiers, start=1)) + f"{ties}.")
    counts = analysis["runs"]
    failed = {label: c for label, c in counts.items() if c["ok"] < c["runs"]}
    for label, c in failed.items():
        runs = results.by_label(label)
        if c["failed_to_learn"]:
            every = [r.final_test_acc for r in runs
                     if r.status in ("ok", "failed_to_learn") and r.final_test_acc is not None]
            with_them = f"; with them the mean would be {pct(statistics.fmean(every))}" if every else ""
            verdict.append(f"{label} failed to learn in {c['failed_to_learn']} of {c['runs']} runs (failure rate "
                           f"{c['failed_to_learn']}/{c['runs']}: best accuracy below 20%, twice chance). Those runs "
                           f"are not in its mean{with_them}, so its result is bimodal: it either learns or it does not.")
        others = [r.status for r in runs if r.status not in ("ok", "failed_to_learn")]
        if others:
            verdict.append(f"{label} did not finish {len(others)} of {c['runs']} runs ({', '.join(others)}); "
                           f"those runs are left out of every mean and test.")
    if verdict:
        blocks.append(Block("p", " ".join(verdict)))
    behind = ranked[1:] if n_seeds < 3 else [label for tier in tiers[1:] for label in tier]
    blocks += _diagnostic_sentences(results, ranked, best, behind, tentative=n_seeds < 3)
    return blocks


def _diagnostic_sentences(results: Results, ranked: list[str], best: str, behind: list[str],
                          tentative: bool) -> list[Block]:
    """Per activation: what the measurements show, compared with the best activation's."""
    table = diagnostic_means(results)
    if not table:
        return [Block("p", "No diagnostics were measured (`diagnostics = false`), so the causes cannot be examined.")]
    items = []
    grad0 = {label: table.get("init", {}).get("grad_norm", {}).get(label, {}).get("linear1") for label in ranked}
    ratio0 = {label: table.get("init", {}).get("grad_ratio_first_last", {}).get(label, {}).get("all") for label in ranked}
    first = {label: _first_epoch_acc(results, label) for label in ranked}
    family_of = {r.label: activation_family(r.activation) for r in results.runs}
    for label in ranked:
        family = family_of[label]
        facts = []
        sat = _layer_max(table, "init", "saturated_fraction", label)
        if sat and family != "relu" and sat[1] >= 0.05:
            facts.append(f"{sat[1]:.0%} of {sat[0]}'s pre-activations are saturated at init "
                         f"(derivative below 5% of its maximum)")
        dead_end = _layer_max(table, "final", "dead_fraction", label)
        dead_init = _layer_max(table, "init", "dead_fraction", label)
        if dead_end and dead_end[1] > 0:
            facts.append(f"{dead_end[1]:.1%} of {dead_end[0]}'s units are dead after training (zero on all "
                         f"diagnostic images; {dead_init[1] if dead_init else 0:.1%} at init)")
        elif dead_end and family == "relu":
            facts.append("no dead units in any layer after training")
        g, gb = grad0.get(label), grad0.get(best)
        if g is not None and gb and label != best:
            factor = g / gb
            word = f"{1 / factor:.1f}× smaller than" if factor < 1 else f"{factor:.1f}× larger than"
            facts.append(f"first-layer gradient norm at init {g:.3g}, {word} {best}'s {gb:.3g}")
        elif g is not None and label == best:
            facts.append(f"first-layer gradient norm at init {g:.3g}")
        r = ratio0.get(label)
        if r is not None and r < 0.1:
            facts.append(f"the first layer's gradient is {r:.3f}× the last layer's at init (vanishing gradients)")
        std = table.get("init", {}).get("act_std", {}).get(label, {})
        if std and family in ("smooth", "bounded"):
            last_layer = max(std)
            mean = table["init"]["act_mean"][label][last_layer]
            facts.append(f"{last_layer} output at init has mean {mean:.2f} and std {std[last_layer]:.2f}")
        a1, b1 = first.get(label), first.get(best)
        if a1 is not None and b1 is not None and label != best:
            facts.append(f"epoch-1 test accuracy {pct(a1)} vs {best}'s {pct(b1)}")
        if facts:
            items.append(f"**{label}**: " + "; ".join(facts) + ".")
    blocks = [Block("h3", "What the diagnostics show"), Block("ul", items)] if items else []
    causes = _likely_causes(table, behind, best, grad0, first, family_of)
    if causes:
        title = "Possible causes (tentative: the differences are not established)" if tentative else "Likely causes"
        blocks += [Block("h3", title), Block("ul", causes)]
    elif behind and not tentative:
        blocks.append(Block("p", f"The diagnostics show no gradient, saturation or dead-unit deficit that would explain "
                                 f"why {', '.join(behind)} fell behind {best}."))
    return blocks


def _likely_causes(table, behind, best, grad0, first, family_of) -> list[str]:
    """Explanations the measurements support for the activations behind the best, citing the numbers."""
    causes = []
    for label in behind:
        a1, b1 = first.get(label), first.get(best)
        slow_start = a1 is not None and b1 is not None and b1 - a1 >= 0.005
        sat = _layer_max(table, "init", "saturated_fraction", label)
        sat_best = _layer_max(table, "init", "saturated_fraction", best)
        g, gb = grad0.get(label), grad0.get(best)
        if g is None or gb is None:
            continue  # no diagnostics to compare (switched off for one of them)
        dead = _layer_max(table, "final", "dead_fraction", label)
        dead_best = _layer_max(table, "final", "dead_fraction", best)
        family = family_of[label]
        if g is not None and gb and g < gb / 2:
            line = (f"{label}: its first-layer gradient at init is {gb / g:.1f}× smaller than {best}'s "
                    f"({g:.3g} vs {gb:.3g})")
            if family == "bounded" and sat and sat[1] >= 0.05:
                line += f", with {sat[1]:.0%} of {sat[0]}'s pre-activations saturated"
            line += (f" — consistent with its slower first epoch ({pct(a1)} vs {pct(b1)})." if slow_start else
                     f"; yet its first epoch was not slower ({pct(a1)} vs {pct(b1)}), so the small gradient "
                     f"did not hold it back here.")
            causes.append(line)
        elif slow_start:
            causes.append(f"{label}: slower first epoch ({pct(a1)} vs {best}'s {pct(b1)}) without a smaller "
                          f"gradient at init ({g:.3g} vs {gb:.3g}), so the gradient scale does not explain it.")
        if dead and dead[1] >= 0.02 and (not dead_best or dead[1] > 2 * dead_best[1]):
            at_most = f"{dead_best[1]:.1%} at most" if dead_best else "none measured"
            causes.append(f"{label}: {dead[1]:.1%} of {dead[0]}'s units died during training "
                          f"({best}: {at_most}) and no longer learn, which reduces its capacity.")
        if sat and sat_best and family == "bounded" and sat[1] >= 0.2 and sat[1] > sat_best[1] + 0.1 and not (g and gb and g < gb / 2):
            causes.append(f"{label}: {sat[1]:.0%} of {sat[0]}'s pre-activations saturated at init "
                          f"vs {sat_best[1]:.0%} for {best}; saturated units pass almost no gradient.")
    return causes


# --- published figures side by side -------------------------------------------------------

def _preset_matches(results: Results) -> str | None:
    """The preset this run reproduces unchanged (seeds aside), if any."""
    name = results.config.get("name")
    preset = PRESETS.get(name)
    if preset is None:
        return None
    for key, value in preset.experiment.items():
        if key in ("seed", "seeds"):
            continue
        ours = results.config.get(key)
        if key == "output" and isinstance(value, list):
            ours = ours if isinstance(ours, list) else [ours]
        if ours != value:
            return None
    return name


def _beside_ours(results: Results, published: dict[str, float], field: str, title: str, fmt) -> Block:
    """A table of one published figure per activation beside our mean and seed range of `field`."""
    rows = []
    for label, figure in published.items():
        ours = [getattr(r, field) for r in results.by_label(label) if r.status == "ok" and getattr(r, field) is not None]
        if ours:
            rows.append([label, fmt(figure), fmt(statistics.fmean(ours)), f"{fmt(min(ours))}–{fmt(max(ours))}",
                         "yes" if min(ours) <= figure <= max(ours) else "no"])
    return Block("table", (["activation", title, "ours: mean", "ours: seed range", "inside"], rows))


def published_blocks(results: Results) -> list[Block]:
    name = _preset_matches(results)
    if name is None:
        if results.config.get("name") in PRESETS:
            return [Block("h2", "Published figures"),
                    Block("p", "This run changed the preset's settings, so the write-up's figures are not comparable "
                               "and are not shown.")]
        return []
    preset = PRESETS[name]
    blocks = [Block("h2", "Published figures beside ours"), Block("p", f"Source: {preset.source}.")]
    pub = preset.published
    if "test_acc" in pub:
        header = ["activation", "epoch", "published %", "ours: mean %", "ours: seed range %", "inside our range"]
        rows, inside, total = [], 0, 0
        for label, figures in pub["test_acc"].items():
            for epoch, figure in enumerate(figures, start=1):
                ours = [r.epochs[epoch - 1]["test_acc"] for r in results.by_label(label)
                        if r.status == "ok" and len(r.epochs) >= epoch and r.epochs[epoch - 1].get("test_acc") is not None]
                if not ours:
                    continue
                lo, hi = 100 * min(ours), 100 * max(ours)
                hit = lo <= figure <= hi
                inside += hit
                total += 1
                if epoch in (1, len(figures)) or len(ours) > 1:
                    rows.append([label, epoch, f"{figure:.2f}", f"{100 * statistics.fmean(ours):.2f}",
                                 f"{lo:.2f}–{hi:.2f}", "yes" if hit else "no"])
        n = len({r.seed for r in results.runs})
        blocks.append(Block("p", f"{inside} of {total} published per-epoch test accuracies fall inside the range of "
                                 f"our {n} seed{'s' if n > 1 else ''}" + (" (with one seed the range is a single "
                                                                           "point, so almost none can)." if n == 1 else ".")))
        blocks.append(Block("table", (header, rows)))
    if "final_test_loss" in pub:
        blocks.append(_beside_ours(results, pub["final_test_loss"], "final_test_loss",
                                   "published test loss @ last epoch", lambda v: f"{v:.4f}"))
    if "one_batch_acc" in pub:
        rows = []
        for label, figure in pub["one_batch_acc"].items():
            ours = [r.final_test_acc for r in results.by_label(label) if r.status == "ok" and r.final_test_acc is not None]
            if not ours:
                continue
            p = statistics.fmean(ours)
            lo, hi = (v / 64 for v in sps.binom.interval(0.95, 64, p))
            rows.append([label, f"{figure:.4f} ({round(figure * 64)}/64)", pct(p), f"{lo:.4f}–{hi:.4f}",
                         "yes" if lo <= figure <= hi else "no"])
        blocks.append(Block("p", "The write-up's sigmoid and tanh figures are accuracies on one batch of 64 images. "
                                 "A batch of 64 drawn from a model with our full-test-set accuracy p scores "
                                 "Binomial(64, p)/64; the 95% interval of that is shown."))
        blocks.append(Block("table", (["output", "published (one batch)", "ours (full test set)",
                                        "95% range of one batch of 64", "inside"], rows)))
    if "best_val_test_acc" in pub:
        blocks.append(_beside_ours(results, pub["best_val_test_acc"], "best_test_acc",
                                   "published best-val checkpoint test acc", pct))
    if "conclusion" in pub:
        blocks.append(Block("p", f"The write-up concluded: {pub['conclusion']}."))
    for difference in preset.differences:
        blocks.append(Block("p", f"Difference: {difference}"))
    return blocks


# --- the whole report ---------------------------------------------------------------------------

def _config_rows(config: dict[str, Any]) -> list[list[str]]:
    keys = ["dataset", "hidden", "activations", "output", "init", "optimizer", "lr", "momentum", "weight_decay",
            "batch_size", "epochs", "seeds", "val_split", "train_subset", "test_subset", "device"]
    return [[f"`{k}`", f"`{config[k]}`"] for k in keys if k in config]


def results_table(results: Results, analysis: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    metrics = analysis["metrics"]
    has_val = "best_val_test_acc" in metrics
    header = ["activation", "runs ok", "final test acc", "peak test acc", "final test loss", "epochs to 99%"]
    header += ["best-val checkpoint test acc", "best epochs"] if has_val else []
    header += ["train s"]
    rows = []
    for label in results.labels:
        counts = analysis["runs"][label]
        get = lambda m: metrics.get(m, {}).get("summary", {}).get(label)  # noqa: E731
        row = [label, f"{counts['ok']}/{counts['runs']}"]
        row += [_ci(s) if (s := get("final_test_acc")) and s["n"] else "–",
                f"{100 * s['mean']:.2f}%" if (s := get("peak_test_acc")) and s["n"] else "–",
                f"{s['mean']:.4f} ± {s['std']:.4f}" if (s := get("final_test_loss")) and s["n"] > 1 else
                (f"{s['mean']:.4f}" if s and s["n"] else "–"),
                f"{s['mean']:.1f}" if (s := get("epochs_to_99pct")) and s["n"] else "–"]
        if has_val:
            row += [_ci(s) if (s := get("best_val_test_acc")) and s["n"] else "–",
                    ", ".join(str(r.best_epoch) for r in results.by_label(label) if r.best_epoch)]
        row += [f"{s['mean']:.1f}" if (s := get("train_seconds")) and s["n"] else "–"]
        rows.append(row)
    return header, rows


def significance_matrix(results: Results, analysis: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    metric = primary_metric(analysis)
    tests = {(t["a"], t["b"]): t for t in analysis["metrics"][metric]["pairwise"]}
    labels = results.labels
    rows = []
    for a in labels:
        row = [a]
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
    return ["row − column (points)"] + labels, rows


def build_report(results: Results, ci: str | None = None) -> tuple[Path, Path]:
    """Write stats.json, the report's plots, report.md and report.html into the run folder.

    `ci` is the confidence-interval method, `t` or `bootstrap` (default: the run's `ci` setting)."""
    run_dir = results.run_dir
    ci = ci or results.config.get("ci", "t")
    analysis = analyse(results, method=ci)
    atomic_write(run_dir / "stats.json", json.dumps(json_safe(analysis), indent=1) + "\n")
    plot_run(results)
    metric = primary_metric(analysis)
    plots = run_dir / "plots"
    finished = metric in analysis["metrics"]
    if finished:
        summary = analysis["metrics"][metric]["summary"]
        values = {label: [v for r in results.by_label(label) if r.status == "ok"
                          and (v := metric_value(r, metric)) is not None] for label in results.labels}
        plot_final_bars(summary, values, f"{METRICS[metric][0]} — mean, 95% CI, seeds as dots",
                        plots / "final_accuracy.png")
    table = diagnostic_means(results)
    if table:
        plot_diagnostics(table, ("init", "final"), plots / "diagnostics.png")
    activations = list(dict.fromkeys(r.activation for r in results.runs))
    specs = [spec for a in activations for spec in _as_list(parse_layers(a))]
    plot_activations(list({s.label: s for s in specs}.values()), plots / "activations.png", -5, 5)

    env = results.environment
    config = results.config
    n_seeds = len(analysis["seeds"])
    blocks = [
        Block("h1", f"actlab report: {config.get('name')}"),
        Block("p", f"{len(results.runs)} models ({len(results.labels)} activations × {n_seeds} seed"
                   f"{'s' if n_seeds > 1 else ''}), {config.get('dataset')}, run {env.get('started', '')} on "
                   f"{env.get('gpu') or env.get('device')} with actlab {env.get('actlab')}, torch {env.get('torch')}, "
                   f"Python {env.get('python')}. Run folder: `{run_dir}`."),
        Block("h2", "Analysis"), *analysis_text(results, analysis),
    ]
    if finished:
        blocks += _results_blocks(results, analysis, metric)
    blocks += published_blocks(results)
    blocks.append(Block("h2", "Curves"))
    for name in ("test_acc", "train_loss", "test_loss", "val_acc"):
        if (plots / f"{name}.png").exists():
            blocks.append(Block("img", (f"plots/{name}.png", name)))
    if table:
        blocks += [Block("h2", "Diagnostics"),
                   Block("p", "Measured on the first 2,000 test images, per hidden layer, at initialisation and after "
                              "the last epoch (means over seeds). Dead: the unit's output is zero for every image. "
                              "Saturated: the activation's derivative is below 5% of its maximum. Gradient norm: the "
                              "norm of the loss gradient with respect to each linear layer's weights."),
                   Block("img", ("plots/diagnostics.png", "diagnostics per layer")),
                   Block("table", _diagnostics_table(table))]
    blocks += [Block("h2", "The activations"), Block("img", ("plots/activations.png", "activations and derivatives")),
               Block("h2", "Configuration"), Block("table", (["key", "value"], _config_rows(config))),
               Block("h2", "Method"), Block("p", METHOD)]
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write(md_path, _md(blocks))
    atomic_write(html_path, _html(blocks, run_dir, f"actlab report: {config.get('name')}"))
    return md_path, html_path


METHOD = ("Paired design: within one seed every activation sees the same training examples in the same order, "
          "the same validation split, and starts from the same initial weights (where layer shapes match), so the "
          "difference between two activations is measured seed by seed. Significance is decided by a paired t-test "
          "on the per-seed differences, Holm-corrected over all pairs; the Wilcoxon signed-rank test is reported "
          "beside it. The ranking places each activation in the tier of the best activation not yet placed unless "
          "it differs significantly from it. Every number here is in `results.json`, `stats.json` and "
          "`diagnostics.csv` beside this report.")


def _results_blocks(results: Results, analysis: dict[str, Any], metric: str) -> list[Block]:
    tiers = analysis["metrics"][metric]["tiers"]
    return [
        Block("h2", "Results"),
        Block("table", results_table(results, analysis)),
        Block("p", f"Means over the seeds that finished; 95% confidence intervals "
                   f"{'from Student’s t' if analysis['ci_method'] == 't' else 'by BCa bootstrap (9,999 resamples)'}. "
                   "'peak' is the highest test accuracy over the epochs, chosen on the test set (optimistic)."),
        Block("img", ("plots/final_accuracy.png", "final accuracy per activation with confidence intervals")),
        Block("h2", "Ranking and significance"),
        Block("p", f"By {METRICS[metric][0]}: " + "; ".join(f"{i}. {' = '.join(t)}" for i, t in enumerate(tiers, 1))
                   + f". Activations joined by = are tied (their paired difference is not significant after Holm's "
                     f"correction, α = {ALPHA})."),
        Block("table", significance_matrix(results, analysis)),
        Block("p", "Each cell: mean paired difference of the row minus the column over seeds, in percentage points, "
                   "with the Holm-corrected paired t-test p-value; ✱ marks a significant difference."),
    ]


def _as_list(spec):
    return spec if isinstance(spec, list) else [spec]


def _diagnostics_table(table) -> tuple[list[str], list[list[str]]]:
    header = ["activation", "layer", "dead (init → final)", "saturated (init → final)", "output mean, std (final)"]
    learned = sorted({m for stage in table.values() for m in stage if m.startswith("param_") and not m.endswith("_std")})
    if learned:
        header.append("learned parameters (init → final, mean over units)")
    rows = []
    labels = list(table.get("init", {}).get("dead_fraction", {}))
    for label in labels:
        for layer in table["init"]["dead_fraction"][label]:
            get = lambda stage, metric: table.get(stage, {}).get(metric, {}).get(label, {}).get(layer, math.nan)  # noqa: E731
            row = [label, layer, f"{get('init', 'dead_fraction'):.1%} → {get('final', 'dead_fraction'):.1%}",
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

    Runs are compared by activation; keys that still vary within the subset (say lr) become part of
    each label, so different settings are never averaged together. The report, its tables and plots
    go to `<folder>/report[-key=value…]/`.
    """
    from actlab.errors import ActlabError
    from actlab.store import open_store

    with open_store(folder) as store:
        rows = store.rows(where, status="done")
        if not rows:
            raise ActlabError(f"no finished run in {folder} matches {where or 'the store'}; see `actlab runs list "
                              f"{folder}` for the config values")
        keys = sorted(set().union(*(r["config"] for r in rows)))
        same = {k for k in keys if len({json.dumps(r["config"].get(k), sort_keys=True) for r in rows}) == 1}
        varying = [k for k in keys if k not in same and k not in ("activations", "seed", "seeds")]
        runs = []
        for row in rows:
            record = store.model_run(row)
            if varying:
                record.label = f"{record.label} " + " ".join(f"{k}={row['config'].get(k)}" for k in varying)
            runs.append(record)
    config = {k: rows[0]["config"][k] for k in same}
    config.update(seeds=sorted({r.seed for r in runs}), activations=list(dict.fromkeys(r.activation for r in runs)))
    name = "report" + "".join(f"-{k}={v}" for k, v in where.items())
    run_dir = folder / safe_name(name)
    from actlab import __version__
    from actlab.results import write_results

    environment = {"device": "sweep store", "actlab": __version__, "started": "", "store": str(folder),
                   "where": where}
    results = Results(run_dir, config, environment, runs)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_results(results)
    return build_report(results, ci)
