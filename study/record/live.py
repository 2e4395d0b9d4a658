"""A running trial's record, live: its curve points and its progress (stage, epoch of
epochs, latest loss and validation value) held as they come and sent in one write every
FSVAE_LIVE_S seconds (default 10) from a thread, so that the MLflow UI and `fsvae-study
status` see a trial while it trains (docs/mlflow.md#a-running-trial). A trial shorter than
that sends them with its last write, as before: no write more than a trial's own."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable

from mlflow.entities import Metric, RunTag

from study.errors import StudyError
from study.record.schema import PROGRESS

DEFAULT_LIVE_S = 10.0
DEFAULT_SYSTEM_S = 30.0


def live_seconds() -> float:
    """How often a running trial's record is sent: FSVAE_LIVE_S, else 10 s."""
    raw = os.environ.get("FSVAE_LIVE_S", "").strip()
    if not raw:
        return DEFAULT_LIVE_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise StudyError(
            f"FSVAE_LIVE_S={raw!r}: expected seconds above 0 (how often a running "
            f"trial's curves reach MLflow; default {DEFAULT_LIVE_S:.0f})"
        )
    return value


def system_seconds() -> float:
    """How often a running trial samples its machine (CPU, memory; GPU utilisation and
    memory where there is one) through MLflow's system metrics: FSVAE_SYSTEM_METRICS_S,
    else 30 s; 0 turns it off. A trial shorter than FSVAE_LIVE_S samples nothing."""
    raw = os.environ.get("FSVAE_SYSTEM_METRICS_S", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_SYSTEM_S
    except ValueError:
        value = -1.0
    if value < 0:
        raise StudyError(
            f"FSVAE_SYSTEM_METRICS_S={raw!r}: expected seconds, 0 or more (0: no "
            f"system metrics; default {DEFAULT_SYSTEM_S:.0f})"
        )
    return value


class Live:
    """What a trial has not sent yet, and the thread that sends it. `send(metrics, tags)`
    writes them (TrialRecorder._send); `epochs` is each stage's number of epochs."""

    def __init__(
        self,
        send: Callable[[list, list], None],
        epochs: dict[str, int],
        on_long: Callable[[], None] | None = None,
    ):
        self.send, self.epochs = send, epochs
        self.on_long = on_long  # called once, when the trial has run one interval
        self.interval = live_seconds()
        self.state: dict = {"stage": "starting"}
        self._metrics: list[Metric] = []
        self._tags: list[RunTag] = []
        self._dirty = False  # the progress changed since it was last sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def state_json(self) -> str:
        return json.dumps({**self.state, "at": round(time.time())})

    def add(self, metrics: list[Metric], tags: list[RunTag]) -> int:
        """Holds these for the next write; returns how many metrics are held."""
        with self._lock:
            self._metrics += metrics
            self._tags += tags
            return len(self._metrics)

    def stage(self, name: str) -> None:
        """A stage began (its cache lookup): "data", "split", "backbone", "vae", ..."""
        with self._lock:
            self.state = {"stage": name}
            self._dirty = True

    def epoch(self, event: dict) -> None:
        """An epoch ended: the stage's progress and its latest values."""
        stage = event["stage"]
        loss = next((event[k] for k in ("train_loss", "loss") if k in event), None)
        with self._lock:
            self.state = {
                "stage": stage,
                "epoch": event["epoch"] + 1,
                "epochs": self.epochs.get(stage),
                "loss": loss,
                "val": event.get("val_acc_h"),
            }
            self._dirty = True

    def take(self) -> tuple[list[Metric], list[RunTag]]:
        """What is held, and the progress if it changed, handed over for one write."""
        with self._lock:
            metrics, tags = self._metrics, self._tags
            self._metrics, self._tags = [], []
            if self._dirty:
                tags = [*tags, RunTag(PROGRESS, self.state_json())]
                self._dirty = False
            return metrics, tags

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="live-record")
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread (after a write it is making); what is held stays for the trial's
        last write, which sends the progress as it ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        with self._lock:
            self.state = {**self.state, "stage": "ended"}
            self._dirty = True

    def _run(self) -> None:
        first = True
        while not self._stop.wait(self.interval):
            if first and self.on_long is not None:
                first = False
                try:
                    self.on_long()
                except Exception:  # system metrics are extra: the trial goes on
                    pass
            metrics, tags = self.take()
            if metrics or tags:
                try:
                    self.send(metrics, tags)
                except Exception:  # the store away: the trial's own writes will say so
                    self.add(metrics, [t for t in tags if t.key != PROGRESS])
