"""A study is its name in its tracking store (docs/failures.md): the same name
again after its folder was removed, a second storage on the same tracking store, a lost
Optuna store, a resume from the record alone, two drivers starting one name at once, an
Optuna study no record holds, a resume that changes the study, and discarding a study to
free its name. Real studies, real stores, the real command line."""

from __future__ import annotations

import shutil

import optuna
import pytest
from mlflow.entities import ViewType

from helpers import (
    FAST,
    cli,
    client,
    make_data,
    pause_env,
    paused,
    release_new,
    runs,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow

UNSEEDED = """
name: unseeded
kind: optuna
preset: tiny
objective: val_acc_h
num_samples: 2
strata: {n_f: [5]}
fixed: {method: vae, seed: 0}
params:
  latent_dim: {type: int, low: 8, high: 64, log: true}
  beta_max: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
resources: {cpu: 1}
"""


def search_args(space, data, storage, name: str = "h", *extra: str) -> list[str]:
    return [
        "run",
        "--space",
        str(space),
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        name,
        "--max-concurrent",
        "2",
        *FAST,
        *extra,
    ]


def parents(uri: str, name: str):
    df = runs(uri, name)
    return df[df["tags.fsvae.role"] == "study"]


def optuna_trials(storage, name: str = "h/n_f=5"):
    return optuna.load_study(
        study_name=name, storage=f"sqlite:///{storage / 'optuna.db'}"
    ).get_trials()


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One finished two-trial search `h` (an unseeded sampler: a rerun would draw other
    parameters), its finished runs and their values."""
    tmp = tmp_path_factory.mktemp("identity")
    (tmp / "unseeded.yaml").write_text(UNSEEDED)
    data = make_data(tmp / "data")
    storage = tmp / "studies"
    proc = cli(*search_args(tmp / "unseeded.yaml", data, storage))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(optuna, strata n_f=5)" in proc.stdout  # the header shows strata as keys
    uri = tracking_uri(storage)
    first = trial_runs(uri, "h")
    assert len(first) == 2 and set(first["status"]) == {"FINISHED"}
    return {
        "tmp": tmp,
        "data": data,
        "storage": storage,
        "uri": uri,
        "space": tmp / "unseeded.yaml",
        "finished": dict(zip(first["run_id"], first["metrics.val_acc_h"])),
    }


def assert_untouched(done) -> None:
    """The record holds the study's two finished runs, the same ones, none deleted."""
    children = trial_runs(done["uri"], "h")
    assert dict(zip(children["run_id"], children["metrics.val_acc_h"])) == done["finished"]
    every = runs(done["uri"], "h", deleted_too=True)
    assert len(every) == 3  # the parent and its two trials: nothing deleted, nothing new
    assert len(parents(done["uri"], "h")) == 1


def test_the_same_name_again_after_its_folder_was_removed_is_refused(done):
    shutil.rmtree(done["storage"] / "h")
    again = cli(*search_args(done["space"], done["data"], done["storage"]))
    assert again.returncode == 2, again.stdout[-3000:] + again.stderr[-3000:]
    assert "study 'h' already exists in" in again.stderr
    assert "--resume" in again.stderr and "fsvae-study discard --name h" in again.stderr
    assert "Traceback" not in again.stderr
    assert_untouched(done)


def test_run_resume_continues_the_study_its_record_holds(done):
    resumed = cli(*search_args(done["space"], done["data"], done["storage"], "h", "--resume"))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "all 2 trials were done in earlier sessions" in resumed.stdout
    assert "complete; 2 trials finished, 0 failed" in resumed.stdout
    assert (done["storage"] / "h" / "study.json").is_file()  # written again from the record
    assert_untouched(done)


def test_a_second_storage_on_the_same_tracking_store_cannot_take_the_name(done):
    other = done["tmp"] / "other-storage"
    proc = cli(*search_args(done["space"], done["data"], other), "--tracking-uri", done["uri"])
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "study 'h' already exists in" in proc.stderr
    assert not (other / "h" / "study.json").exists()
    assert_untouched(done)


def test_a_lost_optuna_store_is_rebuilt_from_mlflow_and_nothing_is_recomputed(done):
    (done["storage"] / "optuna.db").unlink()
    resumed = cli("resume", "--name", "h", "--storage", str(done["storage"]))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "2 trial(s) that MLflow holds were added to the Optuna study h/n_f=5" in resumed.stdout
    assert "all 2 trials were done in earlier sessions" in resumed.stdout
    assert_untouched(done)
    trials = optuna_trials(done["storage"])
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert {t.user_attrs["mlflow_run_id"]: t.value for t in trials} == done["finished"]


def test_resume_from_the_record_alone_in_another_folder(done):
    # Another machine: no study.json, no Optuna store; only the tracking store is shared.
    elsewhere = done["tmp"] / "machine-2"
    resumed = cli(
        "resume", "--name", "h", "--storage", str(elsewhere), "--tracking-uri", done["uri"]
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "complete; 2 trials finished, 0 failed" in resumed.stdout
    assert (elsewhere / "h" / "study.json").is_file()
    assert len(optuna_trials(elsewhere)) == 2  # its default Optuna store moved with it
    assert_untouched(done)


def test_resume_refuses_another_study_and_compares_data_by_content(done):
    changed = cli(
        *search_args(
            done["space"], done["data"], done["storage"], "h", "--resume", "--set", "latent_dim=8"
        )
    )
    assert changed.returncode == 2
    assert "study 'h' was started with another space" in changed.stderr
    # A copy of the data elsewhere (new path, new file times) is the same data.
    copy = done["tmp"] / "data-copy"
    shutil.copytree(done["data"], copy)
    moved = cli(*search_args(done["space"], copy, done["storage"], "h", "--resume"))
    assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr[-3000:]
    # One line less in train.csv is other data: refused, unless accepted.
    lines = (copy / "train.csv").read_text().splitlines()
    (copy / "train.csv").write_text("\n".join(lines[1:]) + "\n")
    other = cli(*search_args(done["space"], copy, done["storage"], "h", "--resume"))
    assert other.returncode == 2
    assert "other data" in other.stderr and "--accept-changed-data" in other.stderr
    assert "split lists and each file's size" in other.stderr
    accepted = cli(
        *search_args(done["space"], copy, done["storage"], "h", "--resume", "--accept-changed-data")
    )
    assert accepted.returncode == 0, accepted.stdout[-3000:] + accepted.stderr[-3000:]
    assert_untouched(done)


def test_an_optuna_study_that_no_record_holds_takes_the_name(done):
    storage = done["tmp"] / "orphan"
    storage.mkdir()
    orphan = optuna.create_study(study_name="o/n_f=5", storage=f"sqlite:///{storage / 'optuna.db'}")
    orphan.add_trial(
        optuna.trial.create_trial(
            value=0.5,
            params={"latent_dim": 8},
            distributions={"latent_dim": optuna.distributions.IntDistribution(8, 64)},
        )
    )
    for extra in ([], ["--resume"]):
        proc = cli(*search_args(done["space"], done["data"], storage, "o", *extra))
        assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "'o/n_f=5' (1 trials), which no MLflow parent run records" in proc.stderr
        assert "fsvae-study discard --name o" in proc.stderr
    assert runs(tracking_uri(storage), "o").empty  # nothing was started


def test_two_drivers_starting_one_name_at_once_exactly_one_starts(tmp_path):
    # Two machines: each its own storage; one tracking store (here one SQLite file).
    data = make_data(tmp_path / "data")
    uri = tracking_uri(tmp_path / "shared")
    (tmp_path / "shared").mkdir()
    procs = [
        start_cli(
            "run",
            "--space",
            "smoke",
            "--data",
            str(data),
            "--storage",
            str(tmp_path / f"machine-{i}"),
            "--tracking-uri",
            uri,
            "--name",
            "race",
            "--grid",
            "method=plain",
            *FAST,
            log=tmp_path / f"{i}.log",
        )
        for i in (1, 2)
    ]
    wait_until(lambda: all(p.poll() is not None for p in procs), 600, "both drivers to end")
    codes = sorted(p.returncode for p in procs)
    logs = [(tmp_path / f"{i}.log").read_text() for i in (1, 2)]
    assert codes == [0, 2], "\n---\n".join(logs)
    refused = next(log for p, log in zip(procs, logs) if p.returncode == 2)
    assert (
        "study 'race' already exists in" in refused
        or "is being run by another driver now" in refused
    )
    assert len(parents(uri, "race")) == 1
    children = trial_runs(uri, "race")  # smoke with --grid method=plain: two grid points
    assert len(children) == 2 and children["tags.fsvae.trial_key"].is_unique


def test_a_second_resume_while_a_driver_runs_the_study_is_refused(tmp_path):
    data = make_data(tmp_path / "data")
    storage = tmp_path / "studies"
    pauses = tmp_path / "pauses"
    log = tmp_path / "run.log"
    proc = start_cli(
        "run",
        "--space",
        "smoke",
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        "busy",
        "--grid",
        "method=plain",
        *FAST,
        log=log,
        environ=pause_env(pauses, "trial_start"),
    )
    try:
        wait_until(lambda: paused(pauses, "trial_start"), 300, "the trial to start", proc, log)
        # From another folder (another machine): only the record says who drives it.
        other = cli(
            "resume",
            "--name",
            "busy",
            "--storage",
            str(tmp_path / "elsewhere"),
            "--tracking-uri",
            tracking_uri(storage),
        )
        assert other.returncode == 2, other.stdout + other.stderr
        assert "is being run by another driver now" in other.stderr
        assert f"pid {proc.pid}" in other.stderr
    finally:
        seen: set = set()

        def ended() -> bool:  # each trial waits at its start: the second may get there later
            release_new(pauses, "trial_start", seen)
            return proc.poll() is not None

        wait_until(ended, 300, "the study to end", None, log)
    assert proc.returncode == 0, log.read_text()[-3000:]


def test_discard_frees_the_name(done):
    # Last in this module: it discards the study the other tests read.
    storage, uri = done["storage"], done["uri"]
    refused = cli("discard", "--name", "h", "--storage", str(storage))
    assert refused.returncode == 2 and "confirm with --yes" in refused.stderr
    gone = cli("discard", "--name", "h", "--storage", str(storage), "--yes")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "MLflow experiment 'h' (3 runs)" in gone.stdout
    assert "Optuna study 'h/n_f=5' (2 trials)" in gone.stdout
    assert not (storage / "h").exists()
    assert not optuna.get_all_study_summaries(f"sqlite:///{storage / 'optuna.db'}")
    aside = [
        e
        for e in client(uri).search_experiments(view_type=ViewType.ALL)
        if e.name.startswith("h (deleted ")
    ]
    assert len(aside) == 1 and aside[0].lifecycle_stage == "deleted"
    fresh = cli(*search_args(done["space"], done["data"], storage, "h", "--num-samples", "1"))
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]
    assert len(trial_runs(uri, "h")) == 1 and len(parents(uri, "h")) == 1
