"""A table as LaTeX: a booktabs table float that fits an article's text width.

The layout keeps cells narrow so the table fits at its natural size: one column per n_f,
the metrics (acc_h, then acc) as two blocks of rows, cells "67.7 ± 13.7" with n stated once
in the caption (a cell with another n carries it as a superscript), the paper's numbers as
a second row under each method. Where a table is still wider than the line (many n_f
values, long labels), it is scaled down to the line width rather than cut off. The notes
are LaTeX comments above the float; the caption says only what a cell is.
Needs \\usepackage{booktabs,graphicx}.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import pandas as pd

from results.text import interval, num, objective_text, rank_text

if TYPE_CHECKING:
    from results.table import Table

BOX = r"\fsvaetablebox"  # holds a tabular while its width is checked
PAPER_ROW = r"\quad Park (2021)"
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Plain text -> LaTeX text ('latent_dim' -> 'latent\\_dim'; ± becomes $\\pm$; '--'
    stays two hyphens, where LaTeX would print an en dash)."""
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    out = re.sub(r"-(?=-)", "-{}", out)
    return out.replace("±", r"$\pm$").replace("–", "--").replace("−", "-")


def to_latex(table: Table) -> str:
    """The table float: notes as comments above it, a short caption, the table (and the
    comparisons as a second tabular), the plain-language comparison lines as comments."""
    rows = {"optuna": _optuna_rows, "confirm": _confirm_rows, "grid": _grid_rows}[
        table.kind](table)
    tabulars = [_tabular(*rows)]
    if table.comparisons is not None:
        tabulars.append(_tabular(*_compare_rows(table)))
    label = re.sub(r"[^A-Za-z0-9]+", "-", f"{table.study.name}-{table.metric_set}")
    lines = [r"% fsvae-study table: needs \usepackage{booktabs,graphicx}; run ids in the "
             r"CSV output", *(f"% {n}" for n in table.notes),
             r"\begin{table}[t]", r"\centering", rf"\caption{{{_caption(table)}}}",
             rf"\label{{tab:{label}}}", r"\small", r"\setlength{\tabcolsep}{4pt}",
             rf"\ifdefined{BOX}\else\newsavebox{BOX}\fi"]
    for i, tabular in enumerate(tabulars):
        lines += ([r"\par\medskip"] if i else []) + _fitted(tabular)
    lines.append(r"\end{table}")
    lines += [f"% {s}" for s in table.summaries]
    return "\n".join(lines) + "\n"


def _fitted(tabular: str) -> list[str]:
    """The tabular at its natural size; scaled down to the line only if it is wider."""
    return [rf"\sbox{BOX}{{%", tabular + "}%",
            rf"\ifdim\wd{BOX}>\linewidth\resizebox{{\linewidth}}{{!}}{{\usebox{BOX}}}"
            rf"\else\usebox{BOX}\fi"]


def _tabular(head: list[str], body: list[str]) -> str:
    """booktabs: head (LaTeX cells), a rule, body (whole LaTeX lines), a rule."""
    return "\n".join([rf"\begin{{tabular}}{{l{'r' * (len(head) - 1)}}}", r"\toprule",
                      _line(head), r"\midrule", *body, r"\bottomrule", r"\end{tabular}"])


def _line(cells: list[str]) -> str:
    return " & ".join(c if c else "--" for c in cells) + r" \\"


