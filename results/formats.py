"""A Table as text in one of its formats: markdown or LaTeX, written from its layout
(results.layouts) by results.markdown and results.latex, or tidy CSV.

Markdown renders on a web page (GitHub, a notebook); LaTeX is a booktabs float that fits
an article's column. CSV is tidy: one line per cell, with the run ids behind each number.
"""

from __future__ import annotations

import pandas as pd

from results import latex as latex_writer
from results import markdown as markdown_writer
from results.layouts import Shown, model


def markdown(table: Shown) -> str:
    return markdown_writer.write(model(table))


def latex(table: Shown) -> str:
    return latex_writer.write(model(table))


def csv(table: Shown) -> str:
    """Tidy: one line per (row, n_f, metric) cell, then the comparison lines, with the run
    ids behind each number; NaN (no spread with one seed) as an empty field."""
    frames = [table.cells]
    if table.comparisons is not None:
        frames.append(table.comparisons)
    out = pd.concat(frames, ignore_index=True)
    if table.kind == "confirm":
        first = [
            "section",
            "stratum",
            "row",
            "rank",
            "of",
            "trial_key",
            "search_run_id",
            "params",
            "metric_set",
            "metric",
            "mean",
            "std",
            "n",
            "ci95_low",
            "ci95_high",
            "search_value",
            "best",
            "seeds",
            "run_ids",
        ]
    elif table.study.kind == "optuna":
        first = [
            "section",
            "stratum",
            "row",
            "method",
            "sampling_factor",
            "params",
            "n_f",
            "metric",
            "value",
            "objective",
            "objective_value",
            "n_trials",
            "n_finished",
            "n_failed",
            "n_killed",
            "run_name",
            "run_ids",
        ]
    else:
        first = [
            "section",
            "row",
            "method",
            "sampling_factor",
            "params",
            "n_f",
            "metric",
            "mean",
            "std",
            "n",
            "ci95_low",
            "ci95_high",
            "seeds",
            "run_ids",
        ]
    if table.with_paper:
        first += ["paper", "diff"]
    if table.comparisons is not None:
        first += ["a", "b"]
    out = out.reindex(columns=first + [c for c in out.columns if c not in first])
    return out.to_csv(index=False)
