"""One best trial for every command (docs/tables.md#the-best-trial): a search whose two
trials tie on the validation objective, and whose trial #1 started before #0. The rule:
the lowest Optuna trial number, so #0, whatever started first. The console's best so far,
the searcher's prior best, `analyze`, `table`, the ranking `confirm` reruns, `figures`'
default run and the best model of `predict`, `run --log-model` and `analyze --log-best`
all name #0. Real SQLite MLflow and Optuna stores, written as a search writes them."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
from analysis_store import DISTRIBUTIONS, SearchWriter, metrics_of
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from helpers import REPO, env
from results.confirm_table import ranked
from results.figures import pick_run
from results.store import load_study
from study.model.best import best_trial
from study.record.read import best_of
from study.search.searcher import reconcile

TIED = [  # trial number, its params, its start (seconds after the parent's): #1 first
    (
        0,
        {
            "beta_schedule": "linear",
            "beta_max": 1e-3,
            "beta_warmup_epochs": 4,
            "latent_dim": 16,
            "sampling_factor": 30,
        },
        200,
    ),
    (
        1,
        {
            "beta_schedule": "cyclical",
            "beta_max": 1e-2,
            "beta_cycles": 2,
            "latent_dim": 32,
            "sampling_factor": 10,
        },
        100,
    ),
]


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    """A search `tie` whose trials #0 and #1 both scored val_acc_h 0.0, #1 started first."""
    root = tmp_path_factory.mktemp("tie")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    search = SearchWriter(client, root, "tie", ["val_acc_h"])
    keys = {}
    for number, params, start in TIED:
        rid = search.record.trial(
            start,
            {"method": "vae", "n_f": 5, **params},
            metrics_of(0.0, 0.5, number),
            "FINISHED",
            stratum="n_f=5",
            tags={"fsvae.trial_key": f"n_f=5#{number}"},
        )
        keys[rid] = f"n_f=5#{number}"
        search.study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                params=params,
                values=[0.0],
                distributions={k: DISTRIBUTIONS[k] for k in params},
                user_attrs={"mlflow_run_id": rid},
            )
        )
    study = load_study("tie", uri)
    starts = dict(zip(study.trials["trial_key"], study.trials["start_time"]))
    assert starts["n_f=5#1"] < starts["n_f=5#0"]  # the tie the rule must break
    return {
        "root": root,
        "uri": uri,
        "client": client,
        "search": search,
        "keys": keys,
        "study": study,
    }


def test_the_console_and_the_searcher_name_the_lowest_number(tied):
    # The console's best so far: (value, key, start, point) per finished trial, as it has
    # them (study/driver/progress.py), #1 first, as it started and ended first.
    finished = [(0.0, "n_f=5#1", 1000.0, {}), (0.0, "n_f=5#0", 2000.0, {})]
    assert best_of(finished, "max")[1] == "n_f=5#0"
    # The searcher's best of the trials earlier sessions told (a resumed session's line).
    stratum = reconcile(tied["search"].study, "n_f=5", {}, ["val_acc_h"], 2, False)
    assert stratum.best[1] == "n_f=5#0"


def test_confirm_figures_and_the_best_model_name_the_lowest_number(tied):
    study = tied["study"]
    ranking = ranked(study, study.objective, study.mode)
    assert ranking[ranking["rank"] == 1]["trial_key"].tolist() == ["n_f=5#0"]
    assert pick_run(study, None)["trial_key"] == "n_f=5#0"
    client = tied["client"]
    exp = client.get_experiment_by_name("tie").experiment_id
    best = best_trial(client, exp, study.parent_run_id, "val_acc_h", "max")
    assert best.key == "n_f=5#0"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fsvae_study", *args],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_table_and_analyze_name_the_lowest_number(tied, tmp_path):
    csv = tmp_path / "t.csv"
    table = cli(
        "table",
        "--experiment",
        "tie",
        "--tracking-uri",
        tied["uri"],
        "--format",
        "csv",
        "--out",
        str(csv),
    )
    assert table.returncode == 0, table.stderr
    run_ids = {
        r for line in csv.read_text().splitlines()[1:] for r in line.split(",") if r in tied["keys"]
    }
    assert {tied["keys"][r] for r in run_ids} == {"n_f=5#0"}
    assert (
        "ties: the lowest trial number"
        in cli("table", "--experiment", "tie", "--tracking-uri", tied["uri"]).stdout
    )
    out = tmp_path / "analysis"
    analysis = cli(
        "analyze", "--experiment", "tie", "--tracking-uri", tied["uri"], "--out", str(out)
    )
    assert analysis.returncode == 0, analysis.stderr
    text = (out / "tie" / "analysis.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 1 |")]
    assert rows and "n_f=5#0" in rows[0], text
    assert json.dumps("n_f=5#1") not in rows[0]
