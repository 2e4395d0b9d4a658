"""The Pareto front of a multi-objective search: the trials no other trial dominates.

Trial a dominates trial b when a is at least as good as b on every objective and strictly
better on one (Optuna's definition, `optuna.study.Study.best_trials`). Trials with equal
values do not dominate each other, so both stay on the front.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def on_front(values: pd.DataFrame, modes: list[str]) -> pd.Series:
    """True for the rows of `values` (one column per objective, in order of `modes`: max or
    min) that no other row dominates."""
    signs = np.array([1.0 if m == "max" else -1.0 for m in modes])
    scores = values.to_numpy(dtype=float) * signs  # every objective maximised
    front = [not _dominated(row, scores) for row in scores]
    return pd.Series(front, index=values.index)


def _dominated(row: np.ndarray, scores: np.ndarray) -> bool:
    return bool(((scores >= row).all(axis=1) & (scores > row).any(axis=1)).any())
