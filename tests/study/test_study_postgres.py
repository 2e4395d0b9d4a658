"""A team's record on a real PostgreSQL server (docs/cluster.md): MLflow and
Optuna in two databases of one server, a grid and a search started at once, a driver killed
and resumed with its MLflow record behind an `mlflow server`, then table, analyze and
confirm read it back. Passwords reach the stores from the URL or PGPASSWORD, never the
record."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from helpers import (
    FAST,
    cli,
    client,
    env,
    free_port,
    kill_driver,
    make_data,
    pause_env,
    paused,
    runs,
    start_cli,
    start_mlflow_server,
    stop_process_group,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


@pytest.fixture(scope="module")
def team(postgres, tmp_path_factory):
    """A grid `g` and a search `s` started at once by two drivers, the password in their
    URLs; what the tests read back."""
    tmp = tmp_path_factory.mktemp("team")
    data = make_data(tmp / "data")
    mlflow_url = postgres.create_database("team_mlflow")
    optuna_url = postgres.create_database("team_optuna")
    secret = dict(
        tracking=with_password(mlflow_url, postgres.password),
        optuna=with_password(optuna_url, postgres.password),
    )
    storage = tmp / "studies"
    common = [
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--tracking-uri",
        secret["tracking"],
        "--optuna-storage",
        secret["optuna"],
        *FAST,
    ]
    procs = {
        "g": start_cli(
            "run",
            "--space",
            "smoke",
            "--name",
            "g",
            "--grid",
            "method=plain,vae",
            *common,
            log=tmp / "g.log",
        ),
        "s": start_cli(
            "run",
            "--space",
            "smoke-search",
            "--name",
            "s",
            "--num-samples",
            "2",
            "--max-concurrent",
            "2",
            *common,
            log=tmp / "s.log",
        ),
    }
    wait_until(
        lambda: all(p.poll() is not None for p in procs.values()), 900, "both studies to end"
    )
    logs = {name: (tmp / f"{name}.log").read_text() for name in procs}
    for name, proc in procs.items():
        assert proc.returncode == 0, f"study {name}:\n{logs[name][-4000:]}"
    return {
        "tmp": tmp,
        "data": data,
        "storage": storage,
        "mlflow": mlflow_url,
        "optuna": optuna_url,
        "password": postgres.password,
        "logs": logs,
        "env": env(**postgres.env()),
    }


def test_a_grid_and_a_search_started_at_once_both_complete(team, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", team["password"])
    assert len(trial_runs(team["mlflow"], "g")) == 4  # smoke, --grid method=plain,vae
    assert set(trial_runs(team["mlflow"], "s")["status"]) == {"FINISHED"}
    trials = optuna.load_study(study_name="s/n_f=5", storage=team["optuna"]).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    # the trials wrote to the database directly: their artifacts are on the study's
    # storage (which a cluster's nodes share), not in a ./mlruns of some process's folder
    for name in ("g", "s"):
        exp = client(team["mlflow"]).get_experiment_by_name(name)
        assert exp.artifact_location == (team["storage"] / "mlartifacts" / name).resolve().as_uri()


def test_no_password_reaches_the_record(team, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", team["password"])
    secret = team["password"]
    recorded = []
    for name in ("g", "s"):
        recorded.append((team["storage"] / name / "study.json").read_text())
        df = runs(team["mlflow"], name)
        recorded.append(df.to_json())
        parent = df[df["tags.fsvae.role"] == "study"].iloc[0]
        for artifact in ("command.txt", "study.json"):
            path = client(team["mlflow"]).download_artifacts(
                parent["run_id"], artifact, str(team["tmp"])
            )
            recorded.append(open(path).read())
    study = optuna.load_study(study_name="s/n_f=5", storage=team["optuna"])
    recorded.append(json.dumps([study.user_attrs] + [t.user_attrs for t in study.trials]))
    assert secret not in "\n".join(recorded)
    plan = json.loads(recorded[0])  # g's study.json
    assert plan["tracking_uri"] == team["mlflow"]  # the URL, less its password
    assert team["mlflow"] in "\n".join(team["logs"].values())  # the console says where
    assert secret not in "\n".join(team["logs"].values())


def test_table_analyze_and_confirm_read_the_record_with_pgpassword(team, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", team["password"])
    uri = ["--tracking-uri", team["mlflow"]]  # no password: PGPASSWORD gives it
    table = cli("table", "--experiment", "g", *uri, environ=team["env"])
    assert table.returncode == 0, table.stderr
    assert "plain" in table.stdout and "vae" in table.stdout
    analysis = cli(
        "analyze",
        "--experiment",
        "s",
        *uri,
        "--out",
        str(team["tmp"] / "analysis"),
        environ=team["env"],
    )
    assert analysis.returncode == 0, analysis.stdout + analysis.stderr
    assert (team["tmp"] / "analysis" / "s" / "analysis.md").is_file()
    confirm = cli(
        "confirm",
        "--experiment",
        "s",
        "--top",
        "1",
        "--seeds",
        "7",
        "--storage",
        str(team["storage"]),
        *uri,
        environ=team["env"],
    )
    assert confirm.returncode == 0, confirm.stdout[-3000:] + confirm.stderr[-3000:]
    assert set(trial_runs(team["mlflow"], "s-confirm")["status"]) == {"FINISHED"}
    confirmed = cli("table", "--experiment", "s-confirm", *uri, environ=team["env"])
    assert confirmed.returncode == 0, confirmed.stderr


def test_a_driver_killed_and_resumed_with_its_record_behind_an_mlflow_server(
    postgres, team, tmp_path, monkeypatch
):
    # The MLflow server keeps its runs in PostgreSQL; the study logs to it over http.
    backend = with_password(postgres.create_database("srv_mlflow"), postgres.password)
    server, uri = start_mlflow_server(tmp_path, free_port(), backend_store_uri=backend)
    try:
        storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "k.log"
        optuna_url = team["optuna"]  # the same Optuna database, another study in it
        args = [
            "run",
            "--space",
            "smoke-search",
            "--data",
            str(team["data"]),
            "--storage",
            str(storage),
            "--name",
            "k",
            "--num-samples",
            "2",
            "--max-concurrent",
            "2",
            "--tracking-uri",
            uri,
            "--optuna-storage",
            optuna_url,
            *FAST,
        ]
        proc = start_cli(
            *args, log=log, environ={**pause_env(pauses, "trial_finished"), **postgres.env()}
        )
        try:
            wait_until(
                lambda: len(paused(pauses, "trial_finished")) >= 2,
                400,
                "both trials' runs FINISHED, Tune not told",
                proc,
                log,
            )
        finally:
            kill_driver(proc)
        resumed = cli("resume", "--name", "k", "--storage", str(storage), environ=team["env"])
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert "2 adopted from MLflow" in resumed.stdout
        children = trial_runs(uri, "k")
        assert len(children) == 2 and set(children["status"]) == {"FINISHED"}
        assert "RUNNING" not in set(runs(uri, "k", deleted_too=True)["status"])
        monkeypatch.setenv("PGPASSWORD", postgres.password)
        trials = optuna.load_study(study_name="k/n_f=5", storage=optuna_url).get_trials()
        values = dict(zip(children["run_id"], children["metrics.val_acc_h"]))
        assert {t.user_attrs["mlflow_run_id"]: t.value for t in trials} == values
    finally:
        stop_process_group(server)
