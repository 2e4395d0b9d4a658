"""`fsvae-study run --log-model`: the flag is planned and kept for resume, refused without
the stage cache, and a complete study (the shipped smoke grid, on local Ray with a SQLite
MLflow store) ends with its best trial's model logged to its parent run."""

from __future__ import annotations

import pytest

from helpers import FAST, cli, make_data, runs, tracking_uri
from study.errors import StudyError
from study.plan import plan as plan_mod
from study.plan.making import make_plan
from study.record.schema import BEST_MODEL, BEST_MODEL_RUN


def test_log_model_is_kept_in_study_json_for_resume(demo_root, tmp_path):
    plan = make_plan("smoke", str(demo_root), storage=str(tmp_path), log_model=True)
    plan_mod.write(plan)
    assert plan_mod.read(plan.storage, "smoke").log_model is True


def test_log_model_without_the_stage_cache_is_refused_before_anything_starts(demo_root, tmp_path):
    with pytest.raises(StudyError, match="--log-model needs the stage cache"):
        make_plan("smoke", str(demo_root), storage=str(tmp_path), log_model=True, no_cache=True)
    assert not (tmp_path / "smoke").exists()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("log-model")
    data = make_data(tmp / "data")
    storage = tmp / "studies"
    proc = cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "m",
        "--log-model",
        *FAST,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"proc": proc, "uri": tracking_uri(storage), "data": data}


def parent_run(study):
    df = runs(study["uri"], "m")
    return df[df["tags.fsvae.role"] == "study"].iloc[0], df[df["tags.fsvae.role"] == "trial"]


@pytest.mark.slow
def test_a_complete_study_logs_its_best_trials_model_to_its_parent_run(study):
    parent, trials = parent_run(study)
    best = trials.loc[trials["metrics.val_acc_h"].idxmax()]
    assert parent["status"] == "FINISHED"
    assert parent[f"tags.{BEST_MODEL_RUN}"] == best["run_id"]
    assert f"best model: {parent[f'tags.{BEST_MODEL}']}" in study["proc"].stdout


@pytest.mark.slow
def test_predict_classifies_images_with_the_studys_model(study):
    parent, _ = parent_run(study)
    rock = study["data"] / "dataset" / "rock"
    done = cli(
        "predict",
        "--model",
        parent["run_id"],
        "--images",
        str(rock),
        "--tracking-uri",
        study["uri"],
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.strip().splitlines()]
    classes = {p.name for p in (study["data"] / "dataset").iterdir()}
    assert [r[0] for r in rows] == sorted(str(p) for p in rock.iterdir())
    assert {r[1] for r in rows} <= classes
