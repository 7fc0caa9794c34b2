"""Experiment configuration: one frozen dataclass tree, resolved once at the edge.

Precedence is preset < TOML file < command-line flags. A TOML file holds an `[experiment]` table
whose keys are the flag names with underscores (`batch_size = 64`, `hidden = [128, 128]`,
`activations = ["relu", "tanh"]`); `preset = "name"` in it starts from a preset. Every key is
declared once in `KEYS` (its section, type, check and help text); unknown keys and bad values fail
here with the key, the value, where it came from and what is accepted. Nothing below this module
reads flags, files or environment variables.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actlab.activations import parse_layers, split_activation_list, split_layers
from actlab.data import DATASETS, dataset_info
from actlab.errors import ActlabError
from actlab.models import INITS, OUTPUTS
from actlab.presets import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
NORMALIZE = ("none", "symmetric", "global", "per_pixel")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"
    val_split: int | float = 0  # validation examples taken from the training split (count or fraction)
    train_subset: int = 0  # train on a seeded subset of this many examples (0 = all)
    test_subset: int = 0  # evaluate on a seeded subset of the test split (0 = all 10,000)
    normalize: str = "none"  # none: pixels in [0, 1]; symmetric: [-1, 1]; global / per_pixel: training-split statistics
    data_dir: str | None = None  # folder holding the IDX files; None: cache, system, download
    download: bool = True  # download from the publishers when no local copy is found


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = (128, 128)  # hidden layer widths; () is a linear model
    activations: tuple[str, ...] = ("relu",)  # the activations compared, one model each
    outputs: tuple[str, ...] = ("logits",)  # output heads compared (logits = cross-entropy)
    init: str | tuple[tuple[str, str], ...] = "default"  # one scheme, or (activation, scheme) pairs
    dropout: float = 0.0  # dropout probability after every hidden activation
    dropout_kind: str = "auto"  # standard, alpha (keeps SELU self-normalising), auto: alpha for SELU

    def init_for(self, activation: str) -> str:
        """The init scheme of one activation's models (a per-activation table defaults to `default`)."""
        if isinstance(self.init, str):
            return self.init
        return dict(self.init).get(activation, "default")

    def dropout_kind_for(self, activation: str) -> str:
        if self.dropout_kind != "auto":
            return self.dropout_kind
        return "alpha" if activation.split(":")[0].strip().lower() == "selu" else "standard"


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0  # SGD only
    nesterov: bool = False  # SGD only, needs momentum > 0
    weight_decay: float = 0.0
    batch_size: int = 64  # examples per step
    epochs: int = 10
    drop_last: bool = False  # drop the last incomplete training batch of each epoch
    patience: int = 0  # stop after this many epochs without a better validation accuracy (0 = off)
    schedule: str = "none"  # learning-rate schedule per epoch: none, cosine (to 0 over the epochs), step
    step_size: int = 10  # step schedule: epochs between decays
    gamma: float = 0.1  # step schedule: factor per decay


@dataclass(frozen=True)
class RunConfig:
    name: str = "experiment"
    seeds: tuple[int, ...] = (0,)  # every activation is trained once per seed
    device: str = "auto"  # auto: CUDA when present, else CPU
    out: str | None = None  # run folder; None: runs/<name>-<timestamp>
    checkpoints: bool = True  # save final (and best-validation) weights per model
    precision: str = "fp32"  # bf16: autocast the training steps (evaluation stays fp32); an opt-in speed mode
    stack: bool | str = "auto"  # train a run's models in one stacked pass; auto: on CUDA only
    backprop: str = "auto"  # auto: the hand-written backward pass for plain MLPs (actlab.backprop); autograd
    workers: int = 0  # processes training models in parallel; 0: one per CPU core (CPU), 1 (GPU)
    threads: int = 0  # torch CPU threads per worker; 0: cores ÷ workers
    eval_batch_size: int = 10000  # examples per no-grad evaluation pass
    diagnostics: bool = True  # measure dead units, saturation, gradient flow per epoch
    tensorboard: bool = False  # write TensorBoard event files under <run>/tensorboard/
    ci: str = "t"  # confidence intervals in the statistics: t (Student) or bootstrap (BCa, 9,999 resamples)


@dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    run: RunConfig = RunConfig()

    def to_flat(self) -> dict[str, Any]:
        """The `[experiment]` table that reproduces this config (omitting unset paths)."""
        flat: dict[str, Any] = {}
        for key, spec in KEYS.items():
            if spec.field is None:
                continue
            value = getattr(getattr(self, spec.section), spec.field)
            if value is None:
                continue
            if key == "init" and isinstance(value, tuple):
                value = dict(value)
            flat[key] = list(value) if isinstance(value, tuple) else value
        seeds = self.run.seeds
        flat["seed"] = seeds[0]
        flat["seeds"] = len(seeds) if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) else list(seeds)
        if len(self.model.outputs) == 1:
            flat["output"] = self.model.outputs[0]
        return flat

    def to_toml(self) -> str:
        return "[experiment]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in self.to_flat().items())

    @property
    def variants(self) -> list[tuple[str, str, str]]:
        """(label, activation, output) for each model trained per seed."""
        acts, outs = self.model.activations, self.model.outputs
        if len(outs) == 1:
            return [(a, a, outs[0]) for a in acts]
        if len(acts) == 1:
            return [(o, acts[0], o) for o in outs]
        return [(f"{a}/{o}", a, o) for a in acts for o in outs]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- keys: parsing from flag text, checking typed values ------------------------------------

class _Bad(Exception):
    """A value failed its check; the message says what is accepted."""


def _int(lo: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"must be an integer{'' if lo is None else f' ≥ {lo}'}")
        if lo is not None and v < lo:
            raise _Bad(f"must be an integer ≥ {lo}")
        return v
    return check


def _float(lo: float = 0.0, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = True) -> Callable[[Any], float]:
    span = f"{'(' if lo_open else '['}{lo:g}, {'∞' if hi is None else f'{hi:g}'}{')' if hi_open else ']'}"

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Bad(f"must be a number in {span}")
        v = float(v)
        if v != v or v < lo or (lo_open and v == lo) or (hi is not None and (v > hi or (hi_open and v == hi))):
            raise _Bad(f"must be a number in {span}")
        return v
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad("must be true or false")
    return v


