"""The searcher's in-memory copy of an Optuna study (study/search/mirror.py): asking and
telling through it leaves the stored study (a real SQLite file) as asking and telling the
stored study directly does, trial for trial."""

from __future__ import annotations

import sqlite3

import optuna
import pytest
from optuna.trial import TrialState

from study.errors import StudyError
from study.search.mirror import Mirror

SPACE = {"x": ("float", -3.0, 3.0), "k": ("int", 1, 8), "c": ("cat", ["a", "b", "c"])}


def suggest(trial) -> None:
    trial.suggest_float("x", -3.0, 3.0)
    trial.suggest_int("k", 1, 8)
    trial.suggest_categorical("c", ["a", "b", "c"])


def score(params: dict) -> list[float]:
    return [-((params["x"] - 1) ** 2) - params["k"] / 8, params["k"] + (params["c"] == "b")]


def stored(tmp_path, name: str, sampler, directions) -> optuna.Study:
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    study = optuna.create_study(
        storage=url, study_name=name, directions=directions, sampler=sampler
    )
    for v in (0.5, -1.0, 2.0):  # a history to copy: done trials and an enqueued retry
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": v, "k": 3, "c": "a"},
                values=score({"x": v, "k": 3, "c": "a"})[: len(directions)],
                distributions={
                    "x": optuna.distributions.FloatDistribution(-3, 3),
                    "k": optuna.distributions.IntDistribution(1, 8),
                    "c": optuna.distributions.CategoricalDistribution(["a", "b", "c"]),
                },
            )
        )
    study.enqueue_trial({"x": 0.0, "k": 2, "c": "c"}, user_attrs={"retry_of": 1})
    return optuna.load_study(storage=url, study_name=name, sampler=sampler)


def shape(study: optuna.Study) -> list[tuple]:
    return [
        (t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs, t.intermediate_values)
        for t in study.get_trials()
    ]


@pytest.mark.parametrize(
    "sampler, directions",
    [
        (lambda: optuna.samplers.TPESampler(seed=7, n_startup_trials=4), ["maximize"]),
        (
            lambda: optuna.samplers.NSGAIISampler(seed=7, population_size=4),
            ["maximize", "minimize"],
        ),
    ],
    ids=["tpe", "nsga2"],
)
def test_the_stored_study_ends_as_if_asked_and_told_directly(tmp_path, sampler, directions):
    direct = stored(tmp_path, "direct", sampler(), directions)
    mirrored = stored(tmp_path, "mirrored", sampler(), directions)
    mirror = Mirror(mirrored)
    for _ in range(6):  # two at a time, told out of order, one failing, one with a NaN
        pair = []
        for _ in range(2):
            t = direct.ask()
            suggest(t)
            asked, stored_id = mirror.ask(suggest)
            assert (asked.number, asked.params) == (t.number, t.params)
            pair.append((t.number, stored_id, dict(t.params)))
        for number, stored_id, params in reversed(pair):
            values = score(params)[: len(directions)]
            if number == 6:
                direct.tell(number, state=TrialState.FAIL)
                mirror.tell(number, stored_id, state=TrialState.FAIL)
                continue
            if number == 9:
                values[0] = float("nan")  # Optuna records a FAIL, with its warning
            one = values if len(values) > 1 else values[0]
            direct._storage.set_trial_user_attr(
                direct._storage.get_trial_id_from_study_id_trial_number(direct._study_id, number),
                "mlflow_run_id",
                f"run{number}",
            )
            direct.tell(number, one)
            mirror.tell(number, stored_id, one, user_attrs={"mlflow_run_id": f"run{number}"})
    again = optuna.load_study(storage=mirrored._storage._backend.url, study_name="mirrored")
    want = shape(optuna.load_study(storage=direct._storage._backend.url, study_name="direct"))
    assert shape(again) == want
    assert [t.state for t in again.get_trials()].count(TrialState.FAIL) == 2
    assert again.trials[3].user_attrs["retry_of"] == 1  # the retry ran first, as enqueued


def test_a_pruned_trial_keeps_its_intermediate_values_and_the_last_as_its_value(tmp_path):
    study = stored(tmp_path, "s", optuna.samplers.TPESampler(seed=1), ["maximize"])
    mirror = Mirror(study)
    mirror.ask(suggest)  # the enqueued retry
    asked, stored_id = mirror.ask(suggest)
    mirror.report(asked.number, stored_id, 0.25, 0)
    mirror.report(asked.number, stored_id, 0.5, 1)
    mirror.report(asked.number, stored_id, 0.75, 1)  # a step reported twice: ignored
    mirror.tell(asked.number, stored_id, state=TrialState.PRUNED)
    trial = optuna.load_study(storage=study._storage._backend.url, study_name="s").trials[-1]
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {0: 0.25, 1: 0.5}
    assert trial.values == [0.5]


@pytest.mark.parametrize("retry_first", [True, False], ids=["new-trial", "enqueued-retry"])
def test_a_second_writer_of_the_stored_study_is_an_error(tmp_path, retry_first):
    study = stored(tmp_path, "s", optuna.samplers.TPESampler(seed=1), ["maximize"])
    mirror = Mirror(study)
    other = optuna.load_study(storage=study._storage._backend.url, study_name="s")
    if retry_first:
        mirror.ask(suggest)  # the enqueued retry
    other.ask()  # behind the copy's back: a new trial, or the retry taken
    with pytest.raises(StudyError, match="another process is writing it"):
        mirror.ask(suggest)


def test_a_write_that_fails_leaves_the_copy_made_again_from_the_stored_study(tmp_path):
    url = stored(
        tmp_path, "s", optuna.samplers.TPESampler(seed=1), ["maximize"]
    )._storage._backend.url
    impatient = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.2}})
    mirror = Mirror(
        optuna.load_study(
            storage=impatient, study_name="s", sampler=optuna.samplers.TPESampler(seed=1)
        )
    )
    mirror.ask(suggest)  # the enqueued retry
    asked, stored_id = mirror.ask(suggest)
    lock = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the database refuses writes for a while
    with pytest.raises(optuna.exceptions.StorageInternalError):
        mirror.tell(asked.number, stored_id, 1.0)
    lock.execute("ROLLBACK")
    after, _ = mirror.ask(suggest)
    assert after.number == asked.number + 1  # numbered as the stored study numbers it
    trials = optuna.load_study(storage=url, study_name="s").trials
    assert trials[asked.number].state == TrialState.RUNNING  # not told: resume settles it
    assert mirror.memory.trials[asked.number].state == TrialState.RUNNING  # the copy agrees
    assert trials[after.number].params == after.params
