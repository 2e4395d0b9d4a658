"""study: runs fsvae trials as Ray Tune studies searched by Optuna, recorded in MLflow.

The Python API is what `fsvae-study run`, `resume` and `discard` call, with the same
options. From a notebook, for instance:

    from study import run_study, resume_study
    result = run_study("smoke", data="demo/data", storage="fsvae-studies", name="demo",
                       overrides=["backbone_epochs=1"])
    result.complete, result.finished, result.failed, result.parent_run_id
    resume_study("demo", storage="fsvae-studies")  # after an interruption

Its wings (docs/architecture.md): plan (what was asked), record (the MLflow record and its
rules), identity (the study's name, parent run and lease), search (Optuna), figures,
model (the best model), driver (a session, Ray Tune, the trainable), hooks (for tests and
benchmarks). Importing `study` loads none of Ray, Ray Tune or MLflow: each is imported
where it is used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from study.driver.session import StudyResult

__all__ = ["StudyResult", "discard_study", "resume_study", "run_study"]


def __getattr__(name: str) -> Any:
    if name == "StudyResult":
        from study.driver.session import StudyResult

        return StudyResult
    raise AttributeError(f"module 'study' has no attribute {name!r}")


def run_study(space, data: str, *, resume: bool = False, accept_changed_data: bool = False,
              **options: Any) -> StudyResult:
    """Runs a study, or continues it (`resume=True`) when its name is taken by it.

    `space`: a YAML file, a shipped space's name (`paper`, `search`, ...) or a
    search_spaces.Space. `options`: study.plan.making.make_plan's keywords, which are
    `fsvae-study run`'s flags (name, storage, tracking_uri, optuna_storage, num_samples,
    preset, overrides=["key=value", ...], grid=["key=a,b", ...], address, cpus_per_trial,
    gpus_per_trial, max_concurrent, max_failures, infra_retries, asha, cache_dir, no_cache,
    log_model), and tags={...} for the parent run. Raises a fsvae.errors.FsvaeError (a
    StudyError, or the config, space and data errors) on bad input, before anything
    starts."""
    from study.plan import making as planning
    from study.driver import run

    return run.start(planning.make_plan(space, data, **options), resume=resume,
                     accept_changed_data=accept_changed_data)


def resume_study(name: str, **options: Any) -> StudyResult:
    """Continues study `name`: `fsvae-study resume`'s options (storage, tracking_uri,
    optuna_storage, data, address, retry_failed, accept_changed_data)."""
    from study.driver import run

    return run.resume(name, **options)


def discard_study(name: str, confirm: Callable[[str], bool], **options: Any) -> bool:
    """Discards study `name` (its MLflow runs, its Optuna studies, its folder) once
    `confirm(what it removes)` says yes; `fsvae-study discard`'s options (storage,
    tracking_uri, optuna_storage). Returns whether it did."""
    from study.identity.discard import discard, find

    done, _ = discard(find(name, **options), confirm)
    return done
