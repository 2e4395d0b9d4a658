"""Exactly once when a trial's worker process dies (continued from test_study_kills.py): a
killed worker is retried without a resume; one with no retries left is failed once and
retried on request, as are failed search trials, with their parameters."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest

from helpers import (
    cli,
    env,
    pause_env,
    paused,
    release_new,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)
from helpers.kills import N, assert_exactly_once, make_base, study_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base(tmp_path_factory)


def kill_a_worker(base, tmp_path: Path, name: str, *extra: str, code: int = 0) -> tuple[str, Path]:
    """Runs the grid, SIGKILLs the first trial's process mid-trial (as the kernel's OOM
    killer would), lets the others run, and waits for the study to end with exit status
    `code`. Returns (console, storage)."""
    storage = tmp_path / "studies"
    pauses = tmp_path / "pauses"
    log = tmp_path / "run.log"
    proc = start_cli(
        *study_args(base, "grid4", storage, name),
        *extra,
        log=log,
        environ=pause_env(pauses, "trial_running"),
    )
    first = wait_until(lambda: paused(pauses, "trial_running"), 400, "a running trial", proc, log)[
        0
    ]
    os.kill(first["pid"], signal.SIGKILL)
    seen = {first["file"]}

    def release_the_rest():
        release_new(pauses, "trial_running", seen)
        return proc.poll() is not None

    wait_until(release_the_rest, 600, "the study to end", None, log)
    out = log.read_text()
    assert proc.returncode == code, out[-4000:]
    return out, storage


@pytest.mark.essential
def test_a_killed_worker_process_is_retried_without_a_resume(base, tmp_path):
    out, storage = kill_a_worker(base, tmp_path, "w")
    assert "retrying: its worker process died (attempt 2 of 3)" in out
    result = {
        "uri": tracking_uri(storage),
        "name": "w",
        "storage": storage,
        "before": None,
        "resumed": _Done(out),
    }
    assert_exactly_once(result, 4, search=False)


class _Done:
    """A finished study's console, shaped like a CompletedProcess for assert_exactly_once."""

    def __init__(self, out: str):
        self.returncode, self.stdout, self.stderr = 0, out, ""


def test_a_worker_lost_with_no_retries_left_is_failed_once_then_retried_on_request(base, tmp_path):
    out, storage = kill_a_worker(base, tmp_path, "z", "--infra-retries", "0", code=3)
    assert "FAILED after 1 attempt (its worker process died)" in out
    assert "complete; 3 trials finished, 1 failed" in out
    assert f"fsvae-study resume --name z --storage {storage} --retry-failed" in out
    uri = tracking_uri(storage)
    children = trial_runs(uri, "z")
    failed = children[children["status"] == "FAILED"]
    assert len(children) == 4 and len(failed) == 1
    assert failed.iloc[0]["tags.fsvae.failure"] == "infrastructure"
    assert "worker process died" in failed.iloc[0]["tags.fsvae.error"]

    again = cli("resume", "--name", "z", "--storage", str(storage), "--retry-failed")
    result = {"uri": uri, "name": "z", "storage": storage, "before": children, "resumed": again}
    assert_exactly_once(result, 4, search=False)
    retried = trial_runs(uri, "z")
    retried = retried[retried["tags.fsvae.trial_key"] == failed.iloc[0]["tags.fsvae.trial_key"]]
    assert retried.iloc[0]["tags.fsvae.replaces"] == failed.iloc[0]["run_id"]


def test_failed_search_trials_are_retried_with_their_parameters_on_request(base, tmp_path):
    storage = tmp_path / "studies"
    environ = env(FSVAE_FAIL_AT="trial_running")  # every trial's own code raises
    first = cli(*study_args(base, "smoke-search", storage, "f"), environ=environ)
    assert first.returncode == 3, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"complete; 0 trials finished, {N} failed" in first.stdout
    url = f"sqlite:///{storage / 'optuna.db'}"
    failed = optuna.load_study(study_name="f/n_f=5", storage=url).get_trials()
    assert [t.state for t in failed] == [optuna.trial.TrialState.FAIL] * N
    again = cli("resume", "--name", "f", "--storage", str(storage), "--retry-failed")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"done {N}/{N}" in again.stdout
    trials = optuna.load_study(study_name="f/n_f=5", storage=url).get_trials()
    retries = [t for t in trials if "retry_of" in t.user_attrs]
    assert len(trials) == 2 * N and len(retries) == N
    for t in retries:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.params == trials[t.user_attrs["retry_of"]].params  # the same point again
    children = trial_runs(tracking_uri(storage), "f")
    assert len(children) == N and set(children["status"]) == {"FINISHED"}
    assert set(children["tags.fsvae.trial_key"]) == {f"n_f=5#{t.number}" for t in retries}
