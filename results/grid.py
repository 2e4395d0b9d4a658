"""A grid study's table in the paper's Table 2 layout: one row per configuration, one column
pair (acc_h, acc) per n_f, seeds pooled into mean ± std; with --compare A:B, the paired
per-seed differences of method A minus method B beside it (results.grid_compare)."""

from __future__ import annotations

import pandas as pd

from results.errors import ResultsError
from results.grid_compare import compare_runs
from results.paper import PAPER_SOURCE, SplitSizes, acc_h_note, merge_paper, missing_rows
from results.store import Study, read_split_sizes
from results.table import (
    BOOKKEEPING,
    METRICS,
    PERCENT,
    Table,
    few_seeds_note,
    method_key,
    no_finished,
    num_key,
    status_notes,
    summarize,
)

NAMED = ("method", "sampling_factor", "n_f", "seed")  # keys a row label or column already shows


def grid_table(
    study: Study,
    metric_set: str = "test",
    with_paper: bool = False,
    compare: str | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> Table:
    """Table 2's layout: rows = method (+ sampling factor, + differing keys), columns = n_f
    with acc_h and acc (`metrics`), cells = mean ± std over seeds in percent."""
    runs, notes = finished_runs(study, metric_set, metrics)
    records = []
    for (row, n_f), group in runs.groupby(["row", "n_f"], sort=False):
        first = group.iloc[0]
        for m in metrics:
            values = group[f"{metric_set}_{m}"] * 100.0
            records.append(
                {
                    "section": "table",
                    "row": row,
                    "method": first["method"],
                    "sampling_factor": first["sampling_factor"],
                    "params": first["params"],
                    "n_f": int(n_f),
                    "metric": m,
                    **summarize(values.to_numpy(), PERCENT),
                    "seeds": ";".join(map(str, group["seed"])),
                    "run_ids": ";".join(group["run_id"]),
                }
            )
    cells = pd.DataFrame(records)
    rows = row_order(runs)
    table = Table(
        study=study,
        metric_set=metric_set,
        cells=cells,
        rows=rows,
        n_fs=sorted(runs["n_f"].unique().tolist()),
        notes=notes,
        metrics=tuple(metrics),
    )
    table.notes.insert(
        0,
        "Cells: mean ± std over seeds (sample std, ddof=1), n = seeds; "
        "one configuration per row (keys in "
        "[brackets] differ between rows of a method); 95% Student-t "
        "intervals (cut to [0, 100]) and run ids in --format csv.",
    )
    few = few_seeds_note(cells)
    if few:
        table.notes.append(few)
    if with_paper:
        _add_paper(table)
    if compare:
        table.comparisons, table.summaries = compare_runs(runs, compare, metric_set, metrics, rows)
    return table


def _add_paper(table: Table) -> None:
    """Adds `paper` and `diff` (ours - paper, points) to the cells the paper also reports,
    and the split sizes of the runs behind them beside the paper's."""
    table.cells = merge_paper(table.cells, table.metric_set, "mean", table.metrics[0])
    table.with_paper = True
    missing = missing_rows(table.cells)
    table.notes.append(
        f"paper: {PAPER_SOURCE}, test set, percent; diff = ours - paper "
        f"(points). {acc_h_note(table.metrics[0])}"
        + (f" Paper rows with no runs here: {', '.join(missing)}." if missing else "")
    )
    run_ids = sorted({r for ids in table.cells["run_ids"] for r in ids.split(";")})
    table.split_sizes = SplitSizes.of(read_split_sizes(table.study, run_ids))
    table.notes.append(table.split_sizes.note())


# -- the runs and their rows ----------------------------------------------------------------


def finished_runs(
    study: Study, metric_set: str, metrics: tuple[str, ...]
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
    has = (
        fin[cols].notna().all(axis=1)
        if all(c in fin for c in cols)
        else pd.Series(False, index=fin.index)
    )
    if (~has).any():
        notes.append(f"{int((~has).sum())} finished run(s) without {' or '.join(cols)}, not shown.")
    fin = fin[has]
    if fin.empty:
        raise ResultsError(
            f"experiment {study.name!r}: no finished trial run has {' and '.join(cols)}"
        )
    with_nf = fin[["n_f" in c for c in fin["config"]]]
    if len(with_nf) < len(fin):
        notes.append(f"{len(fin) - len(with_nf)} finished run(s) without an n_f param, not shown.")
    if with_nf.empty:
        raise ResultsError(
            f"experiment {study.name!r}: no finished trial run has an n_f "
            f"param (params: the trial's config keys)"
        )
    runs = pd.DataFrame([_described(r, cols) for r in with_nf.itertuples(index=False)])
    runs, dropped = _drop_duplicates(runs)
    if dropped:
        shown = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        notes.append(
            f"{len(dropped)} duplicate run(s) (same config and seed as a later run) "
            f"ignored, the latest kept: {shown}."
        )
    runs["row"], runs["params"] = row_labels(runs)
    return runs, notes


def _described(run, cols: list[str]) -> dict:
    """One run as a grid table groups it: its configuration split into the keys a label
    or column shows and the rest (`extra`), and its metric values."""
    cfg = {k: v for k, v in run.config.items() if k not in BOOKKEEPING}
    return {
        "run_id": run.run_id,
        "start_time": run.start_time,
        "method": cfg.get("method", "?"),
        "sampling_factor": cfg.get("sampling_factor", ""),
        "n_f": int(float(cfg["n_f"])),
        "seed": cfg.get("seed", ""),
        "extra": tuple(sorted((k, v) for k, v in cfg.items() if k not in NAMED)),
        **{c: getattr(run, c) for c in cols},
    }


def _drop_duplicates(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Same configuration and seed twice: keep the run that started last (it is the one the
    study would have produced now); return the ids of the others so a note can name them."""
    key = ["method", "sampling_factor", "extra", "n_f", "seed"]
    ordered = runs.sort_values("start_time", kind="stable")
    dup = ordered.duplicated(subset=key, keep="last")
    return ordered[~dup].reset_index(drop=True), list(ordered.loc[dup, "run_id"])


def row_labels(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Row labels and the keys that distinguish them: 'plain', 'oversample x30',
    'vae x30 [latent_dim=64]'. The keys in brackets are those that differ between the
    configurations of the same method, so a reader sees why two rows are apart and nothing
    is averaged across them."""
    shown_of: dict[tuple, list[str]] = {}
    for method, group in runs.groupby("method", sort=False):
        configs = sorted(
            {(sf, extra) for sf, extra in zip(group["sampling_factor"], group["extra"])}
        )
        dicts = [dict(extra) for _, extra in configs]
        keys = sorted({k for d in dicts for k in d})
        differing = [k for k in keys if len({d.get(k) for d in dicts}) > 1]
        shown = {c: [f"{k}={dict(c[1])[k]}" for k in differing if k in dict(c[1])] for c in configs}
        if len({(sf, tuple(v)) for (sf, _), v in shown.items()}) < len(configs):
            # an absent key told two configurations apart: show absences too
            shown = {c: [f"{k}={dict(c[1]).get(k, 'unset')}" for k in differing] for c in configs}
        for (sf, extra), v in shown.items():
            shown_of[(method, sf, extra)] = v
    labels, params = [], []
    for m, sf, e in zip(runs["method"], runs["sampling_factor"], runs["extra"]):
        v = shown_of[(m, sf, e)]
        labels.append((f"{m} x{sf}" if sf else m) + (f" [{', '.join(v)}]" if v else ""))
        params.append("; ".join(v))
    return labels, params


def row_order(runs: pd.DataFrame) -> list[str]:
    """The labels in the paper's method order, then by sampling factor and other keys."""
    keys = runs.drop_duplicates("row")
    order = sorted(
        zip(keys["method"], keys["sampling_factor"], keys["extra"], keys["row"]),
        key=lambda t: (
            method_key(t[0]),
            num_key(t[1]) if t[1] else (-1, 0.0, ""),
            [(k, num_key(v)) for k, v in t[2]],
            t[3],
        ),
    )
    return [t[3] for t in order]
