"""What was measured in the networks per layer (dead units, saturation, output statistics, learned
parameters), at initialisation and at the end, as a figure and a table."""

from __future__ import annotations

import math

from actlab.numbers import layer_name, pct
from actlab.diagnostics import METRICS
from actlab.messages import Words
from actlab.render import Block, Code, Heading, Image, Paragraph, Table
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    if not c.diagnostics:
        return []
    w = c.w
    return [Heading(2, w("report.diagnostics")), Paragraph(w("diagnostics.definitions")),
            Image(f"{c.images}/diagnostics.png", w.plain("plot.alt_diagnostics"), w("figure.diagnostics")),
            Table(*diagnostics_table(c.diagnostics, w))]


def diagnostics_table(table, w: Words) -> tuple[list, list[list]]:
    header = [w("table.activation"), w("table.layer"), w("diagnostics.dead"), w("diagnostics.saturated"),
              w("diagnostics.max_derivative"), w("diagnostics.output_stats")]
    has_best = "best" in table
    header += [w("diagnostics.best")] if has_best else []
    learned = sorted({m for stage in table.values() for m in stage
                      if m.startswith("param_") and not m.endswith("_std")})
    header += [w("diagnostics.learned")] if learned else []
    extra = [m for m in METRICS.values() if m.column and any(m.name in stage for stage in table.values())]
    header += [m.title(w) for m in extra]
    rows = []
    for label in table.get("init", {}).get("dead_fraction", {}):
        for layer in table["init"]["dead_fraction"][label]:
            def get(stage: str, metric: str, label=label, layer=layer) -> float:
                return table.get(stage, {}).get(metric, {}).get(label, {}).get(layer, math.nan)
            row: list = [Code(label), layer_name(layer, w),
                         f"{pct(get('init', 'dead_fraction'), 1)} → {pct(get('final', 'dead_fraction'), 1)}",
                         f"{pct(get('init', 'saturated_fraction'), 1)} → "
                         f"{pct(get('final', 'saturated_fraction'), 1)}",
                         f"{get('init', 'max_derivative'):.3g}",
                         f"{get('final', 'act_mean'):.2f}, {get('final', 'act_std'):.2f}"]
            if has_best:
                row.append(f"{pct(get('best', 'dead_fraction'), 1)}, {pct(get('best', 'saturated_fraction'), 1)}")
            if learned:
                row.append(", ".join(f"{m[len('param_'):]} {get('init', m):.3f} → {get('final', m):.3f}"
                                     for m in learned if not math.isnan(get("final", m))) or "–")
            row += [f"{pct(get('init', m.name), 1)} → {pct(get('final', m.name), 1)}" if m.name.endswith("_fraction")
                    else f"{get('init', m.name):.3g} → {get('final', m.name):.3g}" for m in extra]
            rows.append(row)
    return header, rows
