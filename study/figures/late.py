"""A trial's PNG figures (study/figures/trial_png.py), drawn after its run is FINISHED and
its result reported, so that drawing and uploading them (~0.1 s of CPU here) is not part of the
trial's slot (bench/README.md has the breakdown).

The record's rule holds: a trial's run holds its params, metrics, tags, dataset input and
JSON artifacts (metrics, confusion, history, model part) and is FINISHED before Tune or
Optuna hear its result; only the PNGs come later. Until they are in the run's artifacts
(figures/), the run carries the tag fsvae.figures = "pending" (set in the same write as its
final metrics); it is removed once they are uploaded, or says why they could not be drawn.

Who draws them: a thread of the trial's worker process, which Tune reuses for the next
trial (Tuner reuse_actors), so the drawing overlaps the next trial's work. A worker process
that Tune stops finishes its queue as it exits (DRAIN_S at most). One that dies, is killed
or cannot finish in time leaves the runs still queued pending: the study's driver draws
those from the run's JSON artifacts when its session ends (once its Ray is down, so nothing
else can be drawing them; several at once on a machine with several cores), and so does the
next session after a driver that died.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from study.figures.trial_png import trial_figures
from study.hooks import faults
from study.record.schema import FIGURES
from study.secrets import redact_text

PENDING = "pending"
PER_CHILD = 8  # pending runs per child process at the end, at least (one takes ~2 s to start)
DRAIN_S = 20.0  # how long a worker process that is ending waits for its queued figures
FOLDER = "figures"  # the artifacts' folder in the run


def figure_inputs(result: dict) -> dict:
    """What trial_figures reads of run_trial's result, and nothing else (the queue holds
    it while the next trial runs)."""
    return {
        k: result[k] for k in ("metrics", "history", "confusion", "classes", "minority_classes")
    }


def draw_and_upload(client, run_id: str, inputs: dict) -> None:
    """The run's figures into its artifacts, then its pending tag removed; if they cannot be
    drawn, the tag says why (the trial's result stands)."""
    folder = Path(tempfile.mkdtemp(prefix=f"fsvae-figures-{run_id[:8]}-"))
    try:
        try:
            trial_figures(inputs, folder)
        except Exception as e:  # a figure is not worth the trial: say so in the run
            client.set_tag(run_id, FIGURES, f"failed: {type(e).__name__}: {e}"[:4000])
            return
        faults.pause("figures_upload", key=run_id)
        client.log_artifacts(run_id, str(folder), FOLDER)
        client.delete_tag(run_id, FIGURES)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Drawer:
    """One per worker process: a daemon thread drawing queued trials' figures in order."""

    _instance: Drawer | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        self.todo: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="fsvae-figures", daemon=True)
        self.thread.start()
        # A process that ends normally (Tune stops its trial actors once their last trial is
        # done) first finishes what is queued, rather than leaving the last trial's figures
        # to the driver and its half-drawn folder behind.
        atexit.register(self._drain)

    @classmethod
    def of_this_process(cls) -> Drawer:
        with cls._guard:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def submit(self, client, run_id: str, result: dict) -> None:
        self.todo.put((client, run_id, figure_inputs(result)))

    def wait(self, timeout: float | None = None) -> bool:
        """True once everything submitted so far is drawn (for callers that must not return
        before, e.g. a trial run outside Ray)."""
        done = threading.Event()
        self.todo.put((None, None, done))
        return done.wait(timeout)

    def _drain(self) -> None:
        if self.thread.is_alive():
            self.wait(DRAIN_S)

    def _loop(self) -> None:
        _yield_cpu()
        while True:
            client, run_id, inputs = self.todo.get()
            if client is None:
                inputs.set()
                continue
            try:
                draw_and_upload(client, run_id, inputs)
            except Exception as e:  # MLflow away: the run stays pending, for the driver
                print(
                    f"figures of run {run_id[:8]} left for the study's end "
                    f"({type(e).__name__}: {redact_text(str(e))})",
                    flush=True,
                )


def _yield_cpu() -> None:
    """This thread (alone: Linux keeps a niceness per thread) at the lowest CPU priority, so
    that on a machine whose cores are busy the trials come first and the figures take what
    is left; on a GPU node, whose trials leave cores idle, it changes nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux: the thread keeps its process's priority
        pass


def draw_pending(client, entries) -> int:
    """The figures of every FINISHED run still pending (its worker process ended first),
    drawn from its JSON artifacts; when there are many, in child processes, one per core
    (the session is over: its cores are free). Returns how many runs got them."""
    todo = [e for e in entries if e.status == "FINISHED" and e.tags.get(FIGURES) == PENDING]
    workers = min(os.cpu_count() or 1, len(todo) // PER_CHILD)
    if workers > 1:
        # `python -m study.figures.late RUN_ID...`, the store's URI in the environment (a
        # password in it stays out of the process list)
        environ = {**os.environ, "MLFLOW_TRACKING_URI": client.tracking_uri}
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "study.figures.late", *[e.run_id for e in todo[i::workers]]],
                env=environ,
            )
            for i in range(workers)
        ]
        for child in children:
            child.wait()
        done = [FIGURES not in client.get_run(e.run_id).data.tags for e in todo]
    else:
        done = [_draw_one(client, e.run_id) for e in todo]
    for entry, ok in zip(todo, done):
        if ok:
            entry.tags.pop(FIGURES, None)
    return sum(done)


def _draw_one(client, run_id: str) -> bool:
    """One pending run's figures; False (and the run left pending, or tagged with why)
    when they could not be made: figures are never worth failing a study's end for."""
    try:
        with tempfile.TemporaryDirectory(prefix="fsvae-figures-") as tmp:
            try:
                inputs = _inputs_from_artifacts(client, run_id, Path(tmp))
            except Exception as e:  # its artifacts are not all there: say so, go on
                client.set_tag(
                    run_id,
                    FIGURES,
                    f"failed: its JSON artifacts could not be read ({redact_text(str(e))})"[:4000],
                )
                return False
        draw_and_upload(client, run_id, inputs)
        return True
    except Exception as e:  # the store away: the run stays pending for the next session
        print(
            f"figures of run {run_id[:8]} left pending ({type(e).__name__}: {redact_text(str(e))})",
            flush=True,
        )
        return False


def _inputs_from_artifacts(client, run_id: str, tmp: Path) -> dict:
    # no progress bar per file on the study's console
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    def load(path: str):
        return json.loads(Path(client.download_artifacts(run_id, path, str(tmp))).read_text())

    spec = load("model/model.json")
    return {
        "metrics": load("metrics.json"),
        "history": load("history.json"),
        "confusion": load("confusion.json"),
        "classes": spec["classes"],
        "minority_classes": spec["minority_classes"],
    }


if __name__ == "__main__":  # draw_pending's child: the runs named, on MLFLOW_TRACKING_URI
    from mlflow.tracking import MlflowClient

    store = MlflowClient()
    for pending in sys.argv[1:]:
        _draw_one(store, pending)
