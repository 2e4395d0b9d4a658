"""One search stratum analysed: what `fsvae-study analyze` reports of an Optuna study.

For the stratum's Optuna study: fANOVA importances (results.importance) over all complete
trials and per branch of each parent of conditional parameters (beta_schedule); the best k
trials by the validation objective, or the Pareto front (`Study.best_trials`) with several
objectives, each with its MLflow run's validation and test metrics; Optuna's plots as PNGs
(results.analysis_plots). Only the validation objectives rank or choose trials.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd

from results import analysis_plots as plots
from results.errors import ResultsError
from results.importance import (ALL, MIN_TRIALS, Importance, branch_parents, importance,
                                scoped)
from results.optuna_studies import trial_frame
from results.store import Study


@dataclass
class Branch:
    """One value of a parent parameter: its trials' importances, one per objective."""

    parent: str
    value: object
    importances: list[Importance]


@dataclass
class StratumAnalysis:
    label: str  # "" for a search without strata
    objectives: list[str]
    modes: list[str]
    counts: dict[str, int]  # Optuna trial states: COMPLETE, FAIL, PRUNED, RUNNING, ...
    importances: list[Importance]  # over all complete trials, one per objective
    branches: list[Branch]
    ranked: pd.DataFrame  # the best k trials, or the Pareto front (several objectives)
    figures: list[Path] = field(default_factory=list)  # Optuna's plots, importance apart
    importance_figures: dict[str, list[Path]] = field(default_factory=dict)  # scope -> PNGs
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return self.figures + [f for fs in self.importance_figures.values() for f in fs]

    @property
    def title(self) -> str:
        return self.label or "all trials"


def slug(label: str) -> str:
    """A file-name prefix for a stratum: 'n_f=5', 'all' without strata."""
    return re.sub(r"[^A-Za-z0-9=._-]+", "_", label) or "all"


def analyze_stratum(study: Study, label: str, ost: optuna.Study, space_params: dict,
                    top: int, out: Path) -> StratumAnalysis:
    """The stratum's analysis; its PNGs are written under `out`."""
    if len(ost.directions) != len(study.objectives):
        raise ResultsError(f"Optuna study {ost.study_name!r} has {len(ost.directions)} "
                           f"objective(s), the MLflow study {study.objectives}")
    frame = trial_frame(study, label, ost)
    everything = scoped(ost)
    result = StratumAnalysis(
        label=label, objectives=study.objectives, modes=study.modes,
        counts=frame["state"].value_counts().to_dict() if len(frame) else {},
        importances=[importance(everything, i, o) for i, o in enumerate(study.objectives)],
        branches=[], ranked=_ranked(frame, ost, study.objectives, study.modes, top))
    scopes = {ALL: everything}
    # A branch has no more trials than the stratum: below the floor, none is assessed.
    enough = len(everything.trials) >= MIN_TRIALS
    for parent in branch_parents(space_params) if enough else []:
        for value in _choices(ost, parent):
            scopes[f"{parent}={value}"] = scoped(ost, parent, value)
            result.branches.append(Branch(parent, value, [
                importance(scopes[f"{parent}={value}"], i, o, scope=f"{parent}={value}")
                for i, o in enumerate(study.objectives)]))
    _draw(result, ost, scopes, out)
    return result


def _choices(ost: optuna.Study, parent: str) -> list:
    """The values `parent` can take, in the space's order (its Optuna distribution)."""
    for t in ost.get_trials(deepcopy=False):
        dist = t.distributions.get(parent)
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            return list(dist.choices)
    return []


def _ranked(frame: pd.DataFrame, ost: optuna.Study, objectives: list[str],
            modes: list[str], top: int) -> pd.DataFrame:
    """Complete trials with their objective values as columns: the best `top` by the
    objective, or (several objectives) the Pareto front, best first by the first one."""
    done = frame[frame["state"] == "COMPLETE"] if len(frame) else frame
    if done.empty:
        return done
    done = done[[all(math.isfinite(v) for v in vs) for vs in done["values"]]]
    values = pd.DataFrame(done["values"].tolist(), index=done.index, columns=objectives)
    done = pd.concat([done.drop(columns=[o for o in objectives if o in done]), values], axis=1)
    if len(objectives) > 1:
        front = {t.number for t in ost.best_trials}
        done = done[done["number"].isin(front)]
    order = done.sort_values([*objectives, "number"],
                             ascending=[m == "min" for m in modes] + [True], kind="stable")
    return order if len(objectives) > 1 else order.head(top)


def _draw(result: StratumAnalysis, ost: optuna.Study, scopes: dict[str, optuna.Study],
          out: Path) -> None:
    """Optuna's plots of the stratum, per objective; importance plots where computed."""
    if not result.counts.get("COMPLETE"):
        result.notes.append("No complete trial: no plots.")
        return
    for i in range(len(result.objectives)):
        _draw_objective(result, ost, scopes, out, i)
    if 1 < len(result.objectives) <= 3:
        _try(result, "Pareto front", lambda: plots.pareto(
            ost, result.objectives, out / f"{slug(result.label)}_pareto.png", result.title))


def _draw_objective(result: StratumAnalysis, ost: optuna.Study,
                    scopes: dict[str, optuna.Study], out: Path, i: int) -> None:
    """The plots of objective `i`; file names end in the objective's name when there are
    several (n_f=5_history_val_acc.png)."""
    name, prefix = result.objectives[i], slug(result.label)
    end, title = (f"_{name}" if len(result.objectives) > 1 else ""), f"{result.title}, {name}"
    every = [k for k, d in optuna.search_space.intersection_search_space(
        ost.get_trials(deepcopy=False)).items() if not d.single()]
    _try(result, "history", lambda: plots.history(
        ost, i, name, out / f"{prefix}_history{end}.png", title))
    _try(result, "slice", lambda: plots.slices(
        ost, i, name, out / f"{prefix}_slice{end}.png", title))
    if every:
        _try(result, "parallel coordinates", lambda: plots.parallel(
            ost, i, name, every, out / f"{prefix}_parallel{end}.png", title))
    top2 = list(result.importances[i].values)[:2]
    if len(top2) == 2:
        _try(result, "contour", lambda: plots.contour(
            ost, i, name, top2, out / f"{prefix}_contour{end}.png", title))
    for imp in [result.importances[i]] + [b.importances[i] for b in result.branches]:
        if imp.values:
            scope = "" if imp.scope == ALL else "_" + slug(imp.scope)
            _try(result, f"importance ({imp.scope})", lambda: plots.importances(
                scopes[imp.scope], imp, i, out / f"{prefix}_importance{scope}{end}.png",
                title), result.importance_figures.setdefault(imp.scope, []))


def _try(result: StratumAnalysis, what: str, draw, into: list[Path] | None = None) -> None:
    """One plot, added to `into` (default: the stratum's figures); a plot Optuna cannot
    draw for these trials costs that figure only, and the summary says why."""
    try:
        (result.figures if into is None else into).append(draw())
    except Exception as e:  # noqa: BLE001 - any failure of one plot is reported, not fatal
        result.notes.append(f"No {what} plot: {type(e).__name__}: {e}")
