"""CNN benchmark: actlab's per model-epoch time for the cnn family against a plain PyTorch loop of
the same network, measured side by side in one process on one core.

    python benchmarks/cnn.py                          # LeNet-5 (conv 6,16, dense 120,84), relu, 20,000 images
    python benchmarks/cnn.py --activation tanh --examples 60000 --repeats 3

Each round times, one after another on the same data tensors:
- **actlab**: `train_model` for one epoch (a `ConvStack` of one model, actlab's Adam), training
  steps only, as `metrics.csv` records them;
- **plain loop**: the same `nn.Sequential`, `torch.optim.Adam`, batches sliced from the same tensors
  by a seeded permutation (the loop a careful user writes, without a DataLoader);
- **plain loop, channels-last**: the same with the images and weights in channels-last memory
  format (whether it helps on this CPU);
- **stacked**: `--stack-models` models (default 6, the preset's activations) trained as one
  `ConvStack` for one epoch, per model.
It prints the best of `--repeats` rounds for each, and the ratios.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

import actlab
from actlab.data import load_dataset
from actlab.device_data import prepare_data
from actlab.results import ModelRun
from actlab.train import build_model, train_group

ACTIVATIONS = ["relu", "leaky_relu:0.01", "elu", "selu", "tanh", "sigmoid"]


def actlab_epoch(config, data, activation: str) -> float:
    record = ModelRun(activation, activation, "logits", 0)
    train_group([record], {0: data}, config, torch.device("cpu"))
    return record.epochs[0]["seconds"]


def plain_epoch(config, data, activation: str, channels_last: bool) -> float:
    model = build_model(ModelRun(activation, activation, "logits", 0), config, 784, torch.device("cpu"))
    x = data.x_train
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.view(-1, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        model = torch.nn.Sequential(*list(model)[1:])  # the images are already 1×28×28
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    size = config.optim.batch_size
    start = time.perf_counter()
    for i in range(0, len(x), size):
        idx = perm[i:i + size]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), data.y_train[idx]).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack-models", type=int, default=len(ACTIVATIONS))
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = actlab.resolve_config(preset="mnist-lenet-activations", overrides={
        "epochs": 1, "train_subset": args.examples, "test_subset": 1000, "diagnostics": False,
        **({"data_dir": args.data_dir} if args.data_dir else {})})
    dataset = load_dataset("mnist", config.data.data_dir, download=False)
    data = prepare_data(dataset, config, 0, torch.device("cpu"))
    stack_acts = (ACTIVATIONS * args.stack_models)[:args.stack_models]
    times: dict[str, list[float]] = {"actlab": [], "plain loop": [], "plain loop, channels-last": [],
                                     "stacked, per model": []}
    for _ in range(args.repeats):
        times["actlab"].append(actlab_epoch(config, data, args.activation))
        times["plain loop"].append(plain_epoch(config, data, args.activation, False))
        times["plain loop, channels-last"].append(plain_epoch(config, data, args.activation, True))
        records = [ModelRun(a, a, "logits", 0) for a in stack_acts]
        train_group(records, {0: data}, config, torch.device("cpu"))
        times["stacked, per model"].append(records[0].epochs[0]["seconds"])  # each record: its share of the pass
    print(f"LeNet-5 (conv 6,16, dense 120,84), {args.activation}, {args.examples:,} images, batch "
          f"{config.optim.batch_size}, one thread, torch {torch.__version__}; best of {args.repeats} (s per model-epoch)")
    best = {name: min(values) for name, values in times.items()}
    for name, value in best.items():
        print(f"  {name:28s} {value:7.2f} s   (all: {', '.join(f'{v:.2f}' for v in times[name])})")
    print(f"  plain loop / actlab: {best['plain loop'] / best['actlab']:.2f}×;  channels-last / plain: "
          f"{best['plain loop, channels-last'] / best['plain loop']:.2f}×;  stacked / alone: "
          f"{best['stacked, per model'] / best['actlab']:.2f}×")


if __name__ == "__main__":
    main()
