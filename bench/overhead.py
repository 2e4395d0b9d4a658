"""The study harness's cost per trial against plain Ray Tune's, measured in one run.

Usage, from the repository root with the project's Python (PYTHONPATH=$PWD makes this
checkout's code win over an installed copy; the studies this runs get it too):

    PYTHONPATH=$PWD python bench/overhead.py                    # N=40, 2 at a time
    PYTHONPATH=$PWD python bench/overhead.py --trials 100 --repeats 2
    PYTHONPATH=$PWD python bench/overhead.py --trial instant    # synthetic trials (no fsvae)
    PYTHONPATH=$PWD python bench/overhead.py --only plain --busy 0.2

It runs, one after the other, in this order:
  harness   `fsvae-study run --space smoke-search --num-samples N --max-concurrent 2
            --set vae_epochs=1 --set classifier_epochs=1` on generated data (demo-data, 40
            images per class), its backbone already in the stage cache (a 2-trial warm-up
            study of the same space with another sampler seed builds it first), so that a
            trial is a cache look-up, one VAE epoch and one classifier epoch (~0.1-0.3 s).
            `--trial instant` runs the same study with FSVAE_BENCH_TRIAL=instant: every
            trial is study/hooks/bench_trial.py's synthetic result, all of it still recorded.
            The warm-up runs in every mode: a search with 2 trials at a time builds its
            stratum's shared backbone in a Ray task beside its first trials
            (study/driver/prebuild.py), which would otherwise compete with the measured trials
            for the CPU; warmed, the measured study's build is a cache hit.
  plain     plain Ray Tune (a local Ray of its own, in a child process): N trials that
            busy-wait the harness trials' mean compute, 2 at a time, 1 CPU each,
            reuse_actors=True, default loggers, no callbacks; once with Tune's own variant
            generation over the same space (`plain`) and once with Ray's
            ray.tune.search.optuna.OptunaSearch (TPE, seed 0, in-memory storage) over it
            (`plain+optuna`).

The measurement, the same for every row: a trial slot's time per trial beyond the trial's
own compute,

    overhead per trial slot = (last trial end - first trial start) x slots / trials
                              - mean compute per trial

with slots = trials at a time (2). For the harness, a trial's start and end are its MLflow
run's start_time and end_time and its compute is the run's metric time_total_s (fsvae's
run_trial from its first line to its return: a stage's cached-entry load, the VAE and
classifier, and whatever run_trial and its progress callbacks do besides, e.g. hashing
fsvae's sources for cache keys, and sending a stage's curves to MLflow when the stage took
longer than TrialRecorder.LIVE_STAGE_S; a quicker stage's go in the trial's last write,
after run_trial returns); for a synthetic
trial time_total_s is its busy time only. For plain Tune, a trial's start and end are taken
inside the trainable (entry, just before its one report) and compute is its measured busy
wait. Interior trials thus pay for everything between two trials (Tune, the searcher, the
worker's set-up); the first trial's set-up and the last trial's wrap-up fall outside.

Also printed: the harness's part of that overhead inside its runs (MLflow run open minus
compute: figures, MLflow writes, artifacts) and outside them; the driver's CPU seconds per
trial and peak RSS; the load: the 1-minute load average and the share of the machine's
CPU busy in the 3 s before each part started, and the share that other processes than
this bench's took while it ran ("others ... during"). On a shared machine compare rows of
one run only, and repeat (`--repeats`) when the load was high. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

# bench/'s own modules: this script's folder is first on sys.path.
from machine import fmt_load, machine
from measure import HEADER, row
from plain_tune import plain
from studies import git_describe, harness, make_data, warm_up


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="bench-out/overhead", help="working folder (emptied)")
    p.add_argument("--trials", type=int, default=40, help="N, trials per run (default 40)")
    p.add_argument("--slots", type=int, default=2, help="trials at a time (default 2)")
    p.add_argument("--per-class", type=int, default=40, help="generated images per class")
    p.add_argument(
        "--trial",
        default="real",
        help="real (default: smoke-search trials, "
        "cached backbone), instant or busy:<s> (FSVAE_BENCH_TRIAL)",
    )
    p.add_argument(
        "--busy",
        type=float,
        help="plain trials' busy seconds (default: the "
        "harness trials' mean compute; with --only plain: 0.2)",
    )
    p.add_argument("--only", choices=("harness", "plain"), help="run one side only")
    p.add_argument("--repeats", type=int, default=1, help="run everything this many times")
    a = p.parse_args()
    out = Path(a.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"overhead bench: {machine()}", flush=True)
    commit = git_describe()
    print(f"code: {commit}; N={a.trials}, {a.slots} at a time, trial={a.trial}", flush=True)
    data = make_data(out / "data", a.per_class)
    results: list[dict] = []
    if a.only != "plain":
        print("warm-up: building the shared backbone into the stage cache", flush=True)
        warm_up(out, data, a.slots, a.trial)
    for rep in range(a.repeats):
        rows: dict[str, dict] = {}
        busy = a.busy
        if a.only != "plain":
            name = f"harness-{rep}"
            print(f"[{rep}] harness: {a.trials} trials ...", flush=True)
            rows["harness"] = harness(out, data, a.trials, a.slots, a.trial, name)
            print(
                f"    {rows['harness']['overhead_s']:.3f} s per trial slot "
                f"({fmt_load(rows['harness']['load'])})",
                flush=True,
            )
            if busy is None:
                busy = rows["harness"]["compute_s"]
        if a.only != "harness":
            busy = 0.2 if busy is None else busy
            for searcher, tag in (("none", "plain"), ("optuna", "plain+optuna")):
                print(f"[{rep}] {tag}: {a.trials} trials busy {busy:.3f} s ...", flush=True)
                rows[tag] = plain(out, a.trials, a.slots, busy, searcher, f"{tag}-{rep}")
                print(
                    f"    {rows[tag]['overhead_s']:.3f} s per trial slot "
                    f"({fmt_load(rows[tag]['load'])})",
                    flush=True,
                )
        results.append(rows)
    print(f"\n{HEADER}")
    for rep, rows in enumerate(results):
        for label, r in rows.items():
            print(row(f"{label} #{rep}" if a.repeats > 1 else label, r))
    print()
    for rep, rows in enumerate(results):
        if "harness" in rows:
            h = rows["harness"]
            for tag in ("plain", "plain+optuna"):
                if tag in rows:
                    ratio = h["overhead_s"] / max(rows[tag]["overhead_s"], 1e-9)
                    print(
                        f"ratio harness / {tag}{f' #{rep}' if a.repeats > 1 else ''}: "
                        f"{ratio:.1f}x ({h['overhead_s']:.3f} s vs "
                        f"{rows[tag]['overhead_s']:.3f} s per trial slot)"
                    )
            print(
                f"harness #{rep}: start-up {h['startup_s']:.1f} s (command to first trial "
                f"run), shut-down {h['shutdown_s']:.1f} s; overhead per tenth of the trials "
                f"{h['deciles']}"
            )
    (out / "overhead.json").write_text(
        json.dumps(
            {"machine": machine(), "commit": commit, "args": vars(a), "results": results}, indent=1
        )
    )
    print(f"\nfull numbers: {out / 'overhead.json'}")


if __name__ == "__main__":
    main()
