"""fANOVA importance of a search's parameters over one set of its trials: study-wide, or
one branch of a conditional parameter's parent.

Importance is fANOVA (Hutter, Hoos and Leyton-Brown, "An Efficient Approach for Assessing
Hyperparameter Importance", ICML 2014), through Optuna's seeded
`FanovaImportanceEvaluator`: it fits a random forest to the complete trials and splits the
variance of its prediction into the part each parameter explains on its own (its main
effect) and the rest (interactions). It needs parameters every trial has, so conditional
ones (`beta_cycles` exists only for `beta_schedule: cyclical`) are left out of the
study-wide importance; each branch of their parent is then assessed on its own trials with
its own parameters.

MIN_TRIALS: below 20 complete trials nothing is computed. Measured with
bench/fanova_floor.py: 40 seeded TPE searches per cell, shaped like smoke-search (four
parameters, of which beta_max alone moves the objective), noise half the signal's spread.
fANOVA ranked beta_max first in 18 of 40 searches at 10 trials (a guess: 10 of 40), 29 at
15, 38 at 20, 40 at 30; with noise as large as the signal, 10, 25, 32 and 34. Below 20 the
ranking is mostly the forest's luck. Above it, more parameters need more trials still:
with five continuous parameters beside beta_max, 16 of 40 at 20 trials, 23 at 40.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.search_space import intersection_search_space
from optuna.trial import FrozenTrial, TrialState

MIN_TRIALS = 20
SEED = 0  # the forest's seed: the same trials give the same importances
ALL = "all trials"  # the scope of the study-wide importance


@dataclass
class Importance:
    """One objective's importances over one set of trials (`scope`: all, or one branch)."""

    scope: str
    objective: str
    n_trials: int  # complete trials with a finite value
    values: dict[str, float] = field(default_factory=dict)  # shares summing to 1, largest first
    explained: float | None = None  # the main effects' share of the forest's variance
    reason: str | None = None  # why `values` is empty
    left_out: list[str] = field(default_factory=list)  # conditional: not in every trial


def evaluator() -> FanovaImportanceEvaluator:
    return FanovaImportanceEvaluator(seed=SEED)


def target(index: int):
    """The value fANOVA explains: objective `index` of a trial (several objectives are
    assessed one at a time)."""
    return lambda t: t.values[index]


def scoped(study: optuna.Study, parent: str | None = None, value=None) -> optuna.Study:
    """An in-memory copy of the study's complete trials with finite values; with `parent`,
    only those where it took `value`, without that (now constant) parameter."""
    out = optuna.create_study(directions=study.directions)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not all(math.isfinite(v) for v in t.values):
            continue
        if parent is not None and t.params.get(parent, object()) != value:
            continue
        keep = {k: d for k, d in t.distributions.items() if k != parent}
        out.add_trial(
            optuna.trial.create_trial(
                params={k: t.params[k] for k in keep}, distributions=keep, values=t.values
            )
        )
    return out


def importance(study: optuna.Study, index: int, objective: str, scope: str = ALL) -> Importance:
    """fANOVA importances of objective `index` over `study`'s complete trials (a `scoped`
    copy), or the reason there are none."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    result = Importance(scope, objective, len(trials), left_out=_conditional(trials))
    result.reason = _too_little(trials, index)
    if result.reason is None:
        with warnings.catch_warnings():  # `normalize` is experimental in Optuna
            warnings.simplefilter("ignore", ExperimentalWarning)
            raw = get_param_importances(
                study, evaluator=evaluator(), target=target(index), normalize=False
            )
        total = sum(raw.values())
        if total > 0:
            result.values = {k: v / total for k, v in raw.items()}
            result.explained = min(total, 1.0)
        else:
            result.reason = "no parameter explains any of the variance on its own"
    return result


def _too_little(trials: list[FrozenTrial], index: int) -> str | None:
    """Why these trials cannot rank parameters, or None when they can."""
    if len(trials) < MIN_TRIALS:
        return (
            f"{len(trials)} complete trial{'s' * (len(trials) != 1)}, fewer than "
            f"{MIN_TRIALS}: not computed (below that, fANOVA's ranking is mostly chance)"
        )
    space = intersection_search_space(trials)
    if not any(not d.single() for d in space.values()):
        return "no parameter takes two values in these trials"
    if len({t.values[index] for t in trials}) == 1:
        return "every trial has the same value: there is no variance to explain"
    return None


def _conditional(trials: list[FrozenTrial]) -> list[str]:
    """Parameters some trials have and others lack."""
    every = set(intersection_search_space(trials))
    return sorted({k for t in trials for k in t.params} - every)


def branch_parents(space_params: dict[str, dict]) -> list[str]:
    """The parameters that conditional parameters depend on (`when: {parent: ...}` in the
    space, e.g. beta_schedule), in space order."""
    parents = {p for spec in space_params.values() for p in (spec.get("when") or {})}
    return [k for k in space_params if k in parents]
