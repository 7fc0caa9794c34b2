"""What a run produces and how it lies on disk: per-model records, the run folder's files, the table.

The run folder's files are a public schema (docs/run-folder.md): `metrics.csv` (one row per
activation × seed × epoch), `summary.csv` (one row per activation × seed), `results.json`
(everything, for programs), `config.toml` (the resolved configuration, reusable with `--config`)
and `environment.json` (versions, device, seeds). Every file is written atomically (temporary file,
then rename), and rewritten after each model, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from actlab.errors import ActlabError
from actlab.files import atomic_write
from actlab.display import ReportFrame, results_frame, results_html
from actlab.messages import Words
from actlab.status import FAILED_TO_LEARN as NEVER_LEARNED
from actlab.status import PENDING, Status

METRIC_COLUMNS = ("activation", "seed", "epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                  "test_loss", "test_acc", "seconds")
DIAGNOSTIC_COLUMNS = ("activation", "seed", "stage", "layer", "metric", "value")
SUMMARY_COLUMNS = ("activation", "seed", "final_test_acc", "final_test_loss", "best_epoch",
                   "best_val_acc", "best_test_acc", "train_seconds", "status", "stopped_epoch", "tuned")


@dataclass
class ModelRun:
    """One model (activation × seed): its per-epoch metrics and how it ended.

    `status` (`actlab.status.Status`) is `ok`, `failed_to_learn` (finished, but its best accuracy
    stayed below twice chance), `diverged@epoch N` (the loss blew up in epoch N), `interrupted@epoch
    N` (what `train_group` leaves on a record when Ctrl-C stops it), `lost` (its worker process
    died), or `pending` (a run folder's model that is not trained and saved yet, interrupted ones
    included). Runs that finished or failed
    count in comparisons; the failed ones at the accuracy they reached (`accuracy_reached`).
    Interrupted, lost and pending runs do not.
    """

    label: str
    activation: str
    output: str
    seed: int
    epochs: list[dict[str, float | None]] = field(default_factory=list)
    status: Status = PENDING
    best_epoch: int | None = None
    best_val_acc: float | None = None
    best_test_acc: float | None = None
    train_seconds: float = 0.0
    stopped_epoch: int | None = None  # the last epoch trained (earlier than `epochs` after early stopping)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)  # stage, layer, metric, value
    tuned: dict[str, float] = field(default_factory=dict)  # the values tuning chose for this model (actlab.tune)
    loss: str = "cross_entropy"  # actlab.losses; last, so records from before losses read as they were

    def __repr__(self) -> str:
        acc = self.final_test_acc
        return (f"ModelRun({self.label!r}, seed {self.seed}, {self.status}, {len(self.epochs)} epochs, "
                f"test acc {'–' if acc is None else f'{acc:.2%}'})")

    @property
    def last_evaluated(self) -> dict[str, float | None]:
        """The last epoch's row that has a test accuracy (an early-stopped or diverged model's last one)."""
        rows = [r for r in self.epochs if r.get("test_acc") is not None]
        return rows[-1] if rows else {}

    @property
    def final_test_acc(self) -> float | None:
        """The test accuracy after the last evaluated epoch, as a fraction (None before any)."""
        return self.last_evaluated.get("test_acc")

    @property
    def final_test_loss(self) -> float | None:
        """The test loss after the last evaluated epoch (None before any)."""
        return self.last_evaluated.get("test_loss")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "status":  # a file's text (or a caller's) becomes a typed value; a typed one stays
            value = Status.parse(value)
        super().__setattr__(name, value)

    @property
    def failed(self) -> bool:
        """It trained to its end but failed: it never learned, or its loss blew up."""
        return self.status.failed

    @property
    def counts(self) -> bool:
        """It belongs in comparisons: it finished, or failed (an activation's failures are part of its result)."""
        return self.status.counts

    def accuracy_reached(self, best_checkpoint: bool = False) -> float | None:
        """The test accuracy this run ends with, as comparisons count it: of its final model, or of its
        best-validation checkpoint. A diverged model's final weights compute NaN, so its final model
        scores chance; its best checkpoint (from before the blow-up) keeps what it measured."""
        if best_checkpoint:
            value = self.best_test_acc
        else:
            value = CHANCE_ACCURACY if self.status.diverged else self.final_test_acc
        return CHANCE_ACCURACY if value is None and self.status.diverged else value

    def summary_row(self) -> dict[str, Any]:
        """Its row of summary.csv."""
        return {"activation": self.label, "seed": self.seed, "final_test_acc": self.final_test_acc,
                "final_test_loss": self.final_test_loss, "best_epoch": self.best_epoch,
                "best_val_acc": self.best_val_acc, "best_test_acc": self.best_test_acc,
                "train_seconds": self.train_seconds, "status": self.status, "stopped_epoch": self.stopped_epoch,
                "tuned": " ".join(f"{k}={v:g}" for k, v in self.tuned.items())}

    def to_json(self) -> dict[str, Any]:
        """Its record in results.json (with the final test accuracy and loss written out; the loss
        function only where it is not cross-entropy, so records of runs without --loss read as before)."""
        doc = {**asdict(self), "final_test_acc": self.final_test_acc, "final_test_loss": self.final_test_loss}
        if doc["loss"] == "cross_entropy":
            del doc["loss"]
        return doc

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelRun:
        """The record `to_json` wrote; a value of the wrong kind (text or NaN where a number belongs,
        as a hand edit leaves) is a ValueError naming it, before any table or statistic meets it."""
        names = {f for f in cls.__dataclass_fields__}
        try:
            run = cls(**{k: v for k, v in d.items() if k in names})
        except ValueError as exc:  # a status that is none (Status.parse)
            raise ValueError(f"run {d.get('label')!r} seed {d.get('seed')!r}: {exc}") from None
        where = f"run {run.label!r} seed {run.seed!r}"
        for name in ("label", "activation", "output", "loss"):
            if not isinstance(getattr(run, name), str):
                raise ValueError(f"{where}: {name} = {getattr(run, name)!r} is not text")
        if not isinstance(run.seed, int) or isinstance(run.seed, bool):
            raise ValueError(f"{where}: seed is not an integer")
        numbers = [(name, getattr(run, name)) for name in ("best_epoch", "best_val_acc", "best_test_acc",
                                                            "train_seconds", "stopped_epoch")]
        numbers += [(f"epochs[{i}].{k}", v) for i, row in enumerate(run.epochs) for k, v in row.items()]
        numbers += [(f"diagnostics[{i}].value", row.get("value")) for i, row in enumerate(run.diagnostics)]
        for name, value in numbers:
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ValueError(f"{where}: {name} = {value!r} is not a number")
        return run


CHANCE_ACCURACY = 0.1  # ten classes
FAILED_TO_LEARN = 2 * CHANCE_ACCURACY  # a best accuracy below twice chance means the run never learned


def mark_failed_to_learn(record: ModelRun) -> None:
    """Mark a finished run whose best validation (else test) accuracy stayed near chance."""
    key = "val_acc" if any(row.get("val_acc") is not None for row in record.epochs) else "test_acc"
    accs = [row[key] for row in record.epochs if row.get(key) is not None]
    if record.status.ok and accs and max(accs) < FAILED_TO_LEARN:
        record.status = NEVER_LEARNED


@dataclass
class Results:
    """Everything one `actlab run` measured; `actlab.run()` returns it."""

    run_dir: Path
    config: dict[str, Any]  # the resolved `[experiment]` table
    environment: dict[str, Any]
    runs: list[ModelRun]
    tuning: dict[str, Any] | None = None  # a tuned run's grid, scores and choices (actlab.tune)
    interventions: dict[str, Any] | None = None  # models that test the hypotheses (actlab.explain)

    @property
    def labels(self) -> list[str]:
        """The compared models' labels (activations, or activation/head), in the order they ran."""
        return list(dict.fromkeys(r.label for r in self.runs))

    def by_label(self, label: str) -> list[ModelRun]:
        """The models of one label, one per seed."""
        return [r for r in self.runs if r.label == label]

    def to_json(self) -> dict[str, Any]:
        """results.json's document: config, environment, every model (and a tuned run's tuning)."""
        doc = {"config": self.config, "environment": self.environment, "runs": [r.to_json() for r in self.runs]}
        if self.tuning:
            doc["tuning"] = self.tuning
        if self.interventions:
            doc["interventions"] = self.interventions
        return doc

    def table(self, lang: str = "en") -> str:
        """The summary table `actlab run` prints: per activation, its seeds, mean test accuracy and
        loss with their spread, training time and statuses (in `lang`: en or zh)."""
        return summary_table(self, lang)

    def __repr__(self) -> str:
        return f"Results({len(self.runs)} models in {self.run_dir})"

    def _repr_html_(self) -> str:
        """In a notebook: the summary table, the verdicts, the main figures and the run folder."""
        return results_html(self, summary_rows(self))

    def show_report(self, lang: str = "en", height: int = 700) -> ReportFrame:
        """The report, inline in a notebook (in a frame: its page style does not restyle the notebook)."""
        name = "report.html" if lang == "en" else f"report.{lang}.html"
        return ReportFrame((self.run_dir / name).read_text(encoding="utf-8"), height)

    def to_pandas(self, kind: str = "epochs"):
        """A pandas DataFrame: one row per epoch (`epochs`: activation, seed, epoch, losses and
        accuracies), per model (`models`: the summary.csv columns) or per diagnostic (`diagnostics`)."""
        return results_frame(self, kind)


def safe_name(text: str) -> str:
    """`text` as a file or folder name: anything but letters, digits and `._=+-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def json_safe(value: Any) -> Any:
    """NaN and infinity become null, so results.json stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def write_results(results: Results) -> None:
    """(Re)write metrics.csv, summary.csv, diagnostics.csv and results.json for the models so far."""
    metric_rows = [{"activation": r.label, "seed": r.seed, **row} for r in results.runs for row in r.epochs]
    atomic_write(results.run_dir / "metrics.csv", _csv(METRIC_COLUMNS, metric_rows))
    atomic_write(results.run_dir / "summary.csv", _csv(SUMMARY_COLUMNS, [r.summary_row() for r in results.runs]))
    diagnostic_rows = [{"activation": r.label, "seed": r.seed, **row} for r in results.runs for row in r.diagnostics]
    atomic_write(results.run_dir / "diagnostics.csv", _csv(DIAGNOSTIC_COLUMNS, diagnostic_rows))
    write_results_json(results)


def write_results_json(results: Results) -> None:
    """(Re)write results.json alone: what `environment` adds at the end of a run goes there too."""
    atomic_write(results.run_dir / "results.json", json.dumps(json_safe(results.to_json()), indent=1) + "\n")


def load_results(run_dir: str | Path, fix: str = "rerun the experiment") -> Results:
    """A run folder's results.json; a missing or damaged one is an `ActlabError` ending in `fix`."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    try:
        exists = path.is_file()
    except OSError as exc:  # a folder the user cannot enter
        raise ActlabError(f"{run_dir} cannot be read ({exc.strerror or exc}); make it readable "
                          f"(chmod a+rx {run_dir})") from None
    if not exists:
        if (run_dir / "results.db").is_file():
            raise ActlabError(f"{run_dir} is a sweep's store, not a run folder: list its runs with `actlab runs list "
                              f"{run_dir}`, or write a report on a subset with "
                              f"`actlab report {run_dir} --where KEY=VALUE`")
        raise ActlabError(f"{run_dir} is not an actlab run folder (no results.json); "
                          f"give the folder `actlab run` printed at its end")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ActlabError(f"{path} cannot be read ({exc.strerror or exc}); make it readable "
                          f"(chmod a+r {path})") from None
    except UnicodeDecodeError:
        raise ActlabError(f"{path} is damaged (not UTF-8 text); {fix}") from None
    try:
        doc = json.loads(text)
        return Results(run_dir, doc["config"], doc["environment"], [ModelRun.from_json(r) for r in doc["runs"]],
                       doc.get("tuning"), doc.get("interventions"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # ValueError includes JSONDecodeError
        raise ActlabError(f"{path} is damaged ({exc}); {fix}") from None



def load(run_dir: str | Path) -> Results:
    """A finished run's results from its folder (`actlab.load(run_dir)` in a notebook)."""
    return load_results(run_dir)

def _mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def summary_rows(results: Results, lang: str = "en") -> list[list[str]]:
    """The summary table's header and one row per activation, in `lang`: accuracy (failed runs counted
    at what they reached) and loss as mean ± std over seeds, time, how the runs ended."""
    w = Words(lang)
    has_val = any(r.best_epoch is not None for r in results.runs)
    keys = ["activation", "seeds", "test_acc", "test_loss", *(["best_epoch", "best_val_acc"] if has_val else []),
            "train_s", "status"]
    lines = [[w.plain(f"terminal.{key}") for key in keys]]
    for label in results.labels:
        runs = results.by_label(label)
        counted = [r for r in runs if r.counts]
        ok = [r for r in runs if r.status.ok]
        bad = [r.status for r in runs if not r.status.ok]
        row = [label, str(len(runs)),
               _mean_std([a for r in counted if (a := r.accuracy_reached()) is not None], 100),
               _mean_std([r.final_test_loss for r in ok if r.final_test_loss is not None], 1, 4)]
        if has_val:
            row += [", ".join(str(r.best_epoch) for r in ok if r.best_epoch is not None) or "–",
                    _mean_std([a for r in counted if (a := r.accuracy_reached(True)) is not None], 100)]
        row += [_mean_std([r.train_seconds for r in runs], 1, 1),
                w.plain("terminal.ok") if not bad else
                w.plain("terminal.some_ok", ok=len(runs) - len(bad), n=len(runs), statuses=", ".join(bad))]
        lines.append(row)
    return lines


def summary_table(results: Results, lang: str = "en") -> str:
    """`summary_rows` as the terminal shows them: aligned columns, then what the numbers are over."""
    w, lines = Words(lang), summary_rows(results, lang)
    widths = [max(_width(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell + " " * (w_ - _width(cell)) for cell, w_ in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w_ for w_ in widths))
    seeds = sorted({r.seed for r in results.runs})
    if not seeds:
        return "\n".join(text)
    over = w.plain("terminal.over_seeds", n=len(seeds)) if len(seeds) > 1 else w.plain("terminal.one_seed",
                                                                                        seed=seeds[0])
    return "\n".join(text) + "\n" + w.plain("terminal.note", over=over)


def _width(text: str) -> int:
    """Columns `text` takes in a terminal: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def checkpoint_name(label: str, seed: int) -> str:
    return safe_name(label) + f"-seed{seed}.pt"


def save_checkpoint(path: Path, record: ModelRun, final_state: dict, best_state: dict | None, config: dict) -> None:
    """The final and best-validation weights of one model, written atomically (on the CPU)."""
    state = {"final": {k: v.cpu() for k, v in final_state.items()},
             "best_val": best_state and {k: v.cpu() for k, v in best_state.items()},
             "label": record.label, "seed": record.seed, "best_epoch": record.best_epoch, "config": config}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())
