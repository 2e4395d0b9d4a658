"""A trial's PNG figures come after its run is FINISHED and its result reported
(study/figures/late.py), from a thread of its worker process. They are not lost when that
process or the study's driver is killed with them still to upload: the driver draws what is
pending from the run's JSON artifacts at the end of its session (or of the next one).
Kills land at a named point (study/hooks/faults.py "figures_upload"), in real processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import (
    FAST,
    GRID4,
    cli,
    kill_driver,
    make_data,
    pause_env,
    paused,
    release,
    release_new,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow

PNGS = {"figures/curves.png", "figures/confusion_val.png", "figures/confusion_test.png"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("late-figures")
    (tmp / "grid4.yaml").write_text(GRID4)
    return {"tmp": tmp, "data": make_data(tmp / "data")}


def grid(base, storage: Path, name: str) -> list[str]:
    return [
        "run",
        "--space",
        str(base["tmp"] / "grid4.yaml"),
        "--data",
        str(base["data"]),
        "--storage",
        str(storage),
        "--name",
        name,
        "--max-concurrent",
        "2",
        *FAST,
    ]


def assert_every_run_has_its_figures(storage: Path, name: str) -> None:
    uri = tracking_uri(storage)
    children = trial_runs(uri, name)
    assert len(children) == 4 and set(children["status"]) == {"FINISHED"}
    client = MlflowClient(uri)
    for run_id in children["run_id"]:
        names = {a.path for a in client.list_artifacts(run_id, "figures")}
        assert names == PNGS, (run_id, names)
        assert "fsvae.figures" not in client.get_run(run_id).data.tags
        png = Path(client.download_artifacts(run_id, "figures/curves.png"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing else came with them: the trial's JSON artifacts are as they were
    some = children["run_id"].iloc[0]
    top = {a.path for a in client.list_artifacts(some)}
    assert {"metrics.json", "history.json", "confusion.json", "model"} <= top


def test_a_worker_killed_before_uploading_figures_leaves_them_to_the_driver(base, tmp_path):
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    proc = start_cli(
        *grid(base, storage, "w"),
        log=log,
        environ=pause_env(pauses, "trial_start", "figures_upload"),
    )
    started: set[Path] = set()

    def a_worker_about_to_upload():
        # The first two trials go; the other two wait at their start (in the same, reused
        # worker processes) until a worker's drawing thread is about to upload.
        for record in paused(pauses, "trial_start")[:2]:
            if record["file"] not in started:
                release(record)
                started.add(record["file"])
        return [r for r in paused(pauses, "figures_upload") if r["pid"] != proc.pid]

    first = wait_until(
        a_worker_about_to_upload, 400, "a worker about to upload figures", proc, log
    )[0]
    os.kill(first["pid"], signal.SIGKILL)  # its run is FINISHED, its PNGs not uploaded
    seen = {first["file"]}

    def release_the_rest():
        release_new(pauses, "trial_start", started)
        release_new(pauses, "figures_upload", seen)
        return proc.poll() is not None

    wait_until(release_the_rest, 600, "the study to end", None, log)
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    assert "complete; 4 trials finished" in out
    assert "figures drawn for" in out, out[-3000:]
    assert_every_run_has_its_figures(storage, "w")


def test_a_driver_killed_with_figures_pending_has_them_drawn_on_resume(base, tmp_path):
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    proc = start_cli(
        *grid(base, storage, "d"), log=log, environ=pause_env(pauses, "figures_upload")
    )
    try:
        wait_until(
            lambda: paused(pauses, "figures_upload"),
            400,
            "a worker about to upload figures",
            proc,
            log,
        )
    finally:
        kill_driver(proc)
    client = MlflowClient(tracking_uri(storage))
    before = trial_runs(tracking_uri(storage), "d")
    tagged = (
        before[before["tags.fsvae.figures"] == "pending"]
        if "tags.fsvae.figures" in before
        else before.iloc[:0]
    )
    # FINISHED: the run paused before its upload, at least. A trial killed while it wrote
    # its last batch carries the tag too, still RUNNING: resume closes it and runs it again.
    pending = tagged[tagged["status"] == "FINISHED"]
    assert len(pending) >= 1 and set(tagged["status"]) <= {"FINISHED", "RUNNING"}
    for run_id in pending["run_id"]:
        assert not client.list_artifacts(run_id, "figures")

    resumed = cli("resume", "--name", "d", "--storage", str(storage), timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    assert "figures drawn for" in resumed.stdout
    assert_every_run_has_its_figures(storage, "d")
    # the trials whose figures were pending were not computed again
    assert set(pending["run_id"]) <= set(trial_runs(tracking_uri(storage), "d")["run_id"])
