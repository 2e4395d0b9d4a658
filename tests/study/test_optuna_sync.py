"""study.search.sync against real stores (an MLflow SQLite store written by the study's own
TrialRecorder, an Optuna SQLite store): the Optuna study follows MLflow. A lost store is
rebuilt with every finished, failed and stopped trial under its own number; a trial Optuna
holds as final but MLflow otherwise makes the study rebuild; a number MLflow has no run for
is a placeholder that does not count; an interrupted trial goes back to RUNNING with its
parameters; conditional parameters carry the space's exact distributions; another study's
Optuna study is refused. An enqueued retry whose writes were cut short (a real SQLite lock)
runs in the next session with exactly the parameters of the trial it retries. A rebuild
keeps NSGA-II's generation of each trial; a lost store's is reported lost."""

from __future__ import annotations

import json
import sqlite3

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

import search_spaces
from study.errors import StudyError
from study.identity.parent import ensure_experiment
from study.record import read as study_record
from study.record import write as records
from study.record.schema import POINT, ROLE
from study.search import searcher as optuna_search
from study.search.mirror import Mirror
from study.search.sync import PLACEHOLDER, sync

SPACE = """
name: s
kind: optuna
objective: val_acc_h
num_samples: 6
strata: {n_f: [5]}
params:
  beta_schedule: {type: categorical, choices: [linear, cyclical]}
  beta_cycles: {type: int, low: 1, high: 8, when: {beta_schedule: cyclical}}
  beta_max: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
"""
POINTS = [
    {"beta_schedule": "linear", "beta_max": 0.001},
    {"beta_schedule": "cyclical", "beta_cycles": 4, "beta_max": 0.02},
    {"beta_schedule": "linear", "beta_max": 0.0005},
    {"beta_schedule": "cyclical", "beta_cycles": 2, "beta_max": 0.0001},
]


@pytest.fixture
def stores(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = ensure_experiment(client, "s", tmp_path)
    parent = client.create_run(exp, tags={ROLE: "study"}).info.run_id
    space = search_spaces.parse(__import__("yaml").safe_load(SPACE), "s.yaml", SPACE)
    return {
        "uri": uri,
        "client": client,
        "exp": exp,
        "parent": parent,
        "space": space,
        "optuna": f"sqlite:///{tmp_path / 'optuna.db'}",
        "tmp": tmp_path,
    }


def record(stores, number: int, state: str, value: float = 0.5, point: dict | None = None) -> str:
    """A trial run as the study writes one: finished, failed, stopped or interrupted."""
    point = POINTS[number] if point is None else point
    rec = records.TrialRecorder(
        stores["uri"],
        stores["exp"],
        stores["parent"],
        f"n_f=5#{number}",
        f"run-{number}",
        tags={POINT: json.dumps(point, sort_keys=True)},
    )
    run_id = rec.start({**point, "n_f": 5})
    if state == "finished":
        rec.finish({"metrics": {"val_acc_h": value}, "timings": {}, "minority_classes": []}, None)
    elif state == "failed":
        rec.fail(ValueError("loss is nan"), None)
    elif state == "stopped":
        rec.progress({"stage": "classifier", "epoch": 0, "val_acc_h": 0.2})
        rec.progress({"stage": "classifier", "best_epoch": 0})
        rec.flush()  # as its SystemExit does (TrialRecorder.interrupted)
        stores["client"].set_tag(run_id, "fsvae.stopped", "early-stopped by the scheduler")
        stores["client"].set_terminated(run_id, "KILLED")
    elif state == "interrupted":
        rec.interrupted("its study stopped")
    return run_id


def run_sync(stores):
    entries = study_record.read(stores["client"], stores["exp"], stores["parent"])
    synced = sync(
        stores["optuna"],
        "s/n_f=5",
        "n_f=5",
        entries,
        stores["space"],
        stores["parent"],
        stores["client"],
    )
    study = optuna.load_study(study_name="s/n_f=5", storage=stores["optuna"])
    return synced, study


def test_a_lost_store_is_rebuilt_with_every_recorded_trial_under_its_number(stores):
    ids = [
        record(stores, 0, "finished", 0.4),
        record(stores, 1, "failed"),
        record(stores, 2, "stopped"),
        record(stores, 3, "interrupted"),
    ]
    synced, study = run_sync(stores)
    assert synced.created and synced.added == 3
    trials = study.get_trials()
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.PRUNED,
        TrialState.RUNNING,
    ]
    assert trials[0].value == 0.4 and trials[0].user_attrs["mlflow_run_id"] == ids[0]
    assert trials[2].intermediate_values == {1: 0.2}  # the epoch-0 value, reported as step 1
    assert [t.params for t in trials] == POINTS  # the conditional beta_cycles only where used
    assert study.user_attrs["fsvae.parent_run_id"] == stores["parent"]
    # The interrupted trial runs again under its own number, with its own parameters.
    stratum = optuna_search.reconcile(
        study,
        "n_f=5",
        study_record.read(stores["client"], stores["exp"], stores["parent"]),
        ["val_acc_h"],
        6,
        False,
    )
    assert stratum.rerun == [(3, POINTS[3], None)]
    assert stratum.done == 3 and stratum.asks == 2


