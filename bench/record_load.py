"""Load benchmark of the MLflow record: concurrent trial writers against four backends.

Each of `--writers` processes (default 8) writes one trial's records the way
study/record/write.py does, on the same run and tag names, but every epoch's curve values in a
request of their own (as a live-progress logger would; `--flush stage` sends a stage's
curves in one request at its end instead, as the recorder does now):
  1 search_runs by the parent's and the key's tags (the recorder's `earlier()`),
  1 create_run with its tags (role, key, parent, attempt, library versions),
  1 log_batch of the 39 params of the tiny preset's active config,
  per stage (backbone 6, vae 6, classifier 4 curve keys) x `--epochs` (default 30): one
  log_batch of that epoch's values, then one with the stage's best epoch and cache tags,
  1 log_batch of 30 final metrics, 1 set_tag, 1 set_terminated.
At the defaults: 99 requests and 513 metric values per writer.

Backends: (1) SQLite opened directly (sqlite:////abs/mlflow.db), (2) an `mlflow server`
over http backed by SQLite, (3) PostgreSQL opened directly, (4) an `mlflow server` backed
by PostgreSQL. PostgreSQL is a real server on loopback started here (tests/helpers/
postgres.py) with its durable defaults (fsync on), as SQLite commits are fsynced; the
mlflow servers are started by the tests' helper (tests/helpers/processes.py). The writers
start, open their store and wait; the clock runs from their common start to the last one's
end.

Never a test: figures depend on the machine; this prints them with the machine.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" lines
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the project, and the tests' server helpers

from mlflow.entities import Metric, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from fsvae import config as config_mod  # noqa: E402
from helpers.postgres import start_postgres  # noqa: E402
from helpers.processes import free_port, start_mlflow_server, stop_process_group  # noqa: E402
from study.record.provenance import library_tags  # noqa: E402
from study.record.schema import CURVE_KEYS  # noqa: E402
from study.record.write import params_of  # noqa: E402

BACKENDS = ("sqlite", "sqlite-server", "postgres", "postgres-server")
FINALS = (
    [
        f"{split}_{m}"
        for split in ("val", "test")
        for m in ("acc", "acc_majority", "acc_minority", "acc_h")
    ]
    + [f"class_acc/style_{i:02d}" for i in range(14)]
    + [f"time_{s}_s" for s in ("data", "backbone", "vae", "classifier", "total")]
    + [f"data_usable_{s}" for s in ("train", "val", "test")]
)
CTX = mp.get_context("fork")  # writers start in milliseconds; the parent never opens a store


@dataclass
class Result:
    """What one writer did: per-request latencies (s), metric values sent, errors."""

    latencies: list[float] = field(default_factory=list)
    values: int = 0
    errors: int = 0
    first_error: str = ""
    end: float = 0.0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for name in ("mlflow", "alembic"):  # schema creation logs every step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.out is None:  # stores and logs go when the figures are printed
        with tempfile.TemporaryDirectory(prefix="fsvae-record-load-") as tmp:
            measure(args, Path(tmp))
        return
    folder = Path(args.out).resolve()
    if folder.exists() and any(folder.iterdir()):
        sys.exit(
            f"record_load: --out {folder} is not empty: expected a new or empty folder "
            "(every backend starts from a fresh store)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    measure(args, folder)


def measure(args, folder: Path) -> None:
    """Runs every backend in `folder`; prints progress, then the table."""
    print(header(args))
    rows = []
    for backend in args.backends:
        rows.append((backend, run_backend(backend, folder / backend, args)))
    print(f"at the end: {load()}")
    print(table(rows))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writers", type=int, default=8, help="concurrent writer processes")
    p.add_argument("--epochs", type=int, default=30, help="epochs per stage (3 stages)")
    p.add_argument(
        "--flush",
        choices=("epoch", "stage"),
        default="epoch",
        help="one request per epoch (default) or per stage",
    )
    p.add_argument(
        "--server-workers",
        type=int,
        default=2,
        help="`mlflow server --workers` for the two server backends",
    )
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    p.add_argument(
        "--out",
        help="a new folder to keep the stores and server logs in "
        "(default: a temporary one, removed at the end)",
    )
    return p.parse_args(argv)


# -- one backend ---------------------------------------------------------------------------


def run_backend(backend: str, folder: Path, args) -> tuple[list[Result], int]:
    """Starts what `backend` needs, runs the writers on it, stops it again; the writers'
    results and how many trial runs the store then holds as FINISHED. Prints where the
    time went."""
    folder.mkdir(parents=True)
    clock = Phases()
    pg = start_postgres(durable=True) if backend.startswith("postgres") else None
    server = None
    try:
        env = pg.env() if pg else {}
        store = pg.create_database("mlflow") if pg else f"sqlite:///{folder / 'mlflow.db'}"
        uri = store
        if backend.endswith("-server"):
            server, uri = start_mlflow_server(
                folder,
                free_port(),
                backend_store_uri=store,
                extra_env=env,
                workers=args.server_workers,
            )
        clock.lap("servers")
        os.environ.update(env)
        exp_id, parent_id = in_child(setup, uri)
        clock.lap("schema and experiment")
        results = run_writers(uri, exp_id, parent_id, args)
        clock.lap("writers (opening stores, writing)")
        return results, in_child(finished_runs, uri, exp_id)
    finally:
        if server is not None:
            stop_process_group(server)
        if pg is not None:
            pg.stop()
            os.environ.pop("PGPASSWORD", None)
        clock.lap("check and stop")
        print(f"  {backend}: {clock}", flush=True)


class Phases:
    """Seconds per named phase, for the progress line."""

    def __init__(self):
        self.t, self.laps = time.monotonic(), []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{name} {now - self.t:.0f} s")
        self.t = now

    def __str__(self) -> str:
        return ", ".join(self.laps)


def setup(uri: str) -> tuple[str, str]:
    """The study's experiment and parent run, created once before the writers start (a
    fresh SQLite store cannot be created by several processes at once)."""
    client = MlflowClient(uri)
    exp_id = client.create_experiment("record-load")
    parent = client.create_run(exp_id, tags={"fsvae.role": "study"})
    return exp_id, parent.info.run_id


def finished_runs(uri: str, exp_id: str) -> int:
    """The trial runs the store holds as FINISHED: a request that failed silently shows
    here."""
    runs = MlflowClient(uri).search_runs([exp_id], filter_string="tags.`fsvae.role` = 'trial'")
    return sum(r.info.status == "FINISHED" for r in runs)


def in_child(fn, *args):
    """fn(*args) in a forked process; its return value. Keeps this process free of open
    stores, so that the writers forked later share no connection with it."""
    queue = CTX.Queue()
    proc = CTX.Process(target=lambda: queue.put(fn(*args)))
    proc.start()
    value = queue.get(timeout=300)
    proc.join()
    return value


def run_writers(uri: str, exp_id: str, parent_id: str, args) -> list[Result]:
    """Forks the writers, lets them open their stores, starts them together; their results."""
    ready, go, queue = CTX.Barrier(args.writers + 1), CTX.Event(), CTX.Queue()
    procs = [
        CTX.Process(target=writer, args=(uri, exp_id, parent_id, i, args, ready, go, queue))
        for i in range(args.writers)
    ]
    for proc in procs:
        proc.start()
    ready.wait(timeout=300)
    start = time.monotonic()
    go.set()
    results = [queue.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    for r in results:
        r.end -= start  # seconds since the common start
    return results


# -- one writer ----------------------------------------------------------------------------


def writer(uri, exp_id, parent_id, index, args, ready, go, queue) -> None:
    """One trial's process: opens its store and prepares its records, waits for the
    others, writes, reports its Result."""
    result, client = Result(), None
    key = f"trial-{index}"
    try:
        client = MlflowClient(uri)
        client.get_experiment(exp_id)  # opens the store (engine, connection) off the clock
        tags = {
            "mlflow.parentRunId": parent_id,
            "fsvae.role": "trial",
            "fsvae.trial_key": key,
            "fsvae.attempt": "1",
            **library_tags(),
        }
        params = params_of(
            config_mod.active_config(config_mod.resolve({"method": "vae"}, preset="tiny"))
        )
    except Exception as e:  # reported like a failed request; the others still run
        client = None
        result.errors, result.first_error = 1, f"opening the store: {type(e).__name__}: {e}"
    ready.wait()
    go.wait()
    try:
        if client is not None:
            trial(client, exp_id, parent_id, key, tags, params, args, result)
    finally:
        result.end = time.monotonic()
        queue.put(result)


def trial(client, exp_id, parent_id, key, tags, params, args, result: Result) -> None:
    """One trial's records (see the module docstring)."""
    call(
        result,
        0,
        client.search_runs,
        [exp_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}' and "
        f"tags.`fsvae.trial_key` = '{key}'",
    )
    run = call(result, 0, client.create_run, exp_id, tags=tags, run_name=key)
    if run is None:
        return
    run_id = run.info.run_id
    call(result, 0, client.log_batch, run_id, params=params)
    for stage, keys in CURVE_KEYS.items():
        pending = []
        for epoch in range(args.epochs):
            now = int(time.time() * 1000)
            pending += [
                Metric(f"{stage}_{k}", 1.0 / (epoch + 1 + i), now, epoch)
                for i, k in enumerate(keys)
            ]
            if args.flush == "epoch":
                call(result, len(pending), client.log_batch, run_id, metrics=pending)
                pending = []
        now = int(time.time() * 1000)
        pending.append(Metric(f"{stage}_best_epoch", float(args.epochs - 1), now, 0))
        call(
            result,
            len(pending),
            client.log_batch,
            run_id,
            metrics=pending,
            tags=[RunTag(f"cache.{stage}", "miss"), RunTag(f"cache.{stage}.key", key)],
        )
    now = int(time.time() * 1000)
    call(
        result,
        len(FINALS),
        client.log_batch,
        run_id,
        metrics=[Metric(k, 0.5, now, 0) for k in FINALS],
    )
    call(result, 0, client.set_tag, run_id, "fsvae.minority_classes", "style_00,style_01")
    call(result, 0, client.set_terminated, run_id, "FINISHED")


