"""A study's record keeps its shape: a real grid (the shipped smoke space) and a real Optuna
search (the shipped smoke-search space, seeded) write to MLflow, and to the Optuna store,
the same runs, params, metric keys with the same steps, tags, dataset inputs, artifact
paths and Optuna trials as the reference in tests/data/record-shape.json, which the code
before a change wrote. Values that differ between two runs of one study anyway (times,
ids, versions, metric values, cache keys: tests/helpers/shape.py) are left out.

The comparison is made once the `fsvae-study run` command has exited: whatever a trial
writes late (its figures, say) must be there by then.

To write the reference anew, after a change that is meant to change the record:
    FSVAE_WRITE_RECORD_SHAPE=1 python -m pytest tests/study/test_record_shape.py
and commit the file; it names the commit of the code that wrote it (tests/ aside).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import FAST, REPO, cli, make_data, tracking_uri
from helpers.shape import diff, record_shape

pytestmark = pytest.mark.slow

REFERENCE = REPO / "tests" / "data" / "record-shape.json"
WRITE = os.environ.get("FSVAE_WRITE_RECORD_SHAPE") == "1"
STUDIES = {  # name -> the command line's space arguments
    "grid": ["--space", "smoke"],
    "search": ["--space", "smoke-search", "--max-concurrent", "2"],
}


def run_study(tmp, data, kind: str) -> dict:
    storage = tmp / "studies"
    proc = cli(
        "run",
        *STUDIES[kind],
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        kind,
        *FAST,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    optuna_db = storage / "optuna.db"
    return record_shape(
        tracking_uri(storage), kind, tmp, f"sqlite:///{optuna_db}" if optuna_db.exists() else None
    )


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """kind -> the shape of one study of that kind, run now on data of its own."""
    out = {}
    for kind in STUDIES:
        tmp = tmp_path_factory.mktemp(f"shape-{kind}")
        out[kind] = run_study(tmp, make_data(tmp / "data"), kind)
    if WRITE:
        # the last commit of the code that wrote it (the tests' own commits aside)
        commit = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%H", "--", ".", ":!tests"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        REFERENCE.write_text(
            json.dumps(
                {
                    "made_from": commit,
                    "how": "FSVAE_WRITE_RECORD_SHAPE=1 python -m pytest "
                    "tests/study/test_record_shape.py (tests/helpers/shape.py)",
                    **out,
                },
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )
    return out


@pytest.mark.parametrize("kind", list(STUDIES))
def test_record_has_the_reference_shape(shapes, kind):
    reference = json.loads(REFERENCE.read_text())
    assert kind in reference, f"{REFERENCE.name} has no {kind} study"
    lines = diff(reference[kind], shapes[kind])
    assert not lines, (
        f"the {kind} study's record differs from {REFERENCE.name} (made "
        f"from {reference['made_from'][:12]}):\n  " + "\n  ".join(lines)
    )


def test_reference_is_a_whole_study(shapes):
    """The reference holds what a study writes, so that an empty or cut record fails."""
    reference = json.loads(REFERENCE.read_text())
    grid, search = reference["grid"]["runs"], reference["search"]["runs"]
    assert len(grid) == 4 and len(search) == 5  # a parent and its trials
    for runs in (grid, search):
        for label, run in runs.items():
            assert run["status"] == "FINISHED" and run["artifacts"], label
            if label != "parent":
                assert "val_acc_h" in run["metrics"] and "figures/" in run["artifacts"]
    trials = reference["search"]["optuna"]["search/n_f=5"]["trials"]
    assert [t["state"] for t in trials.values()] == ["COMPLETE"] * 4
