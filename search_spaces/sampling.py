"""Optuna's view of a space's searched parameters: define-by-run sampling, its distributions.

A parameter with `when: {parent: values}` is sampled only when its parent took one of
those values, so a trial's distributions depend on the point it chose (`distributions`).
"""

from __future__ import annotations

from typing import Any


def suggest(trial, params: dict[str, dict]) -> None:
    """Optuna define-by-run: samples `params`, skipping conditionals whose parent differs.

    Module-level so that Ray can pickle it (as functools.partial(suggest, params=...)).
    Returns None: fixed keys are merged by the trainable, not by the searcher.
    """
    chosen: dict[str, Any] = {}
    for key, spec in params.items():
        if not active(spec, chosen):
            continue
        d = distribution(spec)
        if spec["type"] == "categorical":
            chosen[key] = trial.suggest_categorical(key, d.choices)
        elif spec["type"] == "int":
            chosen[key] = trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
        else:
            chosen[key] = trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)
    return None


def distribution(spec: dict):
    """The Optuna distribution of one searched parameter, exactly as `suggest` samples it:
    a trial rebuilt from the record must carry the same one (Optuna compares them)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec["type"] == "categorical":
        return CategoricalDistribution(spec["choices"])
    if spec["type"] == "int":
        return IntDistribution(
            int(spec["low"]), int(spec["high"]), log=spec["log"], step=int(spec.get("step", 1))
        )
    return FloatDistribution(
        float(spec["low"]), float(spec["high"]), log=spec["log"], step=spec.get("step")
    )


def distributions(params: dict[str, dict], point: dict[str, Any]) -> dict[str, Any]:
    """The distributions of the parameters `point` chose: those whose `when` it meets.
    ValueError names a parameter the point lacks or one it should not have."""
    out: dict[str, Any] = {}
    for key, spec in params.items():
        if active(spec, point):
            if key not in point:
                raise ValueError(f"the point {point} lacks the searched parameter {key!r}")
            out[key] = distribution(spec)
    extra = sorted(set(point) - set(out))
    if extra:
        raise ValueError(f"the point {point} has {extra}, which the space does not search there")
    return out


def active(spec: dict, chosen: dict[str, Any]) -> bool:
    """Whether a parameter is sampled, given the values its parents took."""
    when = spec.get("when")
    if not when:
        return True
    ((parent, values),) = when.items()
    return parent in chosen and chosen[parent] in values
