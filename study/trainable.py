"""The Ray Tune trainable: one fsvae trial, recorded in MLflow, reported to Tune.

Tune calls `trainable(config, ctx=...)` in a worker process. `config` is what Tune chose
(a grid point under "trial", or Optuna's suggestions); `ctx` is the study's fixed part
(base config, MLflow coordinates, cache, objective). Everything about scheduling lives
outside this function; everything about the method lives in fsvae.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fsvae import config as config_mod

FINAL = "trial_complete"  # present (=1) only in a trial's last report


def trial_config(config: dict, ctx: dict) -> dict[str, Any]:
    """Base (preset + space fixed + --set) <- this trial's point <- stratum."""
    point = config.get("trial", config)
    return {**ctx["base"], **point, **ctx.get("stratum", {})}


def run_name(cfg: dict) -> str:
    sf = f"x{cfg['sampling_factor']}" if cfg["method"] in config_mod.RESAMPLING_METHODS else ""
    return f"{cfg['method']}{sf}-nf{cfg['n_f']}-s{cfg['seed']}"


def trainable(config: dict, ctx: dict) -> None:
    # Imported here, not at the top: the study's driver imports this module (to hand the
    # function to Tune) and never needs torch or an MLflow client.
    import torch
    from ray import tune

    from fsvae.cache import StageCache
    from fsvae.trial import resolve, run_trial
    from study.records import TrialRecorder

    t_start = time.perf_counter()
    context = tune.get_context()
    trial_id = context.get_trial_id()
    # Threads = the CPUs this trial was given, whatever a reused worker process had set
    # before: the same config gives the same numbers whichever worker runs it.
    cpus = context.get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    overrides = trial_config(config, ctx)
    cfg = resolve(config_mod.resolve(overrides, preset=ctx["preset"]))
    active = config_mod.active_config(cfg)
    stratum = ",".join(f"{k}={v}" for k, v in ctx.get("stratum", {}).items())
    recorder = TrialRecorder(ctx["tracking_uri"], ctx["experiment_id"], ctx["parent_run_id"],
                             trial_id, f"{run_name(cfg)}-{trial_id}",
                             tags={"fsvae.stratum": stratum, "fsvae.study": ctx["study"]})
    done = recorder.finished_run(active)
    if done is not None:
        # Interrupted after the trial finished in MLflow but before Tune heard of it: Tune
        # runs it again on resume. Report the recorded result instead of recomputing it.
        tune.report({**{k: v for k, v in done.data.metrics.items() if "/" not in k},
                     FINAL: 1, "classifier_epoch": cfg["classifier_epochs"],
                     "mlflow_run_id": done.info.run_id, "reused_finished_run": 1})
        return
    recorder.start(active)
    cache = StageCache(ctx["cache_dir"], log=print) if ctx.get("cache_dir") else None
    objective = ctx["objective"]
    report_epochs = ctx.get("report_epochs", False)

    def progress(event: dict) -> None:
        recorder.progress(event)
        # With an early-stopping scheduler, every stage-3 epoch but the last is a Tune
        # result (the scheduler's time unit); the last epoch's result is the final report,
        # which a scheduler reaching max_t must not cut short. Every report carries the
        # objective (stack.md).
        if report_epochs and event.get("stage") == "classifier" and "epoch" in event \
                and event["epoch"] + 1 < cfg["classifier_epochs"]:
            tune.report({objective: event[objective], "classifier_epoch": event["epoch"] + 1})

    out = Path(tempfile.mkdtemp(prefix=f"fsvae-trial-{trial_id}-"))
    try:
        result = run_trial(cfg, progress=progress, out_dir=out, cache=cache, log=print)
        from study.plots import trial_figures

        trial_figures(result, out / "figures")
        recorder.finish(result, out)
    except SystemExit:
        # Tune stops a function trainable early (a scheduler's decision) with sys.exit(0)
        # inside tune.report: not a failure.
        recorder.stopped("early-stopped by the scheduler")
        raise
    except BaseException as e:
        recorder.fail(e, out)
        raise
    finally:
        shutil.rmtree(out, ignore_errors=True)
    final = {k: v for k, v in result["metrics"].items() if "/" not in k}
    final.update({FINAL: 1, "classifier_epoch": cfg["classifier_epochs"],
                  "mlflow_run_id": recorder.run_id, "worker_pid": os.getpid(),
                  "compute_s": result["timings"]["total"] - result["timings"]["waited"],
                  "wall_s": time.perf_counter() - t_start,
                  **{f"cache_{k}": int(v["hit"]) for k, v in result["cache"].items()}})
    tune.report(final)


def build_shared(config: dict, preset: str, cache_dir: str, threads: int) -> dict:
    """A Ray task run before a stratum's trials: builds the data and backbone stages they all
    share into the cache (fsvae.trial.prepare) with every CPU (and a whole GPU) that those
    trials would hold between them, instead of one trial building while the rest wait."""
    import torch

    from fsvae.cache import StageCache
    from fsvae.trial import prepare, resolve

    torch.set_num_threads(max(1, threads))
    lines: list[str] = []
    cpu0 = time.process_time()
    out = prepare(resolve(config_mod.resolve(config, preset=preset)),
                  StageCache(cache_dir, log=lines.append), log=lines.append)
    return {"cache": out["cache"], "timings": out["timings"], "log": lines,
            "cpu_s": time.process_time() - cpu0}
