"""The Table every renderer reads: tidy cells in a DataFrame, row and column order, notes.

What a number in a table is (the tables' notes say the same):
- Only trial runs (tag fsvae.role=trial) that FINISHED and carry the metric are used. FAILED,
  KILLED (stopped early) and still RUNNING runs are counted in a note, never averaged in.
- Values are percent. One cell pools the seeds of ONE configuration: runs are grouped by every
  MLflow param (the trial's active config keys) except `seed` and the bookkeeping keys, so two
  configurations are never averaged together. Runs of one method that differ in another key
  become separate rows labelled with the keys that differ, e.g. `vae x30 [latent_dim=64]`.
- Several seeds: mean ± sample std (ddof=1) and n; the CSV adds the 95% Student-t interval
  mean ± t(0.975, n-1)·std/sqrt(n), left empty for n < 2 (one seed has no spread to use).
- No trial counts twice. Grid: the same configuration and seed finished twice (e.g. a study
  run twice under one name): the run that started last is kept. Optuna: one run per trial
  (tag fsvae.trial_key, else fsvae.trial_id), its latest FINISHED run, else its latest run.
  The others are named in a note.
- Optuna studies: one row per stratum, the trial best by the study's *validation* objective
  (parent tags fsvae.objective / fsvae.mode), shown with its test metrics, so the test set
  never picks a configuration.
- acc_h is the mean of per-class accuracies within each group unless `acc_h="samples"`
  asks for the sample-weighted acc_h_samples (ACC_H below).
- `compare="A:B"`: per-seed paired differences A - B (see results.compare).
- A confirmation (a grid study whose parent run names a search, tag fsvae.confirms): one row
  per rerun configuration, mean and 95% interval over its new seeds on val and test, beside
  its rank in the search (see results.confirm).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from results.errors import ResultsError
from results.latex import to_latex
from results.markdown import to_markdown
from results.store import Study
from results.tidy import to_csv

if TYPE_CHECKING:
    from results.paper import SplitSizes

FORMATS = ("markdown", "latex", "csv")
METRICS = ("acc_h", "acc")  # the paper's two columns per n_f
# Which acc_h a table shows (fsvae.metrics): the mean of per-class accuracies within the
# majority and the minority classes (CADA-VAE's convention, the default), or the accuracy
# over the images of each group (the sample-weighted reading of the paper's wording).
ACC_H = {"classes": "acc_h", "samples": "acc_h_samples"}


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
        """grid, optuna, or confirm: a grid study that reran a search's best configurations
        with new seeds (its parent run names the search, results.confirm)."""
        return "confirm" if self.study.confirms else self.study.kind

    @property
    def title(self) -> str:
        if self.kind == "confirm":
            return (f"{self.study.name} (confirmation of the search {self.study.confirms}): "
                    f"validation and test metrics, percent")
        kind = "Optuna search" if self.study.kind == "optuna" else "grid study"
        return f"{self.study.name} ({kind}): {self.metric_set} metrics, percent"

    def to_markdown(self) -> str:
        return to_markdown(self)

    def to_latex(self) -> str:
        return to_latex(self)

    def to_csv(self) -> str:
        return to_csv(self)

    def render(self, fmt: str) -> str:
        """The table as one of FORMATS (markdown, latex, csv)."""
        if fmt not in FORMATS:
            raise ResultsError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
        return {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](self)

    def _repr_markdown_(self) -> str:
        """A notebook shows the table as rendered markdown."""
        return to_markdown(self)
