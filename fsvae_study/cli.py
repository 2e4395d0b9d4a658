"""`fsvae-study`: the command line. Each command module registers its own subcommands and
imports what a command needs only when it runs, so `trial` and `demo-data` start without
Ray, Optuna or MLflow.

Errors a user can fix (fsvae.errors.FsvaeError: a bad config key or value, search space,
data, study or table request, model) print one clear line on stderr and exit with status
2 (or the error's own `exit_code`: 4 for a study another process took over); nothing
already written is removed.
"""

from __future__ import annotations

import argparse
import os
import sys

from fsvae_study import analyze, cache, confirm, method, read, slurm, studies, watch
from fsvae_study.output import err

EXIT_USAGE = 2
COMMANDS = (method, cache, studies, slurm, watch, confirm, read, analyze)  # as `--help` lists them


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fsvae-study",
        description="Park (2021) VAE-for-imbalance studies: trials, Ray "
        "Tune + Optuna searches, MLflow records, tables.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rc = _main(args)
    if argv is None and args.command in ("run", "resume"):
        _exit_now(rc)
    return rc


def _exit_now(rc: int) -> None:
    """Ends a study's process without the interpreter's teardown. After a study, the
    work is done and saved (MLflow writes are synchronous, Ray is shut down), but tearing
    down Ray's native client library takes about 2 s of a 2-core machine's time. atexit
    handlers still run, other threads are waited for as at a normal exit, and the output
    is flushed first."""
    import atexit
    import threading

    # What the interpreter does first at exit: thread-pool executors told to stop (MLflow
    # downloads artifacts through one), then every other non-daemon thread waited for.
    # Joining those threads without the first step waits forever on an idle pool.
    threading._shutdown()  # type: ignore[attr-defined]  # private, on purpose: see above
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe
            pass
    os._exit(rc)


def _main(args: argparse.Namespace) -> int:
    from fsvae.errors import FsvaeError

    try:
        return args.func(args)
    except (FsvaeError, FileExistsError, FileNotFoundError) as e:
        err(f"fsvae-study {args.command}: error: {_shown(e)}")
        return getattr(e, "exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        err(f"fsvae-study {args.command}: interrupted")
        return 130
    except BrokenPipeError:  # e.g. `fsvae-study keys | head`
        return 0


def _shown(e: BaseException) -> str:
    """The error's message, any URL in it without its password: each message redacts its
    own URLs (study.secrets); this also covers a library's text quoted in one."""
    text = str(e)
    if "://" not in text:
        return text
    from study.secrets import redact_text  # only here: the `study` package imports Ray

    return redact_text(text)


if __name__ == "__main__":
    sys.exit(main())
