"""A stratum's Optuna study brought in step with the study's MLflow record, which it follows.

MLflow is the record (docs/failures.md); the Optuna study is the searcher's
memory of it, and may be lost (a deleted file, a study resumed on another machine), stale
(a driver killed between the two writes) or foreign (another study's of the same name).
`sync` runs before any trial of a stratum is asked, on every start and resume:

- An Optuna study recording another parent run is refused: two studies never share one.
- Trials MLflow holds as finished, failed or stopped that Optuna lacks are added under
  their own numbers, with their params, distributions (from the space, `when` clauses
  included), values and intermediate values; numbers MLflow has no run for are filled
  with placeholders that do not count (FAIL, user attr fsvae.placeholder).
- Where Optuna holds a trial as final and MLflow holds it otherwise (a worker died after
  its run FINISHED, a driver died between its two writes), the stratum's study is rebuilt
  from MLflow: a finished Optuna trial cannot be changed in place. Numbers are kept.
- A trial MLflow holds unfinished goes back (or stays) RUNNING in Optuna with its params,
  so that it runs again under its own number (optuna_search.reconcile). A trial number is
  never reused for another configuration: a retry left RUNNING with part of its params
  gets the rest from the trial it retries.
- The sampler's per-trial attributes (NSGA-II's generation) are not in MLflow. A rebuild
  keeps those of each trial the old study asked with the same params; an nsga2 search
  that got trials without them (a lost or stale store) is told so (Synced): its next
  trials start again from a first, random generation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

import search_spaces
from study.errors import StudyError
from study.record.read import Entry
from study.record.schema import CURVE_KEYS, OPTUNA_PARENT, PLACEHOLDER
from study.record.schema import RETRY_OF as RETRY_OF_TAG
from study.secrets import redact

RETRY_OF = "retry_of"  # user attr: the number of the failed trial this one retries
RUN_ID = "mlflow_run_id"  # user attr: the trial's MLflow run
Direction = Literal["minimize", "maximize"]  # an Optuna study's, per objective


@dataclass
class Synced:
    """What `sync` did to one stratum's study, for the console."""

    added: int = 0  # trials added from MLflow as finished, failed or stopped
    rebuilt: bool = False  # rebuilt from MLflow (Optuna disagreed on a finished trial)
    created: bool = False  # a new study (first session, or its store was lost)
    # an nsga2 search got trials from MLflow without the sampler's attributes (their
    # generation): the store held no asked trial of that number and those parameters
    sampler_state_lost: bool = False


def sync(
    storage_url: str,
    name: str,
    label: str,
    entries: dict[str, Entry],
    space,
    parent_id: str,
    client,
) -> Synced:
    """Brings the Optuna study `name` of stratum `label` in step with `entries` (the
    study's MLflow record, study/record/read.py); see the module's docstring."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(storage_url)
    directions: list[Direction] = ["maximize" if m == "max" else "minimize" for m in space.modes]
    out = Synced()
    study = _load(storage, name)
    if study is not None:
        owner = study.user_attrs.get(OPTUNA_PARENT)
        if owner not in (None, parent_id):
            if study.get_trials(deepcopy=False):
                raise StudyError(
                    f"Optuna study {name!r} in {redact(storage_url)} belongs to another study "
                    f"record (parent run {owner}), not to this one ({parent_id}); remove it "
                    f"(`fsvae-study discard`, or `optuna delete-study --study-name {name!r} "
                    f"--storage URL`) or give --optuna-storage another database"
                )
            optuna.delete_study(study_name=name, storage=storage)
            study = None
    if study is None:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions)
        out.created = True
    study.set_user_attr(OPTUNA_PARENT, parent_id)
    record = _numbered(entries, label)
    trials = study.get_trials(deepcopy=False)
    if any(not _agrees(t, record.get(t.number), trials, space.objectives) for t in trials):
        study, bare = _rebuild(storage, name, directions, parent_id, trials, record, space, client)
        out.rebuilt = True
        out.added = sum(e.state != "unfinished" for e in record.values())
    else:
        bare = 0
        for number in range(len(trials), max(record, default=-1) + 1):
            entry = record.get(number)
            study.add_trial(_from_record(entry, space, client) if entry else _placeholder())
            out.added += entry is not None and entry.state != "unfinished"
            bare += entry is not None
    out.sampler_state_lost = bare > 0 and space.sampler == "nsga2"
    _complete_retries(study)
    return out


def _storage(url: str) -> optuna.storages.RDBStorage:
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def _load(storage, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _numbered(entries: dict[str, Entry], label: str) -> dict[int, Entry]:
    """The stratum's runs by Optuna trial number (their keys are "<label>#<number>")."""
    out = {}
    pattern = re.compile(re.escape(label) + r"#(\d+)")
    for key, entry in entries.items():
        m = pattern.fullmatch(key)
        if m:
            out[int(m[1])] = entry
    return out


def _agrees(
    trial: FrozenTrial, entry: Entry | None, trials: list[FrozenTrial], objectives: list[str]
) -> bool:
    """Whether a trial Optuna holds says what MLflow says of its number."""
    if trial.state in (TrialState.RUNNING, TrialState.WAITING):
        return True  # not told yet: reconcile tells it from MLflow, or runs it again
    if trial.state == TrialState.FAIL:
        if entry is None:
            retried = any(t.user_attrs.get(RETRY_OF) == trial.number for t in trials)
            return trial.user_attrs.get(PLACEHOLDER, False) or retried
        return entry.state == "failed"
    if entry is None:
        return False
    if trial.state == TrialState.PRUNED:
        return entry.state == "stopped"
    values = values_of(entry, objectives) if entry.state == "finished" else None
    return values is not None and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(values, trial.values)
    )


