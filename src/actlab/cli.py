"""The `actlab` command: a thin layer over the Python API.

    actlab run --preset mnist-classic-four            # train, write runs/<name>-<time>/, print a table
    actlab run --config my.toml --seeds 5 --lr 3e-3   # preset < file < flags
    actlab show runs/mnist-classic-four-...           # reprint a run's table
    actlab report runs/mnist-classic-four-...         # rebuild its statistics and report
    actlab presets | activations | plot-activations sigmoid,tanh,relu
    actlab data fetch|verify|info [mnist fashion-mnist]
    actlab run --config sweep.toml --out DIR          # a [sweep] grid into DIR/results.db; rerun to resume
    actlab runs list|show|export DIR                  # the runs of a sweep store

Problems the user can fix end in one `actlab: error: ...` line and exit code 1; Ctrl-C (130) and
SIGTERM (143) end in one line saying where the finished models are and the command that resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from actlab.errors import ActlabError, Interrupted, Terminated, raise_terminated


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, like every other actlab error, and a flag is
    taken only as spelled: `--epoch 2` is an error, not a silent `--epochs 2`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        self.exit(2, f"actlab: error: {message} (see `{self.prog} --help`)\n")


def _add_experiment_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config key, grouped by section; the default shown is the field's own."""
    from actlab.config import KEYS, SECTIONS, flag_defaults

    defaults = flag_defaults()
    groups = {section: parser.add_argument_group(f"experiment: {section}", cls.__doc__)
              for section, cls in SECTIONS.items()}
    for key, spec in KEYS.items():
        flag = "--" + key.replace("_", "-")
        kwargs = dict(dest=key, default=argparse.SUPPRESS, metavar=spec.metavar,
                      help=f"{spec.help} (default: {defaults[key]})".replace("%", "%%"))
        if spec.bare is not None:
            kwargs.update(nargs="?", const=spec.bare)
        groups[spec.section].add_argument(flag, **kwargs)


def _add_run_command(sub) -> None:
    """`actlab run`: where the experiment comes from, sweeps and tuning, and one flag per config key."""
    run = sub.add_parser("run", help="train the activations of a preset, a TOML file or flags",
                         description="Train every activation under every seed; write a run folder "
                                     "and print a summary table. Precedence: preset < --config < flags.")
    run.add_argument("--preset", help="start from a named preset (see `actlab presets`)")
    run.add_argument("--config", help="TOML file with an [experiment] table")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no per-model lines")
    sweep = run.add_argument_group("sweeps (a [sweep] table in --config, or these flags; rerun to resume)")
    sweep.add_argument("--sweep", action="append", default=[], metavar="KEY=V1;V2",
                       help="sweep an [experiment] key over values, e.g. --sweep 'lr=0.001;0.003' (repeatable)")
    sweep.add_argument("--tune", action="append", default=[], metavar="KEY=V1;V2",
                       help="tune a hyper-parameter per activation on tuning seeds, by validation accuracy: "
                            "--tune 'lr=0.0003;0.001;0.003', --tune 'lr=log:1e-4:1e-1:7', or --tune lr for the "
                            "optimizer's default grid (repeatable; docs/tuning.md)")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local: worker processes here (default); ray: Ray tasks (pip install -e '.[ray]')")
    sweep.add_argument("--ray-address", default=None, metavar="ADDR",
                       help="an existing Ray cluster: auto or ray://host:port (default: a local Ray started here)")
    _add_experiment_flags(run)


def build_parser() -> argparse.ArgumentParser:
    from actlab import __version__
    from actlab.config import RunConfig

    parser = _Parser(prog="actlab", description="Run, reproduce and explain activation-function "
                                                "experiments on MNIST and Fashion-MNIST.")
    parser.add_argument("--version", action="version", version=f"actlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    _add_run_command(sub)

    show = sub.add_parser("show", help="reprint the summary table of a run folder")
    show.add_argument("run_dir", metavar="RUN")

    report = sub.add_parser("report", help="rebuild stats.json, the plots and report.md/.html of a run folder, "
                                           "or write one for (a subset of) a sweep store")
    report.add_argument("run_dir", metavar="RUN")
    report.add_argument("--ci", choices=("t", "bootstrap"), default=None,
                        help="confidence intervals: t (Student) or bootstrap (default: the run's setting, t)")
    report.add_argument("--lang", default="en", metavar="LANG",
                        help="the report's language: en (default, report.md) or zh (report.zh.md, plots/zh/)")
    report.add_argument("--equivalence-margin", type=float, default=None, metavar="POINTS",
                        help=f"equivalence margin in percentage points (default: the run's setting, "
                             f"{RunConfig.equivalence_margin:g})")
    report.add_argument("--docx", action="store_true", default=None,
                        help="also write the report as an editable Word document (report.docx; needs python-docx)")
    report.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="sweep stores: only runs whose config has KEY=VALUE, e.g. --where hidden=512 (repeatable)")

    _add_explain_commands(sub)
    runs = sub.add_parser("runs", help="list, show or export the runs of a sweep store")
    runs.add_argument("action", choices=("list", "show", "export"))
    runs.add_argument("store_dir", metavar="DIR")
    runs.add_argument("run_hash", nargs="?", metavar="HASH", help="show: the run's hash (a prefix will do)")
    runs.add_argument("--where", action="append", default=[], metavar="KEY=VALUE", help="filter by config value")
    runs.add_argument("--status", choices=("pending", "running", "done", "failed"), help="filter by status")
    runs.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="export format (default csv)")
    runs.add_argument("--output", metavar="FILE", help="export to FILE instead of standard output")

    presets = sub.add_parser("presets", help="list the presets")
    presets.add_argument("--lang", default="en", metavar="LANG", help="the summaries' language: en (default) or zh")
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
    data.add_argument("--data-mirror", default=None, metavar="URL",
                      help="a base URL tried first for downloads (default $ACTLAB_DATA_MIRROR; docs/data.md)")
    return parser