def _choice(options) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v.lower() not in options:
            close = difflib.get_close_matches(str(v).lower(), list(options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Bad(f"must be one of: {', '.join(options)}{hint}")
        return v.lower()
    return check


def _name(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
        raise _Bad("must be a name of letters, digits, '.', '_' and '-'")
    return v


def _path(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad("must be a folder path")
    return v


def _dataset(v: Any) -> str:
    try:
        return dataset_info(str(v)).name
    except ActlabError:
        raise _Bad(f"must be one of: {', '.join(DATASETS)}") from None


def _hidden(v: Any) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in v):
        raise _Bad("must be a list of layer widths ≥ 1, e.g. [128, 128] (or [] for a linear model)")
    return tuple(v)


def _activations(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise _Bad('must be a non-empty list of activation names, e.g. ["relu", "tanh"]')
    # a list inside the list gives one activation per hidden layer: ["relu", "tanh"] → "relu+tanh"
    v = ["+".join(a) if isinstance(a, (list, tuple)) and all(isinstance(x, str) for x in a) else a for a in v]
    if not all(isinstance(a, str) for a in v):
        raise _Bad('must be a list of activation names (or of per-layer lists), e.g. ["relu", ["relu", "tanh"]]')
    for a in v:
        try:
            parse_layers(a)
        except ActlabError as exc:
            raise _Bad(str(exc)) from None
    if len(set(v)) != len(v):
        raise _Bad("lists an activation twice")
    return tuple(a.strip() for a in v)


def _outputs(v: Any) -> tuple[str, ...]:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)) or not items:
        raise _Bad(f"must be one of (or a list of): {', '.join(OUTPUTS)}")
    return tuple(_choice(OUTPUTS)(o) for o in items)


def _init(v: Any) -> str | tuple[tuple[str, str], ...]:
    if isinstance(v, str) and "=" not in v:
        return _choice(INITS)(v)
    if isinstance(v, str):  # flag text: selu=lecun_normal,relu=kaiming_normal
        v = dict(part.split("=", 1) for part in v.split(",") if part.strip())
    if isinstance(v, dict) and v:
        return tuple((str(k).strip(), _choice(INITS)(s)) for k, s in v.items())
    raise _Bad(f"must be one of: {', '.join(INITS)}, or a table per activation, e.g. {{ selu = \"lecun_normal\" }}")


def _seeds(v: Any) -> int | tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        return _int(1)(v)
    if isinstance(v, (list, tuple)) and v and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v):
        if len(set(v)) != len(v):
            raise _Bad("lists a seed twice")
        return tuple(v)
    raise _Bad("must be a count ≥ 1 (seeds seed, seed+1, …) or a list of seeds ≥ 0, e.g. [0, 1, 2]")


def _val_split(v: Any) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad("must be a count of examples (10000) or a fraction of the training split (0.2)")
    if isinstance(v, float) and not v.is_integer():
        if not 0 < v < 1:
            raise _Bad("a fraction must lie in (0, 1)")
        return v
    if v < 0:
        raise _Bad("must be ≥ 0 (0 = no validation split)")
    return int(v)


def _stack(v: Any) -> bool | str:
    if v == "auto" or isinstance(v, bool):
        return v
    raise _Bad('must be "auto", true or false')


def _device(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
        raise _Bad("must be auto, cpu, cuda or cuda:N")
    return v


def _text_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _text_number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _text_bool(text: str) -> Any:
    return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower(), text)


def _text_ints(text: str) -> Any:
    if text.strip().lower() in ("", "none", "[]"):
        return []
    try:
        return [int(t) for t in _text_list(text)]
    except ValueError:
        return text


def _text_seeds(text: str) -> Any:
    parts = _text_ints(text)
    return parts[0] if isinstance(parts, list) and len(parts) == 1 and "," not in text else parts


@dataclass(frozen=True)
class Key:
    section: str
    field: str | None  # None: input-only key resolved into another field
    check: Callable[[Any], Any]
    help: str
    from_text: Callable[[str], Any] = _text_number
    metavar: str | None = None


KEYS: dict[str, Key] = {
    "name": Key("run", "name", _name, "experiment name, used for the run folder", str, "NAME"),
    "dataset": Key("data", "dataset", _dataset, "mnist or fashion-mnist", str, "NAME"),
    "hidden": Key("model", "hidden", _hidden, "hidden layer widths, e.g. 128,128 ('' = linear model)",
                  _text_ints, "W,W"),
    "activations": Key("model", "activations", _activations,
                       "activations to compare, e.g. relu,tanh,leaky_relu:0.2", split_activation_list, "A,A"),
    "output": Key("model", "outputs", _outputs,
                  "output head(s): logits (cross-entropy) or log_softmax|softmax|sigmoid|tanh (NLL)",
                  _text_list, "HEAD"),
    "init": Key("model", "init", _init, "weight init: " + ", ".join(INITS) + "; or per activation: "
                "selu=lecun_normal,relu=default", str, "SCHEME"),
    "dropout": Key("model", "dropout", _float(0.0, 1.0), "dropout probability after every hidden activation (default 0)",
                   metavar="P"),
    "dropout_kind": Key("model", "dropout_kind", _choice(("standard", "alpha", "auto")),
                        "standard, alpha, or auto (alpha for SELU, standard otherwise)", str, "KIND"),
    "optimizer": Key("optim", "optimizer", _choice(OPTIMIZERS), "sgd, adam, adamw or rmsprop", str, "NAME"),
    "lr": Key("optim", "lr", _float(0.0, lo_open=True, hi=None), "learning rate", metavar="LR"),
    "momentum": Key("optim", "momentum", _float(0.0, 1.0), "SGD / RMSprop momentum (default 0)", metavar="M"),
    "nesterov": Key("optim", "nesterov", _bool, "SGD with Nesterov momentum (true/false)", _text_bool, "BOOL"),
    "weight_decay": Key("optim", "weight_decay", _float(0.0), "L2 weight decay (default 0)", metavar="WD"),
    "batch_size": Key("optim", "batch_size", _int(1), "training examples per step", metavar="N"),
    "epochs": Key("optim", "epochs", _int(1), "passes over the training split", metavar="N"),
    "drop_last": Key("optim", "drop_last", _bool, "drop the last incomplete training batch (true/false)",
                     _text_bool, "BOOL"),
    "patience": Key("optim", "patience", _int(0), "early stopping: epochs without a better validation accuracy "
                    "(0 = off; needs --val-split)", metavar="N"),
    "schedule": Key("optim", "schedule", _choice(("none", "cosine", "step")),
                    "learning-rate schedule: none, cosine, step (see --step-size, --gamma)", str, "NAME"),
    "step_size": Key("optim", "step_size", _int(1), "step schedule: epochs between decays (default 10)", metavar="N"),
    "gamma": Key("optim", "gamma", _float(0.0, 1.0, lo_open=True, hi_open=False),
                 "step schedule: decay factor (default 0.1)", metavar="G"),
    "seed": Key("run", None, _int(0), "first seed (default 0)", metavar="S"),
    "seeds": Key("run", "seeds", _seeds, "number of seeds from --seed, or a list 0,1,2", _text_seeds, "N|S,S"),
    "val_split": Key("data", "val_split", _val_split,
                     "validation examples held out of the training split: a count or a fraction (0 = none)",
                     metavar="N"),
    "normalize": Key("data", "normalize", _choice(NORMALIZE), "input normalisation: none ([0, 1]), symmetric "
                     "([-1, 1]), global or per_pixel (training-split mean and std)", str, "KIND"),
    "train_subset": Key("data", "train_subset", _int(0), "train on a seeded subset of N examples (0 = all)",
                        metavar="N"),
    "test_subset": Key("data", "test_subset", _int(0), "evaluate on a seeded subset of N test examples (0 = all)",
                       metavar="N"),
    "device": Key("run", "device", _device, "auto, cpu, cuda or cuda:N", str, "DEV"),
    "data_dir": Key("data", "data_dir", _path, "folder with the IDX files (default: $ACTLAB_DATA_DIR, cache)",
                    str, "DIR"),
    "download": Key("data", "download", _bool, "download missing data sets (true/false)", _text_bool, "BOOL"),
    "out": Key("run", "out", _path, "run folder (default runs/<name>-<timestamp>)", str, "DIR"),
    "checkpoints": Key("run", "checkpoints", _bool, "save model weights (true/false)", _text_bool, "BOOL"),
    "precision": Key("run", "precision", _choice(("fp32", "bf16")), "fp32 (default) or bf16: autocast training "
                     "steps to bfloat16 (faster, slightly different numbers; evaluation stays fp32)", str, "P"),
    "stack": Key("run", "stack", _stack, "train the models in one stacked pass: auto (on CUDA), true or false",
                 _text_bool, "auto|BOOL"),
    "backprop": Key("run", "backprop", _choice(("auto", "autograd")), "auto (default): plain MLPs train with "
                    "actlab's hand-written backward pass (same numbers as autograd, faster); autograd: always autograd",
                    str, "MODE"),
    "workers": Key("run", "workers", _int(0), "processes training models in parallel (0 = one per CPU core "
                   "on CPU, 1 on a GPU)", metavar="N"),
    "threads": Key("run", "threads", _int(0), "torch CPU threads per worker (0 = cores ÷ workers)", metavar="N"),
    "diagnostics": Key("run", "diagnostics", _bool, "measure dead units, saturation and gradient flow "
                       "at init and per epoch (true/false)", _text_bool, "BOOL"),
    "tensorboard": Key("run", "tensorboard", _bool, "write TensorBoard event files under <run>/tensorboard/: "
                       "metrics per epoch, activation and weight-gradient histograms per layer", _text_bool, "BOOL"),
    "ci": Key("run", "ci", _choice(("t", "bootstrap")), "confidence intervals: t (Student, default) or bootstrap",
              str, "METHOD"),
    "eval_batch_size": Key("run", "eval_batch_size", _int(1), "examples per evaluation pass", metavar="N"),
}


def _unknown_key(key: str, where: str) -> ActlabError:
    close = difflib.get_close_matches(key, list(KEYS) + ["preset"], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(KEYS)}"
    return ActlabError(f"unknown key {key!r} in {where}{hint}")


def config_from_flat(flat: dict[str, Any], sources: dict[str, str] | None = None) -> Config:
    """Check every key of an `[experiment]` table and build the Config tree."""
    sources = sources or {}
    checked: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in KEYS:
            raise _unknown_key(key, sources.get(key, "the configuration"))
        try:
            checked[key] = KEYS[key].check(value)
        except _Bad as exc:
            where = sources.get(key)
            raise ActlabError(f"{key} = {value!r}{f' ({where})' if where else ''}: {exc}") from None
    seeds = checked.pop("seeds", 1)
    first = checked.pop("seed", 0)
    checked["seeds"] = seeds if isinstance(seeds, tuple) else tuple(range(first, first + seeds))
    sections: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "optim": {}, "run": {}}
    for key, value in checked.items():
        sections[KEYS[key].section][KEYS[key].field] = value
    config = Config(DataConfig(**sections["data"]), ModelConfig(**sections["model"]),
                    OptimConfig(**sections["optim"]), RunConfig(**sections["run"]))
    _check_combinations(config, sources)
    return config


