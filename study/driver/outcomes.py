"""How each trial ended, as the driver records it: MLflow first, then the searcher's store.

Ray Tune tells its searcher that a trial ended before it tells its callbacks, so the
study's searchers (a grid's, here; an Optuna search's, study/search/searcher.py) call
`Ends.record` first: it makes the trial's MLflow run say how the trial ended, and only then
does the searcher tell Optuna (docs/failures.md: MLflow first, then Tune and
Optuna). The console (study/driver/progress.py) reads the outcome recorded here.

  finished     its run is FINISHED: written by the trial before its last report, or found
               so after its worker died before Tune heard of it
  failed       its run is FAILED: its own error (written by the trial), or its retries for
               the infrastructure ran out (written here)
  stopped      the scheduler (ASHA) decided to stop it: its run KILLED with fsvae.stopped,
               written here from the scheduler's own decision. Inside the trial an ASHA
               stop and a shutdown look alike (a SystemExit in tune.report), so only the
               driver can tell them apart, and this is the only source of PRUNED
  interrupted  the study stopped it (Ctrl-C, a stop of all trials): nothing is told; its
               run is closed as interrupted once Ray is down, and it runs again on resume
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

from study.hooks import faults
from study.record.read import precedence, search
from study.record.schema import PARENT, STOPPED, TRIAL_KEY
from study.search.report import FAILED, FINAL


@dataclass
class Outcome:
    state: str  # finished | failed | stopped | interrupted
    values: list[float] | None = None  # finished: the objective values
    text: str = ""  # failed: the reason; finished: how it was found, if unusual
    run_id: str | None = None


class Ends(tune.Callback):
    """Records trials' ends in MLflow for the searchers, and keeps each outcome for the
    console. `infra_failed(trial, config, text)` writes a trial that failed for the
    infrastructure (study/driver/session.py); `stops` is filled by RecordedASHA."""

    def __init__(
        self,
        client,
        experiment_id: str,
        parent_id: str,
        objectives: list[str],
        infra_failed: Callable,
        held,
        stops: set[str] | None = None,
        on_end: Callable | None = None,
    ):
        self.client, self.exp_id, self.parent_id = client, experiment_id, parent_id
        self.held = held  # the study's lease (study/identity/lease.py), checked before a write
        self.objectives, self.infra_failed = objectives, infra_failed
        self.stops = stops if stops is not None else set()
        self.on_end = on_end  # (config, outcome, result) once the end is recorded
        self.trials: dict[str, object] = {}  # Tune trial id -> Trial, from its start
        self.outcomes: dict[str, Outcome] = {}

    def __getstate__(self) -> dict:
        return {}  # Tune pickles its callbacks; this one is never restored from there

    def on_trial_start(self, iteration, trials, trial, **info):
        self.trials[trial.trial_id] = trial

    def record(self, trial_id: str, config: dict, result: dict | None, error: bool) -> Outcome:
        result = result or {}
        if FINAL in result:
            outcome = Outcome(
                "finished",
                [float(result[o]) for o in self.objectives],
                run_id=result.get("mlflow_run_id"),
                text="its run had finished; not computed again"
                if result.get("reused_finished_run")
                else "",
            )
        elif FAILED in result:
            outcome = Outcome(
                "failed", text=str(result.get("error", "")), run_id=result.get("mlflow_run_id")
            )
        elif (error or trial_id in self.stops) and not self.held.holds():
            outcome = Outcome("interrupted")  # the study is another driver's now: no write
        elif error:
            outcome = self._failed(trial_id, config, result)
        elif trial_id in self.stops:
            outcome = self._stopped(config, result)
        else:
            outcome = Outcome("interrupted")
        self.outcomes[trial_id] = outcome
        if self.on_end is not None:
            self.on_end(config, outcome, result)
        faults.pause("searcher_tell", key=config["key"])
        return outcome

    def _failed(self, trial_id: str, config: dict, result: dict) -> Outcome:
        """Tune gave up on the trial (its worker or node died, MLflow could not be
        reached). Its run may have FINISHED before its worker died: then it is finished."""
        run = self._run(config["key"], result.get("mlflow_run_id"))
        if run is not None and run.info.status == "FINISHED":
            values = [run.data.metrics.get(o) for o in self.objectives]
            if all(v is not None for v in values):
                return Outcome(
                    "finished",
                    values,
                    run_id=run.info.run_id,
                    text="its run had finished before its worker stopped",
                )
        text = self.infra_failed(self.trials.get(trial_id), config, run)
        return Outcome("failed", text=text, run_id=run.info.run_id if run else None)

    def _stopped(self, config: dict, result: dict) -> Outcome:
        run = self._run(config["key"], result.get("mlflow_run_id"))
        if run is not None and run.info.status == "FINISHED":
            values = [run.data.metrics.get(o) for o in self.objectives]
            return Outcome("finished", values, run_id=run.info.run_id)
        if run is not None:
            self.client.set_tag(run.info.run_id, STOPPED, "early-stopped by the scheduler")
            self.client.set_terminated(run.info.run_id, "KILLED")
        return Outcome("stopped", run_id=run.info.run_id if run else None)

    def _run(self, key: str, run_id: str | None):
        """The trial's run: by the id it reported when it did (no search), else the key's
        runs under this study's parent, its FINISHED one first."""
        if run_id:
            return self.client.get_run(run_id)
        runs = search(
            self.client,
            self.exp_id,
            f"tags.`{PARENT}` = '{self.parent_id}' and tags.`{TRIAL_KEY}` = '{key}'",
        )
        runs.sort(key=lambda r: precedence(r.info.status, r.info.start_time))
        return runs[-1] if runs else None  # the run that counts (study.record.read)


