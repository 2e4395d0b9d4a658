"""study.model.best and `fsvae-study predict`: the best trial of a study recorded in a real
SQLite MLflow store (the session's three tiny trials, as a study's trials record them),
logged as one MLflow model, loaded elsewhere, and used on image files."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

from fsvae import config as config_mod
from fsvae import metrics, split
from helpers import TINY, cli, env, write_image
from study.errors import StudyError
from study.identity.parent import ensure_experiment
from study.model import best as model_log
from study.plan.plan import Plan
from study.record import write as records
from study.record.schema import BEST_MODEL, BEST_MODEL_RUN, ROLE

# The objective's value per trial, set here so that the best trial is known: vae.
SCORES = {"plain": 0.5, "oversample": 0.7, "vae": 0.9}
OBJECTIVE = "val_score"


def record_study(client, uri: str, exp: str, trials: dict, scores: dict) -> dict:
    """A parent run and one FINISHED child run per trial, recorded as a study's trials are
    (TrialRecorder: params, cache tags, metrics, the out_dir as artifacts), plus a FAILED
    trial whose objective beats them all. Returns {"parent", method: run id, "failed"}."""
    parent = client.create_run(
        exp, tags={ROLE: "study", "fsvae.objective": OBJECTIVE, "fsvae.mode": "max"}
    ).info.run_id
    client.log_param(parent, "preset", "tiny")
    ids = {"parent": parent}
    for method, score in scores.items():
        result, out = trials[method]
        rec = records.TrialRecorder(uri, exp, parent, f"grid:{method}", method)
        ids[method] = rec.start(config_mod.active_config(result["config"]))
        for stage, info in result["cache"].items():
            rec.progress({"stage": "cache", "name": stage, "key": info["key"], "hit": info["hit"]})
        client.log_metric(ids[method], OBJECTIVE, score)
        rec.finish(result, out)
    rec = records.TrialRecorder(uri, exp, parent, "grid:failed", "failed")
    ids["failed"] = rec.start({"method": "vae"})
    client.log_metric(ids["failed"], OBJECTIVE, 1.0)
    rec.fail(RuntimeError("a NaN loss"), None)
    client.set_terminated(parent, "FINISHED")
    return ids


@pytest.fixture(scope="module")
def study(trials, stage_cache, tmp_path_factory):
    """A recorded study and its best model logged: {"uri", "client", "exp", "ids",
    "model_uri", "storage"}."""
    storage = tmp_path_factory.mktemp("best-model")
    uri = f"sqlite:///{storage / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = ensure_experiment(client, "best", storage)
    ids = record_study(client, uri, exp, trials, SCORES)
    model_uri = model_log.log_best_model(
        client, exp, ids["parent"], str(stage_cache.root), OBJECTIVE, "max"
    )
    return {
        "uri": uri,
        "client": client,
        "exp": exp,
        "ids": ids,
        "model_uri": model_uri,
        "storage": storage,
    }


@pytest.fixture
def tracking(study):
    """MLflow's fluent API (models:/ URIs, the registry) pointed at the study's store."""
    import mlflow

    mlflow.set_tracking_uri(study["uri"])
    yield mlflow
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def images(demo_ds, demo_root, tmp_path_factory):
    """A folder of generated images to classify: the vae trial's test images (so that the
    trial's predictions are known), in subfolders, and one truncated file."""
    folder = tmp_path_factory.mktemp("images")
    rows = split.gfsl_split(demo_ds, TINY["n_f"], 5, 0).test
    for i in rows[:20].tolist():
        dest = folder / demo_ds.paths[i].replace("dataset/", "")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo_root / demo_ds.paths[i], dest)
    whole = write_image(tmp_path_factory.mktemp("src") / "whole.jpg", seed=5, size=24)
    (folder / "cut.jpg").write_bytes(whole.read_bytes()[:150])
    return folder


# -- the best trial, logged ------------------------------------------------------------------


