"""Check that a change to actlab's code leaves the five presets' numbers as they were, bit for bit.

    python benchmarks/same_numbers.py --record benchmarks/preset-metrics.json   # before the change
    python benchmarks/same_numbers.py --check benchmarks/preset-metrics.json    # after it

Each preset runs as `actlab run --preset NAME` would on the CPU (seed 0, checkpoints off, data from
$ACTLAB_DATA_DIR or ../shared/datasets); its metrics.csv and diagnostics.csv, less the wall-clock
`seconds` column, are hashed (SHA-256). CPU training is deterministic, so any difference means the
change altered what is trained or measured. About 8 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import actlab
from actlab.presets import PRESETS

REPO = Path(__file__).resolve().parents[1]


def timeless(path: Path) -> str:
    """The CSV file's text without its wall-clock column (the only one that differs run to run)."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows:
        return ""
    columns = [c for c in rows[0] if c != "seconds"]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def preset_hashes(name: str, data_dir: str, out: Path) -> dict[str, str]:
    config = actlab.resolve_config(preset=name, overrides={"data_dir": data_dir, "out": str(out / name),
                                                           "device": "cpu", "checkpoints": False})
    results = actlab.run(config, show_progress=False, log=lambda line: None)
    return {file: hashlib.sha256(timeless(results.run_dir / file).encode()).hexdigest()
            for file in ("metrics.csv", "diagnostics.csv")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--record", type=Path, help="write the presets' hashes to this JSON file")
    what.add_argument("--check", type=Path, help="compare the presets' hashes with this JSON file")
    parser.add_argument("--presets", default=None,
                        help="comma-separated presets (default: those --check recorded, or all for --record)")
    args = parser.parse_args()
    data_dir = os.environ.get("ACTLAB_DATA_DIR") or str(REPO.parent / "shared" / "datasets")
    recorded = json.loads(args.check.read_text()) if args.check else {}
    hashes, differ = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        names = args.presets.split(",") if args.presets else list(recorded) if args.check else list(PRESETS)
        for name in names:
            hashes[name] = preset_hashes(name, data_dir, Path(tmp))
            same = recorded.get(name) == hashes[name]
            if args.check and not same:
                differ.append(name)
            print(f"{name}: {'same' if same else 'DIFFERENT' if args.check else 'recorded'} "
                  f"{' '.join(f'{k} {v[:12]}' for k, v in hashes[name].items())}", flush=True)
    if args.record:
        args.record.write_text(json.dumps(hashes, indent=1) + "\n")
    if differ:
        print(f"{len(differ)} preset(s) differ: {', '.join(differ)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
