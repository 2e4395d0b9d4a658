"""One table cell's statistics over seeds: mean, sample std, n and the 95% Student-t interval."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def summarize(values: Sequence[float]) -> dict:
    """mean, sample std (ddof=1), n and the 95% Student-t interval of the mean.

    std and the interval are NaN for n < 2: one seed says nothing about the spread, and a
    made-up interval would look like evidence.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0, "ci95_low": math.nan,
                "ci95_high": math.nan}
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": 1, "ci95_low": math.nan,
                "ci95_high": math.nan}
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci95_low": mean - half, "ci95_high": mean + half}