def call(result: Result, values: int, fn, *args, **kwargs):
    """One request, timed; an error is counted (the first one's text kept), not raised."""
    t0 = time.monotonic()
    try:
        out = fn(*args, **kwargs)
    except Exception as e:  # the bench reports errors; one must not stop the writer
        result.errors += 1
        result.first_error = result.first_error or f"{fn.__name__}: {type(e).__name__}: {e}"
        return None
    finally:
        result.latencies.append(time.monotonic() - t0)
    result.values += values
    return out


# -- the report ----------------------------------------------------------------------------


def header(args) -> str:
    import mlflow

    commit = (
        subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        or "unknown"
    )
    return (
        f"record load: {args.writers} writers, 3 stages x {args.epochs} epochs, one "
        f"request per {args.flush}; mlflow server --workers {args.server_workers}\n"
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, MLflow {mlflow.__version__}; commit {commit}; "
        f"{load()}"
    )


def load() -> str:
    """The machine's load average: other work on a shared machine shows in the figures."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def table(rows: list[tuple[str, tuple[list[Result], int]]]) -> str:
    lines = [
        "| backend | requests | wall s | requests/s | metric values/s | p50 ms | "
        "p99 ms | runs FINISHED | errors | first error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, (results, finished) in rows:
        lat = sorted(x for r in results for x in r.latencies)
        wall = max(r.end for r in results)
        values = sum(r.values for r in results)
        errors = sum(r.errors for r in results)
        first = next((r.first_error for r in results if r.first_error), "")
        lines.append(
            f"| {backend} | {len(lat)} | {wall:.1f} | {len(lat) / wall:.0f} | "
            f"{values / wall:.0f} | {percentile(lat, 50) * 1e3:.1f} | "
            f"{percentile(lat, 99) * 1e3:.1f} | {finished}/{len(results)} | "
            f"{errors} | {first[:200]} |"
        )
    return "\n".join(lines)


def percentile(sorted_values: list[float], q: int) -> float:
    if len(sorted_values) < 2:
        return sorted_values[0] if sorted_values else float("nan")
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[q - 1]


if __name__ == "__main__":
    main()
