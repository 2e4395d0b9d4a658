"""The Optuna search's table: per stratum, the best trial by the validation objective.
"""
from __future__ import annotations

import pytest

from results import ResultsError
from results_store import md_cells, shared_store, table, tidy


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return shared_store(tmp_path_factory)


def test_optuna_rows_are_the_best_by_validation_with_test_metrics(store):
    t = table(store, experiment="search", with_paper=True)
    cells = tidy(t).set_index(["stratum", "metric"])
    ids = store["search_ids"]
    five, ten = cells.loc[("n_f=5", "acc_h")], cells.loc[("n_f=10", "acc_h")]
    assert five["run_ids"] == ids[1]  # val 0.60 wins; the test-best (0.70) is not chosen
    assert five["value"] == pytest.approx(45.0)
    assert cells.loc[("n_f=5", "acc"), "value"] == pytest.approx(61.0)
    assert five["objective_value"] == pytest.approx(0.60)
    assert five["params"] == "latent_dim=32; sampling_factor=30"  # space.json's keys
    assert (five["n_trials"], five["n_finished"], five["n_failed"]) == (4, 3, 1)
    assert ten["run_ids"] == ids[5] and ten["value"] == pytest.approx(58.0)
    assert ten["paper"] == pytest.approx(37.24)  # vae x50 at n_f=10
    assert ten["diff"] == pytest.approx(58.0 - 37.24)
    md = [ln for ln in t.to_markdown().splitlines() if ln.startswith("|")]
    assert len(md) == 4 and len({len(md_cells(ln)) for ln in md}) == 1
    assert "3/1/0 of 4" in md[2]


def test_optuna_studies_refuse_compare(store):
    with pytest.raises(ResultsError, match="Optuna search"):
        table(store, experiment="search", compare="vae:crt")
