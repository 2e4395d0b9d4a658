"""The Table every renderer reads, and what a number in it is.

What a number in a table is (the tables' notes say the same):
- Only trial runs (tag fsvae.role=trial) of one parent run (results.store) that FINISHED
  and carry the metric are used. FAILED, KILLED (stopped early) and still RUNNING runs are
  counted in a note, never averaged in.
- Values are percent. One cell pools the seeds of ONE configuration: runs are grouped by every
  MLflow param (the trial's active config keys) except `seed` and the bookkeeping keys, so two
  configurations are never averaged together. Runs of one method that differ in another key
  become separate rows labelled with the keys that differ, e.g. `vae x30 [latent_dim=64]`.
- Several seeds: mean ± sample std (ddof=1) and n, and the 95% Student-t interval of the
  mean, mean ± t(0.975, n-1)·std/sqrt(n), cut to [0, 100]: a mean accuracy cannot lie
  outside, so the cut keeps the interval's coverage while it stops the interval from
  promising the impossible (with 2 seeds t is 12.71, and a spread of a few points reaches
  past 100). One seed: no std and no interval (nothing to use). Two seeds: a note says
  that their std and interval say little.
- No trial counts twice (study.record.read). Grid: the same configuration and seed
  finished twice: the run that started last is kept. Optuna: one run per trial (tag
  fsvae.trial_key, else fsvae.trial_id), its latest FINISHED run, else its latest run. The
  others are named in a note.
- Optuna studies: one row per stratum, the trial best by the study's *validation* objective
  (several objectives: each trial of the Pareto front), shown with its test metrics, so the
  test set never picks a configuration.
- acc_h is the mean of per-class accuracies within each group unless `acc_h="samples"`
  asks for the sample-weighted acc_h_samples (ACC_H below).
- `compare="A:B"`: per-seed paired differences A - B (see results.grid_compare).
- A confirmation (a grid study whose parent run names a search, tag fsvae.confirms): one row
  per rerun configuration, mean and 95% interval over its new seeds on val and test, beside
  its rank in the search (see results.confirm_table).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from fsvae.config import METHODS
from results import formats
from results.errors import ResultsError
from results.paper import SplitSizes
from results.store import Study
from study.record.schema import ROLE

FORMATS = ("markdown", "latex", "csv")
METRICS = ("acc_h", "acc")  # the paper's two columns per n_f
# Which acc_h a table shows (fsvae.metrics): the mean of per-class accuracies within the
# majority and the minority classes (CADA-VAE's convention, the default), or the accuracy
# over the images of each group (the sample-weighted reading of the paper's wording).
ACC_H = {"classes": "acc_h", "samples": "acc_h_samples"}
# Params that say where or how fast a trial ran, not what it computed: never split rows.
BOOKKEEPING = frozenset({"data", "data_workers", "device"})
PERCENT = (0.0, 100.0)  # where a mean accuracy in percent lies
FEW_SEEDS = 3  # below this many seeds a cell's std and interval say little


def table_metrics(acc_h: str) -> tuple[str, str]:
    """The metrics a table shows for an acc_h choice: ('acc_h', 'acc') for 'classes'."""
    if acc_h not in ACC_H:
        raise ResultsError(f"acc_h={acc_h!r}: expected one of {', '.join(ACC_H)}")
    return ACC_H[acc_h], "acc"


@dataclass
class Table:
    """What a renderer needs: tidy cells, row/column order, notes, optional comparisons."""

    study: Study
    metric_set: str
    cells: pd.DataFrame  # tidy: one row per (row, n_f, metric)
    rows: list[str]
    n_fs: list[int]
    notes: list[str] = field(default_factory=list)
    with_paper: bool = False
    comparisons: pd.DataFrame | None = None
    summaries: list[str] = field(default_factory=list)
    metrics: tuple[str, ...] = METRICS
    split_sizes: SplitSizes | None = None  # with the paper: our split sizes and its Table 1

    @property
    def kind(self) -> str:
        """grid, optuna, or confirm (store.Study.table_kind)."""
        return self.study.table_kind

    @property
    def title(self) -> str:
        if self.kind == "confirm":
            return (
                f"{self.study.name} (confirmation of the search {self.study.confirms}): "
                f"validation and test metrics, percent"
            )
        kind = "Optuna search" if self.study.kind == "optuna" else "grid study"
        return f"{self.study.name} ({kind}): {self.metric_set} metrics, percent"

    def to_markdown(self) -> str:
        return formats.markdown(self)

    def to_latex(self) -> str:
        return formats.latex(self)

    def to_csv(self) -> str:
        return formats.csv(self)

    def render(self, fmt: str) -> str:
        """The table as one of FORMATS (markdown, latex, csv)."""
        if fmt not in FORMATS:
            raise ResultsError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
        return {"markdown": formats.markdown, "latex": formats.latex, "csv": formats.csv}[fmt](self)

    def _repr_markdown_(self) -> str:
        """A notebook shows the table as rendered markdown."""
        return formats.markdown(self)


# -- a cell's number ------------------------------------------------------------------------


def summarize(values: Sequence[float], within: tuple[float, float] | None = None) -> dict:
    """mean, sample std (ddof=1), n and the 95% Student-t interval of the mean, cut to
    `within` where given (PERCENT for accuracies; differences are not cut).

    std and the interval are NaN for n < 2: one seed says nothing about the spread, and a
    made-up interval would look like evidence.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return {
            "mean": math.nan,
            "std": math.nan,
            "n": 0,
            "ci95_low": math.nan,
            "ci95_high": math.nan,
        }
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": 1, "ci95_low": math.nan, "ci95_high": math.nan}
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if within is not None:
        low, high = max(low, within[0]), min(high, within[1])
    return {"mean": mean, "std": std, "n": n, "ci95_low": low, "ci95_high": high}


