"""Running `fsvae-study` as the benchmarks do: a timed child process, a harness study measured.

The harness study is `fsvae-study run --space smoke-search --num-samples N --max-concurrent
2 --set vae_epochs=1 --set classifier_epochs=1` on generated data; bench/overhead.py's
docstring says why its backbone is warmed first and what a trial then does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from machine import Others, load
from measure import by_decile, measure

REPO = Path(__file__).resolve().parents[1]
SPACE = "smoke-search"
EPOCHS = ["--set", "vae_epochs=1", "--set", "classifier_epochs=1"]
# Runs `fsvae-study ARGS` and, at its exit (the CLI runs atexit handlers even where it ends
# the process early), writes the process's own peak RSS and CPU seconds to $BENCH_STATS.
DRIVER = r"""
import atexit, json, os, resource, sys
def _stats():
    r = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["BENCH_STATS"], "w") as f:
        json.dump({"cpu_s": r.ru_utime + r.ru_stime, **memory()}, f)
def memory():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[k + "_mb"] = int(v.split()[0]) / 1024
    out["maxrss_mb"] = out.get("VmHWM_mb", 0)  # this process's own peak (not ru_maxrss,
    return out                                 # which keeps a forking parent's across exec)
atexit.register(_stats)
sys.argv = ["fsvae-study", *sys.argv[1:]]
from fsvae_study.cli import main
sys.exit(main())
"""


def git_describe() -> str:
    """The checkout's commit, `-dirty` when it has changes: the code a row measured."""
    return subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()


def env(**extra: str) -> dict:
    e = dict(os.environ)
    e.update({"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"})
    e.update(extra)
    return e


def cli(args: list[str], log: Path, environ: dict | None = None, check: bool = True) -> dict:
    """Runs `fsvae-study ARGS`; every output line goes to `log` with its time since the
    start. Returns wall, start and end (epoch seconds), the driver's peak RSS and CPU
    seconds, the exit code and the timed lines."""
    stats = log.with_suffix(".stats.json")
    stats.unlink(missing_ok=True)
    e = environ or env()
    e = {**e, "BENCH_STATS": str(stats)}
    start, t0 = time.time(), time.perf_counter()
    lines = []
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, *args],
            cwd=REPO,
            env=e,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.stdout is None:  # stdout=PIPE opens it
            raise RuntimeError("the driver's output is not piped")
        for line in proc.stdout:
            t = time.perf_counter() - t0
            lines.append((round(t, 3), line.rstrip("\n")))
            f.write(f"[{t:8.3f}] {line}")
        rc = proc.wait()
    wall = time.perf_counter() - t0
    if check and rc != 0:
        sys.exit(f"bench: `fsvae-study {' '.join(args)}` failed (exit {rc}); see {log}")
    driver = json.loads(stats.read_text()) if stats.is_file() else {}
    return {
        "wall_s": wall,
        "start": start,
        "end": time.time(),
        "rc": rc,
        "driver": driver,
        "lines": lines,
    }


def make_data(folder: Path, per_class: int) -> Path:
    from fsvae import demo_data

    if not folder.is_dir():
        demo_data.make(folder, per_class=per_class, image_size=48, seed=0)
    return folder


def space_copy(folder: Path, seed: int) -> Path:
    """smoke-search with another sampler seed (a warm-up whose VAEs the study won't reuse)."""
    import search_spaces

    text = search_spaces.resolve_path(SPACE).read_text()
    path = folder / f"{SPACE}-seed{seed}.yaml"
    path.write_text(text.replace("sampler_seed: 0", f"sampler_seed: {seed}"))
    return path


def study_trials(storage: Path, name: str) -> list[dict]:
    """A study's FINISHED trial runs: start, end (epoch s), compute (time_total_s)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    if exp is None:
        raise RuntimeError(f"no experiment {name!r} in {storage}")
    runs = client.search_runs(
        [exp.experiment_id],
        "tags.`fsvae.role` = 'trial' and attributes.status = 'FINISHED'",
        max_results=50000,
    )
    return sorted(
        (
            {
                "start": r.info.start_time / 1000,
                "end": r.info.end_time / 1000,
                "compute": r.data.metrics["time_total_s"],
                "key": r.data.tags.get("fsvae.trial_key"),
            }
            for r in runs
        ),
        key=lambda t: t["start"],
    )


def harness(
    out: Path, data: Path, n: int, slots: int, trial: str, name: str, extra: list[str] | None = None
) -> dict:
    """Runs the harness study `name` (N trials) under out/storage; returns its figures."""
    storage = out / "storage"
    environ = env(FSVAE_BENCH_TRIAL=trial) if trial != "real" else env()
    before = load()
    others = Others()
    run = cli(
        [
            "run",
            "--space",
            SPACE,
            "--data",
            str(data),
            "--storage",
            str(storage),
            "--name",
            name,
            "--num-samples",
            str(n),
            "--max-concurrent",
            str(slots),
            *EPOCHS,
            *(extra or []),
        ],
        out / f"{name}.log",
        environ,
    )
    before["others"] = others.share()
    trials = study_trials(storage, name)
    if len(trials) != n:
        sys.exit(f"bench: {name}: {len(trials)} of {n} trials finished; see {out}/{name}.log")
    m = measure(trials, slots)
    first = min(t["start"] for t in trials)
    last = max(t["end"] for t in trials)
    return {
        **m,
        "load": before,
        "wall_s": run["wall_s"],
        "startup_s": first - run["start"],
        "shutdown_s": run["end"] - last,
        "driver": run["driver"],
        "driver_cpu_s_per_trial": run["driver"].get("cpu_s", float("nan")) / n,
        "deciles": by_decile(trials, slots),
        "compute_list": [t["compute"] for t in trials],
    }


def warm_up(out: Path, data: Path, slots: int, trial: str = "real") -> None:
    """Builds the shared backbone into the stage cache (a 2-trial study, another seed; its
    trials as `trial` says, its backbone built by study/driver/prebuild.py either way)."""
    storage = out / "storage"
    environ = env(FSVAE_BENCH_TRIAL=trial) if trial != "real" else env()
    cli(
        [
            "run",
            "--space",
            str(space_copy(out, seed=1)),
            "--data",
            str(data),
            "--storage",
            str(storage),
            "--name",
            "warm-up",
            "--num-samples",
            "2",
            "--max-concurrent",
            str(slots),
            *EPOCHS,
        ],
        out / "warm-up.log",
        environ,
    )


def forget(storage: Path, name: str) -> None:
    """Removes an earlier run of this study name (its folder, experiment and Optuna study)
    so that a rerun starts a new study instead of resuming."""
    shutil.rmtree(storage / name, ignore_errors=True)
    db = storage / "mlflow.db"
    if db.is_file():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{db}")
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            client.rename_experiment(exp.experiment_id, f"{name}-old-{int(time.time())}")
            client.delete_experiment(exp.experiment_id)
    optuna_db = storage / "optuna.db"
    if optuna_db.is_file():
        import optuna

        for study in optuna.get_all_study_names(f"sqlite:///{optuna_db}"):
            if study == name or study.startswith(name + "/"):
                optuna.delete_study(study_name=study, storage=f"sqlite:///{optuna_db}")
