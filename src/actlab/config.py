"""Experiment configuration: one frozen dataclass tree, resolved once at the edge.

Precedence is preset < TOML file < command-line flags. A TOML file holds an `[experiment]` table
whose keys are the flag names with underscores (`batch_size = 64`, `hidden = [128, 128]`,
`activations = ["relu", "tanh"]`); `preset = "name"` in it starts from a preset.

Every key is declared once, as a field of DataConfig, ModelConfig, OptimConfig or RunConfig:
`key(default, check, help, ...)` gives the field its default and, in its metadata, the check of a
typed value, the parser of flag text, the `--help` text (without the default) and the metavar.
`KEYS`, the `actlab run` flags and the defaults `--help` shows are derived from those fields;
`seed`, the one input-only key, is declared with the field it feeds (`seeds`). Unknown keys and
bad values fail here with the key, the value, where it came from and what is accepted. Every TOML
file actlab writes goes through `toml_text`. Nothing below this module reads flags, files or
environment variables.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from actlab.activations import parse_layers, split_activation_list, split_layers
from actlab.data import DATASETS, check_mirror, dataset_info
from actlab.errors import ActlabError
from actlab.messages import LANGUAGES
from actlab.models import INITS, OUTPUTS
from actlab.presets import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
NORMALIZE = ("none", "symmetric", "global", "per_pixel")


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
        if not math.isfinite(v) or v < lo or (lo_open and v == lo) or (hi is not None and (v > hi or (hi_open and v == hi))):
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


def _mirror(v: Any) -> str:
    try:
        base = check_mirror(v) if isinstance(v, str) else None
    except ActlabError:
        base = None
    if base is None:
        raise _Bad("must be an http:// or https:// base URL under which mnist/ and fashion-mnist/ hold the "
                   ".gz files, e.g. http://host:8000/ (docs/data.md)")
    return base


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


MAX_SEEDS = 1_000_000  # more is a typo; the run's plan (actlab.plan) refuses far fewer, with the time they take


def _seeds(v: Any) -> int | tuple[int, ...]:
    if isinstance(v, (int, list, tuple)) and not isinstance(v, bool) and (v if isinstance(v, int) else len(v)) > MAX_SEEDS:
        raise _Bad(f"must be at most {MAX_SEEDS:,} seeds")
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


# --- keys: each declared once, on the config field it sets ---------------------------------

@dataclass(frozen=True)
class Key:
    """One `[experiment]` key: how its value is checked, parsed from flag text and explained.

    Declared with `key()` on a config field; `KEYS` fills in `name`, `section` and `field`.
    """
    check: Callable[[Any], Any]  # typed value → accepted value; raises _Bad saying what is accepted
    help: str  # meaning and units; `--help` appends the default, taken from the field
    from_text: Callable[[str], Any] = _text_number  # flag text → typed value (then checked)
    metavar: str = "N"
    name: str = ""  # the key, where it is not the field's name (`output` sets `outputs`)
    unset: str = ""  # what a default of None means, shown as the default in `--help`
    env: str = ""  # an environment variable that sets the key when nothing else does
    inputs: tuple[Key, ...] = ()  # input-only keys resolved into this field (`seed` into `seeds`)
    section: str = ""
    field: str | None = None  # None: an input-only key
    # its policies, declared here and nowhere else (tests/test_config.py checks them against each other)
    trains: bool = True  # changes what a model computes; False: where or how fast it trains, what is written
    per_model: bool = False  # each model takes one of its values (activation, head, init, seed)
    resumable: bool = False  # may differ between a run and the command that resumes it (needs trains = False)
    tunable: bool = False  # `--tune` may choose it per activation
    shown: bool = False  # a row of the report's configuration table
    identity: bool | None = None  # part of what makes a run its preset; None: as `trains`

    @property
    def hashed(self) -> bool:
        """In a sweep run's content hash as the run's whole value (a per-model key enters as the
        model's own value)."""
        return self.trains and not self.per_model

    @property
    def sweepable(self) -> bool:
        """A `[sweep]` may list values of it: it changes what is trained, so every value is a new run."""
        return self.trains

    @property
    def preset_identity(self) -> bool:
        return self.trains if self.identity is None else self.identity


def key(default: Any, check: Callable[[Any], Any], help: str, **spec: Any) -> Any:
    """A config field that declares its key: `lr: float = key(1e-3, _float(...), "learning rate")`."""
    return dataclasses.field(default=default, metadata={"key": Key(check, help, **spec)})


def _bool_key(default: bool, help: str, **spec: Any) -> Any:
    return key(default, _bool, help, from_text=_text_bool, metavar="BOOL", **spec)


@dataclass(frozen=True)
class DataConfig:
    """Which data set, how its training split is divided and prepared, and where it is found."""
    dataset: str = key("mnist", _dataset, "data set: " + ", ".join(DATASETS), from_text=str, metavar="NAME",
                       shown=True)
    val_split: int | float = key(0, _val_split, "validation examples held out of the training split: a count "
                                 "(10000) or a fraction (0.2); 0 = no validation split", shown=True)
    train_subset: int = key(0, _int(0), "train on a seeded subset of this many examples; 0 = all", shown=True)
    test_subset: int = key(0, _int(0), "evaluate on a seeded subset of this many test examples; 0 = all 10,000",
                           shown=True)
    normalize: str = key("none", _choice(NORMALIZE), "input normalisation: none (pixels in [0, 1]), symmetric "
                         "([-1, 1]), global or per_pixel (training-split mean and std)", from_text=str,
                         metavar="KIND")
    data_dir: str | None = key(None, _path, "folder holding the IDX files", from_text=str, metavar="DIR",
                               unset="$ACTLAB_DATA_DIR, then ~/.cache/actlab, the system copy, a download",
                               env="ACTLAB_DATA_DIR", trains=False, resumable=True)
    data_mirror: str | None = key(None, _mirror, "a base URL tried first for downloads, under which mnist/ and "
                                  "fashion-mnist/ hold the publishers' .gz files (docs/data.md)", from_text=str,
                                  metavar="URL", unset="$ACTLAB_DATA_MIRROR, then the publishers' mirrors",
                                  env="ACTLAB_DATA_MIRROR", trains=False, resumable=True)
    download: bool = _bool_key(True, "download a data set from its publishers when no local copy is found",
                               trains=False, resumable=True)


@dataclass(frozen=True)
class ModelConfig:
    """The models compared: one per activation (and output head), all of the same shape."""
    hidden: tuple[int, ...] = key((128, 128), _hidden, "hidden layer widths, e.g. 128,128 ('' = a linear model)",
                                  from_text=_text_ints, metavar="W,W", shown=True)
    activations: tuple[str, ...] = key(("relu",), _activations, "the activations compared, one model each, e.g. "
                                       "relu,tanh,leaky_relu:0.2 (relu+tanh: one per hidden layer)",
                                       from_text=split_activation_list, metavar="A,A", per_model=True,
                                       shown=True)
    outputs: tuple[str, ...] = key(("logits",), _outputs, "output head(s) compared: logits (cross-entropy) or "
                                   "log_softmax|softmax|sigmoid|tanh (NLL)", from_text=_text_list,
                                   metavar="HEAD", name="output", per_model=True, shown=True)
    init: str | tuple[tuple[str, str], ...] = key("default", _init, "weight init: " + ", ".join(INITS) +
                                                  "; or per activation: selu=lecun_normal,relu=default",
                                                  from_text=str, metavar="SCHEME", per_model=True, shown=True)
    dropout: float = key(0.0, _float(0.0, 1.0), "dropout probability after every hidden activation", metavar="P",
                         tunable=True, shown=True)
    dropout_kind: str = key("auto", _choice(("standard", "alpha", "auto")), "standard, alpha (keeps SELU "
                            "self-normalising) or auto (alpha for SELU, standard otherwise)", from_text=str,
                            metavar="KIND", shown=True)

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
    """How each model is trained: optimizer, learning rate and its schedule, batches and epochs."""
    optimizer: str = key("adam", _choice(OPTIMIZERS), "optimizer: " + ", ".join(OPTIMIZERS), from_text=str,
                         metavar="NAME", shown=True)
    lr: float = key(1e-3, _float(0.0, lo_open=True, hi=None), "learning rate (step size per batch)", metavar="LR",
                    tunable=True, shown=True)
    momentum: float = key(0.0, _float(0.0, 1.0), "SGD / RMSprop momentum", metavar="M", tunable=True, shown=True)
    nesterov: bool = _bool_key(False, "SGD with Nesterov momentum, needs --momentum > 0")
    weight_decay: float = key(0.0, _float(0.0), "weight decay coefficient (L2 penalty per step)", metavar="WD",
                                tunable=True, shown=True)
    batch_size: int = key(64, _int(1), "training examples per step", tunable=True, shown=True)
    epochs: int = key(10, _int(1), "passes over the training split", shown=True)
    drop_last: bool = _bool_key(False, "drop the last incomplete training batch of each epoch")
    patience: int = key(0, _int(0), "early stopping: epochs without a better validation accuracy; "
                        "0 = off (needs --val-split)")
    schedule: str = key("none", _choice(("none", "cosine", "step")), "learning-rate schedule per epoch: none, "
                        "cosine (to 0 over the epochs), step (see --step-size, --gamma)", from_text=str,
                        metavar="NAME")
    step_size: int = key(10, _int(1), "step schedule: epochs between decays", tunable=True)
    gamma: float = key(0.1, _float(0.0, 1.0, lo_open=True, hi_open=False),
                       "step schedule: factor on the learning rate per decay", metavar="G", tunable=True)


@dataclass(frozen=True)
class RunConfig:
    """The run: its name, seeds, device and parallelism, and what it writes."""
    name: str = key("experiment", _name, "experiment name, used for the run folder", from_text=str, metavar="NAME",
                   trains=False)
    seeds: tuple[int, ...] = key((0,), _seeds, "number of seeds counting up from --seed, or a list 0,1,2; "
                                 "every activation trains once per seed", from_text=_text_seeds, metavar="N|S,S",
                                 per_model=True, identity=False, shown=True,
                                 inputs=(Key(_int(0), "first seed", metavar="S", name="seed", per_model=True,
                                             identity=False),))
    device: str = key("auto", _device, "auto (CUDA when present, else CPU), cpu, cuda or cuda:N", from_text=str,
                      metavar="DEV", trains=False, shown=True)
    out: str | None = key(None, _path, "run folder", from_text=str, metavar="DIR",
                          unset="runs/<name>-<timestamp>; a sweep's store: runs/<name>-sweep", trains=False,
                          resumable=True)
    checkpoints: bool = _bool_key(True, "save final (and best-validation) weights per model", trains=False)
    precision: str = key("fp32", _choice(("fp32", "bf16")), "fp32 or bf16: autocast the training steps to "
                         "bfloat16 (faster, slightly different numbers; evaluation stays fp32)", from_text=str,
                         metavar="P")
    stack: bool | str = key("auto", _stack, "train a run's models in one stacked pass: auto (on CUDA only), "
                            "true or false", from_text=_text_bool, metavar="auto|BOOL", trains=False)
    backprop: str = key("auto", _choice(("auto", "autograd")), "auto: plain MLPs train with actlab's hand-written "
                        "backward pass (same numbers as autograd, faster); autograd: always autograd",
                        from_text=str, metavar="MODE", trains=False)
    workers: int = key(0, _int(0), "processes training models in parallel; 0 = one per CPU core on CPU, "
                       "1 on a GPU", trains=False, resumable=True)
    threads: int = key(0, _int(0), "torch CPU threads per worker; 0 = cores ÷ workers", trains=False,
                       resumable=True)
    eval_batch_size: int = key(1000, _int(1), "examples per no-grad evaluation pass", trains=False)
    diagnostics: bool = _bool_key(True, "measure dead units, saturation and gradient flow at init and per epoch",
                                  trains=False)
    tensorboard: bool = _bool_key(False, "write TensorBoard event files under <run>/tensorboard/: metrics per "
                                  "epoch, activation and weight-gradient histograms per layer", trains=False)
    ci: str = key("t", _choice(("t", "bootstrap")), "confidence intervals in the statistics: t (Student) or "
                  "bootstrap (BCa, 9,999 resamples)", from_text=str, metavar="METHOD", trains=False)
    lang: str = key("en", _choice(tuple(LANGUAGES)), "the report's language, beside English: " +
                    ", ".join(f"{code} ({name})" for code, name in LANGUAGES.items()) + "; the terminal table "
                    "follows it", from_text=str, metavar="LANG", trains=False)
    tune_seeds: int = key(2, _int(1), "tuning: seeds each grid point trains on to choose an activation's values, "
                          "numbered after the evaluation seeds (see --tune)", trains=False)
    equivalence_margin: float = key(0.5, _float(0.0, 100.0, lo_open=True), "the smallest accuracy difference that "
                                    "matters, in percentage points: two activations whose paired difference lies "
                                    "within ± this (two one-sided tests) are called equivalent", metavar="POINTS",
                                    trains=False, shown=True)


@dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    run: RunConfig = RunConfig()

    def to_flat(self) -> dict[str, Any]:
        """The `[experiment]` table that reproduces this config (omitting unset paths)."""
        flat: dict[str, Any] = {}
        for name, spec in KEYS.items():
            if spec.field is None:
                continue
            value = getattr(getattr(self, spec.section), spec.field)
            if value is None:
                continue
            if name == "init" and isinstance(value, tuple):
                value = dict(value)
            flat[name] = list(value) if isinstance(value, tuple) else value
        seeds = self.run.seeds
        flat["seed"] = seeds[0]
        flat["seeds"] = len(seeds) if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) else list(seeds)
        if len(self.model.outputs) == 1:
            flat["output"] = self.model.outputs[0]
        return flat

    def to_toml(self, sweep: dict[str, list[Any]] | None = None) -> str:
        """This config as an `[experiment]` table, then the lists of a `[sweep]` table when given."""
        return toml_text({"experiment": self.to_flat(), **({} if sweep is None else {"sweep": sweep})})

    @property
    def variants(self) -> list[tuple[str, str, str]]:
        """(label, activation, output) for each model trained per seed."""
        acts, outs = self.model.activations, self.model.outputs
        if len(outs) == 1:
            return [(a, a, outs[0]) for a in acts]
        if len(acts) == 1:
            return [(o, acts[0], o) for o in outs]
        return [(f"{a}/{o}", a, o) for a in acts for o in outs]


