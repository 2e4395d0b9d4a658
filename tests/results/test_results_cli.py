"""`fsvae-study table` on the command line: output, files, and exit status 2 for a user's
error.
"""

from __future__ import annotations

import pandas as pd
import pytest
from results_store import EXPECTED, shared_store

from fsvae_study.cli import main as cli_main
from helpers import cli


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return shared_store(tmp_path_factory)


def test_cli_errors_exit_2_with_one_line(store, capsys):
    rc = cli_main(
        ["table", "--experiment", "grid", "--tracking-uri", store["uri"], "--compare", "vae"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "expected A:B" in err[0]


def test_cli_writes_csv_to_out_and_prints_the_summaries(store, tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert (
        cli_main(
            [
                "table",
                "--experiment",
                "grid",
                "--tracking-uri",
                store["uri"],
                "--format",
                "csv",
                "--out",
                str(out),
                "--compare",
                "vae@50:crt",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert "vae x50 [latent_dim=32] minus crt x50 at n_f=5: +5.50 acc_h points" in printed
    assert len(pd.read_csv(out)) == len(EXPECTED) + 2


def test_cli_acc_h_samples_flag_shows_acc_h_samples(store, capsys):
    assert (
        cli_main(
            ["table", "--experiment", "grid", "--tracking-uri", store["uri"], "--acc-h", "samples"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| method | n_f=5 acc_h_samples | n_f=5 acc | n_f=10 acc_h_samples | n_f=10 acc |" in out
    assert "| plain | 5.00 ± 2.00 (n=3) |" in out  # 3, 5, 7 (acc_h + 3 points)


def test_cli_unknown_experiment_exits_2_naming_it(store, capsys):
    rc = cli_main(["table", "--experiment", "nope", "--tracking-uri", store["uri"]])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.startswith("fsvae-study table: error: no experiment named 'nope'")
    assert "grid" in captured.err


def test_real_cli_subprocess_prints_the_table_and_exits_0(store):
    ok = cli(
        "table",
        "--experiment",
        "grid",
        "--tracking-uri",
        store["uri"],
        "--format",
        "markdown",
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "| vae x30 [latent_dim=64] | 32.00 ± 2.83 (n=2) |" in ok.stdout
    assert "Not shown: 1 failed run (status FAILED), 1 stopped run" in ok.stdout
