"""One console line per trial event: done / running / failed counts and the best objective
so far, instead of Ray's status tables. Stateless between events (it recounts from the
trial list Tune passes), so it stays right after a study is restored.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

from ray import tune

from fsvae.config import RESAMPLING_METHODS
from study.trainable import FINAL


def describe(config: dict, keys: list[str] | None = None) -> str:
    """A trial's point in the space, shortly: "vae x30 n_f=5 seed=1"."""
    point = {**config.get("trial", {}), **{k: v for k, v in config.items() if k != "trial"}}
    if keys is not None:
        point = {k: v for k, v in point.items() if k in keys}
    method = point.pop("method", None)
    sf = point.pop("sampling_factor", None)
    if method and method not in RESAMPLING_METHODS:
        sf = None  # fixed for every trial by --set, but this method does not use it
    head = f"{method} x{sf}" if method and sf else (method or (f"x{sf}" if sf else ""))
    rest = " ".join(f"{k}={_short(v)}" for k, v in point.items())
    return (head + " " + rest).strip()


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class Progress(tune.Callback):
    def __init__(self, total: int, objective: str, mode: str, label: str = "",
                 keys: list[str] | None = None):
        self.total, self.objective, self.mode, self.label = total, objective, mode, label
        self.keys = keys  # which config keys to show (a grid's varying ones); None: all

    def on_trial_start(self, iteration, trials, trial, **info):
        self._line("started", trial, trials, "RUNNING")

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        if FINAL in result:
            self._line(f"done {self.objective}={result.get(self.objective, float('nan')):.4f}",
                       trial, trials, "TERMINATED")
        else:
            self._line("stopped early", trial, trials, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(f"FAILED ({_reason(trial)})", trial, trials, "ERROR")

    def _line(self, event: str, trial, trials, new_status: str) -> None:
        # Tune calls these hooks before it updates the trial's status: count it as it starts
        # or ends.
        status = {t.trial_id: t.status for t in trials}
        status[trial.trial_id] = new_status
        done = sum(1 for s in status.values() if s == "TERMINATED")
        failed = sum(1 for s in status.values() if s == "ERROR")
        running = sum(1 for s in status.values() if s == "RUNNING")
        finished = [t for t in trials if status[t.trial_id] == "TERMINATED"
                    and FINAL in (t.last_result or {})]
        best = ""
        if finished:
            pick = max if self.mode == "max" else min
            b = pick(finished, key=lambda t: t.last_result[self.objective])
            best = f" | best {self.objective} {b.last_result[self.objective]:.4f} " \
                   f"({describe(b.config, self.keys)})"
        label = f"{self.label} " if self.label else ""
        print(f"[{time.strftime('%H:%M:%S')}] {label}trial {trial.trial_id} {event}: "
              f"{describe(trial.config, self.keys)} | done {done}/{self.total}, running {running}, "
              f"failed {failed}{best}", flush=True)


def _reason(trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()] if path else []
    except OSError:
        lines = []
    if not lines:
        return "see the trial's MLflow run"
    # "fsvae.errors.SplitError: n_f=..." -> "SplitError: n_f=..."
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=\w+: )", "", lines[-1])[:200]
