"""Where one run's wall time goes: a stamp at each phase of one `actlab.run`, parent and workers.

    python benchmarks/timeline.py                        # mnist-classic-four, 1 seed
    python benchmarks/timeline.py fashion-relu-family 2

Prints seconds since the run started, the process id, and the phase: the workers started, each
model's training started and ended (in its worker), each model saved by the parent, the report's
modules imported (the moment the parent writes environment.json again, just before the report),
and the run's end. The stamps come from wrappers around actlab's own functions, installed in this
process before the run, so forked workers carry them too (spawned workers do not: their models'
starts and ends are then missing). The run goes to a temporary folder on the CPU; the data comes from
ACTLAB_DATA_DIR (or is downloaded).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import actlab
import actlab.experiment
import actlab.workers

START = [0.0]


def stamp(what: str) -> None:
    print(f"{time.time() - START[0]:6.2f} s  [{os.getpid()}] {what}", file=sys.stderr, flush=True)


def wrap(module, name: str, before, after=None) -> None:
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        before(*args)
        result = original(*args, **kwargs)
        if after:
            after(*args)
        return result
    setattr(module, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="mnist-classic-four")
    parser.add_argument("seeds", nargs="?", type=int, default=1)
    args = parser.parse_args()
    wrap(actlab.workers, "_start_workers", lambda *a: stamp("starting the workers"),
         lambda *a: stamp("workers started"))
    def name(records) -> str:
        return f"{records[0].label} seed {records[0].seed}"
    wrap(actlab.workers, "train_group", lambda records, *a: stamp(f"training {name(records)}"),
         lambda records, *a: stamp(f"trained {name(records)}"))
    wrap(actlab.experiment, "run_tasks", lambda *a: None, lambda *a: stamp("every worker has ended"))
    wrap(actlab.experiment, "atomic_write", lambda path, *a: str(path).endswith("environment.json")
         and stamp("environment.json written (at the end: the report's modules are imported)"))
    with tempfile.TemporaryDirectory() as folder:
        config = actlab.resolve_config(preset=args.preset, overrides={
            "seeds": list(range(args.seeds)), "out": f"{folder}/run", "device": "cpu"})
        START[0] = time.time()
        stamp("run starts")
        actlab.run(config, show_progress=False, log=lambda line: stamp("saved: " + line))
        stamp("run ends (report written)")


if __name__ == "__main__":
    main()
