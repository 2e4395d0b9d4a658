"""What a study cost so far, from its trial runs' cost metrics (fsvae/cost.py, recorded as
cost_<key> by study/record/write.py): the sums its parent run keeps as cost_total_* at each
session's end, that `table` and `status` show (docs/studies.md#what-a-study-costs)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import TypeGuard

from mlflow.entities import Metric

from study.record.schema import COST, COST_TOTAL


def totals(metrics: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """{"trials", "wall_h", "cpu_h", "gpu_h"} over the trials' metrics (those that recorded
    a cost: runs written before it was recorded count nowhere)."""
    out = {"trials": 0.0, "wall_h": 0.0, "cpu_h": 0.0, "gpu_h": 0.0}
    for m in metrics:
        if not _number(m.get(f"{COST}wall_s")):
            continue
        out["trials"] += 1
        for key in ("wall", "cpu", "gpu"):
            value = m.get(f"{COST}{key}_s")
            out[f"{key}_h"] += value / 3600 if _number(value) else 0.0
    return out


def costs(entries: Iterable) -> list[Metric]:
    """The parent run's cost_total_* metrics over the study's counted trial runs
    (study.record.read.Entry: one per trial key, a failed one included: it cost too)."""
    now = int(time.time() * 1000)
    return [
        Metric(f"{COST_TOTAL}{k}", float(v), now, 0)
        for k, v in totals(e.metrics for e in entries).items()
    ]


def describe(t: Mapping[str, float]) -> str:
    """'6 trials: 0.42 CPU-hours, 0.11 GPU-hours (1.3 h of wall time)'."""
    if not t.get("trials"):
        return "no trial recorded its cost"
    gpu = f", {t['gpu_h']:.2f} GPU-hours" if t.get("gpu_h") else ""
    return (
        f"{int(t['trials'])} trial{'s' * (t['trials'] != 1)}: {t['cpu_h']:.2f} "
        f"CPU-hours{gpu} ({t['wall_h']:.2f} h of trial wall time)"
    )


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(value)
