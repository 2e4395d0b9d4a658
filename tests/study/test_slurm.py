"""Studies on a real Slurm cluster (a one-node cluster on localhost, tests/helpers/slurm.py)
that finish by themselves across requeues (docs/slurm.md): the batch script runs a search
to its end; a job requeued mid-trial, or stopped by the preemption signal and requeued,
finishes with every trial FINISHED exactly once under one parent run; a job killed without
warning and submitted again continues; `fsvae-study slurm` submits a working job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import (
    FAST,
    REPO,
    env,
    free_port,
    make_data,
    paused,
    release_new,
    runs,
    tracking_uri,
    trial_runs,
    wait_until,
)
from helpers.slurm import SlurmMissing, start_slurm

pytestmark = pytest.mark.slow
SCRIPT = REPO / "cluster" / "slurm.sbatch"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    try:
        cluster = start_slurm(tmp_path_factory.mktemp("slurm"))
    except SlurmMissing as e:
        pytest.fail(str(e), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("slurm-data") / "data")


def job_env(slurm, pauses=None, *points: str) -> dict:
    """The environment a job inherits from sbatch: this checkout, its own Ray port, the
    test's Slurm, and fault-injection pauses where asked."""
    extra = {
        "FSVAE_RAY_PORT": str(free_port()),  # the job's own Ray, beside any other
        "FSVAE_STUDY": str(Path(sys.executable).with_name("fsvae-study")),
    }
    if points:
        extra.update(FSVAE_PAUSE_AT=",".join(points), FSVAE_PAUSE_DIR=str(pauses))
    return slurm.env(env(**extra))