def _add_explain_commands(sub) -> None:
    """`actlab explain RUN` and `actlab hypotheses`."""
    explain = sub.add_parser("explain", help="train the models that test the classic explanations (dead units, "
                                             "vanishing gradients, …) on a finished run, and rebuild its report")
    explain.add_argument("run_dir", metavar="RUN")
    explain.add_argument("--only", default="all", metavar="NAMES",
                         help="these hypotheses only, e.g. --only dead_units,zero_centred (default: every one that "
                              "applies; `actlab hypotheses` lists them)")
    explain.add_argument("--quiet", action="store_true", help="no progress bar and no per-model lines")
    sub.add_parser("hypotheses", help="list the hypotheses --explain tests, with what each needs")


def _cmd_run(args: argparse.Namespace) -> int:
    from actlab.config import KEYS, read_sweep, resolve_config
    from actlab.experiment import run

    overrides = {key: getattr(args, key) for key in KEYS if hasattr(args, key)}
    config = resolve_config(preset=args.preset, file=args.config, overrides=overrides)
    log = (lambda line: None) if args.quiet else None
    show_progress = False if args.quiet else None
    sweep = read_sweep(args.config, args.sweep)
    from actlab.tune import read_tune

    tune = read_tune(args.config, args.tune, config)
    if tune:
        if sweep:
            raise ActlabError("tune or sweep, not both: a tuned comparison chooses each activation's values itself")
        return _cmd_tune(args, config, tune, show_progress, log)
    if sweep or args.backend == "ray":
        from actlab.sweep import run_sweep

        out = Path(config.run.out or f"runs/{config.run.name}-sweep")
        try:
            counts = run_sweep(config, sweep, out, args.backend, args.ray_address, show_progress, log)
        except KeyboardInterrupt as stop:
            return _stopped_store(stop, out)
        print(f"{counts['runs']} runs: {counts.get('done', 0)} done ({counts['already_done']} were already), "
              f"{counts.get('failed', 0)} failed, {counts.get('pending', 0) + counts.get('running', 0)} not run; "
              f"store: {out / 'results.db'}")
        print(f"see them with `actlab runs list {out}`, report on a subset with "
              f"`actlab report {out} --where KEY=VALUE`")
        return 1 if counts.get("failed") else 0
    try:
        results = run(config, show_progress=show_progress, log=log)
    except Interrupted as exc:
        print(f"actlab: {exc}", file=sys.stderr)
        return exc.exit_code
    code = _print_results(results, config.run.lang)
    diverged = [r for r in results.runs if r.status.diverged]
    if diverged and len(diverged) == len(results.runs):  # one that diverged among others is a finding; all is a failure
        epochs = sorted({r.status.epoch for r in diverged})
        raise ActlabError(f"every model diverged (its loss became NaN or above 10^4, in epoch "
                          f"{', '.join(map(str, epochs))}), so the run compares nothing; their epochs are kept in "
                          f"{results.run_dir}. Lower the learning rate (lr = {config.optim.lr:g}) and run again"
                          f"{' with a new --out' if config.run.out else ''}")
    return code


def _cmd_tune(args: argparse.Namespace, config, tune: dict, show_progress, log) -> int:
    from actlab.tune import run_tuned, write_tuned

    out = Path(config.run.out or f"runs/{config.run.name}-tune")
    try:
        results = run_tuned(config, tune, out, args.backend, args.ray_address, show_progress, log)
    except KeyboardInterrupt as stop:
        return _stopped_store(stop, out)
    write_tuned(results, log)
    return _print_results(results, config.run.lang)


def _stopped_store(stop: KeyboardInterrupt, out: Path) -> int:
    """Ctrl-C or SIGTERM during a sweep or a tuning: where the finished runs are, and how to go on."""
    print(f"actlab: interrupted{' (SIGTERM)' if isinstance(stop, Terminated) else ''}; the finished runs are in "
          f"{out / 'results.db'}: run the same command to resume", file=sys.stderr)
    return 143 if isinstance(stop, Terminated) else 130


