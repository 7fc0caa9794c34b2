"""actlab: run, reproduce and explain activation-function experiments on MNIST-family data.

    import actlab
    config = actlab.resolve_config(preset="mnist-classic-four", overrides={"seeds": 3})
    results = actlab.run(config)
    print(results.table())
"""

__version__ = "0.1.0"

from actlab.config import Config, resolve_config  # noqa: E402
from actlab.errors import ActlabError  # noqa: E402
from actlab.experiment import run  # noqa: E402
from actlab.results import Results, load_results  # noqa: E402

__all__ = ["ActlabError", "Config", "Results", "load_results", "resolve_config", "run", "__version__"]
