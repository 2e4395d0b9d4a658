"""A real grid study (the shipped smoke space: plain, oversample, vae) on local Ray with
2 CPUs and a SQLite MLflow store: what a user finds in MLflow afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fsvae import config as config_mod
from helpers import FAST, cli, client, make_data, runs, tracking_uri, trial_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
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
        "g",
        *FAST,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"storage": storage, "uri": tracking_uri(storage), "proc": proc, "data": data}


def test_study_prints_progress_and_where_results_are(study):
    out = study["proc"].stdout
    assert "done 3/3" in out
    assert "complete; 3 trials finished, 0 failed" in out
    assert f"mlflow ui --backend-store-uri {study['uri']}" in out
    assert "fsvae-study table --experiment g" in out
    assert "Trial status" not in out  # Ray's own tables stay off the console


def test_tunes_folder_keeps_its_csv_and_json_logs_without_tensorboard(study):
    # Tune's TensorBoard logger is left out (its import cost the driver ~2 s of CPU); its
    # CSV and JSON logs, which Tune's own analysis reads, stay.
    trials = [p for p in (study["storage"] / "g").glob("tune-*/trial_*") if p.is_dir()]
    assert len(trials) == 3, sorted(p.name for p in (study["storage"] / "g").rglob("*"))
    for trial in trials:
        assert (trial / "progress.csv").is_file() and (trial / "result.json").is_file()
        assert not list(trial.glob("events.out.tfevents*")), trial


def test_mlflow_holds_one_parent_and_one_finished_child_per_trial(study):
    df = runs(study["uri"], "g")
    parents = df[df["tags.fsvae.role"] == "study"]
    children = df[df["tags.fsvae.role"] == "trial"]
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    assert len(children) == 3
    assert set(children["status"]) == {"FINISHED"}
    assert set(children["tags.mlflow.parentRunId"]) == {parents.iloc[0]["run_id"]}
    assert sorted(children["params.method"]) == ["oversample", "plain", "vae"]


def test_parent_run_records_space_command_data_and_code(study):
    df = runs(study["uri"], "g")
    parent = df[df["tags.fsvae.role"] == "study"].iloc[0]
    assert parent["tags.fsvae.space_kind"] == "grid"
    assert parent["tags.fsvae.objective"] == "val_acc_h"
    assert len(parent["tags.fsvae.data_fingerprint"]) == 64
    assert parent["tags.fsvae.code_version"]
    assert "run --space smoke" in parent["tags.fsvae.command"]
    names = {a.path for a in client(study["uri"]).list_artifacts(parent["run_id"])}
    assert {"space.yaml", "space.json", "command.txt"} <= names


def test_child_params_are_exactly_the_active_config_keys(study):
    children = trial_runs(study["uri"], "g")
    for _, run in children.iterrows():
        params = {
            c[len("params.") :]
            for c in children.columns
            if c.startswith("params.") and isinstance(run[c], str)
        }
        cfg = config_mod.resolve({"method": run["params.method"]}, preset="tiny")
        assert params == set(config_mod.active_config(cfg)), run["params.method"]
    plain = children[children["params.method"] == "plain"].iloc[0]
    assert not isinstance(plain.get("params.sampling_factor"), str)  # inactive for plain
    assert plain["params.backbone_epochs"] == "1" and plain["params.n_f"] == "5"


def test_child_runs_have_final_val_and_test_metrics(study):
    children = trial_runs(study["uri"], "g")
    for prefix in ("val_", "test_"):
        for m in ("acc", "acc_majority", "acc_minority", "acc_h", "acc_h_samples"):
            col = f"metrics.{prefix}{m}"
            assert children[col].between(0, 1).all(), col


def test_child_runs_have_every_stages_curves(study):
    c = client(study["uri"])
    children = trial_runs(study["uri"], "g")
    vae = children[children["params.method"] == "vae"].iloc[0]["run_id"]
    assert len(c.get_metric_history(vae, "backbone_train_loss")) == 1  # 1 backbone epoch
    assert [m.step for m in c.get_metric_history(vae, "vae_beta")] == [0, 1, 2]
    for key in ("vae_recon", "vae_kl", "classifier_train_loss", "classifier_val_acc"):
        assert c.get_metric_history(vae, key), key
    plain = children[children["params.method"] == "plain"].iloc[0]["run_id"]
    assert c.get_metric_history(plain, "backbone_val_acc")
    assert not c.get_metric_history(plain, "vae_beta")


def test_child_runs_carry_outputs_and_figures_as_artifacts(study):
    c = client(study["uri"])
    run_id = trial_runs(study["uri"], "g")["run_id"].iloc[0]
    top = {a.path for a in c.list_artifacts(run_id)}
    assert {
        "config.json",
        "data_report.json",
        "metrics.json",
        "confusion.json",
        "history.json",
        "split",
        "figures",
    } <= top
    assert {a.path for a in c.list_artifacts(run_id, "split")} >= {
        "split/train.txt",
        "split/val.txt",
        "split/test.txt",
        "split/split.json",
    }
    figs = {a.path for a in c.list_artifacts(run_id, "figures")}
    assert {"figures/curves.png", "figures/confusion_test.png"} <= figs
    local = Path(c.download_artifacts(run_id, "figures/confusion_test.png"))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backbone_is_built_once_per_distinct_key(study):
    children = trial_runs(study["uri"], "g")
    by_key = children.groupby("tags.cache.backbone.key")["tags.cache.backbone"].apply(list)
    # plain and vae at the same split share one backbone; oversample x10 trains its own.
    assert len(by_key) == 2
    for key, tags in by_key.items():
        assert tags.count("miss") == 1, (key, tags)
    vae = children[children["params.method"] == "vae"].iloc[0]
    plain = children[children["params.method"] == "plain"].iloc[0]
    assert vae["tags.cache.backbone.key"] == plain["tags.cache.backbone.key"]
    assert vae["tags.cache.vae"] == "miss"


def test_study_that_exists_is_not_silently_overwritten(study):
    proc = cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(study["data"]),
        "--storage",
        str(study["storage"]),
        "--name",
        "g",
        *FAST,
    )
    assert proc.returncode == 2
    assert "already exists" in proc.stderr and "--resume" in proc.stderr
    assert len(trial_runs(study["uri"], "g")) == 3


def test_study_json_records_what_resume_needs(study):
    plan = json.loads((study["storage"] / "g" / "study.json").read_text())
    assert plan["data"] == str(study["data"].resolve())
    assert plan["preset"] == "tiny"
    assert plan["parent_run_id"]
    assert plan["base"]["backbone_epochs"] == 1


def test_every_run_records_the_code_the_libraries_and_the_dataset(study):
    from fsvae import data as data_mod

    df = runs(study["uri"], "g")
    assert len(df) == 4  # the parent and three trials
    for _, run in df.iterrows():
        commit = run["tags.mlflow.source.git.commit"]
        assert isinstance(commit, str) and len(commit) == 40, run["run_id"]
        assert run["tags.fsvae.git_dirty"] in ("true", "false")
        for lib in ("python", "torch", "torchvision", "cuda", "ray", "optuna", "mlflow"):
            assert run[f"tags.fsvae.version.{lib}"], (run["run_id"], lib)
        assert run["tags.fsvae.version.torch"] == torch.__version__
    fingerprint = data_mod.fingerprint(study["data"])
    for run_id in df["run_id"]:
        inputs = client(study["uri"]).get_run(run_id).inputs.dataset_inputs
        assert [i.dataset.digest for i in inputs] == [fingerprint[:36]]
        assert json.loads(inputs[0].dataset.source)["uri"] == str(study["data"].resolve())
