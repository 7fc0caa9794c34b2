"""`actlab.run(config)`: train every activation under every seed, write the run folder and report.

The order of work is seeds outer, activations inner: each seed's data (validation split, subset,
batch order) is prepared once and shared by all its activations, which also start from the same
initial weights, so differences between activations within a seed are paired.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import sys
from pathlib import Path

import numpy as np
import torch

from actlab import __version__
from actlab.config import Config
from actlab.data import load_dataset
from actlab.errors import ActlabError
from actlab.report import build_report
from actlab.results import ModelRun, Results, atomic_write, write_results
from actlab.train import prepare_data, resolve_device, train_model


def environment(device: torch.device, config: Config) -> dict:
    """Versions, device and seeds, recorded in every run folder."""
    env = {
        "actlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "device": str(device), "cpu_threads": torch.get_num_threads(),
        "seeds": list(config.run.seeds), "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("actlab") else None,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def run_folder(config: Config) -> Path:
    if config.run.out is not None:
        folder = Path(config.run.out)
        if (folder / "results.json").exists():
            raise ActlabError(f"{folder} already holds a run (results.json); choose another --out "
                              f"or delete that folder")
        return folder
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path("runs") / f"{config.run.name}-{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = Path("runs") / f"{config.run.name}-{stamp}-{suffix}"
    return folder


def checkpoint_name(label: str, seed: int) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", label) + f"-seed{seed}.pt"


def run(config: Config, show_progress: bool | None = None, log=None) -> Results:
    """Train `config`'s activations × seeds and write the run folder; returns the `Results`.

    `show_progress` defaults to "stderr is a terminal"; `log` receives one line per finished model
    (default: stderr). On Ctrl-C the models finished so far are already on disk.
    """
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    device = resolve_device(config.run.device)
    data_dir = Path(config.data.data_dir).expanduser() if config.data.data_dir else None
    dataset = load_dataset(config.data.dataset, data_dir, download=config.data.download)
    folder = run_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    results = Results(folder, config.to_flat(), environment(device, config), [])
    results.environment["data_folder"] = str(dataset.folder)
    atomic_write(folder / "config.toml", config.to_toml())
    atomic_write(folder / "environment.json", json.dumps(results.environment, indent=1) + "\n")
    for seed in config.run.seeds:
        data = prepare_data(dataset, config, seed, device)
        for label, activation, output in config.variants:
            record = ModelRun(label, activation, output, seed)
            results.runs.append(record)
            try:
                model, best_state = train_model(record, data, config, device, show_progress)
            finally:
                write_results(results)
            if config.run.checkpoints:
                state = {"final": {k: v.cpu() for k, v in model.state_dict().items()},
                         "best_val": best_state and {k: v.cpu() for k, v in best_state.items()},
                         "label": label, "seed": seed, "best_epoch": record.best_epoch,
                         "config": results.config}
                path = folder / "checkpoints" / checkpoint_name(label, seed)
                path.parent.mkdir(exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save(state, tmp)
                os.replace(tmp, path)
            acc = record.final_test_acc
            log(f"{label} seed {seed}: {record.status}, test acc "
                f"{'–' if acc is None else f'{acc:.2%}'}, {record.train_seconds:.1f} s")
    build_report(results)
    return results
