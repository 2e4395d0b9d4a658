"""A grid study's table in the paper's Table 2 layout: one row per configuration, one column
pair (acc_h, acc) per n_f, seeds pooled into mean ± std."""
from __future__ import annotations

import pandas as pd

from results.compare import compare_runs
from results.labels import row_order
from results.paper import PAPER_SOURCE, SplitSizes, acc_h_note, merge_paper, missing_rows
from results.runs import finished_runs
from results.stats import summarize
from results.store import Study, read_split_sizes
from results.table import METRICS, Table


def grid_table(study: Study, metric_set: str = "test", with_paper: bool = False,
               compare: str | None = None, metrics: tuple[str, ...] = METRICS) -> Table:
    """Table 2's layout: rows = method (+ sampling factor, + differing keys), columns = n_f
    with acc_h and acc (`metrics`), cells = mean ± std over seeds in percent."""
    runs, notes = finished_runs(study, metric_set, metrics)
    records = []
    for (row, n_f), group in runs.groupby(["row", "n_f"], sort=False):
        first = group.iloc[0]
        for m in metrics:
            values = group[f"{metric_set}_{m}"] * 100.0
            records.append({
                "section": "table", "row": row, "method": first["method"],
                "sampling_factor": first["sampling_factor"],
                "params": first["params"],
                "n_f": int(n_f), "metric": m, **summarize(values.to_numpy()),
                "seeds": ";".join(map(str, group["seed"])),
                "run_ids": ";".join(group["run_id"])})
    cells = pd.DataFrame(records)
    table = Table(study=study, metric_set=metric_set, cells=cells, rows=row_order(runs),
                  n_fs=sorted(runs["n_f"].unique().tolist()), notes=notes,
                  metrics=tuple(metrics))
    table.notes.insert(0, "Cells: mean ± std over seeds (sample std, ddof=1), n = seeds; "
                          "one configuration per row (keys in "
                          "[brackets] differ between rows of a method); 95% Student-t "
                          "intervals and run ids in --format csv.")
    if with_paper:
        _add_paper(table)
    if compare:
        table.comparisons, table.summaries = compare_runs(runs, compare, metric_set, metrics)
    return table


def _add_paper(table: Table) -> None:
    """Adds `paper` and `diff` (ours - paper, points) to the cells the paper also reports,
    and the split sizes of the runs behind them beside the paper's."""
    table.cells = merge_paper(table.cells, table.metric_set, "mean", table.metrics[0])
    table.with_paper = True
    missing = missing_rows(table.cells)
    table.notes.append(f"paper: {PAPER_SOURCE}, test set, percent; diff = ours - paper "
                       f"(points). {acc_h_note(table.metrics[0])}"
                       + (f" Paper rows with no runs here: {', '.join(missing)}."
                          if missing else ""))
    run_ids = sorted({r for ids in table.cells["run_ids"] for r in ids.split(";")})
    table.split_sizes = SplitSizes.of(read_split_sizes(table.study, run_ids))
    table.notes.append(table.split_sizes.note())
