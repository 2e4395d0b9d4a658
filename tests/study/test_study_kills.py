"""Exactly once, whatever is killed and when: the driver is SIGKILLed at each point a study
can be at (before any trial finished, mid-trial, while a trial writes its run, after its
run FINISHED but before anyone heard, before the driver told Optuna, during the shared
backbone build, after some trials finished), for a grid and for an Optuna search with a
seeded and an unseeded sampler; then `resume`. A killed worker process is retried without
a resume. Kills are triggered by the processes themselves reaching a named point
(study/hooks/faults.py), never by sleeps or by racing a console line: "after some trials
finished" holds the later trials at their start.

After each: exactly one FINISHED run per trial key and as many keys as the study has
trials, no RUNNING run (deleted ones included), finished runs kept rather than recomputed,
and, for a search, an Optuna study holding exactly those trials, all COMPLETE, with the
values MLflow has."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import optuna
import pytest

from helpers import (
    FAST,
    GRID4,
    cli,
    env,
    first_trials_done,
    kill_driver,
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

N = 4  # trials of a search; 2 at a time
UNSEEDED = """
name: unseeded
kind: optuna
preset: tiny
objective: val_acc_h
num_samples: 4
strata: {n_f: [5]}
fixed: {method: vae, seed: 0}
params:
  latent_dim: {type: int, low: 8, high: 64, log: true}
  beta_max: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
resources: {cpu: 1}
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kills")
    (tmp / "unseeded.yaml").write_text(UNSEEDED)
    (tmp / "grid4.yaml").write_text(GRID4)
    return {"tmp": tmp, "data": make_data(tmp / "data")}


def study_args(base, space: str, storage: Path, name: str) -> list[str]:
    extra = ["--num-samples", str(N)] if space != "grid4" else []
    space = space if space == "smoke-search" else str(base["tmp"] / f"{space}.yaml")
    return [
        "run",
        "--space",
        space,
        "--data",
        str(base["data"]),
        "--storage",
        str(storage),
        "--name",
        name,
        "--max-concurrent",
        "2",
        *extra,
        *FAST,
    ]


def kill_then_resume(
    base, tmp: Path, space: str, point: str | None, count: int = 1, done: int | None = None
) -> dict:
    """Runs a study until `count` processes wait at `point` (or, with `done`, until exactly
    `done` trials have finished and the next two wait at their start), SIGKILLs its driver,
    then resumes it. Returns what a test checks."""
    storage, name = tmp / "studies", "k"
    uri = tracking_uri(storage)
    pauses = tmp / "pauses"
    log = tmp / "first.log"
    proc = start_cli(
        *study_args(base, space, storage, name),
        log=log,
        environ=pause_env(pauses, point or "trial_start"),
    )
    try:
        if point:
            wait_until(
                lambda: len(paused(pauses, point)) >= count,
                400,
                f"{count} process(es) at {point}",
                proc,
                log,
            )
        else:
            assert done is not None, "kill_then_resume needs a point or done"
            wait_until(
                first_trials_done(pauses, log, done, held=2),
                400,
                f"{done} trials done and two more waiting",
                proc,
                log,
            )
    finally:
        kill_driver(proc)
    before = trial_runs(uri, name) if (storage / "mlflow.db").exists() else None
    resumed = cli("resume", "--name", name, "--storage", str(storage), timeout=900)
    return {
        "uri": uri,
        "name": name,
        "storage": storage,
        "before": before,
        "resumed": resumed,
        "log": log.read_text(),
    }


def counted_from(console: str) -> int:
    """The 'done' count of a session's first trial line: what earlier sessions finished."""
    counts = re.findall(r"\| done (\d+)/", console)
    assert counts, console[-3000:]
    return int(counts[0])


def assert_exactly_once(result: dict, n: int, search: bool) -> None:
    proc = result["resumed"]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "complete;" in proc.stdout
    children = trial_runs(result["uri"], result["name"])
    assert len(children) == n, children[["tags.fsvae.trial_key", "status"]]
    assert children["tags.fsvae.trial_key"].is_unique
    assert set(children["status"]) == {"FINISHED"}
    every = runs(result["uri"], result["name"], deleted_too=True)
    assert "RUNNING" not in set(every["status"])
    before = result["before"]
    if before is not None and len(before):
        done = set(before[before["status"] == "FINISHED"]["run_id"])
        assert done <= set(children["run_id"]), "a finished trial was computed again"
    if search:
        study = optuna.load_study(
            study_name=f"{result['name']}/n_f=5",
            storage=f"sqlite:///{result['storage'] / 'optuna.db'}",
        )
        trials = study.get_trials()
        assert len(trials) == n
        assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
        by_key = {f"n_f=5#{t.number}": t for t in trials}
        assert set(by_key) == set(children["tags.fsvae.trial_key"])
        for _, run in children.iterrows():
            trial = by_key[run["tags.fsvae.trial_key"]]
            assert trial.value == pytest.approx(run["metrics.val_acc_h"])
            assert trial.user_attrs["mlflow_run_id"] == run["run_id"]


def test_search_killed_before_any_trial_finished(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "smoke-search", "trial_start", count=2)
    assert result["before"] is None or not (result["before"]["status"] == "FINISHED").any()
    assert_exactly_once(result, N, search=True)


def test_search_killed_after_runs_finished_unseen_adopts_them(base, tmp_path):
    # Both trials' runs are FINISHED in MLflow; neither Tune nor Optuna has heard.
    result = kill_then_resume(base, tmp_path, "smoke-search", "trial_finished", count=2)
    assert (result["before"]["status"] == "FINISHED").sum() == 2
    assert "had finished in MLflow before the last driver stopped" in result["resumed"].stdout
    assert "2 adopted from MLflow" in result["resumed"].stdout
    assert_exactly_once(result, N, search=True)


def test_search_killed_before_the_driver_told_optuna(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "smoke-search", "searcher_tell", count=1)
    # The run that finished is adopted (and maybe the other trial's, which went on while
    # the driver waited).
    assert re.search(r"[12] adopted from MLflow", result["resumed"].stdout)
    assert_exactly_once(result, N, search=True)


def test_search_killed_while_a_trial_writes_its_run(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "smoke-search", "trial_finishing", count=1)
    assert_exactly_once(result, N, search=True)


def test_search_killed_during_the_shared_backbone_build(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "smoke-search", "shared_build", count=1)
    assert_exactly_once(result, N, search=True)


def test_unseeded_search_killed_after_some_trials_finished(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "unseeded", None, done=2)
    assert (result["before"]["status"] == "FINISHED").sum() == 2
    assert counted_from(result["resumed"].stdout) == 2
    assert_exactly_once(result, N, search=True)
    space = json.loads((result["storage"] / "k" / "study.json").read_text())["space"]
    assert space["sampler_seed"] is None


@pytest.mark.essential
def test_grid_killed_mid_trial(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "grid4", "trial_running", count=2)
    assert_exactly_once(result, 4, search=False)


def test_grid_killed_after_some_trials_finished(base, tmp_path):
    result = kill_then_resume(base, tmp_path, "grid4", None, done=2)
    assert (result["before"]["status"] == "FINISHED").sum() == 2
    assert counted_from(result["resumed"].stdout) == 2
    assert_exactly_once(result, 4, search=False)


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
