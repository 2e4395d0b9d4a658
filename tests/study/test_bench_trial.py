"""The benchmark hook FSVAE_BENCH_TRIAL (study/hooks/faults.py, study/hooks/bench_trial.py):
off unless set, and a synthetic trial recorded by the trial's real recorder, on a real SQLite MLflow
store, as a real trial is: curves, finals, timings, tags, artifacts, FINISHED."""

from __future__ import annotations

import pytest

from fsvae.trial import run_trial
from helpers import SyntheticStudy
from study.figures import late as late_figures
from study.hooks import bench_trial, faults
from study.record.schema import FIGURES, MINORITY_CLASSES


def test_the_hook_is_off_unless_set(monkeypatch):
    monkeypatch.delenv("FSVAE_BENCH_TRIAL", raising=False)
    assert faults.trial_runner(run_trial) is run_trial
    monkeypatch.setenv("FSVAE_BENCH_TRIAL", "instant")
    assert faults.trial_runner(run_trial) is not run_trial


def test_modes():
    assert bench_trial.parse("instant") == 0.0
    assert bench_trial.parse("busy:0.25") == 0.25
    with pytest.raises(ValueError, match="instant or busy"):
        bench_trial.parse("fast")


def test_a_synthetic_trial_is_recorded_as_a_real_one(tmp_path):
    study = SyntheticStudy(tmp_path, "bench", vae_epochs=2, classifier_epochs=3)
    client, cfg = study.client, study.cfg
    rec, result = study.trial("n_f=5#0")
    late_figures.draw_and_upload(client, rec.run_id, late_figures.figure_inputs(result))
    again = bench_trial.synthetic_trial("instant")(cfg)
    assert again["metrics"] == result["metrics"]  # fixed by the config

    run = client.get_run(rec.run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert {
        "val_acc_h",
        "test_acc_h",
        "time_total_s",
        "vae_beta",
        "classifier_val_acc_h",
        "backbone_best_epoch",
        "data_usable_train",
    } <= set(metrics)
    assert len(client.get_metric_history(rec.run_id, "classifier_val_acc_h")) == 3
    assert run.data.tags["cache.backbone"] == "hit"
    assert len(run.data.tags[MINORITY_CLASSES].split(",")) == 5
    files = {f.path for f in client.list_artifacts(rec.run_id)}
    assert {"metrics.json", "history.json", "model", "split", "figures"} <= files
    assert FIGURES not in run.data.tags  # drawn: no longer pending
