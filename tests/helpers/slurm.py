"""A throwaway one-node Slurm cluster on localhost for the tests that submit studies to it:
its own munge key and socket, slurm.conf, state, spool and log folders under the test's
folder, its own ports; munged, slurmctld and slurmd started here and stopped by their own
pids (never by name: a machine may run a real Slurm). Debian's slurm-wlm and munge
(.ci/run installs them)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.processes import free_port

SBIN = Path("/usr/sbin")


class SlurmMissing(RuntimeError):
    """Slurm's or munge's programs are not installed."""


@dataclass
class Slurm:
    folder: Path
    conf: Path
    pids: dict[str, Path] = field(default_factory=dict)  # daemon -> its pid file

    def env(self, base: dict) -> dict:
        """`base` with this cluster's configuration: sbatch, scontrol and the jobs use it."""
        return {**base, "SLURM_CONF": str(self.conf)}

    def run(
        self, *argv: str, base: dict | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(argv),
            env=self.env(base or dict(os.environ)),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job`'s fields: JobState, Restarts, ExitCode, ..."""
        out = self.run("scontrol", "show", "job", job_id, "--oneliner").stdout
        return dict(part.split("=", 1) for part in out.split() if "=" in part)

    def wait_state(
        self, job_id: str, states: tuple[str, ...], timeout: float, log: Path | None = None
    ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            time.sleep(1)
        tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
        pytest.fail(f"job {job_id} never reached {states}: {self.job(job_id)}\n{tail}")

    def job_pids(self, job_id: str) -> list[int]:
        """The pids of a job's processes (`scontrol listpids`), its batch script's too."""
        out = self.run("scontrol", "listpids", job_id).stdout.splitlines()
        return [
            int(line.split()[0])
            for line in out[1:]
            if line.split()[:1] != ["-1"] and line.split() and line.split()[0].isdigit()
        ]

    def start_now(self, job_id: str) -> None:
        """A requeued job waits about two minutes (its BeginTime) before it may start
        again: let it start now, as an administrator may. Call it only once the job has
        waited a few seconds (see hold_then in tests/study/test_slurm.py): slurmd revokes
        a job's credential when its start ends, and a new start whose credential dates
        from that same second is refused ("Job credential revoked"), which ends the job
        FAILED; a requeue's own wait never lets that happen."""
        self.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")

    def stop(self) -> None:
        """Every job cancelled, then slurmd, slurmctld and munged, by their pids."""
        if "slurmctld" in self.pids:
            jobs = self.run("squeue", "--noheader", "--format=%i").stdout.split()
            for job in jobs:
                self.run("scancel", "--signal=KILL", "--full", job)
            for job in jobs:
                self.run("scancel", job)
        for daemon in ("slurmd", "slurmctld", "munged"):
            _kill(self.pids.get(daemon))


def _kill(pid_file: Path | None) -> None:
    try:
        pid = int(pid_file.read_text().split()[0]) if pid_file is not None else 0
    except (OSError, ValueError, IndexError):
        return
    if pid <= 0:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def start_slurm(folder: Path) -> Slurm:
    """munged, slurmctld and slurmd for one node (this machine: its CPUs, 2 GiB less than
    its memory), configured in `folder`; returns once the node is idle."""
    for program in ("munged", "slurmctld", "slurmd"):
        if not (SBIN / program).exists():
            raise SlurmMissing(
                f"{SBIN / program} is missing: install Debian's slurm-wlm and munge (.ci/run does)"
            )
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir(exist_ok=True)
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = folder / "munge.sock"
    slurm = Slurm(folder, folder / "slurm.conf")
    subprocess.run(
        [
            str(SBIN / "munged"),
            f"--socket={sock}",
            f"--key-file={key}",
            f"--pid-file={folder / 'munged.pid'}",
            f"--log-file={folder / 'log/munged.log'}",
            f"--seed-file={folder / 'munge.seed'}",
            "--force",
        ],
        check=True,
        timeout=30,
    )
    slurm.pids["munged"] = folder / "munged.pid"
    host = socket.gethostname()
    memory = (
        int(next(ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")))
        // 1024
        - 2048
    )
    slurm.conf.write_text(f"""ClusterName=fsvaetest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldPidFile={folder / 'slurmctld.pid'}
SlurmdPidFile={folder / 'slurmd.pid'}
SlurmdSpoolDir={folder / 'spool'}
StateSaveLocation={folder / 'state'}
SlurmctldLogFile={folder / 'log/slurmctld.log'}
SlurmdLogFile={folder / 'log/slurmd.log'}
SlurmUser=root
SlurmdUser=root
JobRequeue=1
KillWait=60
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run(
            [str(SBIN / daemon), "-f", str(slurm.conf)],
            check=True,
            timeout=60,
            env=slurm.env(dict(os.environ)),
        )
        slurm.pids[daemon] = folder / f"{daemon}.pid"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = slurm.run("sinfo", "--noheader", "--format=%T").stdout.strip()
        if state == "idle":
            return slurm
        time.sleep(0.5)
    slurm.stop()
    raise RuntimeError(
        f"the test's Slurm node never became idle: {state!r}\n"
        + (folder / "log/slurmctld.log").read_text()[-2000:]
    )


def sbatch_available() -> bool:
    return shutil.which("sbatch") is not None and (SBIN / "slurmd").exists()
