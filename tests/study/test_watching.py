"""Watching a running study (docs/studies.md#watching-a-study): a trial's curve reaches
MLflow while its stage still runs, the parent run's progress metrics grow while the study
runs, the console shows a live block on a terminal and periodic status lines (no control
characters) on a pipe, and every trial run carries what it cost. Real studies, real
stores; a trial is held after its third VAE epoch (FSVAE_PAUSE_AT=trial_vae_epoch) so
that it is seen mid-stage."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from helpers import (
    FAST,
    REPO,
    client,
    env,
    make_data,
    paused,
    release,
    runs,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow

VAE_EPOCHS = 6


def held_trial_args(data, storage) -> list[str]:
    """Two VAE trials (smoke's two variants, both made VAE trials) one at a time, their VAE
    trained here (no cache), each with more epochs to come after the pause point."""
    return [
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "w",
        "--grid",
        "method=vae",
        "--max-concurrent",
        "1",
        "--no-cache",
        *FAST,
        "--set",
        f"vae_epochs={VAE_EPOCHS}",
        "--status-every",
        "1",
    ]


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The study run on a pipe, looked at while each trial is held mid-VAE; what was seen."""
    tmp = tmp_path_factory.mktemp("watch")
    data, storage, pauses, log = (
        make_data(tmp / "data"),
        tmp / "studies",
        tmp / "p",
        tmp / "run.log",
    )
    environ = env(FSVAE_PAUSE_AT="trial_vae_epoch", FSVAE_PAUSE_DIR=str(pauses), FSVAE_LIVE_S="0.5")
    proc = start_cli(*held_trial_args(data, storage), log=log, environ=environ)
    uri, seen = tracking_uri(storage), {}
    try:
        first = wait_until(
            lambda: paused(pauses, "trial_vae_epoch"), 600, "the first VAE", proc, log
        )[0]
        time.sleep(2)  # several live intervals: what the worker held is sent meanwhile
        seen["first"] = running_run(uri)
        release(first)
        second = wait_until(
            lambda: paused(pauses, "trial_vae_epoch")[1:], 600, "the second VAE", proc, log
        )[0]
        parent = parent_run(uri)
        wait_until(
            lambda: "study_finished" in client(uri).get_run(parent).data.metrics,
            30,
            "the parent's progress",
        )
        seen["parent_while_running"] = client(uri).get_run(parent).data.metrics
        release(second)
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        for record in paused(pauses, "trial_vae_epoch"):
            release(record)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"uri": uri, "log": log.read_text(), "seen": seen, "parent": parent_run(uri)}


def parent_run(uri: str) -> str:
    df = runs(uri, "w")
    return df[df["tags.fsvae.role"] == "study"]["run_id"].iloc[0]


def running_run(uri: str) -> dict:
    """The RUNNING trial run: its status, VAE loss curve and progress tag, read now."""
    trials = trial_runs(uri, "w")
    run_id = trials[trials["status"] == "RUNNING"]["run_id"].iloc[0]
    run = client(uri).get_run(run_id)
    return {
        "status": run.info.status,
        "vae_loss": [m.step for m in client(uri).get_metric_history(run_id, "vae_loss")],
        "progress": json.loads(run.data.tags["fsvae.progress"]),
        "node": run.data.tags.get("fsvae.node"),
    }


def test_a_running_stages_curve_reaches_mlflow_before_the_stage_ends(watched):
    first = watched["seen"]["first"]
    assert first["status"] == "RUNNING"
    assert first["vae_loss"] == [0, 1, 2]  # three of its six epochs, the stage still running
    assert {k: first["progress"][k] for k in ("stage", "epoch", "epochs")} == {
        "stage": "vae",
        "epoch": 3,
        "epochs": VAE_EPOCHS,
    }
    assert first["node"] == os.uname().nodename


def test_the_parent_run_carries_the_studys_progress_while_it_runs(watched):
    during = watched["seen"]["parent_while_running"]
    assert during["study_finished"] == 1 and during["study_failed"] == 0
    history = client(watched["uri"]).get_metric_history(watched["parent"], "study_finished")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 2.0)]
    best = client(watched["uri"]).get_metric_history(watched["parent"], "study_best")
    assert [m.step for m in best] == [1, 2]


def test_a_pipe_gets_periodic_status_lines_and_no_control_characters(watched):
    out = watched["log"]
    assert "\x1b" not in out and "\r" not in out
    lines = [ln for ln in out.splitlines() if "] study w: " in ln and " ended (" in ln]
    assert len(lines) >= 2, out[-3000:]
    assert any("1/2 ended (0 failed), 1 running" in ln for ln in lines), lines


def test_every_trial_run_carries_what_it_cost_and_the_parent_their_sum(watched):
    trials = trial_runs(watched["uri"], "w")
    assert len(trials) == 2
    for _, t in trials.iterrows():
        assert t["metrics.cost_wall_s"] > 0 and t["metrics.cost_cpu_s"] > 0
        assert t["metrics.cost_gpu_s"] == 0 and t["metrics.cost_gpu_peak_mb"] == 0  # no GPU
        assert t["metrics.cost_host_peak_mb"] > 50  # a Python process with torch loaded
    parent = client(watched["uri"]).get_run(watched["parent"]).data.metrics
    assert parent["cost_total_trials"] == 2
    assert parent["cost_total_cpu_h"] == pytest.approx(trials["metrics.cost_cpu_s"].sum() / 3600)
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "fsvae_study",
            "table",
            "--experiment",
            "w",
            "--tracking-uri",
            watched["uri"],
        ],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0, table.stderr
    assert "Cost of the study's trial runs: 2 trials: " in table.stdout


def test_a_terminal_shows_the_live_block_above_which_the_event_lines_scroll(tmp_path):
    data = make_data(tmp_path / "data")
    argv = [
        sys.executable,
        "-m",
        "fsvae_study",
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(tmp_path / "studies"),
        "--name",
        "tty",
        "--grid",
        "method=plain",
        *FAST,
    ]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on a pseudo-terminal
        os.chdir(REPO)
        os.execve(sys.executable, argv, {**env(), "TERM": "xterm", "COLUMNS": "160"})
    out = b""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child ended and closed its side
                break
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    assert "\x1b[" in text  # the live block is drawn and redrawn in place
    assert "study tty: 0/2 ended (0 failed)" in text  # its bar
    assert "trial grid:" in text and " started: " in text  # the event lines
    assert "study tty: complete; 2 trials finished" in text  # the summary after the block
