"""The classic explanations of why one activation beats another, as hypotheses a run can test.

One entry per hypothesis in `HYPOTHESES`: which of the run's activations it is about (its
subjects), the textbook claim and the measurement that bears on it (message keys `cause.<name>.*`),
the intervention that isolates it, and the direction the hypothesis predicts. An intervention is a
set of *arms*: models of one activation, trained on the run's own seeds either as the run trained
them or with one change (`Arm.overrides`), so that every contrast is paired seed by seed. A contrast
is the treated side minus the control side, where a side is one arm or the difference of two (a
difference of differences: the gap at 3× the depth minus the gap at the run's depth).

`actlab.explain` trains the arms a run lacks; `actlab.causes` computes the contrasts and turns
them into verdicts. To add a hypothesis: a function from `RunFacts` to its contrasts (and the reason
it cannot be tested, if any), one `Hypothesis` entry here, and its words in both catalogues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from actlab.activations import parse_activation
from actlab.errors import ActlabError

CENTRED_TWINS = {  # activation → the same function shifted by f(0), so that it is 0 at 0 (same slope)
    "sigmoid": "expr:sigmoid(x) - 0.5",
    "softplus": "expr:softplus(x) - 0.693147",
}
SIGMOID_LADDER = ("expr:sigmoid(x) - 0.5", "expr:4*(sigmoid(x) - 0.5)", "tanh")  # centring, slope, shape
NEGATIVE_SLOPE_TWINS = {"relu": "leaky_relu:0.01"}  # an exactly-zero side → a small negative slope
NON_SATURATING_REFERENCE = "relu"
DEPTH_FACTOR = 3
WIDTH_FACTOR = 2


@dataclass(frozen=True)
class Arm:
    """Models of `activation` on the run's seeds: as the run trained them (`setting` ""), or with the
    run's `[experiment]` keys changed by `overrides` (`setting` names the change)."""

    activation: str
    setting: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()
    output: str = ""  # the output head its models end in ("" = the run's first, the one the hypotheses read)

    @property
    def name(self) -> str:
        """What the report calls the arm: its output head where the arms differ in that, else its activation."""
        return self.output or self.activation


@dataclass(frozen=True)
class Side:
    """One arm's value per seed, or the difference `plus − minus` of two arms' values."""

    plus: Arm
    minus: Arm | None = None

    @property
    def arms(self) -> tuple[Arm, ...]:
        return (self.plus,) if self.minus is None else (self.plus, self.minus)


@dataclass(frozen=True)
class Contrast:
    """treated − control, per seed, on `metric`; `prediction` is the sign the hypothesis predicts
    (+1: treated is better; 0: no difference). `role` "test" decides the hypothesis's verdict; a
    "ladder" contrast is shown beside it (the sigmoid ladder's slope and shape steps)."""

    hypothesis: str
    subject: str
    treated: Side
    control: Side
    prediction: int = 1
    metric: str = "final_test_acc"
    role: str = "test"
    step: str = ""  # a ladder step's name (centring, slope, shape)

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self.treated.arms + self.control.arms


@dataclass(frozen=True)
class RunFacts:
    """What the hypotheses read of a run: its activations (label → activation text) and its
    `[experiment]` table, and whether it was tuned."""

    activations: dict[str, str]
    config: dict[str, Any]
    tuned: bool = False

    @property
    def cnn(self) -> bool:
        return self.config.get("model", "mlp") == "cnn"

    @property
    def hidden(self) -> list[int]:
        hidden = self.config.get("hidden", [128])
        return list(hidden) if isinstance(hidden, (list, tuple)) else [int(hidden)]


@dataclass(frozen=True)
class Hypothesis:
    name: str
    contrasts: Callable[[RunFacts], list[Contrast]]
    untestable: Callable[[RunFacts], str | None]  # a message key saying why, or None
    needs: str  # what the hypothesis needs, in `actlab hypotheses`


def _base(activation: str) -> str:
    return activation.split(":")[0].strip().lower()


