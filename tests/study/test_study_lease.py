"""One writer per study (docs/failures.md#one-writer-per-study), with whole studies: a driver
paused past its lease (SIGSTOP of it and its Ray) while a driver on another machine takes
its study over, then continued: it stops with exit 4 and writes nothing, and the record
holds exactly one FINISHED run per trial; on a SQLite store shared by both, behind an
`mlflow server`, and on PostgreSQL. A discard against a starting and a running driver,
and a discard that takes the study from a paused one. The lease alone, with light
processes: tests/study/test_lease.py."""

from __future__ import annotations

import pytest
from mlflow.entities import ViewType

from helpers import (
    FAST,
    client,
    env,
    free_port,
    make_data,
    pause_env,
    paused,
    release,
    release_new,
    runs,
    start_cli,
    start_mlflow_server,
    stop_process_group,
    tracking_uri,
    trial_runs,
    wait_until,
)
from helpers.holders import can_unshare, cli_argv, elsewhere, end, pause, resume, start

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not can_unshare("-u"), reason="cannot make a UTS namespace"),
]

LEASE = {"FSVAE_LEASE_S": "6"}
TRIALS = 3


@pytest.fixture(
    params=[pytest.param("sqlite", marks=pytest.mark.essential), "mlflow-server", "postgresql"]
)
def record(request, tmp_path, monkeypatch):
    """(tracking URI, environment) of a record two machines share."""
    if request.param == "sqlite":
        (tmp_path / "shared").mkdir()
        yield tracking_uri(tmp_path / "shared"), {}
    elif request.param == "mlflow-server":
        (tmp_path / "server").mkdir()
        proc, uri = start_mlflow_server(tmp_path / "server", free_port())
        yield uri, {}
        stop_process_group(proc)
    else:
        server = request.getfixturevalue("postgres")
        for k, v in server.env().items():  # this test's own reads of the record too
            monkeypatch.setenv(k, v)
        yield server.create_database(f"lease_{free_port()}"), server.env()


def finished_once(uri: str, name: str, keys: set[str]) -> None:
    """Exactly one FINISHED run per trial key, of exactly `keys`; nothing left RUNNING."""
    trials = trial_runs(uri, name)
    done = trials[trials["status"] == "FINISHED"]
    assert sorted(done["tags.fsvae.trial_key"]) == sorted(keys), trials[
        ["tags.fsvae.trial_key", "status"]
    ]
    assert "RUNNING" not in set(trials["status"])
    every = runs(uri, name)
    assert (every["tags.fsvae.role"] == "study").sum() == 1


def test_a_paused_driver_taken_over_stops_without_writing(tmp_path, record):
    uri, extra = record
    data = make_data(tmp_path / "data")
    pauses, log_a, log_b = tmp_path / "pauses", tmp_path / "a.log", tmp_path / "b.log"
    a = start(
        cli_argv(
            "run",
            "--space",
            "smoke-search",
            "--data",
            str(data),
            "--storage",
            str(tmp_path / "machine-1"),
            "--tracking-uri",
            uri,
            "--name",
            "p",
            "--num-samples",
            str(TRIALS),
            "--max-concurrent",
            "1",
            *FAST,
        ),
        log_a,
        environ={**pause_env(pauses, "trial_start"), **extra, **LEASE},
    )
    b = None
    try:
        wait_until(lambda: paused(pauses, "trial_start"), 300, "A's first trial", a, log_a)
        stopped = pause(a)  # the driver and its Ray, as a closed laptop lid
        release(paused(pauses, "trial_start")[0])  # it goes on once A is continued
        # Machine 2 (another host name, its own folder) resumes from the shared record.
        b = start(
            elsewhere(
                cli_argv(
                    "resume",
                    "--name",
                    "p",
                    "--tracking-uri",
                    uri,
                    "--storage",
                    str(tmp_path / "machine-2"),
                ),
                host="m2",
            ),
            log_b,
            environ={**env(), **extra, **LEASE},
        )
        assert b.wait(timeout=600) == 0, log_b.read_text()[-3000:]
        out_b = log_b.read_text()
        assert "waiting up to 6 s for its heartbeat" in out_b
        assert f"complete; {TRIALS} trials finished, 0 failed" in out_b
        before = runs(uri, "p", deleted_too=True)
        resume(stopped)
        assert a.wait(timeout=300) == 4, log_a.read_text()[-3000:]
        out_a = log_a.read_text()
        assert (
            "study 'p': this driver (lease 1) no longer holds the study: `resume` on host "
            "m2" in out_a
        )
        assert "it stopped before writing anything more" in out_a
        assert "Traceback" not in out_a
        finished_once(uri, "p", {f"n_f=5#{i}" for i in range(TRIALS)})
        after = runs(uri, "p", deleted_too=True)  # A made and changed no run after waking
        assert sorted(after["run_id"]) == sorted(before["run_id"])
        assert dict(zip(after["run_id"], after["status"])) == dict(
            zip(before["run_id"], before["status"])
        )
    finally:
        end(a)
        if b is not None:
            end(b)


