"""A results table as text: a markdown pipe table, a LaTeX booktabs float, or tidy CSV.

Markdown renders on a web page (GitHub, a notebook): the notes as a list, comparisons as a
second table. Numbers have two decimals.

LaTeX (needs \\usepackage{booktabs,graphicx}) keeps cells narrow so the table fits an
article's text width at its natural size: one column per n_f, the metrics (acc_h, then acc)
as two blocks of rows, cells "67.7 ± 13.7" with n stated once in the caption (a cell with
another n carries it as a superscript), the paper's numbers as a second row under each
method. Every number has one decimal (LATEX_DIGITS), the paper's rounded to it, so that a
column compares like with like. Where a table is still wider than the line (many n_f
values, long labels), it is scaled down to the line width rather than cut off. The notes
are LaTeX comments above the float; the caption says only what a cell is.

CSV is tidy: one line per cell, with the run ids behind each number.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import pandas as pd

from results.paper import SplitSizes
from results.store import Study

LATEX_DIGITS = 1  # the decimals of every number in a LaTeX table


class Shown(Protocol):
    """What a format reads of a table: results.table.Table, whose methods call the
    functions here (so this module names the parts it reads rather than import it)."""

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


# -- numbers --------------------------------------------------------------------------------

def num(x: float | None, signed: bool = False, digits: int = 2) -> str:
    """'66.01', '+1.20' (signed); '' for a missing value (NaN or None)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def objective_text(objective: str, value: float | None, digits: int = 2) -> str:
    """Accuracy-like objectives in percent like the rest of the table, others as logged."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value * 100:.{digits}f}" if re.search(r"acc", objective) else f"{value:.4g}"


def interval(cell, digits: int = 2) -> str:
    """A cell's mean and 95% interval, '52.00 [47.03, 56.97]'; one seed: '52.00 (n=1)';
    '' with none. `cell` has mean, n, ci95_low, ci95_high (results.table.summarize)."""
    if not cell["n"]:
        return ""
    if cell["n"] < 2:
        return f"{cell['mean']:.{digits}f} (n=1)"
    return (f"{cell['mean']:.{digits}f} [{cell['ci95_low']:.{digits}f}, "
            f"{cell['ci95_high']:.{digits}f}]")


def rank_text(cell) -> str:
    """A confirmation's rank in its search, '1 of 4'; '' for a configuration it lacks."""
    rank = cell["rank"]
    if rank is None or (isinstance(rank, float) and math.isnan(rank)):
        return ""
    return f"{int(rank)} of {int(cell['of'])}"


# -- markdown -------------------------------------------------------------------------------

def markdown(table: Shown) -> str:
    """A pipe table that renders on a web page, notes as a list, comparisons as a second table
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


def _grid_columns(table: Shown) -> list[tuple[int, str, str]]:
    """(n_f, metric, what) for each value column: what = ours | paper | diff."""
    whats = ("ours", "paper", "diff") if table.with_paper else ("ours",)
    return [(n_f, m, w) for n_f in table.n_fs for m in table.metrics for w in whats]


def _grid_matrix(table: Shown, pm: str, bold: Callable[[str], str]) -> list[list[str]]:
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


def _optuna_matrix(table: Shown) -> tuple[list[str], list[list[str]]]:
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


def _compare_matrix(table: Shown) -> tuple[list[str], list[list[str]]]:
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


def _confirm_matrix(table: Shown) -> tuple[list[str], list[list[str]]]:
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


# -- LaTeX ----------------------------------------------------------------------------------

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


def latex(table: Shown) -> str:
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


def _caption(table: Shown) -> str:
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


def _grid_rows(table: Shown) -> tuple[list[str], list[str]]:
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
                    num(cells.loc[(row, n_f, metric), "paper"], digits=LATEX_DIGITS)
                    if (row, n_f, metric) in cells.index else "" for n_f in table.n_fs]))
    return head, body


def _grid_cell(cells: pd.DataFrame, key: tuple, best: float, common_n: int) -> str:
    """'67.7 $\\pm$ 13.7', bold where it is the column's best, '$^{n=2}$' where n is not
    the one the caption states; '' where there is no run."""
    if key not in cells.index or not cells.loc[key, "n"]:
        return ""
    s = cells.loc[key]
    d = LATEX_DIGITS
    text = f"{s['mean']:.{d}f}" + (rf" $\pm$ {s['std']:.{d}f}" if s["n"] >= 2 else "")
    if round(s["mean"], d) == round(best, d):
        text = rf"\textbf{{{text}}}"
    return text + (rf"$^{{n={int(s['n'])}}}$" if s["n"] != common_n else "")


def _last_of_paper_method(table: Shown, row: str) -> bool:
    """Whether `row` is the last row of a method and sampling factor the paper reports
    (rows of one method and factor are adjacent), so the paper's row goes under it."""
    of = table.cells.drop_duplicates("row").set_index("row")
    ident = (of.loc[row, "method"], of.loc[row, "sampling_factor"])
    later = table.rows[table.rows.index(row) + 1:]
    if later and (of.loc[later[0], "method"], of.loc[later[0], "sampling_factor"]) == ident:
        return False
    return bool(table.cells.loc[table.cells["row"] == row, "paper"].notna().any())