def _module(activation: str):
    """The activation's module, or None where it cannot be built here (a per-layer list, or a user's
    activation whose module this process cannot import: a report rebuilt away from the notebook)."""
    if "+" in activation:
        return None
    try:
        return parse_activation(activation).make()
    except (ActlabError, TypeError, ValueError):
        return None


def _probe(activation: str, x: torch.Tensor) -> torch.Tensor | None:
    """The activation applied to a batch shaped like a hidden layer's (a user's module may work on
    groups of units); None where it cannot be (then no hypothesis about its shape applies)."""
    module = _module(activation)
    if module is None:
        return None
    try:
        with torch.no_grad():
            return module(x)
    except Exception:  # a user's module we cannot evaluate here must not stop the report
        return None


def zero_side(activation: str) -> bool:
    """The activation is exactly 0 (with zero slope) for every negative input tried: units can die."""
    y = _probe(activation, torch.linspace(-4.0, -0.1, 60).reshape(5, 12))
    return y is not None and bool(torch.all(y == 0))


def value_at_zero(activation: str) -> float:
    y = _probe(activation, torch.zeros(2, 12))
    return 0.0 if y is None else float(y.float().mean())


def family(activation: str) -> str:
    try:
        return parse_activation(activation).family if "+" not in activation else "mixed"
    except (ActlabError, TypeError, ValueError):
        return "custom"


# --- the hypotheses --------------------------------------------------------------------------------

def dead_units(facts: RunFacts) -> list[Contrast]:
    """relu against its twin with a small negative slope: if dead units cost accuracy, the twin is better."""
    return [Contrast("dead_units", label, Side(Arm(NEGATIVE_SLOPE_TWINS[_base(a)])), Side(Arm(a)))
            for label, a in facts.activations.items() if _base(a) in NEGATIVE_SLOPE_TWINS and zero_side(a)]


def vanishing_gradient(facts: RunFacts) -> list[Contrast]:
    """The gap between a non-saturating reference and a saturating activation at 3× the run's depth,
    minus the gap at the run's depth: if gradients vanish through saturating layers, it grows."""
    if not facts.hidden or facts.cnn:  # no hidden layer: nothing to deepen; a CNN's conv layers would stay
        return []
    deep = tuple(facts.hidden * DEPTH_FACTOR)
    setting, overrides = f"depth×{DEPTH_FACTOR}", (("hidden", list(deep)),)
    ref = NON_SATURATING_REFERENCE
    return [Contrast("vanishing_gradient", label,
                     Side(Arm(ref, setting, overrides), Arm(a, setting, overrides)), Side(Arm(ref), Arm(a)))
            for label, a in facts.activations.items() if "+" not in a and family(a) == "bounded"]


def zero_centred(facts: RunFacts) -> list[Contrast]:
    """The activation against the same function shifted to pass through 0 (same slope); for sigmoid
    also the rest of the ladder: slope (×4, which is 2·tanh(x/2)) and shape (tanh)."""
    out = []
    for label, a in facts.activations.items():
        twin = CENTRED_TWINS.get(a.strip().lower())  # default parameters only: softplus:beta=2 is another f
        if twin is None or abs(value_at_zero(a)) < 1e-3:
            continue
        out.append(Contrast("zero_centred", label, Side(Arm(twin)), Side(Arm(a)), step="centring"))
        if _base(a) == "sigmoid":
            centred, scaled, tanh = SIGMOID_LADDER
            out += [Contrast("zero_centred", label, Side(Arm(scaled)), Side(Arm(centred)), role="ladder", step="slope"),
                    Contrast("zero_centred", label, Side(Arm(tanh)), Side(Arm(scaled)), role="ladder", step="shape")]
    return out


def _zero_centred_untestable(facts: RunFacts) -> str | None:
    off = [a for a in facts.activations.values() if "+" not in a and abs(value_at_zero(a)) >= 1e-3]
    return "cause.untestable.no_centred_twin" if off and not zero_centred(facts) else None


