"""The one shape of a results table that both writers render: its columns, its rows of
cells, and the numbers in them.

Every kind of table (results.layouts) is laid out once as a TableModel;
results.markdown and results.latex write any TableModel. They differ where a web page and
a printed article differ, and only there:

- Markdown is wide and has no caption, so every column is shown under a header that says
  what it holds, every number has two decimals and carries its n, and the paper's numbers
  and our difference are columns beside ours.
- LaTeX must fit an article's column, and its caption says what a cell is: one decimal,
  n marked only where it is not the one the caption states, shorter headers, columns
  marked markdown-only left out (a row's `below` line says what they said), columns of
  one `block` stacked as a block of rows, the paper's numbers as a row of their own.

A cell holds a number as a `Num`, not as text, because the two writers print it at
their own precision: a bold "best in its column" is the cell whose mean reads the same as
the best's at that precision, in either format.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field


class Tex(str):
    """Text already written in LaTeX (a math header such as $n_f$): the LaTeX writer prints
    it as it is instead of escaping it."""


@dataclass(frozen=True)
class Num:
    """A number in a cell, printed by each writer at its own precision.

    With `std` (NaN with one seed): 'mean ± std', and the writer adds its n. With `ci` (NaN
    bounds with one seed): 'mean [low, high]', or 'mean (n=1)' where one seed leaves no
    interval; without a mean, the interval alone. Neither: the mean alone. Nothing is
    printed for a missing mean or n = 0.
    """

    mean: float | None = None
    std: float | None = None
    ci: tuple[float, float] | None = None
    n: int | None = None
    signed: bool = False  # a difference: '+1.20'
    best: float | None = None  # bold where the mean, as printed, reads the same as this


@dataclass(frozen=True)
class Cell:
    """One cell: text, or a Num; with the paper's number and our difference where the
    table shows the paper (with_paper)."""

    value: str | Num = ""
    short: str | None = None  # LaTeX's text where the narrow table says it differently
    paper: float | None = None
    diff: float | None = None  # ours minus the paper's


@dataclass(frozen=True)
class Column:
    """One column: its header, and how each writer shows it."""

    head: str  # markdown's header: a web table has no caption, so it says it all
    short: str | None = None  # LaTeX's header (a Tex for math); None: the head, escaped
    only: str | None = None  # "markdown" or "latex": the one writer that shows it
    block: str | None = None  # LaTeX: the columns of one block become a block of rows
    paper: str | None = None  # markdown: '<paper> paper' and '<paper> diff' columns beside
    #                           it; LaTeX: its paper numbers go in the paper's row


@dataclass
class Row:
    """One row: a cell per column of the model, and what LaTeX prints around it."""

    cells: list[Cell]
    group: str | None = None  # LaTeX: a heading row opens each group (markdown: a column)
    paper: str | None = None  # LaTeX: the label of the paper's row printed under this one
    below: str | None = None  # LaTeX: a small line under the row


@dataclass
class TableModel:
    """A table and what is said around it; `then` is a second table under it."""

    title: str  # markdown: the bold line above the table
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # markdown: a list; LaTeX: comments
    sentences: list[str] = field(default_factory=list)  # plain-language lines after it
    caption: str = ""  # LaTeX: the title and what a cell is
    label: str = ""  # LaTeX: \label{tab:...}, made safe by the writer
    stated_n: int | None = None  # LaTeX: the n the caption states; other n are marked
    then: TableModel | None = None  # the comparisons, under the table


# -- numbers --------------------------------------------------------------------------------


def missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x: float | None, signed: bool = False, digits: int = 2) -> str:
    """'66.01', '+1.20' (signed); '' for a missing value (NaN or None)."""
    if missing(x):
        return ""
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def printed(value: Num, digits: int, pm: str) -> tuple[str, int | None]:
    """The number at `digits` decimals with its spread ('66.01 ± 1.20' with `pm` '±',
    '52.00 [47.03, 56.97]', '+5.50', '52.00 (n=1)'; '' for none), and the n a writer adds
    after a mean ± std (None where the text says all)."""
    n = None if value.n is None else int(value.n)
    if n == 0 or (missing(value.mean) and value.ci is None):
        return "", None
    mean = num(value.mean, value.signed, digits)
    if value.std is not None:
        return mean + (f" {pm} {num(value.std, digits=digits)}" if (n or 0) >= 2 else ""), n
    if value.ci is not None:
        if n is not None and n < 2:
            return f"{mean} (n={n})", None
        low, high = value.ci
        interval = f"[{num(low, digits=digits)}, {num(high, digits=digits)}]"
        return (f"{mean} {interval}" if mean else interval), None
    return mean, None


def is_best(value: Num, digits: int) -> bool:
    """Whether the number reads the same as its column's best at `digits` decimals."""
    mean, best = value.mean, value.best
    if mean is None or best is None or missing(mean) or missing(best):
        return False
    return round(mean, digits) == round(best, digits)


def objective_value(objective: str, value: float | None) -> str | Num:
    """An objective's value as a cell holds it: accuracy-like objectives in percent like
    the rest of the table, others as logged ('0.0123')."""
    if value is None or missing(value):
        return ""
    return Num(value * 100) if re.search(r"acc", objective) else f"{value:.4g}"


def objective_text(objective: str, value: float | None, digits: int = 2) -> str:
    """objective_value as text at `digits` decimals ('66.01')."""
    shown = objective_value(objective, value)
    return shown if isinstance(shown, str) else num(shown.mean, digits=digits)
