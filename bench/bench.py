"""CPU benchmark of the study harness (`make bench`). Prints ratios measured in one run.

(a) the stage cache: a 12-trial Optuna search at one n_f (tiny preset) with the cache
    against the same study with --no-cache; and how many backbones each built.
(b) the harness's overhead: a study's wall time against the sum of its trials' own
    compute (time inside fsvae's run_trial, minus time spent waiting for another trial's
    cache build). With c trials at a time, the ideal wall time is sum(compute) / c;
    overhead = 1 - sum(compute) / (c * wall), everything else the study spent: Python and
    Ray start-up, MLflow, Tune's scheduling, idle slots, shutdown.
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
# The tiny preset's own epochs (smoke-search.yaml shortens them; the bench does not).
TINY_EPOCHS = ["--set", "backbone_epochs=6", "--set", "vae_epochs=30",
               "--set", "classifier_epochs=10"]


def study(args: list[str], log: Path) -> float:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "study.cli", "run", *args], cwd=REPO,
                              env=env, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench: study failed (exit {proc.returncode}); see {log}")
    return wall


def trials(storage: Path, name: str):
    mlflow.set_tracking_uri(f"sqlite:///{storage / 'mlflow.db'}")
    df = mlflow.search_runs(experiment_names=[name])
    return df[(df["tags.fsvae.role"] == "trial") & (df["status"] == "FINISHED")]


def overhead(wall: float, runs, concurrency: int) -> tuple[float, float]:
    compute = float((runs["metrics.time_total_s"] - runs["metrics.time_waited_s"]).sum())
    return compute, 1 - compute / (concurrency * wall)


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
    common = ["--space", "smoke-search", "--data", str(data), "--num-samples", str(a.trials),
              "--max-concurrent", "2", *TINY_EPOCHS]
    print(f"bench: {platform.node()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; {a.trials}-trial search at n_f=5, tiny preset",
          flush=True)
    walls, runs = {}, {}
    for label, extra in (("cache", []), ("no-cache", ["--no-cache"])):
        storage = out / label
        walls[label] = study([*common, "--storage", str(storage), "--name", "s", *extra],
                             out / f"{label}.log")
        runs[label] = trials(storage, "s")
        print(f"  {label:9s} wall {walls[label]:6.1f} s, {len(runs[label])} trials finished, "
              f"backbones built {int((runs[label]['tags.cache.backbone'] == 'miss').sum())}",
              flush=True)
    storage = out / "smoke"
    walls["smoke"] = study(["--space", "smoke", "--data", str(data), "--storage",
                            str(storage), "--name", "smoke", "--max-concurrent", "2"],
                           out / "smoke.log")
    runs["smoke"] = trials(storage, "smoke")

    rows = {"speedup_cache": walls["no-cache"] / walls["cache"]}
    for label in ("cache", "no-cache", "smoke"):
        compute, frac = overhead(walls[label], runs[label], 2)
        rows[f"overhead_{label}"] = frac
        rows[f"compute_s_{label}"] = compute
        rows[f"wall_s_{label}"] = walls[label]
    (out / "bench.json").write_text(json.dumps(rows, indent=1))
    print("\n| measure | value |\n|---|---|")
    print(f"| cached / --no-cache study speed-up ({a.trials} trials) | "
          f"{rows['speedup_cache']:.2f}x |")
    for label in ("cache", "no-cache", "smoke"):
        print(f"| harness overhead, {label} study (wall {walls[label]:.0f} s, trial compute "
              f"{rows[f'compute_s_{label}']:.0f} s, 2 at a time) | "
              f"{100 * rows[f'overhead_{label}']:.0f}% |")
    print(f"\nfull numbers: {out / 'bench.json'}")


if __name__ == "__main__":
    main()
