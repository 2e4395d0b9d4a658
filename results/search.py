"""An Optuna search's table: per stratum, the trial best by the validation objective (with
several objectives: every trial of the Pareto front), shown with its test metrics, so the
test set never picks a configuration."""

from __future__ import annotations

import pandas as pd

from fsvae.config import short
from results.paper import PAPER_SOURCE, SplitSizes, acc_h_note, merge_paper
from results.store import Study, read_split_sizes
from results.table import (
    BOOKKEEPING,
    METRICS,
    Table,
    no_finished,
    status_notes,
    stratum_key,
    uncounted_note,
    varying,
)
from study.record.read import best_trials, candidates, one_run_per_trial


def search_table(
    study: Study,
    metric_set: str = "test",
    with_paper: bool = False,
    metrics: tuple[str, ...] = METRICS,
) -> Table:
    """One row per stratum: the trial best by the validation objective (the test set never
    chooses), its metrics, the searched keys' values and how many trials the stratum ran.
    A multi-objective search has one row per trial of each stratum's Pareto front."""
    trials, uncounted = one_run_per_trial(study.trials)
    if trials[trials["status"] == "FINISHED"].empty:
        raise no_finished(study)
    records = []
    for stratum in sorted(set(trials["stratum"]), key=stratum_key):
        group = trials[trials["stratum"] == stratum].sort_values("start_time", kind="stable")
        records += _stratum_records(study, stratum, group, metric_set, metrics)
    cells = pd.DataFrame(records)
    table = Table(
        study=study,
        metric_set=metric_set,
        cells=cells,
        rows=list(dict.fromkeys(cells["stratum"])),
        n_fs=[],
        notes=status_notes(trials),
        metrics=tuple(metrics),
    )
    table.notes.insert(0, _how_note(study, metric_set))
    if uncounted:
        table.notes.append(uncounted_note(uncounted))
    if with_paper:
        _add_paper(table)
    return table


def _how_note(study: Study, metric_set: str) -> str:
    """The first note: which trials are rows, and what the other columns are."""
    how = (
        "the searched keys of the space"
        if study.searched is not None
        else "keys that vary between the stratum's trials (no space.json recorded)"
    )
    tail = f"params: {how}; trials: finished/failed/stopped of all in the stratum, each trial once."
    if len(study.objectives) == 1:
        return (
            f"Optuna study: per stratum, the finished trial best by the validation "
            f"objective {study.objective} ({study.mode}; ties: the lowest trial number), "
            f"shown "
            f"with its {metric_set} metrics in percent; {tail}"
        )
    goals = ", ".join(f"{o} ({m})" for o, m in zip(study.objectives, study.modes))
    return (
        f"Optuna study with {len(study.objectives)} objectives: no one trial is best, so "
        f"the rows of a stratum are its Pareto front on the validation objectives "
        f"{goals}: the finished trials that no other finished trial of the stratum "
        f"equals or beats on every objective while beating on one. Front trials are "
        f"listed best first by {study.objectives[0]}, shown with their {metric_set} "
        f"metrics in percent (the test set never chooses); {tail}"
    )


def _add_paper(table: Table) -> None:
    """Adds `paper` and `diff` (ours - paper, points) for each best trial's method, sampling
    factor and n_f, and the best trials' split sizes beside the paper's."""
    table.cells = merge_paper(table.cells, table.metric_set, "value", table.metrics[0])
    table.with_paper = True
    table.notes.append(
        f"paper: {PAPER_SOURCE}, the row of each shown trial's method, "
        f"sampling factor and n_f; diff = ours - paper (points). "
        f"{acc_h_note(table.metrics[0])}"
    )
    best = sorted({r for r in table.cells.get("run_ids", []) if isinstance(r, str)})
    table.split_sizes = SplitSizes.of(read_split_sizes(table.study, best))
    table.notes.append(table.split_sizes.note())


def _stratum_records(
    study: Study, stratum: str, group: pd.DataFrame, metric_set: str, metrics: tuple[str, ...]
) -> list[dict]:
    """The stratum's cells, one per metric and shown trial: its trial counts, and its best
    trial (several objectives: its Pareto-front trials) if any."""
    objectives = study.objectives
    cols = [f"{metric_set}_{m}" for m in metrics]
    counts = group["status"].value_counts()
    ok = group[group["status"] == "FINISHED"]  # shown with every metric, so it needs them
    ok = ok[ok[cols].notna().all(axis=1)] if all(c in ok for c in cols) else ok.iloc[0:0]
    best = best_trials(ok, study.goals)
    base = {
        "section": "optuna",
        "stratum": stratum or "(all)",
        "n_trials": len(group),
        "n_finished": int(counts.get("FINISHED", 0)),
        "n_failed": int(counts.get("FAILED", 0)),
        "n_killed": int(counts.get("KILLED", 0)),
        "objective": ", ".join(f"{o} ({m})" for o, m in zip(objectives, study.modes)),
    }
    if best.empty:
        return [{**base, "metric": m} for m in metrics]
    searched = (
        study.searched if study.searched is not None else varying(candidates(ok, study.goals))
    )
    if len(objectives) == 1:
        trial = best.iloc[0]
        shown = {"objective_value": float(trial[study.objective])}
        return _trial_records(trial, searched, {**base, **shown}, metric_set, metrics)
    return [
        rec
        for i, (_, trial) in enumerate(best.iterrows())
        for rec in _trial_records(
            trial,
            searched,
            {
                **base,
                "front": f"{i + 1} of {len(best)}",
                **{o: float(trial[o]) for o in objectives},
            },
            metric_set,
            metrics,
        )
    ]


def _trial_records(
    trial: pd.Series, searched: list[str], base: dict, metric_set: str, metrics: tuple[str, ...]
) -> list[dict]:
    """One trial's cells, one per metric: its method, searched keys and values."""
    cfg = {k: v for k, v in trial["config"].items() if k not in BOOKKEEPING}
    shown = "; ".join(f"{k}={short(cfg[k])}" for k in searched if k in cfg)
    return [
        {
            **base,
            "row": base["stratum"],
            "method": cfg.get("method", ""),
            "sampling_factor": cfg.get("sampling_factor", ""),
            "n_f": int(float(cfg["n_f"])) if "n_f" in cfg else None,
            "params": shown,
            "metric": m,
            "value": float(trial[f"{metric_set}_{m}"]) * 100.0,
            "trial_key": trial["trial_key"],
            "run_ids": trial["run_id"],
            "run_name": trial["run_name"],
        }
        for m in metrics
    ]
