"""Numbers as the report writes them: percentages, signed differences in points, p-values, a mean
with its interval, a grid point. One home, so every section and language formats a number alike."""

from __future__ import annotations

import math
import re

from actlab.messages import Words
from actlab.render import Text


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


def point_text(point: dict[str, float]) -> str:
    """A grid point as `lr=0.001 dropout=0.2`."""
    return " ".join(f"{k}={v:g}" for k, v in point.items())


def layer_name(layer: str, w: Words) -> str:
    """A layer as the report's language names it: `hidden2` → "hidden layer 2" / "隐藏层 2",
    `linear1` → "linear layer 1" / "线性层 1", `conv1` → "conv layer 1" / "卷积层 1"; other names
    as they are."""
    match = re.fullmatch(r"(hidden|linear|conv)(\d+)", layer or "")
    return w.plain(f"layer.{match[1]}", n=match[2]) if match else (layer or "–")


def variant_count(w: Words, activations: int, heads: int, losses: int, n: int) -> str:
    """What one seed's models are, counted: "4 activations", "2 output heads", or where several
    of activation, output head and loss vary, "4 activation/loss combinations"."""
    varying = [noun for noun, k in (("activation", activations), ("head", heads), ("loss", losses)) if k > 1]
    form = "one" if n == 1 else "other"
    if len(varying) > 1:
        return w.plain(f"terminal.variant_{form}", n=f"{n:,}",
                       parts="/".join(w.plain(f"terminal.part_{noun}") for noun in varying))
    return w.plain(f"terminal.{varying[0] if varying else 'activation'}_{form}", n=f"{n:,}")


LAYER_KINDS = ("conv", "hidden", "linear")  # the order layers are listed in: input side first


def layer_order(layer: str) -> tuple[int, int, str]:
    """A sort key listing layers from the input on: conv layers, hidden (dense) layers, weight layers,
    each by number (`hidden10` after `hidden9`), other names last."""
    match = re.fullmatch(r"(hidden|linear|conv)(\d+)", layer or "")
    return (LAYER_KINDS.index(match[1]), int(match[2]), "") if match else (len(LAYER_KINDS), 0, layer or "")
