"""Wall time of one `actlab.run` of a preset, end to end, for comparing two actlab trees on one machine.

    python benchmarks/end_to_end.py mnist-classic-four 1                            # this tree
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/end_to_end.py mnist-classic-four 1

The run goes to a temporary folder on the CPU, without progress bars; the data comes from
ACTLAB_DATA_DIR (or is downloaded). Run the trees alternately, several times: runs of one tree vary
by seconds on a shared machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import actlab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("seeds", type=int)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = actlab.resolve_config(preset=args.preset, overrides={
            "seeds": list(range(args.seeds)), "out": f"{folder}/run", "device": "cpu"})
        start = time.perf_counter()
        actlab.run(config, show_progress=False, log=lambda line: None)
        seconds = time.perf_counter() - start
    print(f"{actlab.__file__.split('/src/')[0]}: {args.preset}, {args.seeds} seed(s): {seconds:.1f} s")


if __name__ == "__main__":
    main()
