"""A study's state, read from its record alone: what `fsvae-study status` shows
(docs/studies.md#watching-a-study).

Everything comes from the study's MLflow tracking store: its parent run (kind, status,
driver, heartbeat, number of trials), its trial runs (how each ended; a running one's
progress, tag fsvae.progress, and node; each run's cost) and the study's lease beside them
(study/identity/lease.py). So any machine that reaches the store can read it, while the
study runs or after; nothing is written, and no Ray is imported.

Whether the driver is alive is judged without waiting, unlike the lease's own watch: a
released lease means the driver ended; a driver on this machine and in this pid namespace
is alive while its process runs; elsewhere, the parent run's heartbeat (Unix seconds by the
driver's clock, stamped every lease/4 seconds) is compared with this machine's clock. That
last comparison crosses clocks and is for people reading the status; the lease never makes
it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from study import processes
from study.errors import StudyError
from study.identity import lease as lease_mod
from study.identity import names as identity
from study.identity.locate import missing_store, record_of
from study.plan import plan as plan_mod
from study.record import read as record
from study.record import schema
from study.secrets import redact

ALIVE_S = 60.0  # a heartbeat younger than this (or than the driver's lease, if longer): alive


@dataclass
class Where:
    """Where study `name` is recorded, and one client of that store (runs and lease)."""

    name: str
    tracking_uri: str  # as given, with any password: the client needs it
    optuna_storage: str | None  # asked for (--optuna-storage) or in its study.json
    local: plan_mod.Plan | None  # its study.json under --storage, if there
    client: object = None


@dataclass
class Driver:
    """The study's latest driver (the holder of its lease), and whether it is alive:
    state alive | dead | ended | unknown, judged_by process | heartbeat | lease | nothing."""

    host: str | None
    pid: int | None
    role: str | None
    lease: int | None
    state: str
    judged_by: str
    heartbeat_age_s: float | None = None

    @property
    def alive(self) -> bool | None:
        return {"alive": True, "dead": False, "ended": False}.get(self.state)


@dataclass
class Running:
    """One trial run that is RUNNING, and its latest progress (tag fsvae.progress)."""

    key: str
    run_id: str
    stage: str | None
    epoch: int | None
    epochs: int | None
    loss: float | None
    val: float | None
    node: str | None
    elapsed_s: float | None
    progress_age_s: float | None


@dataclass
class Status:
    """One reading of a study's record. `trials`: total, finished, failed, stopped,
    running, interrupted (unfinished runs no driver runs: they run again on resume) and
    to_run (total less those that ended: finished, failed, stopped)."""

    name: str
    kind: str | None
    state: str  # complete | running | stopped | unknown
    tracking_uri: str  # without its password, as every URL here
    optuna_storage: str | None
    experiment_id: str
    parent_run_id: str
    parent_status: str
    sessions: int | None
    driver: Driver
    trials: dict[str, int | None]
    running: list[Running] = field(default_factory=list)
    time_left: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    open: dict = field(default_factory=dict)
    read_at: float = 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["driver"]["alive"] = self.driver.alive
        return out


# -- where the study is ------------------------------------------------------------------


def locate(
    name: str,
    storage: str | None = None,
    tracking_uri: str | None = None,
    optuna_storage: str | None = None,
) -> Where:
    """The store that records study `name`, as `resume` and `discard` find it: the given
    --tracking-uri, else the one its study.json under `storage` (default ./fsvae-studies)
    names, else SQLite <storage>/mlflow.db. StudyError when that SQLite file is missing."""
    record_at = record_of(name, storage, tracking_uri)
    local, uri = record_at.local, record_at.tracking_uri
    if missing_store(uri):
        raise StudyError(
            f"no study {name!r}: no MLflow store at {redact(uri)} (give "
            f"--storage where the study ran, or --tracking-uri)"
        )
    return Where(
        name,
        uri,
        optuna_storage or (local.optuna_storage if local else None),
        local,
        lease_mod.client_for(uri),
    )


# -- one reading -----------------------------------------------------------------------


def read(where: Where, now: float | None = None) -> Status:
    """The study's state now; StudyError naming the studies the store holds when it has
    none of that name."""
    client = where.client
    parent = _parent(client, where)
    exp_id, parent_id = parent.info.experiment_id, parent.info.run_id
    now = time.time() if now is None else now
    driver = judge(lease_mod.latest(client, where.name), parent.data.tags, now)
    runs = record.search(client, exp_id, f"tags.`{schema.PARENT}` = '{parent_id}'")
    entries = record.counted(runs)
    total = _int(parent.data.params.get("num_trials"))
    driven = driver.state in ("alive", "unknown")
    unfinished = [e for e in entries.values() if e.state == "unfinished"]
    live = [e for e in unfinished if e.status == "RUNNING"] if driven else []
    ended = {
        s: sum(e.state == s for e in entries.values()) for s in ("finished", "failed", "stopped")
    }
    done = sum(ended.values())
    trials = {
        "total": total,
        **ended,
        "running": len(live),
        "interrupted": len(unfinished) - len(live),
        "to_run": None if total is None else max(0, total - done),
    }
    running = [_running(e, now) for e in live]
    ends = {r.info.run_id: r.info.end_time for r in runs}
    complete = trials["to_run"] == 0 and not live
    state = (
        "complete"
        if complete
        else "running"
        if driver.state == "alive"
        else "unknown"
        if driver.state == "unknown"
        else "stopped"
    )
    tags = parent.data.tags
    optuna = where.optuna_storage or tags.get(schema.OPTUNA_STORAGE)
    return Status(
        name=where.name,
        kind=tags.get(schema.SPACE_KIND),
        state=state,
        tracking_uri=redact(where.tracking_uri) or "",
        optuna_storage=redact(optuna),
        experiment_id=exp_id,
        parent_run_id=parent_id,
        parent_status=parent.info.status,
        sessions=_sessions(client, parent_id, where.local),
        driver=driver,
        trials=trials,
        running=running,
        time_left=time_left(entries, ends, running, trials, state),
        cost=cost(runs),
        open=commands(where.tracking_uri, optuna),
        read_at=now,
    )


def _parent(client, where: Where):
    """The parent run of the study: the one that holds its name (identity.holder), else a
    RUNNING one with no trial yet (its driver just started), else the latest."""
    exp = client.get_experiment_by_name(where.name)
    if exp is not None and exp.lifecycle_stage == "active":
        holder, orphans = identity.holder(client, exp.experiment_id)
        found = (
            holder
            or next(iter(orphans), None)
            or next(iter(identity.parents(client, exp.experiment_id)), None)
        )
        if found is not None:
            return found
    names = sorted(
        e.name
        for e in client.search_experiments()
        if not (e.experiment_id == "0" and e.name == "Default")
    )
    raise StudyError(
        f"no study {where.name!r} in {redact(where.tracking_uri)}; studies there: "
        f"{', '.join(names) if names else 'none'}"
    )


def judge(holder: lease_mod.Holder | None, tags: dict, now: float) -> Driver:
    """The driver and whether it is alive, without waiting (the module's docstring). The
    lease's latest holder names it; a study whose lease is gone, by the parent run's
    fsvae.driver tag."""
    info = holder.info if holder is not None else _json(tags.get(schema.DRIVER))
    epoch = holder.epoch if holder is not None else _int(info.get("lease"))
    beat = _float(tags.get(schema.HEARTBEAT))
    age = None if beat is None else max(0.0, now - beat)

    def driver(state: str, by: str) -> Driver:
        return Driver(
            host=info.get("host"),
            pid=_int(info.get("pid")),
            role=info.get("role"),
            lease=epoch,
            state=state,
            judged_by=by,
            heartbeat_age_s=age,
        )

    if holder is not None and holder.released:
        return driver("ended", "lease")
    if not info:
        return driver("unknown", "nothing")
    if processes.same_namespace(info):
        return driver("alive" if processes.running(info) else "dead", "process")
    if age is None:
        return driver("unknown", "nothing")
    limit = max(ALIVE_S, _float(info.get("lease_s")) or 0.0)
    return driver("alive" if age < limit else "dead", "heartbeat")


def _running(entry: record.Entry, now: float) -> Running:
    progress = _json(entry.tags.get(schema.PROGRESS))
    at = _float(progress.get("at"))
    return Running(
        key=record.short_key(entry.key),
        run_id=entry.run_id,
        stage=progress.get("stage"),
        epoch=_int(progress.get("epoch")),
        epochs=_int(progress.get("epochs")),
        loss=_float(progress.get("loss")),
        val=_float(progress.get("val")),
        node=entry.tags.get(schema.NODE),
        elapsed_s=max(0.0, now - entry.start_time / 1000) if entry.start_time else None,
        progress_age_s=None if at is None else max(0.0, now - at),
    )


def time_left(
    entries: dict[str, record.Entry], ends: dict, running: list[Running], trials: dict, state: str
) -> dict:
    """An estimate from the finished trials' mean duration (end less start of their runs),
    run `concurrency` at a time (the trials running now, or 1): each running trial takes
    the rest of that mean, each trial still waiting all of it. seconds is None (`why`)
    before a trial finished, without a driver, or without the number of trials."""
    durations = [
        (ends[e.run_id] - e.start_time) / 1000
        for e in entries.values()
        if e.state == "finished" and ends.get(e.run_id) and e.start_time
    ]
    mean = sum(durations) / len(durations) if durations else None
    concurrency = max(1, len(running))
    out = {"seconds": None, "mean_trial_s": mean, "concurrency": concurrency, "why": None}
    if state == "complete":
        return {**out, "seconds": 0.0, "why": "complete"}
    if state == "stopped":
        return {**out, "why": "no driver runs the study"}
    if trials["to_run"] is None:
        return {**out, "why": "the parent run does not say how many trials the study has"}
    if mean is None:
        return {**out, "why": "no trial has finished yet"}
    waiting = max(0, trials["to_run"] - len(running))
    rest = sum(max(0.0, mean - (r.elapsed_s or 0.0)) for r in running)
    return {**out, "seconds": (rest + waiting * mean) / concurrency}


def cost(runs: list) -> dict:
    """The study's cost so far: metrics cost_wall_s, cost_cpu_s and cost_gpu_s summed over
    its ended trial runs (those that count and those that did not), in hours. A trial logs
    its cost when it ends, and a run written before trials measured it has none: `runs`
    counts the ended runs, `measured` those with a cost."""
    sums = {"wall": 0.0, "cpu": 0.0, "gpu": 0.0}
    measured = 0
    ended = [r for r in runs if r.info.status != "RUNNING"]
    for run in ended:
        metrics = run.data.metrics
        if any(f"{schema.COST}{k}_s" in metrics for k in sums):
            measured += 1
        for k in sums:
            sums[k] += float(metrics.get(f"{schema.COST}{k}_s", 0.0) or 0.0)
    return {
        **{f"{k}_h": v / 3600 for k, v in sums.items()},
        "runs": len(ended),
        "measured": measured,
    }


def commands(tracking_uri: str, optuna_storage: str | None) -> dict:
    """How to open the record: {"mlflow": a command, or a server's address; "optuna": the
    optuna-dashboard command of a search's store, or None}, without passwords (a database's
    comes from ~/.pgpass or PGPASSWORD)."""
    uri = redact(tracking_uri) or tracking_uri
    mlflow = (
        uri
        if uri.startswith(("http://", "https://"))
        else f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
    )
    return {
        "mlflow": mlflow,
        "optuna": f"optuna-dashboard {redact(optuna_storage)}" if optuna_storage else None,
    }


def _sessions(client, parent_id: str, local: plan_mod.Plan | None) -> int | None:
    """How many sessions ran the study: its plan's count, from the parent run's study.json
    (the record's), else from the one under --storage."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="fsvae-status-") as tmp:
        try:
            path = client.download_artifacts(parent_id, schema.PLAN, tmp)
            return _int(json.loads(Path(path).read_text(encoding="utf-8")).get("sessions"))
        except Exception:  # no such artifact (a parent written before), or unreadable
            pass
    if local is not None and local.parent_run_id == parent_id:
        return local.sessions
    return None


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
