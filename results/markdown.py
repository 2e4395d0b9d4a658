"""Any table model (results.table_model) as markdown that renders on a web page: the title
in bold, a pipe table, each sentence as a paragraph, the notes as a list, and a second
table (the comparisons) under them.

Numbers have two decimals; an empty cell shows '–'.
"""

from __future__ import annotations

from results.table_model import Cell, Column, Num, TableModel, is_best, num, printed

DIGITS = 2


def write(model: TableModel) -> str:
    lines = [f"**{_md(model.title)}**", "", *table_lines(model), *_sentences(model)]
    lines += [""] + [f"- {_md(n)}" for n in model.notes]
    if model.then is not None:
        lines += [
            "",
            f"**{_md(model.then.title)}**",
            "",
            *table_lines(model.then),
            *_sentences(model.then),
        ]
    return "\n".join(lines) + "\n"


def _sentences(model: TableModel) -> list[str]:
    return [line for s in model.sentences for line in ("", s)]


def table_lines(model: TableModel) -> list[str]:
    """The pipe table: every column but the LaTeX-only ones, each column that shows the
    paper followed by the paper's number and our difference."""
    shown = [(i, c) for i, c in enumerate(model.columns) if c.only != "latex"]
    header = [h for _, c in shown for h in _heads(c)]
    rows = [[t for i, c in shown for t in _texts(row.cells[i], c)] for row in model.rows]
    return pipe_table(header, rows, "l" + "r" * (len(header) - 1))


def _heads(column: Column) -> list[str]:
    if column.paper is None:
        return [column.head]
    return [column.head, f"{column.paper} paper", f"{column.paper} diff"]


def _texts(cell: Cell, column: Column) -> list[str]:
    texts = [text(cell.value)]
    if column.paper is not None:
        texts += [num(cell.paper, digits=DIGITS), num(cell.diff, signed=True, digits=DIGITS)]
    return texts


def text(value: str | Num) -> str:
    """A cell's value: '66.01 ± 1.20 (n=3)', in bold ('**...**') where it is its column's
    best; text as it is."""
    if not isinstance(value, Num):
        return value or ""
    shown, n = printed(value, DIGITS, "±")
    if shown and n is not None:
        shown += f" (n={n})"
    return f"**{shown}**" if shown and is_best(value, DIGITS) else shown


def pipe_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A pipe table; `align` has one letter per column, l or r; an empty cell shows '–'."""
    marks = ["---:" if a == "r" else "---" for a in align]
    return [md_row(header), md_row(marks)] + [md_row([c if c else "–" for c in r]) for r in rows]


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(_md(str(c)) for c in cells) + " |"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
