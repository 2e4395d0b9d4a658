"""A study's record read back from MLflow: the one reader that the study, the tables,
figures, analyses, confirmations and model logging all use (docs/failures.md, docs/tables.md).

- **Which runs.** A study is its parent run (tag fsvae.role=study); its trial runs name it
  (mlflow.parentRunId), and a trial is its key (fsvae.trial_key) under that parent: keys
  are unique within one parent only, so every look-up goes through it.
- **The run that counts for a key.** Its FINISHED run, else its latest (`precedence`). A
  FINISHED run is never replaced, so a key has at most one.
- **The objectives.** A parent run tags fsvae.objective "val_acc_h" and fsvae.mode "max";
  a multi-objective search joins them with commas ("val_acc_h,val_acc", "max,max"); a
  space gives a name or a list. The first objective is the primary one.
- **The order.** Candidates are the FINISHED trials with a value of every objective,
  ordered best first by the objectives in turn (a tie on the primary goes to the next
  objective). A tie on all of them goes to the lowest Optuna trial number (a search's
  trial `n_f=5#3` is number 3), else to the earliest run (a grid's trials have no number):
  `tie_break`. The console, `analyze`, `table`, `confirm`, `figures`, `predict` and
  `analyze --log-best` all order by these functions. Only validation metrics are
  objectives, so the test set never orders trials. Validation sets are small (the
  minority classes keep `n_f` images), so ties are common.
- **The best trials.** With one objective, the first in that order, alone. With several,
  no one trial is best: the best trials are the Pareto front (Optuna's
  `Study.best_trials`: those no other candidate equals or beats on every objective while
  beating on one; equal trials all stay), in that order. The first of the order is always
  on the front, so the front's first trial is the best by the primary objective, and a
  ranking (a confirmation's top configurations) starts with it.

Reads use MlflowClient (the study's entries) or a pandas frame of runs (the tables); the
rules are these functions either way. No Ray, Optuna or MLflow import at module level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from study.record.schema import ERROR, FAILURE, INTERRUPTED, PARENT, POINT, STOPPED, TRIAL_KEY


def short_key(key: str) -> str:
    """The name a trial goes by wherever a user meets it (console, MLflow run name, tables,
    analyses): its key, a grid's hash cut to 8 characters ("grid:1a2b3c4d")."""
    return key[: len("grid:") + 8] if key.startswith("grid:") else key


def precedence(status: str, start_time) -> tuple:
    """Sort key of a key's runs: the last one sorted is the run that counts (FINISHED
    first, then the latest)."""
    return (status == "FINISHED", start_time or 0)


@dataclass
class Entry:
    """The run that counts for one trial key: its FINISHED run, else its latest."""

    key: str
    run_id: str
    status: str  # FINISHED, FAILED, KILLED or RUNNING, as MLflow has it
    start_time: int
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # every active run of the key, this one included: what a new attempt replaces
    runs: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        """finished | failed | stopped (ended early by a scheduler) | unfinished."""
        if self.status == "FINISHED":
            return "finished"
        if self.status == "FAILED":
            return "failed"
        if self.status == "KILLED" and STOPPED in self.tags:
            return "stopped"
        return "unfinished"  # RUNNING when its driver died, or KILLED by an interruption

    @property
    def point(self) -> dict | None:
        """What the study handed the trial (tag fsvae.point), None for a run written before
        that tag existed."""
        try:
            return json.loads(self.tags[POINT])
        except (KeyError, ValueError):
            return None

    @property
    def reason(self) -> str:
        return self.tags.get(ERROR, "")

    @property
    def failure(self) -> str:
        """Who failed: "trial" (its own code) or "infrastructure"."""
        return self.tags.get(FAILURE, "trial")


def choose_parent(parents: list[tuple[str, object, int]], asked: str | None = None) -> int:
    """Which of an experiment's parent runs, given as (run id, start time, number of trial
    runs) in start order, a reader reads: `asked` (a run id), else the latest that has
    trial runs (a driver stopped before any trial leaves one with none), else the latest.
    Returns its index; ValueError when `asked` is not among them."""
    if asked:
        hits = [i for i, (run_id, _, _) in enumerate(parents) if run_id == asked]
        if not hits:
            raise ValueError(asked)
        return hits[-1]
    full = [i for i, (_, _, n) in enumerate(parents) if n > 0]
    return (full or list(range(len(parents))))[-1]


def frame(entries: dict[str, Entry]) -> pd.DataFrame:
    """Entries as the frame the rules below take: run_id, trial_key, status, start_time and
    one column per metric."""
    rows = [
        {
            "run_id": e.run_id,
            "trial_key": e.key,
            "status": e.status,
            "start_time": e.start_time,
            **e.metrics,
        }
        for e in entries.values()
    ]
    return pd.DataFrame(
        rows, columns=None if rows else ["run_id", "trial_key", "status", "start_time"]
    )


PAGE = 50000  # the most runs MLflow's stores return in one page


