"""study: runs fsvae trials as Ray Tune studies searched by Optuna, recorded in MLflow.

From Python, e.g. a notebook (the same options as `fsvae-study run`):

    from study import run_study
    summary = run_study("smoke", data="demo/data", storage="fsvae-studies", name="demo",
                        overrides=["backbone_epochs=1"])
    summary["experiment_id"], summary["complete"], summary["finished"], summary["failed"]
"""
from __future__ import annotations

from typing import Any


def run_study(space, data: str, *, resume: bool = False, **options: Any) -> dict[str, Any]:
    """Runs a study, or continues it (`resume=True`) when one of that name exists.

    `space`: a YAML file, a shipped space's name (`paper`, `search`, ...) or a
    search_spaces.Space. `options`: study.plan.make_plan's keywords, which are `fsvae-study
    run`'s flags (name, storage, tracking_uri, optuna_storage, num_samples, preset,
    overrides=["key=value", ...], grid=["key=a,b", ...], address, cpus_per_trial,
    gpus_per_trial, max_concurrent, max_failures, infra_retries, asha, cache_dir, no_cache,
    log_model), and tags={...} for the parent run. Returns {"name", "experiment_id",
    "parent_run_id", "tracking_uri", "complete", "finished", "failed", "exit_code"}
    (exit_code as the command's: 0 complete, 130 interrupted). Raises StudyError (and the
    config, space and data errors) on bad input, before anything starts."""
    from study import plan, run

    return run.start(plan.make_plan(space, data, **options), resume=resume)