def test_a_trial_optuna_holds_as_failed_but_mlflow_as_finished_rebuilds_the_study(stores):
    record(stores, 0, "finished", 0.4)
    run_sync(stores)
    record(stores, 1, "finished", 0.7)
    study = optuna.load_study(study_name="s/n_f=5", storage=stores["optuna"])
    trial = study.ask()  # asked as number 1, then told FAIL: a worker died after its run
    search_spaces.suggest(trial, stores["space"].params)
    study.tell(trial, state=TrialState.FAIL)
    synced, study = run_sync(stores)
    assert synced.rebuilt
    assert [(t.number, t.state, t.value) for t in study.get_trials()] == [
        (0, TrialState.COMPLETE, 0.4),
        (1, TrialState.COMPLETE, 0.7),
    ]


def test_a_number_without_a_run_is_a_placeholder_that_does_not_count(stores):
    record(stores, 0, "finished")
    record(stores, 2, "finished")  # number 1 was asked, but its trial never wrote a run
    synced, study = run_sync(stores)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs[PLACEHOLDER]
    counted = optuna_search.counted(study, (TrialState.COMPLETE, TrialState.FAIL))
    assert [t.number for t in counted] == [0, 2]


def test_a_store_that_agrees_is_left_as_it_is(stores):
    record(stores, 0, "finished")
    run_sync(stores)
    synced, study = run_sync(stores)
    assert not synced.rebuilt and not synced.created and synced.added == 0
    assert len(study.get_trials()) == 1


def test_another_studys_optuna_study_is_refused(stores):
    record(stores, 0, "finished")
    run_sync(stores)
    other = stores["client"].create_run(stores["exp"], tags={ROLE: "study"}).info.run_id
    with pytest.raises(StudyError, match="belongs to another study record"):
        sync(stores["optuna"], "s/n_f=5", "n_f=5", {}, stores["space"], other, stores["client"])


# -- an enqueued retry cut short while the searcher writes it --------------------------------


class Interruption:
    """The database refuses writes (a real SQLite lock, held by another connection) once
    `after` writes of one Optuna storage have committed: a driver cut off between them."""

    WRITES = (
        "_create_new_trial",
        "_set_trial_param",
        "set_trial_state_values",
        "set_trial_system_attr",
        "set_trial_user_attr",
    )

    def __init__(self, monkeypatch, storage, path, after: int):
        self.lock = sqlite3.connect(path, isolation_level=None)
        self.after, self.writes = after, 0
        for name in self.WRITES:
            monkeypatch.setattr(storage, name, self._counted(getattr(storage, name)))
        self._maybe_lock()

    def _counted(self, write):
        def counted(*args, **kwargs):
            out = write(*args, **kwargs)
            self.writes += 1
            self._maybe_lock()
            return out

        return counted

    def _maybe_lock(self):
        if self.writes == self.after:
            self.lock.execute("BEGIN EXCLUSIVE")

    def release(self):
        self.lock.execute("ROLLBACK")
        self.lock.close()