def test_the_best_trial_is_the_finished_run_with_the_highest_objective(study):
    best = model_log.best_trial(
        study["client"], study["exp"], study["ids"]["parent"], OBJECTIVE, "max"
    )
    assert best.run_id == study["ids"]["vae"]  # the FAILED run's 1.0 does not count


def test_with_mode_min_the_best_trial_is_the_lowest(study):
    best = model_log.best_trial(
        study["client"], study["exp"], study["ids"]["parent"], OBJECTIVE, "min"
    )
    assert best.run_id == study["ids"]["plain"]


def test_the_model_is_logged_to_the_parent_run_whose_status_stays(study):
    client, parent = study["client"], study["ids"]["parent"]
    model = client.get_logged_model(study["model_uri"].removeprefix("models:/"))
    assert model.source_run_id == parent and model.name == "best_model"
    assert client.get_run(parent).info.status == "FINISHED"


def test_the_parent_and_the_best_trial_run_are_tagged_with_the_model(study):
    tags = study["client"].get_run(study["ids"]["parent"]).data.tags
    assert tags[BEST_MODEL] == study["model_uri"]
    assert tags[BEST_MODEL_RUN] == study["ids"]["vae"]
    assert study["client"].get_run(study["ids"]["vae"]).data.tags[BEST_MODEL] == study["model_uri"]


def test_the_model_records_its_class_names_input_size_and_trial(study, trials, tracking):
    meta = tracking.models.get_model_info(study["model_uri"]).metadata
    assert meta["classes"] == trials["vae"][0]["classes"]
    assert (meta["load_size"], meta["method"]) == (18, "vae")
    assert meta["trial_run_id"] == study["ids"]["vae"]
    assert (meta["objective"], meta["objective_value"]) == (OBJECTIVE, SCORES["vae"])


def test_the_loaded_model_reproduces_the_best_trials_test_confusion(study, trials, demo_ds):
    model = model_log.load_model(study["ids"]["parent"], study["uri"])
    rows = split.gfsl_split(demo_ds, TINY["n_f"], 5, 0)
    with torch.no_grad():
        preds = model(demo_ds.images[rows.test]).argmax(1)
    cm = metrics.compute(demo_ds.labels[rows.test], preds, rows.minority, demo_ds.classes)[1]
    assert cm == trials["vae"][0]["confusion"]["test"]


LOAD_ELSEWHERE = """
import json, sys, mlflow, numpy as np
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
probs = model.predict(np.zeros((2, 3, 18, 18), dtype=np.uint8))
import fsvae
print(json.dumps({"columns": list(probs.columns), "sums": probs.sum(axis=1).tolist(),
                  "fsvae": fsvae.__file__}))
"""


