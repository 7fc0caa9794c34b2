"""The written analysis of a run: sentences composed from the statistics.

Everything here turns numbers into words, through the message catalogue (`actlab.messages`): the
verdicts (one per pair: better, equivalent within the margin, inconclusive with the seeds a test
would need, not compared when both failed in every run, or not tested), the groups, failures and
runs still improving, then what was measured alongside the results (`actlab.measured`). Numbers are
formatted by `actlab.numbers`; every activation label, command, file name and config value goes in
as `Code`.
"""

from __future__ import annotations

from typing import Any

from actlab.measured import measured_alongside
from actlab.messages import Words
from actlab.numbers import mean_ci, p_text, pct, pts
from actlab.render import Block, Bullets, Code, Paragraph, Text, codes, joined
from actlab.results import CHANCE_ACCURACY, FAILED_TO_LEARN, Results
from actlab.stats import ALPHA, MIN_SEEDS, SIGN_FLIP_MAX_N, UNTESTED, rank_test_min_seeds


def primary_metric(analysis: dict[str, Any]) -> str:
    return "best_val_test_acc" if "best_val_test_acc" in analysis["metrics"] else "final_test_acc"


def experiment_file(results: Results) -> str:
    """What a suggested command reruns: the run folder's config.toml, else the user's own experiment file."""
    config = results.run_dir / "config.toml"
    return str(config) if config.is_file() else "YOUR-EXPERIMENT.toml"


def rerun_command(results: Results, seeds: int) -> str:
    """The command that reruns this experiment with more seeds."""
    return f"actlab run --config {experiment_file(results)} --seeds {seeds} --out {results.run_dir}-seeds{seeds}"


def tested_pairs(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in m["pairwise"] if t["verdict"] not in UNTESTED]


# --- the analysis ----------------------------------------------------------------------------------

def analysis_blocks(results: Results, analysis: dict[str, Any], w: Words) -> list[Block]:
    """The written analysis: the verdicts, what else the runs say, what was measured alongside."""
    metric = primary_metric(analysis)
    m = analysis["metrics"].get(metric)
    if m and not m["order"] and m["never_learned"]:  # the Conclusion says it in full where there is one
        said = w("analysis.nothing_learned_short") if len(results.labels) > 1 else \
            nothing_learned(results, m["never_learned"], w)
        return [Paragraph(said)] + measured_alongside(results, m["never_learned"], w)
    if not m or not m["order"]:
        statuses = joined((w("analysis.status_item", label=Code(r.label), seed=r.seed, status=Code(r.status))
                           for r in results.runs), w.plain("list.comma"))
        return [Paragraph(w("analysis.nothing_finished", statuses=statuses))]
    what = w(f"metric.{metric}")
    if len(results.labels) == 1:
        label = m["order"][0]
        blocks = [Paragraph(w("analysis.single", label=Code(label), what=what, value=mean_ci(w, m["summary"][label]),
                              seeds=w.count("seed", len(analysis["seeds"]))))]
    elif tested_pairs(m):
        blocks = _verdicts(results, analysis, m, what, w)
    elif len(m["order"]) == 1:
        blocks = [Paragraph(w("analysis.single_learned", label=Code(m["order"][0]), what=what,
                              value=mean_ci(w, m["summary"][m["order"][0]])))]
    else:
        blocks = [Paragraph(_untested(results, analysis, m, what, w))]
    notes = _rank_test_advice(analysis, m, w) + _failure_notes(results, analysis, w) + \
        [w(f"warning.{key}") for key in analysis["warnings"]]  # runs still improving: said once, in Limitations
    if m["never_learned"]:
        notes.insert(0, w("analysis.not_ranked", labels=codes(m["never_learned"], w.plain("list.comma"))))
    if notes:
        blocks.append(Paragraph(joined(notes, w.plain("list.sentence"))))
    return blocks + measured_alongside(results, m["order"] + m["never_learned"], w)


