"""Who a process is across machines, reboots and containers (host, boot id, pid namespace,
pid and start time), and whether one seen from here still runs: what the study's lease
(study/identity/lease.py) and the stores' upgrade check (study/record/stores.py) judge a
holder or a writer by."""

from __future__ import annotations

import os
import socket


def identify() -> dict:
    """This process: {"host", "boot", "pidns", "pid", "start"}."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "boot": _read("/proc/sys/kernel/random/boot_id"),
        "pidns": _pid_namespace(),
        "pid": pid,
        "start": process_start(pid),
    }


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so that a pid reused by
    another process does not pass for the one recorded."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def same_namespace(info: dict) -> bool:
    """Whether `info`'s process can be looked at from here by its pid: the same machine,
    boot and pid namespace. Two containers that share the host's network and boot id (Docker
    --network host, a Kubernetes hostNetwork pod) differ in their pid namespace."""
    return (
        bool(info.get("boot"))
        and bool(info.get("pidns"))
        and info.get("host") == socket.gethostname()
        and info.get("boot") == _read("/proc/sys/kernel/random/boot_id")
        and info.get("pidns") == _pid_namespace()
    )


def running(info: dict) -> bool:
    """Whether `info`'s process (seen from here: same_namespace) still runs."""
    pid = int(info.get("pid", 0) or 0)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    start = info.get("start")
    return not start or process_start(pid) in ("", start)
