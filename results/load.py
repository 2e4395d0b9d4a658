"""One study's table, as `fsvae-study table` prints it: the record read (results/store.py)
and the table of its kind built (grid, search or confirmation)."""

from __future__ import annotations

from pathlib import Path

from results.confirm_table import confirm_table
from results.errors import ResultsError
from results.grid import grid_table
from results.grid_compare import parse_compare
from results.search import search_table
from results.store import Study, load_study, store_uri
from results.table import Table, table_metrics
from study.record.costs import describe, totals

METRIC_SETS = ("test", "val")


def load_table(
    experiment: str,
    tracking_uri: str | None = None,
    storage: str | Path | None = None,
    metric_set: str = "test",
    with_paper: bool = False,
    compare: str | None = None,
    acc_h: str = "classes",
    parent_run: str | None = None,
) -> Table:
    """The table of one study (MLflow experiment), as `fsvae-study table` prints it.

    tracking_uri: an MLflow tracking URI; else the sqlite store under `storage` (default
    ./fsvae-studies). metric_set: "test" or "val". with_paper: add the paper's Table 2
    numbers and our difference (test metrics only; not for a confirmation, whose table
    shows val and test). compare: "A:B", per-seed paired
    differences of method A minus method B (grid studies). acc_h: "classes" (the mean of
    per-class accuracies within each group, CADA-VAE's) or "samples" (acc_h_samples, over
    the images of each group). parent_run: which of the experiment's parent runs (studies
    run under its name) to read, by run id; default the latest, and a note names the
    others. ResultsError (a ValueError) names a bad option, a missing store, experiment or
    parent run.
    """
    if metric_set not in METRIC_SETS:
        raise ResultsError(f"metric_set={metric_set!r}: expected one of {', '.join(METRIC_SETS)}")
    table_metrics(acc_h)  # a bad choice fails before MLflow is read
    if compare:
        parse_compare(compare)
    study = load_study(experiment, store_uri(tracking_uri, storage), parent_run)
    return build_table(study, metric_set, with_paper, compare, acc_h)


def build_table(
    study: Study,
    metric_set: str = "test",
    with_paper: bool = False,
    compare: str | None = None,
    acc_h: str = "classes",
) -> Table:
    """The table for the study's kind (grid: Table 2 layout; optuna: best per stratum;
    a confirmation: its configurations over the new seeds, val and test), with the notes
    on what was read (the study's other parent runs)."""
    table = _table_of_kind(study, metric_set, with_paper, compare, table_metrics(acc_h))
    table.notes += study.notes
    spent = totals(study.trials.to_dict("records"))
    if spent["trials"]:
        table.notes.append(
            f"Cost of the study's trial runs: {describe(spent)} "
            f"(docs/studies.md#what-a-study-costs)."
        )
    return table


def _table_of_kind(
    study: Study, metric_set: str, with_paper: bool, compare: str | None, metrics: tuple[str, str]
) -> Table:
    if study.confirms:
        if compare or with_paper:
            raise ResultsError(
                f"experiment {study.name!r} confirms the search "
                f"{study.confirms!r}: its table shows each configuration over "
                f"the new seeds; --compare and --with-paper apply to grid "
                f"studies"
            )
        return confirm_table(study, metrics)
    if study.kind == "optuna":
        if compare:
            raise ResultsError(
                "--compare pairs seeds of grid studies; this experiment is an "
                "Optuna search (one best trial per stratum)"
            )
        return search_table(study, metric_set, with_paper, metrics)
    return grid_table(study, metric_set, with_paper, compare, metrics)
