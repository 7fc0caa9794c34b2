"""The conclusion, first: the ranking with its effect sizes, how consistently each difference points
the same way across seeds, what is significant and what is equivalent, what would settle the rest,
and the main caveat. A few plain sentences a student can hand in, each backed by the sections below."""

from __future__ import annotations

from typing import Any

from actlab.analysis import nothing_learned, tested_pairs
from actlab.numbers import pct, pts
from actlab.render import Block, Code, Heading, Paragraph, Text, joined
from actlab.report.context import Context
from actlab.report.sections.limitations import limitations
from actlab.stats import paired_values


def blocks(c: Context) -> list[Block]:
    m, w = c.analysis["metrics"].get(c.metric), c.w
    if not m or len(c.results.labels) < 2:
        return []
    if not m["order"]:
        if not m["never_learned"]:
            return []
        return [Heading(2, w("conclusion.heading")), Paragraph(nothing_learned(c.results, m["never_learned"], w))]
    basis = m.get("order_basis") or {}
    common = basis.get("seeds")  # seed sets differ: the order, and the means shown, are over the shared seeds
    means = basis["means"] if common else {label: m["summary"][label]["mean"] for label in m["order"]}
    sentences = [w("conclusion.ranking", what=w(f"metric.{c.metric}"),
                   seeds=w.count("seed", len(common) if common else len(c.analysis["seeds"])),
                   ranking=joined([w("conclusion.rank_item", label=Code(label), value=pct(means[label]))
                                   for label in m["order"]], w.plain("list.comma")))]
    if m["never_learned"]:
        sentences.append(w("conclusion.failed", labels=joined([Code(x) for x in m["never_learned"]],
                                                              w.plain("list.comma"))))
    pairs = tested_pairs(m)
    if pairs:
        sentences += _verdicts(c, pairs, m)
    else:
        sentences.append(w("conclusion.untested"))
    sentences += _loss_gains(c)
    caveats = limitations(c.results, c.analysis, c.metric, w)
    if caveats:  # the weightiest, in brief: the Limitations section says each in full
        kind, values = caveats[0]
        sentences.append(w.named(f"conclusion.caveat_{kind}", **values))
    return [Heading(2, w("conclusion.heading")), Paragraph(joined(sentences, w.plain("list.sentence")))]


def _verdicts(c: Context, pairs: list[dict[str, Any]], m: dict[str, Any]) -> list[Text]:
    """Significant pairs with how many seeds agree, equivalent pairs, and the open ones."""
    w, margin = c.w, f"{c.analysis['equivalence_margin_points']:g}"
    better, equivalent, open_ = [], [], []
    for t in pairs:
        if t["verdict"] in ("a_better", "b_better"):
            winner, loser = (t["a"], t["b"]) if t["verdict"] == "a_better" else (t["b"], t["a"])
            better.append(w("conclusion.better_item", winner=Code(winner), loser=Code(loser),
                            diff=_points(t, winner == t["a"]), k=_ahead(c, winner, loser), n=t["n"]))
        elif t["verdict"] == "equivalent":
            equivalent.append(w("conclusion.pair_item", a=Code(t["a"]), b=Code(t["b"])))
        elif t["verdict"] == "inconclusive":
            lead, other = (t["a"], t["b"]) if (t["mean_diff"] or 0) >= 0 else (t["b"], t["a"])
            open_.append(w("conclusion.open_item", a=Code(lead), b=Code(other), diff=_points(t, lead == t["a"]),
                           k=_ahead(c, lead, other), n=t["n"]))
    out = [w("conclusion.better", items=joined(better, w.plain("list.semicolon")))] if better else \
        [w("conclusion.none_better", pairs=w.count("pair", len(pairs)))]
    if equivalent:
        out.append(w("conclusion.equivalent", items=joined(equivalent, w.plain("list.comma")), margin=margin))
    if open_:
        out.append(w("conclusion.open", items=joined(open_, w.plain("list.semicolon"))))
        needed = sorted(t["seeds_needed"] for t in pairs if t["verdict"] == "inconclusive" and t["seeds_needed"])
        out.append(w("conclusion.settle", k=needed[0], covered=w.count("pair", sum(k <= needed[0] for k in needed)))
                   if needed else w("conclusion.settle_none"))
    return out


def _points(t: dict[str, Any], as_written: bool) -> str:
    diff = t["mean_diff"] if as_written else -t["mean_diff"]
    return f"{100 * diff:.2f}"


def _ahead(c: Context, a: str, b: str) -> int:
    """In how many of the shared seeds `a` scored above `b`."""
    xa, xb = paired_values(c.results, c.metric, a, b)
    return sum(x > y for x, y in zip(xa, xb))


def _loss_gains(c: Context) -> list[Text]:
    """Where activations cross losses: each activation's gain from the first loss, and where it differs."""
    found, w = c.analysis.get("loss_interaction"), c.w
    out = []
    for other, by_activation in (found or {}).get("gains", {}).items():
        items = [w("conclusion.gain_item", gain=pts(g["mean"]), label=Code(a)) for a, g in by_activation.items()]
        gains = joined(items, w.plain("list.comma"))
        differ = [w("conclusion.between_item", a=Code(d["a"]), b=Code(d["b"])) for d in found["differences"]
                  if d["other"] == other and d["significant"]]
        shared = dict(first=Code(found["first"]), other=Code(other), gains=gains)
        out.append(w("conclusion.loss_gain", pairs=joined(differ, w.plain("list.comma")), **shared) if differ
                   else w("conclusion.loss_gain_same", **shared))
    return out
