"""Optuna's plots of one search stratum, each titled with what it shows and written as a PNG
(optuna.visualization.matplotlib)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.exceptions import ExperimentalWarning  # noqa: E402
from optuna.importance import BaseImportanceEvaluator  # noqa: E402
from optuna.visualization import matplotlib as ovm  # noqa: E402

from results.importance import ALL, Importance, target  # noqa: E402

DPI = 100


def save(draw: Callable, path: Path, title: str, width: float | None = None) -> Path:
    """Draws one Optuna plot, titles it with what it shows and writes it. Optuna sets the
    ggplot style globally and marks its matplotlib backend experimental: both stay inside
    this call, and matplotlib's warnings about a parameter with one value are left out."""
    with plt.style.context("ggplot"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        drawn = draw()
        ax = drawn.flat[0] if isinstance(drawn, np.ndarray) else drawn
        fig = ax.figure
        if width is not None:
            fig.set_size_inches(width, fig.get_size_inches()[1])
        if isinstance(drawn, np.ndarray):
            fig.suptitle(title, fontsize=10)
        else:
            ax.set_title("", loc="left")
            ax.set_title(title, fontsize=10)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _target(study: optuna.Study, index: int):
    """None for one objective (Optuna then draws its best-so-far line), else objective
    `index`."""
    return None if len(study.directions) == 1 else target(index)


def plot_history(study: optuna.Study, index: int, name: str, path: Path, title: str) -> Path:
    return save(
        lambda: ovm.plot_optimization_history(
            study, target=_target(study, index), target_name=name
        ),
        path,
        f"Optimisation history: {title}",
    )


def plot_slices(study: optuna.Study, index: int, name: str, path: Path, title: str) -> Path:
    """Every searched parameter, conditional ones over the trials that have them."""
    return save(
        lambda: ovm.plot_slice(study, target=_target(study, index), target_name=name),
        path,
        f"Slice: {title}",
    )


def plot_parallel(
    study: optuna.Study, index: int, name: str, params: list[str], path: Path, title: str
) -> Path:
    """The parameters every trial has (a conditional one would draw 'None' as a value),
    an inch and a half apart so that their tick labels do not overlap."""
    return save(
        lambda: ovm.plot_parallel_coordinate(
            study, params=params, target=_target(study, index), target_name=name
        ),
        path,
        f"Parallel coordinates: {title}",
        width=max(6.4, 1.5 * (len(params) + 2)),
    )


def plot_contour(
    study: optuna.Study, index: int, name: str, params: list[str], path: Path, title: str
) -> Path:
    """The objective over the two parameters given (the two most important)."""
    return save(
        lambda: ovm.plot_contour(
            study, params=params, target=_target(study, index), target_name=name
        ),
        path,
        f"Contour: {title}",
    )


def plot_importances(
    scope_study: optuna.Study, imp: Importance, index: int, path: Path, title: str
) -> Path:
    """Optuna's importance bars, of the values `imp` holds (fANOVA is not fitted again: at
    10,000 trials a fit took minutes)."""
    return save(
        lambda: ovm.plot_param_importances(
            scope_study,
            evaluator=_Computed(imp.values),
            target=_target(scope_study, index),
            target_name=imp.objective,
        ),
        path,
        f"fANOVA importance, {'' if imp.scope == ALL else imp.scope + ', '}"
        f"{imp.n_trials} trials: {title}",
    )


class _Computed(BaseImportanceEvaluator):
    """An importance evaluator that answers with importances computed already."""

    def __init__(self, values: dict[str, float]):
        self.values = dict(values)

    def evaluate(self, study, params=None, *, target=None) -> dict[str, float]:
        return {k: v for k, v in self.values.items() if params is None or k in params}


def plot_pareto(study: optuna.Study, names: list[str], path: Path, title: str) -> Path:
    """The trials on the validation objectives, the Pareto front highlighted."""
    return save(
        lambda: ovm.plot_pareto_front(study, target_names=names), path, f"Pareto front: {title}"
    )