SECTIONS: dict[str, type] = {f.name: type(f.default) for f in dataclasses.fields(Config)}


def _declared_keys() -> dict[str, Key]:
    """Every key, section by section in field order, with its name, section and field filled in."""
    keys: dict[str, Key] = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            spec: Key = f.metadata["key"]
            if f.default is None and not spec.unset:
                raise TypeError(f"{cls.__name__}.{f.name}: a default of None needs unset= (what None means)")
            for extra in spec.inputs:
                keys[extra.name] = dataclasses.replace(extra, section=section)
            name = spec.name or f.name
            keys[name] = dataclasses.replace(spec, name=name, section=section, field=f.name)
    return keys


KEYS: dict[str, Key] = _declared_keys()


def keys_where(policy: str) -> tuple[str, ...]:
    """The keys whose `policy` (a field or property of `Key`: hashed, resumable, tunable, ...) holds,
    in declaration order."""
    return tuple(name for name, spec in KEYS.items() if getattr(spec, policy))


def toml_text(tables: dict[str, dict[str, Any]]) -> str:
    """The one TOML writer: tables of plain values (no None: leave such keys out), read back equal."""
    return tomli_w.dumps(tables)


def flag_defaults() -> dict[str, str]:
    """Each key's default as `--help` shows it: flag text (`128,128`), or what leaving it unset means."""
    flat = Config().to_flat()
    return {name: _flag_text(flat[name]) if name in flat else spec.unset for name, spec in KEYS.items()}


