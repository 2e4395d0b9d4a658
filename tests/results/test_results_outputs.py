"""`table`, `figures` and `analyze` as a user runs them (the real command in a subprocess):
each works on every kind of study, writes beside the study unless told otherwise, keeps
two studies' files apart, and prints numbers a reader can take at their word."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from analysis_store import shared_stores
from results_store import shared_store

from fsvae_study.cli import parser
from helpers import cli

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    return shared_stores(tmp_path_factory)


def storage_of(uri: str) -> Path:
    """The folder holding a test store's mlflow.db (and optuna.db): a study storage."""
    return Path(uri.removeprefix("sqlite:///")).parent


def pngs(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.png"))
    assert all(p.read_bytes()[:8] == PNG for p in found)
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, kind",
    [
        ("grid-fx", "grid"),
        ("few", "search"),
        ("pareto", "multi-objective search"),
        ("few-confirm", "confirmation"),
    ],
)
def test_table_figures_and_analyze_work_on_every_kind_of_study(stores, experiment, kind):
    storage = storage_of(stores["uri"])
    table = cli("table", "--experiment", experiment, "--storage", str(storage), timeout=120)
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith(f"**{experiment} (")
    figures = cli("figures", "--experiment", experiment, "--storage", str(storage), timeout=120)
    assert figures.returncode == 0, kind + figures.stderr
    drawn = pngs(storage / experiment / "figures")
    assert len(drawn) >= 2 and [str(p) for p in drawn] == sorted(
        ln for ln in figures.stdout.splitlines() if ln.endswith(".png")
    )
    analyze = cli("analyze", "--experiment", experiment, "--storage", str(storage), timeout=300)
    assert analyze.returncode == 0, kind + analyze.stderr
    page = storage / experiment / "analysis" / "analysis.md"
    assert f"wrote {page} and " in analyze.stdout
    assert page.read_text().startswith(f"# Analysis: {experiment} (")


def test_outputs_go_to_the_study_folder_of_the_default_storage(stores, tmp_path):
    for command, what in (("figures", "figures"), ("analyze", "analysis")):
        done = cli(
            command,
            "--experiment",
            "few",
            "--tracking-uri",
            stores["uri"],
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "fsvae-studies" / "few" / what).is_dir(), command
    assert pngs(tmp_path / "fsvae-studies" / "few" / "figures")
    assert (tmp_path / "fsvae-studies" / "few" / "analysis" / "analysis.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fsvae-studies"]


def test_two_studies_sharing_an_out_folder_keep_their_own_files(stores, tmp_path):
    for experiment in ("few", "importance"):  # both draw test_acc_h_vs_n_f.png
        done = cli(
            "figures",
            "--experiment",
            experiment,
            "--tracking-uri",
            stores["uri"],
            "--out",
            str(tmp_path),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    few, other = (tmp_path / e / "test_acc_h_vs_n_f.png" for e in ("few", "importance"))
    assert few.read_bytes() != other.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few", "importance"]


def test_a_confirmation_with_two_seeds_keeps_its_intervals_within_0_and_100(stores, tmp_path):
    out = tmp_path / "t.md"
    done = cli(
        "table",
        "--experiment",
        "few-confirm",
        "--tracking-uri",
        stores["uri"],
        "--out",
        str(out),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    # val_acc_h 95 and 99: mean 97, the t interval 97 ± 12.71 · 2.00 reaches 122.41
    assert "97.00 [71.59, 100.00]" in text
    bounds = [float(b) for lo_hi in re.findall(r"\[([\d.]+), ([\d.]+)\]", text) for b in lo_hi]
    assert bounds and all(0 <= b <= 100 for b in bounds)
    assert (
        "Cells over 2 seeds (rows n_f=5 rank 1, n_f=5 rank 2): their std and 95% "
        "interval rest on two values and say little" in text
    )
    csv = tmp_path / "t.csv"
    assert (
        cli(
            "table",
            "--experiment",
            "few-confirm",
            "--tracking-uri",
            stores["uri"],
            "--format",
            "csv",
            "--out",
            str(csv),
            timeout=120,
        ).returncode
        == 0
    )
    cells = pd.read_csv(csv)
    assert cells["ci95_high"].max() == 100.0 and cells["ci95_low"].min() >= 0


def test_a_latex_table_has_one_precision(tmp_path_factory, tmp_path):
    store = shared_store(tmp_path_factory)
    for experiment in ("grid", "search"):
        out = tmp_path / f"{experiment}.tex"
        done = cli(
            "table",
            "--experiment",
            experiment,
            "--tracking-uri",
            store["uri"],
            "--with-paper",
            "--format",
            "latex",
            "--out",
            str(out),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        typeset = "\n".join(
            ln
            for ln in out.read_text().splitlines()
            if not ln.startswith("%") and not ln.startswith(r"\caption")
        )
        decimals = {len(d) for d in re.findall(r"\d\.(\d+)", typeset)}
        assert decimals == {1}, (experiment, decimals)


@pytest.mark.parametrize("command", ["table", "figures", "analyze"])
def test_every_argument_of_the_reading_commands_says_what_it_does(command):
    sub = next(a for a in parser()._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        assert action.help, (command, action.dest)
    helps = {o: a.help for a in sub._actions for o in a.option_strings}
    assert "--parent-run" in helps and "./fsvae-studies" in helps["--storage"]
    if command != "table":  # the default that applies: the study's own folder
        what = "figures" if command == "figures" else "analysis"
        assert f"<storage>/<experiment>/{what}/" in helps["--out"]
