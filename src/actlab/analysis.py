"""The written analysis of a run: sentences composed from the statistics and the measurements.

Everything here turns numbers into words, through the message catalogue (`actlab.messages`): the
verdicts (one per pair: better, equivalent within the margin, inconclusive with the seeds a test
would need, or not tested), the groups, failures and runs still improving, what was measured
alongside the results (stated as associations: a run shows what goes with a result, not why), and
the comparison with a preset's published figures with its expectation. Numbers are formatted here;
every activation label, command, file name and config value goes in as `Code`.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from actlab.activations import activation_family
from actlab.messages import Words
from actlab.render import Block, Bullets, Code, Heading, Paragraph, Strong, Text, codes, joined
from actlab.results import CHANCE_ACCURACY, FAILED_TO_LEARN, Results
from actlab.stats import ALPHA, MIN_SEEDS, SIGN_FLIP_MAX_N, rank_test_min_seeds, still_improving
from actlab.diagnostics import DIAGNOSTIC_EXAMPLES, SATURATED_DERIVATIVE

ADAPTIVE = ("adam", "adamw", "rmsprop")

# --- numbers ---------------------------------------------------------------------------------------


def pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def pts(x: float | None) -> str:
    """A difference of accuracies in percentage points, signed."""
    return "–" if x is None else f"{100 * x:+.2f}"


def p_text(p: float | None) -> str:
    """A p-value after "p": `= 0.031`, `< 0.001`, or `–` when there is none."""
    if p is None or math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def mean_ci(w: Words, s: dict[str, float] | None) -> Text:
    """A summary's mean with its 95% CI, or the mean alone when there is no interval."""
    if not s or not s["n"]:
        return "–"
    if s["ci_low"] is None or math.isnan(s["ci_low"]):
        return pct(s["mean"])
    return w("number.mean_ci", mean=pct(s["mean"]), low=f"{100 * s['ci_low']:.2f}", high=f"{100 * s['ci_high']:.2f}")


def diagnostic_means(results: Results) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """table[stage][metric][activation][layer] = mean over the runs that count (failed ones too: they
    are the most telling); stage is `init`, `final` (after the last epoch trained) or `best` (the
    tested best-validation checkpoint)."""
    acc: dict[tuple[str, str, str, str], list[float]] = {}
    for run in results.runs:
        if not run.counts or not run.diagnostics:
            continue
        last = max((row["stage"] for row in run.diagnostics if row["stage"].startswith("epoch_")),
                   key=lambda s: int(s.split("_")[1]), default=None)
        for row in run.diagnostics:
            stage = row["stage"] if row["stage"] in ("init", "best") else "final" if row["stage"] == last else None
            if stage and row["value"] is not None and math.isfinite(row["value"]):
                acc.setdefault((stage, row["metric"], run.label, row["layer"]), []).append(row["value"])
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for (stage, metric, label, layer), values in acc.items():
        table.setdefault(stage, {}).setdefault(metric, {}).setdefault(label, {})[layer] = statistics.fmean(values)
    return table


def primary_metric(analysis: dict[str, Any]) -> str:
    return "best_val_test_acc" if "best_val_test_acc" in analysis["metrics"] else "final_test_acc"


def rerun_command(results: Results, seeds: int) -> str:
    """The command that reruns this experiment with more seeds (from the run folder's config.toml,
    else the user's own experiment file)."""
    config = results.run_dir / "config.toml"
    source = config if config.is_file() else "YOUR-EXPERIMENT.toml"
    return f"actlab run --config {source} --seeds {seeds} --out {results.run_dir}-seeds{seeds}"


def tested_pairs(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in m["pairwise"] if t["verdict"] != "not_tested"]


# --- the analysis ----------------------------------------------------------------------------------