SELU_PRECONDITIONS = (("init", "lecun_normal"), ("normalize", "global"), ("dropout_kind", "auto"))


def self_normalising(facts: RunFacts) -> list[Contrast]:
    """SELU with its preconditions (LeCun-normal init, standardised inputs; alpha dropout, which
    `dropout_kind = auto` already gives it) against SELU as the run trained it."""
    if selu_preconditions_met(facts.config):
        return []
    return [Contrast("self_normalising", label, Side(Arm(a, "selu-preconditions", SELU_PRECONDITIONS)), Side(Arm(a)))
            for label, a in facts.activations.items() if _base(a) == "selu"]


def init_of(config: dict[str, Any], activation: str) -> str:
    """The init scheme `activation` trained with, from an `[experiment]` table (a scheme, or a table per activation)."""
    init = config.get("init", "default")
    return init.get(activation, "default") if isinstance(init, dict) else init


def selu_preconditions_met(config: dict[str, Any]) -> bool:
    """SELU trained with LeCun-normal weights and standardised inputs (an `[experiment]` table)."""
    return init_of(config, "selu") == dict(SELU_PRECONDITIONS)["init"] and \
        config.get("normalize", "none") in ("global", "per_pixel")


def _self_normalising_untestable(facts: RunFacts) -> str | None:
    has_selu = any(_base(a) == "selu" for a in facts.activations.values())
    return "cause.untestable.selu_preconditions_met" if has_selu and selu_preconditions_met(facts.config) else None


def capacity(facts: RunFacts) -> list[Contrast]:
    """A linear network at twice the width against as run: width adds no non-linearity, so if its
    limit is being linear, doubling the width gains nothing (no difference predicted)."""
    if not facts.hidden or facts.cnn:  # no hidden layer: nothing to widen; a CNN's conv layers would stay
        return []
    wide = [WIDTH_FACTOR * h for h in facts.hidden]
    setting, overrides = f"width×{WIDTH_FACTOR}", (("hidden", wide),)
    return [Contrast("capacity", label, Side(Arm(a, setting, overrides)), Side(Arm(a)), prediction=0)
            for label, a in facts.activations.items() if "+" not in a and family(a) == "identity"]


def fit_vs_generalise(facts: RunFacts) -> list[Contrast]:
    """Each activation's final training accuracy against every other's, on the run's own models:
    `causes` keeps the pairs whose test accuracies differ, and asks whether the training accuracies
    differ the same way (slower fitting) or not (a gap in generalisation)."""
    labels = list(facts.activations)
    return [Contrast("fit_vs_generalise", b, Side(Arm(facts.activations[a])), Side(Arm(facts.activations[b])),
                     metric="final_train_acc")
            for i, a in enumerate(labels) for b in labels[i + 1:]]


def learning_rate(facts: RunFacts) -> list[Contrast]:
    """Read from a tuned run's tuned-against-fixed comparison (`actlab.interaction`), not from arms."""
    return []


def _learning_rate_untestable(facts: RunFacts) -> str | None:
    return None if facts.tuned else "cause.untestable.not_tuned"


BOUNDED_HEADS = ("sigmoid", "tanh")  # bounded, and not normalised across the classes


def _outputs(facts: RunFacts) -> list[str]:
    outputs = facts.config.get("output", "logits")
    return [outputs] if isinstance(outputs, str) else list(outputs)


