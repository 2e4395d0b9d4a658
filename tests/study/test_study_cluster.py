"""`--address`: a study joins an existing Ray cluster (`ray start --head`, as on a real
cluster) instead of starting its own; a wrong address is a clear error. Without it, the
study's own local Ray: a clear error when it cannot start, and no idle workers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import (
    FAST,
    REPO,
    cli,
    env,
    free_port,
    make_data,
    python,
    runs,
    start_ray_head,
    tracking_uri,
    trial_runs,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head():
    # Stopped by its own pids, never `ray stop`: that ends every Ray of the machine's user,
    # a study running beside the tests included.
    try:
        node = start_ray_head(env(), free_port(), num_cpus=2)
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield node.address
    finally:
        node.stop()


def test_study_runs_on_an_existing_cluster(head, tmp_path):
    # `ray start --head` keeps Ray's token authentication on; a driver joining by address
    # sends the token in token mode (docs/cluster.md).
    data = make_data(tmp_path / "data")
    storage = tmp_path / "studies"
    proc = cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "c",
        "--address",
        head,
        *FAST,
        environ=env(RAY_AUTH_MODE="token"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr
    assert "Ray: joined the cluster at" in proc.stdout
    children = trial_runs(tracking_uri(storage), "c")
    assert len(children) == 3 and set(children["status"]) == {"FINISHED"}


def test_joining_a_token_cluster_without_token_mode_says_what_to_set(head, tmp_path):
    data = make_data(tmp_path / "data")
    e = env()
    e.pop("RAY_AUTH_MODE", None)
    proc = cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(tmp_path / "s"),
        "--address",
        head,
        *FAST,
        environ=e,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"cannot join the Ray cluster at {head}" in proc.stderr
    assert "set RAY_AUTH_MODE=token" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wrong_address_is_a_clear_error(tmp_path):
    data = make_data(tmp_path / "data")
    port = free_port()  # nothing listens there
    proc = cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(tmp_path / "s"),
        "--address",
        f"127.0.0.1:{port}",
        *FAST,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"cannot join the Ray cluster at 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()  # refused before anything was created


def test_a_local_ray_that_cannot_start_is_a_clear_error_and_the_command_can_be_rerun(tmp_path):
    # Ray puts its sockets under $TMPDIR; a long one exceeds the 107-byte AF_UNIX limit.
    data = make_data(tmp_path / "data")
    storage = tmp_path / "s"
    deep = tmp_path / ("t" * 60) / ("u" * 60)
    deep.mkdir(parents=True)
    args = [
        sys.executable,
        "-m",
        "fsvae_study",
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "local",
        *FAST,
    ]
    e = {k: v for k, v in env().items() if k != "RAY_TMPDIR"}
    failed = subprocess.run(
        args, cwd=REPO, env={**e, "TMPDIR": str(deep)}, capture_output=True, text=True, timeout=300
    )
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "cannot start a local Ray" in failed.stderr and "RAY_TMPDIR" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (storage / "local" / "study.json").exists()
    assert runs(tracking_uri(storage), "local").empty  # its parent run was deleted

    again = subprocess.run(
        args, cwd=REPO, env={**e, "RAY_TMPDIR": "/tmp"}, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(trial_runs(tracking_uri(storage), "local")) == 3


def test_a_cluster_study_with_its_sqlite_record_on_a_network_filesystem_is_refused(tmp_path):
    # The tests' folders are on a local disk; FSVAE_NETWORK_FS makes its type count as a
    # network filesystem (study/driver/cluster.py), as an NFS mount would be.
    import socket

    from study.plan.storage import filesystem_type

    data = make_data(tmp_path / "data")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = f"127.0.0.1:{listener.getsockname()[1]}"  # answers, as a head node would
    try:
        proc = cli(
            "run",
            "--space",
            "smoke",
            "--data",
            str(data),
            "--storage",
            str(tmp_path / "s"),
            "--address",
            address,
            *FAST,
            timeout=120,
            environ=env(FSVAE_NETWORK_FS=filesystem_type(tmp_path)),
        )
    finally:
        listener.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (
        f"the MLflow store {tmp_path / 's' / 'mlflow.db'} is SQLite on a network "
        f"filesystem" in proc.stderr
    )
    assert "--tracking-uri http://" in proc.stderr and "postgresql://" in proc.stderr
    assert not (tmp_path / "s").exists()  # refused before anything was created


# A driver's local Ray, alone: its workers counted from inside (psutil, the driver's
# descendants), then one task run, which must start a worker of its own.
_LOCAL_RAY = """
import json, sys, time
from pathlib import Path
import psutil, ray
from study.driver import cluster

cluster.init_ray(None, Path(sys.argv[1]))
idle, deadline = 0, time.monotonic() + 6
while time.monotonic() < deadline:
    below = psutil.Process().children(recursive=True)
    idle = max(idle, sum(1 for p in below if p.cmdline()[:1] == ["ray::IDLE"]))
    time.sleep(0.2)
ran = ray.get(ray.remote(lambda: "ran").remote(), timeout=120)
ray.shutdown()
print(json.dumps({"idle": idle, "ran": ran}))
"""


def test_a_local_ray_starts_no_idle_workers_and_starts_one_for_a_task(tmp_path):
    # A new Ray prestarts a worker per CPU for its first driver; Tune's trial actors never
    # take one (their runtime_env gives each a worker of its own), so a study's local Ray
    # does not start them.
    done = python(_LOCAL_RAY, str(tmp_path / "ray-errors.log"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"idle": 0, "ran": "ran"}, seen
