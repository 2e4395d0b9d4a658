"""Finding a study by its name: the store that records it (its --tracking-uri, else the one
its study.json names, else SQLite under its --storage), and its plan, from its folder or,
when that is gone or on another machine, from its parent run. What `resume`, `discard` and
`status` all find a study by (docs/failures.md#resuming)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from study.errors import StudyError
from study.identity import names as identity
from study.plan import plan as plan_mod
from study.plan import storage
from study.plan.plan import Plan
from study.plan.storage import default_tracking_uri
from study.record.schema import PLAN
from study.secrets import redact


@dataclass
class Record:
    """Where study `name` is recorded: its storage (resolved), its study.json there if
    any, and the tracking URI that records it (as given: with any password)."""

    location: str
    local: Plan | None
    tracking_uri: str


def record_of(name: str, location: str | None, tracking_uri: str | None) -> Record:
    """The store that records study `name`: `tracking_uri`, else the one its study.json
    under `location` (default ./fsvae-studies) names, else SQLite <location>/mlflow.db.
    StudyError for an object-store location without a study.json and no tracking URI."""
    where = storage.resolve(location or plan_mod.DEFAULT_STORAGE)
    local = plan_mod.read(where, name)  # a folder or an object store (s3://) alike
    uri = tracking_uri or (local.tracking_uri if local else None)
    if uri is None:
        if storage.is_uri(where):
            raise StudyError(
                f"no study {name!r} in {redact(where)} (no study.json there): "
                f"give --tracking-uri, the MLflow store that records it"
            )
        uri = default_tracking_uri(Path(where))
    return Record(where, local, uri)


def missing_store(tracking_uri: str) -> bool:
    """A SQLite store whose file is not there (reading must not create one)."""
    return (
        tracking_uri.startswith("sqlite:///")
        and not Path(tracking_uri[len("sqlite:///") :]).is_file()
    )


def locate(
    name: str, location: str | None, tracking_uri: str | None, optuna_storage: str | None
) -> Plan:
    """The plan of study `name`: its study.json under `location` (default ./fsvae-studies),
    unless a --tracking-uri names another store; else the plan its parent run carries, moved
    to `location` (study/plan.relocate)."""
    found = record_of(name, location, tracking_uri)
    location, local = found.location, found.local
    if local is not None and (
        tracking_uri is None or redact(tracking_uri) == redact(local.tracking_uri)
    ):
        if tracking_uri:
            local.tracking_uri = tracking_uri  # with the password it may carry
        return (
            plan_mod.relocate(local, location, local.tracking_uri, optuna_storage)
            if optuna_storage
            else local
        )
    uri = found.tracking_uri
    return plan_mod.relocate(plan_from_record(uri, name), location, uri, optuna_storage)


def plan_from_record(tracking_uri: str, name: str) -> Plan:
    """The plan (study.json) that study `name`'s parent run carries; StudyError naming the
    studies the store holds when it has none of that name."""
    if missing_store(tracking_uri):
        raise StudyError(
            f"no study {name!r}: no MLflow store at {redact(tracking_uri)} (give "
            f"--storage where the study ran, or --tracking-uri)"
        )
    from mlflow.tracking import MlflowClient

    from study.identity import parent

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    holder = None
    if exp is not None and exp.lifecycle_stage == "active":
        holder, orphans = identity.holder(client, exp.experiment_id)
        holder = holder or next(iter(orphans), None)  # killed before any trial started
    if holder is None:
        names = sorted(e.name for e in client.search_experiments())
        raise StudyError(
            f"no study {name!r} in {redact(tracking_uri)}; studies there: "
            f"{', '.join(names) if names else 'none'}"
        )
    plan = parent.read_plan(client, holder.info.run_id)
    if plan is None:
        raise StudyError(
            f"study {name!r}'s parent run {holder.info.run_id} carries no "
            f"{PLAN} (it was started by an earlier version of fsvae-study): "
            f"resume it with --storage where its folder is"
        )
    return plan
