"""Processes that stand for another machine, container or clock in the one-writer tests: a
command run under another host name (`unshare -u`), in another pid namespace (`unshare -p
-f --mount-proc`) or with its clock moved (libfaketime's `faketime`); a process that holds
a study's lease and nothing else (study/identity/lease.py); and a process tree paused and continued
as a laptop's lid or a VM migration does (SIGSTOP, SIGCONT).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.processes import REPO, env

# Holds a study's lease: prints its epoch, beats until its time is up, then releases it
# (or, superseded, prints why and exits with Superseded's code). argv: tracking URI, study,
# role, seconds to hold.
HOLD = """
import sys, time
from study.identity import lease
from study.identity.heartbeat import Heartbeat
try:
    held = lease.acquire(sys.argv[1], sys.argv[2], sys.argv[3], say=lambda s: None)
except lease.Busy as e:
    print(f"busy: {e}", flush=True)
    sys.exit(2)
print(f"epoch {held.ref.epoch}", flush=True)
lost = []
with Heartbeat(held, on_lost=lambda: lost.append(1)):
    end = time.monotonic() + float(sys.argv[4])
    while time.monotonic() < end and not lost:
        time.sleep(0.1)
if lost:
    print(f"lost: {held.lost}", flush=True)
    sys.exit(held.lost.exit_code)
held.release()
print("released", flush=True)
"""


def can_unshare(*flags: str) -> bool:
    """Whether this machine lets a test make the namespaces `flags` ask for (root, or user
    namespaces allowed)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", *flags, "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def elsewhere(
    argv: list[str], host: str | None = None, pid_namespace: bool = False, clock: str | None = None
) -> list[str]:
    """`argv` as run on another machine (`host`: its host name), in another container
    (`pid_namespace`) and/or with its clock moved (`clock`: faketime's offset, "+5m")."""
    if clock is not None:
        if shutil.which("faketime") is None:
            pytest.fail("faketime (Debian package faketime) is not installed: .ci/run installs it")
        argv = ["faketime", "-f", clock, *argv]
    if host is not None:
        argv = [
            "unshare",
            "-u",
            "sh",
            "-c",
            f"hostname {shlex.quote(host)} && exec {shlex.join(argv)}",
        ]
    if pid_namespace:
        argv = ["unshare", "-p", "-f", "--mount-proc", *argv]
    return argv


def start(
    argv: list[str], log: Path, lease_s: float | None = None, environ: dict | None = None
) -> subprocess.Popen:
    """Starts `argv` in its own session (so that its tree can be paused and ended by its
    own ids), output to `log`."""
    e = dict(environ or env())
    if lease_s is not None:
        e["FSVAE_LEASE_S"] = str(lease_s)
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=e,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def holder(
    uri: str,
    study: str,
    log: Path,
    role: str = "run",
    seconds: float = 600,
    lease_s: float = 4,
    **where,
) -> subprocess.Popen:
    """A process that takes `study`'s lease and holds it for `seconds` (HOLD), run
    `elsewhere(**where)`."""
    return start(
        elsewhere([sys.executable, "-c", HOLD, uri, study, role, str(seconds)], **where),
        log,
        lease_s,
    )


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "fsvae_study", *args]


def tree(pid: int) -> list[int]:
    """`pid` and every process descended from it, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def signal_tree(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def pause(proc: subprocess.Popen) -> list[int]:
    """SIGSTOP to a process and everything it started (a driver and its local Ray), as a
    closed laptop lid does; returns the pids, for `resume`."""
    pids = tree(proc.pid)
    signal_tree(pids, signal.SIGSTOP)
    return pids


def resume(pids: list[int]) -> None:
    signal_tree(pids, signal.SIGCONT)


def end(proc: subprocess.Popen) -> None:
    """SIGKILL to a process's tree, by its own pids, if it still runs; then reaped."""
    if proc.poll() is None:
        signal_tree(tree(proc.pid), signal.SIGKILL)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
