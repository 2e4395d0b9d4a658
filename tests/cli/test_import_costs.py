"""Imports cost what they use (docs/architecture.md): `import study`, `import results`, the
command line's `--help` and its `demo-data`, `keys` and `cache` commands load no Ray, Ray
Tune or MLflow, and `status`, which reads a study's record, loads no Ray. Each is checked
in a fresh interpreter, as a user's process starts. A trial's figures (drawn with Pillow in
every trial's worker) load no matplotlib Figure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO, env, python

HEAVY = ("ray", "mlflow", "optuna")

PROBE = """
import json, runpy, sys
{code}
print("LOADED " + json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy}))))
"""


def loaded(code: str) -> list[str]:
    """The heavy packages a fresh interpreter has loaded after running `code`."""
    out = python(PROBE.format(code=code, heavy=list(HEAVY)))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("LOADED "))
    return json.loads(line[len("LOADED ") :])


def cli(*args: str) -> str:
    """`code` that runs `fsvae-study ARGS` in the probe's process, ignoring its exit."""
    return (
        "from fsvae_study import cli\n"
        "try:\n"
        f"    cli.main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
    )


@pytest.mark.parametrize(
    "code",
    [
        "import study",
        "import study.plan, study.record, study.identity, study.search, study.figures, "
        "study.model, study.driver, study.hooks, study.watch",
        "from study import StudyOptions, run_study, resume_study, discard_study",
        "import study.record.schema, study.record.read, study.plan.options, study.errors",
        "import results",
        "import results.errors",
    ],
    ids=lambda c: c[:40],
)
def test_importing_a_face_loads_no_ray_or_mlflow(code):
    assert loaded(code) == []


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("run", "--help"),
        ("table", "--help"),
        ("keys",),
        ("cache", "--help"),
    ],
    ids=" ".join,
)
def test_the_command_line_loads_no_ray_or_mlflow_where_it_needs_none(args):
    assert loaded(cli(*args)) == []


def test_demo_data_and_cache_list_load_no_ray_or_mlflow(tmp_path):
    code = cli("demo-data", str(tmp_path / "data"), "--per-class", "10") + cli(
        "cache", "--cache-dir", str(tmp_path / "cache")
    )
    assert loaded(code) == []
    assert (tmp_path / "data" / "train.csv").is_file()  # it did run


def test_status_reads_a_study_without_loading_ray(tmp_path):
    from mlflow.tracking import MlflowClient

    from helpers import StudyWriter

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = StudyWriter(MlflowClient(uri), tmp_path, "st", "grid")
    writer.trial(0, {"n_f": 5}, {"val_acc_h": 0.5}, "FINISHED", tags={"fsvae.trial_key": "grid:0"})
    args = ["status", "--name", "st", "--tracking-uri", uri]
    code = (
        "from fsvae_study import cli\n"  # it must have read the study: exit 0
        f"assert cli.main({args!r}) == 0\n"
        f"assert cli.main({args + ['--json']!r}) == 0\n"
    )
    assert loaded(code) == ["mlflow"]


def test_a_trials_figure_module_loads_no_matplotlib_figure():
    # Every trial's worker imports it to draw its PNGs with Pillow; matplotlib's Figure
    # (~0.4 s of CPU to import) is only for `fsvae-study figures` (study/figures/plots.py).
    code = (
        "import sys, study.figures.trial_png, study.figures.late\n"
        "print('FIGURE', 'matplotlib.figure' in sys.modules)\n"
        "from study.figures.plots import curves\n"
        "print('FIGURE', 'matplotlib.figure' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert [ln for ln in out.stdout.splitlines() if ln.startswith("FIGURE")] == [
        "FIGURE False",
        "FIGURE False",
    ]
