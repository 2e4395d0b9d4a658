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
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACE = "smoke-search"
EPOCHS = ["--set", "vae_epochs=1", "--set", "classifier_epochs=1"]
OBJECTIVE = "val_acc_h"
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


# -- the machine -------------------------------------------------------------------------

def machine() -> str:
    from importlib import metadata

    def version(lib: str) -> str:
        try:
            return metadata.version(lib)
        except metadata.PackageNotFoundError:
            return "-"

    return (f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"torch {version('torch')}, ray {version('ray')}, optuna {version('optuna')}, "
            f"mlflow {version('mlflow')}")


def load(seconds: float = 3.0) -> dict:
    """The 1-minute load average, and the share of all CPUs busy over the next `seconds`."""
    def ticks() -> tuple[int, int]:
        parts = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = parts[3] + parts[4]
        return sum(parts), idle

    loadavg = float(Path("/proc/loadavg").read_text().split()[0])
    total0, idle0 = ticks()
    time.sleep(seconds)
    total1, idle1 = ticks()
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    return {"loadavg1": loadavg, "busy": round(busy, 3)}


def fmt_load(ld: dict) -> str:
    text = f"load {ld['loadavg1']:.2f}, CPU {100 * ld['busy']:.0f}% busy before"
    if "others" in ld:
        text += f", others {100 * ld['others']:.0f}% during"
    return text


class Others:
    """The share of the machine's CPU time that processes other than this bench's took while
    a part ran: the machine's busy CPU time (/proc/stat) less that of this process and all
    its descendants (sampled from /proc every 0.5 s: a process that lives less than that
    between two samples is missed, which counts its CPU as the others'), over CPUs x wall."""

    def __init__(self):
        import threading

        self.hz = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, float] = {}
        self.t0, self.busy0 = time.perf_counter(), self._busy()
        self.base = self._tree()  # what the tree had used before the part started
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _busy(self) -> float:
        parts = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return (sum(parts[:8]) - parts[3] - parts[4]) / self.hz

    def _tree(self) -> dict[int, float]:
        """CPU seconds of this process and its descendants now, by pid."""
        procs = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            procs[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / self.hz)
        tree, todo = {}, [os.getpid()]
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        while todo:
            pid = todo.pop()
            if pid in procs and pid not in tree:
                tree[pid] = procs[pid][1]
                todo += children.get(pid, [])
        return tree

    def _sample(self) -> None:
        while not self.stop.wait(0.5):
            self.seen.update(self._tree())

    def share(self) -> float:
        self.stop.set()
        self.thread.join()
        self.seen.update(self._tree())
        wall = time.perf_counter() - self.t0
        ours = sum(cpu - self.base.get(pid, 0.0) for pid, cpu in self.seen.items())
        others = (self._busy() - self.busy0) - ours
        return round(max(0.0, others) / ((os.cpu_count() or 1) * wall), 3)


# -- running the CLI ---------------------------------------------------------------------

def env(**extra: str) -> dict:
    e = dict(os.environ)
    e.update({"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0",
              "PYTHONUNBUFFERED": "1"})
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
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, *args], cwd=REPO, env=e,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            t = time.perf_counter() - t0
            lines.append((round(t, 3), line.rstrip("\n")))
            f.write(f"[{t:8.3f}] {line}")
        rc = proc.wait()
    wall = time.perf_counter() - t0
    if check and rc != 0:
        sys.exit(f"bench: `fsvae-study {' '.join(args)}` failed (exit {rc}); see {log}")
    driver = json.loads(stats.read_text()) if stats.is_file() else {}
    return {"wall_s": wall, "start": start, "end": time.time(), "rc": rc, "driver": driver,
            "lines": lines}


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
    runs = client.search_runs([exp.experiment_id], "tags.`fsvae.role` = 'trial' and "
                              "attributes.status = 'FINISHED'", max_results=50000)
    return sorted(({"start": r.info.start_time / 1000, "end": r.info.end_time / 1000,
                    "compute": r.data.metrics["time_total_s"],
                    "key": r.data.tags.get("fsvae.trial_key")} for r in runs),
                  key=lambda t: t["start"])


def measure(trials: list[dict], slots: int) -> dict:
    """The overhead per trial slot (the module's docstring), and its parts."""
    n = len(trials)
    window = max(t["end"] for t in trials) - min(t["start"] for t in trials)
    compute = statistics.mean(t["compute"] for t in trials)
    in_run = statistics.mean(t["end"] - t["start"] - t["compute"] for t in trials)
    slot = window * slots / n
    return {"trials": n, "window_s": window, "slot_s_per_trial": slot,
            "compute_s": compute, "compute_median_s": statistics.median(
                t["compute"] for t in trials), "overhead_s": slot - compute,
            "in_run_s": in_run, "outside_run_s": slot - compute - in_run}