def bounded_output(facts: RunFacts) -> list[Contrast]:
    """log_softmax against softmax (both normalise across the classes; only softmax is bounded), for
    a run with sigmoid or tanh heads under their NLL loss: if the bound costs accuracy, log_softmax
    is better. The ladder's step, softmax against each bounded head, isolates normalisation. Heads
    the run has are reused; the others train with `output` changed."""
    outputs = _outputs(facts)
    bounded = [h for h in outputs if h in BOUNDED_HEADS]
    losses = facts.config.get("loss", "cross_entropy")
    first_loss = losses if isinstance(losses, str) else losses[0]  # the loss the hypotheses read
    if not bounded or first_loss != "cross_entropy" or not facts.activations:
        return []
    activation = next(iter(facts.activations.values()))

    def arm(head: str) -> Arm:
        if head in outputs:
            return Arm(activation, output=head)
        return Arm(activation, f"output={head}", (("output", head),), output=head)
    subject = ", ".join(bounded)
    return [Contrast("bounded_output", subject, Side(arm("log_softmax")), Side(arm("softmax")), step="bound"),
            *(Contrast("bounded_output", subject, Side(arm("softmax")), Side(arm(h)), role="ladder",
                       step="normalisation") for h in bounded)]


def _dense_only(kind: str) -> Callable[[RunFacts], str | None]:
    """In a CNN a hypothesis whose arm deepens or widens the dense layers cannot be tested yet."""
    def untestable(facts: RunFacts) -> str | None:
        applies = any("+" not in a and family(a) == kind for a in facts.activations.values())
        return "cause.untestable.cnn" if facts.cnn and applies else None
    return untestable


def _never(facts: RunFacts) -> str | None:
    return None


HYPOTHESES: dict[str, Hypothesis] = {h.name: h for h in (
    Hypothesis("dead_units", dead_units, _never, "relu in the run (its twin leaky_relu:0.01 is reused if present)"),
    Hypothesis("vanishing_gradient", vanishing_gradient, _dense_only("bounded"),
               f"a saturating activation (sigmoid, tanh, …); trains it and relu at {DEPTH_FACTOR}× the depth"),
    Hypothesis("zero_centred", zero_centred, _zero_centred_untestable,
               "sigmoid or softplus (f(0) ≠ 0); trains the centred twin (and for sigmoid the ladder)"),
    Hypothesis("self_normalising", self_normalising, _self_normalising_untestable,
               "selu trained without LeCun-normal init and standardised inputs; trains SELU with them"),
    Hypothesis("capacity", capacity, _dense_only("identity"),
               f"a linear network (none); trains it at {WIDTH_FACTOR}× the width"),
    Hypothesis("fit_vs_generalise", fit_vs_generalise, _never, "two activations or more; trains nothing"),
    Hypothesis("learning_rate", learning_rate, _learning_rate_untestable,
               "a tuned run (--tune lr); otherwise says how to test it"),
    Hypothesis("bounded_output", bounded_output, _never,
               "sigmoid or tanh output heads (--output, NLL loss); reuses or trains softmax and log_softmax heads"),
)}
NAMES = tuple(HYPOTHESES)


def applicable(facts: RunFacts, names: tuple[str, ...] = NAMES) -> dict[str, tuple[list[Contrast], str | None]]:
    """For each hypothesis in `names` that bears on this run: its contrasts and why it cannot be
    tested (None when it can). A hypothesis with neither contrasts nor a reason is left out."""
    out = {}
    for name in names:
        h = HYPOTHESES[name]
        contrasts, reason = h.contrasts(facts), h.untestable(facts)
        if name in ("fit_vs_generalise", "learning_rate") and len(facts.activations) < 2:
            continue
        if contrasts or reason or (name == "learning_rate" and facts.tuned):
            out[name] = (contrasts, reason)
    return out


def arms_to_train(facts: RunFacts, names: tuple[str, ...] = NAMES) -> dict[str, tuple[tuple[tuple[str, Any], ...],
                                                                                      list[str]]]:
    """Per setting ("" = the run's own): its overrides and the activations the run lacks there."""
    present = set(facts.activations.values())  # an arm of setting "" is always one of the run's own
    out: dict[str, tuple[tuple[tuple[str, Any], ...], list[str]]] = {}
    for contrasts, _ in applicable(facts, names).values():
        for arm in (arm for c in contrasts for arm in c.arms):
            if arm.setting == "" and arm.activation in present:
                continue
            overrides, activations = out.setdefault(arm.setting, (arm.overrides, []))
            if arm.activation not in activations:
                activations.append(arm.activation)
    return out