def _check_combinations(config: Config, sources: dict[str, str]) -> None:
    o, d = config.optim, config.data
    if o.nesterov and (o.optimizer != "sgd" or o.momentum == 0):
        raise ActlabError("nesterov = true needs optimizer = \"sgd\" and momentum > 0 (e.g. --momentum 0.9)")
    if o.momentum and o.optimizer not in ("sgd", "rmsprop"):
        raise ActlabError(f"momentum = {o.momentum} applies to optimizer = \"sgd\" or \"rmsprop\" only; "
                          f"Adam's betas are fixed at (0.9, 0.999)")
    if o.patience and not d.val_split:
        raise ActlabError(f"patience = {o.patience} needs a validation split to watch: add val_split "
                          f"(e.g. --val-split 10000), or set patience = 0 to train every epoch")
    for a in config.model.activations:
        layers = len(split_layers(a))
        if layers > 1 and layers != len(config.model.hidden):
            raise ActlabError(f"activation {a!r} names {layers} layers but hidden = {list(config.model.hidden)} has "
                              f"{len(config.model.hidden)}; give one activation per hidden layer")
    if not isinstance(config.model.init, str):
        unknown = [a for a, _ in config.model.init if a not in config.model.activations]
        if unknown:
            raise ActlabError(f"init names {', '.join(map(repr, unknown))}, which is not among the activations "
                              f"{list(config.model.activations)}; key the table by activation as written there")
    if isinstance(d.val_split, int) and d.val_split >= 60000:
        raise ActlabError(f"val_split = {d.val_split}: leaves no training examples (the split has 60000)")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ActlabError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ActlabError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = set(doc) - {"experiment", "sweep"}
    if unknown:
        raise ActlabError(f"config file {path}: unknown table(s) {', '.join(sorted(unknown))}; "
                          f"put the keys in an [experiment] table (and lists to sweep over in [sweep])")
    table = doc.get("experiment", {} if "sweep" in doc else None)
    if not isinstance(table, dict):
        raise ActlabError(f"config file {path} has no [experiment] table")
    return dict(table)