def session(stores, num_samples: int, retry_failed: bool, storage=None):
    """A session's start as study/driver/session.py makes it: sync, open, reconcile."""
    entries = study_record.read(stores["client"], stores["exp"], stores["parent"])
    sync(
        stores["optuna"],
        "s/n_f=5",
        "n_f=5",
        entries,
        stores["space"],
        stores["parent"],
        stores["client"],
    )
    study = optuna_search.open_study(stores["optuna"], "s/n_f=5", 3)
    if storage is not None:  # the same study, through `storage`
        study = optuna.load_study(study_name="s/n_f=5", storage=storage, sampler=study.sampler)
    stratum = optuna_search.reconcile(
        study, "n_f=5", entries, ["val_acc_h"], num_samples, retry_failed
    )
    return study, stratum, Mirror(study)


def handed_out(stratum, mirror, params) -> list[tuple[int, dict, int | None]]:
    """(number, parameters, number retried) of each trial the searcher hands Tune, in
    order, as OptunaSearcher.suggest picks them: those that run again, then those asked."""
    out = list(stratum.rerun)
    for _ in range(stratum.asks):
        trial, _ = mirror.ask(lambda t: search_spaces.suggest(t, params))
        out.append((trial.number, dict(trial.params), trial.user_attrs.get("retry_of")))
    return out


@pytest.mark.parametrize("after", [0, 1, 2, 3])
def test_a_retry_cut_short_while_being_asked_runs_with_its_own_parameters(
    stores, monkeypatch, after
):
    """`resume --retry-failed` enqueues the failed trial 1 as trial 2; the searcher's ask of
    it is cut off after `after` of its writes (three parameters and its state); the next
    session runs trial 2 with exactly trial 1's parameters."""
    record(stores, 0, "finished", 0.4)
    record(stores, 1, "failed")  # POINTS[1]: the conditional beta_cycles is among its params
    impatient = optuna.storages.RDBStorage(
        stores["optuna"], engine_kwargs={"connect_args": {"timeout": 0.2}}
    )
    _, stratum, mirror = session(stores, 3, True, impatient)
    assert stratum.asks == 2  # the retry, then one new trial
    cut = Interruption(monkeypatch, impatient, stores["tmp"] / "optuna.db", after)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        handed_out(stratum, mirror, stores["space"].params)
    assert cut.writes == after
    cut.release()
    monkeypatch.undo()
    left = optuna.load_study(study_name="s/n_f=5", storage=stores["optuna"]).trials[2]
    assert left.state == TrialState.WAITING  # not taken: asked again, not run as it is
    assert POINTS[1].items() >= left.params.items()  # what it holds is its own

    _, stratum, mirror = session(stores, 3, True)  # `resume --retry-failed` again
    trials = handed_out(stratum, mirror, stores["space"].params)
    assert trials[0] == (2, POINTS[1], 1)  # exactly the parameters of the trial it retries
    assert [(n, of) for n, _, of in trials] == [(2, 1), (3, None)]
    stored = optuna.load_study(study_name="s/n_f=5", storage=stores["optuna"]).trials
    assert (stored[2].state, stored[2].params) == (TrialState.RUNNING, POINTS[1])
    assert stored[3].params == trials[1][1]


