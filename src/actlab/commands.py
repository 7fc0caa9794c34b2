"""The `actlab` commands besides run, show and report: a sweep store's runs, the data sets, the
presets and activations listed, and activation curves plotted. Each is a function of its parsed
arguments that returns the exit code (`actlab.cli.main` dispatches to them)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path

from actlab import data
from actlab.activations import ALIASES, list_activations, parse_activation, split_activation_list
from actlab.errors import ActlabError
from actlab.hypotheses import HYPOTHESES
from actlab.messages import LANGUAGES
from actlab.files import atomic_write
from actlab.presets import PRESETS
from actlab.store import RESULT_FIELDS, open_store


def where_filter(items: list[str]) -> dict[str, str]:
    """`--where KEY=VALUE` flags as a filter on a store's runs."""
    where = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ActlabError(f"--where {item!r}: write KEY=VALUE, e.g. --where hidden=512")
        where[key.strip().replace("-", "_")] = value.strip()
    return where


def cmd_runs(args: argparse.Namespace) -> int:
    """`actlab runs list|show|export DIR`."""
    with open_store(Path(args.store_dir)) as store:
        rows = store.rows(where_filter(args.where), args.status)
        if args.action == "show":
            return _show_run(store, args.run_hash)
        config_keys = sorted({k for r in rows for k in r["config"]})
        if args.action == "list":
            return _list_runs(rows, config_keys)
        return _export_runs(rows, config_keys, args.format, args.output)


def _show_run(store, run_hash: str | None) -> int:
    """`actlab runs show DIR HASH`: one run's record and its epochs."""
    if not run_hash:
        raise ActlabError("actlab runs show DIR HASH: give the run's hash (see `actlab runs list DIR`)")
    match = [r for r in store.rows() if r["hash"].startswith(run_hash)]
    if len(match) != 1:
        raise ActlabError(f"{len(match)} runs have a hash starting {run_hash!r}; give more of it")
    row = match[0]
    print(json.dumps({k: v for k, v in row.items()}, indent=1))
    for epoch in store.model_run(row).epochs:
        print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in epoch.items()
                               if v is not None))
    return 0


def _list_runs(rows: list[dict], config_keys: list[str]) -> int:
    """`actlab runs list DIR`: one line per run, with the config keys that vary between them."""
    varying = [k for k in config_keys if len({json.dumps(r["config"].get(k)) for r in rows}) > 1]
    header = ["hash", "status", "result", *varying, "final_test_acc", "best_test_acc"]
    table = [header] + [[r["hash"], r["status"], r["result"] or "", *(str(r["config"].get(k)) for k in varying),
                         f"{r['final_test_acc']:.4f}" if r["final_test_acc"] is not None else "",
                         f"{r['best_test_acc']:.4f}" if r["best_test_acc"] is not None else ""] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    print(f"({len(rows)} runs)")
    return 0


def _export_runs(rows: list[dict], config_keys: list[str], fmt: str, output: str | None) -> int:
    """`actlab runs export DIR`: every run as CSV or JSON lines, to a file or standard output."""
    records = [{"hash": r["hash"], "status": r["status"], "result": r["result"], "error": r["error"],
                **{k: r["config"].get(k) for k in config_keys}, **{f: r[f] for f in RESULT_FIELDS}} for r in rows]
    out = io.StringIO()
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=list(records[0]) if records else ["hash"], lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in record.items()})
    target = Path(output) if output else None
    try:
        plain = target is not None and not target.is_symlink() and (not target.exists() or target.is_file())
    except OSError:  # a folder on the way cannot be read: atomic_write says so in one line
        plain = True
    if plain:
        atomic_write(target, out.getvalue())  # a file: whole or not at all
    elif target is not None:  # /dev/stdout, a pipe, a FIFO: written to as it is
        try:
            with open(target, "w", newline="") as f:
                f.write(out.getvalue())
        except OSError as exc:
            raise ActlabError(f"--output {target}: cannot write ({exc.strerror or exc}); give a file path") from None
    else:
        sys.stdout.write(out.getvalue())
    return 0


