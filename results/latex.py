"""A table as LaTeX: a booktabs table float to \\input into a paper."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from results.markdown import compare_matrix, grid_columns, grid_matrix, optuna_matrix

if TYPE_CHECKING:
    from results.table import Table

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Plain text -> LaTeX text ('latent_dim' -> 'latent\\_dim'; ± becomes $\\pm$)."""
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    return out.replace("±", r"$\pm$").replace("–", "--").replace("−", "-")


def to_latex(table: Table) -> str:
    """A booktabs table float: caption = title + notes, column best in bold; comparisons
    as a second tabular; the plain-language lines as comments after it."""
    if table.study.kind == "optuna":
        header, rows = optuna_matrix(table)
        body = _latex_tabular([[latex_escape(h) for h in header]],
                              [[latex_escape(c) for c in r] for r in rows], len(header))
    else:
        cols = grid_columns(table)
        per = len(cols) // max(len(table.n_fs), 1)
        top = ["Method"] + [rf"\multicolumn{{{per}}}{{c}}{{$n_f = {n}$}}" for n in table.n_fs]
        rules = " ".join(rf"\cmidrule(lr){{{2 + i * per}-{1 + (i + 1) * per}}}"
                         for i in range(len(table.n_fs)))
        names = {"ours": None, "paper": "paper", "diff": r"$\Delta$"}
        sub = [""] + [latex_escape(m) if names[w] is None else f"{latex_escape(m)} {names[w]}"
                      for _, m, w in cols]
        matrix = grid_matrix(table, "±", lambda t: f"\x00{t}\x01" if t else t)
        rows = [[latex_escape(c).replace("\x00", r"\textbf{").replace("\x01", "}")
                 for c in r] for r in matrix]
        body = _latex_tabular([top, sub], rows, 1 + len(cols), rules=rules)
    label = re.sub(r"[^A-Za-z0-9]+", "-", f"{table.study.name}-{table.metric_set}")
    caption = latex_escape(table.title + ". " + " ".join(table.notes))
    lines = [r"% fsvae-study table: generated from MLflow; run ids in --format csv",
             r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}",
             rf"\label{{tab:{label}}}", body]
    if table.comparisons is not None:
        header, rows = compare_matrix(table)
        lines += [r"\par\medskip",
                  _latex_tabular([[latex_escape(h) for h in header]],
                                 [[latex_escape(c) for c in r] for r in rows], len(header))]
    lines.append(r"\end{table}")
    lines += [f"% {s}" for s in table.summaries]
    return "\n".join(lines) + "\n"


def _latex_tabular(head: list[list[str]], rows: list[list[str]], ncols: int,
                   rules: str = "") -> str:
    lines = [rf"\begin{{tabular}}{{l{'r' * (ncols - 1)}}}", r"\toprule"]
    for i, h in enumerate(head):
        lines.append(" & ".join(h) + r" \\")
        if i == 0 and rules:
            lines.append(rules)
    lines.append(r"\midrule")
    lines += [" & ".join(c if c else "--" for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)
