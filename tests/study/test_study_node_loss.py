"""A node lost mid-trial: on a real two-node Ray cluster (ray.cluster_utils.Cluster, one CPU
per node, built here), the worker node is killed while it runs a trial. The study retries
that trial on the other node by itself and completes without `resume`, every trial
FINISHED once, and its console stays one line per trial event."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import (
    FAST,
    GRID4,
    make_data,
    paused,
    release,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    pauses = tmp_path / "pauses"
    # The nodes' worker processes inherit this environment: trials wait after their
    # backbone stage until the test lets them go (study/hooks/faults.py).
    monkeypatch.setenv("FSVAE_PAUSE_AT", "trial_running")
    monkeypatch.setenv("FSVAE_PAUSE_DIR", str(pauses))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = c.add_node(num_cpus=1)
    yield c, worker, pauses
    c.shutdown()


def test_a_trial_on_a_lost_node_is_retried_on_another_and_the_study_completes(cluster, tmp_path):
    c, worker, pauses = cluster
    data = make_data(tmp_path / "data")
    (tmp_path / "grid4.yaml").write_text(GRID4)
    storage = tmp_path / "studies"
    log = tmp_path / "run.log"
    proc = start_cli(
        "run",
        "--space",
        str(tmp_path / "grid4.yaml"),
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "n",
        "--address",
        c.address,
        *FAST,
        log=log,
    )
    seen: set[Path] = set()
    lost = {"pid": None}

    def drive() -> bool:
        for record in paused(pauses, "trial_running"):
            if record["file"] in seen:
                continue
            seen.add(record["file"])
            if lost["pid"] is None and record["node"] == worker.node_id:
                lost["pid"] = record["pid"]
                c.remove_node(worker, allow_graceful=False)  # the node dies mid-trial
            else:
                release(record)
        return proc.poll() is not None

    wait_until(drive, 900, "the study to end", None, log)
    out = log.read_text()
    assert lost["pid"] is not None, "no trial ran on the worker node: nothing was tested"
    assert proc.returncode == 0, out[-4000:]
    assert "retrying on another node: node lost (attempt 2 of 3)" in out
    assert "complete; 4 trials finished, 0 failed" in out
    children = trial_runs(tracking_uri(storage), "n")
    assert len(children) == 4 and set(children["status"]) == {"FINISHED"}
    assert children["tags.fsvae.trial_key"].is_unique
    assert "[state-dump]" not in out and "View run" not in out
