"""Loss × activation (损失函数与激活函数): in a run that crosses activations with losses, how much one
loss gains over another for each activation, seed by seed, and whether that gain differs between
activations (`actlab.interaction.loss_interaction`). The course comparison asks exactly this: does
squared error cost sigmoid more than it costs ReLU?"""

from __future__ import annotations

from actlab.numbers import p_text, pts
from actlab.paired import ALPHA
from actlab.render import Block, Bullets, Code, Heading, Paragraph, Table, Text
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    found, w = c.analysis.get("loss_interaction"), c.w
    if not found:
        return []
    first = Code(found["first"])
    out: list[Block] = [Heading(2, w("losses.heading")),
                        Paragraph(w("losses.intro", first=first, what=w(f"metric.{found['metric']}"),
                                    alpha=str(ALPHA)))]
    header = [w("table.activation"), w("losses.col_gain"), w("losses.col_ci"), w("losses.col_ahead")]
    for other, by_activation in found["gains"].items():
        rows = [[Code(a), pts(g["mean"]), _interval(g), f"{g['ahead']}/{g['n']}"] for a, g in by_activation.items()]
        out += [Paragraph(w("losses.table_lead", first=first, other=Code(other))), Table(header, rows)]
    out.append(Bullets([_difference(d, first, w) for d in found["differences"]]))
    return out


def _interval(row: dict) -> str:
    return "–" if row["ci_low"] is None else f"{pts(row['ci_low'])} … {pts(row['ci_high'])}"


def _difference(d: dict, first: Text, w) -> Text:
    """One pair of activations: by how much the gain differs, and whether that is significant."""
    key = "losses.differs" if d["significant"] else "losses.not_shown"
    return w(key, a=Code(d["a"]), b=Code(d["b"]), first=first, other=Code(d["other"]), diff=pts(d["mean"]),
             interval=_interval(d), p=p_text(d["p_holm"]), n=d["n"])