def _optuna_rows(table: Shown) -> tuple[list[str], list[str]]:
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
            [objective_text(o, v if found else None, LATEX_DIGITS)
             for o, v in zip(objectives, values)] +
            [num(g.loc[m].get("value"), digits=LATEX_DIGITS) if found else ""
             for m in table.metrics]))
        if found and table.with_paper and g["paper"].notna().any():
            sf = first["sampling_factor"]
            what = latex_escape(first["method"] + (f" x{sf}" if sf else ""))
            body.append(_line([f"{PAPER_ROW}, {what}", "{}"] + ["{}"] * len(objectives) +
                              [num(g.loc[m, "paper"], digits=LATEX_DIGITS)
                               for m in table.metrics]))
        if found and first.get("params"):
            body.append(rf"\multicolumn{{{len(head)}}}{{l}}{{\quad\footnotesize "
                        rf"{latex_escape(first['params'])}}} \\")
    return head, body


def _compare_rows(table: Shown) -> tuple[list[str], list[str]]:
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
    d = LATEX_DIGITS
    if s["n"] < 2:
        text = f"{s['mean']:+.{d}f} (n={int(s['n'])})" if s["n"] else ""
    else:
        text = f"{s['mean']:+.{d}f} [{s['ci95_low']:.{d}f}, {s['ci95_high']:.{d}f}]"
    return text.replace("-", "$-$")


def _confirm_rows(table: Shown) -> tuple[list[str], list[str]]:
    """A row per configuration (stratum, rank, its value in the search, then mean [95% CI]
    per metric on val and test); under it the searched params and the seeds."""
    objective = table.study.objective
    head = ["Stratum", "Rank", latex_escape(f"search {objective}")] + [
        latex_escape(f"{s} {m}") for s in ("val", "test") for m in table.metrics]
    body = []
    for _, g in table.cells.groupby("row", sort=False):
        first, g = g.iloc[0], g.set_index(["metric_set", "metric"])
        cells = [interval(g.loc[(s, m)], LATEX_DIGITS) for s in ("val", "test")
                 for m in table.metrics]
        if first["best"]:
            cells[0] = rf"\textbf{{{cells[0]}}}"  # the objective comes first
        body.append(_line([latex_escape(first["stratum"]), rank_text(first),
                           num(first["search_value"], digits=LATEX_DIGITS), *cells]))
        below = "; ".join(p for p in (first["params"], "seeds " + first["seeds"].replace(
            ";", ", ")) if p)
        body.append(rf"\multicolumn{{{len(head)}}}{{l}}{{\quad\footnotesize "
                    rf"{latex_escape(below)}}} \\")
    return head, body


# -- CSV ------------------------------------------------------------------------------------

def csv(table: Shown) -> str:
    """Tidy: one line per (row, n_f, metric) cell, then the comparison lines, with the run
    ids behind each number; NaN (no spread with one seed) as an empty field."""
    frames = [table.cells]
    if table.comparisons is not None:
        frames.append(table.comparisons)
    out = pd.concat(frames, ignore_index=True)
    if table.kind == "confirm":
        first = ["section", "stratum", "row", "rank", "of", "trial_key", "search_run_id",
                 "params", "metric_set", "metric", "mean", "std", "n", "ci95_low",
                 "ci95_high", "search_value", "best", "seeds", "run_ids"]
    elif table.study.kind == "optuna":
        first = ["section", "stratum", "row", "method", "sampling_factor", "params", "n_f",
                 "metric", "value", "objective", "objective_value", "n_trials", "n_finished",
                 "n_failed", "n_killed", "run_name", "run_ids"]
    else:
        first = ["section", "row", "method", "sampling_factor", "params", "n_f", "metric",
                 "mean", "std", "n", "ci95_low", "ci95_high", "seeds", "run_ids"]
    if table.with_paper:
        first += ["paper", "diff"]
    if table.comparisons is not None:
        first += ["a", "b"]
    out = out.reindex(columns=first + [c for c in out.columns if c not in first])
    return out.to_csv(index=False)
