"""A search stratum's shared stages (data, backbone and its features), built once before its
trials in one Ray task with the threads of all the trials that run at once, instead of one
trial building while the others wait on the cache's lock (docs/cache.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import search_spaces
from fsvae import config as config_mod
from fsvae.errors import FsvaeError
from study.driver.trainable import data_summary
from study.hooks import faults


def shared_config(plan, space: search_spaces.Space, stratum: dict, concurrency: int) -> dict | None:
    """The config whose data and backbone every trial of this stratum shares, where building
    them before the trials saves time: an Optuna stratum (a grid orders its trials instead,
    see tuner.order_for_sharing), the cache on, two or more trials at a time, and no
    searched parameter that changes the backbone. None otherwise."""
    if space.kind != "optuna" or not plan.cache_dir or concurrency < 2:
        return None
    config = {**plan.base, **stratum}
    resolved = config_mod.resolve(config, preset=plan.preset)
    if any(config_mod.decides_backbone(key, resolved) for key in space.params):
        return None
    return config


def built_before(client, parent_id: str, cache_dir: str, label: str) -> str | None:
    """The key of the shared backbone that an earlier session of this study built for the
    stratum `label` (its parent run's tag), when that entry is still in the cache: a
    resumed search does not start a build task, whose process imports torch, to find it
    there. Trials look the cache up themselves, so where the key has changed since (other
    code or libraries) they build the entry as they would without a build task."""
    from fsvae.cache import StageCache

    try:
        tags = client.get_run(parent_id).data.tags
    except Exception:  # the record unreachable now: build as a first session would
        return None
    key = tags.get(f"cache.backbone.prebuild.{tag_safe(label)}.key")
    if key and StageCache(cache_dir).entry("backbone", key).is_dir():
        return key
    return None


def start(
    client,
    parent_id: str,
    config: dict,
    plan,
    resources: dict,
    concurrency: int,
    label: str,
    step: int,
    alongside: bool,
    holds: Callable[[], bool],
    on_data: Callable[[dict], None],
    on_fatal: Callable[[str], None],
) -> threading.Thread:
    """Starts the build as a Ray task and records it on the study's parent run (tags
    cache.backbone.prebuild.<stratum>[.key]; metrics prebuild_s (the build itself),
    prebuild_wall_s (with the task's start), prebuild_cpu_s (CPU seconds of its process),
    prebuild_cpus (threads), prebuild_gpus; one step per stratum). `on_data(summary)` gets
    what the data stage found (study/trainable.data_summary). A failure that every trial
    of the stratum would meet (the data, the split or the config cannot serve it: an
    fsvae.errors.FsvaeError) goes to `on_fatal(reason)`; any other is reported and left to
    the trials, which then build the stage themselves, each with its own MLflow record.

    alongside (local Ray, CPU trials): the task reserves no CPU and runs while Tune starts
    the trials, whose processes start up meanwhile and then wait on the entry's lock, so
    the task uses the CPUs they hold and do not use while they wait. Otherwise (a cluster,
    where the task could land on another node than the trials, or GPU trials) it reserves
    the CPUs and a whole GPU, and the trials start when it is done. `holds()` is asked
    before each write (the study's lease). Returns the thread that records the result;
    join it after the trials."""
    import ray
    from mlflow.entities import Metric, RunTag

    gpus = 0.0 if alongside else min(1.0, resources.get("gpu", 0.0) * concurrency)
    # One task runs on one node: no more CPUs than the largest (GPU) node has.
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    node_cpus = max((r.get("CPU", 0.0) for r in nodes if r.get("GPU", 0.0) >= gpus), default=0)
    cpus = min(resources["cpu"] * concurrency, node_cpus) or resources["cpu"]
    where = f"{label}: " if label else ""
    task = ray.remote(build).options(
        num_cpus=0 if alongside else cpus, num_gpus=gpus, max_retries=0
    )
    t0 = time.perf_counter()
    ref = task.remote(config, plan.preset, plan.cache_dir, max(1, int(cpus)))
    tag = f"cache.backbone.prebuild.{tag_safe(label)}"

    def record() -> None:
        try:
            out = ray.get(ref)
        except ray.exceptions.RayError as e:
            cause = getattr(e, "cause", None) or e
            reason = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:300]}"
            if not holds():
                return
            client.set_tag(parent_id, f"{tag}.error", reason[:4000])
            if isinstance(cause, FsvaeError):
                on_fatal(reason)
            else:
                print(
                    f"{where}building the shared backbone for the trials failed ({reason}); "
                    f"each trial builds it itself",
                    flush=True,
                )
            return
        except Exception:  # Ray shutting down under an interrupted study
            return
        wall = time.perf_counter() - t0
        if out.get("data"):
            on_data(out["data"])
        info = out["cache"]["backbone"]
        now = int(time.time() * 1000)
        metrics = {
            "prebuild_s": out["timings"]["total"],
            "prebuild_wall_s": wall,
            "prebuild_cpu_s": out["cpu_s"],
            "prebuild_cpus": cpus,
            "prebuild_gpus": gpus,
        }
        if not holds():
            return
        client.log_batch(
            parent_id,
            metrics=[Metric(k, v, now, step) for k, v in metrics.items()],
            tags=[RunTag(tag, "hit" if info["hit"] else "miss"), RunTag(f"{tag}.key", info["key"])]
            + ([RunTag(f"{tag}.repaired", info["repaired"])] if info.get("repaired") else []),
        )
        print(
            f"{where}shared backbone {info['key'][:12]} "
            f"{'found in the cache' if info['hit'] else 'built'} for the trials "
            f"({wall:.1f} s, {cpus:g} CPU{'s' if cpus != 1 else ''}"
            f"{f', {gpus:g} GPU' if gpus else ''})",
            flush=True,
        )

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    if not alongside:
        thread.join()  # the trials start once it is done (it holds their resources)
    return thread


def build(config: dict, preset: str, cache_dir: str, threads: int) -> dict:
    """The Ray task: builds the data and backbone stages into the cache
    (fsvae.trial.prepare) with `threads` torch threads."""
    import torch

    from fsvae.cache import StageCache
    from fsvae.trial import prepare, resolve

    torch.set_num_threads(max(1, threads))
    faults.pause("shared_build")
    lines: list[str] = []
    seen: dict = {}

    def progress(event: dict) -> None:
        if event.get("stage") == "data" and "examples" in event:
            seen["data"] = data_summary(event)

    cpu0 = time.process_time()
    out = prepare(
        resolve(config_mod.resolve(config, preset=preset)),
        StageCache(cache_dir, log=lines.append),
        progress=progress,
        log=lines.append,
    )
    return {
        "cache": out["cache"],
        "timings": out["timings"],
        "log": lines,
        "cpu_s": time.process_time() - cpu0,
        "data": seen.get("data"),
    }


def tag_safe(label: str) -> str:
    """A stratum label as part of an MLflow tag key (letters, digits, _ - . / space)."""
    return "".join(c if c.isalnum() or c in "_-./ " else "-" for c in label) or "all"
