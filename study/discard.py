"""Discarding a study: its MLflow runs, its Optuna studies and its folder go, and its name
is free again (docs/failures.md).

MLflow keeps a deleted experiment's name taken; so the experiment is renamed out of the way
("<name> (deleted <time>, <id>)") and deleted with its runs, which MLflow's own `mlflow gc`
can then remove for good. Optuna's studies are deleted outright. Nothing is done while a
live driver runs the study.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from study import identity, plan as plan_mod, storage as locations
from study.errors import StudyError
from study.identity import redact
from study.schema import default_tracking_uri


@dataclass
class Found:
    """What a study named `name` has, wherever it is."""

    name: str
    tracking_uri: str
    experiment_id: str | None = None
    runs: int = 0
    optuna_storage: str | None = None
    optuna: dict[str, dict] = field(default_factory=dict)
    folder: str | None = None

    def describe(self) -> str:
        parts = []
        if self.experiment_id is not None:
            parts.append(f"MLflow experiment {self.name!r} ({self.runs} runs) at "
                         f"{redact(self.tracking_uri)}")
        for n, s in sorted(self.optuna.items()):
            parts.append(f"Optuna study {n!r} ({s['trials']} trials) at "
                         f"{redact(self.optuna_storage)}")
        if self.folder is not None:
            parts.append(f"the folder {self.folder}")
        return "\n".join(f"  {p}" for p in parts)


def find(name: str, storage: str | None = None, tracking_uri: str | None = None,
         optuna_storage: str | None = None) -> Found:
    """Everything of study `name`; StudyError when a live driver runs it or nothing is
    found."""
    from mlflow.tracking import MlflowClient

    location = locations.resolve(storage or plan_mod.DEFAULT_STORAGE)
    local = plan_mod.read(location, name)
    uri = tracking_uri or (local.tracking_uri if local else None) or \
        default_tracking_uri(Path(location))
    found = Found(name, uri)
    if not (uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file()):
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage == "active":
            found.experiment_id = exp.experiment_id
            runs = client.search_runs([exp.experiment_id], max_results=50000)
            found.runs = len(runs)
            live = [r for r in identity.parents(client, exp.experiment_id)
                    if identity.alive(r.info.status, r.data.tags)]
            if live:
                raise StudyError(f"study {name!r} is being run by a driver now "
                                 f"({identity.describe_driver(live[0].data.tags)}): stop it "
                                 f"first")
    found.optuna_storage = optuna_storage or (local.optuna_storage if local else None) or \
        plan_mod.default_optuna_storage(location)
    found.optuna = identity.optuna_studies(found.optuna_storage, name)
    folder = locations.join(location, name)
    if not locations.is_uri(folder) and Path(folder).is_dir():
        found.folder = folder
    if found.experiment_id is None and not found.optuna and found.folder is None:
        raise StudyError(f"no study {name!r}: no MLflow experiment of that name at "
                         f"{redact(uri)}, no Optuna study at {redact(found.optuna_storage)}, "
                         f"no folder {folder}")
    return found


def discard(found: Found, confirm: Callable[[str], bool]) -> tuple[bool, str | None]:
    """Removes what `find` found once `confirm(description)` says yes; returns (whether it
    did, the name the MLflow experiment was set aside under, if there was one)."""
    if not confirm(found.describe()):
        return False, None
    from mlflow.tracking import MlflowClient

    import optuna

    from study import parent

    aside = None
    if found.experiment_id is not None:
        client = MlflowClient(found.tracking_uri)
        with identity.name_lock(client, found.name):
            aside = parent.set_aside(client, found.experiment_id, found.name)
    for name in found.optuna:
        optuna.delete_study(study_name=name, storage=found.optuna_storage)
    if found.folder is not None:
        shutil.rmtree(found.folder)
    return True, aside
