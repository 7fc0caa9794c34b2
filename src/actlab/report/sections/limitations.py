"""Limitations: what this run's design leaves open, generated from the run (epochs still improving,
one hidden layer, SELU without its preconditions, one shared learning rate, few seeds, a subset).
The conclusion names the first of them as its main caveat."""

from __future__ import annotations

from typing import Any

from actlab.analysis import tested_pairs
from actlab.hypotheses import init_of, selu_preconditions_met
from actlab.messages import Words
from actlab.render import Block, Bullets, Code, Heading, joined
from actlab.report.context import Context
from actlab.results import Results
from actlab.stats import still_improving


def blocks(c: Context) -> list[Block]:
    items = [c.w(f"limits.{kind}", **values) for kind, values in limitations(c.results, c.analysis, c.metric, c.w)]
    return [Heading(2, c.w("limits.heading")), Bullets(items)] if items else []


def limitations(results: Results, analysis: dict[str, Any], metric: str, w: Words) -> list[tuple[str, dict]]:
    """Each limitation that holds for this run, the weightiest first, as (kind, the values its
    sentence names): `limits.<kind>` says it in full, `conclusion.caveat_<kind>` in brief."""
    config, out = results.config, []
    improving = [(label, sum(still_improving(r) for r in runs), len(runs)) for label in results.labels
                 if (runs := [r for r in results.by_label(label) if r.counts and not r.status.diverged])]
    improving = [(label, k, n) for label, k, n in improving if k]
    if improving:
        items = joined([w("limits.improving_item", label=Code(label), k=k, n=n) for label, k, n in improving],
                       w.plain("list.comma"))
        out.append(("still_improving", dict(items=items, epochs=config.get("epochs", "?"))))
    m = analysis["metrics"].get(metric, {})
    open_pairs = [t for t in tested_pairs(m) if t["verdict"] == "inconclusive"] if m else []
    if open_pairs:
        out.append(("few_seeds", dict(seeds=w.count("seed", len(analysis["seeds"])), k=len(open_pairs),
                                      n=len(tested_pairs(m)))))
    hidden = config.get("hidden", [])
    if isinstance(hidden, list) and len(hidden) == 1 and config.get("model", "mlp") != "cnn":
        out.append(("one_hidden", {}))
    if any(r.activation.split(":")[0].strip().lower() == "selu" for r in results.runs) and \
            not selu_preconditions_met(config):
        out.append(("selu", dict(init=Code(str(init_of(config, "selu"))),
                                 normalize=Code(str(config.get("normalize", "none"))))))
    if "lr" not in (results.tuning or {}).get("keys", []) and len(results.labels) > 1:
        out.append(("shared_lr", dict(lr=Code(f"{config.get('lr', '?')}"), optimizer=Code(str(config.get("optimizer"))),
                                      command=Code("--tune lr"))))
    if config.get("train_subset"):
        out.append(("subset", dict(n=f"{config['train_subset']:,}")))
    out.append(("one_setting", dict(dataset=Code(str(config.get("dataset"))))))
    return out

