"""The body of one session of a study: reconcile the record, run each stratum's remaining
trials with Ray Tune, recount, and say where things stand.

The record is MLflow (one run per trial key) and, for a search, the Optuna store; Ray
Tune only executes. Whatever stopped the previous session, this one starts from the
record: finished trials are counted (and a search's Optuna study told of any it missed),
runs left RUNNING are closed, and everything else runs (README "Failures and resuming").
"""
from __future__ import annotations

import dataclasses
import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

import search_spaces
from fsvae import config as config_mod
from fsvae import data as data_mod
from study import cluster, plan as plan_mod, record, prebuild, records, storage, tuner
from study.identity import redact
from study.plan import Plan
from study.schema import (ERROR, POINT, RETRY_OF, STRATUM, STUDY, TRIAL_ID,
                          default_tracking_uri)
from study.trainable import INTERRUPTED_WHY, TrialContext


@dataclass
class StudyResult:
    """How a session ended: what `run_study` and `resume_study` return, and the exit code
    `fsvae-study run` and `resume` give (0 complete, 130 interrupted)."""

    name: str
    experiment_id: str
    parent_run_id: str
    tracking_uri: str  # without its password
    complete: bool
    finished: int  # the study's trials that finished, all sessions together
    failed: int
    exit_code: int
    model_uri: str | None = None  # the best model, with --log-model


