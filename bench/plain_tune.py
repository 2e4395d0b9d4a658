"""Plain Ray Tune, the baseline: N busy-wait trials over the same space, in a child process.

`plain` starts this file as a script (its own local Ray), which writes its trials' times
to JSON: a trainable defined in a script's __main__ is sent to Tune's workers by value,
so they need nothing from bench/ on their path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from machine import Others, load
from measure import by_decile, measure
from studies import REPO, SPACE, env

OBJECTIVE = "val_acc_h"


def plain(out: Path, n: int, slots: int, busy: float, searcher: str, tag: str) -> dict:
    """Plain Ray Tune in a child process (its own local Ray): N busy-wait trials."""
    spec = out / f"plain-{tag}.json"
    result = out / f"plain-{tag}.result.json"
    spec.write_text(
        json.dumps(
            {
                "n": n,
                "slots": slots,
                "busy": busy,
                "searcher": searcher,
                "storage": str(out / f"plain-{tag}"),
                "result": str(result),
            }
        )
    )
    result.unlink(missing_ok=True)
    before = load()
    others = Others()
    t0 = time.perf_counter()
    with open(out / f"plain-{tag}.log", "w") as f:
        rc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), str(spec)],
            cwd=REPO,
            env=env(RAY_AIR_NEW_OUTPUT="0"),
            stdout=f,
            stderr=subprocess.STDOUT,
        ).returncode
    wall = time.perf_counter() - t0
    before["others"] = others.share()
    if rc != 0 or not result.is_file():
        sys.exit(f"bench: plain Ray Tune ({tag}) failed (exit {rc}); see {out}/plain-{tag}.log")
    r = json.loads(result.read_text())
    trials = r["trials"]
    m = measure(trials, slots)
    return {
        **m,
        "load": before,
        "wall_s": wall,
        "driver": r["driver"],
        "driver_cpu_s_per_trial": r["driver"]["cpu_s"] / n,
        "startup_s": min(t["start"] for t in trials) - r["started"],
        "deciles": by_decile(trials, slots),
    }


def _plain_trainable(config: dict, busy: float = 0.0) -> None:
    from ray import tune

    t0 = time.time()
    p0 = time.perf_counter()
    end = p0 + busy
    while time.perf_counter() < end:
        pass
    work = time.perf_counter() - p0
    tune.report(
        {
            OBJECTIVE: (hash(json.dumps(config, sort_keys=True, default=str)) % 1000) / 1000,
            "t0": t0,
            "t1": time.time(),
            "busy": work,
        }
    )


def _tune_space(params: dict) -> dict:
    """Tune's own sampling over the same parameters (without the conditionals)."""
    from ray import tune

    space = {}
    for key, spec in params.items():
        if spec["type"] == "categorical":
            space[key] = tune.choice(spec["choices"])
        elif spec["type"] == "int":
            low, high = int(spec["low"]), int(spec["high"])
            space[key] = (
                tune.lograndint(low, high + 1) if spec["log"] else tune.randint(low, high + 1)
            )
        else:
            space[key] = (
                tune.loguniform(spec["low"], spec["high"])
                if spec["log"]
                else tune.uniform(spec["low"], spec["high"])
            )
    return space


def _plain_main(spec_path: str) -> None:
    """The child process of `plain`: one Tune run, its trials' times to spec['result']."""
    import resource
    from functools import partial

    spec = json.loads(Path(spec_path).read_text())
    started = time.time()
    import logging

    import ray
    from ray import tune

    import search_spaces

    space = search_spaces.load(SPACE)
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    trainable = tune.with_resources(
        tune.with_parameters(_plain_trainable, busy=spec["busy"]), {"cpu": 1}
    )
    cfg = dict(
        metric=OBJECTIVE,
        mode="max",
        num_samples=spec["n"],
        max_concurrent_trials=spec["slots"],
        reuse_actors=True,
    )
    param_space = {}
    if spec["searcher"] == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        cfg["search_alg"] = OptunaSearch(
            space=partial(search_spaces.suggest, params=space.params),
            metric=OBJECTIVE,
            mode="max",
            seed=0,
        )
    else:
        param_space = _tune_space(space.params)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(**cfg),
        run_config=tune.RunConfig(name="plain", storage_path=spec["storage"], verbose=0),
    )
    grid = tuner.fit()
    trials = [
        {"start": r.metrics["t0"], "end": r.metrics["t1"], "compute": r.metrics["busy"]}
        # Ray's ResultGrid iterates through __getitem__ but does not declare __iter__
        for r in grid  # type: ignore[attr-defined]
        if r.metrics and "t0" in r.metrics
    ]
    ray.shutdown()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    memory = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
            memory[k + "_mb"] = int(v.split()[0]) / 1024
    Path(spec["result"]).write_text(
        json.dumps(
            {
                "trials": trials,
                "started": started,
                "driver": {
                    "maxrss_mb": memory["VmHWM_mb"],
                    "cpu_s": usage.ru_utime + usage.ru_stime,
                    **memory,
                },
            }
        )
    )


if __name__ == "__main__":
    _plain_main(sys.argv[1])
