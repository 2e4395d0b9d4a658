"""A study's identity: its name in its tracking store, and who may drive it now.

The rule (docs/failures.md): a study is its name in its MLflow tracking store.
The name is taken by an active parent run of this harness (tag fsvae.role=study) that has
at least one trial run or whose driver is alive, or by an Optuna study of that name (or
`<name>/<stratum>`) with trials. A new study takes a free name; `--resume` continues the
study that holds it, if no live driver does.

Claims are atomic across machines: "is the name free? then create the parent run" runs
under a lock that lives in the tracking store itself, a registered model named after the
study. Creating a registered model of a name that exists fails on every backend MLflow
offers (SQLite, PostgreSQL, an `mlflow server`), so exactly one claimant holds it; it is
deleted when the claim is done, and one left behind by a killed process is taken over
after LOCK_STALE_S.

A driver says it is alive on its parent run: tag fsvae.driver (host, boot, pid and the
process's start time) once, tag fsvae.heartbeat (Unix seconds) every HEARTBEAT_S. On the
same machine a driver is alive while its process is; from another machine, while its
heartbeat is younger than STALE_S.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from study import faults
from study.errors import StudyError
from study.schema import DRIVER, HEARTBEAT, LOCK, OPTUNA_PARENT, PARENT, ROLE

HEARTBEAT_S = 15.0
STALE_S = 60.0  # a heartbeat older than this: its driver is gone
LOCK_STALE_S = 60.0  # a claim takes about a second; a lock this old was left by a dead one
LOCK_WAIT_S = 120.0
LOCK_PREFIX = "fsvae-study-lock-"


# -- who is this process -----------------------------------------------------------------

def this_driver() -> dict:
    """What identifies this process across machines and reboots."""
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid(),
            "start": _process_start(os.getpid())}


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so that a pid reused by
    another process does not pass for the driver."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive_here(driver: dict) -> bool:
    pid = int(driver.get("pid", 0))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    start = driver.get("start")
    return not start or _process_start(pid) in ("", start)


def driver_of(tags: dict) -> dict | None:
    try:
        return json.loads(tags[DRIVER])
    except (KeyError, ValueError, TypeError):
        return None


def alive(status: str, tags: dict, now: float | None = None) -> bool:
    """Whether a parent run is being driven now. A RUNNING parent that names no driver
    (written by an earlier version) has no way to say so: taken as not driven."""
    if status != "RUNNING":
        return False
    driver = driver_of(tags)
    if driver is None:
        return False
    me = this_driver()
    if driver.get("host") == me["host"] and driver.get("boot") == me["boot"]:
        return _alive_here(driver)
    try:
        beat = float(tags.get(HEARTBEAT, "0"))
    except ValueError:
        beat = 0.0
    return (now or time.time()) - beat < STALE_S


def describe_driver(tags: dict, now: float | None = None) -> str:
    """'host gpu-1, pid 4242, last heartbeat 12 s ago' for messages."""
    driver = driver_of(tags) or {}
    try:
        age = f", last heartbeat {(now or time.time()) - float(tags[HEARTBEAT]):.0f} s ago"
    except (KeyError, ValueError):
        age = ""
    return f"host {driver.get('host', '?')}, pid {driver.get('pid', '?')}{age}"


def driver_tags() -> dict[str, str]:
    return {DRIVER: json.dumps(this_driver()), HEARTBEAT: f"{time.time():.0f}"}


class Heartbeat:
    """Writes the parent run's heartbeat every HEARTBEAT_S from a thread while a session
    runs. A failed write (MLflow unreachable for a while) is skipped: the next one counts."""

    def __init__(self, tracking_uri: str, parent_id: str):
        self.tracking_uri, self.parent_id = tracking_uri, parent_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking_uri)
        while not self._stop.wait(HEARTBEAT_S):
            try:
                client.set_tag(self.parent_id, HEARTBEAT, f"{time.time():.0f}")
            except Exception:  # an outage: the next beat tries again
                pass


# -- the claim ---------------------------------------------------------------------------

@contextmanager
def name_lock(client, name: str) -> Iterator[None]:
    """Holds the study name's lock in the tracking store for the duration of a claim."""
    from mlflow.exceptions import MlflowException

    lock = LOCK_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:20]
    me = {**this_driver(), "since": time.time(), "study": name}
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            client.create_registered_model(
                lock, tags={LOCK: json.dumps(me)},
                description=f"fsvae-study: held for a moment while a driver claims the study "
                            f"name {name!r}; deleted when it is done")
            break
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        holder = _lock_holder(client, lock)
        if holder is not None and _stale_lock(holder):
            _delete_lock(client, lock)
            continue
        if time.monotonic() > deadline:
            who = describe_driver({DRIVER: json.dumps(holder)}) if holder else "unknown"
            raise StudyError(f"study {name!r}: another driver ({who}) has held the claim on "
                             f"its name for over {LOCK_WAIT_S:.0f} s; if it is gone, delete "
                             f"the registered model {lock!r} in the MLflow UI at "
                             f"{redact(client.tracking_uri)}")
        time.sleep(0.3)
    try:
        faults.pause("name_claimed", key=name)
        yield
    finally:
        _delete_lock(client, lock)


