"""An experiment that holds several studies (parent runs, e.g. a name run twice): one is
read at a time, the latest by default, and `--parent-run` picks another. Trial keys repeat
across the two, so reading both together would let one study's runs stand for the other's.
"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

import results
from fsvae_study.cli import main as cli_main
from helpers import T0, grid_params
from results import ResultsError

# Two runs of the search "twice" (n_f=5, keys #0 and #1 in both): (val_acc_h, test_acc_h).
# The older study's #0 has the best val_acc_h of all (0.90): read together with the newer
# one, the newer #0 would replace it as the run of trial n_f=5#0.
OLDER = [(0.90, 0.30), (0.55, 0.45)]
NEWER = [(0.50, 0.52), (0.60, 0.48)]


def _parent(client, exp: str, name: str, kind: str, start: int) -> str:
    run = client.create_run(
        exp,
        start_time=start,
        run_name=f"study:{name}",
        tags={
            "fsvae.role": "study",
            "fsvae.space_kind": kind,
            "fsvae.objective": "val_acc_h",
            "fsvae.mode": "max",
            "fsvae.strata": "n_f" if kind == "optuna" else "",
        },
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _trial(
    client, exp: str, parent: str | None, start: int, key: str, seed: int, val: float, test: float
) -> str:
    tags = {"fsvae.role": "trial", "fsvae.trial_key": key, "fsvae.stratum": "n_f=5"}
    if parent:
        tags["mlflow.parentRunId"] = parent
    rid = client.create_run(exp, start_time=start, run_name=f"{key}@{start}", tags=tags).info.run_id
    for k, v in grid_params("vae", 30, 32, 5, seed).items():
        client.log_param(rid, k, str(v))
    for k, v in {"val_acc_h": val, "val_acc": 0.6, "test_acc_h": test, "test_acc": 0.6}.items():
        client.log_metric(rid, k, v)
    client.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("parents")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    out: dict = {"uri": uri}
    for name, kind in (("twice", "optuna"), ("grid-twice", "grid")):
        exp = client.create_experiment(name, artifact_location=(root / name).as_uri())
        for when, (label, values) in enumerate((("older", OLDER), ("newer", NEWER))):
            start = T0 + 100_000 * when
            parent = _parent(client, exp, name, kind, start)
            keys = [f"n_f=5#{i}" if kind == "optuna" else f"grid:{i}" for i in range(2)]
            out[(name, label)] = parent
            out[(name, label, "runs")] = [
                _trial(client, exp, parent, start + 1000 * (i + 1), key, i, *v)
                for i, (key, v) in enumerate(zip(keys, values))
            ]
    exp = client.create_experiment("orphans", artifact_location=(root / "o").as_uri())
    out["orphans"] = [_trial(client, exp, None, T0 + i, f"grid:{i}", i, 0.5, 0.5) for i in range(2)]
    return out


def test_the_latest_parent_run_is_read_and_a_note_names_the_other(store):
    study = results.load_study("twice", store["uri"])
    assert study.parent_run_id == store[("twice", "newer")]
    assert sorted(study.trials["run_id"]) == sorted(store[("twice", "newer", "runs")])
    [note] = study.notes
    older = store[("twice", "older")]
    assert "holds 2 studies" in note and "the latest" in note
    assert f"Not read: {older} (started " in note and "FINISHED, 2 trial runs)" in note
    assert note.endswith("Pick one with --parent-run RUN_ID.")


def test_the_table_shows_only_the_latest_study_and_its_note(store):
    table = results.load_table("twice", tracking_uri=store["uri"])
    best = table.cells.set_index("metric").loc["acc_h"]
    # the newer study's best by val_acc_h is its #1 (0.60); the older #0 (0.90) is not read
    assert best["run_ids"] == store[("twice", "newer", "runs")][1]
    assert best["value"] == pytest.approx(48.0)
    assert any(store[("twice", "older")] in n for n in table.notes)


def test_parent_run_picks_the_other_study_in_table_figures_and_analyze(store, tmp_path, capsys):
    older = store[("twice", "older")]
    assert (
        cli_main(
            [
                "table",
                "--experiment",
                "twice",
                "--tracking-uri",
                store["uri"],
                "--parent-run",
                older,
                "--format",
                "csv",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert store[("twice", "older", "runs")][0] in out  # its #0, val_acc_h 0.90
    assert not any(r in out for r in store[("twice", "newer", "runs")])
    assert (
        cli_main(
            [
                "figures",
                "--experiment",
                "twice",
                "--tracking-uri",
                store["uri"],
                "--parent-run",
                older,
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert (tmp_path / "twice" / "test_acc_h_vs_n_f.png").is_file()
    assert "as --parent-run asked" in capsys.readouterr().err
    grid_older = store[("grid-twice", "older")]
    assert (
        cli_main(
            [
                "analyze",
                "--experiment",
                "grid-twice",
                "--tracking-uri",
                store["uri"],
                "--parent-run",
                grid_older,
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert f"logged to run {grid_older} under analysis/" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["table", "figures", "analyze"])
def test_a_wrong_parent_run_exits_2_naming_the_parent_runs_there(store, tmp_path, capsys, command):
    rc = cli_main(
        [
            command,
            "--experiment",
            "twice",
            "--tracking-uri",
            store["uri"],
            "--parent-run",
            "nope",
            *(["--out", str(tmp_path)] * (command != "table")),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and f"fsvae-study {command}: error: --parent-run nope: no parent run" in err
    assert store[("twice", "older")] in err and store[("twice", "newer")] in err
    assert not list(tmp_path.iterdir())


def test_an_experiment_without_parent_runs_reads_all_its_trial_runs(store):
    study = results.load_study("orphans", store["uri"])
    assert sorted(study.trials["run_id"]) == sorted(store["orphans"])
    assert study.parent_run_id is None and study.notes == []
    with pytest.raises(ResultsError, match="has no parent run"):
        results.load_study("orphans", store["uri"], parent_run="x")
