"""The PNG figures of `fsvae-study analyze`: Optuna's own matplotlib plots of a search
stratum (optuna.visualization.matplotlib), and a grid key's effect with its intervals.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.exceptions import ExperimentalWarning  # noqa: E402
from optuna.visualization import matplotlib as ovm  # noqa: E402

from results.importance import ALL, Importance, evaluator, target  # noqa: E402

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


def history(study: optuna.Study, index: int, name: str, path: Path, title: str) -> Path:
    return save(lambda: ovm.plot_optimization_history(
        study, target=_target(study, index), target_name=name), path,
        f"Optimisation history: {title}")


def slices(study: optuna.Study, index: int, name: str, path: Path, title: str) -> Path:
    """Every searched parameter, conditional ones over the trials that have them."""
    return save(lambda: ovm.plot_slice(study, target=_target(study, index), target_name=name),
                path, f"Slice: {title}")


def parallel(study: optuna.Study, index: int, name: str, params: list[str], path: Path,
             title: str) -> Path:
    """The parameters every trial has (a conditional one would draw 'None' as a value),
    an inch and a half apart so that their tick labels do not overlap."""
    return save(lambda: ovm.plot_parallel_coordinate(
        study, params=params, target=_target(study, index), target_name=name), path,
        f"Parallel coordinates: {title}", width=max(6.4, 1.5 * (len(params) + 2)))


def contour(study: optuna.Study, index: int, name: str, params: list[str], path: Path,
            title: str) -> Path:
    """The objective over the two parameters given (the two most important)."""
    return save(lambda: ovm.plot_contour(study, params=params, target=_target(study, index),
                                         target_name=name), path, f"Contour: {title}")


def importances(scope_study: optuna.Study, imp: Importance, index: int, path: Path,
                title: str) -> Path:
    """Optuna's importance bars, from the same seeded fANOVA over the same trials as `imp`."""
    return save(lambda: ovm.plot_param_importances(
        scope_study, evaluator=evaluator(), target=_target(scope_study, index),
        target_name=imp.objective), path,
        f"fANOVA importance, {'' if imp.scope == ALL else imp.scope + ', '}"
        f"{imp.n_trials} trials: {title}")


def pareto(study: optuna.Study, names: list[str], path: Path, title: str) -> Path:
    """The trials on the validation objectives, the Pareto front highlighted."""
    return save(lambda: ovm.plot_pareto_front(study, target_names=names), path,
                f"Pareto front: {title}")


def effect_figure(effects: pd.DataFrame, key: str, metrics: tuple[str, ...], path: Path,
                  title: str) -> Path:
    """One panel per metric: the mean over seeds per value of `key`, one line per setting
    of the other keys, bars = the 95% Student-t interval (none with one seed)."""
    mine = effects[effects["key"] == key]
    values = list(dict.fromkeys(mine["value"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.0),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = mine[mine["metric"] == metric]
        settings = list(dict.fromkeys(rows["setting"]))
        for j, (setting, g) in enumerate(rows.groupby("setting", sort=False)):
            nudge = 0.04 * (j - (len(settings) - 1) / 2)  # bars of two settings apart
            x = [values.index(v) + nudge for v in g["value"]]
            low = [0.0 if math.isnan(v) else m - v for m, v in zip(g["mean"], g["ci95_low"])]
            high = [0.0 if math.isnan(v) else v - m for m, v in zip(g["mean"], g["ci95_high"])]
            ax.errorbar(x, g["mean"], yerr=[low, high], marker="o", capsize=3, label=setting)
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(key)
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{title}: mean and 95% CI over seeds per {key}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
