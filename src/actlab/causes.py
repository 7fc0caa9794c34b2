"""The hypotheses' contrasts and verdicts: what the report's "Possible causes" section says.

Each contrast of `actlab.hypotheses` is computed seed by seed over the seeds where every arm it
reads has a model that counts, tested like a pair of activations (`actlab.paired`: paired t, exact
sign-flip without spread, TOST against ±margin), Holm-corrected over all the run's contrasts, with
simultaneous (Bonferroni) 95% intervals. Its verdict on the hypothesis:
- `supported`: significant in the predicted direction (for a "no difference" prediction: equivalent);
- `contradicted`: significant the other way (for a "no difference" prediction: any significant one);
- `no_effect`: equivalent within ±margin (where a difference was predicted);
- `inconclusive`: none of these, with the seeds a test would need;
- `untestable`: the run cannot test it (a reason), or `not_run`: its models are not trained yet
  (`actlab explain`).
Wording stays within the run: a verdict holds "here", in this setting, never in general.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any

from actlab.analysis import primary_metric
from actlab.hypotheses import NAMES, Arm, Contrast, RunFacts, Side, applicable
from actlab.paired import ALPHA, MIN_SEEDS, mean_and_interval, paired_test, seeds_for_power
from actlab.results import ModelRun, Results
from actlab.stats import holm

TUNED_RUN_HYPOTHESES = ("fit_vs_generalise", "learning_rate")


def first_head(results: Results) -> tuple[str, str]:
    """The (output head, loss) of the run's first model: the one the hypotheses read and extend."""
    return (results.runs[0].output, results.runs[0].loss) if results.runs else ("logits", "cross_entropy")


def facts_of(results: Results) -> RunFacts:
    """The run's activations (label → activation, under the first output head and loss) and its config."""
    first = first_head(results)
    activations = {r.label: r.activation for r in results.runs if (r.output, r.loss) == first}
    return RunFacts(activations, results.config, "lr" in (results.tuning or {}).get("keys", []))


def arm_runs(results: Results, arm: Arm) -> list[ModelRun]:
    """The models of one arm that count: the run's own (setting "") or the interventions'."""
    output, loss = first_head(results)
    own = [r for r in results.runs if r.activation == arm.activation and (r.output, r.loss) == (arm.output or output,
                                                                                                   loss) and r.counts] \
        if arm.setting == "" else []
    stored = ((results.interventions or {}).get("settings", {}).get(arm.setting, {}).get("runs", []))
    extra = [m for m in (ModelRun.from_json(doc) for doc in stored) if m.activation == arm.activation and m.counts]
    return own or extra


def run_value(run: ModelRun, metric: str) -> float | None:
    """The contrast's measure of one model: its test accuracy as comparisons count it, or its final
    training accuracy (over the last epoch; none for a diverged model)."""
    if metric == "final_test_acc":
        return run.accuracy_reached()
    rows = [row for row in run.epochs if row.get("train_acc") is not None]
    return rows[-1]["train_acc"] if rows and not run.status.diverged else None


def mean_value(runs: list[ModelRun], metric: str) -> float | None:
    """The mean of `metric` (`run_value`) over the runs that count: one measure wherever it is shown."""
    values = [v for r in runs if r.counts and (v := run_value(r, metric)) is not None]
    return statistics.fmean(values) if values else None


def side_values(results: Results, side: Side, metric: str) -> dict[int, float]:
    """{seed: value} of one side: an arm's values, or the difference of two arms' on shared seeds."""
    def values(arm: Arm) -> dict[int, float]:
        return {r.seed: v for r in arm_runs(results, arm) if (v := run_value(r, metric)) is not None}
    plus = values(side.plus)
    if side.minus is None:
        return plus
    minus = values(side.minus)
    return {s: plus[s] - minus[s] for s in plus.keys() & minus.keys()}


def contrast_test(results: Results, c: Contrast, margin: float) -> dict[str, Any]:
    """One contrast over the seeds both sides have: the paired statistics of treated − control."""
    treated, control = side_values(results, c.treated, c.metric), side_values(results, c.control, c.metric)
    seeds = sorted(treated.keys() & control.keys())
    test = paired_test("treated", "control", [treated[s] for s in seeds], [control[s] for s in seeds], margin)
    missing = [arm for arm in c.arms if not arm_runs(results, arm)]
    return {"hypothesis": c.hypothesis, "subject": c.subject, "role": c.role, "step": c.step, "metric": c.metric,
            "prediction": c.prediction, "treated": _side_doc(c.treated, [treated[s] for s in seeds]),
            "control": _side_doc(c.control, [control[s] for s in seeds]), "seeds": seeds,
            "missing": [asdict(a) for a in missing], "test": asdict(test),
            "differences": [treated[s] - control[s] for s in seeds]}


def _side_doc(side: Side, values: list[float]) -> dict[str, Any]:
    """A side's arms, and its mean with a 95% t interval over the contrast's seeds (a depth gap)."""
    return {"plus": asdict(side.plus), "minus": asdict(side.minus) if side.minus else None,
            **mean_and_interval(values, 0.95)}