def nothing_learned(results: Results, labels: list[str], w: Words) -> Text:
    """Every activation failed in every run: nothing is ranked and no number of seeds would help; say
    what to change instead."""
    runs = [r for r in results.runs if r.counts]
    diverged = sum(r.status.diverged for r in runs)
    config = results.config
    return w("analysis.nothing_learned", k=len(runs), diverged=diverged, never=len(runs) - diverged,
             labels=codes(labels, w.plain("list.comma")), optimizer=Code(str(config.get("optimizer", "?"))),
             lr=Code(f"{config.get('lr', '?'):g}" if isinstance(config.get("lr"), (int, float)) else "?"),
             epochs=Code(str(config.get("epochs", "?"))))


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
    shared = dict(best=Code(best), what=what, pairs=w.count("pair", len(tested_pairs(m))), alpha=str(ALPHA),
                  margin=f"{analysis['equivalence_margin_points']:g}")
    basis = m.get("order_basis") or {}
    if len(order) == 1:  # the others failed in every run: nothing to rank it against
        lead = [w("analysis.single_learned", label=Code(best), what=what, value=mean_ci(w, m["summary"][best]))]
    elif basis.get("seeds"):  # seed sets differ: the lead is on the seeds every activation has
        lead = [w("analysis.lead_common", seeds=w.count("seed", len(basis["seeds"])),
                  value=pct(basis["means"][best]), **shared)]
    else:
        lead = [w("analysis.lead", seeds=w.count("seed", len(analysis["seeds"])), value=mean_ci(w, m["summary"][best]),
                  **shared)]
    if m["groups"] and len(order) > 1:
        lead.append(w("analysis.groups", groups=group_text(order, m["groups"], w)))
    if any(t["verdict"] == "inconclusive" for t in pairs):  # said once, not in every inconclusive pair's sentence
        lead.append(w("analysis.inconclusive_meaning", margin=f"{analysis['equivalence_margin_points']:g}"))
    rank = {label: i for i, label in enumerate(order)}
    ranked = sorted(pairs, key=lambda t: sorted((rank.get(t["a"], 99), rank.get(t["b"], 99))))
    blocks: list[Block] = [Paragraph(joined(lead, w.plain("list.sentence"))),
                           Bullets([pair_sentence(t, analysis, results, w, said) for said in [{}] for t in ranked])]
    return blocks + _confirmation(results, analysis, pairs, w)


def _confirmation(results: Results, analysis: dict[str, Any], pairs: list[dict[str, Any]], w: Words) -> list[Block]:
    """Once for all inconclusive pairs: at which α the seeds were counted, and a run on fresh seeds
    (adding seeds to these and testing again would be a second look at the same data)."""
    needed = sorted(t["seeds_needed"] for t in pairs if t["verdict"] == "inconclusive" and t["seeds_needed"])
    if not needed:
        return []
    m = _family(analysis)
    return [Paragraph(w("advice.confirm", m=m, alpha=f"{ALPHA / m:.4f}", k=needed[0],
                        covered=w.count("pair", sum(k <= needed[0] for k in needed)),
                        command=Code(confirm_command(results, analysis, needed[0]))))]


def group_text(order: list[str], groups: dict[str, str], w: Words) -> Text:
    return joined((w("analysis.group_item", label=Code(label), letters=Code(groups[label])) for label in order),
                  w.plain("list.comma"))


def pair_sentence(t: dict[str, Any], analysis: dict[str, Any], results: Results, w: Words,
                  said: dict | None = None) -> Text:
    """One pair's verdict, in the words that fit it, with the figures it rests on; `said` keeps the
    seeds estimates already given, so a pair with the same one refers to it instead of repeating it."""
    a, b, n, margin = Code(t["a"]), Code(t["b"]), t["n"], f"{analysis['equivalence_margin_points']:g}"
    verdict = t["verdict"]
    if verdict == "not_tested":
        return w("verdict.not_tested", a=a, b=b, shared=w.count("seed", n), min=MIN_SEEDS)
    if verdict == "both_failed":
        return w("verdict.both_failed", a=a, b=b)
    spread = t["sd_diff"] != 0
    if verdict == "equivalent" and not spread:
        return w("verdict.equivalent_no_spread", a=a, b=b, margin=margin, diff=pts(t["mean_diff"]), n=n,
                 p=p_text(t["p_tost_holm"]))
    if verdict == "equivalent":
        text = [w("verdict.equivalent", a=a, b=b, margin=margin, diff=pts(t["mean_diff"]), low=pts(t["tost_ci_low"]),
                  high=pts(t["tost_ci_high"]), p=p_text(t["p_tost_holm"]), n=n)]
        if t["significant"]:
            text.append(w("verdict.equivalent_detectable", p=p_text(t["p_decision_holm"])))
        return joined(text, "")
    if verdict in ("a_better", "b_better"):
        winner, loser, sign = (a, b, 1) if verdict == "a_better" else (b, a, -1)
        diff, low, high = _oriented(t, sign, adjusted=True)
        if not spread:
            return w("verdict.better_no_spread", winner=winner, loser=loser, diff=diff, n=n,
                     p=p_text(t["p_decision_holm"]))
        text = [w("verdict.better", winner=winner, loser=loser, diff=diff, low=low, high=high,
                  pairs=w.count("pair", _family(analysis)), p=p_text(t["p_decision_holm"]),
                  dz=f"{abs(t['effect_dz']):.2f}", dz_ci=_dz_ci(t, sign, w), n=n)]
        if t["diff_ci_adj_low"] is not None and t["diff_ci_adj_low"] <= 0 <= t["diff_ci_adj_high"]:
            text.append(w("verdict.holm_not_simultaneous"))
        if t["rests_on_normality"]:
            text.append(w("verdict.rests_on_normality", p=p_text(t["p_sign_flip_holm"]), winner=winner, loser=loser))
        return joined(text, "")
    if not spread:
        text = [w("verdict.inconclusive_no_spread", a=a, b=b, diff=pts(t["mean_diff"]), n=n,
                  p=p_text(t["p_decision_holm"]))]
    else:
        text = [w("verdict.inconclusive", a=a, b=b, diff=pts(t["mean_diff"]), low=pts(t["diff_ci_adj_low"]),
                  high=pts(t["diff_ci_adj_high"]), pairs=w.count("pair", _family(analysis)),
                  p=p_text(t["p_decision_holm"]))]
    return joined(text + [_seeds_needed(t, w, {} if said is None else said)], "")


