"""How a number prints in the markdown and LaTeX tables."""
from __future__ import annotations

import math
import re


def num(x: float | None, signed: bool = False, digits: int = 2) -> str:
    """'66.01', '+1.20' (signed); '' for a missing value (NaN or None)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def objective_text(objective: str, value: float | None) -> str:
    """Accuracy-like objectives in percent like the rest of the table, others as logged."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value * 100:.2f}" if re.search(r"acc", objective) else f"{value:.4g}"


def interval(cell, digits: int = 2) -> str:
    """A cell's mean and 95% interval, '52.00 [47.03, 56.97]'; one seed: '52.00 (n=1)';
    '' with none. `cell` has mean, n, ci95_low, ci95_high (results.stats.summarize)."""
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