class Session:
    def __init__(self, plan: Plan, space: search_spaces.Space, client, resuming: bool,
                 retry_failed: bool):
        self.plan, self.space, self.client = plan, space, client
        self.exp_id, self.parent_id = plan.experiment_id, plan.parent_run_id
        self.resuming, self.retry_failed = resuming, retry_failed
        self.storage_error: str | None = None
        self.prebuild = None
        self.adopted = 0

    def __getstate__(self) -> dict:
        # Ray Tune pickles its callbacks and stopper (which call back into this session)
        # with its experiment state; a session is never restored from there.
        return {}

    # -- the session ---------------------------------------------------------------------

    def run(self, multi_node: bool) -> bool:
        """Runs what is left of every stratum; returns whether the session was interrupted.
        `finish` (after Ray is down) closes what is left open and says where things stand."""
        plan, space = self.plan, self.space
        marker = cluster.write_markers(plan, plan.folder)
        if multi_node:
            n = cluster.probe_nodes(marker)
            print(f"every node ({n}) sees the study's storage, cache and data", flush=True)
        resources, concurrency = cluster.trial_resources(plan, space)
        entries = record.read(self.client, self.exp_id, self.parent_id)
        closed = record.close_stale(self.client, entries, INTERRUPTED_WHY)
        print(f"study {plan.name}: {search_spaces.count(space)} trials "
              f"({space.kind}{', strata ' + str(space.strata) if space.strata else ''}), "
              f"{concurrency} at a time, {_fmt_resources(resources)} each"
              + (f" (resuming, session {plan.sessions}"
                 + (f"; closed {closed} run(s) its last driver left running" if closed
                    else "") + ")" if self.resuming else ""), flush=True)
        shared = TrialContext(
            base=plan.base, preset=plan.preset, study=plan.name,
            tracking_uri=plan.tracking_uri, experiment_id=self.exp_id,
            parent_run_id=self.parent_id, cache_dir=plan.cache_dir,
            objectives=space.objectives, report_epochs=plan.asha,
            max_failures=plan.max_failures, marker=marker, git=records.git_state(),
            data_fingerprint=data_mod.fingerprint(plan.data))
        interrupted = False
        for step, (stratum, label) in enumerate(_strata(space)):
            ctx = dataclasses.replace(shared, stratum=stratum)
            if not self._stratum(ctx, stratum, label, step, entries, resources, concurrency):
                interrupted = True
                break
        if self.storage_error:
            raise cluster.SharedStorageError(self.storage_error)
        return interrupted

    def _stratum(self, ctx: TrialContext, stratum: dict, label: str, step: int, entries: dict,
                 resources: dict, concurrency: int) -> bool:
        """Runs what is left of one stratum; False when the session was interrupted."""
        from ray import tune

        from study.outcomes import Ends, GridSearcher
        from study.progress import Progress
        from study.trainable import trainable

        plan, space = self.plan, self.space
        total = space.num_samples if space.kind == "optuna" else len(space.trials())
        where = f"{label}: " if label else ""
        stops: set[str] = set()
        ends = Ends(self.client, self.exp_id, self.parent_id, space.objectives,
                    self._infra_failure(ctx), stops)
        if space.kind == "grid":
            todo, prior = self._grid_todo(entries)
            searcher = GridSearcher(todo, ends, space.objectives[0], space.modes[0])
        else:
            searcher, prior = self._search(label, entries, ends)
        if not searcher.todo:
            print(f"{where}all {total} trials were done in earlier sessions", flush=True)
            return True
        shared = prebuild.shared_config(plan, space, stratum, concurrency)
        if shared is not None:
            import ray

            self.prebuild = prebuild.start(
                self.client, self.parent_id, shared, plan, resources, concurrency, label,
                step, alongside=not plan.address and ray.is_initialized()
                and "gpu" not in resources)
        progress = Progress(total, space.objectives, space.modes, ends, label,
                            tuner.shown_keys(space), prior=prior,
                            retries=plan.infra_retries + plan.max_failures,
                            on_retry=self._on_retry)
        wrapped = tune.with_resources(tune.with_parameters(trainable, ctx=ctx), resources)
        experiment = "tune" + (f"-{label}" if label else "") + f"-s{plan.sessions}"
        run = tuner.build(plan, space, wrapped, experiment, concurrency, [ends, progress],
                          searcher, stops, stop=self._stop_all)
        run.fit()
        if self.prebuild is not None:
            # Done by now if the trials ran (they waited on it); an interrupted study does
            # not wait for it (Ray's shutdown ends it; its entry stays unwritten).
            self.prebuild.join(timeout=120 if self._stratum_complete(label) else 0)
            self.prebuild = None
        return self._stratum_complete(label)

    def _grid_todo(self, entries: dict) -> tuple[list[dict], dict]:
        """The grid points still to run, in sharing order, and what earlier sessions did."""
        points = tuner.order_for_sharing(self.space.trials(), self.plan.base,
                                          self.plan.preset)
        todo, done, failed, best = [], 0, 0, None
        pick = max if self.space.modes[0] == "max" else min
        for point in points:
            key = tuner.grid_key(point)
            entry = entries.get(key)
            state = entry.state if entry is not None else "unfinished"
            if state == "unfinished" or (state == "failed" and self.retry_failed):
                todo.append({"key": key, "point": point})
                continue
            done += 1
            failed += state == "failed"
            value = entry.metrics.get(self.space.objectives[0])
            if state == "finished" and value is not None and math.isfinite(value) \
                    and len(self.space.objectives) == 1:
                best = (value, point) if best is None else pick(best, (value, point),
                                                               key=lambda b: b[0])
        return todo, {"done": done, "failed": failed, "best": best}

    def _search(self, label: str, entries: dict, ends):
        from study import optuna_search as search
        from study.optuna_sync import sync

        space = self.space
        where = f"{label}: " if label else ""
        name = search.study_name(self.plan.name, label)
        synced = sync(self.plan.optuna_storage, name, label, entries, space, self.parent_id,
                      self.client)
        if synced.rebuilt:
            print(f"{where}the Optuna study {name} disagreed with MLflow, the study's record: "
                  f"rebuilt from it ({synced.added} trials)", flush=True)
        elif synced.added:
            print(f"{where}{synced.added} trial(s) that MLflow holds were added to the Optuna "
                  f"study {name}" + (" (its store was new or lost)" if synced.created else ""),
                  flush=True)
        study = search.open_study(self.plan.optuna_storage, name, space.sampler_seed,
                                  space.sampler)
        stratum = search.reconcile(study, label, entries, space.objectives,
                                   space.num_samples, self.retry_failed)
        for key in stratum.adopted:
            print(f"{label + ': ' if label else ''}trial {key} had finished in MLflow before "
                  f"the last driver stopped: its result is told to Optuna, not recomputed",
                  flush=True)
        self.adopted += len(stratum.adopted)
        best = None
        if stratum.best is not None:
            best = (stratum.best[0], stratum.best[1])
        prior = {"done": stratum.done, "failed": stratum.failed, "best": best}
        searcher = search.OptunaSearcher(study, label, space.params, space.objectives,
                                         space.modes, stratum, ends)
        return searcher, prior

    # -- failures of the infrastructure --------------------------------------------------

    def _stop_all(self) -> bool:
        return self.storage_error is not None

    def _on_retry(self, trial, kind: str, text: str) -> None:
        if kind == "storage" and self.storage_error is None:
            self.storage_error = text  # no point retrying: every trial there would fail

    def _infra_failure(self, ctx: TrialContext):
        """For study/outcomes.Ends: a trial whose retries ran out ends FAILED with the reason
        (its run, or, if it never got one, a new run with its params), so that the record has
        the trial exactly once. Returns the reason."""
        from study.progress import failure

        def record(trial, config: dict, run) -> str:
            kind, text, _ = failure(trial) if trial is not None else \
                ("error", "its worker failed before it started", None)
            if kind == "storage" and self.storage_error is None:
                self.storage_error = text
            reason = f"{kind}: {text}"
            if run is not None and run.info.status == "FAILED":
                return run.data.tags.get(ERROR, reason)
            if run is None or run.info.status != "RUNNING":
                run_id = self._failed_run(ctx, trial, config)
            else:
                run_id = run.info.run_id
            records.mark_failed(self.client, run_id, reason, "infrastructure")
            return text
        return record

    def _failed_run(self, ctx: TrialContext, trial, config: dict) -> str:
        """A run for a trial that failed before it wrote one, with its params."""
        from fsvae.trial import resolve
        from study.trainable import run_name, trial_config

        cfg = resolve(config_mod.resolve(trial_config(config, ctx), preset=ctx.preset))
        trial_id = trial.trial_id if trial is not None else "-"
        tags = {STRATUM: ",".join(f"{k}={v}" for k, v in ctx.stratum.items()),
                STUDY: ctx.study, TRIAL_ID: trial_id,
                POINT: json.dumps(config["point"], sort_keys=True, default=str)}
        if config.get("replaces"):
            tags[RETRY_OF] = config["replaces"]
        rec = records.TrialRecorder(ctx.tracking_uri, self.exp_id, self.parent_id,
                                    config["key"], f"{run_name(cfg)}-{trial_id}", tags=tags,
                                    replaces=config.get("replaces"))
        return rec.start(config_mod.active_config(cfg))

    # -- the end -------------------------------------------------------------------------

    def _stratum_complete(self, label: str) -> bool:
        entries = record.read(self.client, self.exp_id, self.parent_id)
        if self.space.kind == "grid":
            return all(entries.get(tuner.grid_key(p)) is not None
                       and entries[tuner.grid_key(p)].state != "unfinished"
                       for p in self.space.trials())
        import optuna
        from optuna.trial import TrialState

        from study import optuna_search as search

        study = optuna.load_study(study_name=search.study_name(self.plan.name, label),
                                  storage=self.plan.optuna_storage)
        final = search.counted(study, (TrialState.COMPLETE, TrialState.PRUNED,
                                       TrialState.FAIL))
        open_ = search.counted(study, (TrialState.RUNNING, TrialState.WAITING))
        return len(final) >= self.space.num_samples and not open_

    def finish(self, interrupted: bool) -> StudyResult:
        """The session's end, once Ray is down (no trial of it can still write): runs left
        RUNNING are closed as interrupted, the parent ends FINISHED (complete) or KILLED, and
        the summary says where things stand. Returns run_study's result."""
        entries = record.read(self.client, self.exp_id, self.parent_id)
        closed = record.close_stale(self.client, entries, INTERRUPTED_WHY)
        complete = not interrupted and all(self._stratum_complete(label)
                                           for _, label in _strata(self.space))
        finished = sum(e.state == "finished" for e in entries.values())
        failed = sum(e.state == "failed" for e in entries.values())
        self.client.set_terminated(self.parent_id, "FINISHED" if complete else "KILLED")
        self._summary(complete, finished, failed, closed)
        model_uri = self._log_model() if complete and self.plan.log_model else None
        return StudyResult(name=self.plan.name, experiment_id=self.exp_id,
                           parent_run_id=self.parent_id,
                           tracking_uri=redact(self.plan.tracking_uri), complete=complete,
                           finished=finished, failed=failed, exit_code=0 if complete else 130,
                           model_uri=model_uri)

    def _log_model(self) -> str:
        """--log-model: the best trial's model, logged to the parent run (study/model_log)."""
        from study.model_log import log_best_model

        uri = log_best_model(self.client, self.exp_id, self.parent_id, self.plan.cache_dir,
                             self.space.objectives, self.space.modes)
        print(f"  best model: {uri}; predict with: fsvae-study predict --model {uri} "
              f"--tracking-uri {redact(self.plan.tracking_uri)} --images DIR", flush=True)
        return uri

    def close(self) -> None:
        """After an exception: no run of this study left RUNNING, the parent KILLED."""
        try:
            if self.client.get_run(self.parent_id).info.status == "RUNNING":
                entries = record.read(self.client, self.exp_id, self.parent_id)
                record.close_stale(self.client, entries, INTERRUPTED_WHY)
                self.client.set_terminated(self.parent_id, "KILLED")
        except Exception:  # MLflow unreachable: the next session closes them
            pass

    def _summary(self, complete: bool, finished: int, failed: int, closed: int) -> None:
        plan = self.plan
        name = plan.name
        adopted = f", {self.adopted} adopted from MLflow" if self.adopted else ""
        print(f"\nstudy {name}: {'complete' if complete else 'INTERRUPTED'}; {finished} "
              f"trials finished, {failed} failed{adopted}"
              + (f", {closed} unfinished runs closed" if closed else ""))
        print(f"  Ray Tune results: {plan.folder}")
        print(f"  MLflow: experiment {name!r} at {redact(plan.tracking_uri)}")
        if plan.optuna_storage:
            print(f"  Optuna: studies {name}/<stratum> at {redact(plan.optuna_storage)}")
        if plan.tracking_uri.startswith("sqlite:"):
            print(f"  open the MLflow UI: mlflow ui --backend-store-uri {plan.tracking_uri} "
                  f"--host 127.0.0.1 --port 5000   (then http://127.0.0.1:5000)")
        default = storage.resolve(plan_mod.DEFAULT_STORAGE)
        where = "" if plan.storage == default else f" --storage {shlex.quote(plan.storage)}"
        local_store = not storage.is_uri(plan.storage) and \
            plan.tracking_uri == default_tracking_uri(Path(plan.storage))
        reads = where if local_store else \
            f" --tracking-uri {shlex.quote(redact(plan.tracking_uri))}"
        print(f"  table: fsvae-study table --experiment {name}{reads}")
        if failed and complete:
            print(f"  re-run the failed trials with: fsvae-study resume --name {name}{where} "
                  f"--retry-failed")
        if not complete:
            print(f"  continue with: fsvae-study resume --name {name}{where}")


def _strata(space: search_spaces.Space):
    """(stratum values, label) per separate search; one ({}, "") for a grid."""
    if space.kind == "grid":
        yield {}, ""
        return
    for stratum in space.stratum_values():
        yield stratum, ",".join(f"{k}={v}" for k, v in stratum.items())


def _fmt_resources(res: dict) -> str:
    return ", ".join(f"{v:g} {k.upper()}" for k, v in res.items())