def can_show(stream, text: str) -> bool:
    """Whether `stream`'s encoding can write `text` (an ASCII-only terminal cannot write Chinese)."""
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _degrade_streams() -> None:
    """A character the terminal cannot encode prints as an escape (\\u4e2d) instead of ending the
    command in a traceback after its work is done; files actlab writes are UTF-8 regardless."""
    for stream in (sys.stdout, sys.stderr):
        if not can_show(stream, "中文ü–×") and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _print_results(results, lang: str) -> int:
    """The terminal table of a finished run, and where its folder and report are; in English, with
    a note, where the terminal cannot show the report's language."""
    from actlab.messages import Words

    report = results.run_dir / ("report.html" if lang == "en" else f"report.{lang}.html")
    if lang != "en" and not can_show(sys.stdout, Words(lang).plain("terminal.run_folder", folder="", report="")):
        print(f"(this terminal's encoding, {sys.stdout.encoding}, cannot show {lang}: the table is in English; "
              f"the report in {lang} is written as UTF-8 files. Set PYTHONIOENCODING=utf-8 to print it here)")
        lang = "en"
    print(results.table(lang))
    print("\n" + Words(lang).plain("terminal.run_folder", folder=results.run_dir, report=report))
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
    from actlab.messages import LANGUAGES

    if args.lang not in LANGUAGES:
        raise ActlabError(f"--lang {args.lang!r}: choose one of: {', '.join(LANGUAGES)}")
    if args.equivalence_margin is not None and not 0 < args.equivalence_margin < 100:
        raise ActlabError(f"--equivalence-margin {args.equivalence_margin:g}: give a margin in percentage points "
                          f"above 0 and below 100, e.g. 0.5")
    from actlab.commands import where_filter
    from actlab.report import rebuild, report_store
    from actlab.word import require_docx
    from actlab.store import STORE_NAME

    if args.docx:
        require_docx()
    folder = Path(args.run_dir)
    if (folder / STORE_NAME).is_file() and (args.where or not (folder / "results.json").is_file()):
        md, html = report_store(folder, where_filter(args.where), args.ci, args.equivalence_margin, args.lang)
    else:  # a run folder (a tuned run keeps its store beside its results)
        if args.where:
            raise ActlabError("--where filters the runs of a sweep store; this folder is a single run")
        md, html = rebuild(args.run_dir, args.ci, args.equivalence_margin, args.lang, args.docx)
    print(f"wrote {md}\nwrote {html}")
    if args.docx:
        print(f"wrote {md.with_suffix('.docx')}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from actlab.config.checks import _Bad, _explain
    from actlab.explain import explain_run
    from actlab.workers import default_log

    try:
        names = _explain(args.only)
    except _Bad as exc:
        raise ActlabError(f"--only {args.only!r}: {exc}") from None
    log = (lambda line: None) if args.quiet else default_log
    results = explain_run(args.run_dir, names, show_progress=False if args.quiet else None, log=log)
    print(f"report: {results.run_dir / 'report.html'}")
    return 0


@contextlib.contextmanager
def _signals_held(main_thread: bool):
    """Ctrl-C and SIGTERM noted, not raised, while torch imports: an exception raised inside its
    C++ start-up aborts the process with a C++ traceback instead of ending it in one line."""
    held: list[int] = []
    if not main_thread:
        yield held
        return
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    _degrade_streams()
    main_thread = threading.current_thread() is threading.main_thread()
    with _signals_held(main_thread) as held:
        parser = build_parser()  # imports torch (the activations' registry): a second or more
    if held:  # Ctrl-C or SIGTERM while torch imported
        print("actlab: interrupted", file=sys.stderr)
        return 143 if held[0] == signal.SIGTERM else 130
    if main_thread:
        signal.signal(signal.SIGTERM, raise_terminated)  # a scheduler's stop ends like Ctrl-C
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed in one line
        return int(exc.code or 0)
    from actlab import commands  # after the parser: torch is imported by then, with the signals held

    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "show":
            return _cmd_show(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "explain":
            return _cmd_explain(args)
        if args.command == "hypotheses":
            return commands.cmd_hypotheses()
        if args.command == "runs":
            return commands.cmd_runs(args)
        if args.command == "presets":
            return commands.cmd_presets(args.lang)
        if args.command == "activations":
            return commands.cmd_activations()
        if args.command == "plot-activations":
            return commands.cmd_plot_activations(args)
        if args.command == "data":
            return commands.cmd_data(args)
        parser.print_help()
        return 2
    except ActlabError as exc:
        print(f"actlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        print("actlab: interrupted", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    except BrokenPipeError:
        if args.command == "run":
            raise  # a pipe inside a run (to a worker) is a fault, never "the reader left"
        sys.stderr.close()  # `actlab activations | head`: the reader left, which is fine
        return 0
