"""Each kind of results table laid out once, as the TableModel both writers render: a grid
study (the paper's Table 2), a search's best trials, a confirmation, a grid's paired
comparisons.

`model(table)` reads a results.table.Table; results.markdown and results.latex write what
it returns (results.table_model says where the two differ).
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import pandas as pd

from results.paper import SplitSizes
from results.store import Study
from results.table_model import Cell, Column, Num, Row, TableModel, Tex, missing, objective_value

PAPER_ROW = "Park (2021)"  # the label of the paper's rows in LaTeX
SETS = ("val", "test")  # a confirmation's metric sets, validation first


class Shown(Protocol):
    """What a layout reads of a table: results.table.Table, whose methods call the
    formats (so this module names the parts it reads rather than import it)."""

    study: Study
    metric_set: str
    cells: pd.DataFrame
    rows: list[str]
    n_fs: list[int]
    notes: list[str]
    with_paper: bool
    comparisons: pd.DataFrame | None
    summaries: list[str]
    metrics: tuple[str, ...]
    split_sizes: SplitSizes | None

    @property
    def kind(self) -> str: ...

    @property
    def title(self) -> str: ...


def model(table: Shown) -> TableModel:
    """The table's layout, with its notes, caption and comparisons."""
    out = {"grid": _grid, "optuna": _search, "confirm": _confirm}[table.kind](table)
    out.notes, out.label = list(table.notes), f"{table.study.name}-{table.metric_set}"
    if table.comparisons is not None:
        out.then = _comparisons(table, table.comparisons)
    return out


def _caption(table: Shown, what: str) -> str:
    """Title, what a cell is (`what`); the paper's rows and split sizes where shown."""
    parts = [table.title, what]
    if table.with_paper:
        parts.append(f"Second rows: {PAPER_ROW}, Table 2")
        if table.split_sizes is not None and table.split_sizes.ours:
            parts.append(table.split_sizes.caption().rstrip("."))
    if table.comparisons is not None:
        parts.append("Below: paired differences A minus B over seeds, mean [95% CI]")
    return ". ".join(parts) + "."


# -- a grid study: the paper's Table 2 --------------------------------------------------------


def _grid(table: Shown) -> TableModel:
    """A row per method; a column per n_f and metric (LaTeX: a block of rows per metric),
    mean ± std over seeds with the column's best in bold; the paper's numbers beside ours
    (LaTeX: a row under each method the paper reports)."""
    cells = table.cells.set_index(["row", "n_f", "metric"])
    best = table.cells.groupby(["n_f", "metric"])["mean"].max()
    columns = [Column("method", short="Method")]
    for n_f in table.n_fs:
        for m in table.metrics:
            head = f"n_f={n_f} {m}"
            columns.append(
                Column(
                    head,
                    short=Tex(rf"$n_f = {n_f}$"),
                    block=m,
                    paper=head if table.with_paper else None,
                )
            )
    rows = []
    for row in table.rows:
        out = [Cell(row)]
        for n_f in table.n_fs:
            for m in table.metrics:
                key = (row, n_f, m)
                out.append(
                    _grid_cell(cells.loc[key], best[(n_f, m)], table.with_paper)
                    if key in cells.index
                    else Cell()
                )
        paper = table.with_paper and _last_of_paper_method(table, row)
        rows.append(Row(out, paper=PAPER_ROW if paper else None))
    n, marked = _common_n(table.cells)
    spread = (
        f"Mean ± std over seeds, n = {n} per cell" if n >= 2 else "One seed per cell, so no spread"
    )
    what = spread + (" (other n marked)" if marked else "") + "; best per column in bold"
    return TableModel(table.title, columns, rows, stated_n=n, caption=_caption(table, what))


def _grid_cell(s: pd.Series, best: float, with_paper: bool) -> Cell:
    value = Num(s["mean"], std=s["std"], n=int(s["n"]), best=best)
    return Cell(value, paper=s["paper"], diff=s["diff"]) if with_paper else Cell(value)