def _oriented(t: dict[str, Any], sign: int, adjusted: bool = False) -> tuple[str, str, str]:
    """The difference and its CI (the simultaneous one if `adjusted`), as winner minus loser."""
    low, high = (t["diff_ci_adj_low"], t["diff_ci_adj_high"]) if adjusted else (t["diff_ci_low"], t["diff_ci_high"])
    if sign > 0:
        return pts(t["mean_diff"]), pts(low), pts(high)
    return pts(-t["mean_diff"]), pts(None if high is None else -high), pts(None if low is None else -low)


def _family(analysis: dict[str, Any]) -> int:
    """How many pairs the Holm correction and the simultaneous intervals cover."""
    return max(1, analysis["tested_pairs"])


def _dz_ci(t: dict[str, Any], sign: int, w: Words) -> Text:
    if t["dz_ci_low"] is None or t["dz_ci_high"] is None:
        return ""
    low, high = sorted((sign * t["dz_ci_low"], sign * t["dz_ci_high"]))
    return w("number.dz_ci", low=f"{abs(low) if low > 0 else low:.2f}", high=f"{high:.2f}")


def _seeds_needed(t: dict[str, Any], w: Words, said: dict) -> Text:
    """Seeds for 80% power, with the range d_z's interval allows; a pair whose estimate was given
    already for another names that pair."""
    if t["effect_dz"] is None:
        return ""
    key = (f"{abs(t['effect_dz']):.2f}", t["seeds_needed"], tuple(t.get("seeds_needed_range") or ()))
    if key in said:
        return w("advice.seeds_same", dz=key[0], pair=said[key])
    said[key] = w("number.pair", a=Code(t["a"]), b=Code(t["b"]))
    if t["seeds_needed"] is None:
        return w("advice.seeds_too_many", dz=f"{abs(t['effect_dz']):.2f}")
    low, high = t.get("seeds_needed_range") or (None, None)
    span = "" if low is None else w("advice.seeds_range_open", low=low) if high is None else \
        w("advice.seeds_range", low=low, high=high)
    return w("advice.seeds_needed", k=t["seeds_needed"], dz=f"{abs(t['effect_dz']):.2f}", range=span)


def confirm_command(results: Results, analysis: dict[str, Any], seeds: int) -> str:
    """A run on `seeds` fresh seeds (after every seed this run used, tuning seeds included), whose own
    report is the confirmation: its tests see only new data, so their error rate stays at α."""
    used = [*analysis["seeds"], *((results.tuning or {}).get("tuning_seeds") or [])]
    first = max(used, default=-1) + 1
    return (f"actlab run --config {experiment_file(results)} --seed {first} --seeds {seeds} "
            f"--out {results.run_dir}-confirm")


def _rank_test_advice(analysis: dict[str, Any], m: dict[str, Any], w: Words) -> list[Text]:
    """The rank and permutation tests' floor: with few seeds they cannot pass Holm's first step."""
    n, pairs, need = analysis["tested_pair_seeds"], len(tested_pairs(m)), analysis["rank_test_min_seeds"]
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
                epochs = max(len(r.epochs) for r in results.by_label(label) if r.status.kind == "failed_to_learn")
                kinds.append(w("analysis.never_learned", k=c["failed_to_learn"], threshold=pct(FAILED_TO_LEARN, 0),
                               epoch=epochs))
            if c["diverged"]:
                kinds.append(w("analysis.diverged", k=c["diverged"]))
            m = analysis["metrics"].get(metric, {})
            notes.append(w("analysis.failures", label=Code(label), k=c["failures"], n=c["runs"] - c["unfinished"],
                           rate=pct(c["failure_rate"], 0), low=pct(c["failure_ci"][0], 0),
                           high=pct(c["failure_ci"][1], 0), kinds=joined(kinds, w.plain("analysis.and")),
                           with_them=pct(m.get("summary", {}).get(label, {}).get("mean")),
                           chance=pct(CHANCE_ACCURACY, 0),
                           without=w("analysis.without_failed", value=pct(m["as_finished"][label]["mean"]), ok=c["ok"])
                           if c["ok"] and m.get("as_finished", {}).get(label) else w("analysis.none_learned")))
        unfinished = [r.status for r in results.by_label(label) if not r.counts]
        if unfinished:
            notes.append(w("analysis.unfinished", label=Code(label), k=len(unfinished), n=c["runs"],
                           statuses=codes(unfinished, w.plain("list.comma"))))
    return notes


