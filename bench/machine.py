"""The machine a benchmark ran on: its name and library versions, and how busy it was.

On a shared machine a figure means little without the load beside it: every row the
benchmarks print says the 1-minute load average, the share of the CPU busy just before,
and the share other processes took while the row ran (`Others`).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def machine() -> str:
    from importlib import metadata

    def version(lib: str) -> str:
        try:
            return metadata.version(lib)
        except metadata.PackageNotFoundError:
            return "-"

    return (
        f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {version('torch')}, ray {version('ray')}, optuna {version('optuna')}, "
        f"mlflow {version('mlflow')}"
    )


def load(seconds: float = 3.0) -> dict:
    """The 1-minute load average, and the share of all CPUs busy over the next `seconds`."""

    def ticks() -> tuple[int, int]:
        parts = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = parts[3] + parts[4]
        return sum(parts), idle

    loadavg = float(Path("/proc/loadavg").read_text().split()[0])
    total0, idle0 = ticks()
    time.sleep(seconds)
    total1, idle1 = ticks()
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    return {"loadavg1": loadavg, "busy": round(busy, 3)}


def fmt_load(ld: dict) -> str:
    text = f"load {ld['loadavg1']:.2f}, CPU {100 * ld['busy']:.0f}% busy before"
    if "others" in ld:
        text += f", others {100 * ld['others']:.0f}% during"
    return text


class Others:
    """The share of the machine's CPU time that processes other than this bench's took while
    a part ran: the machine's busy CPU time (/proc/stat) less that of this process and all
    its descendants (sampled from /proc every 0.5 s: a process that lives less than that
    between two samples is missed, which counts its CPU as the others'), over CPUs x wall."""

    def __init__(self) -> None:
        import threading

        self.hz = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, float] = {}
        self.t0, self.busy0 = time.perf_counter(), self._busy()
        self.base = self._tree()  # what the tree had used before the part started
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _busy(self) -> float:
        parts = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return (sum(parts[:8]) - parts[3] - parts[4]) / self.hz

    def _tree(self) -> dict[int, float]:
        """CPU seconds of this process and its descendants now, by pid."""
        procs = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            procs[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / self.hz)
        tree, todo = {}, [os.getpid()]
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        while todo:
            pid = todo.pop()
            if pid in procs and pid not in tree:
                tree[pid] = procs[pid][1]
                todo += children.get(pid, [])
        return tree

    def _sample(self) -> None:
        while not self.stop.wait(0.5):
            self.seen.update(self._tree())

    def share(self) -> float:
        self.stop.set()
        self.thread.join()
        self.seen.update(self._tree())
        wall = time.perf_counter() - self.t0
        ours = sum(cpu - self.base.get(pid, 0.0) for pid, cpu in self.seen.items())
        others = (self._busy() - self.busy0) - ours
        return round(max(0.0, others) / ((os.cpu_count() or 1) * wall), 3)