def _common_n(cells: pd.DataFrame) -> tuple[int, bool]:
    """The number of seeds most cells have (ties: the larger), and whether any differ."""
    counts = Counter(int(n) for n in cells.drop_duplicates(["row", "n_f"])["n"])
    n = max(counts, key=lambda k: (counts[k], k))
    return n, len(counts) > 1


def _last_of_paper_method(table: Shown, row: str) -> bool:
    """Whether `row` is the last row of a method and sampling factor the paper reports
    (rows of one method and factor are adjacent), so the paper's row goes under it."""
    of = table.cells.drop_duplicates("row").set_index("row")
    ident = (of.loc[row, "method"], of.loc[row, "sampling_factor"])
    later = table.rows[table.rows.index(row) + 1 :]
    if later and (of.loc[later[0], "method"], of.loc[later[0], "sampling_factor"]) == ident:
        return False
    return bool(table.cells.loc[table.cells["row"] == row, "paper"].notna().any())


# -- an Optuna search: its best trials --------------------------------------------------------


def _search(table: Shown) -> TableModel:
    """A row per shown trial: a stratum's best trial, or each trial of its Pareto front
    when the search has several objectives (then a value per objective); the paper's
    numbers beside (LaTeX: a row under it) and the trial's searched params (LaTeX: a line
    under it)."""
    study, ms = table.study, table.metric_set
    objectives = study.objectives
    many = len(objectives) > 1
    columns = [
        Column("stratum", short="Stratum"),
        Column("trials (finished/failed/stopped of all)", short="Trials"),
        Column("Pareto-front trial" if many else "best trial", only="markdown"),
    ]
    columns += [Column("on the front", only="markdown")] if many else []
    columns += [
        Column(head, short=o)
        for head, o in zip(objectives if many else [study.objective], objectives)
    ]
    columns += [Column(f"{ms} {m}", paper=m if table.with_paper else None) for m in table.metrics]
    columns.append(Column("searched params", only="markdown"))
    cells = table.cells.assign(trial_key=table.cells.get("trial_key", ""))
    rows = [
        _search_row(table, g.set_index("metric"), many)
        for _, g in cells.groupby(["stratum", "trial_key"], sort=False, dropna=False)
    ]
    goals = ", ".join(f"{o} ({m})" for o, m in zip(objectives, study.modes))
    what = (
        f"Per stratum, the trials of the Pareto front on {goals}"
        if many
        else f"Per stratum, the trial best by {study.objective} ({study.mode})"
    )
    what += "; trials: finished/failed/stopped of all"
    return TableModel(table.title, columns, rows, caption=_caption(table, what))


def _search_row(table: Shown, g: pd.DataFrame, many: bool) -> Row:
    first = g.iloc[0]
    found = isinstance(first.get("run_ids"), str)
    objectives = table.study.objectives
    values = [first.get(o) for o in objectives] if many else [first.get("objective_value")]
    front = f", front {first['front']}" if found and many else ""
    cells = [
        Cell(first["stratum"], short=first["stratum"] + front),
        Cell(
            f"{first['n_finished']}/{first['n_failed']}/{first['n_killed']} of {first['n_trials']}"
        ),
        Cell(f"{first['run_name']} ({first['run_ids'][:8]})" if found else ""),
    ]
    cells += [Cell(first.get("front") if found else "")] if many else []
    cells += [Cell(objective_value(o, v if found else None)) for o, v in zip(objectives, values)]
    for m in table.metrics:
        value = Num(g.loc[m].get("value")) if found else ""
        cells.append(
            Cell(value, paper=g.loc[m].get("paper"), diff=g.loc[m].get("diff"))
            if table.with_paper
            else Cell(value)
        )
    cells.append(Cell(first.get("params") if found else ""))
    paper = None
    if found and table.with_paper and g["paper"].notna().any():
        sf = first["sampling_factor"]
        paper = f"{PAPER_ROW}, {first['method']}" + (f" x{sf}" if sf else "")
    return Row(cells, paper=paper, below=first.get("params") if found else None)


# -- a confirmation: a search's configurations over new seeds ---------------------------------


