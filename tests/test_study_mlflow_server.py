"""`--tracking-uri http://...`: a study logs to a real `mlflow server` process, as on a
cluster, with artifacts proxied by the server; and ASHA early stopping on the way."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import FAST, cli, free_port, client, make_data, runs, trial_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{tmp / 'srv.db'}",
         "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=tmp, stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start: " + (tmp / "server.log").read_text()[-2000:])
    yield {"uri": uri, "tmp": tmp}
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def study(server):
    tmp = server["tmp"]
    data = make_data(tmp / "data")
    proc = cli("run", "--space", "smoke-search", "--data", str(data), "--storage",
               str(tmp / "studies"), "--name", "srv", "--tracking-uri", server["uri"],
               "--num-samples", "6", "--asha", *FAST,
               # the last --set of a key wins: 9 epochs give ASHA rungs at 1, 3 and 9, and
               # one of these six trials (sampler seed 0) falls below the cut at 3
               "--set", "classifier_epochs=9")
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