def analysis_blocks(results: Results, analysis: dict[str, Any], w: Words) -> list[Block]:
    """The written analysis: the verdicts, what else the runs say, what was measured alongside."""
    metric = primary_metric(analysis)
    m = analysis["metrics"].get(metric)
    if not m or not m["order"]:
        statuses = joined((w("analysis.status_item", label=Code(r.label), seed=r.seed, status=Code(r.status))
                           for r in results.runs), w.plain("list.comma"))
        return [Paragraph(w("analysis.nothing_finished", statuses=statuses))]
    what = w(f"metric.{metric}")
    if len(m["order"]) == 1:
        label = m["order"][0]
        blocks = [Paragraph(w("analysis.single", label=Code(label), what=what, value=mean_ci(w, m["summary"][label]),
                              seeds=w.count("seed", len(analysis["seeds"]))))]
    elif tested_pairs(m):
        blocks = _verdicts(results, analysis, m, what, w)
    else:
        blocks = [Paragraph(_untested(results, analysis, m, what, w))]
    notes = _rank_test_advice(analysis, m, w) + _failure_notes(results, analysis, w) + \
        _convergence_notes(results, w) + [w(f"warning.{key}") for key in analysis["warnings"]]
    if notes:
        blocks.append(Paragraph(joined(notes, w.plain("list.sentence"))))
    return blocks + measured_alongside(results, m["order"], w)


def _untested(results: Results, analysis: dict[str, Any], m: dict[str, Any], what: Text, w: Words) -> Text:
    best, worst, summary = m["order"][0], m["order"][-1], m["summary"]
    shared = max((t["n"] for t in m["pairwise"]), default=0)
    return w("analysis.untested", shared=w.count("seed", shared), min=MIN_SEEDS, what=what, best=Code(best),
             best_mean=pct(summary[best]["mean"]), worst=Code(worst), worst_mean=pct(summary[worst]["mean"]),
             spread=f"{100 * (summary[best]['mean'] - summary[worst]['mean']):.2f}",
             command=Code(rerun_command(results, max(5, rank_test_min_seeds(max(1, len(m["pairwise"])))))))


def _verdicts(results: Results, analysis: dict[str, Any], m: dict[str, Any], what: Text, w: Words) -> list[Block]:
    """The best mean, the groups, then one sentence per pair, best pairs first."""
    order, best, pairs = m["order"], m["order"][0], m["pairwise"]
    lead = [w("analysis.lead", seeds=w.count("seed", len(analysis["seeds"])), best=Code(best), what=what,
              value=mean_ci(w, m["summary"][best]), pairs=w.count("pair", len(tested_pairs(m))), alpha=str(ALPHA),
              margin=f"{analysis['equivalence_margin_points']:g}")]
    if m["groups"]:
        lead.append(w("analysis.groups", groups=group_text(order, m["groups"], w)))
    rank = {label: i for i, label in enumerate(order)}
    ranked = sorted(pairs, key=lambda t: sorted((rank.get(t["a"], 99), rank.get(t["b"], 99))))
    return [Paragraph(joined(lead, w.plain("list.sentence"))),
            Bullets([pair_sentence(t, analysis, results, w) for t in ranked])]


def group_text(order: list[str], groups: dict[str, str], w: Words) -> Text:
    return joined((w("analysis.group_item", label=Code(label), letters=Code(groups[label])) for label in order),
                  w.plain("list.comma"))


def pair_sentence(t: dict[str, Any], analysis: dict[str, Any], results: Results, w: Words) -> Text:
    """One pair's verdict, in the words that fit it, with the figures it rests on."""
    a, b, n, margin = Code(t["a"]), Code(t["b"]), t["n"], f"{analysis['equivalence_margin_points']:g}"
    verdict = t["verdict"]
    if verdict == "not_tested":
        return w("verdict.not_tested", a=a, b=b, shared=w.count("seed", n), min=MIN_SEEDS)
    spread = t["sd_diff"] != 0
    if verdict == "equivalent" and not spread:
        return w("verdict.equivalent_no_spread", a=a, b=b, margin=margin, diff=pts(t["mean_diff"]), n=n)
    if verdict == "equivalent":
        text = [w("verdict.equivalent", a=a, b=b, margin=margin, diff=pts(t["mean_diff"]), low=pts(t["tost_ci_low"]),
                  high=pts(t["tost_ci_high"]), p=p_text(t["p_tost_holm"]), n=n)]
        if t["significant"]:
            text.append(w("verdict.equivalent_detectable", p=p_text(t["p_decision_holm"])))
        return joined(text, "")
    if verdict in ("a_better", "b_better"):
        winner, loser, sign = (a, b, 1) if verdict == "a_better" else (b, a, -1)
        diff, low, high = _oriented(t, sign)
        if not spread:
            return w("verdict.better_no_spread", winner=winner, loser=loser, diff=diff, n=n,
                     p=p_text(t["p_decision_holm"]))
        text = [w("verdict.better", winner=winner, loser=loser, diff=diff, low=low, high=high,
                  p=p_text(t["p_decision_holm"]), dz=f"{abs(t['effect_dz']):.2f}", dz_ci=_dz_ci(t, sign, w), n=n)]
        if t["rests_on_normality"]:
            text.append(w("verdict.rests_on_normality", p=p_text(t["p_sign_flip_holm"])))
        return joined(text, "")
    if not spread:
        text = [w("verdict.inconclusive_no_spread", a=a, b=b, diff=pts(t["mean_diff"]), n=n,
                  p=p_text(t["p_decision_holm"]))]
    else:
        text = [w("verdict.inconclusive", a=a, b=b, diff=pts(t["mean_diff"]), low=pts(t["diff_ci_low"]),
                  high=pts(t["diff_ci_high"]), p=p_text(t["p_decision_holm"]), margin=margin)]
    return joined(text + [_seeds_needed(t, analysis, results, w)], "")


