"""One session of a study, from its claim to its summary: what `fsvae-study run` and
`resume` (and study.run_study / resume_study) do.

A study is its name in its MLflow tracking store (study/identity/names.py). A session claims it
there (study/identity/claim.py), reads what the study has done, closes what a killed driver left
open, and runs only the trials still to do, each stratum as a fresh Ray Tune experiment
(study/driver/session.py; docs/failures.md). Layout under --storage (default
./fsvae-studies):
  <storage>/<name>/study.json     what was asked (study/plan/plan.py); also on the parent run,
                                  so that `resume` needs only the record when it is gone
  <storage>/<name>/space.yaml     the space file as given
  <storage>/<name>/tune-<stratum>-s<session>/  each session's Ray Tune experiment
  <storage>/cache/                the stage cache, shared by every study under <storage>
  <storage>/mlflow.db, mlartifacts/   the default MLflow store (embedded SQLite)
  <storage>/optuna.db             the default Optuna store of searches
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import search_spaces
from study.driver.session import StudyResult
from study.errors import StudyError
from study.hooks import faults
from study.identity import lease as lease_mod
from study.identity.claim import Claim
from study.identity.heartbeat import Heartbeat
from study.identity.locate import locate
from study.plan import plan as plan_mod
from study.plan import storage
from study.plan.plan import Plan
from study.secrets import redact, redact_text


def start(
    plan: Plan, resume: bool = False, accept_changed_data: bool = False, status_every: float = 60.0
) -> StudyResult:
    """Runs a planned study, or continues it when `resume` and its name is taken by it."""
    return execute(
        plan,
        Claim("either" if resume else "new", accept_changed_data=accept_changed_data),
        status_every,
    )


def resume(
    name: str,
    storage: str | None = None,
    tracking_uri: str | None = None,
    optuna_storage: str | None = None,
    data: str | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    accept_changed_data: bool = False,
    status_every: float = 60.0,
) -> StudyResult:
    """Continues the study `name`: from its study.json under `storage` when that is there,
    else from its record in the tracking store (the folder lost, or another machine).
    `status_every`: seconds between the console's status lines when it is no terminal."""
    _not_being_run(name, storage)
    plan = locate(name, storage, tracking_uri, optuna_storage)
    if data is not None:
        moved = plan_mod.with_data(plan, data)
        if not accept_changed_data and not plan_mod.same_data(plan, moved):
            raise StudyError(
                f"study {name!r} read other data ({plan.data}); "
                f"{plan_mod.DATA_RULE}. If the change is intended, pass "
                f"--accept-changed-data"
            )
        plan = moved
    elif not Path(plan.data).is_dir():
        raise StudyError(
            f"study {name!r} read its data from {plan.data}, which is not on "
            f"this machine: give --data where it is here"
        )
    from study.plan.making import reachable

    plan.address = reachable(address or plan.address)
    if plan.address:
        from study.plan.storage import check_record_for_cluster

        check_record_for_cluster(plan.tracking_uri, plan.optuna_storage)
    return execute(plan, Claim("resume", retry_failed, accept_changed_data), status_every)


def _not_being_run(name: str, location: str | None) -> None:
    """A driver of this study on this machine holds its folder's lock from its first
    moment, before its record says anything: refuse as `run` does, rather than find no
    study yet."""
    location = storage.resolve(location or plan_mod.DEFAULT_STORAGE)
    folder = storage.join(location, name)
    lock = Path(folder, ".driver.lock")
    if storage.is_uri(folder) or not lock.exists():
        return
    from filelock import FileLock, Timeout

    try:
        FileLock(str(lock)).acquire(timeout=0).lock.release()
    except Timeout:
        raise StudyError(
            f"study {name!r} is being run by another process now (its lock "
            f"{lock} is held); wait for it to end, or stop it and resume"
        ) from None


