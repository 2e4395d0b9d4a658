"""One search stratum analysed: what `fsvae-study analyze` reports of an Optuna study.

Where the studies are (docs/studies.md): the study's parent run names the storage in its
tag fsvae.optuna_storage (default sqlite:///<storage>/optuna.db); stratum `n_f=5` of study
`search-nf` is the Optuna study `search-nf/n_f=5`, and a search without strata is the
Optuna study `search-nf`. Trial number k of stratum L is the MLflow run tagged
fsvae.trial_key = "L#k" (study/record/schema.py), whose metrics are shown beside it.

For the stratum's Optuna study: fANOVA importances over all complete trials and per
branch of each parent of conditional parameters (beta_schedule; results.importance); the
best k trials by the validation objective, or the Pareto front with several objectives
(study.record.read); Optuna's plots as PNGs (results.search_plots). Only the validation
objectives rank or choose trials.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
from mlflow.tracking import MlflowClient

from results.errors import ResultsError
from results.importance import ALL, MIN_TRIALS, Importance, branch_parents, importance, scoped
from results.search_plots import (
    plot_contour,
    plot_history,
    plot_importances,
    plot_parallel,
    plot_pareto,
    plot_slices,
)
from results.store import Study
from results.table import stratum_key
from study.plan.plan import DEFAULT_STORAGE, default_optuna_storage
from study.plan.storage import resolve
from study.record.read import best_trials, one_run_per_trial, order
from study.record.schema import OPTUNA_STORAGE, PLACEHOLDER
from study.secrets import redact

STORAGE_TAG = OPTUNA_STORAGE


# -- the stratum's Optuna study, read back ----------------------------------------------------


def storage_url(study: Study, given: str | None = None, storage: str | Path | None = None) -> str:
    """`given` (--optuna-storage); else the URL the study's parent run recorded; else the
    default sqlite file under `storage` (default ./fsvae-studies)."""
    if given:
        return given
    if study.parent_run_id:
        tags = MlflowClient(study.tracking_uri).get_run(study.parent_run_id).data.tags
        if tags.get(STORAGE_TAG):
            return tags[STORAGE_TAG]
    return default_optuna_storage(resolve(str(storage or DEFAULT_STORAGE)))


def open_strata(study: Study, url: str) -> dict[str, optuna.Study]:
    """Stratum label ('' without strata) -> its Optuna study, in stratum order. Opening
    never creates a database or a study; ResultsError names what the storage holds."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise ResultsError(
            f"no Optuna storage at {redact(url)} (the search's studies live "
            f"there; pass --optuna-storage, or --storage where the study ran)"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    names = optuna.get_all_study_names(storage)
    labels = {n: label for n in names if (label := _label(study.name, n)) is not None}
    mine = sorted(labels, key=lambda n: stratum_key(labels[n]))
    if not mine:
        raise ResultsError(
            f"no Optuna study of search {study.name!r} in {redact(url)} "
            f"(expected {study.name!r} or {study.name + '/<stratum>'!r}); "
            f"studies there: "
            f"{', '.join(sorted(names)) or 'none'}"
        )
    return {labels[n]: optuna.load_study(study_name=n, storage=storage) for n in mine}


def _label(experiment: str, name: str) -> str | None:
    """The stratum label of Optuna study `name` if it belongs to `experiment`, else None."""
    if name == experiment:
        return ""
    prefix = experiment + "/"
    return name[len(prefix) :] if name.startswith(prefix) else None


def trial_frame(study: Study, label: str, optuna_study: optuna.Study) -> pd.DataFrame:
    """One row per Optuna trial of a stratum: number, state, values (a list, or None),
    params (dict) and, where its MLflow run exists (the run the tables count), run_id,
    run_name and that run's metrics (val_*, test_*, ...)."""
    runs, _ = one_run_per_trial(study.trials)
    runs = runs.set_index("trial_key")
    rows = []
    for t in optuna_study.get_trials(deepcopy=False):
        if t.user_attrs.get(PLACEHOLDER):  # a number MLflow has no run for (study/optuna_sync)
            continue
        key = f"{label}#{t.number}"
        run = runs.loc[key] if key in runs.index else None
        metrics = (
            {}
            if run is None
            else {
                c: run[c]
                for c in runs.columns
                if c.startswith(("val_", "test_")) and pd.notna(run[c])
            }
        )
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "values": t.values,
                "params": dict(t.params),
                "trial_key": key,
                "run_id": None if run is None else run["run_id"],
                "run_name": None if run is None else run["run_name"],
                **metrics,
            }
        )
    return pd.DataFrame(rows)


# -- the stratum's analysis -------------------------------------------------------------------


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


