"""A search stratum as an Optuna study in a real database, kept in step with the study's
MLflow record, and the Ray Tune searcher that asks it for trials.

The Optuna study `<study name>/<stratum>` (or `<study name>` without strata) lives in an
RDB storage that only the driver writes (docs/failures.md), and records its
study's parent run (user attr fsvae.parent_run_id). A trial is asked (of an in-memory copy
of the study, study/search/mirror.py, and written to the stored one at once) before Tune
starts it, and told (both, the same way) when Tune hears its end, after its
MLflow run says how it ended (study/driver/outcomes.py): COMPLETE with its value, FAIL, or PRUNED
when the early-stopping scheduler stopped it (with the intermediate values it reported).
A trial its study interrupted is not told: it runs again. The Optuna trial number is the
trial's identity: its key is "<stratum>#<number>".

Before any trial is asked, study/search/sync.py brings the Optuna study in step with MLflow
(adding what it lacks, rebuilding it where it disagrees), and `reconcile` settles the
trials it holds as RUNNING: one whose MLflow run FINISHED is told its recorded value
(adopted, not re-run); one that FAILED or was stopped is told so; one with no finished
record is run again with the same number and parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

import search_spaces
from study.hooks import faults
from study.record.read import Entry, best_of
from study.search.mirror import Mirror
from study.search.report import FINAL
from study.search.sync import PLACEHOLDER, RETRY_OF, RUN_ID, values_of


def study_name(name: str, label: str) -> str:
    return f"{name}/{label}" if label else name


def trial_key(label: str, number: int) -> str:
    return f"{label}#{number}"


def open_study(
    storage_url: str, name: str, sampler_seed: int | None, sampler: str = "tpe"
) -> optuna.Study:
    """The stratum's study (made by optuna_sync.sync), with TPE (multi-objective too) or
    NSGA-II. A seeded sampler is reseeded with the number of trials already there, so that a
    resumed search does not replay its first draws."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs = {"connect_args": {"timeout": 60}} if storage_url.startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(storage_url, engine_kwargs=kwargs)
    study = optuna.load_study(storage=storage, study_name=name)
    n = len(study.get_trials(deepcopy=False))
    seed = sampler_seed
    if seed is not None and n:
        seed = int(np.random.SeedSequence([seed, n]).generate_state(1)[0])
    study.sampler = (
        optuna.samplers.NSGAIISampler(seed=seed)
        if sampler == "nsga2"
        else optuna.samplers.TPESampler(seed=seed)
    )
    return study


@dataclass
class Stratum:
    """A stratum's Optuna study after reconciliation: what is done, what runs again, and how
    many trials are still to ask."""

    done: int = 0  # trials in a final state (COMPLETE, PRUNED, FAIL) that the study counts
    failed: int = 0
    adopted: list[str] = field(default_factory=list)  # keys told from MLflow just now
    rerun: list[tuple[int, dict, int | None]] = field(default_factory=list)  # (number, params,
    # retry_of) of trials asked before the driver stopped, run again under their own number
    asks: int = 0  # study.ask() calls left: enqueued retries first, then new trials
    # (value, key, 0, params) of the best COMPLETE trial: study.record.read.best_of's shape
    best: tuple[float, str, int, dict] | None = None

    @property
    def todo(self) -> int:
        return len(self.rerun) + self.asks


