"""Possible causes (可能原因分析): each classic explanation that bears on the run, with the textbook
claim, what the run measured, the isolating contrast and its verdict (`actlab.causes`), one sentence
on what it means here, and a figure of every contrast with its interval. Without `--explain`, the
measured evidence and the command that would test each hypothesis."""

from __future__ import annotations

from typing import Any

from actlab.analysis import experiment_file
from actlab.causes import arm_runs, first_head, mean_value
from actlab.hypotheses import Arm, DEPTH_FACTOR, init_of
from actlab.measured import diagnostic_means, hidden_layers, layer_max
from actlab.messages import Words
from actlab.numbers import layer_name, p_text, pct, pts
from actlab.paired import ALPHA
from actlab.render import Block, Bullets, Code, Heading, Image, Paragraph, Strong, Table, Text, joined
from actlab.report.context import Context
from actlab.results import Results
from actlab.diagnostics import DIAGNOSTIC_EXAMPLES, SATURATED_DERIVATIVE


def blocks(c: Context) -> list[Block]:
    entries = c.analysis.get("causes") or []
    if not entries or not c.results.runs:
        return []
    w, margin = c.w, c.analysis["equivalence_margin_points"]
    tested = [row for e in entries for row in e["contrasts"] if row["verdict"] not in ("not_run", "untestable")]
    family = tested[0]["family"] if tested else 0
    intro = [w("causes.intro", contrasts=w.count("contrast", family), alpha=str(ALPHA), margin=f"{margin:g}")
             if family else w("causes.intro_untested")]
    cost = (c.results.interventions or {}).get("cost")
    if cost and cost["models"]:
        intro.append(w("causes.cost", models=cost["models"], seconds=f"{cost['train_seconds']:.0f}"))
    verdicts = {row["verdict"] for e in entries for row in e["contrasts"]}
    if "not_run" in verdicts and not tested:
        intro.append(w("causes.not_explained", command=Code(f"actlab explain {c.results.run_dir}")))
    out: list[Block] = [Heading(2, w("causes.heading")), Paragraph(joined(intro, w.plain("list.sentence")))]
    out += evidence_table(c.results, c.diagnostics, w)
    words = Evidence(c.results, c.diagnostics, w)
    for entry in entries:
        out += hypothesis_blocks(entry, words, c.results, margin, w)
    if tested and (c.plots / "causes.png").is_file():
        out.append(Image(f"{c.images}/causes.png", w.plain("causes.alt_figure"),
                         w("causes.figure_caption", margin=f"{margin:g}")))
    if tested and (c.plots / "depth_gaps.png").is_file() and any(
            row["hypothesis"] == "vanishing_gradient" for row in tested):
        out.append(Image(f"{c.images}/depth_gaps.png", w.plain("causes.alt_depth"), w("causes.depth_caption")))
    return out


def evidence_table(results: Results, table, w: Words) -> list[Block]:
    """The same measurements for every activation, so that no two are described with different numbers."""
    if not table:
        return []
    rows = []
    for label in results.labels:
        runs = results.by_label(label)
        mean, std = _last_hidden(table, "init", "act_mean", label), _last_hidden(table, "init", "act_std", label)
        ratio = table.get("init", {}).get("grad_ratio_first_last", {}).get(label, {}).get("all")
        rows.append([Code(label), pct(_largest(table, "final", "dead_fraction", label), 1),
                     pct(_largest(table, "final", "never_positive_fraction", label), 1),
                     pct(_largest(table, "init", "saturated_fraction", label), 1),
                     "–" if mean is None or std is None else f"{mean:.2f}, {std:.2f}",
                     "–" if ratio is None else f"{ratio:.2g}",
                     pct(mean_value(runs, "final_train_acc")), pct(mean_value(runs, "final_test_acc"))])
    header = [w("table.activation"), w("causes.col_dead"), w("causes.col_never"), w("causes.col_saturated"),
              w("causes.col_output"), w("causes.col_ratio"), w("causes.col_train"), w("causes.col_test")]
    return [Table(header, rows), Paragraph(w("causes.evidence_caption", images=DIAGNOSTIC_EXAMPLES,
                                               threshold=f"{SATURATED_DERIVATIVE:g}"))]


