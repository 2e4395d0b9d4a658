"""One console line per trial event (started, done, failed, stopped early, retried), with
done / running / failed counts and the best objective so far, instead of Ray's tables.
Counts start from what earlier sessions of the study finished.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from ray import tune

from fsvae.config import RESAMPLING_METHODS, short
from study.driver.trainable import handed
from study.record.read import best_of, short_key


def describe(point: dict, keys: list[str] | None = None) -> str:
    """A trial's point in the space, shortly: "vae x30 n_f=5 seed=1"."""
    point = dict(point)
    if keys is not None:
        point = {k: v for k, v in point.items() if k in keys}
    method = point.pop("method", None)
    sf = point.pop("sampling_factor", None)
    if method and method not in RESAMPLING_METHODS:
        sf = None  # fixed for every trial by --set, but this method does not use it
    head = f"{method} x{sf}" if method and sf else (method or (f"x{sf}" if sf else ""))
    rest = " ".join(f"{k}={short(v)}" for k, v in point.items())
    return (head + " " + rest).strip()


def failure(trial) -> tuple[str, str, BaseException | None]:
    """(kind, text, exception) of a Tune trial's last failure: kind is "node" (its node was
    lost), "process" (its worker process died), "storage" (its node cannot see the shared
    storage) or "error" (an exception outside the trial's own code, e.g. MLflow)."""
    exc = _last_error(trial)
    import ray.exceptions as rex

    from study.driver.cluster import SharedStorageError

    text = str(exc) if exc is not None else _error_file_tail(trial)
    cause = getattr(exc, "cause", None)
    if isinstance(cause, SharedStorageError):
        return "storage", str(cause), cause
    if isinstance(exc, rex.RayActorError) or isinstance(exc, rex.NodeDiedError):
        low = text.lower()
        if (
            isinstance(exc, rex.ActorUnavailableError)
            or getattr(exc, "preempted", False)
            or re.search(r"node (has )?died|node .*(dead|terminated|removed|lost)", low)
        ):
            return "node", "node lost", exc
        return "process", "its worker process died", exc
    if cause is not None:
        return "error", f"{type(cause).__name__}: {str(cause).strip()[:200]}", cause
    return "error", _short_reason(text), exc


def _last_error(trial) -> BaseException | None:
    path = getattr(trial, "pickled_error_file", None)
    if not path or not Path(path).is_file():
        return None
    try:
        import cloudpickle

        with open(path, "rb") as f:
            return cloudpickle.load(f)
    except Exception:  # an error we cannot unpickle: the text file still says what it was
        return None


def _error_file_tail(trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()] if path else []
    except OSError:
        lines = []
    return lines[-1] if lines else "see the trial's MLflow run"


def _short_reason(text: str) -> str:
    """ "fsvae.errors.SplitError: n_f=..." -> "SplitError: n_f=..."."""
    last = [ln for ln in text.splitlines() if ln.strip()]
    line = last[-1] if last else text
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=\w+: )", "", line)[:200]


