"""A two-objective search's Pareto front, checked by hand: `results.pareto`, the rows
`fsvae-study table` shows for it, and what `figures` draws of it."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_store import FRONT, PARETO, shared_stores
from results_store import table, tidy

from helpers import md_cells
from results import ResultsError, load_study
from results.figures import metric_figures, pick_run
from study.record.read import on_front


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    return shared_stores(tmp_path_factory)


def test_equal_trials_both_stay_on_the_front_and_dominated_ones_do_not():
    values = pd.DataFrame({"acc": [0.5, 0.5, 0.4, 0.6], "loss": [1.0, 1.0, 1.0, 2.0]})
    # row 2 has lower acc at the same loss as rows 0 and 1; row 3 trades loss for acc
    assert on_front(values, ["max", "min"]).tolist() == [True, True, False, True]


def test_table_marks_the_pareto_front_trials_of_each_stratum(stores):
    cells = tidy(table(stores, experiment="pareto"))
    acc_h = cells[cells["metric"] == "acc_h"]
    ids = stores["pareto"]
    assert acc_h["run_ids"].tolist() == [ids[i] for i in FRONT]
    assert acc_h["front"].tolist() == ["1 of 4", "2 of 4", "3 of 4", "4 of 4"]
    assert acc_h["val_acc_h"].tolist() == [PARETO[i][0] for i in FRONT]
    assert acc_h["val_acc"].tolist() == [PARETO[i][1] for i in FRONT]


def test_table_notes_say_what_the_pareto_front_is(stores):
    t = table(stores, experiment="pareto")
    assert t.notes[0].startswith(
        "Optuna study with 2 objectives: no one trial is best, so "
        "the rows of a stratum are its Pareto front on the "
        "validation objectives val_acc_h (max), val_acc (max)"
    )
    md = [md_cells(ln) for ln in t.to_markdown().splitlines() if ln.startswith("| ")]
    assert md[0][2:6] == ["Pareto-front trial", "on the front", "val_acc_h", "val_acc"]
    assert [r[3] for r in md[2:]] == ["1 of 4", "2 of 4", "3 of 4", "4 of 4"]


def test_figures_draw_the_front_and_ask_which_trials_curves_to_draw(stores, tmp_path):
    study = load_study("pareto", stores["uri"])
    paths = metric_figures(study, "test", tmp_path)
    assert [p.name for p in paths] == ["test_acc_h_vs_n_f.png", "test_acc_vs_n_f.png"]
    with pytest.raises(ResultsError, match="no trial is best, so pass --run"):
        pick_run(study, None)
    assert pick_run(study, stores["pareto"][FRONT[0]])["run_id"] == stores["pareto"][FRONT[0]]
