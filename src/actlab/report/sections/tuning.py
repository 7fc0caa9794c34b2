"""A tuned run: each activation's chosen values, its verdicts at the tuned and at the fixed values,
and the sensitivity and robustness figures."""

from __future__ import annotations

from typing import Any

from actlab.analysis import mean_ci, pct, point_text, primary_metric
from actlab.messages import Words
from actlab.render import Block, Bullets, Code, Heading, Image, Paragraph, Table, Text, joined
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
    blocks += [Image(f"{images}/sensitivity.png", w.plain("plot_tuning.alt_sensitivity")),
               Paragraph(w("tuning.robustness")),
               Image(f"{images}/robustness.png", w.plain("plot_tuning.alt_robustness"))]
    return blocks + _tuned_against_fixed(analysis, tuning, w)


def _tuned_against_fixed(analysis: dict[str, Any], tuning: dict[str, Any], w: Words) -> list[Block]:
    tuned = {frozenset((t["a"], t["b"])): t for t in analysis["metrics"][primary_metric(analysis)]["pairwise"]}
    items, changed = [], 0
    for fixed in tuning["fixed_pairwise"]:
        at_tuned = tuned.get(frozenset((fixed["a"], fixed["b"])))
        if at_tuned is None:
            continue
        same = _verdict_of(at_tuned) == _verdict_of(fixed)
        changed += not same
        items.append(w("tuning.versus_same" if same else "tuning.versus_changed", a=Code(fixed["a"]),
                       b=Code(fixed["b"]), tuned=_short_verdict(at_tuned, w), fixed=_short_verdict(fixed, w)))
    summary = w("tuning.versus_some", k=changed, n=len(items)) if changed else w("tuning.versus_none")
    return [Heading(3, w("tuning.versus_heading")),
            Paragraph(w("tuning.versus_intro", fixed=Code(point_text(tuning["fixed"])))), Bullets(items),
            Paragraph(summary)]


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
