"""A search table beside the paper when no trial recorded the acc_h asked for (runs written
before `acc_h_samples` existed): the table is drawn with empty cells, not a KeyError."""

from __future__ import annotations

from analysis_store import SearchWriter, metrics_of
from mlflow.tracking import MlflowClient

import results
from results.store import load_study


def test_a_search_without_the_asked_acc_h_is_drawn_beside_the_paper(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = SearchWriter(MlflowClient(uri), tmp_path, "old", ["val_acc_h"])
    params = {
        "beta_schedule": "linear",
        "beta_max": 1e-3,
        "beta_warmup_epochs": 4,
        "latent_dim": 16,
        "sampling_factor": 30,
    }
    search.trial(params, metrics_of(0.4, 0.5, 0))  # no test_acc_h_samples
    table = results.build_table(load_study("old", uri), "test", with_paper=True, acc_h="samples")
    text = table.to_markdown()
    assert "acc_h_samples paper" in text and "| n_f=5 | 1/0/0 of 1 | – |" in text
    assert table.to_latex().startswith("%")
