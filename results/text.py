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
