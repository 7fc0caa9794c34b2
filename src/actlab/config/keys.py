"""`Key`: one `[experiment]` key as its config field declares it: check, flag parser, help and policies."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any




from actlab.config.checks import _bool, _text_bool, _text_number


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
    bare: str | None = None  # the flag's value when given with none (`--download`, `--explain`)
    section: str = ""
    field: str | None = None  # None: an input-only key
    # its policies, declared here and nowhere else (tests/test_config.py checks them against each other)
    trains: bool = True  # changes what a model computes; False: where or how fast it trains, what is written
    per_model: bool = False  # each model takes one of its values (activation, head, init, seed)
    resumable: bool = False  # may differ between a run and the command that resumes it (needs trains = False)
    tunable: bool = False  # `--tune` may choose it per activation
    shown: bool = False  # a row of the report's configuration table
    identity: bool | None = None  # part of what makes a run its preset; None: as `trains`
    omit_default: bool = False  # written only where it differs from its default, so that run folders and
    # stores from before the key existed read, resume and hash as they did (a key added later)
    default: Any = None  # the field's default, filled in by `key()`

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
    return dataclasses.field(default=default, metadata={"key": Key(check, help, default=default, **spec)})


def _bool_key(default: bool, help: str, **spec: Any) -> Any:
    return key(default, _bool, help, from_text=_text_bool, metavar="BOOL", bare="true", **spec)