def reconcile(
    study: optuna.Study,
    label: str,
    entries: dict[str, Entry],
    objectives: list[str],
    num_samples: int,
    retry_failed: bool,
) -> Stratum:
    """Brings the Optuna study in step with MLflow (see the module's docstring)."""
    out = Stratum()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        entry = entries.get(trial_key(label, t.number))
        state = entry.state if entry is not None else "unfinished"
        values = values_of(entry, objectives) if entry is not None and state == "finished" else None
        if entry is not None and values is not None:
            study._storage.set_trial_user_attr(t._trial_id, RUN_ID, entry.run_id)
            study.tell(t.number, values if len(values) > 1 else values[0])
            out.adopted.append(entry.key)
        elif state in ("failed", "finished"):
            study.tell(t.number, state=TrialState.FAIL)
        elif state == "stopped":
            study.tell(t.number, state=TrialState.PRUNED)
        else:
            out.rerun.append((t.number, dict(t.params), t.user_attrs.get(RETRY_OF)))
    if retry_failed:
        for t in counted(study, (TrialState.FAIL,)):
            study.enqueue_trial(
                dict(t.params), user_attrs={RETRY_OF: t.number}, skip_if_exists=False
            )
    final = counted(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    waiting = counted(study, (TrialState.WAITING,))
    out.done = len(final)
    out.failed = sum(t.state == TrialState.FAIL for t in final)
    out.asks = len(waiting) + max(0, num_samples - out.done - len(waiting) - len(out.rerun))
    complete = [t for t in final if t.state == TrialState.COMPLETE]
    if complete and len(objectives) == 1:
        mode = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
        out.best = best_of(
            [(t.value, trial_key(label, t.number), 0, dict(t.params)) for t in complete], mode
        )
    return out


def counted(study: optuna.Study, states: tuple) -> list:
    """The study's trials in `states`, less failed ones that a later trial retried and the
    placeholders of numbers MLflow has no run for (optuna_sync)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}
    return [
        t
        for t in trials
        if t.state in states and t.number not in retried and not t.user_attrs.get(PLACEHOLDER)
    ]


class OptunaSearcher(Searcher):
    """Ray Tune searcher over one stratum's Optuna study: hands out the trials that run again
    first, then asks Optuna (enqueued retries, then new trials) until the budget is spent."""

    def __init__(
        self,
        study: optuna.Study,
        label: str,
        params: dict[str, dict],
        objectives: list[str],
        modes: list[str],
        stratum: Stratum,
        ends,
        held,
        known: dict[str, list[str]] | None = None,
    ):
        super().__init__(metric=objectives[0], mode=modes[0])
        self.study, self.label, self.params = study, label, params
        self.held = held  # the study's lease (study/identity/lease.py): checked before each write
        self.objectives, self.ends = objectives, ends
        self.known = known or {}  # trial key -> the runs the record holds for it
        self.mirror = Mirror(study)  # asked and told in memory, written through to `study`
        self.rerun, self.asks = list(stratum.rerun), stratum.asks
        # Tune trial id -> (number, Optuna id, what it was handed)
        self.live: dict[str, tuple[int, int, dict]] = {}

    @property
    def todo(self) -> int:
        """Trials this searcher will still hand out."""
        return len(self.rerun) + self.asks

    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]  # Ray's hint omits FINISHED
        if self.todo and not self.held.holds():
            return None  # no new trial: the study is another driver's now, and Tune stops
        if self.rerun:
            number, params, retry_of = self.rerun.pop(0)
            db_id = self.mirror.stored_id(number)
        elif self.asks > 0:
            self.asks -= 1
            trial, db_id = self.mirror.ask(lambda t: search_spaces.suggest(t, self.params))
            number, params = trial.number, dict(trial.params)
            retry_of = trial.user_attrs.get(RETRY_OF)
        else:
            return Searcher.FINISHED
        config: dict[str, Any] = {"key": trial_key(self.label, number), "point": params}
        if retry_of is not None:
            config["replaces"] = trial_key(self.label, retry_of)
        config["runs"] = [
            run
            for k in (config["key"], config.get("replaces"))
            if k is not None
            for run in self.known.get(k, [])
        ]
        self.live[trial_id] = (number, db_id, config)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """An early-stopping scheduler's intermediate value, kept for a PRUNED trial."""
        value = result.get(self.objectives[0])
        step = result.get("classifier_epoch")
        if (
            trial_id in self.live
            and FINAL not in result
            and step is not None
            and isinstance(value, (int, float))
            and math.isfinite(value)
            and self.held.holds()
        ):
            number, db_id, _ = self.live[trial_id]
            self.mirror.report(number, db_id, float(value), int(step))

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """MLflow first (Ends.record), then Optuna; an interrupted trial is not told."""
        if trial_id not in self.live:
            return
        number, db_id, config = self.live.pop(trial_id)
        outcome = self.ends.record(trial_id, config, result, error)
        if outcome.state != "interrupted" and not self.held.holds():
            return  # the study is another driver's now: Optuna is not told
        if outcome.state == "finished":
            values = outcome.values
            self.mirror.tell(
                number,
                db_id,
                values if len(values) > 1 else values[0],
                user_attrs={RUN_ID: outcome.run_id} if outcome.run_id else None,
            )
        elif outcome.state == "failed":
            self.mirror.tell(number, db_id, state=TrialState.FAIL)
        elif outcome.state == "stopped":
            self.mirror.tell(number, db_id, state=TrialState.PRUNED)
        faults.pause("searcher_told", key=config["key"])

    # The state lives in the Optuna database, not in Tune's checkpoints.
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            f.write("state in the Optuna storage\n")

    def restore(self, checkpoint_path: str) -> None:
        pass

    def __getstate__(self) -> dict[str, Any]:
        return {"label": self.label, "params": self.params}
