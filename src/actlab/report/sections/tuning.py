"""A tuned run: each activation's chosen values, its verdicts at the tuned and at the fixed values,
and the sensitivity and robustness figures."""

from __future__ import annotations

from typing import Any

from actlab.analysis import primary_metric
from actlab.numbers import mean_ci, p_text, pct, point_text, pts
from actlab.interaction import shared_choice
from actlab.messages import Words
from actlab.render import Block, Code, Heading, Image, Paragraph, Table, Text, joined
from actlab.report.context import Context
from actlab.results import Results


def blocks(c: Context) -> list[Block]:
    return tuning_blocks(c.results, c.analysis, c.w, c.images) if c.results.tuning else []


def tuning_blocks(results: Results, analysis: dict[str, Any], w: Words, images: str) -> list[Block]:
    """What tuning chose and how much each activation's result moves across the grid, then each
    pair's verdict at the tuned values beside its verdict at the experiment's fixed values."""
    tuning = analysis["tuning"]
    grid = joined((w("tuning.grid_item", key=Code(k), values=Code(", ".join(f"{v:g}" for v in values)))
                   for k, values in tuning["grid"].items()), w.plain("list.semicolon"))
    rows, edges = [], []
    for label, entry in tuning["activations"].items():
        chosen = entry["chosen"]
        at = next(p for p in entry["points"] if p["point"] == chosen)
        rows.append([Code(label), Code(point_text(chosen)), mean_ci(w, at), pct(entry["mean_over_grid"]),
                     pct(entry["worst"]), ", ".join(entry["at_edge"]) or "–"])
        edges += [w("tuning.edge", label=Code(label), key=Code(key), value=f"{chosen[key]:g}",
                    side=w(f"tuning.side_{side}")) for key, side in entry["at_edge"].items()]
    header = [w("table.activation"), w("tuning.chosen"), w("tuning.at_chosen"), w("tuning.mean_over_grid"),
              w("tuning.worst"), w("tuning.edge_column")]
    blocks: list[Block] = [
        Heading(2, w("tuning.heading")),
        Paragraph(w("tuning.intro", grid=grid, tuning_seeds=Code(str(tuning["tuning_seeds"])),
                    evaluation_seeds=Code(str(tuning["evaluation_seeds"])))),
        Table(header, rows)]
    if edges:
        blocks.append(Paragraph(joined(edges, w.plain("list.sentence"))))
    blocks += [Image(f"{images}/sensitivity.png", w.plain("plot_tuning.alt_sensitivity"), w("figure.sensitivity")),
               Paragraph(w("tuning.robustness")),
               Image(f"{images}/robustness.png", w.plain("plot_tuning.alt_robustness"), w("figure.robustness"))]
    return blocks + _tuned_against_fixed(analysis, tuning, w)


def _tuned_against_fixed(analysis: dict[str, Any], tuning: dict[str, Any], w: Words) -> list[Block]:
    """Per pair: the difference and verdict at the fixed and at the tuned values, and whether the
    difference changes between them (the paired test of the difference of differences). A verdict
    is said to depend on the tuned values only where that test says so."""
    tuned = {frozenset((t["a"], t["b"])): t for t in analysis["metrics"][primary_metric(analysis)]["pairwise"]}
    fixed = {frozenset((t["a"], t["b"])): t for t in tuning["fixed_pairwise"]}
    shared = shared_choice(tuning)
    blocks: list[Block] = [Heading(3, w("tuning.versus_heading"))]
    if shared == tuning["fixed"]:
        return blocks + [Paragraph(w("tuning.versus_all_fixed", fixed=Code(point_text(tuning["fixed"]))))]
    intro = [w("tuning.versus_intro", fixed=Code(point_text(tuning["fixed"])))]
    if shared is not None:
        intro.append(w("tuning.versus_shared", chosen=Code(point_text(shared)),
                       fixed=Code(point_text(tuning["fixed"]))))
    rows, depends, changed = [], [], 0
    for row in tuning.get("interaction", []):
        key = frozenset((row["a"], row["b"]))
        if key not in tuned or key not in fixed:
            continue
        changed += _verdict_of(tuned[key]) != _verdict_of(fixed[key])
        if row["depends"]:
            depends.append(joined([Code(row["a"]), Code(row["b"])], " – "))
        rows.append([joined([Code(row["a"]), Code(row["b"])], " – "), row["n"], _shown(row["fixed"]),
                     _short_verdict(fixed[key], w), _shown(row["tuned"]), _short_verdict(tuned[key], w),
                     _shown(row["change"]), p_text(row["p_holm"])])
    header = [w("table.pair"), w("table.seeds"), w("tuning.fixed_diff"), w("tuning.fixed_verdict"),
              w("tuning.tuned_diff"), w("tuning.tuned_verdict"), w("tuning.change"), w("tuning.change_p")]
    level = f"{100 * tuning['interaction'][0]['confidence']:.4g}%" if tuning.get("interaction") else "95%"
    blocks += [Paragraph(joined(intro, w.plain("list.sentence"))), Table(header, rows),
               Paragraph(w("tuning.versus_caption", level=level))]
    if depends:
        key = "tuning.depends_shared" if shared is not None else "tuning.depends"
        summary = [w(key, pairs=joined(depends, w.plain("list.comma")), k=len(depends), n=len(rows))]
    else:
        summary = [w("tuning.depends_none_changed", k=changed, n=len(rows)) if changed else w("tuning.depends_none")]
    edges = [Code(label) for label, entry in tuning["activations"].items() if entry["at_edge"]]
    if edges:
        summary.append(w("tuning.edge_caveat", labels=joined(edges, w.plain("list.comma"))))
    return blocks + [Paragraph(joined(summary, w.plain("list.sentence")))]


def _shown(d: dict[str, float | None]) -> str:
    """A difference in points with its interval: `+1.20 (−0.30 … +2.70)`."""
    if d["mean"] is None:
        return "–"
    return pts(d["mean"]) if d["ci_low"] is None else f"{pts(d['mean'])} ({pts(d['ci_low'])} … {pts(d['ci_high'])})"


def _verdict_of(t: dict[str, Any]) -> tuple[str, str | None]:
    """A verdict as (kind, winner), whichever way round the pair is written."""
    if t["verdict"] == "a_better":
        return "better", t["a"]
    if t["verdict"] == "b_better":
        return "better", t["b"]
    return t["verdict"], None


def _short_verdict(t: dict[str, Any], w: Words) -> Text:
    kind, winner = _verdict_of(t)
    return w("verdict_short.better", winner=Code(winner)) if kind == "better" else w(f"verdict_short.{kind}")