def _lock_holder(client, lock: str) -> dict | None:
    try:
        return json.loads(client.get_registered_model(lock).tags.get(LOCK, ""))
    except Exception:  # deleted meanwhile, or not ours
        return None


def _stale_lock(holder: dict) -> bool:
    me = this_driver()
    if holder.get("host") == me["host"] and holder.get("boot") == me["boot"]:
        return not _alive_here(holder)
    return time.time() - float(holder.get("since", 0)) > LOCK_STALE_S


def _delete_lock(client, lock: str) -> None:
    try:
        client.delete_registered_model(lock)
    except Exception:  # already gone (taken over as stale)
        pass


def parents(client, experiment_id: str) -> list:
    """The experiment's active parent runs of this harness, newest first."""
    runs = client.search_runs([experiment_id], f"tags.`{ROLE}` = 'study'", max_results=1000)
    return sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True)


def has_trials(client, experiment_id: str, parent_id: str) -> bool:
    return bool(client.search_runs([experiment_id], f"tags.`{PARENT}` = '{parent_id}'",
                                   max_results=1))


def holder(client, experiment_id: str, own: str | None = None) -> tuple[object | None, list]:
    """(the parent run that takes the name, or None; parents that do not: RUNNING ones with
    no trial and no live driver, left by a driver killed before any trial started). `own`,
    the parent run a resumed study's plan names, is its study whatever it holds."""
    taking, orphans = [], []
    for run in parents(client, experiment_id):
        live = alive(run.info.status, run.data.tags)
        if live or run.info.run_id == own or has_trials(client, experiment_id, run.info.run_id):
            taking.append(run)
        elif run.info.status == "RUNNING":
            orphans.append(run)
    return (taking[0] if taking else None), orphans


def optuna_studies(url: str | None, name: str) -> dict[str, dict]:
    """Optuna studies of this study's name in a store: {study name: {"trials": n,
    "parent": the parent run id it records, or None}}. {} when there is no store."""
    if not url or (url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):])):
        return {}
    import optuna

    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    try:
        out = {}
        for study in storage.get_all_studies():
            if study.study_name == name or study.study_name.startswith(name + "/"):
                out[study.study_name] = {
                    "trials": storage.get_n_trials(study._study_id),
                    "parent": study.user_attrs.get(OPTUNA_PARENT)}
        return out
    finally:
        storage.remove_session()
        storage.engine.dispose()


# -- secrets ----------------------------------------------------------------------------

SECRET_QUERY_KEYS = {"password", "secret_key", "secret_access_key", "session_token",
                     "access_key", "token"}


def redact(url: str | None) -> str | None:
    """A URL without its password (user:secret@host -> user@host) or secret query options
    (an s3:// storage's secret_key, ...): what the record keeps. A password comes back from
    ~/.pgpass or PGPASSWORD (PostgreSQL), MLFLOW_TRACKING_PASSWORD (an MLflow server)."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        auth, host = netloc.rsplit("@", 1)
        netloc = f"{auth.split(':', 1)[0]}@{host}"
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() not in SECRET_QUERY_KEYS]
    if len(kept) < len(pairs):
        query = urlencode(kept, safe="/:")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing secret (and sqlite:////abs keeps its four slashes)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_words(words: list[str]) -> list[str]:
    """A command line with every URL redacted (also `--flag=URL`)."""
    out = []
    for w in words:
        flag, eq, value = w.partition("=")
        if eq and flag.startswith("-") and "://" in value:
            out.append(f"{flag}={redact(value)}")
        else:
            out.append(redact(w) if "://" in w else w)
    return out