def test_the_model_loads_in_a_fresh_process_from_the_fsvae_code_it_ships(study, trials, tmp_path):
    environ = {k: v for k, v in env().items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_ELSEWHERE, study["uri"], study["model_uri"]],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["columns"] == trials["vae"][0]["classes"]
    assert out["sums"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert "/code/fsvae/" in out["fsvae"]  # not this checkout: the model's own copy


def test_a_study_without_a_stage_cache_is_refused_with_the_reason(study):
    with pytest.raises(StudyError, match="--no-cache"):
        model_log.log_best_model(
            study["client"], study["exp"], study["ids"]["parent"], None, OBJECTIVE, "max"
        )


def test_a_missing_cache_entry_names_it_and_the_trial_command_that_rebuilds_it(study, tmp_path):
    with pytest.raises(StudyError) as err:
        model_log.log_best_model(
            study["client"],
            study["exp"],
            study["ids"]["parent"],
            str(tmp_path / "empty"),
            OBJECTIVE,
            "max",
        )
    text = str(err.value)
    assert "backbone entry" in text and "is not in the stage cache" in text
    command = shlex.split(text[text.index("fsvae-study trial") :])
    assert command[command.index("--cache-dir") + 1] == str(tmp_path / "empty")
    assert command[command.index("--preset") + 1] == "tiny"
    assert "image_size=16" in command and "backbone=resnet18" not in command  # tiny's own


@pytest.mark.slow
def test_the_rebuild_command_rebuilds_what_the_model_needs(study, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(StudyError) as err:
        model_log.log_best_model(
            study["client"], study["exp"], study["ids"]["parent"], str(cache), OBJECTIVE, "max"
        )
    text = str(err.value)
    command = shlex.split(text[text.index("fsvae-study trial") :])
    done = cli(*command[1:], "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    uri = model_log.log_best_model(
        study["client"], study["exp"], study["ids"]["parent"], str(cache), OBJECTIVE, "max"
    )
    assert uri.startswith("models:/")


def test_log_best_of_experiment_reads_objective_mode_and_cache_from_the_study(
    trials, stage_cache, tmp_path
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = ensure_experiment(client, "other", tmp_path)
    ids = record_study(client, uri, exp, trials, {"plain": 0.8, "vae": 0.2})
    client.set_tag(ids["parent"], "fsvae.storage", str(tmp_path))
    plan = Plan(
        name="other",
        storage=str(tmp_path),
        space={},
        space_path="",
        space_text="",
        data="data",
        preset="tiny",
        base={},
        tracking_uri=uri,
        cache_dir=str(stage_cache.root),
    )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "study.json").write_text(plan.to_json())
    model_log.log_best_of_experiment(uri, "other")
    assert client.get_run(ids["parent"]).data.tags[BEST_MODEL_RUN] == ids["plain"]


# -- fsvae-study predict ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def predicted(study, images):
    """`fsvae-study predict --model <parent run id> --images DIR`."""
    return cli(
        "predict",
        "--model",
        study["ids"]["parent"],
        "--images",
        str(images),
        "--tracking-uri",
        study["uri"],
    )


def test_predict_prints_path_style_and_probability_per_image_sorted_by_path(
    predicted, images, trials
):
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    rows = [line.split("\t") for line in lines]
    readable = sorted(str(p) for p in images.rglob("*.jpg") if p.name != "cut.jpg")
    assert [r[0] for r in rows] == readable
    assert {r[1] for r in rows} <= set(trials["vae"][0]["classes"])
    assert all(0 < float(r[2]) <= 1 for r in rows)


def test_predict_gives_each_file_the_style_of_its_decoded_dataset_image(
    predicted, study, images, demo_ds
):
    model = model_log.load_model(study["ids"]["parent"], study["uri"])
    index = {str(images / p.replace("dataset/", "")): i for i, p in enumerate(demo_ds.paths)}
    rows = [line.split("\t") for line in predicted.stdout.strip().splitlines()]
    with torch.no_grad():
        probs = model(demo_ds.images[[index[path] for path, _, _ in rows]])
    assert [style for _, style, _ in rows] == [model.classes[i] for i in probs.argmax(1)]


def test_predict_reports_an_unreadable_file_and_goes_on(predicted, images):
    assert f"skipped {images / 'cut.jpg'}: unreadable" in predicted.stderr


def test_predict_takes_a_registered_model_uri(study, images, tracking):
    version = tracking.register_model(study["model_uri"], "fashion-style").version
    done = cli(
        "predict",
        "--model",
        f"models:/fashion-style/{version}",
        "--images",
        str(images),
        "--tracking-uri",
        study["uri"],
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 20


def test_predict_with_an_unknown_run_id_exits_2_naming_it(study, images):
    done = cli(
        "predict", "--model", "0123abcd", "--images", str(images), "--tracking-uri", study["uri"]
    )
    assert done.returncode == 2
    assert "--model '0123abcd': no such run" in done.stderr


def test_predict_on_a_folder_without_a_readable_image_exits_2(study, tmp_path):
    (tmp_path / "notes.txt").write_text("no image here")
    done = cli(
        "predict",
        "--model",
        study["ids"]["parent"],
        "--images",
        str(tmp_path),
        "--tracking-uri",
        study["uri"],
    )
    assert done.returncode == 2
    assert "no readable image under" in done.stderr