def _flag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(map(str, value)) or "''"
    return str(value)


def _unknown_key(key: str, where: str) -> ActlabError:
    close = difflib.get_close_matches(key, list(KEYS) + ["preset"], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(KEYS)}"
    return ActlabError(f"unknown key {key!r} in {where}{hint}")


def _shown(value: Any, limit: int = 80) -> str:
    """A value as an error line quotes it: whole when short, else its start (a 6 KB expression once
    made a 6 KB line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _checked(key: str, value: Any, where: str | None) -> Any:
    """`value` as `key` takes it, or one line naming the key, the value and where it came from."""
    if key not in KEYS:
        raise _unknown_key(key, where or "the configuration")
    try:
        return KEYS[key].check(value)
    except _Bad as exc:
        raise ActlabError(f"{key} = {_shown(value)}{f' ({where})' if where else ''}: {exc}") from None


def config_from_flat(flat: dict[str, Any], sources: dict[str, str] | None = None) -> Config:
    """Check every key of an `[experiment]` table and build the Config tree."""
    sources = sources or {}
    checked = {key: _checked(key, value, sources.get(key)) for key, value in flat.items()}
    default = RunConfig.seeds  # unset, `seed` and a count in `seeds` fall back to the field's default
    seeds = checked.pop("seeds", len(default))
    first = checked.pop("seed", default[0])
    checked["seeds"] = seeds if isinstance(seeds, tuple) else tuple(range(first, first + seeds))
    sections: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for name, value in checked.items():
        sections[KEYS[name].section][KEYS[name].field] = value
    config = Config(**{section: cls(**sections[section]) for section, cls in SECTIONS.items()})
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
    _check_sizes(d, config.optim)


def _check_sizes(d: DataConfig, o: OptimConfig) -> None:
    """Counts beyond what the data set holds are errors naming the limit, never silently clamped."""
    info = dataset_info(d.dataset)
    if isinstance(d.val_split, int) and d.val_split >= info.train_size:
        raise ActlabError(f"val_split = {d.val_split}: leaves no training examples ({info.title}'s training "
                          f"split holds {info.train_size}); give fewer, or a fraction such as 0.2")
    val = d.val_split if isinstance(d.val_split, int) else round(d.val_split * info.train_size)
    if d.val_split and not val:
        raise ActlabError(f"val_split = {d.val_split}: less than one of {info.title}'s {info.train_size} training "
                          f"examples; give a larger fraction or a count, e.g. 10000")
    if d.train_subset > info.train_size - val:
        after = f" ({info.train_size - val} after val_split = {d.val_split})" if val else ""
        raise ActlabError(f"train_subset = {d.train_subset}: {info.title}'s training split holds "
                          f"{info.train_size} examples{after}; give at most that, or 0 for all of them")
    examples = d.train_subset or info.train_size - val
    if o.drop_last and o.batch_size > examples:
        raise ActlabError(f"drop_last = true with batch_size = {o.batch_size} drops every batch of the {examples} "
                          f"training examples; use a smaller batch_size or drop_last = false")
    if d.test_subset > info.test_size:
        raise ActlabError(f"test_subset = {d.test_subset}: {info.title}'s test split holds {info.test_size} "
                          f"examples; give at most that, or 0 for all of them")


def load_toml(path: Path) -> dict[str, Any]:
    """A config file's document; a file that is missing, a folder, unreadable or not UTF-8 TOML is
    an `ActlabError` naming it."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ActlabError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ActlabError(f"config file {path} is a folder; pass a TOML file, e.g. --config my-experiment.toml, "
                          f"or a run folder's config.toml to rerun it") from None
    except OSError as exc:
        raise ActlabError(f"config file {path} cannot be read ({exc.strerror or exc}); check that it is a "
                          f"readable file") from None
    except UnicodeDecodeError as exc:
        raise ActlabError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ActlabError(f"config file {path} is not valid TOML: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    doc = load_toml(path)
    unknown = set(doc) - {"experiment", "sweep", "tune"}
    if unknown:
        raise ActlabError(f"config file {path}: unknown table(s) {', '.join(sorted(unknown))}; "
                          f"put the keys in an [experiment] table (lists to sweep over in [sweep], values to tune "
                          f"in [tune])")
    table = doc.get("experiment", {} if "sweep" in doc or "tune" in doc else None)
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
        table = load_toml(Path(file)).get("sweep", {})
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
        if target not in KEYS:
            raise _unknown_key(key, "[sweep]")
        if not KEYS[target].sweepable:
            raise ActlabError(f"[sweep] {key}: not a key to sweep over (it does not change what is trained); "
                              f"give one value in [experiment] or as --{target.replace('_', '-')}")
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
        for key, value in file_table.items():  # every value the file gives, also one a flag then replaces
            _checked(key, value, f"[experiment] of {file}")  # (before the name taken from the file's stem)
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
    for name, spec in KEYS.items():
        if spec.env and name not in flat and env.get(spec.env):
            flat[name] = env[spec.env]
            sources[name] = f"${spec.env}"
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
