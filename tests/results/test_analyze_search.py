"""`analyze` on an Optuna search: fANOVA importance (study-wide and per beta_schedule
branch), the floor under which it is not computed, the best trials (two objectives: the
Pareto front) with their runs' metrics, and the PNGs logged to the parent run.
"""

from __future__ import annotations

import pytest
from analysis_store import BRANCH_TRIALS, FEW_TRIALS, FRONT, PARETO, shared_stores
from mlflow.tracking import MlflowClient

from helpers import md_cells
from results import load_study
from results.analysis import analyze
from results.importance import MIN_TRIALS, importance, scoped
from results.search_analysis import open_strata


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    return shared_stores(tmp_path_factory)


@pytest.fixture(scope="module")
def searched(stores, tmp_path_factory):
    """The importance search analysed once (fANOVA and the plots take seconds)."""
    return analyze(
        "importance", tracking_uri=stores["uri"], out=tmp_path_factory.mktemp("importance")
    )


def test_the_one_parameter_that_matters_is_ranked_first(searched):
    imp = searched.strata[0].importances[0]
    assert imp.n_trials == sum(BRANCH_TRIALS.values())
    assert list(imp.values)[0] == "beta_max" and imp.values["beta_max"] > 0.8
    assert sum(imp.values.values()) == pytest.approx(1.0)
    table = searched.markdown.split("### Hyperparameter importance")[1]
    first_row = next(
        ln
        for ln in table.splitlines()
        if ln.startswith("| ") and "parameter" not in ln and "---" not in ln
    )
    assert md_cells(first_row)[0] == "beta_max"


def test_conditional_parameters_are_left_out_of_the_study_wide_importance(searched):
    imp = searched.strata[0].importances[0]
    assert imp.left_out == ["beta_cycles", "beta_steepness", "beta_warmup_epochs"]
    assert set(imp.values) == {"beta_max", "beta_schedule", "latent_dim", "sampling_factor"}


def test_each_branch_with_enough_trials_has_importances_over_its_own_parameters(searched):
    branches = {b.value: b.importances[0] for b in searched.strata[0].branches}
    assert set(branches) == {"linear", "cyclical", "sigmoid"}
    linear, cyclical = branches["linear"], branches["cyclical"]
    assert (linear.n_trials, cyclical.n_trials) == (22, 22)
    assert set(linear.values) == {"beta_max", "beta_warmup_epochs", "latent_dim", "sampling_factor"}
    assert set(cyclical.values) == {"beta_max", "beta_cycles", "latent_dim", "sampling_factor"}
    assert list(linear.values)[0] == "beta_max" == list(cyclical.values)[0]


def test_a_branch_below_the_minimum_says_why_and_has_no_importances(searched):
    sigmoid = next(b for b in searched.strata[0].branches if b.value == "sigmoid")
    assert sigmoid.importances[0].values == {}
    reason = f"5 complete trials, fewer than {MIN_TRIALS}: not computed"
    assert sigmoid.importances[0].reason.startswith(reason)
    assert f"- beta_schedule=sigmoid: {reason}" in searched.markdown


def test_the_same_trials_give_the_same_importances(stores):
    study = load_study("importance", stores["uri"])
    ost = open_strata(study, stores["optuna"])["n_f=5"]
    once, again = (importance(scoped(ost), 0, "val_acc_h").values for _ in range(2))
    assert once == again


def test_below_the_minimum_the_summary_says_so_and_shows_no_importances(stores, tmp_path):
    analysis = analyze("few", tracking_uri=stores["uri"], out=tmp_path)
    section = analysis.markdown.split("### Hyperparameter importance")[1].split("### ")[0]
    assert (
        f"- val_acc_h: {FEW_TRIALS} complete trials, fewer than {MIN_TRIALS}: not "
        f"computed" in section
    )
    assert "| parameter |" not in analysis.markdown
    assert analysis.strata[0].importances[0].values == {}
    assert not list(tmp_path.glob("*importance*"))


