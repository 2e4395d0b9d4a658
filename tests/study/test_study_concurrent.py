"""Several studies at once on one fresh --storage, as someone starting one study per n_f in
two terminals would (here a grid and a search, so both the MLflow and the Optuna store are
created at once), with a reader polling the store meanwhile (as an `mlflow ui` opened on it
would): all run, nobody sees a half-made store, and the backbone they share is built once,
through the stage cache."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pandas as pd
import pytest

from helpers import (
    FAST,
    REPO,
    env,
    make_data,
    runs,
    start_cli,
    tracking_uri,
    trial_runs,
    wait_until,
)

pytestmark = pytest.mark.slow

READER = """
import os, sys, time
from mlflow.tracking import MlflowClient
uri, stop = sys.argv[1], sys.argv[2]
errors = 0
while not os.path.exists(stop):
    try:
        MlflowClient(uri).search_experiments()
    except Exception as e:
        errors += 1
        print(f"{type(e).__name__}: {e}", flush=True)
    time.sleep(0.2)
print(f"reader done, {errors} errors", flush=True)
"""


def test_two_studies_on_one_fresh_storage_both_run_and_share_their_backbones(tmp_path):
    data = make_data(tmp_path / "data")
    storage = tmp_path / "studies"  # does not exist yet
    uri = tracking_uri(storage)
    (tmp_path / "reader.py").write_text(READER)
    stop = tmp_path / "stop-reader"
    storage.mkdir()
    reader = subprocess.Popen(
        [sys.executable, str(tmp_path / "reader.py"), uri, str(stop)],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    procs = {}
    for name, space in (("a", ["smoke"]), ("b", ["smoke-search", "--num-samples", "3"])):
        procs[name] = start_cli(
            "run",
            "--space",
            *space,
            "--data",
            str(data),
            "--storage",
            str(storage),
            "--name",
            name,
            *FAST,
            log=tmp_path / f"{name}.log",
        )
    wait_until(
        lambda: all(p.poll() is not None for p in procs.values()), 900, "both studies to end"
    )
    stop.touch()
    reader_out = reader.communicate(timeout=60)[0]
    for name, proc in procs.items():
        out = (tmp_path / f"{name}.log").read_text()
        assert proc.returncode == 0, f"study {name}:\n{out[-4000:]}"
        assert "complete; 3 trials finished, 0 failed" in out, out[-3000:]
    assert "reader done, 0 errors" in reader_out, reader_out[-3000:]
    both = pd.concat([trial_runs(uri, name) for name in ("a", "b")], ignore_index=True)
    assert len(both) == 6 and set(both["status"]) == {"FINISHED"}
    # Two distinct backbones: the grid's plain and vae and every trial of the search (the
    # same data, split and backbone keys) share one; oversample x10 has its own. Each was
    # built exactly once: by one trial of either study or by the search's shared build
    # (then no trial misses it); everyone else found it in the cache.
    built = both.groupby("tags.cache.backbone.key")["tags.cache.backbone"].apply(list)
    assert len(built) == 2
    parent = runs(uri, "b").query("`tags.fsvae.role` == 'study'").iloc[0]
    prebuilt_key = (
        parent.get("tags.cache.backbone.prebuild.n_f-5.key")
        if parent.get("tags.cache.backbone.prebuild.n_f-5") == "miss"
        else None
    )
    for key, tags in built.items():
        assert tags.count("miss") + (key == prebuilt_key) == 1, (key, tags, prebuilt_key)
    studies = {
        s.study_name: s.n_trials
        for s in optuna.get_all_study_summaries(f"sqlite:///{storage / 'optuna.db'}")
    }
    assert studies == {"b/n_f=5": 3}
    assert not list(storage.glob(".mlflow.db.*-*")), "a temporary store was left behind"
