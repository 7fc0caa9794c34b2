"""Resolving configuration: precedence, validation at the edge, and the resolved file round trip."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from actlab.config import (KEYS, SECTIONS, Config, config_from_flat, read_sweep, replace, resolve_config, toml_text,
                           tomllib)
from actlab.errors import ActlabError
from actlab.presets import PRESETS


def test_every_preset_resolves_to_its_spec():
    for name in PRESETS:
        config = resolve_config(preset=name, env={})
        assert config.run.name == name
    classic = resolve_config(preset="mnist-classic-four", env={})
    assert classic.model.hidden == (128, 128)
    assert classic.model.activations == ("relu", "sigmoid", "tanh", "leaky_relu:0.01")
    assert (classic.optim.optimizer, classic.optim.lr, classic.optim.batch_size, classic.optim.epochs) == ("adam", 1e-3, 64, 10)
    linear = resolve_config(preset="mnist-relu-vs-linear", env={})
    assert linear.data.val_split == 10000 and linear.optim.optimizer == "sgd" and linear.optim.lr == 0.15
    out = resolve_config(preset="mnist-output-activation", env={})
    assert out.model.hidden == () and out.model.init == "lecun_normal"
    assert [label for label, *_ in out.variants] == ["log_softmax", "softmax", "sigmoid", "tanh"]


def test_precedence_preset_then_file_then_flags(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[experiment]\npreset = "mnist-classic-four"\nlr = 0.01\nepochs = 3\n')
    config = resolve_config(file=path, overrides={"epochs": "5", "hidden": "64"}, env={})
    assert config.optim.lr == 0.01  # file beats preset
    assert config.optim.epochs == 5  # flag beats file
    assert config.model.hidden == (64,)
    assert config.model.activations == ("relu", "sigmoid", "tanh", "leaky_relu:0.01")  # from the preset
    assert config.run.name == "mnist-classic-four"


def test_flag_text_is_parsed_per_key():
    config = resolve_config(overrides={"activations": "relu,hardtanh:-2,2,elu:alpha=0.5", "hidden": "",
                                       "seeds": "0,3,7", "nesterov": "true", "optimizer": "sgd",
                                       "momentum": "0.9", "val_split": "0.2"}, env={})
    assert config.model.activations == ("relu", "hardtanh:-2,2", "elu:alpha=0.5")
    assert config.model.hidden == ()
    assert config.run.seeds == (0, 3, 7)
    assert config.optim.nesterov is True and config.data.val_split == 0.2


def test_seed_and_seed_count():
    assert resolve_config(overrides={"seed": "3", "seeds": "4"}, env={}).run.seeds == (3, 4, 5, 6)
    assert resolve_config(overrides={"seed": "2"}, env={}).run.seeds == (2,)
    assert resolve_config(preset="fashion-relu-family", env={}).run.seeds == (0,)


@pytest.mark.parametrize("overrides, pattern", [
    ({"epochs": "0"}, r"epochs = 0 \(--epochs\): must be an integer ≥ 1"),
    ({"hidden": "-3"}, r"hidden = \[-3\] \(--hidden\): must be a list of layer widths ≥ 1"),
    ({"lr": "-1"}, r"lr = -1 \(--lr\): must be a number in \(0, ∞\)"),
    ({"lr": "inf"}, r"lr = inf \(--lr\): must be a number in \(0, ∞\)"),  # ∞ is outside, as the text says
    ({"weight_decay": "inf"}, r"weight_decay = inf \(--weight-decay\): must be a number in \[0, ∞\)"),
    ({"activations": "reluu"}, r"unknown activation 'reluu'; did you mean"),
    ({"optimizer": "adamm"}, r"optimizer = 'adamm' \(--optimizer\): must be one of: sgd, adam, adamw, rmsprop \(did you mean 'adam'\?\)"),
    ({"dataset": "cifar"}, r"dataset = 'cifar' \(--dataset\): must be one of: mnist, fashion-mnist"),
    ({"val_split": "1.5"}, r"val_split = 1.5 \(--val-split\): a fraction must lie in \(0, 1\)"),
    ({"device": "gpu"}, r"device = 'gpu' \(--device\): must be auto, cpu, cuda or cuda:N"),
    ({"batch_size": "abc"}, r"batch_size = 'abc' \(--batch-size\): must be an integer ≥ 1"),
    ({"nesterov": "true"}, r"nesterov = true needs optimizer = \"sgd\" and momentum > 0"),
])
def test_bad_values_name_the_key_value_and_source(overrides, pattern):
    with pytest.raises(ActlabError, match=pattern) as info:
        resolve_config(overrides=overrides, env={})
    assert "\n" not in str(info.value)


def test_an_error_line_quotes_a_long_value_in_part():
    long = "expr:" + "+".join(["x"] * 3000)
    with pytest.raises(ActlabError, match="too long or too deeply nested") as info:
        resolve_config(overrides={"activations": [long]}, env={})
    assert len(str(info.value)) < 400


def test_bad_file_values_name_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[experiment]\nbatch_size = 0\n")
    with pytest.raises(ActlabError, match=r"batch_size = 0 \(\[experiment\] of .*bad.toml\)"):
        resolve_config(file=path, env={})
    with pytest.raises(ActlabError, match=r"batch_size = 0 \(\[experiment\] of .*bad.toml\)"):
        resolve_config(file=path, overrides={"batch_size": "64"}, env={})  # a flag over it does not hide it
    spaced = tmp_path / "my exp.toml"  # its stem is no valid name, and the file does not give one: --name does
    spaced.write_text("[experiment]\nepochs = 1\n")
    assert resolve_config(file=spaced, overrides={"name": "foo"}, env={}).run.name == "foo"
    path.write_text("[experiment]\nlearning_rate = 0.1\n")
    with pytest.raises(ActlabError, match=r"unknown key 'learning_rate' in \[experiment\] of .*bad.toml"):
        resolve_config(file=path, env={})
    path.write_text("[experiment]\nlrr = 0.1\n")
    with pytest.raises(ActlabError, match="did you mean 'lr'"):
        resolve_config(file=path, env={})
    path.write_text("[experimnt]\nlr = 0.1\n")
    with pytest.raises(ActlabError, match="unknown table"):
        resolve_config(file=path, env={})
    path.write_text("[experiment\nlr = 0.1\n")
    with pytest.raises(ActlabError, match="not valid TOML"):
        resolve_config(file=path, env={})
    with pytest.raises(ActlabError, match="not found"):
        resolve_config(file=tmp_path / "missing.toml", env={})


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ActlabError, match="unknown preset 'mnist-classic4'; did you mean 'mnist-classic-four'"):
        resolve_config(preset="mnist-classic4", env={})


def test_resolved_config_round_trips(tmp_path):
    config = resolve_config(preset="mnist-relu-vs-linear",
                            overrides={"seeds": "0,4", "activations": "relu,hardtanh:-2,2", "data_dir": "/d"}, env={})
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    again = resolve_config(file=path, env={})
    assert again == config
    assert config_from_flat(config.to_flat()) == config


def test_data_dir_from_environment_only_when_not_given():
    assert resolve_config(env={"ACTLAB_DATA_DIR": "/x"}).data.data_dir == "/x"
    assert resolve_config(overrides={"data_dir": "/y"}, env={"ACTLAB_DATA_DIR": "/x"}).data.data_dir == "/y"
    assert resolve_config(env={}).data.data_dir is None


def test_replace_returns_a_checked_copy_and_leaves_the_original():
    config = resolve_config(overrides={"seeds": "0,4", "lr": "0.01"}, env={})
    changed = replace(config, lr=0.1, hidden=[])
    assert (changed.optim.lr, changed.model.hidden) == (0.1, ())
    assert (config.optim.lr, config.model.hidden) == (0.01, (128, 128))
    assert replace(config, seed=5).run.seeds == (5, 6)  # a new first seed keeps the number of seeds
    with pytest.raises(ActlabError, match=r"epochs = 0: must be an integer ≥ 1"):
        replace(config, epochs=0)


def test_the_dataclass_defaults_are_the_resolved_defaults():
    assert resolve_config(env={}) == Config() == config_from_flat(Config().to_flat())
    assert {(spec.section, spec.field) for spec in KEYS.values() if spec.field} == {
        (section, f.name) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    assert [name for name, spec in KEYS.items() if spec.field is None] == ["seed"]
    assert KEYS["output"].field == "outputs" and KEYS["seeds"].from_text("0,3") == [0, 3]


def test_toml_text_round_trips_any_string():
    odd = "激活函数 \"relu\"\n\\path\t'x' = [1]  # not a comment"
    tables = {"experiment": {"name": odd, "hidden": [], "lr": 1e-05, "ok": True, "init": {odd: odd, "relu": "x"},
                             "nested": [[1, 2], ["a", odd]], "deeper": {"t": {"k": [0.5, -3]}}},
              "sweep": {"activation": [odd, "relu"], odd: [1]}}
    assert tomllib.loads(toml_text(tables)) == tables


def test_a_config_with_odd_paths_round_trips_through_toml(tmp_path):
    odd = "/data/激活 \"quoted\"\nnext line\\back\tslash"
    config = resolve_config(overrides={
        "activations": ["selu", "relu", "expr:x*sigmoid(1.702*x)"], "hidden": [],
        "init": {"selu": "lecun_normal", "relu": "kaiming_normal"}, "seeds": [3, 1, 4], "val_split": 0.15,
        "output": ["logits", "softmax"], "data_dir": odd, "out": odd + "/run", "stack": False, "lr": 3e-4,
        "optimizer": "sgd", "momentum": 0.9, "nesterov": True, "schedule": "step", "gamma": 0.5}, env={})
    assert config.data.data_dir == odd and config.model.hidden == () and config.run.seeds == (3, 1, 4)
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    assert resolve_config(file=path, env={}) == config
    sweep = {"lr": [0.001, 0.003], "activation": ["expr:x*tanh(x)", "relu"], "hidden": [[64], []]}
    path.write_text(config.to_toml(sweep), encoding="utf-8")
    assert resolve_config(file=path, env={}) == config and read_sweep(path) == sweep


@pytest.mark.parametrize("table, pattern", [
    ('normalize = "zscore"', r"normalize = 'zscore' .*: must be one of: none, symmetric, global, per_pixel"),
    ("patience = 5", r"patience = 5 needs a validation split to watch: add val_split"),
    ("dropout = 1.5", r"dropout = 1.5 .*: must be a number in \[0, 1\)"),
    ('init = "he"', r"init = 'he' .*: must be one of: default, lecun_normal, kaiming_normal"),
    ('activations = ["expr:__import__(\'os\')"]', r"activations = .*function '__import__' is not allowed"),
    ('activations = ["relu+tanh"]\nhidden = [8]', r"'relu\+tanh' names 2 layers but hidden = \[8\] has 1"),
    ('init = { selu = "lecun_normal" }\nactivations = ["relu"]', r"init names 'selu', which is not among"),
    ('dropout_kind = "gaussian"', r"dropout_kind = 'gaussian' .*: must be one of: standard, alpha, auto"),
    ('schedule = "linear"', r"schedule = 'linear' .*: must be one of: none, cosine, step"),
])
def test_recipe_keys_reject_bad_values_naming_key_and_choices(tmp_path, table, pattern):
    path = tmp_path / "bad.toml"
    path.write_text(f"[experiment]\n{table}\n")
    with pytest.raises(ActlabError, match=pattern) as info:
        resolve_config(file=path, env={})
    assert "\n" not in str(info.value)


RECIPE = """[experiment]
dataset = "mnist"
normalize = "global"
hidden = [64, 48, 32, 16]
activations = ["selu", ["relu", "tanh", "prelu:per_unit", "swish_beta"], "expr:x*sigmoid(1.702*x)"]
init = { selu = "lecun_normal" }
dropout = 0.05
dropout_kind = "auto"
optimizer = "sgd"
lr = 0.05
momentum = 0.9
nesterov = true
weight_decay = 1e-4
schedule = "cosine"
batch_size = 128
drop_last = true
epochs = 3
patience = 2
val_split = 0.1
train_subset = 3000
test_subset = 1000
seeds = 2
"""


def test_a_recipe_with_every_key_round_trips(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE)
    config = resolve_config(file=path, env={})
    assert config.model.activations == ("selu", "relu+tanh+prelu:per_unit+swish_beta", "expr:x*sigmoid(1.702*x)")
    assert config.model.init == (("selu", "lecun_normal"),) and config.data.val_split == 0.1
    saved = tmp_path / "saved.toml"
    saved.write_text(config.to_toml())
    assert resolve_config(file=saved, env={}) == config


@pytest.mark.parametrize("overrides, message", [
    ({"drop_last": True, "batch_size": 64, "train_subset": 50}, "drops every batch of the 50 training examples"),
    ({"val_split": 1e-6}, "less than one of MNIST's 60000 training examples"),
    ({"test_subset": 20000}, "MNIST's test split holds 10000 examples"),
])
def test_settings_that_leave_nothing_to_train_or_test_are_refused(overrides, message):
    with pytest.raises(ActlabError, match=re.escape(message)):
        resolve_config(overrides=overrides, env={})


def test_every_key_s_policies_agree_with_each_other():
    """Each key declares its policies once (config.Key); none may contradict another."""
    from actlab.config import KEYS

    for name, spec in KEYS.items():
        assert not (spec.sweepable and not spec.hashed and not spec.per_model), name  # swept values must differ in hash
        assert not (spec.resumable and spec.trains), name  # a resume may change only what leaves the numbers alone
        assert not (spec.tunable and not (spec.sweepable and spec.hashed)), name  # tuning is a sweep per activation
        assert not (spec.preset_identity and not spec.trains), name  # a preset is what it trains
    assert not KEYS["ci"].sweepable and not KEYS["equivalence_margin"].sweepable and not KEYS["tune_seeds"].sweepable


@pytest.mark.parametrize("key", ["ci", "equivalence_margin", "tune_seeds", "checkpoints", "stack", "workers"])
def test_a_key_that_does_not_change_what_is_trained_cannot_be_swept(key, tmp_path):
    from actlab.cli import main

    values = {"ci": "t;bootstrap", "equivalence_margin": "0.5;1", "tune_seeds": "2;3", "checkpoints": "true;false",
              "stack": "true;false", "workers": "1;2"}[key]
    code = main(["run", "--sweep", f"{key}={values}", "--out", str(tmp_path / "s")])
    assert code == 1 and not (tmp_path / "s").exists()


def test_a_data_folder_from_the_environment_is_used_but_never_written(tmp_path):
    """A run folder's config.toml reruns on another machine, whose ACTLAB_DATA_DIR then applies."""
    config = resolve_config(env={"ACTLAB_DATA_DIR": "/x"})
    assert config.data.data_dir == "/x" and "data_dir" not in config.to_flat() and "/x" not in config.to_toml()
    assert replace(config, lr=0.1).data.data_dir == "/x" and "data_dir" not in replace(config, lr=0.1).to_flat()
    given = resolve_config(overrides={"data_dir": "/y"}, env={"ACTLAB_DATA_DIR": "/x"})
    assert given.to_flat()["data_dir"] == "/y"  # one the user gave is part of the experiment's record


class _Swish(torch.nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def _cube(x):
    return x ** 3


def test_activations_given_as_python_objects_are_recorded_by_name():
    config = resolve_config(overrides={"activations": ["relu", _Swish, _cube]})
    assert config.model.activations == ("relu", f"{__name__}:_Swish", f"{__name__}:_cube")
    with pytest.raises(ActlabError, match="a lambda or a nested function"):
        resolve_config(overrides={"activations": ["relu", lambda x: x]})
    with pytest.raises(ActlabError, match=r"an object; give its class"):
        resolve_config(overrides={"activations": ["relu", _Swish()]})


def test_an_activation_missing_from_main_is_one_clear_error():
    with pytest.raises(ActlabError, match=r"cannot import 'NoSuchThing' from '__main__'"):
        resolve_config(overrides={"activations": "__main__:NoSuchThing"})