def test_discard_is_refused_while_a_driver_starts_or_runs_the_study(tmp_path):
    data = make_data(tmp_path / "data")
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    proc = start_cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "d",
        "--grid",
        "method=plain",
        *FAST,
        log=log,
        environ=pause_env(pauses, "name_claimed", "trial_start"),
    )
    seen: set = set()
    try:
        for point in ("name_claimed", "trial_start"):  # holding its lease: starting, running
            wait_until(lambda point=point: paused(pauses, point), 300, point, proc, log)
            from helpers import cli

            refused = cli("discard", "--name", "d", "--storage", str(storage), "--yes")
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "study 'd' is being run by another driver now (`run` on host" in refused.stderr
            assert "Traceback" not in refused.stderr
            release_new(pauses, point, seen)
        wait_until(lambda: len(paused(pauses, "trial_start")) >= 2, 300, "trial 2", proc, log)
        release_new(pauses, "trial_start", seen)
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        release_new(pauses, "trial_start", seen)
        end(proc)
    assert (storage / "d" / "study.json").is_file()
    uri = tracking_uri(storage)
    assert set(trial_runs(uri, "d")["status"]) == {"FINISHED"}


def test_a_paused_driver_whose_study_is_discarded_stops_without_a_traceback(tmp_path):
    data = make_data(tmp_path / "data")
    storage, pauses, log = tmp_path / "studies", tmp_path / "pauses", tmp_path / "run.log"
    a = start(
        cli_argv(
            "run",
            "--space",
            "smoke",
            "--data",
            str(data),
            "--storage",
            str(storage),
            "--name",
            "gone",
            "--grid",
            "method=plain",
            *FAST,
        ),
        log,
        environ={**pause_env(pauses, "trial_start"), **LEASE},
    )
    try:
        wait_until(lambda: paused(pauses, "trial_start"), 300, "A's first trial", a, log)
        stopped = pause(a)
        release_new(pauses, "trial_start", set())
        gone = start(
            elsewhere(
                cli_argv("discard", "--name", "gone", "--storage", str(storage), "--yes"), host="m2"
            ),
            tmp_path / "discard.log",
            environ={**env(), **LEASE},
        )
        assert gone.wait(timeout=300) == 0, (tmp_path / "discard.log").read_text()
        uri = tracking_uri(storage)
        aside = [
            e
            for e in client(uri).search_experiments(view_type=ViewType.DELETED_ONLY)
            if e.name.startswith("gone (deleted")
        ]
        assert len(aside) == 1
        kept = client(uri).search_runs([aside[0].experiment_id], run_view_type=ViewType.ALL)
        resume(stopped)
        assert a.wait(timeout=300) == 4, log.read_text()[-3000:]
        out = log.read_text()
        assert "no longer holds the study: it was discarded by `discard` on host m2" in out
        assert "Traceback" not in out and "KeyError" not in out
        # It wrote nothing after waking: the discarded runs are as the discard left them.
        again = client(uri).search_runs([aside[0].experiment_id], run_view_type=ViewType.ALL)
        assert {r.info.run_id: r.info.status for r in again} == {
            r.info.run_id: r.info.status for r in kept
        }
        assert client(uri).get_experiment_by_name("gone") is None
    finally:
        end(a)
