"""study.records against a real SQLite MLflow store: one visible run per trial, curves as
step series, finished trials recognised, stale RUNNING runs closed."""
from __future__ import annotations

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from study import records

CONFIG = {"method": "vae", "n_f": 5, "seed": 0, "latent_dim": 16}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("records")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = records.ensure_experiment(client, "rec", tmp)
    parent = client.create_run(exp, tags={records.ROLE: "study"}).info.run_id
    return {"uri": uri, "client": client, "exp": exp, "parent": parent, "tmp": tmp}


def recorder(store, trial_id: str) -> records.TrialRecorder:
    return records.TrialRecorder(store["uri"], store["exp"], store["parent"], trial_id,
                                 f"run-{trial_id}")


def fake_result() -> dict:
    return {"metrics": {"val_acc_h": 0.5, "test_acc_h": 0.4, "test_class_acc/a": 1.0},
            "timings": {"total": 1.0, "waited": 0.0}, "minority_classes": ["a"]}


def test_artifacts_of_a_local_store_live_under_the_storage(store):
    exp = store["client"].get_experiment(store["exp"])
    assert exp.artifact_location.startswith((store["tmp"] / "mlartifacts").as_uri())


def test_params_are_the_config_keys_as_strings(store):
    rec = recorder(store, "p1")
    run_id = rec.start(CONFIG)
    assert store["client"].get_run(run_id).data.params == {k: str(v) for k, v in CONFIG.items()}


def test_curves_are_logged_per_epoch_when_a_stage_ends(store):
    rec = recorder(store, "c1")
    run_id = rec.start(CONFIG)
    for e in range(3):
        rec.progress({"stage": "vae", "epoch": e, "recon": 10.0 - e, "kl": 1.0, "beta": e / 10})
    assert store["client"].get_metric_history(run_id, "vae_recon") == []  # batched
    rec.progress({"stage": "cache", "name": "vae", "key": "k" * 32, "hit": False})
    rec.progress({"stage": "vae", "best_epoch": 2})
    history = store["client"].get_metric_history(run_id, "vae_recon")
    assert [(m.step, m.value) for m in history] == [(0, 10.0), (1, 9.0), (2, 8.0)]
    assert store["client"].get_run(run_id).data.tags["cache.vae"] == "miss"


def test_a_repaired_cache_entry_is_tagged_with_its_read_error(store):
    rec = recorder(store, "r1")
    run_id = rec.start(CONFIG)
    rec.progress({"stage": "cache", "name": "backbone", "key": "k" * 32, "hit": False,
                  "repaired": "RuntimeError: truncated features.pt"})
    rec.progress({"stage": "cache", "name": "vae", "key": "v" * 32, "hit": True,
                  "repaired": None})
    rec.flush()
    tags = store["client"].get_run(run_id).data.tags
    assert tags["cache.backbone"] == "miss"
    assert tags["cache.backbone.repaired"] == "RuntimeError: truncated features.pt"
    assert "cache.vae.repaired" not in tags


def test_a_rerun_trial_replaces_its_earlier_run(store):
    first = recorder(store, "r1")
    old = first.start(CONFIG)  # left RUNNING, as a killed trial leaves it
    second = recorder(store, "r1")
    new = second.start(CONFIG)
    client = store["client"]
    assert client.get_run(old).info.lifecycle_stage == "deleted"
    assert client.get_run(old).info.status == "KILLED"
    tags = client.get_run(new).data.tags
    assert tags["fsvae.replaces"] == old and tags["fsvae.attempt"] == "2"
    visible = [r for r in records.child_runs(client, store["exp"], store["parent"])
               if r.data.tags.get(records.TRIAL_ID) == "r1"]
    assert [r.info.run_id for r in visible] == [new]


def test_a_finished_run_with_the_same_params_is_found(store):
    rec = recorder(store, "f1")
    run_id = rec.start(CONFIG)
    rec.finish(fake_result(), None)
    assert recorder(store, "f1").finished_run(CONFIG).info.run_id == run_id
    assert recorder(store, "f1").finished_run({**CONFIG, "latent_dim": 32}) is None
    assert recorder(store, "other").finished_run(CONFIG) is None


def test_a_failed_run_keeps_its_reason(store):
    rec = recorder(store, "x1")
    run_id = rec.start(CONFIG)
    rec.fail(ValueError("loss is nan at epoch 3"), store["tmp"] / "x1-out")
    run = store["client"].get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["fsvae.error"] == "ValueError: loss is nan at epoch 3"
    assert "error.txt" in {a.path for a in store["client"].list_artifacts(run_id)}


def test_reconcile_closes_runs_left_running(store):
    rec = recorder(store, "k1")
    run_id = rec.start(CONFIG)
    closed = records.reconcile(store["client"], store["exp"], store["parent"])
    assert closed >= 1
    run = store["client"].get_run(run_id)
    assert run.info.status == "KILLED" and "fsvae.stopped" in run.data.tags
    running = store["client"].search_runs([store["exp"]], "attributes.status = 'RUNNING'",
                                          run_view_type=ViewType.ALL)
    assert [r.info.run_id for r in running] == [store["parent"]]