SWEEP_ALIASES = {"activation": "activations", "seed": "seeds", "output": "output"}


def read_sweep(file: str | Path | None, flags: list[str] | None = None) -> dict[str, list[Any]]:
    """The lists to sweep over: a file's `[sweep]` table, then `--sweep key=v1;v2` flags.

    Keys are `[experiment]` keys (`activation` and `seed` name single values of `activations` and
    `seeds`); each value of a list is checked like the key itself when the grid is built.
    """
    sweep: dict[str, list[Any]] = {}
    if file is not None:
        with open(file, "rb") as f:
            table = tomllib.load(f).get("sweep", {})
        for key, values in table.items():
            if not isinstance(values, list) or not values:
                raise ActlabError(f"[sweep] {key} = {values!r} in {file}: give a non-empty list of values, "
                                  f"e.g. {key} = [a, b]")
            sweep[key] = values
    for flag in flags or []:
        key, sep, text = flag.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not text.strip():
            raise ActlabError(f"--sweep {flag!r}: write KEY=V1;V2, e.g. --sweep 'lr=0.001;0.003'")
        target = SWEEP_ALIASES.get(key, key)
        if target not in KEYS:
            raise _unknown_key(key, "--sweep")
        parse = KEYS[target].from_text
        values = [v.strip() for v in text.split(";") if v.strip()]
        sweep[key] = [v if key in ("activation", "activations") else parse(v) for v in values]
    for key in sweep:
        target = SWEEP_ALIASES.get(key, key)
        if target not in KEYS or target in ("name", "out", "data_dir", "workers", "threads", "device"):
            raise _unknown_key(key, "[sweep]") if target not in KEYS else ActlabError(
                f"[sweep] {key}: not a key to sweep over (it does not change what is trained)")
    return sweep