class Progress(tune.Callback):
    """The console. `prior` counts what earlier sessions finished: {"done", "failed",
    "best": (value, key, start, point) or None}; `ends` (study/outcomes.Ends) says how each trial of
    this session ended, as the record has it. `on_retry(trial, kind, text)` lets the study
    act on an infrastructure failure. With several objectives there is no single best: the
    line shows the size of this session's Pareto front instead."""

    def __init__(
        self,
        total: int,
        objectives: list[str],
        modes: list[str],
        ends,
        label: str = "",
        keys: list[str] | None = None,
        prior: dict | None = None,
        retries: int = 0,
        on_retry: Callable | None = None,
        console=None,
    ):
        self.total, self.objectives, self.modes, self.label = total, objectives, modes, label
        self.objective, self.mode = objectives[0], modes[0]
        self.ends = ends
        self.keys = keys  # which config keys to show (a grid's varying ones); None: all
        self.prior = prior or {"done": 0, "failed": 0, "best": None}
        self.retries, self.on_retry = retries, on_retry
        self.console = console  # study/driver/console.py: the live block and the parent's
        # trial id -> (its key, when it started (ms), its point): for the best's tie rule
        # (study.record.read.best_of) and its label
        self.started: dict[str, tuple[str, float, dict]] = {}

    def __getstate__(self) -> dict:
        return {}  # Tune pickles its callbacks; this one is never restored from there

    def on_trial_start(self, iteration, trials, trial, **info):
        given = handed(trial.config)
        self.started[trial.trial_id] = (given["key"], time.time() * 1000, given["point"])
        if self.console is not None:
            self.console.trial_started(given["key"])
        self._line("started", trial, trials, "RUNNING")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial, trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial, trials)

    def _ended(self, trial, trials) -> None:
        outcome = self.ends.outcomes.get(trial.trial_id)
        state = outcome.state if outcome is not None else "interrupted"
        if self.console is not None:
            value = outcome.values[0] if outcome is not None and outcome.values else None
            self.console.trial_ended(handed(trial.config)["key"], state, value)
        if state == "finished":
            values = ", ".join(f"{o}={v:.4f}" for o, v in zip(self.objectives, outcome.values))
            event = f"done {values}" + (f" ({outcome.text})" if outcome.text else "")
        elif state == "failed":
            attempts = trial.run_metadata.num_failures
            after = (
                f" after {attempts} attempt{'s' * (attempts != 1)}"
                if trial.status == "ERROR" or attempts
                else ""
            )
            event = f"FAILED{after} ({_short_reason(outcome.text)})"
        else:
            event = "stopped early" if state == "stopped" else "interrupted"
        self._line(event, trial, trials, "ENDED")

    def on_trial_recover(self, iteration, trials, trial, **info):
        kind, text, _ = failure(trial)
        attempt = trial.run_metadata.num_failures + 1
        where = " on another node: " if kind == "node" else ": "
        self._line(
            f"retrying{where}{text} (attempt {attempt} of {self.retries + 1})",
            trial,
            trials,
            "PENDING",
        )
        if self.on_retry is not None:
            self.on_retry(trial, kind, text)

    def _line(self, event: str, trial, trials, new_status: str) -> None:
        # Tune calls these hooks before it updates the trial's status: count it as it starts
        # or ends. Ended trials are counted as the record has them (Ends.outcomes).
        status = {t.trial_id: t.status for t in trials}
        status[trial.trial_id] = new_status
        running = sum(1 for s in status.values() if s == "RUNNING")
        outcomes = self.ends.outcomes
        ended = [o for o in outcomes.values() if o.state in ("finished", "failed", "stopped")]
        failed = sum(o.state == "failed" for o in ended)
        finished = {tid: o for tid, o in outcomes.items() if o.state == "finished"}
        best = self._front(list(finished.values())) if len(self.objectives) > 1 else ""
        candidates = (
            []
            if best
            else [
                (o.values[0], *self.started.get(tid, ("", 0.0, {}))) for tid, o in finished.items()
            ]
        )
        if self.prior["best"] is not None:
            candidates.append(self.prior["best"])
        found = best_of(candidates, self.mode)  # None: no candidates
        if found is not None:
            value, _, _, point = found
            best = f" | best {self.objective} {value:.4f} ({describe(point, self.keys)})"
        label = f"{self.label} " if self.label else ""
        done = self.prior["done"] + len(ended)
        point = describe(handed(trial.config)["point"], self.keys)
        key = short_key(handed(trial.config)["key"])
        print(
            f"[{time.strftime('%H:%M:%S')}] {label}trial {key} {event}: {point} "
            f"| done {done}/{self.total}, running {running}, "
            f"failed {self.prior['failed'] + failed}{best}",
            flush=True,
        )

    def _front(self, finished: list) -> str:
        """' | Pareto front: k of this session's n finished trials' (on the objectives)."""
        signs = [1 if m == "max" else -1 for m in self.modes]
        points = [[s * v for s, v in zip(signs, o.values)] for o in finished]
        front = [
            p
            for p in points
            if not any(all(q_i >= p_i for q_i, p_i in zip(q, p)) and q != p for q in points)
        ]
        return (
            f" | Pareto front: {len(front)} of this session's {len(points)} finished"
            if points
            else ""
        )