def test_pngs_are_written_and_logged_under_analysis_of_the_parent_run(searched, stores):
    names = {p.name for p in searched.files}
    assert {
        "analysis.md",
        "n_f=5_history.png",
        "n_f=5_slice.png",
        "n_f=5_parallel.png",
        "n_f=5_contour.png",
        "n_f=5_importance.png",
        "n_f=5_importance_beta_schedule=linear.png",
        "n_f=5_importance_beta_schedule=cyclical.png",
    } == names
    for p in searched.files:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = MlflowClient(stores["uri"])
    logged = {a.path for a in client.list_artifacts(searched.logged_to, "analysis")}
    assert logged == {f"analysis/{n}" for n in names}
    assert searched.logged_to == searched.study.parent_run_id


def test_the_best_trials_are_listed_with_the_val_and_test_metrics_of_their_runs(searched, stores):
    client = MlflowClient(stores["uri"])
    runs = [client.get_run(r) for r in stores["importance"]]
    best = sorted(runs, key=lambda r: -r.data.metrics["val_acc_h"])[:5]
    section = searched.markdown.split("### Best 5 trials by val_acc_h")[1].split("### ")[0]
    rows = [md_cells(ln) for ln in section.splitlines() if ln.startswith("| ")][2:]
    assert len(rows) == 5
    keys = (
        "val_acc_h",
        "val_acc",
        "test_acc_h",
        "test_acc",
        "test_acc_majority",
        "test_acc_minority",
    )
    for rank, (row, run) in enumerate(zip(rows, best), start=1):
        assert row[0] == str(rank)
        assert row[1] == run.data.tags["fsvae.trial_key"]  # one name per trial: its key
        assert row[2] == f"{run.info.run_name} ({run.info.run_id[:8]})"
        assert row[3:9] == [f"{run.data.metrics[k] * 100:.2f}" for k in keys]


def test_fewer_complete_trials_than_top_are_all_listed_and_counted(stores, tmp_path):
    analysis = analyze("few", tracking_uri=stores["uri"], out=tmp_path, top=10)
    section = analysis.markdown.split(f"### Best {FEW_TRIALS} trials by val_acc_h")[1]
    rows = [ln for ln in section.split("### ")[0].splitlines() if ln.startswith("| ")]
    assert len(rows) == 2 + FEW_TRIALS


def test_analyze_lists_the_pareto_front_with_its_test_metrics(stores, tmp_path):
    analysis = analyze("pareto", tracking_uri=stores["uri"], out=tmp_path)
    section = analysis.markdown.split("### Pareto front on val_acc_h, val_acc")[1]
    rows = [md_cells(ln) for ln in section.split("### ")[0].splitlines() if ln.startswith("| ")][2:]
    assert [r[1] for r in rows] == [f"n_f=5#{i}" for i in FRONT]  # each trial by its key
    for row, i in zip(rows, FRONT):
        h, a = PARETO[i]
        assert row[3:6] == [
            f"{h * 100:.2f}",
            f"{a * 100:.2f}",
            f"{(h - 0.05 - i / 1000) * 100:.2f}",
        ]
    assert (tmp_path / "n_f=5_pareto.png").is_file()
    assert "n_f=5_history_val_acc_h.png" in {p.name for p in analysis.files}


def test_the_importance_bars_show_the_table_s_importances(stores):
    """The bars are drawn from the importances computed for the table, not a second fit."""
    from optuna.visualization import matplotlib as ovm

    from results.importance import target
    from results.search_plots import _Computed

    study = load_study("importance", stores["uri"])
    ost = scoped(open_strata(study, stores["optuna"])["n_f=5"])
    imp = importance(ost, 0, "val_acc_h")
    ax = ovm.plot_param_importances(ost, evaluator=_Computed(imp.values), target=target(0))
    bars = {
        label.get_text(): patch.get_width()
        for label, patch in zip(ax.get_yticklabels(), ax.patches)
    }
    assert bars == pytest.approx(imp.values, abs=0.01)  # Optuna rounds the bars' values
