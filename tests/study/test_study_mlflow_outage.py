"""The MLflow server goes away for about 20 s while trials are writing to it (a restart, a
network blip): the trials wait and retry, and nothing is lost: every trial ends FINISHED
once, with its curves and final metrics."""

from __future__ import annotations

import time

import pytest

from helpers import (
    FAST,
    client,
    free_port,
    make_data,
    pause_env,
    paused,
    release,
    start_cli,
    start_mlflow_server,
    stop_process_group,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow

OUTAGE_S = 20


def test_a_20_second_mlflow_outage_mid_study_loses_nothing(tmp_path):
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    port = free_port()
    server, uri = start_mlflow_server(server_dir, port)
    data = make_data(tmp_path / "data")
    pauses = tmp_path / "pauses"
    log = tmp_path / "run.log"
    proc = start_cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(tmp_path / "studies"),
        "--name",
        "out",
        "--tracking-uri",
        uri,
        *FAST,
        log=log,
        environ=pause_env(pauses, "trial_running"),
    )
    try:
        # Two trials have started their runs and built their backbones; they wait there.
        first = wait_until(
            lambda: len(paused(pauses, "trial_running")) >= 2 and paused(pauses, "trial_running"),
            400,
            "two running trials",
            proc,
            log,
        )
        stop_process_group(server)  # MLflow is gone ...
        for record in first:
            release(record)  # ... while the trials log their curves and results
        down_until = time.monotonic() + OUTAGE_S
        seen = {r["file"] for r in first}

        def release_new() -> bool:
            for record in paused(pauses, "trial_running"):
                if record["file"] not in seen:
                    seen.add(record["file"])
                    release(record)
            return time.monotonic() >= down_until

        wait_until(release_new, OUTAGE_S + 5, "the outage to pass", None, log)
        server, uri2 = start_mlflow_server(server_dir, port)  # back, same store and port

        def finish() -> bool:
            release_new()
            return proc.poll() is not None

        wait_until(finish, 900, "the study to end", None, log)
        out = log.read_text()
        assert proc.returncode == 0, out[-4000:]
        assert "complete; 3 trials finished, 0 failed" in out
        children = trial_runs(uri, "out")
        assert len(children) == 3 and set(children["status"]) == {"FINISHED"}
        assert children["tags.fsvae.trial_key"].is_unique
        c = client(uri)
        for _, run in children.iterrows():
            assert run["metrics.test_acc_h"] >= 0
            assert c.get_metric_history(run["run_id"], "backbone_val_acc"), run["run_id"]
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_process_group(server)
