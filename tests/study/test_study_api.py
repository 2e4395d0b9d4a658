"""The Python API a notebook uses: `from study import run_study` runs a study with the
options of `fsvae-study run` and returns its summary, and `from results import load_table`
reads it back. Run in a fresh interpreter, as a notebook kernel would."""

from __future__ import annotations

import json

import pytest

from helpers import make_data, python, tracking_uri, trial_runs

pytestmark = pytest.mark.slow

NOTEBOOK = """
import dataclasses, json, sys
from study import StudyResult, run_study
from results import load_table
result = run_study("smoke", data=sys.argv[1], storage=sys.argv[2], name="nb",
                   overrides=["image_size=16", "backbone_epochs=1", "vae_epochs=3",
                              "classifier_epochs=2", "data_workers=1"], cpus_per_trial=1)
assert isinstance(result, StudyResult) and result.complete
table = load_table("nb", storage=sys.argv[2])
print(json.dumps({"summary": dataclasses.asdict(result),
                  "rows": sorted(set(table.cells["row"]))}))
"""


def test_run_study_runs_a_study_and_load_table_reads_it(tmp_path):
    data = make_data(tmp_path / "data")
    storage = tmp_path / "studies"
    proc = python(NOTEBOOK, str(data), str(storage), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = out["summary"]
    assert summary["complete"] is True and summary["exit_code"] == 0
    assert summary["finished"] == 3 and summary["failed"] == 0
    children = trial_runs(tracking_uri(storage), "nb")
    assert summary["experiment_id"] == children.iloc[0]["experiment_id"]
    assert set(children["tags.mlflow.parentRunId"]) == {summary["parent_run_id"]}
    assert out["rows"] == ["oversample x10", "plain", "vae x10"]
