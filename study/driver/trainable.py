"""The Ray Tune trainable: one fsvae trial, recorded in MLflow, reported to Tune.

Tune calls `trainable(config, ctx=...)` in a worker process. `config` is what the study
handed out: {"key": the trial's identity, "point": its config keys (a grid point or
Optuna's suggestions), "replaces": the key of a failed trial it retries, if any, "runs":
the ids of the runs those keys have in the record}; `ctx` is
the study's fixed part (base config, MLflow coordinates, cache, objective). Everything
about scheduling lives outside this function; everything about the method lives in fsvae.

Two kinds of failure, told apart here (docs/failures.md):
- the trial's own (an exception from fsvae: bad data, a NaN loss): recorded once as a
  FAILED run with its reason and reported to Tune as a finished trial that failed, so
  Tune does not run it again (`--max-failures N` retries it here, N times);
- the infrastructure's (the process or its node dies, MLflow cannot be reached): the
  exception, if any, reaches Tune, which retries the trial (`--infra-retries`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsvae import config as config_mod
from fsvae.errors import DataError, SplitError
from study.hooks import faults
from study.identity.lease import LeaseRef, Superseded, fence_for
from study.record.schema import POINT, RETRY_OF, STRATUM, STUDY, TRIAL_ID
from study.search.report import DATA_PROBLEMS, ERROR_KIND, FAILED, FINAL

INTERRUPTED_WHY = "its study stopped before it finished; it runs again on resume"


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a stratum shares (the study's fixed part), handed to the
    trainable by Ray: the config every trial starts from, where to record, the cache."""

    base: dict  # the plan's base config: the space's fixed keys, --set, data
    preset: str
    study: str  # the study's name
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    cache_dir: str | None
    objectives: list[str]  # the primary first
    report_epochs: bool  # report every stage-3 epoch to Tune (an early-stopping scheduler)
    max_failures: int  # retries of the trial's own failures, here in the trial
    marker: dict | None  # what the node checks it can see (study/cluster.write_markers)
    git: dict  # the driver's checkout, as tags
    data_fingerprint: str | None
    lease: LeaseRef | None = None  # the driver's lease, checked before a run starts or ends
    stratum: dict = field(default_factory=dict)

    @classmethod
    def of(cls, plan, space, marker: dict | None, lease: LeaseRef) -> TrialContext:
        """What every trial of a session shares (its stratum set per stratum)."""
        from fsvae import data as data_mod
        from study.record import provenance

        exp_id, parent_id = plan.claimed_ids()
        return cls(
            base=plan.base,
            preset=plan.preset,
            study=plan.name,
            tracking_uri=plan.tracking_uri,
            experiment_id=exp_id,
            parent_run_id=parent_id,
            cache_dir=plan.cache_dir,
            objectives=space.objectives,
            report_epochs=plan.asha,
            max_failures=plan.max_failures,
            marker=marker,
            git=provenance.git_state(),
            data_fingerprint=data_mod.fingerprint(plan.data),
            lease=lease,
        )

    @property
    def objective(self) -> str:
        return self.objectives[0]


def handed(config: dict) -> dict:
    """What the study handed this trial, {"key", "point"[, "replaces"]}: a searcher's
    suggestion as it is, a grid's value unwrapped from Tune's grid dimension."""
    return config.get("grid", config)


def trial_config(config: dict, ctx: TrialContext) -> dict[str, Any]:
    """Base (preset + space fixed + --set) <- this trial's point <- stratum."""
    return {**ctx.base, **handed(config)["point"], **ctx.stratum}


_CHECKED: dict = {}  # the marker this worker process has checked (study/driver/cluster.py)


