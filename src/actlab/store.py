"""The results store of a sweep: one SQLite file (`results.db`) per output folder, no server.

Every run of a sweep is a row keyed by the content hash of its resolved configuration, with its
status (`pending`, `running`, `done`, `failed` with the error), its final metrics, and its per-epoch
metrics and diagnostics in their own tables. A run's rows and its `done` mark are written in one
transaction, so a run is done only once its metrics are committed, and a `kill -9` at any moment
loses at most the runs in progress; nothing committed is lost or duplicated. Only the sweep's
driver process writes here. `results_from_store` reads a subset of the finished runs back as
`Results`, for a report on them.
"""

from __future__ import annotations

import contextlib
import difflib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from actlab import __version__
from actlab.config import KEYS
from actlab.config.sections import written
from actlab.errors import ActlabError
from actlab.files import create_folder
from actlab.results import METRIC_COLUMNS, ModelRun, Results, safe_name

STORE_NAME = "results.db"
EPOCH_FIELDS = METRIC_COLUMNS[2:]  # epoch, train_loss, …, seconds
RESULT_FIELDS = ("final_test_acc", "final_test_loss", "best_epoch", "best_val_acc", "best_test_acc",
                 "train_seconds", "stopped_epoch")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY,
    grid_index INTEGER NOT NULL,
    config TEXT NOT NULL,
    label TEXT NOT NULL,
    activation TEXT NOT NULL,
    output TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error TEXT,
    result TEXT,
    {", ".join(f"{f} {'INTEGER' if f in ('best_epoch', 'stopped_epoch') else 'REAL'}" for f in RESULT_FIELDS)},
    attempts INTEGER NOT NULL DEFAULT 0,
    started TEXT,
    finished TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS epochs (
    hash TEXT NOT NULL REFERENCES runs(hash),
    {", ".join(f"{f} {'INTEGER' if f == 'epoch' else 'REAL'}" for f in EPOCH_FIELDS)},
    PRIMARY KEY (hash, epoch)
) STRICT;
CREATE TABLE IF NOT EXISTS diagnostics (
    hash TEXT NOT NULL REFERENCES runs(hash),
    stage TEXT NOT NULL, layer TEXT NOT NULL, metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (hash, stage, layer, metric)
) STRICT;
"""

# keys a run writes only where they differ from their default (config.Key.omit_default): read at it
OMITTED_DEFAULTS = {name: written(name, spec.default) for name, spec in KEYS.items() if spec.omit_default}


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


class Store:
    """A sweep's SQLite store. Use as a context manager; every method commits its own transaction."""

    def __init__(self, folder: Path):
        create_folder(folder)
        self.path = folder / STORE_NAME
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            if "readonly" in str(exc) or "unable to open" in str(exc):  # the store is fine: its folder is not writable
                raise ActlabError(f"{self.path} cannot be opened for writing ({exc}); actlab opens a store to "
                                  f"write, even to list it: make {folder} and its files writable, or copy the "
                                  f"folder somewhere writable and use the copy") from None
            raise ActlabError(f"{self.path} is not a usable actlab store ({exc}); move it away or choose "
                              f"another --out") from None

    @contextlib.contextmanager
    def writing(self):
        """One transaction; a full disk or a file-size limit is one line naming the store, and the
        transaction rolls back, so every run committed before stays intact."""
        try:
            with self.db:
                yield
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc) and "I/O" not in str(exc):
                raise
            raise ActlabError(f"cannot write {self.path}: {exc}; free space and run the same command again: the "
                              f"runs committed before are intact") from None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.db.close()

    def add_pending(self, runs: Iterable[tuple[str, int, dict[str, Any], str, str, str, int]]) -> None:
        """Insert the grid's runs (hash, index, config, label, activation, output, seed) not yet known."""
        with self.writing():
            self.db.executemany(
                "INSERT OR IGNORE INTO runs (hash, grid_index, config, label, activation, output, seed, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                [(h, i, json.dumps(c, sort_keys=True), label, a, o, s) for h, i, c, label, a, o, s in runs])

    def status_of(self, hashes: Iterable[str]) -> dict[str, str]:
        hashes = list(hashes)
        rows = self.db.execute(f"SELECT hash, status FROM runs WHERE hash IN ({','.join('?' * len(hashes))})",
                               hashes).fetchall() if hashes else []
        return dict(rows)

    def mark_running(self, hashes: Iterable[str]) -> None:
        with self.writing():
            self.db.executemany("UPDATE runs SET status='running', started=?, attempts=attempts+1, error=NULL "
                                "WHERE hash=?", [(_now(), h) for h in hashes])

    def release_running(self, hashes: Iterable[str]) -> None:
        """Back to `pending`, those of `hashes` still `running`: their trainer has stopped."""
        with self.writing():
            self.db.executemany("UPDATE runs SET status='pending' WHERE hash=? AND status='running'",
                                [(h,) for h in hashes])

    def save(self, run_hash: str, record: ModelRun) -> None:
        """Commit a finished run: its epochs, diagnostics and results, and `done`, atomically."""
        with self.writing():
            self.db.execute("DELETE FROM epochs WHERE hash=?", (run_hash,))
            self.db.execute("DELETE FROM diagnostics WHERE hash=?", (run_hash,))
            self.db.executemany(
                f"INSERT INTO epochs (hash, {', '.join(EPOCH_FIELDS)}) VALUES (?{', ?' * len(EPOCH_FIELDS)})",
                [(run_hash, *(_finite(row.get(f)) for f in EPOCH_FIELDS)) for row in record.epochs])
            self.db.executemany(
                "INSERT INTO diagnostics (hash, stage, layer, metric, value) VALUES (?, ?, ?, ?, ?)",
                [(run_hash, d["stage"], d["layer"], d["metric"], _finite(d["value"])) for d in record.diagnostics])
            values = record.summary_row()
            self.db.execute(
                f"UPDATE runs SET status='done', result=?, finished=?, "
                f"{', '.join(f'{f}=?' for f in RESULT_FIELDS)} WHERE hash=?",
                (record.status, _now(), *(_finite(values[f]) for f in RESULT_FIELDS), run_hash))

    def fail(self, run_hash: str, error: str) -> None:
        with self.writing():
            self.db.execute("UPDATE runs SET status='failed', error=?, finished=? WHERE hash=?",
                            (error, _now(), run_hash))

    def rows(self, where: dict[str, Any] | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Runs as dicts (their config fields merged in), optionally filtered by config values."""
        query = "SELECT * FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY grid_index"
        cursor = self.db.execute(query, (status,) if status else ())
        names = [c[0] for c in cursor.description]
        rows = []
        for values in cursor.fetchall():
            row = dict(zip(names, values))
            row["config"] = {**OMITTED_DEFAULTS, **json.loads(row["config"])}
            rows.append(row)
        known = set(names).union(*(row["config"] for row in rows))
        for key in where or {}:
            if rows and key not in known:  # a misspelt key would match nothing, silently
                close = difflib.get_close_matches(key, sorted(known), n=2)
                hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
                raise ActlabError(f"--where {key}=…: no run in {self.path} has a key {key!r}; {hint}"
                                  f"`actlab runs list` shows the keys that vary")
        return [row for row in rows if not where
                or all(_matches(row["config"].get(k, row.get(k)), v) for k, v in where.items())]

    def done_runs(self, hashes: list[str]) -> dict[str, ModelRun]:
        """The finished runs among `hashes`, as records, by hash."""
        wanted = set(hashes)
        return {row["hash"]: self.model_run(row) for row in self.rows(status="done") if row["hash"] in wanted}

    def model_run(self, row: dict[str, Any]) -> ModelRun:
        """A stored run as the `ModelRun` that produced it (for statistics and reports)."""
        epochs = [dict(zip(EPOCH_FIELDS, values)) for values in self.db.execute(
            f"SELECT {', '.join(EPOCH_FIELDS)} FROM epochs WHERE hash=? ORDER BY epoch", (row["hash"],))]
        diagnostics = [dict(zip(("stage", "layer", "metric", "value"), values)) for values in self.db.execute(
            "SELECT stage, layer, metric, value FROM diagnostics WHERE hash=?", (row["hash"],))]
        return ModelRun(row["label"], row["activation"], row["output"], row["seed"], epochs,
                        row["result"] or row["status"], row["best_epoch"], row["best_val_acc"], row["best_test_acc"],
                        row["train_seconds"] or 0.0, row["stopped_epoch"], diagnostics,
                        loss=_config_of(row).get("loss", "cross_entropy"))


def _config_of(row: dict[str, Any]) -> dict[str, Any]:
    """A stored run's own [experiment] table (the row's JSON text, or the table already read)."""
    return json.loads(row["config"]) if isinstance(row["config"], str) else row["config"]


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


def _matches(value: Any, wanted: Any) -> bool:
    """`hidden=512` matches hidden [512]; `lr=0.001` matches 0.001; strings compare as written."""
    if isinstance(value, list):
        if isinstance(wanted, str):
            wanted = [int(w) if w.strip().lstrip("-").isdigit() else w.strip() for w in wanted.split(",") if w.strip()]
        return value == (wanted if isinstance(wanted, list) else [wanted])
    if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(wanted, str):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value) == str(wanted)


def open_store(folder: Path, must_exist: bool = True) -> Store:
    if must_exist and not (folder / STORE_NAME).is_file():
        raise ActlabError(f"{folder} holds no sweep store ({STORE_NAME}); give the --out folder of a sweep "
                          f"(`actlab run --config sweep.toml --out DIR`)")
    return Store(folder)


def results_from_store(folder: Path, where: dict[str, str]) -> Results:
    """The finished runs of the store in `folder` matching `where` (e.g. {"hidden": "512"}), as `Results`.

    Runs are compared by activation; keys that still vary within the subset (say lr) become part of
    each label, so different settings are never averaged together. The config keeps the keys all
    runs share; the run folder is `<folder>/report[-key=value…]` (not created here).
    """
    with open_store(folder) as store:
        rows = store.rows(where, status="done")
        if not rows:
            raise ActlabError(f"no finished run in {folder} matches {where or 'the store'}; see `actlab runs list "
                              f"{folder}` for the config values")
        keys = sorted(set().union(*(r["config"] for r in rows)))
        same = {k for k in keys if len({json.dumps(r["config"].get(k), sort_keys=True) for r in rows}) == 1}
        varying = [k for k in keys if k not in same and k not in ("activations", "seed", "seeds")]
        runs = []
        for row in rows:
            record = store.model_run(row)
            if varying:
                record.label = f"{record.label} " + " ".join(f"{k}={row['config'].get(k)}" for k in varying)
            runs.append(record)
    config = {k: rows[0]["config"][k] for k in same  # keys written only when set stay out at their defaults
              if not (k in OMITTED_DEFAULTS and rows[0]["config"][k] == OMITTED_DEFAULTS[k])}
    config.update(seeds=sorted({r.seed for r in runs}), activations=list(dict.fromkeys(r.activation for r in runs)))
    run_dir = folder / safe_name("report" + "".join(f"-{k}={v}" for k, v in where.items()))
    environment = {"device": "sweep store", "actlab": __version__, "started": "", "store": str(folder),
                   "where": where}
    return Results(run_dir, config, environment, runs)
