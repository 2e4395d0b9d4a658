"""The Ray processes a test started, found in /proc and ended by their pids: a head node
that `ray start --head` started (start_ray_head), and what a SIGKILLed driver's local Ray
leaves behind (reap_ray_orphans). Nothing here ends a process by its name or a pattern:
other Ray instances on the machine (a user's study running beside the tests, another
test run) are never touched.

A process belongs to a test's Ray when it is
- one that a `ray start` run by the test left running: `ray start` runs in a process
  session of its own, and every process in that session when it returns is the head's, or
- a descendant of a process the test started (a driver's local Ray is below the driver), or
- tied to one of the test's Ray sessions: its command line names the session's folder
  (`<temp dir>/session_<date>_<pid>`: the GCS, the raylet and Ray's Python helpers have it
  in their arguments), or it is one of Ray's renamed processes (`ray::...`: the dashboard
  and runtime-env agents, the workers) with a file open in that folder (its logs).
A pid is remembered with its start time, so a pid the kernel has reused since is left
alone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")

# The two helpers of a local Ray that outlive a SIGKILLed driver, adopted by init.
AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")

_SESSION = re.compile(r"(/\S*?/session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+)(?=/|\s|$)")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    start: int  # clock ticks after boot (/proc/<pid>/stat field 22)
    zombie: bool
    cmd: str  # the arguments joined by spaces


def table() -> dict[int, Proc]:
    """Every process readable in /proc now."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        pid = int(entry)
        found[pid] = Proc(
            pid, int(fields[1]), int(fields[3]), int(fields[19]), fields[0] in "ZX", cmd
        )
    return found


def alive(pids: dict[int, int], procs: dict[int, Proc] | None = None) -> dict[int, int]:
    """Those of `pids` (pid -> start time) still running as the same process."""
    procs = table() if procs is None else procs
    return {
        pid: start
        for pid, start in pids.items()
        if pid in procs and procs[pid].start == start and not procs[pid].zombie
    }


def descendants(roots, procs: dict[int, Proc]) -> set[int]:
    """`roots` and every process below them."""
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found, todo = set(), [r for r in roots if r in procs]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _open_files(pid: int) -> list[str]:
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    paths = []
    for name in names:
        try:
            paths.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except OSError:
            pass
    return paths


def sessions_of(pids, procs: dict[int, Proc]) -> set[str]:
    """The Ray session folders that the processes `pids` name or have files open in."""
    found = set()
    for pid in pids:
        if pid in procs:
            for text in (procs[pid].cmd, *_open_files(pid)):
                found.update(_SESSION.findall(text))
    return found


def tied_to(sessions, procs: dict[int, Proc]) -> set[int]:
    """The processes of the Ray sessions `sessions` (folders), with their descendants: those
    whose command line names a session's folder, and Ray's renamed processes (`ray::...`)
    with a file open in one."""
    folders = [str(s).rstrip("/") for s in sessions]
    if not folders:
        return set()
    names = re.compile("|".join(re.escape(f) for f in folders) + r"(?=/|\s|$)")
    roots = {p.pid for p in procs.values() if names.search(p.cmd)}
    roots |= {
        p.pid
        for p in procs.values()
        if p.pid not in roots
        and p.cmd.startswith("ray::")
        and any(map(names.match, _open_files(p.pid)))
    }
    return descendants(roots, procs)


def _signal(pids: dict[int, int], sig: int) -> None:
    for pid in alive(pids):
        try:
            os.kill(pid, sig)
        except OSError:
            pass  # ended meanwhile