def _oriented(t: dict[str, Any], sign: int) -> tuple[str, str, str]:
    """The difference and its CI, as winner minus loser."""
    if sign > 0:
        return pts(t["mean_diff"]), pts(t["diff_ci_low"]), pts(t["diff_ci_high"])
    return (pts(-t["mean_diff"]), pts(None if t["diff_ci_high"] is None else -t["diff_ci_high"]),
            pts(None if t["diff_ci_low"] is None else -t["diff_ci_low"]))


def _dz_ci(t: dict[str, Any], sign: int, w: Words) -> Text:
    if t["dz_ci_low"] is None or t["dz_ci_high"] is None:
        return ""
    low, high = sorted((sign * t["dz_ci_low"], sign * t["dz_ci_high"]))
    return w("number.dz_ci", low=f"{abs(low) if low > 0 else low:.2f}", high=f"{high:.2f}")


def _seeds_needed(t: dict[str, Any], analysis: dict[str, Any], results: Results, w: Words) -> Text:
    if t["effect_dz"] is None:
        return ""
    tested = sum(p["verdict"] != "not_tested" for p in analysis["metrics"][primary_metric(analysis)]["pairwise"])
    alpha_h = f"{ALPHA / max(1, tested):.4f}"
    if t["seeds_needed"] is None:
        return w("advice.seeds_too_many", dz=f"{abs(t['effect_dz']):.2f}")
    return w("advice.seeds_needed", k=t["seeds_needed"], alpha=alpha_h, dz=f"{abs(t['effect_dz']):.2f}",
             command=Code(rerun_command(results, t["seeds_needed"])))


def _rank_test_advice(analysis: dict[str, Any], m: dict[str, Any], w: Words) -> list[Text]:
    """The rank and permutation tests' floor: with few seeds they cannot pass Holm's first step."""
    n, pairs, need = len(analysis["seeds"]), len(tested_pairs(m)), analysis["rank_test_min_seeds"]
    if not tested_pairs(m) or n >= need:
        return []
    return [w("advice.rank_tests", n=w.count("seed", n), pairs=w.count("pair", pairs), m=pairs,
              pmin=f"{2 / 2 ** n:.4f}", alpha_h=f"{ALPHA / max(1, pairs):.4f}", k=need, exact=SIGN_FLIP_MAX_N)]