def execute(plan: Plan, ask: Claim, status_every: float = 60.0) -> StudyResult:
    """One session. Ray is started and shut down here unless the caller has it running."""
    _check_settings(status_every)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # one line per trial event, no tables
    space = plan.search_space()
    for name in ("ray", "ray.tune", "ray.train", "mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A trial's failure is one console line with its reason (study/driver/progress.py); its
    # traceback is in its MLflow run (error.txt) and in Tune's error file.
    for name in (
        "ray.tune.execution.tune_controller",
        "ray.tune.tune",
        "ray.tune.analysis.experiment_analysis",
    ):
        logging.getLogger(name).addFilter(_QuietTrialFailures())
    from study.driver import cluster

    with _one_driver(plan):
        try:
            return _session(plan, space, ask, status_every)
        finally:
            cluster.restore_ray_output()


@contextmanager
def _one_driver(plan: Plan) -> Iterator[None]:
    """One driver per study folder at a time, at once and on this machine (a lock file
    beside study.json); the record's claim (study/identity/claim.py) holds across machines."""
    if storage.is_uri(plan.folder):
        yield
        return
    from filelock import FileLock, Timeout

    Path(plan.folder).mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(Path(plan.folder, ".driver.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StudyError(
            f"study {plan.name!r} is being run by another process now (its "
            f"lock {lock.lock_file} is held); wait for it to end, or stop it "
            f"and resume"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _session(
    plan: Plan, space: search_spaces.Space, ask: Claim, status_every: float
) -> StudyResult:
    # The start-up is seconds of waiting on Ray's processes and seconds of CPU in MLflow's
    # import and first use of a store: MLflow runs in a thread while this one imports Ray
    # and starts it (ray.init must run in the main thread).
    setup: dict[str, Any] = {}
    worker = threading.Thread(target=_setup_records, args=(plan, space, ask, setup))
    worker.start()
    import ray

    from study.driver import cluster

    started_ray = not ray.is_initialized()
    ray_error, ray_line, ray_session = None, "Ray: already running in this process", None
    try:
        if started_ray:
            ray_line, ray_session = cluster.init_ray(plan.address, _error_log(plan))
    except StudyError as e:
        ray_error = e
    _terminate_as_interrupt()
    worker.join()
    if "error" in setup:
        if started_ray and ray_error is None:
            ray.shutdown()
        raise setup["error"]
    client, claimed, held = setup["client"], setup["claimed"], setup["lease"]
    plan, parent_id = claimed.plan, claimed.plan.parent_run_id
    if ray_error is not None:  # nothing ran: no RUNNING parent left behind
        if held.holds():
            if claimed.new:
                # A new study that never started: the same command can simply be re-run.
                plan_mod.forget(plan)
                client.delete_run(parent_id)
            else:
                client.set_terminated(parent_id, "KILLED")
            held.release()
        raise ray_error
    from study.driver.session import Session

    session = Session(plan, space, client, not claimed.new, ask.retry_failed, held, status_every)
    with Heartbeat(held, parent_id, on_lost=session.lost):
        try:
            print(ray_line, flush=True)
            interrupted = session.run(multi_node=bool(plan.address))
            if started_ray:
                ray.shutdown()  # before the session's end is recorded: no trial can write then
            result = session.finish(interrupted)
        except BaseException as e:
            if started_ray and ray.is_initialized():
                ray.shutdown()
            lost = _superseded(held, e)
            if lost is not None:
                raise lost from None  # nothing more is written: another process holds it
            session.close()
            held.release()
            raise
    held.release()
    if ray_session is not None and result.complete:
        # A local Ray's session folder (/tmp/ray/session_*) holds only its logs: a complete
        # study needs none of them; otherwise they are kept, and the first line named them.
        shutil.rmtree(ray_session, ignore_errors=True)
    return result


def _check_settings(status_every: float) -> None:
    """The session's settings (a flag and the environment's FSVAE_*), each in its range,
    before anything starts: the trials read the environment too, and would each fail on it."""
    from study.identity.lease import lease_seconds
    from study.record.live import live_seconds, system_seconds

    if not status_every > 0:
        raise StudyError(f"--status-every {status_every}: expected seconds above 0")
    lease_seconds(), live_seconds(), system_seconds()


def _terminate_as_interrupt() -> None:
    """SIGTERM (a scheduler preempting or cancelling the job, `kill`) stops the study as
    an interruption: its running trials recorded as interrupted, nothing finished lost,
    exit 130. Ray's driver would otherwise abort on it (ray.init installs a handler that
    does); called after ray.init, in the main thread, for the rest of the process."""
    import signal

    def interrupt(signum, frame):
        # Not Tune's own graceful stop: a scheduler's SIGTERM reaches the job's Ray too,
        # which may be gone before Tune's stop ends. The record is closed as after Ctrl-C
        # (session.close: runs interrupted, the parent KILLED) before the exit, 130.
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _superseded(held: lease_mod.Lease, error: BaseException) -> lease_mod.Superseded | None:
    """The Superseded that explains `error`, if this driver lost its study: found by an
    earlier check, or by one more now (an error such as a record that vanished under a
    discard is what losing the study looks like from inside)."""
    if isinstance(error, lease_mod.Superseded):
        return error
    if held.lost is None and not isinstance(error, KeyboardInterrupt):
        try:
            held.check()
        except lease_mod.Superseded:
            pass
        except Exception:  # the store away: the error stands as it is
            return None
    return held.lost


class _QuietTrialFailures(logging.Filter):
    """Drops Tune's messages that the study's own lines replace (failure reasons, how to
    resume)."""

    DROP = (
        "Trial task failed",
        "Trials did not complete",
        "Experiment has been interrupted",
        "Failed to fetch metrics",
        "Stop signal received",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.DROP)


def _error_log(plan: Plan) -> Path:
    """Where messages Ray publishes to the driver go: beside study.json when that is local."""
    if storage.is_uri(plan.folder):
        import tempfile

        return Path(tempfile.gettempdir()) / f"fsvae-study-{plan.name}-ray-messages.log"
    return Path(plan.folder) / "ray-messages.log"


def _setup_records(plan: Plan, space: search_spaces.Space, ask: Claim, out: dict) -> None:
    """The MLflow store and experiment, the claim on the study's name (study/identity/claim.py), and
    the Optuna store, each created whole before use; records the plan in study.json and on
    the parent run. Errors go to out["error"]."""
    try:
        importlib.import_module("mlflow")  # it sets up its loggers: quiet them after it

        from study.record import stores

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        stores.ensure_mlflow_store(plan.tracking_uri, plan.name)
        if plan.optuna_storage:
            try:
                stores.ensure_optuna_store(plan.optuna_storage, plan.name)
            except StudyError:
                raise
            except Exception as e:
                raise StudyError(
                    f"the Optuna store at {redact(plan.optuna_storage)} is not "
                    f"usable: {type(e).__name__}: {redact_text(str(e))}"
                ) from None
        from mlflow.tracking import MlflowClient

        from study.identity import parent
        from study.identity.claim import claim

        client = out["client"] = MlflowClient(plan.tracking_uri)
        local = None if storage.is_uri(plan.storage) else Path(plan.storage)
        held = lease_mod.acquire(
            plan.tracking_uri, plan.name, "resume" if ask.mode == "resume" else "run"
        )
        try:
            faults.pause("name_claimed", key=plan.name)
            held.check()
            claimed = claim(client, plan, space, ask, local, held)
            held.check()
            parent.log_plan(client, claimed.parent_run_id, claimed.plan)
            held.name_parent(claimed.parent_run_id)
            plan_mod.write(claimed.plan)
        except BaseException:
            held.release()
            raise
        out["claimed"], out["lease"] = claimed, held
    except StudyError as e:
        out["error"] = e
    except Exception as e:  # reported by the caller as a StudyError, after Ray is down
        out["error"] = StudyError(
            f"MLflow at {redact(plan.tracking_uri)} is not usable: "
            f"{type(e).__name__}: {redact_text(str(e))}"
        )
