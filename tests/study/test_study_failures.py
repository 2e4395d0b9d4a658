"""A trial that raises is recorded as FAILED with its reason and the study goes on;
retries replace the failed attempt instead of duplicating it."""

from __future__ import annotations

import pytest

from helpers import FAST, cli, make_data, runs, tracking_uri, trial_runs

pytestmark = pytest.mark.slow


SPACE = """
name: failing
kind: grid
preset: tiny
fixed: {method: plain}
grid:
  n_f: [5, 1000]   # 1000 is more than any class has: that trial raises SplitError
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fail")
    data = make_data(tmp / "data")
    space = tmp / "failing.yaml"
    space.write_text(SPACE)
    storage = tmp / "studies"
    proc = cli(
        "run",
        "--space",
        str(space),
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--max-failures",
        "1",
        *FAST,
    )
    return {"proc": proc, "uri": tracking_uri(storage)}


def test_study_with_a_failing_trial_still_completes_and_exits_3(study):
    # Exit 3: complete, but a trial failed (0 would tell a script that all went well).
    assert study["proc"].returncode == 3, study["proc"].stdout + study["proc"].stderr
    assert "complete; 1 trials finished, 1 failed" in study["proc"].stdout


def test_a_failure_of_the_config_is_not_offered_a_retry(study):
    out = study["proc"].stdout
    assert "a retry would fail the same way" in out and "--retry-failed" not in out


def test_failing_trial_is_a_failed_run_with_its_reason(study):
    children = trial_runs(study["uri"], "failing")
    failed = children[children["status"] == "FAILED"]
    assert len(failed) == 1
    assert failed.iloc[0]["params.n_f"] == "1000"
    assert "SplitError" in failed.iloc[0]["tags.fsvae.error"]
    assert "only" in failed.iloc[0]["tags.fsvae.error"]  # "... has only N usable train images"
    ok = children[children["status"] == "FINISHED"]
    assert list(ok["params.n_f"]) == ["5"]


def test_console_names_the_failure_without_a_traceback(study):
    out = study["proc"].stdout
    assert "FAILED (SplitError: n_f=1000" in out
    assert "Traceback" not in out


def test_a_retried_trial_keeps_one_visible_run(study):
    children = trial_runs(study["uri"], "failing")
    assert children["tags.fsvae.trial_id"].is_unique
    failed = children[children["status"] == "FAILED"].iloc[0]
    assert failed["tags.fsvae.attempt"] == "2"  # --max-failures 1: tried twice
    every = runs(study["uri"], "failing", deleted_too=True)
    replaced = every[every["run_id"] == failed["tags.fsvae.replaces"]]
    assert len(replaced) == 1  # the first attempt is kept, deleted, not shown
