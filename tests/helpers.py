"""Helpers for every test: data built in the test, the real `fsvae-study` command in a
subprocess, and MLflow reads. Fixtures live in conftest.py; plain functions live here (a
PostgreSQL server's, start_postgres, in postgres_server.py, which bench scripts import too).

Everything is sized for a 2-core CPU: 16 px crops, one backbone epoch, a few VAE and
classifier epochs.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fsvae import config as config_mod, demo_data
from postgres_server import Postgres, PostgresMissing, start_postgres  # noqa: F401

REPO = Path(__file__).resolve().parents[1]

# A trial small enough for seconds on CPU: the `tiny` preset, shrunk further.
TINY = {
    **config_mod.PRESETS["tiny"],
    "image_size": 16,
    "backbone_epochs": 1,
    "vae_epochs": 3,
    "beta_warmup_epochs": 2,
    "classifier_epochs": 2,
    "sampling_factor": 4,
    "device": "cpu",
    "data_workers": 1,
}
# A four-trial grid for the failure tests: plain and vae at two seeds (two backbones).
GRID4 = """
name: grid4
kind: grid
preset: tiny
objective: val_acc_h
grid: {n_f: [5], seed: [0, 1]}
variants: [{method: [plain, vae], sampling_factor: [4]}]
resources: {cpu: 1}
"""
# The same cut for every trial of a test study, as `fsvae-study run` flags.
FAST = ["--set", "image_size=16", "--set", "backbone_epochs=1", "--set", "vae_epochs=3",
        "--set", "classifier_epochs=2", "--set", "data_workers=1"]


def tiny_config(root: Path | str, **overrides) -> dict:
    """A run_trial config on `root` with the TINY settings and `overrides`."""
    return {**TINY, "data": str(root), **overrides}


def quiet(_msg: str) -> None:
    """A log function that drops messages."""


def write_image(path: Path, seed: int, size: int = 12, fmt: str = "JPEG") -> Path:
    """A small random-noise image; different seeds give different bytes."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def make_folders(root: Path, counts: dict[str, dict[str, int]], seed: int = 0) -> Path:
    """<root>/<split>/<class>/<file>.jpg with counts[split][class] distinct images."""
    k = seed * 10_000
    for split, per_class in counts.items():
        for name, n in per_class.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                k += 1
                write_image(root / split / name / f"{name}_{i}.jpg", k)
    return root


def make_fs14(root: Path, lists: dict[str, list[str]], seed: int = 0) -> Path:
    """FashionStyle14 layout: each listed `dataset/<class>/<file>` written as an image."""
    k = seed * 10_000
    for split, rels in lists.items():
        for rel in rels:
            k += 1
            write_image(root / rel, k)
        (root / f"{split}.csv").write_text("".join(r + "\n" for r in rels), encoding="utf-8")
    return root


def make_data(folder: Path) -> Path:
    """Generated FashionStyle14-layout data for a test study: 20 images per class."""
    demo_data.make(folder, per_class=20, image_size=32, seed=0)
    return folder


def env(**extra: str) -> dict:
    """The environment of a command under test: this checkout's code, one thread each."""
    e = dict(os.environ)
    e.update({"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0",
              "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    e.update(extra)
    return e


def cli(*args: str, timeout: float = 600, cwd: Path | None = None,
        environ: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `fsvae-study ARGS` (as `python -m fsvae_study`) and waits for it, with no
    terminal on its stdin (a command that would ask a question refuses instead)."""
    return subprocess.run([sys.executable, "-m", "fsvae_study", *args], cwd=cwd or REPO,
                          env=environ or env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def start_cli(*args: str, log: Path, environ: dict | None = None) -> subprocess.Popen:
    """Starts `fsvae-study ARGS` with stdout and stderr going to `log`; returns at once."""
    out = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "fsvae_study", *args], cwd=REPO,
                            env=environ or env(), stdout=out, stderr=subprocess.STDOUT,
                            text=True)


def tracking_uri(storage: Path) -> str:
    return f"sqlite:///{(storage / 'mlflow.db').resolve()}"


def runs(uri: str, experiment: str, deleted_too: bool = False):
    """All runs of an experiment as a DataFrame (params, metrics, tags columns)."""
    import mlflow
    from mlflow.entities import ViewType

    mlflow.set_tracking_uri(uri)
    view = ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY
    return mlflow.search_runs(experiment_names=[experiment], run_view_type=view)


def trial_runs(uri: str, experiment: str):
    df = runs(uri, experiment)
    if df.empty:
        return df
    return df[df["tags.fsvae.role"] == "trial"].reset_index(drop=True)


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fault injection (study/faults.py) ------------------------------------------------------

def pause_env(folder: Path, *points: str) -> dict:
    """The environment of a study whose processes wait at `points` (see study/faults.py)."""
    return env(FSVAE_PAUSE_AT=",".join(points), FSVAE_PAUSE_DIR=str(folder))


def paused(folder: Path, point: str) -> list[dict]:
    """The processes waiting at `point` now (or released since), oldest first."""
    import json

    found = []
    for f in sorted(Path(folder).glob(f"{point}.*.json"), key=lambda p: p.stat().st_mtime):
        try:
            found.append({**json.loads(f.read_text()), "file": f})
        except (OSError, ValueError):
            pass  # being written
    return found


def release(record: dict) -> None:
    """Lets a paused process go on."""
    record["file"].with_name(record["file"].name[:-len(".json")] + ".go").touch()


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
    import time

    import pytest

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
    """SIGKILL, as a preempted machine or the OOM killer does: no cleanup runs."""
    import signal

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    reap_ray_orphans()


def reap_ray_orphans() -> None:
    """A SIGKILLed driver's local Ray loses its workers with it (Ray ties them to the driver),
    but two of Ray's helper processes (dashboard agent, runtime-env agent) are left behind,
    adopted by init. End them so that killed studies do not pile up processes."""
    import os
    import signal

    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")[0].decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == 1 and cmd in ("ray::DashboardAgent", "ray::RuntimeEnvAgent"):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def start_mlflow_server(folder: Path, port: int, backend_store_uri: str | None = None,
                        extra_env: dict | None = None, workers: int = 1):
    """A real `mlflow server` on loopback with its artifacts in `folder` and its store in
    `backend_store_uri` (default: SQLite in `folder`); `extra_env` adds to its environment
    (e.g. a PostgreSQL server's PGPASSWORD). Returns (process, uri) once it answers
    /health; its log is `folder`/server-PORT.log."""
    import time
    import urllib.request

    mlflow_bin = Path(sys.executable).parent / "mlflow"
    store = backend_store_uri or f"sqlite:///{folder / 'srv.db'}"
    log = open(folder / f"server-{port}.log", "a")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--backend-store-uri", store,
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers)],
        cwd=folder, env={**os.environ, **(extra_env or {})}, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                return proc, uri
        except OSError:
            time.sleep(0.5)
    stop_process_group(proc)
    raise RuntimeError("mlflow server did not start: "
                       + (folder / f"server-{port}.log").read_text()[-2000:])


def stop_process_group(proc) -> None:
    """Ends a process started with start_new_session=True and every process it started."""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait(timeout=30)