def _largest(table, stage: str, metric: str, label: str) -> float | None:
    found = layer_max(table, stage, metric, label)
    return found[1] if found else None


def _last_hidden(table, stage: str, metric: str, label: str) -> float | None:
    values = table.get(stage, {}).get(metric, {}).get(label, {})
    hidden = hidden_layers(values)
    return values[hidden[-1]] if hidden else None


class Evidence:
    """The measurement sentence of each hypothesis, from the run's diagnostics and the arms' own."""

    def __init__(self, results: Results, table, w: Words):
        self.results, self.table, self.w = results, table, w

    def arm_table(self, arm: Arm):
        """The diagnostics' means of one arm's models (the run's, or an intervention's), and its label there."""
        head = arm.output or first_head(self.results)[0]
        own = next((r.label for r in self.results.runs if r.activation == arm.activation and r.output == head), None) \
            if arm.setting == "" else None
        if own is not None:
            return self.table, own
        return diagnostic_means(Results(self.results.run_dir, {}, {}, arm_runs(self.results, arm))), arm.activation

    def value(self, arm: Arm, stage: str, metric: str, layer: str | None = None) -> float | None:
        table, label = self.arm_table(arm)
        if layer:
            return table.get(stage, {}).get(metric, {}).get(label, {}).get(layer)
        return _last_hidden(table, stage, metric, label)

    def of(self, entry: dict[str, Any], row: dict[str, Any]) -> Text:
        method = getattr(self, entry["name"], None)
        return method(row) if method else ""

    def dead_units(self, row) -> Text:
        subject, twin = Arm(row["control"]["plus"]["activation"]), Arm(row["treated"]["plus"]["activation"])
        table, label = self.arm_table(subject)
        layer, dead = layer_max(table, "final", "dead_fraction", label) or (None, None)
        return self.w("cause.dead_units.evidence", subject=Code(row["subject"]), twin=Code(twin.activation),
                      dead=pct(dead, 1), layer=layer_name(layer, self.w),
                      at_init=pct(table.get("init", {}).get("dead_fraction", {}).get(label, {}).get(layer), 1),
                      never=pct(self.value(subject, "final", "never_positive_fraction", layer), 1),
                      twin_never=pct(self.value(twin, "final", "never_positive_fraction", layer), 1))

    def vanishing_gradient(self, row) -> Text:
        ref, sub = Arm(row["control"]["plus"]["activation"]), Arm(row["control"]["minus"]["activation"])
        deep = {k: _arm(row["treated"][k]) for k in ("plus", "minus")}
        ratio = lambda arm: self.value(arm, "init", "grad_ratio_first_last", "all")  # noqa: E731
        layers = len(self.results.config.get("hidden", [1]) or [1])
        text = [self.w("cause.vanishing_gradient.evidence", subject=Code(row["subject"]), ref=Code(ref.activation),
                       r=_ratio(ratio(sub)), r_ref=_ratio(ratio(ref)), layers=layers)]
        if arm_runs(self.results, deep["minus"]) and arm_runs(self.results, deep["plus"]):
            text.append(self.w("cause.vanishing_gradient.evidence_deep", layers_deep=layers * DEPTH_FACTOR,
                               r_deep=_ratio(ratio(deep["minus"])), r_ref_deep=_ratio(ratio(deep["plus"]))))
        return joined(text, self.w.plain("list.sentence"))

    def zero_centred(self, row) -> Text:
        if row["role"] != "test":
            return ""
        sub, twin = Arm(row["control"]["plus"]["activation"]), Arm(row["treated"]["plus"]["activation"])
        mean, twin_mean = self.value(sub, "init", "act_mean"), self.value(twin, "init", "act_mean")
        return self.w("cause.zero_centred.evidence", subject=Code(row["subject"]), twin=Code(twin.activation),
                      mean=_num(mean), twin_mean=_num(twin_mean))

    def self_normalising(self, row) -> Text:
        sub = Arm(row["control"]["plus"]["activation"])
        pre_arm = _arm(row["treated"]["plus"])
        return self.w("cause.self_normalising.evidence", subject=Code(row["subject"]),
                      init=Code(str(init_of(self.results.config, sub.activation))),
                      normalize=Code(str(self.results.config.get("normalize", "none"))),
                      stds=self._stds(sub), stds_pre=self._stds(pre_arm) if arm_runs(self.results, pre_arm)
                      else self.w("causes.not_measured"))

    def _stds(self, arm: Arm) -> str:
        table, label = self.arm_table(arm)
        values = table.get("init", {}).get("act_std", {}).get(label, {})
        return ", ".join(f"{values[k]:.2f}" for k in hidden_layers(values)) or "–"

    def capacity(self, row) -> Text:
        runs = self.results.by_label(row["subject"])
        return self.w("cause.capacity.evidence", subject=Code(row["subject"]),
                      train=pct(mean_value(runs, "final_train_acc")), test=pct(mean_value(runs, "final_test_acc")))

    def bounded_output(self, row) -> Text:
        if row["role"] != "test":
            return ""
        accuracy = lambda arm: pct(mean_value(arm_runs(self.results, arm), "final_test_acc"))  # noqa: E731
        heads = [Arm(self.results.runs[0].activation, output=h) for h in row["subject"].split(", ")]
        each = [joined([Code(a.name), accuracy(a)], " ") for a in heads]
        return self.w("cause.bounded_output.evidence", accuracy=joined(each, self.w.plain("list.comma")),
                      softmax=accuracy(_arm(row["control"]["plus"])),
                      log_softmax=accuracy(_arm(row["treated"]["plus"])))

    def fit_vs_generalise(self, row) -> Text:
        winner, loser = row["treated"]["plus"]["activation"], row["control"]["plus"]["activation"]
        of = lambda label, metric: pct(mean_value(self.results.by_label(label), metric))  # noqa: E731
        return self.w("cause.fit_vs_generalise.evidence", winner=Code(winner), loser=Code(loser),
                      winner_train=of(winner, "final_train_acc"), loser_train=of(loser, "final_train_acc"),
                      winner_test=of(winner, "final_test_acc"), loser_test=of(loser, "final_test_acc"))