def values_of(entry: Entry, objectives: list[str]) -> list[float] | None:
    """A finished run's objective values; None where one is missing or not finite (Optuna
    fails such a trial)."""
    values = [entry.metrics.get(o, math.nan) for o in objectives]
    return values if all(math.isfinite(v) for v in values) else None


def _rebuild(
    storage,
    name: str,
    directions: list[Direction],
    parent_id: str,
    trials: list[FrozenTrial],
    record: dict[int, Entry],
    space,
    client,
) -> tuple[optuna.Study, int]:
    """The stratum's study anew from MLflow, numbers kept (see the module's docstring),
    and how many of MLflow's trials it got without the sampler's attributes. MLflow does
    not hold those (NSGA-II keeps each trial's generation there); a trial the old study
    asked with the same parameters gives its own."""
    optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    study.set_user_attr(OPTUNA_PARENT, parent_id)
    asked = {t.number: t for t in trials}
    bare = 0
    for number in range(max([*record, *asked], default=-1) + 1):
        entry, old = record.get(number), asked.get(number)
        if entry is not None:
            trial = _from_record(entry, space, client)
            if old is not None and old.params == trial.params:
                trial.system_attrs = dict(old.system_attrs)
            else:
                bare += 1
            study.add_trial(trial)
        elif old is not None and old.state in (TrialState.RUNNING, TrialState.WAITING):
            study.add_trial(_copy(old))  # asked but not started, or an enqueued retry
        else:
            study.add_trial(_placeholder())
    return study, bare


def _complete_retries(study: optuna.Study) -> None:
    """A retry left RUNNING with part of its parameters gets the rest from the trial it
    retries, so that it runs again as that configuration, not as another one under the
    same number. Earlier drivers marked an enqueued retry RUNNING before writing its
    parameters, one commit each, and one stopped in between left such a trial in the
    store; the searcher now writes the state last (optuna_mirror.Mirror)."""
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        of = t.user_attrs.get(RETRY_OF)
        if t.state != TrialState.RUNNING or not isinstance(of, int) or not 0 <= of < len(trials):
            continue
        retried = trials[of]
        if any(retried.params.get(k, _NONE) != v for k, v in t.params.items()):
            continue  # not a part of that configuration
        for key, value in retried.params.items():
            if key not in t.params:
                dist = retried.distributions[key]
                study._storage.set_trial_param(t._trial_id, key, dist.to_internal_repr(value), dist)


def _from_record(entry: Entry, space, client) -> FrozenTrial:
    """An Optuna trial as MLflow records it."""
    point = entry.point if entry.point is not None else _point_from_params(entry, space)
    try:
        dists = search_spaces.distributions(space.params, point)
    except ValueError as e:
        raise StudyError(
            f"trial {entry.key} (run {entry.run_id}) does not fit the study's space: {e}"
        ) from None
    attrs: dict[str, Any] = {RUN_ID: entry.run_id}
    retry = entry.tags.get(RETRY_OF_TAG)
    if retry and "#" in retry:
        attrs[RETRY_OF] = int(retry.rsplit("#", 1)[1])
    common: dict[str, Any] = dict(params=point, distributions=dists, user_attrs=attrs)
    if entry.state == "finished":
        values = values_of(entry, space.objectives)
        if values is None:  # Optuna itself fails a trial whose value is not finite
            return create_trial(state=TrialState.FAIL, **common)
        return create_trial(state=TrialState.COMPLETE, values=values, **common)
    if entry.state == "failed":
        return create_trial(state=TrialState.FAIL, **common)
    if entry.state == "stopped":
        return create_trial(
            state=TrialState.PRUNED,
            **common,
            intermediate_values=_intermediate(entry, space, client),
        )
    return create_trial(state=TrialState.RUNNING, **common)  # runs again


def _point_from_params(entry: Entry, space) -> dict:
    """A run written before the fsvae.point tag: its searched values from its params
    (strings), typed by the space."""
    chosen: dict = {}
    for key, spec in space.params.items():
        if key not in entry.params or not search_spaces._active(spec, chosen):
            continue
        text = entry.params[key]
        if spec["type"] == "categorical":
            chosen[key] = next((c for c in spec["choices"] if str(c) == text), text)
        elif spec["type"] == "int":
            chosen[key] = int(float(text))
        else:
            chosen[key] = float(text)
    return chosen


def _intermediate(entry: Entry, space, client) -> dict[int, float]:
    """A scheduler-stopped trial's values at each stage-3 epoch it reported (the searcher
    reports the objective at epoch e as step e + 1), from the run's curve of it."""
    objective = space.objectives[0]
    curve = f"classifier_{objective}"
    if objective not in CURVE_KEYS["classifier"]:
        return {}
    history = client.get_metric_history(entry.run_id, curve)
    return {int(m.step) + 1: float(m.value) for m in history if math.isfinite(m.value)}


def _copy(trial: FrozenTrial) -> FrozenTrial:
    return create_trial(
        state=trial.state,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=trial.user_attrs,
        system_attrs=trial.system_attrs,
    )


def _placeholder() -> FrozenTrial:
    return create_trial(state=TrialState.FAIL, user_attrs={PLACEHOLDER: True})


_NONE = object()