def few_seeds_note(cells: pd.DataFrame) -> str | None:
    """The note naming the rows with a cell of 2 seeds (up to FEW_SEEDS): their std and
    interval rest on two values."""
    few = cells[(cells["n"] >= 2) & (cells["n"] < FEW_SEEDS)]
    if few.empty:
        return None
    t = {k: float(stats.t.ppf(0.975, k - 1)) for k in (2, 3, 5)}
    rows = list(dict.fromkeys(few["row"]))
    return (
        f"Cells over 2 seeds (rows {', '.join(rows)}): their std and 95% interval rest "
        f"on two values and say little (the interval is the mean ± {t[2]:.2f} standard "
        f"errors; with 3 seeds ± {t[3]:.2f}, with 5 ± {t[5]:.2f})."
    )


# -- the order of rows ----------------------------------------------------------------------


def num_key(value: str) -> tuple:
    """Sorts '5' < '10' < 'abc': numbers by value, then text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def method_key(method: str) -> tuple:
    """The paper's row order (plain, oversample, vae), then our ablations, then the rest."""
    return (METHODS.index(method), "") if method in METHODS else (len(METHODS), method)


def stratum_key(stratum: str) -> list:
    """Orders strata such as 'n_f=5' < 'n_f=10' by their values."""
    return [(k, num_key(v)) for k, _, v in (p.partition("=") for p in stratum.split(",") if p)]


def varying(runs: pd.DataFrame) -> list[str]:
    """Keys whose value differs between runs (bookkeeping aside): what a search without
    space.json varied."""
    dicts = [{k: v for k, v in c.items() if k not in BOOKKEEPING} for c in runs["config"]]
    keys = sorted({k for d in dicts for k in d})
    return [k for k in keys if len({d.get(k) for d in dicts}) > 1]


# -- the notes on what a table leaves out ---------------------------------------------------


def status_notes(trials: pd.DataFrame) -> list[str]:
    """The runs a table leaves out, counted by why (always shown, zeros included)."""
    counts = trials["status"].value_counts()
    failed, killed = int(counts.get("FAILED", 0)), int(counts.get("KILLED", 0))
    notes = [
        f"Not shown: {failed} failed run{'s' * (failed != 1)} (status FAILED), "
        f"{killed} stopped run{'s' * (killed != 1)} (status KILLED)."
    ]
    running = int(counts.get("RUNNING", 0)) + int(counts.get("SCHEDULED", 0))
    if running:
        notes.append(f"{running} run{'s' * (running != 1)} still running, not shown.")
    return notes


def no_finished(study: Study) -> ResultsError:
    """The error for a study with nothing to show, saying what it does hold."""
    counts = study.trials["status"].value_counts()
    held = ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"
    other = f"; {study.n_other} other run(s) not tagged {ROLE}=trial/study" if study.n_other else ""
    return ResultsError(
        f"experiment {study.name!r} has no finished trial runs, nothing to "
        f"show (trial runs: {held}{other})"
    )


def uncounted_note(run_ids: list[str]) -> str:
    """The note naming runs of a trial that another run of it stands for."""
    shown = ", ".join(run_ids[:5]) + (", ..." if len(run_ids) > 5 else "")
    return (
        f"{len(run_ids)} more run(s) of a trial counted once (same trial key; its latest "
        f"finished run, else its latest run, is counted) not counted: {shown}."
    )
