"""A test stops only what it started, by its pids: a user's Ray running beside the tests on
the same machine keeps every process while the tests start and stop a head node of their
own (as test_study_cluster.py does) and SIGKILL a study's driver of their own (as the kill
tests do, with kill_driver and its reaping of the driver's Ray).

The user's side is started here with plain subprocesses, each in a process session of its
own, outside the helpers under test: a `ray start --head`, a study running
(`fsvae-study run`, waiting at its first trial's start), and the leftovers of a study whose
driver the user SIGKILLed (its dashboard and runtime-env agents, adopted by init: what the
tests' reaper ends for the tests' own drivers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import (
    FAST,
    REPO,
    env,
    free_port,
    kill_driver,
    make_data,
    pause_env,
    paused,
    release_new,
    start_cli,
    start_ray_head,
    tracking_uri,
    trial_runs,
    wait_until,
)
from helpers.ray_processes import AGENTS, RAY, RayHead, alive, ray_of, reap_ray_orphans, table

pytestmark = pytest.mark.slow

# A driver with a local Ray, as a user's script or study has; SIGKILLed below.
LOCAL_DRIVER = (
    "import ray, time; ray.init(address='local', num_cpus=1, "
    "include_dashboard=False); print('READY', flush=True); time.sleep(600)"
)
# Joins a cluster and runs one task on it: the cluster answers.
ONE_TASK = (
    "import ray; ray.init(address={address!r}); "
    "print('TASK', ray.get(ray.remote(lambda: 41 + 1).remote()), flush=True)"
)


def one_task(address: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ONE_TASK.format(address=address)],
        env=env(RAY_AUTH_MODE="token"),
        capture_output=True,
        text=True,
        timeout=300,
    )


def named(pids, procs, part: str) -> list[int]:
    return [p for p in pids if p in procs and part in procs[p].cmd]


def test_a_users_ray_beside_the_tests_keeps_every_process(tmp_path):
    data = make_data(tmp_path / "data")
    user_head = user_temp = user_study = user_driver = None
    user_study_ray = user_driver_ray = ({}, set())  # (pid -> start time, sessions)
    try:
        # -- the user's side ----------------------------------------------------------------
        # A `ray start --head` (with a temp folder of its own, so that the machine's
        # /tmp/ray/ray_current_cluster, which `ray start` writes, is left as it is).
        user_port = free_port()
        user_temp = Path(tempfile.mkdtemp(prefix="fsvae-user-", dir="/tmp"))
        start = subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                f"--port={user_port}",
                "--num-cpus=1",
                "--include-dashboard=false",
                f"--temp-dir={user_temp}",
            ],
            env=env(RAY_AUTH_MODE="token"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        out = start.communicate(timeout=180)[0]
        procs = table()
        user_head = {p.pid: p.start for p in procs.values() if p.sid == start.pid and not p.zombie}
        assert start.returncode == 0, out
        assert named(user_head, procs, "/raylet/raylet") and named(
            user_head, procs, "/gcs/gcs_server"
        ), out

        # A study running, its trials waiting at their start.
        user_pauses = tmp_path / "user-pauses"
        user_log = tmp_path / "user-study.log"
        user_storage = tmp_path / "user-studies"
        user_study = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fsvae_study",
                "run",
                "--space",
                "smoke",
                "--data",
                str(data),
                "--storage",
                str(user_storage),
                "--name",
                "u",
                *FAST,
            ],
            cwd=REPO,
            env=pause_env(user_pauses, "trial_start"),
            stdout=open(user_log, "w"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        first = wait_until(
            lambda: paused(user_pauses, "trial_start"),
            400,
            "the user's study at its first trial",
            user_study,
            user_log,
        )[0]
        user_study_ray = ray_of(user_study.pid)
        procs = table()
        # Its driver, Ray's own processes and the waiting trial's worker (idle workers may
        # come and go by themselves).
        study_core = {
            p: procs[p].start
            for p in [user_study.pid, *user_study_ray[0]]
            if p in procs
            and (
                p in (user_study.pid, first["pid"])
                or procs[p].cmd in AGENTS
                or named([p], procs, "/raylet/raylet")
                or named([p], procs, "/gcs/gcs_server")
            )
        }
        assert len(named(study_core, procs, "/raylet/raylet")) == 1, user_log.read_text()
        assert first["pid"] in study_core

        def user_side_alive():
            assert alive(user_head) == user_head, "the user's `ray start` head lost processes"
            assert alive(study_core) == study_core, "the user's study lost processes"

        # -- the tests' own head node, as test_study_cluster.py's, started and stopped -------
        head = start_ray_head(env(RAY_AUTH_MODE="token"), free_port(), num_cpus=1)
        try:
            ran = one_task(head.address)
            assert "TASK 42" in ran.stdout, ran.stdout[-2000:] + ran.stderr[-2000:]
            own_head = head.pids()
            assert named(own_head, table(), "/raylet/raylet")
            assert not set(own_head) & (set(user_head) | set(study_core))
        finally:
            head.stop()
        assert not alive(own_head)  # the tests' head is gone, all of it...
        user_side_alive()  # ...and nothing of the user's went with it

        # -- a study of the tests' own, its driver SIGKILLed with kill_driver ----------------
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
            "t",
            *FAST,
            log=log,
            environ=pause_env(pauses, "trial_start"),
        )
        # Meanwhile the user kills a driver of theirs: its agents stay, adopted by init (for
        # about a minute, then they end by themselves), so this is done just before the
        # tests' kill.
        user_driver = subprocess.Popen(
            [sys.executable, "-c", LOCAL_DRIVER],
            env=env(RAY_AUTH_MODE="token"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert user_driver.stdout.readline().strip() == "READY"
        user_driver_ray = below, sessions = ray_of(user_driver.pid)
        wait_until(
            lambda: paused(pauses, "trial_start"), 400, "the tests' study at a trial", proc, log
        )
        procs = table()
        agents = {p: s for p, s in below.items() if p in procs and procs[p].cmd in AGENTS}
        assert len(agents) == 2, [procs[p].cmd for p in below if p in procs]
        os.kill(user_driver.pid, signal.SIGKILL)
        user_driver.wait(timeout=60)
        wait_until(
            lambda: all(p.ppid == 1 for p in table().values() if p.pid in agents),
            60,
            "the user's agents adopted by init",
        )
        assert alive(agents) == agents, "the user's agents ended by themselves too early"

        own_ray, own_sessions = ray_of(proc.pid)
        assert own_sessions and not own_sessions & (sessions | user_study_ray[1])
        kill_driver(proc)
        wait_until(lambda: not alive(own_ray), 60, "the tests' killed study's Ray to end")
        user_side_alive()
        assert alive(agents) == agents, "the user's orphaned agents were reaped"

        # -- the user's Ray still works -----------------------------------------------------
        ran = one_task(f"127.0.0.1:{user_port}")
        assert "TASK 42" in ran.stdout, ran.stdout[-2000:] + ran.stderr[-2000:]
        seen: set[Path] = set()

        def study_done():
            release_new(user_pauses, "trial_start", seen)
            return user_study.poll() is not None

        wait_until(study_done, 600, "the user's study to finish")
        assert user_study.returncode == 0, user_log.read_text()[-3000:]
        children = trial_runs(tracking_uri(user_storage), "u")
        assert len(children) == 3 and set(children["status"]) == {"FINISHED"}
    finally:
        # The user's side, ended by its own pids.
        if user_driver is not None and user_driver.poll() is None:
            user_driver.kill()
            user_driver.wait(timeout=60)
        reap_ray_orphans(user_driver_ray[1], user_driver_ray[0], grace=0)
        if user_study is not None and user_study.poll() is None:
            below, sessions = ray_of(user_study.pid)
            os.killpg(user_study.pid, signal.SIGKILL)
            user_study.wait(timeout=60)
            reap_ray_orphans(sessions | user_study_ray[1], {**user_study_ray[0], **below})
        if user_head is not None:
            RayHead(port=user_port, temp_dir=user_temp, started=user_head).stop()
