"""Benchmark: actlab against the per-sample DataLoader pipeline of the original write-ups.

    python benchmarks/bench.py                                   # both CPU presets, 1 seed
    python benchmarks/bench.py --preset mnist-classic-four --seeds 1 5 --json out.json
    python benchmarks/bench.py --preset mnist-classic-four --seeds 1 --repeats 5   # median and range

In one process, on the same machine, for each preset and seed count it times
  (a) the write-ups' pipeline: a torchvision-style Dataset returning one PIL image at a time,
      converted to a float tensor per sample (as `ToTensor` does), batched by the default
      `DataLoader`, the same model and optimizer. A full run takes minutes, so by default
      `--dataloader-epochs` (1) epoch of one model is measured and scaled to the preset's
      models × epochs; the per-epoch cost is the data pipeline's, whatever the activation;
  (b) `actlab.run` on the preset, end to end (data load, training, evaluation, files, plots);
  (c) the floor, measured in the same run: the experiment's matmul FLOPs (forward and backward of
      every training step, the per-epoch evaluation passes, and the diagnostics' forward and backward
      passes on their 2,000 images at init and after each epoch) at the sustained fp32 GEMM rate of
      this machine (a large square matmul), plus the optimizer's state traffic (bytes per parameter
      per step) at the measured memory bandwidth (a large copy). Both rates are measured just
      before and just after (b), and the floor uses the mean of the two: on a shared machine one
      measurement taken beside the run says less about the minutes the run took;
and (d) the peer a user would pick instead, scikit-learn's MLPClassifier: the same architecture,
optimizer, learning rate, batch size and training data, `--peer-epochs` epochs with all of this
process's threads, measured before and after (b) like the floor's rates, the mean of the two
(scikit-learn is the optional `bench` extra: pip install -e '.[bench]'). It prints seconds,
models·epochs per second, the ratios a/b (speed-up over the DataLoader pipeline), b/c (distance
from the floor) and d/b per model-epoch (speed-up over scikit-learn), with the CPU's flags (AVX2 /
AVX-512 / bf16): the machines differ. Beside d/b it prints d against actlab's training alone: the
seconds the workers spent in training epochs (each model's `train_seconds`), shared over the
workers, per model-epoch, without the evaluation, diagnostics, start-up, files and report that
(b) includes and scikit-learn's epochs do not. Every figure goes to a JSON file.

On a shared machine one measurement says little: the GEMM rate, actlab's time and scikit-learn's
each move by tens of percent from minute to minute. `--repeats N` measures the floor's rates, (b)
and (d) N times, one after another, and prints the median of each ratio with its range.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
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
from actlab.diagnostics import DIAGNOSTIC_EXAMPLES
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


SKLEARN_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic", "none": "identity"}


def sklearn_seconds_per_epoch(config: actlab.Config, dataset, epochs: int) -> float | None:
    """Seconds per epoch of scikit-learn's MLPClassifier on the preset's architecture and training
    data (its first activation where scikit-learn has it, else relu: the cost is the arithmetic), or
    None without scikit-learn or for a model it cannot express."""
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    o = config.optim
    if not config.model.hidden or o.optimizer not in ("adam", "sgd"):
        return None
    x = dataset.train.images.numpy().astype(np.float32) / 255
    y = dataset.train.labels.numpy()
    model = MLPClassifier(hidden_layer_sizes=config.model.hidden, solver=o.optimizer, batch_size=o.batch_size,
                          activation=SKLEARN_ACTIVATIONS.get(config.model.activations[0].split(":")[0], "relu"),
                          learning_rate_init=o.lr, momentum=o.momentum, nesterovs_momentum=False, alpha=0.0,
                          max_iter=epochs, tol=0.0, n_iter_no_change=10 ** 9, shuffle=True, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(x, y)
    return (time.perf_counter() - start) / epochs


def cpu_flags_text() -> str:
    from actlab.device_data import SPEED_FLAGS, cpu_flags

    flags = [f for f in SPEED_FLAGS if f in cpu_flags()]
    bf16 = "native bf16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "no native bf16"
    return f"CPU flags: {' '.join(flags) or 'unknown'} ({bf16})"


def actlab_seconds(config: actlab.Config) -> tuple[float, dict, float]:
    """(b): the run's wall seconds, its environment, and the seconds its workers spent in training
    epochs (every model's `train_seconds`: the steps, without evaluation, diagnostics or files)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = actlab.config.replace(config, out=str(Path(tmp) / "run"))
        start = time.perf_counter()
        results = actlab.run(config, show_progress=False, log=lambda line: None)
        return time.perf_counter() - start, results.environment, sum(r.train_seconds for r in results.runs)


def _peak(env: dict) -> str:
    if env.get("peak_gpu_memory_mb") is not None:
        return f"{env['peak_gpu_memory_mb']:.0f} MiB GPU"
    return f"{env.get('peak_memory_mb', 0):.0f} MiB + {env.get('peak_worker_memory_mb', 0):.0f} MiB per worker"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_flops_per_second(device: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """Sustained fp32 matmul rate on large square matrices, all of this process's threads."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
        _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def memory_bytes_per_second(device: torch.device, mbytes: int = 256, seconds: float = 1.0) -> float:
    """Copy bandwidth of a large tensor (a copy reads and writes each byte: 2 × size moved)."""
    src = torch.ones(mbytes * 2 ** 20 // 4, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dst.copy_(src)
        reps += 1
        _sync(device)
    return 2 * src.numel() * 4 * reps / (time.perf_counter() - start)


OPTIMIZER_BYTES = {"adam": 28, "adamw": 28, "sgd": 12, "sgd+momentum": 20}  # fp32: read p, g, state; write p, state


def floor_seconds(config: actlab.Config, n_train: int, n_test: int, flops: float, bandwidth: float) -> dict:
    """The experiment's arithmetic at `flops` FLOP/s plus its optimizer traffic at `bandwidth` B/s."""
    sizes = [784, *config.model.hidden, 10]
    layers = list(zip(sizes[:-1], sizes[1:]))
    mac = sum(i * o for i, o in layers)  # multiply-adds per example, forward
    n_val = config.data.val_split if isinstance(config.data.val_split, int) else round(config.data.val_split * n_train)
    n_fit = (n_train - n_val) if not config.data.train_subset else min(config.data.train_subset, n_train - n_val)
    # forward 2·mac, weight gradients 2·mac, input gradients 2·mac except the first layer's
    pass_flops = 2 * mac + 2 * mac + 2 * (mac - layers[0][0] * layers[0][1])  # per example
    eval_flops = (n_test + n_val) * 2 * mac
    models = len(config.variants) * len(config.run.seeds)
    epochs = config.optim.epochs
    # the diagnostics: the same forward and backward products on their fixed batch, at initialisation,
    # after every epoch and for the best-validation checkpoint; that checkpoint's test pass besides
    diagnostics = (1 + epochs + bool(n_val)) * min(DIAGNOSTIC_EXAMPLES, n_fit) * pass_flops if config.run.diagnostics else 0
    total_flops = models * (epochs * (n_fit * pass_flops + eval_flops) + diagnostics + bool(n_val) * n_test * 2 * mac)
    params = sum(i * o + o for i, o in layers)
    steps = -(-n_fit // config.optim.batch_size)
    kind = config.optim.optimizer if config.optim.optimizer != "sgd" or not config.optim.momentum else "sgd+momentum"
    traffic = models * epochs * steps * params * OPTIMIZER_BYTES[kind]
    return {"flops": total_flops, "optimizer_bytes": traffic, "compute_s": total_flops / flops,
            "memory_s": traffic / bandwidth, "floor_s": total_flops / flops + traffic / bandwidth}


def machine_rates(device: torch.device, config: actlab.Config, dataset,
                  peer_epochs: int) -> tuple[float, float, float | None]:
    """(c)'s GEMM rate and copy bandwidth, and (d)'s seconds per epoch (None when skipped), measured now."""
    peer = sklearn_seconds_per_epoch(config, dataset, peer_epochs) if peer_epochs else None
    return gemm_flops_per_second(device), memory_bytes_per_second(device), peer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", nargs="+", default=["mnist-classic-four", "fashion-relu-family"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataloader-epochs", type=int, default=1,
                        help="epochs of the per-sample pipeline actually measured (default 1)")
    parser.add_argument("--peer-epochs", type=int, default=2,
                        help="epochs of scikit-learn's MLPClassifier measured (default 2; 0 = skip)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="times to measure (b), (c) and (d), one after another, for the median ratio and its "
                             "range (default 1)")
    parser.add_argument("--json", default=None, help="write the figures here (default benchmarks/results/)")
    args = parser.parse_args(argv)

    rows = []
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"{platform.processor() or platform.machine()}; {cpu_flags_text()}")
    for preset in args.preset:
        base = actlab.resolve_config(preset=preset, overrides={"device": args.device})
        dataset = load_dataset(base.data.dataset, Path(base.data.data_dir) if base.data.data_dir else None)
        per_epoch = dataloader_seconds_per_epoch(base, dataset, args.dataloader_epochs)
        for seeds in args.seeds:
            config = actlab.config.replace(base, seeds=seeds)
            model_epochs = len(config.variants) * seeds * config.optim.epochs
            a = per_epoch * model_epochs
            repeats = []
            for repeat in range(1, args.repeats + 1):  # the floor's rates, actlab and the peer side by side
                gc.collect()
                before = machine_rates(device, base, dataset, args.peer_epochs)
                b, env, epoch_seconds = actlab_seconds(config)
                gc.collect()  # the full collection `run` leaves for later (about 0.13 s) lands here, not in (d)
                after = machine_rates(device, base, dataset, args.peer_epochs)
                flops, bandwidth = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
                peer = (before[2] + after[2]) / 2 if before[2] and after[2] else None
                c = floor_seconds(config, len(dataset.train), len(dataset.test), flops, bandwidth)
                steps_per_model_epoch = epoch_seconds / (env.get("workers") or 1) / model_epochs
                row = {"preset": preset, "seeds": seeds, "repeat": repeat, "device": args.device,
                       "model_epochs": model_epochs, "gemm_flops_per_s": flops, "copy_bytes_per_s": bandwidth,
                       "gemm_flops_per_s_before_after": [before[0], after[0]],
                       "copy_bytes_per_s_before_after": [before[1], after[1]],
                       "sklearn_s_per_epoch_before_after": [before[2], after[2]],
                       "dataloader_s_per_model_epoch": per_epoch, "dataloader_s": a, "actlab_s": b, **c,
                       "dataloader_model_epochs_per_s": model_epochs / a, "actlab_model_epochs_per_s": model_epochs / b,
                       "a_over_b": a / b, "b_over_c": b / c["floor_s"], "workers": env.get("workers"),
                       "sklearn_s_per_epoch": peer, "actlab_s_per_model_epoch": b / model_epochs,
                       "d_over_b_per_model_epoch": peer / (b / model_epochs) if peer else None,
                       # training alone: the workers' epoch seconds shared over the workers, per model-epoch
                       "actlab_training_s_per_model_epoch": steps_per_model_epoch,
                       "d_over_training_per_model_epoch": peer / steps_per_model_epoch if peer else None,
                       "peak_memory_mb": env.get("peak_memory_mb"),
                       "peak_worker_memory_mb": env.get("peak_worker_memory_mb"),
                       "peak_gpu_memory_mb": env.get("peak_gpu_memory_mb")}
                repeats.append(row)
                print(f"{preset:22s} seeds={seeds}" + (f" #{repeat}" if args.repeats > 1 else "") +
                      f"  fp32 GEMM {flops / 1e9:.0f} GFLOP/s ({before[0] / 1e9:.0f} before (b), "
                      f"{after[0] / 1e9:.0f} after), copy {bandwidth / 1e9:.1f} GB/s ({before[1] / 1e9:.1f}, "
                      f"{after[1] / 1e9:.1f})  (a) per-sample "
                      f"DataLoader {a:7.1f} s ({per_epoch:.2f} s/model-epoch, {args.dataloader_epochs} epoch "
                      f"measured)  "
                      f"(b) actlab {b:6.1f} s ({model_epochs / b:.2f} model-epochs/s, {env.get('workers')} workers, "
                      f"peak memory {_peak(env)})  (c) floor {c['floor_s']:6.1f} s ({c['compute_s']:.1f} compute + "
                      f"{c['memory_s']:.1f} optimizer traffic)  a/b = {a / b:.1f}x  b/c = {b / c['floor_s']:.2f}" + (
                          f"  (d) scikit-learn MLPClassifier {peer:.2f} s/epoch ({before[2]:.2f}, {after[2]:.2f}), "
                          f"actlab {b / model_epochs:.2f} s per model-epoch: d/b = {peer / (b / model_epochs):.1f}x; "
                          f"training alone {steps_per_model_epoch:.2f} s per model-epoch "
                          f"({epoch_seconds:.1f} worker-seconds of epochs): {peer / steps_per_model_epoch:.1f}x"
                          if peer else ""))
                sys.stdout.flush()
            rows += repeats
            if args.repeats > 1:
                print(f"{preset:22s} seeds={seeds}  median of {args.repeats}: " + ",  ".join(
                    f"{name} {_median_range([r[key] for r in repeats if r[key] is not None], unit)}"
                    for name, key, unit in (("(b)", "actlab_s", " s"), ("b/c", "b_over_c", ""),
                                            ("d/b", "d_over_b_per_model_epoch", "x"),
                                            ("d/training alone", "d_over_training_per_model_epoch", "x"))
                    if any(r[key] is not None for r in repeats)))
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "cpu_flags": cpu_flags_text(), "platform": platform.platform(), "actlab": actlab.__version__}
    out.write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def _median_range(values: list[float], unit: str) -> str:
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    raise SystemExit(main())
