"""`fsvae-study analyze` on the command line: where it writes, and exit status 2 naming
what is wrong."""

from __future__ import annotations

import pytest
from analysis_store import shared_stores

from fsvae_study.cli import main as cli_main


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    return shared_stores(tmp_path_factory)


def test_cli_unknown_experiment_exits_2_naming_it(stores, capsys):
    rc = cli_main(["analyze", "--experiment", "nope", "--tracking-uri", stores["uri"]])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.startswith("fsvae-study analyze: error: no experiment named 'nope'")
    assert "importance" in captured.err  # the experiments that exist


def test_cli_writes_the_analysis_and_says_where(stores, tmp_path, capsys):
    assert (
        cli_main(
            [
                "analyze",
                "--experiment",
                "few",
                "--tracking-uri",
                stores["uri"],
                "--out",
                str(tmp_path),
                "--top",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    mine = tmp_path / "few"  # --out DIR holds one folder per experiment
    assert f"wrote {mine / 'analysis.md'} and 3 figures" in out
    assert "logged to run " in out
    assert "### Best 2 trials by val_acc_h" in (mine / "analysis.md").read_text()


def test_cli_a_missing_optuna_storage_exits_2_naming_it(stores, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    rc = cli_main(
        [
            "analyze",
            "--experiment",
            "few",
            "--tracking-uri",
            stores["uri"],
            "--optuna-storage",
            url,
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and f"no Optuna storage at {url}" in err
    assert not (tmp_path / "none.db").exists()


def test_cli_top_below_one_exits_2(stores, capsys):
    rc = cli_main(["analyze", "--experiment", "few", "--tracking-uri", stores["uri"], "--top", "0"])
    assert rc == 2 and "top=0: expected at least 1" in capsys.readouterr().err


def test_cli_log_best_goes_to_the_best_model_logger(stores, tmp_path, capsys):
    # the hand-built study recorded no storage, so no stage cache can be found for it
    rc = cli_main(
        [
            "analyze",
            "--experiment",
            "few",
            "--tracking-uri",
            stores["uri"],
            "--out",
            str(tmp_path),
            "--log-best",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 2 and "wrote " in captured.out
    assert "records no storage: give its cache directory" in captured.err
