"""Which of a study's trial runs count, and which are best: the rules every table, figure
and analysis applies (and `fsvae-study confirm`, which reruns the best).

Only pandas and numpy here, so that study/ can take these rules over as they are.

- **One run per trial.** A trial is its key (tag fsvae.trial_key, README "Failures and
  resuming"). A study re-run under one name, or a retry that did not replace its run,
  leaves several runs of one key: its latest FINISHED run counts, else its latest run.
- **The objectives.** A parent run tags fsvae.objective "val_acc_h" and fsvae.mode "max";
  a multi-objective search joins them with commas ("val_acc_h,val_acc", "max,max"); a
  space gives a name or a list. The first objective is the primary one.
- **The order.** Candidates are the FINISHED trials with a value of every objective,
  ordered best first by the objectives in turn (a tie on the primary goes to the next
  objective, then to the earlier trial). Only validation metrics are objectives, so the
  test set never orders trials.
- **The best trials.** With one objective, the first in that order, alone. With several,
  no one trial is best: the best trials are the Pareto front (Optuna's
  `Study.best_trials`: those no other candidate equals or beats on every objective while
  beating on one; equal trials all stay), in that order. The first of the order is always
  on the front, so the front's first trial is the best by the primary objective, and a
  ranking (a confirmation's top configurations) starts with it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_OBJECTIVE, DEFAULT_MODE = "val_acc_h", "max"

Goal = tuple[str, str]  # (objective, "max" | "min")


def goals(objective: str | list[str] | None, mode: str | list[str] | None) -> list[Goal]:
    """[(objective, mode), ...], the primary first, from a parent run's tags (names joined
    by commas) or a space's values (a name or a list); missing: val_acc_h, max. One mode
    for several objectives applies to each."""
    names = _split(objective) or [DEFAULT_OBJECTIVE]
    modes = _split(mode) or [DEFAULT_MODE]
    return list(zip(names, modes if len(modes) == len(names) else modes[:1] * len(names)))


def _split(value: str | list[str] | None) -> list[str]:
    items = value if isinstance(value, list) else (value or "").split(",")
    return [str(v).strip() for v in items if str(v).strip()]


def one_run_per_trial(trials: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The run that counts for each trial key: its latest FINISHED one if any, else its
    latest. Returns the runs kept, in start order, and the ids of the others so a note can
    name them. `trials` has the columns trial_key, status, start_time and run_id."""
    ordered = trials.assign(_finished=trials["status"] == "FINISHED").sort_values(
        ["_finished", "start_time"], kind="stable")
    extra = ordered.duplicated("trial_key", keep="last")
    kept = ordered[~extra].drop(columns="_finished").sort_values("start_time", kind="stable")
    others = ordered[extra].sort_values("start_time", kind="stable")
    return kept, list(others["run_id"])


def candidates(trials: pd.DataFrame, objectives: list[Goal]) -> pd.DataFrame:
    """The FINISHED trials with a value of every objective."""
    names = [o for o, _ in objectives]
    ok = trials[trials["status"] == "FINISHED"]
    if not all(n in ok for n in names):
        return ok.iloc[0:0]
    return ok[ok[names].notna().all(axis=1)]


def order(trials: pd.DataFrame, objectives: list[Goal]) -> pd.DataFrame:
    """The candidates, best first: by the objectives in turn, then the earlier trial."""
    ok = candidates(trials, objectives)
    if ok.empty:
        return ok
    by_start = ok.sort_values("start_time", kind="stable")
    return by_start.sort_values([o for o, _ in objectives], kind="stable",
                                ascending=[m == "min" for _, m in objectives])


def best_trials(trials: pd.DataFrame, objectives: list[Goal]) -> pd.DataFrame:
    """One objective: the best candidate (ties: the earlier). Several: the Pareto front,
    best first by the objectives in turn. Empty when there is no candidate."""
    ranked = order(trials, objectives)
    if len(objectives) == 1:
        return ranked.head(1)
    return ranked[on_front(ranked[[o for o, _ in objectives]], [m for _, m in objectives])]


def on_front(values: pd.DataFrame, modes: list[str]) -> pd.Series:
    """True for the rows of `values` (one column per objective, in order of `modes`: max or
    min) that no other row dominates: is at least as good on every objective and strictly
    better on one. Equal rows do not dominate each other."""
    signs = np.array([1.0 if m == "max" else -1.0 for m in modes])
    scores = values.to_numpy(dtype=float) * signs  # every objective maximised
    front = [not _dominated(row, scores) for row in scores]
    return pd.Series(front, index=values.index, dtype=bool)


def _dominated(row: np.ndarray, scores: np.ndarray) -> bool:
    return bool(((scores >= row).all(axis=1) & (scores > row).any(axis=1)).any())
