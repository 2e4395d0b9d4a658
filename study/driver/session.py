"""The body of one session of a study: reconcile the record, run each stratum's remaining
trials with Ray Tune, recount, and say where things stand.

The record is MLflow (one run per trial key) and, for a search, the Optuna store; Ray
Tune only executes. Whatever stopped the previous session, this one starts from the
record: finished trials are counted (and a search's Optuna study told of any it missed),
runs left RUNNING are closed, and everything else runs (docs/failures.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from dataclasses import dataclass, field

import search_spaces
from fsvae import config as config_mod
from fsvae import data as data_mod
from study.driver import cluster, prebuild, tuner
from study.driver.console import Console
from study.driver.summary import data_line, exit_code, session_end
from study.driver.trainable import INTERRUPTED_WHY, TrialContext
from study.plan.plan import Plan
from study.record import provenance
from study.record import read as record
from study.record import write as records
from study.record.costs import costs
from study.record.read import short_key
from study.record.schema import ERROR, POINT, RETRY_OF, STRATUM, STUDY, TRIAL_ID
from study.search.report import DATA_PROBLEMS, ERROR_KIND
from study.secrets import redact


@dataclass
class StudyResult:
    """How a session ended: what `run_study` and `resume_study` return, with the exit code
    `fsvae-study run` and `resume` give (study/driver/summary.py)."""

    name: str
    experiment_id: str
    parent_run_id: str
    tracking_uri: str  # without its password
    complete: bool
    finished: int  # the study's trials that finished, all sessions together
    failed: int
    exit_code: int  # study/driver/summary.py: 0 complete, 3 with failed trials, 2, 130
    model_uri: str | None = None  # the best model, with --log-model
    errors: list[str] = field(default_factory=list)  # why a stratum was stopped (exit 2)


class Session:
    def __init__(
        self,
        plan: Plan,
        space: search_spaces.Space,
        client,
        resuming: bool,
        retry_failed: bool,
        held,
        status_every: float = 60.0,
    ):
        self.plan, self.space, self.client = plan, space, client
        self.held = held  # the study's lease (study/identity/lease.py): checked before each write
        self.status_every = status_every  # the console's status line, when not a terminal
        self.console: Console | None = None
        self.exp_id, self.parent_id = plan.claimed_ids()
        self.resuming, self.retry_failed = resuming, retry_failed
        self.storage_error: str | None = None
        self.prebuild: threading.Thread | None = None
        self.adopted = 0
        self.fatal: list[str] = []  # strata stopped: every trial of them would fail the same way
        self.told: set[str] = set()  # keys whose end the console has counted
        self.stop_stratum = False
        self.data_shown = False

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
        closed = record.close_stale(self.client, entries, INTERRUPTED_WHY, self.held.check)
        self.told = {k for k, e in entries.items() if e.state != "unfinished"}
        print(
            f"study {plan.name}: {search_spaces.count(space)} trials "
            f"({space.kind}{', strata ' + tuner.strata_text(space) if space.strata else ''}), "
            f"{concurrency} at a time, {tuner.fmt_resources(resources)} each"
            + (
                f" (resuming, session {plan.sessions}"
                + (f"; closed {closed} run(s) its last driver left running" if closed else "")
                + ")"
                if self.resuming
                else ""
            ),
            flush=True,
        )
        shared = TrialContext(
            base=plan.base,
            preset=plan.preset,
            study=plan.name,
            tracking_uri=plan.tracking_uri,
            experiment_id=self.exp_id,
            parent_run_id=self.parent_id,
            cache_dir=plan.cache_dir,
            objectives=space.objectives,
            report_epochs=plan.asha,
            max_failures=plan.max_failures,
            marker=marker,
            git=provenance.git_state(),
            data_fingerprint=data_mod.fingerprint(plan.data),
            lease=self.held.ref,
        )
        interrupted = False
        self.console = Console(
            plan.name,
            self.client,
            self.exp_id,
            self.parent_id,
            search_spaces.count(space),
            done=sum(e.state != "unfinished" for e in entries.values()),
            failed=sum(e.state == "failed" for e in entries.values()),
            concurrency=concurrency,
            objective=space.objectives[0],
            mode=space.modes[0],
            held=self.held,
            status_every=self.status_every,
        )
        self.console.start()
        try:
            for step, (stratum, label) in enumerate(tuner.strata(space)):
                self.held.check()  # a stratum's start writes its Optuna study
                ctx = dataclasses.replace(shared, stratum=stratum)
                ended = self._stratum(ctx, stratum, label, step, entries, resources, concurrency)
                if ended == "interrupted":
                    interrupted = True
                    break
        finally:
            self.console.stop()
        if self.held.lost is not None:
            raise self.held.lost
        if self.storage_error:
            raise cluster.SharedStorageError(self.storage_error)
        return interrupted

    def _stratum(
        self,
        ctx: TrialContext,
        stratum: dict,
        label: str,
        step: int,
        entries: dict,
        resources: dict,
        concurrency: int,
    ) -> str:
        """Runs what is left of one stratum: "complete", "interrupted", or "fatal" (stopped:
        every trial of it would fail the same way)."""
        from ray import tune

        from study.driver.outcomes import Ends, GridSearcher
        from study.driver.progress import Progress
        from study.driver.trainable import trainable

        plan, space = self.plan, self.space
        total = space.num_samples if space.kind == "optuna" else len(space.trials())
        where = f"{label}: " if label else ""
        stops: set[str] = set()
        self.stop_stratum = False
        ends = Ends(
            self.client,
            self.exp_id,
            self.parent_id,
            space.objectives,
            self._infra_failure(ctx),
            self.held,
            stops,
            on_end=self._on_end(label),
        )
        if space.kind == "grid":
            todo, prior = self._grid_todo(entries)
            searcher = GridSearcher(todo, ends, space.objectives[0], space.modes[0])
        else:
            searcher, prior = self._search(label, entries, ends)
        if not searcher.todo:
            print(f"{where}all {total} trials were done in earlier sessions", flush=True)
            return "complete"
        shared = prebuild.shared_config(plan, space, stratum, concurrency)
        if shared is not None:
            import ray

            self.prebuild = prebuild.start(
                self.client,
                self.parent_id,
                shared,
                plan,
                resources,
                concurrency,
                label,
                step,
                alongside=not plan.address and ray.is_initialized() and "gpu" not in resources,
                holds=self.held.holds,
                on_data=self._show_data,
                on_fatal=lambda reason: self._fatal(label, reason),
            )
        progress = Progress(
            total,
            space.objectives,
            space.modes,
            ends,
            label,
            tuner.shown_keys(space),
            prior=prior,
            retries=plan.infra_retries + plan.max_failures,
            on_retry=self._on_retry,
            console=self.console,
        )
        wrapped = tune.with_resources(tune.with_parameters(trainable, ctx=ctx), resources)
        experiment = "tune" + (f"-{label}" if label else "") + f"-s{plan.sessions}"
        run = tuner.build(
            plan,
            space,
            wrapped,
            experiment,
            concurrency,
            [ends, progress],
            searcher,
            stops,
            stop=self._stop_all,
        )
        run.fit()
        if self.prebuild is not None:
            # Done by now if the trials ran (they waited on it); an interrupted study does
            # not wait for it (Ray's shutdown ends it; its entry stays unwritten).
            self.prebuild.join(timeout=120 if self._stratum_complete(label) else 0)
            self.prebuild = None
        if self.stop_stratum:
            return "fatal"
        return "complete" if self._stratum_complete(label) else "interrupted"

    def _grid_todo(self, entries: dict) -> tuple[list[dict], dict]:
        """The grid points still to run, in sharing order, and what earlier sessions did."""
        points = tuner.order_for_sharing(self.space.trials(), self.plan.base, self.plan.preset)
        todo, done, failed, finished = [], 0, 0, []
        for point in points:
            key = tuner.grid_key(point)
            entry = entries.get(key)
            state = entry.state if entry is not None else "unfinished"
            if entry is None or state == "unfinished" or (state == "failed" and self.retry_failed):
                todo.append(
                    {"key": key, "point": point, "runs": entry.runs if entry is not None else []}
                )
                continue
            done += 1
            failed += state == "failed"
            value = entry.metrics.get(self.space.objectives[0])
            if (
                state == "finished"
                and value is not None
                and math.isfinite(value)
                and len(self.space.objectives) == 1
            ):
                finished.append((value, key, entry.start_time, point))
        best = record.best_of(finished, self.space.modes[0])
        return todo, {"done": done, "failed": failed, "best": best}

    def _search(self, label: str, entries: dict, ends):
        from study.search import searcher as search
        from study.search.sync import sync

        space = self.space
        where = f"{label}: " if label else ""
        name = search.study_name(self.plan.name, label)
        synced = sync(
            self.plan.optuna_store(), name, label, entries, space, self.parent_id, self.client
        )
        if synced.rebuilt:
            print(
                f"{where}the Optuna study {name} disagreed with MLflow, the study's record: "
                f"rebuilt from it ({synced.added} trials)",
                flush=True,
            )
        elif synced.added:
            print(
                f"{where}{synced.added} trial(s) that MLflow holds were added to the Optuna "
                f"study {name}" + (" (its store was new or lost)" if synced.created else ""),
                flush=True,
            )
        if synced.sampler_state_lost:
            print(
                f"{where}NSGA-II's generation of each trial was not in the Optuna study "
                f"{name} (MLflow does not hold it; its store was new or lost): its next "
                f"trials start again from a random first generation",
                flush=True,
            )
        study = search.open_study(self.plan.optuna_store(), name, space.sampler_seed, space.sampler)
        stratum = search.reconcile(
            study, label, entries, space.objectives, space.num_samples, self.retry_failed
        )
        for key in stratum.adopted:
            print(
                f"{label + ': ' if label else ''}trial {key} had finished in MLflow before "
                f"the last driver stopped: its result is told to Optuna, not recomputed",
                flush=True,
            )
        self.adopted += len(stratum.adopted)
        prior = {"done": stratum.done, "failed": stratum.failed, "best": stratum.best}
        searcher = search.OptunaSearcher(
            study,
            label,
            space.params,
            space.objectives,
            space.modes,
            stratum,
            ends,
            self.held,
            {k: e.runs for k, e in entries.items()},
        )
        return searcher, prior

    # -- failures of the infrastructure --------------------------------------------------

    def _stop_all(self) -> bool:
        return self.storage_error is not None or self.stop_stratum or self.held.lost is not None

    def lost(self) -> None:
        """The lease's heartbeat found the study taken over: Tune stops every trial (none
        of which can write any more), and the session ends without another write."""
        print(f"{self.held.lost}", flush=True)

    def _on_end(self, label: str):
        """For study/outcomes.Ends, after each trial's end is recorded: the data report
        once, and a stratum stopped when its data or split cannot serve any of its trials
        (the failed trial's error is of that kind, and no trial of the stratum varies a key
        of the data or split stages)."""
        shared = not tuner.varying_keys(self.space, stages=("data", "split"))

        def watch(config: dict, outcome, result: dict) -> None:
            self.told.add(config["key"])
            if result.get(DATA_PROBLEMS):
                self._show_data(json.loads(result[DATA_PROBLEMS]))
            if outcome.state == "failed" and result.get(ERROR_KIND) == "data" and shared:
                self._fatal(label, outcome.text)

        return watch

    def _show_data(self, summary: dict) -> None:
        if not self.data_shown:
            self.data_shown = True
            print(data_line(summary), flush=True)

    def _fatal(self, label: str, reason: str) -> None:
        if self.stop_stratum:
            return
        self.stop_stratum = True
        what = f"stratum {label}" if label else "study"
        self.fatal.append(
            f"every trial of the {what} would fail the same way, so no more of it runs: {reason}"
        )
        print(f"{label + ': ' if label else ''}{self.fatal[-1]}", flush=True)

    def _on_retry(self, trial, kind: str, text: str) -> None:
        if kind == "storage" and self.storage_error is None:
            self.storage_error = text  # no point retrying: every trial there would fail

    def _infra_failure(self, ctx: TrialContext):
        """For study/outcomes.Ends: a trial whose retries ran out ends FAILED with the reason
        (its run, or, if it never got one, a new run with its params), so that the record has
        the trial exactly once. Returns the reason."""
        from study.driver.progress import failure

        def record(trial, config: dict, run) -> str:
            kind, text, _ = (
                failure(trial)
                if trial is not None
                else ("error", "its worker failed before it started", None)
            )
            if kind == "storage" and self.storage_error is None:
                self.storage_error = text
            reason = f"{kind}: {text}"
            if run is not None and run.info.status == "FAILED":
                return run.data.tags.get(ERROR, reason)
            if run is None or run.info.status != "RUNNING":
                run_id = self._failed_run(ctx, trial, config)
            else:
                run_id = run.info.run_id
            self.held.check()
            records.mark_failed(self.client, run_id, reason, "infrastructure")
            return text

        return record

    def _failed_run(self, ctx: TrialContext, trial, config: dict) -> str:
        """A run for a trial that failed before it wrote one, with its params."""
        from fsvae.trial import resolve
        from study.driver.trainable import run_name, trial_config
        from study.record.read import short_key

        cfg = resolve(config_mod.resolve(trial_config(config, ctx), preset=ctx.preset))
        trial_id = trial.trial_id if trial is not None else "-"
        tags = {
            STRATUM: ",".join(f"{k}={v}" for k, v in ctx.stratum.items()),
            STUDY: ctx.study,
            TRIAL_ID: trial_id,
            POINT: json.dumps(config["point"], sort_keys=True, default=str),
        }
        if config.get("replaces"):
            tags[RETRY_OF] = config["replaces"]
        rec = records.TrialRecorder(
            ctx.tracking_uri,
            self.exp_id,
            self.parent_id,
            config["key"],
            f"{short_key(config['key'])} {run_name(cfg)}",
            tags=tags,
            replaces=config.get("replaces"),
            known=config.get("runs", []),
            fence=self.held.check,
        )
        return rec.start(config_mod.active_config(cfg))

    # -- the end -------------------------------------------------------------------------

    def _stratum_complete(self, label: str) -> bool:
        if self.space.kind == "grid":  # the record says; a search's Optuna study says
            entries = record.read(self.client, self.exp_id, self.parent_id)
            return all(
                entries.get(tuner.grid_key(p)) is not None
                and entries[tuner.grid_key(p)].state != "unfinished"
                for p in self.space.trials()
            )
        import optuna
        from optuna.trial import TrialState

        from study.search import searcher as search

        study = optuna.load_study(
            study_name=search.study_name(self.plan.name, label), storage=self.plan.optuna_store()
        )
        final = search.counted(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        open_ = search.counted(study, (TrialState.RUNNING, TrialState.WAITING))
        return len(final) >= self.space.num_samples and not open_

    def finish(self, interrupted: bool) -> StudyResult:
        """The session's end, once Ray is down (no trial of it can still write): runs left
        RUNNING are closed as interrupted, the parent ends FINISHED (complete) or KILLED, and
        the summary says where things stand. Returns run_study's result."""
        self.held.check()
        entries = record.read(self.client, self.exp_id, self.parent_id)
        closed = record.close_stale(self.client, entries, INTERRUPTED_WHY, self.held.check)
        from study.figures.late import draw_pending  # matplotlib: only at the end

        drawn = draw_pending(self.client, entries.values())
        if drawn:
            print(
                f"figures drawn for {drawn} trial run(s) whose worker ended before it drew them",
                flush=True,
            )
        for e in entries.values():  # ended while the study stopped, before Tune could say
            if e.state != "unfinished" and e.key not in self.told:
                print(
                    f"trial {short_key(e.key)} {e.state} as the study stopped (its MLflow "
                    f"run {e.run_id[:8]} is {e.status})",
                    flush=True,
                )
        complete = (
            not interrupted
            and not self.fatal
            and all(self._stratum_complete(label) for _, label in tuner.strata(self.space))
        )
        finished = sum(e.state == "finished" for e in entries.values())
        failed = sum(e.state == "failed" for e in entries.values())
        self.held.check()
        self.client.log_batch(self.parent_id, metrics=costs(entries.values()))
        self.client.set_terminated(self.parent_id, "FINISHED" if complete else "KILLED")
        session_end(
            self.plan, complete, finished, failed, closed, self.adopted, self.fatal, entries
        )
        model_uri = self._log_model() if complete and self.plan.log_model else None
        return StudyResult(
            name=self.plan.name,
            experiment_id=self.exp_id,
            parent_run_id=self.parent_id,
            tracking_uri=redact(self.plan.tracking_uri),
            complete=complete,
            finished=finished,
            failed=failed,
            exit_code=exit_code(complete, interrupted, bool(self.fatal), failed),
            model_uri=model_uri,
            errors=list(self.fatal),
        )

    def _log_model(self) -> str:
        """--log-model: the best trial's model, logged to the parent run (study/model_log)."""
        from study.model.best import log_best_model

        self.held.check()
        uri = log_best_model(
            self.client,
            self.exp_id,
            self.parent_id,
            self.plan.cache_dir,
            self.space.objectives,
            self.space.modes,
        )
        print(
            f"  best model: {uri}; predict with: fsvae-study predict --model {uri} "
            f"--tracking-uri {redact(self.plan.tracking_uri)} --images DIR",
            flush=True,
        )
        return uri

    def close(self) -> None:
        """After an exception: no run of this study left RUNNING, the parent KILLED."""
        try:
            if self.held.holds() and self.client.get_run(self.parent_id).info.status == "RUNNING":
                entries = record.read(self.client, self.exp_id, self.parent_id)
                record.close_stale(self.client, entries, INTERRUPTED_WHY, self.held.check)
                self.held.check()
                self.client.set_terminated(self.parent_id, "KILLED")
        except Exception:  # MLflow unreachable, or the study taken over: not ours to close
            pass
