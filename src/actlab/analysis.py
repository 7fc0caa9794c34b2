"""The written analysis of a run: sentences composed from the statistics and the diagnostics.

Everything here turns numbers into words: the verdict (means with CIs, paired tests, ranking), what
the diagnostics show per activation and which of them explain the activations that fell behind, and
the comparison with a preset's published figures. Each sentence is a template filled with values
(`actlab.render.fill`): numbers are formatted here, and every activation label, command, file name
and config value goes in as `Code`, so it is shown literally whatever characters it holds.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from scipy import stats as sps

from actlab.activations import activation_family
from actlab.presets import PRESETS
from actlab.render import Block, Bullets, Code, Heading, Paragraph, Strong, Table, Text, codes, fill, joined
from actlab.results import Results
from actlab.stats import ALPHA, METRICS, min_wilcoxon_p

# --- numbers ---------------------------------------------------------------------------------------

def pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def pts(x: float) -> str:
    """A difference of accuracies in percentage points."""
    return f"{100 * x:+.2f} points"


def p_value(p: float) -> str:
    if math.isnan(p):
        return "–"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def mean_ci(s: dict[str, float], scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
    """A summary's mean with its 95% CI, or the mean alone when there is no interval."""
    if s["n"] < 2 or math.isnan(s["ci_low"]):
        return f"{s['mean'] * scale:.{digits}f}{unit}"
    return (f"{s['mean'] * scale:.{digits}f}{unit} (95% CI {s['ci_low'] * scale:.{digits}f}–"
            f"{s['ci_high'] * scale:.{digits}f})")


def ranking_text(tiers: list[list[str]]) -> tuple:
    """`1. relu = tanh; 2. sigmoid`: the tiers in order, tied labels joined by =."""
    return joined((fill("{i}. {tier}", i=i, tier=codes(tier, " = ")) for i, tier in enumerate(tiers, 1)), "; ")


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


# --- the verdict -----------------------------------------------------------------------------------

def primary_metric(analysis: dict[str, Any]) -> str:
    return "best_val_test_acc" if "best_val_test_acc" in analysis["metrics"] else "final_test_acc"


def rerun_command(results: Results, seeds: int = 5) -> str:
    return f"actlab run --config {results.run_dir / 'config.toml'} --seeds {seeds} --out {results.run_dir}-seeds{seeds}"


def analysis_text(results: Results, analysis: dict[str, Any]) -> list[Block]:
    """The written analysis: verdict with CIs and tests, then what the diagnostics show and imply."""
    metric = primary_metric(analysis)
    if metric not in analysis["metrics"]:
        statuses = joined(fill("{label} seed {seed}: {status}", label=Code(r.label), seed=r.seed, status=Code(r.status))
                          for r in results.runs)
        return [Paragraph(fill("No model finished training ({statuses}), so there is nothing to compare. A diverged "
                               "run usually means the learning rate is too high for this optimizer.",
                               statuses=statuses))]
    m = analysis["metrics"][metric]
    tiers, n_seeds = m["tiers"], len(analysis["seeds"])
    ranked = [label for tier in tiers for label in tier]
    if not ranked:
        return [Paragraph("No model finished training, so there is nothing to compare.")]
    if n_seeds < 3:
        blocks = []
        sentences = [_untested_verdict(results, m["summary"], ranked, n_seeds, METRICS[metric][0])]
        behind = ranked[1:]
    else:
        blocks = _tested_verdict(m, ranked, n_seeds, METRICS[metric][0])
        sentences = _rank_test_and_ranking(tiers, n_seeds)
        behind = [label for tier in tiers[1:] for label in tier]
    sentences += _failure_sentences(results, analysis["runs"])
    if sentences:
        blocks.append(Paragraph(joined(sentences, " ")))
    return blocks + _diagnostic_sentences(results, ranked, ranked[0], behind, tentative=n_seeds < 3)