def _arm(doc: dict[str, Any]) -> Arm:
    """An arm back from its stats.json form."""
    return Arm(doc["activation"], doc["setting"], tuple(map(tuple, doc["overrides"])), doc.get("output", ""))


def _name(doc: dict[str, Any]) -> str:
    """An arm's name in the report, from its stats.json form (`Arm.name`)."""
    return _arm(doc).name


def _ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2g}"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def hypothesis_blocks(entry: dict[str, Any], evidence: Evidence, results: Results, margin: float,
                      w: Words) -> list[Block]:
    """One hypothesis: the claim, then per subject what was measured and the contrast's verdict."""
    name = entry["name"]
    claim = [Strong(w("causes.claim_label")), w(f"cause.{name}.claim")]
    if f"cause.{name}.prediction" in w.table:  # said once, for every subject below
        claim.append(w(f"cause.{name}.prediction"))
    if name == "vanishing_gradient" and len(results.config.get("hidden") or []) == 1 and not entry["untestable"]:
        claim.append(w("cause.vanishing_gradient.shallow"))
    claim_text = _labelled(claim[0], joined(claim[1:], w.plain("list.sentence")), w)
    out: list[Block] = [Heading(3, w(f"cause.{name}.title", name=Code(name))), Paragraph(claim_text)]
    if name == "learning_rate":
        return out + [Paragraph(_learning_rate(entry, results, w))]
    if entry["untestable"] and not entry["contrasts"]:
        return out + [Paragraph(w("causes.labelled", label=Strong(w("causes.untestable_label")),
                                  text=w(entry["untestable"])))]
    tests = [row for row in entry["contrasts"] if row["role"] == "test"]
    ladder = [row for row in entry["contrasts"] if row["role"] == "ladder"]
    items = []
    for row in tests:
        parts = [_labelled(Strong(w("causes.measured_label")), evidence.of(entry, row), w),
                 _labelled(Strong(w("causes.test_label")), _experiment(name, row, results, w), w),
                 result_sentence(row, name, results, margin, w)]
        steps = [row2 for row2 in ladder if row2["subject"] == row["subject"]]
        if steps:
            parts.append(w(f"cause.{name}.ladder", steps=joined(
                [_ladder_step(s, margin, w) for s in steps], w.plain("list.semicolon"))))
        items.append(joined(parts, w.plain("list.sentence")))
    return out + [Bullets(items)]


