"""PostgreSQL as the record: MLflow's tracking store and Optuna's RDB storage on a real
server (the session's `postgres` fixture), in-process and behind a real `mlflow server`,
with the password given through PGPASSWORD and never in a URL."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest
import sqlalchemy
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from sqlalchemy.pool import NullPool

from helpers import REPO, env, free_port, start_mlflow_server, stop_process_group

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def pg(postgres, monkeypatch):
    """The session's server, with this process's PGPASSWORD set to its password (and no
    ~/.pgpass in the way)."""
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    return postgres


def sql(server, database: str, query: str) -> list[str]:
    """Rows of `query` read with psql, one string per row: what the server holds."""
    return server.client("psql", "--dbname", database, "-Atc", query).splitlines()


def current_user(url: str) -> str:
    """Connects with SQLAlchemy's default driver for the URL; the role it logged in as."""
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            user = conn.exec_driver_sql("select current_user").scalar()
            assert isinstance(user, str)  # a one-row select: never None
            return user
    finally:
        engine.dispose()


def log_trial(client: MlflowClient, experiment_id: str, key: str) -> str:
    """One trial's records, as study/record/write.py writes them: tags, params, a stage's curves
    in one batch, a final metric, FINISHED."""
    run = client.create_run(experiment_id, tags={"fsvae.role": "trial", "fsvae.trial_key": key})
    now = int(time.time() * 1000)
    curves = [Metric("vae_loss", 1.0 / (epoch + 1), now, epoch) for epoch in range(30)]
    client.log_batch(
        run.info.run_id,
        params=[Param("n_f", "5"), Param("method", "vae")],
        metrics=curves,
        tags=[RunTag("cache.backbone", "hit")],
    )
    client.log_metric(run.info.run_id, "val_acc_h", 0.5, timestamp=now, step=0)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_plain_postgresql_url_opens_through_psycopg3(pg):
    url = pg.create_database("driver_check")
    assert sqlalchemy.make_url(url).get_dialect().driver == "psycopg"
    assert current_user(url) == "fsvae"


def test_password_comes_from_pgpassword_not_the_url(postgres, monkeypatch):
    url = postgres.create_database("auth_check")
    assert postgres.password not in url
    assert sqlalchemy.make_url(url).password is None
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="password"):
        current_user(url)
    monkeypatch.setenv("PGPASSWORD", "not-" + postgres.password)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="password authentication failed"):
        current_user(url)
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    assert current_user(url) == "fsvae"


def test_mlflow_tracking_store_on_postgres(pg):
    url = pg.create_database("mlflow_direct")
    client = MlflowClient(url)
    exp = client.create_experiment("pg-direct")
    run_id = log_trial(client, exp, "k1")
    other = log_trial(client, exp, "k2")

    found = client.search_runs([exp], filter_string="tags.`fsvae.trial_key` = 'k1'")
    assert [r.info.run_id for r in found] == [run_id]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"n_f": "5", "method": "vae"}
    assert run.data.metrics == {"vae_loss": 1.0 / 30, "val_acc_h": 0.5}
    assert run.data.tags["cache.backbone"] == "hit"
    history = client.get_metric_history(run_id, "vae_loss")
    assert sorted(m.step for m in history) == list(range(30))
    # The records are in PostgreSQL, and the +psycopg spelling reaches the same store.
    assert sorted(sql(pg, "mlflow_direct", "select run_uuid || ' ' || status from runs")) == sorted(
        [f"{run_id} FINISHED", f"{other} FINISHED"]
    )
    same = MlflowClient(url.replace("postgresql://", "postgresql+psycopg://"))
    assert same.get_run(other).data.tags["fsvae.trial_key"] == "k2"


def test_optuna_storage_on_its_own_database(pg):
    url = pg.create_database("optuna_direct")
    study = optuna.create_study(
        storage=url,
        study_name="pg",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for _ in range(4):
        trial = study.ask()
        x = trial.suggest_float("x", -1.0, 1.0)
        method = trial.suggest_categorical("method", ["plain", "vae"])
        study.tell(trial, -x * x + (0.1 if method == "vae" else 0.0))
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)

    loaded = optuna.load_study(
        study_name="pg", storage=url.replace("postgresql://", "postgresql+psycopg://")
    )
    assert [(t.number, t.state, t.params, t.value) for t in loaded.trials] == [
        (t.number, t.state, t.params, t.value) for t in study.trials
    ]
    assert [t.state for t in loaded.trials].count(optuna.trial.TrialState.COMPLETE) == 4
    assert loaded.best_trial.number == study.best_trial.number
    tables = sql(pg, "optuna_direct", "select tablename from pg_tables where schemaname = 'public'")
    assert "trials" in tables and "runs" not in tables  # Optuna's schema only


@pytest.mark.slow
def test_mlflow_server_backed_by_postgres(postgres, tmp_path, monkeypatch):
    url = postgres.create_database("mlflow_server")
    port = free_port()
    proc, uri = start_mlflow_server(tmp_path, port, backend_store_uri=url, extra_env=postgres.env())
    monkeypatch.delenv("PGPASSWORD", raising=False)  # this side speaks http only
    try:
        client = MlflowClient(uri)
        exp = client.create_experiment("pg-server")
        run_id = log_trial(client, exp, "k1")
        found = client.search_runs([exp], filter_string="tags.`fsvae.trial_key` = 'k1'")
        assert [(r.info.run_id, r.info.status) for r in found] == [(run_id, "FINISHED")]
        assert len(client.get_metric_history(run_id, "vae_loss")) == 30
    finally:
        stop_process_group(proc)
    assert sql(postgres, "mlflow_server", "select status from runs") == ["FINISHED"]
    assert not (tmp_path / "srv.db").exists()
    assert postgres.password not in (tmp_path / f"server-{port}.log").read_text()


def test_missing_server_programs_fail_the_tests_that_need_them(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "test_needs_pg.py").write_text("def test_it(postgres):\n    pass\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "conftest",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_needs_pg.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env(
            PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'tests'}", FSVAE_PG_BIN=str(tmp_path / "empty")
        ),
        timeout=120,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 error" in out.stdout and "skipped" not in out.stdout
    assert "apt-get install postgresql" in out.stdout
