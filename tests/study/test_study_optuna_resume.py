"""A real Optuna study (the shipped smoke-search space, 6 trials), interrupted with Ctrl-C
after two trials finished and then resumed: every trial ends exactly once, Optuna really
varied the parameters, and MLflow holds no stale or duplicate run."""

from __future__ import annotations

import re
import signal

import pytest

from helpers import (
    FAST,
    cli,
    first_trials_done,
    make_data,
    pause_env,
    runs,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow


N = 6


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("optuna")
    data = make_data(tmp / "data")
    storage = tmp / "studies"
    uri = tracking_uri(storage)
    # One trial at a time; the third and later wait at their start (study/hooks/faults.py), so
    # Ctrl-C lands after exactly two trials finished, whatever the machine's speed.
    args = [
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "o",
        "--num-samples",
        str(N),
        "--max-concurrent",
        "1",
        *FAST,
    ]
    pauses = tmp / "pauses"
    log = tmp / "first.log"
    proc = start_cli(*args, log=log, environ=pause_env(pauses, "trial_start"))
    wait_until(
        first_trials_done(pauses, log, 2, held=1),
        400,
        "two trials done and a third waiting",
        proc,
        log,
    )
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    first_rc = proc.wait(timeout=180)
    first_log = log.read_text()
    interrupted = trial_runs(uri, "o")
    resumed = cli("resume", "--name", "o", "--storage", str(storage), timeout=600)
    return {
        "uri": uri,
        "first_rc": first_rc,
        "first_log": first_log,
        "interrupted": interrupted,
        "resumed": resumed,
        "storage": storage,
    }


def test_interrupt_stops_the_study_and_says_how_to_resume(study):
    assert study["first_rc"] == 130, study["first_log"]
    assert "INTERRUPTED" in study["first_log"]
    assert "Stop signal received" not in study["first_log"]  # Ray's own warning stays off
    assert "fsvae-study resume --name o" in study["first_log"]
    assert "RUNNING" not in set(study["interrupted"]["status"])
    assert (study["interrupted"]["status"] == "FINISHED").sum() == 2


def test_resume_finishes_every_trial_exactly_once(study):
    assert study["resumed"].returncode == 0, study["resumed"].stdout + study["resumed"].stderr
    assert f"done {N}/{N}" in study["resumed"].stdout
    children = trial_runs(study["uri"], "o")
    assert len(children) == N
    assert children["tags.fsvae.trial_id"].nunique() == N
    assert set(children["status"]) == {"FINISHED"}


def test_finished_trials_are_not_rerun_on_resume(study):
    before = study["interrupted"]
    done_before = set(before[before["status"] == "FINISHED"]["run_id"])
    after = set(trial_runs(study["uri"], "o")["run_id"])
    assert done_before <= after  # the same runs, not new ones


def test_no_stale_running_or_duplicate_runs_remain(study):
    every = runs(study["uri"], "o", deleted_too=True)
    assert "RUNNING" not in set(every["status"])
    active = trial_runs(study["uri"], "o")
    assert active["tags.fsvae.trial_id"].is_unique


def test_optuna_varies_the_searched_parameters(study):
    children = trial_runs(study["uri"], "o")
    assert children["params.latent_dim"].nunique() > 1
    assert children["params.beta_max"].nunique() > 1
    assert set(children["params.method"]) == {"vae"}  # fixed, beside the search
    assert set(children["params.n_f"]) == {"5"}  # the stratum
    assert set(children["tags.fsvae.stratum"]) == {"n_f=5"}


def test_conditional_parameters_appear_only_with_their_parent(study):
    children = trial_runs(study["uri"], "o")
    for _, run in children.iterrows():
        schedule = run["params.beta_schedule"]
        has = {
            k: isinstance(run.get(f"params.{k}"), str)
            for k in ("beta_warmup_epochs", "beta_cycles", "beta_steepness")
        }
        assert has["beta_warmup_epochs"] == (schedule == "linear"), run["run_id"]
        assert has["beta_cycles"] == (schedule == "cyclical"), run["run_id"]
        assert has["beta_steepness"] == (schedule == "sigmoid"), run["run_id"]


def test_all_trials_of_a_stratum_share_one_backbone(study):
    children = trial_runs(study["uri"], "o")
    assert children["tags.cache.backbone.key"].nunique() == 1
    assert list(children["tags.cache.backbone"]).count("miss") == 1


def test_parent_run_ends_finished_after_resume(study):
    df = runs(study["uri"], "o")
    parent = df[df["tags.fsvae.role"] == "study"]
    assert len(parent) == 1 and parent.iloc[0]["status"] == "FINISHED"


def test_after_ctrl_c_the_console_counts_what_the_record_holds(study):
    # Every trial the summary counts as finished had a console line saying it ended.
    log = study["first_log"]
    finished = int(re.search(r"INTERRUPTED; (\d+) trials finished", log)[1])
    ended = {m for m in re.findall(r"trial (\S+) (?:done|finished as the study stopped)", log)}
    assert len(ended) == finished == (study["interrupted"]["status"] == "FINISHED").sum()
