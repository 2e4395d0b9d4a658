"""`fsvae-study figures` on the same hand-made MLflow store as the table tests: PNGs are
written and readable, and the learning curves are the metric histories put back into the
progress rows study.figures.plots.curves draws."""

from __future__ import annotations

import matplotlib.image
import pytest
from PIL import Image
from results_store import BEST_EPOCHS, CURVE_RUN, CURVES, shared_store

import results
from fsvae_study.cli import main as cli_main
from results import ResultsError, figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return shared_store(tmp_path_factory)


def assert_png(path) -> None:
    """An 8-byte PNG signature, and both PIL and matplotlib decode it to a non-empty image."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 100 and im.size[1] > 100
    assert matplotlib.image.imread(path).ndim == 3


def test_history_rows_are_the_progress_rows_of_each_stage(store):
    rows = figures.history_rows(store["uri"], store["ids"][CURVE_RUN])
    per_epoch = [r for r in rows if "epoch" in r]
    for stage, keys in CURVES.items():
        mine = [r for r in per_epoch if r["stage"] == stage]
        assert [r["epoch"] for r in mine] == list(range(len(next(iter(keys.values())))))
        for key, values in keys.items():
            assert [r[key] for r in mine] == pytest.approx(values), (stage, key)
    best = [r for r in rows if "best_epoch" in r]
    assert best == [{"stage": s, "best_epoch": e} for s, e in BEST_EPOCHS.items()]


def test_default_curve_run_is_the_best_by_validation_objective(store):
    study = results.load_study("grid", store["uri"])
    assert figures.pick_run(study, None)["run_id"] == store["ids"][CURVE_RUN]  # val 0.62


def test_default_curve_run_is_never_a_run_the_table_does_not_count(store):
    study = results.load_study("search-rerun", store["uri"])
    # run 0 has the highest val_acc_h (0.90), but its trial was run again and finished
    assert figures.pick_run(study, None)["run_id"] == store["rerun_ids"][6]  # val 0.60


def test_run_is_found_by_id_or_name_and_an_unknown_one_is_an_error(store):
    study = results.load_study("grid", store["uri"])
    assert figures.pick_run(study, "trial-5")["run_id"] == store["ids"][5]
    assert figures.pick_run(study, store["ids"][7])["status"] == "KILLED"
    with pytest.raises(ResultsError, match="'trial-99': no trial run with that id or name"):
        figures.pick_run(study, "trial-99")


def test_figures_command_writes_valid_pngs_and_prints_their_paths(store, tmp_path, capsys):
    out = tmp_path / "figs"
    assert (
        cli_main(
            ["figures", "--experiment", "grid", "--tracking-uri", store["uri"], "--out", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out.split()
    mine = out / "grid"  # --out DIR holds one folder per experiment
    expected = [
        mine / "test_acc_h_vs_n_f.png",
        mine / "test_acc_vs_n_f.png",
        mine / f"curves_trial-{CURVE_RUN}.png",
    ]
    assert printed == [str(p) for p in expected]
    for p in expected:
        assert_png(p)


def test_a_run_without_curves_gets_no_curve_figure(store, tmp_path):
    study = results.load_study("grid", store["uri"])
    assert figures.curve_figure(study, "trial-5", tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_optuna_study_figures_plot_the_best_trial_per_stratum(store, tmp_path):
    study = results.load_study("search", store["uri"])
    paths = figures.metric_figures(study, "test", tmp_path)
    assert [p.name for p in paths] == ["test_acc_h_vs_n_f.png", "test_acc_vs_n_f.png"]
    for p in paths:
        assert_png(p)


def test_unknown_experiment_is_an_error_and_writes_nothing(store, tmp_path, capsys):
    rc = cli_main(
        [
            "figures",
            "--experiment",
            "nope",
            "--tracking-uri",
            store["uri"],
            "--out",
            str(tmp_path / "figs"),
        ]
    )
    assert rc == 2
    assert "no experiment named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "figs").exists()
