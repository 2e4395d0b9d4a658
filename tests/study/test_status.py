"""`fsvae-study status` on real studies, run from a separate process that reads only the
record (docs/studies.md#watching-a-study): a finished grid (on SQLite, behind an `mlflow
server` and on PostgreSQL), a search whose driver was killed after a trial finished, and a
search paused in the middle of a trial's VAE, whose progress the status shows. An unknown
name is exit 2, naming the studies the store holds. The reading itself, on hand-made
records: tests/study/test_status_record.py."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from helpers import (
    FAST,
    cli,
    env,
    first_trials_done,
    free_port,
    kill_driver,
    make_data,
    pause_env,
    paused,
    release,
    start_cli,
    start_mlflow_server,
    stop_process_group,
    tracking_uri,
    wait_until,
)

pytestmark = pytest.mark.slow

GRID2 = """
name: grid2
kind: grid
preset: tiny
objective: val_acc_h
grid: {n_f: [5], seed: [0]}
variants: [{method: [plain, vae], sampling_factor: [4]}]
resources: {cpu: 1}
"""
# A trial of FAST's size whose VAE trains six epochs: a pause after its third leaves more.
SIX_VAE_EPOCHS = [
    "--set",
    "image_size=16",
    "--set",
    "backbone_epochs=1",
    "--set",
    "vae_epochs=6",
    "--set",
    "classifier_epochs=2",
    "--set",
    "data_workers=1",
]


def status(*args: str, environ: dict | None = None) -> subprocess.CompletedProcess:
    return cli("status", *args, environ=environ, timeout=120)


def status_json(*args: str, environ: dict | None = None) -> dict:
    proc = status(*args, "--json", environ=environ)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("status")
    (tmp / "grid2.yaml").write_text(GRID2)
    return {"tmp": tmp, "data": make_data(tmp / "data"), "grid": tmp / "grid2.yaml"}


@pytest.fixture(scope="module", params=["sqlite", "mlflow-server", "postgresql"])
def finished(request, base, tmp_path_factory):
    """A finished two-trial grid `fin` on each kind of record: (the options that find its
    record from another folder, the environment its clients need)."""
    tmp = tmp_path_factory.mktemp(f"finished-{request.param}")
    storage, server, extra = tmp / "studies", None, {}
    if request.param == "sqlite":
        where = ["--tracking-uri", tracking_uri(storage)]
    elif request.param == "mlflow-server":
        (tmp / "server").mkdir()
        server, uri = start_mlflow_server(tmp / "server", free_port())
        where = ["--tracking-uri", uri]
    else:
        pg = request.getfixturevalue("postgres")
        where, extra = ["--tracking-uri", pg.create_database(f"status_{free_port()}")], pg.env()
    environ = env(**extra)
    try:
        proc = cli(
            "run",
            "--space",
            str(base["grid"]),
            "--data",
            str(base["data"]),
            "--storage",
            str(storage),
            "--name",
            "fin",
            "--max-concurrent",
            "2",
            *FAST,
            *where,
            environ=environ,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        # Another machine: no study.json here, only the record's address.
        yield [*where, "--storage", str(tmp / "elsewhere")], environ
    finally:
        if server is not None:
            stop_process_group(server)


def test_a_finished_study_is_complete_and_its_driver_ended(finished):
    where, environ = finished
    shown = status("--name", "fin", *where, environ=environ)
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    text = shown.stdout
    assert text.startswith("study fin (grid): COMPLETE, 2 of 2 trials ended")
    assert "FINISHED, 1 session(s)" in text
    assert "trials: 2 finished, 0 failed, 0 stopped, 0 running; 0 still to run, of 2" in text
    assert "ended (it released its lease)" in text
    assert "time left: none (complete)" in text
    if where[1].startswith("http"):
        assert f"MLflow UI: {where[1]}\n" in text
    else:
        assert f"MLflow UI: mlflow ui --backend-store-uri {where[1]} --host 127.0.0.1" in text


def test_a_finished_studys_json_has_its_counts(finished):
    where, environ = finished
    out = status_json("--name", "fin", *where, environ=environ)
    assert (out["name"], out["kind"], out["state"]) == ("fin", "grid", "complete")
    assert out["parent_status"] == "FINISHED" and out["sessions"] == 1
    assert out["trials"] == {
        "total": 2,
        "finished": 2,
        "failed": 0,
        "stopped": 0,
        "running": 0,
        "interrupted": 0,
        "to_run": 0,
    }
    assert out["running"] == []
    assert (out["driver"]["state"], out["driver"]["alive"]) == ("ended", False)
    assert out["driver"]["role"] == "run" and out["driver"]["lease"] == 1
    assert out["time_left"]["seconds"] == 0 and out["time_left"]["mean_trial_s"] > 0
    assert out["cost"]["runs"] == 2 and out["cost"]["measured"] == 2
    assert out["cost"]["cpu_h"] > 0 and out["cost"]["gpu_h"] == 0
    assert out["open"]["optuna"] is None


def test_an_unknown_name_is_exit_2_naming_the_studies_there(finished):
    where, environ = finished
    shown = status("--name", "nope", *where, environ=environ)
    assert shown.returncode == 2, shown.stdout[-3000:] + shown.stderr[-3000:]
    assert shown.stderr.startswith("fsvae-study status: error: no study 'nope' in ")
    assert shown.stderr.rstrip().endswith("studies there: fin")
    assert len(shown.stderr.strip().splitlines()) == 1 and "Traceback" not in shown.stderr
    assert shown.stdout == ""


def test_an_interrupted_search_counts_its_trials_and_its_driver_is_not_alive(base, tmp_path):
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    proc = start_cli(
        "run",
        "--space",
        "smoke-search",
        "--num-samples",
        "4",
        "--data",
        str(base["data"]),
        "--storage",
        str(storage),
        "--name",
        "cut",
        "--max-concurrent",
        "2",
        *FAST,
        log=log,
        environ=pause_env(pauses, "trial_start"),
    )
    try:
        wait_until(
            first_trials_done(pauses, log, done=1, held=1),
            400,
            "1 trial done and another waiting",
            proc,
            log,
        )
    finally:
        kill_driver(proc)
    where = ["--storage", str(storage)]
    out = status_json("--name", "cut", *where)
    assert out["kind"] == "optuna" and out["state"] == "stopped"
    assert out["parent_status"] in ("RUNNING", "KILLED")  # SIGKILL: nothing closed it
    assert out["trials"]["total"] == 4 and out["trials"]["finished"] == 1
    assert out["trials"]["running"] == 0 and out["trials"]["to_run"] == 3
    assert (out["driver"]["alive"], out["driver"]["judged_by"]) == (False, "process")
    assert out["driver"]["pid"] == proc.pid
    assert out["time_left"]["seconds"] is None
    assert out["open"]["optuna"] == f"optuna-dashboard sqlite:///{storage / 'optuna.db'}"
    text = status("--name", "cut", *where).stdout
    assert "STOPPED, 1 of 4 trials ended" in text
    assert "NOT alive (its process is gone on this machine)" in text
    assert f"continue with: fsvae-study resume --name cut --storage {storage}" in text


def test_a_running_trial_shows_its_stage_epoch_and_node(base, tmp_path):
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    environ = {**pause_env(pauses, "trial_vae_epoch"), "FSVAE_LIVE_S": "0.5"}
    proc = start_cli(
        "run",
        "--space",
        "smoke-search",
        "--num-samples",
        "2",
        "--data",
        str(base["data"]),
        "--storage",
        str(storage),
        "--name",
        "live",
        "--max-concurrent",
        "1",
        "--no-cache",
        *SIX_VAE_EPOCHS,
        log=log,
        environ=environ,
    )
    try:
        wait_until(
            lambda: paused(pauses, "trial_vae_epoch"),
            400,
            "a trial after its third VAE epoch",
            proc,
            log,
        )
        where = ["--storage", str(storage)]

        def at_third_epoch():
            out = status_json("--name", "live", *where)
            return out if out["running"] and out["running"][0]["epoch"] == 3 else None

        out = wait_until(at_third_epoch, 60, "the status to show the third VAE epoch")
        (trial,) = out["running"]
        assert (trial["key"], trial["stage"], trial["epochs"]) == ("n_f=5#0", "vae", 6)
        assert trial["node"] == socket.gethostname()
        assert trial["loss"] is not None and trial["elapsed_s"] > 0
        assert (out["state"], out["driver"]["alive"]) == ("running", True)
        assert out["trials"]["running"] == 1 and out["trials"]["to_run"] == 2
        text = status("--name", "live", *where).stdout
        assert "RUNNING, 0 of 2 trials ended" in text
        assert "n_f=5#0" in text and "vae epoch 3/6" in text and f"on {trial['node']}" in text
        assert "alive (its process runs on this machine)" in text
        _let_every_trial_go(proc, pauses, log)
    finally:
        if proc.poll() is None:
            kill_driver(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert status_json("--name", "live", "--storage", str(storage))["state"] == "complete"


def _let_every_trial_go(proc, pauses: Path, log: Path) -> None:
    """Releases each trial that waits after its third VAE epoch until the study ends."""

    def ended() -> bool:
        for record in paused(pauses, "trial_vae_epoch"):
            if not record["file"].with_name(record["file"].name[:-5] + ".go").exists():
                release(record)
        return proc.poll() is not None

    wait_until(ended, 400, "the study to end", log=log)