class GridSearcher(Searcher):
    """Hands out a grid's remaining points in order, and records each trial's end."""

    def __init__(self, points: list[dict], ends: Ends, metric: str, mode: str):
        super().__init__(metric=metric, mode=mode)
        self.points, self.ends = list(points), ends  # each {"key", "point"}
        self.live: dict[str, dict] = {}

    @property
    def todo(self) -> int:
        """Trials this searcher will still hand out."""
        return len(self.points)

    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]  # Ray's hint omits FINISHED
        if not self.points:
            return Searcher.FINISHED
        if not self.ends.held.holds():
            return None  # no new trial: the study is another driver's now, and Tune stops
        self.live[trial_id] = self.points.pop(0)
        return self.live[trial_id]

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        config = self.live.pop(trial_id, None)
        if config is not None:
            self.ends.record(trial_id, config, result, error)

    # The state lives in MLflow, not in Tune's checkpoints.
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            f.write("state in MLflow\n")

    def restore(self, checkpoint_path: str) -> None:
        pass

    def __getstate__(self) -> dict:
        return {}


class RecordedASHA(ASHAScheduler):
    """ASHA that remembers whom it stopped, so that the driver records exactly its stops as
    stopped (and PRUNED), never a trial that an interruption ended."""

    def __init__(self, stops: set[str], **kwargs):
        super().__init__(**kwargs)
        self.stops = stops

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            self.stops.add(trial.trial_id)
        return decision


def failed_run(ctx, trial, config: dict, fence) -> str:
    """A run for a trial that failed (its retries for the infrastructure ran out) before it
    wrote one, with its params and tags, so that the record has the trial once; `fence`,
    the study's lease check, before it is made."""
    import json

    from fsvae import config as config_mod
    from fsvae.trial import resolve
    from study.driver.trainable import run_name, trial_config
    from study.record import write as records
    from study.record.read import short_key
    from study.record.schema import POINT, RETRY_OF, STRATUM, STUDY, TRIAL_ID

    cfg = resolve(config_mod.resolve(trial_config(config, ctx), preset=ctx.preset))
    tags = {
        STRATUM: ",".join(f"{k}={v}" for k, v in ctx.stratum.items()),
        STUDY: ctx.study,
        TRIAL_ID: trial.trial_id if trial is not None else "-",
        POINT: json.dumps(config["point"], sort_keys=True, default=str),
    }
    if config.get("replaces"):
        tags[RETRY_OF] = config["replaces"]
    rec = records.TrialRecorder(
        ctx.tracking_uri,
        ctx.experiment_id,
        ctx.parent_run_id,
        config["key"],
        f"{short_key(config['key'])} {run_name(cfg)}",
        tags=tags,
        replaces=config.get("replaces"),
        known=config.get("runs", []),
        fence=fence,
    )
    return rec.start(config_mod.active_config(cfg))
