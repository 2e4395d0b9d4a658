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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from study.plan.options import StudyOptions, with_options

if TYPE_CHECKING:
    import search_spaces
    from study.driver.session import StudyResult

__all__ = ["StudyOptions", "StudyResult", "discard_study", "resume_study", "run_study"]


def __getattr__(name: str) -> Any:
    if name == "StudyResult":
        from study.driver.session import StudyResult

        return StudyResult
    raise AttributeError(f"module 'study' has no attribute {name!r}")


@with_options
def run_study(
    space: str | search_spaces.Space,
    data: str,
    options: StudyOptions | None = None,
    *,
    resume: bool = False,
    accept_changed_data: bool = False,
    status_every: float = 60.0,
    **changes: Any,
) -> StudyResult:
    """Runs a study, or continues it (`resume=True`) when its name is taken by it.

    `space`: a YAML file, a shipped space's name (`paper`, `search`, ...) or a
    search_spaces.Space. `options`: a study.plan.StudyOptions, and `changes` to it by name
    (`name=`, `storage=`, `overrides=["key=value"]`, `cpus_per_trial=`, ...: every field
    is also a keyword of this function, as `help(run_study)` shows), which are `fsvae-study
    run`'s flags. `status_every`: seconds between the console's status lines when stdout is
    no terminal (on a terminal a live block shows the study instead). Raises a
    fsvae.errors.FsvaeError (a StudyError, or the config, space and data errors) on bad
    input, before anything starts."""
    from study.driver import run
    from study.plan.making import make_plan

    return run.start(
        make_plan(space, data, options, **changes),
        resume=resume,
        accept_changed_data=accept_changed_data,
        status_every=status_every,
    )


def resume_study(
    name: str,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    optuna_storage: str | None = None,
    data: str | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    accept_changed_data: bool = False,
    status_every: float = 60.0,
) -> StudyResult:
    """Continues study `name`, with `fsvae-study resume`'s options: its folder's `storage`
    (default ./fsvae-studies), the `tracking_uri` that records it, its `optuna_storage`,
    its `data` where it is on this machine, a Ray `address`, `retry_failed` trials too."""
    from study.driver import run

    return run.resume(
        name,
        storage=storage,
        tracking_uri=tracking_uri,
        optuna_storage=optuna_storage,
        data=data,
        address=address,
        retry_failed=retry_failed,
        accept_changed_data=accept_changed_data,
        status_every=status_every,
    )


def discard_study(
    name: str,
    confirm: Callable[[str], bool],
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    optuna_storage: str | None = None,
) -> bool:
    """Discards study `name` (its MLflow runs, its Optuna studies, its folder) once
    `confirm(what it removes)` says yes; `fsvae-study discard`'s options. Returns whether
    it did."""
    from study.identity.discard import discard, find

    done, _ = discard(
        find(name, storage=storage, tracking_uri=tracking_uri, optuna_storage=optuna_storage),
        confirm,
    )
    return done
