"""What a test works out by hand, apart from the code it checks: a cell's statistics, equal
numbers (NaN equal to NaN), the cells of a markdown table line.
"""

from __future__ import annotations

import math
import re
import statistics

import pytest
from scipy import stats


def hand_stats(values: list[float], within: tuple[float, float] | None = None) -> dict:
    """mean, sample std, n, 95% Student-t interval, computed independently of the code; the
    interval cut to `within` where given ((0, 100) for a cell of accuracies in percent)."""
    n = len(values)
    mean = statistics.mean(values)
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": n, "lo": math.nan, "hi": math.nan}
    sd = statistics.stdev(values)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if within is not None:
        lo, hi = max(lo, within[0]), min(hi, within[1])
    return {"mean": mean, "std": sd, "n": n, "lo": lo, "hi": hi}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


def md_cells(line: str) -> list[str]:
    """The cells of one markdown table line (escaped pipes stay inside a cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
