"""How a run shows itself in a notebook: `Results._repr_html_` (the summary table, the verdicts, the
main figures inline, the run folder) and `Results.to_pandas` (per epoch, per model, per diagnostic).

The HTML carries its style inline, so it never restyles the notebook around it, and its figures as
data URLs, so it shows wherever the notebook is opened. pandas is imported only by `to_pandas`.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

FIGURES = ("final_accuracy.png", "test_acc.png")  # the report's first figures, where the run drew them
CELL = "padding:2px 10px;text-align:left;border-bottom:1px solid #ddd"


def results_html(results, rows: list[list[str]]) -> str:
    """`rows`: the summary table's header and rows (`results.summary_rows`, the terminal's words)."""
    head = "".join(f"<th style='{CELL}'>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td style='{CELL}'>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows[1:])
    parts = [f"<div><b>{html.escape(str(results.config.get('name', 'actlab run')))}</b>: "
             f"{len(results.runs)} models in <code>{html.escape(str(results.run_dir))}</code>",
             f"<table style='border-collapse:collapse;margin:6px 0'><tr>{head}</tr>{body}</table>"]
    verdicts = _verdicts(results)
    if verdicts:
        parts.append("<ul style='margin:4px 0'>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>")
    for name in FIGURES:
        path = results.run_dir / "plots" / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f"<img alt='{name}' style='max-width:48%;margin-right:1%' src='data:image/png;base64,{data}'>")
    report = results.run_dir / "report.html"
    if report.is_file():
        parts.append(f"<div>the whole report: <code>{html.escape(str(report))}</code></div>")
    return "\n".join(parts) + "</div>"


def _verdicts(results) -> list[str]:
    """One line per pair from the run's stats.json (written with the report), if there is one."""
    path = results.run_dir / "stats.json"
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    metric = "best_val_test_acc" if "best_val_test_acc" in stats.get("metrics", {}) else "final_test_acc"
    lines = []
    for t in stats.get("metrics", {}).get(metric, {}).get("pairwise", []):
        diff = t.get("mean_diff")
        shown = "" if diff is None else f", {100 * diff:+.2f} points"
        lines.append(f"{t['a']} vs {t['b']}: {t['verdict'].replace('_', ' ')}{shown} over {t['n']} seeds")
    return lines


def results_frame(results, kind: str = "epochs"):
    import pandas as pd  # an optional dependency: only this method needs it

    if kind == "epochs":
        rows: list[dict[str, Any]] = [{"activation": r.label, "seed": r.seed, **row, "status": str(r.status)}
                                      for r in results.runs for row in r.epochs]
    elif kind == "models":
        rows = [{**r.summary_row(), "status": str(r.status)} for r in results.runs]
    elif kind == "diagnostics":
        rows = [{"activation": r.label, "seed": r.seed, **row} for r in results.runs for row in r.diagnostics]
    else:
        raise ValueError(f"to_pandas(kind={kind!r}): choose 'epochs', 'models' or 'diagnostics'")
    return pd.DataFrame(rows)


class ReportFrame:
    """A run's report.html shown inline in a frame of its own, whose page style stays inside it."""

    def __init__(self, page: str, height: int = 700):
        self.page, self.height = page, height

    def _repr_html_(self) -> str:
        return (f"<iframe srcdoc=\"{html.escape(self.page, quote=True)}\" "
                f"style='width:100%;height:{self.height}px;border:1px solid #ddd'></iframe>")
