"""study.record.write and study.record.read against a real SQLite MLflow store: one visible run per
trial key, curves as step series, finished trials recognised, failures told apart, and the
record read back per key with stale RUNNING runs closed."""

from __future__ import annotations

import json
import time

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from study.identity.parent import artifact_root, close_orphan_parents, ensure_experiment
from study.record import read as record
from study.record import write as records
from study.record.schema import FAILURE, INTERRUPTED, PROGRESS, ROLE, TRIAL_KEY

CONFIG = {"method": "vae", "n_f": 5, "seed": 0, "latent_dim": 16}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("records")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = ensure_experiment(client, "rec", tmp)
    parent = client.create_run(exp, tags={ROLE: "study"}).info.run_id
    return {"uri": uri, "client": client, "exp": exp, "parent": parent, "tmp": tmp}


def test_artifact_root_is_the_storage_or_beside_sqlite_never_the_working_folder(tmp_path):
    db = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    assert artifact_root(db, tmp_path / "st") == tmp_path / "st" / "mlartifacts"
    assert artifact_root(db, None) == tmp_path / "db" / "mlartifacts"
    assert artifact_root("http://127.0.0.1:5000", tmp_path / "st") is None
    # trials writing to a database directly: their artifacts on the study's storage too
    pg = "postgresql://fsvae@10.0.0.2/mlflow"
    assert artifact_root(pg, tmp_path / "st") == tmp_path / "st" / "mlartifacts"
    assert artifact_root(pg, None) is None
    client = MlflowClient(db)
    exp = client.get_experiment(ensure_experiment(client, "s3-study", None))
    assert exp.artifact_location == (tmp_path / "db" / "mlartifacts" / "s3-study").as_uri()


def recorder(store, key: str, replaces: str | None = None) -> records.TrialRecorder:
    """A trial's recorder, knowing the runs its keys have, as the driver hands them over
    (it reads them from the record when a session starts)."""
    known = [
        r.info.run_id
        for k in (key, replaces)
        if k
        for r in store["client"].search_runs([store["exp"]], f"tags.`{TRIAL_KEY}` = '{k}'")
    ]
    return records.TrialRecorder(
        store["uri"],
        store["exp"],
        store["parent"],
        key,
        f"run-{key}",
        replaces=replaces,
        known=known,
    )


def fake_result() -> dict:
    return {
        "metrics": {"val_acc_h": 0.5, "test_acc_h": 0.4, "test_class_acc/a": 1.0},
        "timings": {"total": 1.0, "waited": 0.0},
        "minority_classes": ["a"],
    }


def visible(store, key: str) -> list[str]:
    runs = store["client"].search_runs([store["exp"]], f"tags.`{TRIAL_KEY}` = '{key}'")
    return [r.info.run_id for r in runs]


def test_artifacts_of_a_local_store_live_under_the_storage(store):
    exp = store["client"].get_experiment(store["exp"])
    assert exp.artifact_location.startswith((store["tmp"] / "mlartifacts").as_uri())


def test_params_are_the_config_keys_as_strings(store):
    rec = recorder(store, "p#1")
    run_id = rec.start(CONFIG)
    assert store["client"].get_run(run_id).data.params == {k: str(v) for k, v in CONFIG.items()}
    assert store["client"].get_run(run_id).data.tags[TRIAL_KEY] == "p#1"


def vae_epochs(rec, n: int = 3) -> None:
    for e in range(n):
        rec.progress({"stage": "vae", "epoch": e, "recon": 10.0 - e, "kl": 1.0, "beta": e / 10})


def test_a_running_stages_curves_and_progress_reach_the_store_within_the_live_interval(
    store, monkeypatch
):
    monkeypatch.setenv("FSVAE_LIVE_S", "0.2")
    rec = recorder(store, "c#1")
    rec.live.epochs = {"vae": 10}
    run_id = rec.start(CONFIG)
    assert json.loads(store["client"].get_run(run_id).data.tags[PROGRESS])["stage"] == "starting"
    rec.progress({"stage": "cache", "name": "vae", "key": "k" * 32, "hit": False})
    vae_epochs(rec)

    def sent():
        return store["client"].get_metric_history(run_id, "vae_recon")

    def tags() -> dict:
        return store["client"].get_run(run_id).data.tags

    # One write carries both, but the store may commit its metrics and tags apart.
    deadline = time.monotonic() + 10
    while (len(sent()) < 3 or "cache.vae" not in tags()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(m.step, m.value) for m in sent()] == [(0, 10.0), (1, 9.0), (2, 8.0)]
    run = store["client"].get_run(run_id)
    assert run.info.status == "RUNNING"  # the stage has not ended, nor the trial
    assert run.data.tags["cache.vae"] == "miss"
    progress = json.loads(run.data.tags[PROGRESS])
    assert {k: progress[k] for k in ("stage", "epoch", "epochs")} == {
        "stage": "vae",
        "epoch": 3,
        "epochs": 10,
    }
    rec.finish(fake_result(), None)
    assert len(sent()) == 3  # each point once


