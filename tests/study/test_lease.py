"""A study's lease (study/identity/lease.py), held by real processes on a real SQLite tracking
store: numbers that only grow, a release taken at once, a dead holder on this machine taken
at once, a holder on another machine or in another container watched by its heartbeat,
clocks five minutes apart, four claimants at once, and the registry always the tracking
store's. The same lease under whole studies: tests/study/test_study_lease.py."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import wait_until
from helpers.holders import can_unshare, end, holder, pause, resume, start
from study.identity import lease
from study.record import stores

LEASE_S = 4.0


@pytest.fixture
def uri(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("FSVAE_LEASE_S", str(LEASE_S))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stores.ensure_mlflow_store(uri)
    return uri


def printed(log: Path, start: str, timeout: float = 60, proc=None) -> str:
    """The first line of `log` that starts with `start`, once there."""

    def line():
        return next((ln for ln in log.read_text().splitlines() if ln.startswith(start)), None)

    return wait_until(line, timeout, f"{start!r} in {log.name}", proc, log)


def leases(uri: str, study: str) -> list[str]:
    models = MlflowClient(uri, registry_uri=uri).search_registered_models(max_results=1000)
    return sorted(m.name for m in models if m.name.startswith(lease.model_name(study, 0)[:-9]))


def test_each_taker_takes_the_next_number_and_the_one_before_is_superseded(uri):
    first = lease.acquire(uri, "s", "run")
    assert first.ref.epoch == 1 and first.holds()
    first.release()
    second = lease.acquire(uri, "s", "resume")  # released: taken at once
    assert second.ref.epoch == 2
    with pytest.raises(lease.Superseded) as lost:
        first.check()
    assert "took it over" in str(lost.value) and "`resume` on host" in str(lost.value)
    assert lost.value.exit_code == 4
    second.release()
    third = lease.acquire(uri, "s", "discard")
    assert third.ref.epoch == 3
    with pytest.raises(lease.Superseded, match="it was discarded by `discard`"):
        second.check()
    # Earlier epochs are pruned: the UI's model list keeps one entry per study.
    assert leases(uri, "s") == [lease.model_name("s", 3)]
    # Another study's lease is its own.
    assert lease.acquire(uri, "t", "run").ref.epoch == 1


@pytest.mark.slow
def test_a_live_holder_here_refuses_and_a_killed_one_is_taken_at_once(uri, tmp_path):
    proc = holder(uri, "s", tmp_path / "h.log")
    try:
        assert printed(tmp_path / "h.log", "epoch", proc=proc) == "epoch 1"
        t0 = time.monotonic()
        with pytest.raises(lease.Busy, match=r"is being run by another driver now \(`run`"):
            lease.acquire(uri, "s", "resume")
        assert time.monotonic() - t0 < 2  # its process is seen from here: no waiting
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        t0 = time.monotonic()
        assert lease.acquire(uri, "s", "resume").ref.epoch == 2
        assert time.monotonic() - t0 < 2  # dead, and seen so: taken at once
    finally:
        end(proc)


needs_uts = pytest.mark.skipif(not can_unshare("-u"), reason="cannot make a UTS namespace")
needs_pid = pytest.mark.skipif(
    not can_unshare("-p", "-f", "--mount-proc"), reason="cannot make a pid namespace"
)


@needs_uts
@pytest.mark.slow
@pytest.mark.essential
def test_a_holder_on_another_machine_is_judged_by_its_heartbeat(uri, tmp_path):
    log = tmp_path / "m2.log"
    proc = holder(uri, "s", log, host="m2")
    try:
        assert printed(log, "epoch", proc=proc) == "epoch 1"
        t0 = time.monotonic()
        with pytest.raises(lease.Busy, match="host m2"):
            lease.acquire(uri, "s", "resume")
        assert time.monotonic() - t0 < LEASE_S  # its count moved within a beat (lease / 4)
        # Paused (a laptop's lid): its count stops; after one lease it is taken over.
        pids = pause(proc)
        t0 = time.monotonic()
        said = []
        taken = lease.acquire(uri, "s", "resume", say=said.append)
        waited = time.monotonic() - t0
        assert taken.ref.epoch == 2
        assert LEASE_S <= waited < LEASE_S + 3, waited
        assert said and f"waiting up to {LEASE_S:.0f} s" in said[0], said
        # Woken, its first check finds the later epoch: it stops, with Superseded's code.
        resume(pids)
        assert proc.wait(timeout=60) == 4
        assert (
            "lost: study 's': this driver (lease 1) no longer holds the study: `resume` "
            f"on host {os.uname().nodename}" in log.read_text()
        )
    finally:
        end(proc)


@needs_pid
@pytest.mark.slow
def test_a_holder_in_another_pid_namespace_is_not_judged_by_its_pid(uri, tmp_path):
    # Same host name and boot id (a container on the host's network), another pid
    # namespace: its pid means nothing here, only its heartbeat does.
    log = tmp_path / "ns.log"
    proc = holder(uri, "s", log, pid_namespace=True)
    try:
        assert printed(log, "epoch", proc=proc) == "epoch 1"
        with pytest.raises(lease.Busy, match="is being run by another driver now"):
            lease.acquire(uri, "s", "resume")
        end(proc)  # the container goes, without releasing
        t0 = time.monotonic()
        assert lease.acquire(uri, "s", "resume", say=lambda s: None).ref.epoch == 2
        assert LEASE_S <= time.monotonic() - t0 < LEASE_S + 3
    finally:
        end(proc)


@needs_uts
@pytest.mark.slow
@pytest.mark.parametrize("skew", ["+5m", "-5m"])
def test_clocks_five_minutes_apart_change_nothing(uri, tmp_path, skew):
    live = holder(uri, "s", tmp_path / "live.log", host="m1")
    try:
        assert printed(tmp_path / "live.log", "epoch", proc=live) == "epoch 1"
        # A claimant on a machine whose clock is 5 minutes off: the live holder keeps it.
        log = tmp_path / "skewed.log"
        taker = holder(uri, "s", log, host="m2", clock=skew, seconds=1)
        assert taker.wait(timeout=120) == 2, log.read_text()
        assert (
            "busy: study 's' is being run by another driver now (`run` on host m1"
            in log.read_text()
        )
        # The holder dies without releasing: the skewed claimant takes the study after one
        # lease of watching, not five minutes earlier or later.
        end(live)
        t0 = time.monotonic()
        log = tmp_path / "skewed-2.log"
        taker = holder(uri, "s", log, host="m2", clock=skew, seconds=1)
        assert taker.wait(timeout=120) == 0, log.read_text()
        took = time.monotonic() - t0
        assert "epoch 2" in log.read_text()
        assert LEASE_S <= took < LEASE_S + 15, took  # + the interpreter's start-up
    finally:
        end(live)


@pytest.mark.slow
def test_four_claimants_at_once_exactly_one_takes_the_study(uri, tmp_path):
    go = tmp_path / "go"
    # Each waits for the same file, then claims: as close to at once as processes get.
    wait = f"import os,time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
    procs = []
    import sys

    from helpers.holders import HOLD

    for i in range(4):
        procs.append(
            start(
                [sys.executable, "-c", wait + HOLD, uri, "s", "run", "15"],
                tmp_path / f"{i}.log",
                LEASE_S,
            )
        )
    time.sleep(3)  # all four started up and waiting
    go.touch()
    try:
        wait_until(
            lambda: (
                sum(
                    "epoch" in (tmp_path / f"{i}.log").read_text()
                    or "busy" in (tmp_path / f"{i}.log").read_text()
                    for i in range(4)
                )
                == 4
            ),
            60,
            "every claimant to decide",
        )
        logs = [(tmp_path / f"{i}.log").read_text() for i in range(4)]
        assert sum(log.startswith("epoch 1") for log in logs) == 1, logs
        assert (
            sum("busy: study 's' is being run by another driver now" in log for log in logs) == 3
        ), logs
        assert leases(uri, "s") == [lease.model_name("s", 1)]
    finally:
        for p in procs:
            end(p)


def test_the_lease_lives_in_the_tracking_store_whatever_the_registry_uri(
    uri, tmp_path, monkeypatch
):
    other = f"sqlite:///{tmp_path / 'registry.db'}"
    stores.ensure_mlflow_store(other)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", other)
    held = lease.acquire(uri, "s", "run")
    assert leases(uri, "s") == [lease.model_name("s", 1)]
    assert leases(other, "s") == []
    assert held.holds()


def test_a_bad_lease_setting_names_itself(monkeypatch):
    monkeypatch.setenv("FSVAE_LEASE_S", "soon")
    with pytest.raises(
        lease.StudyError,
        match=r"FSVAE_LEASE_S='soon': expected seconds "
        r"between 2 and 3600",
    ):
        lease.lease_seconds()