def _failure_notes(results: Results, analysis: dict[str, Any], w: Words) -> list[Text]:
    """Per activation: failures with their rate and interval, and runs that did not finish."""
    metric = primary_metric(analysis)
    notes: list[Text] = []
    for label, c in analysis["runs"].items():
        if c["failures"]:
            kinds = []
            if c["failed_to_learn"]:
                kinds.append(w("analysis.never_learned", k=c["failed_to_learn"], threshold=pct(FAILED_TO_LEARN, 0)))
            if c["diverged"]:
                kinds.append(w("analysis.diverged", k=c["diverged"]))
            m = analysis["metrics"].get(metric, {})
            notes.append(w("analysis.failures", label=Code(label), k=c["failures"], n=c["runs"] - c["unfinished"],
                           rate=pct(c["failure_rate"], 0), low=pct(c["failure_ci"][0], 0),
                           high=pct(c["failure_ci"][1], 0), kinds=joined(kinds, w.plain("analysis.and")),
                           with_them=pct(m.get("summary", {}).get(label, {}).get("mean")),
                           without=pct(m.get("as_finished", {}).get(label, {}).get("mean")), ok=c["ok"],
                           chance=pct(CHANCE_ACCURACY, 0)))
        unfinished = [r.status for r in results.by_label(label) if not r.counts]
        if unfinished:
            notes.append(w("analysis.unfinished", label=Code(label), k=len(unfinished), n=c["runs"],
                           statuses=codes(unfinished, w.plain("list.comma"))))
    return notes


def _convergence_notes(results: Results, w: Words) -> list[Text]:
    notes: list[Text] = []
    has_val = any(row.get("val_acc") is not None for r in results.runs for row in r.epochs)
    for label in results.labels:
        runs = [r for r in results.by_label(label) if r.status.ok]
        improving = sum(still_improving(r) for r in runs)
        if improving:
            notes.append(w("analysis.still_improving", label=Code(label), k=improving, n=len(runs),
                           which=w("analysis.validation" if has_val else "analysis.test")))
    return notes


# --- measured alongside the result ------------------------------------------------------------------

def measured_alongside(results: Results, order: list[str], w: Words) -> list[Block]:
    """Per activation, what the diagnostics measured, beside the best activation's; then what the run
    can and cannot isolate. Associations only: no measurement here is shown to cause a result."""
    table = diagnostic_means(results)
    if not table:
        return [Paragraph(w("measured.none", setting=Code("diagnostics = false")))]
    best = order[0]
    items = [w("measured.item", label=Strong(Code(label)), facts=joined(facts, w.plain("list.semicolon")))
             for label in order if (facts := _facts(results, table, label, best, w))]
    blocks: list[Block] = [Heading(3, w("measured.heading")), Paragraph(w("measured.intro"))]
    isolation = Paragraph(joined(_isolation(results, w), w.plain("list.sentence")))
    return blocks + ([Bullets(items)] if items else []) + [isolation]


def _layer_max(table, stage: str, metric: str, label: str) -> tuple[str, float] | None:
    values = {k: v for k, v in table.get(stage, {}).get(metric, {}).get(label, {}).items() if k.startswith("hidden")}
    if not values:
        return None
    layer = max(values, key=values.get)
    return layer, values[layer]


def _first_epoch_acc(results: Results, label: str) -> float | None:
    values = [r.epochs[0]["test_acc"] for r in results.by_label(label)
              if r.counts and r.epochs and r.epochs[0].get("test_acc") is not None]
    return statistics.fmean(values) if values else None