def verdict_of(prediction: int, significant: bool, mean: float | None, equivalent: bool) -> str:
    """How a contrast's statistics bear on its hypothesis (see the module docstring)."""
    if prediction == 0:
        return "supported" if equivalent else "contradicted" if significant else "inconclusive"
    if equivalent:
        return "no_effect"
    if significant:
        return "supported" if (mean or 0) * prediction > 0 else "contradicted"
    return "inconclusive"


def causes(results: Results, analysis: dict[str, Any], names: tuple[str, ...] = NAMES) -> list[dict[str, Any]]:
    """stats.json's `causes`: per hypothesis that bears on this run, its contrasts with their
    verdicts, or the reason it cannot be tested. Contrasts whose models are not all trained yet
    are `not_run`; the others form one Holm family."""
    margin = results.config.get("equivalence_margin", 0.5) / 100
    facts = facts_of(results)
    if results.tuning:  # each activation trained at its own values: no contrast of two of them isolates one change
        names = tuple(n for n in names if n in TUNED_RUN_HYPOTHESES)
    entries = []
    for name, (contrasts, reason) in applicable(facts, names).items():
        if name == "fit_vs_generalise" and len({(r.output, r.loss) for r in results.runs}) > 1:
            continue  # labels are activation/head/loss combinations; the gap analysis reads one head's activations
        if name == "fit_vs_generalise":
            contrasts = _gaps(contrasts, analysis)
            reason = reason or (None if contrasts else "cause.untestable.no_gap")
        rows = [contrast_test(results, c, margin) for c in contrasts]
        entries.append({"name": name, "untestable": reason, "contrasts": rows})
    rows = [row for e in entries for row in e["contrasts"] if not row["missing"] and row["test"]["n"] >= MIN_SEEDS]
    _judge(rows, margin)
    for e in entries:
        for row in e["contrasts"]:
            if row["missing"]:
                row["verdict"] = "not_run"
            elif row["test"]["n"] < MIN_SEEDS:
                row["verdict"], row["why"] = "untestable", "cause.untestable.few_seeds"
        if e["name"] == "learning_rate":
            e.update(_learning_rate(analysis))
        e["subjects"] = {row["subject"]: row["verdict"] for row in e["contrasts"] if row["role"] == "test"}
    return entries


def _judge(rows: list[dict[str, Any]], margin: float) -> None:
    """Holm over the tested contrasts, simultaneous intervals, and each contrast's verdict."""
    decide = holm([r["test"]["p_decision"] for r in rows], [True] * len(rows))
    equivalence = holm([r["test"]["p_tost"] for r in rows], [True] * len(rows))
    confidence = 1 - ALPHA / max(1, len(rows))
    for row, p, p_eq in zip(rows, decide, equivalence):
        t = row["test"]
        significant, equivalent = p is not None and p < ALPHA, p_eq is not None and p_eq < ALPHA
        interval = mean_and_interval(row["differences"], confidence)
        row.update(p_holm=p, p_tost_holm=p_eq, confidence=confidence, family=len(rows),
                   ci_low=interval["ci_low"], ci_high=interval["ci_high"],
                   verdict=verdict_of(row["prediction"], significant, t["mean_diff"], equivalent),
                   seeds_needed=None)
        if row["verdict"] == "inconclusive":
            row["seeds_needed"] = seeds_for_power(t["effect_dz"], ALPHA / max(1, len(rows)))


def _gaps(contrasts: list[Contrast], analysis: dict[str, Any]) -> list[Contrast]:
    """fit_vs_generalise: the pairs whose test accuracies differ significantly, written winner
    minus loser, so the prediction reads "the winner also fits the training data better"."""
    pairs = analysis["metrics"].get(primary_metric(analysis), {}).get("pairwise", [])
    winners = {frozenset((t["a"], t["b"])): (t["a"] if t["verdict"] == "a_better" else t["b"])
               for t in pairs if t["verdict"] in ("a_better", "b_better")}
    out = []
    for c in contrasts:
        a, b = c.treated.plus.activation, c.control.plus.activation
        winner = winners.get(frozenset((a, b)))
        if winner is None:
            continue
        treated, control = (c.treated, c.control) if winner == a else (c.control, c.treated)
        out.append(Contrast(c.hypothesis, b if winner == a else a, treated, control, metric=c.metric))
    return out


def _learning_rate(analysis: dict[str, Any]) -> dict[str, Any]:
    """A tuned run: whether some pair's difference changes when each activation trains at its own
    tuned values (the tuned-against-fixed interaction test)."""
    rows = (analysis.get("tuning") or {}).get("interaction", [])
    if not rows:
        return {}
    depends = [f"{r['a']} – {r['b']}" for r in rows if r["depends"]]
    margin = analysis["equivalence_margin_points"] / 100
    within = all(r["change"]["ci_low"] is not None and -margin < r["change"]["ci_low"] and
                 r["change"]["ci_high"] < margin for r in rows)
    verdict = "supported" if depends else "no_effect" if within else "inconclusive"
    return {"tuning": {"verdict": verdict, "depends": depends, "pairs": len(rows)}}