def test_a_retry_left_running_with_part_of_its_parameters_gets_the_rest(stores):
    """A store an earlier driver left: it marked the enqueued retry RUNNING, wrote one of
    its parameters and stopped. The next session runs it with all of them."""
    record(stores, 0, "finished", 0.4)
    record(stores, 1, "failed")
    run_sync(stores)
    study = optuna.load_study(study_name="s/n_f=5", storage=stores["optuna"])
    study.enqueue_trial(dict(POINTS[1]), user_attrs={"retry_of": 1}, skip_if_exists=False)
    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, 2)
    assert storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    dist = study.trials[1].distributions["beta_schedule"]
    storage.set_trial_param(trial_id, "beta_schedule", dist.to_internal_repr("cyclical"), dist)

    study, stratum, _ = session(stores, 3, True)
    assert stratum.rerun == [(2, POINTS[1], 1)]  # runs again, as trial 1's configuration
    assert study.trials[2].params == POINTS[1]


# -- the sampler's own attributes (NSGA-II's generations) ----------------------------------

GENERATION = "NSGAIISampler:generation"  # optuna/samplers/_ga/_base.py, per trial


def nsga2_history(stores, n: int) -> list[dict]:
    """An nsga2 search (two trials a generation) of `n` trials, each recorded in MLflow
    before Optuna is told, as the searcher does; the last one told FAIL in Optuna although
    its run FINISHED (a worker died after its run ended), so that the next sync rebuilds."""
    stores["space"] = search_spaces.parse(
        yaml.safe_load(SPACE + "sampler: nsga2\n"), "s.yaml", SPACE
    )
    assert stores["space"].sampler == "nsga2"
    run_sync(stores)
    study = optuna.load_study(
        study_name="s/n_f=5",
        storage=stores["optuna"],
        sampler=optuna.samplers.NSGAIISampler(population_size=2, seed=5),
    )
    points = []
    for number in range(n):
        trial = study.ask()
        search_spaces.suggest(trial, stores["space"].params)
        value = 0.1 + 0.1 * number
        record(stores, number, "finished", value, point=trial.params)
        study.tell(
            trial,
            value if number < n - 1 else None,
            state=TrialState.COMPLETE if number < n - 1 else TrialState.FAIL,
        )
        points.append(dict(trial.params))
    return points


def next_generation(stores) -> int:
    study = optuna.load_study(
        study_name="s/n_f=5",
        storage=stores["optuna"],
        sampler=optuna.samplers.NSGAIISampler(population_size=2, seed=5),
    )
    trial = study.ask()
    search_spaces.suggest(trial, stores["space"].params)
    return study.trials[trial.number].system_attrs[GENERATION]


def test_a_rebuilt_nsga2_study_keeps_each_trials_generation(stores):
    nsga2_history(stores, 5)
    before = optuna.load_study(study_name="s/n_f=5", storage=stores["optuna"]).trials
    assert [t.system_attrs[GENERATION] for t in before] == [0, 0, 1, 1, 2]
    synced, study = run_sync(stores)
    assert synced.rebuilt and not synced.sampler_state_lost
    assert [(t.state, t.system_attrs) for t in study.trials] == [
        (TrialState.COMPLETE, t.system_attrs) for t in before
    ]
    assert next_generation(stores) == 2  # the search goes on where it was


def test_a_lost_nsga2_store_is_reported_and_starts_again_at_generation_0(stores):
    nsga2_history(stores, 5)
    (stores["tmp"] / "optuna.db").unlink()
    synced, study = run_sync(stores)
    assert synced.created and synced.added == 5 and synced.sampler_state_lost
    assert not any(GENERATION in t.system_attrs for t in study.trials)
    assert next_generation(stores) == 0
    synced, _ = run_sync(stores)  # said once: the next session has nothing more to lose
    assert not synced.sampler_state_lost


def test_a_lost_tpe_store_loses_nothing_the_sampler_needs(stores):
    record(stores, 0, "finished")
    synced, _ = run_sync(stores)
    assert synced.created and synced.added == 1 and not synced.sampler_state_lost