def _caption(table: Table) -> str:
    """Title and what a cell is; the paper's rows and split sizes where shown."""
    parts = [table.title]
    if table.kind == "confirm":
        parts.append(f"Mean [95% CI] over the new seeds; rank: place among the stratum's "
                     f"finished trials of the search; best mean {table.study.objective} "
                     f"per stratum in bold")
    elif table.study.kind == "optuna":
        study = table.study
        goals = ", ".join(f"{o} ({m})" for o, m in zip(study.objectives, study.modes))
        parts.append((f"Per stratum, the trials of the Pareto front on {goals}"
                      if len(study.objectives) > 1 else
                      f"Per stratum, the trial best by {study.objective} ({study.mode})")
                     + "; trials: finished/failed/stopped of all")
    else:
        n, marked = _common_n(table.cells)
        spread = f"Mean ± std over seeds, n = {n} per cell" if n >= 2 else \
            "One seed per cell, so no spread"
        parts.append(spread + (" (other n marked)" if marked else "") +
                     "; best per column in bold")
    if table.with_paper:
        parts.append("Second rows: Park (2021), Table 2")
        if table.split_sizes is not None and table.split_sizes.ours:
            parts.append(table.split_sizes.caption().rstrip("."))
    if table.comparisons is not None:
        parts.append("Below: paired differences A minus B over seeds, mean [95% CI]")
    return latex_escape(". ".join(parts) + ".")


def _common_n(cells: pd.DataFrame) -> tuple[int, bool]:
    """The number of seeds most cells have (ties: the larger), and whether any differ."""
    counts = Counter(int(n) for n in cells.drop_duplicates(["row", "n_f"])["n"])
    n = max(counts, key=lambda k: (counts[k], k))
    return n, len(counts) > 1


def _grid_rows(table: Table) -> tuple[list[str], list[str]]:
    """One column per n_f; a block of rows per metric; the paper's row under each method."""
    cells = table.cells.set_index(["row", "n_f", "metric"])
    n, _ = _common_n(table.cells)
    head = ["Method"] + [rf"$n_f = {n_f}$" for n_f in table.n_fs]
    body = []
    for i, metric in enumerate(table.metrics):
        best = table.cells[table.cells["metric"] == metric].groupby("n_f")["mean"].max()
        body += [r"\midrule"] * bool(i) + [
            rf"\multicolumn{{{len(head)}}}{{l}}{{\textit{{{latex_escape(metric)}}}}} \\"]
        for row in table.rows:
            body.append(_line([latex_escape(row)] + [
                _grid_cell(cells, (row, n_f, metric), best[n_f], n) for n_f in table.n_fs]))
            if table.with_paper and _last_of_paper_method(table, row):
                body.append(_line([PAPER_ROW] + [
                    num(cells.loc[(row, n_f, metric), "paper"])
                    if (row, n_f, metric) in cells.index else "" for n_f in table.n_fs]))
    return head, body


def _grid_cell(cells: pd.DataFrame, key: tuple, best: float, common_n: int) -> str:
    """'67.7 $\\pm$ 13.7', bold where it is the column's best, '$^{n=2}$' where n is not
    the one the caption states; '' where there is no run."""
    if key not in cells.index or not cells.loc[key, "n"]:
        return ""
    s = cells.loc[key]
    text = f"{s['mean']:.1f}" + (rf" $\pm$ {s['std']:.1f}" if s["n"] >= 2 else "")
    if round(s["mean"], 1) == round(best, 1):
        text = rf"\textbf{{{text}}}"
    return text + (rf"$^{{n={int(s['n'])}}}$" if s["n"] != common_n else "")


def _last_of_paper_method(table: Table, row: str) -> bool:
    """Whether `row` is the last row of a method and sampling factor the paper reports
    (rows of one method and factor are adjacent), so the paper's row goes under it."""
    of = table.cells.drop_duplicates("row").set_index("row")
    ident = (of.loc[row, "method"], of.loc[row, "sampling_factor"])
    later = table.rows[table.rows.index(row) + 1:]
    if later and (of.loc[later[0], "method"], of.loc[later[0], "sampling_factor"]) == ident:
        return False
    return bool(table.cells.loc[table.cells["row"] == row, "paper"].notna().any())


