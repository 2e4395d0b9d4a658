"""`fsvae-study run` and `resume`: one session of a study, from its start to its summary.

A session reads what the study has done (MLflow; for a search also the Optuna store),
closes what a killed driver left open, and runs only the trials still to do, each stratum
as a fresh Ray Tune experiment (README "Failures and resuming"). Layout under --storage
(default ./fsvae-studies):
  <storage>/<name>/study.json     what was asked (study/plan.py): `resume` needs nothing else
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
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import search_spaces
from study import plan as plan_mod, storage
from study.errors import StudyError


def run_from_args(args: argparse.Namespace) -> int:
    plan = plan_mod.make_plan(
        args.space, args.data, name=args.name, storage=args.storage,
        tracking_uri=args.tracking_uri, optuna_storage=args.optuna_storage,
        num_samples=args.num_samples, preset=args.preset, overrides=args.set,
        grid=args.grid, address=args.address, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
        max_failures=args.max_failures, infra_retries=args.infra_retries, asha=args.asha,
        cache_dir=args.cache_dir, no_cache=args.no_cache, log_model=args.log_model)
    return start(plan, resume=args.resume)["exit_code"]


def resume_from_args(args: argparse.Namespace) -> int:
    location = storage.resolve(args.storage or plan_mod.DEFAULT_STORAGE)
    plan = plan_mod.read(location, args.name)
    if plan is None:
        raise StudyError(f"no study {args.name!r} in {location} (no "
                         f"{storage.join(location, args.name, 'study.json')})")
    if args.address:
        plan["address"] = args.address
    plan["address"] = plan_mod.reachable(plan["address"])
    return execute(plan, resuming=True, retry_failed=args.retry_failed)["exit_code"]


def start(plan: dict, resume: bool = False) -> dict[str, Any]:
    """Runs a planned study, or continues it when `resume` and it exists."""
    existing = plan_mod.read(plan["storage"], plan["name"])
    if existing is None:
        return execute(plan, resuming=False, retry_failed=False)
    if not resume:
        raise StudyError(f"study {plan['name']!r} already exists in {plan['storage']}: "
                         f"continue it with --resume (or `fsvae-study resume --name "
                         f"{plan['name']}`), or choose another --name")
    for key in ("space", "data", "preset", "base"):
        if existing[key] != plan[key]:
            raise StudyError(f"study {plan['name']!r} was started with another {key} "
                             f"({existing[key]!r}); resume it without changing that, or "
                             f"choose another --name")
    return execute(existing, resuming=True, retry_failed=False)


def execute(plan: dict, resuming: bool, retry_failed: bool) -> dict[str, Any]:
    """One session; returns {"exit_code", "complete", "finished", "failed", "experiment_id",
    "parent_run_id"}. Ray is started and shut down here unless the caller has it running."""
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
        return _session(plan, space, resuming, retry_failed)


@contextmanager
def _one_driver(plan: dict) -> Iterator[None]:
    """One driver per study at a time: a second `resume` of a running study would run its
    trials twice. (A lock file beside study.json; on an object store there is none.)"""
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


def _session(plan: dict, space: search_spaces.Space, resuming: bool,
             retry_failed: bool) -> dict[str, Any]:
    # The start-up is seconds of waiting on Ray's processes and seconds of CPU in MLflow's
    # import and first use of a store: MLflow runs in a thread while this one imports Ray
    # and starts it (ray.init must run in the main thread).
    setup: dict[str, Any] = {}
    worker = threading.Thread(target=_setup_records, args=(plan, space, setup))
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
    client = setup.get("client")
    if ray_error is not None:
        if "parent_run_id" in setup:  # nothing ran: no RUNNING parent left behind
            if not resuming:
                # A new study that never started: the same command can simply be re-run.
                plan_mod.forget(plan)
                client.delete_run(setup["parent_run_id"])
            else:
                client.set_terminated(setup["parent_run_id"], "KILLED")
        raise ray_error
    if "error" in setup:
        if started_ray:
            ray.shutdown()
        raise StudyError(setup["error"])
    from study.session import Session

    session = Session(plan, space, client, setup["experiment_id"], setup["parent_run_id"],
                      resuming, retry_failed)
    try:
        print(ray_line, flush=True)
        outcome = session.run(multi_node=bool(plan["address"]))
    finally:
        session.close()
        if started_ray:
            ray.shutdown()
    return outcome


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


def _setup_records(plan: dict, space: search_spaces.Space, out: dict) -> None:
    """The MLflow store, experiment and parent run (reused on resume) and the Optuna store,
    each created whole before use; records them in study.json."""
    try:
        importlib.import_module("mlflow")  # it sets up its loggers: quiet them after it

        from study import stores

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            stores.ensure_mlflow_store(plan["tracking_uri"])
            if plan.get("optuna_storage"):
                stores.ensure_optuna_store(plan["optuna_storage"])
        except StudyError as e:
            out["error"] = str(e)
            return
        from mlflow.tracking import MlflowClient

        from study import records

        client = out["client"] = MlflowClient(plan["tracking_uri"])
        local_storage = None if storage.is_uri(plan["storage"]) else Path(plan["storage"])
        exp_id = records.ensure_experiment(client, plan["name"], local_storage)
        parent_id = plan.get("parent_run_id")
        if parent_id is None:
            records.close_orphan_parents(client, exp_id)
            parent_id = records.start_parent(client, exp_id, plan, space)
            plan["parent_run_id"] = parent_id
        else:
            client.update_run(parent_id, status="RUNNING")
        plan["experiment_id"] = exp_id
        plan_mod.write(plan)
        out.update(experiment_id=exp_id, parent_run_id=parent_id)
    except Exception as e:  # reported by the caller as a StudyError, after Ray is down
        out["error"] = (f"MLflow at {plan['tracking_uri']} is not usable: "
                        f"{type(e).__name__}: {e}")

