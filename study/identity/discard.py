"""Discarding a study: its MLflow runs, its Optuna studies and its folder go, and its name
is free again (docs/failures.md).

MLflow keeps a deleted experiment's name taken; so the experiment is renamed out of the way
("<name> (deleted <time>, <id>)") and deleted with its runs, which MLflow's own `mlflow gc`
can then remove for good. Optuna's studies are deleted outright. A discard takes the
study's lease (study/identity/lease.py) after it is confirmed, as a resume would: nothing is done
while a live driver holds the study, and a driver that held it before stops at its next
check instead of writing into a discarded record.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from study.errors import StudyError
from study.identity import lease
from study.identity import names as identity
from study.identity.locate import record_of
from study.plan import plan as plan_mod
from study.plan import storage as locations
from study.secrets import redact


@dataclass
class Found:
    """What a study named `name` has, wherever it is."""

    name: str
    tracking_uri: str
    storage: str | None = None  # as asked (None: the default)
    experiment_id: str | None = None
    runs: int = 0
    optuna_storage: str | None = None
    optuna: dict[str, dict] = field(default_factory=dict)
    folder: str | None = None

    def describe(self) -> str:
        parts = []
        if self.experiment_id is not None:
            parts.append(
                f"MLflow experiment {self.name!r} ({self.runs} runs) at {redact(self.tracking_uri)}"
            )
        for n, s in sorted(self.optuna.items()):
            parts.append(
                f"Optuna study {n!r} ({s['trials']} trials) at {redact(self.optuna_storage)}"
            )
        if self.folder is not None:
            parts.append(f"the folder {self.folder}")
        return "\n".join(f"  {p}" for p in parts)


def find(
    name: str,
    storage: str | None = None,
    tracking_uri: str | None = None,
    optuna_storage: str | None = None,
    held: lease.Lease | None = None,
) -> Found:
    """Everything of study `name`; StudyError when a live driver runs it (seen from here:
    the lease decides after the confirmation) or nothing is found. `held`: the lease this
    process holds, which is not another driver's."""
    from mlflow.tracking import MlflowClient

    record = record_of(name, storage, tracking_uri)
    location, local, uri = record.location, record.local, record.tracking_uri
    found = Found(name, uri, storage)
    if _has_store(uri):
        holder = lease.peek(uri, name)
        if holder is not None and (held is None or holder.token != held.ref.token):
            raise StudyError(f"{lease.busy_message(name, holder)}: stop it first")
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage == "active":
            found.experiment_id = exp.experiment_id
            runs = client.search_runs([exp.experiment_id], max_results=50000)
            found.runs = len(runs)
    found.optuna_storage = (
        optuna_storage
        or (local.optuna_storage if local else None)
        or plan_mod.default_optuna_storage(location)
    )
    found.optuna = identity.optuna_studies(found.optuna_storage, name)
    folder = locations.join(location, name)
    if not locations.is_uri(folder) and Path(folder).is_dir():
        found.folder = folder
    if found.experiment_id is None and not found.optuna and found.folder is None:
        raise StudyError(
            f"no study {name!r}: no MLflow experiment of that name at "
            f"{redact(uri)}, no Optuna study at {redact(found.optuna_storage)}, "
            f"no folder {folder}"
        )
    return found


def _has_store(uri: str) -> bool:
    return not (uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file())


def discard(
    found: Found, confirm: Callable[[str], bool], say: Callable[[str], None] = print
) -> tuple[bool, str | None]:
    """Removes what `find` found once `confirm(description)` says yes, holding the study's
    lease, and what a second look under the lease finds; returns (whether it did, the name
    the MLflow experiment was set aside under, if there was one)."""
    if not confirm(found.describe()):
        return False, None
    import optuna
    from mlflow.tracking import MlflowClient

    from study.identity import parent

    held = (
        lease.acquire(found.tracking_uri, found.name, "discard", say=say)
        if _has_store(found.tracking_uri)
        else None
    )
    check = held.check if held is not None else (lambda: None)
    try:
        # Again, now that no driver can start or continue it: what it holds now goes.
        found = find(found.name, found.storage, found.tracking_uri, found.optuna_storage, held)
        aside = None
        if found.experiment_id is not None:
            check()
            aside = parent.set_aside(
                MlflowClient(found.tracking_uri), found.experiment_id, found.name
            )
        for name in found.optuna:
            assert found.optuna_storage is not None  # where found.optuna was found
            check()
            optuna.delete_study(study_name=name, storage=found.optuna_storage)
        if found.folder is not None:
            check()
            shutil.rmtree(found.folder)
        return True, aside
    finally:
        if held is not None:
            held.release()
