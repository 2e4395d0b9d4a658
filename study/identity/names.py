"""A study's identity: its name in its tracking store, and which parent run holds it.

The rule (docs/failures.md): a study is its name in its MLflow tracking store. The name is
taken by an active parent run of this harness (tag fsvae.role=study) that has at least one
trial run, or that the study's lease holder just made, or by an Optuna study of that name
(or `<name>/<stratum>`) with trials. A new study takes a free name; `--resume` continues
the study that holds it. Who may do either, and write the study after, is decided by the
study's lease (study/identity/lease.py): a claim runs while its driver holds it, so no other driver
is alive then.

The parent run names its driver for people reading the record: tag fsvae.driver (host,
pid, lease epoch) once per session, tag fsvae.heartbeat (Unix seconds, the driver's clock)
with each beat of its lease.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

from study.identity.lease import Lease
from study.record.schema import DRIVER, HEARTBEAT, OPTUNA_PARENT, PARENT, ROLE

if TYPE_CHECKING:
    from mlflow.entities import Run

# -- who drives it ---------------------------------------------------------------------


def driver_tags(held: Lease) -> dict[str, str]:
    """The parent run's fsvae.driver (this process, and the epoch of its lease) and a
    first fsvae.heartbeat."""
    info = {k: v for k, v in held.info.items() if k != "token"}
    return {DRIVER: json.dumps({**info, "lease": held.ref.epoch}), HEARTBEAT: f"{time.time():.0f}"}


def parents(client, experiment_id: str) -> list[Run]:
    """The experiment's active parent runs of this harness, newest first."""
    runs = client.search_runs([experiment_id], f"tags.`{ROLE}` = 'study'", max_results=1000)
    return sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True)


def has_trials(client, experiment_id: str, parent_id: str) -> bool:
    return bool(
        client.search_runs([experiment_id], f"tags.`{PARENT}` = '{parent_id}'", max_results=1)
    )


def holder(client, experiment_id: str, own: str | None = None) -> tuple[Run | None, list[Run]]:
    """(the parent run that takes the name, or None; parents that do not: RUNNING ones with
    no trial, left by a driver stopped before any trial started). Called by the study's
    lease holder, so no other driver is alive. `own`, the parent run a resumed study's plan
    names, is its study whatever it holds."""
    taking, orphans = [], []
    for run in parents(client, experiment_id):
        if run.info.run_id == own or has_trials(client, experiment_id, run.info.run_id):
            taking.append(run)
        elif run.info.status == "RUNNING":
            orphans.append(run)
    return (taking[0] if taking else None), orphans


def optuna_studies(url: str | None, name: str) -> dict[str, dict]:
    """Optuna studies of this study's name in a store: {study name: {"trials": n,
    "parent": the parent run id it records, or None}}. {} when there is no store."""
    if not url or (url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///") :])):
        return {}
    import optuna

    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    try:
        out = {}
        for study in storage.get_all_studies():
            if study.study_name == name or study.study_name.startswith(name + "/"):
                out[study.study_name] = {
                    "trials": storage.get_n_trials(study._study_id),
                    "parent": study.user_attrs.get(OPTUNA_PARENT),
                }
        return out
    finally:
        storage.remove_session()
        storage.engine.dispose()
