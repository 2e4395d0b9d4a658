"""The commands that run studies: `run`, `resume` and `discard` (docs/studies.md,
docs/failures.md)."""
from __future__ import annotations

import argparse

from fsvae_study.output import err


EXIT_CODES = ("exit status: 0 the study is complete and every trial finished (or was stopped "
              "early by --asha); 3 complete, but some trials failed (the summary names them "
              "and says whether a retry can help); 2 bad input, or a stratum stopped "
              "because every trial of it would fail the same way; 4 another process took the "
              "study over (a resume elsewhere, or a discard) and this one stopped without "
              "writing more; 130 interrupted (Ctrl-C): continue with `fsvae-study resume`")


def register(sub) -> None:
    r = sub.add_parser("run", help="run a study (grid or Optuna search) with Ray Tune",
                       epilog=EXIT_CODES)
    r.add_argument("--space", required=True, help="search space: a YAML file, or the name of a "
                   "shipped one (paper, search, ablations, smoke, smoke-search: "
                   "search_spaces/<name>.yaml)")
    r.add_argument("--data", required=True, help="dataset root")
    study_location(r)
    r.add_argument("--num-samples", type=int,
                   help="Optuna: trials per stratum (overrides the space's num_samples)")
    r.add_argument("--preset", choices=("paper", "tiny"),
                   help="config preset under the space's values (default: the space's)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="fix a config key for every trial, wherever the space varied it "
                   "(repeatable)")
    r.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="grid spaces: replace (or add) one grid dimension, e.g. "
                   "--grid seed=0,1,2 (repeatable)")
    trial_resources(r)
    r.add_argument("--asha", action="store_true",
                   help="early-stop weak trials with ASHA (stage-3 epochs as time)")
    r.add_argument("--optuna-storage", metavar="URL",
                   help="Optuna searches: the database of their Optuna studies (default: "
                   "sqlite <storage>/optuna.db; with an s3:// storage, a file on this "
                   "machine's disk)")
    r.add_argument("--cache-dir", help="stage cache (default: <storage>/cache)")
    r.add_argument("--no-cache", action="store_true", help="compute every stage in every trial")
    r.add_argument("--resume", action="store_true",
                   help="continue the study of this name if its tracking store has it (it "
                   "must be the same study: space, preset, --set and data)")
    accept_changed_data(r)
    r.add_argument("--log-model", action="store_true",
                   help="when the study is complete, log the best trial's model to its parent "
                   "run (docs/mlflow.md#the-best-model)")
    r.set_defaults(func=_run)

    rs = sub.add_parser("resume", help="continue an interrupted study, from its folder or, "
                        "when that is gone or on another machine, from its MLflow record",
                        epilog=EXIT_CODES)
    rs.add_argument("--name", required=True, help="the study's name")
    rs.add_argument("--storage", help="its folder's storage (default ./fsvae-studies); a "
                    "study found only in its record continues here")
    rs.add_argument("--tracking-uri", help="the MLflow store that records it (default: the "
                    "one its study.json names, else sqlite <storage>/mlflow.db)")
    rs.add_argument("--optuna-storage", metavar="URL", help="its Optuna store (default: as "
                    "the study ran; a lost one is rebuilt from MLflow)")
    rs.add_argument("--data", help="its dataset, where it is on this machine (default: where "
                    "the study read it)")
    rs.add_argument("--address", help="Ray cluster address (default: as the study ran)")
    rs.add_argument("--retry-failed", action="store_true",
                    help="also re-run trials that failed (a search retries each failed "
                    "trial's parameters as a new Optuna trial)")
    accept_changed_data(rs)
    rs.set_defaults(func=_resume)

    d = sub.add_parser("discard", help="discard a study: its MLflow runs, its Optuna studies "
                       "and its folder, so that its name is free again")
    d.add_argument("--name", required=True, help="the study's name")
    d.add_argument("--storage", help="its folder's storage (default ./fsvae-studies)")
    d.add_argument("--tracking-uri", help="the MLflow store that records it (default: the "
                   "one its study.json names, else sqlite <storage>/mlflow.db)")
    d.add_argument("--optuna-storage", metavar="URL", help="its Optuna store (default: the "
                   "one its study.json names, else sqlite <storage>/optuna.db)")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    d.set_defaults(func=_discard)


