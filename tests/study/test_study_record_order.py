"""MLflow first, then Optuna, and Optuna follows MLflow (docs/failures.md):
a worker killed after its run FINISHED but before Tune heard counts as finished, in Optuna
too; a driver killed after it recorded a failure in MLflow but before it told Optuna leaves
a record that a resume reads without rerunning the trial; Ctrl-C during an ASHA search's
classifier stage interrupts, never prunes, and the interrupted trials run again on resume.
Kills land at named points the processes reach (study/hooks/faults.py)."""

from __future__ import annotations

import os
import signal

import optuna
import pytest
from optuna.trial import TrialState

from helpers import (
    FAST,
    cli,
    kill_driver,
    make_data,
    pause_env,
    paused,
    release,
    release_new,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow


def one_at_a_time(data, storage, name: str, *extra: str) -> list[str]:
    return [
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        name,
        "--num-samples",
        "2",
        "--max-concurrent",
        "1",
        "--infra-retries",
        "0",
        *FAST,
        *extra,
    ]


def optuna_by_key(storage, name: str) -> dict:
    study = optuna.load_study(
        study_name=f"{name}/n_f=5", storage=f"sqlite:///{storage / 'optuna.db'}"
    )
    return {f"n_f=5#{t.number}": t for t in study.get_trials()}


def assert_optuna_follows_mlflow(uri: str, storage, name: str) -> None:
    children = trial_runs(uri, name)
    trials = optuna_by_key(storage, name)
    assert set(trials) == set(children["tags.fsvae.trial_key"])
    expected = {"FINISHED": TrialState.COMPLETE, "FAILED": TrialState.FAIL}
    for _, run in children.iterrows():
        trial = trials[run["tags.fsvae.trial_key"]]
        if run["status"] == "KILLED":
            assert run["tags.fsvae.stopped"], run
            assert trial.state == TrialState.PRUNED
        else:
            assert trial.state == expected[run["status"]], (run["status"], trial.state)
        if trial.state == TrialState.COMPLETE:
            assert trial.value == pytest.approx(run["metrics.val_acc_h"])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("order") / "data")


def test_a_worker_killed_after_its_run_finished_counts_as_finished(data, tmp_path):
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    proc = start_cli(
        *one_at_a_time(data, storage, "w"), log=log, environ=pause_env(pauses, "trial_finished")
    )
    killed: list[int] = []

    def drive() -> bool:
        for record in paused(pauses, "trial_finished"):
            if not killed:
                killed.append(record["pid"])
                os.kill(record["pid"], signal.SIGKILL)  # its run is FINISHED; Tune not told
            elif record["pid"] != killed[0] and not record["file"].with_suffix(".go").exists():
                release(record)
        return proc.poll() is not None

    wait_until(drive, 600, "the study to end", None, log)
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    assert "its run had finished before its worker stopped" in out
    assert "FAILED" not in out
    assert "complete; 2 trials finished, 0 failed" in out
    uri = tracking_uri(storage)
    assert set(trial_runs(uri, "w")["status"]) == {"FINISHED"}
    assert_optuna_follows_mlflow(uri, storage, "w")


def test_a_driver_killed_between_mlflow_and_optuna_leaves_a_record_resume_reads(data, tmp_path):
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    proc = start_cli(
        *one_at_a_time(data, storage, "d"),
        log=log,
        environ=pause_env(pauses, "trial_running,searcher_tell"),
    )
    try:
        # The first trial's worker dies mid-trial (no retries left): the driver records the
        # failure in MLflow, then waits before telling Optuna, and is killed there.
        worker = wait_until(
            lambda: paused(pauses, "trial_running"), 400, "a running trial", proc, log
        )[0]
        os.kill(worker["pid"], signal.SIGKILL)
        wait_until(
            lambda: paused(pauses, "searcher_tell"),
            400,
            "the driver between MLflow and Optuna",
            proc,
            log,
        )
    finally:
        kill_driver(proc)
    uri = tracking_uri(storage)
    before = trial_runs(uri, "d")
    failed = before[before["status"] == "FAILED"]
    assert len(failed) == 1 and failed.iloc[0]["tags.fsvae.failure"] == "infrastructure"
    assert (
        optuna_by_key(storage, "d")[failed.iloc[0]["tags.fsvae.trial_key"]].state
        == TrialState.RUNNING
    )  # Optuna had not been told
    resumed = cli("resume", "--name", "d", "--storage", str(storage))
    # Exit 3: complete, with a failed trial (the one whose worker died).
    assert resumed.returncode == 3, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "complete; 1 trials finished, 1 failed" in resumed.stdout
    after = trial_runs(uri, "d")
    assert failed.iloc[0]["run_id"] in set(after["run_id"])  # read, not rerun
    assert_optuna_follows_mlflow(uri, storage, "d")


def test_ctrl_c_in_an_asha_searchs_classifier_stage_interrupts_and_resume_reruns(data, tmp_path):
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    args = [
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "a",
        "--num-samples",
        "2",
        "--max-concurrent",
        "2",
        "--asha",
        *FAST,
        "--set",
        "classifier_epochs=3",
    ]
    proc = start_cli(*args, log=log, environ=pause_env(pauses, "trial_classifier"))
    wait_until(
        lambda: len(paused(pauses, "trial_classifier")) >= 2,
        400,
        "both trials in their classifier stage",
        proc,
        log,
    )
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    # Let the trials go on once the driver has stopped them: a trial then meets the
    # SystemExit that Tune raises in tune.report for a stop, as for an ASHA stop.
    wait_until(lambda: "INTERRUPTED" in log.read_text(), 300, "the interrupt", proc, log)
    release_new(pauses, "trial_classifier", set())
    assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    uri = tracking_uri(storage)
    first = trial_runs(uri, "a")
    assert len(first) == 2 and set(first["status"]) == {"KILLED"}
    assert first["tags.fsvae.interrupted"].notna().all()
    assert "tags.fsvae.stopped" not in first or first["tags.fsvae.stopped"].isna().all()
    resumed = cli("resume", "--name", "a", "--storage", str(storage))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = trial_runs(uri, "a")
    assert len(after) == 2 and after["tags.fsvae.trial_key"].is_unique
    # Both ran again in the second session: to their end, or to an ASHA decision there.
    assert not set(after["tags.fsvae.trial_id"]) & set(first["tags.fsvae.trial_id"])
    assert set(after["status"]) <= {"FINISHED", "KILLED"}
    assert_optuna_follows_mlflow(uri, storage, "a")
