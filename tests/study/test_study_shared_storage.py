"""A storage that is not shared fails fast: before any trial starts, every node must read
back a marker the driver wrote into --storage and the cache.

Nodes started on one machine share its filesystem, so a node with its own storage is made
here the way one machine allows: its `ray start` runs in a private mount namespace
(`unshare --mount`) with an empty tmpfs mounted over the storage folder. That node's
processes see an empty folder where the driver sees the study, as a node with a local
disk mounted at the same path would. Needs root and unshare(1); skipped otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import (
    FAST,
    cli,
    env,
    free_port,
    make_data,
    runs,
    stop_process_group,
    tracking_uri,
    wait_until,
)

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
COUNT = "import ray; ray.init(address={a!r}); print(sum(n['Alive'] for n in ray.nodes()))"


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return (
        subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.skipif(
    not _can_unshare(), reason="needs root and unshare(1) for a node with its own mount namespace"
)
def test_a_node_that_cannot_see_the_storage_stops_the_study_before_any_trial(tmp_path):
    data = make_data(tmp_path / "data")
    storage = tmp_path / "studies"
    storage.mkdir()
    port = free_port()
    address = f"127.0.0.1:{port}"
    logs = tmp_path / "ray.log"
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--block",
        ],
        env=env(),
        stdout=open(logs, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    node = None
    try:
        wait_until(lambda: _answers(port), 120, "the head node", head, logs)
        node = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs none {storage} && exec {RAY} start --address={address} "
                f"--num-cpus=1 --block",
            ],
            env=env(RAY_AUTH_MODE="token"),
            stdout=open(logs, "a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: _alive_nodes(address) == 2, 180, "the second node", node, logs)
        proc = cli(
            "run",
            "--space",
            "smoke",
            "--data",
            str(data),
            "--storage",
            str(storage),
            "--name",
            "x",
            "--address",
            address,
            *FAST,
            timeout=600,
            environ=env(RAY_AUTH_MODE="token"),
        )
    finally:
        for p in (node, head):
            if p is not None:
                stop_process_group(p)
        _forget_cluster(address)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    err = proc.stderr
    assert "fsvae-study run: error: node 127.0.0.1" in err or "node " in err
    assert f"cannot see {storage / 'x' / '.fsvae-shared-check.json'}" in err, err
    assert "must be one filesystem shared by every node" in err
    assert "Traceback" not in err
    trials = runs(tracking_uri(storage), "x")
    assert trials.empty or (trials["tags.fsvae.role"] != "trial").all()  # no trial ran


def _forget_cluster(address: str) -> None:
    """`ray start` records its cluster in /tmp/ray/ray_current_cluster for later drivers; a
    head ended by a signal leaves it behind, pointing at nothing."""
    current = Path("/tmp/ray/ray_current_cluster")
    try:
        if current.read_text().strip().endswith(address.rsplit(":", 1)[1]):
            current.unlink()
    except OSError:
        pass


def _answers(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _alive_nodes(address: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", COUNT.format(a=address)],
        env=env(RAY_AUTH_MODE="token"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    time.sleep(1)
    try:
        return int(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0
