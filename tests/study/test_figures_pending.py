"""Pending figures drawn by the driver from a run's JSON artifacts (study/figures/late.py
draw_pending), in its own process and in child processes, on a real SQLite store: every
run gets its three PNGs and loses its pending tag; a run whose artifacts are missing says
so in the tag and the others still get theirs. And a worker process that ends normally
draws what it has queued before it exits, leaving nothing pending for the driver."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow.tracking import MlflowClient

from helpers import SyntheticStudy, python
from study.figures import late as late_figures
from study.record import read as record
from study.record.schema import FIGURES

PNGS = {"figures/curves.png", "figures/confusion_val.png", "figures/confusion_test.png"}


def pending_runs(tmp_path, n: int) -> tuple[MlflowClient, list]:
    study = SyntheticStudy(tmp_path, "late", vae_epochs=2, classifier_epochs=2)
    for i in range(n):
        study.trial(f"#{i}")  # FINISHED; its worker never drew its figures
    entries = list(record.read(study.client, study.exp, study.parent).values())
    assert [e.tags.get(FIGURES) for e in entries] == ["pending"] * n
    return study.client, entries


def assert_drawn(client, entries) -> None:
    for e in entries:
        assert {a.path for a in client.list_artifacts(e.run_id, "figures")} == PNGS
        assert FIGURES not in client.get_run(e.run_id).data.tags
        assert FIGURES not in e.tags


def test_pending_figures_are_drawn_in_the_drivers_process(tmp_path):
    client, entries = pending_runs(tmp_path, 3)
    assert late_figures.draw_pending(client, entries) == 3
    assert_drawn(client, entries)
    assert late_figures.draw_pending(client, entries) == 0  # nothing left pending


def test_many_pending_figures_are_drawn_by_child_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(late_figures, "PER_CHILD", 2)  # 4 runs: two children
    client, entries = pending_runs(tmp_path, 4)
    assert late_figures.draw_pending(client, entries) == 4
    assert_drawn(client, entries)


def test_a_run_without_its_json_artifacts_says_so_and_the_rest_are_drawn(tmp_path):
    client, entries = pending_runs(tmp_path, 2)
    broken = entries[0]
    folder = Path(urlparse(client.get_run(broken.run_id).info.artifact_uri).path)
    (folder / "history.json").unlink()
    assert late_figures.draw_pending(client, entries) == 1
    tag = client.get_run(broken.run_id).data.tags[FIGURES]
    assert tag.startswith("failed: its JSON artifacts could not be read"), tag
    assert_drawn(client, entries[1:])


# A trial worker's part, alone: each run's figures queued on the process's drawing thread
# (as the trainable does after a trial), and then the process ends at once.
_QUEUE_AND_EXIT = """
import sys, tempfile
from pathlib import Path
from mlflow.tracking import MlflowClient
from study.figures import late

client = MlflowClient(sys.argv[1])
for run_id in sys.argv[2:]:
    inputs = late._inputs_from_artifacts(client, run_id, Path(tempfile.mkdtemp()))
    late.Drawer.of_this_process().submit(client, run_id, inputs)
"""


@pytest.mark.slow
def test_a_worker_that_ends_draws_its_queued_figures_first(tmp_path):
    client, entries = pending_runs(tmp_path, 3)
    done = python(_QUEUE_AND_EXIT, client.tracking_uri, *[e.run_id for e in entries])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for e in entries:
        e.tags = client.get_run(e.run_id).data.tags
    assert_drawn(client, entries)
