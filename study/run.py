"""`fsvae-study run` and `resume`: a study = Ray Tune over fsvae trials, Optuna searching,
MLflow recording. The trial itself is `study.trainable.trainable`.

Layout of a study under --storage (default ./fsvae-studies):
  <storage>/<name>/study.json     what was asked (space, data, preset, overrides, MLflow
                                  coordinates): `resume` needs nothing else
  <storage>/<name>/space.yaml     the space file as given
  <storage>/<name>/tune[-<stratum>]/  Ray Tune's experiment(s), restorable
  <storage>/cache/                the stage cache, shared by every study under <storage>
  <storage>/mlflow.db, mlartifacts/   the default MLflow store (embedded SQLite)
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import search_spaces
from fsvae import config as config_mod
from fsvae import data as data_mod
from study.errors import StudyError

DEFAULT_STORAGE = "fsvae-studies"
DEFAULT_GPU_FRACTION = 0.25


# -- planning (no Ray, no MLflow: every mistake is caught before anything starts) ---------

def _is_uri(path: str) -> bool:
    return "://" in path


def _storage(arg: str | None) -> str:
    raw = arg or DEFAULT_STORAGE
    return raw if _is_uri(raw) else str(Path(raw).expanduser().resolve())


def plan_from_args(args: argparse.Namespace) -> dict[str, Any]:
    space = search_spaces.load(args.space)
    overrides = config_mod.parse_overrides(args.set or [])
    space = _apply_overrides(space, overrides)
    space = _apply_grid(space, args.grid or [])
    storage = _storage(args.storage)
    name = args.name or space.name
    if "/" in name or not name.strip():
        raise StudyError(f"--name {name!r}: expected a non-empty name without '/'")
    data = Path(args.data).expanduser().resolve()
    data_mod.detect_layout(data)  # DataError now rather than in every trial
    if args.num_samples is not None:
        if space.kind != "optuna":
            raise StudyError("--num-samples applies to optuna spaces; a grid's size is its grid")
        if args.num_samples < 1:
            raise StudyError(f"--num-samples must be at least 1, got {args.num_samples}")
        space.num_samples = args.num_samples
    if args.no_cache and args.cache_dir:
        raise StudyError("--no-cache and --cache-dir contradict each other; choose one")
    if args.no_cache:
        cache_dir = None
    elif args.cache_dir:
        cache_dir = str(Path(args.cache_dir).expanduser().resolve())
    elif _is_uri(storage):
        raise StudyError(f"--storage {storage} is not a filesystem path, so the stage cache "
                         f"cannot live there: give --cache-dir on a shared filesystem, or "
                         f"--no-cache")
    else:
        cache_dir = str(Path(storage) / "cache")
    for flag, value in (("--cpus-per-trial", args.cpus_per_trial),
                        ("--gpus-per-trial", args.gpus_per_trial)):
        if value is not None and value < 0:
            raise StudyError(f"{flag} must be >= 0, got {value}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise StudyError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if args.max_failures < 0:
        raise StudyError(f"--max-failures must be >= 0, got {args.max_failures}")
    preset = args.preset or space.preset
    base = {**space.fixed, "data": str(data)}
    config_mod.resolve(base, preset=preset)
    if args.tracking_uri:
        tracking_uri = args.tracking_uri
    elif _is_uri(storage):
        raise StudyError("with a URI --storage, give --tracking-uri (an MLflow server); the "
                         "embedded SQLite store needs a local path")
    else:
        from study.schema import default_tracking_uri
        tracking_uri = default_tracking_uri(Path(storage))
    return {
        "name": name, "storage": storage, "space": space.to_dict(),
        "space_path": str(Path(space.path).resolve()), "space_text": space.text,
        "data": str(data), "preset": preset, "base": base, "tracking_uri": tracking_uri,
        "cache_dir": cache_dir, "address": _reachable(args.address or os.environ.get("RAY_ADDRESS")),
        "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
        "max_concurrent": args.max_concurrent, "max_failures": args.max_failures,
        "asha": bool(args.asha), "command": " ".join(shlex.quote(a) for a in sys.argv),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _reachable(address: str | None) -> str | None:
    """A host:port address must answer before anything starts: ray.init would otherwise
    retry a wrong address for minutes. ("auto" and ray:// are left to Ray.)"""
    if not address or address == "auto" or "://" in address:
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise StudyError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379), "
                         f"auto, or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise StudyError(f"cannot join the Ray cluster at {address}: nothing answers there "
                         f"({e.strerror or e}); is `ray start --head --port={port}` running "
                         f"on {host}?") from None
    return address


