"""The commands that run studies: `run`, `resume` and `discard` (docs/studies.md,
docs/failures.md)."""

from __future__ import annotations

import argparse

from fsvae_study.output import err

EXIT_CODES = (
    "exit status: 0 the study is complete and every trial finished (or was stopped "
    "early by --asha); 3 complete, but some trials failed (the summary names them "
    "and says whether a retry can help); 2 bad input, or a stratum stopped "
    "because every trial of it would fail the same way; 4 another process took the "
    "study over (a resume elsewhere, or a discard) and this one stopped without "
    "writing more; 130 interrupted (Ctrl-C): continue with `fsvae-study resume`"
)


def register(sub) -> None:
    from study.plan import options

    r = sub.add_parser(
        "run", help="run a study (grid or Optuna search) with Ray Tune", epilog=EXIT_CODES
    )
    r.add_argument(
        "--space",
        required=True,
        help="search space: a YAML file, or the name of a "
        "shipped one (paper, search, ablations, smoke, smoke-search: "
        "search_spaces/<name>.yaml)",
    )
    r.add_argument("--data", required=True, help="dataset root")
    options.add_flags(r, options.NAMES)  # study/plan/options.py: every StudyOptions field
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue the study of this name if its tracking store has it (it "
        "must be the same study: space, preset, --set and data)",
    )
    accept_changed_data(r)
    status_every(r)
    r.set_defaults(func=_run)

    rs = sub.add_parser(
        "resume",
        help="continue an interrupted study, from its folder or, "
        "when that is gone or on another machine, from its MLflow record",
        epilog=EXIT_CODES,
    )
    rs.add_argument("--name", required=True, help="the study's name")
    rs.add_argument(
        "--storage",
        help="its folder's storage (default ./fsvae-studies); a "
        "study found only in its record continues here",
    )
    rs.add_argument(
        "--tracking-uri",
        help="the MLflow store that records it (default: the "
        "one its study.json names, else sqlite <storage>/mlflow.db)",
    )
    rs.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="its Optuna store (default: as the study ran; a lost one is rebuilt from MLflow)",
    )
    rs.add_argument(
        "--data", help="its dataset, where it is on this machine (default: where the study read it)"
    )
    rs.add_argument("--address", help="Ray cluster address (default: as the study ran)")
    rs.add_argument(
        "--retry-failed",
        action="store_true",
        help="also re-run trials that failed (a search retries each failed "
        "trial's parameters as a new Optuna trial)",
    )
    accept_changed_data(rs)
    status_every(rs)
    rs.set_defaults(func=_resume)

    d = sub.add_parser(
        "discard",
        help="discard a study: its MLflow runs, its Optuna studies "
        "and its folder, so that its name is free again",
    )
    d.add_argument("--name", required=True, help="the study's name")
    d.add_argument("--storage", help="its folder's storage (default ./fsvae-studies)")
    d.add_argument(
        "--tracking-uri",
        help="the MLflow store that records it (default: the "
        "one its study.json names, else sqlite <storage>/mlflow.db)",
    )
    d.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="its Optuna store (default: the "
        "one its study.json names, else sqlite <storage>/optuna.db)",
    )
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    d.set_defaults(func=_discard)


def accept_changed_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accept-changed-data",
        action="store_true",
        help="continue although the data differs from the study's (compared by "
        "its split lists and each file's size, not its path or file times)",
    )


def status_every(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--status-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="when stdout is no terminal (a log file, CI, nohup): one status line "
        "every SECONDS (on a terminal a live block shows the study) (default: 60.0)",
    )


def trial_resources(p: argparse.ArgumentParser, inherit: str | None = None) -> None:
    """--address, the resources of a trial and its retries (StudyOptions'). With `inherit`
    (say "the search"), every default but --address is that study's."""
    from study.plan import options

    options.add_flags(p, options.RESOURCES, inherit)


def study_location(
    p: argparse.ArgumentParser, name: str = "study name (default: the space's name)"
) -> None:
    from study.plan import options

    p.add_argument("--name", help=name)
    p.add_argument("--storage", help=options.STORAGE_HELP)
    p.add_argument("--tracking-uri", help=options.TRACKING_HELP)


def _run(args: argparse.Namespace) -> int:
    from study import run_study
    from study.plan import options

    result = run_study(
        args.space,
        args.data,
        resume=args.resume,
        accept_changed_data=args.accept_changed_data,
        status_every=args.status_every,
        **options.from_args(args, options.NAMES),
    )
    return told(result, "run")


def told(result, command: str) -> int:
    """A study's exit code, once the errors that stopped a stratum went to stderr."""
    for error in result.errors:
        err(f"fsvae-study {command}: error: {error}")
    return result.exit_code


def _resume(args: argparse.Namespace) -> int:
    from study import resume_study

    result = resume_study(
        args.name,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        optuna_storage=args.optuna_storage,
        data=args.data,
        address=args.address,
        retry_failed=args.retry_failed,
        accept_changed_data=args.accept_changed_data,
        status_every=args.status_every,
    )
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

    if not discard_study(
        args.name,
        confirm,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        optuna_storage=args.optuna_storage,
    ):
        print("not discarded")
        return 1
    print(
        f"discarded study {args.name!r}; its MLflow experiment, if any, is deleted (renamed "
        f"aside, so that the name is free)"
    )
    return 0