class _AttemptMarker:
    """The run ids this Tune trial's attempts made, in a file in its folder on the study's
    storage: a retry (Tune runs the trial again after its process or node died, on any
    node) finds its earlier attempt's run there instead of searching MLflow for its key."""

    NAME = "fsvae-runs.json"

    def __init__(self, context) -> None:
        storage = context.get_storage()
        self.fs = storage.storage_filesystem
        self.path = f"{storage.trial_fs_path}/{self.NAME}"
        self.ids: list[str] = []

    def read(self) -> list[str]:
        try:
            with self.fs.open_input_stream(self.path) as f:
                self.ids = json.loads(f.read().decode())
        except (FileNotFoundError, OSError, ValueError):
            self.ids = []
        return list(self.ids)

    def write(self, run_id: str) -> None:
        self.ids.append(run_id)
        self.fs.create_dir(self.path.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write(json.dumps(self.ids).encode())


def _session_fingerprint(cfg: dict, ctx: TrialContext) -> str | None:
    """The dataset's fingerprint the driver computed once for the session (its data, its
    layout detected), when the trial reads that data that way; None: the trial computes it."""
    same = cfg["data"] == ctx.base.get("data") and cfg.get("layout", "auto") == "auto"
    return ctx.data_fingerprint if same else None


def data_summary(event: dict) -> dict:
    """What the console says of the data once per study, from the data stage's event:
    {"listed", "usable", "problems": fsvae.data.examples}."""
    splits = event.get("splits") or {}
    return {
        "listed": sum(c.get("listed", 0) for c in splits.values()),
        "usable": sum(c.get("usable", 0) for c in splits.values()),
        "problems": event.get("examples") or {},
    }


def run_name(cfg: dict) -> str:
    sf = f"x{cfg['sampling_factor']}" if cfg["method"] in config_mod.RESAMPLING_METHODS else ""
    return f"{cfg['method']}{sf}-nf{cfg['n_f']}-s{cfg['seed']}"


def trainable(config: dict, ctx: TrialContext) -> None:
    try:
        _trial(config, ctx)
    except Superseded:
        # Another driver took the study (study/identity/lease.py): this trial ends here, with no
        # result and nothing more written; its own driver stops at its next check.
        return


def _trial(config: dict, ctx: TrialContext) -> None:
    # Imported here, not at the top: the study's driver imports this module (to hand the
    # function to Tune) and never needs torch or an MLflow client.
    import torch
    from ray import tune

    from fsvae.cache import StageCache
    from fsvae.trial import resolve
    from study.driver.cluster import check_shared
    from study.record.provenance import dataset_input
    from study.record.read import short_key
    from study.record.write import TrialRecorder

    t_start = time.perf_counter()
    config = handed(config)
    key = config["key"]
    faults.pause("trial_start", key=key)
    if ctx.marker and ctx.marker.get("files") != _CHECKED.get("files"):
        check_shared(ctx.marker)  # a node that joined after the study started: once each
        _CHECKED.update(ctx.marker)
    context = tune.get_context()
    trial_id = context.get_trial_id()
    # Threads = the CPUs this trial was given, whatever a reused worker process had set
    # before: the same config gives the same numbers whichever worker runs it.
    cpus = context.get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    cfg = resolve(config_mod.resolve(trial_config(config, ctx), preset=ctx.preset))
    active = config_mod.active_config(cfg)
    stratum = ",".join(f"{k}={v}" for k, v in ctx.stratum.items())
    tags = {
        STRATUM: stratum,
        STUDY: ctx.study,
        TRIAL_ID: trial_id,
        POINT: json.dumps(config["point"], sort_keys=True, default=str),
        **ctx.git,
    }
    if config.get("replaces"):
        tags[RETRY_OF] = config["replaces"]
    attempts_left = _AttemptMarker(context)
    recorder = TrialRecorder(
        ctx.tracking_uri,
        ctx.experiment_id,
        ctx.parent_run_id,
        key,
        f"{short_key(key)} {run_name(cfg)}",
        tags=tags,
        replaces=config.get("replaces"),
        known=config.get("runs", []) + attempts_left.read(),
        fence=fence_for(ctx.lease).check if ctx.lease else None,
        epochs={s: cfg[f"{s}_epochs"] for s in ("backbone", "vae", "classifier")},
        dataset=dataset_input(ctx.base["data"], ctx.data_fingerprint, "trial")
        if ctx.data_fingerprint
        else None,
    )
    done = recorder.finished_run(active)
    if done is not None:
        # Its run finished in an earlier attempt whose end Tune never heard (the process
        # died after the record was complete): report the record instead of recomputing.
        tune.report(
            {
                **{k: v for k, v in done.data.metrics.items() if "/" not in k},
                FINAL: 1,
                "classifier_epoch": cfg["classifier_epochs"],
                "mlflow_run_id": done.info.run_id,
                "reused_finished_run": 1,
            }
        )
        return
    cache = StageCache(ctx.cache_dir, log=print) if ctx.cache_dir else None
    attempts = 1 + ctx.max_failures
    seen: dict = {}  # what the trial learnt of its data (the data stage's report)
    for attempt in range(1, attempts + 1):
        attempts_left.write(recorder.start(active))
        result, error = _run(cfg, ctx, recorder, cache, key, seen)
        if error is None:
            break
        if attempt < attempts:
            print(f"trial {key}: {error}; trying again ({attempt + 1} of {attempts})", flush=True)
    data = {DATA_PROBLEMS: json.dumps(seen["data"])} if "data" in seen else {}
    if error is not None:
        # Tune wants its metric in every report: a failed trial has none to give.
        tune.report(
            {
                **{o: math.nan for o in ctx.objectives},
                FAILED: 1,
                "error": error,
                ERROR_KIND: seen.get("error_kind", "trial"),
                "mlflow_run_id": recorder.run_id,
                **data,
            }
        )
        return
    assert result is not None  # _run gives one without an error
    faults.pause("trial_finished", key=key)
    final = {k: v for k, v in result["metrics"].items() if "/" not in k}
    final.update(
        {
            FINAL: 1,
            "classifier_epoch": cfg["classifier_epochs"],
            "mlflow_run_id": recorder.run_id,
            "worker_pid": os.getpid(),
            "compute_s": result["timings"]["total"] - result["timings"]["waited"],
            "wall_s": time.perf_counter() - t_start,
            **{f"cache_{k}": int(v["hit"]) for k, v in result["cache"].items()},
            **data,
        }
    )
    tune.report(final)


def _run(
    cfg: dict, ctx: TrialContext, recorder, cache, key: str, seen: dict
) -> tuple[dict | None, str | None]:
    """One attempt: (result, None) once its run is FINISHED, or (None, reason) once its run
    is FAILED with the trial's own error. MLflow errors propagate: the infrastructure's.
    `seen` gets the data stage's summary ("data", data_summary) and, on a failure, its kind
    ("error_kind": "data" when the data or the split cannot serve the config, which every
    trial sharing them would meet too; else "trial")."""
    from ray import tune

    from fsvae.trial import run_trial
    from study.figures.late import Drawer

    run_trial = faults.trial_runner(run_trial)  # FSVAE_BENCH_TRIAL: bench/'s synthetic trial
    report_epochs = ctx.report_epochs
    objective = ctx.objective

    def progress(event: dict) -> None:
        recorder.progress(event)
        if event.get("stage") == "data" and "examples" in event:
            seen["data"] = data_summary(event)
        if event.get("stage") == "cache" and event.get("name") == "backbone":
            faults.pause("trial_running", key=key)
        if event.get("stage") == "vae" and event.get("epoch") == 2 and not event.get("replayed"):
            faults.pause("trial_vae_epoch", key=key)  # three VAE epochs done, more to come
        # With an early-stopping scheduler, every stage-3 epoch but the last is a Tune
        # result (the scheduler's time unit); the last epoch's result is the final report,
        # which a scheduler reaching max_t must not cut short. Every report carries the
        # objective (Tune requires it).
        if (
            report_epochs
            and event.get("stage") == "classifier"
            and "epoch" in event
            and event["epoch"] + 1 < cfg["classifier_epochs"]
        ):
            if event["epoch"] == 0:
                faults.pause("trial_classifier", key=key)
            tune.report(
                {
                    objective: event[objective],
                    "classifier_epoch": event["epoch"] + 1,
                    "mlflow_run_id": recorder.run_id,
                }
            )

    out = Path(tempfile.mkdtemp(prefix=f"fsvae-trial-{recorder.run_id[:8]}-"))
    try:
        try:
            result = run_trial(
                cfg,
                progress=progress,
                out_dir=out,
                cache=cache,
                log=print,
                data_fingerprint=_session_fingerprint(cfg, ctx),
            )
        except SystemExit:
            # Tune ends a function trainable with a SystemExit inside tune.report, both when
            # the scheduler stops it and when the study shuts down: not a failure, and not
            # for the trial to tell apart. It is marked interrupted; the driver records a
            # scheduler's stop itself, which takes precedence (study/driver/outcomes.py).
            recorder.interrupted(INTERRUPTED_WHY)
            raise
        except Exception as e:  # the trial's own failure
            seen["error_kind"] = "data" if isinstance(e, (DataError, SplitError)) else "trial"
            return None, recorder.fail(e, out)
        # FINISHED first; its PNG figures come from this process's drawing thread while the
        # next trial runs (study/figures/late.py).
        recorder.finish(result, out, figures_later=True)
        Drawer.of_this_process().submit(recorder.client, recorder.run_id, result)
        return result, None
    finally:
        shutil.rmtree(out, ignore_errors=True)
