"""The hypotheses' registry: which activations each applies to, the arms it needs, and the sigmoid
ladder's closed forms (torch is the oracle)."""

from __future__ import annotations

import pytest
import torch

from actlab.activations import parse_activation
from actlab.hypotheses import (HYPOTHESES, NAMES, SIGMOID_LADDER, RunFacts, applicable, arms_to_train, value_at_zero,
                               zero_side)

X = torch.linspace(-8, 8, 2001, dtype=torch.float64)


def f(text: str) -> torch.Tensor:
    with torch.no_grad():
        return parse_activation(text).make()(X.float()).double()


def test_the_sigmoid_ladder_equals_its_closed_forms():
    centred, scaled, tanh = SIGMOID_LADDER
    assert torch.allclose(2 * torch.sigmoid(2 * X) - 1, torch.tanh(X))  # 2σ(2x) − 1 = tanh x
    assert torch.allclose(f(centred), torch.sigmoid(X) - 0.5, atol=1e-6)
    assert torch.allclose(f(scaled), 2 * torch.tanh(X / 2), atol=1e-6)  # 4(σ(x) − ½) = 2·tanh(x/2)
    assert torch.allclose(f(tanh), torch.tanh(X), atol=1e-6)
    assert abs(value_at_zero(centred)) < 1e-7 and value_at_zero("sigmoid") == pytest.approx(0.5)
    slope = lambda text: float((f(text)[1001] - f(text)[999]) / (X[1001] - X[999]))  # noqa: E731
    assert slope(centred) == pytest.approx(0.25, rel=1e-3) and slope(scaled) == pytest.approx(1.0, rel=1e-3)
    assert slope("sigmoid") == pytest.approx(slope(centred), rel=1e-4)  # centring keeps the slope


@pytest.mark.parametrize("activation, dies", [("relu", True), ("relu6", True), ("leaky_relu:0.01", False),
                                              ("elu", False), ("sigmoid", False), ("hardsigmoid", False)])
def test_an_exactly_zero_side_is_found_by_evaluating_the_function(activation, dies):
    assert zero_side(activation) is dies


def facts(*activations: str, **config) -> RunFacts:
    return RunFacts({a: a for a in activations}, {"hidden": [128, 128], **config})


def test_classic_four_gets_dead_units_vanishing_gradients_and_zero_centring():
    found = applicable(facts("relu", "sigmoid", "tanh", "leaky_relu:0.01"))
    assert set(found) == {"dead_units", "vanishing_gradient", "zero_centred", "fit_vs_generalise", "learning_rate"}
    assert [c.subject for c in found["dead_units"][0]] == ["relu"]
    assert [c.subject for c in found["vanishing_gradient"][0]] == ["sigmoid", "tanh"]
    assert [(c.subject, c.role) for c in found["zero_centred"][0]] == [("sigmoid", "test"), ("sigmoid", "ladder"),
                                                                        ("sigmoid", "ladder")]
    assert found["learning_rate"] == ([], "cause.untestable.not_tuned")


def test_arms_already_in_the_run_are_reused_and_the_rest_are_grouped_by_setting():
    arms = arms_to_train(facts("relu", "sigmoid", "tanh", "leaky_relu:0.01"))
    assert arms[""] == ((), ["expr:sigmoid(x) - 0.5", "expr:4*(sigmoid(x) - 0.5)"])  # leaky_relu and tanh: in the run
    overrides, activations = arms["depth×3"]
    assert dict(overrides) == {"hidden": [128] * 6} and activations == ["relu", "sigmoid", "tanh"]
    assert "" not in arms_to_train(facts("relu", "leaky_relu:0.01"), ("dead_units",))  # the twin ran: nothing to add
    assert arms_to_train(facts("relu"), ("dead_units",)) == {"": ((), ["leaky_relu:0.01"])}


