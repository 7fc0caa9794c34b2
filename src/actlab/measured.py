"""What the diagnostics measured for each activation, beside the best one's, and what the run holds
fixed between activations: associations, stated as such (a run shows what goes with a result, not
why; the hypotheses that test a cause are in `actlab.causes`)."""

from __future__ import annotations

import json
import math
import statistics

from actlab.activations import activation_family
from actlab.diagnostics import DIAGNOSTIC_EXAMPLES, SATURATED_DERIVATIVE
from actlab.hypotheses import zero_side
from actlab.messages import Words
from actlab.numbers import layer_name, layer_order, pct, point_text
from actlab.render import Block, Bullets, Code, Heading, Paragraph, Strong, Text, joined
from actlab.results import Results

ADAPTIVE = ("adam", "adamw", "rmsprop")


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
    isolation = Paragraph(joined(isolation_sentences(results, w), w.plain("list.sentence")))
    return blocks + ([Bullets(items)] if items else []) + [isolation]


def hidden_layers(values: dict[str, float]) -> list[str]:
    """The hidden layers among `values`' keys (a CNN's conv layers first), from the input on."""
    return sorted((k for k in values if k.startswith(("conv", "hidden"))), key=layer_order)


def first_weight_layer(values: dict[str, float]) -> float | None:
    """The value at the first weight layer (`conv1` in a CNN, else `linear1`), if measured."""
    return next((values[k] for k in sorted(values, key=layer_order) if k in ("conv1", "linear1")), None)


def layer_max(table, stage: str, metric: str, label: str) -> tuple[str, float] | None:
    """The hidden layer where `metric` is largest for `label` at `stage`, with its value."""
    measured = table.get(stage, {}).get(metric, {}).get(label, {})
    values = {k: measured[k] for k in hidden_layers(measured)}
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
    dead_end, dead_init = layer_max(table, "final", "dead_fraction", label), \
        layer_max(table, "init", "dead_fraction", label)
    if dead_end and dead_end[1] > 0:
        facts.append(w("measured.dead", share=pct(dead_end[1], 1), layer=layer_name(dead_end[0], w),
                       images=DIAGNOSTIC_EXAMPLES, at_init=pct(dead_init[1] if dead_init else 0.0, 1)))
    elif dead_end and family == "relu":
        never = layer_max(table, "final", "never_positive_fraction", label)
        if never and never[1] > 0 and not zero_side(next(r.activation for r in results.by_label(label))):
            at_init = table.get("init", {}).get("never_positive_fraction", {}).get(label, {}).get(never[0], 0.0)
            facts.append(w("measured.never_positive", share=pct(never[1], 1), layer=layer_name(never[0], w),
                           at_init=pct(at_init, 1)))
        else:
            facts.append(w("measured.no_dead"))
    sat = layer_max(table, "init", "saturated_fraction", label)
    if sat and family != "relu" and sat[1] >= 0.05:
        top = table["init"].get("max_derivative", {}).get(label, {}).get(sat[0])
        facts.append(w("measured.saturated", share=pct(sat[1], 0), layer=layer_name(sat[0], w),
                       threshold=f"{SATURATED_DERIVATIVE:g}",
                       max="–" if top is None else f"{top:.3g}"))
    grad = {lab: first_weight_layer(table.get("init", {}).get("grad_norm", {}).get(lab, {})) for lab in (label, best)}
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
        facts.append(w("measured.grad_ratio", r=f"{ratio:.2g}"))
    std = table.get("init", {}).get("act_std", {}).get(label, {})
    if hidden_layers(std) and family in ("smooth", "bounded"):
        layer = hidden_layers(std)[-1]  # the last hidden layer
        facts.append(w("measured.act_stats", layer=layer_name(layer, w),
                       mean=f"{table['init']['act_mean'][label][layer]:.2f}", std=f"{std[layer]:.2f}"))
    a1, b1 = _first_epoch_acc(results, label), _first_epoch_acc(results, best)
    if a1 is not None and b1 is not None and label != best:
        facts.append(w("measured.epoch1", a=pct(a1), best=Code(best), b=pct(b1)))
    return facts


def same_start(results: Results) -> bool:
    """Within a seed every activation started from the same weights with the same training settings
    (no per-activation init, dropout kind or tuned values)."""
    inits = results.config.get("init", "default")
    per_init = isinstance(inits, dict) and len({inits.get(a, "default") for a in _activations(results)}) > 1
    tuned = {json.dumps(e["chosen"], sort_keys=True) for e in (results.tuning or {}).get("activations", {}).values()}
    return not per_init and len(set(_dropout_kinds(results).values())) <= 1 and len(tuned) <= 1


def isolation_sentences(results: Results, w: Words) -> list[Text]:
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