def _facts(results: Results, table, label: str, best: str, w: Words) -> list[Text]:
    """The measurements worth a clause for one activation, each beside the best one's."""
    family = next(activation_family(r.activation) for r in results.by_label(label))
    facts: list[Text] = []
    dead_end, dead_init = _layer_max(table, "final", "dead_fraction", label), \
        _layer_max(table, "init", "dead_fraction", label)
    if dead_end and dead_end[1] > 0:
        facts.append(w("measured.dead", share=pct(dead_end[1], 1), layer=Code(dead_end[0]), images=DIAGNOSTIC_EXAMPLES,
                       at_init=pct(dead_init[1] if dead_init else 0.0, 1)))
    elif dead_end and family == "relu":
        facts.append(w("measured.no_dead"))
    sat = _layer_max(table, "init", "saturated_fraction", label)
    if sat and family != "relu" and sat[1] >= 0.05:
        top = table["init"].get("max_derivative", {}).get(label, {}).get(sat[0])
        facts.append(w("measured.saturated", share=pct(sat[1], 0), layer=Code(sat[0]),
                       threshold=f"{SATURATED_DERIVATIVE:g}",
                       max="–" if top is None else f"{top:.3g}"))
    grad = {lab: table.get("init", {}).get("grad_norm", {}).get(lab, {}).get("linear1") for lab in (label, best)}
    g, gb = grad[label], grad[best]
    if g is not None and gb and label != best:
        factor = (gb / g if g < gb else g / gb) if g else math.inf
        shared = dict(g=f"{g:.3g}", best=Code(best), gb=f"{gb:.3g}")
        if f"{factor:.1f}" == "1.0":
            facts.append(w("measured.grad_same", **shared))
        else:
            key = "measured.grad_smaller" if g < gb else "measured.grad_larger"
            facts.append(w(key, factor=f"{factor:.1f}", **shared))
    elif g is not None:
        facts.append(w("measured.grad", g=f"{g:.3g}"))
    ratio = table.get("init", {}).get("grad_ratio_first_last", {}).get(label, {}).get("all")
    if ratio is not None and ratio < 0.1:
        facts.append(w("measured.grad_ratio", r=f"{ratio:.3f}"))
    std = table.get("init", {}).get("act_std", {}).get(label, {})
    if std and family in ("smooth", "bounded"):
        layer = max(std)
        facts.append(w("measured.act_stats", layer=Code(layer), mean=f"{table['init']['act_mean'][label][layer]:.2f}",
                       std=f"{std[layer]:.2f}"))
    a1, b1 = _first_epoch_acc(results, label), _first_epoch_acc(results, best)
    if a1 is not None and b1 is not None and label != best:
        facts.append(w("measured.epoch1", a=pct(a1), best=Code(best), b=pct(b1)))
    return facts


def _isolation(results: Results, w: Words) -> list[Text]:
    """What the run holds fixed between activations, and what it does not."""
    config = results.config
    inits = config.get("init", "default")
    differs = isinstance(inits, dict) and len({inits.get(label, "default") for label in _activations(results)}) > 1
    drops = _dropout_kinds(results)
    tuned = {label: entry["chosen"] for label, entry in (results.tuning or {}).get("activations", {}).items()}
    own_values = len({json.dumps(p, sort_keys=True) for p in tuned.values()}) > 1
    if differs or len(set(drops.values())) > 1 or own_values:
        parts = [w("method.init_item", label=Code(a), init=Code(inits.get(a, "default"))) for a in _activations(results)
                 ] if differs else []
        parts += [w(f"method.dropout_{k}", label=Code(a)) for a, k in drops.items()] if len(set(drops.values())) > 1 \
            else []
        parts += [w("method.tuned_item", label=Code(label), values=Code(point_text(point)))
                  for label, point in tuned.items()] if own_values else []
        sentences = [w("measured.isolation_differs", differences=joined(parts, w.plain("list.semicolon")))]
    else:
        sentences = [w("measured.isolation_same")]
    if str(config.get("optimizer", "")).lower() in ADAPTIVE:
        sentences.append(w("measured.adaptive", optimizer=Code(str(config["optimizer"]))))
    return sentences


def _activations(results: Results) -> list[str]:
    return list(dict.fromkeys(r.activation for r in results.runs))


def _dropout_kinds(results: Results) -> dict[str, str]:
    """activation → the dropout it trained with ("" when dropout is off)."""
    p, kind = results.config.get("dropout", 0), results.config.get("dropout_kind", "auto")
    if not p:
        return {}
    return {a: kind if kind != "auto" else ("alpha" if a.split(":")[0].strip().lower() == "selu" else "standard")
            for a in _activations(results)}


def method_text(results: Results, w: Words, margin: float) -> list[Text]:
    """The Method section, true of this run: what was paired, how verdicts are reached (at `margin`,
    the margin the verdicts used), what counts."""
    differences = _isolation(results, w)[0]
    return [w("method.design"), differences, w("method.verdicts", min=MIN_SEEDS, alpha=str(ALPHA),
              margin=f"{margin:g}", exact=SIGN_FLIP_MAX_N),
            w("method.failures", chance=pct(CHANCE_ACCURACY, 0), threshold=pct(FAILED_TO_LEARN, 0)),
            w("method.files", results=Code("results.json"), stats=Code("stats.json"),
              diagnostics=Code("diagnostics.csv"))]


def point_text(point: dict[str, float]) -> str:
    """A grid point as `lr=0.001 dropout=0.2`."""
    return " ".join(f"{k}={v:g}" for k, v in point.items())