def _apply_overrides(space: search_spaces.Space, overrides: dict) -> search_spaces.Space:
    """`--set k=v` fixes k for every trial, replacing k wherever the space varied it."""
    for key, value in overrides.items():
        space.fixed[key] = value
        space.grid.pop(key, None)
        space.strata.pop(key, None)
        for v in space.variants:
            v.pop(key, None)
        if key in space.params:
            dependants = [k for k, p in space.params.items()
                          if key in (p.get("when") or {})]
            if dependants:
                raise StudyError(f"--set {key}=...: searched parameters {dependants} depend "
                                 f"on {key}; fix those too or edit the space")
            space.params.pop(key)
    if space.kind == "grid":
        unique = []
        for v in space.variants:
            if v not in unique:
                unique.append(v)
        space.variants = unique
    elif not space.params:
        raise StudyError("every searched parameter was fixed by --set: nothing left to search")
    return space


def _apply_grid(space: search_spaces.Space, pairs: list[str]) -> search_spaces.Space:
    """`--grid k=a,b` makes k a grid dimension with those values (grid spaces only)."""
    if pairs and space.kind != "grid":
        raise StudyError("--grid applies to grid spaces; for an optuna space edit its "
                         "params or strata")
    for pair in pairs:
        if "=" not in pair:
            raise StudyError(f"--grid expects KEY=V1,V2,..., got {pair!r}")
        key, text = pair.split("=", 1)
        values = [config_mod.parse_value(key.strip(), v.strip()) for v in text.split(",")]
        space.fixed.pop(key.strip(), None)
        for v in space.variants:
            v.pop(key.strip(), None)
        space.grid[key.strip()] = list(dict.fromkeys(values))
    return space


def _study_dir(plan: dict) -> str:
    return _join(plan["storage"], plan["name"])


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if _is_uri(base) else str(Path(base, *parts))


def _read_plan(study_dir: str) -> dict | None:
    if _is_uri(study_dir):
        import pyarrow.fs as pafs
        fs, path = pafs.FileSystem.from_uri(study_dir + "/study.json")
        try:
            with fs.open_input_stream(path) as f:
                return json.loads(f.read().decode())
        except (FileNotFoundError, OSError):
            return None
    p = Path(study_dir, "study.json")
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StudyError(f"{p} is not valid JSON ({e}); it records how the study was started, "
                         f"so restore it from a backup, or start again under another --name "
                         f"(the stage cache keeps what was already computed)") from None


