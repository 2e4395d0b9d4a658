"""An Optuna search's table: per stratum, the trial best by the validation objective, shown
with its test metrics (so the test set never picks a configuration)."""
from __future__ import annotations

import pandas as pd

from fsvae.config import short
from results.labels import stratum_key
from results.paper import PAPER_SOURCE, SplitSizes, acc_h_note, merge_paper
from results.runs import (BOOKKEEPING, no_finished, one_run_per_trial, status_notes,
                          uncounted_note, varying)
from results.store import Study, read_split_sizes
from results.table import METRICS, Table


def optuna_table(study: Study, metric_set: str = "test", with_paper: bool = False,
                 metrics: tuple[str, ...] = METRICS) -> Table:
    """One row per stratum: the trial best by the validation objective (the test set never
    chooses), its metrics, the searched keys' values and how many trials the stratum ran."""
    trials, uncounted = one_run_per_trial(study.trials)
    if trials[trials["status"] == "FINISHED"].empty:
        raise no_finished(study)
    records = []
    for stratum in sorted(set(trials["stratum"]), key=stratum_key):
        group = trials[trials["stratum"] == stratum].sort_values("start_time", kind="stable")
        records += _stratum_records(study, stratum, group, metric_set, metrics)
    cells = pd.DataFrame(records)
    table = Table(study=study, metric_set=metric_set, cells=cells,
                  rows=list(dict.fromkeys(cells["stratum"])), n_fs=[],
                  notes=status_notes(trials), metrics=tuple(metrics))
    how = "the searched keys of the space" if study.searched is not None else \
        "keys that vary between the stratum's trials (no space.json recorded)"
    table.notes.insert(0, f"Optuna study: per stratum, the finished trial best by the "
                          f"validation objective {study.objective} ({study.mode}; ties: the "
                          f"earlier trial), shown with its {metric_set} metrics in percent; "
                          f"params: {how}; trials: finished/failed/stopped of all in the "
                          f"stratum, each trial once.")
    if uncounted:
        table.notes.append(uncounted_note(uncounted))
    if with_paper:
        _add_paper(table)
    return table


def _add_paper(table: Table) -> None:
    """Adds `paper` and `diff` (ours - paper, points) for each best trial's method, sampling
    factor and n_f, and the best trials' split sizes beside the paper's."""
    table.cells = merge_paper(table.cells, table.metric_set, "value", table.metrics[0])
    table.with_paper = True
    table.notes.append(f"paper: {PAPER_SOURCE}, the row of the best trial's method, "
                       f"sampling factor and n_f; diff = ours - paper (points). "
                       f"{acc_h_note(table.metrics[0])}")
    best = sorted({r for r in table.cells.get("run_ids", []) if isinstance(r, str)})
    table.split_sizes = SplitSizes.of(read_split_sizes(table.study, best))
    table.notes.append(table.split_sizes.note())


def _stratum_records(study: Study, stratum: str, group: pd.DataFrame, metric_set: str,
                     metrics: tuple[str, ...]) -> list[dict]:
    """The stratum's cells, one per metric: its trial counts, and its best trial if any."""
    objective, mode = study.objective, study.mode
    cols = [f"{metric_set}_{m}" for m in metrics]
    counts = group["status"].value_counts()
    ok = group[group["status"] == "FINISHED"]
    ok = ok[ok[[objective, *cols]].notna().all(axis=1)] \
        if all(c in ok for c in [objective, *cols]) else ok.iloc[0:0]
    base = {"section": "optuna", "stratum": stratum or "(all)",
            "n_trials": len(group), "n_finished": int(counts.get("FINISHED", 0)),
            "n_failed": int(counts.get("FAILED", 0)),
            "n_killed": int(counts.get("KILLED", 0)),
            "objective": f"{objective} ({mode})"}
    if ok.empty:
        return [{**base, "metric": m} for m in metrics]
    scores = ok[objective]
    best = ok.loc[scores.idxmax() if mode == "max" else scores.idxmin()]
    cfg = {k: v for k, v in best["config"].items() if k not in BOOKKEEPING}
    searched = study.searched if study.searched is not None else varying(ok)
    shown = "; ".join(f"{k}={short(cfg[k])}" for k in searched if k in cfg)
    return [{**base, "row": stratum or "(all)", "method": cfg.get("method", ""),
             "sampling_factor": cfg.get("sampling_factor", ""),
             "n_f": int(float(cfg["n_f"])) if "n_f" in cfg else None,
             "objective_value": float(best[objective]), "params": shown, "metric": m,
             "value": float(best[f"{metric_set}_{m}"]) * 100.0,
             "run_ids": best["run_id"], "run_name": best["run_name"]} for m in metrics]
