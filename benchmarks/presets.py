"""Run the four reference presets with default settings and print the figures docs/presets.md quotes.

    python benchmarks/presets.py > /tmp/presets.md

Each preset runs as `actlab run --preset NAME` would (seed 0, this machine's defaults); the tables
are printed from the runs' results, so the documentation quotes measured numbers only.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import actlab
from actlab.presets import PRESETS


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for name in PRESETS:
            config = actlab.resolve_config(preset=name, overrides={"out": str(Path(tmp) / name)})
            start = time.perf_counter()
            results = actlab.run(config, show_progress=False, log=lambda line: None)
            seconds = time.perf_counter() - start
            env = results.environment
            print(f"## {name}: {seconds:.1f} s wall ({env['device']}, {env['workers']} workers × "
                  f"{env['threads_per_worker']} threads, torch {env['torch']})\n")
            print("| activation | final test acc | final test loss | best epoch | best-val checkpoint test acc |"
                  " test acc per epoch |")
            print("| --- | --- | --- | --- | --- | --- |")
            for run in results.runs:
                best = f"{100 * run.best_test_acc:.2f}%" if run.best_test_acc is not None else "–"
                curve = " ".join(f"{100 * row['test_acc']:.2f}" for row in run.epochs)
                print(f"| {run.label} | {100 * run.final_test_acc:.2f}% | {run.final_test_loss:.4f} | "
                      f"{run.best_epoch or '–'} | {best} | {curve if len(run.epochs) <= 10 else '…'} |")
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
