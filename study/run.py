"""`fsvae-study run` and `resume`: one session of a study, from its claim to its summary.

A study is its name in its MLflow tracking store (study/identity.py). A session claims it
there (a new study takes a free name; a resume continues the study holding it, if no live
driver does), reads what the study has done, closes what a killed driver left open, and
runs only the trials still to do, each stratum as a fresh Ray Tune experiment (README
"Failures and resuming"). Layout under --storage (default ./fsvae-studies):
  <storage>/<name>/study.json     what was asked (study/plan.py); also on the parent run,
                                  so that `resume` needs only the record when it is gone
  <storage>/<name>/space.yaml     the space file as given
  <storage>/<name>/tune-<stratum>-s<session>/  each session's Ray Tune experiment
  <storage>/cache/                the stage cache, shared by every study under <storage>
  <storage>/mlflow.db, mlartifacts/   the default MLflow store (embedded SQLite)
  <storage>/optuna.db             the default Optuna store of searches
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import search_spaces
from study import identity, plan as plan_mod, storage
from study.errors import StudyError
from study.identity import redact
from study.schema import PLAN, default_tracking_uri


@dataclass
class Claim:
    """What a session asks of the record: `new` (the name must be free), `resume` (the
    study holding the name, continued) or `either` (`run --resume`: continue it if it
    exists, checking that it is the same study, else start it)."""

    mode: str
    retry_failed: bool = False
    accept_changed_data: bool = False


def run_from_args(args: argparse.Namespace) -> int:
    plan = plan_mod.make_plan(
        args.space, args.data, name=args.name, storage=args.storage,
        tracking_uri=args.tracking_uri, optuna_storage=args.optuna_storage,
        num_samples=args.num_samples, preset=args.preset, overrides=args.set,
        grid=args.grid, address=args.address, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
        max_failures=args.max_failures, infra_retries=args.infra_retries, asha=args.asha,
        cache_dir=args.cache_dir, no_cache=args.no_cache, log_model=args.log_model)
    return start(plan, resume=args.resume,
                 accept_changed_data=args.accept_changed_data)["exit_code"]


def resume_from_args(args: argparse.Namespace) -> int:
    return resume(args.name, storage=args.storage, tracking_uri=args.tracking_uri,
                  optuna_storage=args.optuna_storage, data=args.data, address=args.address,
                  retry_failed=args.retry_failed,
                  accept_changed_data=args.accept_changed_data)["exit_code"]


def start(plan: dict, resume: bool = False, accept_changed_data: bool = False) -> dict[str, Any]:
    """Runs a planned study, or continues it when `resume` and its name is taken by it."""
    return execute(plan, Claim("either" if resume else "new",
                               accept_changed_data=accept_changed_data))


def resume(name: str, storage: str | None = None, tracking_uri: str | None = None,
           optuna_storage: str | None = None, data: str | None = None,
           address: str | None = None, retry_failed: bool = False,
           accept_changed_data: bool = False) -> dict[str, Any]:
    """Continues the study `name`: from its study.json under `storage` when that is there,
    else from its record in the tracking store (the folder lost, or another machine)."""
    plan = locate(name, storage, tracking_uri, optuna_storage)
    if data is not None:
        moved = plan_mod.with_data(plan, data)
        if not accept_changed_data and not plan_mod.same_data(plan, moved):
            raise StudyError(f"study {name!r} read other data ({plan['data']}); "
                             f"{plan_mod.DATA_RULE}. If the change is intended, pass "
                             f"--accept-changed-data")
        plan = moved
    elif not Path(plan["data"]).is_dir():
        raise StudyError(f"study {name!r} read its data from {plan['data']}, which is not "
                         f"on this machine: give --data where it is here")
    if address:
        plan["address"] = address
    plan["address"] = plan_mod.reachable(plan["address"])
    if plan["address"]:
        from study.cluster import check_record_for_cluster

        check_record_for_cluster(plan["tracking_uri"], plan.get("optuna_storage"))
    return execute(plan, Claim("resume", retry_failed, accept_changed_data))


def locate(name: str, location: str | None, tracking_uri: str | None,
           optuna_storage: str | None) -> dict:
    """The plan of study `name`: its study.json under `location` (default ./fsvae-studies),
    unless a --tracking-uri names another store; else the plan its parent run carries, moved
    to `location` (study/plan.relocate)."""
    location = storage.resolve(location or plan_mod.DEFAULT_STORAGE)
    local = plan_mod.read(location, name)
    if local is not None and (tracking_uri is None
                              or redact(tracking_uri) == redact(local["tracking_uri"])):
        plan = dict(local)
        if tracking_uri:
            plan["tracking_uri"] = tracking_uri  # with the password it may carry
        return plan_mod.relocate(plan, location, plan["tracking_uri"], optuna_storage) \
            if optuna_storage else plan
    uri = tracking_uri or (local["tracking_uri"] if local else None)
    if uri is None:
        if storage.is_uri(location):
            raise StudyError(f"no study {name!r} in {redact(location)} (no study.json there): "
                             f"give --tracking-uri, the MLflow store that records it")
        uri = default_tracking_uri(Path(location))
    return plan_mod.relocate(plan_from_record(uri, name), location, uri, optuna_storage)


def plan_from_record(tracking_uri: str, name: str) -> dict:
    """The plan (study.json) that study `name`'s parent run carries; StudyError naming the
    studies the store holds when it has none of that name."""
    if tracking_uri.startswith("sqlite:///") and \
            not Path(tracking_uri[len("sqlite:///"):]).is_file():
        raise StudyError(f"no study {name!r}: no MLflow store at {tracking_uri} (give "
                         f"--storage where the study ran, or --tracking-uri)")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    holder = None
    if exp is not None and exp.lifecycle_stage == "active":
        holder, orphans = identity.holder(client, exp.experiment_id)
        holder = holder or next(iter(orphans), None)  # killed before any trial started
    if holder is None:
        names = sorted(e.name for e in client.search_experiments())
        raise StudyError(f"no study {name!r} in {redact(tracking_uri)}; studies there: "
                         f"{', '.join(names) if names else 'none'}")
    if identity.alive(holder.info.status, holder.data.tags):
        raise _driven(name, holder)
    from study import records

    plan = records.read_plan(client, holder.info.run_id)
    if plan is None:
        raise StudyError(f"study {name!r}'s parent run {holder.info.run_id} carries no "
                         f"{PLAN} (it was started by an earlier version of fsvae-study): "
                         f"resume it with --storage where its folder is")
    return plan


def _driven(name: str, holder) -> StudyError:
    return StudyError(f"study {name!r} is being run by another driver now "
                      f"({identity.describe_driver(holder.data.tags)}); wait for it to end, "
                      f"or stop it and resume")


def execute(plan: dict, claim: Claim) -> dict[str, Any]:
    """One session; returns {"exit_code", "complete", "finished", "failed", "experiment_id",
    "parent_run_id", ...}. Ray is started and shut down here unless the caller has it
    running."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # one line per trial event, no tables
    space = search_spaces.parse(plan["space"], plan["space_path"], plan["space_text"])
    for name in ("ray", "ray.tune", "ray.train", "mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A trial's failure is one console line with its reason (study/progress.py); its
    # traceback is in its MLflow run (error.txt) and in Tune's error file.
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune",
                 "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).addFilter(_QuietTrialFailures())
    with _one_driver(plan):
        return _session(plan, space, claim)


@contextmanager
def _one_driver(plan: dict) -> Iterator[None]:
    """One driver per study folder at a time, at once and on this machine (a lock file
    beside study.json); the record's claim (study/identity.py) holds across machines."""
    folder = plan_mod.study_dir(plan)
    if storage.is_uri(folder):
        yield
        return
    from filelock import FileLock, Timeout

    Path(folder).mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(Path(folder, ".driver.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StudyError(f"study {plan['name']!r} is being run by another process now (its "
                         f"lock {lock.lock_file} is held); wait for it to end, or stop it "
                         f"and resume") from None
    try:
        yield
    finally:
        lock.release()


def _session(plan: dict, space: search_spaces.Space, claim: Claim) -> dict[str, Any]:
    # The start-up is seconds of waiting on Ray's processes and seconds of CPU in MLflow's
    # import and first use of a store: MLflow runs in a thread while this one imports Ray
    # and starts it (ray.init must run in the main thread).
    setup: dict[str, Any] = {}
    worker = threading.Thread(target=_setup_records, args=(plan, space, claim, setup))
    worker.start()
    import ray

    from study import cluster

    started_ray = not ray.is_initialized()
    ray_error, ray_line = None, "Ray: already running in this process"
    try:
        if started_ray:
            ray_line = cluster.init_ray(plan["address"], _error_log(plan))
    except StudyError as e:
        ray_error = e
    worker.join()
    if "error" in setup:
        if started_ray and ray_error is None:
            ray.shutdown()
        raise setup["error"]
    client, parent_id = setup["client"], setup["parent_run_id"]
    if ray_error is not None:  # nothing ran: no RUNNING parent left behind
        if setup["new"]:
            # A new study that never started: the same command can simply be re-run.
            plan_mod.forget(plan)
            client.delete_run(parent_id)
        else:
            client.set_terminated(parent_id, "KILLED")
        raise ray_error
    from study.session import Session

    session = Session(plan, space, client, setup["experiment_id"], parent_id,
                      not setup["new"], claim.retry_failed)
    with identity.Heartbeat(plan["tracking_uri"], parent_id):
        try:
            print(ray_line, flush=True)
            interrupted = session.run(multi_node=bool(plan["address"]))
        except BaseException:
            if started_ray:
                ray.shutdown()
            session.close()
            raise
        if started_ray:
            ray.shutdown()  # before the session's end is recorded: no trial can write then
        return session.finish(interrupted)


class _QuietTrialFailures(logging.Filter):
    """Drops Tune's messages that the study's own lines replace (failure reasons, how to
    resume)."""

    DROP = ("Trial task failed", "Trials did not complete", "Experiment has been interrupted",
            "Failed to fetch metrics")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.DROP)


def _error_log(plan: dict) -> Path:
    """Where messages Ray publishes to the driver go: beside study.json when that is local."""
    folder = plan_mod.study_dir(plan)
    if storage.is_uri(folder):
        import tempfile

        return Path(tempfile.gettempdir()) / f"fsvae-study-{plan['name']}-ray-messages.log"
    return Path(folder) / "ray-messages.log"


def _setup_records(plan: dict, space: search_spaces.Space, claim: Claim, out: dict) -> None:
    """The MLflow store and experiment, the claim on the study's name (a new parent run, or
    the one that holds it), and the Optuna store, each created whole before use; records
    the plan in study.json and on the parent run. Errors go to out["error"]."""
    try:
        importlib.import_module("mlflow")  # it sets up its loggers: quiet them after it

        from study import stores

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        stores.ensure_mlflow_store(plan["tracking_uri"], plan["name"])
        if plan.get("optuna_storage"):
            try:
                stores.ensure_optuna_store(plan["optuna_storage"], plan["name"])
            except StudyError:
                raise
            except Exception as e:
                raise StudyError(f"the Optuna store at {redact(plan['optuna_storage'])} is "
                                 f"not usable: {type(e).__name__}: {e}") from None
        from mlflow.tracking import MlflowClient

        client = out["client"] = MlflowClient(plan["tracking_uri"])
        local_storage = None if storage.is_uri(plan["storage"]) else Path(plan["storage"])
        with identity.name_lock(client, plan["name"]):
            exp_id, parent_id, new = _claim(client, plan, space, claim, local_storage)
            from study import records

            records.log_plan(client, parent_id, plan)
        plan_mod.write(plan)
        out.update(experiment_id=exp_id, parent_run_id=parent_id, new=new)
    except StudyError as e:
        out["error"] = e
    except Exception as e:  # reported by the caller as a StudyError, after Ray is down
        out["error"] = StudyError(f"MLflow at {redact(plan['tracking_uri'])} is not usable: "
                                  f"{type(e).__name__}: {e}")


def _claim(client, plan: dict, space: search_spaces.Space, claim: Claim,
           local_storage: Path | None) -> tuple[str, str, bool]:
    """Under the name's lock: (experiment id, parent run id, whether the study is new).
    Updates `plan` in place to the study's own when continuing it."""
    from study import records

    name = plan["name"]
    exp_id = records.ensure_experiment(client, name, local_storage)
    own = plan.get("parent_run_id") if claim.mode == "resume" else None
    holder, orphans = identity.holder(client, exp_id, own)
    records.close_orphans(client, orphans)
    optuna_store = plan.get("optuna_storage") or _default_optuna(plan)
    optuna = identity.optuna_studies(optuna_store, name)
    if holder is None:
        if claim.mode == "resume":
            raise StudyError(f"no study {name!r} to resume in {redact(plan['tracking_uri'])} "
                             f"(its record was discarded or deleted)")
        _refuse_optuna_orphans(name, optuna, optuna_store)
        _clear_stale_folder(plan)
        plan["sessions"] = 0
        plan["parent_run_id"] = records.start_parent(client, exp_id, plan, space)
        plan["experiment_id"] = exp_id
        return exp_id, plan["parent_run_id"], True
    parent_id = holder.info.run_id
    if claim.mode == "new":
        trials = "with trials" if identity.has_trials(client, exp_id, parent_id) else \
            "starting"
        where = _where(plan)
        raise StudyError(
            f"study {name!r} already exists in {redact(plan['tracking_uri'])} (parent run "
            f"{parent_id}, {holder.info.status.lower()}, {trials}): continue it with --resume "
            f"(or `fsvae-study resume --name {name}{where}`), discard it with `fsvae-study "
            f"discard --name {name}{where}`, or choose another --name")
    if identity.alive(holder.info.status, holder.data.tags):
        raise _driven(name, holder)
    if plan.get("parent_run_id") != parent_id:  # the plan of `run --resume`, or a stale one
        stored = _stored_plan(client, holder, plan)
        if claim.mode == "either":
            changed = plan_mod.differences(stored, plan, claim.accept_changed_data)
            if changed:
                raise StudyError(f"study {name!r} was started with {'; '.join(changed)}; "
                                 f"resume it without changing that, or choose another --name")
        given = plan.get("optuna_storage")
        if given == plan_mod.default_optuna_storage(plan["storage"]):
            given = None  # not given: the study's own default moves with its folder
        moved = plan_mod.relocate(stored, plan["storage"], plan["tracking_uri"], given)
        moved.update(data=plan["data"], base={**moved["base"], "data": plan["data"]},
                     data_content=plan.get("data_content"), address=plan["address"])
        plan.clear()
        plan.update(moved)
    _refuse_foreign_optuna(name, optuna, parent_id, plan.get("optuna_storage"))
    client.update_run(parent_id, status="RUNNING")
    client.log_batch(parent_id, tags=[_tag(k, v) for k, v in identity.driver_tags().items()])
    plan["experiment_id"] = exp_id
    return exp_id, parent_id, False


def _where(plan: dict) -> str:
    """The flags that find this study again: --storage unless the default, --tracking-uri
    unless the default store under it."""
    import shlex

    out = ""
    if plan["storage"] != storage.resolve(plan_mod.DEFAULT_STORAGE):
        out += f" --storage {shlex.quote(redact(plan['storage']))}"
    if storage.is_uri(plan["storage"]) or \
            plan["tracking_uri"] != default_tracking_uri(Path(plan["storage"])):
        out += f" --tracking-uri {shlex.quote(redact(plan['tracking_uri']))}"
    return out


def _tag(key: str, value: str):
    from mlflow.entities import RunTag

    return RunTag(key, value)


def _stored_plan(client, holder, plan: dict) -> dict:
    """The plan of the study that holds the name: its study.json here if that is its own,
    else the one its parent run carries."""
    from study import records

    local = plan_mod.read(plan["storage"], plan["name"])
    if local is not None and local.get("parent_run_id") == holder.info.run_id:
        return local
    stored = records.read_plan(client, holder.info.run_id)
    if stored is None:
        raise StudyError(f"study {plan['name']!r} exists (parent run {holder.info.run_id}) "
                         f"but its record carries no {PLAN} and its folder "
                         f"{plan_mod.study_dir(plan)} has none of it: resume it with --storage "
                         f"where it ran")
    return stored


def _default_optuna(plan: dict) -> str | None:
    """The Optuna store a grid's name could collide in: the default one, if it exists."""
    return plan_mod.default_optuna_storage(plan["storage"])


def _refuse_optuna_orphans(name: str, optuna: dict, store: str | None) -> None:
    busy = {n: s for n, s in optuna.items() if s["trials"]}
    if busy:
        listed = ", ".join(f"{n!r} ({s['trials']} trials)" for n, s in sorted(busy.items()))
        raise StudyError(
            f"the name {name!r} is taken in the Optuna store {redact(store)} by {listed}, which "
            f"no MLflow parent run records (its MLflow record was deleted, or another "
            f"tracking store has it): remove it with `fsvae-study discard --name {name} "
            f"--optuna-storage {redact(store)}` (or `optuna delete-study --study-name NAME "
            f"--storage URL`), or choose another --name")


def _refuse_foreign_optuna(name: str, optuna: dict, parent_id: str, store: str | None) -> None:
    foreign = {n: s for n, s in optuna.items()
               if s["parent"] not in (None, parent_id) and s["trials"]}
    if foreign:
        n, s = sorted(foreign.items())[0]
        raise StudyError(
            f"the Optuna study {n!r} in {redact(store)} belongs to another record of "
            f"{name!r} (parent run {s['parent']}), not to this study's ({parent_id}): give "
            f"--optuna-storage the store of this study, or remove that one with `optuna "
            f"delete-study --study-name {n!r} --storage URL`")


def _clear_stale_folder(plan: dict) -> None:
    """A new study in a folder that an earlier study of this name left (its record was
    discarded or deleted, so the name is free): that study's Tune experiments go, so that
    the new one's sessions do not land in them. A folder whose study.json names another
    tracking store is another study's: refused."""
    folder = plan_mod.study_dir(plan)
    old = plan_mod.read(plan["storage"], plan["name"]) if not storage.is_uri(folder) else None
    if old is None:
        return
    if redact(old["tracking_uri"]) != redact(plan["tracking_uri"]):
        raise StudyError(f"the folder {folder} holds the study {plan['name']!r} recorded in "
                         f"{redact(old['tracking_uri'])}: resume that one with --tracking-uri "
                         f"{redact(old['tracking_uri'])}, or choose another --name or --storage")
    for tune_dir in Path(folder).glob("tune-*"):
        shutil.rmtree(tune_dir, ignore_errors=True)
