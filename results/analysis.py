"""`fsvae-study analyze`: a study's analysis written as PNGs and analysis.md, and logged to
the study's parent MLflow run under analysis/ (README "Analysing a search").

A search: per stratum, results.search_analysis (importance, best trials or Pareto front,
Optuna's plots). A grid: results.grid_effects (each varied key's effect over seeds) and a
figure per key. From Python:

    from results.analysis import analyze
    analysis = analyze("search-nf", storage="fsvae-studies", out="analysis/search-nf")
    print(analysis.markdown)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from results import analysis_md, analysis_plots
from results.errors import ResultsError
from results.grid_effects import grid_effects
from results.optuna_studies import open_strata, storage_url
from results.search_analysis import StratumAnalysis, analyze_stratum, slug
from results.store import Study, load_study, store_uri
from results.table import METRICS

ARTIFACT_DIR = "analysis"


@dataclass
class Analysis:
    study: Study
    out: Path
    top: int = 5
    metric_set: str = "test"  # grids: the metrics whose effects are shown
    optuna_url: str | None = None
    strata: list[StratumAnalysis] = field(default_factory=list)
    effects: pd.DataFrame | None = None
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    markdown: str = ""
    logged_to: str | None = None  # the parent run the files were logged to

    @property
    def path(self) -> Path:
        return self.out / "analysis.md"

    @property
    def files(self) -> list[Path]:
        """Everything written, analysis.md first."""
        return [self.path] + self.figures + [f for s in self.strata for f in s.files]


def analyze(experiment: str, tracking_uri: str | None = None,
            storage: str | Path | None = None, optuna_storage: str | None = None,
            out: str | Path | None = None, top: int = 5, log: bool = True) -> Analysis:
    """Analyses the study, writes analysis.md and its PNGs under `out` (default
    analysis/<experiment>) and, with `log`, logs them to its parent run. ResultsError names
    a bad option, a missing store, experiment or Optuna storage."""
    if top < 1:
        raise ResultsError(f"top={top}: expected at least 1 trial to list")
    study = load_study(experiment, store_uri(tracking_uri, storage))
    analysis = Analysis(study=study, out=Path(out or Path("analysis") / slug(experiment)),
                        top=top)
    analysis.out.mkdir(parents=True, exist_ok=True)
    if study.kind == "optuna":
        _search(analysis, storage_url(study, optuna_storage, storage))
    else:
        _grid(analysis)
    analysis.markdown = analysis_md.render(analysis)
    analysis.path.write_text(analysis.markdown, encoding="utf-8")
    if log:
        log_to_parent(analysis)
    return analysis


def _search(analysis: Analysis, url: str) -> None:
    study = analysis.study
    analysis.optuna_url = url
    if study.space_params is None:
        analysis.notes.append("The parent run has no space.json: per-branch importance "
                              "needs the space's `when` clauses, so none is shown.")
    for label, ost in open_strata(study, url).items():
        analysis.strata.append(analyze_stratum(study, label, ost, study.space_params or {},
                                               analysis.top, analysis.out))


def _grid(analysis: Analysis) -> None:
    effects, notes = grid_effects(analysis.study, analysis.metric_set, METRICS)
    analysis.effects, analysis.notes = effects, analysis.notes + notes
    for key in dict.fromkeys(effects["key"]) if not effects.empty else []:
        analysis.figures.append(analysis_plots.effect_figure(
            effects, key, METRICS, analysis.out / f"effect_{key}.png", analysis.study.name))


def log_to_parent(analysis: Analysis) -> None:
    """Logs the files written (not the rest of the folder) under analysis/ of the study's
    parent run; a study with no parent run keeps them on disk only (logged_to stays None)."""
    parent = analysis.study.parent_run_id
    if parent is None:
        return
    client = MlflowClient(analysis.study.tracking_uri)
    for path in analysis.files:
        client.log_artifact(parent, str(path), ARTIFACT_DIR)
    analysis.logged_to = parent