def _untested_verdict(results: Results, summary, ranked: list[str], n_seeds: int, what: str) -> Text:
    best, worst = ranked[0], ranked[-1]
    return fill(
        "With {n} {seeds} per activation, differences cannot be judged: a paired test needs at least 3 seeds, and "
        "the seed-to-seed noise is unknown. On {which}, {best} had the highest {what} ({best_mean}) and {worst} the "
        "lowest ({worst_mean}), a spread of {spread} points. To find out which differences are real, run {command}.",
        n=n_seeds, seeds="seeds" if n_seeds > 1 else "seed", which="this seed" if n_seeds == 1 else "these seeds",
        best=Code(best), what=what, best_mean=pct(summary[best]["mean"]), worst=Code(worst),
        worst_mean=pct(summary[worst]["mean"]), spread=f"{100 * (summary[best]['mean'] - summary[worst]['mean']):.2f}",
        command=Code(rerun_command(results)))


def _tested_verdict(m: dict[str, Any], ranked: list[str], n_seeds: int, what: str) -> list[Block]:
    """The best activation with its CI, who ties with it, and every other one against it."""
    summary, top, best = m["summary"], m["tiers"][0], ranked[0]
    pair = {frozenset((t["a"], t["b"])): t for t in m["pairwise"]}
    sentences = [fill("Over {n} seeds, {best} has the highest {what}: {value}.",
                      n=n_seeds, best=Code(best), what=what, value=mean_ci(summary[best]))]
    if len(top) == len(ranked):
        sentences.append(fill("No activation differs significantly from {best} (paired t-test over seeds, "
                              "Holm-corrected, α = {alpha}): all {n} are tied at this N.",
                              best=Code(best), alpha=str(ALPHA), n=len(ranked)))
    elif len(top) > 1:
        sentences.append(fill("Tied with it (no significant difference): {labels}.", labels=codes(top[1:])))
    if len(top) == 1 and all(pair[frozenset((best, label))]["significant"] for label in ranked[1:]):
        sentences.append("Every other activation is significantly below it.")
    versus = [_versus_best(label, best, summary[label], pair[frozenset((best, label))]) for label in ranked[1:]]
    return [Paragraph(joined(sentences, " ")), Bullets(versus)]


def _versus_best(label: str, best: str, summary: dict[str, float], t: dict[str, Any]) -> Text:
    """One activation against the best: its mean, the paired difference with CI, both tests, d_z."""
    diff = t["mean_diff"] if t["a"] == label else -t["mean_diff"]
    low, high = (t["diff_ci_low"], t["diff_ci_high"]) if t["a"] == label else (-t["diff_ci_high"], -t["diff_ci_low"])
    return fill(
        "{label}: {value}, {diff} vs {best} (95% CI of the paired difference {low} to {high}; paired t {p_t} after "
        "Holm, Wilcoxon {p_w}; effect size d_z = {dz}) — {status} {best}.",
        label=Code(label), value=mean_ci(summary), diff=pts(diff), best=Code(best), low=f"{100 * low:+.2f}",
        high=f"{100 * high:+.2f}", p_t=p_value(t["p_t_holm"]), p_w=p_value(t["p_wilcoxon_holm"]),
        dz=f"{abs(t['effect_dz']):.2f}",
        status="significantly below" if t["significant"] else "not significantly different from")


def _rank_test_and_ranking(tiers: list[list[str]], n_seeds: int) -> list[Text]:
    sentences: list[Text] = []
    if min_wilcoxon_p(n_seeds) >= ALPHA:
        sentences.append(fill("With {n} seeds the exact Wilcoxon test cannot go below p = {p}, so only the t-test can "
                              "reach significance; use 6 or more seeds for the rank test to count.",
                              n=n_seeds, p=f"{min_wilcoxon_p(n_seeds):.3f}"))
    if len(tiers) > 1:
        ties = " (= means tied)" if any(len(tier) > 1 for tier in tiers) else ""
        sentences.append(fill("Ranking: {ranking}{ties}.", ranking=ranking_text(tiers), ties=ties))
    return sentences


def _failure_sentences(results: Results, counts: dict[str, dict[str, int]]) -> list[Text]:
    """Runs that failed to learn or did not finish, per activation: counted, never silently dropped."""
    sentences: list[Text] = []
    for label, c in counts.items():
        if c["ok"] == c["runs"]:
            continue
        runs = results.by_label(label)
        if c["failed_to_learn"]:
            every = [r.final_test_acc for r in runs
                     if r.status in ("ok", "failed_to_learn") and r.final_test_acc is not None]
            with_them = fill("; with them the mean would be {mean}", mean=pct(statistics.fmean(every))) if every else ""
            sentences.append(fill(
                "{label} failed to learn in {k} of {n} runs (failure rate {k}/{n}: best accuracy below 20%, twice "
                "chance). Those runs are not in its mean{with_them}, so its result is bimodal: it either learns or it "
                "does not.", label=Code(label), k=c["failed_to_learn"], n=c["runs"], with_them=with_them))
        others = [r.status for r in runs if r.status not in ("ok", "failed_to_learn")]
        if others:
            sentences.append(fill("{label} did not finish {k} of {n} runs ({statuses}); those runs are left out of "
                                  "every mean and test.", label=Code(label), k=len(others), n=c["runs"],
                                  statuses=codes(others)))
    return sentences


