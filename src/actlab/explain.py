"""`--explain` and `actlab explain RUN_DIR`: train the models that test the classic explanations.

The hypotheses (`actlab.hypotheses`) name arms: activations trained on the run's own seeds, as the
run trained them or with one change (3× the depth, SELU's preconditions, …). The arms the run lacks
are trained here into the run folder's own store, `explain/results.db`, one content hash per model:
a killed `--explain` resumes where it stopped, and a second `actlab explain` trains nothing. The
models land in results.json under `interventions`, labelled with their setting, never among the
run's compared models; `actlab.causes` reads them for the report's "Possible causes".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actlab.config import Config, replace, resolve_config
from actlab.device_data import resolve_device
from actlab.errors import ActlabError
from actlab.hypotheses import NAMES, RunFacts, arms_to_train
from actlab.messages import Words
from actlab.plan import duration, estimate_seconds
from actlab.results import Results, load_results, write_results_json
from actlab.store import Store
from actlab.sweep import expand, train_runs


def facts_of(config: Config) -> RunFacts:
    first = (config.model.outputs[0], config.model.losses[0])  # the head and loss the hypotheses read (causes.py)
    return RunFacts({label: a for label, a, output, loss in config.variants if (output, loss) == first},
                    config.to_flat())


def intervention_configs(config: Config, names: tuple[str, ...]) -> dict[str, tuple[dict[str, Any], Config]]:
    """Per setting: its overrides and the config that trains the activations the run lacks there,
    on the run's seeds (one output head: the run's first)."""
    out = {}
    for setting, (overrides, activations) in arms_to_train(facts_of(config), names).items():
        changes = {"activations": activations, "output": config.model.outputs[0], "loss": config.model.losses[0],
                   "explain": [], "tensorboard": False}
        init = config.to_flat().get("init")
        if isinstance(init, dict):  # a per-activation table keeps its entries for these activations
            changes["init"] = {a: s for a, s in init.items() if a in activations} or "default"
        changes.update(dict(overrides))  # the intervention's own settings win (SELU's LeCun-normal init)
        out[setting] = (dict(overrides), replace(config, **changes))
    return out


def train_interventions(config: Config, results: Results, names: tuple[str, ...] | None = None,
                        show_progress: bool | None = None, log=None, announce: bool = True) -> dict[str, Any]:
    """Train the arms `results` lacks for the hypotheses `names` (default: the config's `explain`),
    attach every intervention model to `results.interventions`, and write results.json."""
    names = names or config.run.explain
    log = log or (lambda line: None)
    configs, runs = planned(config, names)
    store_dir = results.run_dir / "explain"
    w = Words(config.run.lang)
    if announce:
        log(explain_line(configs, runs, store_dir, resolve_device(config.run.device), w))
    for setting, (_, sub) in configs.items():
        named = setting or w.plain("terminal.as_run")
        counts = train_runs(sub, runs[setting], store_dir, show_progress=show_progress, log=log,
                            what=w.plain("terminal.what_explain", setting=named), describe=lambda run, s=named: s)
        if counts.get("failed") or counts.get("pending") or counts.get("running"):
            raise ActlabError(f"explain: {counts.get('failed', 0)} models failed and {counts.get('pending', 0)} "
                              f"did not run (see `actlab runs list {store_dir} --status failed`); fix the cause "
                              f"and run `actlab explain {results.run_dir}` again: the models already done are kept")
    results.interventions = _collected(store_dir, configs, runs, names, results.interventions)
    write_results_json(results)
    return results.interventions


def explain_line(configs, runs, store_dir: Path, device, w: Words | None = None) -> str:
    """What --explain adds, before it trains: models per setting, how many are still to train, time."""
    w = w or Words("en")
    total = sum(len(r) for r in runs.values())
    if not total:
        return w.plain("causes.plan_none")
    done: dict[str, str] = {}
    if (store_dir / "results.db").is_file():
        with Store(store_dir) as store:
            done = store.status_of(r.hash for rs in runs.values() for r in rs)
    left = {s: sum(done.get(r.hash) != "done" for r in rs) for s, rs in runs.items()}
    seconds = sum(estimate_seconds(sub, left[s], device) for s, (_, sub) in configs.items() if left[s])
    items = [f"{', '.join(sub.model.activations)} {setting or w.plain('terminal.as_run')}"
             for setting, (_, sub) in configs.items()]
    todo = sum(left.values())
    return w.plain("causes.plan_adds", total=total, items="; ".join(items),
                   todo=w.plain("causes.plan_todo", n=todo, time=duration(seconds, w)) if todo
                   else w.plain("causes.plan_all_trained"))


def planned(config: Config, names: tuple[str, ...]):
    """The intervention configs per setting, and the models (`SweepRun`s) each trains."""
    configs = intervention_configs(config, names)
    return configs, {setting: expand(sub, {}) for setting, (_, sub) in configs.items()}


def announce_explain(config: Config, folder: Path) -> str:
    """The plan's --explain line for a run of `config` into `folder`."""
    return explain_line(*planned(config, config.run.explain), folder / "explain", resolve_device(config.run.device),
                        Words(config.run.lang))


def _collected(store_dir: Path, configs, runs, names: tuple[str, ...], before: dict | None) -> dict[str, Any]:
    """results.json's `interventions`: per setting its overrides and models, which hypotheses were
    asked for, and the cost (models and their training seconds)."""
    settings = dict((before or {}).get("settings", {}))
    with Store(store_dir) as store:
        for setting, (overrides, _) in configs.items():
            records = store.done_runs([r.hash for r in runs[setting]])
            models = [records[r.hash].to_json() for r in runs[setting] if r.hash in records]
            known = {(m["label"], m["seed"]) for m in models}
            kept = [m for m in settings.get(setting, {}).get("runs", []) if (m["label"], m["seed"]) not in known]
            settings[setting] = {"overrides": overrides, "runs": kept + models}
    every = [m for s in settings.values() for m in s["runs"]]
    asked = sorted(set((before or {}).get("hypotheses", [])) | set(names), key=NAMES.index)
    return {"hypotheses": asked, "settings": settings,
            "cost": {"models": len(every), "train_seconds": round(sum(m.get("train_seconds") or 0 for m in every), 1)}}


def explain_run(run_dir: str | Path, names: tuple[str, ...] = (), show_progress: bool | None = None,
                log=None, env: dict[str, str] | None = None) -> Results:
    """`actlab explain RUN_DIR`: train what the finished run lacks for `names` (default: every
    hypothesis), then rebuild its report (and its report in the run's language). `env` supplies this
    machine's settings (the data folder: ACTLAB_DATA_DIR), as for `actlab run`."""
    from actlab.report import build_report  # plotting and statistics: only once the models are trained

    results = load_results(run_dir)
    if results.tuning:
        raise ActlabError(f"{run_dir} is a tuned run; its learning-rate comparison is in its report already, and "
                          f"--explain trains at one setting: explain the experiment run without --tune")
    flat = {k: v for k, v in results.config.items() if k != "out"}  # where it trains: this machine's settings
    config = resolve_config(overrides={**flat, "explain": list(names or NAMES)}, env=env)
    train_interventions(config, results, tuple(config.run.explain), show_progress, log)
    for lang in dict.fromkeys(["en", results.config.get("lang", "en")]):
        build_report(results, lang=lang, log=log)
    return results