def by_decile(trials: list[dict], slots: int, parts: int = 10) -> list[float]:
    """The overhead per trial slot over successive tenths of the trials (by start): does a
    trial cost more late in a study than early?"""
    trials = sorted(trials, key=lambda t: t["start"])
    n = len(trials)
    out = []
    for i in range(parts):
        chunk = trials[i * n // parts:(i + 1) * n // parts]
        if len(chunk) >= 4:
            out.append(round(measure(chunk, slots)["overhead_s"], 3))
    return out


# -- the harness ---------------------------------------------------------------------------

def harness(out: Path, data: Path, n: int, slots: int, trial: str, name: str,
            extra: list[str] | None = None) -> dict:
    """Runs the harness study `name` (N trials) under out/storage; returns its figures."""
    storage = out / "storage"
    environ = env(FSVAE_BENCH_TRIAL=trial) if trial != "real" else env()
    before = load()
    others = Others()
    run = cli(["run", "--space", SPACE, "--data", str(data), "--storage", str(storage),
               "--name", name, "--num-samples", str(n), "--max-concurrent", str(slots),
               *EPOCHS, *(extra or [])], out / f"{name}.log", environ)
    before["others"] = others.share()
    trials = study_trials(storage, name)
    if len(trials) != n:
        sys.exit(f"bench: {name}: {len(trials)} of {n} trials finished; see {out}/{name}.log")
    m = measure(trials, slots)
    first = min(t["start"] for t in trials)
    last = max(t["end"] for t in trials)
    return {**m, "load": before, "wall_s": run["wall_s"], "startup_s": first - run["start"],
            "shutdown_s": run["end"] - last, "driver": run["driver"],
            "driver_cpu_s_per_trial": run["driver"].get("cpu_s", float("nan")) / n,
            "deciles": by_decile(trials, slots), "compute_list": [t["compute"] for t in trials]}


def warm_up(out: Path, data: Path, slots: int, trial: str = "real") -> None:
    """Builds the shared backbone into the stage cache (a 2-trial study, another seed; its
    trials as `trial` says, its backbone built by study/driver/prebuild.py either way)."""
    storage = out / "storage"
    environ = env(FSVAE_BENCH_TRIAL=trial) if trial != "real" else env()
    cli(["run", "--space", str(space_copy(out, seed=1)), "--data", str(data),
         "--storage", str(storage), "--name", "warm-up", "--num-samples", "2",
         "--max-concurrent", str(slots), *EPOCHS], out / "warm-up.log", environ)


# -- plain Ray Tune ------------------------------------------------------------------------

def plain(out: Path, n: int, slots: int, busy: float, searcher: str, tag: str) -> dict:
    """Plain Ray Tune in a child process (its own local Ray): N busy-wait trials."""
    spec = out / f"plain-{tag}.json"
    result = out / f"plain-{tag}.result.json"
    spec.write_text(json.dumps({"n": n, "slots": slots, "busy": busy, "searcher": searcher,
                                "storage": str(out / f"plain-{tag}"),
                                "result": str(result)}))
    result.unlink(missing_ok=True)
    before = load()
    others = Others()
    t0 = time.perf_counter()
    with open(out / f"plain-{tag}.log", "w") as f:
        rc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_plain",
                             str(spec)], cwd=REPO, env=env(RAY_AIR_NEW_OUTPUT="0"),
                            stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    before["others"] = others.share()
    if rc != 0 or not result.is_file():
        sys.exit(f"bench: plain Ray Tune ({tag}) failed (exit {rc}); see {out}/plain-{tag}.log")
    r = json.loads(result.read_text())
    trials = r["trials"]
    m = measure(trials, slots)
    return {**m, "load": before, "wall_s": wall, "driver": r["driver"],
            "driver_cpu_s_per_trial": r["driver"]["cpu_s"] / n,
            "startup_s": min(t["start"] for t in trials) - r["started"],
            "deciles": by_decile(trials, slots)}


def _plain_trainable(config: dict, busy: float = 0.0) -> None:
    from ray import tune

    t0 = time.time()
    p0 = time.perf_counter()
    end = p0 + busy
    while time.perf_counter() < end:
        pass
    work = time.perf_counter() - p0
    tune.report({OBJECTIVE: (hash(json.dumps(config, sort_keys=True, default=str)) % 1000)
                 / 1000, "t0": t0, "t1": time.time(), "busy": work})


