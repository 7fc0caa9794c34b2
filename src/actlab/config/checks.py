"""Each key's check of a typed value and its parser of flag text: one small function each.

A check returns the value as the key takes it or raises `_Bad` saying what is accepted;
`actlab.config` turns that into one error line naming the key, the value and where it came from.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any


from actlab.activations import parse_layers
from actlab.data import DATASETS, check_mirror, dataset_info
from actlab.errors import ActlabError
from actlab.hypotheses import NAMES as HYPOTHESIS_NAMES
from actlab.losses import LOSSES
from actlab.models import INITS, OUTPUTS



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
        above = hi is not None and (v > hi or (hi_open and v == hi))
        if not math.isfinite(v) or v < lo or (lo_open and v == lo) or above:
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
    widths = isinstance(v, (list, tuple)) and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in v)
    if not widths:
        raise _Bad("must be a list of layer widths ≥ 1, e.g. [128, 128] (or [] for a linear model)")
    return tuple(v)


def activation_name(a: Any) -> Any:
    """An activation given as a Python object (an nn.Module class or a tensor function, e.g. one
    defined in a notebook cell) as the name a run records: `module:name`; anything else as it is."""
    if isinstance(a, (str, list, tuple)) or not callable(a):
        return a
    name = getattr(a, "__qualname__", None)
    if not isinstance(a, type) and not hasattr(a, "__code__"):
        raise _Bad(f"lists {type(a).__name__}(...), an object; give its class or a function, e.g. "
                   f"activations=[\"relu\", Swish]")
    if not (name or "").isidentifier():
        raise _Bad(f"lists {name!r}, which cannot be found again by name (a lambda or a nested function); "
                   f"define it at the top level of a module or notebook cell")
    return f"{a.__module__}:{name}"


def _activations(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise _Bad('must be a non-empty list of activation names, e.g. ["relu", "tanh"]')
    v = [activation_name(a) for a in v]  # a class or function from the caller's code, by its module:name
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


def _choices(options, what: str, example: str) -> Callable[[Any], tuple[str, ...]]:
    """A per-model key: one of `options`, or a list of them, each at most once."""
    def check(v: Any) -> tuple[str, ...]:
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, (list, tuple)) or not items:
            raise _Bad(f"must be one of (or a list of): {', '.join(options)}")
        chosen = tuple(_choice(options)(item) for item in items)
        if len(set(chosen)) != len(chosen):
            raise _Bad(f"lists {what} twice; give each once, e.g. {example}")
        return chosen
    return check


_outputs = _choices(OUTPUTS, "an output head", "log_softmax,softmax")
_losses = _choices(LOSSES, "a loss", "cross_entropy,mse")


def _conv(v: Any) -> tuple[int, ...]:
    channels = isinstance(v, (list, tuple)) and v and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1
                                                          for c in v)
    if not channels:
        raise _Bad("must be a list of one or more channel counts ≥ 1, e.g. [6, 16]")
    return tuple(v)


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
    count = v if isinstance(v, int) else len(v) if isinstance(v, (list, tuple)) else 0
    if not isinstance(v, bool) and count > MAX_SEEDS:
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


def _explain(v: Any) -> tuple[str, ...]:
    """The hypotheses `--explain` tests: all of them (`true`, `all`), none (`false`, ""), or a list."""
    from_names = {"all": list(HYPOTHESIS_NAMES), "true": list(HYPOTHESIS_NAMES), "false": [], "none": [], "": []}
    if isinstance(v, bool):
        v = list(HYPOTHESIS_NAMES) if v else []
    if isinstance(v, str):
        v = from_names.get(v.strip().lower(), _text_list(v))
    if not isinstance(v, (list, tuple)) or not all(isinstance(n, str) for n in v):
        raise _Bad(f"must be true, or a list of hypotheses from: {', '.join(HYPOTHESIS_NAMES)}")
    unknown = [n for n in v if n not in HYPOTHESIS_NAMES]
    if unknown:
        raise _Bad(f"{', '.join(map(repr, unknown))} is not a hypothesis; choose from {', '.join(HYPOTHESIS_NAMES)} "
                   f"(`actlab hypotheses` says what each tests)")
    return tuple(dict.fromkeys(v))


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
