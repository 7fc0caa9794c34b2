"""The `actlab` command: a thin layer over the Python API.

    actlab run --preset mnist-classic-four            # train, write runs/<name>-<time>/, print a table
    actlab run --config my.toml --seeds 5 --lr 3e-3   # preset < file < flags
    actlab show runs/mnist-classic-four-...           # reprint a run's table
    actlab report runs/mnist-classic-four-...         # rebuild its statistics and report
    actlab presets | activations | plot-activations sigmoid,tanh,relu
    actlab data fetch|verify|info [mnist fashion-mnist]

Problems the user can fix end in one `actlab: error: ...` line and exit code 1; Ctrl-C exits 130
after saying where the finished models are.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from actlab.errors import ActlabError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, like every other actlab error."""

    def error(self, message: str):
        self.exit(2, f"actlab: error: {message} (see `{self.prog} --help`)\n")


def _add_experiment_flags(parser: argparse.ArgumentParser) -> None:
    from actlab.config import KEYS

    group = parser.add_argument_group("experiment (override the preset and the --config file)")
    for key, spec in KEYS.items():
        flag = "--" + key.replace("_", "-")
        kwargs = dict(dest=key, default=argparse.SUPPRESS, help=spec.help, metavar=spec.metavar)
        if spec.from_text.__name__ == "_text_bool":
            kwargs.update(nargs="?", const="true")
        group.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from actlab import __version__

    parser = _Parser(prog="actlab", description="Run, reproduce and explain activation-function "
                                                "experiments on MNIST and Fashion-MNIST.")
    parser.add_argument("--version", action="version", version=f"actlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="train the activations of a preset, a TOML file or flags",
                         description="Train every activation under every seed; write a run folder "
                                     "and print a summary table. Precedence: preset < --config < flags.")
    run.add_argument("--preset", help="start from a named preset (see `actlab presets`)")
    run.add_argument("--config", help="TOML file with an [experiment] table")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no per-model lines")
    _add_experiment_flags(run)

    show = sub.add_parser("show", help="reprint the summary table of a run folder")
    show.add_argument("run_dir", metavar="RUN")

    report = sub.add_parser("report", help="rebuild stats.json, the plots and report.md/.html of a run folder")
    report.add_argument("run_dir", metavar="RUN")

    sub.add_parser("presets", help="list the presets")
    sub.add_parser("activations", help="list the registered activations")

    plot = sub.add_parser("plot-activations", help="plot activations and their derivatives to a PNG")
    plot.add_argument("names", nargs="?", default="sigmoid,tanh,relu",
                      help="comma-separated activations (default: sigmoid,tanh,relu)")
    plot.add_argument("--range", default="-10,10", help="x range as LO,HI (default -10,10)")
    plot.add_argument("--out", default="activations.png", help="PNG file (default activations.png)")

    data = sub.add_parser("data", help="fetch, verify or describe the data sets")
    data.add_argument("action", choices=("fetch", "verify", "info"))
    data.add_argument("datasets", nargs="*", default=["mnist", "fashion-mnist"], metavar="DATASET")
    data.add_argument("--data-dir", default=None, help="folder with the IDX files (default $ACTLAB_DATA_DIR)")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from actlab.config import KEYS, resolve_config
    from actlab.experiment import run

    overrides = {key: getattr(args, key) for key in KEYS if hasattr(args, key)}
    config = resolve_config(preset=args.preset, file=args.config, overrides=overrides)
    log = (lambda line: None) if args.quiet else None
    show_progress = False if args.quiet else None
    try:
        results = run(config, show_progress=show_progress, log=log)
    except KeyboardInterrupt:
        print("actlab: interrupted; the models finished so far are saved in the run folder "
              "(see `actlab show` on it)", file=sys.stderr)
        return 130
    print(results.table())
    print(f"\nrun folder: {results.run_dir}  (report: {results.run_dir / 'report.html'})")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from actlab.results import load_results

    results = load_results(args.run_dir)
    config = results.config
    print(f"{config.get('name')}: {config.get('dataset')}, hidden {config.get('hidden')}, "
          f"{config.get('optimizer')} lr {config.get('lr')}, batch {config.get('batch_size')}, "
          f"{config.get('epochs')} epochs")
    print(results.table())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from actlab.report import rebuild

    md, html = rebuild(args.run_dir)
    print(f"wrote {md}\nwrote {html}")
    return 0


def _cmd_presets() -> int:
    from actlab.presets import PRESETS

    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name.ljust(width)}  {preset.summary}")
    return 0


def _cmd_activations() -> int:
    from actlab.activations import ALIASES, list_activations

    rows = list_activations()
    width = max(len(name) for name, _ in rows)
    for name, summary in rows:
        print(f"{name.ljust(width)}  {summary}")
    print(f"\naliases: {', '.join(f'{a}={t}' for a, t in ALIASES.items())}")
    print("parameters go after a colon: leaky_relu:0.2, elu:alpha=0.5, hardtanh:-2,2; "
          "your own function or nn.Module class: package.module:name")
    return 0


def _cmd_plot_activations(args: argparse.Namespace) -> int:
    from actlab.activations import parse_activation, split_activation_list
    from actlab.plots import plot_activations

    try:
        lo, hi = (float(v) for v in args.range.split(","))
    except ValueError:
        raise ActlabError(f"--range {args.range!r}: give two numbers LO,HI, e.g. -10,10") from None
    if not lo < hi:
        raise ActlabError(f"--range {args.range!r}: LO must be below HI")
    specs = [parse_activation(name) for name in split_activation_list(args.names)]
    path = plot_activations(specs, Path(args.out), lo, hi)
    print(f"wrote {path}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from actlab import data

    data_dir = args.data_dir or os.environ.get("ACTLAB_DATA_DIR")
    data_dir = Path(data_dir).expanduser() if data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        raise ActlabError(f"data folder {data_dir} does not exist (from --data-dir or ACTLAB_DATA_DIR)")
    for name in args.datasets:
        info = data.dataset_info(name)
        if args.action == "fetch":
            folder = data.find_folder(info, data_dir, data.default_cache_dir())
            if folder is None:
                folder = data.fetch(info.name, show_progress=sys.stderr.isatty())
            print(f"{info.name}: {folder}")
            for line in data.verify(info.name, data_dir):
                print("  " + line)
        elif args.action == "verify":
            print(f"{info.name}:")
            for line in data.verify(info.name, data_dir):
                print("  " + line)
        else:
            ds = data.load_dataset(info.name, data_dir, download=False)
            counts = ds.train.labels.bincount(minlength=10).tolist()
            mean = ds.train.images.double().mean().item() / 255
            print(f"{info.title} ({ds.folder}): {len(ds.train)} train / {len(ds.test)} test images, "
                  f"28x28 uint8, mean train pixel {mean:.4f}")
            print(f"  train images per class: {dict(zip(info.classes, counts))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed in one line
        return int(exc.code or 0)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "show":
            return _cmd_show(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "presets":
            return _cmd_presets()
        if args.command == "activations":
            return _cmd_activations()
        if args.command == "plot-activations":
            return _cmd_plot_activations(args)
        if args.command == "data":
            return _cmd_data(args)
        parser.print_help()
        return 2
    except ActlabError as exc:
        print(f"actlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("actlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `actlab activations | head`: the reader left, which is fine
        sys.stderr.close()
        return 0