def sbatch(slurm, environ: dict, log, *run_args: str) -> str:
    done = subprocess.run(
        ["sbatch", "--parsable", f"--output={log}", "--cpus-per-task=2", str(SCRIPT), *run_args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def search(data, storage, name: str, n: int = 3) -> list[str]:
    return [
        "--space",
        "smoke-search",
        "--num-samples",
        str(n),
        "--max-concurrent",
        "1",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        name,
        *FAST,
    ]


def interrupted(uri: str, name: str, key: str) -> None:
    """The trial the job's stop cut short: its run closed as interrupted (then replaced by
    the rerun, which MLflow keeps as deleted), and a FINISHED run of the same key."""
    every = runs(uri, name, deleted_too=True)
    again = every[every["tags.fsvae.trial_key"] == key]
    assert set(again["status"]) == {"KILLED", "FINISHED"}, again[["status"]]
    killed = again[again["status"] == "KILLED"]
    assert killed["tags.fsvae.interrupted"].notna().all()


def finished_once(uri: str, name: str, n: int) -> None:
    """Every trial FINISHED exactly once, no run of it left RUNNING, one parent run."""
    trials = trial_runs(uri, name)
    done = trials[trials["status"] == "FINISHED"]
    assert sorted(done["tags.fsvae.trial_key"]) == [f"n_f=5#{i}" for i in range(n)], trials[
        ["tags.fsvae.trial_key", "status"]
    ]
    assert "RUNNING" not in set(trials["status"])
    every = runs(uri, name)
    assert (every["tags.fsvae.role"] == "study").sum() == 1


def test_the_batch_script_runs_a_search_to_its_end(slurm, data, tmp_path):
    log = tmp_path / "job.out"
    job = sbatch(slurm, job_env(slurm), log, *search(data, tmp_path / "st", "end", 2))
    info = slurm.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED"), 600, log)
    out = log.read_text()
    assert info["JobState"] == "COMPLETED", out[-4000:]
    assert "Ray: 1 of 1 node(s) joined at" in out and "token authentication on" in out
    assert "study end: complete; 2 trials finished, 0 failed" in out
    finished_once(tracking_uri(tmp_path / "st"), "end", 2)


def hold_then(slurm, data, tmp_path, name: str, act) -> tuple[dict, str]:
    """A 3-trial search held in its second trial (its run made, its backbone built: the
    pause point trial_running) after one trial finished; `act(job id)` is done to the job
    there. Nothing is let go until the job has left that start; then every later start is
    let go, and a requeued job that has waited 3 s (Slurm.start_now says why not at once)
    starts, until the job ends. Returns the job's last info and its log."""
    pauses, log = tmp_path / "pauses", tmp_path / "job.out"
    job = sbatch(
        slurm, job_env(slurm, pauses, "trial_running"), log, *search(data, tmp_path / "st", name)
    )
    seen: set = set()
    wait_until(lambda: paused(pauses, "trial_running"), 600, "the first trial", None, log)
    release_new(pauses, "trial_running", seen)
    wait_until(
        lambda: len(paused(pauses, "trial_running")) >= 2, 600, "the second trial", None, log
    )
    act(job)
    slurm.wait_state(job, ("PENDING", "COMPLETED", "FAILED", "CANCELLED"), 300, log)
    info: dict = {}
    waiting: dict = {}  # the job's restart count -> when it was first seen waiting to begin
    for _ in range(1200):  # let every later start go, and the requeued job start
        release_new(pauses, "trial_running", seen)
        info = slurm.job(job)
        if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        if info.get("JobState") == "PENDING" and info.get("Reason") == "BeginTime":
            since = waiting.setdefault(info.get("Restarts"), time.monotonic())
            if time.monotonic() - since >= 3:
                slurm.start_now(job)
        subprocess.run(["sleep", "0.5"])
    return info, log.read_text()


def test_a_job_requeued_mid_trial_finishes_after_the_requeue(slurm, data, tmp_path):
    info, out = hold_then(
        slurm, data, tmp_path, "rq", lambda job: slurm.run("scontrol", "requeue", job)
    )
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", out[-4000:]
    # Slurm ends the job's Ray with its driver: the driver closes the record itself, or,
    # when Ray's end takes it first, the next start does; either way the trial it cut
    # short is recorded as interrupted and runs again.
    assert "(start 2)" in out and "SIGTERM (preempted, requeued or cancelled)" in out
    assert "study rq: complete; 3 trials finished, 0 failed" in out
    uri = tracking_uri(tmp_path / "st")
    interrupted(uri, "rq", "n_f=5#1")
    finished_once(uri, "rq", 3)


def test_the_preemption_signal_interrupts_the_trial_and_the_requeued_job_reruns_it(
    slurm, data, tmp_path
):
    info, out = hold_then(
        slurm,
        data,
        tmp_path,
        "pre",
        lambda job: slurm.run("scancel", "--signal=USR1", "--batch", job),
    )
    assert info["JobState"] == "COMPLETED", out[-4000:]
    assert "Slurm signal USR1 (the job ends soon): stopping the study" in out
    assert "study pre: INTERRUPTED" in out and "requeueing job" in out
    uri = tracking_uri(tmp_path / "st")
    interrupted(uri, "pre", "n_f=5#1")
    finished_once(uri, "pre", 3)


def test_a_job_killed_without_warning_continues_when_submitted_again(slurm, data, tmp_path):
    pauses, log = tmp_path / "pauses", tmp_path / "first.out"
    args = search(data, tmp_path / "st", "kill")
    job = sbatch(slurm, job_env(slurm, pauses, "trial_running"), log, *args)
    seen: set = set()
    wait_until(lambda: paused(pauses, "trial_running"), 600, "the first trial", None, log)
    release_new(pauses, "trial_running", seen)
    wait_until(
        lambda: len(paused(pauses, "trial_running")) >= 2, 600, "the second trial", None, log
    )
    # No warning: every process of the job SIGKILLed at once (its node lost, the OOM
    # killer), the batch script with them, so that it cannot requeue itself.
    for pid in slurm.job_pids(job):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    slurm.wait_state(job, ("CANCELLED", "FAILED", "COMPLETED", "NODE_FAIL"), 120, log)
    log2 = tmp_path / "second.out"
    job2 = sbatch(slurm, job_env(slurm), log2, *args)
    info = slurm.wait_state(job2, ("COMPLETED", "FAILED", "CANCELLED"), 600, log2)
    out = log2.read_text()
    assert info["JobState"] == "COMPLETED", out[-4000:]
    # The record said: continue it; the run the killed driver left open is closed.
    assert "(resuming, session 2; closed 1 run(s) its last driver left running)" in out
    assert "study kill: complete; 3 trials finished, 0 failed" in out
    finished_once(tracking_uri(tmp_path / "st"), "kill", 3)


def test_fsvae_study_slurm_submits_a_working_job(slurm, data, tmp_path):
    storage = tmp_path / "st"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fsvae_study",
            "slurm",
            "--cpus-per-task",
            "2",
            "--space",
            "smoke",
            "--grid",
            "method=plain",
            "--data",
            str(data),
            "--storage",
            str(storage),
            "--name",
            "cmd",
            *FAST,
        ],
        cwd=tmp_path,
        env=job_env(slurm),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "submitted study 'cmd' as Slurm job " in done.stdout
    job = done.stdout.split("Slurm job ")[1].split()[0]
    assert f"fsvae-study status --name cmd --storage {storage} --watch" in done.stdout
    log = storage / "cmd" / f"slurm-{job}.out"
    info = slurm.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED"), 600, log)
    assert info["JobState"] == "COMPLETED", log.read_text()[-4000:]
    assert (storage / "cmd" / "slurm.sbatch").read_text() == SCRIPT.read_text()
    status = subprocess.run(
        [sys.executable, "-m", "fsvae_study", "status", "--name", "cmd", "--storage", str(storage)],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0 and "complete" in status.stdout.lower(), status.stdout


def test_a_trial_larger_than_what_slurm_gave_a_node_is_refused_with_the_numbers(
    slurm, data, tmp_path
):
    log = tmp_path / "job.out"
    job = sbatch(
        slurm,
        job_env(slurm),
        log,
        *search(data, tmp_path / "st", "big", 2),
        "--cpus-per-trial",
        "3",
    )
    info = slurm.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED"), 300, log)
    out = log.read_text()
    assert info["JobState"] == "FAILED" and info["ExitCode"].startswith("2:"), out[-3000:]
    assert (
        "a trial asks 3 CPU(s) and 0 GPU(s), but no node of the cluster has that: the "
        "largest has 2 CPU(s) and 0 GPU(s) (1 node(s)); this Slurm job" in out
    )
    assert "SLURM_CPUS_PER_TASK=2" in out and "ask sbatch for more" in out
    assert "requeueing" not in out  # bad input: not requeued
    assert "started:" not in out  # no trial started
