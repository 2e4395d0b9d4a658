"""What the kill tests share (tests/study/test_study_kills*.py): the study they kill, how
they kill its driver and resume it, and what "exactly once" means after it."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from helpers import (
    FAST,
    GRID4,
    cli,
    first_trials_done,
    kill_driver,
    make_data,
    pause_env,
    paused,
    runs,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

N = 4  # trials of a search; 2 at a time
UNSEEDED = """
name: unseeded
kind: optuna
preset: tiny
objective: val_acc_h
num_samples: 4
strata: {n_f: [5]}
fixed: {method: vae, seed: 0}
params:
  latent_dim: {type: int, low: 8, high: 64, log: true}
  beta_max: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
resources: {cpu: 1}
"""


def make_base(tmp_path_factory) -> dict:
    """A module's data and space files (its `base` fixture)."""
    tmp = tmp_path_factory.mktemp("kills")
    (tmp / "unseeded.yaml").write_text(UNSEEDED)
    (tmp / "grid4.yaml").write_text(GRID4)
    return {"tmp": tmp, "data": make_data(tmp / "data")}


def study_args(base, space: str, storage: Path, name: str) -> list[str]:
    extra = ["--num-samples", str(N)] if space != "grid4" else []
    space = space if space == "smoke-search" else str(base["tmp"] / f"{space}.yaml")
    return [
        "run",
        "--space",
        space,
        "--data",
        str(base["data"]),
        "--storage",
        str(storage),
        "--name",
        name,
        "--max-concurrent",
        "2",
        *extra,
        *FAST,
    ]


def kill_then_resume(
    base, tmp: Path, space: str, point: str | None, count: int = 1, done: int | None = None
) -> dict:
    """Runs a study until `count` processes wait at `point` (or, with `done`, until exactly
    `done` trials have finished and the next two wait at their start), SIGKILLs its driver,
    then resumes it. Returns what a test checks."""
    storage, name = tmp / "studies", "k"
    uri = tracking_uri(storage)
    pauses = tmp / "pauses"
    log = tmp / "first.log"
    proc = start_cli(
        *study_args(base, space, storage, name),
        log=log,
        environ=pause_env(pauses, point or "trial_start"),
    )
    try:
        if point:
            wait_until(
                lambda: len(paused(pauses, point)) >= count,
                400,
                f"{count} process(es) at {point}",
                proc,
                log,
            )
        else:
            assert done is not None, "kill_then_resume needs a point or done"
            wait_until(
                first_trials_done(pauses, log, done, held=2),
                400,
                f"{done} trials done and two more waiting",
                proc,
                log,
            )
    finally:
        kill_driver(proc)
    before = trial_runs(uri, name) if (storage / "mlflow.db").exists() else None
    resumed = cli("resume", "--name", name, "--storage", str(storage), timeout=900)
    return {
        "uri": uri,
        "name": name,
        "storage": storage,
        "before": before,
        "resumed": resumed,
        "log": log.read_text(),
    }


def counted_from(console: str) -> int:
    """The 'done' count of a session's first trial line: what earlier sessions finished."""
    counts = re.findall(r"\| done (\d+)/", console)
    assert counts, console[-3000:]
    return int(counts[0])


def assert_exactly_once(result: dict, n: int, search: bool) -> None:
    proc = result["resumed"]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "complete;" in proc.stdout
    children = trial_runs(result["uri"], result["name"])
    assert len(children) == n, children[["tags.fsvae.trial_key", "status"]]
    assert children["tags.fsvae.trial_key"].is_unique
    assert set(children["status"]) == {"FINISHED"}
    every = runs(result["uri"], result["name"], deleted_too=True)
    assert "RUNNING" not in set(every["status"])
    before = result["before"]
    if before is not None and len(before):
        done = set(before[before["status"] == "FINISHED"]["run_id"])
        assert done <= set(children["run_id"]), "a finished trial was computed again"
    if search:
        study = optuna.load_study(
            study_name=f"{result['name']}/n_f=5",
            storage=f"sqlite:///{result['storage'] / 'optuna.db'}",
        )
        trials = study.get_trials()
        assert len(trials) == n
        assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
        by_key = {f"n_f=5#{t.number}": t for t in trials}
        assert set(by_key) == set(children["tags.fsvae.trial_key"])
        for _, run in children.iterrows():
            trial = by_key[run["tags.fsvae.trial_key"]]
            assert trial.value == pytest.approx(run["metrics.val_acc_h"])
            assert trial.user_attrs["mlflow_run_id"] == run["run_id"]
