"""The grid table read from a real SQLite MLflow store (results_store.py, beside it): every
number it shows is checked against values worked out by hand.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest
from results_store import EXPECTED, GRID, ROW_ORDER, shared_store, table, tidy

import results
from helpers import REPO, hand_stats, same
from results import ResultsError, paper


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return shared_store(tmp_path_factory)


# -- cells ----------------------------------------------------------------------------------


def test_every_cell_is_mean_std_n_and_t_interval_of_its_seeds(store):
    cells = tidy(table(store))
    cells = cells[cells["section"] == "table"]
    got = {(r.row, r.n_f, r.metric): r for r in cells.itertuples()}
    assert set(got) == set(EXPECTED)
    for key, values in EXPECTED.items():
        want, r = hand_stats(values, within=(0, 100)), got[key]  # plain's 0, 2, 4: from 0
        assert same(r.mean, want["mean"]) and same(r.std, want["std"]), key
        assert r.n == want["n"], key
        assert same(r.ci95_low, want["lo"]) and same(r.ci95_high, want["hi"]), key


def test_a_three_seed_cell_worked_through(store):
    # acc_h 40, 44, 48: mean 44, std 4, t(0.975, 2) = 4.3027 -> 44 -/+ 9.9368
    r = (
        tidy(table(store))
        .set_index(["row", "n_f", "metric"])
        .loc[("vae x30 [latent_dim=32]", 5, "acc_h")]
    )
    assert (r["mean"], r["std"], r["n"]) == (pytest.approx(44.0), pytest.approx(4.0), 3)
    assert r["ci95_low"] == pytest.approx(44 - 4.302653 * 4 / math.sqrt(3), abs=1e-5)
    assert r["ci95_high"] == pytest.approx(54.0 - 0.063, abs=1e-3)


def test_configs_differing_in_one_key_are_separate_rows_never_averaged(store):
    t = table(store)
    assert t.rows == ROW_ORDER  # the paper's order: plain, oversample, vae, then ablations
    vae30 = t.cells[(t.cells["method"] == "vae") & (t.cells["sampling_factor"] == "30")]
    assert sorted(set(vae30["params"])) == ["latent_dim=32", "latent_dim=64"]
    # the 5 finished vae x30 runs at n_f=5 stay split 3 + 2
    assert sorted(vae30[vae30["metric"] == "acc"]["n"]) == [2, 3]


def test_plain_has_no_sampling_factor_and_bookkeeping_keys_do_not_split_rows(store):
    cells = tidy(table(store))
    plain = cells[(cells["row"] == "plain") & (cells["n_f"] == 5)]
    assert plain["sampling_factor"].isna().all()  # empty in the CSV, not invented
    assert (plain["n"] == 3).all()  # seed 1 ran on cuda with 8 workers and still pools


def test_failed_and_stopped_runs_are_counted_in_a_note_not_averaged(store):
    t = table(store)
    assert "Not shown: 1 failed run (status FAILED), 1 stopped run (status KILLED)." in t.notes
    over = t.cells[(t.cells["row"] == "oversample x30") & (t.cells["metric"] == "acc")]
    assert over["n"].tolist() == [2]


def test_a_duplicate_config_and_seed_keeps_the_latest_run_and_names_the_other(store):
    t = table(store)
    older, newer = store["ids"][0], store["ids"][1]
    note = next(n for n in t.notes if "duplicate" in n)
    assert "1 duplicate run" in note and older in note
    cell = t.cells.set_index(["row", "n_f", "metric"]).loc[("plain", 5, "acc_h")]
    assert newer in cell["run_ids"].split(";") and older not in cell["run_ids"]
    assert cell["mean"] == pytest.approx(2.0)  # 9 (the older run) is not in it


def test_csv_carries_the_run_ids_behind_each_cell(store):
    cells = tidy(table(store))
    ids = store["ids"]
    r = cells.set_index(["row", "n_f", "metric"]).loc[("vae x50 [latent_dim=32]", 10, "acc")]
    assert set(r["run_ids"].split(";")) == {ids[17], ids[18]}
    assert r["seeds"].split(";") == ["0", "1"]
    # every finished, non-duplicate run is behind exactly one cell per metric
    used = [x for s in cells[cells["metric"] == "acc"]["run_ids"] for x in s.split(";")]
    expected = {ids[i] for i, g in enumerate(GRID) if g[7] == "FINISHED"} - {ids[0]}
    assert sorted(used) == sorted(expected)


def test_val_metric_set_reads_the_val_metrics(store):
    cells = tidy(table(store, metric_set="val")).set_index(["row", "n_f", "metric"])
    assert cells.loc[("plain", 10, "acc_h"), "mean"] == pytest.approx(11.0)


# -- the paper's numbers --------------------------------------------------------------------


def test_with_paper_adds_the_published_numbers_and_our_difference(store):
    t = table(store, with_paper=True)
    paper = pd.read_csv(
        REPO / "results" / "data" / "paper_table2.csv", comment="#", dtype={"sampling_factor": str}
    ).fillna({"sampling_factor": ""})
    published = {
        (r.method, r.sampling_factor, r.n_f, m): getattr(r, m)
        for r in paper.itertuples()
        for m in ("acc_h", "acc")
    }
    assert published[("plain", "", 5, "acc")] == 53.75  # the packaged copy of Table 2
    cells = tidy(t)
    cells = cells[cells["section"] == "table"].fillna({"sampling_factor": ""})
    for r in cells.itertuples():
        key = (r.method, r.sampling_factor.removesuffix(".0"), r.n_f, r.metric)
        if key in published:
            assert r.paper == pytest.approx(published[key])
            assert r.diff == pytest.approx(
                statistics.mean(EXPECTED[(r.row, r.n_f, r.metric)]) - published[key]
            )
        else:
            assert math.isnan(r.paper) and math.isnan(r.diff)
    by = cells.set_index(["row", "n_f", "metric"])
    assert by.loc[("plain", 5, "acc"), "diff"] == pytest.approx(53.0 - 53.75)
    assert by.loc[("vae x30 [latent_dim=64]", 5, "acc_h"), "paper"] == pytest.approx(3.64)
    md = t.to_markdown()
    assert "| plain | 2.00 ± 2.00 (n=3) | 0.00 | +2.00 | 53.00 ± 3.61 (n=3) | 53.75 | -0.75 |" in md
    assert "Paper rows with no runs here: oversample x50." in md


def test_with_paper_refuses_validation_metrics(store):
    with pytest.raises(ResultsError, match="paper's test"):
        table(store, metric_set="val", with_paper=True)


# -- split sizes beside the paper's Table 1 -----------------------------------------------

SPLIT_HEAD = (
    "Split sizes, train / val / test images (the dataset's lists minus unusable "
    "files, before the GFSL subsampling): "
)


def test_the_packaged_table1_sums_to_the_papers_split():
    assert paper.paper_split() == (7770, 661, 4528)  # the paper's Table 1 totals


def test_with_paper_sets_our_split_sizes_beside_the_papers(store):
    t = table(store, with_paper=True)
    # 21 runs shown; run 23 (crt x50, seed 1) read data key d2, the other 20 d1 (USABLE)
    assert (
        SPLIT_HEAD
        + (
            "ours 7,702 / 655 / 4,490 (20 runs), 7,701 / 655 / 4,490 (1 run); "
            "the paper's Table 1: 7,770 / 661 / 4,528."
        )
        in t.notes
    )


def test_split_sizes_logged_as_metrics_need_no_artifact(store):
    t = table(store, experiment="setups", with_paper=True)
    assert SPLIT_HEAD + "7,770 / 661 / 4,528, as in the paper's Table 1." in t.notes


def test_split_sizes_nobody_recorded_are_said_to_be_missing(store):
    t = table(store, experiment="search", with_paper=True)
    assert (
        SPLIT_HEAD + ("not recorded by these runs; the paper's Table 1: 7,770 / 661 / 4,528.")
        in t.notes
    )


# -- which acc_h -------------------------------------------------------------------------


def test_acc_h_samples_shows_the_sample_weighted_metric_instead(store):
    cells = tidy(table(store, acc_h="samples")).set_index(["row", "n_f", "metric"])
    # plain at n_f=5: acc_h 0, 2, 4 plus SAMPLES_OFFSET (3 points) each -> 3, 5, 7
    r = cells.loc[("plain", 5, "acc_h_samples")]
    assert (r["mean"], r["std"], r["n"]) == (pytest.approx(5.0), pytest.approx(2.0), 3)
    assert set(cells.index.get_level_values("metric")) == {"acc_h_samples", "acc"}


def test_with_paper_sets_the_papers_acc_h_beside_the_chosen_one(store):
    key = ["row", "n_f", "metric"]
    classes = tidy(table(store, with_paper=True)).set_index(key)
    samples = tidy(table(store, with_paper=True, acc_h="samples")).set_index(key)
    # the paper's plain acc_h at n_f=5 is 0.00; ours: 2 (classes), 5 (samples)
    assert classes.loc[("plain", 5, "acc_h"), "paper"] == pytest.approx(0.0)
    assert classes.loc[("plain", 5, "acc_h"), "diff"] == pytest.approx(2.0)
    assert samples.loc[("plain", 5, "acc_h_samples"), "paper"] == pytest.approx(0.0)
    assert samples.loc[("plain", 5, "acc_h_samples"), "diff"] == pytest.approx(5.0)


def test_with_paper_says_which_acc_h_it_compares(store):
    def paper_note(**kw) -> str:
        return next(n for n in table(store, with_paper=True, **kw).notes if n.startswith("paper:"))

    assert (
        "Beside the paper's acc_h: our acc_h, the mean of per-class accuracies within each group"
    ) in paper_note()
    assert "--acc-h samples sets acc_h_samples beside it instead." in paper_note()
    assert (
        "Beside the paper's acc_h: our acc_h_samples (accuracy over the images of each group)."
    ) in paper_note(acc_h="samples")


# -- reading the store ----------------------------------------------------------------------


def test_unknown_experiment_names_it_and_lists_the_existing_ones(store):
    with pytest.raises(ResultsError) as e:
        results.load_study("nope", store["uri"])
    assert "'nope'" in str(e.value) and "broken, grid, search" in str(e.value)


def test_experiment_without_finished_runs_says_so(store):
    with pytest.raises(
        ResultsError,
        match=r"'broken' has no finished trial runs, nothing to "
        r"show \(trial runs: 1 FAILED\)",
    ):
        table(store, experiment="broken")


def test_finished_runs_without_n_f_are_an_error_naming_the_missing_param(store):
    with pytest.raises(
        ResultsError,
        match=r"'without-nf': no finished trial run has an n_f "
        r"param",
    ):
        table(store, experiment="without-nf")


def test_missing_store_is_an_error_not_a_new_empty_database(tmp_path):
    with pytest.raises(ResultsError, match="no MLflow store"):
        results.load_study("grid", f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()
