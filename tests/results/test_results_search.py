"""The Optuna search's table: per stratum, the best trial by the validation objective."""

from __future__ import annotations

import pytest
from results_store import RERUN_UNCOUNTED, shared_store, table, tidy

from helpers import md_cells
from results import ResultsError


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


# -- one run per trial -------------------------------------------------------------------


def test_a_trial_run_twice_counts_once_in_the_trial_counts(store):
    cell = (
        tidy(table(store, experiment="search-rerun"))
        .set_index(["stratum", "metric"])
        .loc[("n_f=5", "acc_h")]
    )
    # trials n_f=5#0, #1, #2 and t9 (8 runs): finished #0, #1, t9; failed #2; none stopped
    assert (cell["n_trials"], cell["n_finished"], cell["n_failed"], cell["n_killed"]) == (
        4,
        3,
        1,
        0,
    )


def test_the_best_trial_is_chosen_among_counted_runs_only(store):
    cells = tidy(table(store, experiment="search-rerun")).set_index(["stratum", "metric"])
    best = cells.loc[("n_f=5", "acc_h")]
    # counted runs' val_acc_h: 0.52, 0.55, 0.60 -> t9's finished run; the uncounted first
    # run of n_f=5#0 (0.90) is not a candidate
    assert best["run_ids"] == store["rerun_ids"][6]
    assert best["objective_value"] == pytest.approx(0.60)
    assert best["value"] == pytest.approx(48.0)
    assert cells.loc[("n_f=5", "acc"), "value"] == pytest.approx(59.0)


def test_runs_not_counted_are_named_in_a_note(store):
    t = table(store, experiment="search-rerun")
    note = next(n for n in t.notes if "not counted" in n)
    ids = store["rerun_ids"]
    assert note.startswith("4 more run(s) of a trial counted once")
    assert all(ids[i] in note for i in RERUN_UNCOUNTED)
    assert not any(ids[i] in note for i in set(range(len(ids))) - set(RERUN_UNCOUNTED))
