"""What every report section reads: the run, its statistics, and the report's language and figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actlab.messages import Words
from actlab.results import Results


@dataclass(frozen=True)
class Context:
    """What every section reads: the run, its statistics and the report's language and figures."""

    results: Results
    analysis: dict[str, Any]  # stats.json's content (actlab.stats.analyse)
    metric: str  # the primary metric the verdicts are on
    w: Words
    images: str  # the figures' folder, relative to the run folder (as the report links them)
    plots: Path  # the same folder, to test whether a figure was drawn
    diagnostics: dict  # the diagnostics' means by stage, metric, activation and layer (analysis.diagnostic_means)
    font_hint: str | None  # one sentence when the report's language has no font for its figures
