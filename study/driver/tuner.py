"""The Ray Tune run of one stratum in one session: the trials still to do, the searcher or
grid that hands them out, the scheduler, and how failures are retried.

Every session starts a new Tune experiment (`tune-<stratum>-s<session>` under the study's
folder) with only the work that is left; what earlier sessions did is in MLflow and the
Optuna store (docs/failures.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ray.tune import Stopper

import search_spaces
from fsvae import config as config_mod
from study.plan import storage

if TYPE_CHECKING:
    from study.plan.plan import Plan


def grid_key(point: dict) -> str:
    """A grid trial's identity: its point (every key it sets, seed included)."""
    blob = json.dumps(point, sort_keys=True, default=str, separators=(",", ":"))
    return "grid:" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def order_for_sharing(trials: list[dict], base: dict, preset: str) -> list[dict]:
    """Grid order: the first trial of every distinct backbone first, then the rest, so
    that concurrent trials build different backbones instead of waiting on one builder."""
    groups: dict[str, list[dict]] = {}
    for point in trials:
        cfg = config_mod.resolve({**base, **point}, preset=preset)
        key = json.dumps(config_mod.backbone_identity(cfg), sort_keys=True, default=str)
        groups.setdefault(key, []).append(point)
    ordered = []
    for rank in range(max(len(g) for g in groups.values())):
        ordered += [g[rank] for g in groups.values() if rank < len(g)]
    return ordered


def varying_keys(space: search_spaces.Space, stages: tuple[str, ...] | None = None) -> list[str]:
    """The config keys that differ between the trials of one stratum (a search's searched
    keys; a grid's keys whose value, or presence, differs between its points), in order;
    with `stages`, only keys of those stages (fsvae.config's stage of a key)."""
    if space.kind == "grid":
        points = space.trials()
        keys = list(dict.fromkeys(k for p in points for k in p))
        missing = object()
        keys = [
            k
            for k in keys
            if len({json.dumps(p.get(k, missing), default=repr) for p in points}) > 1
        ]
    else:
        keys = list(space.params)
    if stages is not None:
        keys = [k for k in keys if config_mod.KEYS[k].stage in stages]
    return keys


def shown_keys(space: search_spaces.Space) -> list[str] | None:
    """The keys that tell a grid's trials apart, a conditional key where some points have
    it (None: show Optuna's suggestions)."""
    if space.kind != "grid":
        return None
    varying = varying_keys(space)
    keys = list(dict.fromkeys(k for p in space.trials() for k in p))
    return [k for k in keys if k in varying or k in ("method", "sampling_factor")]


def trial_name(trial) -> str:
    return f"trial_{trial.trial_id}"


def build(
    plan: Plan,
    space: search_spaces.Space,
    trainable,
    experiment: str,
    concurrency: int,
    callbacks: list,
    searcher,
    stops: set[str],
    stop: Callable[[], bool] | None = None,
):
    """A Tuner that runs the trials `searcher` hands out (study/outcomes.GridSearcher for a
    grid, study/optuna_search.OptunaSearcher for a search); `stops` collects the trials the
    early-stopping scheduler stops; `stop()` returning True ends the whole run (a node that
    cannot see the storage)."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from study.driver.outcomes import RecordedASHA

    # reuse_actors: a new trial runs in a worker that already imported torch, MLflow and
    # fsvae (seconds per trial on a small machine; Tune's default is a fresh process).
    # Tune's own metric is the primary objective (a multi-objective search's first).
    tune_config = dict(
        metric=space.objectives[0],
        mode=space.modes[0],
        max_concurrent_trials=concurrency,
        reuse_actors=True,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_name,
        search_alg=searcher,
        num_samples=searcher.todo,
    )
    if plan.asha:
        epochs = config_mod.resolve(plan.base, preset=plan.preset)["classifier_epochs"]
        tune_config["scheduler"] = RecordedASHA(
            stops,
            time_attr="classifier_epoch",
            max_t=epochs,
            grace_period=max(1, epochs // 5),
            reduction_factor=3,
        )
    # Tune's own retries are for the infrastructure only: a trial's own failure reaches it
    # as a finished trial (study/driver/trainable.py), and --max-failures retries it there.
    retries = plan.infra_retries + plan.max_failures
    path, filesystem = _storage(plan)
    run_config = tune.RunConfig(
        name=experiment,
        storage_path=path,
        storage_filesystem=filesystem,
        verbose=0,
        failure_config=tune.FailureConfig(max_failures=retries),
        callbacks=[*callbacks, CSVLoggerCallback(), JsonLoggerCallback()],
        stop=_StopAll(stop) if stop is not None else None,
    )
    return tune.Tuner(
        trainable, param_space={}, tune_config=tune.TuneConfig(**tune_config), run_config=run_config
    )


@contextlib.contextmanager
def without_tensorboard() -> Iterator[None]:
    """Around Tuner.fit: Tune's own CSV and JSON logs (passed in build), not its
    TensorBoard logger, which Tune adds by default and whose import (tensorboardX, which
    imports torch) costs the driver about 2 s of CPU per session; the trials' curves are in
    MLflow. TUNE_DISABLE_AUTO_CALLBACK_LOGGERS is Tune's documented switch for its
    default loggers (docs.ray.io, "Environment variables used by Ray Tune")."""
    key = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


class _StopAll(Stopper):
    """A Tune stopper that never stops one trial and stops all of them when asked."""

    def __init__(self, flag: Callable[[], bool]):
        self.flag = flag

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.flag()


def _storage(plan: Plan):
    """Tune's storage_path and filesystem: a URI's options (endpoint, scheme) go to an
    explicit pyarrow filesystem, since Tune would append paths after the query string."""
    folder = storage.join(plan.storage, plan.name)
    if not storage.is_uri(folder):
        return folder, None
    fs, path = storage.filesystem(folder)
    return path, fs


def strata(space: search_spaces.Space):
    """(stratum values, label) per separate search; one ({}, "") for a grid."""
    if space.kind == "grid":
        yield {}, ""
        return
    for stratum in space.stratum_values():
        yield stratum, ",".join(f"{k}={v}" for k, v in stratum.items())


def fmt_resources(res: dict) -> str:
    return ", ".join(f"{v:g} {k.upper()}" for k, v in res.items())


def strata_text(space: search_spaces.Space) -> str:
    """'n_f=5,10,30,50' for the run header."""
    return "; ".join(f"{k}={','.join(str(v) for v in vs)}" for k, vs in space.strata.items())