# --- what the diagnostics show, and what they explain ----------------------------------------------

def _diagnostic_sentences(results: Results, ranked: list[str], best: str, behind: list[str],
                          tentative: bool) -> list[Block]:
    """Per activation: what the measurements show, compared with the best activation's."""
    table = diagnostic_means(results)
    if not table:
        return [Paragraph(fill("No diagnostics were measured ({setting}), so the causes cannot be examined.",
                               setting=Code("diagnostics = false")))]
    grad0 = {label: table.get("init", {}).get("grad_norm", {}).get(label, {}).get("linear1") for label in ranked}
    first = {label: _first_epoch_acc(results, label) for label in ranked}
    family_of = {r.label: activation_family(r.activation) for r in results.runs}
    items = []
    for label in ranked:
        facts = _diagnostic_facts(table, label, best, family_of[label], grad0, first)
        if facts:
            items.append(fill("{label}: {facts}.", label=Strong(Code(label)), facts=joined(facts, "; ")))
    blocks: list[Block] = [Heading(3, "What the diagnostics show"), Bullets(items)] if items else []
    causes = _likely_causes(table, behind, best, grad0, first, family_of)
    if causes:
        title = "Possible causes (tentative: the differences are not established)" if tentative else "Likely causes"
        blocks += [Heading(3, title), Bullets(causes)]
    elif behind and not tentative:
        blocks.append(Paragraph(fill("The diagnostics show no gradient, saturation or dead-unit deficit that would "
                                     "explain why {behind} fell behind {best}.", behind=codes(behind), best=Code(best))))
    return blocks


def _diagnostic_facts(table, label: str, best: str, family: str, grad0, first) -> list[Text]:
    """The measurements worth a sentence for one activation, each compared with the best one's."""
    facts: list[Text] = []
    sat = _layer_max(table, "init", "saturated_fraction", label)
    if sat and family != "relu" and sat[1] >= 0.05:
        facts.append(fill("{share} of {layer}'s pre-activations are saturated at init (derivative below 5% of its "
                          "maximum)", share=f"{sat[1]:.0%}", layer=sat[0]))
    dead_end = _layer_max(table, "final", "dead_fraction", label)
    dead_init = _layer_max(table, "init", "dead_fraction", label)
    if dead_end and dead_end[1] > 0:
        facts.append(fill("{share} of {layer}'s units are dead after training (zero on all diagnostic images; "
                          "{at_init} at init)", share=f"{dead_end[1]:.1%}", layer=dead_end[0],
                          at_init=f"{dead_init[1] if dead_init else 0:.1%}"))
    elif dead_end and family == "relu":
        facts.append("no dead units in any layer after training")
    g, gb = grad0.get(label), grad0.get(best)
    if g is not None and gb and label != best:
        template = ("first-layer gradient norm at init {g}, {factor}× smaller than {best}'s {gb}" if g < gb else
                    "first-layer gradient norm at init {g}, {factor}× larger than {best}'s {gb}")
        facts.append(fill(template, g=f"{g:.3g}", factor=f"{gb / g if g < gb else g / gb:.1f}", best=Code(best),
                          gb=f"{gb:.3g}"))
    elif g is not None and label == best:
        facts.append(fill("first-layer gradient norm at init {g}", g=f"{g:.3g}"))
    r = table.get("init", {}).get("grad_ratio_first_last", {}).get(label, {}).get("all")
    if r is not None and r < 0.1:
        facts.append(fill("the first layer's gradient is {r}× the last layer's at init (vanishing gradients)",
                          r=f"{r:.3f}"))
    std = table.get("init", {}).get("act_std", {}).get(label, {})
    if std and family in ("smooth", "bounded"):
        last_layer = max(std)
        facts.append(fill("{layer} output at init has mean {mean} and std {std}", layer=last_layer,
                          mean=f"{table['init']['act_mean'][label][last_layer]:.2f}", std=f"{std[last_layer]:.2f}"))
    a1, b1 = first.get(label), first.get(best)
    if a1 is not None and b1 is not None and label != best:
        facts.append(fill("epoch-1 test accuracy {a} vs {best}'s {b}", a=pct(a1), best=Code(best), b=pct(b1)))
    return facts


