"""The processes a test starts and steers: the real `fsvae-study` command in a subprocess,
waiting on it and killing it, fault-injection pauses (study/hooks/faults.py), an `mlflow server`.
(A PostgreSQL server is postgres.py's; a Ray head node and a killed driver's Ray,
ray_processes.py's.) Bench scripts start their mlflow servers here too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers.ray_processes import ray_of, reap_ray_orphans

REPO = Path(__file__).resolve().parents[2]  # the checkout under test (tests/helpers/..)


def env(**extra: str) -> dict:
    """The environment of a command under test: this checkout's code, one thread each."""
    e = dict(os.environ)
    e.update(
        {
            "PYTHONPATH": str(REPO),
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    e.update(extra)
    return e


def cli(
    *args: str, timeout: float = 600, cwd: Path | None = None, environ: dict | None = None
) -> subprocess.CompletedProcess:
    """Runs `fsvae-study ARGS` (as `python -m fsvae_study`) and waits for it, with no
    terminal on its stdin (a command that would ask a question refuses instead)."""
    return subprocess.run(
        [sys.executable, "-m", "fsvae_study", *args],
        cwd=cwd or REPO,
        env=environ or env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def python(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `python -c CODE ARGS` on this checkout's code and waits for it: a notebook's or
    a worker's part, alone in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, log: Path, environ: dict | None = None) -> subprocess.Popen:
    """Starts `fsvae-study ARGS` with stdout and stderr going to `log`; returns at once."""
    out = open(log, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "fsvae_study", *args],
        cwd=REPO,
        env=environ or env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fault injection (study/hooks/faults.py) ------------------------------------------------------


def pause_env(folder: Path, *points: str) -> dict:
    """The environment of a study whose processes wait at `points` (see study/hooks/faults.py)."""
    return env(FSVAE_PAUSE_AT=",".join(points), FSVAE_PAUSE_DIR=str(folder))


def paused(folder: Path, point: str) -> list[dict]:
    """The processes waiting at `point` now (or released since), oldest first."""
    found = []
    for f in sorted(Path(folder).glob(f"{point}.*.json"), key=lambda p: p.stat().st_mtime):
        try:
            found.append({**json.loads(f.read_text()), "file": f})
        except (OSError, ValueError):
            pass  # being written
    return found


def release(record: dict) -> None:
    """Lets a paused process go on."""
    record["file"].with_name(record["file"].name[: -len(".json")] + ".go").touch()


def release_new(folder: Path, point: str, seen: set[Path]) -> None:
    """Lets every wait at `point` go, but those whose files are in `seen` (which it
    extends)."""
    for record in paused(folder, point):
        if record["file"] not in seen:
            seen.add(record["file"])
            release(record)


def first_trials_done(folder: Path, log: Path, done: int, held: int):
    """A predicate for `wait_until` on a study run with `pause_env(folder, "trial_start")`:
    lets the first `done` trials past their start and holds the rest there; true once those
    are done on the console (`log`) and `held` more wait. A kill then lands after exactly
    `done` trials, however fast they run."""
    let_go: set[Path] = set()

    def ready() -> bool:
        waiting = paused(folder, "trial_start")
        for record in waiting[:done]:
            if record["file"] not in let_go:
                let_go.add(record["file"])
                release(record)
        return f"| done {done}/" in log.read_text() and len(waiting) >= done + held

    return ready


def wait_until(predicate, timeout: float, what: str, proc=None, log: Path | None = None):
    """Polls `predicate` until it returns something truthy; fails the test with `what` (and
    the tail of `log`) if `timeout` passes or `proc` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


def kill_driver(proc) -> None:
    """SIGKILL, as a preempted machine or the OOM killer does: no cleanup runs. Then the
    helpers that its local Ray leaves behind are ended, those of its own Ray sessions only
    (ray_processes.reap_ray_orphans): another Ray on the machine is not touched."""
    below, sessions = ray_of(proc.pid)  # before the kill: after it, its Ray is init's
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    reap_ray_orphans(sessions, below)


def start_mlflow_server(
    folder: Path,
    port: int,
    backend_store_uri: str | None = None,
    extra_env: dict | None = None,
    workers: int = 1,
):
    """A real `mlflow server` on loopback with its artifacts in `folder` and its store in
    `backend_store_uri` (default: SQLite in `folder`); `extra_env` adds to its environment
    (e.g. a PostgreSQL server's PGPASSWORD). Returns (process, uri) once it answers
    /health; its log is `folder`/server-PORT.log."""
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    store = backend_store_uri or f"sqlite:///{folder / 'srv.db'}"
    log = open(folder / f"server-{port}.log", "a")
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            store,
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=folder,
        # MLflow 3 starts job consumers beside the server for its GenAI jobs, which a study
        # never uses; idle they cost about 0.4 of a core on a 2-core machine.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(extra_env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                return proc, uri
        except OSError:
            time.sleep(0.5)
    stop_process_group(proc)
    raise RuntimeError(
        "mlflow server did not start: " + (folder / f"server-{port}.log").read_text()[-2000:]
    )


def stop_process_group(proc) -> None:
    """Ends a process started with start_new_session=True and every process it started."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait(timeout=30)