def _write_plan(plan: dict) -> None:
    study_dir = _study_dir(plan)
    text = json.dumps(plan, indent=1)
    if _is_uri(study_dir):
        import pyarrow.fs as pafs
        fs, path = pafs.FileSystem.from_uri(study_dir)
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(path + "/study.json") as f:
            f.write(text.encode())
        return
    Path(study_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(study_dir, ".study.json.tmp")
    tmp.write_text(text)
    os.replace(tmp, Path(study_dir, "study.json"))
    Path(study_dir, "space.yaml").write_text(plan["space_text"])


def _forget_plan(plan: dict) -> bool:
    """Removes a new study's study.json and space.yaml; False on a URI storage, where they
    stay (and `resume` continues the study)."""
    study_dir = _study_dir(plan)
    if _is_uri(study_dir):
        return False
    for name in ("study.json", "space.yaml"):
        Path(study_dir, name).unlink(missing_ok=True)
    return True


def run_from_args(args: argparse.Namespace) -> int:
    plan = plan_from_args(args)
    existing = _read_plan(_study_dir(plan))
    if existing is not None:
        if not args.resume:
            raise StudyError(f"study {plan['name']!r} already exists in {plan['storage']}: "
                             f"continue it with --resume (or `fsvae-study resume --name "
                             f"{plan['name']}`), or choose another --name")
        for key in ("space", "data", "preset", "base"):
            if existing[key] != plan[key]:
                raise StudyError(f"study {plan['name']!r} was started with another {key} "
                                 f"({existing[key]!r}); resume it without changing that, or "
                                 f"choose another --name")
        return execute(existing, resuming=True, retry_failed=False)
    return execute(plan, resuming=False, retry_failed=False)


def resume_from_args(args: argparse.Namespace) -> int:
    study_dir = _join(_storage(args.storage), args.name)
    plan = _read_plan(study_dir)
    if plan is None:
        raise StudyError(f"no study {args.name!r} in {_storage(args.storage)} "
                         f"(no {study_dir}/study.json)")
    if args.address:
        plan["address"] = args.address
    plan["address"] = _reachable(plan["address"])
    return execute(plan, resuming=True, retry_failed=args.retry_failed)


# -- execution ----------------------------------------------------------------------------

def execute(plan: dict, resuming: bool, retry_failed: bool) -> int:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # one line per trial event, no tables
    space = search_spaces.parse(plan["space"], plan["space_path"], plan["space_text"])
    # The start-up is seconds of waiting on Ray's processes and seconds of CPU in MLflow's
    # import and first use of a store (schema checks): MLflow runs in a thread while this
    # one imports Ray and starts it (ray.init must run in the main thread).
    for name in ("ray", "ray.tune", "ray.train", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    setup: dict[str, Any] = {}
    worker = threading.Thread(target=_setup_mlflow, args=(plan, space, setup))
    worker.start()
    import ray

    started_ray = not ray.is_initialized()
    ray_error = None
    try:
        if started_ray:
            _init_ray(plan["address"])
    except StudyError as e:
        ray_error = e
    worker.join()
    client = setup.get("client")
    if ray_error is not None:
        if "parent_run_id" in setup:  # nothing ran: no RUNNING parent left behind
            if not resuming and _forget_plan(plan):
                # A new study that never started: the same command can simply be re-run.
                client.delete_run(setup["parent_run_id"])
            else:
                client.set_terminated(setup["parent_run_id"], "KILLED")
        raise ray_error
    if "error" in setup:
        if started_ray:
            ray.shutdown()
        raise StudyError(f"MLflow at {plan['tracking_uri']} is not usable: {setup['error']}")
    import optuna
    from ray import tune

    from study import records
    from study.trainable import FINAL, trainable

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A failed trial is one Progress line with its reason; its traceback is in its MLflow
    # run (error.txt) and in Tune's error file, not on the console.
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune",
                 "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).addFilter(_QuietTrialFailures())
    exp_id, parent_id = setup["experiment_id"], setup["parent_run_id"]
    if plan["cache_dir"]:
        Path(plan["cache_dir"]).mkdir(parents=True, exist_ok=True)

    try:
        resources, concurrency = _resources(plan, space)
        print(f"study {plan['name']}: {search_spaces.count(space)} trials "
              f"({space.kind}{', strata ' + str(space.strata) if space.strata else ''}), "
              f"{concurrency} at a time, {_fmt_resources(resources)} each"
              + (" (resuming)" if resuming else ""), flush=True)
        ctx_base = {
            "base": plan["base"], "preset": plan["preset"], "study": plan["name"],
            "tracking_uri": plan["tracking_uri"], "experiment_id": exp_id,
            "parent_run_id": parent_id, "cache_dir": plan["cache_dir"],
            "objective": space.objective, "report_epochs": plan["asha"],
        }
        complete, finished, failed, prebuilds, prebuild = True, 0, 0, 0, None
        for stratum, label, experiment in _experiments(space):
            ctx = {**ctx_base, "stratum": stratum}
            wrapped = tune.with_resources(tune.with_parameters(trainable, ctx=ctx), resources)
            path = _join(_study_dir(plan), experiment)
            if tune.Tuner.can_restore(path):
                tuner = tune.Tuner.restore(path, trainable=wrapped, resume_unfinished=True,
                                           resume_errored=retry_failed)
            else:
                shared = _shared_config(plan, space, stratum, concurrency)
                if shared is not None:
                    prebuild = _prebuild(client, parent_id, shared, plan, resources,
                                         concurrency, label, prebuilds,
                                         alongside=started_ray and "gpu" not in resources)
                    prebuilds += 1
                tuner = _new_tuner(plan, space, stratum, label, experiment, wrapped,
                                   concurrency)
            results = tuner.fit()
            n_expected = space.num_samples if space.kind == "optuna" else len(space.trials())
            done = results.num_terminated + results.num_errors
            finished += sum(1 for r in results if FINAL in (r.metrics or {}))
            failed += results.num_errors
            stopped = len(results) < n_expected or done < len(results)
            if prebuild is not None:
                # Done by now if the trials ran (they waited on it); an interrupted study
                # does not wait for it (Ray's shutdown ends it; its entry stays unwritten).
                prebuild.join(timeout=0 if stopped else 120)
                prebuild = None
            if stopped:
                complete = False
                break
    except KeyboardInterrupt:
        complete = False
    finally:
        closed = records.reconcile(client, exp_id, parent_id)
        if started_ray:
            ray.shutdown()
    client.set_terminated(parent_id, "FINISHED" if complete else "KILLED")
    _summary(plan, space, complete, finished, failed, closed)
    return 0 if complete else 130


def _setup_mlflow(plan: dict, space: search_spaces.Space, out: dict) -> None:
    """Experiment and parent run (reused on resume); records them in study.json."""
    try:
        from mlflow.tracking import MlflowClient

        from study import records

        for name in ("mlflow", "alembic"):  # MLflow's import configures its own loggers
            logging.getLogger(name).setLevel(logging.WARNING)
        client = out["client"] = MlflowClient(plan["tracking_uri"])
        local_storage = None if _is_uri(plan["storage"]) else Path(plan["storage"])
        exp_id = records.ensure_experiment(client, plan["name"], local_storage)
        parent_id = plan.get("parent_run_id")
        if parent_id is None:
            parent_id = _start_parent(client, exp_id, plan, space)
            plan["parent_run_id"] = parent_id
        else:
            client.update_run(parent_id, status="RUNNING")
        plan["experiment_id"] = exp_id
        _write_plan(plan)
        out.update(experiment_id=exp_id, parent_run_id=parent_id)
    except Exception as e:  # reported by the caller as a StudyError, after Ray is down
        out["error"] = f"{type(e).__name__}: {e}"


class _QuietTrialFailures(logging.Filter):
    """Drops Tune's messages that our own lines replace (failure reasons, how to resume)."""

    DROP = ("Trial task failed", "Trials did not complete", "Experiment has been interrupted",
            "Failed to fetch metrics")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.DROP)


def _experiments(space: search_spaces.Space):
    """(stratum values, label, Ray experiment folder) per separate search."""
    if space.kind == "grid":
        yield {}, "", "tune"
        return
    for stratum in space.stratum_values():
        label = ",".join(f"{k}={v}" for k, v in stratum.items())
        yield stratum, label, "tune" + (f"-{label}" if label else "")


def _shared_config(plan: dict, space: search_spaces.Space, stratum: dict,
                   concurrency: int) -> dict | None:
    """The config whose data and backbone every trial of this stratum shares, where building
    them before the trials saves time: an Optuna stratum (a grid orders its trials instead,
    see order_for_sharing), the cache on, two or more trials at a time, and no searched
    parameter that changes the backbone. None otherwise."""
    if space.kind != "optuna" or not plan["cache_dir"] or concurrency < 2:
        return None
    config = {**plan["base"], **stratum}
    resolved = config_mod.resolve(config, preset=plan["preset"])
    if any(config_mod.decides_backbone(key, resolved) for key in space.params):
        return None
    return config


def _prebuild(client, parent_id: str, config: dict, plan: dict, resources: dict,
              concurrency: int, label: str, step: int,
              alongside: bool) -> threading.Thread:
    """Builds a stratum's shared stages (fsvae.trial.prepare) in one Ray task with the
    threads of all its concurrent trials, and records it on the study's parent run (tags
    cache.backbone.prebuild.<stratum>[.key]; metrics prebuild_s (the build itself),
    prebuild_wall_s (with the task's start), prebuild_cpu_s (CPU seconds of its process),
    prebuild_cpus (threads), prebuild_gpus; one step per stratum). A failure is reported
    and left to the trials, which then build (and fail on) the stage themselves, each with
    its own MLflow record.

    alongside (local Ray, CPU trials): the task reserves no CPU and runs while Tune starts
    the trials, whose processes start up meanwhile and then wait on the entry's lock, so
    the task uses the CPUs they hold and do not use while they wait. Otherwise (a cluster,
    where the task could land on another node than the trials, or GPU trials) it reserves
    the CPUs and a whole GPU, and the trials start when it is done. Returns the thread that
    records the result; join it after the trials."""
    import ray
    from mlflow.entities import Metric, RunTag

    from study.trainable import build_shared

    gpus = 0.0 if alongside else min(1.0, resources.get("gpu", 0.0) * concurrency)
    # One task runs on one node: no more CPUs than the largest (GPU) node has.
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    node_cpus = max((r.get("CPU", 0.0) for r in nodes if r.get("GPU", 0.0) >= gpus), default=0)
    cpus = min(resources["cpu"] * concurrency, node_cpus) or resources["cpu"]
    where = f"{label}: " if label else ""
    task = ray.remote(build_shared).options(num_cpus=0 if alongside else cpus, num_gpus=gpus,
                                            max_retries=0)
    t0 = time.perf_counter()
    ref = task.remote(config, plan["preset"], plan["cache_dir"], max(1, int(cpus)))
    tag = f"cache.backbone.prebuild.{_tag_safe(label)}"

    def record() -> None:
        try:
            out = ray.get(ref)
        except ray.exceptions.RayError as e:
            cause = getattr(e, "cause", None) or e
            reason = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:300]}"
            print(f"{where}building the shared backbone for the trials failed ({reason}); "
                  f"each trial builds it itself", flush=True)
            client.set_tag(parent_id, f"{tag}.error", reason[:4000])
            return
        except Exception:  # Ray shutting down under an interrupted study
            return
        wall = time.perf_counter() - t0
        info = out["cache"]["backbone"]
        now = int(time.time() * 1000)
        metrics = {"prebuild_s": out["timings"]["total"], "prebuild_wall_s": wall,
                   "prebuild_cpu_s": out["cpu_s"], "prebuild_cpus": cpus,
                   "prebuild_gpus": gpus}
        client.log_batch(parent_id,
                         metrics=[Metric(k, v, now, step) for k, v in metrics.items()],
                         tags=[RunTag(tag, "hit" if info["hit"] else "miss"),
                               RunTag(f"{tag}.key", info["key"])]
                         + ([RunTag(f"{tag}.repaired", info["repaired"])]
                            if info.get("repaired") else []))
        print(f"{where}shared backbone {info['key'][:12]} "
              f"{'found in the cache' if info['hit'] else 'built'} for the trials "
              f"({wall:.1f} s, {cpus:g} CPU{'s' if cpus != 1 else ''}"
              f"{f', {gpus:g} GPU' if gpus else ''})", flush=True)

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    if not alongside:
        thread.join()  # the trials start once it is done (it holds their resources)
    return thread


