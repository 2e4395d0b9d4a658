"""The overhead per trial slot, the figure every harness and plain-Tune row reports.

    overhead per trial slot = (last trial end - first trial start) x slots / trials
                              - mean compute per trial

bench/overhead.py's docstring says where each side's start, end and compute come from.
"""

from __future__ import annotations

import statistics

from machine import fmt_load


def measure(trials: list[dict], slots: int) -> dict:
    """The overhead per trial slot (the module's docstring), and its parts."""
    n = len(trials)
    window = max(t["end"] for t in trials) - min(t["start"] for t in trials)
    compute = statistics.mean(t["compute"] for t in trials)
    in_run = statistics.mean(t["end"] - t["start"] - t["compute"] for t in trials)
    slot = window * slots / n
    return {
        "trials": n,
        "window_s": window,
        "slot_s_per_trial": slot,
        "compute_s": compute,
        "compute_median_s": statistics.median(t["compute"] for t in trials),
        "overhead_s": slot - compute,
        "in_run_s": in_run,
        "outside_run_s": slot - compute - in_run,
    }


def by_decile(trials: list[dict], slots: int, parts: int = 10) -> list[float]:
    """The overhead per trial slot over successive tenths of the trials (by start): does a
    trial cost more late in a study than early?"""
    trials = sorted(trials, key=lambda t: t["start"])
    n = len(trials)
    out = []
    for i in range(parts):
        chunk = trials[i * n // parts : (i + 1) * n // parts]
        if len(chunk) >= 4:
            out.append(round(measure(chunk, slots)["overhead_s"], 3))
    return out


def row(label: str, r: dict) -> str:
    """One run's line of the table under HEADER."""
    return (
        f"| {label} | {r['trials']} | {r['slot_s_per_trial']:.3f} | {r['compute_s']:.3f} | "
        f"**{r['overhead_s']:.3f}** | {r.get('in_run_s', 0):.3f} | "
        f"{r['driver_cpu_s_per_trial']:.3f} | {r['driver'].get('maxrss_mb', 0):.0f} "
        f"({r['driver'].get('RssAnon_mb', 0):.0f}) | "
        f"{r['wall_s']:.1f} | {fmt_load(r['load'])} |"
    )


HEADER = (
    "| run | trials | slot s per trial | compute s | overhead s per trial slot | "
    "of which inside the MLflow run | driver CPU s per trial | driver peak RSS MB "
    "(private at exit) | wall s | load |\n|---|---|---|---|---|---|---|---|---|---|"
)