def test_selu_is_tested_only_when_its_preconditions_were_not_met():
    assert applicable(facts("selu", "relu"), ("self_normalising",))["self_normalising"][0][0].treated.plus.setting \
        == "selu-preconditions"
    met = applicable(facts("selu", init="lecun_normal", normalize="global"), ("self_normalising",))
    assert met["self_normalising"] == ([], "cause.untestable.selu_preconditions_met")


def test_a_linear_network_is_tested_at_twice_the_width_predicting_no_difference():
    (contrast,) = applicable(facts("none", "relu"), ("capacity",))["capacity"][0]
    assert contrast.prediction == 0 and dict(contrast.treated.plus.overrides) == {"hidden": [256, 256]}


def test_every_hypothesis_has_its_words_in_both_languages():
    from actlab.messages import Words

    for lang in ("en", "zh"):
        table = Words(lang).table
        for name in NAMES:
            assert f"cause.{name}.title" in table and f"cause.{name}.claim" in table, (lang, name)
            for verdict in ("supported", "contradicted", "no_effect"):
                assert f"cause.{name}.{verdict}" in table, (lang, name, verdict)
    assert set(HYPOTHESES) == set(NAMES)


def test_the_selu_arm_keeps_its_lecun_init_when_the_run_has_an_init_table():
    """The run's per-activation table must not overwrite the intervention's own init."""
    from actlab.config import resolve_config
    from actlab.explain import intervention_configs

    config = resolve_config(overrides={"activations": "relu,selu", "init": "relu=kaiming_normal"}, env={})
    _, sub = intervention_configs(config, ("self_normalising",))["selu-preconditions"]
    assert sub.model.init_for("selu") == "lecun_normal" and sub.data.normalize == "global"
    assert sub.model.activations == ("selu",)


def test_an_activation_that_cannot_be_probed_here_applies_to_nothing_and_breaks_nothing():
    """A grouped-units user module, or one this process cannot import, is not a subject; no crash."""
    found = applicable(facts("relu", "nosuchpackage.mod:Swish", "relu+tanh"))
    assert [c.subject for c in found["dead_units"][0]] == ["relu"]
    assert zero_side("nosuchpackage.mod:Swish") is False and value_at_zero("relu+tanh") == 0.0


def test_a_linear_network_has_no_depth_or_width_contrast_and_softplus_with_parameters_no_twin():
    found = applicable(RunFacts({"none": "none", "sigmoid": "sigmoid"}, {"hidden": []}))
    assert "vanishing_gradient" not in found and "capacity" not in found
    twins = applicable(facts("softplus", "softplus:beta=2"), ("zero_centred",))["zero_centred"][0]
    assert [c.subject for c in twins] == ["softplus"]


def test_bounded_heads_are_tested_by_log_softmax_against_softmax_reusing_the_runs_heads():
    run = RunFacts({"log_softmax": "none"}, {"hidden": [], "output": ["log_softmax", "softmax", "sigmoid", "tanh"]})
    (test, *ladder) = applicable(run, ("bounded_output",))["bounded_output"][0]
    assert (test.subject, test.treated.plus.output, test.control.plus.output) == ("sigmoid, tanh", "log_softmax",
                                                                                  "softmax")
    assert [(c.role, c.control.plus.name) for c in ladder] == [("ladder", "sigmoid"), ("ladder", "tanh")]
    assert arms_to_train(run, ("bounded_output",)) == {}  # every head is the run's own
    lone = RunFacts({"sigmoid": "none"}, {"hidden": [], "output": "sigmoid"})
    trained = arms_to_train(lone, ("bounded_output",))
    assert set(trained) == {"output=log_softmax", "output=softmax"}
    assert trained["output=softmax"] == ((("output", "softmax"),), ["none"])
    assert "bounded_output" not in applicable(RunFacts({"relu": "relu"}, {"hidden": [128]}), ("bounded_output",))
    squared = RunFacts({"sigmoid": "none"}, {"hidden": [], "output": "sigmoid", "loss": "mse"})
    assert "bounded_output" not in applicable(squared, ("bounded_output",))  # the claim is about the NLL on a head