def _optuna_rows(table: Table) -> tuple[list[str], list[str]]:
    """A row per shown trial (a stratum's best, or each of its Pareto front with several
    objectives); under it the paper's row and the trial's searched params."""
    objectives = table.study.objectives
    head = ["Stratum", "Trials"] + [latex_escape(o) for o in objectives] + [
        latex_escape(f"{table.metric_set} {m}") for m in table.metrics]
    body = []
    cells = table.cells.assign(trial_key=table.cells.get("trial_key", ""))
    for _, g in cells.groupby(["stratum", "trial_key"], sort=False, dropna=False):
        g = g.set_index("metric")
        first = g.iloc[0]
        found = isinstance(first.get("run_ids"), str)
        front = f", front {first['front']}" if found and len(objectives) > 1 else ""
        values = [first.get("objective_value")] if len(objectives) == 1 else \
            [first.get(o) for o in objectives]
        body.append(_line([
            latex_escape(first["stratum"] + front),
            f"{first['n_finished']}/{first['n_failed']}/{first['n_killed']} of "
            f"{first['n_trials']}"] +
            [objective_text(o, v if found else None) for o, v in zip(objectives, values)] +
            [num(g.loc[m].get("value"), digits=1) if found else "" for m in table.metrics]))
        if found and table.with_paper and g["paper"].notna().any():
            sf = first["sampling_factor"]
            what = latex_escape(first["method"] + (f" x{sf}" if sf else ""))
            body.append(_line([f"{PAPER_ROW}, {what}", "{}"] + ["{}"] * len(objectives) +
                              [num(g.loc[m, "paper"]) for m in table.metrics]))
        if found and first.get("params"):
            body.append(rf"\multicolumn{{{len(head)}}}{{l}}{{\quad\footnotesize "
                        rf"{latex_escape(first['params'])}}} \\")
    return head, body


def _compare_rows(table: Table) -> tuple[list[str], list[str]]:
    """Under each comparison's name, a row per n_f: mean difference [95% CI] per metric."""
    head = [r"$n_f$"] + [latex_escape(f"{m}, A minus B [95% CI]") for m in table.metrics] + \
        ["Seeds"]
    body = []
    for i, (label, g) in enumerate(table.comparisons.groupby("row", sort=False)):
        body += [r"\addlinespace"] * bool(i) + [
            rf"\multicolumn{{{len(head)}}}{{l}}{{{latex_escape(label)}}} \\"]
        for n_f, h in g.groupby("n_f", sort=False):
            h = h.set_index("metric")
            body.append(_line([str(n_f)] + [_difference(h.loc[m]) for m in table.metrics] +
                              [str(int(h.iloc[0]["n"]))]))
    return head, body


def _difference(s: pd.Series) -> str:
    """'+5.0 [0.0, 9.9]' (a minus sign, not a hyphen); one seed: '+45.0 (n=1)', no
    interval."""
    if s["n"] < 2:
        text = f"{s['mean']:+.1f} (n={int(s['n'])})" if s["n"] else ""
    else:
        text = f"{s['mean']:+.1f} [{s['ci95_low']:.1f}, {s['ci95_high']:.1f}]"
    return text.replace("-", "$-$")


def _confirm_rows(table: Table) -> tuple[list[str], list[str]]:
    """A row per configuration (stratum, rank, its value in the search, then mean [95% CI]
    per metric on val and test); under it the searched params and the seeds."""
    objective = table.study.objective
    head = ["Stratum", "Rank", latex_escape(f"search {objective}")] + [
        latex_escape(f"{s} {m}") for s in ("val", "test") for m in table.metrics]
    body = []
    for _, g in table.cells.groupby("row", sort=False):
        first, g = g.iloc[0], g.set_index(["metric_set", "metric"])
        cells = [interval(g.loc[(s, m)], 1) for s in ("val", "test") for m in table.metrics]
        if first["best"]:
            cells[0] = rf"\textbf{{{cells[0]}}}"  # the objective comes first
        body.append(_line([latex_escape(first["stratum"]), rank_text(first),
                           num(first["search_value"], digits=1), *cells]))
        below = "; ".join(p for p in (first["params"], "seeds " + first["seeds"].replace(
            ";", ", ")) if p)
        body.append(rf"\multicolumn{{{len(head)}}}{{l}}{{\quad\footnotesize "
                    rf"{latex_escape(below)}}} \\")
    return head, body