def preset_flat(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=2)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ActlabError(f"unknown preset {name!r}; {hint}run `actlab presets` to list them")
    return {"name": name, **PRESETS[name].experiment}


def resolve_config(preset: str | None = None, file: str | Path | None = None,
                   overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Config:
    """Merge preset < file < overrides (< nothing), fill defaults from the environment, validate.

    `overrides` maps keys to typed values or to flag text (strings, parsed by the key's rules).
    """
    env = os.environ if env is None else env
    flat: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def merge(layer: dict[str, Any], where: str) -> None:
        for key, value in layer.items():
            if key not in KEYS:
                raise _unknown_key(key, where)
            flat[key] = value
            sources[key] = where

    file_table = _read_toml(Path(file)) if file is not None else {}
    preset = file_table.pop("preset", None) if preset is None else preset
    if preset is not None:
        merge(preset_flat(str(preset)), f"preset {preset}")
    if file is not None:
        if "name" not in file_table and preset is None:
            file_table["name"] = Path(file).stem
        merge(file_table, f"[experiment] of {file}")
    for key, value in (overrides or {}).items():
        if key not in KEYS:
            raise _unknown_key(key.replace("_", "-"), "the command line")
        if isinstance(value, str):  # flag text; typed values from the Python API pass as they are
            value = KEYS[key].from_text(value)
        flat[key] = value
        sources[key] = f"--{key.replace('_', '-')}"
    _restart_seeds(flat, overrides or {})
    if "data_dir" not in flat and env.get("ACTLAB_DATA_DIR"):
        flat["data_dir"] = env["ACTLAB_DATA_DIR"]
        sources["data_dir"] = "$ACTLAB_DATA_DIR"
    return config_from_flat(flat, sources)


def replace(config: Config, **flat_overrides: Any) -> Config:
    """A copy of `config` with some `[experiment]` keys changed (validated like any other input)."""
    flat = config.to_flat()
    flat.update(flat_overrides)
    _restart_seeds(flat, flat_overrides)
    return config_from_flat(flat)


def _restart_seeds(flat: dict[str, Any], changed: dict[str, Any]) -> None:
    """A new `seed` without `seeds` restarts a listed set of seeds at it, keeping their count."""
    if "seed" in changed and "seeds" not in changed and isinstance(flat.get("seeds"), list):
        flat["seeds"] = len(flat["seeds"])
