"""actlab: run, reproduce and explain activation-function experiments on MNIST-family data.

    import actlab
    config = actlab.resolve_config(preset="mnist-classic-four", overrides={"seeds": 3})
    results = actlab.run(config)
    print(results.table())

The names below are imported on first use, so `actlab presets` and the training worker processes
do not pay for the report's plotting and statistics libraries.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

if TYPE_CHECKING:  # what type checkers and editors see; at run time the names come from __getattr__
    from actlab.config import Config, resolve_config
    from actlab.errors import ActlabError
    from actlab.experiment import run
    from actlab.results import Results, load, load_results

_EXPORTS = {
    "ActlabError": "actlab.errors", "Config": "actlab.config", "resolve_config": "actlab.config",
    "run": "actlab.experiment", "Results": "actlab.results", "load_results": "actlab.results",
    "load": "actlab.results",
}
__all__ = [*_EXPORTS, "__version__"]


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


def __getattr__(name: str):
    """The public names, imported on first use."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'actlab' has no attribute {name!r}")
