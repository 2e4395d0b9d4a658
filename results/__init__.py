"""results: tables and figures from a study's MLflow runs."""
from __future__ import annotations

from results.compare import parse_compare
from results.errors import ResultsError
from results.grid import grid_table
from results.latex import to_latex
from results.markdown import to_markdown
from results.search import optuna_table
from results.store import Study, load_study, store_uri
from results.table import Table
from results.tidy import to_csv

RENDERERS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


def build_table(study: Study, metric_set: str = "test", with_paper: bool = False,
                compare: str | None = None) -> Table:
    """The table for the study's kind (grid: Table 2 layout; optuna: best per stratum)."""
    if study.kind == "optuna":
        if compare:
            raise ResultsError("--compare pairs seeds of grid studies; this experiment is an "
                               "Optuna search (one best trial per stratum)")
        return optuna_table(study, metric_set, with_paper)
    return grid_table(study, metric_set, with_paper, compare)


__all__ = ["RENDERERS", "ResultsError", "Study", "Table", "build_table", "load_study",
           "parse_compare", "store_uri"]