def _wait_gone(pids: dict[int, int], timeout: float) -> dict[int, int]:
    deadline = time.monotonic() + timeout
    left = alive(pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = alive(left)
    return left


def end(pids: dict[int, int], grace: float = 15) -> dict[int, int]:
    """SIGTERM to each of `pids` (pid -> start time) still running, SIGKILL to those left
    after `grace` seconds; returns any still there after that (none, normally)."""
    _signal(pids, signal.SIGTERM)
    left = _wait_gone(pids, grace)
    _signal(left, signal.SIGKILL)
    return _wait_gone(left, 10)


# -- a head node: `ray start --head` ---------------------------------------------------------


@dataclass
class RayHead:
    """A `ray start --head` this test started, in a process session of its own and with a
    temp folder of its own (its sessions, and the `ray_current_cluster` file that `ray
    start` writes, stay out of the machine's /tmp/ray)."""

    port: int
    temp_dir: Path
    started: dict[int, int]  # pid -> start time: the processes `ray start` left running
    output: str = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def session_dirs(self) -> list[Path]:
        return sorted(p for p in self.temp_dir.glob("session_2*") if p.is_dir())

    def pids(self) -> dict[int, int]:
        """pid -> start time of each process of this head that is running now."""
        procs = table()
        own = descendants(alive(self.started, procs), procs)
        own |= tied_to(self.session_dirs(), procs)
        return {pid: procs[pid].start for pid in own if not procs[pid].zombie}

    def stop(self, grace: float = 5) -> None:
        """Ends this head's processes by their pids: SIGTERM, then SIGKILL to those left
        after `grace` seconds (its GCS server ignores SIGTERM), again until none is left (a
        raylet may start a worker while it is told to stop); then removes its temp
        folder."""
        for _ in range(5):
            pids = self.pids()
            if not pids:
                break
            end(pids, grace)
        left = self.pids()
        if not left:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        assert not left, f"the test's Ray head left processes behind: {sorted(left)}"


def start_ray_head(environ: dict, port: int, num_cpus: int = 2, timeout: float = 180) -> RayHead:
    """`ray start --head --port=PORT` in a process session of its own, as a real cluster's
    head node; returns once it runs. If it fails, what it started is stopped and
    RuntimeError says why, with its output."""
    temp = Path(tempfile.mkdtemp(prefix="fsvae-ray-", dir=environ.get("RAY_TMPDIR", "/tmp")))
    proc = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            f"--num-cpus={num_cpus}",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
        ],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output = proc.communicate()[0]
    # Every process `ray start` started is in the session it led (its pid): its daemons
    # have outlived it there, so that number cannot have been given to another session.
    procs = table()
    head = RayHead(
        port=port,
        temp_dir=temp,
        output=output,
        started={p.pid: p.start for p in procs.values() if p.sid == proc.pid and not p.zombie},
    )
    if proc.returncode != 0:
        head.stop()
        raise RuntimeError(f"ray start --head failed ({proc.returncode}):\n{head.output}")
    return head


# -- a SIGKILLed driver's local Ray ----------------------------------------------------------


def ray_of(pid: int) -> tuple[dict[int, int], set[str]]:
    """The processes below `pid` (pid -> start time) and the Ray sessions they are in: what
    a driver's local Ray is made of. Read it before killing the driver."""
    procs = table()
    below = descendants({pid}, procs) - {pid}
    return ({p: procs[p].start for p in below}, sessions_of(below, procs))


def reap_ray_orphans(sessions, pids: dict[int, int] | None = None, grace: float = 10) -> None:
    """A SIGKILLed driver's local Ray loses its workers with it (Ray ties them to the
    driver), but two of Ray's helper processes (dashboard agent, runtime-env agent) are left
    behind, adopted by init. Ends them, and only them: the processes of the Ray sessions
    `sessions` (folders) and of `pids` (pid -> start time, from `ray_of`) still running.
    Ray gets `grace` seconds to end the rest itself first; anything of those sessions
    still there after it is SIGKILLed too."""
    pids = dict(pids or {})
    deadline = time.monotonic() + grace
    while True:
        procs = table()
        left = alive(pids, procs)
        left.update({p: procs[p].start for p in tied_to(sessions, procs) if not procs[p].zombie})
        done = all(procs[p].cmd in AGENTS and procs[p].ppid == 1 for p in left)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    _signal(left, signal.SIGKILL)
    _wait_gone(left, 10)
