r"""Any table model (results.table_model) as a LaTeX booktabs float that fits an article's
text width at its natural size (needs \usepackage{booktabs,graphicx}).

Cells stay narrow: every number has one decimal (DIGITS; the paper's are rounded to it, so
a column compares like with like), a mean ± std carries its n as a superscript only where
it is not the n the caption states, a minus sign is a math minus. Markdown-only columns
are left out, and what they said goes in a small line under the row; columns of one
block are stacked as blocks of rows under one header (the grid: one column per n_f, a
block per metric); the paper's numbers are a row of their own under the row they belong
to. Where a table is still wider than the line (many n_f values, long labels), it is
scaled down to the line width rather than cut off. The notes are comments above the
float and the sentences comments below it; the caption says what a cell is.
"""

from __future__ import annotations

import re

from results.table_model import Cell, Column, Num, TableModel, Tex, is_best, num, printed

DIGITS = 1  # the decimals of every number in a LaTeX table
BOX = r"\fsvaetablebox"  # holds a tabular while its width is checked
_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Plain text -> LaTeX text ('latent_dim' -> 'latent\\_dim'; ± becomes $\\pm$; '--'
    stays two hyphens, where LaTeX would print an en dash)."""
    out = "".join(_ESCAPES.get(ch, ch) for ch in str(text))
    out = re.sub(r"-(?=-)", "-{}", out)
    return out.replace("±", r"$\pm$").replace("–", "--").replace("−", "-")


def write(model: TableModel) -> str:
    """The float: notes as comments above it, the caption, the table (and the second one
    under it), the sentences as comments below."""
    parts = [model] + ([model.then] if model.then is not None else [])
    label = re.sub(r"[^A-Za-z0-9]+", "-", model.label)
    lines = [
        r"% fsvae-study table: needs \usepackage{booktabs,graphicx}; run ids in the "
        r"CSV output",
        *(f"% {n}" for n in model.notes),
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(model.caption)}}}",
        rf"\label{{tab:{label}}}",
        r"\small",
        r"\setlength{\tabcolsep}{4pt}",
        rf"\ifdefined{BOX}\else\newsavebox{BOX}\fi",
    ]
    for i, part in enumerate(parts):
        lines += ([r"\par\medskip"] if i else []) + _fitted(_tabular(part))
    lines.append(r"\end{table}")
    lines += [f"% {s}" for part in parts for s in part.sentences]
    return "\n".join(lines) + "\n"


def _fitted(tabular: str) -> list[str]:
    """The tabular at its natural size; scaled down to the line only if it is wider."""
    return [
        rf"\sbox{BOX}{{%",
        tabular + "}%",
        rf"\ifdim\wd{BOX}>\linewidth\resizebox{{\linewidth}}{{!}}{{\usebox{BOX}}}"
        rf"\else\usebox{BOX}\fi",
    ]


def _tabular(model: TableModel) -> str:
    """booktabs: the header, a rule, the body (a block of rows per block, a rule between
    blocks), a rule."""
    shown = [i for i, c in enumerate(model.columns) if c.only != "markdown"]
    blocks = list(
        dict.fromkeys(model.columns[i].block for i in shown if model.columns[i].block is not None)
    ) or [None]

    def of(block: str | None) -> list[int]:
        return [i for i in shown if model.columns[i].block in (None, block)]

    head = [_header(model.columns[i]) for i in of(blocks[0])]
    body = []
    for k, block in enumerate(blocks):
        if block is not None:
            body += [r"\midrule"] * bool(k) + [
                _spanning(len(head), rf"\textit{{{latex_escape(block)}}}")
            ]
        body += _rows(model, of(block), len(head))
    return "\n".join(
        [
            rf"\begin{{tabular}}{{l{'r' * (len(head) - 1)}}}",
            r"\toprule",
            _line(head),
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
        ]
    )


def _rows(model: TableModel, columns: list[int], width: int) -> list[str]:
    """Each row, a heading before each group, the paper's row and the line below after it."""
    lines, group = [], None
    for row in model.rows:
        if row.group is not None and row.group != group:
            lines += [r"\addlinespace"] * (group is not None) + [
                _spanning(width, latex_escape(row.group))
            ]
            group = row.group
        lines.append(_line([_cell(row.cells[i], model.stated_n) for i in columns]))
        if row.paper is not None:
            lines.append(
                _line(
                    [rf"\quad {latex_escape(row.paper)}"]
                    + [
                        _number(num(row.cells[i].paper, digits=DIGITS))
                        if model.columns[i].paper is not None
                        else "{}"
                        for i in columns[1:]
                    ]
                )
            )
        if row.below:
            lines.append(_spanning(width, rf"\quad\footnotesize {latex_escape(row.below)}"))
    return lines


def _header(column: Column) -> str:
    short = column.head if column.short is None else column.short
    return short if isinstance(short, Tex) else latex_escape(short)


def _cell(cell: Cell, stated_n: int | None) -> str:
    """'67.7 $\\pm$ 13.7', bold where it is its column's best, '$^{n=2}$' where n is not
    the one the caption states; text escaped ('--' where there is none)."""
    if not isinstance(cell.value, Num):
        return latex_escape((cell.value if cell.short is None else cell.short) or "")
    text, n = printed(cell.value, DIGITS, r"$\pm$")
    text = _number(text)
    if text and is_best(cell.value, DIGITS):
        text = rf"\textbf{{{text}}}"
    return text + (rf"$^{{n={n}}}$" if text and n is not None and n != stated_n else "")


def _number(text: str) -> str:
    """A minus sign, not a hyphen."""
    return text.replace("-", "$-$")


def _spanning(width: int, text: str) -> str:
    return rf"\multicolumn{{{width}}}{{l}}{{{text}}} \\"


def _line(cells: list[str]) -> str:
    return " & ".join(c if c else "--" for c in cells) + r" \\"
