"""What a user meets, through the command line as a user runs it: exit codes a script can
trust (0, 3, 2, 130), a stratum stopped at once when every trial of it would fail the same
way, the data report on the console, one name per trial, `resume` while a driver holds the
study, and a completed study's Ray folder gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsvae import demo_data
from helpers import (
    FAST,
    cli,
    make_data,
    pause_env,
    paused,
    release_new,
    runs,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_a_search_every_trial_of_which_would_fail_stops_at_once_and_exits_2(tmp_path):
    data = make_data(tmp_path / "data")
    storage = tmp_path / "studies"
    proc = cli(
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "big",
        "--num-samples",
        "6",
        *FAST,
        "--set",
        "n_f=500",
    )
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fsvae-study run: error: every trial of the study would fail the same way" in proc.stderr
    assert "SplitError: n_f=500" in proc.stderr
    assert "--retry-failed" not in proc.stdout  # it would fail again
    assert "STOPPED" in proc.stdout
    children = trial_runs(tracking_uri(storage), "big")
    assert len(children) < 6  # not every trial was run into it
    assert "RUNNING" not in set(runs(tracking_uri(storage), "big")["status"])


def test_data_every_trial_would_fail_on_stops_a_grid_and_exits_2(tmp_path):
    data = make_data(tmp_path / "data")
    # One class's rows out of train.csv: no split of it can be made.
    lines = (data / "train.csv").read_text().splitlines()
    (data / "train.csv").write_text("\n".join(ln for ln in lines if "/street/" not in ln) + "\n")
    proc = cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(tmp_path / "studies"),
        "--name",
        "g",
        "--max-concurrent",
        "1",
        *FAST,
    )
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "would fail the same way" in proc.stderr and "street" in proc.stderr
    failed = trial_runs(tracking_uri(tmp_path / "studies"), "g")
    assert (failed["status"] == "FAILED").sum() == 1  # the first trial, then it stopped


@pytest.fixture(scope="module")
def defects(tmp_path_factory):
    """A two-trial grid on data with one file of each defect: (completed process, storage)."""
    tmp = tmp_path_factory.mktemp("outcomes")
    demo_data.make(tmp / "data", per_class=20, image_size=32, seed=0, defects=True)
    storage = tmp / "studies"
    proc = cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(tmp / "data"),
        "--storage",
        str(storage),
        "--name",
        "d",
        "--grid",
        "method=plain",
        *FAST,
    )
    return proc, storage


def test_a_complete_study_exits_0(defects):
    proc, _ = defects
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "complete; 2 trials finished, 0 failed" in proc.stdout


def test_the_data_report_reaches_the_console_once(defects):
    out = defects[0].stdout
    assert out.count("listed images usable") == 1
    assert "not used: 1 missing: dataset/conservative/missing_0001.jpg" in out
    assert "not used: 1 unreadable: dataset/conservative/truncated_0001.jpg" in out
    assert "used, noted: 1 odd_extension: dataset/conservative/noext_0001" in out
    assert "data_report.json" in out


def test_a_trial_goes_by_its_key_on_the_console_and_in_mlflow(defects):
    proc, storage = defects
    children = trial_runs(tracking_uri(storage), "d")
    for _, run in children.iterrows():
        short = run["tags.fsvae.trial_key"][: len("grid:") + 8]
        assert run["tags.mlflow.runName"].startswith(short + " ")
        assert f"trial {short} done" in proc.stdout
    assert not re.search(r"trial [0-9a-f]{5}_\d{5}", proc.stdout)  # no Ray Tune trial ids


def test_a_complete_studys_ray_folder_is_removed(defects):
    logs = re.search(r"its logs \(kept unless the study completes\): (\S+)", defects[0].stdout)
    assert logs, defects[0].stdout[:500]
    assert not Path(logs[1]).parent.exists()


def test_resume_while_a_driver_starts_the_study_says_it_is_being_run(tmp_path):
    data = make_data(tmp_path / "data")
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    proc = start_cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "early",
        "--grid",
        "method=plain",
        *FAST,
        log=log,
        environ=pause_env(pauses, "name_claimed"),
    )
    try:
        # The driver holds its folder's lock and is about to claim the name: no record yet.
        wait_until(lambda: paused(pauses, "name_claimed"), 300, "the claim", proc, log)
        early = cli("resume", "--name", "early", "--storage", str(storage))
        assert early.returncode == 2, early.stdout + early.stderr
        assert "study 'early' is being run by another process now" in early.stderr
    finally:
        release_new(pauses, "name_claimed", set())
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
