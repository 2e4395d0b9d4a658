"""`--storage s3://bucket/prefix?endpoint_override=...` against a real S3-compatible server
on loopback (moto's server, run in the test's own process): the study's files and Ray
Tune's experiments go to the bucket, the stage cache stays on a shared filesystem
(--cache-dir), MLflow and Optuna on the driver's disk; a driver killed after its trials'
runs finished is resumed from the bucket, and every trial is recorded exactly once."""

from __future__ import annotations

import json

import optuna
import pytest

from helpers import (
    FAST,
    cli,
    env,
    free_port,
    kill_driver,
    make_data,
    pause_env,
    paused,
    start_cli,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow

KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


@pytest.fixture
def bucket(tmp_path):
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("moto[server] is not installed (pip install -e '.[test]')")
    import pyarrow.fs as pafs

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        fs = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            access_key="testing",
            secret_key="testing",
            allow_bucket_creation=True,
        )
        fs.create_dir("fsvae")
        yield f"s3://fsvae/studies?endpoint_override=127.0.0.1:{port}&scheme=http", port
    finally:
        server.stop()


def test_a_study_on_s3_storage_killed_and_resumed_records_every_trial_once(bucket, tmp_path):
    uri, port = bucket
    data = make_data(tmp_path / "data")
    local = tmp_path / "local"
    tracking = f"sqlite:///{local / 'mlflow.db'}"
    args = [
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        uri,
        "--cache-dir",
        str(local / "cache"),
        "--tracking-uri",
        tracking,
        "--optuna-storage",
        f"sqlite:///{local / 'optuna.db'}",
        "--name",
        "s3",
        "--num-samples",
        "4",
        "--max-concurrent",
        "2",
        *FAST,
    ]
    pauses = tmp_path / "pauses"
    log = tmp_path / "first.log"
    proc = start_cli(*args, log=log, environ={**pause_env(pauses, "trial_finished"), **KEYS})
    try:
        wait_until(
            lambda: len(paused(pauses, "trial_finished")) >= 2,
            400,
            "two trials with FINISHED runs",
            proc,
            log,
        )
    finally:
        kill_driver(proc)
    resumed = cli("resume", "--name", "s3", "--storage", uri, timeout=900, environ=env(**KEYS))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "2 adopted from MLflow" in resumed.stdout
    children = trial_runs(tracking, "s3")
    assert len(children) == 4 and set(children["status"]) == {"FINISHED"}
    assert children["tags.fsvae.trial_key"].is_unique
    # artifacts beside the SQLite store, not in ./mlruns of the folder the driver started in
    artifacts = (local / "mlartifacts" / "s3").as_uri()
    where = list(children["artifact_uri"])
    assert all(uri.startswith(artifacts) for uri in where), where
    assert all(any(p.iterdir()) for p in (local / "mlartifacts" / "s3").iterdir())
    trials = optuna.load_study(
        study_name="s3/n_f=5", storage=f"sqlite:///{local / 'optuna.db'}"
    ).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4

    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    with fs.open_input_stream(f"{root}/s3/study.json") as f:
        plan = json.loads(f.read())
    assert plan["storage"] == uri and plan["sessions"] == 2
    names = {
        i.path.rsplit("/", 1)[-1]
        for i in fs.get_file_info(pafs.FileSelector(f"{root}/s3", recursive=False))
    }
    assert {"study.json", "space.yaml", "tune-n_f=5-s1", "tune-n_f=5-s2"} <= names
    assert not (local / "s3").exists()  # nothing of the study went to a local folder
