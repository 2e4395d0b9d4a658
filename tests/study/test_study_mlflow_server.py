"""`--tracking-uri http://...`: a study logs to a real `mlflow server` process, as on a
cluster, with artifacts proxied by the server; and ASHA early stopping on the way, whose
stopped trials are PRUNED in the search's Optuna store."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from helpers import (
    FAST,
    cli,
    client,
    free_port,
    make_data,
    runs,
    start_mlflow_server,
    stop_process_group,
    trial_runs,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    proc, uri = start_mlflow_server(tmp, free_port())
    yield {"uri": uri, "tmp": tmp}
    stop_process_group(proc)


@pytest.fixture(scope="module")
def study(server):
    tmp = server["tmp"]
    data = make_data(tmp / "data")
    proc = cli(
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        str(tmp / "studies"),
        "--name",
        "srv",
        "--tracking-uri",
        server["uri"],
        "--num-samples",
        "6",
        "--asha",
        *FAST,
        # the last --set of a key wins: 9 epochs give ASHA rungs at 1, 3 and 9, and
        # one of these six trials (sampler seed 0) falls below the cut at 3
        "--set",
        "classifier_epochs=9",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_study_logs_to_the_server(server, study):
    children = trial_runs(server["uri"], "srv")
    assert len(children) == 6
    assert not (server["tmp"] / "studies" / "mlflow.db").exists()  # nothing local
    assert "fsvae-study table --experiment srv" in study.stdout
    assert f"--tracking-uri {server['uri']}" in study.stdout


def test_artifacts_go_through_the_server(server, study):
    children = trial_runs(server["uri"], "srv")
    done = children[children["status"] == "FINISHED"].iloc[0]
    names = {a.path for a in client(server["uri"]).list_artifacts(done["run_id"], "figures")}
    assert "figures/curves.png" in names
    assert any((server["tmp"] / "artifacts").rglob("curves.png"))


def test_asha_stopped_trials_are_closed_not_left_running(server, study):
    children = trial_runs(server["uri"], "srv")
    assert "RUNNING" not in set(children["status"])
    assert set(children["status"]) <= {"FINISHED", "KILLED"}
    stopped = children[children["status"] == "KILLED"]
    assert len(stopped) >= 1, "ASHA stopped no trial: this test checks nothing then"
    assert stopped["tags.fsvae.stopped"].str.contains("stopped|early").all()
    # a stopped trial has no test metrics: tables cannot pick it up by accident
    assert stopped["metrics.test_acc_h"].isna().all()
    parent = runs(server["uri"], "srv")
    assert (parent["tags.fsvae.role"] == "study").sum() == 1


def test_asha_stopped_trials_are_pruned_in_optuna_with_their_intermediate_values(server, study):
    storage = f"sqlite:///{server['tmp'] / 'studies' / 'optuna.db'}"
    trials = optuna.load_study(study_name="srv/n_f=5", storage=storage).get_trials()
    children = trial_runs(server["uri"], "srv")
    keys = {
        state: set(children[children["status"] == state]["tags.fsvae.trial_key"])
        for state in ("FINISHED", "KILLED")
    }
    by_state = {
        s: {f"n_f=5#{t.number}" for t in trials if t.state == s}
        for s in (TrialState.COMPLETE, TrialState.PRUNED)
    }
    assert len(trials) == 6
    assert by_state[TrialState.PRUNED] == keys["KILLED"]
    assert by_state[TrialState.COMPLETE] == keys["FINISHED"]
    for t in trials:
        if t.state == TrialState.PRUNED:
            steps = sorted(t.intermediate_values)
            assert steps and steps[-1] < 9  # stopped at a rung before the last epoch