def search(client, experiment_id: str, filter_string: str = "") -> list:
    """Every active run of an experiment that `filter_string` keeps, page after page: the
    one way the study and `results/` fetch runs (a client of the store, no global tracking
    URI)."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=PAGE, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def runs_frame(runs: list) -> pd.DataFrame:
    """Runs as mlflow.search_runs(output_format="pandas") gives them: run_id, experiment_id,
    status, artifact_uri, start_time and end_time (UTC timestamps), then metrics.<k>,
    params.<k>, tags.<k> (missing: NaN for a metric, None otherwise)."""
    info = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    rows = []
    for run in runs:
        row = {k: getattr(run.info, k) for k in info}
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=None if rows else info)
    for k in ("start_time", "end_time"):
        frame[k] = pd.to_datetime(frame[k], unit="ms", utc=True)
    for k in frame.columns:
        if k.startswith("metrics."):
            frame[k] = frame[k].astype(float)
        elif k.startswith(("params.", "tags.")):
            frame[k] = frame[k].astype(object).where(frame[k].notna(), None)
    return frame


def read(client, experiment_id: str, parent_id: str) -> dict[str, Entry]:
    """key -> the run that counts for it (its FINISHED run, else its latest), for every
    child run of the study's parent run: keys are unique within one parent only."""
    return counted(search(client, experiment_id, f"tags.`{PARENT}` = '{parent_id}'"))


def counted(runs: list) -> dict[str, Entry]:
    """read() on runs already fetched (a study's trial runs): key -> the run that counts."""
    out: dict[str, Entry] = {}
    for run in sorted(runs, key=lambda r: precedence(r.info.status, r.info.start_time)):
        key = run.data.tags.get(TRIAL_KEY)
        if key is None:
            continue
        seen = out[key].runs if key in out else []
        out[key] = Entry(
            key=key,
            run_id=run.info.run_id,
            status=run.info.status,
            start_time=run.info.start_time or 0,
            metrics=dict(run.data.metrics),
            params=dict(run.data.params),
            tags=dict(run.data.tags),
            runs=seen + [run.info.run_id],
        )
    return dict(sorted(out.items(), key=lambda kv: kv[1].start_time))


def close_stale(client, entries: dict[str, Entry], why: str, check=None) -> int:
    """Runs still RUNNING when no trial of the study can be running (its driver is starting,
    or its Ray is down): their processes are gone. They become KILLED, tagged as
    interrupted, and their trials run again. Each is read again just before, so that a run
    that finished since `entries` were read stays FINISHED; `check()`, the study's lease
    (study/identity/lease.py), before each is closed. Returns how many were closed."""
    closed = 0
    for entry in entries.values():
        if entry.status != "RUNNING":
            continue
        now = client.get_run(entry.run_id).info.status
        if now != "RUNNING":
            entry.status = now
            continue
        if check is not None:
            check()
        client.set_tag(entry.run_id, INTERRUPTED, why)
        client.set_terminated(entry.run_id, "KILLED")
        entry.status = "KILLED"
        entry.tags[INTERRUPTED] = why
        closed += 1
    return closed


# -- the rules on a frame of runs (results/store.Study.trials) ----------------------

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
    keys = [precedence(s, t) for s, t in zip(trials["status"], trials["start_time"])]
    ordered = trials.assign(_precedence=keys).sort_values("_precedence", kind="stable")
    extra = ordered.duplicated("trial_key", keep="last")
    kept = ordered[~extra].drop(columns="_precedence").sort_values("start_time", kind="stable")
    others = ordered[extra].sort_values("start_time", kind="stable")
    return kept, list(others["run_id"])


def candidates(trials: pd.DataFrame, objectives: list[Goal]) -> pd.DataFrame:
    """The FINISHED trials with a value of every objective."""
    names = [o for o, _ in objectives]
    ok = trials[trials["status"] == "FINISHED"]
    if not all(n in ok for n in names):
        return ok.iloc[0:0]
    return ok[ok[names].notna().all(axis=1)]


def trial_number(key: str | None) -> float:
    """A search trial's Optuna number from its key ("n_f=5#3" -> 3.0; "#3" -> 3.0); NaN
    for a grid's ("grid:1a2b...") or an unknown key."""
    head, hash_, tail = str(key or "").rpartition("#")
    return float(tail) if hash_ and tail.isdigit() else float("nan")


def tie_break(key: str | None, start_time) -> tuple[float, float]:
    """Among trials equal on every objective, the first in the order: the lowest Optuna
    trial number, else the earliest run start (ms, or any increasing count)."""
    number = trial_number(key)
    return (number if number == number else float("inf"), float(start_time or 0))


def best_of(candidates: list[tuple], mode: str) -> tuple | None:
    """The best of (value, trial key, start time, ...) tuples by one objective (`mode`
    max or min), ties by tie_break: the rule of `order` for a few values at hand (the
    console's best so far)."""
    sign = -1.0 if mode == "max" else 1.0
    return min(candidates, key=lambda c: (sign * c[0], *tie_break(c[1], c[2])), default=None)


def order(trials: pd.DataFrame, objectives: list[Goal]) -> pd.DataFrame:
    """The candidates, best first: by the objectives in turn, ties by tie_break (the
    lowest Optuna trial number, taken from a `number` column where there is one, else from
    `trial_key`; then the earliest `start_time`)."""
    ok = candidates(trials, objectives)
    if ok.empty:
        return ok
    if "number" in ok:
        numbers = pd.to_numeric(ok["number"], errors="coerce")
    elif "trial_key" in ok:
        numbers = ok["trial_key"].map(trial_number)
    else:
        numbers = pd.Series(float("nan"), index=ok.index)
    ties = ok.assign(_number=numbers.fillna(float("inf")))
    ties = ties.sort_values(["_number", "start_time"], kind="stable")
    ranked = ties.sort_values(
        [o for o, _ in objectives], kind="stable", ascending=[m == "min" for _, m in objectives]
    )
    return ranked.drop(columns="_number")


def best_trials(trials: pd.DataFrame, objectives: list[Goal]) -> pd.DataFrame:
    """One objective: the best candidate (ties: tie_break). Several: the Pareto front,
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
