"""A search's Optuna studies live in a real database: one Optuna study per stratum, named
`<study>/<stratum>`, holding every trial with its parameters and value, readable by
`optuna.load_study` and served by optuna-dashboard. A multi-objective search keeps both
values; --asha is refused for it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from helpers import (
    FAST,
    cli,
    env,
    free_port,
    make_data,
    runs,
    stop_process_group,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow

STRATA = """
name: strata
kind: optuna
preset: tiny
objective: val_acc_h
num_samples: 2
sampler_seed: 3
strata: {n_f: [5, 10]}
fixed: {method: vae, seed: 0}
params:
  latent_dim: {type: int, low: 8, high: 64, log: true}
  beta_schedule: {type: categorical, choices: [linear, constant]}
resources: {cpu: 1}
"""
TWO_OBJECTIVES = (
    STRATA.replace("name: strata", "name: two")
    .replace("objective: val_acc_h", "objective: [val_acc_h, val_acc]\nmode: [max, max]")
    .replace("strata: {n_f: [5, 10]}", "strata: {n_f: [5]}\nsampler: nsga2")
    .replace("num_samples: 2", "num_samples: 3")
)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("optuna-store")
    (tmp / "strata.yaml").write_text(STRATA)
    storage = tmp / "studies"
    proc = cli(
        "run",
        "--space",
        str(tmp / "strata.yaml"),
        "--data",
        str(make_data(tmp / "data")),
        "--storage",
        str(storage),
        "--name",
        "os",
        *FAST,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {
        "tmp": tmp,
        "storage": storage,
        "url": f"sqlite:///{storage / 'optuna.db'}",
        "uri": tracking_uri(storage),
    }


def test_every_stratum_is_an_optuna_study_with_its_trials(search):
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(search["url"])}
    assert set(summaries) == {"os/n_f=5", "os/n_f=10"}
    children = trial_runs(search["uri"], "os")
    for name in summaries:
        trials = optuna.load_study(study_name=name, storage=search["url"]).get_trials()
        assert len(trials) == 2 and {t.state for t in trials} == {TrialState.COMPLETE}
        stratum = name.split("/", 1)[1]
        runs_here = children[children["tags.fsvae.stratum"] == stratum]
        for t in trials:
            run = runs_here[runs_here["tags.fsvae.trial_key"] == f"{stratum}#{t.number}"]
            assert len(run) == 1
            assert run.iloc[0]["run_id"] == t.user_attrs["mlflow_run_id"]
            assert t.value == pytest.approx(run.iloc[0]["metrics.val_acc_h"])
            assert run.iloc[0]["params.latent_dim"] == str(t.params["latent_dim"])


def test_the_optuna_store_is_recorded_in_study_json_and_on_the_parent_run(search):
    plan = json.loads((search["storage"] / "os" / "study.json").read_text())
    assert plan["optuna_storage"] == search["url"]
    df = runs(search["uri"], "os")
    parent = df[df["tags.fsvae.role"] == "study"].iloc[0]
    assert parent["tags.fsvae.optuna_storage"] == search["url"]


def test_optuna_dashboard_serves_the_studies(search):
    port = free_port()
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    proc = subprocess.Popen(
        [str(dashboard), search["url"], "--host", "127.0.0.1", "--port", str(port)],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def studies():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    return json.loads(r.read())
            except OSError:
                time.sleep(0.5)
                return None

        listed = wait_until(studies, 60, "optuna-dashboard's API", proc)
        names = {s["study_name"] for s in listed["study_summaries"]}
        assert set(names) == {"os/n_f=5", "os/n_f=10"}
    finally:
        stop_process_group(proc)


def test_a_two_objective_search_tells_optuna_both_values(tmp_path):
    (tmp_path / "two.yaml").write_text(TWO_OBJECTIVES)
    storage = tmp_path / "studies"
    data = make_data(tmp_path / "data")
    refused = cli(
        "run",
        "--space",
        str(tmp_path / "two.yaml"),
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "two",
        "--asha",
        *FAST,
    )
    assert refused.returncode == 2 and "--asha stops trials on one metric" in refused.stderr
    proc = cli(
        "run",
        "--space",
        str(tmp_path / "two.yaml"),
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "two",
        *FAST,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Pareto front:" in proc.stdout
    study = optuna.load_study(study_name="two/n_f=5", storage=f"sqlite:///{storage / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    children = trial_runs(tracking_uri(storage), "two")
    assert len(study.trials) == 3 == len(children)
    for t in study.trials:
        run = children[children["tags.fsvae.trial_key"] == f"n_f=5#{t.number}"].iloc[0]
        assert t.values == pytest.approx([run["metrics.val_acc_h"], run["metrics.val_acc"]])
    df = runs(tracking_uri(storage), "two")
    parent = df[df["tags.fsvae.role"] == "study"].iloc[0]
    assert parent["tags.fsvae.objective"] == "val_acc_h,val_acc"
    assert parent["tags.fsvae.mode"] == "max,max"