def _experiment(name: str, row: dict[str, Any], results: Results, w: Words) -> Text:
    treated, control = row["treated"], row["control"]
    layers = len(results.config.get("hidden", [1]) or [1])
    return w.named(f"cause.{name}.experiment", subject=Code(row["subject"]), twin=Code(_name(treated["plus"])),
                   ref=Code(_name(control["plus"])), winner=Code(_name(treated["plus"])),
                   loser=Code(_name(control["plus"])), layers=layers, layers_deep=layers * DEPTH_FACTOR)


def result_sentence(row: dict[str, Any], name: str, results: Results, margin: float, w: Words) -> Text:
    """The contrast's difference, interval, test and verdict, and what the verdict means here."""
    verdict = row["verdict"]
    if verdict == "not_run":
        arms = joined([Code(_name(a) + (f" [{a['setting']}]" if a["setting"] else "")) for a in row["missing"]],
                      w.plain("list.comma"))
        return w("causes.not_run", command=Code(f"actlab explain {results.run_dir} --only {name}"), arms=arms)
    if verdict == "untestable":
        return w("causes.labelled", label=Strong(w("causes.untestable_label")), text=w(row["why"]))
    t, word = row["test"], _verdict_word(verdict, margin, w)
    if row["ci_low"] is None:
        text = [w("causes.result_no_spread", diff=pts(t["mean_diff"]), n=t["n"], p=p_text(row["p_holm"]),
                  verdict=Strong(word))]
    else:
        text = [w("causes.result", diff=pts(t["mean_diff"]), low=pts(row["ci_low"]), high=pts(row["ci_high"]),
                  p=p_text(row["p_holm"]), n=t["n"], verdict=Strong(word))]
    if verdict == "inconclusive":
        text.append(w("causes.seeds", k=row["seeds_needed"]) if row["seeds_needed"] else
                    w("causes.seeds_no_spread") if t["effect_dz"] is None else w("causes.seeds_many"))
    else:
        text.append(w.named(f"cause.{name}.{verdict}", subject=Code(row["subject"]),
                      ref=Code(_name(row["control"]["plus"])), winner=Code(_name(row["treated"]["plus"])),
                      loser=Code(_name(row["control"]["plus"]))))
    return joined(text, w.plain("list.sentence"))


def _labelled(label: Text, text: Text, w: Words) -> Text:
    """A bold label and its text, joined as the report's language joins them."""
    return w("causes.label_text", label=label, text=text)


def _verdict_word(verdict: str, margin: float, w: Words) -> Text:
    return w(f"causes.verdict.{verdict}", margin=f"{margin:g}") if verdict == "no_effect" else \
        w(f"causes.verdict.{verdict}")


def _ladder_step(row: dict[str, Any], margin: float, w: Words) -> Text:
    t = row["test"]
    if row["verdict"] in ("not_run", "untestable"):
        return w("causes.ladder_step_missing", step=w(f"causes.step.{row['step']}"))
    return w("causes.ladder_step", step=w(f"causes.step.{row['step']}"),
             treated=Code(_name(row["treated"]["plus"])), control=Code(_name(row["control"]["plus"])),
             diff=pts(t["mean_diff"]), low=pts(row["ci_low"]), high=pts(row["ci_high"]),
             verdict=w(f"causes.ladder.{row['verdict']}"))


def _learning_rate(entry: dict[str, Any], results: Results, w: Words) -> Text:
    tuning = entry.get("tuning")
    if not tuning:
        command = (f"actlab run --config {experiment_file(results)} --tune lr --val-split 10000 "
                   f"--out {results.run_dir}-tuned")
        return w("causes.labelled", label=Strong(w("causes.untestable_label")), text=w(
            "cause.untestable.not_tuned", lr=Code(f"{results.config.get('lr', '?')}"), command=Code(command)))
    margin = f"{results.config.get('equivalence_margin', 0.5):g}"
    text = [w("cause.learning_rate.evidence", k=len(tuning["depends"]), n=tuning["pairs"]),
            joined([Strong(_verdict_word(tuning["verdict"], float(margin), w)), ""], ""),
            w(f"cause.learning_rate.{tuning['verdict']}") if tuning["verdict"] != "inconclusive" else ""]
    return joined(text, w.plain("list.sentence"))