def accept_changed_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accept-changed-data", action="store_true",
                   help="continue although the data differs from the study's (compared by "
                   "its split lists and each file's size, not its path or file times)")


SPACE_FIRST = "the space's resources, else "  # study/driver/cluster.py trial_resources' order


def trial_resources(p: argparse.ArgumentParser, inherit: str | None = None) -> None:
    """--address, the resources of a trial and its retries. With `inherit` (say "the
    search"), every default but --address is that study's setting: the flags are left
    None where not given."""
    def default(own: str) -> str:
        return f"as {inherit} ran" if inherit else own

    p.add_argument("--address", help="join an existing Ray cluster (default: RAY_ADDRESS, "
                   "else start a local Ray)")
    p.add_argument("--cpus-per-trial", type=float,
                   help="CPUs per trial, also its torch threads (default: "
                   f"{default(SPACE_FIRST + '1')})")
    gpu = SPACE_FIRST + "0.25 where the cluster has GPUs, 0 where it has none"
    p.add_argument("--gpus-per-trial", type=float,
                   help=f"GPU fraction per trial (default: {default(gpu)})")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: "
                   f"{default('as many as the resources allow')})")
    p.add_argument("--max-failures", type=int, default=None if inherit else 0,
                   help="retries of any failing trial, its own errors included, before it "
                   f"counts as failed (default: {default('0')})")
    p.add_argument("--infra-retries", type=int, default=None if inherit else 2,
                   help="retries of a trial whose worker process or node died, or that "
                   f"could not reach MLflow (default: {default('2')})")


def study_location(p: argparse.ArgumentParser,
                   name: str = "study name (default: the space's name)") -> None:
    p.add_argument("--name", help=name)
    p.add_argument("--storage", help="Ray results, cache and default MLflow store: a local "
                   "folder (default ./fsvae-studies) or a shared path on a cluster")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite file "
                   "<storage>/mlflow.db; http://host:port for a server, required with an "
                   "s3:// storage)")


def _run(args: argparse.Namespace) -> int:
    from study import run_study

    result = run_study(
        args.space, args.data, resume=args.resume, accept_changed_data=args.accept_changed_data,
        name=args.name, storage=args.storage, tracking_uri=args.tracking_uri,
        optuna_storage=args.optuna_storage, num_samples=args.num_samples, preset=args.preset,
        overrides=args.set, grid=args.grid, address=args.address,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent, max_failures=args.max_failures,
        infra_retries=args.infra_retries, asha=args.asha, cache_dir=args.cache_dir,
        no_cache=args.no_cache, log_model=args.log_model)
    return told(result, "run")


def told(result, command: str) -> int:
    """A study's exit code, once the errors that stopped a stratum went to stderr."""
    for error in result.errors:
        err(f"fsvae-study {command}: error: {error}")
    return result.exit_code


def _resume(args: argparse.Namespace) -> int:
    from study import resume_study

    result = resume_study(args.name, storage=args.storage, tracking_uri=args.tracking_uri,
                          optuna_storage=args.optuna_storage, data=args.data,
                          address=args.address, retry_failed=args.retry_failed,
                          accept_changed_data=args.accept_changed_data)
    return told(result, "resume")


def _discard(args: argparse.Namespace) -> int:
    import sys

    from study import discard_study
    from study.errors import StudyError

    def confirm(description: str) -> bool:
        print(f"discard study {args.name!r}: this removes\n{description}", flush=True)
        if args.yes:
            return True
        if not sys.stdin.isatty():
            raise StudyError("not discarded: confirm with --yes (no terminal to ask)")
        return input("discard it? [y/N] ").strip().lower() in ("y", "yes")

    if not discard_study(args.name, confirm, storage=args.storage,
                         tracking_uri=args.tracking_uri, optuna_storage=args.optuna_storage):
        print("not discarded")
        return 1
    print(f"discarded study {args.name!r}; its MLflow experiment, if any, is deleted (renamed "
          f"aside, so that the name is free)")
    return 0
