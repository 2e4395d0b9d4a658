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
import threading
from dataclasses import dataclass, field

import search_spaces
from study.driver import cluster, prebuild, todo, tuner
from study.driver.console import Console
from study.driver.outcomes import failed_run
from study.driver.summary import data_line, exit_code, session_end, session_header
from study.driver.trainable import INTERRUPTED_WHY, TrialContext
from study.plan.plan import Plan
from study.record import read as record
from study.record import write as records
from study.record.costs import costs
from study.record.read import short_key
from study.record.schema import ERROR
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
            session_header(plan, space, concurrency, resources, self.resuming, closed), flush=True
        )
        shared = TrialContext.of(plan, space, marker, self.held.ref)
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
            points, prior = todo.grid_todo(space, plan, entries, self.retry_failed)
            searcher = GridSearcher(points, ends, space.objectives[0], space.modes[0])
        else:
            searcher, prior, adopted = todo.search_todo(
                space,
                plan,
                label,
                entries,
                ends,
                self.held,
                self.parent_id,
                self.client,
                self.retry_failed,
            )
            self.adopted += adopted
        if not searcher.todo:
            print(f"{where}all {total} trials were done in earlier sessions", flush=True)
            return "complete"
        shared = prebuild.shared_config(plan, space, stratum, concurrency)
        built = None
        if shared is not None and plan.cache_dir:
            built = prebuild.built_before(self.client, self.parent_id, plan.cache_dir, label)
        if built is not None:
            print(
                f"{where}shared backbone {built[:12]} built by an earlier session, still in "
                f"the cache",
                flush=True,
            )
        elif shared is not None:
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
        with tuner.without_tensorboard():
            run.fit()
        if self.prebuild is not None:
            # Done by now if the trials ran (they waited on it); an interrupted study does
            # not wait for it (Ray's shutdown ends it; its entry stays unwritten).
            self.prebuild.join(timeout=120 if self._stratum_complete(label) else 0)
            self.prebuild = None
        if self.stop_stratum:
            return "fatal"
        return "complete" if self._stratum_complete(label) else "interrupted"

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
                run_id = failed_run(ctx, trial, config, self.held.check)
            else:
                run_id = run.info.run_id
            self.held.check()
            records.mark_failed(self.client, run_id, reason, "infrastructure")
            return text

        return record

    # -- the end -------------------------------------------------------------------------

    def _stratum_complete(self, label: str) -> bool:
        return todo.stratum_complete(self.space, self.plan, label, self.client)

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
