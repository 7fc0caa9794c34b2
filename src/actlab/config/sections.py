"""The configuration tree: one frozen dataclass per concern (data, model, optimizer, run), each field
declaring its key; `KEYS`, `SECTIONS` and every list of keys by policy derive from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import tomli_w

from actlab.activations import split_activation_list
from actlab.config.checks import (NORMALIZE, OPTIMIZERS, _activations, _choice, _conv, _dataset, _device, _explain,
                                  _float, _hidden, _init, _int, _losses, _mirror, _name, _outputs, _path, _seeds,
                                  _stack, _text_bool, _text_ints, _text_list, _text_seeds, _val_split)
from actlab.config.keys import Key, _bool_key, key
from actlab.data import DATASETS
from actlab.families import FAMILIES
from actlab.messages import LANGUAGES
from actlab.models import INITS




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
    family: str = key("mlp", _choice(FAMILIES), "model family: " + "; ".join(f"{n} ({f.summary})" for n, f in
                      FAMILIES.items()), from_text=str, metavar="NAME", name="model", shown=True, omit_default=True)
    hidden: tuple[int, ...] = key((128, 128), _hidden, "hidden layer widths, e.g. 128,128 ('' = a linear model)",
                                  from_text=_text_ints, metavar="W,W", shown=True)
    activations: tuple[str, ...] = key(("relu",), _activations, "the activations compared, one model each, e.g. "
                                       "relu,tanh,leaky_relu:0.2 (relu+tanh: one per hidden layer)",
                                       from_text=split_activation_list, metavar="A,A", per_model=True,
                                       shown=True)
    outputs: tuple[str, ...] = key(("logits",), _outputs, "output head(s) compared: logits (cross-entropy) or "
                                   "log_softmax|softmax|sigmoid|tanh (NLL)", from_text=_text_list,
                                   metavar="HEAD", name="output", per_model=True, shown=True)
    losses: tuple[str, ...] = key(("cross_entropy",), _losses, "loss(es) compared: cross_entropy (NLL with an "
                                  "output head), mse (squared error to one-hot targets) or hinge (multi-class, "
                                  "on logits)", from_text=_text_list, metavar="LOSS", name="loss", per_model=True,
                                  shown=True, omit_default=True)
    conv: tuple[int, ...] = key((6, 16), _conv, "cnn: output channels of each conv layer (conv → activation → "
                                "2×2 pool), e.g. 6,16 (LeNet-5's)", from_text=_text_ints, metavar="C,C", shown=True,
                                omit_default=True)
    kernel: int = key(5, _int(1), "cnn: the conv layers' kernel size (the first pads to keep 28×28, the others "
                      "do not pad)", metavar="K", shown=True, omit_default=True)
    pool: str = key("max", _choice(("max", "avg")), "cnn: 2×2 pooling after each conv layer: max or avg",
                    from_text=str, metavar="KIND", shown=True, omit_default=True)
    batch_norm: bool = _bool_key(False, "cnn: batch normalisation before each hidden activation (conv and dense)",
                                 shown=True, omit_default=True)
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
    docx: bool = _bool_key(False, "also write the report as an editable Word document, report.docx (and "
                           "report.<lang>.docx); needs python-docx", trains=False, omit_default=True)
    explain: tuple[str, ...] = key((), _explain, "test the classic explanations of the results (dead units, vanishing "
                                   "gradients, zero-centring, …) by training isolating models on the run's seeds: "
                                   "--explain for every hypothesis that applies, or --explain dead_units,zero_centred "
                                   "(`actlab hypotheses` lists them)", from_text=str, metavar="NAMES", bare="all",
                                   unset="none", trains=False, omit_default=True)
    equivalence_margin: float = key(0.5, _float(0.0, 100.0, lo_open=True), "the smallest accuracy difference that "
                                    "matters, in percentage points: two activations whose paired difference lies "
                                    "within ± this (two one-sided tests) are called equivalent", metavar="POINTS",
                                    trains=False, shown=True)


@dataclass(frozen=True)
class Config:
    """One experiment, resolved and checked (`actlab.resolve_config`): its data, models, optimizer and
    run settings. Frozen: derive a changed copy with `actlab.config.replace(config, lr=0.01)`."""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    run: RunConfig = RunConfig()
    # keys this machine's environment set (ACTLAB_DATA_DIR, ...): used here, never written into a run's
    # files, so a run folder's config.toml reruns on another machine with that machine's settings
    from_env: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    def to_flat(self) -> dict[str, Any]:
        """The `[experiment]` table that reproduces this config (omitting unset paths)."""
        flat: dict[str, Any] = {}
        for name, spec in KEYS.items():
            if spec.field is None:
                continue
            value = getattr(getattr(self, spec.section), spec.field)
            if value is None or (spec.omit_default and value == spec.default) or name in self.from_env:
                continue
            flat[name] = written(name, value)
        seeds = self.run.seeds
        flat["seed"] = seeds[0]
        flat["seeds"] = len(seeds) if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) else list(seeds)
        return flat

    def to_toml(self, sweep: dict[str, list[Any]] | None = None) -> str:
        """This config as an `[experiment]` table, then the lists of a `[sweep]` table when given."""
        return toml_text({"experiment": self.to_flat(), **({} if sweep is None else {"sweep": sweep})})

    @property
    def variants(self) -> list[tuple[str, str, str, str]]:
        """(label, activation, output, loss) for each model trained per seed; the label names what
        varies (`relu`, `softmax`, `relu/softmax`, `sigmoid/mse`)."""
        acts, outs, losses = self.model.activations, self.model.outputs, self.model.losses
        return [("/".join(part for part, many in ((a, len(acts) > 1), (o, len(outs) > 1), (loss, len(losses) > 1))
                          if many) or a, a, o, loss)
                for a in acts for o in outs for loss in losses]


def written(name: str, value: Any) -> Any:
    """A key's value as an `[experiment]` table writes it: a table for a per-activation init, lists for
    tuples, and one output head or loss as itself rather than a list of one."""
    if name == "init" and isinstance(value, tuple):
        return dict(value)
    if name in ("output", "loss") and isinstance(value, tuple) and len(value) == 1:
        return value[0]
    return list(value) if isinstance(value, tuple) else value


SECTIONS: dict[str, type] = {f.name: type(f.default) for f in dataclasses.fields(Config) if f.name != "from_env"}


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
    flat.update({name: spec.default for name, spec in KEYS.items() if spec.omit_default})  # written only when set
    return {name: spec.unset if spec.unset and spec.default == () else _flag_text(flat[name]) if name in flat
            else spec.unset for name, spec in KEYS.items()}


def _flag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "''"
    return str(value)
