"""A study's experiment and parent run in MLflow: made, found, set aside, and carrying the
study's plan and its driver (docs/failures.md). What the parent run's tags
mean: study/record/write.py's docstring; who may take a name: study/identity/names.py."""

from __future__ import annotations

import time
from pathlib import Path

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

import search_spaces
from fsvae import data as data_mod
from study.identity import names as identity
from study.plan import plan as plan_mod
from study.record.provenance import dataset_input, git_state, git_version, library_tags
from study.record.schema import (
    CODE_VERSION,
    COMMAND,
    DATA,
    DATA_FINGERPRINT,
    INTERRUPTED,
    MODE,
    OBJECTIVE,
    OPTUNA_STORAGE,
    PLAN,
    ROLE,
    SPACE_KIND,
    STORAGE,
    STRATA,
)
from study.secrets import redact


def artifact_root(tracking_uri: str, storage: Path | None) -> Path | None:
    """Where the artifacts of a store the study opens itself (SQLite, or a database such as
    PostgreSQL that the trials write to directly) go: `<storage>/mlartifacts`, or, when the
    storage is no local folder (s3://), `mlartifacts` beside a SQLite database. Left to
    MLflow, they would go to `./mlruns` under whatever folder the driver was started from,
    which a cluster's other nodes do not see. A server (http://) keeps its own artifact
    root: None."""
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    if storage is not None:
        return Path(storage) / "mlartifacts"
    if tracking_uri.startswith("sqlite:///"):
        database = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
        return Path(database).parent / "mlartifacts"
    return None


def ensure_experiment(client: MlflowClient, name: str, storage: Path | None) -> str:
    """The study's experiment id, created (with a local artifact root, see artifact_root)
    if needed. Two studies creating the same name at once: the second finds the first's.

    A deleted experiment (in the MLflow UI, or by `fsvae-study discard`) frees its name.
    MLflow keeps a deleted experiment's name taken, and restoring it would bring back every
    run it held, replaced ones included; so it moves aside, still deleted, under a name of
    its own ("<name> (deleted <time>, <id>)"), and the study gets a new experiment."""
    exp = client.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":
        set_aside(client, exp.experiment_id, name)
        exp = None
    if exp is None:
        location = None
        root = artifact_root(client.tracking_uri, storage)
        if root is not None:
            location = (root / name).resolve().as_uri()
        try:
            return client.create_experiment(name, artifact_location=location)
        except Exception:
            exp = client.get_experiment_by_name(name)
            if exp is None or exp.lifecycle_stage != "active":
                raise
    return exp.experiment_id


def set_aside(client: MlflowClient, experiment_id: str, name: str) -> str:
    """Renames a (deleted or active) experiment out of the way of its name and leaves it
    deleted, its runs with it; returns its new name."""
    aside = f"{name} (deleted {time.strftime('%Y-%m-%d %H:%M:%S')}, {experiment_id})"
    if client.get_experiment(experiment_id).lifecycle_stage == "deleted":
        client.restore_experiment(experiment_id)  # MLflow renames active experiments only
    client.rename_experiment(experiment_id, aside)
    client.delete_experiment(experiment_id)
    return aside


def start_parent(
    client: MlflowClient, exp_id: str, plan: plan_mod.Plan, space: search_spaces.Space, held
) -> str:
    """The study's parent run, RUNNING and naming its driver (`held`, its lease:
    study/identity/lease.py), with what was asked and on which code and data. URLs are recorded
    without their passwords."""
    tags = {
        ROLE: "study",
        SPACE_KIND: space.kind,
        OBJECTIVE: ",".join(space.objectives),
        MODE: ",".join(space.modes),
        STRATA: ",".join(space.strata),
        COMMAND: plan.command[:4000],
        CODE_VERSION: git_version(),
        STORAGE: redact(plan.storage),
        DATA: plan.data,
        DATA_FINGERPRINT: data_mod.fingerprint(plan.data),
        **identity.driver_tags(held),
    }
    tags.update(plan.tags or {})  # the caller's own, e.g. a confirmation's search
    if plan.optuna_storage:
        tags[OPTUNA_STORAGE] = redact(plan.optuna_storage)
    tags.update(git_state())
    tags.update(library_tags())
    run = client.create_run(exp_id, tags=tags, run_name=f"study:{plan.name}")
    client.log_inputs(
        run.info.run_id, datasets=[dataset_input(plan.data, tags[DATA_FINGERPRINT], "study")]
    )
    params = {
        "space": space.name,
        "space_kind": space.kind,
        "preset": plan.preset,
        "objective": ",".join(space.objectives),
        "mode": ",".join(space.modes),
        "num_trials": search_spaces.count(space),
    }
    params.update({f"fixed.{k}": v for k, v in space.fixed.items()})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_text(run.info.run_id, plan.space_text, "space.yaml")
    client.log_dict(run.info.run_id, space.to_dict(), "space.json")
    client.log_text(run.info.run_id, plan.command + "\n", "command.txt")
    return run.info.run_id


def close_orphan_parents(client: MlflowClient, exp_id: str) -> int:
    """Parent runs left RUNNING with no trial and no live driver, by a driver killed in its
    first seconds (so the same `run` starts the study anew): KILLED, so that none stays
    RUNNING. Called by the study's lease holder (study/identity/lease.py)."""
    return close_orphans(client, identity.holder(client, exp_id)[1])


def close_orphans(client: MlflowClient, runs: list) -> int:
    for run in runs:
        client.set_tag(run.info.run_id, INTERRUPTED, "its driver stopped before the study started")
        client.set_terminated(run.info.run_id, "KILLED")
    return len(runs)


def read_plan(client: MlflowClient, parent_id: str) -> plan_mod.Plan | None:
    """The plan a parent run carries (log_plan); None for a parent written before."""
    import os
    import tempfile

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="fsvae-plan-") as tmp:
        try:
            path = client.download_artifacts(parent_id, PLAN, tmp)
        except Exception:  # no such artifact
            return None
        text = Path(path).read_text(encoding="utf-8")
    return plan_mod.Plan.from_json(text, f"the {PLAN} of parent run {parent_id}")


def log_plan(client: MlflowClient, parent_id: str, plan: plan_mod.Plan) -> None:
    """The plan (study.json, without passwords) as the parent run's artifact, so that a
    study can be resumed from its record alone (its folder lost, or another machine)."""
    client.log_text(parent_id, plan.to_json(), PLAN)


def tag_driver(client: MlflowClient, parent_id: str, held) -> None:
    """The parent run names this process (its lease `held`) as its driver, with a first
    heartbeat."""
    client.log_batch(parent_id, tags=[RunTag(k, v) for k, v in identity.driver_tags(held).items()])
