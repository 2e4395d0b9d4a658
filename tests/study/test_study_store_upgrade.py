"""A store upgrade never moves a store from under another study: an MLflow SQLite store at an
older schema revision (built with MLflow's own migrations) that holds a RUNNING study with a
live driver is not upgraded, and the error names that study; once that driver is gone, the
store is upgraded and the new study runs, the other study's record kept."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from helpers import FAST, cli, make_data, runs, trial_runs
from study import processes

pytestmark = pytest.mark.slow

OLD_REVISION = "1971f2d9a75b"  # a few migrations before MLflow 3.17's head


def old_store(path) -> None:
    """An MLflow store at OLD_REVISION, as an older MLflow made it: its initial tables, then
    MLflow's own migrations up to that revision."""
    from alembic import command
    from mlflow.store.db import utils

    url = f"sqlite:///{path}"
    engine = utils.create_sqlalchemy_engine(url)
    utils.InitialBase.metadata.create_all(engine)
    config = utils._get_alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, OLD_REVISION)
    engine.dispose()


def add_running_study(path, name: str, driver: dict) -> str:
    """A RUNNING parent run of study `name` driven by `driver`, written with the SQL that the
    old schema takes (as that study's own older MLflow would have)."""
    now = int(time.time() * 1000)
    run_id = "0" * 31 + "1"
    artifacts = str(Path(path).parent / "mlartifacts")  # never written: the study is a record
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, "
            "lifecycle_stage, creation_time, last_update_time) "
            "VALUES (1, ?, ?, 'active', ?, ?)",
            (name, artifacts, now, now),
        )
        con.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, "
            "entry_point_name, user_id, status, start_time, source_version, "
            "lifecycle_stage, artifact_uri, experiment_id) VALUES "
            "(?, 'study', 'LOCAL', '', '', 'u', 'RUNNING', ?, '', 'active', ?, 1)",
            (run_id, now, artifacts),
        )
        for key, value in {
            "fsvae.role": "study",
            "fsvae.driver": json.dumps(driver),
            "fsvae.heartbeat": f"{time.time():.0f}",
        }.items():
            con.execute(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", (key, value, run_id)
            )
    con.close()
    return run_id


def schema_version(path) -> str:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        con.close()


def test_an_old_store_holding_a_live_study_is_not_upgraded_until_it_ends(tmp_path):
    from mlflow.store.db.utils import _get_latest_schema_revision

    data = make_data(tmp_path / "data")
    storage = tmp_path / "studies"
    storage.mkdir()
    db = storage / "mlflow.db"
    old_store(db)
    # Another study's driver, alive: a process of this machine that is running now.
    sleeper = subprocess.Popen(["sleep", "600"])
    driver = {
        **processes.identify(),
        "pid": sleeper.pid,
        "start": processes.process_start(sleeper.pid),
    }
    assert driver["host"] == socket.gethostname()
    other = add_running_study(db, "other", driver)
    args = [
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "mine",
        "--grid",
        "method=plain",
        *FAST,
    ]
    try:
        refused = cli(*args)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert f"schema version {OLD_REVISION} and needs an upgrade" in refused.stderr
    assert (
        f"study 'other' (parent run {other}, host {driver['host']}, pid {sleeper.pid}"
        in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    assert schema_version(db) == OLD_REVISION  # untouched
    assert not list(storage.glob(".mlflow.db.upgrade-*"))

    # Its driver is gone now: the store is upgraded and the study runs.
    ran = cli(*args)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert schema_version(db) == _get_latest_schema_revision()
    assert len(trial_runs(f"sqlite:///{db}", "mine")) == 2  # smoke, --grid method=plain
    kept = runs(f"sqlite:///{db}", "other")
    assert list(kept["run_id"]) == [other] and os.path.exists(db)
