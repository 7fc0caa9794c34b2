"""Training-step benchmark: autograd against actlab's hand-written backward pass, one core.

    python benchmarks/steps.py                     # both CPU presets, relu, 1 thread
    python benchmarks/steps.py --preset mnist-classic-four --activation tanh --threads 2

For each preset it trains one model for one epoch in this process, once with `backprop =
"autograd"` and once with `backprop = "auto"` (the hand-written pass, see actlab/backprop.py; both
step the same optimizer, actlab/optimizers.py), interleaved and repeated, and prints the best epoch
time of each (training steps only, as `metrics.csv` records them), their ratio, and whether the two
gave the same test accuracy and loss. `--breakdown` also times the parts of one epoch's hand-written
steps: the batch gather, the forward and backward pass, and the optimizer step; then, best of 15
rounds on one batch, the pass's matrix products alone, and the general step against the
straight-line one that a single model without dropout takes (`hand_step(..., straight_line=False)`),
interleaved; and one evaluation of the test split in chunks of 10,000 against 1,000 examples
(`eval_batch_size`), interleaved.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

import actlab
from actlab.backprop import hand_step
from actlab.data import load_dataset
from actlab.device_data import prepare_data
from actlab.models import ModelStack
from actlab.optimizers import FlatOptimizer
from actlab.results import ModelRun
from actlab.train import build_model, epoch_steps, evaluate, train_model


def epoch_seconds(config: actlab.Config, dataset, activation: str) -> tuple[float, dict]:
    device = torch.device("cpu")
    data = prepare_data(dataset, config, 0, device)
    record = ModelRun(activation, activation, "logits", 0)
    train_model(record, data, config, device)
    return record.epochs[0]["seconds"], record.epochs[0]


def step_breakdown(config: actlab.Config, dataset, activation: str) -> dict[str, float]:
    """Milliseconds per step of each part of one epoch of hand-written steps (the CPU runs
    synchronously, so timers around each part measure it)."""
    device = torch.device("cpu")
    data = prepare_data(dataset, config, 0, device)
    parts = {"gather": 0.0, "forward+backward": 0.0, "optimizer step": 0.0}
    steps, _ = epoch_steps(len(data.y_train), config.optim)
    model = build_model(ModelRun(activation, activation, "logits", 0), config, data.x_train.shape[1], device)
    stack = ModelStack([model], [0], [torch.Generator().manual_seed(0)])
    optimizer = FlatOptimizer(stack.flat, config.optim)
    step = hand_step(stack)
    perm = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(0))
    size = config.optim.batch_size
    for i in range(steps):
        t0 = time.perf_counter()
        idx = perm[i * size:(i + 1) * size]
        x, y = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)
        t1 = time.perf_counter()
        step([x], y, stack.dropout_noise(len(idx)))
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        parts["gather"] += t1 - t0
        parts["forward+backward"] += t2 - t1
        parts["optimizer step"] += t3 - t2
    parts = {k: 1000 * v / steps for k, v in parts.items()}
    x, y = data.x_train[:size], data.y_train[:size]
    parts["matrix products alone"] = 1000 * _matmul_seconds(stack, x)
    if hand_step(stack).__qualname__ == hand_step(stack, straight_line=False).__qualname__:
        return parts  # this model takes the general step: no straight-line step to compare
    best = {"general step": math.inf, "straight-line step": math.inf}
    for _ in range(15):  # the two forward+backward functions interleaved, best of 15 × 300 steps
        for name, straight in (("general step", False), ("straight-line step", True)):
            one = hand_step(stack, straight_line=straight)
            start = time.perf_counter()
            for _ in range(300):
                one([x], y, stack.dropout_noise(size))
            best[name] = min(best[name], (time.perf_counter() - start) / 300 * 1000)
    return {**parts, **best}


def evaluation_ms(model, x: torch.Tensor, y: torch.Tensor, chunks=(10000, 1000), rounds: int = 15) -> dict[int, float]:
    """Median milliseconds of one evaluation of (x, y) (`actlab.train.evaluate`) per chunk size,
    the sizes interleaved round by round."""
    times: dict[int, list[float]] = {chunk: [] for chunk in chunks}
    for _ in range(rounds):
        for chunk in chunks:
            start = time.perf_counter()
            evaluate(model, x, y, torch.nn.functional.cross_entropy, chunk)
            times[chunk].append(1000 * (time.perf_counter() - start))
    return {chunk: statistics.median(t) for chunk, t in times.items()}


def _matmul_seconds(stack: ModelStack, x: torch.Tensor, rounds: int = 15, steps: int = 300) -> float:
    """Best seconds per step of a step's matrix products alone (forward, weight and input gradients),
    on tensors of the step's shapes."""
    weights, biases = stack.weights, stack.biases
    outputs = [torch.empty(len(x), w.shape[0]) for w in weights]
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            h = x
            for w, b, out in zip(weights, biases, outputs):
                h = torch.addmm(b, h, w.t(), out=out)
            ins = [x, *outputs[:-1]]
            g = outputs[-1]
            for depth in range(len(weights) - 1, -1, -1):
                torch.mm(g.t(), ins[depth], out=stack.weight_grads[depth])
                if depth:
                    g = g.mm(weights[depth])
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", nargs="+", default=["mnist-classic-four", "fashion-relu-family"])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="also time the parts of a step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), one epoch of one {args.activation} model")
    for preset in args.preset:
        base = actlab.resolve_config(preset=preset, overrides={"device": "cpu", "epochs": 1, "diagnostics": False,
                                                               "activations": [args.activation]})
        dataset = load_dataset(base.data.dataset, base.data.data_dir)
        best: dict[str, float] = {}
        rows: dict[str, dict] = {}
        for _ in range(args.repeats):
            for mode in ("autograd", "auto"):
                seconds, row = epoch_seconds(actlab.config.replace(base, backprop=mode), dataset, args.activation)
                best[mode] = min(best.get(mode, seconds), seconds)
                rows[mode] = row
        same = all(rows["auto"][k] == rows["autograd"][k] for k in ("test_acc", "test_loss", "train_loss"))
        print(f"{preset:22s} autograd {best['autograd']:.3f} s/epoch  hand-written {best['auto']:.3f} s/epoch  "
              f"speed-up {best['autograd'] / best['auto']:.2f}x  identical metrics: {same}")
        if args.breakdown:
            parts = step_breakdown(base, dataset, args.activation)
            print(" " * 23 + "ms per hand-written step: " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))
            data = prepare_data(dataset, base, 0, torch.device("cpu"))
            model = build_model(ModelRun(args.activation, args.activation, "logits", 0), base, data.x_train.shape[1],
                                torch.device("cpu"))
            print(" " * 23 + "ms per test evaluation (median of 15, interleaved): " + ", ".join(
                f"chunks of {chunk} {ms:.1f}" for chunk, ms in evaluation_ms(model, data.x_test, data.y_test).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