def analyze_stratum(
    study: Study, label: str, ost: optuna.Study, space_params: dict, top: int, out: Path
) -> StratumAnalysis:
    """The stratum's analysis; its PNGs are written under `out`."""
    if len(ost.directions) != len(study.objectives):
        raise ResultsError(
            f"Optuna study {ost.study_name!r} has {len(ost.directions)} "
            f"objective(s), the MLflow study {study.objectives}"
        )
    frame = trial_frame(study, label, ost)
    everything = scoped(ost)
    result = StratumAnalysis(
        label=label,
        objectives=study.objectives,
        modes=study.modes,
        counts=frame["state"].value_counts().to_dict() if len(frame) else {},
        importances=[importance(everything, i, o) for i, o in enumerate(study.objectives)],
        branches=[],
        ranked=_ranked(frame, study, top),
    )
    scopes = {ALL: everything}
    # A branch has no more trials than the stratum: below the floor, none is assessed.
    enough = len(everything.trials) >= MIN_TRIALS
    for parent in branch_parents(space_params) if enough else []:
        for value in _choices(ost, parent):
            scopes[f"{parent}={value}"] = scoped(ost, parent, value)
            result.branches.append(
                Branch(
                    parent,
                    value,
                    [
                        importance(scopes[f"{parent}={value}"], i, o, scope=f"{parent}={value}")
                        for i, o in enumerate(study.objectives)
                    ],
                )
            )
    _draw(result, ost, scopes, out)
    return result


def _choices(ost: optuna.Study, parent: str) -> list:
    """The values `parent` can take, in the space's order (its Optuna distribution)."""
    for t in ost.get_trials(deepcopy=False):
        dist = t.distributions.get(parent)
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            return list(dist.choices)
    return []


def _ranked(frame: pd.DataFrame, study: Study, top: int) -> pd.DataFrame:
    """Complete trials with their objective values as columns, in the order of
    study.record.read (an Optuna trial's number stands for its start): the best `top`, or
    (several objectives) the Pareto front."""
    objectives = study.objectives
    done = frame[frame["state"] == "COMPLETE"] if len(frame) else frame
    if done.empty:
        return done
    done = done[[all(math.isfinite(v) for v in vs) for vs in done["values"]]]
    values = pd.DataFrame(done["values"].tolist(), index=done.index, columns=objectives)
    done = pd.concat([done.drop(columns=[o for o in objectives if o in done]), values], axis=1)
    trials = done.assign(status="FINISHED", start_time=done["number"])
    if len(objectives) > 1:
        return best_trials(trials, study.goals).drop(columns=["status", "start_time"])
    return order(trials, study.goals).head(top).drop(columns=["status", "start_time"])


def _draw(
    result: StratumAnalysis, ost: optuna.Study, scopes: dict[str, optuna.Study], out: Path
) -> None:
    """Optuna's plots of the stratum, per objective; importance plots where computed."""
    if not result.counts.get("COMPLETE"):
        result.notes.append("No complete trial: no plots.")
        return
    for i in range(len(result.objectives)):
        _draw_objective(result, ost, scopes, out, i)
    if 1 < len(result.objectives) <= 3:
        _try(
            result,
            "Pareto front",
            lambda: plot_pareto(
                ost, result.objectives, out / f"{slug(result.label)}_pareto.png", result.title
            ),
        )


def _draw_objective(
    result: StratumAnalysis, ost: optuna.Study, scopes: dict[str, optuna.Study], out: Path, i: int
) -> None:
    """The plots of objective `i`; file names end in the objective's name when there are
    several (n_f=5_history_val_acc.png)."""
    name, prefix = result.objectives[i], slug(result.label)
    end, title = (f"_{name}" if len(result.objectives) > 1 else ""), f"{result.title}, {name}"
    every = [
        k
        for k, d in optuna.search_space.intersection_search_space(
            [t for t in ost.get_trials(deepcopy=False) if not t.user_attrs.get(PLACEHOLDER)]
        ).items()
        if not d.single()
    ]
    _try(
        result,
        "history",
        lambda: plot_history(ost, i, name, out / f"{prefix}_history{end}.png", title),
    )
    _try(
        result, "slice", lambda: plot_slices(ost, i, name, out / f"{prefix}_slice{end}.png", title)
    )
    if every:
        _try(
            result,
            "parallel coordinates",
            lambda: plot_parallel(ost, i, name, every, out / f"{prefix}_parallel{end}.png", title),
        )
    top2 = list(result.importances[i].values)[:2]
    if len(top2) == 2:
        _try(
            result,
            "contour",
            lambda: plot_contour(ost, i, name, top2, out / f"{prefix}_contour{end}.png", title),
        )
    for imp in [result.importances[i]] + [b.importances[i] for b in result.branches]:
        if imp.values:
            scope = "" if imp.scope == ALL else "_" + slug(imp.scope)
            _try(
                result,
                f"importance ({imp.scope})",
                lambda imp=imp, scope=scope: plot_importances(
                    scopes[imp.scope], imp, i, out / f"{prefix}_importance{scope}{end}.png", title
                ),
                result.importance_figures.setdefault(imp.scope, []),
            )


def _try(result: StratumAnalysis, what: str, draw, into: list[Path] | None = None) -> None:
    """One plot, added to `into` (default: the stratum's figures); a plot Optuna cannot
    draw for these trials costs that figure only, and the summary says why."""
    try:
        (result.figures if into is None else into).append(draw())
    except Exception as e:  # noqa: BLE001 - any failure of one plot is reported, not fatal
        result.notes.append(f"No {what} plot: {type(e).__name__}: {e}")
