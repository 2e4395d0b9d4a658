"""CPU benchmark of the study harness (`make bench-cache`). Prints ratios measured in one run.

(a) the stage cache: a 12-trial Optuna search at one n_f (tiny preset) with the cache
    against the same study with --no-cache; and how many backbones each built.
(b) the harness's overhead: a study's wall time against the sum of its trials' own
    compute (time inside fsvae's run_trial, minus time spent waiting for another trial's
    cache build), plus the CPU seconds of a search's shared backbone build (a trial slot is
    1 CPU). With c trials at a time, the ideal
    wall time is sum(compute) / c; overhead = 1 - sum(compute) / (c * wall), everything else
    the study spent: Python and Ray start-up, MLflow, Tune's scheduling, idle slots,
    shutdown.
Never a test: timings depend on the machine; this prints them, with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow

REPO = Path(__file__).resolve().parents[1]
# The tiny preset's own epochs (smoke.yaml and smoke-search.yaml shorten them for the
# tests; the bench does not).
TINY_EPOCHS = [
    "--set",
    "backbone_epochs=6",
    "--set",
    "vae_epochs=30",
    "--set",
    "classifier_epochs=10",
]


def study(args: list[str], log: Path) -> tuple[float, float, float]:
    """Runs one study; returns (wall seconds, start and end as epoch seconds)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    start, t0 = time.time(), time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "fsvae_study", "run", *args],
            cwd=REPO,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench: study failed (exit {proc.returncode}); see {log}")
    return wall, start, time.time()


def trials(storage: Path, name: str):
    """(finished trial runs, the study's parent run) of a study."""
    mlflow.set_tracking_uri(f"sqlite:///{storage / 'mlflow.db'}")
    df = mlflow.search_runs(experiment_names=[name])
    parent = df[df["tags.fsvae.role"] == "study"].iloc[0]
    return df[(df["tags.fsvae.role"] == "trial") & (df["status"] == "FINISHED")], parent


def prebuilds(parent) -> tuple[float, int]:
    """(CPU seconds of the shared builds for the trials, how many built a backbone). CPU
    seconds, not wall x threads: the build shares the CPUs with the trials' start-up."""
    client = mlflow.tracking.MlflowClient()
    cpu = client.get_metric_history(parent["run_id"], "prebuild_cpu_s")
    built = sum(
        v == "miss"
        for k, v in parent.items()
        if k.startswith("tags.cache.backbone.prebuild.") and k.count(".") == 4
    )
    return sum(m.value for m in cpu), built


def breakdown(wall: float, start: float, end: float, runs, parent, concurrency: int) -> dict:
    """Where a study's time went: trial compute, waiting on another trial's cache build,
    per-trial harness work (MLflow records, figures, Tune), start-up and shut-down."""
    shared, _ = prebuilds(parent)
    compute = float((runs["metrics.time_total_s"] - runs["metrics.time_waited_s"]).sum()) + shared
    first = runs["start_time"].min().timestamp()
    last = runs["end_time"].max().timestamp()
    duration = (runs["end_time"] - runs["start_time"]).dt.total_seconds()
    return {
        "wall_s": wall,
        "compute_s": compute,
        "prebuild_slot_s": shared,
        "overhead": 1 - compute / (concurrency * wall),
        "startup_s": first - start,
        "shutdown_s": end - last,
        "waited_s": float(runs["metrics.time_waited_s"].sum()),
        "per_trial_harness_s": float((duration - runs["metrics.time_total_s"]).mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench-out")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--per-class", type=int, default=40)
    a = p.parse_args()
    out = Path(a.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    from fsvae import demo_data

    data = out / "data"
    demo_data.make(data, per_class=a.per_class, image_size=48, seed=0)
    common = [
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--num-samples",
        str(a.trials),
        "--max-concurrent",
        "2",
        *TINY_EPOCHS,
    ]
    print(
        f"bench: {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {a.trials}-trial search at n_f=5 and the smoke grid, "
        f"tiny preset's epochs, generated data {a.per_class} images per class",
        flush=True,
    )
    rows: dict[str, dict] = {}
    studies = {
        "cache": [*common, "--name", "s"],
        "no-cache": [*common, "--name", "s", "--no-cache"],
        "smoke": [
            "--space",
            "smoke",
            "--data",
            str(data),
            "--name",
            "smoke",
            "--max-concurrent",
            "2",
            *TINY_EPOCHS,
        ],
    }
    for label, args in studies.items():
        storage = out / label
        wall, start, end = study([*args, "--storage", str(storage)], out / f"{label}.log")
        runs, parent = trials(storage, args[args.index("--name") + 1])
        rows[label] = breakdown(wall, start, end, runs, parent, 2)
        rows[label]["backbones_built"] = (
            int((runs["tags.cache.backbone"] == "miss").sum()) + prebuilds(parent)[1]
        )
        rows[label]["trials"] = len(runs)
        print(
            f"  {label:9s} wall {wall:6.1f} s, {len(runs)} trials finished, "
            f"backbones built {rows[label]['backbones_built']}",
            flush=True,
        )
    speedup = rows["no-cache"]["wall_s"] / rows["cache"]["wall_s"]
    # The same ratio on the trials' compute alone: what the cache saves before the fixed
    # costs (start-up, shut-down, per-trial records) dilute it.
    compute_ratio = rows["no-cache"]["compute_s"] / rows["cache"]["compute_s"]
    (out / "bench.json").write_text(
        json.dumps(
            {"speedup_cache": speedup, "compute_ratio_cache": compute_ratio, **rows}, indent=1
        )
    )
    print("\n| measure | value |\n|---|---|")
    print(f"| cached / --no-cache study speed-up ({a.trials} trials) | {speedup:.2f}x |")
    print(f"| the same on the trials' compute alone | {compute_ratio:.2f}x |")
    for label, r in rows.items():
        print(
            f"| harness overhead, {label} study: 1 - compute / (2 x wall) | "
            f"{100 * r['overhead']:.0f}% (wall {r['wall_s']:.0f} s, trial compute "
            f"{r['compute_s']:.0f} s) |"
        )
    print(
        "\n| study | start-up s | shut-down s | waiting on a cache build s (sum) | "
        "harness per trial s |\n|---|---|---|---|---|"
    )
    for label, r in rows.items():
        print(
            f"| {label} | {r['startup_s']:.1f} | {r['shutdown_s']:.1f} | "
            f"{r['waited_s']:.1f} | {r['per_trial_harness_s']:.2f} |"
        )
    print(f"\nfull numbers: {out / 'bench.json'}")


if __name__ == "__main__":
    main()