def test_curves_of_a_quick_stage_go_with_the_trials_last_write(store):
    rec = recorder(store, "q#1")
    run_id = rec.start(CONFIG)
    vae_epochs(rec)
    rec.progress({"stage": "vae", "best_epoch": 2})
    assert store["client"].get_metric_history(run_id, "vae_recon") == []  # one write later
    rec.finish(fake_result(), None)
    history = store["client"].get_metric_history(run_id, "vae_recon")
    assert [(m.step, m.value) for m in history] == [(0, 10.0), (1, 9.0), (2, 8.0)]
    assert store["client"].get_run(run_id).data.metrics["vae_best_epoch"] == 2


def test_a_repaired_cache_entry_is_tagged_with_its_read_error(store):
    rec = recorder(store, "r#1")
    run_id = rec.start(CONFIG)
    rec.progress(
        {
            "stage": "cache",
            "name": "backbone",
            "key": "k" * 32,
            "hit": False,
            "repaired": "RuntimeError: truncated features.pt",
        }
    )
    rec.progress({"stage": "cache", "name": "vae", "key": "v" * 32, "hit": True, "repaired": None})
    rec.flush()
    tags = store["client"].get_run(run_id).data.tags
    assert tags["cache.backbone"] == "miss"
    assert tags["cache.backbone.repaired"] == "RuntimeError: truncated features.pt"
    assert "cache.vae.repaired" not in tags


def test_a_rerun_of_a_key_replaces_its_earlier_run(store):
    old = recorder(store, "k#1").start(CONFIG)  # left RUNNING, as a killed trial leaves it
    new = recorder(store, "k#1").start(CONFIG)
    client = store["client"]
    assert client.get_run(old).info.lifecycle_stage == "deleted"
    assert client.get_run(old).info.status == "KILLED"
    tags = client.get_run(new).data.tags
    assert tags["fsvae.replaces"] == old and tags["fsvae.attempt"] == "2"
    assert visible(store, "k#1") == [new]


def test_a_finished_run_of_the_key_with_the_same_params_is_found(store):
    rec = recorder(store, "f#1")
    run_id = rec.start(CONFIG)
    rec.finish(fake_result(), None)
    assert recorder(store, "f#1").finished_run(CONFIG).info.run_id == run_id
    assert recorder(store, "f#1").finished_run({**CONFIG, "latent_dim": 32}) is None
    assert recorder(store, "other#1").finished_run(CONFIG) is None


def test_a_failed_run_keeps_its_reason_and_says_the_trial_failed(store):
    rec = recorder(store, "x#1")
    run_id = rec.start(CONFIG)
    reason = rec.fail(ValueError("loss is nan at epoch 3"), store["tmp"] / "x1-out")
    run = store["client"].get_run(run_id)
    assert reason == "ValueError: loss is nan at epoch 3"
    assert run.info.status == "FAILED"
    assert run.data.tags["fsvae.error"] == reason
    assert run.data.tags[FAILURE] == "trial"
    assert "error.txt" in {a.path for a in store["client"].list_artifacts(run_id)}


def test_a_retry_of_a_failed_trial_replaces_the_failed_run(store):
    rec = recorder(store, "y#1")
    failed = rec.start(CONFIG)
    rec.fail(ValueError("boom"), None)
    retry = recorder(store, "y#4", replaces="y#1")
    new = retry.start(CONFIG)
    tags = store["client"].get_run(new).data.tags
    assert tags["fsvae.replaces"] == failed
    assert tags["fsvae.previous_error"] == "ValueError: boom"
    assert visible(store, "y#1") == [] and visible(store, "y#4") == [new]


def test_an_infrastructure_failure_is_marked_as_such(store):
    run_id = recorder(store, "i#1").start(CONFIG)
    records.mark_failed(store["client"], run_id, "node: node lost", "infrastructure")
    run = store["client"].get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[FAILURE] == "infrastructure"
    assert run.data.tags["fsvae.error"] == "node: node lost"


def test_the_record_holds_the_run_that_counts_for_every_key_and_its_state(store):
    entries = record.read(store["client"], store["exp"], store["parent"])
    assert entries["f#1"].state == "finished" and entries["f#1"].metrics["val_acc_h"] == 0.5
    assert entries["x#1"].state == "failed" and entries["x#1"].failure == "trial"
    assert entries["i#1"].failure == "infrastructure"
    assert entries["k#1"].run_id == visible(store, "k#1")[0]
    assert "y#1" not in entries  # replaced by its retry


def test_closing_stale_runs_leaves_none_running_and_marks_them_interrupted(store):
    run_id = recorder(store, "s#1").start(CONFIG)
    entries = record.read(store["client"], store["exp"], store["parent"])
    assert entries["s#1"].state == "unfinished"
    closed = record.close_stale(store["client"], entries, "the driver stopped")
    assert closed >= 1
    run = store["client"].get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags[INTERRUPTED] == "the driver stopped"
    assert (
        record.read(store["client"], store["exp"], store["parent"])["s#1"].state == "unfinished"
    )  # it runs again
    running = store["client"].search_runs(
        [store["exp"]], "attributes.status = 'RUNNING'", run_view_type=ViewType.ALL
    )
    assert [r.info.run_id for r in running] == [store["parent"]]


def test_a_parent_run_left_running_without_trials_is_closed(store):
    client = store["client"]
    orphan = client.create_run(store["exp"], tags={ROLE: "study"}).info.run_id
    assert close_orphan_parents(client, store["exp"]) == 1
    assert client.get_run(orphan).info.status == "KILLED"
    # the module's parent has trials: it stays as it is
    assert client.get_run(store["parent"]).info.status == "RUNNING"
