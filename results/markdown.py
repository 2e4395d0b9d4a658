"""A table as markdown: a pipe table that renders in a README, its notes as a list."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from results.text import interval, num, objective_text, rank_text

if TYPE_CHECKING:
    from results.table import Table


def to_markdown(table: Table) -> str:
    """A pipe table that renders in a README, notes as a list, comparisons as a second table
    followed by the plain-language lines; a confirmation's lines come under its table."""
    if table.kind == "confirm":
        header, rows = _confirm_matrix(table)
    elif table.kind == "optuna":
        header, rows = _optuna_matrix(table)
    else:
        header = ["method"] + [f"n_f={n} {m}" + ("" if w == "ours" else f" {w}")
                               for n, m, w in _grid_columns(table)]
        rows = _grid_matrix(table, "±", lambda t: f"**{t}**" if t else t)
    lines = [f"**{_md(table.title)}**", "", md_row(header),
             md_row(["---"] + ["---:"] * (len(header) - 1))]
    lines += [md_row([c if c else "–" for c in r]) for r in rows]
    if table.kind == "confirm":
        lines += [line for s in table.summaries for line in ("", s)]
    lines += [""] + [f"- {_md(n)}" for n in table.notes]
    if table.comparisons is not None:
        header, rows = _compare_matrix(table)
        lines += ["", f"**Paired differences, A minus B ({table.metric_set}, points; "
                      f"95% Student-t CI over seeds)**", "", md_row(header),
                  md_row(["---", "---:"] + ["---:"] * (len(header) - 2))]
        lines += [md_row([c if c else "–" for c in r]) for r in rows]
        lines += [""] + table.summaries
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(_md(str(c)) for c in cells) + " |"


def _fmt_cell(s: pd.Series | None, pm: str) -> str:
    """'66.01 ± 1.20 (n=3)'; one seed: '66.01 (n=1)'."""
    if s is None or not s["n"]:
        return ""
    if s["n"] < 2:
        return f"{s['mean']:.2f} (n=1)"
    return f"{s['mean']:.2f} {pm} {s['std']:.2f} (n={int(s['n'])})"


def _grid_columns(table: Table) -> list[tuple[int, str, str]]:
    """(n_f, metric, what) for each value column: what = ours | paper | diff."""
    whats = ("ours", "paper", "diff") if table.with_paper else ("ours",)
    return [(n_f, m, w) for n_f in table.n_fs for m in table.metrics for w in whats]


def _grid_matrix(table: Table, pm: str, bold: Callable[[str], str]) -> list[list[str]]:
    """Cell texts, one list per row, with the column best (max mean) passed through `bold`."""
    cells = table.cells.set_index(["row", "n_f", "metric"])
    best = table.cells.groupby(["n_f", "metric"])["mean"].max()
    out = []
    for row in table.rows:
        texts = []
        for n_f, m, what in _grid_columns(table):
            s = cells.loc[(row, n_f, m)] if (row, n_f, m) in cells.index else None
            if what == "ours":
                text = _fmt_cell(s, pm)
                if s is not None and round(s["mean"], 2) == round(best[(n_f, m)], 2):
                    text = bold(text)
            elif s is None:
                text = ""
            else:
                text = num(s[what], signed=(what == "diff"))
            texts.append(text)
        out.append([row, *texts])
    return out


def _optuna_matrix(table: Table) -> tuple[list[str], list[list[str]]]:
    """One row per shown trial: a stratum's best trial, or each trial of its Pareto front
    when the search has several objectives (then one column per objective)."""
    ms, objectives = table.metric_set, table.study.objectives
    many = len(objectives) > 1
    header = ["stratum", "trials (finished/failed/stopped of all)",
              "Pareto-front trial" if many else "best trial"]
    header += (["on the front"] + objectives) if many else [table.study.objective]
    for m in table.metrics:
        header += [f"{ms} {m}"] + ([f"{m} paper", f"{m} diff"] if table.with_paper else [])
    header += ["searched params"]
    cells = table.cells.assign(trial_key=table.cells.get("trial_key", ""))
    rows = []
    for _, g in cells.groupby(["stratum", "trial_key"], sort=False, dropna=False):
        g = g.set_index("metric")
        first = g.iloc[0]
        found = isinstance(first.get("run_ids"), str)
        row = [first["stratum"], f"{first['n_finished']}/{first['n_failed']}/"
                                 f"{first['n_killed']} of {first['n_trials']}",
               f"{first['run_name']} ({first['run_ids'][:8]})" if found else ""]
        if many:
            row += [first.get("front") if found else ""]
            row += [objective_text(o, first.get(o) if found else None) for o in objectives]
        else:
            row += [objective_text(table.study.objective,
                                   first.get("objective_value") if found else None)]
        for m in table.metrics:
            row.append(num(g.loc[m].get("value")) if found else "")
            if table.with_paper:
                row += [num(g.loc[m].get("paper")), num(g.loc[m].get("diff"), signed=True)]
        row.append(first.get("params") if found else "")
        rows.append(row)
    return header, rows


def _compare_matrix(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["comparison", "n_f"]
    for m in table.metrics:
        header += [f"{m} diff", f"{m} 95% CI"]
    header += ["n", "seeds"]
    rows = []
    for (label, n_f), g in table.comparisons.groupby(["row", "n_f"], sort=False):
        g = g.set_index("metric")
        row = [label, str(n_f)]
        for m in table.metrics:
            s = g.loc[m]
            row += [num(s["mean"], signed=True),
                    f"[{s['ci95_low']:.2f}, {s['ci95_high']:.2f}]" if s["n"] >= 2 else
                    "undefined (n<2)"]
        row += [str(int(g.iloc[0]["n"])), g.iloc[0]["seeds"].replace(";", ", ")]
        rows.append(row)
    return header, rows


def _confirm_matrix(table: Table) -> tuple[list[str], list[list[str]]]:
    """A row per configuration: its rank and value in the search, then mean [95% CI] of
    each metric on val and test; the best mean validation objective per stratum in bold."""
    objective = table.study.objective
    header = ["stratum", "rank in search", "search trial", f"search {objective}", "seeds"]
    header += [f"{s} {m}" for s in ("val", "test") for m in table.metrics] + ["params"]
    rows = []
    for _, g in table.cells.groupby("row", sort=False):
        first, g = g.iloc[0], g.set_index(["metric_set", "metric"])
        cells = [interval(g.loc[(s, m)]) for s in ("val", "test") for m in table.metrics]
        if first["best"]:
            cells[0] = f"**{cells[0]}**"  # the objective comes first
        rows.append([first["stratum"], rank_text(first), first["trial_key"],
                     num(first["search_value"]), first["seeds"].replace(";", ", "), *cells,
                     first["params"]])
    return header, rows
