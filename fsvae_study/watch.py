"""The command that shows a study's state from its record: `status`, once or refreshed in
place (docs/studies.md#watching-a-study)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

DEFAULT_EVERY = 5.0


def register(sub) -> None:
    s = sub.add_parser(
        "status",
        help="a study's state from its record alone: its driver, "
        "trials by state, each running trial's progress, time left, cost",
    )
    s.add_argument("--name", required=True, help="the study's name")
    s.add_argument(
        "--storage",
        help="its folder's storage, where its study.json names its "
        "record (default ./fsvae-studies)",
    )
    s.add_argument(
        "--tracking-uri",
        help="the MLflow store that records it (default: the "
        "one its study.json names, else sqlite <storage>/mlflow.db)",
    )
    s.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="a search's Optuna store, for the "
        "optuna-dashboard command shown (default: the one its parent run records)",
    )
    s.add_argument(
        "--watch",
        nargs="?",
        type=_seconds,
        const=DEFAULT_EVERY,
        metavar="SECONDS",
        help=f"refresh in place every SECONDS until Ctrl-C "
        f"(default: show it once; {DEFAULT_EVERY:g} s when SECONDS is left out)",
    )
    s.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of text (with --watch, one line per refresh)",
    )
    s.set_defaults(func=_status)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds above 0")
    return value


def _status(args: argparse.Namespace) -> int:
    import logging

    from study import watch

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    where = watch.locate(
        args.name,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        optuna_storage=args.optuna_storage,
    )
    resume = _resume_options(args)

    def shown() -> str:
        status = watch.read(where)
        return watch.as_json(status) if args.json else watch.text(status, resume)

    first = shown()  # an unknown study is an error before anything is drawn
    if args.watch is None:
        print(first, flush=True)
        return 0
    try:
        if args.json or not sys.stdout.isatty():
            _log(first, shown, args.watch, blank=not args.json)
        else:
            _live(first, shown, args.watch)
    except KeyboardInterrupt:
        pass
    return 0


def _log(first: str, shown, every: float, blank: bool) -> None:
    """No terminal (a file, a pipe) or --json: each reading printed after the last."""
    text = first
    while True:
        print(text + ("\n" if blank else ""), flush=True)
        time.sleep(every)
        text = _again(shown, text)


def _live(first: str, shown, every: float) -> None:
    """A terminal: the reading redrawn in place (rich's Live display)."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def frame(text: str) -> Text:
        return Text(f"{text}\n  (every {every:g} s; Ctrl-C ends)")

    with Live(frame(first), console=Console(), auto_refresh=False) as live:
        text = first
        while True:
            time.sleep(every)
            text = _again(shown, text)
            live.update(frame(text), refresh=True)


def _again(shown, last: str) -> str:
    """The next reading; an unknown study (discarded meanwhile) is the command's error, and
    a store out of reach for a while keeps the last reading with a note under it."""
    from fsvae.errors import FsvaeError

    try:
        return shown()
    except FsvaeError:
        raise
    except Exception as e:
        from study.secrets import redact_text

        stamp = time.strftime("%H:%M:%S")
        return (
            last.split("\n  (could not read")[0]
            + f"\n  (could not read the record at {stamp}: {type(e).__name__}: "
            f"{redact_text(str(e))[:200]})"
        )


def _resume_options(args: argparse.Namespace) -> str:
    """What `fsvae-study resume` needs besides the name, as this command was given it."""
    from study.secrets import redact

    out = ""
    if args.storage:
        out += f" --storage {shlex.quote(args.storage)}"
    if args.tracking_uri:
        out += f" --tracking-uri {shlex.quote(redact(args.tracking_uri) or '')}"
    return out
