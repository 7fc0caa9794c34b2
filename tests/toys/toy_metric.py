"""A toy diagnostic metric: the share of a hidden layer's outputs above zero."""

from actlab.diagnostics import Metric

POSITIVE_SHARE = Metric("positive_share", "hidden", lambda pre, out, act: float((out > 0).float().mean()),
                        plot=True, column=True, words={"en": "positive share", "zh": "正值占比"})
