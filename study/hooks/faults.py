"""Fault injection for the failure tests: make a process wait at a named point, where a
test can kill it (or its driver, or its node) knowing exactly what was done and what not.

Off unless FSVAE_PAUSE_AT names points (comma-separated) and FSVAE_PAUSE_DIR a folder;
then a process reaching one of those points writes `<dir>/<point>.<pid>[.<trial key>].json`
(with its node and, when given, the trial key) and waits until the same name with `.go` in
place of `.json` exists. The key is in the name because Tune reuses worker processes: each
trial a process runs waits at a point once, not only the process's first.
FSVAE_FAIL_AT=point[,point] instead makes a process reaching a point raise InjectedFault
there (inside a trial: a failure of the trial's own code). Otherwise `pause` costs two
environment lookups.

Points: name_claimed (a driver holding its study name's lock, before it looks at the
record), trial_start (a trial's worker, before its MLflow run), trial_running (after the
backbone stage), trial_vae_epoch (after the third epoch of a VAE it trains, the stage
not ended), trial_classifier (with --asha, after the first stage-3 epoch, before it
is reported), trial_finishing (its metrics logged, the run not yet FINISHED),
trial_finished (its run FINISHED, Tune not yet told), searcher_tell (the driver, the
trial's end written to MLflow, Optuna not yet told), searcher_told (the driver, Optuna
told), shared_build (the task building a stratum's shared backbone).

A benchmark hook, not a user flag: FSVAE_BENCH_TRIAL=instant (or busy:<seconds>) makes each
trial skip fsvae's run_trial for a synthetic result of the same shape (study/hooks/bench_trial.py),
so that bench/overhead.py and bench/scale.py measure the harness's own cost per trial with
everything it records still recorded (its run, params, tags, curves, finals, figures,
artifacts, the Tune report and the Optuna tell). Unset, `trial_runner` costs one
environment lookup.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path


class InjectedFault(RuntimeError):
    """Raised where FSVAE_FAIL_AT asked for a failure."""


def pause(point: str, **info) -> None:
    if point in os.environ.get("FSVAE_FAIL_AT", "").split(","):
        raise InjectedFault(f"fault injected at {point} (FSVAE_FAIL_AT)")
    points = os.environ.get("FSVAE_PAUSE_AT")
    if not points or point not in points.split(","):
        return
    folder = Path(os.environ["FSVAE_PAUSE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{point}.{os.getpid()}"
    if info.get("key"):
        stem += "." + re.sub(r"[^A-Za-z0-9=#:,_-]", "_", str(info["key"]))
    record = {"point": point, "pid": os.getpid(), "node": _node_id(), **info}
    tmp = folder / f".{stem}.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, folder / f"{stem}.json")
    go = folder / f"{stem}.go"
    while not go.exists():
        time.sleep(0.1)


def trial_runner(run_trial):
    """fsvae's run_trial, or the synthetic trial that FSVAE_BENCH_TRIAL asks for."""
    mode = os.environ.get("FSVAE_BENCH_TRIAL")
    if not mode:
        return run_trial
    from study.hooks.bench_trial import synthetic_trial

    return synthetic_trial(mode)


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # not in a Ray process
        return None