def cmd_presets(lang: str = "en") -> int:
    """The presets with their one-line summaries, in `lang` where the catalogue has them."""
    if lang not in LANGUAGES:
        raise ActlabError(f"--lang {lang!r}: choose one of: {', '.join(LANGUAGES)}")
    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name.ljust(width)}  {preset.summary_in(lang)}")
    return 0


def cmd_hypotheses() -> int:
    """Each hypothesis --explain can test, and what it needs of a run."""
    width = max(map(len, HYPOTHESES))
    for name, h in HYPOTHESES.items():
        print(f"{name.ljust(width)}  {h.needs}")
    print("\nrun them with `actlab run … --explain` (or --explain NAME,NAME), or on a finished run with "
          "`actlab explain RUN`; docs/causes.md says what each tests and how its verdict reads")
    return 0


def cmd_activations() -> int:
    rows = list_activations()
    width = max(len(name) for name, _ in rows)
    for name, summary in rows:
        print(f"{name.ljust(width)}  {summary}")
    print(f"\naliases: {', '.join(f'{a}={t}' for a, t in ALIASES.items())}")
    print("parameters go after a colon: leaky_relu:0.2, elu:alpha=0.5, hardtanh:-2,2; "
          "your own function or nn.Module class: package.module:name")
    return 0


MAX_RANGE = 1e30  # float32 holds up to 3.4e38; the curves' steps must stay finite too


def cmd_plot_activations(args: argparse.Namespace) -> int:
    from actlab.plots import plot_activations  # matplotlib: only this command draws

    try:
        lo, hi = (float(v) for v in args.range.split(","))
    except ValueError:
        raise ActlabError(f"--range {args.range!r}: give two numbers LO,HI, e.g. -10,10") from None
    if not lo < hi:
        raise ActlabError(f"--range {args.range!r}: LO must be below HI")
    if not (abs(lo) <= MAX_RANGE and abs(hi) <= MAX_RANGE):  # also catches inf: the curves are float32
        raise ActlabError(f"--range {args.range!r}: give numbers within ±{MAX_RANGE:g}, e.g. -10,10")
    specs = [parse_activation(name) for name in split_activation_list(args.names)]
    if not specs:
        raise ActlabError("plot-activations: name at least one activation, e.g. actlab plot-activations relu,tanh")
    plot_activations(specs, Path(args.out), lo, hi)
    print(f"wrote {args.out}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or os.environ.get("ACTLAB_DATA_DIR")
    data_dir = Path(data_dir).expanduser() if data_dir else None
    mirror = data.check_mirror(args.data_mirror or os.environ.get("ACTLAB_DATA_MIRROR"))
    if data_dir is not None and not data_dir.is_dir():
        raise ActlabError(f"data folder {data_dir} does not exist (from --data-dir or ACTLAB_DATA_DIR)")
    for name in args.datasets:
        info = data.dataset_info(name)
        folder = data.find_folder(info, data_dir, data.default_cache_dir())
        if args.action == "fetch":
            print(f"{info.name}: {folder or data.fetch(info.name, mirror=mirror)}")
        elif args.action == "verify":
            print(f"{info.name}:")
        if args.action in ("fetch", "verify"):
            for line in data.verify(info.name, data_dir):
                print("  " + line)
            continue
        print(f"{info.title}: downloads from, in order: {', '.join(data.mirror_urls(info, mirror))}")
        if folder is None:
            looked = ", ".join(str(f) for f in data.candidate_folders(info, data_dir, data.default_cache_dir()))
            print(f"  not on this machine (looked in {looked}); `actlab data fetch {info.name}` downloads it")
            continue
        ds = data.load_dataset(info.name, data_dir, download=False)
        counts = ds.train.labels.bincount(minlength=10).tolist()
        mean = ds.train.images.double().mean().item() / 255
        print(f"  {ds.folder}: {len(ds.train)} train / {len(ds.test)} test images, 28x28 uint8, "
              f"mean train pixel {mean:.4f}")
        print(f"  train images per class: {dict(zip(info.classes, counts))}")
    return 0
