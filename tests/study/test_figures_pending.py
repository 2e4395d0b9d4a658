"""Pending figures drawn by the driver from a run's JSON artifacts (study/figures/late.py
draw_pending), in its own process and in child processes, on a real SQLite store: every
run gets its three PNGs and loses its pending tag; a run whose artifacts are missing says
so in the tag and the others still get theirs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from mlflow.tracking import MlflowClient

from helpers import SyntheticStudy
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
