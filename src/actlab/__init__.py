"""actlab: run, reproduce and explain activation-function experiments on MNIST-family data.

    import actlab
    config = actlab.resolve_config(preset="mnist-classic-four", overrides={"seeds": 3})
    results = actlab.run(config)
    print(results.table())

The names below are imported on first use, so `actlab presets` and the training worker processes
do not pay for the report's plotting and statistics libraries.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "ActlabError": "actlab.errors", "Config": "actlab.config", "resolve_config": "actlab.config",
    "run": "actlab.experiment", "Results": "actlab.results", "load_results": "actlab.results",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'actlab' has no attribute {name!r}")