def _likely_causes(table, behind, best, grad0, first, family_of) -> list[Text]:
    """Explanations the measurements support for the activations behind the best, citing the numbers."""
    causes: list[Text] = []
    for label in behind:
        g, gb = grad0.get(label), grad0.get(best)
        if g is None or gb is None:
            continue  # no diagnostics to compare (switched off for one of them)
        a1, b1 = first.get(label), first.get(best)
        slow_start = a1 is not None and b1 is not None and b1 - a1 >= 0.005
        sat = _layer_max(table, "init", "saturated_fraction", label)
        sat_best = _layer_max(table, "init", "saturated_fraction", best)
        dead = _layer_max(table, "final", "dead_fraction", label)
        dead_best = _layer_max(table, "final", "dead_fraction", best)
        family = family_of[label]
        values = dict(label=Code(label), best=Code(best), a1=pct(a1), b1=pct(b1), g=f"{g:.3g}", gb=f"{gb:.3g}")
        small_gradient = bool(gb) and g < gb / 2
        if small_gradient:
            saturated = (fill(", with {share} of {layer}'s pre-activations saturated", share=f"{sat[1]:.0%}",
                              layer=sat[0]) if family == "bounded" and sat and sat[1] >= 0.05 else "")
            template = ("{label}: its first-layer gradient at init is {factor}× smaller than {best}'s ({g} vs {gb})"
                        "{saturated}" + (" — consistent with its slower first epoch ({a1} vs {b1})." if slow_start else
                                         "; yet its first epoch was not slower ({a1} vs {b1}), so the small gradient "
                                         "did not hold it back here."))
            causes.append(fill(template, factor=f"{gb / g:.1f}", saturated=saturated, **values))
        elif slow_start:
            causes.append(fill("{label}: slower first epoch ({a1} vs {best}'s {b1}) without a smaller gradient at init "
                               "({g} vs {gb}), so the gradient scale does not explain it.", **values))
        if dead and dead[1] >= 0.02 and (not dead_best or dead[1] > 2 * dead_best[1]):
            causes.append(fill("{label}: {share} of {layer}'s units died during training ({best}: {at_most}) and no "
                               "longer learn, which reduces its capacity.", label=Code(label), best=Code(best),
                               share=f"{dead[1]:.1%}", layer=dead[0],
                               at_most=f"{dead_best[1]:.1%} at most" if dead_best else "none measured"))
        if sat and sat_best and family == "bounded" and sat[1] >= 0.2 and sat[1] > sat_best[1] + 0.1 \
                and not (g and small_gradient):
            causes.append(fill("{label}: {share} of {layer}'s pre-activations saturated at init vs {share_best} for "
                               "{best}; saturated units pass almost no gradient.", label=Code(label), best=Code(best),
                               share=f"{sat[1]:.0%}", layer=sat[0], share_best=f"{sat_best[1]:.0%}"))
    return causes


# --- published figures side by side ----------------------------------------------------------------

def _authored(text: str) -> tuple:
    """Text we wrote ourselves (a preset's description), where `backticks` mark code. Never for data."""
    return joined((Code(piece) if i % 2 else piece for i, piece in enumerate(text.split("`"))), "")


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


def _beside_ours(results: Results, published: dict[str, float], field: str, title: str, fmt) -> Table:
    """A table of one published figure per activation beside our mean and seed range of `field`."""
    rows = []
    for label, figure in published.items():
        ours = [getattr(r, field) for r in results.by_label(label) if r.status == "ok" and getattr(r, field) is not None]
        if ours:
            rows.append([Code(label), fmt(figure), fmt(statistics.fmean(ours)), f"{fmt(min(ours))}–{fmt(max(ours))}",
                         "yes" if min(ours) <= figure <= max(ours) else "no"])
    return Table(["activation", title, "ours: mean", "ours: seed range", "inside"], rows)


