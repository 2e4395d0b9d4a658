"""The typed plan (study/plan/plan.py): a study.json written by an earlier version (main at
9812abb, checked in as tests/data/study-json-9812abb.json with its paths templated) reads
back as a Plan, and that study resumes; a plan keeps no password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import REPO, cli, make_data, trial_runs
from study.identity.parent import ensure_experiment
from study.plan.plan import Plan

OLD = REPO / "tests" / "data" / "study-json-9812abb.json"


def old_study_json(storage: Path, data: Path, parent: str) -> str:
    import search_spaces

    return (
        OLD.read_text()
        .replace("{STORAGE}", str(storage))
        .replace("{DATA}", str(data))
        .replace("{PARENT}", parent)
        .replace("{SPACES}", str(search_spaces.HERE))
    )


def test_a_study_json_of_an_earlier_version_reads_as_a_plan(tmp_path):
    plan = Plan.from_json(old_study_json(tmp_path / "s", tmp_path / "d", "abc"), "study.json")
    assert (plan.name, plan.preset, plan.sessions, plan.parent_run_id) == ("old", "tiny", 1, "abc")
    assert plan.data_content is None  # not recorded then: the data is compared by path
    assert plan.search_space().num_samples == 1
    assert plan.folder == str(tmp_path / "s" / "old")


def test_a_recorded_plan_keeps_no_password(tmp_path):
    plan = Plan.from_json(old_study_json(tmp_path, tmp_path, "p"), "study.json").replace(
        tracking_uri="postgresql://me:s3cret@db/mlflow",
        optuna_storage="postgresql://me:s3cret@db/optuna",
    )
    text = plan.to_json()
    assert "s3cret" not in text
    assert json.loads(text)["tracking_uri"] == "postgresql://me@db/mlflow"
    assert plan.tracking_uri == "postgresql://me:s3cret@db/mlflow"  # in memory, for use


@pytest.mark.slow
def test_a_study_started_by_an_earlier_version_resumes(tmp_path):
    data = make_data(tmp_path / "data")
    storage = tmp_path / "studies"
    uri = f"sqlite:///{storage / 'mlflow.db'}"
    storage.mkdir()
    client = MlflowClient(uri)
    # Its parent run as that version wrote it: no driver, no plan artifact; interrupted.
    exp = ensure_experiment(client, "old", storage)
    parent = client.create_run(
        exp,
        tags={
            "fsvae.role": "study",
            "fsvae.space_kind": "optuna",
            "fsvae.objective": "val_acc_h",
            "fsvae.mode": "max",
        },
    ).info.run_id
    client.set_terminated(parent, "KILLED")
    (storage / "old").mkdir()
    (storage / "old" / "study.json").write_text(old_study_json(storage, data, parent))
    resumed = cli("resume", "--name", "old", "--storage", str(storage))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "complete; 1 trials finished, 0 failed" in resumed.stdout
    children = trial_runs(uri, "old")
    assert list(children["tags.mlflow.parentRunId"]) == [parent]
    assert Plan.from_json((storage / "old" / "study.json").read_text(), "").sessions == 2