def _tune_space(params: dict) -> dict:
    """Tune's own sampling over the same parameters (without the conditionals)."""
    from ray import tune

    space = {}
    for key, spec in params.items():
        if spec["type"] == "categorical":
            space[key] = tune.choice(spec["choices"])
        elif spec["type"] == "int":
            low, high = int(spec["low"]), int(spec["high"])
            space[key] = tune.lograndint(low, high + 1) if spec["log"] else \
                tune.randint(low, high + 1)
        else:
            space[key] = tune.loguniform(spec["low"], spec["high"]) if spec["log"] else \
                tune.uniform(spec["low"], spec["high"])
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
    trainable = tune.with_resources(tune.with_parameters(_plain_trainable, busy=spec["busy"]),
                                    {"cpu": 1})
    cfg = dict(metric=OBJECTIVE, mode="max", num_samples=spec["n"],
               max_concurrent_trials=spec["slots"], reuse_actors=True)
    param_space = {}
    if spec["searcher"] == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        cfg["search_alg"] = OptunaSearch(space=partial(search_spaces.suggest,
                                                       params=space.params),
                                         metric=OBJECTIVE, mode="max", seed=0)
    else:
        param_space = _tune_space(space.params)
    tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune.TuneConfig(**cfg),
                       run_config=tune.RunConfig(name="plain", storage_path=spec["storage"],
                                                 verbose=0))
    grid = tuner.fit()
    trials = [{"start": r.metrics["t0"], "end": r.metrics["t1"], "compute": r.metrics["busy"]}
              for r in grid if r.metrics and "t0" in r.metrics]
    ray.shutdown()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    memory = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
            memory[k + "_mb"] = int(v.split()[0]) / 1024
    Path(spec["result"]).write_text(json.dumps({
        "trials": trials, "started": started,
        "driver": {"maxrss_mb": memory["VmHWM_mb"],
                   "cpu_s": usage.ru_utime + usage.ru_stime, **memory}}))


# -- the report ------------------------------------------------------------------------------

def row(label: str, r: dict) -> str:
    return (f"| {label} | {r['trials']} | {r['slot_s_per_trial']:.3f} | {r['compute_s']:.3f} | "
            f"**{r['overhead_s']:.3f}** | {r.get('in_run_s', 0):.3f} | "
            f"{r['driver_cpu_s_per_trial']:.3f} | {r['driver'].get('maxrss_mb', 0):.0f} "
            f"({r['driver'].get('RssAnon_mb', 0):.0f}) | "
            f"{r['wall_s']:.1f} | {fmt_load(r['load'])} |")


HEADER = ("| run | trials | slot s per trial | compute s | overhead s per trial slot | "
          "of which inside the MLflow run | driver CPU s per trial | driver peak RSS MB "
          "(private at exit) | wall s | load |\n|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--_plain":
        _plain_main(sys.argv[2])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench-out/overhead", help="working folder (emptied)")
    p.add_argument("--trials", type=int, default=40, help="N, trials per run (default 40)")
    p.add_argument("--slots", type=int, default=2, help="trials at a time (default 2)")
    p.add_argument("--per-class", type=int, default=40, help="generated images per class")
    p.add_argument("--trial", default="real", help="real (default: smoke-search trials, "
                   "cached backbone), instant or busy:<s> (FSVAE_BENCH_TRIAL)")
    p.add_argument("--busy", type=float, help="plain trials' busy seconds (default: the "
                   "harness trials' mean compute; with --only plain: 0.2)")
    p.add_argument("--only", choices=("harness", "plain"), help="run one side only")
    p.add_argument("--repeats", type=int, default=1, help="run everything this many times")
    a = p.parse_args()
    out = Path(a.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"overhead bench: {machine()}", flush=True)
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
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
            print(f"    {rows['harness']['overhead_s']:.3f} s per trial slot "
                  f"({fmt_load(rows['harness']['load'])})", flush=True)
            if busy is None:
                busy = rows["harness"]["compute_s"]
        if a.only != "harness":
            busy = 0.2 if busy is None else busy
            for searcher, tag in (("none", "plain"), ("optuna", "plain+optuna")):
                print(f"[{rep}] {tag}: {a.trials} trials busy {busy:.3f} s ...", flush=True)
                rows[tag] = plain(out, a.trials, a.slots, busy, searcher, f"{tag}-{rep}")
                print(f"    {rows[tag]['overhead_s']:.3f} s per trial slot "
                      f"({fmt_load(rows[tag]['load'])})", flush=True)
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
                    print(f"ratio harness / {tag}{f' #{rep}' if a.repeats > 1 else ''}: "
                          f"{ratio:.1f}x ({h['overhead_s']:.3f} s vs "
                          f"{rows[tag]['overhead_s']:.3f} s per trial slot)")
            print(f"harness #{rep}: start-up {h['startup_s']:.1f} s (command to first trial "
                  f"run), shut-down {h['shutdown_s']:.1f} s; overhead per tenth of the trials "
                  f"{h['deciles']}")
    (out / "overhead.json").write_text(json.dumps(
        {"machine": machine(), "commit": commit, "args": vars(a), "results": results},
        indent=1))
    print(f"\nfull numbers: {out / 'overhead.json'}")


if __name__ == "__main__":
    main()