def published_blocks(results: Results) -> list[Block]:
    """The write-up's figures beside ours, for a run that reproduces a preset unchanged."""
    name = _preset_matches(results)
    if name is None:
        if results.config.get("name") in PRESETS:
            return [Heading(2, "Published figures"),
                    Paragraph("This run changed the preset's settings, so the write-up's figures are not comparable "
                              "and are not shown.")]
        return []
    preset = PRESETS[name]
    pub = preset.published
    blocks: list[Block] = [Heading(2, "Published figures beside ours"),
                           Paragraph(fill("Source: {source}.", source=_authored(preset.source)))]
    if "test_acc" in pub:
        blocks += _per_epoch_comparison(results, pub["test_acc"])
    if "final_test_loss" in pub:
        blocks.append(_beside_ours(results, pub["final_test_loss"], "final_test_loss",
                                   "published test loss @ last epoch", lambda v: f"{v:.4f}"))
    if "one_batch_acc" in pub:
        blocks += _one_batch_comparison(results, pub["one_batch_acc"])
    if "best_val_test_acc" in pub:
        blocks.append(_beside_ours(results, pub["best_val_test_acc"], "best_test_acc",
                                   "published best-val checkpoint test acc", pct))
    if "conclusion" in pub:
        blocks.append(Paragraph(fill("The write-up concluded: {conclusion}.", conclusion=_authored(pub["conclusion"]))))
    blocks += [Paragraph(fill("Difference: {difference}", difference=_authored(d))) for d in preset.differences]
    return blocks


def _per_epoch_comparison(results: Results, published: dict[str, list[float]]) -> list[Block]:
    """Each published per-epoch test accuracy against the range of our seeds at that epoch."""
    rows, inside, total = [], 0, 0
    for label, figures in published.items():
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
                rows.append([Code(label), epoch, f"{figure:.2f}", f"{100 * statistics.fmean(ours):.2f}",
                             f"{lo:.2f}–{hi:.2f}", "yes" if hit else "no"])
    n = len({r.seed for r in results.runs})
    template = ("{inside} of {total} published per-epoch test accuracies fall inside the range of our {n} seed (with "
                "one seed the range is a single point, so almost none can)." if n == 1 else
                "{inside} of {total} published per-epoch test accuracies fall inside the range of our {n} seeds.")
    header = ["activation", "epoch", "published %", "ours: mean %", "ours: seed range %", "inside our range"]
    return [Paragraph(fill(template, inside=inside, total=total, n=n)), Table(header, rows)]


def _one_batch_comparison(results: Results, published: dict[str, float]) -> list[Block]:
    """Accuracies the write-up measured on one batch of 64, against the binomial range our accuracy gives."""
    rows = []
    for label, figure in published.items():
        ours = [r.final_test_acc for r in results.by_label(label) if r.status == "ok" and r.final_test_acc is not None]
        if not ours:
            continue
        p = statistics.fmean(ours)
        lo, hi = (v / 64 for v in sps.binom.interval(0.95, 64, p))
        rows.append([Code(label), f"{figure:.4f} ({round(figure * 64)}/64)", pct(p), f"{lo:.4f}–{hi:.4f}",
                     "yes" if lo <= figure <= hi else "no"])
    return [Paragraph("The write-up's sigmoid and tanh figures are accuracies on one batch of 64 images. A batch of 64 "
                      "drawn from a model with our full-test-set accuracy p scores Binomial(64, p)/64; the 95% interval "
                      "of that is shown."),
            Table(["output", "published (one batch)", "ours (full test set)", "95% range of one batch of 64", "inside"],
                  rows)]


METHOD = fill(
    "Paired design: within one seed every activation sees the same training examples in the same order, the same "
    "validation split, and starts from the same initial weights (where layer shapes match), so the difference between "
    "two activations is measured seed by seed. Significance is decided by a paired t-test on the per-seed differences, "
    "Holm-corrected over all pairs; the Wilcoxon signed-rank test is reported beside it. The ranking places each "
    "activation in the tier of the best activation not yet placed unless it differs significantly from it. Every "
    "number here is in {results}, {stats} and {diagnostics} beside this report.",
    results=Code("results.json"), stats=Code("stats.json"), diagnostics=Code("diagnostics.csv"))
