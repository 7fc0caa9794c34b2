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
file actlab writes goes through `toml_text`. Nothing below this package reads flags, files or
environment variables.

The package: `checks.py` (each key's check and flag parser), `keys.py` (`Key` and its policies),
`sections.py` (the dataclass tree, `KEYS`, `keys_where`), and here the resolution: preset < file <
flags, unknown keys, combinations, sweeps' lists.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from pathlib import Path
from typing import Any


from actlab.activations import split_layers
from actlab.convnets import conv_sizes
from actlab.data import dataset_info
from actlab.errors import ActlabError
from actlab.losses import LOSS_HEADS
from actlab.presets import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from actlab.config.checks import MAX_SEEDS, NORMALIZE, OPTIMIZERS, _Bad
from actlab.config.keys import Key
from actlab.config.sections import (KEYS, SECTIONS, Config, DataConfig, ModelConfig, OptimConfig, RunConfig,
                                    flag_defaults, keys_where, toml_text)

__all__ = ["CNN_KEYS", "KEYS", "MAX_SEEDS", "NORMALIZE", "OPTIMIZERS", "SECTIONS", "SWEEP_ALIASES", "Config",
           "DataConfig", "Key", "ModelConfig", "OptimConfig", "RunConfig", "config_from_flat", "flag_defaults",
           "keys_where", "load_toml", "preset_flat", "read_sweep", "replace", "resolve_config", "toml_text", "tomllib"]


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
    _check_model(config.model, sources)
    for a in config.model.activations:
        layers, m = len(split_layers(a)), config.model
        if layers > 1 and m.family == "cnn" and layers != len(m.conv) + len(m.hidden):
            raise ActlabError(f"activation {a!r} names {layers} layers but conv = {list(m.conv)} and hidden = "
                              f"{list(m.hidden)} have {len(m.conv) + len(m.hidden)}; give one activation per conv "
                              f"and dense layer")
        if layers > 1 and m.family != "cnn" and layers != len(m.hidden):
            raise ActlabError(f"activation {a!r} names {layers} layers but hidden = {list(m.hidden)} has "
                              f"{len(m.hidden)}; give one activation per hidden layer")
    if not isinstance(config.model.init, str):
        unknown = [a for a, _ in config.model.init if a not in config.model.activations]
        if unknown:
            raise ActlabError(f"init names {', '.join(map(repr, unknown))}, which is not among the activations "
                              f"{list(config.model.activations)}; key the table by activation as written there")
    _check_sizes(d, config.optim, config.model)


CNN_KEYS = ("conv", "kernel", "pool", "batch_norm")


def _check_model(m: ModelConfig, sources: dict[str, str]) -> None:
    """Losses that fit their heads; the cnn's keys only with the cnn, and a conv stack that leaves an image."""
    for loss in m.losses:
        unfit = [o for o in m.outputs if o not in LOSS_HEADS[loss]]
        if unfit:
            raise ActlabError(f"loss = {loss!r} does not fit output = {unfit[0]!r}: {loss} takes "
                              f"{' or '.join(LOSS_HEADS[loss])} (e.g. --output {LOSS_HEADS[loss][0]})")
    if m.family != "cnn":
        given = [k for k in CNN_KEYS if sources.get(k, "").startswith("--") or getattr(m, k) != KEYS[k].default]
        if given:
            value = getattr(m, given[0])
            raise ActlabError(f"{given[0]} = {_shown(list(value) if isinstance(value, tuple) else value)}"
                              f"{f' ({sources[given[0]]})' if given[0] in sources else ''} applies to the cnn "
                              f"family only, and model = {m.family!r}; add --model cnn, or leave {given[0]} out")
        return
    sides = conv_sizes(m.conv, m.kernel)
    if min(sides) < 1:
        layer = next(i for i, s in enumerate(sides) if s < 1)
        raise ActlabError(f"conv = {list(m.conv)} with kernel = {m.kernel}: conv layer {layer + 1} leaves no image "
                          f"(28×28 shrinks to {' → '.join(f'{max(s, 0)}×{max(s, 0)}' for s in sides)}); use fewer "
                          f"conv layers or a smaller kernel")


def _check_sizes(d: DataConfig, o: OptimConfig, m: ModelConfig) -> None:
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
    if m.family == "cnn" and m.batch_norm and not o.drop_last and examples % o.batch_size == 1:
        raise ActlabError(f"batch_norm = true: the last batch of each epoch would hold 1 of the {examples} training "
                          f"examples (batch_size = {o.batch_size}), and batch normalisation needs 2 or more; add "
                          f"--drop-last, or change --batch-size or --train-subset")
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
    from_env = tuple(name for name, spec in KEYS.items() if spec.env and name not in flat and env.get(spec.env))
    for name in from_env:
        flat[name] = env[KEYS[name].env]
        sources[name] = f"${KEYS[name].env}"
    return dataclasses.replace(config_from_flat(flat, sources), from_env=from_env)


def config_value(config: Config, name: str) -> Any:
    """The value of key `name` in `config`."""
    return getattr(getattr(config, KEYS[name].section), KEYS[name].field)


def replace(config: Config, **flat_overrides: Any) -> Config:
    """A copy of `config` with some `[experiment]` keys changed (validated like any other input); the
    values the environment set stay, and stay unwritten."""
    flat = {**config.to_flat(), **{name: config_value(config, name) for name in config.from_env}}
    flat.update(flat_overrides)
    _restart_seeds(flat, flat_overrides)
    kept = tuple(name for name in config.from_env if name not in flat_overrides)
    return dataclasses.replace(config_from_flat(flat), from_env=kept)


def _restart_seeds(flat: dict[str, Any], changed: dict[str, Any]) -> None:
    """A new `seed` without `seeds` restarts a listed set of seeds at it, keeping their count."""
    if "seed" in changed and "seeds" not in changed and isinstance(flat.get("seeds"), list):
        flat["seeds"] = len(flat["seeds"])
