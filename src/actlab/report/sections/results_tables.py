"""The results per activation (accuracies, failures, convergence, time, groups) and the verdict of
every pair with its tests, once any model finished."""

from __future__ import annotations

from typing import Any

from actlab.analysis import primary_metric
from actlab.numbers import mean_ci, p_text, pct, pts
from actlab.messages import Words
from actlab.render import Block, Code, Heading, Image, Paragraph, Table, Text, joined
from actlab.results import Results
from actlab.stats import ALPHA
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    """The results table and the final-accuracy figure (once models finished)."""
    results, analysis, metric, w, images = c.results, c.analysis, c.metric, c.w, c.images
    if not any(s["n"] for s in analysis["metrics"].get(metric, {}).get("summary", {}).values()):
        return []
    ci = w("results.ci_t" if analysis["ci_method"] == "t" else "results.ci_bootstrap")
    losses = list(dict.fromkeys(r.loss for r in results.runs))
    caption = w("results.caption", ci=ci)
    if len(losses) > 1:
        caption = joined([caption, w("table.losses_differ", losses=Code(", ".join(losses)))], w.plain("list.sentence"))
    return [Heading(2, w("report.results")), Table(*results_table(results, analysis, w)), Paragraph(caption),
            Image(f"{images}/final_accuracy.png", w.plain("plot.alt_final"),
                  w("figure.final", what=w(f"metric.{metric}"), n=len(analysis["seeds"])))]


def pairs_blocks(c: Context) -> list[Block]:
    """The pairwise table: every pair's difference, interval, tests and verdict."""
    analysis, metric, w = c.analysis, c.metric, c.w
    m = analysis["metrics"].get(metric, {})
    if not any(s["n"] for s in m.get("summary", {}).values()) or len(c.results.labels) < 2:
        return []
    family = max(1, analysis["tested_pairs"])
    lead = [w("pairs.caption", what=w(f"metric.{metric}"), margin=f"{analysis['equivalence_margin_points']:g}",
              pairs=w.count("pair", family), level=f"{100 * (1 - ALPHA / family):.4g}%")]
    return [Heading(2, w("report.pairs")), Paragraph(joined(lead, w.plain("list.sentence"))),
            Table(*pairwise_table(m, w))]


def results_table(results: Results, analysis: dict[str, Any], w: Words) -> tuple[list, list[list]]:
    """Per activation: runs and failures, the accuracies with failed runs counted (and as finished),
    loss, speed of convergence, time, and its group letters."""
    metrics, primary = analysis["metrics"], primary_metric(analysis)
    has_val = "best_val_test_acc" in metrics
    header = [w("table.activation"), *([w("tuning.chosen")] if results.tuning else []), w("table.runs"),
              w("table.failures"), w("table.final_acc")]
    header += [w("table.best_val_acc")] if has_val else []
    header += [w("table.as_finished"), w("table.peak_acc"), w("table.final_loss"), w("table.epochs_to_final"),
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
                f"{s['mean']:.1f}" if (s := get("epochs_to_final")) and s["n"] else "–",
                f"{s['mean']:.1f}" if (s := get("train_seconds")) and s["n"] else "–",
                Code(groups[label]) if label in groups else "–"]
        rows.append(row)
    return header, rows


def pairwise_table(m: dict[str, Any], w: Words) -> tuple[list, list[list]]:
    """One row per pair: the paired difference, its simultaneous interval and every test beside its verdict."""
    header = [w("table.pair"), w("table.seeds"), w("table.difference"), w("table.diff_ci"), w("table.p_t"),
              w("table.p_sign_flip"), w("table.p_tost"), w("table.dz"), w("table.verdict"), w("table.seeds_needed")]
    rows = []
    for t in m["pairwise"]:
        verdict = w("verdict_short.better", winner=Code(t["a"] if t["verdict"] == "a_better" else t["b"])) \
            if t["verdict"] in ("a_better", "b_better") else w(f"verdict_short.{t['verdict']}")
        dz = "–" if t["effect_dz"] is None else f"{t['effect_dz']:+.2f}"
        decision = p_text(t["p_decision_holm"])
        if t.get("decided_by") == "sign_flip" and t["p_decision_holm"] is not None:
            decision = w("table.by_sign_flip", p=decision)
        interval = f"{pts(t['diff_ci_adj_low'])} … {pts(t['diff_ci_adj_high'])}" \
            if t.get("diff_ci_adj_low") is not None else "–"
        rows.append([joined([Code(t["a"]), Code(t["b"])], " – "), t["n"], pts(t["mean_diff"]), interval, decision,
                     p_text(t["p_sign_flip_holm"]), p_text(t["p_tost_holm"]), dz, verdict, _seeds_cell(t, w)])
    return header, rows


def _seeds_cell(t: dict[str, Any], w: Words) -> Text:
    """Seeds for 80% power, for an inconclusive pair only: the estimate and the range d_z's interval
    allows, "over 1,000", or no estimate where the differences have no spread."""
    if t["verdict"] != "inconclusive":
        return "–"
    if t["effect_dz"] is None:
        return w("table.no_estimate")
    if t["seeds_needed"] is None:
        return w("table.over_1000")
    low, high = t.get("seeds_needed_range") or (None, None)
    if low is None:
        return str(t["seeds_needed"])
    return f"{t['seeds_needed']} ({low}–{high if high is not None else w.plain('table.over_1000')})"
