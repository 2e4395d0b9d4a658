"""Which trial runs a table counts, never one trial twice; the notes say what was left out."""
from __future__ import annotations

import pandas as pd

from results.errors import ResultsError
from results.labels import row_labels
from results.store import Study
from study.schema import ROLE

# Params that say where or how fast a trial ran, not what it computed: never split rows.
BOOKKEEPING = frozenset({"data", "data_workers", "device"})
NAMED = ("method", "sampling_factor", "n_f", "seed")  # keys a row label or column already shows


def status_notes(trials: pd.DataFrame) -> list[str]:
    """The runs a table leaves out, counted by why (always shown, zeros included)."""
    counts = trials["status"].value_counts()
    failed, killed = int(counts.get("FAILED", 0)), int(counts.get("KILLED", 0))
    notes = [f"Not shown: {failed} failed run{'s' * (failed != 1)} (status FAILED), "
             f"{killed} stopped run{'s' * (killed != 1)} (status KILLED)."]
    running = int(counts.get("RUNNING", 0)) + int(counts.get("SCHEDULED", 0))
    if running:
        notes.append(f"{running} run{'s' * (running != 1)} still running, not shown.")
    return notes


def no_finished(study: Study) -> ResultsError:
    """The error for an experiment with nothing to show, saying what it does hold."""
    counts = study.trials["status"].value_counts()
    held = ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"
    other = (f"; {study.n_other} other run(s) not tagged {ROLE}=trial/study"
             if study.n_other else "")
    return ResultsError(f"experiment {study.name!r} has no finished trial runs, nothing to "
                        f"show (trial runs: {held}{other})")


def finished_runs(study: Study, metric_set: str, metrics: tuple[str, ...]
                  ) -> tuple[pd.DataFrame, list[str]]:
    """The runs a grid table uses, labelled, with duplicates removed; plus the notes saying
    what was left out and why.

    Columns: run_id, start_time, method, sampling_factor ('' when unused), n_f (int), seed,
    extra (sorted (key, value) pairs of every other non-bookkeeping param), row (label),
    params (the keys the label shows) and the metric columns.
    """
    trials = study.trials
    cols = [f"{metric_set}_{m}" for m in metrics]
    notes = status_notes(trials)
    fin = trials[trials["status"] == "FINISHED"]
    if fin.empty:
        raise no_finished(study)
    has = fin[cols].notna().all(axis=1) if all(c in fin for c in cols) else \
        pd.Series(False, index=fin.index)
    if (~has).any():
        notes.append(f"{int((~has).sum())} finished run(s) without {' or '.join(cols)}, "
                     f"not shown.")
    fin = fin[has]
    if fin.empty:
        raise ResultsError(f"experiment {study.name!r}: no finished trial run has "
                           f"{' and '.join(cols)}")
    with_nf = fin[["n_f" in c for c in fin["config"]]]
    if len(with_nf) < len(fin):
        notes.append(f"{len(fin) - len(with_nf)} finished run(s) without an n_f param, not "
                     f"shown.")
    if with_nf.empty:
        raise ResultsError(f"experiment {study.name!r}: no finished trial run has an n_f "
                           f"param (params: the trial's config keys)")
    runs = pd.DataFrame([_described(r, cols) for r in with_nf.itertuples(index=False)])
    runs, dropped = _drop_duplicates(runs)
    if dropped:
        shown = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        notes.append(f"{len(dropped)} duplicate run(s) (same config and seed as a later run) "
                     f"ignored, the latest kept: {shown}.")
    runs["row"], runs["params"] = row_labels(runs)
    return runs, notes


def _described(run, cols: list[str]) -> dict:
    """One run as a grid table groups it: its configuration split into the keys a label
    or column shows and the rest (`extra`), and its metric values."""
    cfg = {k: v for k, v in run.config.items() if k not in BOOKKEEPING}
    return {"run_id": run.run_id, "start_time": run.start_time,
            "method": cfg.get("method", "?"), "sampling_factor": cfg.get("sampling_factor", ""),
            "n_f": int(float(cfg["n_f"])), "seed": cfg.get("seed", ""),
            "extra": tuple(sorted((k, v) for k, v in cfg.items() if k not in NAMED)),
            **{c: getattr(run, c) for c in cols}}


def _drop_duplicates(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Same configuration and seed twice: keep the run that started last (it is the one the
    study would have produced now); return the ids of the others so a note can name them."""
    key = ["method", "sampling_factor", "extra", "n_f", "seed"]
    ordered = runs.sort_values("start_time", kind="stable")
    dup = ordered.duplicated(subset=key, keep="last")
    return ordered[~dup].reset_index(drop=True), list(ordered.loc[dup, "run_id"])


def one_run_per_trial(trials: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One run per trial key (a study re-run under one name, or a retry that did not replace
    its run, leaves several): the latest FINISHED one if any, else the latest. Returns the
    runs kept, in start order, and the ids of the others so a note can name them."""
    ordered = trials.assign(_finished=trials["status"] == "FINISHED").sort_values(
        ["_finished", "start_time"], kind="stable")
    extra = ordered.duplicated("trial_key", keep="last")
    kept = ordered[~extra].drop(columns="_finished").sort_values("start_time", kind="stable")
    others = ordered[extra].sort_values("start_time", kind="stable")
    return kept, list(others["run_id"])


def uncounted_note(run_ids: list[str]) -> str:
    """The note naming runs of a trial that another run of it stands for."""
    shown = ", ".join(run_ids[:5]) + (", ..." if len(run_ids) > 5 else "")
    return (f"{len(run_ids)} more run(s) of a trial counted once (same trial key; its latest "
            f"finished run, else its latest run, is counted) not counted: {shown}.")


def varying(runs: pd.DataFrame) -> list[str]:
    """Keys whose value differs between runs: what a search without space.json varied."""
    dicts = [{k: v for k, v in c.items() if k not in BOOKKEEPING} for c in runs["config"]]
    keys = sorted({k for d in dicts for k in d})
    return [k for k in keys if len({d.get(k) for d in dicts}) > 1]
