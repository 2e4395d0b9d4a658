"""What a stratum has left to do, read from the record: a grid's points still to run, a
search's Optuna study brought in step with MLflow and its searcher, whether a stratum is
complete, and what earlier sessions did (for the console's counts and best so far)."""

from __future__ import annotations

import math

import search_spaces
from study.driver import tuner
from study.plan.plan import Plan
from study.record import read as record


def grid_todo(
    space: search_spaces.Space, plan: Plan, entries: dict, retry_failed: bool
) -> tuple[list[dict], dict]:
    """The grid points still to run, in sharing order, and what earlier sessions did:
    {"done", "failed", "best": study.record.read.best_of's tuple or None}."""
    points = tuner.order_for_sharing(space.trials(), plan.base, plan.preset)
    todo, done, failed, finished = [], 0, 0, []
    for point in points:
        key = tuner.grid_key(point)
        entry = entries.get(key)
        state = entry.state if entry is not None else "unfinished"
        if entry is None or state == "unfinished" or (state == "failed" and retry_failed):
            todo.append({"key": key, "point": point, "runs": entry.runs if entry else []})
            continue
        done += 1
        failed += state == "failed"
        value = entry.metrics.get(space.objectives[0])
        if (
            state == "finished"
            and value is not None
            and math.isfinite(value)
            and len(space.objectives) == 1
        ):
            finished.append((value, key, entry.start_time, point))
    best = record.best_of(finished, space.modes[0])
    return todo, {"done": done, "failed": failed, "best": best}


def search_todo(
    space: search_spaces.Space,
    plan: Plan,
    label: str,
    entries: dict,
    ends,
    held,
    parent_id: str,
    client,
    retry_failed: bool,
):
    """A search stratum's Optuna study in step with the record (study/search/sync.py),
    settled (reconcile), and the searcher over it: (searcher, prior, trials adopted)."""
    from study.search import searcher as search
    from study.search.sync import sync

    where = f"{label}: " if label else ""
    name = search.study_name(plan.name, label)
    synced = sync(plan.optuna_store(), name, label, entries, space, parent_id, client)
    if synced.rebuilt:
        say(
            f"{where}the Optuna study {name} disagreed with MLflow, the study's record: "
            f"rebuilt from it ({synced.added} trials)"
        )
    elif synced.added:
        say(
            f"{where}{synced.added} trial(s) that MLflow holds were added to the Optuna "
            f"study {name}" + (" (its store was new or lost)" if synced.created else "")
        )
    if synced.sampler_state_lost:
        say(
            f"{where}NSGA-II's generation of each trial was not in the Optuna study {name} "
            f"(MLflow does not hold it; its store was new or lost): its next trials start "
            f"again from a random first generation"
        )
    study = search.open_study(plan.optuna_store(), name, space.sampler_seed, space.sampler)
    stratum = search.reconcile(
        study, label, entries, space.objectives, space.num_samples, retry_failed
    )
    for key in stratum.adopted:
        say(
            f"{where}trial {key} had finished in MLflow before the last driver stopped: its "
            f"result is told to Optuna, not recomputed"
        )
    prior = {"done": stratum.done, "failed": stratum.failed, "best": stratum.best}
    runs = {k: e.runs for k, e in entries.items()}
    searcher = search.OptunaSearcher(
        study, label, space.params, space.objectives, space.modes, stratum, ends, held, runs
    )
    return searcher, prior, len(stratum.adopted)


def stratum_complete(space: search_spaces.Space, plan: Plan, label: str, client) -> bool:
    """Whether every trial of the stratum ended: the record says for a grid, its Optuna
    study for a search."""
    if space.kind == "grid":
        exp_id, parent_id = plan.claimed_ids()
        entries = record.read(client, exp_id, parent_id)
        keys = [tuner.grid_key(p) for p in space.trials()]
        return all(k in entries and entries[k].state != "unfinished" for k in keys)
    import optuna
    from optuna.trial import TrialState

    from study.search import searcher as search

    study = optuna.load_study(
        study_name=search.study_name(plan.name, label), storage=plan.optuna_store()
    )
    final = search.counted(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    open_ = search.counted(study, (TrialState.RUNNING, TrialState.WAITING))
    return len(final) >= space.num_samples and not open_


def say(line: str) -> None:
    print(line, flush=True)
