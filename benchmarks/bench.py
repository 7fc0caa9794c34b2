"""Benchmark: actlab against the per-sample DataLoader pipeline of the original write-ups.

    python benchmarks/bench.py                                   # both CPU presets, 1 seed
    python benchmarks/bench.py --preset mnist-classic-four --seeds 1 5 --json out.json

In one process, on the same machine, for each preset and seed count it times
  (a) the write-ups' pipeline: a torchvision-style Dataset returning one PIL image at a time,
      converted to a float tensor per sample (as `ToTensor` does), batched by the default
      `DataLoader`, the same model and optimizer. A full run takes minutes, so by default
      `--dataloader-epochs` (1) epoch of one model is measured and scaled to the preset's
      models × epochs; the per-epoch cost is the data pipeline's, whatever the activation;
  (b) `actlab.run` on the preset, end to end (data load, training, evaluation, files, plots);
and prints seconds, models·epochs per second and the ratio a/b. Figures go to the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import actlab
from actlab.activations import parse_activation
from actlab.data import load_dataset
from actlab.models import build_mlp


class PerSampleDataset(torch.utils.data.Dataset):
    """What torchvision's MNIST dataset does per item: uint8 array → PIL image → float tensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(1, 28, 28).float().div(255)
        return x, int(self.labels[i])


def dataloader_seconds_per_epoch(config: actlab.Config, dataset, epochs: int) -> float:
    """Seconds per model-epoch of the original pipeline (training + the per-epoch test pass)."""
    train = PerSampleDataset(dataset.train.images.view(-1, 28, 28).numpy(), dataset.train.labels.numpy())
    test = PerSampleDataset(dataset.test.images.view(-1, 28, 28).numpy(), dataset.test.labels.numpy())
    o = config.optim
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), build_mlp(784, config.model.hidden,
                                                  parse_activation(config.model.activations[0])))
    optimizer = (torch.optim.Adam(model.parameters(), lr=o.lr) if o.optimizer == "adam"
                 else torch.optim.SGD(model.parameters(), lr=o.lr))
    train_loader = torch.utils.data.DataLoader(train, batch_size=o.batch_size, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test, batch_size=1000)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in test_loader:
                model(x)
    return (time.perf_counter() - start) / epochs


def actlab_seconds(config: actlab.Config) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = actlab.config.replace(config, out=str(Path(tmp) / "run"))
        start = time.perf_counter()
        actlab.run(config, show_progress=False, log=lambda line: None)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", nargs="+", default=["mnist-classic-four", "fashion-relu-family"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataloader-epochs", type=int, default=1,
                        help="epochs of the per-sample pipeline actually measured (default 1)")
    parser.add_argument("--json", default=None, help="write the figures here (default benchmarks/results/)")
    args = parser.parse_args(argv)

    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{platform.processor() or platform.machine()}")
    for preset in args.preset:
        base = actlab.resolve_config(preset=preset, overrides={"device": args.device})
        dataset = load_dataset(base.data.dataset, Path(base.data.data_dir) if base.data.data_dir else None)
        per_epoch = dataloader_seconds_per_epoch(base, dataset, args.dataloader_epochs)
        for seeds in args.seeds:
            config = actlab.config.replace(base, seeds=seeds)
            model_epochs = len(config.variants) * seeds * config.optim.epochs
            a = per_epoch * model_epochs
            b = actlab_seconds(config)
            row = {"preset": preset, "seeds": seeds, "device": args.device, "model_epochs": model_epochs,
                   "dataloader_s_per_model_epoch": per_epoch, "dataloader_s": a, "actlab_s": b,
                   "dataloader_model_epochs_per_s": model_epochs / a, "actlab_model_epochs_per_s": model_epochs / b,
                   "speedup_vs_dataloader": a / b}
            rows.append(row)
            print(f"{preset:22s} seeds={seeds}  per-sample DataLoader {a:8.1f} s "
                  f"({per_epoch:.2f} s/model-epoch, measured over {args.dataloader_epochs} epoch(s))  "
                  f"actlab {b:7.1f} s ({model_epochs / b:.2f} model-epochs/s)  a/b = {a / b:.1f}x")
            sys.stdout.flush()
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "platform": platform.platform(), "actlab": actlab.__version__}
    out.write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
