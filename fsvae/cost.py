"""What a trial cost: its wall, CPU and GPU seconds and its peak memory, for planning a
study's cluster time from a smaller run (docs/studies.md#what-a-study-costs).

- wall_s: the trial's seconds, start to end.
- cpu_s: CPU seconds of the process that ran it (all its threads), over the trial.
- gpu_s: where it ran on a GPU, the seconds its stages computed there (each measured to a
  synchronised end; cache lookups and waits on another trial's build excluded); 0 on CPU.
- gpu_peak_mb: torch.cuda.max_memory_allocated over the trial (0 on CPU).
- host_peak_mb: the process's peak resident memory over the trial (Linux VmHWM, reset at
  the trial's start through /proc/self/clear_refs; where that cannot be reset, the peak
  since the process began, which a reused worker may have reached in an earlier trial).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


class Meter:
    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.gpu_s = 0.0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        _reset_host_peak()

    def compute(self, work: Callable[[], Any]) -> Any:
        """`work()`, its time on the GPU counted when there is one."""
        if not self.cuda:
            return work()
        t = time.perf_counter()
        value = work()
        torch.cuda.synchronize(self.device)
        self.gpu_s += time.perf_counter() - t
        return value

    def summary(self) -> dict[str, float]:
        return {
            "wall_s": time.perf_counter() - self.t0,
            "cpu_s": time.process_time() - self.cpu0,
            "gpu_s": self.gpu_s,
            "gpu_peak_mb": torch.cuda.max_memory_allocated(self.device) / 2**20
            if self.cuda
            else 0.0,
            "host_peak_mb": _host_peak_mb(),
        }


def _reset_host_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident set (Linux 4.0 on)
    except OSError:
        pass


def _host_peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