def _confirm(table: Shown) -> TableModel:
    """A row per configuration: its rank and value in the search, then mean [95% CI] of
    each metric on val and test, the best mean validation objective per stratum in bold;
    the search trial, seeds and params as columns (LaTeX: params and seeds under the row)."""
    objective = table.study.objective
    columns = [
        Column("stratum", short="Stratum"),
        Column("rank in search", short="Rank"),
        Column("search trial", only="markdown"),
        Column(f"search {objective}"),
        Column("seeds", only="markdown"),
    ]
    columns += [Column(f"{s} {m}") for s in SETS for m in table.metrics]
    columns.append(Column("params", only="markdown"))
    rows = []
    for _, g in table.cells.groupby("row", sort=False):
        first, g = g.iloc[0], g.set_index(["metric_set", "metric"])
        shown = [(s, m) for s in SETS for m in table.metrics]  # the objective first
        values = [_interval(g.loc[k], bold=bool(first["best"]) and k == shown[0]) for k in shown]
        seeds = first["seeds"].replace(";", ", ")
        rows.append(
            Row(
                [
                    Cell(first["stratum"]),
                    Cell(_rank(first)),
                    Cell(first["trial_key"]),
                    Cell(Num(first["search_value"])),
                    Cell(seeds),
                    *values,
                    Cell(first["params"]),
                ],
                below="; ".join(p for p in (first["params"], f"seeds {seeds}") if p),
            )
        )
    what = (
        f"Mean [95% CI] over the new seeds; rank: place among the stratum's finished "
        f"trials of the search; best mean {objective} per stratum in bold"
    )
    return TableModel(
        table.title, columns, rows, sentences=list(table.summaries), caption=_caption(table, what)
    )


def _interval(cell: pd.Series, bold: bool) -> Cell:
    """Mean [95% interval] over the seeds; `bold`: the stratum's best."""
    return Cell(
        Num(
            cell["mean"],
            ci=(cell["ci95_low"], cell["ci95_high"]),
            n=int(cell["n"]),
            best=cell["mean"] if bold else None,
        )
    )


def _rank(cell: pd.Series) -> str:
    """A confirmation's rank in its search, '1 of 4'; '' for a configuration it lacks."""
    rank = cell["rank"]
    return "" if missing(rank) else f"{int(rank)} of {int(cell['of'])}"


# -- a grid's paired comparisons (--compare A:B) ----------------------------------------------


def _comparisons(table: Shown, comparisons: pd.DataFrame) -> TableModel:
    """Under each comparison's name (markdown: a column), a row per n_f: the mean
    difference and its 95% interval per metric, and the seeds paired."""
    columns = [Column("comparison", only="markdown"), Column("n_f", short=Tex(r"$n_f$"))]
    for m in table.metrics:
        columns += [
            Column(f"{m} diff", only="markdown"),
            Column(f"{m} 95% CI", only="markdown"),
            Column(f"{m}, A minus B [95% CI]", only="latex"),
        ]
    columns += [Column("n", short="Seeds"), Column("seeds", only="markdown")]
    rows = []
    for (label, n_f), g in comparisons.groupby(["row", "n_f"], sort=False):
        g = g.set_index("metric")
        cells = [Cell(label), Cell(str(n_f))]
        for m in table.metrics:
            s = g.loc[m]
            ci = (s["ci95_low"], s["ci95_high"])
            cells += [
                Cell(Num(s["mean"], signed=True)),
                Cell(Num(ci=ci) if s["n"] >= 2 else "undefined (n<2)"),
                Cell(Num(s["mean"], ci=ci, n=int(s["n"]), signed=True)),
            ]
        first = g.iloc[0]
        cells += [Cell(str(int(first["n"]))), Cell(first["seeds"].replace(";", ", "))]
        rows.append(Row(cells, group=label))
    return TableModel(
        f"Paired differences, A minus B ({table.metric_set}, points; 95% Student-t CI over seeds)",
        columns,
        rows,
        sentences=list(table.summaries),
    )