def _tag_safe(label: str) -> str:
    """A stratum label as part of an MLflow tag key (letters, digits, _ - . / space)."""
    return "".join(c if c.isalnum() or c in "_-./ " else "-" for c in label) or "all"


def _new_tuner(plan, space, stratum, label, experiment, wrapped, concurrency):
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch
    from functools import partial

    from study.progress import Progress

    total = space.num_samples if space.kind == "optuna" else len(space.trials())
    # reuse_actors: a new trial runs in a worker that already imported torch, MLflow and
    # fsvae (seconds per trial on a small machine; Tune's default is a fresh process).
    tune_config = dict(metric=space.objective, mode=space.mode,
                       max_concurrent_trials=concurrency, reuse_actors=True,
                       trial_name_creator=trial_name, trial_dirname_creator=trial_name)
    if plan["asha"]:
        epochs = config_mod.resolve(plan["base"], preset=plan["preset"])["classifier_epochs"]
        tune_config["scheduler"] = ASHAScheduler(time_attr="classifier_epoch", max_t=epochs,
                                                 grace_period=max(1, epochs // 5),
                                                 reduction_factor=3)
    if space.kind == "grid":
        param_space = {"trial": tune.grid_search(order_for_sharing(space.trials(), plan))}
        tune_config["num_samples"] = 1
    else:
        param_space = {}
        tune_config["search_alg"] = OptunaSearch(
            space=partial(search_spaces.suggest, params=space.params),
            metric=space.objective, mode=space.mode,
            sampler=optuna.samplers.TPESampler(seed=space.sampler_seed))
        tune_config["num_samples"] = space.num_samples
    run_config = tune.RunConfig(
        name=experiment, storage_path=_study_dir(plan), verbose=0,
        failure_config=tune.FailureConfig(max_failures=plan["max_failures"]),
        callbacks=[Progress(total, space.objective, space.mode, label, _shown_keys(space))])
    return tune.Tuner(wrapped, param_space=param_space,
                      tune_config=tune.TuneConfig(**tune_config), run_config=run_config)


def _shown_keys(space: search_spaces.Space) -> list[str] | None:
    """The keys that tell a grid's trials apart (None: show Optuna's suggestions)."""
    if space.kind != "grid":
        return None
    values: dict[str, set] = {}
    for point in space.trials():
        for k, v in point.items():
            values.setdefault(k, set()).add(json.dumps(v))
    return [k for k, vs in values.items() if len(vs) > 1 or k in ("method", "sampling_factor")]


def trial_name(trial) -> str:
    return f"trial_{trial.trial_id}"


def order_for_sharing(trials: list[dict], plan: dict) -> list[dict]:
    """Grid order: the first trial of every distinct backbone first, then the rest, so
    that concurrent trials build different backbones instead of waiting on one builder."""
    groups: dict[str, list[dict]] = {}
    for point in trials:
        cfg = config_mod.resolve({**plan["base"], **point}, preset=plan["preset"])
        key = json.dumps(config_mod.backbone_identity(cfg), sort_keys=True, default=str)
        groups.setdefault(key, []).append(point)
    ordered = []
    for rank in range(max(len(g) for g in groups.values())):
        ordered += [g[rank] for g in groups.values() if rank < len(g)]
    return ordered


def _init_ray(address: str | None) -> None:
    import ray

    import fsvae
    import study

    kwargs = dict(include_dashboard=False, log_to_driver=False,
                  logging_level=logging.WARNING)
    if address:
        # Workers on other nodes get this code from the driver; their Python needs the
        # packages of pyproject.toml (see README "On a Ray cluster").
        kwargs["runtime_env"] = {"py_modules": [fsvae, study, search_spaces]}
        try:
            ray.init(address=address, **kwargs)
        except Exception as e:
            raise StudyError(f"cannot join the Ray cluster at {address}: "
                             f"{type(e).__name__}: {e} (is `ray start --head` running there? "
                             f"RAY_AUTH_MODE must match the head's)") from None
    else:
        try:
            ray.init(**kwargs)
        except Exception as e:
            raise StudyError(f"cannot start a local Ray: {type(e).__name__}: {e}"
                             + _ray_tmp_hint(str(e))) from None


def _ray_tmp_hint(message: str) -> str:
    if "AF_UNIX path length" not in message:
        return ""
    from ray._common.utils import get_default_system_temp_dir

    return (f" (Ray keeps its sockets under $RAY_TMPDIR, else $TMPDIR: now "
            f"{get_default_system_temp_dir()}, too long a path for a socket; set RAY_TMPDIR "
            f"to a short folder, e.g. RAY_TMPDIR=/tmp)")


def _resources(plan: dict, space: search_spaces.Space) -> tuple[dict, int]:
    import ray

    total = ray.cluster_resources()
    cpus_total, gpus_total = total.get("CPU", 1), total.get("GPU", 0)
    cpu = plan["cpus_per_trial"] if plan["cpus_per_trial"] is not None \
        else space.resources.get("cpu", 1.0)
    gpu = plan["gpus_per_trial"] if plan["gpus_per_trial"] is not None \
        else space.resources.get("gpu", DEFAULT_GPU_FRACTION if gpus_total else 0.0)
    if gpu > 0 and gpus_total == 0:
        print(f"no GPU in the Ray cluster: trials run on the CPU (asked for {gpu} GPU each)",
              flush=True)
        gpu = 0.0
    if cpu > cpus_total:
        raise StudyError(f"{cpu} CPUs per trial, but the cluster has {cpus_total}")
    if gpu > max(gpus_total, 0) or (gpu > 1 and not float(gpu).is_integer()):
        raise StudyError(f"{gpu} GPUs per trial, but the cluster has {gpus_total} (fractions "
                         f"above 1 must be whole numbers)")
    limits = [math.floor(cpus_total / cpu) if cpu > 0 else 10_000]
    if gpu > 0:
        limits.append(math.floor(gpus_total / gpu + 1e-9))
    concurrency = max(1, min(limits))
    if plan["max_concurrent"]:
        concurrency = min(concurrency, plan["max_concurrent"])
    res = {"cpu": cpu}
    if gpu > 0:
        res["gpu"] = gpu
    return res, concurrency


def _fmt_resources(res: dict) -> str:
    return ", ".join(f"{v:g} {k.upper()}" for k, v in res.items())


def _start_parent(client, exp_id: str, plan: dict, space: search_spaces.Space) -> str:
    from mlflow.entities import Param

    tags = {"fsvae.role": "study", "fsvae.space_kind": space.kind,
            "fsvae.objective": space.objective, "fsvae.mode": space.mode,
            "fsvae.strata": ",".join(space.strata), "fsvae.command": plan["command"][:4000],
            "fsvae.code_version": code_version(), "fsvae.storage": plan["storage"],
            "fsvae.data": plan["data"],
            "fsvae.data_fingerprint": data_mod.fingerprint(plan["data"])}
    run = client.create_run(exp_id, tags=tags, run_name=f"study:{plan['name']}")
    params = {"space": space.name, "space_kind": space.kind, "preset": plan["preset"],
              "objective": space.objective, "mode": space.mode,
              "num_trials": search_spaces.count(space)}
    params.update({f"fixed.{k}": v for k, v in space.fixed.items()})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_text(run.info.run_id, plan["space_text"], "space.yaml")
    client.log_dict(run.info.run_id, space.to_dict(), "space.json")
    client.log_text(run.info.run_id, plan["command"] + "\n", "command.txt")
    return run.info.run_id


def code_version() -> str:
    import fsvae

    root = Path(fsvae.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"{fsvae.__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return fsvae.__version__


def _summary(plan: dict, space, complete: bool, finished: int, failed: int,
             closed: int) -> None:
    name = plan["name"]
    print(f"\nstudy {name}: {'complete' if complete else 'INTERRUPTED'}; {finished} trials "
          f"finished, {failed} failed" + (f", {closed} stopped runs closed" if closed else ""))
    print(f"  Ray Tune results: {_study_dir(plan)}")
    print(f"  MLflow: experiment {name!r} at {plan['tracking_uri']}")
    if plan["tracking_uri"].startswith("sqlite:"):
        print(f"  open the MLflow UI: mlflow ui --backend-store-uri {plan['tracking_uri']} "
              f"--host 127.0.0.1 --port 5000   (then http://127.0.0.1:5000)")
    storage = "" if plan["storage"] == _storage(None) else f" --storage {plan['storage']}"
    uri = "" if plan["tracking_uri"].startswith("sqlite:") else \
        f" --tracking-uri {plan['tracking_uri']}"
    print(f"  table: fsvae-study table --experiment {name}{storage}{uri}")
    if not complete:
        print(f"  continue with: fsvae-study resume --name {name}{storage}")
