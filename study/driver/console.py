"""What a running study shows and records of itself as it goes: on a terminal, a live block
at the bottom of the console (the study's bar and one line per running trial), the event
lines scrolling above it; elsewhere (a log file, CI, nohup) one status line every
`status_every` seconds; and on the parent run, its progress as metrics, stepped by the
trials that ended (docs/studies.md#watching-a-study).

A running trial's stage, epoch and latest values come from its run (the fsvae.progress tag
its worker sends with its curves, study/record/live.py), read every POLL_S seconds: the
same record `fsvae-study status` reads from any machine.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from study.record.read import search
from study.record.schema import NODE, PARENT, PROGRESS, STUDY_PROGRESS, TRIAL_KEY

if TYPE_CHECKING:
    from rich.live import Live

POLL_S = 5.0  # how often the running trials are read back, and the parent's progress sent


@dataclass
class Running:
    """A running trial as its run says: its progress (study/record/live.py), node, start."""

    key: str
    progress: dict = field(default_factory=dict)
    node: str = ""
    start_ms: int = 0


def clock(seconds: float) -> str:
    """'1h02m', '3m05s', '42s'."""
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def trial_line(t: Running, now_ms: float) -> str:
    """'n_f=5#3  vae 40/100  loss 0.1234  val 0.4500  on gpu-1  2m13s'."""
    p = t.progress
    stage = p.get("stage", "starting")
    if p.get("epoch"):
        stage += f" {p['epoch']}/{p.get('epochs') or '?'}"
    values = "".join(
        f"  {k} {p[k]:.4f}"
        for k in ("loss", "val")
        if isinstance(p.get(k), (int, float)) and math.isfinite(p[k])
    )
    node = f"  on {t.node}" if t.node else ""
    return f"{t.key}  {stage}{values}{node}  {clock((now_ms - t.start_ms) / 1000)}"


class Console:
    """The study's running state for the console and the parent run. `held` is the study's
    lease (every write to the parent checks it); `objective`/`mode` the primary one."""

    def __init__(
        self,
        name: str,
        client,
        exp_id: str,
        parent_id: str,
        total: int,
        done: int,
        failed: int,
        concurrency: int,
        objective: str,
        mode: str,
        held,
        status_every: float = 60.0,
        stream=None,
    ):
        self.name, self.client, self.exp_id, self.parent_id = name, client, exp_id, parent_id
        self.total, self.done, self.failed = total, done, failed
        self.concurrency, self.objective, self.mode = max(1, concurrency), objective, mode
        self.held, self.status_every = held, status_every
        self.stream = stream or sys.stdout
        self.terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.best: float | None = None
        self.started: dict[str, float] = {}  # trial key -> when it started (monotonic)
        self.durations: list[float] = []  # of trials finished in this session
        self.running: dict[str, Running] = {}
        self.t0 = time.monotonic()
        self._pending: list = []  # the parent's progress metrics not yet sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="console")
        self._live: Live | None = None

    # -- events, from the driver's Tune callbacks ---------------------------------------

    def trial_started(self, key: str) -> None:
        with self._lock:
            self.started[key] = time.monotonic()
            self.running.setdefault(key, Running(key, start_ms=int(time.time() * 1000)))

    def trial_ended(self, key: str, state: str, value: float | None) -> None:
        """A trial's end as the record has it: finished, failed, stopped or interrupted."""
        from mlflow.entities import Metric

        with self._lock:
            began = self.started.pop(key, None)
            self.running.pop(key, None)
            if state == "interrupted":
                return
            self.done += 1
            self.failed += state == "failed"
            if state == "finished" and began is not None:
                self.durations.append(time.monotonic() - began)
            if state == "finished" and value is not None and math.isfinite(value):
                better = self.best is None or (
                    value > self.best if self.mode == "max" else value < self.best
                )
                self.best = value if better else self.best
            now, step = int(time.time() * 1000), self.done
            values = (self.done - self.failed, self.failed, len(self.started), self.best)
            self._pending += [
                Metric(k, float(v), now, step)
                for k, v in zip(STUDY_PROGRESS, values)
                if v is not None
            ]

    # -- what is shown --------------------------------------------------------------------

    def eta(self) -> float | None:
        """Seconds left: the trials still to end, at the finished ones' mean duration, so
        many at once; None before one has finished."""
        if not self.durations:
            return None
        left = max(0, self.total - self.done)
        return math.ceil(left / self.concurrency) * (sum(self.durations) / len(self.durations))

    def bar(self) -> str:
        """'study demo: 12/60 ended (1 failed), 4 running | 10m02s | about 35m left'."""
        eta = self.eta()
        left = f"about {clock(eta)} left" if eta is not None else "time left: after a trial"
        best = f" | best {self.objective} {self.best:.4f}" if self.best is not None else ""
        return (
            f"study {self.name}: {self.done}/{self.total} ended ({self.failed} failed), "
            f"{len(self.started)} running | {clock(time.monotonic() - self.t0)} | "
            f"{left}{best}"
        )

    def lines(self) -> list[str]:
        now = time.time() * 1000
        with self._lock:
            trials = [self.running[k] for k in sorted(self.running)]
        return [self.bar(), *(f"  {trial_line(t, now)}" for t in trials)]

    def __rich__(self):
        from rich.text import Text

        return Text("\n".join(self.lines()))

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        if self.terminal:
            from rich.console import Console as RichConsole
            from rich.live import Live

            self._live = Live(
                self,
                console=RichConsole(file=self.stream),
                refresh_per_second=2,
                redirect_stdout=True,
                redirect_stderr=False,
                transient=True,
            )
            self._live.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        if self._live is not None:
            self._live.stop()
            self._live = None
        try:
            self._send()
        except Exception:  # the store away: the progress curve misses its last points
            pass

    def _loop(self) -> None:
        last_line = time.monotonic()
        while not self._stop.wait(POLL_S):
            try:
                self._poll()
                self._send()
            except Exception:  # the store away for a while: the next round tries again
                pass
            if not self.terminal and time.monotonic() - last_line >= self.status_every:
                last_line = time.monotonic()
                print(
                    f"[{time.strftime('%H:%M:%S')}] " + "\n  ".join(self.lines()),
                    file=self.stream,
                    flush=True,
                )

    def _poll(self) -> None:
        """The running trials' progress, node and start, from their runs."""
        runs = search(
            self.client,
            self.exp_id,
            f"tags.`{PARENT}` = '{self.parent_id}' and attributes.status = 'RUNNING'",
        )
        seen = {}
        for run in runs:
            key = run.data.tags.get(TRIAL_KEY)
            if key is None:
                continue
            try:
                progress = json.loads(run.data.tags.get(PROGRESS, "{}"))
            except ValueError:
                progress = {}
            seen[key] = Running(
                key, progress, run.data.tags.get(NODE, ""), run.info.start_time or 0
            )
        with self._lock:
            for key in self.running:
                if key in seen:
                    self.running[key] = seen[key]

    def _send(self) -> None:
        """The parent's progress metrics, if the study is still this driver's."""
        with self._lock:
            pending, self._pending = self._pending, []
        try:
            if pending and self.held.holds():
                self.client.log_batch(self.parent_id, metrics=pending)
        except Exception:
            with self._lock:
                self._pending = pending + self._pending  # sent with the next round
            raise
