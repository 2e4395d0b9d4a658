"""Several studies at once on one fresh --storage, as someone starting one study per n_f in
two terminals would, with a reader polling the store meanwhile (as an `mlflow ui` opened
on it would): all run, nobody sees a half-made store, and the backbone they share is built
once, through the stage cache."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from helpers import (FAST, REPO, env, make_data, start_cli, tracking_uri, trial_runs,
                     wait_until)

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
    reader = subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), uri, str(stop)],
                              cwd=REPO, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    procs = {}
    for name in ("a", "b"):
        procs[name] = start_cli("run", "--space", "smoke", "--data", str(data), "--storage",
                                str(storage), "--name", name, *FAST,
                                log=tmp_path / f"{name}.log")
    wait_until(lambda: all(p.poll() is not None for p in procs.values()), 900,
               "both studies to end")
    stop.touch()
    reader_out = reader.communicate(timeout=60)[0]
    for name, proc in procs.items():
        out = (tmp_path / f"{name}.log").read_text()
        assert proc.returncode == 0, f"study {name}:\n{out[-4000:]}"
        assert "complete; 3 trials finished, 0 failed" in out
    assert "reader done, 0 errors" in reader_out, reader_out[-3000:]
    both = pd.concat([trial_runs(uri, name) for name in ("a", "b")], ignore_index=True)
    assert len(both) == 6 and set(both["status"]) == {"FINISHED"}
    # Two distinct backbones (plain/vae share one; oversample x10 has its own), each built
    # by exactly one trial of the two studies; every other trial found it in the cache.
    built = both.groupby("tags.cache.backbone.key")["tags.cache.backbone"].apply(list)
    assert len(built) == 2
    for key, tags in built.items():
        assert tags.count("miss") == 1, (key, tags)
    assert not list(storage.glob(".mlflow.db.*-*")), "a temporary store was left behind"
